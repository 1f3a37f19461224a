"""The ``milp`` backend: one exact MILP decision over the spec's whole region (see :mod:`verifiers.milp`).

``worst_case`` defaults to False: a FALSIFIED verdict needs one confirmed witness, and optimising on
to the steepest violation cost ACAS Xu-sized networks their whole budget after the answer was
known (a timeout under VNN-COMP rules). With ``worst_case=True`` the verdict's message says whether
the largest reported violation is the proven worst (the MILP finished) or only the largest found
before the time limit.
"""

from __future__ import annotations

import math
import time
from typing import Any, ClassVar

from verifiers.base import Verifier, register_verifier
from verifiers.bounds.linear import LinearBounder
from verifiers.directional import DirectionalSlope
from verifiers.milp.decide import BoxDecision, decide_monotonicity_box, decide_output_box
from verifiers.milp.slope import decide_slope_box
from verifiers.network import ReluNetwork
from verifiers.search.splitting import first_call
from verifiers.specs import Monotonicity, Spec
from verifiers.verdict import Status, Verdict


@register_verifier
class MilpVerifier(Verifier):
    """Exact verification with one MILP per question (see the module docstring)."""

    name: ClassVar[str] = "milp"
    supported_specs: ClassVar[frozenset[str]] = frozenset({"monotonicity", "output_bound", "directional_slope"})
    _DEFAULTS: ClassVar[dict[str, Any]] = {
        "abs_tol": 1e-7,
        "worst_case": False,
        "max_nogood": 20,
        "threads": 1,
        "mip_rel_gap": 1e-4,
        "compile_budget_s": 60.0,
    }

    def __init__(self, **options: Any):
        unknown = sorted(set(options) - set(self._DEFAULTS))
        if unknown:
            raise ValueError(f"milp: unknown option(s) {unknown}; known: {sorted(self._DEFAULTS)}")
        opts = {**self._DEFAULTS, **options}
        if not (isinstance(opts["abs_tol"], (int, float)) and 0 <= opts["abs_tol"] < 1):
            raise ValueError(f"milp: abs_tol must be a number in [0, 1), got {opts['abs_tol']!r}")
        for key in ("max_nogood", "threads"):
            v = opts[key]
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"milp: {key} must be a non-negative integer, got {v!r}")
        cb = opts["compile_budget_s"]
        if isinstance(cb, bool) or not isinstance(cb, (int, float)) or not 0 < cb < math.inf:
            raise ValueError(f"milp: compile_budget_s must be a positive number of seconds, got {cb!r}")
        super().__init__(**opts)

    def _verify(self, net: ReluNetwork, spec: Spec, time_budget_s: float) -> Verdict:
        o = self.options
        base = {"backend": self.name, "spec": spec.to_dict(), "settings": self.settings()}
        region = spec.region
        # The big-M bounds come from a jitted LinearBounder: its first call compiles for the network's
        # shape. It is bounded by compile_budget_s and not charged to the time budget, as in the
        # box-splitting backends (verifiers.search.splitting.first_call).
        t0 = time.perf_counter()
        bounder = LinearBounder(net, batch_size=1)
        if first_call(lambda: bounder.internals(region.lower, region.upper, 0), o["compile_budget_s"]) is None:
            return Verdict(status=Status.TIMEOUT, compile_s=time.perf_counter() - t0, **base,
                           message=f"the bounds' compilation did not return within compile_budget_s={o['compile_budget_s']:g}")
        compile_s = time.perf_counter() - t0
        deadline = time.perf_counter() + time_budget_s
        common = {"deadline": deadline, "bounder": bounder, "abs_tol": o["abs_tol"], "threads": o["threads"]}
        if isinstance(spec, (Monotonicity, DirectionalSlope)):
            decide = decide_monotonicity_box if isinstance(spec, Monotonicity) else decide_slope_box
            dec = decide(net, spec, region.lower, region.upper, worst_case=o["worst_case"], max_nogood=o["max_nogood"],
                         rel_gap=o["mip_rel_gap"], **common)  # fmt: skip
        else:
            dec = decide_output_box(net, spec, region.lower, region.upper, **common)
        verdict = verdict_from_decision(dec, base, timed_out=time.perf_counter() >= deadline)
        verdict.compile_s = compile_s
        return verdict


def verdict_from_decision(dec: BoxDecision, base: dict, timed_out: bool) -> Verdict:
    if dec.status == "verified":
        status, vf, uf = Status.VERIFIED, 1.0, 0.0
    elif dec.status == "falsified":
        status, vf, uf = Status.FALSIFIED, 0.0, 1.0
    else:
        status, vf, uf = (Status.TIMEOUT if timed_out else Status.UNKNOWN), 0.0, 1.0
    return Verdict(
        status=status,
        boxes=1,
        verified_fraction=vf,
        unresolved_fraction=uf,
        best_bound=dec.bound,
        counterexamples=dec.counterexamples,
        message=(dec.message + f" ({dec.milps} MILP(s), {dec.seconds:.2f} s)").strip(),
        **base,
    )


__all__ = ["MilpVerifier", "verdict_from_decision"]
