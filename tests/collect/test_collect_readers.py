"""Readers, layout detection and windowed metrics against the canned fixture trees (exact values)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from vpals_jax.collector.cgroups import Cgroup, detect_layout, parse_blkio_bytes, parse_io_stat, parse_limit
from vpals_jax.collector.procfs import parse_meminfo, parse_pressure, parse_proc_stat, read_system
from vpals_jax.collector.reports import parse_redis_benchmark_csv, parse_sysbench, parse_wrk
from vpals_jax.collector.window import Tick, delta, window_metrics

FX = Path(__file__).parent / "fixtures"
GROUPS = ("app", "corunner", "client")


def tick(layout_name: str, snap: str, mono: float) -> Tick:
    base = FX / layout_name / snap
    layout = detect_layout(base / "cgroup")
    return Tick(
        mono, 1_700_000_000.0 + mono, read_system(base / "proc"), {g: Cgroup(layout, f"exp/{g}").read() for g in GROUPS}
    )


def metrics(layout_name: str, a: str = "a", b: str = "b") -> dict:
    return window_metrics(tick(layout_name, a, 100.0), tick(layout_name, b, 102.0), hz=100.0)


def approx(v):
    return pytest.approx(v, rel=1e-12, abs=1e-12)


# ---------------------------------------------------------------------------------- parsers
def test_parse_pressure_and_missing_full_line():
    p = parse_pressure("some avg10=1.50 avg60=0.25 avg300=0.00 total=123456\n")
    assert p["some"] == {"avg10": 1.5, "avg60": 0.25, "avg300": 0.0, "total": 123456.0}
    assert math.isnan(p["full"]["total"])  # kernels < 5.13 have no system-wide cpu "full" line


def test_parse_proc_stat_and_meminfo():
    s = parse_proc_stat("cpu  1 2 3 4 5 6 7 8 9 10\ncpu0 1 2 3 4 5 6 7 8 9 10\ncpu1 0 0 0 0 0 0 0 0 0 0\nintr 5\n")
    assert s["user"] == 1 and s["steal"] == 8 and s["guest_nice"] == 10 and s["ncpu"] == 2
    m = parse_meminfo("MemTotal:  2048 kB\nHugePages_Total:       3\n")
    assert m == {"MemTotal": 2.0, "HugePages_Total": 3.0}


def test_parse_io_files_and_limits():
    assert parse_io_stat("8:0 rbytes=10 wbytes=20 rios=1 wios=2\n8:16 rbytes=5 wbytes=0 rios=1 wios=0\n") == {
        "rbytes": 15.0,
        "wbytes": 20.0,
        "rios": 2.0,
        "wios": 2.0,
    }
    assert parse_blkio_bytes("8:0 Read 7\n8:0 Write 9\n8:0 Total 16\nTotal 16\n") == {"rbytes": 7.0, "wbytes": 9.0}
    assert parse_limit("max\n") == math.inf
    assert parse_limit("9223372036854771712\n") == math.inf
    assert parse_limit("268435456\n") == 268435456.0
    assert math.isnan(parse_limit(None))


def test_delta_negative_is_nan():
    assert delta(5.0, 7.0) == 2.0
    assert math.isnan(delta(7.0, 5.0))
    assert math.isnan(delta(math.nan, 5.0))


# ---------------------------------------------------------------------------------- layouts
def test_detect_layouts():
    v2 = detect_layout(FX / "v2" / "a" / "cgroup")
    assert v2.kind == "v2" and v2.has_cgroup_psi and v2.owner("cpu") == "v2" and v2.owner("io") == "v2"
    hy = detect_layout(FX / "hybrid" / "a" / "cgroup")
    assert hy.kind == "hybrid" and hy.v2_root == FX / "hybrid" / "a" / "cgroup" / "unified"
    assert hy.has_cgroup_psi and hy.v2_controllers == ("hugetlb",)
    assert hy.owner("cpu") == "v1" and hy.owner("memory") == "v1" and hy.owner("io") == "v1"
    v1 = detect_layout(FX / "v1" / "a" / "cgroup")
    assert v1.kind == "v1" and not v1.has_cgroup_psi and v1.v2_root is None
    assert set(v1.v1_roots) == {"cpu", "cpuacct", "memory", "io"}
    assert detect_layout(FX / "does-not-exist").kind == "none"


# ---------------------------------------------------------------------------------- windows
SYS_EXPECTED = {
    "sys_psi_cpu_some_pct": 25.0,
    "sys_psi_cpu_full_pct": 5.0,
    "sys_psi_mem_some_pct": 1.0,
    "sys_psi_mem_full_pct": 0.5,
    "sys_psi_io_some_pct": 5.0,
    "sys_psi_io_full_pct": 2.0,
    "sys_cpu_busy_cores": 1.4,
    "steal_pct": 100.0 * 10 / 410,
    "ncpu": 2.0,
    "sys_mem_available_mb": 22000000 / 1024,
    "window_s": 2.0,
    "sys_psi_cpu_some_avg10": 12.5,
    "sys_psi_cpu_some_avg60": 0.5,
}
APP_EXPECTED = {
    "cpu_usage_cores": 0.8,
    "corunner_cpu_cores": 0.4,
    "client_cpu_cores": 0.1,
    "unattributed_cpu_cores": 0.1,
    "unattributed_cpu_pct": 5.0,
    "cpu_throttled_pct": 25.0,
    "cg_throttled_ms": 30.0,
    "cpu_quota_cores": 0.5,
    "mem_usage_mb": 110.0,
    "mem_limit_mb": 256.0,
    "cg_mem_anon_mb": 80.0,
    "cg_mem_file_mb": 40.0,
    "cg_io_read_mb_s": 0.5,
    "cg_io_write_mb_s": 1.0,
}
CG_PSI_EXPECTED = {
    "cg_psi_cpu_some_pct": 60.0,
    "cg_psi_cpu_full_pct": 20.0,
    "cg_psi_mem_some_pct": 2.0,
    "cg_psi_mem_full_pct": 0.0,
    "cg_psi_io_some_pct": 0.0,
    "cg_psi_io_full_pct": 0.0,
    "corunner_psi_cpu_some_pct": 0.0,
    "cg_psi_cpu_some_avg10": 1.5,
}


@pytest.mark.parametrize("layout", ["v2", "hybrid", "v1"])
def test_window_metrics_exact(layout):
    m = metrics(layout)
    expected = {**SYS_EXPECTED, **APP_EXPECTED}
    if layout != "v1":
        expected.update(CG_PSI_EXPECTED)
    for k, v in expected.items():
        assert m[k] == approx(v), k
    assert m["timestamp_s"] == 1_700_000_102.0
    if layout == "v1":  # no per-cgroup PSI: NaN, never zero
        assert all(math.isnan(m[f"cg_psi_{r}_{lv}_pct"]) for r in ("cpu", "mem", "io") for lv in ("some", "full"))
    for k, v in m.items():  # psi "some" >= "full"
        if k.endswith("_some_pct") and not math.isnan(v):
            full = m.get(k.replace("_some_", "_full_"))
            if full is not None and not math.isnan(full):
                assert v >= full


def test_recreated_group_gives_nan_not_garbage():
    m = metrics("v2", "b", "c")  # the app group was recreated between b and c: its counters fell
    for k in ("cg_psi_cpu_some_pct", "cg_psi_cpu_full_pct", "cpu_usage_cores", "cpu_throttled_pct", "cg_throttled_ms"):
        assert math.isnan(m[k]), k
    # unchanged system counters -> 0, the other groups keep counting
    assert m["sys_psi_cpu_some_pct"] == 0.0
    assert m["corunner_cpu_cores"] == approx(0.4)
    assert m["client_cpu_cores"] == approx(0.1)


def test_zero_or_negative_window_rejected():
    a = tick("v2", "a", 100.0)
    with pytest.raises(ValueError):
        window_metrics(a, a)


# ---------------------------------------------------------------------------------- benchmark output
BENCH = FX / "bench"


def test_parse_redis_benchmark():
    r = parse_redis_benchmark_csv((BENCH / "redis_benchmark.csv").read_text())
    assert r == {"throughput_rps": 24390.24, "latency_p50_ms": 0.071, "latency_p99_ms": 6.711, "latency_avg_ms": 0.365}
    with pytest.raises(ValueError):
        parse_redis_benchmark_csv("")


def test_parse_wrk():
    r = parse_wrk((BENCH / "wrk.txt").read_text())
    assert r == {
        "throughput_rps": 36409.76,
        "latency_p50_ms": 0.404,
        "latency_p99_ms": 11.97,
        "latency_avg_ms": 1.47,
        "bench_requests": 36559.0,
        "bench_errors": 0.0,
    }
    bad = parse_wrk((BENCH / "wrk_non2xx.txt").read_text())  # every response was a 403
    assert bad["bench_errors"] == bad["bench_requests"] == 44320.0


def test_parse_sysbench_p50_from_histogram():
    text = (BENCH / "sysbench.txt").read_text()
    r = parse_sysbench(text)
    assert r["throughput_rps"] == 3767.55 and r["latency_p99_ms"] == 4.18 and r["bench_requests"] == 3784.0
    assert r["latency_avg_ms"] == 1.06 and r["bench_errors"] == 0.0
    # independent p50 from the histogram rows
    rows = []
    for line in text.splitlines():
        if "|" in line and line.split("|")[0].strip().replace(".", "").isdigit():
            rows.append((float(line.split("|")[0]), int(line.split()[-1])))
    assert sum(c for _, c in rows) == 3784
    acc, p50 = 0, None
    for v, c in rows:
        acc += c
        if acc >= 3784 / 2:
            p50 = v
            break
    assert r["latency_p50_ms"] == p50
