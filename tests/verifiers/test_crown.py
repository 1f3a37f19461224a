"""The crown backend and its JAX linear bounds: soundness against exact MILP minima first.

Two network shapes only (each new shape costs a few seconds of XLA compilation): 4 inputs with
two hidden layers of 8, and 3 inputs with three hidden layers of 6 (the deeper code path).
"""

from __future__ import annotations

import numpy as np
import pytest

from verifiers import Box, Monotonicity, OutputBound, ReluNetwork, Status, get_verifier
from verifiers.bounds.linear import LinearBounder
from verifiers.milp import BoxMilp
from verifiers.testing.instances import monotone_net, planted_violation, random_relu_net

SHAPES = [(4, (8, 8)), (3, (6, 6, 6))]
BATCH = 64


def random_boxes(rng: np.random.Generator, n_boxes: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    centre = rng.uniform(0.1, 0.9, size=(n_boxes, n))
    half = rng.uniform(0.02, 0.4, size=(n_boxes, n))
    half[rng.random((n_boxes, n)) < 0.15] = 0.0  # some fixed (zero-width) inputs
    return centre - half, centre + half


def sampled_slopes(net: ReluNetwork, lo, hi, feature, sign, rng, n=400) -> np.ndarray:
    x = rng.uniform(lo, hi, size=(n, lo.size))
    x[: n // 4] = np.where(rng.random((n // 4, lo.size)) < 0.5, lo, hi)  # corners too
    return sign * net.gradient(x, feature)


def assert_internal_bounds_hold(net: ReluNetwork, bm: BoxMilp, lo, hi, feature, rng, n=300) -> None:
    """Sampled pre-activations z_k and derivatives v_k = dz_k/dx_feature lie inside the bounds."""
    x = rng.uniform(lo, hi, size=(n, lo.size))
    h, v = x, np.broadcast_to(net.weights[0][feature], (n, net.weights[0].shape[1]))
    for k, (w, b) in enumerate(zip(net.weights[:-1], net.biases[:-1])):
        z = h @ w + b
        if k:
            vl, vu = bm.vbounds[k - 1]
            assert np.all(v >= vl) and np.all(v <= vu)
        assert np.all(z >= bm.lows[k]) and np.all(z <= bm.ups[k])
        v = (v * (z > 0)) @ net.weights[k + 1]
        h = np.maximum(z, 0.0)


# --- soundness of the bounds ------------------------------------------------------------------------


@pytest.mark.parametrize("n, hidden", SHAPES)
def test_derivative_bounds_never_exceed_the_exact_minimum(n, hidden):
    """Over ~100 random (network, box, feature, direction) per shape: interval <= CROWN-optimised
    <= exact MILP minimum, and every sampled slope lies above the bound."""
    rng = np.random.default_rng(7)
    checked = tighter = 0
    gap_crown, gap_ibp = [], []
    for seed in range(13):
        net = random_relu_net(n, hidden, seed=100 + seed, bias_scale=0.3)
        bounder = LinearBounder(net, batch_size=BATCH)
        lo, hi = random_boxes(rng, 8, n)
        feature = int(rng.integers(n))
        sign = float(rng.choice([-1.0, 1.0]))
        hi[:, feature] = np.maximum(hi[:, feature], lo[:, feature] + 0.05)
        opt = bounder.derivative(lo, hi, feature, sign, iters=10)
        assert np.all(opt.lower >= opt.plain_lower)  # the optimisation starts from the plain bound
        assert np.all(opt.plain_lower >= opt.interval_lower)
        single = LinearBounder(net, batch_size=1)
        for b in range(len(lo)):
            exact = BoxMilp(net, lo[b], hi[b], feature=feature, bounder=single, sign=sign)
            res = exact.min_derivative(sign, time_limit=20.0, rel_gap=0.0)
            assert res.status == "optimal"
            assert opt.lower[b] <= res.objective + 1e-9, (seed, b, opt.lower[b], res.objective)
            # the MILP's own bounds: the plain bound with linear bounds of the intermediate v_k
            assert exact.derivative_lower <= res.objective + 1e-9
            assert sampled_slopes(net, lo[b], hi[b], feature, sign, rng).min() >= opt.lower[b] - 1e-12
            assert_internal_bounds_hold(net, exact, lo[b], hi[b], feature, rng)
            checked += 1
            tighter += opt.lower[b] > opt.interval_lower[b] + 1e-9
            gap_crown.append(res.objective - opt.lower[b])
            gap_ibp.append(res.objective - opt.interval_lower[b])
    assert checked >= 100
    # the point of the linear bounds: on average much closer to the exact minimum than intervals
    assert np.mean(gap_crown) < 0.8 * np.mean(gap_ibp)
    assert tighter > checked // 3


@pytest.mark.parametrize("n, hidden", SHAPES)
def test_output_bounds_contain_the_exact_range(n, hidden):
    rng = np.random.default_rng(3)
    for seed in range(6):
        net = random_relu_net(n, hidden, seed=200 + seed, bias_scale=0.3)
        bounder = LinearBounder(net, batch_size=BATCH)
        lo, hi = random_boxes(rng, 4, n)
        o = bounder.output(lo, hi)
        for b in range(len(lo)):
            bm = BoxMilp(net, lo[b], hi[b], bounder=LinearBounder(net, batch_size=1))
            fmin = bm.min_output(1.0, time_limit=20.0).objective
            fmax = -bm.min_output(-1.0, time_limit=20.0).objective
            assert o.lower[b] <= fmin + 1e-9 and o.upper[b] >= fmax - 1e-9
            x = rng.uniform(lo[b], hi[b], size=(300, n))
            f = net.forward(x)[:, 0]
            assert f.min() >= o.lower[b] and f.max() <= o.upper[b]


def test_flat_chain_is_proven_exactly_zero():
    """A box where the derivative is 0 term by term is proven (the rounding allowance must not
    push an exactly-zero minimum below zero), and so is a monotone-by-construction network."""
    ws = [np.array([[1.0, -1.0], [0.5, 0.5]]), np.array([[1.0], [1.0]])]
    bs = [np.array([-10.0, -10.0]), np.array([0.3])]  # both units dead on the unit box: f = 0.3
    net = ReluNetwork(ws, bs)
    d = LinearBounder(net, batch_size=BATCH).derivative(np.zeros((1, 2)), np.ones((1, 2)), 0, 1.0)
    assert d.lower[0] == 0.0
    spec = Monotonicity(feature=0, direction="increasing", region=Box([0, 0], [1, 1]))
    assert get_verifier("crown", batch_size=BATCH).verify(net, spec, 10.0).status == Status.VERIFIED
    mono = monotone_net(4, (8, 8), increasing=(1,), decreasing=(3,), seed=4)
    for feature, direction in ((1, "increasing"), (3, "decreasing")):
        spec = Monotonicity(feature=feature, direction=direction, region=Box(np.zeros(4), np.ones(4)))
        v = get_verifier("crown", batch_size=BATCH).verify(mono, spec, 10.0)
        assert v.status == Status.VERIFIED and v.boxes == 1


# --- the backend ------------------------------------------------------------------------------------


def test_planted_violation_is_found_inside_its_sub_box():
    pv = planted_violation(4, (8, 8), feature=2, direction="decreasing", seed=5)
    v = get_verifier("crown", batch_size=BATCH).verify(pv.net, pv.spec, 20.0)
    assert v.status == Status.FALSIFIED
    assert all(pv.spec.violation(pv.net, c) > 0 for c in v.counterexamples)
    assert any(pv.violation_box.contains(c.x) or pv.violation_box.contains(c.x_prime) for c in v.counterexamples)


def test_verdicts_agree_with_the_exact_milp():
    """VERIFIED only when the exact minimum is >= 0; FALSIFIED only when it is < 0."""
    rng = np.random.default_rng(11)
    decided = 0
    for seed in range(12):
        net = random_relu_net(4, (8, 8), seed=300 + seed, bias_scale=0.3)
        lo, hi = random_boxes(rng, 1, 4)
        feature = int(rng.integers(4))
        hi[0, feature] = max(hi[0, feature], lo[0, feature] + 0.1)
        spec = Monotonicity(
            feature=feature, direction=str(rng.choice(["increasing", "decreasing"])), region=Box(lo[0], hi[0])
        )
        exact = BoxMilp(net, lo[0], hi[0], feature=feature).min_derivative(spec.sign, time_limit=20.0, rel_gap=0.0)
        v = get_verifier("crown", batch_size=BATCH, max_boxes=3000).verify(net, spec, 20.0)
        if v.status == Status.VERIFIED:
            assert exact.objective >= -1e-9
        if v.status == Status.FALSIFIED:
            assert exact.objective < 0
        decided += v.status in (Status.VERIFIED, Status.FALSIFIED)
    assert decided >= 10


def test_tolerance_uses_the_region_width():
    """slope >= -t / W_i everywhere proves tolerance t: a network with slope -0.1 on [0, 2]
    satisfies tolerance 0.21 and violates tolerance 0.19."""
    net = ReluNetwork([np.array([[-0.1], [0.0]])], [np.array([0.0])])
    region = Box([0, 0], [2, 1])
    ok = Monotonicity(feature=0, direction="increasing", region=region, tolerance=0.21)
    bad = Monotonicity(feature=0, direction="increasing", region=region, tolerance=0.19)
    crown = get_verifier("crown", batch_size=BATCH)
    assert crown.verify(net, ok, 10.0).status == Status.VERIFIED
    v = crown.verify(net, bad, 10.0)
    assert v.status == Status.FALSIFIED and v.worst_margin > 0


def test_output_bound_spec():
    net = random_relu_net(4, (8, 8), seed=9)
    region = Box(np.zeros(4), np.ones(4))
    bm = BoxMilp(net, region.lower, region.upper)
    fmax = -bm.min_output(-1.0, time_limit=20.0).objective
    crown = get_verifier("crown", batch_size=BATCH)
    assert crown.verify(net, OutputBound(lower=None, upper=fmax + 0.05, region=region), 20.0).status == Status.VERIFIED
    v = crown.verify(net, OutputBound(lower=None, upper=fmax - 0.05, region=region), 20.0)
    assert v.status == Status.FALSIFIED and v.worst_margin > 0


def test_too_small_budget_is_never_verified():
    pv = planted_violation(4, (8, 8), feature=0, seed=6)
    spec = Monotonicity(feature=0, direction="increasing", region=pv.spec.region)
    v = get_verifier("crown", batch_size=BATCH, max_boxes=3, n_samples=1).verify(pv.net, spec, 10.0)
    assert v.status != Status.VERIFIED


def test_hybrid_agrees_with_pure_milp():
    rng = np.random.default_rng(5)
    for seed in range(5):
        net = random_relu_net(4, (8, 8), seed=400 + seed, bias_scale=0.3)
        lo, hi = random_boxes(rng, 1, 4)
        hi[0, 0] = max(hi[0, 0], lo[0, 0] + 0.2)
        spec = Monotonicity(feature=0, direction="increasing", region=Box(lo[0], hi[0]))
        hybrid = get_verifier("crown", batch_size=BATCH, hybrid_milp=True, max_boxes=8, n_samples=1).verify(
            net, spec, 30.0
        )
        pure = get_verifier("milp").verify(net, spec, 30.0)
        assert hybrid.status == pure.status
        assert hybrid.status in (Status.VERIFIED, Status.FALSIFIED)


def test_bad_options():
    for bad in ({"iters": -1}, {"split": "nope"}, {"hybrid_fraction": 0.0}, {"hybrid_milp": 1}, {"wat": 1}):
        with pytest.raises(ValueError):
            get_verifier("crown", **bad)


@pytest.mark.parametrize("n, hidden", SHAPES)
def test_staged_output_bound_is_the_larger_sound_bound(n, hidden):
    """Intervals first, CROWN on what they leave: never above the exact minimum (MILP), never below
    either stage's bound, and the rows the intervals prove keep the interval bound."""
    from verifiers.backends.crown import make_crown_output_bound_fn, make_staged_output_bound_fn
    from verifiers.bounds.interval import make_output_bound_fn

    rng = np.random.default_rng(21)
    for seed in range(3):
        net = random_relu_net(n, hidden, seed=40 + seed, bias_scale=0.5)
        region = Box(np.zeros(n), np.ones(n))
        lo, hi = random_boxes(rng, 12, n)
        pad = lambda b: np.concatenate([b] * 6)  # the interval program's batch of 64 rows
        y_lo = make_output_bound_fn(net, 0.0, None, region)(pad(lo), pad(hi)).lower[: len(lo)]
        spec = OutputBound(lower=float(np.median(y_lo)), upper=None, region=region)  # half the rows pass IBP
        bounder = LinearBounder(net, batch_size=BATCH)
        staged = make_staged_output_bound_fn(bounder, spec)(lo, hi).lower
        ibp = make_output_bound_fn(net, spec.lower, None, region)(pad(lo), pad(hi)).lower[: len(lo)]
        crown = make_crown_output_bound_fn(bounder, spec)(lo, hi).lower
        assert np.all(staged >= ibp) and np.all(staged[ibp >= 0] == ibp[ibp >= 0])
        assert np.all(staged[ibp < 0] >= crown[ibp < 0])
        assert (ibp >= 0).any() and (ibp < 0).any()  # both stages ran
        for j in range(len(lo)):
            exact = BoxMilp(net, lo[j], hi[j]).min_output(1.0, time_limit=20.0).objective - spec.lower
            assert staged[j] <= exact + 1e-9
