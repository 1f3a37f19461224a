"""The gradient spec family (DirectionalSlope), output selection and plugins: soundness first."""

from __future__ import annotations

import numpy as np
import pytest

from verifiers import Box, Counterexample, DirectionalSlope, OutputBound, ReluNetwork, Status, get_verifier, plugins
from verifiers.bounds.interval import make_slope_bound_fn
from verifiers.bounds.linear import LinearBounder, make_linear_slope_bound_fn
from verifiers.specs import SPEC_REGISTRY, RawUnits, spec_from_dict
from verifiers.testing.instances import random_relu_net, unit_box


def _boxes(rng, m, n):
    a, b = rng.uniform(0, 1, (m, n)), rng.uniform(0, 1, (m, n))
    return np.minimum(a, b), np.maximum(a, b)


def test_slope_bounds_are_sound_against_dense_sampling_on_200_networks():
    """Every box's lower bound of min(c.grad f - lower, upper - c.grad f) is below every sampled value."""
    rng = np.random.default_rng(0)
    for seed in range(200):
        n, hidden = ((2, (5,)), (3, (4, 4)))[seed % 2]  # two shapes: two compilations per bound
        net = random_relu_net(n, hidden, seed=seed)
        c = rng.normal(size=n) * (rng.random(n) < 0.8)
        c[0] = c[0] or 1.0
        spec = DirectionalSlope(c, -0.3, 0.2, unit_box(n))
        lo, hi = _boxes(rng, 8, n)
        fns = [make_slope_bound_fn(net, spec.slope_bounds(), spec.region, p) for p in ("float64", "float32")]
        if seed < 40:  # the linear bounds cost more per network
            fns.append(make_linear_slope_bound_fn(LinearBounder(net, batch_size=8), spec.slope_bounds(), spec.region))
        pts = lo[:, None, :] + rng.random((8, 300, n)) * (hi - lo)[:, None, :]
        g = net.gradient(pts.reshape(-1, n), c).reshape(8, 300)
        truth = np.minimum(g + 0.3, 0.2 - g).min(axis=1)
        for fn in fns:
            assert np.all(fn(lo, hi).lower <= truth + 1e-12), seed


@pytest.mark.parametrize("seed", range(6))
def test_verdicts_agree_with_the_exact_milp(seed):
    """crown, ouroboros and lirpa never contradict the exact MILP, and each decides most specs."""
    decided: dict[str, int] = {}
    rng = np.random.default_rng(seed)
    net = random_relu_net(3, (6, 6), seed=seed)
    c = rng.normal(size=3)
    g = net.gradient(rng.uniform(0, 1, (20000, 3)), c)
    for lower, upper in ((g.min() - 0.05, g.max() + 0.05), (g.min() + 0.02, None), (None, g.max() - 0.02)):
        spec = DirectionalSlope(c, lower, upper, unit_box(3))
        exact = get_verifier("milp").verify(net, spec, 30.0).status
        assert exact in (Status.VERIFIED, Status.FALSIFIED)
        for name, opts in (("crown", {}), ("ouroboros", {}), ("lirpa", {"max_boxes": 2000})):
            got = get_verifier(name, **opts).verify(net, spec, 10.0)
            assert got.status in (exact, Status.UNKNOWN, Status.TIMEOUT), (name, got.message)
            decided[name] = decided.get(name, 0) + (got.status == exact)
            for cex in got.counterexamples:  # a witness: a point strictly inside a piece that breaks a bound
                s = float(net.gradient(cex.x, c))
                assert (lower is not None and s < lower) or (upper is not None and s > upper)
    assert all(n >= 2 for n in decided.values()), decided


