"""Linear bounds of ``sign * df/dx_i`` over boxes (forward-mode derivative chain, relaxed).

Why it proves monotonicity (the set ``S(B)`` and the mean-value argument) and why every step is
sound in floating point: ``docs/linear-bounds.md``.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from verifiers.bounds.linear_relax import (
    _TAU,
    _U,
    _backsub,
    _Box,
    _forward_bounds,
    _mm,
    _Net,
    _prep_box,
    _split_concretize_z0,
)


class _Deriv(NamedTuple):
    classes: list  # per hidden layer: (act, unst, likely) bool
    hrel: list  # per hidden layer: (a, b) step-relaxation slopes (the default choice)
    hcap: list  # per hidden layer: (a_max, b_max), the largest valid (capped) slopes
    sint: list  # per hidden layer: (s_lo, s_hi) indicator interval


def _deriv_setup(lows, ups, mags, dtype) -> _Deriv:
    classes, hrel, hcap, sint = [], [], [], []
    for k, (l, u, mag) in enumerate(zip(lows, ups, mags)):
        act = l >= 0
        unst = (l < 0) & (u > 0)
        likely = u > -l
        floor = 0.0 if k == 0 else _TAU * mag  # centred first layer: no cap needed
        amax = jnp.where(unst, (1 - 4 * _U) / jnp.where(unst, jnp.maximum(u, floor), 1.0), 0.0)
        bmax = jnp.where(unst, (1 - 4 * _U) / jnp.where(unst, jnp.maximum(-l, floor), 1.0), 0.0)
        classes.append((act, unst, likely))
        hrel.append((jnp.where(likely, amax, 0.0), jnp.where(likely, 0.0, bmax)))
        hcap.append((amax, bmax))
        sint.append((act.astype(dtype), (act | unst).astype(dtype)))
    return _Deriv(classes, hrel, hcap, sint)


def _deriv_backsub(net: _Net, box: _Box, relax, dv: _Deriv, vbounds, v0, c_top, m, params=None):
    """Lower bound over S(B) of ``c_top . g_{m-1}`` (that is, of ``lam . v_m`` with
    ``c_top = lam W_m^T``), as an affine function of x concretised over the box.

    ``c_top`` (r, n_{m-1}). ``params`` (optional): per hidden layer, in [0, 1], the ReLU lower
    slopes, the fractions of ``a_max`` and ``b_max`` used as step slopes, and the weights of the
    "exact at s = 1" McCormick planes in the lower and in the upper bound (any value in the range
    gives a valid relaxation). Returns (bound (r,), x-coefficients (r, n)).
    """
    const = jnp.zeros(c_top.shape[0], c_top.dtype)
    gammas = [None] * m
    c = c_top  # coefficient on g_k
    for k in range(m - 1, -1, -1):
        act, unst, likely = dv.classes[k]
        if k == 0:
            d = c * v0  # g_0 = v0 * s_0 exactly
        else:
            vl, vu = vbounds[k]
            pos = c >= 0
            if params is None:
                lam = mu = likely.astype(c.dtype)
            else:
                lam, mu = params[3][k], params[4][k]
            # lower: g >= lam (vu s + v - vu) + (1 - lam) vl s; upper: g <= mu (vl s + v - vl) + (1 - mu) vu s
            s_coef = jnp.where(pos, lam * vu + (1 - lam) * vl, mu * vl + (1 - mu) * vu)
            c_coef = jnp.where(pos, -lam * vu, -mu * vl)
            v_coef = jnp.where(pos, lam, mu)
            d = jnp.where(unst, c * s_coef, 0.0)
            const = const + jnp.sum(jnp.where(unst, c * c_coef, 0.0), axis=-1)
            on_v = jnp.where(unst, c * v_coef, jnp.where(act, c, 0.0))  # on v_k
        if params is None:
            a, b = dv.hrel[k]
        else:
            a, b = params[1][k] * dv.hcap[k][0], params[2][k] * dv.hcap[k][1]
        dpos = d >= 0
        gammas[k] = jnp.where(unst, jnp.where(dpos, d * a, d * b), 0.0)
        const = const + jnp.sum(jnp.where(unst & ~dpos, d, 0.0) + jnp.where(act, d, 0.0), axis=-1)
        if k > 0:
            c = _mm(on_v, net.ws[k].T)  # v_k = g_{k-1} W_k
    return _backsub(net, box, relax, gammas, const, None if params is None else params[0])


def _deriv_v1_lower(net: _Net, box: _Box, dv: _Deriv, v0):
    """Lower bounds of ``[+v_1; -v_1]`` over S(B), shape (2 n_1,).

    ``+-v_1 = +-(v_0 s_0) W_1``: the coefficient on ``s_0`` is ``[W_1^T; -W_1^T] diag(v_0)``,
    with signs fixed by the weights, so the relaxation of ``s_0`` only scales its columns.
    """
    act, unst, _ = dv.classes[0]
    a, b = dv.hrel[0]
    dmat = jnp.concatenate([net.ws[1].T, -net.ws[1].T], axis=0) * v0[None, :]
    dpos = jnp.maximum(dmat, 0.0)
    dneg = jnp.minimum(dmat, 0.0)
    actf = act.astype(v0.dtype)
    unstf = unst.astype(v0.dtype)
    const = _mm(dneg, unstf + actf) + _mm(dpos, actf)
    lb, _ = _split_concretize_z0(net, box, dpos, dneg, a * unstf, b * unstf, const)
    return lb


def _interval_affine_signed(gl, gu, wpos, wneg):
    """Bounds of ``g W`` for ``g in [gl, gu]`` (``wpos = max(W, 0)``, ``wneg = min(W, 0)``), and
    whether every term of the lower (upper) sum is ``>= 0`` (``<= 0``) in exact arithmetic.

    A sum whose terms all have one sign has that sign exactly, whatever the rounding; this lets a
    derivative that is provably ``>= 0`` term by term (a monotone-by-construction network, or a
    box on which the whole chain is switched off) be proven without a rounding allowance
    pushing its bound below zero.
    """
    lo = _mm(gl, wpos) + _mm(gu, wneg)
    hi = _mm(gu, wpos) + _mm(gl, wneg)
    pos_w = (wpos > 0).astype(gl.dtype)
    neg_w = (wneg < 0).astype(gl.dtype)
    bad_lo = _mm((gl < 0).astype(gl.dtype), pos_w) + _mm((gu > 0).astype(gl.dtype), neg_w)
    bad_hi = _mm((gu > 0).astype(gl.dtype), pos_w) + _mm((gl < 0).astype(gl.dtype), neg_w)
    return lo, hi, bad_lo == 0, bad_hi == 0


def _interval_mul01(vl, vu, sl, su):
    """Interval of ``v * s`` for ``v in [vl, vu]``, ``s in [sl, su]`` with ``0 <= sl <= su <= 1``."""
    cands = jnp.stack([vl * sl, vl * su, vu * sl, vu * su])
    return cands.min(axis=0), cands.max(axis=0)


def _derivative_core(net: _Net, box: _Box, v0, crown_v: bool = True):
    """Everything the derivative bounds need: forward bounds, relaxations, bounds of v_k (by
    interval propagation, intersected with linear bounds when ``crown_v``)."""
    n_layers = len(net.ws)
    dtype = box.c.dtype
    lows, ups, relax, mags, _ = _forward_bounds(net, box, with_output=False)
    dv = _deriv_setup(lows, ups, mags, dtype)
    # magnitude factors E_k of the derivative chain (see "Floating point")
    e = jnp.abs(v0) * (1 + jnp.maximum(dv.hcap[0][0], dv.hcap[0][1]) * mags[0])
    vbounds = [(v0, v0)]
    vl, vu = v0, v0
    for k in range(n_layers - 1):
        w, aw = net.ws[k + 1], net.aws[k + 1]
        gl, gu = _interval_mul01(vl, vu, *dv.sint[k])
        vl, vu, nonneg, nonpos = _interval_affine_signed(gl, gu, net.wpos[k + 1].T, net.wneg[k + 1].T)
        mag = _mm(e, aw)  # magnitude of the rows of v_{k+1}
        if k + 1 < n_layers - 1:
            n = w.shape[1]
            if not crown_v:
                lb = jnp.full(2 * n, -jnp.inf, dtype)
            elif k == 0:
                lb = _deriv_v1_lower(net, box, dv, v0)
            else:
                both = jnp.concatenate([w.T, -w.T], axis=0)
                lb, _ = _deriv_backsub(net, box, relax, dv, vbounds, v0, both, k + 1)
            slack = net.gamma * mag
            vl = jnp.where(nonneg, jnp.maximum(jnp.maximum(vl, lb[:n]) - slack, 0.0), jnp.maximum(vl, lb[:n]) - slack)
            vu = jnp.where(nonpos, jnp.minimum(jnp.minimum(vu, -lb[n:]) + slack, 0.0), jnp.minimum(vu, -lb[n:]) + slack)
            vbounds.append((vl, vu))
            a, b = dv.hcap[k + 1]
            vm = jnp.maximum(jnp.abs(vl), jnp.abs(vu))
            e = mag + vm * (2 + jnp.maximum(a, b) * mags[k + 1])
    return lows, ups, relax, mags, dv, vbounds, (vl, vu, nonneg, nonpos), e


def _default_params(relax, dv: _Deriv, steps: bool = True):
    """The default relaxation choices: CROWN's ReLU slopes, the McCormick planes exact at
    ``s = 0`` (auto_LiRPA's choice), and the smaller-area step slopes (``steps``) or constant
    step bounds ``0 <= s <= 1`` (``steps=False``: then the whole relaxation is auto_LiRPA's CROWN)."""
    dtype = dv.sint[0][0].dtype
    alphas = [r[0] for r in relax]
    likely = [c[2].astype(dtype) for c in dv.classes]
    zeros = [jnp.zeros_like(x) for x in likely]
    if not steps:
        return (alphas, zeros, zeros, zeros, zeros)
    return (alphas, likely, [1 - x for x in likely], zeros, zeros)


def _optimized_final(net: _Net, box: _Box, relax, dv: _Deriv, vbounds, v0, c_top, m, iters: int, lr: float):
    """Projected gradient ascent (Adam) on the relaxation parameters of the final bound, in the
    manner of alpha-CROWN: every iterate is a valid relaxation, so the best bound seen is sound."""

    def bound(p):
        lb, cx = _deriv_backsub(net, box, relax, dv, vbounds, v0, c_top, m, params=p)
        return lb[0], cx[0]

    p0 = _default_params(relax, dv)
    lb0, cx0 = bound(p0)
    lbc, cxc = bound(_default_params(relax, dv, steps=False))
    cx0 = jnp.where(lbc > lb0, cxc, cx0)
    lb0 = jnp.maximum(lb0, lbc)
    if iters <= 0:
        return lb0, cx0, lb0
    vg = jax.value_and_grad(bound, has_aux=True)
    zeros = jax.tree_util.tree_map(jnp.zeros_like, p0)

    def step(t, carry):
        p, m1, m2, best, best_cx = carry
        (val, cx), g = vg(p)
        better = val > best
        best = jnp.where(better, val, best)
        best_cx = jnp.where(better, cx, best_cx)
        m1 = jax.tree_util.tree_map(lambda a, b: 0.9 * a + 0.1 * b, m1, g)
        m2 = jax.tree_util.tree_map(lambda a, b: 0.999 * a + 0.001 * b * b, m2, g)
        tt = (t + 1).astype(val.dtype)
        c1 = 1 - 0.9**tt
        c2 = 1 - 0.999**tt
        p = jax.tree_util.tree_map(
            lambda x, a, b: jnp.clip(x + lr * (a / c1) / (jnp.sqrt(b / c2) + 1e-12), 0.0, 1.0), p, m1, m2
        )
        return p, m1, m2, best, best_cx

    carry = (p0, zeros, zeros, lb0, cx0)
    _, _, _, best, best_cx = jax.lax.fori_loop(0, iters, step, carry)
    return best, best_cx, lb0


def _derivative_bounds(net: _Net, box: _Box, core, v0, sign, iters: int, lr: float):
    """The final bounds of ``sign * df/dx_i`` from the shared parts ``core``: the optimised and the
    plain (heuristic-relaxation) linear bounds, each intersected with the interval bound, and the
    interval bound itself, all with their rounding allowance; plus the optimised x-coefficients."""
    n_layers = len(net.ws)
    _, _, relax, _, dv, vbounds, (vl, vu, nonneg, nonpos), e = core
    slack = net.gamma * (_mm(e, net.aws[-1])[0])
    ibp = jnp.where(sign > 0, vl[0], -vu[0])  # the output's interval, before its rounding allowance
    exact_nonneg = jnp.where(sign > 0, nonneg[0], nonpos[0])  # every term of the sum has the sign
    c_top = sign * net.ws[-1].T  # sign * f = sign * (g_{L-2} W_{L-1} + b)
    lb, cx, lb0 = _optimized_final(net, box, relax, dv, vbounds, v0, c_top, n_layers - 1, iters, lr)

    def finish(b):
        b = b - slack
        return jnp.where(exact_nonneg, jnp.maximum(b, 0.0), b)

    return finish(jnp.maximum(lb, ibp)), finish(jnp.maximum(lb0, ibp)), finish(ibp), cx


def _derivative_box(net: _Net, v0, sign, lo, hi, iters: int = 0, lr: float = 0.1, crown_v: bool = False):
    """Sound lower bound of ``sign * df/dx_i`` over one box, its x-coefficients, the plain and the
    interval bounds, and the number of unstable neurons."""
    dtype = lo.dtype
    if len(net.ws) == 1:
        val = sign * v0[0]
        return val, jnp.zeros_like(lo), val, val, jnp.zeros((), dtype)
    box = _prep_box(net, lo, hi)
    core = _derivative_core(net, box, v0, crown_v)
    n_unstable = sum(jnp.sum(unst) for _, unst, _ in core[4].classes).astype(dtype)
    lb, lb0, ibp, cx = _derivative_bounds(net, box, core, v0, sign, iters, lr)
    return lb, cx, lb0, ibp, n_unstable


def _output_box(net: _Net, lo, hi):
    """Sound bounds of f over one box: (lower, upper, x-coefs of the lower, of the upper of -f)."""
    box = _prep_box(net, lo, hi)
    if len(net.ws) == 1:
        cx = net.ws[0][:, 0]
        rad = _mm(jnp.abs(cx), box.r)
        slack = net.gamma * (jnp.abs(box.z0c[0]) + rad + box.e0[0])
        return box.z0c[0] - rad - box.e0[0] - slack, box.z0c[0] + rad + box.e0[0] + slack, cx, -cx
    _, _, _, _, (l, u, (cl, cu)) = _forward_bounds(net, box, with_output=True)
    return l[0], u[0], cl[0], cu[0]


@partial(jax.jit, static_argnames=("iters", "crown_v"))
def _derivative_batch(net, v0, sign, lo, hi, iters=0, lr=0.1, crown_v=False):
    one = partial(_derivative_box, iters=iters, lr=lr, crown_v=crown_v)
    return jax.vmap(one, in_axes=(None, None, None, 0, 0))(net, v0, sign, lo, hi)


@jax.jit
def _output_batch(net, lo, hi):
    return jax.vmap(_output_box, in_axes=(None, 0, 0))(net, lo, hi)


@jax.jit
def _internals_batch(net, v0, sign, lo, hi):
    def one(lo_, hi_):
        box = _prep_box(net, lo_, hi_)
        core = _derivative_core(net, box, v0)
        _, plain, _, _ = _derivative_bounds(net, box, core, v0, sign, 0, 0.0)
        return core[0], core[1], core[5][1:], plain

    return jax.vmap(one)(lo, hi)


# ----------------------------------------------------------------------------------------------
# host-side wrapper
# ----------------------------------------------------------------------------------------------
