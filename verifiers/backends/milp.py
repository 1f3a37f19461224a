"""Exact (complete) verification by mixed-integer linear programming, solved with HiGHS.

``get_verifier("milp")`` decides a spec over its whole region with one MILP (or a few); the same
encodings serve as the exact oracle of the tests and the benchmark, and as the last resort of the
crown backend's hybrid mode (``get_verifier("crown", hybrid_milp=True)``), which hands it the boxes
that bound propagation leaves unresolved.

Encodings (one binary per *unstable* hidden unit; stable units are fixed by their bounds)
----------------------------------------------------------------------------------------
Pre-activation bounds ``l <= z <= u`` come from :class:`verifiers.linear_bounds.LinearBounder`
(CROWN intersected with interval propagation, so the tighter of the two per neuron, with a
rounding allowance). For an unstable unit (``l < 0 < u``) with binary ``delta``:

* ReLU: ``h >= z``, ``h >= 0``, ``h <= u delta``, ``h <= z - l (1 - delta)``; ``delta = 1`` forces
  ``h = z >= 0``, ``delta = 0`` forces ``h = 0 >= z``. Stable units: ``h = z`` or ``h = 0``.
* Derivative (forward mode along ``e_i``): ``v_0 = W_0[i]``; ``g_0 = v_0 delta_0`` (a constant
  times a binary: linear); ``v_{k+1} = g_k W_{k+1}`` (linear); for ``k >= 1``, ``g_k = v_k delta_k``
  with sound bounds ``vl <= v_k <= vu`` (from the same LinearBounder) is linearised exactly by
  ``vl delta <= g <= vu delta``, ``v - vu (1 - delta) <= g <= v - vl (1 - delta)``. The objective is
  ``min sign * df/dx_i = sign * g_{L-2} W_{L-1}``. Every feasible point is a pair ``(x, delta)``
  with ``delta`` consistent with the signs of ``z(x)`` (either value where ``z = 0``): the set
  ``S(B)`` of :mod:`verifiers.linear_bounds`, so the optimum is ``min over S(B)`` exactly.
* Difference (tolerance form): ``x`` and ``x' = x + d e_i`` with ``d in [0, hi_i - lo_i]``, two
  weight-tied copies of the ReLU encoding (same bounds: both points lie in the box), objective
  ``min sign * (f(x') - f(x))``. This is exactly the spec: verified iff the minimum is
  ``>= -tolerance``.
* Output bound: one copy, ``min f`` and ``min -f``.

Deciding monotonicity (and the measure-zero kinks)
--------------------------------------------------
*Soundness of VERIFIED.* If ``min over S(B) of sign * D >= -t / W_i`` then the spec holds with
tolerance ``t`` (the argument of :mod:`verifiers.linear_bounds`: the derivative along the
segment is, almost everywhere, ``D`` at a point of ``S(B)``; for ``t = 0`` this is exact
monotonicity). With ``t > 0`` and a negative derivative minimum the difference MILP decides the
spec exactly.

*Counterexamples from a negative derivative minimum.* ``S(B)`` contains *degenerate* patterns: at
a point where some ``z = 0`` the MILP may pick either value of ``delta`` although a nearby segment
along ``e_i`` only ever sees one of them (two units with identical pre-activations, one "on" and
one "off", for instance). A negative ``D`` at such a pattern is not a real slope. Hence the
minimiser ``(x*, delta*)`` is turned into a pair by an LP over the *region of the pattern*
``P = {x in B : z_k(x) >= 0 where delta = 1, <= 0 where delta = 0}`` (a polytope, on which ``f``
is the affine function of the pattern, so ``f(x + d e_i) - f(x) = D(delta*) d`` exactly): maximise
``d`` subject to ``x in P`` and ``x + d e_i in P``. ``d > 0`` gives a true violation of size
``-sign D d``. ``d = 0`` means the pattern is degenerate along ``e_i``; it is excluded by a no-good
cut on the binaries and the MILP is solved again (up to ``max_nogood`` times, then the difference
MILP decides). For tolerance 0, ``min D >= 0`` is therefore necessary and sufficient for
monotonicity over the non-degenerate patterns, and the degenerate ones can never produce a
wrong FALSIFIED (the re-check in the base class is the final judge of every witness anyway).

*Solver tolerances.* HiGHS works in floating point with feasibility tolerances, so a minimum it
reports can be off by about those. A VERIFIED verdict therefore needs the minimum to clear the
spec's threshold by ``abs_tol`` (default ``1e-7``) on the *safe* side: a search with objective
cutoff ``abs_tol - t / W_i`` that finds nothing proves the box. A minimum within ``abs_tol`` of the
threshold (a network that is exactly flat somewhere, say) is left undecided by the MILP rather
than accepted; the sound linear bound tried first proves such boxes when it can.

Options: ``abs_tol`` (see above), ``worst_case`` (default True: optimise to the worst derivative
and, when the spec is falsified and time remains, also run the difference MILP for the pair of
largest violation; False: stop at the first violating pattern), ``max_nogood`` (20), ``threads``
(HiGHS threads, 1), ``mip_rel_gap`` (1e-4).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import highspy
import numpy as np
import scipy.sparse as sp
from scipy.optimize import linprog

from verifiers.base import Verifier, register_verifier
from verifiers.linear_bounds import LinearBounder
from verifiers.network import ReluNetwork
from verifiers.specs import Monotonicity, OutputBound, Spec
from verifiers.verdict import Counterexample, Status, Verdict

_INF = highspy.kHighsInf


# ----------------------------------------------------------------------------------------------
# model building
# ----------------------------------------------------------------------------------------------


class _Model:
    """A MILP assembled column by column and row block by row block (COO), passed to HiGHS."""

    def __init__(self) -> None:
        self.lo: list[np.ndarray] = []
        self.hi: list[np.ndarray] = []
        self.integer: list[np.ndarray] = []
        self.n = 0
        self.rows_r: list[np.ndarray] = []
        self.rows_c: list[np.ndarray] = []
        self.rows_v: list[np.ndarray] = []
        self.row_lo: list[np.ndarray] = []
        self.row_hi: list[np.ndarray] = []
        self.m = 0
        self.cost = None
        self.offset = 0.0

    def cols(self, lo, hi, integer: bool = False) -> np.ndarray:
        lo = np.asarray(lo, dtype=np.float64).reshape(-1)
        hi = np.asarray(hi, dtype=np.float64).reshape(-1)
        k = lo.size
        idx = np.arange(self.n, self.n + k)
        self.lo.append(lo)
        self.hi.append(hi)
        self.integer.append(np.full(k, integer))
        self.n += k
        return idx

    def rows(self, r, c, v, lo, hi) -> None:
        """Rows ``lo <= sum v * x[c] <= hi`` given in COO with row ids ``r`` local to the block."""
        lo = np.asarray(lo, dtype=np.float64).reshape(-1)
        hi = np.asarray(hi, dtype=np.float64).reshape(-1)
        self.rows_r.append(np.asarray(r, dtype=np.int64) + self.m)
        self.rows_c.append(np.asarray(c, dtype=np.int64))
        self.rows_v.append(np.asarray(v, dtype=np.float64))
        self.row_lo.append(lo)
        self.row_hi.append(hi)
        self.m += lo.size

    def build(self) -> highspy.Highs:
        lp = highspy.HighsLp()
        lp.num_col_ = self.n
        lp.num_row_ = self.m
        cost = np.zeros(self.n) if self.cost is None else self.cost
        lp.col_cost_ = cost
        lp.offset_ = float(self.offset)
        lp.col_lower_ = np.concatenate(self.lo)
        lp.col_upper_ = np.concatenate(self.hi)
        lp.row_lower_ = np.concatenate(self.row_lo) if self.m else np.zeros(0)
        lp.row_upper_ = np.concatenate(self.row_hi) if self.m else np.zeros(0)
        r = np.concatenate(self.rows_r) if self.rows_r else np.zeros(0, np.int64)
        c = np.concatenate(self.rows_c) if self.rows_c else np.zeros(0, np.int64)
        v = np.concatenate(self.rows_v) if self.rows_v else np.zeros(0)
        keep = v != 0
        a = sp.csc_matrix((v[keep], (r[keep], c[keep])), shape=(self.m, self.n))
        a.sum_duplicates()
        a.sort_indices()
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = a.indptr.astype(np.int32)
        lp.a_matrix_.index_ = a.indices.astype(np.int32)
        lp.a_matrix_.value_ = a.data
        integ = np.concatenate(self.integer)
        lp.integrality_ = [highspy.HighsVarType.kInteger if i else highspy.HighsVarType.kContinuous for i in integ]
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        h.passModel(lp)
        return h


@dataclass
class _Layer:
    z: np.ndarray  # column ids of z_k
    h: np.ndarray  # column ids of h_k
    delta: np.ndarray  # column id of the binary for unstable units, -1 otherwise
    act: np.ndarray  # bool
    unst: np.ndarray  # bool


def _linear_rows(m: _Model, out_idx, in_idx, w, const):
    """Rows ``out - in @ w = const`` (w of shape (len(in), len(out)))."""
    n_in, n_out = w.shape
    rr = np.concatenate([np.arange(n_out), np.repeat(np.arange(n_out), n_in)])
    cc = np.concatenate([out_idx, np.tile(in_idx, n_out)])
    vv = np.concatenate([np.ones(n_out), -w.T.reshape(-1)])
    m.rows(rr, cc, vv, const, const)


def _encode_forward(m: _Model, net: ReluNetwork, x_idx: np.ndarray, lows, ups) -> tuple[list[_Layer], np.ndarray]:
    """ReLU encoding of the hidden layers on input columns ``x_idx``; returns the layers and the
    column ids of the last hidden layer's outputs (or ``x_idx`` for a purely linear network)."""
    prev = x_idx
    layers = []
    for k in range(len(net.weights) - 1):
        w, b = net.weights[k], net.biases[k]
        l, u = np.asarray(lows[k], dtype=np.float64), np.asarray(ups[k], dtype=np.float64)
        u = np.maximum(u, l)
        n = w.shape[1]
        z = m.cols(l, u)
        _linear_rows(m, z, prev, w, b)
        act = l >= 0
        unst = (l < 0) & (u > 0)
        h_lo = np.where(act, l, 0.0)
        h_hi = np.where(act | unst, np.maximum(u, 0.0), 0.0)
        hcol = m.cols(h_lo, h_hi)
        ia = np.flatnonzero(act)
        if ia.size:  # h = z
            r = np.arange(ia.size)
            m.rows(
                np.concatenate([r, r]),
                np.concatenate([hcol[ia], z[ia]]),
                np.r_[np.ones(ia.size), -np.ones(ia.size)],
                0.0 * r,
                0.0 * r,
            )
        iu = np.flatnonzero(unst)
        delta = np.full(n, -1)
        if iu.size:
            d = m.cols(np.zeros(iu.size), np.ones(iu.size), integer=True)
            delta[iu] = d
            r = np.arange(iu.size)
            hh, zz, lu, uu = hcol[iu], z[iu], l[iu], u[iu]
            one = np.ones(iu.size)
            # h - z >= 0
            m.rows(np.r_[r, r], np.r_[hh, zz], np.r_[one, -one], 0 * one, np.full(iu.size, _INF))
            # h - u delta <= 0
            m.rows(np.r_[r, r], np.r_[hh, d], np.r_[one, -uu], np.full(iu.size, -_INF), 0 * one)
            # h - z - l delta <= -l
            m.rows(np.r_[r, r, r], np.r_[hh, zz, d], np.r_[one, -one, -lu], np.full(iu.size, -_INF), -lu)
        layers.append(_Layer(z=z, h=hcol, delta=delta, act=act, unst=unst))
        prev = hcol
    return layers, prev


