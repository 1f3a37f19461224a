"""Bound-propagation backend through the real auto_LiRPA library (IBP, CROWN, CROWN-IBP, alpha-CROWN).

Two formulations of a monotonicity spec (feature ``i``, sign ``s`` = +1 increasing / -1 decreasing):

* ``gradient`` (default, the one that proves): a torch module computing ``s * df/dx_i`` of the
  ReLU MLP. Pre-activations ``z_k``, derivative indicators ``H(z_k)`` (Heaviside, value 0 at 0)
  and the backward chain ``g_k = H(z_k) * (g_{k-1} W_k)`` as products of two bounded tensors
  (auto_LiRPA's ``BoundMul``, a McCormick relaxation). auto_LiRPA gives a sound lower bound
  ``lb`` of the derivative over each box; by the mean-value argument along the segment
  ``[x, x + d e_i]`` (f is piecewise linear along it and its slope a.e. equals the module's
  value), ``lb >= 0`` on every box of a cover of the region proves monotonicity for every
  tolerance. With a tolerance ``t > 0`` the engine gets ``lb + t / W_i`` (``W_i`` the region's
  width along ``i``): ``lb >= -t / W_i`` everywhere gives ``f(x + d e_i) - f(x) >= -t``.
* ``difference``: ``g(x, d) = s * (f(x + d e_i) - f(x))`` on two weight-tied copies, ``x`` and
  ``x + d e_i`` both built from the input ``[x, d]`` by linear layers (auto_LiRPA cannot parse index
  assignment). Over a box of ``x`` and ``d in [0, U_i - lo_i]`` its lower bound plus ``t`` proves
  the box. It cannot prove tolerance 0 in practice: ``g = 0`` at ``d = 0``, so its lower bound is
  ``<= 0``, and it is exactly 0 only when the relaxation is exact (every neuron stable on the box,
  ``f`` linear there). It is weak for small tolerances too; use it to compare, or to seed the
  counterexample search (the minimising corner of its linear bound).

``OutputBound`` specs are decided from plain lower/upper bounds of ``f``.

The Heaviside node is exported as a custom op (``vpals::Heaviside0``) bound by a subclass of
auto_LiRPA's ``BoundATenHeaviside``: auto_LiRPA 0.3's own class cannot run IBP (its
``interval_propagate`` drops the "value at 0" input) and treats a pre-activation whose lower bound
is exactly 0 as stably active although ``H(0) = 0``; the subclass is pointwise sound.

Soundness of arithmetic: bounds are computed in floating point without directed rounding. In
``float64`` mode a relative slack of ``1e-9 |bound|`` widens every bound (a bound of exactly 0,
which arises from sums of non-negative terms as in monotone-by-construction networks, stays 0). In
``float32`` mode the float32 bounds only steer the search: every box whose float32 bound comes
close to a proof is re-bounded in float64 and only the float64 bound can prove (the proof path is
float64); the other float32 bounds are widened by ``1e-3 (1 + |bound|)``. torch's default dtype is
switched to the working dtype while auto_LiRPA runs (it creates some tensors with the default
dtype; with float32 defaults a float64 model fails in ``BoundMul``) and restored afterwards.

Search. The shared engine :func:`verifiers.search.splitting.split_and_bound`, best-first by default.
Split choice: the share of the first-layer unstable neurons' ranges that each input accounts for,
plus ``|A_j| w_j`` where the bound is linear in ``x`` (difference formulation, OutputBound,
alpha-CROWN; CROWN's gradient-network bound is constant over the box because the Heaviside
relaxation has zero slope). Falsification: the shared axis-grid witness search
(:mod:`verifiers.search.witness`, fed the minimising corners when there are any), then ``pgd_steps`` of
projected sign-gradient ascent on the difference ``f(x) - f(x')`` over the pair. The engine pads
batches for jitted backends; here the padding is dropped, the rows are bounded in chunks sized from
the measured cost per row, and rows left when the time budget runs out get ``-inf`` (nothing known),
so a slow method overruns the budget by about one chunk (``max(0.25 s, budget / 20)``), not a batch.
``threads`` defaults to 1: on 2 shared cores, OpenMP's second thread made small float64 matmuls up
to 50x slower (spinning threads under contention).
"""

