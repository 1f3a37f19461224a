"""The auto_LiRPA backend: the compatibility shim, soundness of every bound, search outcomes."""

from __future__ import annotations

import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from verifiers import Box, Monotonicity, OutputBound, ReluNetwork, Spec, Status, get_verifier
from verifiers.testing.instances import monotone_net, planted_violation, random_relu_net, unit_box

torch.set_num_threads(1)  # small tensors: OpenMP threads only add contention on 2 shared cores


# --- the shim --------------------------------------------------------------------------------------


def test_shim_applies_the_four_patches_once():
    from verifiers.lirpa_compat import DENSE_BOUND_OPTS, import_auto_lirpa

    al = import_auto_lirpa()
    assert import_auto_lirpa() is al and al.__version__ == "0.3"
    # 1. numpy.lib.arraysetops alias
    assert sys.modules["numpy.lib.arraysetops"].isin is np.isin
    # 2. the opset setter reaches the TorchScript exporter's globals
    import torch.onnx.symbolic_helper as sh
    from torch.onnx._internal.torchscript_exporter._globals import GLOBALS

    old = GLOBALS.export_onnx_opset_version
    sh._set_opset_version(12)
    assert GLOBALS.export_onnx_opset_version == 12
    GLOBALS.export_onnx_opset_version = old
    # 3. Node attribute access by name
    assert hasattr(torch._C.Node, "__getitem__")
    # 4. BoundedModule._named_members takes remove_duplicate (torch 2.x passes it)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    bm = al.BoundedModule(model, torch.zeros(1, 3), bound_opts=dict(DENSE_BOUND_OPTS))
    names = [n for n, _ in bm.named_parameters(remove_duplicate=False)]
    assert names == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert not any(DENSE_BOUND_OPTS.values())


@pytest.mark.parametrize("method", ["IBP", "CROWN", "CROWN-IBP", "CROWN-Optimized"])
def test_plain_auto_lirpa_bounds_contain_outputs(method):
    from verifiers.lirpa_compat import DENSE_BOUND_OPTS, import_auto_lirpa

    al = import_auto_lirpa()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    x = torch.rand(4, 3)
    bm = al.BoundedModule(model, x, bound_opts=dict(DENSE_BOUND_OPTS, verbosity=0))
    bx = al.BoundedTensor(x, al.PerturbationLpNorm(norm=np.inf, x_L=x - 0.1, x_U=x + 0.1))
    lb, ub = bm.compute_bounds(x=(bx,), method=method)
    with torch.no_grad():
        for _ in range(20):
            y = model(x + (torch.rand_like(x) - 0.5) * 0.2)
            assert torch.all(lb <= y + 1e-5) and torch.all(y <= ub + 1e-5)


# --- bounds: all methods, both formulations, sampled values inside ------------------------------------

METHODS = ["ibp", "crown", "crown-ibp", "alpha-crown"]


def _boxes(rng, n, B, width):
    c = rng.uniform(-1, 1, (B, n))
    w = width * rng.uniform(0.2, 1.0, (B, n))
    return c - w / 2, c + w / 2


def _sample(rng, lo, hi):
    return lo + rng.random(lo.shape) * (hi - lo)


def _special_net():
    """A net with an exactly-zero neuron (z = 0 everywhere) and one with z >= 0 touching 0."""
    rng = np.random.default_rng(5)
    w1 = rng.normal(size=(3, 6))
    b1 = rng.normal(size=6) * 0.1
    w1[:, 0], b1[0] = 0.0, 0.0  # z = 0 identically
    w1[:, 1], b1[1] = [1.0, 0.0, 0.0], 1.0  # z = x_0 + 1 >= 0 on x_0 >= -1, = 0 at the corner
    w2 = rng.normal(size=(6, 5))
    w2[0] = 3.0
    w3 = rng.normal(size=(5, 1))
    return ReluNetwork([w1, w2, w3], [b1, rng.normal(size=5) * 0.1, np.zeros(1)])