def _encode_derivative(m: _Model, net: ReluNetwork, feature: int, layers: list[_Layer], vbounds):
    """Adds the derivative chain; returns ``(var, scale, const)`` describing ``g_{L-2}`` per unit
    (``g_j = scale_j * x[var_j] + const_j``, ``var_j = -1`` for none)."""
    v0 = net.weights[0][feature].astype(np.float64)
    lay = layers[0]
    var = np.where(lay.unst, lay.delta, -1)
    scale = np.where(lay.unst, v0, 0.0)
    const = np.where(lay.act, v0, 0.0)
    for k in range(1, len(layers)):
        w = net.weights[k]
        vl, vu = (np.asarray(a, dtype=np.float64) for a in vbounds[k - 1])
        vu = np.maximum(vu, vl)
        n = w.shape[1]
        v = m.cols(vl, vu)
        # v - sum_j w[j] * scale_j * x[var_j] = sum_j w[j] * const_j
        has = np.flatnonzero(var >= 0)
        rr = np.concatenate([np.arange(n), np.repeat(np.arange(n), has.size)])
        cc = np.concatenate([v, np.tile(var[has], n)])
        vv = np.concatenate([np.ones(n), -(w[has] * scale[has][:, None]).T.reshape(-1)])
        rhs = const @ w
        m.rows(rr, cc, vv, rhs, rhs)
        lay = layers[k]
        iu = np.flatnonzero(lay.unst)
        new_var = np.full(n, -1)
        new_var[lay.act] = v[lay.act]
        if iu.size:
            g = m.cols(np.minimum(vl[iu], 0.0), np.maximum(vu[iu], 0.0))
            new_var[iu] = g
            d = lay.delta[iu]
            r = np.arange(iu.size)
            one = np.ones(iu.size)
            a, b = vl[iu], vu[iu]
            ninf, pinf = np.full(iu.size, -_INF), np.full(iu.size, _INF)
            m.rows(np.r_[r, r], np.r_[g, d], np.r_[one, -b], ninf, 0 * one)  # g <= vu delta
            m.rows(np.r_[r, r], np.r_[g, d], np.r_[one, -a], 0 * one, pinf)  # g >= vl delta
            m.rows(np.r_[r, r, r], np.r_[g, v[iu], d], np.r_[one, -one, -a], ninf, -a)  # g <= v - vl (1 - delta)
            m.rows(np.r_[r, r, r], np.r_[g, v[iu], d], np.r_[one, -one, -b], -b, pinf)  # g >= v - vu (1 - delta)
        var = new_var
        scale = (var >= 0).astype(np.float64)
        const = np.zeros(n)
    return var, scale, const