from __future__ import annotations

import math
import time
from functools import partial
from typing import Any, ClassVar

import numpy as np
import torch

from verifiers.backends.lirpa.bounding import METHODS, _BudgetedBoundFn, _ProofPathBounder, min_corner, split_scores
from verifiers.backends.lirpa.falsify import _MonotonicityFalsifier
from verifiers.backends.lirpa.graph import DTYPES, FORMULATIONS, DifferenceNetwork, GradientNetwork, to_torch
from verifiers.base import Verifier, confirmed_margin, register_verifier
from verifiers.bounds.result import BoundResult
from verifiers.directional import DirectionalSlope
from verifiers.network import ReluNetwork
from verifiers.search.splitting import split_and_bound
from verifiers.search.witness import make_falsifier
from verifiers.specs import Monotonicity, OutputBound, Spec
from verifiers.verdict import Status, Verdict


@register_verifier
class LirpaVerifier(Verifier):
    """auto_LiRPA bounds + batched best-first input splitting (shared engine ``verifiers.search.splitting``).

    Options: ``method`` (ibp | crown | crown-ibp | alpha-crown; default crown), ``dtype`` (float64 |
    float32), ``formulation`` (gradient | difference), ``batch_size`` (256), ``max_boxes`` (200000),
    ``order`` (best | breadth), ``falsify`` (True), ``pgd_steps`` (10), ``n_samples`` and ``n_grid``
    (the shared witness search), ``alpha_iterations`` (20), ``alpha_lr`` (0.5), ``threads`` (torch
    CPU threads during the call; None leaves torch's setting), ``seed``.
    """

    name: ClassVar[str] = "lirpa"
    supported_specs: ClassVar[frozenset[str]] = frozenset({"monotonicity", "output_bound", "directional_slope"})

    DEFAULTS: ClassVar[dict[str, Any]] = {
        "method": "crown",
        "dtype": "float64",
        "formulation": "gradient",
        "batch_size": 256,
        "max_boxes": 200_000,
        "order": "best",
        "falsify": True,
        "pgd_steps": 10,
        "n_samples": 1024,
        "n_grid": 32,
        "alpha_iterations": 20,
        "alpha_lr": 0.5,
        "threads": 1,
        "seed": 0,
    }

    def __init__(self, **options: Any):
        unknown = set(options) - set(self.DEFAULTS)
        if unknown:
            raise ValueError(f"lirpa: unknown options {sorted(unknown)}; known: {sorted(self.DEFAULTS)}")
        opts = dict(self.DEFAULTS, **options)
        if opts["method"] not in METHODS:
            raise ValueError(f"lirpa: unknown method {opts['method']!r}; choose from {sorted(METHODS)}")
        if opts["dtype"] not in DTYPES:
            raise ValueError(f"lirpa: dtype must be one of {sorted(DTYPES)}, got {opts['dtype']!r}")
        if opts["formulation"] not in FORMULATIONS:
            raise ValueError(f"lirpa: formulation must be one of {FORMULATIONS}, got {opts['formulation']!r}")
        if opts["order"] not in ("best", "breadth"):
            raise ValueError(f"lirpa: order must be 'best' or 'breadth', got {opts['order']!r}")
        for key in ("batch_size", "max_boxes", "n_samples", "n_grid", "alpha_iterations"):
            v = opts[key]
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"lirpa: {key} must be a positive integer, got {v!r}")
        super().__init__(**opts)

    # -- bound functions for the engine ------------------------------------------------------

    def _bounder(self, make_module, n_inputs: int) -> _ProofPathBounder:
        o = self.options
        return _ProofPathBounder(
            make_module,
            n_inputs,
            o["method"],
            o["dtype"],
            alpha_iterations=o["alpha_iterations"],
            alpha_lr=o["alpha_lr"],
        )

    def monotonicity_bound_fn(self, net: ReluNetwork, spec: Monotonicity):
        """The engine's BoundFn for a monotonicity spec (objective >= 0 proves the box).

        gradient: ``sign * df/dx_i + t / W_i``; difference: ``sign * (f(x + d e_i) - f(x)) + t``.
        """
        i, sign = spec.feature, spec.sign
        region = spec.region
        rw = region.widths
        if self.options["formulation"] == "gradient":
            shift = spec.slope_allowance
            if len(net.weights) == 1:  # linear network: the derivative is the constant sign * W[i, 0]
                slope = sign * float(net.weights[0][i, 0])

                def linear_fn(lo: np.ndarray, hi: np.ndarray) -> BoundResult:
                    return BoundResult(lower=np.full(lo.shape[0], slope + shift), split_score=hi - lo)

                return linear_fn
            bounder = self._bounder(lambda dt: GradientNetwork(net, i, sign, dtype=dt), net.n_inputs)

            def grad_fn(lo: np.ndarray, hi: np.ndarray) -> BoundResult:
                lower, _, A = bounder.bound(lo, hi, threshold_low=-shift)
                cands = None if A is None else min_corner(lo, hi, A)
                return BoundResult(lower=lower + shift, split_score=split_scores(net, lo, hi, rw, A), candidates=cands)

            return grad_fn

        # difference: input [x, d] with d in [0, U_i - lo_i] (covers every pair starting in the box)
        t = spec.tolerance
        U_i = float(region.upper[i])
        bounder = self._bounder(lambda dt: DifferenceNetwork(net, i, sign, dtype=dt), net.n_inputs + 1)

        def diff_fn(lo: np.ndarray, hi: np.ndarray) -> BoundResult:
            d_hi = np.maximum(U_i - lo[:, i], 0.0)
            lo2 = np.hstack([lo, np.zeros((lo.shape[0], 1))])
            hi2 = np.hstack([hi, d_hi[:, None]])
            lower, _, A = bounder.bound(lo2, hi2, threshold_low=-t)
            Ax = None if A is None else A[:, :-1]
            cands = None if Ax is None else min_corner(lo, hi, Ax)
            return BoundResult(lower=lower + t, split_score=split_scores(net, lo, hi, rw, Ax), candidates=cands)

        return diff_fn

    def output_bound_fn(self, net: ReluNetwork, spec: OutputBound):
        """BoundFn for ``OutputBound``: objective ``min(f - lower, upper - f)``."""
        bounder = self._bounder(lambda dt: to_torch(net, dt), net.n_inputs)
        lo_spec = -math.inf if spec.lower is None else float(spec.lower)
        hi_spec = math.inf if spec.upper is None else float(spec.upper)
        need_upper = spec.upper is not None
        rw = spec.region.widths

        def out_fn(lo: np.ndarray, hi: np.ndarray) -> BoundResult:
            lower, upper, A = bounder.bound(lo, hi, upper=need_upper, threshold_low=lo_spec, threshold_high=hi_spec)
            obj = lower - lo_spec
            if need_upper:
                obj = np.minimum(obj, hi_spec - upper)
            cands = None if (A is None or spec.lower is None) else min_corner(lo, hi, A)
            return BoundResult(lower=obj, split_score=split_scores(net, lo, hi, rw, A), candidates=cands)

        return out_fn

    def slope_bound_fn(self, net: ReluNetwork, spec: DirectionalSlope):
        """The engine's BoundFn for ``lower <= c . grad f <= upper``: the lower bound of
        ``min(c . grad f - lower, upper - c . grad f)``, one gradient graph per side.

        The graph starts at ``c W_1`` computed in float64; ``ReluNetwork.direction_row`` bounds how
        far its rounding can move ``c . grad f`` (``gain``, zero for ``+-e_i``), taken off the bound.
        """
        sb = spec.slope_bounds()
        row, _, gain = net.direction_row(sb.direction)
        region_w = spec.region.widths
        if len(net.weights) == 1:  # linear network: the gradient is the constant c . W[:, 0]
            g = float(row[0])
            const = min(g - sb.lower if sb.lower is not None else np.inf, sb.upper - g if sb.upper is not None else np.inf)

            def linear_fn(lo: np.ndarray, hi: np.ndarray) -> BoundResult:
                return BoundResult(lower=np.full(lo.shape[0], const - gain), split_score=hi - lo)

            return linear_fn
        sides = [(sign, self._bounder(lambda dt, s=sign: GradientNetwork(net, 0, s, dtype=dt, row=row), net.n_inputs),
                  -sb.lower if sign > 0 else sb.upper) for sign, _ in sb.sides()]  # fmt: skip

        def slope_fn(lo: np.ndarray, hi: np.ndarray) -> BoundResult:
            obj, score = np.full(lo.shape[0], np.inf), np.zeros_like(lo)
            for _, bounder, shift in sides:
                lower, _, A = bounder.bound(lo, hi, threshold_low=-shift + gain)
                obj = np.minimum(obj, np.nextafter(np.nextafter(lower + shift, -np.inf) - gain, -np.inf))
                score = np.maximum(score, split_scores(net, lo, hi, region_w, A))
            return BoundResult(lower=obj, split_score=score)

        return slope_fn

    # -- the search --------------------------------------------------------------------------

    def _verify(self, net: ReluNetwork, spec: Spec, time_budget_s: float) -> Verdict:
        o = self.options
        base = {"backend": self.name, "spec": spec.to_dict(), "settings": self.settings()}
        start = time.perf_counter()
        old_threads = torch.get_num_threads()
        if o["threads"]:
            torch.set_num_threads(int(o["threads"]))
        try:
            if isinstance(spec, Monotonicity):
                bound_fn = self.monotonicity_bound_fn(net, spec)
                falsify_fn = (
                    _MonotonicityFalsifier(net, spec, o["n_samples"], o["n_grid"], o["pgd_steps"])
                    if o["falsify"]
                    else None
                )
                shift = spec.slope_allowance if o["formulation"] == "gradient" else spec.tolerance
            elif isinstance(spec, OutputBound):
                bound_fn = self.output_bound_fn(net, spec)
                falsify_fn = make_falsifier(net, spec, n_samples=o["n_samples"]) if o["falsify"] else None
                shift = 0.0
            elif isinstance(spec, DirectionalSlope):
                bound_fn = self.slope_bound_fn(net, spec)
                falsify_fn = make_falsifier(net, spec, n_samples=o["n_samples"]) if o["falsify"] else None
                shift = 0.0
            else:  # pragma: no cover - guarded by supported_specs
                raise TypeError(spec.kind)
            remaining = max(time_budget_s - (time.perf_counter() - start), 1e-3)
            budgeted = _BudgetedBoundFn(bound_fn, time.perf_counter() + remaining, max(0.25, time_budget_s / 20))
            if isinstance(falsify_fn, _MonotonicityFalsifier):
                falsify_fn.bound_fn = budgeted
            res = split_and_bound(
                spec.region,
                budgeted,
                falsify_fn,
                batch_size=int(o["batch_size"]),
                max_boxes=int(o["max_boxes"]),
                time_budget_s=remaining,
                order=o["order"],
                check_fn=partial(confirmed_margin, net, spec),
                seed=int(o["seed"]),
            )
        finally:
            if o["threads"]:
                torch.set_num_threads(old_threads)
        fields = res.verdict_fields()
        if fields["best_bound"] is not None:
            fields["best_bound"] -= shift  # report the raw objective (derivative / difference bound)
        if (
            fields["status"] != Status.VERIFIED
            and isinstance(spec, Monotonicity)
            and o["formulation"] == "difference"
            and spec.tolerance == 0
        ):
            fields["message"] += (
                "; the difference formulation cannot prove tolerance 0 (f(x + d e_i) - f(x) = 0 at d = 0): "
                "use formulation='gradient'"
            )
        return Verdict(**fields, **base)
