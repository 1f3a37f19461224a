"""Interval bounds for ReLU networks in JAX: the bounding machinery of the Ouroboros backend.

Everything here works on a *batch* of boxes ``lower, upper`` of shape ``(B, n)`` and is jitted
once per (network shape, batch size, precision). The network's arrays are moved to the device
once (:func:`device_net`) and passed as a pytree argument, so networks of the same shape share
the compiled code.

* **Interval bound propagation (IBP)** of every pre-activation ``z_k = h_{k-1} W_k + b_k`` in
  centre-radius form: ``z in c W + b +- r |W|``, then ``h_k = relu(z_k)``.
* **ReLU-derivative indicators**: on a box a neuron is stably active (``z_lo >= 0``: derivative
  1), stably inactive (``z_hi <= 0``: derivative 0) or unstable (derivative in ``[0, 1]``).
* **Interval gradient**: ``df/dx_i = e_i^T W_1 D_1 W_2 D_2 ... W_L`` with each ``D_k`` a
  diagonal of derivative intervals; propagated forward from the row ``W_1[i]`` with interval
  arithmetic (centre-radius again). A lower bound ``>= 0`` of ``sign * df/dx_i`` over a box
  proves monotonicity on that box: along any axis-parallel segment the network is piecewise
  linear and, for almost every point of the segment, its derivative is the chain-rule product
  for *any* choice of the ReLU derivative in ``[0, 1]`` at exact zeros (a neuron that stays at
  zero along a piece has zero derivative there), so the integral of the derivative along the
  segment is ``>= 0``.

Soundness under floating point. Every affine step adds an outward slack covering the rounding
of the dot products, of the centre/radius conversion and, in float32 mode, of the weights:
``slack_k = gamma * (max_j (|c_j| + r_j) * sum_j |W_jk| + |b_k|)`` with
``gamma = 2 (n_in + 8) u`` (``u`` the unit roundoff). This dominates the classical bound
``gamma_n (|c| |W| + |b| + r |W|)`` on the error of a length-``n`` dot product in any summation
order. Matmuls run at ``Precision.HIGHEST`` (no TF32 on GPUs). float64 is the default proof
path; float32 (about twice the throughput) rounds boxes and the feature row of ``W_1`` outward
and uses the float32 ``u``. When a column of ``W`` is entirely non-negative (or non-positive)
and the incoming gradient interval has one sign, the sign of the result is exact and the slack
is not allowed to cross zero (this is what lets monotone-by-construction networks be proven
without splitting).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from verifiers.bounds.jit_cache import note_network_shape
from verifiers.bounds.result import BoundFn, BoundResult, widest_split_score
from verifiers.network import ReluNetwork
from verifiers.specs import Box, SlopeBounds

_HI = jax.lax.Precision.HIGHEST
PRECISIONS = {"float64": np.float64, "float32": np.float32}


class DeviceNet(NamedTuple):
    """A :class:`ReluNetwork` on the device, with what the bounds need precomputed (a pytree)."""

    weights: tuple  # W_k (in, out)
    abs_weights: tuple  # |W_k|
    biases: tuple  # b_k (out,)
    colsum: tuple  # sum_j |W_k[j, :]| (out,), for the rounding slack
    nonneg_col: tuple  # all(W_k[:, o] >= 0) (out,) bool
    nonpos_col: tuple  # all(W_k[:, o] <= 0) (out,) bool
    w1_lo: jax.Array  # W_1 rounded down (= W_1 in float64), (in, h1)
    w1_hi: jax.Array  # W_1 rounded up
    gamma: jax.Array  # relative rounding slack (scalar)


def _round_out(x: np.ndarray, dtype) -> tuple[np.ndarray, np.ndarray]:
    """``(lo, hi)`` in ``dtype`` with ``lo <= x <= hi`` elementwise (x float64)."""
    y = x.astype(dtype)
    if dtype == np.float64:
        return y, y
    lo = np.where(y.astype(np.float64) > x, np.nextafter(y, dtype(-np.inf)), y).astype(dtype)
    hi = np.where(y.astype(np.float64) < x, np.nextafter(y, dtype(np.inf)), y).astype(dtype)
    return lo, hi


def device_net(net: ReluNetwork, precision: str = "float64") -> DeviceNet:
    """Move ``net`` to the default device once; ``precision`` is ``"float64"`` or ``"float32"``."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
    dt = PRECISIONS[precision]
    note_network_shape("interval-" + precision, tuple(w.shape for w in net.weights))
    u = float(np.finfo(dt).eps) / 2.0
    n_max = max(max(w.shape[0] for w in net.weights), 1)
    gamma = 2.0 * (n_max + 8) * u
    w1_lo, w1_hi = _round_out(net.weights[0], dt)
    with jax.enable_x64(True):

        def put(a):
            return jnp.asarray(np.asarray(a, dtype=dt))

        return DeviceNet(
            weights=tuple(put(w) for w in net.weights),
            abs_weights=tuple(put(np.abs(w)) for w in net.weights),
            biases=tuple(put(b) for b in net.biases),
            # Column sums are rounded up a little so that the slack itself is not rounded down.
            colsum=tuple(put(np.abs(w).sum(axis=0) * (1 + 4 * u)) for w in net.weights),
            nonneg_col=tuple(jnp.asarray(np.all(w >= 0, axis=0)) for w in net.weights),
            nonpos_col=tuple(jnp.asarray(np.all(w <= 0, axis=0)) for w in net.weights),
            w1_lo=put(w1_lo),
            w1_hi=put(w1_hi),
            gamma=put(np.asarray(gamma)),
        )