def _set_objective(m: _Model, terms: list[tuple[np.ndarray, np.ndarray]], offset: float) -> None:
    cost = np.zeros(m.n)
    for idx, coef in terms:
        np.add.at(cost, idx, coef)
    m.cost = cost
    m.offset = offset


# ----------------------------------------------------------------------------------------------
# solving
# ----------------------------------------------------------------------------------------------


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


def _pattern(sol: np.ndarray, layers: list[_Layer]) -> list[np.ndarray]:
    out = []
    for lay in layers:
        p = lay.act.astype(np.float64)
        iu = np.flatnonzero(lay.unst)
        p[iu] = np.round(sol[lay.delta[iu]])
        out.append(p)
    return out


class BoxMilp:
    """MILPs over one box of one network (bounds computed once, shared by the encodings)."""

    def __init__(
        self,
        net: ReluNetwork,
        lo,
        hi,
        feature: int | None = None,
        bounder: LinearBounder | None = None,
        sign: float = 1.0,
    ):
        self.net = net
        self.lo = np.asarray(lo, dtype=np.float64)
        self.hi = np.asarray(hi, dtype=np.float64)
        self.feature = feature
        bounder = bounder or LinearBounder(net, batch_size=1)
        self.lows, self.ups, self.vbounds, lower = bounder.internals(
            self.lo, self.hi, 0 if feature is None else feature, sign
        )
        # sound lower bound of sign * df/dx_feature over the box (meaningless without a feature)
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
    def min_output(
        self, sign: float, *, time_limit: float, cutoff: float | None = None, threads: int = 1
    ) -> MilpResult:
        """``min sign * f`` over the box."""
        m = _Model()
        x = m.cols(self.lo, self.hi)
        _, last = _encode_forward(m, self.net, x, self.lows, self.ups)
        w = self.net.weights[-1][:, 0]
        _set_objective(m, [(last, sign * w)], float(sign * self.net.biases[-1][0]))
        h = m.build()
        status, obj, dual, sol, secs = _run(
            h, time_limit=time_limit, cutoff=cutoff, first_only=False, threads=threads, rel_gap=1e-6
        )
        res = MilpResult(status=status, objective=obj, dual_bound=dual, seconds=secs)
        if sol is not None:
            res.x = np.clip(sol[x], self.lo, self.hi)
        return res


