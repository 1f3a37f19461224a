"""The Ouroboros backend and the shared splitting engine: soundness first, then usefulness."""

from __future__ import annotations

import numpy as np
import pytest

from verifiers import Box, Counterexample, Monotonicity, OutputBound, ReluNetwork, Status, get_verifier
from verifiers.bounds.interval import BatchForward
from verifiers.bounds.result import BoundResult
from verifiers.search.splitting import split_and_bound
from verifiers.search.witness import make_falsifier
from verifiers.testing.instances import (
    linnos_sized_net,
    monotone_net,
    planted_violation,
    random_relu_net,
    unit_box,
)

# --- helpers ---------------------------------------------------------------------------------------


def dense_monotonicity_violation(net: ReluNetwork, spec: Monotonicity, n_lines=400, n_grid=129, seed=0) -> float:
    """Largest ``sign * (f(x) - f(x'))`` over pairs on a dense grid of axis-parallel lines."""
    rng = np.random.default_rng(seed)
    lo, hi, i = spec.region.lower, spec.region.upper, spec.feature
    pts = rng.uniform(lo, hi, size=(n_lines, lo.size))
    t = np.linspace(lo[i], hi[i], n_grid)
    x = np.repeat(pts[:, None, :], n_grid, axis=1)
    x[:, :, i] = t
    v = spec.sign * net.forward(x.reshape(-1, lo.size))[:, 0].reshape(n_lines, n_grid)
    return float(np.max(np.maximum.accumulate(v, axis=1) - v))


def assert_witnesses_recheck(net, spec, verdict):
    for c in verdict.counterexamples:
        assert spec.violation(net, c) > 0
        assert spec.region.contains(c.x)
        if c.x_prime is not None:
            assert spec.region.contains(c.x_prime)


def assert_volumes(verdict):
    assert 0.0 <= verdict.verified_fraction <= 1.0 and 0.0 <= verdict.unresolved_fraction <= 1.0
    if verdict.status != Status.FALSIFIED:
        assert verdict.verified_fraction + verdict.unresolved_fraction == pytest.approx(1.0)


# --- planted violations and monotone networks -------------------------------------------------------


@pytest.mark.parametrize(
    "n, hidden, feature, direction, seed",
    [
        (2, (8, 8), 0, "increasing", 0),
        (3, (16, 16), 1, "decreasing", 1),
        (4, (12, 10, 8), 2, "increasing", 2),
        (5, (16, 16), 4, "decreasing", 3),
    ],
)
@pytest.mark.parametrize("order", ["breadth", "best"])
def test_planted_violation_is_found_inside_the_sub_box(n, hidden, feature, direction, seed, order):
    p = planted_violation(n, hidden, feature=feature, direction=direction, seed=seed)
    v = get_verifier("ouroboros", max_boxes=20_000, order=order, seed=seed).verify(p.net, p.spec, time_budget_s=30)
    assert v.status == Status.FALSIFIED, v.message
    assert_witnesses_recheck(p.net, p.spec, v)
    S = p.violation_box
    others = np.arange(n) != feature
    for c in v.counterexamples:
        x, xp = np.array(c.x), np.array(c.x_prime)
        # Outside S the network is monotone, so every violating segment crosses S ...
        assert np.all(x[others] >= S.lower[others]) and np.all(x[others] <= S.upper[others])
        assert xp[feature] >= S.lower[feature] and x[feature] <= S.upper[feature]
    # ... and the worst witness lies inside it.
    best = v.counterexamples[0]
    assert S.contains(best.x) and S.contains(best.x_prime)


def test_planted_violation_in_a_custom_sub_box_and_region():
    region = Box([-1.0, 0.0, 2.0], [1.0, 4.0, 3.0])
    sub = Box([0.0, 1.0, 2.5], [0.5, 2.0, 2.75])
    p = planted_violation(3, (10, 10), feature=1, region=region, sub_box=sub, seed=7)
    assert dense_monotonicity_violation(p.net, p.spec) > 0
    v = get_verifier("ouroboros").verify(p.net, p.spec)
    assert v.status == Status.FALSIFIED
    assert sub.contains(v.counterexamples[0].x) and sub.contains(v.counterexamples[0].x_prime)


