"""stress-ng co-runners and how their configured intensity maps to the schema's fractions.

The co-runner lives in a sibling cgroup of the application. Its intensity is one ``level`` in
(0, 1]: the co-runner's CPU quota is ``level * ncpu`` cores (a fraction of the machine, as the
schema's ``corunner_cpu``; it is further capped by the cores it is pinned to), and the
kind-specific knob scales with the same level (``vm``: ``level * mem_budget_mb`` of touched memory;
``hdd``: the quota bounds how fast it can issue synchronous writes). The worker count barely
changes the share a sibling cgroup gets, so it stays at one per pinned core.

``corunner_cpu``/``corunner_mem``/``corunner_io`` are the configured fractions, not measurements;
``corunner_cpu_cores`` (measured) is an extra column written by the collector.
"""

from __future__ import annotations

KINDS = ("cpu", "vm", "cache", "stream", "hdd", "mixed")


def fractions(kind: str, level: float) -> dict[str, float]:
    """Schema ``corunner_cpu/mem/io`` for a configured kind and level."""
    if kind == "none" or level <= 0:
        return {"corunner_cpu": 0.0, "corunner_mem": 0.0, "corunner_io": 0.0}
    mem = level if kind in ("vm", "cache", "stream", "mixed") else 0.0
    io = level if kind in ("hdd", "mixed") else 0.0
    return {"corunner_cpu": level, "corunner_mem": mem, "corunner_io": io}


def stress_ng_argv(
    kind: str,
    level: float,
    *,
    workers: int,
    timeout_s: float,
    temp_dir: str,
    mem_budget_mb: float = 2048.0,
    hdd_bytes_mb: int = 256,
) -> list[str]:
    if kind not in KINDS:
        raise ValueError(f"unknown co-runner kind {kind!r}; choose from {KINDS}")
    w = max(1, int(workers))
    argv = ["stress-ng", "--timeout", f"{max(1, int(timeout_s))}s", "--temp-path", temp_dir, "--quiet"]
    vm_mb = max(16, int(level * mem_budget_mb))
    if kind == "cpu":
        argv += ["--cpu", str(w), "--cpu-load", "100"]
    elif kind == "vm":
        argv += ["--vm", str(w), "--vm-bytes", f"{max(16, vm_mb // w)}M", "--vm-keep"]
    elif kind == "cache":
        argv += ["--cache", str(w)]
    elif kind == "stream":
        argv += ["--stream", str(w)]
    elif kind == "hdd":
        argv += ["--hdd", str(w), "--hdd-bytes", f"{hdd_bytes_mb}M", "--hdd-opts", "dsync"]
    elif kind == "mixed":
        argv += [
            "--cpu",
            "1",
            "--cpu-load",
            "100",
            "--vm",
            "1",
            "--vm-bytes",
            f"{vm_mb}M",
            "--vm-keep",
            "--hdd",
            "1",
            "--hdd-bytes",
            f"{hdd_bytes_mb}M",
            "--hdd-opts",
            "dsync",
        ]
    return argv
