"""The framework-neutral verifier interface: networks, boxes, specs, verdicts, registry, bad input."""

from __future__ import annotations

import json
import math
from typing import ClassVar

import numpy as np
import pytest

from verifiers import (
    Box,
    Counterexample,
    Monotonicity,
    OutputBound,
    ReluNetwork,
    Spec,
    Status,
    Verdict,
    Verifier,
    get_verifier,
    register_spec,
    register_verifier,
    spec_from_dict,
)
from verifiers.specs import SPEC_REGISTRY
from verifiers.testing.instances import random_relu_net, unit_box


def small_net(seed: int = 0) -> ReluNetwork:
    return random_relu_net(3, (5, 4), seed=seed)


# --- ReluNetwork -------------------------------------------------------------------------------


def test_network_forward_matches_manual_and_shapes():
    net = small_net()
    x = np.random.default_rng(0).uniform(size=(7, 3))
    h = np.maximum(x @ net.weights[0] + net.biases[0], 0)
    h = np.maximum(h @ net.weights[1] + net.biases[1], 0)
    y = h @ net.weights[2] + net.biases[2]
    np.testing.assert_allclose(net.forward(x), y)
    assert net.forward(x[0]).shape == (1,)
    assert net.layer_sizes == [3, 5, 4, 1]
    assert net.n_inputs == 3 and net.n_outputs == 1


def test_network_gradient_matches_finite_difference():
    net = small_net(1)
    x = np.random.default_rng(1).uniform(size=(20, 3))
    eps = 1e-6
    for i in range(3):
        d = np.zeros(3)
        d[i] = eps
        fd = (net.forward(x + d)[:, 0] - net.forward(x - d)[:, 0]) / (2 * eps)
        np.testing.assert_allclose(net.gradient(x, i), fd, atol=1e-5)


def test_network_dict_round_trip_and_immutability():
    net = small_net(2)
    back = ReluNetwork.from_dict(json.loads(json.dumps(net.to_dict())))
    x = np.random.default_rng(2).uniform(size=(5, 3))
    np.testing.assert_array_equal(back.forward(x), net.forward(x))
    with pytest.raises(ValueError):
        net.weights[0][0, 0] = 1.0


