"""The migration decision: act on a prediction only where both its proof and its interval allow it.

A row is *trusted* when it is ``verified`` or answered by a sound bound (policy ``bound``). With a
calibrated run, a trusted row is

* ``migrate`` only when the interval's **lower** end already breaks the SLO,
* ``stay`` only when its **upper** end is inside the SLO,
* ``defer`` otherwise: the interval straddles the SLO, so the data cannot tell (the reason says so).

A run without a calibration (trained before intervals existed, or with
``data.calibration_fraction=0``) has no intervals: its trusted rows are decided on the point
prediction, as before, and the reason says that no interval backs the decision.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from vpals_jax.data import schema


def baseline(predictor: Any, x: np.ndarray) -> np.ndarray:
    """Predicted latency with every pressure feature at its training minimum (no interference)."""
    norm = predictor.normalizer
    base = np.where(np.isfinite(x), x, norm.x_min).copy()
    for i, f in enumerate(predictor.features):
        col = schema.COLUMN_BY_NAME.get(f)
        if col is not None and f.startswith(("sys_psi_", "cg_psi_")) and col.latency_direction > 0:
            base[:, i] = norm.x_min[i]
    return norm.inverse_y(predictor.net.forward(norm.transform_x(base))[:, 0])


def _breaks(latency: np.ndarray, slowdown: np.ndarray, slo: float | None, max_slowdown: float | None) -> np.ndarray:
    over = np.zeros(len(latency), bool)
    if slo is not None:
        over |= latency > slo
    if max_slowdown is not None:
        over |= slowdown > max_slowdown
    return over


def decide(
    predictor: Any, rows: Any, slo: float | None = None, max_slowdown: float | None = None
) -> pd.DataFrame:
    """Per row: prediction, interval, status, slowdown, ``decision`` (migrate / stay / defer) and its ``reason``.

    The SLO is an absolute latency (``slo``, the target's units) and/or a slowdown against the
    app's no-interference baseline (``max_slowdown``).
    """
    if slo is None and max_slowdown is None:
        raise ValueError("decide needs slo and/or max_slowdown")
    x = predictor.as_matrix(rows)
    pred = predictor.predict(x)
    base = np.maximum(baseline(predictor, x), 1e-12)
    slowdown = pred.latency / base
    trusted = (pred.status_code == 0) | pred.bounded  # 0: verified
    untrusted_reason = np.where(pred.status == "invalid", "invalid input", "prediction not trusted: " + pred.status)
    if predictor.calibration is None:
        over = _breaks(pred.latency, slowdown, slo, max_slowdown)
        decision = np.where(trusted, np.where(over, "migrate", "stay"), "defer")
        reason = np.where(trusted, np.where(over, "predicted latency exceeds the SLO", "within the SLO")
                          + " (point prediction: the run has no calibration, so no interval)", untrusted_reason)  # fmt: skip
    else:
        lo_breaks = _breaks(pred.lower, pred.lower / base, slo, max_slowdown)
        hi_breaks = _breaks(pred.upper, pred.upper / base, slo, max_slowdown) | ~np.isfinite(pred.upper)
        decision = np.where(trusted, np.where(lo_breaks, "migrate", np.where(hi_breaks, "defer", "stay")), "defer")
        pct = f"{100 * predictor.coverage:g}%"
        span = np.array([f"[{lo:.6g}, {hi:.6g}]" for lo, hi in zip(pred.lower, pred.upper)], dtype=object)
        reason = np.where(
            trusted,
            np.where(lo_breaks, f"the {pct} interval " + span + " lies beyond the SLO",
                     np.where(hi_breaks, f"the {pct} interval " + span + " straddles the SLO",
                              f"the {pct} interval " + span + " lies within the SLO")),
            untrusted_reason,
        )  # fmt: skip
    out = pred.to_frame()
    out["slowdown"] = slowdown
    out["decision"], out["reason"] = decision.astype(object), reason.astype(object)
    return out
