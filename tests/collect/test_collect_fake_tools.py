"""The whole harness with real processes on a bare machine: the real apps, process manager and cgroup
code drive fake executables of every external tool (``fake_tools.py``) on a fixture cgroup tree.

The real tools are exercised by ``test_collect_services.py`` (``make test-collect``).
"""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path

import pandas as pd
import pytest
from fake_tools import BENCH, version, wait_gone

from vpals_jax.collector import harness as H
from vpals_jax.collector.apps import APPS, make_app
from vpals_jax.collector.plan import DEFAULTS, make_plan
from vpals_jax.collector.rows import EXTRA_COLUMNS
from vpals_jax.data import schema

FX = Path(__file__).parent / "fixtures"
SERVER = {"redis": "redis-server", "nginx": "nginx", "mariadb": "mariadbd"}
CLIENT = {"redis": ("redis-benchmark", "--csv"), "nginx": ("wrk", "--latency"), "mariadb": ("sysbench", "run")}
OUTPUT = {"redis": "redis_benchmark.csv", "nginx": "wrk.txt", "mariadb": "sysbench.txt"}
CPUS = sorted(os.sched_getaffinity(0))
APP_CPU, CLIENT_CPU = CPUS[0], CPUS[-1]


def config(app: str, cgroupfs, work: Path) -> dict:
    """Baselines at even points, a co-runner at odd ones; the client pinned apart from the app where possible."""
    return {
        "app": app,
        "points": 5,
        "out": str(work / "out"),
        "cgroup_root": str(cgroupfs.root),
        "proc_root": str(FX / "v2" / "a" / "proc"),
        "tmp_dir": str(work),
        "warmup_s": 0.01,
        "window_s": 0.01,
        "baseline_every": 2,
        "max_failures": 2,
        "app_cpus": [APP_CPU],
        "corunner_cpus": [APP_CPU],
        "client_cpus": [CLIENT_CPU],
    }


def group(app: str) -> str:
    return f"vpals-{app}-{os.getpid()}"


def assert_all_gone(app: str, fake_tools, cgroupfs, work: Path) -> None:
    assert wait_gone(fake_tools.pids()) == []
    assert not list(cgroupfs.root.glob("vpals-*")) and not list(work.glob(f"vpals-{app}-*"))


@pytest.mark.parametrize("app", sorted(APPS))
def test_each_app_end_to_end(app, fake_tools, cgroupfs, work):
    cfg = config(app, cgroupfs, work)
    s = H.run(cfg, progress=False)
    assert (s["written"], s["failed"], s["exit"]) == (5, 0, "normal")
    out = Path(cfg["out"])
    df = pd.read_csv(out / f"{app}.csv")
    assert list(df.columns[: len(schema.COLUMNS)]) == [c.name for c in schema.COLUMNS]
    assert set(EXTRA_COLUMNS) <= set(df.columns)
    assert df.point_id.tolist() == list(range(5)) and df.baseline.tolist() == [i % 2 == 0 for i in range(5)]
    # the numbers are the client's output, parsed by the app's own parser
    want = make_app(app).parse((BENCH / OUTPUT[app]).read_text())
    for k in ("throughput_rps", "latency_p50_ms", "latency_p99_ms"):
        assert df[k].tolist() == pytest.approx([want[k]] * 5), k
    assert (df.app == app).all() and (df.client_rc == 0).all()

    # one server; one co-runner per non-baseline point, of the planned kind; two client runs per point
    plan = make_plan(5, DEFAULTS["sweep"], 0, 2)
    servers, stress = fake_tools.calls(SERVER[app]), fake_tools.calls("stress-ng")
    assert len(servers) == 1
    assert [r["argv"][r["argv"].index("--quiet") + 1] for r in stress] == [
        f"--{p.corunner_kind}" if p.corunner_kind != "mixed" else "--cpu" for p in plan if not p.baseline
    ]
    tool, marker = CLIENT[app]
    clients = [r for r in fake_tools.calls(tool) if marker in r["argv"]]
    assert len(clients) == 10
    # every process was pinned before exec, and placed in its cgroup there too
    for r in fake_tools.calls():
        cpu = APP_CPU if r["tool"] in (SERVER[app], "stress-ng") else CLIENT_CPU
        assert r["affinity"] == [cpu], r
    files = {g: cgroupfs.removed[f"{group(app)}/{g}"] for g in ("app", "corunner", "client")}
    assert files["app"]["cgroup.procs"] == str(servers[0]["pid"])
    assert files["corunner"]["cgroup.procs"] == str(stress[-1]["pid"])
    assert files["client"]["cgroup.procs"] == str(clients[-1]["pid"])
    last = plan[-1]
    assert files["app"]["cpu.max"] == f"{round(last.app_quota_cores * 100_000)} 100000"
    assert files["app"]["memory.max"] == str(int(last.mem_limit_mb * 1024 * 1024))
    co_last = [p for p in plan if not p.baseline][-1]
    assert files["corunner"]["cpu.max"] == f"{round(co_last.corunner_level * os.cpu_count() * 100_000)} 100000"
    meta = json.loads((out / f"{app}.meta.json").read_text())
    assert meta["environment"]["tools"] == {t: version(t) for t in [*make_app(app).versions(), "stress-ng"]}
    assert meta["runs"][0]["cleanup_errors"] == [] and meta["points_in_file"] == 5
    assert_all_gone(app, fake_tools, cgroupfs, work)

    # resume: only the new point is measured, by a fresh server
    s = H.run({**cfg, "points": 6}, progress=False)
    assert (s["already_done"], s["written"]) == (5, 1) and len(fake_tools.calls(SERVER[app])) == 2
    assert pd.read_csv(out / f"{app}.csv").point_id.tolist() == list(range(6))
    assert_all_gone(app, fake_tools, cgroupfs, work)


