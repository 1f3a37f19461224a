"""Evaluate a trained run on held-out measurements: ``python -m vpals_jax.evaluate run_dir=<run> input=<file>``.

The test split a run reports comes from the same collection as its training rows; whether the model
carries over to another day or machine is only seen on a file it never touched. This command reads
such a file through the run's own table mapping (``data.columns``, ``data.units``, ``data.app``),
serves every row through ``SafePredictor`` exactly as ``vpals-predict`` would,
and writes into ``<run_dir>/evaluate/<time>/``:

* ``metrics.json``: accuracy within the run's tolerance, RMSE, R^2 and MAPE over every scored row,
  over the in-domain rows and over the ``verified`` rows, how many rows got each runtime status,
  and for a calibrated run the measured coverage of its conformal intervals;
* ``predictions.csv``: per row the measured and predicted target, the interval and the status;
* ``calibration.png``: predicted against measured, and binned means against the diagonal.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import pandas as pd
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import MISSING, DictConfig, OmegaConf

from vpals_jax.cli import discard_job_dir, fail
from vpals_jax.cli_errors import CONFIG_ERRORS, fail_config, one_line_config_errors
from vpals_jax.config import SpecSetConfig
from vpals_jax.data.normalizer import MinMaxNormalizer
from vpals_jax.data.tables import DataError, check_values, coerce_numeric, read_table, require_columns
from vpals_jax.runtime.predictor import STATUSES, SafePredictor
from vpals_jax.train.checkpoint import load_checkpoint
from vpals_jax.train.metrics import probability_metrics, regression_metrics

log = logging.getLogger(__name__)


@dataclass
class EvaluateConfig:
    """``conf/evaluate.yaml``: what to score, on what, and how the input maps into the schema."""

    run_dir: str = MISSING
    input: str = MISSING  # CSV or Parquet measurements the run was not trained on
    out_dir: str = MISSING
    # None: as the run was trained (its data.app, train.tolerance)
    app: str | None = None
    tolerance: float | None = None
    # the input is read through the run's data.columns and data.units (false: a file already in
    # the canonical schema), with these entries laid over them (+columns={file_name:schema_name})
    run_mapping: bool = True
    columns: dict[str, str] = field(default_factory=dict)
    units: dict[str, float] = field(default_factory=dict)
    ood_margin: float = 0.05  # as vpals-predict: the training range widened by this share of it
    bins: int = 10  # calibration plot: equal-count bins of the prediction
    # the spec set a row must be proven under to count as verified (spec=<name>); None: the run's
    spec: SpecSetConfig | None = None


def register_configs() -> None:
    cs = ConfigStore.instance()
    cs.store(name="evaluate_schema", node=EvaluateConfig)


def _run_settings(cfg: EvaluateConfig, saved: Mapping[str, Any]) -> dict[str, Any]:
    """The evaluation's app, table mapping and tolerance: given ones over the run's."""
    data, train = saved.get("data") or {}, saved.get("train") or {}
    tolerance = cfg.tolerance if cfg.tolerance is not None else float(train.get("tolerance", 0.05))
    if not (math.isfinite(tolerance) and tolerance > 0):
        raise ValueError(f"tolerance must be a finite number > 0, got {tolerance!r}")
    if cfg.bins < 1:
        raise ValueError(f"bins must be an integer >= 1, got {cfg.bins}")
    return {
        "app": cfg.app if cfg.app is not None else data.get("app"),
        "columns": {**(data.get("columns") or {} if cfg.run_mapping else {}), **cfg.columns},
        "units": {**(data.get("units") or {} if cfg.run_mapping else {}), **cfg.units},
        "tolerance": tolerance,
    }


def read_input(path: str, app: str, columns: dict, units: dict, needed: list[str]) -> pd.DataFrame:
    """The input's rows of ``app`` in the schema's names and units, checked as training data is.

    Rows without a measured target cannot be scored and are left out (counted in the log); rows
    with a missing feature stay, and the predictor marks them ``invalid``.
    """
    df = read_table(path, app, columns, units)
    require_columns(df, needed, path)
    df = coerce_numeric(df, needed, path)
    check_values(df, needed, path)
    target = needed[-1]
    scored = df[np.isfinite(df[target].to_numpy())]
    if len(scored) < len(df):
        log.warning("%s: %d row(s) without a measured %s are left out", path, len(df) - len(scored), target)
    if scored.empty:
        raise DataError(f"{path}: no row of app {app!r} with a measured {target!r} to evaluate on")
    return scored


def score(pred: np.ndarray, y: np.ndarray, normalizer: MinMaxNormalizer, tolerance: float,
          probability: bool = False) -> dict[str, float]:  # fmt: skip
    """The training log's metrics over the rows with a prediction (``train.metrics.regression_metrics``;
    of a classifier run's probability, ``probability_metrics``)."""
    ok = np.isfinite(pred)
    if not ok.any():
        return {"rows": 0}
    if probability:
        return {"rows": int(ok.sum()), **probability_metrics(pred[ok], y[ok])}
    m = regression_metrics(normalizer.transform_y(pred[ok]), normalizer.transform_y(y[ok]), normalizer.y_scale,
                           normalizer.y_min, tolerance)  # fmt: skip
    return {"rows": int(ok.sum()), **{k: m[k] for k in ("accuracy", "rmse", "r2", "mape")}}


