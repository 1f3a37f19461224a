"""The base class' guard: only witnesses that re-check beyond rounding error leave a backend."""

from __future__ import annotations

import numpy as np
import pytest

from verifiers import Box, Counterexample, Monotonicity, ReluNetwork, Status, Verdict, Verifier
from verifiers.base import numeric_slack


class Scripted(Verifier):
    """A backend that reports whatever it is told to, to exercise the guard."""

    name = "scripted"
    supported_specs = frozenset({"monotonicity"})

    def _verify(self, net, spec, time_budget_s):
        return Verdict(status=self.options["status"], backend=self.name, spec=spec.to_dict(),
                       counterexamples=[Counterexample.make(x, xp) for x, xp in self.options["pairs"]])  # fmt: skip


def line(slope: float, bias: float = 0.3) -> ReluNetwork:
    return ReluNetwork([np.array([[slope]]), np.array([[1.0]])], [np.array([bias]), np.array([0.0])])


SPEC = Monotonicity(feature=0, direction="increasing", region=Box([0.0], [1.0]))


def test_real_violation_is_kept_with_recomputed_values():
    v = Scripted(status=Status.FALSIFIED, pairs=[([0.2], [0.7])]).verify(line(-1.0, bias=1.0), SPEC)
    assert v.status == Status.FALSIFIED
    (c,) = v.counterexamples
    assert c.f_x == pytest.approx(0.8) and c.f_x_prime == pytest.approx(0.3) and c.margin == pytest.approx(0.5)


@pytest.mark.parametrize(
    "pair",
    [([0.7], [0.2]),  # x' below x: not a pair of the spec
     ([0.2], [1.5]),  # x' outside the region
     ([0.2], [0.2])],  # d = 0
)  # fmt: skip
def test_malformed_witnesses_are_dropped_and_falsified_becomes_unknown(pair):
    v = Scripted(status=Status.FALSIFIED, pairs=[pair]).verify(line(-1.0, bias=1.0), SPEC)
    assert v.status == Status.UNKNOWN and not v.counterexamples and "re-checked" in v.message


def test_flat_network_rounding_is_not_a_counterexample():
    # f is exactly constant; any float64 difference is rounding and must not count.
    net = ReluNetwork([np.array([[0.0], [1e-3]]), np.array([[1.0]])], [np.array([0.1]), np.array([0.0])])
    spec = Monotonicity(feature=0, direction="increasing", region=Box([0.0, 0.0], [1.0, 1.0]))
    v = Scripted(status=Status.FALSIFIED, pairs=[([0.1, 0.3], [0.9, 0.3])]).verify(net, spec)
    assert v.status == Status.UNKNOWN
    assert numeric_slack(net, Counterexample.make([0.1, 0.3], [0.9, 0.3])) > 0


def test_verified_with_a_real_counterexample_is_a_backend_bug():
    with pytest.raises(AssertionError, match="claimed VERIFIED"):
        Scripted(status=Status.VERIFIED, pairs=[([0.2], [0.7])]).verify(line(-1.0, bias=1.0), SPEC)


def test_tiny_real_violation_beyond_the_error_bound_is_kept():
    v = Scripted(status=Status.FALSIFIED, pairs=[([0.0], [1.0])]).verify(line(-1e-9, bias=1.0), SPEC)
    assert v.status == Status.FALSIFIED and v.counterexamples[0].margin == pytest.approx(1e-9, rel=1e-6)


def test_a_spec_whose_feature_is_fixed_is_vacuously_verified_for_every_backend():
    spec = Monotonicity(feature=0, direction="increasing", region=Box([0.4, 0.0], [0.4, 1.0]))
    net = ReluNetwork([np.array([[-1.0], [1.0]]), np.array([[1.0]])], [np.array([0.0]), np.array([0.0])])
    v = Scripted(status=Status.FALSIFIED, pairs=[]).verify(net, spec)  # the backend is never asked
    assert v.status == Status.VERIFIED and "no pair (x, x') exists" in v.message
