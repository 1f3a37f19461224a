"""The canonical schema: one row = one measurement window of one application.

Every source (the synthetic generator, the PSI collector, user CSV/Parquet files) produces
these columns, so models, specs and the runtime predictor are written once. Units are in the
column names: ``_pct`` is a percentage in [0, 100], ``_cores`` CPU cores, ``_mb`` mebibytes,
``_ms`` milliseconds, ``_rps`` requests per second.

PSI columns are *windowed* percentages: ``100 * delta(total_us) / window_us`` over exactly the
measurement window, computed from the ``total`` counters of ``/proc/pressure/*`` (``sys_``) and
of the application's cgroup ``*.pressure`` files (``cg_``). ``some >= full`` always holds.
Kernel ``avg10``/``avg60`` lag the window by seconds, so they are optional extras only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Kind = Literal["feature", "target", "meta", "extra"]


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    unit: str
    description: str
    # Operator knowledge: +1 latency must not fall when this rises, -1 must not rise, 0 no claim.
    latency_direction: int = 0
    dtype: str = "float"


PSI_RESOURCES = ("cpu", "mem", "io")
PSI_LEVELS = ("some", "full")


def psi_column(scope: str, resource: str, level: str) -> str:
    """``sys_psi_cpu_some_pct`` and friends; ``scope`` is ``sys`` or ``cg``."""
    return f"{scope}_psi_{resource}_{level}_pct"


def _psi_columns() -> list[Column]:
    cols = []
    for scope, where in (("sys", "system-wide /proc/pressure"), ("cg", "the application's cgroup")):
        for res in PSI_RESOURCES:
            for level in PSI_LEVELS:
                cols.append(
                    Column(
                        psi_column(scope, res, level),
                        "feature",
                        "%",
                        f"{level} {res} pressure stall share of the window, {where}",
                        latency_direction=+1,
                    )
                )
    return cols


COLUMNS: tuple[Column, ...] = (
    Column("app", "meta", "", "application name (mindspore, nginx, solr, redis, mysql, ...)", dtype="str"),
    Column("timestamp_s", "meta", "s", "window end, seconds since the epoch (synthetic: index)"),
    Column("window_s", "meta", "s", "length of the measurement window"),
    *_psi_columns(),
    Column("cpu_usage_cores", "feature", "cores", "CPU time used by the application's cgroup per second"),
    Column("mem_usage_mb", "feature", "MiB", "memory charged to the application's cgroup"),
    Column(
        "cpu_throttled_pct", "feature", "%", "share of CFS periods in which the cgroup was throttled",
        latency_direction=+1,
    ),
    Column("cpu_quota_cores", "feature", "cores", "configured CPU quota of the application", latency_direction=-1),
    Column("mem_limit_mb", "feature", "MiB", "configured memory limit of the application", latency_direction=-1),
    Column("corunner_kind", "meta", "", "co-runner type: none, cpu, vm, cache, stream, hdd or mixed", dtype="str"),
    Column("corunner_cpu", "meta", "0-1", "co-runner CPU demand as a fraction of the machine"),
    Column("corunner_mem", "meta", "0-1", "co-runner memory-bandwidth/capacity demand, fraction"),
    Column("corunner_io", "meta", "0-1", "co-runner I/O demand, fraction of device bandwidth"),
    Column("latency_p50_ms", "target", "ms", "median request latency in the window"),
    Column("latency_p99_ms", "target", "ms", "99th percentile request latency in the window"),
    Column("throughput_rps", "target", "req/s", "completed requests per second in the window"),
)

COLUMN_BY_NAME: dict[str, Column] = {c.name: c for c in COLUMNS}
FEATURES: tuple[str, ...] = tuple(c.name for c in COLUMNS if c.kind == "feature")
TARGETS: tuple[str, ...] = tuple(c.name for c in COLUMNS if c.kind == "target")
META: tuple[str, ...] = tuple(c.name for c in COLUMNS if c.kind == "meta")
REQUIRED: tuple[str, ...] = ("app", *FEATURES, *TARGETS)
DEFAULT_TARGET = "latency_p50_ms"

# A collector reads the counters and the window's clock a few milliseconds apart, so a window of
# full stall can measure slightly above 100 % (100.25 in data/real/redis.csv); more is an error.
PCT_SLACK = 1.0
# The values a measurement can take, by unit: a stall, throttle or demand share is a fraction of
# the window or machine; cores, sizes, durations and rates are never negative.
UNIT_RANGES: dict[str, tuple[float, float]] = {
    "%": (0.0, 100.0 + PCT_SLACK), "0-1": (0.0, 1.0),
    "cores": (0.0, math.inf), "MiB": (0.0, math.inf), "ms": (0.0, math.inf), "s": (0.0, math.inf),
    "req/s": (0.0, math.inf),
}  # fmt: skip


def physical_range(name: str) -> tuple[float, float]:
    """``(lowest, highest)`` value column ``name`` can physically take; unbounded if not in the schema."""
    col = COLUMN_BY_NAME.get(name)
    return UNIT_RANGES.get(col.unit, (-math.inf, math.inf)) if col else (-math.inf, math.inf)


def schema_markdown() -> str:
    """The schema as a markdown table (docs and data cards are generated from this)."""
    rows = ["| column | kind | unit | latency direction | description |", "|---|---|---|---|---|"]
    for c in COLUMNS:
        d = {1: "non-decreasing", -1: "non-increasing", 0: ""}[c.latency_direction]
        rows.append(f"| `{c.name}` | {c.kind} | {c.unit} | {d} | {c.description} |")
    return "\n".join(rows)
