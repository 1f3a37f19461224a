"""Counterexample search of the lirpa backend: the shared axis-grid search, then PGD on the pair."""

from __future__ import annotations

import time

import numpy as np
import torch

from verifiers.backends.lirpa.bounding import _BudgetedBoundFn
from verifiers.backends.lirpa.graph import to_torch
from verifiers.network import ReluNetwork
from verifiers.search.witness import make_falsifier
from verifiers.specs import Monotonicity
from verifiers.verdict import Counterexample


def pgd_pairs(
    net_t: torch.nn.Module,
    x0: np.ndarray,
    t0: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    feature: int,
    sign: float,
    region_hi: float,
    steps: int = 10,
) -> tuple[np.ndarray, np.ndarray]:
    """Projected signed-gradient ascent on the difference ``sign * (f(x) - f(x'))``.

    ``x`` stays in its box ``[lo, hi]``, ``x' = x`` except ``x'_feature = t`` with
    ``x_feature <= t <= region_hi``; float64 torch on the plain network. Returns ``(x, x')``.
    """
    x = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
    t = torch.tensor(t0, dtype=torch.float64, requires_grad=True)
    lo_t = torch.as_tensor(lo, dtype=torch.float64)
    hi_t = torch.as_tensor(hi, dtype=torch.float64)
    step_x = (hi_t - lo_t) / 4
    step_t = (region_hi - lo_t[:, feature]) / 4
    onehot = torch.zeros(x0.shape[1], dtype=torch.float64)
    onehot[feature] = 1.0
    for k in range(steps):
        xp = x * (1 - onehot) + t[:, None] * onehot
        obj = sign * (net_t(x) - net_t(xp)).sum()
        gx, gt = torch.autograd.grad(obj, (x, t))
        decay = 1.0 / (1 + k)
        with torch.no_grad():
            x += step_x * decay * torch.sign(gx)
            t += step_t * decay * torch.sign(gt)
            x.copy_(torch.minimum(torch.maximum(x, lo_t), hi_t))
            t.copy_(torch.minimum(torch.maximum(t, x[:, feature]), torch.full_like(t, region_hi)))
    with torch.no_grad():
        xp = x * (1 - onehot) + t[:, None] * onehot
    return x.detach().numpy(), xp.detach().numpy()


class _MonotonicityFalsifier:
    """The shared axis-grid witness search, then a few PGD steps on the difference.

    The grid search first samples the boxes uniformly; the bound's minimising corners (when there
    are any) get a search of their own through point boxes, de-duplicated, rather than replacing
    half of the uniform samples (with few boxes that would be many copies of one corner). When
    bounding is slow (alpha-CROWN, wide networks) the uniform search is repeated with fresh samples
    for about as long as the last batch took to bound (at most ``max_rounds`` times), so that
    sampling is not starved by the few boxes a slow method gets through.
    """

    bound_fn: _BudgetedBoundFn | None = None
    max_rounds: int = 16

    def __init__(
        self, net: ReluNetwork, spec: Monotonicity, n_samples: int, n_grid: int, pgd_steps: int, pgd_boxes: int = 64
    ):
        self.grid_search = make_falsifier(net, spec, n_samples=n_samples, n_grid=n_grid)
        self.net, self.spec = net, spec
        self.net_t = to_torch(net, torch.float64).requires_grad_(False)
        self.steps, self.pgd_boxes = int(pgd_steps), int(pgd_boxes)

    def __call__(
        self, lo: np.ndarray, hi: np.ndarray, rng: np.random.Generator, candidates: np.ndarray | None = None
    ) -> list[Counterexample]:
        if not len(lo):
            return []
        t = time.perf_counter()
        out = list(self.grid_search(lo, hi, rng))
        if not out and self.bound_fn is not None:
            one = max(time.perf_counter() - t, 1e-6)
            rounds = min(self.max_rounds, int(self.bound_fn.last_call_s / one))
            deadline = self.bound_fn.deadline
            for _ in range(rounds - 1):
                if out or time.perf_counter() + one > deadline:
                    break
                out = list(self.grid_search(lo, hi, rng))
        if not out and candidates is not None:
            corners = np.unique(np.clip(candidates, lo, hi), axis=0)
            out = list(self.grid_search(corners, corners, rng))
        if out or self.steps <= 0:
            return out
        spec, i = self.spec, self.spec.feature
        k = min(len(lo), self.pgd_boxes)
        lo, hi = lo[:k], hi[:k]
        x0 = (lo + hi) / 2 if candidates is None else np.clip(candidates[:k], lo, hi)
        r_hi = float(spec.region.upper[i])
        t0 = x0[:, i] + rng.uniform(size=k) * (r_hi - x0[:, i])
        xs, xps = pgd_pairs(self.net_t, x0, t0, lo, hi, i, spec.sign, r_hi, self.steps)
        f = self.net.forward(np.vstack([xs, xps]))[:, 0]
        drop = spec.sign * (f[:k] - f[k:])
        ok = np.flatnonzero((drop > spec.tolerance) & (xps[:, i] > xs[:, i]))
        ok = ok[np.argsort(-drop[ok])][:8]
        return [Counterexample.make(xs[r], xps[r]) for r in ok]


# --------------------------------------------------------------------------------------------
# The backend
# --------------------------------------------------------------------------------------------
