"""Real data: procfs/cgroup readers (system and per-cgroup PSI, CPU, memory, I/O) and the
co-location workload harness that writes the canonical schema (``python -m vpals_jax.collector``).

An operational tool, not part of the dataset layer: it imports ``vpals_jax.data.schema`` and
``vpals_jax.data`` never imports it. The readers are exported here for library use (the live
reader of ``vpals_jax.runtime``). See docs/collect.md."""

from vpals_jax.collector.cgroups import Cgroup, CgroupSnapshot, Layout, detect_layout
from vpals_jax.collector.procfs import (
    SystemSnapshot,
    parse_meminfo,
    parse_pressure,
    parse_proc_stat,
    psi_available,
    read_system,
)
from vpals_jax.collector.window import Tick, delta, window_metrics

__all__ = [
    "Cgroup",
    "CgroupSnapshot",
    "Layout",
    "SystemSnapshot",
    "Tick",
    "delta",
    "detect_layout",
    "parse_meminfo",
    "parse_pressure",
    "parse_proc_stat",
    "psi_available",
    "read_system",
    "window_metrics",
]
