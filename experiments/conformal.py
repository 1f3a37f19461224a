"""Calibrated intervals and the drift alarm, measured: coverage, width and alarm delay (issue 15).

    python -m experiments.conformal                                   # 5 synthetic apps x {random, ood} + 3 real
    python -m experiments.conformal --apps nginx --real none --epochs 5

Per trained run (normal loop, short) and per calibration method (split, normalized, mondrian):
empirical coverage of the nominal 90 % intervals on the test rows, mean interval width relative
to the target's training range, and the drift alarm (``vpals_jax.runtime.drift``, threshold 100):
rows of a fresh in-distribution stream (``--stream`` rows, synthetic only) that carry an alarm,
and for the OOD split the number of rows after the shift (``--lead`` in-distribution rows, then
the OOD test rows) at which the alarm fires. The real tables have no fresh stream: their alarm
column is for their own (exchangeable) test rows. Writes ``results.csv`` and ``table.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from vpals_jax.config import CalibrationConfig, Config
from vpals_jax.convert import load_network
from vpals_jax.data import synthetic
from vpals_jax.data.dataset import load_dataset
from vpals_jax.runtime.drift import DriftMonitor
from vpals_jax.train.calibrate import fit_calibration
from vpals_jax.train.trainer import as_config, run_training

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("split", "normalized", "mondrian")


def predict(net, norm, x: np.ndarray) -> np.ndarray:
    return norm.inverse_y(net.forward(norm.transform_x(x))[:, 0])


def alarm_row(monitor: DriftMonitor, net, norm, x: np.ndarray, y: np.ndarray) -> int | None:
    """Index of the first alarmed row of the stream (None: no alarm)."""
    drift = monitor.observe(x, predict(net, norm, x), y)["drift"].to_numpy()
    hits = np.flatnonzero(drift == "alarm")
    return int(hits[0]) if len(hits) else None


def fresh_stream(cfg: Config, n: int, features: list[str], target: str, ood: bool) -> tuple[np.ndarray, np.ndarray]:
    """``n`` new in-distribution rows of the app (another seed); for an OOD run, from its training side only."""
    df = synthetic.generate(cfg.data.app, 3 * n if ood else n, seed=cfg.data.seed + 1000)
    if ood:
        df = df[synthetic.interference_level(df) <= cfg.data.ood_threshold]
    df = df.iloc[:n]
    return df[features].to_numpy(np.float64), df[target].to_numpy(np.float64)


def measure(label: str, split: str, overrides: dict[str, Any], out: Path, stream: int, lead: int) -> list[dict]:
    cfg = as_config(OmegaConf.merge(OmegaConf.structured(Config), {"run_dir": str(out / "runs" / f"{label}_{split}"),
                                                                     **overrides}))  # fmt: skip
    summary = run_training(cfg)
    data = load_dataset(cfg.data)
    net, norm, _ = load_network(cfg.run_dir)
    rows = []
    for method in METHODS:
        cal = fit_calibration(CalibrationConfig(method=method), net, norm, data.x_cal, data.y_cal)
        iv = cal.interval(data.x_test, predict(net, norm, data.x_test), norm)
        inside = (data.y_test >= iv[:, 0]) & (data.y_test <= iv[:, 1])
        row = {"data": label, "split": split, "method": method, "n_cal": len(data.x_cal), "n_test": len(data.x_test),
               "test_accuracy": summary["test"]["accuracy"], "coverage": float(inside.mean()),
               "width_rel": float(np.mean(iv[:, 1] - iv[:, 0]) / norm.y_scale)}  # fmt: skip
        if cfg.data.source == "synthetic":
            xs, ys = fresh_stream(cfg, stream, data.feature_names, data.target_name, split == "ood")
            calm = DriftMonitor(cal)
            first = alarm_row(calm, net, norm, xs, ys)
            row.update(id_stream_rows=len(xs), id_alarm_at=first)
            if split == "ood":
                shifted = DriftMonitor(cal)
                x = np.vstack([xs[:lead], data.x_test])
                y = np.concatenate([ys[:lead], data.y_test])
                at = alarm_row(shifted, net, norm, x, y)
                row["rows_after_shift"] = None if at is None else at - lead
        else:
            row.update(id_stream_rows=len(data.x_test), id_alarm_at=alarm_row(DriftMonitor(cal), net, norm,
                                                                               data.x_test, data.y_test))  # fmt: skip
        rows.append(row)
        log.info("%s", row)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="experiments.conformal", description=__doc__.splitlines()[0])
    ap.add_argument("--apps", default=",".join(synthetic.APPS))
    ap.add_argument("--real", default="nginx,redis,mariadb", help="apps of data/real/<app>.csv, or none")
    ap.add_argument("--n-samples", type=int, default=6000)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--stream", type=int, default=10000, help="rows of the fresh in-distribution stream")
    ap.add_argument("--lead", type=int, default=1000, help="in-distribution rows before the OOD shift")
    ap.add_argument("--out", default="results/conformal")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    out = Path(args.out)
    if (out / "runs").exists():
        print(f"experiments.conformal: error: {out / 'runs'} exists; choose another --out", file=sys.stderr)
        return 2
    train = {"epochs": args.epochs, "progress": False}
    rows: list[dict] = []
    for app in [a for a in args.apps.split(",") if a]:
        for split in ("random", "ood"):
            data = {"app": app, "n_samples": args.n_samples, "split": split, "calibration_fraction": 0.1}
            rows += measure(app, split, {"data": data, "train": train}, out, args.stream, args.lead)
    for app in [a for a in args.real.split(",") if a and a != "none"]:
        data = {"source": "table", "app": app, "path": str(ROOT / "data" / "real" / f"{app}.csv"),
                "calibration_fraction": 0.1}
        rows += measure(f"real_{app}", "random", {"data": data, "train": {**train, "batch_size": 32}}, out, args.stream,
                        args.lead)  # a few hundred rows per app
    table = pd.DataFrame(rows)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "results.csv", index=False)
    text = table.to_markdown(index=False, floatfmt=".3f")
    (out / "table.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
