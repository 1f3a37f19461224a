"""Interval gradient bounds under ReLU splits: the bounding step of activation branch and bound.

Why: over a box where a ReLU's input changes sign, the interval chain of
:mod:`verifiers.bounds.interval` only knows that unit's derivative lies in ``[0, 1]``. Summed over
the unstable units of a wide region, that slack is what keeps a bound of ``sign * df/dx_i`` just
below zero on networks that are in fact monotone. Splitting a unit fixes its derivative: the
*active* branch is the part of the box where its pre-activation is ``>= 0`` (derivative 1), the
*inactive* branch the part where it is ``<= 0`` (derivative 0). Bisecting inputs needs many
splits per unit to make it stable; one activation split does it outright.

A split is a mask over the hidden units, flat in layer order: ``+1`` active, ``-1`` inactive,
``0`` free. Under a mask, the pre-activation interval of each split unit is intersected with
``[0, inf)`` or ``(-inf, 0]`` before it is used (sound for the points of the branch: they satisfy
the split), and the derivative chain runs as in :mod:`verifiers.bounds.interval`, with the same
outward rounding. When an intersection is empty, no point of the box lies in the branch and the
bound is ``+inf`` (vacuous). Composition: the branches of a box cover it, so a bound ``>= -t / W_i``
on every branch bounds the derivative almost everywhere in the box, and the integral argument of
:mod:`verifiers.bounds.interval` applies unchanged.

The bound also scores each free unstable unit by how much its ``[0, 1]`` derivative can cost
the bound (the width of its derivative-product interval times the magnitude of its outgoing
weights), so the search splits the unit that matters most; ``-inf`` marks units that cannot be
split (stable or already split).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from verifiers.bounds.interval import DeviceNet, _affine, _boxes, chain_step, device_net
from verifiers.network import ReluNetwork


def hidden_sizes(net: ReluNetwork) -> list[int]:
    """Widths of the hidden layers: the mask of a split is their concatenation."""
    return [w.shape[1] for w in net.weights[:-1]]


def _clamp(zl, zh, m):
    """The pre-activation interval on the branch ``m``; and whether the branch is empty."""
    zl = jnp.where(m > 0, jnp.maximum(zl, 0.0), zl)
    zh = jnp.where(m < 0, jnp.minimum(zh, 0.0), zh)
    return zl, zh, jnp.any(zl > zh, axis=-1)


def _masked_gradient(dn: DeviceNet, lo, hi, feature, mask):
    """``(g_lo, g_hi, empty, score)``: derivative bounds ``(B, n_out)`` on each branch, whether the
    branch is empty ``(B,)``, and split scores of the hidden units ``(B, H)``."""
    batch = lo.shape[0]
    n_layers = len(dn.weights)
    gl = jnp.broadcast_to(dn.w1_lo[feature], (batch, dn.w1_lo.shape[1]))
    gh = jnp.broadcast_to(dn.w1_hi[feature], (batch, dn.w1_hi.shape[1]))
    c, r = (lo + hi) / 2.0, (hi - lo) / 2.0
    zl, zh = _affine(c, r, dn.weights[0], dn.abs_weights[0], dn.biases[0], dn.colsum[0], dn.gamma)
    empty = jnp.zeros(batch, bool)
    scores = []
    start = 0
    for k in range(1, n_layers):
        width = dn.weights[k].shape[0]
        m = mask[:, start : start + width]
        start += width
        zl, zh, gone = _clamp(zl, zh, m)
        empty = empty | gone
        unstable = (zl < 0) & (zh > 0) & (m == 0)
        cost = (jnp.maximum(gh, 0.0) - jnp.minimum(gl, 0.0)) * jnp.sum(dn.abs_weights[k], axis=1)
        scores.append(jnp.where(unstable, cost, -jnp.inf))
        zl, zh, gl, gh = chain_step(dn, k, zl, zh, gl, gh)
    return gl, gh, empty, jnp.concatenate(scores, axis=1)


@jax.jit
def _masked_monotonicity_jit(dn, lo, hi, mask, feature, sign):
    gl, gh, empty, score = _masked_gradient(dn, lo, hi, feature, mask)
    lb = jnp.where(sign > 0, gl[:, 0], -gh[:, 0])
    return jnp.where(empty, jnp.inf, lb), score


class MaskedMonotonicityBound:
    """``bound(lo, hi, mask) -> (lower, score)``: a sound lower bound of ``sign * df/dx_feature +
    shift`` on each branch (``+inf`` for an empty branch) and the units' split scores.

    ``shift`` is the spec's ``slope_allowance``, as in :func:`verifiers.bounds.interval.make_monotonicity_bound_fn`.
    """

    def __init__(self, net: ReluNetwork, feature: int, sign: float, shift: float = 0.0, precision: str = "float64"):
        self.dn = device_net(net, precision)
        self.n_hidden = int(sum(hidden_sizes(net)))
        self.shift = float(shift)
        with jax.enable_x64(True):
            self._feat = jnp.asarray(feature, dtype=jnp.int32)
            self._sign = jnp.asarray(float(sign), dtype=self.dn.gamma.dtype)

    def __call__(self, lower: np.ndarray, upper: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with jax.enable_x64(True):
            lo, hi = _boxes(self.dn, lower, upper)
            lb, score = _masked_monotonicity_jit(self.dn, lo, hi, jnp.asarray(mask, jnp.int8), self._feat, self._sign)
            return np.asarray(lb, np.float64) + self.shift, np.asarray(score, np.float64)