@pytest.mark.parametrize("method", METHODS)
def test_gradient_network_bounds_contain_sampled_derivatives(method):
    from verifiers.backends.lirpa.bounding import LirpaBounder
    from verifiers.backends.lirpa.graph import DTYPES, GradientNetwork

    rng = np.random.default_rng(1)
    for net in (random_relu_net(3, (10, 8), seed=2, bias_scale=0.5), _special_net()):
        for feature, sign in ((0, 1.0), (2, -1.0)):
            with torch.no_grad():  # the torch module computes the derivative exactly
                x = rng.uniform(-1, 1, (5, 3))
                g = GradientNetwork(net, feature, sign)(torch.tensor(x)).numpy()[:, 0]
            np.testing.assert_allclose(g, sign * net.gradient(x, feature), atol=1e-12)
            for dtype in ("float64", "float32"):
                bd = LirpaBounder(GradientNetwork(net, feature, sign, dtype=DTYPES[dtype]), 3, method, DTYPES[dtype])
                lo, hi = _boxes(rng, 3, 8, 0.5)
                lo[0], hi[0] = -1.0, -0.5  # the second special neuron touches z = 0 here
                lower, upper, _ = bd.bound(lo, hi, upper=True)
                assert np.all(lower <= upper + 1e-9)
                tol = 1e-12 if dtype == "float64" else 1e-5
                for _ in range(30):
                    p = _sample(rng, lo, hi)
                    d = sign * net.gradient(p, feature)
                    assert np.all(lower <= d + tol) and np.all(d <= upper + tol)


@pytest.mark.parametrize("method", METHODS)
def test_difference_and_output_bounds_contain_samples(method):
    from verifiers.backends.lirpa.bounding import LirpaBounder
    from verifiers.backends.lirpa.graph import DifferenceNetwork, to_torch

    rng = np.random.default_rng(3)
    net = random_relu_net(3, (10, 8), seed=4, bias_scale=0.5)
    diff = LirpaBounder(DifferenceNetwork(net, 1, -1.0), 4, method)
    out = LirpaBounder(to_torch(net), 3, method)
    lo, hi = _boxes(rng, 3, 8, 0.4)
    lo4 = np.hstack([lo, np.zeros((8, 1))])
    hi4 = np.hstack([hi, np.full((8, 1), 0.3)])
    dl, du, A = diff.bound(lo4, hi4, upper=True)
    ol, ou, _ = out.bound(lo, hi, upper=True)
    if method != "ibp":
        assert A is not None and A.shape == (8, 4)
    for _ in range(30):
        p = _sample(rng, lo4, hi4)
        x, xp = p[:, :3], p[:, :3].copy()
        xp[:, 1] += p[:, 3]
        v = -(net(xp)[:, 0] - net(x)[:, 0])
        assert np.all(dl <= v + 1e-12) and np.all(v <= du + 1e-12)
        y = net(x)[:, 0]
        assert np.all(ol <= y + 1e-12) and np.all(y <= ou + 1e-12)
    # tolerance 0 is out of reach: at d = 0 the difference is exactly 0, so the lower bound is <= 0
    assert np.all(dl <= 0)


def test_alpha_crown_is_at_least_as_tight_as_crown():
    from verifiers.backends.lirpa.bounding import LirpaBounder
    from verifiers.backends.lirpa.graph import GradientNetwork

    net = random_relu_net(3, (12, 12), seed=6)
    lo, hi = _boxes(np.random.default_rng(0), 3, 6, 0.3)
    crown = LirpaBounder(GradientNetwork(net, 0), 3, "crown").bound(lo, hi)[0]
    alpha = LirpaBounder(GradientNetwork(net, 0), 3, "alpha-crown").bound(lo, hi)[0]
    assert np.all(alpha >= crown - 1e-9)


# --- search outcomes ---------------------------------------------------------------------------------


def _assert_crosses(p, cex):
    n, i = p.spec.region.dim, p.spec.feature
    S, others = p.violation_box, np.arange(p.spec.region.dim) != p.spec.feature
    x, xp = np.array(cex.x), np.array(cex.x_prime)
    assert x.shape == (n,) and p.spec.violation(p.net, cex) > 0
    assert np.all(x[others] >= S.lower[others]) and np.all(x[others] <= S.upper[others])
    assert xp[i] >= S.lower[i] and x[i] <= S.upper[i]


@pytest.mark.parametrize(
    "n, hidden, feature, direction, method, formulation",
    [
        (3, (12, 12), 0, "increasing", "crown", "gradient"),
        (4, (16, 16), 2, "decreasing", "crown", "gradient"),
        (3, (10, 10, 8), 1, "increasing", "ibp", "gradient"),
        (3, (8, 8), 2, "decreasing", "crown", "difference"),
    ],
)
def test_planted_violation_is_found_with_a_valid_witness(n, hidden, feature, direction, method, formulation):
    p = planted_violation(n, hidden, feature=feature, direction=direction, seed=n)
    v = get_verifier("lirpa", method=method, formulation=formulation, batch_size=64).verify(p.net, p.spec, 20)
    assert v.status == Status.FALSIFIED, v.message
    for c in v.counterexamples:
        _assert_crosses(p, c)
    best = v.counterexamples[0]
    assert p.violation_box.contains(best.x) and p.violation_box.contains(best.x_prime)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_monotone_by_construction_is_verified(dtype):
    rng = np.random.default_rng(11)
    net = monotone_net(4, (16, 12), increasing=(0,), decreasing=(3,), seed=11)
    region = Box(rng.uniform(-2, 0, 4), rng.uniform(0.1, 2, 4))
    for method in ("crown", "ibp"):
        verifier = get_verifier("lirpa", method=method, dtype=dtype, batch_size=32)
        for feature, direction in ((0, "increasing"), (3, "decreasing")):
            for tol in (0.0, 0.05):
                spec = Monotonicity(feature=feature, direction=direction, region=region, tolerance=tol)
                v = verifier.verify(net, spec, 20)
                assert v.status == Status.VERIFIED, v.message
                assert v.verified_fraction == 1.0 and v.unresolved_fraction == 0.0 and v.best_bound >= 0


