"""Conformal calibration of a trained run: intervals with a stated coverage, and what a drift test compares with.

The calibration rows are held out of training (``data.calibration_fraction``), so their residuals
are exchangeable with those of future rows from the same distribution, and an interval built from
their quantile covers a new target with probability >= the nominal coverage (split conformal).
The conformal arithmetic is crepes' ``ConformalRegressor`` (quantiles, Mondrian categories);
this module only decides what a run saves and how a served row is mapped to the
quantities crepes takes. Three methods (``calibration.method``):

* ``split``: one quantile of ``|y - y_hat|`` for every row;
* ``normalized``: residuals divided by a difficulty ``sigma = beta + max(y_hat_n, 0)`` (``y_hat_n``:
  the prediction in normalised target units), so intervals grow with the predicted latency, as the
  multiplicative noise of latency measurements does;
* ``mondrian`` (default): one quantile per load level, the calibration rows binned by their mean
  normalised pressure (the ``*_psi_*`` features; the normalised prediction where there are none),
  so that heavily loaded rows, where the model is least sure, get wider intervals.

The saved calibration (``calibration.json`` in the run directory) holds the calibration rows'
predictions, residuals, difficulties and load levels: enough to rebuild the crepes regressor at
any coverage. It is part of the served function's fingerprint (``vpals_jax.certificate``).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from crepes import ConformalRegressor
from crepes.extras import binning

from verifiers import ReluNetwork
from vpals_jax.config import CalibrationConfig
from vpals_jax.data.normalizer import MinMaxNormalizer

log = logging.getLogger(__name__)

CALIBRATION_FILE = "calibration.json"
FORMAT = 1
BETA = 0.05  # difficulty floor of the normalized method, in normalised target units


class CalibrationError(ValueError):
    """A calibration file is unreadable or inconsistent with the run it sits in."""


@dataclass(frozen=True)
class Calibration:
    """The conformal calibration of one served function (all arrays per calibration row, raw target units)."""

    method: str
    coverage: float
    features: list[str]  # the served feature order
    load_features: list[str]  # averaged (normalised) into the load level; [] -> the normalised prediction
    y_hat: np.ndarray
    residuals: np.ndarray  # y - y_hat
    sigmas: np.ndarray  # difficulty (all ones unless method=normalized)
    load: np.ndarray
    edges: np.ndarray  # mondrian: bin boundaries (first -inf, last inf); otherwise [-inf, inf]

    # -- the maps from served rows to crepes' inputs ------------------------------------------
    def difficulty(self, y_hat: np.ndarray, normalizer: MinMaxNormalizer) -> np.ndarray:
        if self.method != "normalized":
            return np.ones(len(y_hat))
        return BETA + np.maximum(normalizer.transform_y(np.asarray(y_hat, np.float64)), 0.0)

    def load_level(self, x: np.ndarray, y_hat: np.ndarray, normalizer: MinMaxNormalizer) -> np.ndarray:
        idx = [list(normalizer.feature_names).index(f) for f in self.load_features]
        if not idx:
            return normalizer.transform_y(np.asarray(y_hat, np.float64))
        return normalizer.transform_x(x)[:, idx].mean(axis=1)

    def bins(self, load: np.ndarray) -> np.ndarray:
        """Mondrian category of each load level; intervals ``(a, b]`` as crepes' ``binning`` forms them."""
        return np.clip(np.searchsorted(self.edges, load, side="left") - 1, 0, len(self.edges) - 2)

    def regressor(self) -> ConformalRegressor:
        return ConformalRegressor().fit(self.residuals, sigmas=self.sigmas, bins=self.bins(self.load))

    def interval(self, x: np.ndarray, y_hat: np.ndarray, normalizer: MinMaxNormalizer,
                 coverage: float | None = None, regressor: ConformalRegressor | None = None) -> np.ndarray:  # fmt: skip
        """``(n, 2)`` lower and upper ends in raw target units (NaN where ``y_hat`` is NaN)."""
        y_hat = np.asarray(y_hat, np.float64)
        out = np.full((len(y_hat), 2), np.nan)
        ok = np.isfinite(y_hat)
        if ok.any():
            clean = np.where(np.isfinite(x[ok]), x[ok], normalizer.x_min)
            cr = regressor or self.regressor()
            out[ok] = cr.predict_int(y_hat[ok], sigmas=self.difficulty(y_hat[ok], normalizer),
                                     bins=self.bins(self.load_level(clean, y_hat[ok], normalizer)),
                                     confidence=self.coverage if coverage is None else coverage)  # fmt: skip
        return out

    # -- persistence ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "method": self.method, "coverage": self.coverage, "features": self.features,
                "load_features": self.load_features, "y_hat": self.y_hat.tolist(),
                "residuals": self.residuals.tolist(), "sigmas": self.sigmas.tolist(), "load": self.load.tolist(),
                "edges": [float(e) if np.isfinite(e) else str(e) for e in self.edges]}  # fmt: skip

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Calibration:
        if d.get("format") != FORMAT:
            raise ValueError(f"not a format-{FORMAT} calibration")
        arrays = {k: np.asarray(d[k], np.float64) for k in ("y_hat", "residuals", "sigmas", "load")}
        n = {len(a) for a in arrays.values()}
        if len(n) != 1 or n == {0} or any(a.ndim != 1 or not np.isfinite(a).all() for a in arrays.values()):
            raise ValueError("its arrays are empty, of different lengths or not finite")
        edges = np.asarray([float(e) for e in d["edges"]], np.float64)
        if len(edges) < 2 or edges[0] != -np.inf or edges[-1] != np.inf or np.any(np.diff(edges) <= 0):
            raise ValueError("its bin edges must rise from -inf to inf")
        if d["method"] not in ("split", "normalized", "mondrian") or not 0.0 < float(d["coverage"]) < 1.0:
            raise ValueError(f"method {d['method']!r} or coverage {d['coverage']!r} is not valid")
        if (arrays["sigmas"] <= 0).any():
            raise ValueError("its difficulties must be > 0")
        return cls(method=str(d["method"]), coverage=float(d["coverage"]), features=list(d["features"]),
                   load_features=list(d["load_features"]), edges=edges, **arrays)  # fmt: skip


