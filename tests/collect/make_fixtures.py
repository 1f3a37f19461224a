"""Writes the canned procfs/cgroupfs snapshot trees under tests/collect/fixtures/{v2,hybrid,v1}/.

Run ``python tests/collect/make_fixtures.py`` to regenerate; the trees are committed. Each layout
has snapshots ``a`` and ``b`` (2.000 s apart in the tests) with known deltas; ``v2/c`` has the app
group recreated (its counters start again from small values) so deltas b->c are negative.

Known deltas a->b (window 2 s = 2e6 us):
  system PSI cpu some +500000 us (25 %), cpu full +100000 (5 %), memory some +20000 (1 %),
  memory full +10000 (0.5 %), io some +100000 (5 %), io full +40000 (2 %)
  /proc/stat: busy +280 ticks (1.4 cores at 100 Hz), total +410 ticks, steal +10 (2.439 %)
  app: cpu some +1200000 (60 %), cpu full +400000 (20 %), memory some +40000 (2 %), io 0;
       usage +1.6 s (0.8 cores); periods +20, throttled +5 (25 %), throttled time +30 ms;
       memory 100 MiB -> 120 MiB (mean 110), limit 256 MiB, quota 0.5 cores,
       io +1 MiB read, +2 MiB written (0.5 / 1.0 MiB/s)
  corunner usage +0.8 s (0.4 cores); client usage +0.2 s (0.1 cores)
  -> unattributed 1.4 - 1.3 = 0.1 cores = 5 % of 2 CPUs
"""

from __future__ import annotations

import shutil
from pathlib import Path

HERE = Path(__file__).parent / "fixtures"
MIB = 1024 * 1024

SYS_PSI = {
    "a": {"cpu": (1_000_000, 200_000), "memory": (0, 0), "io": (5_000_000, 4_000_000)},
    "b": {"cpu": (1_500_000, 300_000), "memory": (20_000, 10_000), "io": (5_100_000, 4_040_000)},
}
STAT = {  # user nice system idle iowait irq softirq steal guest guest_nice
    "a": (1000, 0, 500, 8000, 100, 0, 0, 10, 0, 0),
    "b": (1220, 0, 560, 8120, 100, 0, 0, 20, 0, 0),
}
APP_PSI = {
    "a": {"cpu": (100_000, 50_000), "memory": (0, 0), "io": (0, 0)},
    "b": {"cpu": (1_300_000, 450_000), "memory": (40_000, 0), "io": (0, 0)},
    "c": {"cpu": (1_000, 500), "memory": (0, 0), "io": (0, 0)},  # recreated group
}
USAGE_US = {  # per group
    "a": {"app": 1_000_000, "corunner": 0, "client": 0},
    "b": {"app": 2_600_000, "corunner": 800_000, "client": 200_000},
    "c": {"app": 5_000, "corunner": 1_600_000, "client": 400_000},
}
THROTTLE = {"a": (100, 10, 0), "b": (120, 15, 30_000), "c": (1, 0, 0)}  # periods, throttled, usec
MEM = {"a": 100 * MIB, "b": 120 * MIB, "c": 1 * MIB}
IO = {"a": (0, 0), "b": (1 * MIB, 2 * MIB), "c": (0, 0)}