def point_pattern(net: ReluNetwork, x: np.ndarray) -> list[np.ndarray]:
    """The activation pattern ``1[z_k(x) > 0]`` of every hidden layer at ``x``."""
    h = np.asarray(x, dtype=np.float64)
    out = []
    for w, b in zip(net.weights[:-1], net.biases[:-1]):
        z = h @ w + b
        out.append((z > 0).astype(np.float64))
        h = np.maximum(z, 0.0)
    return out


def _set_hint(h: highspy.Highs, net: ReluNetwork, layers: list[_Layer], x_cols: np.ndarray, x: np.ndarray) -> None:
    """Offer the binaries of ``x``'s pattern (and ``x``) as a starting solution; HiGHS completes it."""
    idx, val = [int(c) for c in x_cols], [float(v) for v in x]
    for lay, p in zip(layers, point_pattern(net, x)):
        iu = np.flatnonzero(lay.unst)
        idx += [int(c) for c in lay.delta[iu]]
        val += [float(v) for v in p[iu]]
    h.setSolution(len(idx), np.asarray(idx, dtype=np.int32), np.asarray(val))


def _add_nogood(h: highspy.Highs, layers: list[_Layer], pattern: list[np.ndarray]) -> None:
    """Exclude one assignment of the binaries: sum_{delta*=1} (1 - delta) + sum_{delta*=0} delta >= 1."""
    idx, val = [], []
    ones = 0
    for lay, p in zip(layers, pattern):
        iu = np.flatnonzero(lay.unst)
        for j in iu:
            idx.append(int(lay.delta[j]))
            if p[j] > 0.5:
                val.append(-1.0)
                ones += 1
            else:
                val.append(1.0)
    if idx:
        h.addRow(1.0 - ones, _INF, len(idx), np.asarray(idx, dtype=np.int32), np.asarray(val))


