"""The Verifier interface, the backend registry, and the soundness guard shared by all backends.

Backends implement ``_verify``; the public ``verify`` wraps it so that every backend gets the
same input validation, the same ERROR verdict for unsupported spec kinds, and the same
re-check of every counterexample on the float64 network before it leaves the library.
"""

from __future__ import annotations

import abc
import importlib
import logging
import math
import time
from typing import Any, ClassVar

import numpy as np

from verifiers.network import ReluNetwork
from verifiers.plugins import VERIFIER_GROUP, discover
from verifiers.specs import Spec
from verifiers.verdict import Counterexample, Status, Verdict

log = logging.getLogger(__name__)

VERIFIER_REGISTRY: dict[str, type[Verifier]] = {}

# Backends live in verifiers/backends/<name>.py and register themselves on import; importing
# lazily keeps heavy dependencies (torch for lirpa, HiGHS for milp) out of unrelated runs.
_BACKEND_MODULES = ("ouroboros", "crown", "lirpa", "milp")


def register_verifier(cls: type[Verifier]) -> type[Verifier]:
    """Class decorator: make a backend available to ``get_verifier(cls.name)``."""
    VERIFIER_REGISTRY[cls.name] = cls
    return cls


class Verifier(abc.ABC):
    """Decide a spec on a network: VERIFIED (sound proof), FALSIFIED (re-checked witness) or not."""

    name: ClassVar[str]
    supported_specs: ClassVar[frozenset[str]]

    def __init__(self, **options: Any):
        self.options = options

    def settings(self) -> dict[str, Any]:
        """The options that determine this backend's behaviour, recorded in every verdict."""
        return dict(self.options)

    def verify(self, net: ReluNetwork, spec: Spec, time_budget_s: float = 30.0) -> Verdict:
        """Validate, run the backend, and keep only counterexamples that re-check in float64."""
        base = {"backend": self.name, "spec": spec.to_dict(), "settings": self.settings()}
        target = decided_form(spec, self.supported_specs)
        if target is None:
            return Verdict(
                status=Status.ERROR,
                message=f"backend {self.name!r} does not support spec kind {spec.kind!r} "
                f"(supported: {sorted(self.supported_specs)}; it reduces to none of them)",
                **base,
            )
        try:
            spec.validate_for(net)
            if not (time_budget_s > 0 and math.isfinite(time_budget_s)):
                raise ValueError(f"time_budget_s must be a positive finite number, got {time_budget_s}")
        except ValueError as e:
            return Verdict(status=Status.ERROR, message=str(e), **base)
        if reason := spec.vacuous():
            return Verdict(status=Status.VERIFIED, verified_fraction=1.0, unresolved_fraction=0.0, message=reason, **base)
        start = time.perf_counter()
        verdict = self._verify(target.scalar(net), target, time_budget_s)
        verdict.spec = base["spec"]  # the verdict is about the spec asked, whatever decided it
        verdict.wall_time_s = time.perf_counter() - start
        return self._recheck(net, spec, verdict)

    def warm_up(self, net: ReluNetwork, specs: list[Spec]) -> None:
        """Compile ahead what deciding ``specs`` on networks shaped like ``net`` will run; decides nothing.

        Why: a training loop knows its network's shapes long before its first round, and training
        leaves a core idle; a backend whose first call compiles (crown: 1.7 of a 3.5 s round) can
        do that there. The weights do not matter, only the shapes."""
        for spec in specs:
            target = decided_form(spec, self.supported_specs)
            if target is not None and not spec.vacuous():
                self._warm_up(target.scalar(net), target)

    def _warm_up(self, net: ReluNetwork, spec: Spec) -> None:
        """Backend hook of :meth:`warm_up` (nothing to compile by default)."""

    @abc.abstractmethod
    def _verify(self, net: ReluNetwork, spec: Spec, time_budget_s: float) -> Verdict:
        """Backend-specific search; may return unchecked counterexamples."""

    def _recheck(self, net: ReluNetwork, spec: Spec, verdict: Verdict) -> Verdict:
        kept = []
        for cex in verdict.counterexamples:
            margin = spec.violation(net, cex)
            if confirmed_margin(net, spec, cex) > 0:
                outputs = spec.scalar(net).forward([cex.x] + ([cex.x_prime] if cex.x_prime is not None else []))[:, 0]
                cex.f_x = float(outputs[0])
                cex.f_x_prime = float(outputs[1]) if cex.x_prime is not None else None
                cex.margin = float(margin)
                kept.append(cex)
            else:
                log.warning("%s: dropped a witness that does not re-check (margin %.3g): %s", self.name, margin, cex)
        verdict.counterexamples = sorted(kept, key=lambda c: -c.margin)
        if verdict.status == Status.FALSIFIED and not kept:
            verdict.status = Status.UNKNOWN
            verdict.message = (verdict.message + "; " if verdict.message else "") + (
                "no reported counterexample re-checked on the float64 network"
            )
        if verdict.status == Status.VERIFIED and kept:
            raise AssertionError(
                f"{self.name}: claimed VERIFIED but produced a re-checked counterexample {kept[0]}: backend bug"
            )
        return verdict


