"""Soundness where a region is split and the parts proven separately (issue 18, section 0).

A tolerance ``t`` proven box by box in the *difference* form (``f(x') - f(x) >= -t`` inside each
box) does not compose: a band of negative slope split between boxes shows only part of its drop
in each. Every backend must compose per-box proofs in the slope form ``sign * df/dx_i >= -t / W_i``
(``W_i`` the region's width), so none may verify these instances, whatever its search effort.
"""

from __future__ import annotations

import numpy as np
import pytest

from verifiers import Box, Counterexample, Monotonicity, Status, get_verifier
from verifiers.testing.instances import gated_violation, split_band_net

# (n_inputs, start, width, mix): the drop shared by 2 boxes (the issue's reproducer), by 3-4
# boxes, by many, and a band tilted into a second feature
BANDS = [
    (1, 0.3 + 1 / (3 * np.e), 0.4, 0.0),
    (1, 0.2 + 1 / (7 * np.e), 0.6, 0.0),
    (1, 0.05 + 1 / (11 * np.e), 0.9, 0.0),
    (2, 0.3 + 1 / (3 * np.e), 0.4, 0.0),
    (2, 0.25 + 1 / (5 * np.e), 0.5, 0.3),
]
BACKENDS = [
    ("crown", {"hybrid_milp": True, "n_samples": 1, "n_grid": 4, "max_boxes": 3}),
    ("crown", {"hybrid_milp": True, "n_samples": 1, "n_grid": 2, "max_boxes": 9}),
    ("crown", {"n_samples": 1, "n_grid": 2, "max_boxes": 64}),
    ("crown", {"split_dims": 6, "n_samples": 1, "n_grid": 2, "max_boxes": 512}),
    ("ouroboros", {"split_dims": 6, "n_samples": 1, "n_grid": 2, "max_boxes": 512}),
    ("ouroboros", {"n_samples": 1, "n_grid": 2, "max_boxes": 64}),
    ("ouroboros", {"relu_split": True, "n_samples": 1, "n_grid": 2, "max_boxes": 64}),
    ("crown", {"relu_split": True, "n_samples": 1, "n_grid": 2, "max_boxes": 9}),
    ("ouroboros", {"tolerance_form": "drop", "n_samples": 1, "n_grid": 2, "max_boxes": 4096}),
    ("crown", {"tolerance_form": "drop", "relu_split": True, "n_samples": 1, "n_grid": 2, "max_boxes": 512}),
    ("milp", {}),
    ("lirpa", {"n_samples": 1, "n_grid": 2, "max_boxes": 64}),
    ("lirpa", {"formulation": "difference", "n_samples": 1, "n_grid": 2, "max_boxes": 64}),
]


def _band_spec(n: int, width: float, drop: float, tolerance_factor: float) -> Monotonicity:
    return Monotonicity(
        feature=0, direction="increasing", region=Box(np.zeros(n), np.ones(n)), tolerance=tolerance_factor * drop
    )


@pytest.mark.parametrize("n, start, width, mix", BANDS)
@pytest.mark.parametrize("backend, options", BACKENDS, ids=lambda v: str(v))
def test_a_split_band_is_never_verified(backend, options, n, start, width, mix):
    drop = 0.04
    net = split_band_net(n, 0, start=start, width=width, drop=drop, mix=mix)
    spec = _band_spec(n, width, drop, 0.99)
    x = np.zeros(n)
    x[0] = start
    xp = x.copy()
    xp[0] = start + width
    assert spec.violation(net, Counterexample.make(x, xp)) > 0  # truly violated
    v = get_verifier(backend, **options).verify(net, spec, 20.0)
    assert v.status != Status.VERIFIED, v.message


def test_issue_reproducer_is_not_verified_by_the_hybrid():
    """The issue's exact call: ``milp`` alone falsifies; the hybrid must not prove it."""
    net = split_band_net()
    spec = _band_spec(1, 0.4, 0.04, 0.0396 / 0.04)
    hybrid = get_verifier("crown", hybrid_milp=True, n_samples=1, n_grid=4, max_boxes=3).verify(net, spec, 20.0)
    assert hybrid.status != Status.VERIFIED
    assert get_verifier("milp").verify(net, spec, 20.0).status == Status.FALSIFIED


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("backend, options", [("milp", {}), ("crown", {}), ("ouroboros", {}),
                                              ("crown", {"split_dims": 6})], ids=str)  # fmt: skip
def test_gated_violations_are_never_verified(backend, options, seed):
    """Violations behind gate units of weight 500, reachable only through a corner, with units
    whose pre-activation bounds lie within 1e-8 of 0: the old ``milp`` verified seed 2."""
    net, spec = gated_violation(seed=seed)
    t = np.linspace(-1.0, 1.0, 20001)
    line = np.ones((t.size, 4))
    line[:, 0] = t
    f = net.forward(line)[:, 0]
    assert (np.maximum.accumulate(f) - f).max() > spec.tolerance  # truly violated along the corner line
    v = get_verifier(backend, **options).verify(net, spec, 20.0)
    assert v.status != Status.VERIFIED, v.message