def _affine(c, r, w, aw, b, colsum, gamma):
    """Sound bounds of ``x W + b`` for ``x in [c - r, c + r]`` (rows of a batch)."""
    zc = jnp.matmul(c, w, precision=_HI) + b
    zr = jnp.matmul(r, aw, precision=_HI)
    mag = jnp.max(jnp.abs(c) + r, axis=-1, keepdims=True)
    s = gamma * (mag * colsum + jnp.abs(b))
    return zc - zr - s, zc + zr + s


def _relu_intervals(zl, zh):
    """Post-activation interval as centre-radius."""
    lo = jnp.maximum(zl, 0.0)
    hi = jnp.maximum(zh, 0.0)
    return (lo + hi) / 2.0, (hi - lo) / 2.0


def relu_derivative_bounds(z_lo, z_hi):
    """Interval of the ReLU derivative over ``[z_lo, z_hi]``: ``(1, 1)``, ``(0, 0)`` or ``(0, 1)``.

    Works on NumPy and JAX arrays. ``z_lo >= 0`` counts as active and ``z_hi <= 0`` as inactive
    (see the module docstring for why the value at an exact zero does not matter).
    """
    xp = jnp if isinstance(z_lo, jax.Array) else np
    active = z_lo >= 0
    inactive = (z_hi <= 0) & ~active
    d_lo = xp.where(active, 1.0, 0.0)
    d_hi = xp.where(inactive, 0.0, 1.0)
    return d_lo, d_hi


def _apply_relu_derivative(gl, gh, zl, zh):
    """Interval product ``D * g`` with ``D`` the ReLU-derivative interval of ``[zl, zh]``."""
    active = zl >= 0
    inactive = (zh <= 0) & ~active
    hl = jnp.where(active, gl, jnp.where(inactive, 0.0, jnp.minimum(gl, 0.0)))
    hh = jnp.where(active, gh, jnp.where(inactive, 0.0, jnp.maximum(gh, 0.0)))
    return hl, hh


def _preactivations(dn: DeviceNet, lo, hi):
    """All pre-activation bounds ``[(z_lo, z_hi)]`` per layer (the last one is the output)."""
    c, r = (lo + hi) / 2.0, (hi - lo) / 2.0
    out = []
    n_layers = len(dn.weights)
    for k in range(n_layers):
        zl, zh = _affine(c, r, dn.weights[k], dn.abs_weights[k], dn.biases[k], dn.colsum[k], dn.gamma)
        out.append((zl, zh))
        if k < n_layers - 1:
            c, r = _relu_intervals(zl, zh)
    return out


