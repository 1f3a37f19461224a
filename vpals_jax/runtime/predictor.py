"""``SafePredictor``: a latency predictor that says how far each answer can be trusted.

Every row gets one status, checked in this order:

* ``invalid``: a value is missing, NaN, inf or not a number (booleans are not numbers);
* ``out_of_distribution``: some feature leaves the training range widened by ``ood_margin``
  (a fraction of that feature's range) — where the paper shows unverified networks go wrong;
* ``verified``: the row lies inside the region over which *every* spec of the deployment's
  required spec set (``runtime.requirement``) was VERIFIED on exactly this function — weights,
  normaliser and feature order (certificates are matched by ``certificate.function_fingerprint``
  and by each spec's content, ``certificate.spec_digest``);
* ``unverified_region``: everything else inside the training domain.

Rows that are not ``verified`` follow the ``policy``: ``flag`` (return the prediction, flagged),
``bound`` (return a sound upper bound of the prediction over the nearest verified region, or
refuse if there is none — a conservative answer for a migration decision), ``refuse`` (NaN).
The guard runs in float64 NumPy (exact comparisons against the certified boxes); the network
runs in float64 NumPy for small batches and in a jitted float32 JAX function for large ones.

A run trained as a classifier (``train.loss=bce``: the network outputs a logit) serves the
probability of class 1, the logistic function of that logit (``link="sigmoid"``). The function is
increasing, so the certificates about the logit hold for the probability, and a ``bound`` is
still an upper bound; such a run has no intervals and makes no migration decisions.

A run with a conformal calibration (``vpals_jax.train.calibrate``) also serves, per row, an
interval ``[lower, upper]`` in the target's units with the stated ``coverage``; the calibration is
part of the fingerprint a certificate must match. A run without one serves NaN ends (``describe``
says so), and decisions fall back to the point prediction (``runtime.decision``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from verifiers import Box, ReluNetwork
from verifiers.bounds.interval import output_bounds
from vpals_jax.certificate import certified_region, function_fingerprint
from vpals_jax.convert import load_network
from vpals_jax.data.normalizer import MinMaxNormalizer
from vpals_jax.runtime import decision
from vpals_jax.runtime.requirement import SpecRef, required_specs
from vpals_jax.train.calibrate import Calibration, load_calibration
from vpals_jax.train.metrics import sigmoid

log = logging.getLogger(__name__)

STATUSES = ("verified", "unverified_region", "out_of_distribution", "invalid")
VERIFIED, UNVERIFIED, OOD, INVALID = range(4)
POLICIES = ("flag", "bound", "refuse")
LINKS = {"mse": "identity", "bce": "sigmoid"}  # train.loss -> what the served value is of the output
JAX_MIN_ROWS = 256  # below this, NumPy's float64 forward pass beats JAX's dispatch overhead


@dataclass
class Prediction:
    """Per-row results; ``latency`` and the interval ends are in the target's raw units (NaN where
    refused, invalid, or the run has no calibration); for a classifier run ``latency`` is the
    probability of class 1."""

    latency: np.ndarray
    status_code: np.ndarray  # index into STATUSES
    bounded: np.ndarray  # True where ``latency`` is the policy's conservative bound
    lower: np.ndarray
    upper: np.ndarray

    @property
    def status(self) -> np.ndarray:
        return np.asarray(STATUSES, dtype=object)[self.status_code]

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({"prediction": self.latency, "lower": self.lower, "upper": self.upper,
                             "status": self.status, "bounded": self.bounded})  # fmt: skip


def raw_bounds(normalizer: MinMaxNormalizer, box: Box) -> tuple[np.ndarray, np.ndarray]:
    """Raw-unit bounds of ``box`` such that every raw row inside them normalises into ``box``.

    ``inverse_x`` rounds, so its bound can normalise to just outside the proven box; step such a
    bound inwards one ulp at a time (``transform_x`` is monotone), or empty that axis if it will not do.
    """
    lo, hi = normalizer.inverse_x(box.lower), normalizer.inverse_x(box.upper)
    for _ in range(8):
        below, above = normalizer.transform_x(lo) < box.lower, normalizer.transform_x(hi) > box.upper
        if not (below.any() or above.any()):
            return lo, hi
        lo, hi = np.where(below, np.nextafter(lo, np.inf), lo), np.where(above, np.nextafter(hi, -np.inf), hi)
    below, above = normalizer.transform_x(lo) < box.lower, normalizer.transform_x(hi) > box.upper
    return np.where(below, np.inf, lo), np.where(above, -np.inf, hi)


class SafePredictor:
    """Serves a network with a per-row status; ``regions`` are boxes in normalised input space
    over which the required spec set is proven (``load`` derives them from certificates)."""

    def __init__(
        self,
        net: ReluNetwork,
        normalizer: MinMaxNormalizer,
        regions: list[Box],
        policy: str = "flag",
        ood_margin: float = 0.05,
        calibration: Calibration | None = None,
        coverage: float | None = None,
        link: str = "identity",
    ):
        if policy not in POLICIES:
            raise ValueError(f"unknown policy {policy!r}; use one of {list(POLICIES)}")
        if link not in LINKS.values():
            raise ValueError(f"unknown link {link!r}; use one of {sorted(set(LINKS.values()))}")
        self.link = link
        if not ood_margin >= 0:
            raise ValueError(f"ood_margin must be >= 0, got {ood_margin}")
        self.net, self.normalizer, self.regions, self.policy = net, normalizer, regions, policy
        self.calibration = calibration
        self.coverage = coverage if coverage is not None else calibration.coverage if calibration else None
        if self.coverage is not None and not 0.0 < self.coverage < 1.0:
            raise ValueError(f"coverage must be in (0, 1), got {self.coverage}")
        self._conformal = calibration.regressor() if calibration else None
        self.features = list(normalizer.feature_names)
        if net.n_inputs != len(self.features):
            raise ValueError(f"the network takes {net.n_inputs} inputs but the normaliser names {len(self.features)}")
        # Guards compare raw values, so rows are never normalised just to be checked.
        self._dom_lo = normalizer.x_min - ood_margin * normalizer.x_scale
        self._dom_hi = normalizer.x_max + ood_margin * normalizer.x_scale
        raw = [raw_bounds(normalizer, r) for r in regions]
        self._reg_lo = np.array([lo for lo, _ in raw]).reshape(-1, len(self.features))
        self._reg_hi = np.array([hi for _, hi in raw]).reshape(-1, len(self.features))
        # Sound upper bound of the (normalised) output over each verified region, for policy=bound.
        self._reg_ub = np.array([float(np.ravel(output_bounds(net, r.lower[None], r.upper[None])[1])[0]) for r in regions])
        self._w32 = [jnp.asarray(w, jnp.float32) for w in net.weights]
        self._b32 = [jnp.asarray(b, jnp.float32) for b in net.biases]
        self._x_min32 = jnp.asarray(normalizer.x_min, jnp.float32)
        self._x_inv32 = jnp.asarray(1.0 / normalizer.x_scale, jnp.float32)
        # float32 bounds for the fused guard: "strictly inside" tests that imply the float64 test.
        self._bounds32 = tuple(jnp.asarray(a) for a in (
            _round32(self._dom_lo, up=True), _round32(self._dom_hi, up=False),
            _round32(self._dom_lo, up=False), _round32(self._dom_hi, up=True),
            _round32(self._reg_lo, up=True), _round32(self._reg_hi, up=False),
            _round32(self._reg_lo, up=False), _round32(self._reg_hi, up=True),
        ))  # fmt: skip

    @classmethod
    def load(
        cls, run_dir: str | Path, policy: str = "flag", ood_margin: float = 0.05, spec: SpecRef | None = None,
        coverage: float | None = None,
    ) -> SafePredictor:  # fmt: skip
        """Model, normaliser and calibration of a run, verified where a certificate proves the required specs.

        ``spec`` is the deployment's required spec set (``runtime.requirement``); by default the
        spec set the run was configured with. ``coverage`` overrides the calibrated one.
        """
        net, normalizer, config = load_network(str(run_dir))
        loss = config.get("train", {}).get("loss", "mse")
        if loss not in LINKS:
            raise ValueError(f"{run_dir}: trained with train.loss={loss!r}, which the runtime cannot serve")
        cal = load_calibration(run_dir, normalizer)
        if cal is None:
            log.info("%s has no calibration: predictions are served without intervals", run_dir)
        required = required_specs(config, normalizer, spec)
        fingerprint = function_fingerprint(net, normalizer, cal.to_dict() if cal else None)
        region = certified_region(run_dir, fingerprint, required)
        log.info("%s: %s", run_dir, "nothing verified" if region is None else "certified region loaded")
        return cls(net, normalizer, [] if region is None else [region], policy=policy, ood_margin=ood_margin,
                   calibration=cal, coverage=coverage, link=LINKS[loss])  # fmt: skip

    # -- input --------------------------------------------------------------------------------
    def as_matrix(self, rows: pd.DataFrame | Mapping[str, Any] | np.ndarray | list) -> np.ndarray:
        """Raw rows -> float64 matrix in the model's feature order; non-numbers become NaN (invalid).

        Numeric text (a CSV cell) is a number; a boolean is not, so ``True`` never reads as 1.
        """
        if isinstance(rows, Mapping):
            rows = pd.DataFrame([rows])
        if isinstance(rows, pd.DataFrame):
            missing = [f for f in self.features if f not in rows.columns]
            if missing and len(rows.columns) > 0:
                log.debug("missing columns %s: rows are invalid", missing)
            cols = [_column(rows[f]) if f in rows.columns else np.full(len(rows), np.nan) for f in self.features]
            return np.column_stack(cols) if cols else np.empty((0, 0))
        x = np.asarray(rows)
        if x.ndim == 1:
            x = x[None]
        if x.ndim != 2 or x.shape[1] != len(self.features):
            raise ValueError(f"expected rows of {len(self.features)} features ({', '.join(self.features)}), "
                             f"got an array of shape {x.shape}")  # fmt: skip
        return _numbers(x)

    # -- guard + model ------------------------------------------------------------------------
    def status_codes(self, x: np.ndarray) -> np.ndarray:
        valid = np.isfinite(x).all(axis=1)
        in_domain = ((x >= self._dom_lo) & (x <= self._dom_hi)).all(axis=1)
        codes = np.where(valid, np.where(in_domain, UNVERIFIED, OOD), INVALID).astype(np.int8)
        if len(self.regions):
            inside = ((x[:, None, :] >= self._reg_lo) & (x[:, None, :] <= self._reg_hi)).all(axis=2).any(axis=1)
            codes[(codes == UNVERIFIED) & inside] = VERIFIED
        return codes

    def _guarded_forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Status codes (exact) and normalised predictions.

        Large batches run guard and model in one jitted float32 call; a float32 comparison decides
        a row only when it implies the float64 one (see ``_round32``), and the few rows it cannot
        decide (on a boundary, non-finite, beyond float32's range) are re-checked in float64.
        """
        if len(x) < JAX_MIN_ROWS:
            codes = self.status_codes(x)
            clean = np.where(np.isfinite(x), x, self.normalizer.x_min)
            return codes, self.net.forward(self.normalizer.transform_x(clean))[:, 0]
        with np.errstate(over="ignore"):  # values beyond float32's range become inf: re-checked below
            x32 = x.astype(np.float32)
        codes, y_n = _guarded32(self._w32, self._b32, self._x_min32, self._x_inv32, self._bounds32, x32)
        codes, y_n = np.array(codes), np.asarray(y_n, dtype=np.float64)
        undecided = codes == UNDECIDED
        if undecided.any():
            codes[undecided] = self.status_codes(x[undecided])
        return codes, y_n

    def predict(self, rows: pd.DataFrame | Mapping[str, Any] | np.ndarray | list) -> Prediction:
        x = self.as_matrix(rows)
        codes, y_n = self._guarded_forward(x)
        with np.errstate(over="ignore"):  # a row far outside the domain may overflow to inf; its status says so
            point = np.where(codes == INVALID, np.nan, self.normalizer.inverse_y(y_n))  # f(x), before the policy
        interval = self._interval(x, point)
        bounded = np.zeros(len(x), bool)
        untrusted = codes != VERIFIED
        if self.policy == "refuse":
            y_n = np.where(untrusted, np.nan, y_n)
        elif self.policy == "bound" and untrusted.any():
            y_n = y_n.copy()
            y_n[untrusted] = self._nearest_region_bound(x[untrusted])
            bounded = untrusted & np.isfinite(y_n)
        y_n = np.where(codes == INVALID, np.nan, y_n)
        with np.errstate(over="ignore", invalid="ignore"):  # inf - inf where such a row is not bounded
            latency = self.normalizer.inverse_y(y_n)
            # A bound lifts the point; the upper end rises with it (the calibrated residual is of f(x)).
            lower, upper = interval[:, 0], interval[:, 1] + np.where(bounded, latency - point, 0.0)
        if self.link == "sigmoid":  # the probability of class 1; increasing, so a bound stays a bound
            latency = sigmoid(latency)
        refused = np.isnan(latency)
        return Prediction(latency, codes, bounded & (codes != INVALID), np.where(refused, np.nan, lower),
                          np.where(refused, np.nan, upper))  # fmt: skip

    def _interval(self, x: np.ndarray, latency: np.ndarray) -> np.ndarray:
        if self.calibration is None:
            return np.full((len(x), 2), np.nan)
        return self.calibration.interval(x, latency, self.normalizer, self.coverage, self._conformal)

    def _nearest_region_bound(self, x: np.ndarray) -> np.ndarray:
        if not len(self.regions):
            return np.full(len(x), np.nan)
        xn = self.normalizer.transform_x(np.where(np.isfinite(x), x, self.normalizer.x_min))
        lo, hi = self.normalizer.transform_x(self._reg_lo), self.normalizer.transform_x(self._reg_hi)
        gap = np.maximum(lo[None] - xn[:, None], 0) + np.maximum(xn[:, None] - hi[None], 0)
        return self._reg_ub[np.argmin(np.linalg.norm(gap, axis=2), axis=1)]

    # -- decision -----------------------------------------------------------------------------
    def decide(
        self,
        rows: pd.DataFrame | Mapping[str, Any] | np.ndarray | list,
        slo: float | None = None,
        max_slowdown: float | None = None,
    ) -> pd.DataFrame:
        """Per task ``migrate`` / ``stay`` / ``defer`` from proof and interval (``runtime.decision``)."""
        if self.link != "identity":
            raise ValueError("decide: this run is a classifier (it serves a probability, not a latency to hold "
                             "to an SLO)")  # fmt: skip
        return decision.decide(self, rows, slo, max_slowdown)

    def describe(self) -> dict[str, Any]:
        cal = self.calibration
        target = self.normalizer.target_name
        return {"features": self.features, "policy": self.policy,
                "target": target if self.link == "identity" else f"probability that {target} is 1",
                "verified_regions": len(self.regions),
                "intervals": f"{cal.method} conformal, {100 * self.coverage:g}% coverage" if cal else
                "none (the run has no calibration)"}  # fmt: skip


