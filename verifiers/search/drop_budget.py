"""The drop budget: a tolerance proof that lets small pockets of negative slope through.

Why: the slope form of a tolerance (``sign * df/dx_i >= -t / W_i`` on every box,
:attr:`verifiers.specs.Monotonicity.slope_allowance`) composes, but it asks every box for the same
slope. A trained network that falls by 1e-3 over a pocket 1 % of the feature's range wide drops
1e-5 there, far inside a tolerance of 1e-4, and still fails the slope form: its pockets stay
unresolved however long the search splits them.

The argument. Run the box search with half the slope allowance, ``s = slope_allowance / 2``: a
proven box has ``sign * df/dx_i >= -s``. Each leftover box ``k`` has a sound lower bound ``b_k`` of
the search objective ``sign * df/dx_i + s``, so on it ``-sign * df/dx_i <= rho_k = max(0, s - b_k)``.
Fix a line along ``e_i`` whose other coordinates ``p`` lie on no face of any box (these lines are
dense; the drop between two points is continuous in them, so a bound for them holds for every
pair). Along it, the boxes form a partition of the segment in the region, and the drop between
any two of its points is at most the integral of ``max(0, -sign * df/dx_i)``:

    drop <= s * W_i + sum of w_k * rho_k over the leftover boxes whose open projection
            (every coordinate but i) contains p,

with ``w_k`` the box's width along ``i``. Boxes that one line crosses have pairwise overlapping open
projections, so the sum is at most ``D = max_k sum_{j overlaps k} w_j rho_j`` (the heaviest
neighbourhood; every clique lies in the neighbourhood of each of its members). If ``s * W_i + D <= t``
(computed with upward rounding), the spec holds with tolerance ``t``. No sampling contributes;
boxes never bounded (``b = -inf``) make ``D`` infinite.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from verifiers.search.splitting import SplitResult
from verifiers.specs import Monotonicity
from verifiers.verdict import Status

MAX_POCKETS = 4096  # boxes whose exact neighbourhood is computed (O(n) each); the rest keep a cheap bound
_UP = 1.0 + 8 * np.finfo(np.float64).eps


def half_allowance(spec: Monotonicity) -> float:
    """The slope shift the box search runs with when the drop budget finishes it (exact: a halving)."""
    return spec.slope_allowance / 2.0


def _overlap_weight_1d(lo: np.ndarray, hi: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """For each box, the summed weight of the boxes whose open interval overlaps its own (one
    dimension; itself included), by sorting: all minus those entirely left or right of it."""
    total = weight.sum()
    by_hi = np.argsort(hi, kind="stable")
    cum_hi = np.concatenate([[0.0], np.cumsum(weight[by_hi])])
    left = cum_hi[np.searchsorted(hi[by_hi], lo, side="right")]  # hi_j <= lo_k
    by_lo = np.argsort(lo, kind="stable")
    cum_lo = np.concatenate([[0.0], np.cumsum(weight[by_lo])])
    right = total - cum_lo[np.searchsorted(lo[by_lo], hi, side="left")]  # lo_j >= hi_k
    return total - left - right


def heaviest_line(
    lower: np.ndarray, upper: np.ndarray, weight: np.ndarray, feature: int, free: np.ndarray, budget: float = 0.0
) -> float:
    """An upper bound (rounded up) of ``max_k`` of the summed ``weight`` of the boxes whose open
    projections (the ``free`` coordinates but ``feature``) overlap box ``k``'s.

    Exact neighbourhoods cost ``O(n)`` each; the per-dimension overlap weights bound them all in
    ``O(n log n)`` (overlapping in every dimension implies overlapping in each), so only the boxes
    whose cheap bound exceeds ``budget`` get their exact neighbourhood, heaviest first, at most
    ``MAX_POCKETS`` of them; the others keep their cheap bound.
    """
    if not len(weight):
        return 0.0
    dims = np.flatnonzero(free & (np.arange(len(free)) != feature))
    lo, hi = lower[:, dims], upper[:, dims]
    eps = np.finfo(np.float64).eps
    total = float(weight.sum())
    cheap = np.full(len(weight), total)
    for d in range(len(dims)):
        cheap = np.minimum(cheap, _overlap_weight_1d(lo[:, d], hi[:, d], weight))
    # prefix sums lose up to about n eps total: that much is added before anything is compared
    cheap = cheap * (1.0 + (len(weight) + 4) * eps) + (len(weight) + 4) * eps * total
    over = np.flatnonzero(cheap > budget)
    if len(dims) == 0 or not len(over):
        return float(cheap.max()) * _UP
    over = over[np.argsort(-cheap[over], kind="stable")]
    best = float(np.max(cheap[over[MAX_POCKETS:]], initial=0.0))  # left unchecked: their cheap bound
    for k in over[:MAX_POCKETS]:
        overlap = np.all((lo < hi[k]) & (lo[k] < hi), axis=1)
        best = max(best, float(weight[overlap].sum()))
    best = max(best, float(np.max(cheap[cheap <= budget], initial=0.0)))
    return best * (1.0 + (len(weight) + 4) * eps) * _UP


def finish_with_drop_budget(spec: Monotonicity, res: SplitResult, shift: float) -> SplitResult:
    """``res`` (a search run with objective ``sign * df/dx_i + shift``) proven by the drop budget,
    or unchanged with the budget's reading in its message."""
    if res.status not in (Status.UNKNOWN, Status.TIMEOUT) or spec.tolerance <= 0:
        return res
    i = spec.feature
    region_w = float(spec.region.widths[i])
    rho = np.nextafter(shift - res.unresolved_bound, np.inf)
    rho = np.where(np.isnan(rho), np.inf, np.maximum(rho, 0.0))
    pocket = rho > 0
    if not np.all(np.isfinite(rho)):
        return dataclasses.replace(res, message=f"{res.message}; drop budget not applied (a box never bounded)")
    widths = (res.unresolved_upper - res.unresolved_lower)[:, i]
    weight = widths[pocket] * rho[pocket] * _UP
    free = spec.region.widths > 0
    room = spec.tolerance - shift * region_w * _UP
    depth = heaviest_line(res.unresolved_lower[pocket], res.unresolved_upper[pocket], weight, i, free, budget=room)
    spent = shift * region_w * _UP + depth
    if spent * _UP > spec.tolerance:
        note = f"drop budget: {spent:.3g} of tolerance {spec.tolerance:.3g} ({int(pocket.sum())} pockets)"
        return dataclasses.replace(res, message=f"{res.message}; {note}")
    return dataclasses.replace(
        res,
        status=Status.VERIFIED,
        verified_fraction=1.0,
        unresolved_fraction=0.0,
        counterexamples=[],
        message=f"{res.message}; proven by the drop budget: at most {spent:.3g} of tolerance {spec.tolerance:.3g} "
        f"along any line ({int(pocket.sum())} pockets of negative slope)",
        stats={**res.stats, "drop_budget_spent": spent, "pockets": int(pocket.sum())},
    )