# ----------------------------------------------------------------------------------------------
# from a derivative pattern to a concrete pair
# ----------------------------------------------------------------------------------------------


def pattern_affine(net: ReluNetwork, pattern: list[np.ndarray]):
    """Affine maps ``z_k(x) = x A_k + c_k`` of every hidden layer under a fixed activation
    pattern, and the pattern's gradient of the output."""
    a = np.eye(net.n_inputs)
    c = np.zeros(net.n_inputs)
    maps = []
    for k, p in enumerate(pattern):
        a = a @ net.weights[k]
        c = c @ net.weights[k] + net.biases[k]
        maps.append((a.copy(), c.copy()))
        a = a * p[None, :]
        c = c * p
    grad = (a @ net.weights[-1])[:, 0]
    return maps, grad


def segment_in_pattern(net: ReluNetwork, pattern: list[np.ndarray], lo, hi, feature: int, x_hint=None):
    """The longest segment ``[x, x + d e_i]`` inside the box on which every hidden unit keeps the
    sign given by ``pattern`` (an LP). Returns ``(x, d, slope)`` with ``slope = df/dx_i`` there,
    or None if the LP fails. ``d == 0`` means the pattern's region is degenerate along ``e_i``."""
    lo = np.asarray(lo, dtype=np.float64)
    hi = np.asarray(hi, dtype=np.float64)
    n = lo.size
    maps, grad = pattern_affine(net, pattern)
    rows, rhs = [], []
    for (a, c), p in zip(maps, pattern):
        s = np.where(p > 0.5, 1.0, -1.0)  # need s * (x a + c) >= 0  <=>  -s * a^T x <= s * c
        at = (a * s[None, :]).T  # (units, n)
        sc = s * c
        # at x and at x + d e_i
        rows.append(np.hstack([-at, np.zeros((at.shape[0], 1))]))
        rhs.append(sc)
        rows.append(np.hstack([-at, -at[:, feature : feature + 1]]))
        rhs.append(sc)
    rows.append(np.hstack([np.eye(n)[feature : feature + 1], np.ones((1, 1))]))  # x_i + d <= hi_i
    rhs.append(hi[feature : feature + 1])
    a_ub = np.vstack(rows)
    b_ub = np.concatenate(rhs)
    # scale rows for conditioning
    norms = np.maximum(np.abs(a_ub).max(axis=1), 1e-300)
    a_ub = a_ub / norms[:, None]
    b_ub = b_ub / norms
    cost = np.zeros(n + 1)
    cost[-1] = -1.0
    bounds = [(lo[j], hi[j]) for j in range(n)] + [(0.0, hi[feature] - lo[feature])]
    try:
        res = linprog(cost, A_ub=a_ub, b_ub=b_ub, bounds=bounds, method="highs")
    except ValueError:
        return None
    if res.status != 0:
        return None
    x = np.clip(res.x[:n], lo, hi)
    d = float(max(res.x[n], 0.0))
    d = min(d, hi[feature] - x[feature])
    return x, d, float(grad[feature])