UNDECIDED = 127


def _number(v: Any) -> float:
    if isinstance(v, (bool, np.bool_)):
        return np.nan
    try:
        return float(v) if isinstance(v, (int, float, np.integer, np.floating, str)) else np.nan
    except (ValueError, OverflowError):
        return np.nan


def _numbers(a: np.ndarray) -> np.ndarray:
    """float64 copy of ``a``: numbers kept, everything else (booleans included) NaN."""
    if a.dtype.kind in "fiu":
        return a.astype(np.float64, copy=False)
    if a.dtype.kind in "OUS":
        return np.array([_number(v) for v in a.ravel()], dtype=np.float64).reshape(a.shape)
    return np.full(a.shape, np.nan)


def _column(s: pd.Series) -> np.ndarray:
    if s.dtype.kind in "fiu":  # also pandas' nullable Int64/Float64: NA becomes NaN
        return s.to_numpy(np.float64, na_value=np.nan)
    return _numbers(s.to_numpy(object))


def _round32(a: np.ndarray, up: bool) -> np.ndarray:
    """float64 bounds -> float32 numbers on the given side of them (never across)."""
    f = np.asarray(a, np.float64).astype(np.float32)
    wrong = f < a if up else f > a
    return np.where(wrong, np.nextafter(f, np.float32(np.inf if up else -np.inf)), f).astype(np.float32)


