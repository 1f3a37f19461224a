"""Windowed metrics from two snapshots: exactly the interval between them, nothing lagged.

PSI is ``100 * delta(total_us) / window_us``. A negative delta of any cumulative counter (the group
was recreated, a counter wrapped) becomes NaN rather than a bogus value. Kernel ``avg10``/``avg60``
at the window end are kept as extra columns only (they lag by seconds and carry over between points).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from vpals_jax.collector.cgroups import CgroupSnapshot
from vpals_jax.collector.procfs import SystemSnapshot, stat_busy_ticks, stat_total_ticks, user_hz
from vpals_jax.data.schema import PSI_LEVELS, PSI_RESOURCES, psi_column

MIB = 1024.0 * 1024.0
NAN = math.nan


def delta(a: float, b: float) -> float:
    """``b - a``; NaN when either is missing or the counter went backwards."""
    if a is None or b is None or math.isnan(a) or math.isnan(b):
        return NAN
    d = b - a
    return NAN if d < 0 else d


def psi_pct(a: dict | None, b: dict | None, res: str, level: str, window_us: float) -> float:
    if not a or not b or res not in a or res not in b:
        return NAN
    d = delta(a[res][level]["total"], b[res][level]["total"])
    return 100.0 * d / window_us


@dataclass
class Tick:
    """One collector tick: monotonic and wall clocks, the system files and every group."""

    mono: float
    wall: float
    system: SystemSnapshot
    groups: dict[str, CgroupSnapshot] = field(default_factory=dict)


def window_metrics(
    a: Tick,
    b: Tick,
    *,
    app_group: str = "app",
    hz: float | None = None,
) -> dict[str, float]:
    """All window columns: the schema's PSI/usage/throttling/memory features plus extras.

    ``cpu_quota_cores`` and ``mem_limit_mb`` are read back from the app group (an unlimited value
    is reported as inf; the harness replaces it by the machine size). Extras: ``sys_psi_*_avg10``/
    ``_avg60``, ``cg_psi_*_avg10``/``_avg60``, ``cg_throttled_ms``, ``cg_io_read_mb_s``/
    ``cg_io_write_mb_s``, ``cg_mem_anon_mb``/``cg_mem_file_mb``, ``<group>_cpu_cores`` and
    ``<group>_psi_cpu_some_pct`` for every other group, ``sys_cpu_busy_cores``, ``steal_pct``,
    ``unattributed_cpu_cores``/``unattributed_cpu_pct`` (CPU time of the machine not used by any of
    the experiment's groups: other tenants, kernel threads, the collector itself), ``ncpu``,
    ``sys_mem_available_mb``.
    """
    hz = hz or user_hz()
    window_s = b.mono - a.mono
    if window_s <= 0:
        raise ValueError("window must be positive")
    wus = window_s * 1e6
    row: dict[str, float] = {"timestamp_s": b.wall, "window_s": window_s}

    for res in PSI_RESOURCES:
        for level in PSI_LEVELS:
            row[psi_column("sys", res, level)] = psi_pct(a.system.psi, b.system.psi, res, level, wus)
    ga, gb = a.groups.get(app_group), b.groups.get(app_group)
    for res in PSI_RESOURCES:
        for level in PSI_LEVELS:
            row[psi_column("cg", res, level)] = (
                psi_pct(ga.psi, gb.psi, res, level, wus) if ga is not None and gb is not None else NAN
            )
    # kernel running averages at the window end: extras only
    for scope, psi in (("sys", b.system.psi), ("cg", gb.psi if gb is not None else {})):
        for res in PSI_RESOURCES:
            for level in PSI_LEVELS:
                for avg in ("avg10", "avg60"):
                    v = psi.get(res, {}).get(level, {}).get(avg, NAN) if psi else NAN
                    row[f"{scope}_psi_{res}_{level}_{avg}"] = v

    if ga is not None and gb is not None:
        row["cpu_usage_cores"] = delta(ga.usage_us, gb.usage_us) / wus
        row["mem_usage_mb"] = 0.5 * (ga.mem_bytes + gb.mem_bytes) / MIB
        dp = delta(ga.nr_periods, gb.nr_periods)
        dt = delta(ga.nr_throttled, gb.nr_throttled)
        row["cpu_throttled_pct"] = NAN if math.isnan(dp) or math.isnan(dt) else (100.0 * dt / dp if dp > 0 else 0.0)
        row["cg_throttled_ms"] = delta(ga.throttled_us, gb.throttled_us) / 1000.0
        row["cpu_quota_cores"] = gb.quota_cores
        row["mem_limit_mb"] = gb.mem_limit_bytes / MIB
        row["cg_io_read_mb_s"] = delta(ga.io.get("rbytes", NAN), gb.io.get("rbytes", NAN)) / MIB / window_s
        row["cg_io_write_mb_s"] = delta(ga.io.get("wbytes", NAN), gb.io.get("wbytes", NAN)) / MIB / window_s
        row["cg_mem_anon_mb"] = gb.mem_stat.get("anon", NAN) / MIB
        row["cg_mem_file_mb"] = gb.mem_stat.get("file", NAN) / MIB
    else:
        for k in (
            "cpu_usage_cores",
            "mem_usage_mb",
            "cpu_throttled_pct",
            "cg_throttled_ms",
            "cpu_quota_cores",
            "mem_limit_mb",
            "cg_io_read_mb_s",
            "cg_io_write_mb_s",
            "cg_mem_anon_mb",
            "cg_mem_file_mb",
        ):
            row[k] = NAN

    attributed = 0.0 if math.isnan(row["cpu_usage_cores"]) else row["cpu_usage_cores"]
    for name in sorted(b.groups):
        if name == app_group or name not in a.groups:
            continue
        ca, cb = a.groups[name], b.groups[name]
        cores = delta(ca.usage_us, cb.usage_us) / wus
        row[f"{name}_cpu_cores"] = cores
        row[f"{name}_psi_cpu_some_pct"] = psi_pct(ca.psi, cb.psi, "cpu", "some", wus)
        if not math.isnan(cores):
            attributed += cores

    sa, sb = a.system.stat, b.system.stat
    if sa and sb:
        busy = delta(stat_busy_ticks(sa), stat_busy_ticks(sb)) / hz / window_s
        total = delta(stat_total_ticks(sa), stat_total_ticks(sb))
        steal = delta(sa["steal"], sb["steal"])
        ncpu = sb.get("ncpu", NAN)
        row["sys_cpu_busy_cores"] = busy
        row["steal_pct"] = 100.0 * steal / total if total and total > 0 else NAN
        row["unattributed_cpu_cores"] = busy - attributed
        row["unattributed_cpu_pct"] = 100.0 * (busy - attributed) / ncpu if ncpu else NAN
        row["ncpu"] = ncpu
    else:
        for k in ("sys_cpu_busy_cores", "steal_pct", "unattributed_cpu_cores", "unattributed_cpu_pct", "ncpu"):
            row[k] = NAN
    row["sys_mem_available_mb"] = b.system.meminfo.get("MemAvailable", NAN)
    return row
