"""The shared batched box-splitting engine (branch and bound over input boxes).

Backends that bound a box (``ouroboros``: interval arithmetic; ``crown``: linear bounds in JAX;
``lirpa``: auto_LiRPA) differ only in their *bounding function*; the search over sub-boxes is
this module, shared by all of them.

The problem is always stated as an *objective* whose sound lower bound over a box proves the
box when it is ``>= 0``:

* Monotonicity: ``sign * df/dx_feature`` (``>= 0`` on every box proves the spec for any
  tolerance ``>= 0``; see :mod:`verifiers.specs` for the semantics);
* OutputBound: ``min(f - lower, upper - f)``.

The contract of ``bound_fn`` and ``falsify_fn`` is in :mod:`verifiers.bounds.result`.

Search. Boxes are processed in fixed-size batches, breadth-first (FIFO: the bisection tree is
explored level by level, as in Ouroboros) or best-first (the boxes with the lowest inherited
bound first). A box whose bound is ``>= 0`` is proven; otherwise it is bisected at the midpoint
of its highest-scoring splittable dimension, as long as the box budget can still pay for both
children; boxes that cannot be split any more (budget, or floating-point resolution) are
*unresolved*. A child inherits its parent's bound (sound: it is a subset), so every leaf of the
search carries a sound lower bound, and ``best_bound`` is the lowest among the leaves.

Falsification runs on the lowest-bound unproven boxes of batches 1, 2, 4, 8, ... (or of every
``falsify_every``-th batch; 0 disables it), so that a real violation stops the search early at a
logarithmic cost, and once at the end on the unresolved boxes.

Statuses: VERIFIED when every box was proven (no sampling ever contributes to a proof);
FALSIFIED when a confirmed counterexample was found; otherwise TIMEOUT when the time budget
ran out, UNKNOWN when the box budget did. Volumes are fractions of the region's volume over
its non-degenerate (positive-width) dimensions; bisection halves a box's fraction exactly.
"""

from __future__ import annotations

import inspect
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Literal, TypeVar

import numpy as np

from verifiers.base import confirmed_margin
from verifiers.bounds.result import BoundFn, CheckFn, FalsifyFn
from verifiers.network import ReluNetwork
from verifiers.search.frontier import Frontier, make_frontier
from verifiers.search.pool import Pool, empty, grid_children
from verifiers.search.witness import make_falsifier
from verifiers.specs import Box, Spec
from verifiers.verdict import Counterexample, Status, worst_boxes

T = TypeVar("T")


@dataclass
class SplitResult:
    """Outcome of :func:`split_and_bound`; the ``unresolved_*`` arrays describe leftover boxes."""

    status: Status
    boxes: int  # boxes bounded (examined)
    verified_fraction: float
    unresolved_fraction: float
    best_bound: float | None  # lowest sound lower bound among the leaves (None if nothing bounded)
    counterexamples: list[Counterexample]
    unresolved_lower: np.ndarray  # (m, n)
    unresolved_upper: np.ndarray  # (m, n)
    unresolved_bound: np.ndarray  # (m,) sound lower bound of the objective on each unresolved box
    unresolved_volume: np.ndarray  # (m,) volume fraction of each unresolved box
    batches: int = 0
    elapsed_s: float = 0.0
    timed_out: bool = False
    compile_s: float = 0.0  # wall time of the first bound call (compilation, mostly)
    message: str = ""
    stats: dict = field(default_factory=dict)
    frontier: Frontier | None = None  # every leaf of the search (``keep_frontier``), to seed the next one

    def verdict_fields(self) -> dict:  # the keyword arguments of Verdict that this result fills
        return {
            "status": self.status,
            "boxes": int(self.boxes),
            "verified_fraction": float(self.verified_fraction),
            "unresolved_fraction": float(self.unresolved_fraction),
            "best_bound": None if self.best_bound is None else float(self.best_bound),
            "counterexamples": list(self.counterexamples),
            "message": self.message,
            "compile_s": float(self.compile_s),
            "unresolved_boxes": worst_boxes(self.unresolved_lower, self.unresolved_upper, self.unresolved_bound),
        }


def first_call(call: Callable[[], T], budget_s: float) -> T | None:
    """``call()``, or None if it does not return within ``budget_s``.

    Why: the first bound of a search compiles for the network's shape (seconds for a wide
    network, more on a loaded machine), which a search budget must neither pay for nor wait on
    without limit. XLA cannot cancel a compilation, so a late call goes on in a daemon thread, not
    waited for; the next call with that shape reuses its compiled program.
    """
    box: list[T] = []
    worker = threading.Thread(target=lambda: box.append(call()), daemon=True)
    worker.start()
    worker.join(budget_s)
    return box[0] if box else None


