"""Solving the encodings with HiGHS: one class per box, one method per question."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import highspy
import numpy as np

from verifiers.bounds.linear import LinearBounder
from verifiers.milp.encoding import (
    _add_nogood,
    _encode_derivative,
    _encode_forward,
    _Model,
    _pattern,
    _set_hint,
    _set_objective,
    clear_tiny,
)
from verifiers.network import ReluNetwork


@dataclass
class MilpResult:
    """Outcome of one MILP: ``status`` is "optimal", "cutoff" (no solution below the cutoff: the
    minimum is above it), "time_limit" or "other"."""

    status: str
    objective: float | None = None  # best solution found (None if none)
    dual_bound: float | None = None  # proven lower bound of the minimum (None if unknown)
    x: np.ndarray | None = None
    x_prime: np.ndarray | None = None
    pattern: list[np.ndarray] | None = None  # 0/1 activation pattern of every hidden layer
    seconds: float = 0.0


def _run(h: highspy.Highs, *, time_limit: float, cutoff: float | None, first_only: bool, threads: int, rel_gap: float):
    h.setOptionValue("time_limit", max(float(time_limit), 1e-3))
    h.setOptionValue("threads", int(threads))
    h.setOptionValue("mip_rel_gap", float(rel_gap))
    h.setOptionValue("mip_abs_gap", 1e-9)
    h.setOptionValue("primal_feasibility_tolerance", 1e-9)
    h.setOptionValue("mip_feasibility_tolerance", 1e-9)
    if cutoff is not None:
        h.setOptionValue("objective_bound", float(cutoff))
    if first_only:
        h.setOptionValue("mip_max_improving_sols", 1)
    t = time.perf_counter()
    h.run()
    secs = time.perf_counter() - t
    st = h.getModelStatus()
    info = h.getInfo()
    has_sol = info.primal_solution_status == 2
    sol = np.asarray(h.getSolution().col_value) if has_sol else None
    obj = float(info.objective_function_value) if has_sol else None
    dual = float(info.mip_dual_bound)
    if st == highspy.HighsModelStatus.kOptimal:
        status = "optimal"
        dual = obj if dual is None or not math.isfinite(dual) else dual
    elif st == highspy.HighsModelStatus.kInfeasible and cutoff is not None:
        status = "cutoff"
        dual = float(cutoff)
    elif st == highspy.HighsModelStatus.kTimeLimit:
        status = "time_limit"
    elif st == highspy.HighsModelStatus.kSolutionLimit:
        status = "solution_limit"
    else:
        status = "other:" + h.modelStatusToString(st)
    if cutoff is not None and obj is not None and obj > cutoff:
        # a solution above the cutoff (a start offered to HiGHS) is no answer to "is there one
        # below?", and HiGHS's dual bound is then no bound of the true minimum: all that a finished
        # search proves is "nothing below the cutoff"
        sol = obj = None
        if status == "optimal":
            status, dual = "cutoff", float(cutoff)
        else:
            dual = None
    if not (dual is not None and math.isfinite(dual)):
        dual = None
    return status, obj, dual, sol, secs


class BoxMilp:
    """MILPs over one box of one network (bounds computed once, shared by the encodings)."""

    def __init__(
        self,
        net: ReluNetwork,
        lo,
        hi,
        feature: int | np.ndarray | None = None,
        bounder: LinearBounder | None = None,
        sign: float = 1.0,
    ):
        self.net = net
        self.lo = np.asarray(lo, dtype=np.float64)
        self.hi = np.asarray(hi, dtype=np.float64)
        self.feature = feature
        bounder = bounder or LinearBounder(net, batch_size=1)
        lows, ups, vbounds, lower = bounder.internals(self.lo, self.hi, 0 if feature is None else feature, sign)
        cleared = [clear_tiny(lo_k, up_k) for lo_k, up_k in zip(lows, ups)]
        self.lows = [c[0] for c in cleared]
        self.ups = [c[1] for c in cleared]
        self.vbounds = [clear_tiny(vl, vu) for vl, vu in vbounds]
        # sound lower bound of sign * df/dx_feature (or sign * c . grad f, the direction row's rounding
        # allowed for) over the box; meaningless without a feature
        self.derivative_lower = lower if feature is not None else None

    @property
    def n_unstable(self) -> int:
        return int(sum(np.sum((l < 0) & (u > 0)) for l, u in zip(self.lows, self.ups)))

    # -- derivative ------------------------------------------------------------------------------
    def derivative_model(self, sign: float):
        m = _Model()
        x = m.cols(self.lo, self.hi)
        layers, _last = _encode_forward(m, self.net, x, self.lows, self.ups)
        var, scale, const = _encode_derivative(m, self.net, self.feature, layers, self.vbounds)
        w = self.net.weights[-1][:, 0]
        has = var >= 0
        _set_objective(m, [(var[has], sign * w[has] * scale[has])], float(sign * (const @ w)))
        return m, x, layers

    def min_derivative(
        self,
        sign: float,
        *,
        time_limit: float,
        cutoff: float | None = None,
        first_only: bool = False,
        threads: int = 1,
        rel_gap: float = 1e-4,
        nogood: list[list[np.ndarray]] | None = None,
        hint: np.ndarray | None = None,
    ) -> MilpResult:
        """``min sign * df/dx_i`` over S(box). With ``cutoff``, only solutions below it are sought
        (status "cutoff" proves the minimum is above it). ``hint``: a point of the box whose
        activation pattern is offered to HiGHS as a starting solution."""
        m, x, layers = self.derivative_model(sign)
        h = m.build()
        for pat in nogood or []:
            _add_nogood(h, layers, pat)
        if hint is not None:
            _set_hint(h, self.net, layers, x, np.clip(np.asarray(hint, dtype=np.float64), self.lo, self.hi))
        status, obj, dual, sol, secs = _run(
            h, time_limit=time_limit, cutoff=cutoff, first_only=first_only, threads=threads, rel_gap=rel_gap
        )
        res = MilpResult(status=status, objective=obj, dual_bound=dual, seconds=secs)
        if sol is not None:
            res.x = np.clip(sol[x], self.lo, self.hi)
            res.pattern = _pattern(sol, layers)
        return res

    # -- finite difference ---------------------------------------------------------------------------
    def difference_model(self, sign: float):
        """Two weight-tied copies at ``x`` and ``x' = x + d e_i`` (both in the box), objective
        ``sign * (f(x') - f(x))``; returns ``(model, x columns, x' columns)``."""
        i = self.feature
        m = _Model()
        x = m.cols(self.lo, self.hi)
        d = m.cols([0.0], [self.hi[i] - self.lo[i]])[0]
        xi2 = m.cols([self.lo[i]], [self.hi[i]])[0]
        m.rows([0, 0, 0], [xi2, x[i], d], [1.0, -1.0, -1.0], [0.0], [0.0])  # x'_i = x_i + d
        x2 = x.copy()
        x2[i] = xi2
        _, last1 = _encode_forward(m, self.net, x, self.lows, self.ups)
        _, last2 = _encode_forward(m, self.net, x2, self.lows, self.ups)
        w = self.net.weights[-1][:, 0]
        _set_objective(m, [(last2, sign * w), (last1, -sign * w)], 0.0)
        return m, x, x2

    def min_difference(
        self,
        sign: float,
        *,
        time_limit: float,
        cutoff: float | None = None,
        first_only: bool = False,
        threads: int = 1,
        rel_gap: float = 1e-4,
    ) -> MilpResult:
        """``min sign * (f(x + d e_i) - f(x))`` over ``x, x + d e_i`` in the box, ``d >= 0``."""
        m, x, x2 = self.difference_model(sign)
        h = m.build()
        status, obj, dual, sol, secs = _run(
            h, time_limit=time_limit, cutoff=cutoff, first_only=first_only, threads=threads, rel_gap=rel_gap
        )
        res = MilpResult(status=status, objective=obj, dual_bound=dual, seconds=secs)
        if sol is not None:
            res.x = np.clip(sol[x], self.lo, self.hi)
            res.x_prime = np.clip(sol[x2], self.lo, self.hi)
        return res

    # -- output --------------------------------------------------------------------------------------
    def output_model(self, sign: float):
        """One copy, objective ``sign * f``; returns ``(model, x columns)``."""
        m = _Model()
        x = m.cols(self.lo, self.hi)
        _, last = _encode_forward(m, self.net, x, self.lows, self.ups)
        w = self.net.weights[-1][:, 0]
        _set_objective(m, [(last, sign * w)], float(sign * self.net.biases[-1][0]))
        return m, x

    def min_output(
        self, sign: float, *, time_limit: float, cutoff: float | None = None, threads: int = 1
    ) -> MilpResult:
        """``min sign * f`` over the box."""
        m, x = self.output_model(sign)
        h = m.build()
        status, obj, dual, sol, secs = _run(
            h, time_limit=time_limit, cutoff=cutoff, first_only=False, threads=threads, rel_gap=1e-6
        )
        res = MilpResult(status=status, objective=obj, dual_bound=dual, seconds=secs)
        if sol is not None:
            res.x = np.clip(sol[x], self.lo, self.hi)
        return res

