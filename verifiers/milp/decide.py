"""Deciding a spec on one box with MILPs, and turning an optimal pattern into a concrete pair."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linprog

from verifiers.bounds.linear import LinearBounder
from verifiers.milp.encoding import point_pattern
from verifiers.milp.rigorous import Confirmation, confirm_lower_bound
from verifiers.milp.solve import BoxMilp
from verifiers.network import ReluNetwork
from verifiers.specs import Monotonicity, OutputBound
from verifiers.verdict import Counterexample


def pattern_affine(net: ReluNetwork, pattern: list[np.ndarray]):
    """Affine maps ``z_k(x) = x A_k + c_k`` of every hidden layer under a fixed activation
    pattern, and the pattern's gradient of the output."""
    a = np.eye(net.n_inputs)
    c = np.zeros(net.n_inputs)
    maps = []
    for k, p in enumerate(pattern):
        a = a @ net.weights[k]
        c = c @ net.weights[k] + net.biases[k]
        maps.append((a.copy(), c.copy()))
        a = a * p[None, :]
        c = c * p
    grad = (a @ net.weights[-1])[:, 0]
    return maps, grad


def segment_in_pattern(net: ReluNetwork, pattern: list[np.ndarray], lo, hi, feature: int, x_hint=None):
    """The longest segment ``[x, x + d e_i]`` inside the box on which every hidden unit keeps the
    sign given by ``pattern`` (an LP). Returns ``(x, d, slope)`` with ``slope = df/dx_i`` there,
    or None if the LP fails. ``d == 0`` means the pattern's region is degenerate along ``e_i``."""
    lo = np.asarray(lo, dtype=np.float64)
    hi = np.asarray(hi, dtype=np.float64)
    n = lo.size
    maps, grad = pattern_affine(net, pattern)
    rows, rhs = [], []
    for (a, c), p in zip(maps, pattern):
        s = np.where(p > 0.5, 1.0, -1.0)  # need s * (x a + c) >= 0  <=>  -s * a^T x <= s * c
        at = (a * s[None, :]).T  # (units, n)
        sc = s * c
        # at x and at x + d e_i
        rows.append(np.hstack([-at, np.zeros((at.shape[0], 1))]))
        rhs.append(sc)
        rows.append(np.hstack([-at, -at[:, feature : feature + 1]]))
        rhs.append(sc)
    rows.append(np.hstack([np.eye(n)[feature : feature + 1], np.ones((1, 1))]))  # x_i + d <= hi_i
    rhs.append(hi[feature : feature + 1])
    a_ub = np.vstack(rows)
    b_ub = np.concatenate(rhs)
    # scale rows for conditioning
    norms = np.maximum(np.abs(a_ub).max(axis=1), 1e-300)
    a_ub = a_ub / norms[:, None]
    b_ub = b_ub / norms
    cost = np.zeros(n + 1)
    cost[-1] = -1.0
    bounds = [(lo[j], hi[j]) for j in range(n)] + [(0.0, hi[feature] - lo[feature])]
    try:
        res = linprog(cost, A_ub=a_ub, b_ub=b_ub, bounds=bounds, method="highs")
    except ValueError:
        return None
    if res.status != 0:
        return None
    x = np.clip(res.x[:n], lo, hi)
    d = float(max(res.x[n], 0.0))
    d = min(d, hi[feature] - x[feature])
    return x, d, float(grad[feature])


# ----------------------------------------------------------------------------------------------
# deciding one box
# ----------------------------------------------------------------------------------------------


@dataclass
class BoxDecision:
    status: str  # "verified", "falsified", "unknown"
    bound: float | None = None  # proven lower bound of the objective (sign * df/dx_i, or the slack)
    counterexamples: list[Counterexample] = field(default_factory=list)
    message: str = ""
    seconds: float = 0.0
    milps: int = 0