# ----------------------------------------------------------------------------------------------
# deciding one box
# ----------------------------------------------------------------------------------------------


@dataclass
class BoxDecision:
    status: str  # "verified", "falsified", "unknown"
    bound: float | None = None  # proven lower bound of the objective (sign * df/dx_i, or the slack)
    counterexamples: list[Counterexample] = field(default_factory=list)
    message: str = ""
    seconds: float = 0.0
    milps: int = 0


def decide_monotonicity_box(
    net: ReluNetwork,
    spec: Monotonicity,
    lo,
    hi,
    *,
    deadline: float,
    bounder: LinearBounder | None = None,
    abs_tol: float = 1e-7,
    worst_case: bool = True,
    max_nogood: int = 20,
    threads: int = 1,
    rel_gap: float = 1e-4,
    presolve_bounds: bool = True,
    n_samples: int = 256,
    seed: int = 0,
) -> BoxDecision:
    """Decide ``spec`` restricted to the box ``[lo, hi]`` (pairs inside the box) with MILPs.

    VERIFIED: ``min sign * df/dx_i >= abs_tol - t / W_i`` (``W_i`` the width of the *spec's
    region* along ``i``, so that the verdicts of boxes of a cover combine), or the difference MILP
    shows ``min sign * (f(x') - f(x)) >= abs_tol - t`` on the box: the solver's minimum must clear
    the threshold by its tolerance. FALSIFIED: a pair, to be
    re-checked by the caller.

    Before any MILP: with ``presolve_bounds`` the sound CROWN bound of the box is tried (it may
    already prove it), and ``n_samples`` random points are searched for a negative slope (a pattern
    found there is turned into a pair by the same segment LP, or offered to HiGHS as a start).
    """
    start = time.perf_counter()
    i = spec.feature
    sign = spec.sign
    tol = float(spec.tolerance)
    w_region = float(spec.region.widths[i])
    lo = np.asarray(lo, dtype=np.float64)
    hi = np.asarray(hi, dtype=np.float64)
    out = BoxDecision(status="unknown")

    def left() -> float:
        return deadline - time.perf_counter()

    if hi[i] <= lo[i]:
        out.status = "verified"
        out.message = "feature fixed in the box"
        return out
    if len(net.weights) == 1:
        slope = sign * float(net.weights[0][i, 0])
        out.bound = slope
        if slope >= -tol / w_region:
            out.status = "verified"
        else:
            x = lo.copy()
            xp = lo.copy()
            xp[i] = hi[i]
            out.status = "falsified"
            out.counterexamples.append(Counterexample.make(x, xp))
        return out
    cutoff = abs_tol - tol / w_region  # a proof must clear the threshold by abs_tol (solver tolerance)
    bm = BoxMilp(net, lo, hi, feature=i, bounder=bounder, sign=sign)
    if presolve_bounds:
        lb = bm.derivative_lower
        if lb + tol / w_region >= 0:
            out.status = "verified"
            out.bound = lb
            out.message = f"sound linear bound {lb:.3g} (no MILP needed)"
            out.seconds = time.perf_counter() - start
            return out
    min_len = 1e-12 * max(hi[i] - lo[i], 1e-300)
    hint = None
    if n_samples > 0:
        rng = np.random.default_rng(seed)
        pts = rng.uniform(lo, hi, size=(n_samples, lo.size))
        slopes = sign * np.asarray(net.gradient(pts, i), dtype=np.float64)
        j = int(np.argmin(slopes))
        hint = pts[j]
        if slopes[j] < cutoff:
            seg = segment_in_pattern(net, point_pattern(net, hint), lo, hi, i)
            if seg is not None and seg[1] > min_len and sign * seg[2] < 0 and -sign * seg[2] * seg[1] > tol:
                x, d, slope = seg
                xp = x.copy()
                xp[i] = x[i] + d
                out.counterexamples.append(Counterexample.make(x, xp))
                if not worst_case:
                    out.status = "falsified"
                    out.message = f"sampled slope {sign * slope:.4g} along a segment of length {d:.3g}"
                    out.seconds = time.perf_counter() - start
                    return out
    nogood: list[list[np.ndarray]] = []
    need_difference = False
    while True:
        if left() <= 0:
            out.message = "time limit before the derivative MILP finished"
            break
        r = bm.min_derivative(
            sign,
            time_limit=left(),
            cutoff=None if worst_case else cutoff,
            first_only=not worst_case,
            threads=threads,
            rel_gap=rel_gap,
            nogood=nogood,
            hint=hint if worst_case else None,
        )
        out.milps += 1
        if not nogood and r.dual_bound is not None and r.status in ("optimal", "cutoff"):
            out.bound = r.dual_bound
        if r.status == "cutoff" or (r.status == "optimal" and r.objective is not None and r.objective > cutoff):
            out.status = "verified"
            shown = out.bound if out.bound is not None else cutoff
            out.message = f"derivative MILP: min sign*df/dx_i >= {shown:.3g}" + (
                f" after excluding {len(nogood)} degenerate pattern(s)" if nogood else ""
            )
            break
        if r.pattern is None or r.objective is None:
            out.message = f"derivative MILP ended with status {r.status} and no solution"
            break
        seg = segment_in_pattern(net, r.pattern, lo, hi, i)
        if seg is not None and seg[1] > min_len and sign * seg[2] < 0:
            x, d, slope = seg
            if -sign * slope * d > tol:
                xp = x.copy()
                xp[i] = x[i] + d
                out.status = "falsified"
                out.counterexamples.insert(0, Counterexample.make(x, xp))
                out.message = f"derivative MILP: slope {sign * slope:.4g} along a segment of length {d:.3g}"
            else:  # a real negative slope, but its segment is too short to exceed the tolerance
                need_difference = True
            break
        if seg is not None and seg[1] > min_len:
            # a real pattern with slope >= 0 at the optimum: the minimum lies within the solver's
            # tolerance of the threshold, which the MILP cannot decide soundly
            out.message = "derivative MILP: the minimum is within abs_tol of the threshold (undecided)"
            break
        if len(nogood) >= max_nogood:
            need_difference = True
            break
        nogood.append(r.pattern)  # degenerate along e_i (never realised on a segment): exclude it
    if out.status == "falsified" and worst_case and left() > 0:
        r = bm.min_difference(sign, time_limit=left(), cutoff=-tol, threads=threads, rel_gap=rel_gap)
        out.milps += 1
        if r.x is not None and r.x_prime is not None and r.objective is not None and r.objective < -tol:
            out.counterexamples.insert(0, Counterexample.make(r.x, r.x_prime))
    if need_difference and left() > 0:
        # the exact finite-difference MILP decides
        r = bm.min_difference(sign, time_limit=left(), cutoff=-tol + abs_tol, threads=threads, rel_gap=rel_gap)
        out.milps += 1
        if r.status == "cutoff" or (r.status == "optimal" and r.objective is not None and r.objective > -tol + abs_tol):
            out.status = "verified"
            out.message = f"difference MILP: min sign*(f(x')-f(x)) >= {-tol + abs_tol:.3g}"
        elif r.x is not None and r.objective is not None and r.objective < -tol:
            out.status = "falsified"
            out.counterexamples.append(Counterexample.make(r.x, r.x_prime))
            out.message = f"difference MILP: worst drop {-r.objective:.4g}"
        else:
            out.message = f"difference MILP ended with status {r.status}"
    if out.counterexamples and out.status != "falsified":
        # a concrete pair from the sampling stage outranks an undecided (or numerically off) MILP
        out.status = "falsified"
        out.message = (out.message + "; " if out.message else "") + "sampled pair along a negative-slope segment"
    out.seconds = time.perf_counter() - start
    return out