def test_certified_slope_is_the_gradient_inside_a_piece_and_none_on_a_kink():
    net = ReluNetwork([np.array([[1.0, -1.0], [0.5, 2.0]]), np.array([[1.0], [1.0]])], [np.zeros(2), np.zeros(1)])
    s, e = net.certified_slope(np.array([0.3, 0.1]), np.array([1.0, 1.0]))
    assert abs(s - 1.5) <= e < 1e-12  # only the first unit is active there: slope 1 + 0.5
    assert net.certified_slope(np.array([0.2, 0.1]), np.array([1.0, 0.0])) is None  # unit 2: -0.2 + 0.2 = 0
    spec = DirectionalSlope([1.0, 1.0], 1.6, None, unit_box(2))
    assert spec.violation(net, Counterexample.make([0.3, 0.1])) > 0
    assert spec.violation(net, Counterexample.make([0.3, 0.1], [0.4, 0.2])) == -np.inf  # pairs are not witnesses
    assert spec.violation(net, Counterexample.make([1.3, 0.1])) == -np.inf  # outside the region


def test_direction_row_is_exact_for_unit_vectors_and_widened_otherwise():
    net = random_relu_net(3, (5, 4), seed=1)
    row, err, allowance = net.direction_row(np.array([0.0, -1.0, 0.0]))
    assert np.array_equal(row, -net.weights[0][1]) and allowance == 0.0 and not err.any()
    _, err, allowance = net.direction_row(np.array([0.1, 0.7, 0.0]))
    assert np.all(err > 0) and 0 < allowance < 1e-12


def test_output_selection_decides_one_output_of_a_multi_output_network():
    net = random_relu_net(3, (6,), n_outputs=3, seed=2)
    one = net.select_output(1)
    x = np.random.default_rng(0).uniform(0, 1, (10, 3))
    assert np.allclose(one.forward(x)[:, 0], net.forward(x)[:, 1], rtol=1e-13, atol=0)  # BLAS may sum in another order
    y = net.forward(x)[:, 1]
    for spec in (OutputBound(float(y.min()) + 1e-3, None, unit_box(3), output=1),
                 DirectionalSlope([1.0, 0.0, 0.0], -100.0, 100.0, unit_box(3), output=1)):  # fmt: skip
        v = get_verifier("ouroboros").verify(net, spec, 10.0)
        assert v.status == (Status.FALSIFIED if spec.kind == "output_bound" else Status.VERIFIED), v.message
        for cex in v.counterexamples:
            assert cex.f_x == pytest.approx(float(net.forward(cex.x)[1]))
    with pytest.raises(ValueError, match="output 3 does not exist"):
        net.select_output(3)


def test_raw_units_direction_and_bounds_map_to_the_same_property():
    """F(x) = y_min + y_scale f((x - x_min) / x_scale): the raw slope along c is y_scale c_n . grad f."""
    units = RawUnits(["a", "b"], [10.0, 0.5], 3.0, 4.0)
    net = ReluNetwork([np.array([[2.0], [-1.0]])], [np.zeros(1)])  # linear: f = 2 x_a - x_b
    raw_slope = 4.0 * (2.0 * 1.0 / 10.0 - 1.0 * 3.0 / 0.5)  # step c = (1, 3) in raw units
    for lower, want in ((raw_slope - 1e-6, Status.VERIFIED), (raw_slope + 1e-6, Status.FALSIFIED)):
        spec = DirectionalSlope.from_raw({"direction": {"a": 1, "b": 3}, "lower": lower}, unit_box(2), units)
        assert np.max(np.abs(spec.direction)) == 1.0
        assert get_verifier("milp").verify(net, spec, 10.0).status == want
    with pytest.raises(ValueError, match="unknown feature 'c'"):
        DirectionalSlope.from_raw({"direction": {"c": 1}, "lower": 0}, unit_box(2), units)


def test_specs_round_trip_and_single_output_digests_do_not_name_the_output():
    spec = DirectionalSlope([1.0, 2.0], None, 3.0, Box([0, 0], [1, 2]), name="s")
    back = spec_from_dict(spec.to_dict())
    assert back.to_dict() == spec.to_dict() and "output" not in spec.to_dict()
    assert spec_from_dict(DirectionalSlope([1.0, 2.0], 0.0, None, unit_box(2), output=2).to_dict()).output == 2
    assert DirectionalSlope([0.0, 1.0], 0.0, None, Box([0, 0], [1, 0])).vacuous()  # moves a fixed input
    with pytest.raises(ValueError, match="not all 0"):
        DirectionalSlope([0.0, 0.0], 0.0, None, unit_box(2))