def _drop_claim(status: str, drop: float) -> str:
    """Call a drop the worst only when the MILP finished: one found under a time limit is a lower
    bound of the worst violation, not the worst (``Verdict.worst_margin`` is then the largest found)."""
    if status == "optimal":
        return f"worst drop {drop:.4g} (MILP optimal within mip_rel_gap)"
    return f"largest drop found {drop:.4g} (MILP status {status}: not proven the worst)"


def _settle(out: BoxDecision, conf: Confirmation, claim: str) -> None:
    """VERIFIED only when the MILP's claim is rigorously confirmed; UNKNOWN otherwise."""
    out.status = "verified" if conf.proven else "unknown"
    out.message = f"{claim}; {conf.message}" if conf.proven else f"{claim}, not confirmed: {conf.message}"


def _witness_from_leaf(out: BoxDecision, net: ReluNetwork, spec: Monotonicity, leaf, lo, hi) -> None:
    """A leaf the confirmation could not prove holds an activation pattern: look for a real pair
    along a negative-slope segment of it (the caller's re-check judges it)."""
    x = np.clip(leaf[: lo.size], lo, hi)
    seg = segment_in_pattern(net, point_pattern(net, x), lo, hi, spec.feature)
    if seg is None:
        return
    xs, d, slope = seg
    if d > 0 and -spec.sign * slope * d > spec.tolerance:
        xp = xs.copy()
        xp[spec.feature] = xs[spec.feature] + d
        out.status = "falsified"
        out.counterexamples.insert(0, Counterexample.make(xs, xp))
        out.message += f"; the leaf's pattern has slope {spec.sign * slope:.4g} along a segment of length {d:.3g}"