def plot_calibration(y: np.ndarray, pred: np.ndarray, status: np.ndarray, bins: int, path: Path, title: str) -> Path:
    """Left: every row, predicted against measured, by status. Right: mean measured against mean
    predicted in equal-count bins of the prediction; a calibrated model stays on the diagonal."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = np.isfinite(pred)
    y, pred, status = y[ok], pred[ok], status[ok]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 4.5))
    for name in dict.fromkeys(status):
        sel = status == name
        ax.scatter(y[sel], pred[sel], s=8, alpha=0.6, label=f"{name} ({sel.sum()})")
    lo, hi = float(min(y.min(), pred.min())), float(max(y.max(), pred.max()))
    order = np.argsort(pred)
    groups = [g for g in np.array_split(order, min(bins, len(order))) if len(g)]
    mean_pred = [float(pred[g].mean()) for g in groups]
    mean_y = [float(y[g].mean()) for g in groups]
    for a, xlabel, ylabel in ((ax, "measured", "predicted"), (bx, "mean predicted (bin)", "mean measured (bin)")):
        a.plot([lo, hi], [lo, hi], color="grey", lw=1, ls="--")
        a.set_xlabel(xlabel)
        a.set_ylabel(ylabel)
    bx.plot(mean_pred, mean_y, marker="o")
    ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def evaluate_run(cfg: EvaluateConfig) -> dict[str, Any]:
    """Hydra-free: score the run on ``cfg.input``, write metrics.json, predictions.csv, calibration.png."""
    _, _, saved, _ = load_checkpoint(cfg.run_dir)
    settings = _run_settings(cfg, saved)
    if not settings["app"]:
        raise ValueError(f"the run {cfg.run_dir} names no data.app; give app=NAME")
    predictor = SafePredictor.load(cfg.run_dir, policy="flag", ood_margin=cfg.ood_margin, spec=cfg.spec)
    norm = predictor.normalizer
    target = norm.target_name
    df = read_input(cfg.input, settings["app"], settings["columns"], settings["units"], [*predictor.features, target])
    out = predictor.predict(df[predictor.features])
    y, pred, status = df[target].to_numpy(np.float64), out.latency, out.status
    classify = predictor.link == "sigmoid"  # a bce run: pred is the probability of class 1
    in_domain = np.isin(status, ("verified", "unverified_region"))
    covered = np.isfinite(out.lower) & np.isfinite(out.upper)
    result = {
        "run_dir": str(cfg.run_dir), "input": str(cfg.input), "app": settings["app"], "target": target,
        "tolerance": settings["tolerance"], "rows": len(df),
        "status_rows": {s: int((status == s).sum()) for s in STATUSES},
        "status_share": {s: float((status == s).mean()) for s in STATUSES},
        "in_domain_share": float(in_domain.mean()),
        "metrics": {
            "all": score(pred, y, norm, settings["tolerance"], classify),
            "in_domain": score(np.where(in_domain, pred, np.nan), y, norm, settings["tolerance"], classify),
            "verified": score(np.where(status == "verified", pred, np.nan), y, norm, settings["tolerance"], classify),
        },
        # conformal intervals of a calibrated run: does the stated coverage hold on data from elsewhere?
        "intervals": None if not covered.any() else {
            "rows": int(covered.sum()), "stated_coverage": predictor.coverage,
            "measured_coverage": float(np.mean((out.lower[covered] <= y[covered]) & (y[covered] <= out.upper[covered]))),
            "mean_width": float(np.mean(out.upper[covered] - out.lower[covered])),
        },
    }  # fmt: skip
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = {"row": df.index, "measured": y, "predicted": pred, "lower": out.lower, "upper": out.upper, "status": status}
    pd.DataFrame(rows).to_csv(out_dir / "predictions.csv", index=False)
    if np.isfinite(pred).any():
        plot_calibration(y, pred, status, cfg.bins, out_dir / "calibration.png",
                         f"{settings['app']}: {Path(cfg.input).name} ({target})")  # fmt: skip
    (out_dir / "metrics.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def summary(result: dict[str, Any]) -> str:
    """The metrics and the status counts as a small table."""
    head = f"{'rows':10} {'n':>6} {'accuracy':>9} {'rmse':>10} {'r2':>8} {'mape_%':>8}"
    lines = [head, "-" * len(head)]
    for part, m in result["metrics"].items():
        if m["rows"]:
            lines.append(
                f"{part:10} {m['rows']:6d} {m['accuracy']:9.3f} {m['rmse']:10.4g} {m['r2']:8.3f} {m['mape']:8.2f}"
            )
        else:
            lines.append(f"{part:10} {0:6d}")
    lines.append("statuses: " + ", ".join(f"{s} {n}" for s, n in result["status_rows"].items()))
    if iv := result["intervals"]:
        lines.append(f"intervals: {iv['measured_coverage']:.3f} of {iv['rows']} rows covered (stated "
                     f"{iv['stated_coverage']:.3f}), mean width {iv['mean_width']:.4g}")  # fmt: skip
    return "\n".join(lines)


register_configs()


@one_line_config_errors("vpals-evaluate")
@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    try:
        typed: EvaluateConfig = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(EvaluateConfig), cfg))  # type: ignore[assignment]
        result = evaluate_run(typed)
    except CONFIG_ERRORS as e:
        discard_job_dir(HydraConfig.get().runtime.output_dir)
        fail_config("vpals-evaluate", e)
    except (ValueError, FileNotFoundError, OSError) as e:  # DataError and checkpoint errors are ValueErrors
        discard_job_dir(HydraConfig.get().runtime.output_dir)
        fail("vpals-evaluate", e)
    print(summary(result))
    print(f"written to {typed.out_dir}: metrics.json, predictions.csv, calibration.png")


if __name__ == "__main__":
    sys.exit(main())
