"""The rigorous confirmation of MILP claims: safe dual bounds hold for any multipliers, and a
claim above the true minimum is never confirmed."""

from __future__ import annotations

import time

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from verifiers.milp import BoxMilp
from verifiers.milp.encoding import _Model, clear_tiny
from verifiers.milp.rigorous import confirm_lower_bound, safe_bound
from verifiers.testing.instances import monotone_net, random_relu_net, unit_box


def _small_lp():
    """min x0 + 2 x1 s.t. x0 + x1 >= 1, x in [0, 3]^2: minimum 1 at (1, 0)."""
    m = _Model()
    x = m.cols([0.0, 0.0], [3.0, 3.0])
    m.rows([0, 0], x, [1.0, 1.0], [1.0], [np.inf])
    m.cost = np.array([1.0, 2.0])
    return m


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=1))
def test_safe_bound_is_a_lower_bound_for_any_multiplier(y):
    a, rl, ru, cl, cu, _, c, off = _small_lp().arrays()
    b = safe_bound(a.T.tocsr(), abs(a).T.tocsr(), np.asarray(y), c, off, rl, ru, cl, cu, 2)
    assert b <= 1.0


def test_confirmation_proves_the_true_minimum_and_refuses_more():
    assert confirm_lower_bound(_small_lp(), 1.0 - 1e-9, time.perf_counter() + 10).proven
    assert not confirm_lower_bound(_small_lp(), 1.0 + 1e-9, time.perf_counter() + 10).proven


def test_derivative_claims_are_confirmed_only_when_true():
    box = unit_box(3)
    mono = monotone_net(3, (8, 8), increasing=(0,), seed=3)
    bm = BoxMilp(mono, box.lower, box.upper, feature=0)
    assert confirm_lower_bound(bm.derivative_model(1.0)[0], 0.0, time.perf_counter() + 20).proven
    net = random_relu_net(3, (8, 8), seed=5)
    bm = BoxMilp(net, box.lower, box.upper, feature=0)
    true_min = bm.min_derivative(1.0, time_limit=20.0, rel_gap=0.0).objective
    assert not confirm_lower_bound(bm.derivative_model(1.0)[0], true_min + 1e-6, time.perf_counter() + 20).proven


def test_tiny_bounds_move_outward_only():
    lo, hi = clear_tiny(np.array([-1e-9, 5e-8, -1.0, 0.0]), np.array([1e-9, 6e-8, 2.0, 0.0]))
    assert list(lo) == [-1e-7, 0.0, -1.0, 0.0] and list(hi) == [1e-7, 1e-7, 2.0, 0.0]
