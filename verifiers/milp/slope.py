"""Deciding ``lower <= c . grad f <= upper`` on one box with the derivative MILP.

Each bound is one side ``sign * c . grad f + shift >= 0`` (:meth:`SlopeBounds.sides`). A side is
VERIFIED when the MILP's minimum of ``sign * c . grad f`` over S(B) (the derivative chain started
at the computed row ``c W_0``, see :mod:`verifiers.milp.encoding`) clears ``-shift`` plus the
row's rounding allowance ``P`` (:meth:`ReluNetwork.direction_row`; 0 for ``+-e_i``) and the
solver's ``abs_tol``, and the claim ``>= -shift + P`` is re-derived by
:func:`verifiers.milp.rigorous.confirm_lower_bound`. A pattern below the threshold is turned into
a witness point inside its linear piece (an LP maximising the smallest pre-activation margin);
a pattern with no interior in the box (degenerate: never the gradient of an open set) is cut off
by a no-good constraint and the MILP runs again. Witnesses are re-checked by the caller.
"""

from __future__ import annotations

import time

import numpy as np
from scipy.optimize import linprog

from verifiers.bounds.linear import LinearBounder
from verifiers.directional import DirectionalSlope
from verifiers.milp.decide import BoxDecision, _settle, pattern_affine
from verifiers.milp.encoding import point_pattern
from verifiers.milp.rigorous import confirm_lower_bound
from verifiers.milp.solve import BoxMilp
from verifiers.network import ReluNetwork
from verifiers.verdict import Counterexample


def interior_point(net: ReluNetwork, pattern: list[np.ndarray], lo: np.ndarray, hi: np.ndarray) -> np.ndarray | None:
    """A point of the box where every hidden unit has the sign ``pattern`` gives it with the largest
    common margin (an LP), or None when that margin is not positive (no interior in the box)."""
    n = lo.size
    maps, _ = pattern_affine(net, pattern)
    rows, rhs = [], []
    for (a, c), p in zip(maps, pattern):
        s = np.where(p > 0.5, 1.0, -1.0)  # s * (x a + c) >= t  <=>  -s a^T x + t <= s c
        rows.append(np.hstack([-(a * s[None, :]).T, np.ones((a.shape[1], 1))]))
        rhs.append(s * c)
    a_ub, b_ub = np.vstack(rows), np.concatenate(rhs)
    norms = np.maximum(np.abs(a_ub[:, :n]).max(axis=1), 1e-300)
    a_ub, b_ub = a_ub / norms[:, None], b_ub / norms  # the margin t in units of each row's scale
    a_ub[:, n] = 1.0
    cost = np.zeros(n + 1)
    cost[-1] = -1.0
    bounds = [(lo[j], hi[j]) for j in range(n)] + [(None, 1.0)]
    try:
        res = linprog(cost, A_ub=a_ub, b_ub=b_ub, bounds=bounds, method="highs")
    except ValueError:
        return None
    if res.status != 0 or not res.x[n] > 0:
        return None
    return np.clip(res.x[:n], lo, hi)


