"""The harness with mocked processes: plan, schema of the rows, resume, and cleanup on every exit path."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from fake_tools import version, wait_gone

from vpals_jax.collector import apps as apps_mod
from vpals_jax.collector import harness as H
from vpals_jax.collector.apps import App
from vpals_jax.collector.cgroups import Cgroup, Layout
from vpals_jax.collector.corunner import fractions, stress_ng_argv
from vpals_jax.collector.plan import DEFAULTS, make_plan, merge
from vpals_jax.collector.procs import ProcessManager
from vpals_jax.collector.rows import EXTRA_COLUMNS
from vpals_jax.collector.session import Session
from vpals_jax.data import schema

FX = Path(__file__).parent / "fixtures"


# ------------------------------------------------------------------------------------ fakes
@dataclass
class FakeApp(App):
    name: str = "fakeapp"

    def required_tools(self):
        return []

    def versions(self):
        return {"fake": "1.0"}

    def server_argv(self):
        return ["fake-server"]

    def client_argv(self, duration_s, est_rps):
        return ["fake-client", str(duration_s)]

    def parse(self, text):
        rps, p50, p99 = (float(x) for x in text.split())
        return {
            "throughput_rps": rps,
            "latency_p50_ms": p50,
            "latency_p99_ms": p99,
            "latency_avg_ms": p50,
            "bench_requests": rps,
            "bench_errors": 0.0,
        }


class FakePopen:
    _next = 10**9

    def __init__(self, name):
        FakePopen._next += 1
        self.pid = FakePopen._next
        self.name = name
        self.returncode = None

    def poll(self):
        return self.returncode


class FakeProcs:
    """Records every spawn/stop; ``client`` decides what each client run does."""

    def __init__(self, client=None):
        self.spawned: list[FakePopen] = []
        self.stopped: list[int] = []
        self.client = client or (lambda n: (0, "1000 1.5 9.0", ""))
        self.calls = 0

    def spawn(self, name, argv, **kw):
        p = FakePopen(name)
        self.spawned.append(p)
        return p

    def run(self, name, argv, *, timeout_s, **kw):
        self.calls += 1
        return self.client(self.calls)

    def stop(self, p, grace_s=None):
        if p.pid not in self.stopped:
            self.stopped.append(p.pid)
            p.returncode = -15

    def stop_all(self):
        for p in self.spawned:
            self.stop(p)


@pytest.fixture
def env(tmp_path, monkeypatch, fake_tools):
    """A writable fake v2 cgroup root, fixture procfs, fake tools on PATH, no real ports."""
    cg = tmp_path / "cgroup"
    shutil.copytree(FX / "v2" / "a" / "cgroup", cg)
    monkeypatch.setattr(H, "make_app", lambda name, params=None: FakeApp(params=dict(params or {})))
    monkeypatch.setattr(apps_mod, "wait_port", lambda *a, **k: None)
    writes = []
    monkeypatch.setattr(
        Cgroup, "set_cpu_quota", lambda self, cores, period_us=100_000: writes.append(("cpu", self.rel, cores))
    )
    monkeypatch.setattr(Cgroup, "set_mem_limit", lambda self, mb: writes.append(("mem", self.rel, mb)))
    cfg = {
        "app": "fakeapp",
        "points": 7,
        "out": str(tmp_path / "out"),
        "cgroup_root": str(cg),
        "proc_root": str(FX / "v2" / "a" / "proc"),
        "tmp_dir": str(tmp_path),
        "warmup_s": 0.01,
        "window_s": 0.01,
        "baseline_every": 3,
        "max_failures": 2,
    }
    return {"cfg": cfg, "cg": cg, "tmp": tmp_path, "writes": writes}


def vpals_dirs(cg: Path) -> list[Path]:
    return sorted(cg.glob("vpals-*"))


# ------------------------------------------------------------------------------------ plan
def test_plan_deterministic_shuffled_prefix_stable_with_baselines():
    sweep = DEFAULTS["sweep"]
    p1 = make_plan(60, sweep, seed=3, baseline_every=5)
    assert p1 == make_plan(60, sweep, seed=3, baseline_every=5)
    assert make_plan(100, sweep, seed=3, baseline_every=5)[:60] == p1
    assert [p.point_id for p in p1] == list(range(60))
    assert all(p.baseline == (p.point_id % 5 == 0) for p in p1)
    assert all((p.corunner_kind == "none") == p.baseline for p in p1)
    rest = [(p.app_quota_cores, p.mem_limit_mb, p.corunner_kind, p.corunner_level) for p in p1 if not p.baseline]
    assert len(set(rest)) == len(rest)  # no repeats before the grid is exhausted
    assert rest != sorted(rest)  # shuffled
    assert make_plan(60, sweep, seed=4, baseline_every=5) != p1


def test_corunner_fractions_and_argv():
    assert fractions("none", 0.3) == {"corunner_cpu": 0.0, "corunner_mem": 0.0, "corunner_io": 0.0}
    assert fractions("cpu", 0.3) == {"corunner_cpu": 0.3, "corunner_mem": 0.0, "corunner_io": 0.0}
    assert fractions("vm", 0.3) == {"corunner_cpu": 0.3, "corunner_mem": 0.3, "corunner_io": 0.0}
    assert fractions("mixed", 0.2) == {"corunner_cpu": 0.2, "corunner_mem": 0.2, "corunner_io": 0.2}
    a = stress_ng_argv("vm", 0.25, workers=1, timeout_s=10, temp_dir="/t", mem_budget_mb=2048)
    assert a[:5] == ["stress-ng", "--timeout", "10s", "--temp-path", "/t"] and "512M" in a
    assert "--cpu-load" in stress_ng_argv("cpu", 0.1, workers=1, timeout_s=5, temp_dir="/t")
    with pytest.raises(ValueError):
        stress_ng_argv("gpu", 0.1, workers=1, timeout_s=5, temp_dir="/t")


# ------------------------------------------------------------------------------------ rows and resume
def test_run_writes_schema_rows_resumes_and_cleans_up(env):
    procs = FakeProcs()
    s = H.run(env["cfg"], procs=procs, progress=False)
    assert s["written"] == 7 and s["failed"] == 0 and s["exit"] == "normal"
    csv = Path(env["cfg"]["out"]) / "fakeapp.csv"
    df = pd.read_csv(csv)
    cols = list(df.columns)
    assert cols[: len(schema.COLUMNS)] == [c.name for c in schema.COLUMNS]  # all schema columns, in order
    assert set(schema.REQUIRED) <= set(cols) and set(EXTRA_COLUMNS) <= set(cols)
    assert len(df) == 7 and sorted(df.point_id) == list(range(7))
    assert (df.app == "fakeapp").all() and (df.latency_p50_ms == 1.5).all() and (df.throughput_rps == 1000).all()
    assert df.baseline.tolist() == [i % 3 == 0 for i in range(7)]
    base = df[df.baseline]
    assert (base.corunner_kind == "none").all() and (
        base[["corunner_cpu", "corunner_mem", "corunner_io"]] == 0
    ).all().all()
    assert set(df.corunner_kind) <= {"none", "cpu", "vm", "cache", "stream", "hdd", "mixed"}
    assert df.cpu_quota_cores.isin(DEFAULTS["sweep"]["app_quota_cores"]).all()
    for c in schema.COLUMNS:
        if c.dtype == "float":
            assert pd.api.types.is_numeric_dtype(df[c.name]), c.name
    assert ((df.sys_psi_cpu_some_pct == 0) | df.sys_psi_cpu_some_pct.isna()).all()  # one fixture snapshot: no delta
    # every co-runner was stopped; the quota of the co-runner group follows the level
    assert set(procs.stopped) == {p.pid for p in procs.spawned}
    co_writes = [w for w in env["writes"] if w[0] == "cpu" and w[1].endswith("/corunner")]
    assert len(co_writes) == len(df) - len(base)
    meta = json.loads((Path(env["cfg"]["out"]) / "fakeapp.meta.json").read_text())
    assert meta["environment"]["layout"]["kind"] == "v2" and meta["points_in_file"] == 7
    assert meta["environment"]["tools"]["stress-ng"] == version("stress-ng")  # the one on PATH
    assert meta["schema_columns"] == [c.name for c in schema.COLUMNS] and meta["runs"][0]["cleanup_errors"] == []
    assert vpals_dirs(env["cg"]) == [] and not list(env["tmp"].glob("vpals-fakeapp-*"))
    # resume: nothing left to do; more points measure only the new ones
    assert H.run(env["cfg"], procs=FakeProcs(), progress=False)["written"] == 0
    s2 = H.run({**env["cfg"], "points": 10}, procs=FakeProcs(), progress=False)
    assert s2["already_done"] == 7 and s2["written"] == 3
    assert sorted(pd.read_csv(csv).point_id) == list(range(10))
    # another plan into the same file is refused
    with pytest.raises(H.Refused, match="another plan"):
        H.run({**env["cfg"], "seed": 1, "points": 11}, procs=FakeProcs(), progress=False)


def test_failed_points_are_skipped_and_retried_later(env):
    flaky = FakeProcs(client=lambda n: (1, "", "boom") if n in (3, 4) else (0, "10 1 2", ""))
    s = H.run(env["cfg"], procs=flaky, progress=False)
    assert s["failed"] == 1 and s["written"] == 6
    s = H.run(env["cfg"], procs=FakeProcs(), progress=False)
    assert s["written"] == 1


def test_noisy_points_flagged_or_dropped(env):
    cfg = {**env["cfg"], "quality": {"max_unattributed_pct": -1.0, "max_steal_pct": 5.0, "drop_noisy": True}}
    s = H.run(cfg, procs=FakeProcs(), progress=False)
    # the single fixture snapshot gives 0 unattributed CPU, which exceeds a threshold of -1
    assert s["dropped_noisy"] == 7 and s["written"] == 0


# ------------------------------------------------------------------------------------ cleanup paths
@pytest.mark.parametrize("exc", [RuntimeError("client exploded"), KeyboardInterrupt()])
def test_cleanup_on_exception(env, exc):
    def client(n):
        if n >= 3:
            raise exc
        return 0, "10 1 2", ""

    procs = FakeProcs(client=client)
    with pytest.raises(type(exc)):
        H.run(env["cfg"], procs=procs, progress=False)
    assert procs.spawned and set(procs.stopped) == {p.pid for p in procs.spawned}
    assert vpals_dirs(env["cg"]) == []
    assert not list(env["tmp"].glob("vpals-fakeapp-*"))
    meta = json.loads((Path(env["cfg"]["out"]) / "fakeapp.meta.json").read_text())
    assert meta["runs"][-1]["summary"]["exit"] != "normal"


def test_too_many_failures_abort_with_cleanup(env):
    procs = FakeProcs(client=lambda n: (2, "", "always fails"))
    with pytest.raises(RuntimeError, match="consecutive failed points"):
        H.run(env["cfg"], procs=procs, progress=False)
    assert set(procs.stopped) == {p.pid for p in procs.spawned} and vpals_dirs(env["cg"]) == []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_signals_clean_up(env, sig):
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}

    def client(n):
        if n == 2:
            os.kill(os.getpid(), sig)
            time.sleep(1)  # the handler raises before this returns
        return 0, "10 1 2", ""

    procs = FakeProcs(client=client)
    with pytest.raises(KeyboardInterrupt):
        H.run(env["cfg"], procs=procs, progress=False)
    assert set(procs.stopped) == {p.pid for p in procs.spawned} and vpals_dirs(env["cg"]) == []
    assert {s: signal.getsignal(s) for s in before} == before  # handlers restored


def test_real_processes_stopped_by_pid_on_error(tmp_path, monkeypatch):
    """Real child processes (a server and a forked worker) are gone after an error."""
    monkeypatch.setattr(apps_mod, "wait_port", lambda *a, **k: None)
    monkeypatch.setattr(Cgroup, "set_cpu_quota", lambda *a, **k: None)
    monkeypatch.setattr(Cgroup, "set_mem_limit", lambda *a, **k: None)
    pidfile = tmp_path / "worker.pid"

    class SleepApp(FakeApp):
        def server_argv(self):  # a "server" that forks a worker into its own process group
            code = (
                f"import subprocess,time; p=subprocess.Popen(['sleep','60']); "
                f"open({str(pidfile)!r},'w').write(str(p.pid)); time.sleep(60)"
            )
            return [sys.executable, "-c", code]

    cfg = merge(
        DEFAULTS,
        {
            "proc_root": str(FX / "v2" / "a" / "proc"),
            "tmp_dir": str(tmp_path),
            "app_cpus": None,
            "client_cpus": None,
            "corunner_cpus": [0],
        },
    )
    layout = Layout("none", tmp_path, None, {}, ())
    procs = ProcessManager()
    session = Session(cfg, SleepApp(), layout, procs)
    with pytest.raises(RuntimeError), session:
        server_pid = session.server.pid
        deadline = time.monotonic() + 10
        while not pidfile.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        worker_pid = int(pidfile.read_text())
        raise RuntimeError("measurement failed")
    assert wait_gone([server_pid, worker_pid]) == []
    assert procs.procs == {}


def test_process_manager_run_times_out(tmp_path):
    pm = ProcessManager()
    t0 = time.monotonic()
    rc, _out, err = pm.run("sleeper", ["sleep", "30"], timeout_s=0.5)
    assert rc == -9 and "timed out" in err and time.monotonic() - t0 < 10
    assert pm.procs == {}
