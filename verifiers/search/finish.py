"""What the box-splitting backends do after their input search on a monotonicity spec.

Shared by ``ouroboros`` and ``crown`` (one set of options, validated once): activation branch and
bound on the leftover boxes (:mod:`verifiers.search.relu_split`), then, for a spec with a
tolerance, the drop budget (:mod:`verifiers.search.drop_budget`). Both are off by default, so a
backend's default verdicts stay those of its published method.

Options: ``relu_split`` (False), ``relu_fraction`` (0.5: the share of the splitting time budget
that activation splitting gets), ``relu_max_nodes`` (100000), ``tolerance_form`` (``"slope"``:
every box needs ``sign * df/dx_i >= -t / W_i``; ``"drop"``: boxes need half that, and the pockets
left are proven when their drop along any line fits in the rest of ``t``).
"""

from __future__ import annotations

from typing import Any

from verifiers.network import ReluNetwork
from verifiers.search.drop_budget import finish_with_drop_budget, half_allowance
from verifiers.search.relu_split import finish_with_relu_splits
from verifiers.search.splitting import SplitResult
from verifiers.specs import Monotonicity, Spec

FINISH_DEFAULTS: dict[str, Any] = {"relu_split": False, "relu_fraction": 0.5, "relu_max_nodes": 100_000,
                                   "tolerance_form": "slope"}  # fmt: skip


def check_finish_options(backend: str, opts: dict[str, Any]) -> None:
    """ValueError naming the backend and the option, for a bad finisher option."""
    if not isinstance(opts["relu_split"], bool):
        raise ValueError(f"{backend}: relu_split must be True or False, got {opts['relu_split']!r}")
    rf = opts["relu_fraction"]
    if isinstance(rf, bool) or not isinstance(rf, (int, float)) or not 0 < rf < 1:
        raise ValueError(f"{backend}: relu_fraction must be in (0, 1), got {rf!r}")
    n = opts["relu_max_nodes"]
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"{backend}: relu_max_nodes must be a positive integer, got {n!r}")
    if opts["tolerance_form"] not in ("slope", "drop"):
        raise ValueError(f"{backend}: tolerance_form must be 'slope' or 'drop', got {opts['tolerance_form']!r}")


def search_shift(spec: Monotonicity, opts: dict[str, Any]) -> float:
    """The slope shift of the input search's objective (the tolerance's share each box may use)."""
    return half_allowance(spec) if opts["tolerance_form"] == "drop" else spec.slope_allowance


def search_share(spec: Spec, opts: dict[str, Any]) -> float:
    """The share of the splitting time budget the input search gets (the rest: activation splits)."""
    return 1.0 - opts["relu_fraction"] if opts["relu_split"] and isinstance(spec, Monotonicity) else 1.0


def finish_monotonicity(
    net: ReluNetwork, spec: Monotonicity, res: SplitResult, opts: dict[str, Any], deadline: float
) -> SplitResult:
    """Apply the finishers that ``opts`` turns on to an input search's result."""
    shift = search_shift(spec, opts)
    if opts["relu_split"]:
        res = finish_with_relu_splits(net, spec, res, batch_size=opts["batch_size"], max_nodes=opts["relu_max_nodes"],
                                      deadline=deadline, compile_budget_s=opts["compile_budget_s"], shift=shift)  # fmt: skip
    if opts["tolerance_form"] == "drop":
        res = finish_with_drop_budget(spec, res, shift)
    return res