def _sign_clamp(gl, gh, hl, hh, nonneg_col, nonpos_col):
    """Where the sign of ``h W`` is certain (one-signed ``h``, one-signed column), keep it."""
    lo_nonneg = jnp.all(hl >= 0, axis=-1, keepdims=True)
    hi_nonpos = jnp.all(hh <= 0, axis=-1, keepdims=True)
    sure_nonneg = (nonneg_col & lo_nonneg) | (nonpos_col & hi_nonpos)
    sure_nonpos = (nonneg_col & hi_nonpos) | (nonpos_col & lo_nonneg)
    gl = jnp.where(sure_nonneg, jnp.maximum(gl, 0.0), gl)
    gh = jnp.where(sure_nonpos, jnp.minimum(gh, 0.0), gh)
    return gl, gh


def _gradient(dn: DeviceNet, lo, hi, feature):
    """Bounds ``(g_lo, g_hi)`` of ``df/dx_feature`` over each box, shape ``(B, n_out)``."""
    return _gradient_from(dn, lo, hi, dn.w1_lo[feature], dn.w1_hi[feature])


def _gradient_from(dn: DeviceNet, lo, hi, row_lo, row_hi):
    """Bounds of the derivative along ``c`` whose first step ``c W_1`` lies in ``[row_lo, row_hi]``."""
    batch = lo.shape[0]
    gl = jnp.broadcast_to(row_lo, (batch, row_lo.shape[0]))
    gh = jnp.broadcast_to(row_hi, (batch, row_hi.shape[0]))
    c, r = (lo + hi) / 2.0, (hi - lo) / 2.0
    zl, zh = _affine(c, r, dn.weights[0], dn.abs_weights[0], dn.biases[0], dn.colsum[0], dn.gamma)
    for k in range(1, len(dn.weights)):
        zl, zh, gl, gh = chain_step(dn, k, zl, zh, gl, gh)
    return gl, gh


def chain_step(dn: DeviceNet, k: int, zl, zh, gl, gh):
    """One layer of the chain: from layer ``k - 1``'s pre-activation bounds ``[zl, zh]`` and the
    gradient bounds ``[gl, gh]`` entering its ReLUs, layer ``k``'s (``zl, zh`` are None after the
    output). ``relu(z) W`` (IBP) and ``(D g) W`` (gradient) share ``W``: both are stacked into one
    pair of matmuls of ``2B`` rows (faster than four of ``B``)."""
    batch = zl.shape[0]
    c, r = _relu_intervals(zl, zh)
    hl, hh = _apply_relu_derivative(gl, gh, zl, zh)
    last = k == len(dn.weights) - 1
    if last:  # the output's IBP bounds are not needed
        cs, rs = (hl + hh) / 2.0, (hh - hl) / 2.0
        bias = jnp.zeros((1, dn.biases[k].shape[0]), hl.dtype)
    else:
        cs = jnp.concatenate([c, (hl + hh) / 2.0])
        rs = jnp.concatenate([r, (hh - hl) / 2.0])
        zero = jnp.zeros((batch, dn.biases[k].shape[0]), hl.dtype)
        bias = jnp.concatenate([jnp.broadcast_to(dn.biases[k], zero.shape), zero])
    ml, mh = _affine(cs, rs, dn.weights[k], dn.abs_weights[k], bias, dn.colsum[k], dn.gamma)
    zl, zh, gl, gh = (None, None, ml, mh) if last else (ml[:batch], mh[:batch], ml[batch:], mh[batch:])
    gl, gh = _sign_clamp(gl, gh, hl, hh, dn.nonneg_col[k], dn.nonpos_col[k])
    return zl, zh, gl, gh


@jax.jit
def _preactivations_jit(dn, lo, hi):
    return _preactivations(dn, lo, hi)


@jax.jit
def _gradient_jit(dn, lo, hi, feature):
    return _gradient(dn, lo, hi, feature)


@jax.jit
def _slope_jit(dn, lo, hi, row_lo, row_hi):
    gl, gh = _gradient_from(dn, lo, hi, row_lo, row_hi)
    return gl[:, 0], gh[:, 0]


