"""Specifications in the network's input space, and the registry that makes them extensible.

A spec owns its semantics: it knows how to re-check a concrete witness on a network in
float64. Backends only *search*; whether a reported counterexample is real is decided here,
once, for every backend.

Monotonicity semantics (every backend decides exactly this property). For a region ``R`` (a
box), feature ``i`` and tolerance ``t >= 0``:

* ``increasing``: ``f(x + d e_i) >= f(x) - t`` for every ``x`` in ``R`` and every ``d >= 0``
  with ``x + d e_i`` in ``R``;
* ``decreasing``: ``f(x + d e_i) <= f(x) + t`` under the same quantifiers.

With ``t = 0`` this is exact monotonicity along ``e_i`` inside the box. A counterexample is a
pair ``(x, x')`` with ``x' = x + d e_i``, ``d > 0``, both in ``R``, violating the inequality;
its margin is the amount of the violation (positive).
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np

if TYPE_CHECKING:
    from verifiers.network import ReluNetwork
    from verifiers.verdict import Counterexample

SPEC_REGISTRY: dict[str, type[Spec]] = {}


def register_spec(cls: type[Spec]) -> type[Spec]:
    """Class decorator: make a spec kind constructible by name (``spec_from_dict``)."""
    if cls.kind in SPEC_REGISTRY:
        raise ValueError(f"spec kind {cls.kind!r} is already registered")
    SPEC_REGISTRY[cls.kind] = cls
    return cls


@dataclass(frozen=True, eq=False)
class Box:
    """An axis-aligned box ``lower <= x <= upper`` (inclusive), float64."""

    lower: np.ndarray
    upper: np.ndarray

    def __init__(self, lower: Sequence[float] | np.ndarray, upper: Sequence[float] | np.ndarray):
        lo = np.array(lower, dtype=np.float64).reshape(-1)
        hi = np.array(upper, dtype=np.float64).reshape(-1)
        if lo.shape != hi.shape:
            raise ValueError(f"Box: lower has {lo.size} entries but upper has {hi.size}")
        if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
            raise ValueError("Box: bounds must be finite numbers (found NaN or inf)")
        bad = np.flatnonzero(lo > hi)
        if bad.size:
            k = int(bad[0])
            raise ValueError(f"Box: lower[{k}] = {lo[k]} is greater than upper[{k}] = {hi[k]}")
        lo.setflags(write=False)
        hi.setflags(write=False)
        object.__setattr__(self, "lower", lo)
        object.__setattr__(self, "upper", hi)

    @property
    def dim(self) -> int:
        return self.lower.size

    @property
    def widths(self) -> np.ndarray:
        return self.upper - self.lower

    @property
    def center(self) -> np.ndarray:
        return (self.lower + self.upper) / 2.0

    def volume(self) -> float:
        """Volume over the non-degenerate dimensions (fixed inputs do not zero it)."""
        w = self.widths
        return float(np.prod(w[w > 0])) if np.any(w > 0) else 0.0

    def contains(self, x: np.ndarray) -> bool:
        x = np.asarray(x, dtype=np.float64)
        return bool(np.all(x >= self.lower) and np.all(x <= self.upper))

    def to_dict(self) -> dict:
        return {"lower": self.lower.tolist(), "upper": self.upper.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> Box:
        return cls(d["lower"], d["upper"])


class Spec(abc.ABC):
    """A property of a scalar-output network over a box ``region``."""

    kind: ClassVar[str]
    region: Box

    def validate_for(self, net: ReluNetwork) -> None:
        """Raise ValueError with a one-line reason if the spec does not fit ``net``."""
        if net.n_outputs != 1:
            raise ValueError(f"{self.kind} specs need a single-output network, got {net.n_outputs} outputs")
        if self.region.dim != net.n_inputs:
            raise ValueError(
                f"{self.kind}: region has {self.region.dim} dimensions but the network has {net.n_inputs} inputs"
            )

    def vacuous(self) -> str | None:
        """Why the spec holds for every network (no counterexample can exist), or None."""
        return None

    @abc.abstractmethod
    def violation(self, net: ReluNetwork, cex: Counterexample) -> float:
        """Re-check ``cex`` on ``net`` in float64; return its violation margin (> 0 iff real)."""

    @abc.abstractmethod
    def to_dict(self) -> dict:
        """JSON-ready description, including ``kind``."""

    @classmethod
    @abc.abstractmethod
    def from_dict(cls, d: dict) -> Spec:
        """Inverse of ``to_dict``."""


@register_spec
@dataclass(frozen=True, eq=False)
class Monotonicity(Spec):
    """``f`` is monotone in input ``feature`` inside ``region`` (see the module docstring)."""

    kind: ClassVar[str] = "monotonicity"
    feature: int
    direction: Literal["increasing", "decreasing"]
    region: Box
    tolerance: float = 0.0
    name: str = field(default="")

    def __post_init__(self) -> None:
        if self.direction not in ("increasing", "decreasing"):
            raise ValueError(f"Monotonicity: direction must be 'increasing' or 'decreasing', got {self.direction!r}")
        is_index = isinstance(self.feature, (int, np.integer)) and not isinstance(self.feature, (bool, np.bool_))
        if not is_index or self.feature < 0:
            raise ValueError(f"Monotonicity: feature must be a non-negative index, got {self.feature!r}")
        if self.feature >= self.region.dim:
            raise ValueError(f"Monotonicity: feature {self.feature} is outside the {self.region.dim}-dimensional region")
        if not math.isfinite(self.tolerance) or self.tolerance < 0:
            raise ValueError(f"Monotonicity: tolerance must be a finite number >= 0, got {self.tolerance}")

    @property
    def sign(self) -> float:
        """+1 for increasing, -1 for decreasing: ``sign * df/dx_i >= 0`` is the local property."""
        return 1.0 if self.direction == "increasing" else -1.0

    @property
    def slope_allowance(self) -> float:
        """``t / W_i`` (``W_i`` the region's width along the feature) rounded toward 0.

        The form of the tolerance that composes across a cover of the region: if
        ``sign * df/dx_i >= -slope_allowance`` on every box of the cover, then along any segment
        of length ``d <= W_i`` the drop is at most ``d t / W_i <= t``. The difference form
        ``sign * (f(x') - f(x)) >= -t`` proven box by box does not compose (a band of negative
        slope split between two boxes shows half its drop in each), so it proves only a box
        that spans the region along the feature. Rounded toward 0 so that it never exceeds the
        exact quotient: ``bound + slope_allowance >= 0`` in floating point then implies the
        exact inequality (a sum of two doubles has the sign of its exact value).
        """
        w = float(self.region.widths[self.feature])
        if self.tolerance <= 0 or w <= 0:
            return 0.0
        return float(np.nextafter(self.tolerance / w, 0.0))

    def vacuous(self) -> str | None:
        if self.region.widths[self.feature] == 0:
            return f"feature {self.feature} is fixed in the region: no pair (x, x') exists"
        return None

    def violation(self, net: ReluNetwork, cex: Counterexample) -> float:
        if cex.x_prime is None:
            return -math.inf
        x = np.asarray(cex.x, dtype=np.float64)
        xp = np.asarray(cex.x_prime, dtype=np.float64)
        others = np.arange(x.size) != self.feature
        if x.shape != xp.shape or x.size != self.region.dim:
            return -math.inf
        if not (self.region.contains(x) and self.region.contains(xp)):
            return -math.inf
        if np.any(x[others] != xp[others]) or not xp[self.feature] > x[self.feature]:
            return -math.inf
        fx, fxp = (float(v) for v in net.forward(np.stack([x, xp]))[:, 0])
        return self.sign * (fx - fxp) - self.tolerance

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "name": self.name,
            "feature": int(self.feature),
            "direction": self.direction,
            "tolerance": float(self.tolerance),
            "region": self.region.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict) -> Monotonicity:
        return cls(
            feature=int(d["feature"]),
            direction=d["direction"],
            region=Box.from_dict(d["region"]),
            tolerance=float(d.get("tolerance", 0.0)),
            name=d.get("name", ""),
        )


@register_spec
@dataclass(frozen=True, eq=False)
class OutputBound(Spec):
    """``lower <= f(x) <= upper`` for every ``x`` in ``region`` (either side may be None)."""

    kind: ClassVar[str] = "output_bound"
    lower: float | None
    upper: float | None
    region: Box
    name: str = field(default="")

    def __post_init__(self) -> None:
        if self.lower is None and self.upper is None:
            raise ValueError("OutputBound: give at least one of lower and upper")
        for side in ("lower", "upper"):
            v = getattr(self, side)
            if v is not None and not math.isfinite(v):
                raise ValueError(f"OutputBound: {side} must be finite, got {v}")
        if self.lower is not None and self.upper is not None and self.lower > self.upper:
            raise ValueError(f"OutputBound: lower {self.lower} is greater than upper {self.upper}")

    def violation(self, net: ReluNetwork, cex: Counterexample) -> float:
        x = np.asarray(cex.x, dtype=np.float64)
        if x.size != self.region.dim or not self.region.contains(x):
            return -math.inf
        fx = float(net.forward(x)[0])
        lo = -math.inf if self.lower is None else self.lower - fx
        hi = -math.inf if self.upper is None else fx - self.upper
        return max(lo, hi)

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "name": self.name,
            "lower": self.lower,
            "upper": self.upper,
            "region": self.region.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict) -> OutputBound:
        return cls(
            lower=None if d.get("lower") is None else float(d["lower"]),
            upper=None if d.get("upper") is None else float(d["upper"]),
            region=Box.from_dict(d["region"]),
            name=d.get("name", ""),
        )


def spec_from_dict(d: dict[str, Any]) -> Spec:
    """Build any registered spec kind from its ``to_dict`` form."""
    kind = d.get("kind")
    if kind not in SPEC_REGISTRY:
        raise ValueError(f"unknown spec kind {kind!r}; registered kinds: {sorted(SPEC_REGISTRY)}")
    return SPEC_REGISTRY[kind].from_dict(d)
