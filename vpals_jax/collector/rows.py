"""The columns of a measured row and the CSV file that is both the output and the resume log.

A row holds every column of the canonical schema (``vpals_jax.data.schema``) first, then the
harness's extras (``EXTRA_COLUMNS``, documented in docs/collect.md). Each row is appended and
fsynced as soon as its point is measured, so an interrupted sweep loses at most the point in flight.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from vpals_jax.data.schema import COLUMNS

SCHEMA_COLUMNS = tuple(c.name for c in COLUMNS)

#: extra columns the harness adds after the schema columns (documented in docs/collect.md)
EXTRA_COLUMNS = (
    "point_id",
    "run_id",
    "baseline",
    "corunner_level",
    "noisy",
    "latency_avg_ms",
    "bench_requests",
    "bench_errors",
    "client_rc",
    "warmup_s",
    "layout",
    "corunner_cpu_cores",
    "corunner_psi_cpu_some_pct",
    "client_cpu_cores",
    "client_psi_cpu_some_pct",
    "sys_cpu_busy_cores",
    "steal_pct",
    "unattributed_cpu_cores",
    "unattributed_cpu_pct",
    "ncpu",
    "sys_mem_available_mb",
    "cg_throttled_ms",
    "cg_io_read_mb_s",
    "cg_io_write_mb_s",
    "cg_mem_anon_mb",
    "cg_mem_file_mb",
    *(
        f"{s}_psi_{r}_{lv}_{a}"
        for s in ("sys", "cg")
        for r in ("cpu", "mem", "io")
        for lv in ("some", "full")
        for a in ("avg10", "avg60")
    ),
)
ALL_COLUMNS = SCHEMA_COLUMNS + EXTRA_COLUMNS


def finished_points(csv_path: Path) -> set[int]:
    """The ``point_id`` s already in the file: a resumed sweep skips them."""
    if not csv_path.exists() or csv_path.stat().st_size == 0:
        return set()
    try:
        df = pd.read_csv(csv_path, usecols=["point_id"])
    except (ValueError, pd.errors.EmptyDataError):
        return set()
    return {int(x) for x in df["point_id"].dropna()}


def append_row(csv_path: Path, row: dict) -> None:
    """Append one row (schema columns first); the header is written once and kept on resume."""
    if csv_path.exists() and csv_path.stat().st_size > 0:
        header = pd.read_csv(csv_path, nrows=0).columns.tolist()
    else:
        header = list(ALL_COLUMNS) + sorted(k for k in row if k not in ALL_COLUMNS)
    df = pd.DataFrame([{k: row.get(k, np.nan) for k in header}], columns=header)
    write_header = not (csv_path.exists() and csv_path.stat().st_size > 0)
    with open(csv_path, "a") as fh:
        df.to_csv(fh, header=write_header, index=False)
        fh.flush()
        os.fsync(fh.fileno())