def decide_output_box(
    net: ReluNetwork,
    spec: OutputBound,
    lo,
    hi,
    *,
    deadline: float,
    bounder: LinearBounder | None = None,
    abs_tol: float = 1e-7,
    threads: int = 1,
) -> BoxDecision:
    """Decide ``lower <= f <= upper`` on a box with two MILPs (min f, max f)."""
    start = time.perf_counter()
    bm = BoxMilp(net, lo, hi, feature=None, bounder=bounder)
    out = BoxDecision(status="verified")
    slack = math.inf
    for side, sign, ref in (("lower", 1.0, spec.lower), ("upper", -1.0, spec.upper)):
        if ref is None:
            continue
        left = deadline - time.perf_counter()
        if left <= 0:
            out.status = "unknown"
            out.message = "time limit"
            break
        # min sign * f >= sign * ref  <=>  spec side holds
        r = bm.min_output(sign, time_limit=left, cutoff=sign * ref + abs_tol, threads=threads)
        out.milps += 1
        if r.status == "cutoff" or (
            r.status == "optimal" and r.objective is not None and r.objective >= sign * ref + abs_tol
        ):
            if r.dual_bound is not None:
                slack = min(slack, r.dual_bound - sign * ref)
            continue
        if r.x is not None and r.objective is not None and r.objective < sign * ref:
            out.status = "falsified"
            out.counterexamples.append(Counterexample.make(r.x))
            out.message = f"output MILP: f = {sign * r.objective:.6g} violates the {side} bound"
            break
        out.status = "unknown"
        out.message = f"output MILP ({side}) ended with status {r.status}"
        break
    out.bound = None if not math.isfinite(slack) else slack
    out.seconds = time.perf_counter() - start
    return out


