"""Bounding boxes through auto_LiRPA: batching, time budgets, outward rounding, split scores."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from verifiers.bounds.result import BoundResult
from verifiers.lirpa_compat import DENSE_BOUND_OPTS, import_auto_lirpa
from verifiers.network import ReluNetwork

METHODS: dict[str, str] = {
    "ibp": "IBP",
    "crown": "CROWN",
    "crown-ibp": "CROWN-IBP",
    "alpha-crown": "CROWN-Optimized",
}
from verifiers.backends.lirpa.graph import DTYPES, F64_SLACK, _bound_heaviside_class, _default_dtype, to_torch


class LirpaBounder:
    """Batched auto_LiRPA bounds of a scalar-output torch module over boxes of its input.

    ``bound(lo, hi)`` returns ``(lower, upper | None, A | None)``: sound bounds per box and, for the
    linear-bound methods, the lower bound's coefficients ``A`` (``lower(x) >= A x + c`` on the box).
    """

    def __init__(
        self,
        module: torch.nn.Module,
        n_inputs: int,
        method: str = "crown",
        dtype: torch.dtype = torch.float64,
        alpha_iterations: int = 20,
        alpha_lr: float = 0.5,
    ):
        if method not in METHODS:
            raise ValueError(f"lirpa: unknown method {method!r}; choose from {sorted(METHODS)}")
        al = import_auto_lirpa()
        self.al = al
        self.method = method
        self.dtype = dtype
        self.n_inputs = n_inputs
        opts: dict[str, Any] = dict(DENSE_BOUND_OPTS, verbosity=0)
        opts["optimize_bound_args"] = {"iteration": int(alpha_iterations), "lr_alpha": float(alpha_lr)}
        with _default_dtype(dtype):
            module = module.to(dtype).eval()
            self.bm = al.BoundedModule(
                module,
                torch.zeros(1, n_inputs, dtype=dtype),
                bound_opts=opts,
                device="cpu",
                custom_ops={"vpals::Heaviside0": _bound_heaviside_class()},
            )
        self.output_name = self.bm.output_name[0]
        self.input_name = self.bm.input_name[0]

    def bound(
        self, lo: np.ndarray, hi: np.ndarray, *, upper: bool = False, want_A: bool = True
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        al, dt = self.al, self.dtype
        x_L = torch.as_tensor(np.asarray(lo), dtype=dt)
        x_U = torch.as_tensor(np.asarray(hi), dtype=dt)
        # auto_LiRPA checks x_L <= x <= x_U only loosely; keep the centre exactly inside in float32.
        x = torch.minimum(torch.maximum((x_L + x_U) / 2, x_L), x_U)
        bx = al.BoundedTensor(x, al.PerturbationLpNorm(norm=np.inf, x_L=x_L, x_U=x_U))
        want_A = want_A and self.method != "ibp"
        kw: dict[str, Any] = {"x": (bx,), "method": METHODS[self.method], "bound_lower": True, "bound_upper": upper}
        if want_A:
            kw.update(return_A=True, needed_A_dict={self.output_name: [self.input_name]})
        grad = torch.enable_grad() if self.method == "alpha-crown" else torch.no_grad()
        with _default_dtype(dt), grad:
            ret = self.bm.compute_bounds(**kw)
        A = None
        if want_A:
            lb, ub, A_dict = ret
            lA = A_dict.get(self.output_name, {}).get(self.input_name, {}).get("lA")
            if lA is not None:
                A = lA.detach().reshape(lA.shape[0], -1).to(torch.float64).numpy()
        else:
            lb, ub = ret
        lower = lb.detach().reshape(-1).to(torch.float64).numpy()
        upper_np = ub.detach().reshape(-1).to(torch.float64).numpy() if upper and ub is not None else None
        return lower, upper_np, A


def _slack(v: np.ndarray) -> np.ndarray:
    return F64_SLACK * np.abs(v)


class _BudgetedBoundFn:
    """Wraps a BoundFn: drops the engine's padding and keeps each call within the time budget.

    * The engine pads every batch to ``batch_size`` rows (trailing copies of the last box) for jitted
      backends; torch needs no fixed shape and an auto_LiRPA call costs time in proportion to its
      rows, so the copies are bounded once.
    * The real rows are bounded in chunks sized from the measured cost per row (about
      ``chunk_s`` seconds each). Once the deadline has passed, the remaining rows get ``-inf``
      ("nothing known", sound) instead of being bounded, so a slow method (alpha-CROWN on a wide
      network) overruns the budget by at most one chunk instead of one whole batch.
    """

    def __init__(self, fn, deadline: float, chunk_s: float):
        self.fn, self.deadline, self.chunk_s = fn, deadline, chunk_s
        self.per_row: float | None = None
        self.skipped = 0
        self.last_call_s = 0.0

    def __call__(self, lo: np.ndarray, hi: np.ndarray) -> BoundResult:
        start = time.perf_counter()
        try:
            return self._bound(lo, hi)
        finally:
            self.last_call_s = time.perf_counter() - start

    def _bound(self, lo: np.ndarray, hi: np.ndarray) -> BoundResult:
        B = lo.shape[0]
        same = np.all(lo == lo[-1], axis=1) & np.all(hi == hi[-1], axis=1)
        m = 1 if same.all() else B - int(np.argmin(same[::-1])) + 1
        lower = np.full(m, -np.inf)
        score = hi[:m] - lo[:m]
        cands: np.ndarray | None = None
        done = 0
        while done < m:
            if time.perf_counter() > self.deadline:
                self.skipped += m - done
                break
            if self.per_row is None:
                size = min(m - done, 16)
            else:
                size = int(np.clip(self.chunk_s / max(self.per_row, 1e-9), 16, m - done))
            t = time.perf_counter()
            res = self.fn(lo[done : done + size], hi[done : done + size])
            cost = (time.perf_counter() - t) / size
            self.per_row = cost if self.per_row is None else 0.5 * (self.per_row + cost)
            lower[done : done + size] = np.asarray(res.lower, dtype=np.float64)
            score[done : done + size] = np.asarray(res.split_score, dtype=np.float64)
            if res.candidates is not None:
                if cands is None:
                    cands = (lo[:m] + hi[:m]) / 2
                cands[done : done + size] = res.candidates
            done += size
        rep = np.concatenate([np.arange(m), np.full(B - m, m - 1)])
        return BoundResult(lower=lower[rep], split_score=score[rep], candidates=None if cands is None else cands[rep])


class _ProofPathBounder:
    """Bounds with outward slack; in float32 mode claimed proofs are re-bounded in float64."""

    def __init__(self, make_module, n_inputs: int, method: str, dtype: str, **kw: Any):
        self.main = LirpaBounder(make_module(DTYPES[dtype]), n_inputs, method, DTYPES[dtype], **kw)
        self.check = None
        if dtype == "float32":
            self.check = LirpaBounder(make_module(torch.float64), n_inputs, method, torch.float64, **kw)

    def bound(
        self,
        lo: np.ndarray,
        hi: np.ndarray,
        *,
        upper: bool = False,
        want_A: bool = True,
        threshold_low: float = 0.0,
        threshold_high: float = 0.0,
    ):
        """Sound ``(lower, upper, A)``. In float32 mode a box whose float32 bounds come close to a
        proof (``lower >= threshold_low`` and, when asked, ``upper <= threshold_high``, up to a
        1e-5 relative margin) is re-bounded in float64; the other float32 bounds are widened by a
        generous ``1e-3 (1 + |v|)`` and only steer the search."""
        lower, up, A = self.main.bound(lo, hi, upper=upper, want_A=want_A)
        if self.check is None:
            lower = lower - _slack(lower)
            if up is not None:
                up = up + _slack(up)
            return lower, up, A
        claim = lower >= threshold_low - 1e-5 * (1.0 + np.abs(lower))
        if up is not None:
            claim &= up <= threshold_high + 1e-5 * (1.0 + np.abs(up))
        lower = lower - 1e-3 * (1.0 + np.abs(lower))
        if up is not None:
            up = up + 1e-3 * (1.0 + np.abs(up))
        idx = np.flatnonzero(claim)
        if idx.size:
            l64, u64, _ = self.check.bound(lo[idx], hi[idx], upper=upper, want_A=False)
            lower[idx] = l64 - _slack(l64)
            if up is not None and u64 is not None:
                up[idx] = u64 + _slack(u64)
        return lower, up, A


def preactivation_bounds(
    net: ReluNetwork, lower: np.ndarray, upper: np.ndarray, method: str = "ibp"
) -> list[tuple[np.ndarray, np.ndarray]]:
    """auto_LiRPA bounds of every pre-activation, layer by layer, the output last (float64).

    Same layout as :func:`verifiers.bounds.preactivation_bounds` (entries ``(z_lo, z_hi)`` of shape
    ``(B, width_k)``) so that the two IBP implementations can be cross-checked. Each layer is bounded
    as the output of the network truncated after its affine map.
    """
    lo = np.atleast_2d(np.asarray(lower, dtype=np.float64))
    hi = np.atleast_2d(np.asarray(upper, dtype=np.float64))
    out = []
    for k in range(len(net.weights)):
        sub = to_torch(ReluNetwork(net.weights[: k + 1], net.biases[: k + 1]), torch.float64)
        bounder = LirpaBounder(sub, net.n_inputs, method)  # vector output: bounds of every unit
        al = bounder.al
        x_L, x_U = torch.tensor(lo), torch.tensor(hi)  # copies: the callers may pass read-only views
        bx = al.BoundedTensor((x_L + x_U) / 2, al.PerturbationLpNorm(norm=np.inf, x_L=x_L, x_U=x_U))
        grad = torch.enable_grad() if method == "alpha-crown" else torch.no_grad()
        with _default_dtype(torch.float64), grad:
            zl, zu = bounder.bm.compute_bounds(x=(bx,), method=METHODS[method])
        out.append((zl.detach().numpy().astype(np.float64), zu.detach().numpy().astype(np.float64)))
    return out


# --------------------------------------------------------------------------------------------
# Split scores and falsification
# --------------------------------------------------------------------------------------------


def min_corner(lo: np.ndarray, hi: np.ndarray, A: np.ndarray) -> np.ndarray:
    """The corner of each box minimising the linear function ``A x`` (per row)."""
    return np.where(A > 0, lo, hi)


def split_scores(
    net: ReluNetwork, lo: np.ndarray, hi: np.ndarray, region_widths: np.ndarray, A: np.ndarray | None = None
) -> np.ndarray:
    """Score of bisecting each input dimension of each box (higher first).

    The share of the first-layer unstable neurons' ranges that ``x_j`` accounts for (what halving
    ``x_j`` removes), plus ``|A_j| w_j`` when the lower bound is linear in ``x`` with coefficients
    ``A``, plus a small tie-break towards the widest dimension relative to the region.
    """
    w = hi - lo
    w0 = np.abs(net.weights[0])
    centre = (lo + hi) / 2 @ net.weights[0] + net.biases[0]
    contrib = w[:, :, None] * w0[None, :, :] / 2  # (B, n, n0)
    rad = contrib.sum(axis=1)
    unstable = np.abs(centre) < rad
    share = (contrib / np.maximum(rad, 1e-300)[:, None, :] * unstable[:, None, :]).sum(axis=2)
    rel = np.where(region_widths > 0, w / np.where(region_widths > 0, region_widths, 1.0), 0.0)
    score = share + 1e-3 * rel
    if A is not None:
        lin = np.abs(A) * w
        score = score + lin / np.maximum(lin.sum(axis=1, keepdims=True), 1e-300)
    return score
