"""What a verifier answers: a status, the evidence for it, and enough detail to compare backends."""

from __future__ import annotations

import enum
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


class Status(str, enum.Enum):
    VERIFIED = "VERIFIED"  # sound proof over the whole region
    FALSIFIED = "FALSIFIED"  # at least one counterexample re-checked on the concrete network
    UNKNOWN = "UNKNOWN"  # budget of boxes or samples spent without a decision
    TIMEOUT = "TIMEOUT"  # time budget spent without a decision
    ERROR = "ERROR"  # the problem could not be attempted (unsupported spec, bad input)


@dataclass
class Counterexample:
    """A concrete witness. ``x_prime`` is the second point of a pair (None for single-point specs).

    ``margin`` is the violation amount re-computed in float64 by the spec (positive = real).
    """

    x: list[float]
    x_prime: list[float] | None = None
    f_x: float | None = None
    f_x_prime: float | None = None
    margin: float = 0.0

    @classmethod
    def make(cls, x: np.ndarray, x_prime: np.ndarray | None = None) -> Counterexample:
        return cls(
            x=np.asarray(x, dtype=np.float64).tolist(),
            x_prime=None if x_prime is None else np.asarray(x_prime, dtype=np.float64).tolist(),
        )


_NON_FINITE = {"inf", "-inf", "nan"}
MAX_UNRESOLVED_BOXES = 8  # keeps a verdict's JSON small


def worst_boxes(lower: np.ndarray, upper: np.ndarray, bound: np.ndarray) -> list[dict[str, Any]]:
    """The ``MAX_UNRESOLVED_BOXES`` boxes of lowest bound, as ``{"lower", "upper", "bound"}``."""
    order = np.argsort(np.asarray(bound, dtype=np.float64), kind="stable")[:MAX_UNRESOLVED_BOXES]
    return [{"lower": [float(v) for v in lower[k]], "upper": [float(v) for v in upper[k]], "bound": float(bound[k])}
            for k in order]  # fmt: skip


def _strict(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return repr(obj)
    if isinstance(obj, dict):
        return {k: _strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_strict(v) for v in obj]
    return obj


def _unstrict(d: dict[str, Any]) -> dict[str, Any]:
    return {k: float(v) if isinstance(v, str) and v in _NON_FINITE else v for k, v in d.items()}


@dataclass
class Verdict:
    """The answer of one backend on one (network, spec) problem; serialises to JSON.

    ``verified_fraction`` and ``unresolved_fraction`` are fractions of the region's volume.
    ``best_bound`` is the backend's best sound lower bound of the spec's objective (for
    monotonicity ``sign * df/dx_i`` over the region; for OutputBound the worst slack), when
    it has one: it tells how far from a proof an UNKNOWN or TIMEOUT was.
    """

    status: Status
    backend: str
    spec: dict[str, Any]
    settings: dict[str, Any] = field(default_factory=dict)
    wall_time_s: float = 0.0
    # the part of wall_time_s spent in a search's first bound call (compiling for a new network
    # shape, mostly): bounded by the backend's compile_budget_s, not charged to time_budget_s
    compile_s: float = 0.0
    boxes: int = 0
    verified_fraction: float = 0.0
    unresolved_fraction: float = 1.0
    best_bound: float | None = None
    counterexamples: list[Counterexample] = field(default_factory=list)
    message: str = ""
    # the boxes a search left unproven, lowest bound first (at most MAX_UNRESOLVED_BOXES): where a
    # proof failed, for certified training to push on and for a person to look at
    unresolved_boxes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def worst_margin(self) -> float | None:
        return max((c.margin for c in self.counterexamples), default=None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; non-finite floats become the strings "inf", "-inf", "nan" (strict JSON
        has no Infinity or NaN, and other tools reject the files Python writes with them)."""
        d = _strict(asdict(self))
        d["status"] = self.status.value
        return d

    def to_json(self, **kw: Any) -> str:
        return json.dumps(self.to_dict(), **{"allow_nan": False, **kw})

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Verdict:
        d = dict(d)
        d["status"] = Status(d["status"])
        d["counterexamples"] = [Counterexample(**_unstrict(c)) for c in d.get("counterexamples", [])]
        if isinstance(d.get("best_bound"), str):
            d["best_bound"] = float(d["best_bound"])
        d["unresolved_boxes"] = [_unstrict(b) for b in d.get("unresolved_boxes", [])]
        return cls(**d)

    @classmethod
    def from_json(cls, s: str) -> Verdict:
        return cls.from_dict(json.loads(s))