# ----------------------------------------------------------------------------------------------
# the backend
# ----------------------------------------------------------------------------------------------


@register_verifier
class MilpVerifier(Verifier):
    """Exact verification with one MILP per question (see the module docstring)."""

    name: ClassVar[str] = "milp"
    supported_specs: ClassVar[frozenset[str]] = frozenset({"monotonicity", "output_bound"})
    _DEFAULTS: ClassVar[dict[str, Any]] = {
        "abs_tol": 1e-7,
        "worst_case": True,
        "max_nogood": 20,
        "threads": 1,
        "mip_rel_gap": 1e-4,
    }

    def __init__(self, **options: Any):
        unknown = sorted(set(options) - set(self._DEFAULTS))
        if unknown:
            raise ValueError(f"milp: unknown option(s) {unknown}; known: {sorted(self._DEFAULTS)}")
        opts = {**self._DEFAULTS, **options}
        if not (isinstance(opts["abs_tol"], (int, float)) and 0 <= opts["abs_tol"] < 1):
            raise ValueError(f"milp: abs_tol must be a number in [0, 1), got {opts['abs_tol']!r}")
        for key in ("max_nogood", "threads"):
            v = opts[key]
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"milp: {key} must be a non-negative integer, got {v!r}")
        super().__init__(**opts)

    def _verify(self, net: ReluNetwork, spec: Spec, time_budget_s: float) -> Verdict:
        o = self.options
        base = {"backend": self.name, "spec": spec.to_dict(), "settings": self.settings()}
        deadline = time.perf_counter() + time_budget_s
        region = spec.region
        if isinstance(spec, Monotonicity):
            dec = decide_monotonicity_box(
                net,
                spec,
                region.lower,
                region.upper,
                deadline=deadline,
                abs_tol=o["abs_tol"],
                worst_case=o["worst_case"],
                max_nogood=o["max_nogood"],
                threads=o["threads"],
                rel_gap=o["mip_rel_gap"],
            )
        else:
            dec = decide_output_box(
                net, spec, region.lower, region.upper, deadline=deadline, abs_tol=o["abs_tol"], threads=o["threads"]
            )
        return verdict_from_decision(dec, base, timed_out=time.perf_counter() >= deadline)


def verdict_from_decision(dec: BoxDecision, base: dict, timed_out: bool) -> Verdict:
    if dec.status == "verified":
        status, vf, uf = Status.VERIFIED, 1.0, 0.0
    elif dec.status == "falsified":
        status, vf, uf = Status.FALSIFIED, 0.0, 1.0
    else:
        status, vf, uf = (Status.TIMEOUT if timed_out else Status.UNKNOWN), 0.0, 1.0
    return Verdict(
        status=status,
        boxes=1,
        verified_fraction=vf,
        unresolved_fraction=uf,
        best_bound=dec.bound,
        counterexamples=dec.counterexamples,
        message=(dec.message + f" ({dec.milps} MILP(s), {dec.seconds:.2f} s)").strip(),
        **base,
    )


__all__ = [
    "BoxDecision",
    "BoxMilp",
    "MilpResult",
    "MilpVerifier",
    "decide_monotonicity_box",
    "decide_output_box",
    "pattern_affine",
    "segment_in_pattern",
]
