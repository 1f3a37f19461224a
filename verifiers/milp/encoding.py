"""MILP encodings of a ReLU network over a box: forward (ReLU), derivative chain, objective.

One binary per *unstable* hidden unit; stable units are fixed by their bounds. The encodings and
their exactness argument are described in :mod:`verifiers.milp`.
"""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass

import highspy
import numpy as np
import scipy.sparse as sp

from verifiers.network import ReluNetwork

_INF = highspy.kHighsInf
_BANNER_LOCK = threading.Lock()
_banner_due = True  # HiGHS prints its banner at the first construction in a process


def _quiet_highs() -> highspy.Highs:
    """A HiGHS instance with its log off. The first construction in a process prints HiGHS's banner
    on the C-level stdout before any option can be set, so that one runs with file descriptor 1 on
    /dev/null (for the microseconds it takes); later ones print nothing."""
    global _banner_due
    with _BANNER_LOCK:
        if _banner_due:
            _banner_due = False
            sys.stdout.flush()
            try:
                saved, null = os.dup(1), os.open(os.devnull, os.O_WRONLY)
            except OSError:  # no stdout to silence
                h = highspy.Highs()
            else:
                try:
                    os.dup2(null, 1)
                    h = highspy.Highs()
                finally:
                    os.dup2(saved, 1)
                    os.close(saved)
                    os.close(null)
        else:
            h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    return h


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

    def arrays(self):
        """``(A (CSC), row_lo, row_hi, col_lo, col_hi, integer, cost, offset)`` in float64."""
        r = np.concatenate(self.rows_r) if self.rows_r else np.zeros(0, np.int64)
        c = np.concatenate(self.rows_c) if self.rows_c else np.zeros(0, np.int64)
        v = np.concatenate(self.rows_v) if self.rows_v else np.zeros(0)
        keep = v != 0
        a = sp.csc_matrix((v[keep], (r[keep], c[keep])), shape=(self.m, self.n))
        a.sum_duplicates()
        a.sort_indices()
        row_lo = np.concatenate(self.row_lo) if self.m else np.zeros(0)
        row_hi = np.concatenate(self.row_hi) if self.m else np.zeros(0)
        cost = np.zeros(self.n) if self.cost is None else np.asarray(self.cost, dtype=np.float64)
        return (
            a,
            row_lo,
            row_hi,
            np.concatenate(self.lo),
            np.concatenate(self.hi),
            np.concatenate(self.integer),
            cost,
            float(self.offset),
        )

    def build(self, relax: bool = False) -> highspy.Highs:
        """The HiGHS instance of the model (its LP relaxation with ``relax``)."""
        a, row_lo, row_hi, col_lo, col_hi, integ, cost, offset = self.arrays()
        lp = highspy.HighsLp()
        lp.num_col_ = self.n
        lp.num_row_ = self.m
        lp.col_cost_ = cost
        lp.offset_ = offset
        lp.col_lower_ = col_lo
        lp.col_upper_ = col_hi
        lp.row_lower_ = row_lo
        lp.row_upper_ = row_hi
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = a.indptr.astype(np.int32)
        lp.a_matrix_.index_ = a.indices.astype(np.int32)
        lp.a_matrix_.value_ = a.data
        if not relax:
            lp.integrality_ = [highspy.HighsVarType.kInteger if i else highspy.HighsVarType.kContinuous for i in integ]
        h = _quiet_highs()
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


# Matrix entries below HiGHS's ``small_matrix_value`` (1e-9) are dropped, and a big-M row whose
# bound coefficient is dropped cuts off true points (``g <= v - vl (1 - delta)`` with a dropped
# ``vl`` becomes ``g <= v - vl``): bounds this close to 0 are moved away from it, which only loosens
# the relaxation (a lower bound may go down, an upper bound up).
TINY_BOUND = 1e-7


def clear_tiny(lower: np.ndarray, upper: np.ndarray, tau: float = TINY_BOUND) -> tuple[np.ndarray, np.ndarray]:
    """Sound bounds with no entry in ``(-tau, 0) U (0, tau)``: lower bounds go to 0 or -tau,
    upper bounds to 0 or tau, always outward."""
    lower = np.asarray(lower, dtype=np.float64)
    upper = np.asarray(upper, dtype=np.float64)
    lo = np.where((lower > 0) & (lower < tau), 0.0, np.where((lower < 0) & (lower > -tau), -tau, lower))
    hi = np.where((upper < 0) & (upper > -tau), 0.0, np.where((upper > 0) & (upper < tau), tau, upper))
    return lo, hi


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


def _encode_derivative(m: _Model, net: ReluNetwork, feature: int | np.ndarray, layers: list[_Layer], vbounds):
    """Adds the derivative chain; returns ``(var, scale, const)`` describing ``g_{L-2}`` per unit
    (``g_j = scale_j * x[var_j] + const_j``, ``var_j = -1`` for none). A vector ``feature`` is a
    direction ``c``: the chain starts at the computed row ``c W_0``, whose rounding the callers
    allow for (:meth:`ReluNetwork.direction_row`)."""
    v0 = net.weights[0][feature] if np.ndim(feature) == 0 else net.direction_row(feature)[0]
    v0 = v0.astype(np.float64)
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


def _pattern(sol: np.ndarray, layers: list[_Layer]) -> list[np.ndarray]:
    out = []
    for lay in layers:
        p = lay.act.astype(np.float64)
        iu = np.flatnonzero(lay.unst)
        p[iu] = np.round(sol[lay.delta[iu]])
        out.append(p)
    return out


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

