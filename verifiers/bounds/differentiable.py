"""Interval bounds as differentiable JAX functions of the *weights*: the certified-training signal.

Why a separate module: the verifiers' bounds (:mod:`verifiers.bounds.interval`,
:mod:`verifiers.bounds.linear`) take a fixed network and add rigorous rounding allowances; a
training loss needs the same bound as a smooth-enough function of the weights, batched over
boxes, that ``jax.grad`` can push upwards (the IBP training of certified robustness, applied to the
derivative chain of monotonicity). These bounds are sound in exact arithmetic; the verifier, not
this module, decides what is proven.

Boxes are ``(lo, hi)`` of shape ``(B, n)``; weights are ``(in, out)`` (Flax order).

* :func:`interval_slope_lower`: a lower bound of ``sign * df/dx_i`` over each box: interval
  bounds of the pre-activations, each ReLU's derivative in ``{0}``, ``{1}`` or ``[0, 1]``, and
  interval products through the weights (the Ouroboros chain).
* :func:`interval_output_bounds`: interval bounds of ``f`` over each box.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp


def _preactivations(ws: Sequence[jax.Array], bs: Sequence[jax.Array], lo: jax.Array, hi: jax.Array):
    """Interval bounds of every hidden pre-activation, and of the output."""
    c, r = (lo + hi) / 2, (hi - lo) / 2
    bounds = []
    for k, (w, b) in enumerate(zip(ws, bs)):
        zc = c @ w + b
        zr = r @ jnp.abs(w)
        zl, zu = zc - zr, zc + zr
        bounds.append((zl, zu))
        if k < len(ws) - 1:
            hl, hu = jax.nn.relu(zl), jax.nn.relu(zu)
            c, r = (hl + hu) / 2, (hu - hl) / 2
    return bounds


def interval_output_bounds(ws, bs, lo: jax.Array, hi: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(lower, upper)`` of ``f`` (first output) over each box, shape ``(B,)``."""
    zl, zu = _preactivations(ws, bs, lo, hi)[-1]
    return zl[:, 0], zu[:, 0]


def interval_slope_lower(ws, bs, lo: jax.Array, hi: jax.Array, axis: jax.Array, sign: jax.Array) -> jax.Array:
    """Lower bound of ``sign * df/dx_i`` over each box; ``axis`` ``(B, n)`` is the one-hot of
    feature ``i`` per box and ``sign`` ``(B,)`` is +1 (increasing) or -1 (decreasing).

    Forward mode along ``axis``: ``v_0 = axis @ W_0`` exactly, then ``g_k = v_k * relu'(z_k)``
    with the derivative ``1`` on a stably active unit, ``0`` on a stably inactive one and
    anywhere in ``[0, 1]`` otherwise, and ``v_{k+1} = g_k @ W_{k+1}`` in interval arithmetic.
    Bounding ``sign * v`` directly (the sign folded into ``v_0``) keeps the bound tight for
    decreasing specs as well.
    """
    pre = _preactivations(ws, bs, lo, hi)
    v_l = v_u = (axis @ ws[0]) * sign[:, None]
    for k in range(len(ws) - 1):
        zl, zu = pre[k]
        active = zl > 0
        inactive = zu <= 0
        g_l = jnp.where(active, v_l, jnp.where(inactive, 0.0, jnp.minimum(v_l, 0.0)))
        g_u = jnp.where(active, v_u, jnp.where(inactive, 0.0, jnp.maximum(v_u, 0.0)))
        w = ws[k + 1]
        gc, gr = (g_l + g_u) / 2, (g_u - g_l) / 2
        vc, vr = gc @ w, gr @ jnp.abs(w)
        v_l, v_u = vc - vr, vc + vr
    return v_l[:, 0]


__all__ = ["interval_output_bounds", "interval_slope_lower"]