def test_alpha_crown_and_crown_ibp_verify_a_monotone_net():
    net = monotone_net(3, (8, 8), increasing=(1,), seed=2)
    spec = Monotonicity(feature=1, direction="increasing", region=unit_box(3), tolerance=1e-3)
    for method in ("alpha-crown", "crown-ibp"):
        v = get_verifier("lirpa", method=method, batch_size=8, alpha_iterations=5).verify(net, spec, 20)
        assert v.status == Status.VERIFIED, (method, v.message)


def test_nearly_monotone_net_needs_splitting_and_is_proven_with_tolerance():
    # positive first-layer row, later layers slightly mixed: CROWN proves it after splitting
    rng = np.random.default_rng(0)
    w = [np.abs(rng.normal(size=(2, 8))), np.abs(rng.normal(size=(8, 8))) - 0.1, np.abs(rng.normal(size=(8, 1)))]
    net = ReluNetwork(w, [rng.normal(size=8) * 0.3, rng.normal(size=8) * 0.3, np.zeros(1)])
    spec = Monotonicity(feature=0, direction="increasing", region=unit_box(2), tolerance=1e-2)
    v = get_verifier("lirpa", batch_size=16).verify(net, spec, 20)
    assert v.status in (Status.VERIFIED, Status.FALSIFIED)
    if v.status == Status.VERIFIED:
        assert v.unresolved_fraction == 0.0


def test_difference_formulation_cannot_prove_tolerance_zero():
    net = monotone_net(2, (6, 6), increasing=(0,), seed=1)
    spec = Monotonicity(feature=0, direction="increasing", region=unit_box(2))
    v = get_verifier("lirpa", formulation="difference", max_boxes=512, batch_size=64).verify(net, spec, 10)
    assert v.status in (Status.UNKNOWN, Status.TIMEOUT)
    assert "cannot prove tolerance 0" in v.message and v.best_bound <= 0
    # the gradient formulation proves it at once
    assert get_verifier("lirpa").verify(net, spec, 10).status == Status.VERIFIED


def test_output_bound_both_ways():
    net = random_relu_net(3, (8, 8), seed=3)
    region = Box([-0.5] * 3, [0.5] * 3)
    xs = np.random.default_rng(0).uniform(-0.5, 0.5, (2000, 3))
    y = net(xs)[:, 0]
    for dtype in ("float64", "float32"):
        verifier = get_verifier("lirpa", dtype=dtype, batch_size=32)
        loose = OutputBound(lower=float(y.min()) - 1.0, upper=float(y.max()) + 1.0, region=region)
        assert verifier.verify(net, loose, 20).status == Status.VERIFIED
        tight = OutputBound(lower=None, upper=float(np.median(y)), region=region)
        v = verifier.verify(net, tight, 20)
        assert v.status == Status.FALSIFIED and tight.violation(net, v.counterexamples[0]) > 0


def test_linear_network_and_fixed_feature():
    lin = ReluNetwork([np.array([[1.0], [-2.0]])], [np.zeros(1)])
    v = get_verifier("lirpa")
    assert v.verify(lin, Monotonicity(0, "increasing", unit_box(2)), 5).status == Status.VERIFIED
    assert v.verify(lin, Monotonicity(1, "increasing", unit_box(2)), 5).status == Status.FALSIFIED
    fixed = Box([0.0, 0.5], [1.0, 0.5])
    r = v.verify(random_relu_net(2, (4, 4)), Monotonicity(1, "increasing", fixed), 5)
    assert r.status == Status.VERIFIED and "fixed" in r.message


# --- agreement with the ouroboros backend -------------------------------------------------------------


