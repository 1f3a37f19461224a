"""Linear relaxations of ReLU networks over boxes: back-substitution (CROWN) and forward bounds.

Pure, jitted functions of ``(weights, box)``; the notation, the relaxations and the floating-point
allowances that keep every bound sound are written down in ``docs/linear-bounds.md``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

_U = 2.0**-53  # unit roundoff of float64
_TAU = 1e-3  # slope cap of the step relaxation on layers >= 1 (see "Floating point")
_HI = jax.lax.Precision.HIGHEST


def _mm(a, b):
    return jnp.matmul(a, b, precision=_HI)


class _Box(NamedTuple):
    c: jax.Array  # centre (n,)
    r: jax.Array  # radius, rounded up (n,)
    z0c: jax.Array  # c W_0 + b_0 (n_0,)
    e0: jax.Array  # bound on the rounding error of z0c (n_0,)


class _Net(NamedTuple):
    """A network on the device, with what the bounds need precomputed (a pytree)."""

    ws: tuple  # W_k (in, out)
    bs: tuple  # b_k (out,)
    aws: tuple  # |W_k|
    wpos: tuple  # max(W_k, 0)^T for k >= 1 (out, in); None-free: index 0 is unused (zeros)
    wneg: tuple  # min(W_k, 0)^T
    gamma: jax.Array  # 4 * gamma_K (scalar)


def _gamma_k(n: int) -> float:
    return n * _U / (1 - n * _U)


# ----------------------------------------------------------------------------------------------
# per-box primitives (a single box; vmapped below)
# ----------------------------------------------------------------------------------------------


def _prep_box(net: _Net, lo, hi) -> _Box:
    c = (lo + hi) / 2
    r = jnp.maximum(hi - c, c - lo) * (1 + 4 * _U)
    n_in = net.ws[0].shape[0]
    z0c = _mm(c, net.ws[0]) + net.bs[0]
    e0 = 2 * _gamma_k(n_in + 2) * (_mm(jnp.abs(c), net.aws[0]) + jnp.abs(net.bs[0])) + 1e-300
    return _Box(c, r, z0c, e0)


def _concretize_z0(net: _Net, box: _Box, g0, const):
    """min over the box of ``g0 . z_0(x) + const`` (rows of ``g0``); returns (value, x-coefs)."""
    cx = _mm(g0, net.ws[0].T)
    val = const + _mm(g0, box.z0c) - _mm(jnp.abs(cx), box.r) - _mm(jnp.abs(g0), box.e0)
    return val, cx


def _split_concretize_z0(net: _Net, box: _Box, cpos, cneg, p, q, const):
    """As :func:`_concretize_z0` for ``g0 = cpos diag(p) + cneg diag(q)`` with ``cpos >= 0``,
    ``cneg <= 0``, ``p, q >= 0`` and ``cpos``, ``cneg`` the same for every box.

    Keeping the box-independent matrices on the left lets a batch of boxes share one matrix
    product (``cpos @ [p * W_0^T | p * z0c | p * e0]``) instead of materialising ``g0`` per box.
    """
    w0t = net.ws[0].T
    rhs_p = jnp.concatenate([p[:, None] * w0t, (p * box.z0c)[:, None], (p * box.e0)[:, None]], axis=1)
    rhs_q = jnp.concatenate([q[:, None] * w0t, (q * box.z0c)[:, None], (-q * box.e0)[:, None]], axis=1)
    out = _mm(cpos, rhs_p) + _mm(cneg, rhs_q)
    cx, gz, ge = out[:, :-2], out[:, -2], out[:, -1]
    return const + gz - _mm(jnp.abs(cx), box.r) - ge, cx


def _relu_relax(l, u):
    """Linear relaxation of relu on [l, u]: ``ls z <= relu(z) <= us z + ub``."""
    act = l >= 0
    unst = (l < 0) & (u > 0)
    denom = jnp.where(unst, u - l, 1.0)
    us = jnp.where(act, 1.0, jnp.where(unst, u / denom, 0.0))
    ub = jnp.where(unst, -l * us, 0.0)
    # rounding: raise the intercept by more than the rounding error of us * z + ub on [l, u]
    ub = jnp.where(unst, ub + 8 * _U * (us * jnp.maximum(-l, u) + ub), 0.0)
    ls = jnp.where(act, 1.0, jnp.where(unst & (u > -l), 1.0, 0.0))
    return ls, us, ub, unst


def _relax_h(ch, relax_k, alpha=None):
    """Replace ``ch . relu(z_k)`` by the lower bound ``coef . z_k + const``.

    ``alpha`` (optional, in [0, 1]) overrides the lower slope of the unstable neurons.
    """
    ls, us, ub, unst = relax_k
    if alpha is not None:
        ls = jnp.where(unst, alpha, ls)
    pos = ch >= 0
    coef = jnp.where(pos, ch * ls, ch * us)
    return coef, jnp.sum(jnp.where(pos, 0.0, ch * ub), axis=-1)


def _backsub(net: _Net, box: _Box, relax, gammas, const, alphas=None):
    """Lower bound over the box of ``sum_k gammas[k] . z_k + const``.

    ``gammas[k]`` (r, n_k) for k = 0 .. m-1 (None = zero; the last is not None); ``alphas``
    (optional) the ReLU lower slopes per hidden layer. Returns the bound (r,) and the
    x-coefficients (r, n).
    """
    m = len(gammas)
    coef = gammas[m - 1]
    for k in range(m - 1, 0, -1):  # z_k = relu(z_{k-1}) W_k + b_k
        const = const + _mm(coef, net.bs[k])
        coef, c = _relax_h(_mm(coef, net.ws[k].T), relax[k - 1], None if alphas is None else alphas[k - 1])
        const = const + c
        if gammas[k - 1] is not None:
            coef = coef + gammas[k - 1]
    return _concretize_z0(net, box, coef, const)


def _interval_affine(l, u, w, aw, b):
    c = (l + u) / 2
    r = (u - l) / 2
    mid = _mm(c, w) + b
    rad = _mm(r, aw)
    return mid - rad, mid + rad


def _forward_bounds(net: _Net, box: _Box, with_output: bool):
    """Pre-activation bounds of every hidden layer (and of the output if ``with_output``).

    Returns ``(lows, ups, relax, mags, out)``; ``mags[k]`` is the magnitude ``M_z`` of layer k and
    ``out = (l, u, cx_lower, cx_upper)`` for the output layer (or None).
    """
    n_layers = len(net.ws)
    last = n_layers if with_output else n_layers - 1
    lows, ups, relax, mags = [], [], [], []
    out = None
    for k in range(last):
        if k == 0:
            z0r = _mm(box.r, net.aws[0])
            mag = jnp.abs(box.z0c) + z0r + box.e0
            l = box.z0c - z0r - box.e0
            u = box.z0c + z0r + box.e0
            cxs = None
        else:
            mag = _mm(2.1 * mags[-1], net.aws[k]) + jnp.abs(net.bs[k])
            il, iu = _interval_affine(
                jnp.maximum(lows[-1], 0.0), jnp.maximum(ups[-1], 0.0), net.ws[k], net.aws[k], net.bs[k]
            )
            n = net.ws[k].shape[1]
            # objectives +-z_k = +-(relu(z_{k-1}) W_k + b_k): rows [+I; -I], whose coefficient on
            # relu(z_{k-1}) is [W_k^T; -W_k^T], with signs fixed by the weights
            cpos = jnp.concatenate([net.wpos[k], -net.wneg[k]], axis=0)
            cneg = jnp.concatenate([net.wneg[k], -net.wpos[k]], axis=0)
            ls, us, ub, _ = relax[k - 1]
            const = jnp.concatenate([net.bs[k], -net.bs[k]]) + _mm(cneg, ub)
            if k == 1:
                lb, cx = _split_concretize_z0(net, box, cpos, cneg, ls, us, const)
            else:
                wt = net.ws[k - 1].T
                ch = _mm(cpos, ls[:, None] * wt) + _mm(cneg, us[:, None] * wt)
                const = const + _mm(cpos, ls * net.bs[k - 1]) + _mm(cneg, us * net.bs[k - 1])
                coef, c2 = _relax_h(ch, relax[k - 2])
                lb, cx = _backsub(net, box, relax, [None] * (k - 2) + [coef], const + c2)
            l = jnp.maximum(il, lb[:n])
            u = jnp.minimum(iu, -lb[n:])
            cxs = (cx[:n], cx[n:])
        slack = net.gamma * mag
        l = l - slack
        u = u + slack
        if k < n_layers - 1:
            lows.append(l)
            ups.append(u)
            relax.append(_relu_relax(l, u))
            mags.append(mag)
        else:
            out = (l, u, cxs)
    return lows, ups, relax, mags, out
