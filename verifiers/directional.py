"""The general gradient spec family: ``lower <= c . grad f <= upper`` over a region.

Kept beside :mod:`verifiers.specs` (the core's spec module would pass 400 lines); registered on
``import verifiers`` like every built-in kind.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from verifiers.specs import Box, RawUnits, SlopeBounds, Spec, _check_output, _output_entry, register_spec

if TYPE_CHECKING:
    from verifiers.network import ReluNetwork
    from verifiers.verdict import Counterexample


@register_spec
@dataclass(frozen=True, eq=False)
class DirectionalSlope(Spec):
    """Every slope of ``f`` along ``direction`` inside ``region`` lies in ``[lower, upper]``.

    Semantics (what every backend decides): for every ``x`` in the region and ``d > 0`` with
    ``x + d c`` in it, ``lower d <= f(x + d c) - f(x) <= upper d`` (a missing side is unbounded);
    for a ReLU network, equivalently, ``c . grad f`` of every linear piece of ``f`` meeting the
    region lies in ``[lower, upper]``. Monotonicity (t = 0) is ``c = e_i`` with ``lower = 0``;
    ``|df/dx_i| <= L`` is ``c = e_i`` in ``[-L, L]``; all of several inputs rising together is
    ``c = e_i + e_j + ...``. Tolerances in the difference form stay with :class:`Monotonicity`.

    A counterexample is one point ``x`` of the region inside a linear piece (no hidden
    pre-activation is 0 there, checked rigorously by ``ReluNetwork.certified_slope``) whose slope
    violates a bound; its margin is the violation in slope units. Why a point, not a pair: for a
    general ``c`` the pair ``x + d c`` is not exactly representable, while the piece's slope is
    checked exactly, and the piece, open and meeting the region, holds a violating pair.
    """

    kind: ClassVar[str] = "directional_slope"
    direction: np.ndarray
    lower: float | None
    upper: float | None
    region: Box
    name: str = field(default="")
    output: int = 0

    def __post_init__(self) -> None:
        _check_output(self)
        c = np.array(self.direction, dtype=np.float64).reshape(-1)
        if c.size != self.region.dim or not np.all(np.isfinite(c)) or not np.any(c):
            raise ValueError(f"DirectionalSlope: direction must be {self.region.dim} finite numbers, not all 0")
        c.setflags(write=False)
        object.__setattr__(self, "direction", c)
        if self.lower is None and self.upper is None:
            raise ValueError("DirectionalSlope: give at least one of lower and upper")
        for side in ("lower", "upper"):
            v = getattr(self, side)
            if v is not None and not math.isfinite(v):
                raise ValueError(f"DirectionalSlope: {side} must be finite, got {v}")
        if self.lower is not None and self.upper is not None and self.lower > self.upper:
            raise ValueError(f"DirectionalSlope: lower {self.lower} is greater than upper {self.upper}")

    def slope_bounds(self) -> SlopeBounds:
        return SlopeBounds(self.direction, self.lower, self.upper)

    def vacuous(self) -> str | None:
        moved = np.flatnonzero((self.direction != 0) & (self.region.widths == 0))
        if moved.size:
            return (
                f"the direction moves input {int(moved[0])}, which is fixed in the region: no pair (x, x + d c) exists"
            )
        return None

    def violation(self, net: ReluNetwork, cex: Counterexample) -> float:
        x = np.asarray(cex.x, dtype=np.float64)
        if cex.x_prime is not None or x.size != self.region.dim or not self.region.contains(x):
            return -math.inf
        slope = self.scalar(net).certified_slope(x, self.direction)
        if slope is None:
            return -math.inf
        s, e = slope
        lo = -math.inf if self.lower is None else self.lower - (s + e)
        hi = -math.inf if self.upper is None else (s - e) - self.upper
        return max(lo, hi)

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "name": self.name,
            "direction": self.direction.tolist(),
            "lower": self.lower,
            "upper": self.upper,
            "region": self.region.to_dict(),
            **_output_entry(self),
        }

    @classmethod
    def from_dict(cls, d: dict) -> DirectionalSlope:
        return cls(
            direction=np.asarray(d["direction"], dtype=np.float64),
            lower=None if d.get("lower") is None else float(d["lower"]),
            upper=None if d.get("upper") is None else float(d["upper"]),
            region=Box.from_dict(d["region"]),
            name=d.get("name", ""),
            output=int(d.get("output", 0)),
        )

    @classmethod
    def from_raw(cls, entry: dict[str, Any], region: Box, units: RawUnits) -> DirectionalSlope:
        """``direction: {feature: step, ...}`` in raw units, bounds in output units per step.

        A raw step ``c`` moves the normalised input by ``c / x_scale`` and a raw output change
        is ``y_scale`` normalised ones, so the spec is ``c_n = c / x_scale`` with bounds divided
        by ``y_scale``; ``c_n`` and the bounds are then divided by ``max |c_n|`` (the same
        property), which makes a single-feature direction exactly ``e_i``.
        """
        entry = dict(entry)
        raw = entry.pop("direction", None)
        if not isinstance(raw, dict) or not raw:
            raise ValueError("directional_slope: direction must map feature names to steps, e.g. {cpu: 1}")
        c = np.zeros(len(units.feature_names))
        for feature, step in raw.items():
            c[units.feature(feature)] = float(step)
        c = c / units.x_scale
        scale = float(np.max(np.abs(c)))
        if not scale > 0:
            raise ValueError("directional_slope: the direction is 0")
        bound = {k: None if entry.get(k) is None else float(entry.pop(k)) / units.y_scale / scale
                 for k in ("lower", "upper")}  # fmt: skip
        entry.pop("lower", None), entry.pop("upper", None)
        name = entry.pop("name", "")
        output = int(entry.pop("output", 0))
        if entry:
            raise ValueError(f"directional_slope: unknown key(s) {sorted(entry)}")
        return cls(direction=c / scale, region=region, name=name, output=output, **bound)


__all__ = ["DirectionalSlope"]