def test_failed_client_skips_the_point_and_resume_measures_it(fake_tools, cgroupfs, work, monkeypatch):
    # redis-benchmark calls: 1 preloads, then a warm-up and a window per point: 5 is point 1's window
    monkeypatch.setenv("FAKE_FAIL", "redis-benchmark@5")
    cfg = config("redis", cgroupfs, work)
    s = H.run(cfg, progress=False)
    assert (s["written"], s["failed"], s["exit"]) == (4, 1, "normal")
    csv = Path(cfg["out"]) / "redis.csv"
    assert pd.read_csv(csv).point_id.tolist() == [0, 2, 3, 4]
    assert_all_gone("redis", fake_tools, cgroupfs, work)  # point 1's co-runner included
    monkeypatch.delenv("FAKE_FAIL")
    s = H.run(cfg, progress=False)
    assert (s["already_done"], s["written"]) == (4, 1)
    assert sorted(pd.read_csv(csv).point_id) == list(range(5))


def test_server_that_does_not_start_is_an_error_with_its_output(fake_tools, cgroupfs, work, monkeypatch):
    monkeypatch.setenv("FAKE_SERVER_EXIT", "1")
    with pytest.raises(RuntimeError, match="redis server did not start.*redis-server: fake start-up failure"):
        H.run(config("redis", cgroupfs, work), progress=False)
    assert fake_tools.calls() == []  # no client or co-runner was started
    assert_all_gone("redis", fake_tools, cgroupfs, work)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_signal_during_a_point_stops_every_process(fake_tools, cgroupfs, work, monkeypatch, sig):
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    # redis-benchmark call 4 is the warm-up of point 1, while its co-runner runs
    monkeypatch.setenv("FAKE_SIGNAL", f"redis-benchmark@4:{int(sig)}:{os.getpid()}")
    cfg = config("redis", cgroupfs, work)
    with pytest.raises(KeyboardInterrupt):
        H.run(cfg, progress=False)
    assert len(fake_tools.calls("stress-ng")) == 1 and len(fake_tools.calls("redis-benchmark")) == 4
    assert_all_gone("redis", fake_tools, cgroupfs, work)
    assert {s: signal.getsignal(s) for s in before} == before
    meta = json.loads((Path(cfg["out"]) / "redis.meta.json").read_text())
    assert meta["runs"][-1]["summary"]["exit"].startswith("interrupted") and meta["points_in_file"] == 1


@pytest.mark.parametrize("missing", ["stress-ng", "redis-benchmark"])
def test_missing_tool_stops_before_anything_starts(fake_tools, cgroupfs, work, monkeypatch, missing):
    (fake_tools.bin_dir / missing).unlink()
    monkeypatch.setenv("PATH", str(fake_tools.bin_dir))  # nothing the machine has installed either
    cfg = config("redis", cgroupfs, work)
    with pytest.raises(H.Refused, match=re.escape(f"missing tools ['{missing}']")):
        H.run(cfg, progress=False)
    assert fake_tools.calls() == [] and not Path(cfg["out"]).exists()
    assert not list(cgroupfs.root.glob("vpals-*"))