@jax.jit
def _output_jit(dn, lo, hi):
    return _preactivations(dn, lo, hi)[-1]


@jax.jit
def _forward_jit(dn, x):
    h = x
    n_layers = len(dn.weights)
    for k in range(n_layers):
        h = jnp.matmul(h, dn.weights[k], precision=_HI) + dn.biases[k]
        if k < n_layers - 1:
            h = jnp.maximum(h, 0.0)
    return h


def _boxes(dn: DeviceNet, lower, upper):
    """Batch of boxes in the network's precision, rounded outward; checks the shapes."""
    lower = np.atleast_2d(np.asarray(lower, dtype=np.float64))
    upper = np.atleast_2d(np.asarray(upper, dtype=np.float64))
    n_in = dn.weights[0].shape[0]
    if lower.shape != upper.shape or lower.shape[-1] != n_in:
        raise ValueError(f"boxes of shape {lower.shape} / {upper.shape} do not fit a network with {n_in} inputs")
    dt = dn.gamma.dtype.type
    return _round_out(lower, dt)[0], _round_out(upper, dt)[1]


def _as_dn(net: ReluNetwork | DeviceNet, precision: str) -> DeviceNet:
    return net if isinstance(net, DeviceNet) else device_net(net, precision)


def preactivation_bounds(
    net: ReluNetwork | DeviceNet, lower, upper, precision: str = "float64"
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Interval (IBP) bounds of every pre-activation, layer by layer, the output last.

    ``lower``/``upper`` are ``(n,)`` or ``(B, n)``; each entry is ``(z_lo, z_hi)`` of shape
    ``(B, width_k)`` in float64. Used to cross-check other IBP implementations.
    """
    dn = _as_dn(net, precision)
    with jax.enable_x64(True):
        lo, hi = _boxes(dn, lower, upper)
        out = _preactivations_jit(dn, lo, hi)
        return [(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)) for a, b in out]


def gradient_bounds(
    net: ReluNetwork | DeviceNet, lower, upper, feature: int, precision: str = "float64"
) -> tuple[np.ndarray, np.ndarray]:
    """Sound bounds ``(g_lo, g_hi)``, shape ``(B, n_out)``, of ``df/dx_feature`` over each box."""
    dn = _as_dn(net, precision)
    with jax.enable_x64(True):
        lo, hi = _boxes(dn, lower, upper)
        gl, gh = _gradient_jit(dn, lo, hi, jnp.asarray(feature, dtype=jnp.int32))
        return np.asarray(gl, dtype=np.float64), np.asarray(gh, dtype=np.float64)


def output_bounds(net: ReluNetwork | DeviceNet, lower, upper, precision: str = "float64"):
    """Sound IBP bounds ``(y_lo, y_hi)`` of the network output over each box, ``(B, n_out)``."""
    return preactivation_bounds(net, lower, upper, precision)[-1]


def forward(net: ReluNetwork | DeviceNet, x, precision: str = "float64") -> np.ndarray:
    """Batched forward pass on the device (no soundness claim: a search aid)."""
    dn = _as_dn(net, precision)
    with jax.enable_x64(True):
        x = np.asarray(x, dtype=dn.gamma.dtype.type)
        return np.asarray(_forward_jit(dn, x), dtype=np.float64)


class BatchForward:
    """Evaluate a network on many points in fixed-size jitted chunks: every call, whatever its
    size, runs the one compiled shape ``(chunk, n_inputs)`` (the last chunk is padded)."""

    def __init__(self, net: ReluNetwork | DeviceNet, chunk: int = 8192, precision: str = "float64"):
        self.dn = _as_dn(net, precision)
        self.chunk = int(chunk)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        n = x.shape[0]
        out = []
        with jax.enable_x64(True):
            dt = self.dn.gamma.dtype.type
            for s in range(0, n, self.chunk):
                part = x[s : s + self.chunk]
                m = part.shape[0]
                if m < self.chunk:
                    part = np.concatenate([part, np.repeat(part[-1:], self.chunk - m, axis=0)])
                out.append(np.asarray(_forward_jit(self.dn, part.astype(dt)), dtype=np.float64)[:m])
        return np.concatenate(out) if out else np.zeros((0, self.dn.weights[-1].shape[1]))


def make_monotonicity_bound_fn(
    net: ReluNetwork, feature: int, sign: float, region: Box, precision: str = "float64", shift: float = 0.0
) -> BoundFn:
    """Bounding function of the splitting engine for ``sign * df/dx_feature + shift`` (Ouroboros).

    ``shift`` is the spec's ``slope_allowance`` (``t / W_i`` rounded toward 0), the tolerance in
    the form that composes across boxes (see :attr:`verifiers.specs.Monotonicity.slope_allowance`).
    """
    e = np.eye(net.n_inputs)[feature]
    sb = SlopeBounds(e, -shift, None) if sign > 0 else SlopeBounds(e, None, shift)
    return make_slope_bound_fn(net, sb, region, precision)


def make_slope_bound_fn(net: ReluNetwork, sb: SlopeBounds, region: Box, precision: str = "float64") -> BoundFn:
    """Bounding function for ``lower <= c . grad f <= upper``: a lower bound of
    ``min(c . grad f - lower, upper - c . grad f)`` from one interval chain started at ``c W_1``.

    The row is computed in float64 and widened by its rounding error
    (:meth:`ReluNetwork.direction_row`; none for ``+-e_i``), then rounded outward to the
    precision. ``x - lower`` and ``upper - x`` in float64 have the sign of their exact values.
    """
    dn = device_net(net, precision)
    row, err, _ = net.direction_row(sb.direction)
    dt = dn.gamma.dtype.type
    with jax.enable_x64(True):
        row_lo = jnp.asarray(_round_out(row - err if err.any() else row, dt)[0])
        row_hi = jnp.asarray(_round_out(row + err if err.any() else row, dt)[1])

    def bound(lower: np.ndarray, upper: np.ndarray) -> BoundResult:
        with jax.enable_x64(True):
            lo, hi = _boxes(dn, lower, upper)
            gl, gh = (np.asarray(a, dtype=np.float64) for a in _slope_jit(dn, lo, hi, row_lo, row_hi))
        obj = np.full(gl.shape, np.inf)
        if sb.lower is not None:
            obj = np.minimum(obj, gl - sb.lower)
        if sb.upper is not None:
            obj = np.minimum(obj, sb.upper - gh)
        return BoundResult(lower=obj, split_score=widest_split_score(lower, upper, region))

    bound.device_net = dn  # type: ignore[attr-defined]
    return bound


def make_output_bound_fn(
    net: ReluNetwork, lower: float | None, upper: float | None, region: Box, precision: str = "float64"
) -> BoundFn:
    """Bounding function for OutputBound: a lower bound of ``min(f - lower, upper - f)`` by IBP."""
    dn = device_net(net, precision)

    def bound(box_lo: np.ndarray, box_hi: np.ndarray) -> BoundResult:
        with jax.enable_x64(True):
            lo, hi = _boxes(dn, box_lo, box_hi)
            yl, yh = (np.asarray(a, dtype=np.float64)[:, 0] for a in _output_jit(dn, lo, hi))
        obj = np.full(yl.shape, np.inf)
        if lower is not None:
            obj = np.minimum(obj, yl - lower)
        if upper is not None:
            obj = np.minimum(obj, upper - yh)
        obj = np.nextafter(obj, -np.inf)  # the float64 subtraction rounds to nearest: step down
        return BoundResult(lower=obj, split_score=widest_split_score(box_lo, box_hi, region))

    bound.device_net = dn  # type: ignore[attr-defined]
    return bound


__all__ = [
    "BatchForward",
    "DeviceNet",
    "device_net",
    "forward",
    "gradient_bounds",
    "make_monotonicity_bound_fn",
    "make_output_bound_fn",
    "make_slope_bound_fn",
    "output_bounds",
    "preactivation_bounds",
    "relu_derivative_bounds",
]
