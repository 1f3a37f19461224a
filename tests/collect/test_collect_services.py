"""The collector with the real tools on the real host: redis, nginx, mariadb, stress-ng and cgroups.

Marked ``services``, so ``make test`` leaves these out; ``make test-collect`` installs the packages
and runs them. A missing tool fails (that target installs them, so it means a broken install); what
no package provides (root, writable cgroups) skips with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest

from vpals_jax.collector import harness as H
from vpals_jax.collector.apps import APPS, make_app
from vpals_jax.collector.cgroups import detect_layout, self_cgroup_writable

pytestmark = pytest.mark.services


def _host_or_skip() -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("not Linux")
    if os.geteuid() != 0:
        pytest.skip("cgroup writes need root")
    ok, why = self_cgroup_writable(detect_layout("/sys/fs/cgroup"))
    if not ok:
        pytest.skip(f"cgroups not writable here: {why}")


def _processes_naming(text: str) -> list[str]:
    """Command lines of running processes that mention ``text`` (servers and stress-ng name their tmp dir)."""
    out = []
    for d in Path("/proc").iterdir():
        try:
            line = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in line and d.name != str(os.getpid()):
            out.append(f"{d.name}: {line}")
    return out


@pytest.mark.slow
@pytest.mark.parametrize("app", sorted(APPS))
def test_real_collection(app, work):
    _host_or_skip()
    missing = [t for t in [*make_app(app).required_tools(), "stress-ng"] if shutil.which(t) is None]
    assert not missing, f"missing tools {missing}; `make test-collect` installs them"
    cpus = sorted(os.sched_getaffinity(0))
    cfg = {
        "app": app,
        "points": 3,  # baseline, cpu co-runner, baseline
        "baseline_every": 2,
        "out": str(work / "out"),
        "tmp_dir": str(work),
        "warmup_s": 0.5,
        "window_s": 1.0,
        "app_cpus": [cpus[0]],
        "corunner_cpus": [cpus[0]],
        "client_cpus": [cpus[-1]],
        "sweep": {
            "app_quota_cores": [0.5],
            "mem_limit_mb": [1024],
            "corunner_kinds": ["cpu"],
            "corunner_levels": [0.5],
        },
        "apps": {"mariadb": {"tables": 1, "table_size": 1000}},
    }
    s = H.run(cfg, progress=False)
    assert (s["written"], s["failed"], s["exit"]) == (3, 0, "normal"), s
    df = pd.read_csv(work / "out" / f"{app}.csv")
    assert df.baseline.tolist() == [True, False, True]
    assert (df.throughput_rps > 0).all() and (df.latency_p50_ms > 0).all()
    assert (df.latency_p99_ms >= df.latency_p50_ms).all()
    assert (df.cpu_usage_cores > 0).all()  # the server's cgroup is the one measured
    assert df.corunner_cpu_cores[1] > 0 and df.corunner_cpu_cores[[0, 2]].fillna(0).eq(0).all()
    meta = json.loads((work / "out" / f"{app}.meta.json").read_text())
    assert "not installed" not in meta["environment"]["tools"].values()
    assert meta["runs"][0]["cleanup_errors"] == []
    assert not any(Path(d).exists() for dirs in meta["commands"]["cgroups"].values() for d in dirs)
    assert _processes_naming(str(work)) == []
