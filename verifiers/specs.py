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

:class:`DirectionalSlope` is the general gradient family (``lower <= c . grad f <= upper``),
:class:`OutputBound` bounds the output; every spec is about one output (``output``) of the
network. A spec kind of one's own reduces to one of these (:meth:`Spec.reduced`) to be decided
by the built-in backends (``docs/extending.md``).
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

from verifiers.plugins import SPEC_GROUP, discover

SPEC_REGISTRY: dict[str, type[Spec]] = {}


def register_spec(cls: type[Spec]) -> type[Spec]:
    """Class decorator: make a spec kind constructible by name (``spec_from_dict``)."""
    if SPEC_REGISTRY.get(cls.kind, cls) is not cls:
        raise ValueError(f"spec kind {cls.kind!r} is already registered")
    SPEC_REGISTRY[cls.kind] = cls
    return cls


def spec_class(kind: str) -> type[Spec]:
    """The class of a registered kind, looking in plugins (:mod:`verifiers.plugins`) if needed."""
    if kind not in SPEC_REGISTRY:
        found = discover(SPEC_GROUP, kind)
        if isinstance(found, type) and issubclass(found, Spec) and found.kind == kind:
            register_spec(found)
    if kind not in SPEC_REGISTRY:
        raise ValueError(f"unknown spec kind {kind!r}; registered kinds: {sorted(SPEC_REGISTRY)}")
    return SPEC_REGISTRY[kind]


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


@dataclass(frozen=True, eq=False)
class SlopeBounds:
    """``lower <= c . grad f <= upper`` (either side None): the per-box objective of the gradient
    backends and of the training loop's slope hinges (``sign * c . grad f + shift >= 0``)."""

    direction: np.ndarray
    lower: float | None
    upper: float | None

    def sides(self) -> list[tuple[float, float]]:
        """``(sign, shift)`` per bound given: ``+1, -lower`` and ``-1, +upper``."""
        return [(s, v) for s, v in ((1.0, None if self.lower is None else -self.lower),
                                    (-1.0, self.upper)) if v is not None]  # fmt: skip


class RawUnits:
    """How a spec file's raw units map to the network's: ``x_n = (x - x_min) / x_scale`` and
    ``y_n = (y - y_min) / y_scale`` (a min-max normaliser; no Flax, no pandas)."""

    def __init__(self, feature_names: Sequence[str], x_scale: Sequence[float], y_min: float, y_scale: float):
        self.feature_names = list(feature_names)
        self.x_scale = np.asarray(x_scale, dtype=np.float64)
        self.y_min, self.y_scale = float(y_min), float(y_scale)

    def feature(self, name: str) -> int:
        if name not in self.feature_names:
            raise ValueError(f"unknown feature {name!r}; the model's features are {self.feature_names}")
        return self.feature_names.index(name)

    def output_value(self, y: float) -> float:
        return (float(y) - self.y_min) / self.y_scale

    def slope(self, value: float, feature: int) -> float:
        """A slope in output units per unit of ``feature`` -> normalised units."""
        return float(value) * self.x_scale[feature] / self.y_scale


