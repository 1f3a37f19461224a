"""``split_dims``: cutting a box along several dimensions at once tiles it exactly, keeps every
verdict sound, and makes a narrow, deep search cost fewer bound calls."""

from __future__ import annotations

import numpy as np
import pytest

from verifiers import Box, Monotonicity, ReluNetwork, Status, get_verifier
from verifiers.backends.crown import make_crown_monotonicity_bound_fn
from verifiers.bounds.linear import LinearBounder
from verifiers.search.pool import grid_children
from verifiers.search.splitting import split_and_bound
from verifiers.testing.instances import planted_violation


def test_grid_children_tile_the_box():
    rng = np.random.default_rng(0)
    lo = rng.uniform(-1, 0, 5)
    hi = lo + rng.uniform(0.1, 2, 5)
    dims = np.array([3, 0, 4])
    c_lo, c_hi = grid_children(lo, hi, dims)
    assert len(c_lo) == 8 and np.all(c_lo < c_hi)
    assert np.isclose(np.prod(c_hi - c_lo, axis=1).sum(), np.prod(hi - lo))  # volumes add up...
    for a in range(8):  # ...and no two children overlap, so together they are the box
        for b in range(a + 1, 8):
            overlap = np.clip(np.minimum(c_hi[a], c_hi[b]) - np.maximum(c_lo[a], c_lo[b]), 0, None)
            assert np.prod(overlap) == 0
    x = rng.uniform(lo, hi, size=(2000, 5))
    inside = ((x[:, None] >= c_lo[None]) & (x[:, None] <= c_hi[None])).all(axis=2)
    assert inside.any(axis=1).all()
    assert np.array_equal(np.delete(c_lo, dims, axis=1), np.tile(np.delete(lo, dims), (8, 1)))  # others untouched


def _strip_net() -> ReluNetwork:
    """``f = 2 relu(s - 1) - relu(s - 1.2)``, ``s = x0 + x1``: monotone in ``x0`` (slope 0, 2 or 1),
    but over a box that straddles both lines the units' derivatives are bounded apart, so a proof
    needs boxes that separate the lines: a narrow, deep search."""
    w0 = np.array([[1.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
    return ReluNetwork([w0, np.array([[2.0], [-1.0]])], [np.array([-1.0, -1.2]), np.zeros(1)])


def test_a_narrow_search_takes_fewer_bound_calls_and_proves_the_same():
    net = _strip_net()
    spec = Monotonicity(feature=0, direction="increasing", region=Box(np.zeros(3), np.ones(3)))
    fn = make_crown_monotonicity_bound_fn(LinearBounder(net, batch_size=64), spec, iters=0)
    plain = split_and_bound(spec.region, fn, batch_size=64, max_boxes=100_000, time_budget_s=60)
    multi = split_and_bound(spec.region, fn, batch_size=64, max_boxes=100_000, time_budget_s=60, split_dims=6)
    assert plain.status == multi.status == Status.VERIFIED
    assert plain.verified_fraction == multi.verified_fraction == 1.0
    assert multi.batches < plain.batches


@pytest.mark.parametrize("backend", ["crown", "ouroboros"])
@pytest.mark.parametrize("seed", range(3))
def test_a_planted_violation_is_never_verified(backend, seed):
    pv = planted_violation(3, (8, 8), seed=seed)
    v = get_verifier(backend, split_dims=6, max_boxes=20_000).verify(pv.net, pv.spec, 20.0)
    assert v.status != Status.VERIFIED, v.message
    assert v.verified_fraction < 1.0
