"""The public face of the linear bounds: :class:`LinearBounder` over batches of boxes.

It bounds ``sign * df/dx_i`` (monotonicity), ``sign * c . grad f`` along any direction ``c``
(gradient specs: the chain starts at ``v_0 = c W_0`` instead of the row ``W_0[i]``, and the
bound is lowered by how far the rounding of that row can move it,
:meth:`ReluNetwork.direction_row`) and ``f`` (output bounds) with back-substituted
linear relaxations, much tighter than intervals; the soundness argument is in
``docs/linear-bounds.md`` and the relaxations in :mod:`verifiers.bounds.linear_relax` and
:mod:`verifiers.bounds.linear_deriv`.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from verifiers.bounds.jit_cache import note_network_shape
from verifiers.bounds.linear_deriv import _derivative_batch, _internals_batch, _output_batch
from verifiers.bounds.linear_relax import _gamma_k, _Net
from verifiers.bounds.result import BoundFn, BoundResult, widest_split_score
from verifiers.network import ReluNetwork
from verifiers.specs import Box, SlopeBounds


@dataclass
class DerivativeBounds:
    """Per-box results of :meth:`LinearBounder.derivative` (NumPy, float64)."""

    lower: np.ndarray  # (B,) sound lower bound of sign * df/dx_i over each box
    coef: np.ndarray  # (B, n) x-coefficients of the affine lower bound
    plain_lower: np.ndarray  # (B,) the bound with the heuristic relaxations (no optimisation)
    interval_lower: np.ndarray  # (B,) the interval bound of the same chain, for comparison
    n_unstable: np.ndarray  # (B,) number of unstable hidden neurons
    split_score: np.ndarray  # (B, n) |coef| * width
    candidates: np.ndarray  # (B, n) the corner minimising the affine bound


@dataclass
class OutputBounds:
    lower: np.ndarray  # (B,) sound lower bound of f
    upper: np.ndarray  # (B,) sound upper bound of f
    coef_lower: np.ndarray  # (B, n) x-coefficients of the affine lower bound of f
    coef_upper: np.ndarray  # (B, n) x-coefficients of the affine lower bound of -f


def device_net(net: ReluNetwork) -> _Net:
    """Move ``net`` to the device once, with its precomputed parts (float64)."""
    note_network_shape("linear", tuple(w.shape for w in net.weights))
    widths = [net.n_inputs] + [w.shape[1] for w in net.weights]
    k = 2 * sum(n + 4 for n in widths) + 32
    with jax.enable_x64(True):
        put = lambda a: jnp.asarray(np.asarray(a, dtype=np.float64))
        zero = put(np.zeros((1, 1)))
        return _Net(
            ws=tuple(put(w) for w in net.weights),
            bs=tuple(put(b) for b in net.biases),
            aws=tuple(put(np.abs(w)) for w in net.weights),
            wpos=(zero,) + tuple(put(np.maximum(w, 0).T) for w in net.weights[1:]),
            wneg=(zero,) + tuple(put(np.minimum(w, 0).T) for w in net.weights[1:]),
            gamma=put(np.asarray(4 * _gamma_k(k))),
        )


class LinearBounder:
    """A network's weights on the device, and batched CROWN bounds over boxes.

    ``batch_size`` fixes the shape of every call into the jitted functions: inputs are padded to a
    multiple of it (with copies of the first box), so a verify call compiles once per function.
    """

    def __init__(self, net: ReluNetwork, *, batch_size: int = 256):
        self.net = net
        self.batch_size = int(batch_size)
        self.dn = device_net(net)

    def _batches(self, lo, hi):
        n = lo.shape[0]
        bsz = self.batch_size
        total = -(-n // bsz) * bsz
        if total != n:
            pad = total - n
            lo = np.concatenate([lo, np.repeat(lo[:1], pad, axis=0)])
            hi = np.concatenate([hi, np.repeat(hi[:1], pad, axis=0)])
        for s in range(0, total, bsz):
            yield min(n, s + bsz) - s, lo[s : s + bsz], hi[s : s + bsz]

    @staticmethod
    def _as_boxes(lo, hi):
        lo = np.atleast_2d(np.asarray(lo, dtype=np.float64))
        hi = np.atleast_2d(np.asarray(hi, dtype=np.float64))
        if lo.shape != hi.shape:
            raise ValueError(f"boxes: lower {lo.shape} and upper {hi.shape} differ in shape")
        return lo, hi

    def derivative(
        self, lo, hi, feature: int | np.ndarray, sign: float, iters: int = 0, lr: float = 0.1, crown_v: bool = False
    ) -> DerivativeBounds:
        """Sound lower bounds of ``sign * df/dx_feature`` over each box ``[lo[b], hi[b]]`` (a
        vector ``feature`` is a direction ``c``: ``sign * c . grad f``).

        ``iters > 0`` optimises the relaxation parameters of the final bound (alpha-CROWN style)
        with that many projected Adam steps of size ``lr``. ``crown_v`` also bounds the
        intermediate ``v_k`` by back-substitution (a pass with as many rows as the layer is wide;
        on the benchmark networks it tightened the final bound by under 1% for about half the
        throughput, so intervals are the default there; the MILP's big-M bounds always use it).
        """
        lo, hi = self._as_boxes(lo, hi)
        outs = []
        row, allowance = self._first_row(feature)
        with jax.enable_x64(True):
            v0 = jnp.asarray(row)
            sg = jnp.asarray(float(sign), dtype=jnp.float64)
            for k, blo, bhi in self._batches(lo, hi):
                res = _derivative_batch(
                    self.dn,
                    v0,
                    sg,
                    jnp.asarray(blo),
                    jnp.asarray(bhi),
                    iters=int(iters),
                    lr=float(lr),
                    crown_v=bool(crown_v),
                )
                outs.append(tuple(np.asarray(a, dtype=np.float64)[:k] for a in res))
        lower, coef, plain, ibp, nun = (np.concatenate(parts) for parts in zip(*outs))
        if allowance:
            lower, plain, ibp = (np.nextafter(a - allowance, -np.inf) for a in (lower, plain, ibp))
        return DerivativeBounds(
            lower=lower,
            coef=coef,
            plain_lower=plain,
            interval_lower=ibp,
            n_unstable=nun,
            split_score=np.abs(coef) * (hi - lo),
            candidates=np.where(coef >= 0, lo, hi),
        )

    def output(self, lo, hi) -> OutputBounds:
        """Sound lower and upper bounds of ``f`` over each box."""
        lo, hi = self._as_boxes(lo, hi)
        outs = []
        with jax.enable_x64(True):
            for k, blo, bhi in self._batches(lo, hi):
                res = _output_batch(self.dn, jnp.asarray(blo), jnp.asarray(bhi))
                outs.append(tuple(np.asarray(a, dtype=np.float64)[:k] for a in res))
        lower, upper, cl, cu = (np.concatenate(parts) for parts in zip(*outs))
        return OutputBounds(lower=lower, upper=upper, coef_lower=cl, coef_upper=cu)

    def _first_row(self, feature: int | np.ndarray) -> tuple[np.ndarray, float]:
        """``v_0`` of the chain and the allowance its rounding costs (0 for a feature's row)."""
        if np.ndim(feature) == 0:
            return self.net.weights[0][int(feature)], 0.0
        row, _, allowance = self.net.direction_row(feature)
        return row, allowance

    def internals(self, lo, hi, feature: int | np.ndarray, sign: float = 1.0):
        """For ONE box: sound bounds of every hidden pre-activation ``z_k`` and of every
        ``v_k = dz_k/dx_feature`` for ``k >= 1`` over S(B) (the big-M bounds of the MILP), and the
        plain linear lower bound of ``sign * df/dx_feature`` (one compilation for all four).

        Returns ``(lows, ups, vbounds, lower)`` with ``vbounds[k-1] = (vl_k, vu_k)``. For a direction
        ``c`` the ``v_k`` are those of the chain started at the computed row ``c W_0`` (what the MILP
        encodes, :func:`verifiers.milp.encoding._encode_derivative`); ``lower`` is already lowered
        by the row's allowance, which the MILP's callers subtract likewise.
        """
        lo = np.asarray(lo, dtype=np.float64).reshape(1, -1)
        hi = np.asarray(hi, dtype=np.float64).reshape(1, -1)
        row, allowance = self._first_row(feature)
        if len(self.net.weights) == 1:
            return [], [], [], float(np.nextafter(sign * row[0] - allowance, -np.inf)) if allowance else float(sign * row[0])
        with jax.enable_x64(True):
            v0 = jnp.asarray(row)
            sg = jnp.asarray(float(sign), dtype=jnp.float64)
            lows, ups, vb, plain = _internals_batch(self.dn, v0, sg, jnp.asarray(lo), jnp.asarray(hi))
            plain = np.nextafter(np.asarray(plain) - allowance, -np.inf) if allowance else plain
            lows = [np.asarray(a, dtype=np.float64)[0] for a in lows]
            ups = [np.asarray(a, dtype=np.float64)[0] for a in ups]
            vbounds = [(np.asarray(a, dtype=np.float64)[0], np.asarray(b, dtype=np.float64)[0]) for a, b in vb]
        return lows, ups, vbounds, float(np.asarray(plain)[0])


def make_linear_slope_bound_fn(
    bounder: LinearBounder, sb: SlopeBounds, region: Box, split: str = "coef", iters: int = 10, lr: float = 0.3,
    crown_v: bool = False,
) -> BoundFn:
    """Bounding function for ``lower <= c . grad f <= upper``: per box the lower of the linear
    bounds of ``c . grad f - lower`` and ``upper - c . grad f`` (one derivative pass per side), with
    that side's split score (``|coef_j| w_j`` relative to the bound, or the widest dimension) and
    minimising corner."""
    rel = np.where(region.widths > 0, 1.0 / np.where(region.widths > 0, region.widths, 1.0), 0.0)

    def bound(lower: np.ndarray, upper: np.ndarray) -> BoundResult:
        obj = score = cand = None
        for sign, shift in sb.sides():
            d = bounder.derivative(lower, upper, sb.direction, sign, iters=iters, lr=lr, crown_v=crown_v)
            lb = d.lower + shift  # a sum of two doubles has the sign of its exact value
            sc = d.split_score / np.maximum(np.abs(lb)[:, None], 1e-12) + 1e-6 * (upper - lower) * rel
            take = np.ones(lb.shape, bool) if obj is None else lb < obj
            obj = lb if obj is None else np.where(take, lb, obj)
            score = sc if score is None else np.where(take[:, None], sc, score)
            cand = d.candidates if cand is None else np.where(take[:, None], d.candidates, cand)
        if split == "widest":
            score = widest_split_score(lower, upper, region)
        return BoundResult(lower=obj, split_score=score, candidates=cand)

    return bound


__all__ = ["DerivativeBounds", "LinearBounder", "OutputBounds", "device_net", "make_linear_slope_bound_fn"]