def decide_monotonicity_box(
    net: ReluNetwork,
    spec: Monotonicity,
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
    presolve_bounds: bool = True,
    n_samples: int = 256,
    seed: int = 0,
) -> BoxDecision:
    """Decide ``spec`` restricted to the box ``[lo, hi]`` (pairs inside the box) with MILPs.

    VERIFIED: ``min sign * df/dx_i >= abs_tol - t / W_i`` (``W_i`` the width of the *spec's
    region* along ``i``, so that the verdicts of boxes of a cover combine), or, only for a box that
    spans the region along ``i``, the difference MILP shows ``min sign * (f(x') - f(x)) >= abs_tol
    - t`` (the difference form does not compose across boxes split along ``i``: see
    :attr:`verifiers.specs.Monotonicity.slope_allowance`). The solver's minimum must clear the
    threshold by its tolerance, and the claim is then re-derived rigorously by
    :func:`verifiers.milp.rigorous.confirm_lower_bound`; UNKNOWN when that fails. FALSIFIED: a
    pair, to be re-checked by the caller.

    Before any MILP: with ``presolve_bounds`` the sound CROWN bound of the box is tried (it may
    already prove it), and ``n_samples`` random points are searched for a negative slope (a pattern
    found there is turned into a pair by the same segment LP, or offered to HiGHS as a start).
    """
    start = time.perf_counter()
    lo = np.asarray(lo, dtype=np.float64)
    hi = np.asarray(hi, dtype=np.float64)
    i = spec.feature
    sign = spec.sign
    tol = float(spec.tolerance)
    allowance = spec.slope_allowance  # t / W_i rounded toward 0
    spans_region = bool(lo[i] <= spec.region.lower[i] and hi[i] >= spec.region.upper[i])
    out = BoxDecision(status="unknown")

    def left() -> float:
        return deadline - time.perf_counter()

    if hi[i] <= lo[i]:
        out.status = "verified"
        out.message = "feature fixed in the box"
        return out
    if len(net.weights) == 1:
        slope = sign * float(net.weights[0][i, 0])
        out.bound = slope
        if slope + allowance >= 0:
            out.status = "verified"
        else:
            x = lo.copy()
            xp = lo.copy()
            xp[i] = hi[i]
            out.status = "falsified"
            out.counterexamples.append(Counterexample.make(x, xp))
        return out
    cutoff = abs_tol - allowance  # a proof must clear the threshold by abs_tol (solver tolerance)
    bm = BoxMilp(net, lo, hi, feature=i, bounder=bounder, sign=sign)
    if presolve_bounds:
        lb = bm.derivative_lower
        if lb + allowance >= 0:
            out.status = "verified"
            out.bound = lb
            out.message = f"sound linear bound {lb:.3g} (no MILP needed)"
            out.seconds = time.perf_counter() - start
            return out
    min_len = 1e-12 * max(hi[i] - lo[i], 1e-300)
    hint = None
    if n_samples > 0:
        rng = np.random.default_rng(seed)
        pts = rng.uniform(lo, hi, size=(n_samples, lo.size))
        slopes = sign * np.asarray(net.gradient(pts, i), dtype=np.float64)
        j = int(np.argmin(slopes))
        hint = pts[j]
        if slopes[j] < cutoff:
            seg = segment_in_pattern(net, point_pattern(net, hint), lo, hi, i)
            if seg is not None and seg[1] > min_len and sign * seg[2] < 0 and -sign * seg[2] * seg[1] > tol:
                x, d, slope = seg
                xp = x.copy()
                xp[i] = x[i] + d
                out.counterexamples.append(Counterexample.make(x, xp))
                if not worst_case:
                    out.status = "falsified"
                    out.message = f"sampled slope {sign * slope:.4g} along a segment of length {d:.3g}"
                    out.seconds = time.perf_counter() - start
                    return out
    nogood: list[list[np.ndarray]] = []
    need_difference = False
    while True:
        if left() <= 0:
            out.message = "time limit before the derivative MILP finished"
            break
        r = bm.min_derivative(
            sign,
            time_limit=left(),
            cutoff=None if worst_case else cutoff,
            first_only=not worst_case,
            threads=threads,
            rel_gap=rel_gap,
            nogood=nogood,
            hint=hint if worst_case else None,
        )
        out.milps += 1
        if not nogood and r.dual_bound is not None and r.status in ("optimal", "cutoff"):
            out.bound = r.dual_bound
        if r.status == "cutoff" or (r.status == "optimal" and r.objective is not None and r.objective > cutoff):
            shown = out.bound if out.bound is not None else cutoff
            claim = f"derivative MILP: min sign*df/dx_i >= {shown:.3g}"
            # degenerate patterns excluded by no-good cuts are back in the rigorous confirmation
            # (their exclusion rests on a floating-point LP): it re-derives min over all of S(B)
            conf = confirm_lower_bound(bm.derivative_model(sign)[0], -allowance, deadline, threads=threads)
            _settle(out, conf, claim)
            if not conf.proven and conf.leaf is not None:
                _witness_from_leaf(out, net, spec, conf.leaf, lo, hi)
            # a degenerate pattern may be what blocks the confirmation: the difference form, where
            # it is sound (the box spans the region along i), does not see such patterns
            need_difference = out.status == "unknown" and spans_region and tol > 0
            break
        if r.pattern is None or r.objective is None:
            out.message = f"derivative MILP ended with status {r.status} and no solution"
            break
        seg = segment_in_pattern(net, r.pattern, lo, hi, i)
        if seg is not None and seg[1] > min_len and sign * seg[2] < 0:
            x, d, slope = seg
            if -sign * slope * d > tol:
                xp = x.copy()
                xp[i] = x[i] + d
                out.status = "falsified"
                out.counterexamples.insert(0, Counterexample.make(x, xp))
                out.message = f"derivative MILP: slope {sign * slope:.4g} along a segment of length {d:.3g}"
            else:  # a real negative slope, but its segment is too short to exceed the tolerance
                need_difference = True
            break
        if seg is not None and seg[1] > min_len:
            # a real pattern with slope >= 0 at the optimum: the minimum lies within the solver's
            # tolerance of the threshold, which the MILP cannot decide soundly
            out.message = "derivative MILP: the minimum is within abs_tol of the threshold (undecided)"
            break
        if len(nogood) >= max_nogood:
            need_difference = True
            break
        nogood.append(r.pattern)  # degenerate along e_i (never realised on a segment): exclude it
    if out.status == "falsified" and worst_case and left() > 0:
        r = bm.min_difference(sign, time_limit=left(), cutoff=-tol, threads=threads, rel_gap=rel_gap)
        out.milps += 1
        if r.x is not None and r.x_prime is not None and r.objective is not None and r.objective < -tol:
            out.counterexamples.insert(0, Counterexample.make(r.x, r.x_prime))
            out.message += "; " + _drop_claim(r.status, -r.objective)
        else:
            out.message += f"; worst-case difference MILP ended with status {r.status}: the worst is not proven"
    if need_difference and left() > 0:
        # the exact finite-difference MILP decides
        r = bm.min_difference(
            sign, time_limit=left(), cutoff=-tol + abs_tol, first_only=not worst_case, threads=threads, rel_gap=rel_gap
        )
        out.milps += 1
        if r.status == "cutoff" or (r.status == "optimal" and r.objective is not None and r.objective > -tol + abs_tol):
            claim = f"difference MILP: min sign*(f(x')-f(x)) >= {-tol + abs_tol:.3g}"
            if spans_region:
                _settle(out, confirm_lower_bound(bm.difference_model(sign)[0], -tol, deadline, threads=threads), claim)
            else:
                out.message = claim + " in this box only, which does not compose across boxes split along the feature"
        elif r.x is not None and r.objective is not None and r.objective < -tol:
            out.status = "falsified"
            out.counterexamples.append(Counterexample.make(r.x, r.x_prime))
            out.message = "difference MILP: " + (
                _drop_claim(r.status, -r.objective)
                if worst_case
                else f"a pair with drop {-r.objective:.4g} (first found)"
            )
        else:
            out.message = f"difference MILP ended with status {r.status}"
    if out.counterexamples and out.status != "falsified":
        # a concrete pair from the sampling stage outranks an undecided (or numerically off) MILP
        out.status = "falsified"
        out.message = (out.message + "; " if out.message else "") + "sampled pair along a negative-slope segment"
    out.seconds = time.perf_counter() - start
    return out


