"""Smoke run on the real host: a CPU hog in a child cgroup must show cgroup cpu ``some`` > 50 %.

Two busy-looping processes pinned to one CPU in their own cgroup: while one runs the other waits,
so the group's CPU "some" stall share is close to 100 % of the window. Needs the real cgroups, so it
is a ``services`` test (``make test-collect``); skipped with the reason where PSI, per-cgroup PSI or
cgroup writes are not available (non-root, v1-only layouts, psi=0).
"""

from __future__ import annotations

import os
import sys
import time

import pytest

from vpals_jax.collector.cgroups import Cgroup, detect_layout, self_cgroup_writable
from vpals_jax.collector.procfs import psi_available, read_system
from vpals_jax.collector.procs import ProcessManager, kill_pids
from vpals_jax.collector.window import Tick, window_metrics

HOG = "while True: pass"


def _skip_reason() -> str | None:
    if not sys.platform.startswith("linux"):
        return "not Linux"
    if not psi_available("/proc"):
        return "/proc/pressure is not available (kernel without PSI or booted with psi=0)"
    layout = detect_layout("/sys/fs/cgroup")
    if not layout.has_cgroup_psi:
        return f"no per-cgroup PSI files (cgroup layout {layout.kind!r}: v1-only or no cgroup2 mount)"
    if layout.owner("cpu") is None:
        return "no cpu controller"
    if os.geteuid() != 0:
        return "cgroup writes need root"
    ok, why = self_cgroup_writable(layout)
    if not ok:
        return f"cgroups not writable here: {why}"
    return None


@pytest.mark.services
@pytest.mark.slow
def test_cpu_hog_in_child_cgroup_shows_cpu_pressure():
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    layout = detect_layout("/sys/fs/cgroup")
    root = Cgroup(layout, f"vpals-smoke-{os.getpid()}")
    hog = Cgroup(layout, f"vpals-smoke-{os.getpid()}/hog")
    pm = ProcessManager()
    cpu = min(os.sched_getaffinity(0))
    try:
        root.create()
        hog.create()
        hog.set_cpu_quota(None)
        for i in range(2):
            pm.spawn(f"hog{i}", [sys.executable, "-c", HOG], procs_files=hog.procs_files(), cpus=[cpu])
        time.sleep(1.0)

        def tick():
            return Tick(time.monotonic(), time.time(), read_system("/proc"), {"app": hog.read()})

        a = tick()
        time.sleep(3.0)
        b = tick()
        m = window_metrics(a, b)
        print({k: round(v, 2) for k, v in m.items() if "psi_cpu" in k or k in ("cpu_usage_cores", "window_s")})
        assert m["cg_psi_cpu_some_pct"] > 50.0, m
        assert 0.05 < m["cpu_usage_cores"] <= 1.05, m
        assert m["cg_psi_cpu_some_pct"] >= m["cg_psi_cpu_full_pct"]
    finally:
        pm.stop_all()
        kill_pids(hog.member_pids())
        errs = hog.remove() + root.remove()
    assert errs == []
    assert not any(d.exists() for d in hog.dirs() + root.dirs())
