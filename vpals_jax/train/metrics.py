"""Regression metrics, and the run's ``metrics.jsonl`` log.

Accuracy is Ouroboros' definition: the share of rows with ``|prediction - target| < tol`` on
the min-max normalised target, so figures are comparable with the paper's; for a classifier
trained with ``train.loss=bce`` (:func:`binary_metrics`) it is the share on the right side of
probability 0.5.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np


def regression_metrics(pred_n: np.ndarray, y_n: np.ndarray, y_scale: float, y_min: float, tol: float) -> dict[str, float]:
    """Metrics from normalised predictions and targets; RMSE and MAPE in raw target units."""
    pred_n, y_n = np.asarray(pred_n, np.float64), np.asarray(y_n, np.float64)
    err_n = pred_n - y_n
    pred, y = pred_n * y_scale + y_min, y_n * y_scale + y_min
    denom = np.maximum(np.abs(y), 1e-9)
    ss_tot = float(np.sum((y_n - y_n.mean()) ** 2))
    return {
        "loss": float(np.mean(err_n**2)),
        "rmse": float(np.sqrt(np.mean((pred - y) ** 2))),
        "mape": float(100.0 * np.mean(np.abs(pred - y) / denom)),
        "r2": float(1.0 - np.sum(err_n**2) / ss_tot) if ss_tot > 0 else float("nan"),
        "accuracy": float(np.mean(np.abs(err_n) < tol)),
    }


def binary_metrics(logit: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """The same keys for a ``train.loss=bce`` run, whose output is a logit and target 0/1: ``loss`` the
    binary cross-entropy, ``rmse`` and ``r2`` of the probability (``rmse**2`` is the Brier score),
    ``accuracy`` of thresholding at logit 0 (probability 0.5); ``mape`` is undefined for a 0/1 target
    (NaN)."""
    z, y = np.asarray(logit, np.float64), np.asarray(y, np.float64)
    bce = np.maximum(z, 0.0) - z * y + np.log1p(np.exp(-np.abs(z)))  # optax.sigmoid_binary_cross_entropy
    # accuracy from the logit: its sign is exact where the probability could round to 0.5
    return {"loss": float(np.mean(bce)), **probability_metrics(sigmoid(z), y), "accuracy": float(np.mean((z > 0) == (y > 0.5)))}


def sigmoid(z: np.ndarray) -> np.ndarray:
    """The logistic function, without overflow for large ``|z|``."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, np.float64)))


def probability_metrics(p: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """``rmse`` and ``r2`` of a predicted probability against a 0/1 target (``rmse**2`` is the
    Brier score), ``accuracy`` of thresholding it at 0.5; ``mape`` is undefined (NaN)."""
    p, y = np.asarray(p, np.float64), np.asarray(y, np.float64)
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    return {
        "rmse": float(np.sqrt(np.mean((p - y) ** 2))),
        "mape": float("nan"),
        "r2": float(1.0 - np.sum((p - y) ** 2) / ss_tot) if ss_tot > 0 else float("nan"),
        "accuracy": float(np.mean((p > 0.5) == (y > 0.5))),
    }


def _scalars(record: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """The numbers of a record, flattened (``test/accuracy``); verification rounds per spec."""
    out: dict[str, float] = {}
    for key, value in record.items():
        if key == "verdicts" and isinstance(value, list):
            for v in value:
                name = str(v["spec"]).replace(" ", "_")
                out[f"verify/{name}/verified_fraction"] = float(v["verified_fraction"])
                out[f"verify/{name}/verified"] = float(v["status"] == "VERIFIED")
        elif isinstance(value, dict):
            out.update(_scalars(value, f"{prefix}{key}/"))
        elif (isinstance(value, (int, float)) and not isinstance(value, bool) and key not in ("epoch", "event")
              and math.isfinite(value)):  # an undefined metric (a bce run's MAPE) stays out of TensorBoard
            out[f"{prefix}{key}"] = float(value)
    return out


def _summary_writer() -> type:
    """tensorboardX's ``SummaryWriter``, imported without torch where torch is not loaded yet.

    Why: tensorboardX imports torch whenever it is installed (auto_LiRPA needs it here), only to
    accept torch tensors; we log floats. That import took 1.7 of the 4.3 s of a whole mindspore
    training run, on the clock of every run. A ``None`` entry in ``sys.modules`` makes
    ``import torch`` raise ImportError, which tensorboardX handles."""
    if "torch" in sys.modules:
        from tensorboardX import SummaryWriter

        return SummaryWriter
    sys.modules["torch"] = None  # type: ignore[assignment]
    try:
        from tensorboardX import SummaryWriter
    finally:
        del sys.modules["torch"]
    return SummaryWriter


class MetricsLog:
    """Append-only JSON lines, mirrored to TensorBoard event files in ``tensorboard/`` beside them.

    ``count`` goes into every checkpoint, so a resume keeps exactly the records that checkpoint had
    seen: lines written after it (an epoch, a verification round, a line torn by the kill) are
    dropped and written again by the resumed run. Event files cannot be truncated, so a restart
    rebuilds them from the kept lines: TensorBoard then shows exactly what ``metrics.jsonl`` holds.
    """

    def __init__(self, path: Path):
        self.path = path
        self.count = 0
        self.tb_dir = path.parent / "tensorboard"
        self._tb = None

    def restart(self, keep: int) -> None:
        """Keep the first ``keep`` records (0: a new log); rewritten atomically."""
        lines = self.path.read_text().splitlines(keepends=True)[:keep] if keep and self.path.exists() else []
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text("".join(lines))
        os.replace(tmp, self.path)
        self.count = len(lines)
        self.close()
        shutil.rmtree(self.tb_dir, ignore_errors=True)
        for line in lines:
            self._mirror(json.loads(line))

    def write(self, record: dict[str, Any]) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        self.count += 1
        self._mirror(record)

    def _mirror(self, record: dict[str, Any]) -> None:
        if "epoch" not in record:
            return
        if self._tb is None:
            self._tb = _summary_writer()(str(self.tb_dir), flush_secs=10)
        for tag, value in _scalars(record).items():
            self._tb.add_scalar(tag, value, int(record["epoch"]))
        self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]
