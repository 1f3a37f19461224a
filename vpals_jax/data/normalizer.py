"""Min-max normalisation fitted on the training split and saved with the model.

Users write specs and runtime inputs in raw units (percent, cores, MiB, ms); the network sees
``[0, 1]``-scaled inputs and target. Keeping the normaliser beside the checkpoint is what lets
``vpals_jax.spec_files`` and the runtime predictor translate between the two.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class MinMaxNormalizer:
    feature_names: tuple[str, ...]
    target_name: str
    x_min: np.ndarray
    x_scale: np.ndarray  # max - min, or 1 for a constant feature (never divide by zero)
    y_min: float
    y_scale: float

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, feature_names: Sequence[str], target_name: str) -> MinMaxNormalizer:
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        if x.ndim != 2 or x.shape[1] != len(feature_names):
            raise ValueError(f"normaliser: x has shape {x.shape} but {len(feature_names)} feature names were given")
        if x.shape[0] == 0:
            raise ValueError("normaliser: cannot fit on an empty training split")
        lo, hi = x.min(axis=0), x.max(axis=0)
        span = hi - lo
        constant = [name for name, s in zip(feature_names, span) if s == 0]
        if constant:
            log.warning("constant feature(s) in the training split, scaled by 1: %s", ", ".join(constant))
        y_span = float(y.max() - y.min())
        if y_span == 0:
            log.warning("target %s is constant in the training split; scaled by 1", target_name)
        return cls(
            feature_names=tuple(feature_names),
            target_name=target_name,
            x_min=lo,
            x_scale=np.where(span > 0, span, 1.0),
            y_min=float(y.min()),
            y_scale=y_span if y_span > 0 else 1.0,
        )

    @property
    def x_max(self) -> np.ndarray:
        return self.x_min + self.x_scale

    def transform_x(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, dtype=np.float64) - self.x_min) / self.x_scale

    def inverse_x(self, xn: np.ndarray) -> np.ndarray:
        return np.asarray(xn, dtype=np.float64) * self.x_scale + self.x_min

    def transform_y(self, y: np.ndarray) -> np.ndarray:
        return (np.asarray(y, dtype=np.float64) - self.y_min) / self.y_scale

    def inverse_y(self, yn: np.ndarray) -> np.ndarray:
        return np.asarray(yn, dtype=np.float64) * self.y_scale + self.y_min

    def feature_index(self, name: str) -> int:
        try:
            return self.feature_names.index(name)
        except ValueError:
            raise ValueError(f"unknown feature {name!r}; the model's features are {list(self.feature_names)}") from None

    def to_dict(self) -> dict:
        return {
            "feature_names": list(self.feature_names),
            "target_name": self.target_name,
            "x_min": self.x_min.tolist(),
            "x_scale": self.x_scale.tolist(),
            "y_min": self.y_min,
            "y_scale": self.y_scale,
        }

    @classmethod
    def from_dict(cls, d: dict) -> MinMaxNormalizer:
        return cls(
            feature_names=tuple(d["feature_names"]),
            target_name=d["target_name"],
            x_min=np.asarray(d["x_min"], dtype=np.float64),
            x_scale=np.asarray(d["x_scale"], dtype=np.float64),
            y_min=float(d["y_min"]),
            y_scale=float(d["y_scale"]),
        )