def _random_problem(k: int):
    rng = np.random.default_rng(500 + k)
    n = int(rng.integers(2, 4))
    net = random_relu_net(n, (8, 8), seed=500 + k, bias_scale=0.5)
    if k % 3 != 2:  # nearly monotone networks, so that proofs and witnesses need splitting
        w = [np.array(a) for a in net.weights]
        w[0][0] = np.abs(w[0][0])
        w[1] = np.abs(w[1]) - (0.05 if k % 3 == 0 else 0.3)
        w[2] = np.abs(w[2])
        net = ReluNetwork(w, net.biases)
    width = rng.choice([0.05, 0.2, 1.0])
    lo = rng.uniform(-1, 1 - width, n)
    region = Box(lo, lo + width * rng.uniform(0.5, 1.0, n))
    if k % 8 == 5:
        c = net.forward(region.center)[0]
        return net, OutputBound(lower=c - rng.uniform(0, 1), upper=c + rng.uniform(0, 1), region=region)
    direction = "increasing" if k % 3 != 2 or k % 2 == 0 else "decreasing"
    return net, Monotonicity(feature=0, direction=direction, region=region, tolerance=float(rng.choice([0.0, 0.01])))


def test_no_contradictions_with_ouroboros():
    lirpa = get_verifier("lirpa", batch_size=32, max_boxes=3000)
    ouro = get_verifier("ouroboros", max_boxes=3000, batch_size=128)
    agreed = 0
    for k in range(30):
        net, spec = _random_problem(k)
        a = lirpa.verify(net, spec, 3)
        b = ouro.verify(net, spec, 3)
        for v in (a, b):
            for c in v.counterexamples:
                assert spec.violation(net, c) > 0
        pair = {a.status, b.status}
        assert pair != {Status.VERIFIED, Status.FALSIFIED}, (k, a.message, b.message)
        agreed += a.status == b.status
        if a.status == Status.VERIFIED and isinstance(spec, Monotonicity):
            assert a.best_bound >= -spec.tolerance / spec.region.widths[spec.feature] - 1e-12
            assert _dense_violation(net, spec) <= spec.tolerance + 1e-9
    assert agreed >= 15


def _dense_violation(net, spec, n_lines=200, n_grid=129):
    """Largest ``sign * (f(x) - f(x'))`` over pairs on a grid of axis-parallel lines."""
    rng = np.random.default_rng(0)
    lo, hi, i = spec.region.lower, spec.region.upper, spec.feature
    x = np.repeat(rng.uniform(lo, hi, size=(n_lines, lo.size))[:, None, :], n_grid, axis=1)
    x[:, :, i] = np.linspace(lo[i], hi[i], n_grid)
    v = spec.sign * net.forward(x.reshape(-1, lo.size))[:, 0].reshape(n_lines, n_grid)
    return float(np.max(np.maximum.accumulate(v, axis=1) - v))


# --- bad input ----------------------------------------------------------------------------------------


class _OtherSpec(Spec):
    kind = "something_else"
    region = unit_box(2)

    def violation(self, net, cex):  # pragma: no cover
        return -1.0

    def to_dict(self):
        return {"kind": self.kind}

    @classmethod
    def from_dict(cls, d):  # pragma: no cover
        return cls()


def test_bad_input():
    v = get_verifier("lirpa")
    r = v.verify(random_relu_net(2, (3,)), _OtherSpec(), 5)
    assert r.status == Status.ERROR and "does not support" in r.message
    with pytest.raises(ValueError, match="NaN"):
        ReluNetwork([np.array([[np.nan]]), np.ones((1, 1))], [np.zeros(1), np.zeros(1)])
    for bad in (
        {"method": "beta-crown"},
        {"dtype": "float16"},
        {"formulation": "hessian"},
        {"batch_size": 0},
        {"nonsense": 1},
    ):
        with pytest.raises(ValueError):
            get_verifier("lirpa", **bad)
    mismatch = Monotonicity(0, "increasing", unit_box(3))
    assert v.verify(random_relu_net(2, (3,)), mismatch, 5).status == Status.ERROR


def test_auto_lirpa_ibp_equals_the_ouroboros_interval_bounds():
    """The cross-check the benchmark relies on: two IBP implementations, every pre-activation."""
    from verifiers.backends.lirpa.bounding import preactivation_bounds
    from verifiers.bounds.interval import preactivation_bounds as interval_bounds

    net = random_relu_net(4, (12, 10), seed=8)
    c = np.random.default_rng(2).uniform(-1, 1, (6, 4))
    ours = interval_bounds(net, c - 0.3, c + 0.3)
    theirs = preactivation_bounds(net, c - 0.3, c + 0.3, method="ibp")
    assert [z[0].shape for z in theirs] == [(6, 12), (6, 10), (6, 1)]
    for (a_lo, a_hi), (b_lo, b_hi) in zip(ours, theirs):
        np.testing.assert_allclose(b_lo, a_lo, atol=1e-9)
        np.testing.assert_allclose(b_hi, a_hi, atol=1e-9)