def _falsify_now(batch: int, every: int | None) -> bool:
    if every is None:
        return batch & (batch - 1) == 0  # powers of two
    return every > 0 and (batch - 1) % every == 0


def _call_falsifier(falsify_fn: FalsifyFn, takes_candidates: bool, lo, hi, rng, candidates) -> list[Counterexample]:
    if takes_candidates:
        return list(falsify_fn(lo, hi, rng, candidates=candidates))
    return list(falsify_fn(lo, hi, rng))


def _accepts_candidates(fn: Callable) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return "candidates" in params or any(p.kind == p.VAR_KEYWORD for p in params.values())


def split_and_bound(
    region: Box,
    bound_fn: BoundFn,
    falsify_fn: FalsifyFn | None = None,
    *,
    batch_size: int,
    max_boxes: int,
    time_budget_s: float,
    order: Literal["breadth", "best"] = "breadth",
    check_fn: CheckFn | None = None,
    seed: int | np.random.Generator = 0,
    falsify_every: int | None = None,
    falsify_boxes: int = 256,
    final_falsify_boxes: int = 4096,
    stop_on_counterexample: bool = True,
    max_counterexamples: int = 8,
    compile_budget_s: float = 60.0,
    frontier: Frontier | None = None,
    keep_frontier: bool = False,
    split_dims: int = 1,
) -> SplitResult:
    """Branch and bound over ``region`` with ``bound_fn``; see the module docstring.

    Incremental verification (:mod:`verifiers.search.frontier`): with ``frontier``, the leaves of an
    earlier search over exactly this region, an unproven root is replaced by those leaves instead
    of its bisection (when the box budget can hold them); ``keep_frontier`` returns this search's
    own leaves as ``frontier``. ``split_dims`` > 1 cuts each box along its ``k`` best dimensions at
    once (``2**k`` children), ``k <= split_dims`` as large as keeps all the children within one
    batch: a narrow, deep search then costs a bound call per ``k`` levels instead of one per level.

    ``max_boxes`` counts bounded boxes (the root included). The first bound call (compilation,
    mostly) is bounded by ``compile_budget_s`` and reported as ``compile_s``; ``time_budget_s`` is
    the wall time of the search after it, so a cold and a warm call search equally long. The
    final falsification pass runs even after the budget expires (it is short).
    ``check_fn(cex)`` returns the float64 violation margin of a counterexample (``> 0`` = real);
    without it, proposed counterexamples are trusted.
    """
    if order not in ("breadth", "best"):
        raise ValueError(f"order must be 'breadth' or 'best', got {order!r}")
    if batch_size < 1 or max_boxes < 1:
        raise ValueError(f"batch_size and max_boxes must be >= 1, got {batch_size} and {max_boxes}")
    if not compile_budget_s > 0:
        raise ValueError(f"compile_budget_s must be > 0, got {compile_budget_s}")
    start = time.perf_counter()
    deadline = start + float(time_budget_s)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    n = region.dim
    region_w = region.widths
    free = region_w > 0  # never split fixed (zero-width) dimensions
    takes_candidates = falsify_fn is not None and _accepts_candidates(falsify_fn)

    pool = Pool(n, order)
    pool.push(region.lower[None].copy(), region.upper[None].copy(), np.ones(1), np.full(1, -np.inf))
    seed_leaves = frontier if frontier is not None and len(frontier) > 1 and frontier.tiles(region) else None
    proven_leaves: list[tuple[np.ndarray, ...]] = []  # kept only for the frontier
    unresolved: list[tuple[np.ndarray, ...]] = []  # (lo, hi, vol, bound)
    examined = 0
    batches = 0
    verified_vol = 0.0
    min_proven = math.inf
    cexs: list[Counterexample] = []
    timed_out = False
    stats = {"bound_s": 0.0, "falsify_s": 0.0, "stuck": 0}
    compile_s = 0.0
    compile_late = False

    def confirm(proposed: list[Counterexample]) -> list[Counterexample]:
        if check_fn is None:
            return proposed
        out = []
        for c in proposed:
            m = check_fn(c)
            if m > 0:
                c.margin = float(m)
                out.append(c)
        return out

    def falsify(lo, hi, bound, cands, limit) -> None:
        if falsify_fn is None or not len(lo):
            return
        t = time.perf_counter()
        sel = np.argsort(bound, kind="stable")[:limit]
        found = _call_falsifier(
            falsify_fn, takes_candidates, lo[sel], hi[sel], rng, None if cands is None else cands[sel]
        )
        cexs.extend(confirm(found))
        stats["falsify_s"] += time.perf_counter() - t

    while pool.size:
        if time.perf_counter() > deadline:
            timed_out = True
            break
        take = min(batch_size, max_boxes - examined, pool.size)
        lo, hi, vol, parent = pool.pop(take)
        m = len(lo)
        if m < batch_size:  # pad with copies of a real box: one compiled shape
            pad = batch_size - m
            lo_b = np.concatenate([lo, np.repeat(lo[-1:], pad, axis=0)])
            hi_b = np.concatenate([hi, np.repeat(hi[-1:], pad, axis=0)])
        else:
            lo_b, hi_b = lo, hi
        t = time.perf_counter()
        if batches:
            res = bound_fn(lo_b, hi_b)
            stats["bound_s"] += time.perf_counter() - t
        else:
            res = first_call(partial(bound_fn, lo_b, hi_b), compile_budget_s)
            compile_s = time.perf_counter() - t
            deadline += compile_s
            if res is None:
                pool.push(lo, hi, vol, parent)
                timed_out = compile_late = True
                break
        examined += m
        batches += 1
        lb = np.asarray(res.lower, dtype=np.float64)[:m]
        lb = np.where(np.isnan(lb), -np.inf, lb)
        lb = np.maximum(lb, parent)  # a child is a subset of its parent: both bounds hold
        proven = lb >= 0
        if proven.any():
            verified_vol += float(vol[proven].sum())
            min_proven = min(min_proven, float(lb[proven].min()))
            if keep_frontier:
                proven_leaves.append((lo[proven], hi[proven], vol[proven]))
        open_ = ~proven
        if not open_.any():
            continue
        lo, hi, vol, lb = lo[open_], hi[open_], vol[open_], lb[open_]
        score = np.asarray(res.split_score, dtype=np.float64)[:m][open_]
        cands = None if res.candidates is None else np.asarray(res.candidates, dtype=np.float64)[:m][open_]

        if falsify_fn is not None and _falsify_now(batches, falsify_every):
            falsify(lo, hi, lb, cands, falsify_boxes)
            if cexs and stop_on_counterexample:
                unresolved.append((lo, hi, vol, lb))
                break

        if seed_leaves is not None:  # the unproven root: continue from the last search's leaves
            if len(seed_leaves) <= max_boxes - examined:
                pool.push(seed_leaves.lower.copy(), seed_leaves.upper.copy(), seed_leaves.volume.copy(),
                          np.full(len(seed_leaves), lb[0]))  # fmt: skip
                seed_leaves = None
                continue
            seed_leaves = None
        # Bisect at the midpoint of the best splittable dimension.
        mid = (lo + hi) / 2.0
        splittable = free[None, :] & (mid > lo) & (mid < hi)
        big = np.finfo(np.float64).max
        score = np.where(splittable, np.nan_to_num(score, nan=-big, posinf=big, neginf=-big), -np.inf)
        can = splittable.any(axis=1)
        budget_left = max_boxes - examined - pool.size
        n_split = min(int(can.sum()), max(budget_left, 0) // 2)
        if n_split < len(lo):
            # Spend what is left of the budget on the first boxes in the search order (breadth:
            # queue order; best: lowest bound); the rest stay unresolved.
            cand_idx = np.flatnonzero(can)
            if order == "best":
                cand_idx = cand_idx[np.argsort(lb[cand_idx], kind="stable")]
            chosen = cand_idx[:n_split]
            do = np.zeros(len(lo), dtype=bool)
            do[chosen] = True
            stats["stuck"] += int((~can).sum())
            keep = ~do
            unresolved.append((lo[keep], hi[keep], vol[keep], lb[keep]))
            lo, hi, vol, lb, score, mid = lo[do], hi[do], vol[do], lb[do], score[do], mid[do]
        k = min(split_dims, int(np.log2(max(batch_size // max(len(lo), 1), 1))),
                int(np.log2(max(budget_left // max(len(lo), 1), 1))))  # fmt: skip
        if k > 1 and len(lo):
            for b in range(len(lo)):
                dims = np.argsort(-score[b], kind="stable")[: min(k, int(np.isfinite(score[b]).sum()))]
                c_lo, c_hi = grid_children(lo[b], hi[b], dims)
                pool.push(c_lo, c_hi, np.full(len(c_lo), vol[b] / len(c_lo)), np.full(len(c_lo), lb[b]))
            lo = lo[:0]
        if len(lo):
            dim = np.argmax(score, axis=1)
            rows = np.arange(len(lo))
            cut = mid[rows, dim]
            hi_left = hi.copy()
            hi_left[rows, dim] = cut
            lo_right = lo.copy()
            lo_right[rows, dim] = cut
            # Children interleaved (left_0, right_0, left_1, ...): the queue order of a FIFO walk.
            pool.push(
                np.stack([lo, lo_right], axis=1).reshape(-1, n),
                np.stack([hi_left, hi], axis=1).reshape(-1, n),
                np.repeat(vol * 0.5, 2),
                np.repeat(lb, 2),
            )

    # Whatever is still waiting (time-out or early stop) is unresolved with its inherited bound.
    if pool.size:
        unresolved.append(pool.drain())
    if unresolved:
        u_lo, u_hi, u_vol, u_lb = (np.concatenate(cols) for cols in zip(*unresolved))
    else:
        u_lo, u_hi, u_vol, u_lb = empty(n)

    if not cexs and len(u_lo) and falsify_fn is not None:
        falsify(u_lo, u_hi, u_lb, None, final_falsify_boxes)

    leaf_bounds = [b for b in (float(u_lb.min()) if len(u_lb) else math.inf, min_proven) if b < math.inf]
    best_bound = min(leaf_bounds) if leaf_bounds else None
    if best_bound is not None and not math.isfinite(best_bound):
        best_bound = None  # nothing known (a box never bounded): keep the verdict valid JSON
    if cexs:
        status = Status.FALSIFIED
        message = f"counterexample found after {examined} boxes"
    elif not len(u_lo) and not timed_out:
        status = Status.VERIFIED
        message = f"all {examined} boxes proven"
    elif compile_late:
        status = Status.TIMEOUT
        message = f"the first bound call (compilation) did not return within compile_budget_s={compile_budget_s:g}"
    elif timed_out:
        status = Status.TIMEOUT
        message = f"time budget of {time_budget_s:g} s spent after {examined} boxes"
    else:
        status = Status.UNKNOWN
        message = f"box budget of {max_boxes} spent; {len(u_lo)} boxes unresolved"
    cexs.sort(key=lambda c: -c.margin)
    return SplitResult(
        status=status,
        boxes=examined,
        verified_fraction=min(verified_vol, 1.0),
        unresolved_fraction=float(u_vol.sum()) if status != Status.VERIFIED else 0.0,
        best_bound=best_bound,
        counterexamples=cexs[:max_counterexamples],
        unresolved_lower=u_lo,
        unresolved_upper=u_hi,
        unresolved_bound=u_lb,
        unresolved_volume=u_vol,
        batches=batches,
        elapsed_s=time.perf_counter() - start,
        timed_out=timed_out,
        compile_s=compile_s,
        message=message,
        stats=stats,
        frontier=make_frontier(region, [*proven_leaves, (u_lo, u_hi, u_vol)]) if keep_frontier else None,
    )


def search(
    net: ReluNetwork, spec: Spec, bound_fn: BoundFn, options: dict, time_budget_s: float,
    frontier: Frontier | None = None,
) -> SplitResult:  # fmt: skip
    """The engine run that the bounding backends share: the shared witness search, and the base
    class's witness test as ``check_fn`` (rounding noise never stops a search early).

    ``options`` holds the backend's ``batch_size``, ``max_boxes``, ``order``, ``seed``,
    ``n_samples``, ``n_grid``, ``compile_budget_s`` and ``incremental`` (keep the leaves as the
    result's ``frontier``; ``frontier`` is the one of the previous search of this spec).
    """
    o = options
    return split_and_bound(
        spec.region,
        bound_fn,
        make_falsifier(net, spec, n_samples=o["n_samples"], n_grid=o["n_grid"]),
        batch_size=o["batch_size"],
        max_boxes=o["max_boxes"],
        time_budget_s=time_budget_s,
        order=o["order"],
        check_fn=partial(confirmed_margin, net, spec),
        seed=o["seed"],
        compile_budget_s=o["compile_budget_s"],
        frontier=frontier,
        keep_frontier=bool(o.get("incremental", False)),
        split_dims=int(o.get("split_dims", 1)),
    )