def test_network_rejects_nan_and_inf_weights():
    w = [np.ones((2, 3)), np.ones((3, 1))]
    b = [np.zeros(3), np.zeros(1)]
    w[1][0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        ReluNetwork(w, b)
    w[1][0, 0] = 1.0
    b[0][1] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        ReluNetwork(w, b)


@pytest.mark.parametrize(
    "weights, biases, match",
    [
        ([np.ones((2, 3)), np.ones((4, 1))], [np.zeros(3), np.zeros(1)], "expects 4 inputs"),
        ([np.ones((2, 3)), np.ones((3, 1))], [np.zeros(2), np.zeros(1)], "bias 0 has 2 entries"),
        ([np.ones((2, 3)), np.ones((3, 1))], [np.zeros(3)], "2 weight matrices but 1 bias"),
        ([np.ones(3)], [np.zeros(3)], "expected \\(in, out\\)"),
        ([], [], "at least one layer"),
    ],
)
def test_network_shape_mismatch(weights, biases, match):
    with pytest.raises(ValueError, match=match):
        ReluNetwork(weights, biases)


def test_network_forward_rejects_wrong_input_width():
    with pytest.raises(ValueError, match="network expects 3"):
        small_net().forward(np.zeros((2, 4)))


# --- Box -----------------------------------------------------------------------------------------


def test_box_basics():
    box = Box([0.0, 1.0, 2.0], [1.0, 1.0, 4.0])
    assert box.dim == 3
    np.testing.assert_array_equal(box.widths, [1.0, 0.0, 2.0])
    assert box.volume() == 2.0  # the fixed dimension does not zero the volume
    assert box.contains([0.5, 1.0, 3.0]) and not box.contains([0.5, 1.1, 3.0])
    assert Box.from_dict(json.loads(json.dumps(box.to_dict()))).to_dict() == box.to_dict()


@pytest.mark.parametrize(
    "lower, upper, match",
    [
        ([0.0, 2.0], [1.0, 1.0], "lower\\[1\\] = 2.0 is greater than upper\\[1\\] = 1.0"),
        ([0.0, np.nan], [1.0, 1.0], "NaN"),
        ([0.0], [1.0, 1.0], "lower has 1 entries but upper has 2"),
        ([0.0, -np.inf], [1.0, 1.0], "finite"),
    ],
)
def test_box_bad_input(lower, upper, match):
    with pytest.raises(ValueError, match=match):
        Box(lower, upper)


# --- Specs ---------------------------------------------------------------------------------------


def test_monotonicity_validation():
    region = unit_box(3)
    with pytest.raises(ValueError, match="tolerance must be a finite number >= 0"):
        Monotonicity(feature=0, direction="increasing", region=region, tolerance=-0.1)
    with pytest.raises(ValueError, match="tolerance"):
        Monotonicity(feature=0, direction="increasing", region=region, tolerance=math.nan)
    with pytest.raises(ValueError, match="feature 3 is outside the 3-dimensional region"):
        Monotonicity(feature=3, direction="increasing", region=region)
    with pytest.raises(ValueError, match="non-negative index"):
        Monotonicity(feature=-1, direction="increasing", region=region)
    with pytest.raises(ValueError, match="direction"):
        Monotonicity(feature=0, direction="up", region=region)


def test_output_bound_validation():
    region = unit_box(2)
    with pytest.raises(ValueError, match="at least one"):
        OutputBound(lower=None, upper=None, region=region)
    with pytest.raises(ValueError, match="greater than upper"):
        OutputBound(lower=2.0, upper=1.0, region=region)
    with pytest.raises(ValueError, match="finite"):
        OutputBound(lower=math.nan, upper=1.0, region=region)


def test_spec_dict_round_trip():
    region = Box([0, 0, -1], [1, 2, 1])
    for spec in (
        Monotonicity(feature=2, direction="decreasing", region=region, tolerance=0.01, name="m"),
        OutputBound(lower=0.0, upper=None, region=region, name="nonneg"),
        OutputBound(lower=None, upper=3.5, region=region),
    ):
        back = spec_from_dict(json.loads(json.dumps(spec.to_dict())))
        assert type(back) is type(spec) and back.to_dict() == spec.to_dict()
    with pytest.raises(ValueError, match="unknown spec kind"):
        spec_from_dict({"kind": "no_such_kind"})


def test_monotonicity_violation_semantics():
    # f(x) = -x0 + x1 on R^2: decreasing in 0, increasing in 1.
    net = ReluNetwork([np.array([[-1.0], [1.0]])], [np.zeros(1)])
    inc0 = Monotonicity(feature=0, direction="increasing", region=unit_box(2))
    dec0 = Monotonicity(feature=0, direction="decreasing", region=unit_box(2), tolerance=0.1)
    good = Counterexample.make([0.2, 0.5], [0.7, 0.5])
    assert inc0.violation(net, good) == pytest.approx(0.5)
    assert dec0.violation(net, good) == pytest.approx(-0.6)
    # Not along the feature axis, not increasing in the feature, outside the region, single point.
    for bad in (
        Counterexample.make([0.2, 0.5], [0.7, 0.6]),
        Counterexample.make([0.7, 0.5], [0.2, 0.5]),
        Counterexample.make([0.7, 0.5], [0.7, 0.5]),
        Counterexample.make([0.2, 0.5], [1.7, 0.5]),
        Counterexample.make([0.2, 0.5]),
    ):
        assert inc0.violation(net, bad) == -math.inf
    ob = OutputBound(lower=-0.5, upper=0.5, region=unit_box(2))
    assert ob.violation(net, Counterexample.make([1.0, 0.0])) == pytest.approx(0.5)
    assert ob.violation(net, Counterexample.make([0.5, 0.5])) == pytest.approx(-0.5)
    assert ob.violation(net, Counterexample.make([2.0, 0.5])) == -math.inf


# --- Verdict ---------------------------------------------------------------------------------------


def test_verdict_json_round_trip():
    v = Verdict(
        status=Status.FALSIFIED,
        backend="ouroboros",
        spec=Monotonicity(feature=0, direction="increasing", region=unit_box(2)).to_dict(),
        settings={"max_boxes": 10},
        wall_time_s=0.5,
        boxes=3,
        verified_fraction=0.25,
        unresolved_fraction=0.75,
        best_bound=-1.5,
        counterexamples=[Counterexample(x=[0.1, 0.2], x_prime=[0.3, 0.2], f_x=1.0, f_x_prime=0.5, margin=0.5)],
        message="m",
    )
    s = v.to_json()
    assert json.loads(s)["status"] == "FALSIFIED"
    back = Verdict.from_json(s)
    assert back == v and back.worst_margin == 0.5


def test_real_verdict_round_trips():
    net = small_net(3)
    v = get_verifier("ouroboros", max_boxes=64).verify(
        net, Monotonicity(feature=1, direction="increasing", region=unit_box(3)), time_budget_s=10
    )
    back = Verdict.from_json(v.to_json())
    assert back.to_dict() == v.to_dict()


# --- Registry and the soundness guard -------------------------------------------------------------


def test_registry():
    v = get_verifier("ouroboros", max_boxes=10)
    assert v.name == "ouroboros" and v.settings()["max_boxes"] == 10
    assert {"monotonicity", "output_bound"} <= v.supported_specs
    with pytest.raises(ValueError, match="unknown verifier 'nope'"):
        get_verifier("nope")
    with pytest.raises(ValueError, match="unknown option"):
        get_verifier("ouroboros", max_boxs=10)
    with pytest.raises(ValueError, match="max_boxes must be a positive integer"):
        get_verifier("ouroboros", max_boxes=0)
    with pytest.raises(ValueError, match="order"):
        get_verifier("ouroboros", order="depth")


if "test_only_kind" not in SPEC_REGISTRY:

    @register_spec
    class _OnlyForTests(Spec):
        kind: ClassVar[str] = "test_only_kind"

        def __init__(self, region: Box):
            self.region = region

        def violation(self, net, cex):
            return -math.inf

        def to_dict(self):
            return {"kind": self.kind, "region": self.region.to_dict()}

        @classmethod
        def from_dict(cls, d):
            return cls(Box.from_dict(d["region"]))


def test_unsupported_spec_kind_gives_error_verdict():
    spec = SPEC_REGISTRY["test_only_kind"](unit_box(3))
    v = get_verifier("ouroboros").verify(small_net(), spec)
    assert v.status == Status.ERROR and "does not support spec kind 'test_only_kind'" in v.message
    assert Verdict.from_json(v.to_json()).status == Status.ERROR


def test_spec_network_mismatch_gives_error_verdict():
    v = get_verifier("ouroboros").verify(
        small_net(), Monotonicity(feature=0, direction="increasing", region=unit_box(4))
    )
    assert v.status == Status.ERROR and "region has 4 dimensions but the network has 3 inputs" in v.message
    two_out = random_relu_net(3, (4,), n_outputs=2)
    v = get_verifier("ouroboros").verify(two_out, OutputBound(lower=0.0, upper=None, region=unit_box(3), output=2))
    assert v.status == Status.ERROR and "output 2 does not exist" in v.message
    v = get_verifier("ouroboros").verify(
        small_net(), OutputBound(lower=0.0, upper=None, region=unit_box(3)), time_budget_s=0.0
    )
    assert v.status == Status.ERROR and "time_budget_s" in v.message


@register_verifier
class _LyingVerifier(Verifier):
    """Reports a witness that does not re-check: the guard must drop it and downgrade."""

    name = "test_lying"
    supported_specs = frozenset({"monotonicity"})

    def _verify(self, net, spec, time_budget_s):
        bogus = Counterexample.make(spec.region.lower, spec.region.lower)  # x' == x: not a pair
        return Verdict(status=Status.FALSIFIED, backend=self.name, spec=spec.to_dict(), counterexamples=[bogus])


def test_witness_that_does_not_recheck_is_dropped(caplog):
    net = ReluNetwork([np.array([[1.0], [0.0]])], [np.zeros(1)])
    v = get_verifier("test_lying").verify(net, Monotonicity(feature=0, direction="increasing", region=unit_box(2)))
    assert v.status == Status.UNKNOWN and v.counterexamples == []
    assert "does not re-check" in caplog.text


def test_a_hidden_layer_of_width_zero_is_refused():
    with pytest.raises(ValueError, match="at least one unit"):
        ReluNetwork([np.zeros((2, 0)), np.zeros((0, 1))], [np.zeros(0), np.zeros(1)])


@pytest.mark.parametrize("feature", [True, False, np.bool_(True), 1.0, -1])
def test_a_feature_that_is_not_an_index_is_refused(feature):
    with pytest.raises(ValueError, match="feature"):
        Monotonicity(feature=feature, direction="increasing", region=Box([0.0, 0.0], [1.0, 1.0]))


def test_verdict_json_is_strict_even_with_infinite_margins():
    v = Verdict(
        status=Status.FALSIFIED,
        backend="x",
        spec={},
        best_bound=-math.inf,
        counterexamples=[Counterexample(x=[0.0], x_prime=[1.0], f_x=math.inf, f_x_prime=0.0, margin=math.inf)],
    )
    text = v.to_json()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    back = Verdict.from_json(text)
    assert back.best_bound == -math.inf and back.counterexamples[0].margin == math.inf


@pytest.mark.parametrize("backend", ["ouroboros", "crown"])
def test_an_unfinished_search_reports_its_worst_unresolved_boxes(backend):
    """Certified training pushes on the boxes a round left unproven: a verdict carries the lowest-
    bound ones (a handful, so the JSON stays small), inside the region, and they survive JSON."""
    from verifiers.testing.instances import split_band_net, unit_box
    from verifiers.verdict import MAX_UNRESOLVED_BOXES

    # the band drops 0.04 < tolerance 0.05: the spec holds, but no box cover proves it in slope form
    net = split_band_net(2, drop=0.04)
    spec = Monotonicity(feature=0, direction="increasing", region=unit_box(2), tolerance=0.05)
    v = get_verifier(backend, max_boxes=40, n_samples=1, n_grid=2).verify(net, spec, 20.0)
    assert v.status == Status.UNKNOWN
    boxes = v.unresolved_boxes
    assert 0 < len(boxes) <= MAX_UNRESOLVED_BOXES
    assert [b["bound"] for b in boxes] == sorted(b["bound"] for b in boxes)
    for b in boxes:
        assert spec.region.contains(np.asarray(b["lower"])) and spec.region.contains(np.asarray(b["upper"]))
    assert Verdict.from_json(v.to_json()).unresolved_boxes == boxes
