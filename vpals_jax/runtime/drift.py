"""Drift alarm: a conformal test martingale that rises when served rows stop matching the calibration.

Each served row with an observed target gets an online smoothed conformal p-value of its absolute
residual ``|y - y_hat|`` against the calibration rows' residuals *and every earlier served
row's*, in one pool whatever the interval method. Why not the intervals' own score (normalised
by the expected difficulty, within a Mondrian load bin): a shift of the load is exactly what those
scores condition away. Measured on the OOD streams: the Mondrian score never alarmed on solr (its
high-load bin's intervals widened enough to cover 96 % of the shifted rows) and the normalised one
needed up to 745 rows; the plain residual alarmed within 49-88 rows on every app. A row
without an observed target (``--watch`` reads pressure, not the app's latency) is scored by the
distance of its prediction from the calibration predictions' median instead: that detects a
shift in what is served, not in how wrong it is. While calibration rows and stream are
exchangeable, online p-values are independent and uniform (Vovk et al., *Algorithmic Learning in
a Random World*, ch. 8), so the martingale below is a nonnegative martingale starting at 1 and,
by Ville's inequality, ever reaches ``threshold`` with probability at most ``1 / threshold``
(1 % at the default 100). P-values against the fixed calibration set alone would not do: given
that set they are not uniform, and over thousands of rows a betting martingale detects its
sampling error (measured: false alarms on in-distribution streams of 10,000 rows). Once reached,
the alarm stays raised: the intervals' coverage guarantee no longer holds, so decisions are
deferred until the run is recalibrated and the monitor restarted.

The martingale is crepes' Simple Jumper with its epsilon betting function, and the p-values are
those of crepes' ``semi_online_p_values``; both are written out here because crepes computes them
from the first score on every call, while a live stream needs its state carried between rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from crepes.martingales import EpsilonBettingFunction

from vpals_jax.train.calibrate import Calibration

THRESHOLD = 100.0  # false-alarm probability on an exchangeable stream <= 1 / THRESHOLD
JUMP = 0.01  # Simple Jumper's jumping rate: how fast capital moves back to the other bets


class DriftMonitor:
    """Stateful alarm over a served stream; ``observe`` once per batch, in stream order."""

    def __init__(self, calibration: Calibration, threshold: float = THRESHOLD, jump: float = JUMP, seed: int = 0):
        if not threshold > 1.0:
            raise ValueError(f"drift_threshold must be > 1, got {threshold}")
        self.threshold, self.jump = threshold, jump
        self._centre = float(np.median(calibration.y_hat))
        # sorted reference scores: absolute residuals, and distances of predictions from their median
        self._ref = np.sort(np.abs(calibration.residuals))
        self._ref_pred = np.sort(np.abs(calibration.y_hat - self._centre))
        self._bet = EpsilonBettingFunction()
        self._capital = np.full(len(self._bet.E), 1.0 / len(self._bet.E))
        self._rng = np.random.default_rng(seed)
        self.martingale, self.rows, self.alarm_row = 1.0, 0, None

    @property
    def alarm(self) -> bool:
        return self.alarm_row is not None

    def _online_p(self, ref: np.ndarray, score: float) -> tuple[float, np.ndarray]:
        lo, hi = np.searchsorted(ref, score, "left"), np.searchsorted(ref, score, "right")
        p = (len(ref) - hi + self._rng.random() * (hi - lo + 1)) / (len(ref) + 1)
        return p, np.insert(ref, lo, score)

    def p_values(self, x: np.ndarray, y_hat: np.ndarray, observed: np.ndarray) -> np.ndarray:
        """Per row, in order: residual p-value where the target was observed, prediction p-value
        otherwise (NaN for a row with neither: invalid, refused or answered by a bound)."""
        p = np.full(len(y_hat), np.nan)
        ok = np.isfinite(y_hat) & np.isfinite(x).all(axis=1)
        if not ok.any():
            return p
        ys = np.where(ok, y_hat, 0.0)
        scores = np.abs(observed - ys)
        for i in np.flatnonzero(ok):
            if np.isfinite(observed[i]):
                p[i], self._ref = self._online_p(self._ref, float(scores[i]))
            else:
                p[i], self._ref_pred = self._online_p(self._ref_pred, abs(float(ys[i]) - self._centre))
        return p

    def update(self, p_values: np.ndarray) -> np.ndarray:
        """Martingale value after each p-value (NaN p-values leave it unchanged)."""
        values = np.empty(len(p_values))
        rewards = self._bet.apply(np.nan_to_num(p_values, nan=0.5))
        k = len(self._capital)
        for i, p in enumerate(p_values):
            if np.isfinite(p):
                self._capital *= rewards[i]
                self.martingale = float(self._capital.sum())
                self._capital = (1 - self.jump) * self._capital + (self.jump / k) * self.martingale
                self.rows += 1
                if self.alarm_row is None and self.martingale >= self.threshold:
                    self.alarm_row = self.rows
            values[i] = self.martingale
        return values

    def observe(self, x: np.ndarray, y_hat: np.ndarray, observed: np.ndarray | None = None) -> pd.DataFrame:
        """Columns ``drift`` (ok / alarm, as of each row) and ``drift_martingale`` for a batch of served rows."""
        observed = np.full(len(y_hat), np.nan) if observed is None else np.asarray(observed, np.float64)
        p = self.p_values(x, np.asarray(y_hat, np.float64), observed)
        values = self.update(p)
        alarmed = np.zeros(len(p), bool)
        if self.alarm_row is not None:  # rows at or after the one that crossed the threshold
            counted = self.rows - np.cumsum(np.isfinite(p)[::-1])[::-1] + np.isfinite(p)
            alarmed = counted >= self.alarm_row
        return pd.DataFrame({"drift": np.where(alarmed, "alarm", "ok"), "drift_martingale": values})


def defer_on_alarm(out: pd.DataFrame, drift: pd.DataFrame) -> pd.DataFrame:
    """Join the drift columns; an alarmed row's decision becomes ``defer`` (its interval no longer holds)."""
    out = out.reset_index(drop=True).join(drift.reset_index(drop=True))
    if "decision" in out:
        hit = (out["drift"] == "alarm").to_numpy()
        out.loc[hit, "decision"] = "defer"
        out.loc[hit, "reason"] = "drift alarm: served rows no longer match the calibration (recalibrate the run)"
    return out
