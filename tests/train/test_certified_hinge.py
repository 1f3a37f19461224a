"""The certified-training hinge trains on the boxes a round left unproven once there are any, and
only then; its gradient lowers it there."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from verifiers.bounds.differentiable import interval_slope_lower
from vpals_jax.config import OptimConfig
from vpals_jax.models import MLP
from vpals_jax.train.steps import (
    Certify,
    RegionSet,
    UnresolvedBoxes,
    cert_draws,
    certified_hinge,
    create_state,
    param_layers,
)

N, K = 3, 16


def _cert(valid: np.ndarray) -> Certify:
    # Region rows ask for nothing (allowance 1e3: their hinge is 0); the boxes ask for a slope of 1e3.
    regions = RegionSet(jnp.zeros((1, N)), jnp.ones((1, N)), jnp.eye(N)[:1], jnp.ones(1), jnp.ones(1), jnp.zeros(1))
    lo = np.tile([[0.1, 0.2, 0.3]], (4, 1)).astype(np.float32)
    boxes = UnresolvedBoxes(jnp.asarray(lo), jnp.asarray(lo + 0.1), jnp.tile(jnp.eye(N)[1], (4, 1)), jnp.ones(4),
                            jnp.full(4, -1e3), jnp.asarray(valid, jnp.float32))  # fmt: skip
    return Certify(regions, None, jnp.asarray(1.0), jnp.asarray(1.0), jnp.asarray(0.0), jnp.full(1, 1e3), boxes)


def test_the_boxes_of_a_failed_round_enter_the_hinge_and_its_gradient_lowers_it():
    params = create_state(MLP(depth=2, width=8), OptimConfig(), N, 0).params
    key = jax.random.uniform(jax.random.PRNGKey(0), (cert_draws(K, N),))  # the step's uniforms
    assert float(certified_hinge(params, key, _cert(np.zeros(4)), K, 0)) == 0.0
    cert = _cert(np.array([1.0, 1.0, 0.0, 0.0]))  # two boxes left by the round (identical here)
    value = float(certified_hinge(params, key, cert, K, 0))
    ws, bs = param_layers(params)
    b = cert.boxes
    lb = float(interval_slope_lower(ws, bs, b.lower[:1], b.upper[:1], b.axis[:1], b.sign[:1])[0])
    assert np.isclose(value, 1e3 - lb, rtol=1e-5)  # the mean over the box slots; the region half adds 0
    grads = jax.grad(certified_hinge)(params, key, cert, K, 0)
    assert all(bool(jnp.isfinite(g).all()) for g in jax.tree_util.tree_leaves(grads))
    stepped = jax.tree_util.tree_map(lambda p, g: p - 1e-3 * g, params, grads)
    assert float(certified_hinge(stepped, key, cert, K, 0)) < value
