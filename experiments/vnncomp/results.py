"""``instances.csv`` in, ``results.csv`` out: the two files of a VNN-COMP benchmark run."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd

# a VNN-LIB file asserts a violation: a proof that the property holds is "unsat"
VNNCOMP_RESULT = {"VERIFIED": "unsat", "FALSIFIED": "sat", "TIMEOUT": "timeout", "UNKNOWN": "unknown",
                  "ERROR": "error"}  # fmt: skip
COLUMNS = ["index", "onnx", "vnnlib", "verifier", "result", "timeout_s", "time_s", "startup_s", "prepare_s", "run_s",
           "worst_margin", "counterexample", "cex_check", "message"]  # fmt: skip


def read_instances(path: Path) -> list[tuple[Path, Path, float]]:
    """Rows ``(onnx, vnnlib, timeout)``; relative paths are relative to the csv's folder (VNN-COMP's
    layout). ValueError names the line of a malformed row."""
    rows = []
    with path.open(newline="") as f:
        for k, rec in enumerate(csv.reader(f), start=1):
            if not rec or not "".join(rec).strip():
                continue
            if len(rec) != 3:
                raise ValueError(f"{path}, line {k}: expected onnx,vnnlib,timeout, got {len(rec)} fields")
            try:
                timeout = float(rec[2])
            except ValueError:
                raise ValueError(f"{path}, line {k}: timeout {rec[2]!r} is not a number") from None
            rows.append((path.parent / rec[0].strip(), path.parent / rec[1].strip(), timeout))
    if not rows:
        raise ValueError(f"{path}: no instances")
    return rows


def collect(jobs_dir: Path, out_csv: Path) -> pd.DataFrame:
    """Gather the jobs' ``result.json`` into ``results.csv``, in instance order."""
    rows = [json.loads(p.read_text()) for p in jobs_dir.glob("*/result.json")]
    if not rows:
        raise FileNotFoundError(f"no result.json under {jobs_dir}")
    df = pd.DataFrame(rows).sort_values("index").reindex(columns=COLUMNS)
    df.to_csv(out_csv, index=False)
    return df
