"""Incremental verification (:mod:`verifiers.search.frontier`): a search seeded with the last
search's leaves decides what a fresh search decides, tiles its region, and bounds fewer boxes."""

from __future__ import annotations

import numpy as np
import pytest

from verifiers import Box, Monotonicity, ReluNetwork, Status, get_verifier
from verifiers.search.frontier import make_frontier
from verifiers.search.splitting import split_and_bound


def _monotone_net(rng: np.random.Generator, n: int = 4, h: int = 16) -> ReluNetwork:
    """Positive paths from feature 0 with some negative weights: the interval chain is loose, so
    proofs (when they exist) need many boxes, and some specs are false."""
    w0 = rng.normal(size=(n, h))
    w0[0] = np.abs(w0[0]) - 2 * rng.random(h) * (rng.random(h) < 0.3)
    w1 = np.abs(rng.normal(size=(h, h))) - 2 * rng.random((h, h)) * (rng.random((h, h)) < 0.3)
    w2 = np.abs(rng.normal(size=(h, 1)))
    return ReluNetwork([w0, w1, w2], [rng.normal(size=h), rng.normal(size=h), np.zeros(1)])


def _perturbed(net: ReluNetwork, rng: np.random.Generator, scale: float) -> ReluNetwork:
    return ReluNetwork([w + scale * rng.normal(size=w.shape) for w in net.weights],
                       [b + scale * rng.normal(size=b.shape) for b in net.biases])  # fmt: skip


def _slope_bound(net: ReluNetwork, feature: int):
    """A deliberately loose bound (interval chain) so that proofs need many boxes."""
    from verifiers.bounds.interval import gradient_bounds
    from verifiers.bounds.result import BoundResult

    def bound(lo, hi):
        return BoundResult(lower=gradient_bounds(net, lo, hi, feature)[0][:, 0], split_score=hi - lo)

    return bound


def test_the_leaves_of_a_search_tile_its_region_whatever_its_outcome():
    rng = np.random.default_rng(0)
    region = Box(-np.ones(4), np.ones(4))
    for budget in (1, 7, 1000):  # stopped by the box budget, and run to the end
        net = _perturbed(_monotone_net(rng), rng, 0.3)
        res = split_and_bound(region, _slope_bound(net, 0), batch_size=4, max_boxes=budget, time_budget_s=30,
                              keep_frontier=True)  # fmt: skip
        f = res.frontier
        assert f is not None and f.tiles(region)
        assert abs(f.volume.sum() - 1.0) < 1e-12
        assert np.all(f.lower >= region.lower) and np.all(f.upper <= region.upper)
        # the leaves are the proven volume plus the unresolved boxes
        assert f.volume.sum() == pytest.approx(res.verified_fraction + res.unresolved_volume.sum())


def test_a_frontier_of_another_region_or_an_incomplete_one_is_not_used():
    region = Box(np.zeros(2), np.ones(2))
    half = (np.zeros((1, 2)), np.array([[0.5, 1.0]]), np.array([0.5]))
    assert make_frontier(region, [half]) is None  # half the region: not a tiling
    whole = make_frontier(region, [half, (np.array([[0.5, 0.0]]), np.ones((1, 2)), np.array([0.5]))])
    assert whole is not None and whole.tiles(region)
    assert not whole.tiles(Box(np.zeros(2), np.array([1.0, 2.0])))


def test_seeded_searches_decide_as_fresh_ones_and_never_prove_a_falsified_spec():
    """Round after round of perturbed weights: the seeded verdict is never VERIFIED where a
    fresh search finds a witness, and it proves every spec a fresh search proves."""
    rng = np.random.default_rng(1)
    region = Box(np.zeros(4), np.ones(4))
    disagreements = 0
    for trial in range(6):
        base = _monotone_net(rng)
        fresh_v = get_verifier("ouroboros", max_boxes=20_000, n_samples=256)
        inc_v = get_verifier("ouroboros", max_boxes=20_000, n_samples=256, incremental=True)
        spec = Monotonicity(0, "increasing", region)
        for step in range(4):
            net = _perturbed(base, rng, 0.15 * step)
            fresh = fresh_v.verify(net, spec, time_budget_s=20)
            inc = inc_v.verify(net, spec, time_budget_s=20)
            if fresh.status == Status.FALSIFIED:
                assert inc.status != Status.VERIFIED, (trial, step)
            if Status.VERIFIED in (fresh.status, inc.status):
                disagreements += fresh.status != inc.status
    assert disagreements == 0


def test_a_seeded_search_bounds_fewer_boxes_than_a_fresh_one():
    rng = np.random.default_rng(2)
    region = Box(np.zeros(4), np.ones(4))
    for _ in range(200):  # a network whose proof needs a deep tree
        net = _monotone_net(rng)
        first = split_and_bound(region, _slope_bound(net, 0), batch_size=16, max_boxes=50_000, time_budget_s=30,
                                keep_frontier=True)  # fmt: skip
        if first.status == Status.VERIFIED and first.boxes > 100:
            break
    else:
        pytest.fail("no network needed a deep proof")
    moved = _perturbed(net, rng, 1e-4)
    fresh = split_and_bound(region, _slope_bound(moved, 0), batch_size=16, max_boxes=50_000, time_budget_s=30)
    seeded = split_and_bound(region, _slope_bound(moved, 0), batch_size=16, max_boxes=50_000, time_budget_s=30,
                             frontier=first.frontier)  # fmt: skip
    assert fresh.status == seeded.status == Status.VERIFIED
    assert seeded.boxes < 0.75 * fresh.boxes


def test_incremental_is_a_checked_option():
    with pytest.raises(ValueError, match="incremental"):
        get_verifier("crown", incremental="yes")
