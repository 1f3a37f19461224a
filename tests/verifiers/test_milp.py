"""The exact MILP backend: its optima against brute-force enumeration, its verdicts, its kinks."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.optimize import linprog

from verifiers import Box, Monotonicity, OutputBound, ReluNetwork, Status, get_verifier
from verifiers.milp import BoxMilp, pattern_affine, segment_in_pattern
from verifiers.testing.instances import monotone_net, planted_violation, random_relu_net


def pattern_regions(net: ReluNetwork, lo, hi):
    """Every activation pattern whose closed region meets the box, with its affine maps: the
    brute-force counterpart of the MILP (an LP feasibility problem per pattern)."""
    sizes = [w.shape[1] for w in net.weights[:-1]]
    for bits in itertools.product([0.0, 1.0], repeat=sum(sizes)):
        pattern = np.split(np.asarray(bits), np.cumsum(sizes)[:-1])
        maps, grad = pattern_affine(net, pattern)
        a_ub = np.vstack([-(a * np.where(p > 0.5, 1.0, -1.0)[None, :]).T for (a, _), p in zip(maps, pattern)])
        b_ub = np.concatenate([np.where(p > 0.5, 1.0, -1.0) * c for (_, c), p in zip(maps, pattern)])
        res = linprog(np.zeros(len(lo)), A_ub=a_ub, b_ub=b_ub, bounds=list(zip(lo, hi)), method="highs")
        if res.status == 0:
            yield pattern, maps, grad


@pytest.mark.parametrize("seed", range(12))
def test_derivative_minimum_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    net = random_relu_net(3, (3, 3), seed=seed, bias_scale=0.5)
    lo = rng.uniform(-1.0, 0.0, 3)
    hi = lo + rng.uniform(0.3, 1.5, 3)
    feature, sign = int(rng.integers(3)), float(rng.choice([-1.0, 1.0]))
    brute = min(sign * grad[feature] for _, _, grad in pattern_regions(net, lo, hi))
    res = BoxMilp(net, lo, hi, feature=feature).min_derivative(sign, time_limit=20.0, rel_gap=0.0)
    assert res.status == "optimal"
    assert res.objective == pytest.approx(brute, abs=1e-7)


@pytest.mark.parametrize("seed", range(6))
def test_difference_minimum_is_a_real_pair_below_every_sampled_pair(seed):
    rng = np.random.default_rng(seed)
    net = random_relu_net(3, (6, 6), seed=50 + seed, bias_scale=0.5)
    lo, hi = np.zeros(3), np.ones(3)
    feature, sign = int(rng.integers(3)), float(rng.choice([-1.0, 1.0]))
    res = BoxMilp(net, lo, hi, feature=feature).min_difference(sign, time_limit=20.0, rel_gap=0.0)
    assert res.status == "optimal"
    # the optimum is attained by the returned pair ...
    fx, fxp = net.forward(np.stack([res.x, res.x_prime]))[:, 0]
    assert sign * (fxp - fx) == pytest.approx(res.objective, abs=1e-7)
    assert res.x_prime[feature] >= res.x[feature] and np.allclose(
        np.delete(res.x, feature), np.delete(res.x_prime, feature)
    )
    # ... and no sampled pair does better
    x = rng.uniform(lo, hi, size=(2000, 3))
    xp = x.copy()
    xp[:, feature] = rng.uniform(x[:, feature], hi[feature])
    drops = sign * (net.forward(xp)[:, 0] - net.forward(x)[:, 0])
    assert drops.min() >= res.objective - 1e-9


def test_output_extremes_equal_brute_force():
    net = random_relu_net(2, (3, 3), seed=3, bias_scale=0.5)
    lo, hi = np.array([-1.0, -0.5]), np.array([1.0, 1.5])
    best = np.inf
    for pattern, maps, _ in pattern_regions(net, lo, hi):
        # min of the pattern's affine output over its region, by LP
        a_last, c_last = maps[-1]
        p = pattern[-1]
        w = net.weights[-1][:, 0]
        cost = (a_last * p[None, :]) @ w
        a_ub = np.vstack([-(a * np.where(q > 0.5, 1.0, -1.0)[None, :]).T for (a, _), q in zip(maps, pattern)])
        b_ub = np.concatenate([np.where(q > 0.5, 1.0, -1.0) * c for (_, c), q in zip(maps, pattern)])
        r = linprog(cost, A_ub=a_ub, b_ub=b_ub, bounds=list(zip(lo, hi)), method="highs")
        best = min(best, r.fun + (c_last * p) @ w + net.biases[-1][0])
    res = BoxMilp(net, lo, hi).min_output(1.0, time_limit=20.0)
    assert res.objective == pytest.approx(best, abs=1e-7)


def test_degenerate_kink_patterns_do_not_falsify():
    """f = relu(x) - relu(x) is constant, but at x = 0 the MILP may switch one copy on and the other
    off (slope -1): the pattern's region has no extent along e_0, so it is excluded and never
    falsifies. The remaining minimum is exactly 0, which a floating-point solver cannot tell from
    -1e-8: with tolerance 0 the MILP leaves it undecided. With a tolerance the derivative claim
    (degenerate pattern excluded) cannot be confirmed rigorously (the confirmation keeps every
    pattern), so the difference MILP over the whole region decides, and is confirmed."""
    net = ReluNetwork([np.array([[1.0, 1.0], [0.0, 0.0]]), np.array([[1.0], [-1.0]])], [np.zeros(2), np.zeros(1)])
    region = Box([-1.0, 0.0], [1.0, 1.0])
    spec = Monotonicity(feature=0, direction="increasing", region=region)
    bm = BoxMilp(net, region.lower, region.upper, feature=0)
    assert bm.min_derivative(1.0, time_limit=10.0, rel_gap=0.0).objective == pytest.approx(-1.0)
    seg = segment_in_pattern(net, [np.array([1.0, 0.0])], region.lower, region.upper, 0)
    assert seg is not None and seg[1] == pytest.approx(0.0, abs=1e-9)
    v = get_verifier("milp").verify(net, spec, 20.0)
    assert v.status == Status.UNKNOWN and "within abs_tol" in v.message
    tolerant = Monotonicity(feature=0, direction="increasing", region=region, tolerance=1e-3)
    v = get_verifier("milp").verify(net, tolerant, 20.0)
    assert v.status == Status.VERIFIED and "difference MILP" in v.message and "confirmed" in v.message


def test_planted_violation_is_falsified_inside_its_sub_box():
    pv = planted_violation(3, (6, 6), feature=1, seed=2)
    v = get_verifier("milp").verify(pv.net, pv.spec, 30.0)
    assert v.status == Status.FALSIFIED
    assert all(pv.spec.violation(pv.net, c) > 0 for c in v.counterexamples)
    assert all(pv.violation_box.contains(c.x) or pv.violation_box.contains(c.x_prime) for c in v.counterexamples)


def test_monotone_network_is_verified():
    net = monotone_net(3, (6, 6), increasing=(0,), decreasing=(2,), seed=1)
    for feature, direction in ((0, "increasing"), (2, "decreasing")):
        spec = Monotonicity(feature=feature, direction=direction, region=Box(np.zeros(3), np.ones(3)))
        assert get_verifier("milp").verify(net, spec, 20.0).status == Status.VERIFIED


def test_verified_by_milp_not_by_the_linear_bound():
    """A spec the plain linear bound cannot prove on the whole region: the MILP decides it."""
    base = random_relu_net(3, (6, 6), seed=21, bias_scale=0.5)
    region = Box(np.zeros(3), np.ones(3))
    exact = BoxMilp(base, region.lower, region.upper, feature=0).min_derivative(1.0, time_limit=20.0, rel_gap=0.0)
    # shift the slope along x_0 so that the exact minimum is +0.01: f + a x_0 through an extra unit
    a = 0.01 - exact.objective
    ws = [
        np.hstack([base.weights[0], np.eye(3)[:, :1]]),
        np.vstack([np.hstack([base.weights[1], np.zeros((6, 1))]), np.eye(7)[6:]]),
    ]
    ws.append(np.vstack([base.weights[2], [[a]]]))
    net = ReluNetwork(ws, [np.r_[base.biases[0], 1.0], np.r_[base.biases[1], 0.0], base.biases[2] - a])
    spec = Monotonicity(feature=0, direction="increasing", region=region)
    bm = BoxMilp(net, region.lower, region.upper, feature=0)
    assert bm.derivative_lower < 0  # not provable by the plain bound alone
    v = get_verifier("milp").verify(net, spec, 30.0)
    assert v.status == Status.VERIFIED and v.best_bound is not None and v.best_bound >= 0.0


def test_tolerance_form_is_exact():
    net = random_relu_net(3, (6, 6), seed=8, bias_scale=0.5)
    region = Box(np.zeros(3), np.ones(3))
    worst = (
        -BoxMilp(net, region.lower, region.upper, feature=1).min_difference(1.0, time_limit=20.0, rel_gap=0.0).objective
    )
    assert worst > 0.02
    milp = get_verifier("milp")
    above = Monotonicity(feature=1, direction="increasing", region=region, tolerance=worst + 1e-3)
    below = Monotonicity(feature=1, direction="increasing", region=region, tolerance=worst - 1e-3)
    assert milp.verify(net, above, 30.0).status == Status.VERIFIED
    v = milp.verify(net, below, 30.0)
    assert v.status == Status.FALSIFIED and v.worst_margin > 0


def test_output_bound_verdicts():
    net = random_relu_net(3, (6, 6), seed=4)
    region = Box(np.zeros(3), np.ones(3))
    bm = BoxMilp(net, region.lower, region.upper)
    fmin = bm.min_output(1.0, time_limit=20.0).objective
    milp = get_verifier("milp")
    assert milp.verify(net, OutputBound(lower=fmin - 1e-3, upper=None, region=region), 20.0).status == Status.VERIFIED
    v = milp.verify(net, OutputBound(lower=fmin + 1e-3, upper=None, region=region), 20.0)
    assert v.status == Status.FALSIFIED and v.worst_margin == pytest.approx(1e-3, abs=1e-6)


def test_tiny_time_budget_is_never_verified():
    pv = planted_violation(3, (6, 6), feature=0, seed=9)
    v = get_verifier("milp").verify(pv.net, pv.spec, 1e-4)
    assert v.status in (Status.TIMEOUT, Status.UNKNOWN, Status.FALSIFIED)


def test_bad_options():
    for bad in ({"abs_tol": -1.0}, {"threads": -1}, {"nope": 1}):
        with pytest.raises(ValueError):
            get_verifier("milp", **bad)


def test_a_violation_smaller_than_the_solver_tolerance_is_never_verified():
    """d f / d x_0 = -5e-8 everywhere: inside HiGHS's tolerance, but a real violation."""
    net = ReluNetwork([np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[-5e-8], [1.0]])],
                      [np.full(2, 2.0), np.zeros(1)])  # fmt: skip
    spec = Monotonicity(feature=0, direction="increasing", region=Box([-1.0, -1.0], [1.0, 1.0]))
    v = get_verifier("milp").verify(net, spec, 20.0)
    assert v.status != Status.VERIFIED
    assert v.status == Status.FALSIFIED and v.counterexamples[0].margin == pytest.approx(1e-7, rel=1e-3)