@pytest.mark.parametrize("seed", range(4))
def test_monotone_by_construction_is_verified(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 7))
    hidden = tuple(int(h) for h in rng.integers(4, 24, size=int(rng.integers(1, 4))))
    inc, dec = (0,), (n - 1,)
    net = monotone_net(n, hidden, increasing=inc, decreasing=dec, seed=seed)
    region = Box(rng.uniform(-2, 0, n), rng.uniform(0.1, 2, n))
    verifier = get_verifier("ouroboros", max_boxes=5000)
    for feature, direction in ((0, "increasing"), (n - 1, "decreasing")):
        for tol in (0.0, 0.1):
            spec = Monotonicity(feature=feature, direction=direction, region=region, tolerance=tol)
            v = verifier.verify(net, spec)
            assert v.status == Status.VERIFIED, v.message
            assert v.verified_fraction == 1.0 and v.unresolved_fraction == 0.0 and v.best_bound >= 0
            assert not v.counterexamples


def test_monotone_verified_in_float32_and_best_first():
    net = monotone_net(4, (16, 16), increasing=(2,), seed=9)
    spec = Monotonicity(feature=2, direction="increasing", region=unit_box(4))
    for opts in ({"precision": "float32"}, {"order": "best"}):
        assert get_verifier("ouroboros", **opts).verify(net, spec).status == Status.VERIFIED


def test_fixed_feature_is_trivially_verified():
    region = Box([0, 0.5, 0], [1, 0.5, 1])
    v = get_verifier("ouroboros").verify(
        random_relu_net(3, (4, 4)), Monotonicity(feature=1, direction="increasing", region=region)
    )
    assert v.status == Status.VERIFIED and "fixed" in v.message


# --- many random networks: soundness of every VERIFIED and of every witness -------------------------


def random_problem(k: int):
    rng = np.random.default_rng(1000 + k)
    n = int(rng.integers(2, 4))
    net = random_relu_net(n, (8, 8), seed=1000 + k, bias_scale=0.5)
    if k % 5 == 0:  # some nearly monotone networks, so that proofs need splitting
        w = [np.array(a) for a in net.weights]
        w[0][0] = np.abs(w[0][0])
        w[1] = np.abs(w[1]) - 0.05
        w[2] = np.abs(w[2])
        net = ReluNetwork(w, net.biases)
    width = rng.choice([0.05, 0.2, 1.0])
    lo = rng.uniform(-1, 1 - width, n)
    region = Box(lo, lo + width * rng.uniform(0.5, 1.0, n))
    if k % 7 == 3:  # now and then an output bound instead
        c = net.forward(region.center)[0]
        spec = OutputBound(lower=c - rng.uniform(0, 2), upper=c + rng.uniform(0, 2), region=region)
    else:
        spec = Monotonicity(
            feature=int(rng.integers(0, n)),
            direction=str(rng.choice(["increasing", "decreasing"])),
            region=region,
            tolerance=float(rng.choice([0.0, 0.0, 0.01])),
        )
    return net, spec


def test_random_networks_verified_claims_hold_and_witnesses_recheck():
    verifier = get_verifier("ouroboros", max_boxes=3000, n_samples=256)
    counts = {s: 0 for s in Status}
    split_proofs = 0
    for k in range(300):
        net, spec = random_problem(k)
        v = verifier.verify(net, spec, time_budget_s=20)
        counts[v.status] += 1
        assert v.status != Status.ERROR, v.message
        assert_volumes(v)
        assert_witnesses_recheck(net, spec, v)
        if v.status == Status.FALSIFIED:
            assert v.counterexamples
        if v.status == Status.VERIFIED:
            split_proofs += v.boxes > 1
            if isinstance(spec, Monotonicity):
                assert dense_monotonicity_violation(net, spec, n_lines=100, n_grid=65, seed=k) <= spec.tolerance + 1e-12
            else:
                x = np.random.default_rng(k).uniform(spec.region.lower, spec.region.upper, (4000, net.n_inputs))
                y = net.forward(x)[:, 0]
                assert y.min() >= spec.lower and y.max() <= spec.upper
    # The test is only meaningful when both outcomes occur, and proofs that needed splitting.
    assert counts[Status.VERIFIED] >= 30 and counts[Status.FALSIFIED] >= 30, counts
    assert split_proofs >= 5, (split_proofs, counts)