def decide_slope_box(
    net: ReluNetwork,
    spec: DirectionalSlope,
    lo,
    hi,
    *,
    deadline: float,
    bounder: LinearBounder | None = None,
    abs_tol: float = 1e-7,
    worst_case: bool = False,
    max_nogood: int = 20,
    threads: int = 1,
    rel_gap: float = 1e-4,
    n_samples: int = 256,
    seed: int = 0,
) -> BoxDecision:
    """Decide ``spec`` on the box ``[lo, hi]`` (see the module docstring); slopes compose across
    boxes, so the verdicts of the boxes of a cover combine."""
    start = time.perf_counter()
    lo = np.asarray(lo, dtype=np.float64)
    hi = np.asarray(hi, dtype=np.float64)
    sb = spec.slope_bounds()
    allowance = net.direction_row(sb.direction)[2]
    out = BoxDecision(status="verified")
    worst = np.inf
    rng = np.random.default_rng(seed)
    for sign, shift in sb.sides():
        threshold = -shift + allowance  # sign * c . grad f >= threshold proves the side
        bm = BoxMilp(net, lo, hi, feature=sb.direction, bounder=bounder, sign=sign)
        if bm.derivative_lower + shift >= 0:  # the linear bound (allowance included) suffices
            worst = min(worst, bm.derivative_lower + shift)
            continue
        pts = rng.uniform(lo, hi, size=(max(n_samples, 1), lo.size))
        slopes = sign * np.asarray(net.gradient(pts, sb.direction), dtype=np.float64)
        j = int(np.argmin(slopes))
        if slopes[j] + shift < 0:
            out.counterexamples.append(Counterexample.make(pts[j]))
            if not worst_case:
                out.status, out.message = "falsified", f"sampled slope {sign * slopes[j]:.4g} violates a bound"
                break
        if len(net.weights) == 1:  # linear: the bound above is exact up to rounding
            out.status, out.message = "unknown", "linear network within rounding of the bound"
            break
        side = _decide_side(net, bm, sign, threshold, lo, hi, deadline, abs_tol, worst_case, max_nogood, threads,
                            rel_gap, pts[j])  # fmt: skip
        out.milps += side.milps
        out.counterexamples += side.counterexamples
        if side.bound is not None:
            worst = min(worst, side.bound + shift)
        if side.status != "verified":
            out.status, out.message = side.status, side.message
            if side.status == "falsified" and not worst_case:
                break
        elif out.status == "verified":
            out.message = side.message
    if out.counterexamples and out.status != "falsified":
        out.status = "falsified"
        out.message = (out.message + "; " if out.message else "") + "sampled point with a violating slope"
    out.bound = None if not np.isfinite(worst) else float(worst)
    out.seconds = time.perf_counter() - start
    return out


def _decide_side(net, bm: BoxMilp, sign, threshold, lo, hi, deadline, abs_tol, worst_case, max_nogood, threads,
                 rel_gap, hint) -> BoxDecision:  # fmt: skip
    """One side ``min sign * c . grad f >= threshold`` by MILP, with no-good cuts of degenerate patterns."""
    out = BoxDecision(status="unknown")
    nogood: list[list[np.ndarray]] = []
    while True:
        left = deadline - time.perf_counter()
        if left <= 0:
            out.message = "time limit before the derivative MILP finished"
            return out
        r = bm.min_derivative(sign, time_limit=left, cutoff=None if worst_case else threshold + abs_tol,
                              first_only=not worst_case, threads=threads, rel_gap=rel_gap, nogood=nogood,
                              hint=hint if worst_case else None)  # fmt: skip
        out.milps += 1
        if not nogood and r.dual_bound is not None and r.status in ("optimal", "cutoff"):
            out.bound = r.dual_bound
        if r.status == "cutoff" or (
            r.status == "optimal" and r.objective is not None and r.objective > threshold + abs_tol
        ):
            conf = confirm_lower_bound(bm.derivative_model(sign)[0], threshold, deadline, threads=threads)
            _settle(out, conf, f"derivative MILP: min sign*c.grad f >= {threshold + abs_tol:.3g}")
            if not conf.proven and conf.leaf is not None:
                x = interior_point(net, point_pattern(net, np.clip(conf.leaf[: lo.size], lo, hi)), lo, hi)
                if x is not None:
                    out.counterexamples.append(Counterexample.make(x))
            return out
        if r.pattern is None or r.objective is None:
            out.message = f"derivative MILP ended with status {r.status} and no solution"
            return out
        x = interior_point(net, r.pattern, lo, hi)
        if x is not None:
            slope = sign * float(net.gradient(x, bm.feature))
            if slope < threshold:
                out.status = "falsified"
                out.counterexamples.insert(0, Counterexample.make(x))
                out.message = f"derivative MILP: slope {sign * slope:.4g} on a linear piece of the box"
            else:
                out.message = "derivative MILP: the minimum is within abs_tol of the threshold (undecided)"
            return out
        if len(nogood) >= max_nogood:
            out.message = f"derivative MILP: {max_nogood} degenerate patterns cut off, still undecided"
            return out
        nogood.append(r.pattern)  # no interior in the box: never the slope of an open set of it


__all__ = ["decide_slope_box", "interior_point"]