@jax.jit
def _mlp32(weights, biases, x_min, x_inv, x):
    h = (x - x_min) * x_inv
    for w, b in zip(weights[:-1], biases[:-1]):
        h = jnp.maximum(h @ w + b, 0.0)
    return (h @ weights[-1] + biases[-1])[:, 0]


@jax.jit
def _guarded32(weights, biases, x_min, x_inv, bounds, x):
    """Codes VERIFIED/UNVERIFIED/OOD where float32 settles them exactly, else UNDECIDED.

    x32 = round(x) is within half an ulp of x, so x32 > lo_up (lo_up: the least float32 >= lo)
    implies x > lo, and x32 < lo_down implies x < lo; rows with any coordinate in between, or
    non-finite in float32, are left UNDECIDED for the exact float64 check.
    """
    dom_lo_up, dom_hi_dn, dom_lo_dn, dom_hi_up, reg_lo_up, reg_hi_dn, reg_lo_dn, reg_hi_up = bounds
    finite = jnp.isfinite(x).all(axis=1)
    in_dom = ((x > dom_lo_up) & (x < dom_hi_dn)).all(axis=1)
    out_dom = ((x < dom_lo_dn) | (x > dom_hi_up)).any(axis=1)
    in_reg = ((x[:, None] > reg_lo_up) & (x[:, None] < reg_hi_dn)).all(axis=2)  # (rows, regions)
    out_reg = ((x[:, None] < reg_lo_dn) | (x[:, None] > reg_hi_up)).any(axis=2)
    any_in, all_out = in_reg.any(axis=1), out_reg.all(axis=1)
    code = jnp.where(
        ~finite, UNDECIDED,
        jnp.where(out_dom, OOD,
                  jnp.where(~in_dom, UNDECIDED,
                            jnp.where(any_in, VERIFIED, jnp.where(all_out, UNVERIFIED, UNDECIDED)))),
    ).astype(jnp.int8)  # fmt: skip
    return code, _mlp32(weights, biases, x_min, x_inv, jnp.where(jnp.isfinite(x), x, x_min))