# --- budgets -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [268, 164])  # true properties whose proof needs splitting
def test_small_budget_is_never_verified(k):
    net, spec = random_problem(k)
    full = get_verifier("ouroboros", max_boxes=200_000).verify(net, spec, time_budget_s=60)
    assert full.status == Status.VERIFIED and full.boxes > 8, (full.status, full.boxes)
    for max_boxes in (1, 2, full.boxes // 2):
        v = get_verifier("ouroboros", max_boxes=max_boxes).verify(net, spec)
        assert v.status == Status.UNKNOWN, (max_boxes, v.status)
        assert v.boxes <= max_boxes and v.best_bound < 0
        assert v.unresolved_fraction > 0 and v.verified_fraction < 1
        assert_volumes(v)
    v = get_verifier("ouroboros", batch_size=1).verify(net, spec, time_budget_s=1e-4)
    assert v.status == Status.TIMEOUT and v.unresolved_fraction > 0
    v.to_json(allow_nan=False)  # strict JSON even when nothing was bounded


def test_output_bound_both_ways():
    net = random_relu_net(3, (12, 12), seed=11)
    region = unit_box(3)
    x = np.random.default_rng(0).uniform(size=(20000, 3))
    y = net.forward(x)[:, 0]
    lo_true, hi_true = y.min(), y.max()
    verifier = get_verifier("ouroboros", max_boxes=50_000)
    holds = OutputBound(lower=lo_true - 0.05, upper=hi_true + 0.05, region=region)
    v = verifier.verify(net, holds)
    assert v.status == Status.VERIFIED and v.best_bound >= 0
    for fails in (
        OutputBound(lower=lo_true + 0.1 * (hi_true - lo_true), upper=None, region=region),
        OutputBound(lower=None, upper=hi_true - 0.1 * (hi_true - lo_true), region=region),
        OutputBound(lower=lo_true - 1.0, upper=hi_true - 0.05, region=region),
    ):
        v = verifier.verify(net, fails)
        assert v.status == Status.FALSIFIED
        assert_witnesses_recheck(net, fails, v)
        assert v.counterexamples[0].x_prime is None and v.counterexamples[0].f_x is not None


def test_tolerance_is_respected_by_witnesses():
    p = planted_violation(2, (8, 8), feature=0, seed=5)
    depth = dense_monotonicity_violation(p.net, p.spec, n_grid=1025)
    spec_easy = Monotonicity(feature=0, direction="increasing", region=p.spec.region, tolerance=2 * depth)
    v = get_verifier("ouroboros", max_boxes=2000).verify(p.net, spec_easy)
    assert v.status in (Status.UNKNOWN, Status.VERIFIED)  # no witness can beat the tolerance
    spec_hard = Monotonicity(feature=0, direction="increasing", region=p.spec.region, tolerance=0.5 * depth)
    v = get_verifier("ouroboros", max_boxes=2000).verify(p.net, spec_hard)
    assert v.status == Status.FALSIFIED and v.counterexamples[0].margin > 0


def test_linnos_sized_network_runs():
    net = linnos_sized_net(seed=0)
    spec = Monotonicity(feature=4, direction="increasing", region=unit_box(9))
    v = get_verifier("ouroboros", max_boxes=4096).verify(net, spec, time_budget_s=30)
    assert v.status in (Status.FALSIFIED, Status.UNKNOWN)
    assert_witnesses_recheck(net, spec, v)


# --- the splitting engine on its own --------------------------------------------------------------------


def test_engine_bookkeeping_on_an_analytic_objective():
    """Objective ``x0 - 0.25`` on ``[0, 1] x [0, 1] x {0.3}``: proven exactly where ``x0 >= 0.25``."""
    region = Box([0.0, 0.0, 0.3], [1.0, 1.0, 0.3])
    seen = []

    def bound(lo, hi):
        seen.append(lo.shape)
        return BoundResult(lower=lo[:, 0] - 0.25, split_score=np.tile([2.0, 1.0, 5.0], (len(lo), 1)))

    res = split_and_bound(region, bound, None, batch_size=8, max_boxes=200, time_budget_s=10)
    assert all(s == (8, 3) for s in seen)  # always padded to the batch size
    assert res.status == Status.UNKNOWN and res.boxes <= 200
    assert res.verified_fraction == 0.75  # dyadic splits along x0 prove [0.25, 1] exactly
    assert res.verified_fraction + res.unresolved_fraction == pytest.approx(1.0)
    assert np.all(res.unresolved_lower[:, 2] == 0.3) and np.all(res.unresolved_upper[:, 2] == 0.3)
    assert np.all(res.unresolved_lower[:, 0] < 0.25)
    assert res.best_bound == pytest.approx(-0.25)
    assert res.unresolved_volume.sum() == pytest.approx(res.unresolved_fraction)


def test_engine_falsifier_and_check():
    region = unit_box(2)

    def bound(lo, hi):
        return BoundResult(lower=np.full(len(lo), -1.0), split_score=hi - lo)

    calls = []

    def falsify(lo, hi, rng, candidates=None):
        calls.append(len(lo))
        return [Counterexample.make(lo[0])]

    res = split_and_bound(region, bound, falsify, batch_size=4, max_boxes=64, time_budget_s=10, check_fn=lambda c: -1.0)
    assert res.status == Status.UNKNOWN and not res.counterexamples and len(calls) >= 3
    res = split_and_bound(region, bound, falsify, batch_size=4, max_boxes=64, time_budget_s=10, check_fn=lambda c: 0.5)
    assert res.status == Status.FALSIFIED and res.boxes == 1 and res.counterexamples[0].margin == 0.5
    # A three-argument falsifier (no candidates parameter) is fine too.
    res = split_and_bound(
        region, bound, lambda lo, hi, rng: [Counterexample.make(lo[0])], batch_size=4, max_boxes=8, time_budget_s=10
    )
    assert res.status == Status.FALSIFIED


def test_witness_search_finds_tolerance_violations_far_apart():
    # f(x) = x0 - 3 relu(x0 - 0.4) + 3 relu(x0 - 0.6): a dip of 0.4 between 0.4 and 0.6.
    w1 = np.array([[1.0, 1.0, 1.0]])
    net = ReluNetwork([w1, np.array([[1.0], [-3.0], [3.0]])], [np.array([0.0, -0.4, -0.6]), np.zeros(1)])
    spec = Monotonicity(feature=0, direction="increasing", region=unit_box(1), tolerance=0.35)
    found = make_falsifier(net, spec, n_samples=16)(np.zeros((1, 1)), np.ones((1, 1)), np.random.default_rng(0))
    assert found and spec.violation(net, found[0]) > 0
    assert found[0].x[0] == pytest.approx(0.4, abs=0.02) and found[0].x_prime[0] == pytest.approx(0.6, abs=0.02)


def test_batch_forward_is_reused_across_sizes():
    net = random_relu_net(2, (4,), seed=0)
    f = BatchForward(net, chunk=64)
    assert f(np.zeros((0, 2))).shape == (0, 1)
    np.testing.assert_allclose(f(np.ones((130, 2))), net.forward(np.ones((130, 2))))



def test_a_first_bound_call_that_outlasts_the_compile_budget_is_a_timeout():
    """Compilation is bounded: a first call (compiling, say) that takes 3 s on a 0.3 s compile
    budget ends the search as TIMEOUT at that budget, not after the call."""
    import time

    def slow_bound(lo, hi):
        time.sleep(3.0)
        return BoundResult(lower=np.zeros(len(lo)), split_score=hi - lo)

    t0 = time.perf_counter()
    res = split_and_bound(Box([0.0], [1.0]), slow_bound, None, batch_size=4, max_boxes=100, time_budget_s=10,
                          compile_budget_s=0.3)  # fmt: skip
    assert time.perf_counter() - t0 < 2.0
    assert res.status == Status.TIMEOUT and "compile_budget_s" in res.message
    assert res.unresolved_fraction == 1.0 and res.verified_fraction == 0.0 and res.boxes == 0


def test_a_slow_first_call_is_reported_and_not_charged_to_the_search_budget():
    """A cold call (slow first bound) searches as long as a warm one: the 0.5 s first call is
    reported as compile_s, and the search after it still proves all its boxes on a 0.3 s budget."""
    import time

    calls = []

    def bound(lo, hi):
        if not calls:
            time.sleep(0.5)
        calls.append(1)
        return BoundResult(lower=np.where(hi[:, 0] - lo[:, 0] <= 0.25, 1.0, -1.0), split_score=hi - lo)

    res = split_and_bound(Box([0.0], [1.0]), bound, None, batch_size=1, max_boxes=100, time_budget_s=0.3)
    assert res.status == Status.VERIFIED, res.message
    assert res.compile_s >= 0.5 and res.boxes == 7
    v = get_verifier("ouroboros").verify(
        ReluNetwork([np.ones((1, 2)), np.ones((2, 1))], [np.zeros(2), np.zeros(1)]),
        Monotonicity(feature=0, direction="increasing", region=Box([0.0], [1.0])),
    )
    assert v.status == Status.VERIFIED and 0 < v.compile_s <= v.wall_time_s
