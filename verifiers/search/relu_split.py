"""Activation branch and bound: the finisher for the boxes that input splitting left unproven.

Why: in 17 input dimensions, bisecting boxes until every ReLU is stable does not end in time;
the last pockets of a whole-domain monotonicity proof stay open because a few unstable units
leave the derivative only known in ``[0, 1]``. Splitting those units (the branch and bound of
beta-CROWN, here over the interval derivative chain of :mod:`verifiers.bounds.relu_split`) fixes
their derivative in one step.

Each leftover box is a root. A node is ``(box, mask)``; its bound comes from
:class:`~verifiers.bounds.relu_split.MaskedMonotonicityBound`. A node whose bound is ``>= 0`` (the
spec's slope allowance included) or whose branch is empty is closed. Otherwise it is split on the
free unstable unit of highest score into its active and inactive branch; when no unit is left to
split, its box is bisected along the widest dimension (relative to the region) with the mask
kept. Nodes are explored depth-first, so a root's subtree closes before the next grows. A root is
proven when its whole subtree closed; budgets (nodes, time) leave the rest unresolved. Nothing
here is sampled, and no witness is claimed: witnesses stay the input search's job.
"""

from __future__ import annotations

import dataclasses
import time
from functools import partial

import numpy as np

from verifiers.bounds.relu_split import MaskedMonotonicityBound
from verifiers.network import ReluNetwork
from verifiers.search.splitting import SplitResult, first_call
from verifiers.specs import Monotonicity
from verifiers.verdict import Status


def _pad_rows(a: np.ndarray, rows: int) -> np.ndarray:
    """``a`` padded to ``rows`` rows with copies of its last row (one compiled shape per search)."""
    return a if len(a) >= rows else np.concatenate([a, np.repeat(a[-1:], rows - len(a), axis=0)])


@dataclasses.dataclass
class ReluSplitOutcome:
    proven: np.ndarray  # (roots,) bool: the root's whole subtree closed
    nodes: int  # nodes bounded
    relu_splits: int
    input_splits: int
    timed_out: bool


def relu_branch_and_bound(
    bound: MaskedMonotonicityBound,
    lower: np.ndarray,
    upper: np.ndarray,
    region_widths: np.ndarray,
    *,
    batch_size: int,
    max_nodes: int,
    deadline: float,
    compile_budget_s: float = 60.0,
) -> ReluSplitOutcome:
    """Prove each box ``lower[k], upper[k]`` by splitting units (and boxes); see the module docstring.

    The first bound call (compilation, mostly) is bounded by ``compile_budget_s`` and moves the
    deadline by its duration, as in :func:`verifiers.search.splitting.split_and_bound`.
    """
    roots = len(lower)
    h = bound.n_hidden
    rel = np.where(region_widths > 0, 1.0 / np.where(region_widths > 0, region_widths, 1.0), 0.0)
    # The stack holds chunks of nodes as (lo, hi, mask, root); its top (the end) is explored first,
    # and a pop copies only the rows it takes, not the whole stack.
    stack = [(np.asarray(lower, np.float64), np.asarray(upper, np.float64), np.zeros((roots, h), np.int8),
              np.arange(roots))] if roots else []  # fmt: skip
    failed = np.zeros(roots, bool)
    nodes = relu_splits = input_splits = 0
    timed_out = False

    def push(lo, hi, mask, root) -> None:
        stack.append((lo, hi, mask, root))

    def pop(k: int):
        parts = []
        while k and stack:
            chunk = stack.pop()
            take = min(k, len(chunk[3]))
            parts.append(tuple(a[len(a) - take :] for a in chunk))
            if take < len(chunk[3]):
                stack.append(tuple(a[: len(a) - take] for a in chunk))
            k -= take
        return tuple(np.concatenate(cols) for cols in zip(*parts))

    while stack:
        if time.perf_counter() > deadline or nodes >= max_nodes:
            timed_out = time.perf_counter() > deadline
            break
        lo, hi, mask, root = pop(min(batch_size, max_nodes - nodes))
        keep = ~failed[root]  # a root already lost needs no more work
        lo, hi, mask, root = lo[keep], hi[keep], mask[keep], root[keep]
        m = len(lo)
        if not m:
            continue
        args = tuple(_pad_rows(a, batch_size) for a in (lo, hi, mask))
        if nodes:
            lb, score = bound(*args)
        else:
            t = time.perf_counter()
            first = first_call(partial(bound, *args), compile_budget_s)
            deadline += time.perf_counter() - t
            if first is None:
                timed_out = True
                failed[:] = True
                break
            lb, score = first
        lb, score = lb[:m], score[:m]
        nodes += m
        open_ = ~(lb >= 0)
        if not open_.any():
            continue
        lo, hi, mask, root, score = lo[open_], hi[open_], mask[open_], root[open_], score[open_]
        unit = np.argmax(score, axis=1)
        by_unit = np.isfinite(score[np.arange(len(lo)), unit])
        if by_unit.any():
            i = np.flatnonzero(by_unit)
            act, inact = mask[i].copy(), mask[i].copy()
            act[np.arange(len(i)), unit[i]] = 1
            inact[np.arange(len(i)), unit[i]] = -1
            push(np.repeat(lo[i], 2, 0), np.repeat(hi[i], 2, 0), np.stack([act, inact], 1).reshape(-1, h),
                 np.repeat(root[i], 2))  # fmt: skip
            relu_splits += len(i)
        j = np.flatnonzero(~by_unit)
        if len(j):
            mid = (lo[j] + hi[j]) / 2.0
            can = (mid > lo[j]) & (mid < hi[j]) & (rel[None, :] > 0)
            stuck = ~can.any(axis=1)
            failed[root[j][stuck]] = True
            j, mid, can = j[~stuck], mid[~stuck], can[~stuck]
            if len(j):
                dim = np.argmax(np.where(can, (hi[j] - lo[j]) * rel[None, :], -np.inf), axis=1)
                rows = np.arange(len(j))
                left_hi, right_lo = hi[j].copy(), lo[j].copy()
                left_hi[rows, dim] = mid[rows, dim]
                right_lo[rows, dim] = mid[rows, dim]
                push(np.concatenate([lo[j], right_lo]), np.concatenate([left_hi, hi[j]]), np.concatenate([mask[j], mask[j]]),
                     np.concatenate([root[j], root[j]]))  # fmt: skip
                input_splits += len(j)
    for chunk in stack:  # nodes never bounded: their roots are not proven
        failed[chunk[3]] = True
    return ReluSplitOutcome(~failed, nodes, relu_splits, input_splits, timed_out)


