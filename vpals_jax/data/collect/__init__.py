"""Real data: procfs/cgroup readers (system and per-cgroup PSI, CPU, memory, I/O) and the
co-location workload harness that writes the canonical schema. See docs/collect.md."""

from vpals_jax.data.collect.cgroups import Cgroup, CgroupSnapshot, Layout, detect_layout
from vpals_jax.data.collect.procfs import (
    SystemSnapshot,
    parse_meminfo,
    parse_pressure,
    parse_proc_stat,
    psi_available,
    read_system,
)
from vpals_jax.data.collect.window import Tick, delta, window_metrics

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