def w(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def pressure(some: int, full: int, avg_some: float = 1.5) -> str:
    return (
        f"some avg10={avg_some:.2f} avg60=0.50 avg300=0.10 total={some}\n"
        f"full avg10=0.25 avg60=0.10 avg300=0.00 total={full}\n"
    )


def proc_tree(root: Path, snap: str) -> None:
    s = "b" if snap == "c" else snap
    for f, (some, full) in SYS_PSI[s].items():
        w(root / "pressure" / f, pressure(some, full, 12.5 if f == "cpu" else 0.0))
    vals = " ".join(str(v) for v in STAT[s])
    w(root / "stat", f"cpu  {vals}\ncpu0 {vals}\ncpu1 {vals}\nintr 1 2 3\nctxt 12345\nbtime 1700000000\n")
    w(root / "meminfo", "MemTotal:       24684544 kB\nMemFree:        20000000 kB\nMemAvailable:   22000000 kB\n")


def v2_group(d: Path, snap: str, name: str, controllers: bool) -> None:
    psi = APP_PSI[snap] if name == "app" else {"cpu": (0, 0), "memory": (0, 0), "io": (0, 0)}
    for f, (some, full) in psi.items():
        w(d / f"{f}.pressure", pressure(some, full))
    u = USAGE_US[snap][name]
    stat = f"usage_usec {u}\nuser_usec {u // 2}\nsystem_usec {u - u // 2}\n"
    if controllers and name == "app":
        p, t, tu = THROTTLE[snap]
        stat += f"nr_periods {p}\nnr_throttled {t}\nthrottled_usec {tu}\n"
    w(d / "cpu.stat", stat)
    w(d / "cgroup.procs", "")
    if controllers:
        w(d / "cpu.max", "50000 100000\n" if name == "app" else "max 100000\n")
        w(d / "memory.current", f"{MEM[snap] if name == 'app' else 0}\n")
        w(d / "memory.max", f"{256 * MIB}\n" if name == "app" else "max\n")
        w(d / "memory.stat", f"anon {80 * MIB}\nfile {40 * MIB}\nkernel 0\n")
        r, wr = IO[snap] if name == "app" else (0, 0)
        w(d / "io.stat", f"254:0 rbytes={r} wbytes={wr} rios=3 wios=4 dbytes=0 dios=0\n")


def v1_groups(root: Path, snap: str, name: str) -> None:
    rel = Path("exp") / name
    u = USAGE_US[snap][name]
    cpu = root / "cpu" / rel
    if name == "app":
        p, t, tu = THROTTLE[snap]
        w(cpu / "cpu.stat", f"nr_periods {p}\nnr_throttled {t}\nthrottled_time {tu * 1000}\n")
        w(cpu / "cpu.cfs_quota_us", "50000\n")
    else:
        w(cpu / "cpu.stat", "nr_periods 0\nnr_throttled 0\nthrottled_time 0\n")
        w(cpu / "cpu.cfs_quota_us", "-1\n")
    w(cpu / "cpu.cfs_period_us", "100000\n")
    w(cpu / "cgroup.procs", "")
    acct = root / "cpuacct" / rel
    w(acct / "cpuacct.usage", f"{u * 1000}\n")
    w(acct / "cgroup.procs", "")
    mem = root / "memory" / rel
    w(mem / "memory.usage_in_bytes", f"{MEM[snap] if name == 'app' else 0}\n")
    w(mem / "memory.limit_in_bytes", f"{256 * MIB}\n" if name == "app" else "9223372036854771712\n")
    w(mem / "memory.stat", f"cache 1\nrss 2\ntotal_cache {40 * MIB}\ntotal_rss {80 * MIB}\n")
    w(mem / "cgroup.procs", "")
    r, wr = IO[snap] if name == "app" else (0, 0)
    blk = root / "blkio" / rel
    w(
        blk / "blkio.throttle.io_service_bytes_recursive",
        f"254:0 Read {r}\n254:0 Write {wr}\n254:0 Sync 0\n254:0 Async 0\n254:0 Discard 0\n254:0 Total {r + wr}\nTotal {r + wr}\n",
    )
    w(blk / "cgroup.procs", "")


def main() -> None:
    shutil.rmtree(HERE / "v2", ignore_errors=True)
    shutil.rmtree(HERE / "hybrid", ignore_errors=True)
    shutil.rmtree(HERE / "v1", ignore_errors=True)
    for layout, snaps in (("v2", "abc"), ("hybrid", "ab"), ("v1", "ab")):
        for snap in snaps:
            base = HERE / layout / snap
            proc_tree(base / "proc", snap)
            cg = base / "cgroup"
            if layout == "v2":
                w(cg / "cgroup.controllers", "cpuset cpu io memory hugetlb pids\n")
                w(cg / "cgroup.subtree_control", "cpu io memory\n")
                w(cg / "cgroup.procs", "1\n")
                w(cg / "cpu.pressure", pressure(0, 0))
                for name in ("app", "corunner", "client"):
                    v2_group(cg / "exp" / name, snap, name, controllers=True)
            else:
                for ctrl in ("cpu", "cpuacct", "memory", "blkio"):
                    w(cg / ctrl / "cgroup.procs", "1\n")
                if layout == "hybrid":
                    w(cg / "unified" / "cgroup.controllers", "hugetlb\n")
                    w(cg / "unified" / "cgroup.procs", "1\n")
                    w(cg / "unified" / "cpu.pressure", pressure(0, 0))
                    for name in ("app", "corunner", "client"):
                        v2_group(cg / "unified" / "exp" / name, snap, name, controllers=False)
                for name in ("app", "corunner", "client"):
                    v1_groups(cg, snap, name)


if __name__ == "__main__":
    main()
