"""The certified-training bound: sound against the exact MILP minimum, and a usable gradient."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from verifiers.bounds.differentiable import interval_output_bounds, interval_slope_lower
from verifiers.milp import BoxMilp
from verifiers.testing.instances import random_relu_net

SHAPES = [(1, (6,)), (2, (5, 5)), (3, (4, 6))]  # few shapes: the MILP's bounds compile once per shape


def _case(k: int):
    rng = np.random.default_rng(k)
    n, hidden = SHAPES[k % len(SHAPES)]
    net = random_relu_net(n, hidden, seed=k)
    lo = rng.uniform(-1, 1, n)
    hi = lo + rng.uniform(0.01, 1.0, n)
    return net, lo, hi, int(rng.integers(0, n)), float(rng.choice([-1.0, 1.0]))


def _layers(net):
    return [jnp.asarray(w) for w in net.weights], [jnp.asarray(b) for b in net.biases]


def test_slope_bound_is_never_above_the_exact_minimum():
    """Over 300 small random networks and boxes: the bound trained on never exceeds the MILP's
    exact minimum of ``sign * df/dx_i`` (the training signal may be loose, never optimistic)."""
    with jax.enable_x64(True):
        for k in range(300):
            net, lo, hi, i, sign = _case(k)
            ws, bs = _layers(net)
            lb = float(interval_slope_lower(ws, bs, jnp.asarray(lo)[None], jnp.asarray(hi)[None],
                                            jnp.eye(net.n_inputs)[i][None], jnp.asarray([sign]))[0])  # fmt: skip
            exact = BoxMilp(net, lo, hi, feature=i, sign=sign).min_derivative(sign, time_limit=10.0, rel_gap=0.0)
            assert exact.objective is not None
            assert lb <= exact.objective + 1e-9, (k, lb, exact.objective)


def test_output_bounds_contain_sampled_outputs():
    with jax.enable_x64(True):
        for k in range(50):
            net, lo, hi, _, _ = _case(k)
            ws, bs = _layers(net)
            fl, fu = interval_output_bounds(ws, bs, jnp.asarray(lo)[None], jnp.asarray(hi)[None])
            f = net.forward(np.random.default_rng(k).uniform(lo, hi, size=(200, lo.size)))[:, 0]
            assert float(fl[0]) <= f.min() + 1e-12 and f.max() <= float(fu[0]) + 1e-12


def test_gradient_is_finite_and_a_step_lowers_the_hinge():
    net = random_relu_net(3, (8, 8), seed=4)
    ws, bs = _layers(net)
    lo, hi = jnp.zeros((4, 3)), jnp.ones((4, 3))
    axis, sign = jnp.eye(3)[jnp.array([0, 1, 2, 0])], jnp.array([1.0, 1.0, -1.0, 1.0])

    def hinge(params):
        return jnp.maximum(0.0, 0.1 - interval_slope_lower(params[0], params[1], lo, hi, axis, sign)).mean()

    params = (ws, bs)
    before = float(hinge(params))
    grads = jax.grad(hinge)(params)
    assert before > 0
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree_util.tree_leaves(grads))
    stepped = jax.tree_util.tree_map(lambda p, g: p - 0.05 * g, params, grads)
    assert float(hinge(stepped)) < before
