"""The drop budget (:mod:`verifiers.search.drop_budget`): it proves tolerances that the slope form
cannot (a narrow pocket of steep descent whose drop fits in ``t``) and never one that is violated."""

from __future__ import annotations

import numpy as np
import pytest

from verifiers import Box, Counterexample, Monotonicity, ReluNetwork, Status, get_verifier
from verifiers.search.drop_budget import heaviest_line


def dip_net(n: int, start: float = 0.5, width: float = 5e-4, depth: float = 1.0, slope: float = 0.01) -> ReluNetwork:
    """``f(x) = slope * x_0`` except on ``[start, start + width]``, where it falls at ``depth - slope``:
    a drop of ``(depth - slope) * width`` that no box containing the pocket can prove in slope form."""
    w1 = np.zeros((n, 3))
    w1[0] = 1.0
    return ReluNetwork([w1, np.array([[slope], [-depth], [depth]])], [np.array([0.0, -start, -start - width]), np.zeros(1)])


@pytest.mark.parametrize("backend", ["ouroboros", "crown"])
def test_a_narrow_pocket_within_the_tolerance_is_proven_only_by_the_drop_budget(backend):
    net, drop = dip_net(1), (1.0 - 0.01) * 5e-4
    spec = Monotonicity(feature=0, direction="increasing", region=Box([0.0], [1.0]), tolerance=4 * drop)
    slope = get_verifier(backend, max_boxes=20_000).verify(net, spec, 20)
    dropped = get_verifier(backend, max_boxes=20_000, tolerance_form="drop").verify(net, spec, 20)
    assert slope.status == Status.UNKNOWN
    assert dropped.status == Status.VERIFIED and "drop budget" in dropped.message, dropped.message
    assert get_verifier("milp").verify(net, spec, 20).status == Status.VERIFIED


@pytest.mark.parametrize("n, factor", [(1, 0.97), (1, 0.5), (2, 0.97)])
def test_a_pocket_deeper_than_the_tolerance_is_never_proven(n, factor):
    net = dip_net(n)
    drop = (1.0 - 0.01) * 5e-4
    spec = Monotonicity(feature=0, direction="increasing", region=Box(np.zeros(n), np.ones(n)), tolerance=factor * drop)
    x, xp = np.full(n, 0.5), np.full(n, 0.5)
    xp[0] += 5e-4
    assert spec.violation(net, Counterexample.make(x, xp)) > 0
    for backend in ("ouroboros", "crown"):
        v = get_verifier(backend, max_boxes=20_000, tolerance_form="drop", n_samples=1, n_grid=2).verify(net, spec, 20)
        assert v.status != Status.VERIFIED, v.message


def test_heaviest_line_is_the_heaviest_set_of_boxes_one_line_crosses():
    """Boxes along feature 0 that one line crosses add up; boxes side by side in another
    coordinate (touching faces only) do not, and the cheap per-dimension bound never undercuts
    the exact neighbourhood."""
    lo = np.array([[0.0, 0.0], [0.5, 0.0], [0.0, 0.5], [0.25, 0.25]])
    hi = np.array([[0.5, 0.5], [1.0, 0.5], [0.5, 1.0], [0.5, 0.75]])
    w = np.array([1.0, 2.0, 4.0, 8.0])
    free = np.array([True, True])
    # in x1 (open intervals) boxes 0 and 2 only touch; the heaviest line (x1 in (0.5, 0.75)) crosses
    # boxes 2 and 3 (12); the bound is box 3's neighbourhood, all four (15)
    assert heaviest_line(lo, hi, w, 0, free, budget=np.inf) >= 15.0
    assert heaviest_line(lo, hi, w, 0, free, budget=0.0) == pytest.approx(15.0)
    rng = np.random.default_rng(0)
    for _ in range(20):
        a = rng.random((60, 3))
        b = a + rng.random((60, 3)) * 0.3
        ww = rng.random(60)
        exact = max(ww[np.all((a[:, 1:] < b[k, 1:]) & (a[k, 1:] < b[:, 1:]), axis=1)].sum() for k in range(60))
        assert heaviest_line(a, b, ww, 0, np.ones(3, bool), budget=0.0) >= exact
        assert heaviest_line(a, b, ww, 0, np.ones(3, bool), budget=np.inf) >= exact


def test_the_drop_budget_agrees_with_milp_on_random_networks():
    rng = np.random.default_rng(3)
    proven = 0
    for _ in range(25):
        n, h = 2, 6
        net = ReluNetwork([rng.normal(size=(n, h)), rng.normal(size=(h, 1))], [rng.normal(size=h), np.zeros(1)])
        spec = Monotonicity(feature=0, direction="increasing", region=Box(-np.ones(n), np.ones(n)),
                            tolerance=float(rng.choice([0.05, 0.2, 0.5])))  # fmt: skip
        v = get_verifier("ouroboros", max_boxes=4096, tolerance_form="drop").verify(net, spec, 20)
        if v.status == Status.VERIFIED:
            proven += 1
            assert get_verifier("milp").verify(net, spec, 30).status != Status.FALSIFIED
    assert proven >= 3


def test_heaviest_line_never_misses_the_heaviest_box_among_many():
    """More boxes over the budget than are checked exactly: the heaviest is still counted (a
    review found the first MAX_POCKETS by index checked, the heaviest skipped)."""
    lo, hi = np.zeros((5000, 2)), np.ones((5000, 2))
    lo[:, 1], hi[:, 1] = np.arange(5000), np.arange(5000) + 1.0
    w = np.ones(5000)
    w[4800] = 100.0
    assert heaviest_line(lo, hi, w, 0, np.array([True, True]), budget=0.0) >= 100.0
    assert heaviest_line(lo[:0], hi[:0], w[:0], 0, np.array([True, True])) == 0.0


def test_the_slope_allowance_times_the_exact_width_never_exceeds_the_tolerance():
    """The width upper - lower rounds to nearest; the allowance is taken from it rounded up (a
    review found a region where allowance x exact width exceeded t by 5.5e-19)."""
    from fractions import Fraction

    lo, hi, t = -8.262233467711652e-16, 0.5107319381385957, 0.061846935373572776
    spec = Monotonicity(feature=0, direction="increasing", region=Box([lo], [hi]), tolerance=t)
    assert Fraction(spec.slope_allowance) * (Fraction(hi) - Fraction(lo)) <= Fraction(t)