class Spec(abc.ABC):
    """A property of one output (``output``) of a network over a box ``region``."""

    kind: ClassVar[str]
    region: Box
    output: int = 0  # which output of a multi-output network; dataclass specs make it a field

    def validate_for(self, net: ReluNetwork) -> None:
        """Raise ValueError with a one-line reason if the spec does not fit ``net``."""
        if not 0 <= self.output < net.n_outputs:
            raise ValueError(f"{self.kind}: output {self.output} does not exist, the network has {net.n_outputs}")
        if self.region.dim != net.n_inputs:
            raise ValueError(
                f"{self.kind}: region has {self.region.dim} dimensions but the network has {net.n_inputs} inputs"
            )

    def scalar(self, net: ReluNetwork) -> ReluNetwork:
        """The network of this spec's output (a single-output network is taken as that output)."""
        return net if net.n_outputs == 1 else net.select_output(self.output)

    def reduced(self) -> Spec | None:
        """A spec of another kind with exactly this spec's semantics, decided in its place by a
        backend that does not know this kind (``docs/extending.md``); None: no such spec."""
        return None

    def slope_bounds(self) -> SlopeBounds | None:
        """The gradient bounds whose proof on every box proves this spec (None: not a slope spec)."""
        red = self.reduced()
        return None if red is None else red.slope_bounds()

    def vacuous(self) -> str | None:
        """Why the spec holds for every network (no counterexample can exist), or None."""
        red = self.reduced()
        return None if red is None else red.vacuous()

    def violation(self, net: ReluNetwork, cex: Counterexample) -> float:
        """Re-check ``cex`` on ``net`` in float64; return its violation margin (> 0 iff real).

        By default the reduced spec's check, so that a kind defined by reduction is re-checked
        exactly as the kind that decides it."""
        red = self.reduced()
        if red is None:
            raise NotImplementedError(f"{type(self).__name__} defines neither violation nor reduced")
        return red.violation(net, cex)

    @classmethod
    def from_raw(cls, entry: dict[str, Any], region: Box, units: RawUnits) -> Spec:
        """Build from a spec-file entry (``kind``, ``region`` and ``plugin`` removed) in raw units.

        By default the entry's values are taken in network space (``from_dict``)."""
        return cls.from_dict({"kind": cls.kind, "region": region.to_dict(), **entry})

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
    output: int = 0

    def __post_init__(self) -> None:
        _check_output(self)
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
        # the width upper - lower is rounded to nearest: rounded up here, so that the allowance
        # times the exact width never exceeds t
        w_up = float(np.nextafter(w, np.inf))
        return float(np.nextafter(self.tolerance / w_up, 0.0))

    def slope_bounds(self) -> SlopeBounds:
        """``sign * df/dx_i >= -slope_allowance``: sufficient for the spec (necessary when t = 0)."""
        a = self.slope_allowance
        e = np.eye(self.region.dim)[self.feature]
        return SlopeBounds(e, -a, None) if self.sign > 0 else SlopeBounds(e, None, a)

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
        fx, fxp = (float(v) for v in self.scalar(net).forward(np.stack([x, xp]))[:, 0])
        return self.sign * (fx - fxp) - self.tolerance

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "name": self.name,
            "feature": int(self.feature),
            "direction": self.direction,
            "tolerance": float(self.tolerance),
            "region": self.region.to_dict(),
            **_output_entry(self),
        }

    @classmethod
    def from_dict(cls, d: dict) -> Monotonicity:
        return cls(
            feature=int(d["feature"]),
            direction=d["direction"],
            region=Box.from_dict(d["region"]),
            tolerance=float(d.get("tolerance", 0.0)),
            name=d.get("name", ""),
            output=int(d.get("output", 0)),
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
    output: int = 0

    def __post_init__(self) -> None:
        _check_output(self)
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
        fx = float(self.scalar(net).forward(x)[0])
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
            **_output_entry(self),
        }

    @classmethod
    def from_dict(cls, d: dict) -> OutputBound:
        return cls(
            lower=None if d.get("lower") is None else float(d["lower"]),
            upper=None if d.get("upper") is None else float(d["upper"]),
            region=Box.from_dict(d["region"]),
            name=d.get("name", ""),
            output=int(d.get("output", 0)),
        )


def _check_output(spec: Spec) -> None:
    o = spec.output
    if isinstance(o, (bool, np.bool_)) or not isinstance(o, (int, np.integer)) or o < 0:
        raise ValueError(f"{type(spec).__name__}: output must be a non-negative index, got {o!r}")


def _output_entry(spec: Spec) -> dict[str, int]:
    """``output`` in ``to_dict`` only when it is not 0, so that the digests of single-output
    specs (certificates, ``vpals_jax.certificate.spec_digest``) do not change."""
    return {"output": int(spec.output)} if spec.output else {}


def spec_from_dict(d: dict[str, Any]) -> Spec:
    """Build any registered spec kind from its ``to_dict`` form."""
    return spec_class(d.get("kind")).from_dict(d)