PLUGIN = """
import numpy as np
from dataclasses import dataclass
from typing import ClassVar
from verifiers import Box, DirectionalSlope, Spec, register_spec

@register_spec
@dataclass(frozen=True, eq=False)
class RisingTogether(Spec):
    kind: ClassVar[str] = "{kind}"
    region: Box
    def reduced(self):
        return DirectionalSlope(np.ones(self.region.dim), 0.0, None, self.region)
    def to_dict(self):
        return {{"kind": self.kind, "region": self.region.to_dict()}}
    @classmethod
    def from_dict(cls, d):
        return cls(Box.from_dict(d["region"]))
"""


def test_a_kind_from_VPALS_PLUGINS_is_found_and_decided_by_reduction(tmp_path, monkeypatch):
    path = tmp_path / "rising.py"
    path.write_text(PLUGIN.format(kind="rising_together_env"))
    monkeypatch.setenv(plugins.ENV_VAR, str(path))
    spec = spec_from_dict({"kind": "rising_together_env", "region": unit_box(2).to_dict()})
    net = ReluNetwork([np.array([[1.0], [1.0]])], [np.zeros(1)])
    for w, want in ((1.0, Status.VERIFIED), (-1.0, Status.FALSIFIED)):
        v = get_verifier("crown").verify(
            ReluNetwork([np.array([[w], [1.0]]) * [[2.0], [0.5]]], [np.zeros(1)]), spec, 10.0
        )
        assert v.status == want and v.spec["kind"] == "rising_together_env"
    assert get_verifier("ouroboros").verify(net, spec, 10.0).status == Status.VERIFIED


def test_entry_points_register_kinds_and_backends_on_first_use(tmp_path, monkeypatch):
    path = tmp_path / "ep_plugin.py"
    path.write_text(
        PLUGIN.format(kind="rising_together_ep")
        + """
from verifiers.base import Verifier
from verifiers.verdict import Status, Verdict

class Nothing(Verifier):
    name = "nothing_ep"
    supported_specs = frozenset({"output_bound"})
    def _verify(self, net, spec, budget):
        return Verdict(status=Status.UNKNOWN, backend=self.name, spec=spec.to_dict(), settings={})
"""
    )
    module = plugins.load_plugin(str(path))

    class EP:
        def __init__(self, name, obj):
            self.name, self.value, self._obj = name, f"{module.__name__}:{obj}", obj

        def load(self):
            return getattr(module, self._obj)

    eps = {
        "vpals_jax.specs": [EP("rising_together_ep", "RisingTogether")],
        "vpals_jax.verifiers": [EP("nothing_ep", "Nothing")],
    }
    monkeypatch.setattr(plugins, "entry_points", lambda group: eps.get(group, []))
    SPEC_REGISTRY.pop("rising_together_ep", None)
    assert spec_from_dict({"kind": "rising_together_ep", "region": unit_box(2).to_dict()}).kind == "rising_together_ep"
    backend = get_verifier("nothing_ep")
    v = backend.verify(ReluNetwork([np.ones((2, 1))], [np.zeros(1)]), OutputBound(0.0, None, unit_box(2)))
    assert v.status == Status.UNKNOWN
    v = backend.verify(
        ReluNetwork([np.ones((2, 1))], [np.zeros(1)]),
        spec_from_dict({"kind": "rising_together_ep", "region": unit_box(2).to_dict()}),
    )
    assert v.status == Status.ERROR and "reduces to none of them" in v.message
    with pytest.raises(ValueError, match="unknown verifier 'no_such_backend'"):
        get_verifier("no_such_backend")