def numeric_slack(net: ReluNetwork, cex: Counterexample) -> float:
    """A rigorous bound on the float64 evaluation error of the witness' outputs, summed.

    Where a ReLU network is flat the exact difference f(x') - f(x) is 0, yet float64 evaluation
    can return -1e-16; such a "violation" is rounding, not behaviour. A witness counts only if
    its margin exceeds this bound, so every reported counterexample is real in exact arithmetic.
    Standard forward error analysis (Higham, Thm 3.5): a dot product of length n has error at most
    gamma_n |W|^T |h|, with gamma_n = n u / (1 - n u); errors of earlier layers pass through |W|
    and ReLU (1-Lipschitz) and are added.
    """
    u = np.finfo(np.float64).eps / 2
    total = 0.0
    for point in [cex.x] + ([cex.x_prime] if cex.x_prime is not None else []):
        mag = np.abs(np.asarray(point, dtype=np.float64))
        err = np.zeros_like(mag)
        for w, b in zip(net.weights, net.biases):
            n = w.shape[0] + 1  # the bias is one more term of the sum
            gamma = n * u / (1 - n * u)
            mag_next = np.abs(w).T @ mag + np.abs(b)
            err = np.abs(w).T @ err + gamma * mag_next
            mag = mag_next + err
        total += float(np.max(err))
    return total


def confirmed_margin(net: ReluNetwork, spec: Spec, cex: Counterexample) -> float:
    """The witness' violation beyond float64 rounding (> 0: real in exact arithmetic).

    The one test every counterexample passes before it is reported; backends use it as the
    splitting engine's ``check_fn`` so that rounding noise never stops a search early.
    """
    return spec.violation(net, cex) - numeric_slack(net, cex)


def decided_form(spec: Spec, supported: frozenset[str]) -> Spec | None:
    """``spec`` or the first of its reductions (:meth:`Spec.reduced`) of a supported kind."""
    seen = 0
    while spec is not None and spec.kind not in supported and seen < 16:  # 16: a reduction cycle ends
        spec, seen = spec.reduced(), seen + 1
    return spec if spec is not None and spec.kind in supported else None


def get_verifier(name: str, **options: Any) -> Verifier:
    """Instantiate a registered backend by name (``ouroboros``, ``crown``, ``lirpa``, ``milp``, or
    a plugin's: :mod:`verifiers.plugins`)."""
    if name not in VERIFIER_REGISTRY and name in _BACKEND_MODULES:
        importlib.import_module(f"verifiers.backends.{name}")
    if name not in VERIFIER_REGISTRY:
        found = discover(VERIFIER_GROUP, name)
        if isinstance(found, type) and issubclass(found, Verifier) and found.name == name:
            register_verifier(found)
    if name not in VERIFIER_REGISTRY:
        known = sorted(set(VERIFIER_REGISTRY) | set(_BACKEND_MODULES))
        raise ValueError(f"unknown verifier {name!r}; known: {known}")
    return VERIFIER_REGISTRY[name](**options)
