"""Live canonical-schema rows from this machine, for ``vpals-predict --watch``.

Reuses the collector's readers (``vpals_jax.collector``), so a served model sees features
computed exactly as its training data were: windowed PSI from ``total`` deltas over the tick.
Without a cgroup, the whole machine stands in for the task: the ``cg_`` columns repeat the
system-wide ones, usage comes from ``/proc/stat`` and ``/proc/meminfo``, and the quota/limit
default to the machine's size.
"""

from __future__ import annotations

import math
import time

from vpals_jax.collector.cgroups import Cgroup, detect_layout
from vpals_jax.collector.procfs import read_system
from vpals_jax.collector.window import Tick, window_metrics
from vpals_jax.data import schema


class LiveReader:
    def __init__(
        self,
        cgroup: str | None = None,
        cpu_quota_cores: float | None = None,
        mem_limit_mb: float | None = None,
        proc_root: str = "/proc",
        cgroup_root: str = "/sys/fs/cgroup",
    ):
        self.proc_root = proc_root
        self.group = Cgroup(detect_layout(cgroup_root), cgroup) if cgroup else None
        self.cpu_quota_cores, self.mem_limit_mb = cpu_quota_cores, mem_limit_mb
        self._last = self._tick()

    def _tick(self) -> Tick:
        groups = {"app": self.group.read()} if self.group else {}
        return Tick(time.monotonic(), time.time(), read_system(self.proc_root), groups)

    def read(self) -> dict[str, float]:
        """The window since the previous call, as one canonical-schema row."""
        now = self._tick()
        row = window_metrics(self._last, now, app_group="app")
        self._last = now
        if self.group is None:
            for res in schema.PSI_RESOURCES:
                for level in schema.PSI_LEVELS:
                    row[schema.psi_column("cg", res, level)] = row[schema.psi_column("sys", res, level)]
            mem = now.system.meminfo
            row["cpu_usage_cores"] = row.get("sys_cpu_busy_cores", math.nan)
            row["mem_usage_mb"] = mem.get("MemTotal", math.nan) - mem.get("MemAvailable", math.nan)
            row["cpu_throttled_pct"] = 0.0
            row["cpu_quota_cores"] = row.get("ncpu", math.nan)
            row["mem_limit_mb"] = mem.get("MemTotal", math.nan)
        if self.cpu_quota_cores is not None:
            row["cpu_quota_cores"] = self.cpu_quota_cores
        if self.mem_limit_mb is not None:
            row["mem_limit_mb"] = self.mem_limit_mb
        return row