def decide_output_box(
    net: ReluNetwork,
    spec: OutputBound,
    lo,
    hi,
    *,
    deadline: float,
    bounder: LinearBounder | None = None,
    abs_tol: float = 1e-7,
    threads: int = 1,
) -> BoxDecision:
    """Decide ``lower <= f <= upper`` on a box with two MILPs (min f, max f), each claim
    re-derived by :func:`verifiers.milp.rigorous.confirm_lower_bound`."""
    start = time.perf_counter()
    bm = BoxMilp(net, lo, hi, feature=None, bounder=bounder)
    out = BoxDecision(status="verified")
    slack = math.inf
    for side, sign, ref in (("lower", 1.0, spec.lower), ("upper", -1.0, spec.upper)):
        if ref is None:
            continue
        left = deadline - time.perf_counter()
        if left <= 0:
            out.status = "unknown"
            out.message = "time limit"
            break
        # min sign * f >= sign * ref  <=>  spec side holds
        r = bm.min_output(sign, time_limit=left, cutoff=sign * ref + abs_tol, threads=threads)
        out.milps += 1
        if r.status == "cutoff" or (
            r.status == "optimal" and r.objective is not None and r.objective >= sign * ref + abs_tol
        ):
            conf = confirm_lower_bound(bm.output_model(sign)[0], sign * ref, deadline, threads=threads)
            if not conf.proven:
                out.status = "unknown"
                out.message = f"output MILP ({side}) claims the bound holds, but {conf.message}"
                break
            if r.dual_bound is not None:
                slack = min(slack, r.dual_bound - sign * ref)
            continue
        if r.x is not None and r.objective is not None and r.objective < sign * ref:
            out.status = "falsified"
            out.counterexamples.append(Counterexample.make(r.x))
            out.message = f"output MILP: f = {sign * r.objective:.6g} violates the {side} bound"
            break
        out.status = "unknown"
        out.message = f"output MILP ({side}) ended with status {r.status}"
        break
    out.bound = None if not math.isfinite(slack) else slack
    out.seconds = time.perf_counter() - start
    return out