def finish_with_relu_splits(
    net: ReluNetwork,
    spec: Monotonicity,
    res: SplitResult,
    *,
    batch_size: int,
    max_nodes: int,
    deadline: float,
    compile_budget_s: float = 60.0,
    shift: float | None = None,
) -> SplitResult:
    """``res`` with the unresolved boxes that activation branch and bound proves removed: VERIFIED
    when none is left (a search that found a witness is returned unchanged). ``shift`` is the
    objective's slope shift, the search's own (default: the spec's ``slope_allowance``)."""
    if res.status not in (Status.UNKNOWN, Status.TIMEOUT) or not len(res.unresolved_lower):
        return res
    bound = MaskedMonotonicityBound(net, spec.feature, spec.sign, shift=spec.slope_allowance if shift is None else shift)
    order = np.argsort(res.unresolved_bound, kind="stable")[::-1]  # the easiest roots closed first
    lo, hi = res.unresolved_lower[order], res.unresolved_upper[order]
    out = relu_branch_and_bound(bound, lo, hi, spec.region.widths, batch_size=batch_size, max_nodes=max_nodes,
                                deadline=deadline, compile_budget_s=compile_budget_s)  # fmt: skip
    left = order[~out.proven]
    proven_vol = float(res.unresolved_volume[order[out.proven]].sum())
    stats = {**res.stats, "relu_nodes": out.nodes, "relu_splits": out.relu_splits, "relu_input_splits": out.input_splits,
             "relu_proven_boxes": int(out.proven.sum())}  # fmt: skip
    done = not len(left)
    message = (f"{res.boxes} boxes by input splitting, the {len(order)} left proven by activation splitting "
               f"({out.nodes} nodes)" if done else
               f"{res.message}; activation splitting proved {int(out.proven.sum())} of {len(order)} unresolved boxes "
               f"({out.nodes} nodes{', time budget spent' if out.timed_out else ''})")  # fmt: skip
    return dataclasses.replace(
        res,
        status=Status.VERIFIED if done else res.status,
        verified_fraction=1.0 if done else min(res.verified_fraction + proven_vol, 1.0),
        unresolved_fraction=0.0 if done else float(res.unresolved_volume[left].sum()),
        best_bound=0.0 if done else res.best_bound,  # proven: the objective is >= 0 a.e.
        unresolved_lower=res.unresolved_lower[left],
        unresolved_upper=res.unresolved_upper[left],
        unresolved_bound=res.unresolved_bound[left],
        unresolved_volume=res.unresolved_volume[left],
        message=message,
        stats=stats,
    )
