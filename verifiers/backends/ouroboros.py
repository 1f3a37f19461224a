"""The Ouroboros-style backend: interval gradients, breadth-first bisection, sampled witnesses.

A JAX re-implementation of the monotonicity verifier of Ouroboros (MLSys 2023):

1. interval bounds of every pre-activation over a box (IBP);
2. each ReLU's derivative is then 0, 1 or ``[0, 1]``;
3. interval arithmetic through the weights bounds ``df/dx_i`` (:mod:`verifiers.bounds`);
4. the box is proven when the lower bound of ``sign * df/dx_i`` is ``>= -t / W_i`` (tolerance
   ``t``, region width ``W_i``: the form that composes across boxes; exact monotonicity for t = 0);
5. otherwise it is bisected along its widest dimension (relative to the region), breadth-first,
   up to a box budget (:mod:`verifiers.search.splitting`);
6. points sampled in the unproven boxes yield witnesses, each a finite-difference pair
   ``(x, x')`` along ``e_i`` that violates the spec (:mod:`verifiers.search.witness`).

OutputBound uses the same machinery with the interval bounds of the output. Boxes are bounded
in fixed-size jitted batches (one compile per network shape and batch size); the network moves
to the device once per ``verify`` call. The proof path runs in float64 with outward rounding
slack (``precision="float32"`` is available, also with slack).

Options: ``max_boxes`` (box budget, default 200000), ``batch_size`` (default 512 on CPU,
8192 on accelerators), ``n_samples`` (witness-search sample size, default 1024), ``seed``,
``order`` (``"breadth"``, the Ouroboros order, or ``"best"``), ``precision``, ``n_grid``
(grid points per line in the monotonicity witness search), ``compile_budget_s`` (60: the
first bound call, which compiles, is bounded by it and reported as the verdict's ``compile_s``;
the time budget is the search's after it), ``split_dims`` (1; ``k`` cuts a box along up to ``k``
dimensions at once, see :func:`verifiers.search.splitting.split_and_bound`), and the finishers of monotonicity specs (activation
splitting, the drop budget; off by default): ``relu_split``, ``relu_fraction``,
``relu_max_nodes``, ``tolerance_form`` (:mod:`verifiers.search.finish`).
"""

from __future__ import annotations

import math
import time
from typing import Any, ClassVar

import jax

from verifiers.base import Verifier, register_verifier
from verifiers.bounds.interval import PRECISIONS, make_monotonicity_bound_fn, make_output_bound_fn, make_slope_bound_fn
from verifiers.directional import DirectionalSlope
from verifiers.network import ReluNetwork
from verifiers.search.finish import (
    FINISH_DEFAULTS,
    check_finish_options,
    finish_monotonicity,
    search_share,
    search_shift,
)
from verifiers.search.frontier import FrontierStore
from verifiers.search.splitting import search
from verifiers.specs import Monotonicity, OutputBound, Spec
from verifiers.verdict import Status, Verdict


def _default_batch_size() -> int:
    return 512 if jax.default_backend() == "cpu" else 8192


@register_verifier
class OuroborosVerifier(Verifier):
    """Interval-gradient branch and bound (see the module docstring)."""

    name: ClassVar[str] = "ouroboros"
    supported_specs: ClassVar[frozenset[str]] = frozenset({"monotonicity", "output_bound", "directional_slope"})
    _DEFAULTS: ClassVar[dict[str, Any]] = {
        "max_boxes": 200_000,
        "batch_size": None,
        "n_samples": 1024,
        "seed": 0,
        "compile_budget_s": 60.0,
        "incremental": False,
        "split_dims": 1,
        **FINISH_DEFAULTS,
        "order": "breadth",
        "precision": "float64",
        "n_grid": 32,
    }

    def __init__(self, **options: Any):
        unknown = sorted(set(options) - set(self._DEFAULTS))
        if unknown:
            raise ValueError(f"ouroboros: unknown option(s) {unknown}; known: {sorted(self._DEFAULTS)}")
        opts = {**self._DEFAULTS, **options}
        if opts["batch_size"] is None:
            opts["batch_size"] = _default_batch_size()
        for key in ("max_boxes", "batch_size", "n_samples", "n_grid", "split_dims"):
            v = opts[key]
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"ouroboros: {key} must be a positive integer, got {v!r}")
        if isinstance(opts["seed"], bool) or not isinstance(opts["seed"], int):
            raise ValueError(f"ouroboros: seed must be an integer, got {opts['seed']!r}")
        if opts["order"] not in ("breadth", "best"):
            raise ValueError(f"ouroboros: order must be 'breadth' or 'best', got {opts['order']!r}")
        if opts["precision"] not in PRECISIONS:
            raise ValueError(f"ouroboros: precision must be one of {sorted(PRECISIONS)}, got {opts['precision']!r}")
        cb = opts["compile_budget_s"]
        if isinstance(cb, bool) or not isinstance(cb, (int, float)) or not 0 < cb < math.inf:
            raise ValueError(f"ouroboros: compile_budget_s must be a positive number of seconds, got {cb!r}")
        if not isinstance(opts["incremental"], bool):
            raise ValueError(f"ouroboros: incremental must be True or False, got {opts['incremental']!r}")
        check_finish_options("ouroboros", opts)
        super().__init__(**opts)
        self._frontiers = FrontierStore()

    def _verify(self, net: ReluNetwork, spec: Spec, time_budget_s: float) -> Verdict:
        o = self.options
        base = {"backend": self.name, "spec": spec.to_dict(), "settings": self.settings()}
        region = spec.region
        if isinstance(spec, Monotonicity):
            bound_fn = make_monotonicity_bound_fn(
                net, spec.feature, spec.sign, region, o["precision"], shift=search_shift(spec, o)
            )
        elif isinstance(spec, OutputBound):
            bound_fn = make_output_bound_fn(net, spec.lower, spec.upper, region, o["precision"])
        elif isinstance(spec, DirectionalSlope):
            bound_fn = make_slope_bound_fn(net, spec.slope_bounds(), region, o["precision"])
        else:  # pragma: no cover - guarded by supported_specs in Verifier.verify
            raise AssertionError(spec.kind)
        start = time.perf_counter()
        res = search(net, spec, bound_fn, o, frontier=self._frontiers.get(spec) if o["incremental"] else None,
                     time_budget_s=time_budget_s * search_share(spec, o))
        self._frontiers.put(spec, res.frontier, proven=res.status == Status.VERIFIED)
        if isinstance(spec, Monotonicity):
            res = finish_monotonicity(net, spec, res, o, deadline=start + res.compile_s + time_budget_s)
        return Verdict(**res.verdict_fields(), **base)