def fit_calibration(cfg: CalibrationConfig, net: ReluNetwork, normalizer: MinMaxNormalizer, x_cal: np.ndarray,
                    y_cal: np.ndarray, seed: int = 0) -> Calibration | None:  # fmt: skip
    """Calibrate the served function (``net`` in normalised space + ``normalizer``); None without calibration rows."""
    if len(x_cal) == 0:
        return None
    y_hat = normalizer.inverse_y(net.forward(normalizer.transform_x(x_cal))[:, 0])  # float64, as served
    features = list(normalizer.feature_names)
    load_features = [f for f in features if "_psi_" in f]
    probe = Calibration(cfg.method, cfg.coverage, features, load_features, y_hat, y_cal - y_hat,
                        np.ones(len(y_hat)), np.zeros(len(y_hat)), np.array([-np.inf, np.inf]))  # fmt: skip
    sigmas = probe.difficulty(y_hat, normalizer)
    load = probe.load_level(x_cal, y_hat, normalizer)
    edges = np.array([-np.inf, np.inf])
    n_bins = min(cfg.bins, len(x_cal) // cfg.min_bin_rows)
    if cfg.method == "mondrian" and n_bins > 1:
        _, edges = binning(load, bins=n_bins, epsilon=0)  # equal-count bins; ties may merge some
    cal = Calibration(cfg.method, cfg.coverage, features, load_features, y_hat, y_cal - y_hat, sigmas, load,
                      np.asarray(edges, np.float64))  # fmt: skip
    log.info("calibration (%s, %d rows, %d bin(s)) for %.0f%% intervals", cfg.method, len(x_cal),
             len(cal.edges) - 1, 100 * cfg.coverage)  # fmt: skip
    return cal


def save_calibration(run_dir: str | Path, calibration: Calibration | None) -> Path:
    """Write ``calibration.json`` atomically (temporary file, then one rename); None removes a stale one,
    which would otherwise be served with a function it was not fitted to."""
    path = Path(run_dir) / CALIBRATION_FILE
    if calibration is None:
        path.unlink(missing_ok=True)
        return path
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(calibration.to_dict()))
    os.replace(tmp, path)
    return path


def load_calibration(run_dir: str | Path, normalizer: MinMaxNormalizer) -> Calibration | None:
    """The run's calibration, None if it has none (an older run); ``CalibrationError`` naming the file if unusable."""
    path = Path(run_dir) / CALIBRATION_FILE
    if not path.exists():
        return None
    try:
        cal = Calibration.from_dict(json.loads(path.read_text()))
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise CalibrationError(f"{path}: unusable calibration ({e}); recalibrate or remove it") from None
    if cal.features != list(normalizer.feature_names) or not set(cal.load_features) <= set(cal.features):
        raise CalibrationError(f"{path}: calibrated for features {cal.features}, the run serves "
                               f"{list(normalizer.feature_names)}")  # fmt: skip
    return cal


def coverage_report(cal: Calibration, net: ReluNetwork, normalizer: MinMaxNormalizer, x: np.ndarray,
                    y: np.ndarray) -> dict[str, float]:  # fmt: skip
    """Empirical coverage and mean width (relative to the target's training range) on held-out rows."""
    y_hat = normalizer.inverse_y(net.forward(normalizer.transform_x(x))[:, 0])
    iv = cal.interval(x, y_hat, normalizer)
    inside = (y >= iv[:, 0]) & (y <= iv[:, 1])
    return {"nominal": cal.coverage, "coverage": float(inside.mean()),
            "mean_width_rel": float(np.mean(iv[:, 1] - iv[:, 0]) / normalizer.y_scale)}  # fmt: skip
