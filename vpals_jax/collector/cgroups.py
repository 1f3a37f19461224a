"""cgroup layout detection, per-cgroup readers and the few writes the harness needs.

Three layouts exist in the wild and all are handled:

* ``v2``     - pure cgroup v2: ``<root>/cgroup.controllers`` exists. Everything lives in one tree.
* ``hybrid`` - v1 resource controllers under ``<root>/{cpu,cpuacct,memory,blkio}`` and cgroup2 at
  ``<root>/unified``. The per-cgroup PSI files (``cpu.pressure`` ...) and the core ``cpu.stat``
  (``usage_usec``) live in the v2 tree; quota, throttling, memory and I/O come from whichever
  hierarchy owns the controller (v2 when it is listed in ``unified/cgroup.controllers``).
* ``v1``     - v1 only: no per-cgroup PSI; the collector reports system-wide PSI and NaN for
  ``cg_psi_*``.

The cgroup root is a parameter (default ``/sys/fs/cgroup``) so tests run against fixture trees.
A *group* is addressed by its path relative to each hierarchy root (e.g. ``vpals-1234/app``); the
same relative path is used in every hierarchy the harness creates it in.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from vpals_jax.collector.procfs import parse_pressure

# v1 directory names of the controllers we use. ``cpuacct`` is often co-mounted with ``cpu``
# (``cpu,cpuacct`` with ``cpu`` and ``cpuacct`` symlinks), which resolves to the same directory.
V1_DIRS = {"cpu": "cpu", "cpuacct": "cpuacct", "memory": "memory", "io": "blkio"}
V2_CONTROLLERS = ("cpu", "memory", "io")
NAN = math.nan


@dataclass(frozen=True)
class Layout:
    kind: str  # "v2" | "hybrid" | "v1" | "none"
    root: Path
    v2_root: Path | None
    v1_roots: dict[str, Path] = field(default_factory=dict)  # "cpu"/"cpuacct"/"memory"/"io" -> dir
    v2_controllers: tuple[str, ...] = ()

    @property
    def has_cgroup_psi(self) -> bool:
        return self.v2_root is not None and (self.v2_root / "cpu.pressure").exists()

    def owner(self, controller: str) -> str | None:
        """Which hierarchy owns a controller: ``"v2"``, ``"v1"`` or None."""
        if controller in self.v2_controllers:
            return "v2"
        if controller in self.v1_roots:
            return "v1"
        return None

    def describe(self) -> dict:
        return {
            "kind": self.kind,
            "root": str(self.root),
            "v2_root": str(self.v2_root) if self.v2_root else None,
            "v1_roots": {k: str(v) for k, v in self.v1_roots.items()},
            "v2_controllers": list(self.v2_controllers),
            "cgroup_psi": self.has_cgroup_psi,
        }


def _controllers(v2: Path) -> tuple[str, ...]:
    try:
        return tuple((v2 / "cgroup.controllers").read_text().split())
    except OSError:
        return ()


def detect_layout(root: str | os.PathLike = "/sys/fs/cgroup") -> Layout:
    root = Path(root)
    if (root / "cgroup.controllers").exists():
        return Layout("v2", root, root, {}, _controllers(root))
    v1 = {name: root / d for name, d in V1_DIRS.items() if (root / d / "cgroup.procs").exists()}
    if (root / "unified" / "cgroup.controllers").exists():
        v2 = root / "unified"
        ctrls = _controllers(v2)
        # a controller bound to v2 cannot also be mounted as v1 and vice versa
        v1 = {k: p for k, p in v1.items() if (k if k != "cpuacct" else "cpu") not in ctrls}
        return Layout("hybrid", root, v2, v1, ctrls)
    if v1:
        return Layout("v1", root, None, v1, ())
    return Layout("none", root, None, {}, ())


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def parse_flat_keyed(text: str) -> dict[str, float]:
    """``key value`` per line (cpu.stat, memory.stat)."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = float(parts[1])
            except ValueError:
                pass
    return out


def parse_io_stat(text: str) -> dict[str, float]:
    """v2 ``io.stat`` (``8:0 rbytes=.. wbytes=.. rios=..``) summed over devices."""
    out = {"rbytes": 0.0, "wbytes": 0.0, "rios": 0.0, "wios": 0.0}
    for line in text.splitlines():
        for kv in line.split()[1:]:
            k, _, v = kv.partition("=")
            if k in out:
                out[k] += float(v)
    return out


def parse_blkio_bytes(text: str) -> dict[str, float]:
    """v1 ``blkio.throttle.io_service_bytes`` (``8:0 Read 123`` ... ``Total 456``) summed."""
    out = {"rbytes": 0.0, "wbytes": 0.0}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in ("Read", "Write"):
            out["rbytes" if parts[1] == "Read" else "wbytes"] += float(parts[2])
    return out


def parse_limit(text: str | None) -> float:
    """``max`` / a v1 huge sentinel -> inf; bytes otherwise."""
    if text is None:
        return NAN
    t = text.split()[0] if text.split() else ""
    if t == "max":
        return math.inf
    v = float(t)
    return math.inf if v >= 2**62 else v


@dataclass
class CgroupSnapshot:
    """Raw counters of one group at one tick. Times in microseconds, sizes in bytes."""

    psi: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # cpu/mem/io
    usage_us: float = NAN
    nr_periods: float = NAN
    nr_throttled: float = NAN
    throttled_us: float = NAN
    mem_bytes: float = NAN
    mem_stat: dict[str, float] = field(default_factory=dict)
    io: dict[str, float] = field(default_factory=dict)
    quota_cores: float = NAN
    mem_limit_bytes: float = NAN


class Cgroup:
    """One group (relative path ``rel``) across the hierarchies of a layout."""

    def __init__(self, layout: Layout, rel: str):
        self.layout = layout
        self.rel = rel.strip("/")

    def v2(self) -> Path | None:
        return self.layout.v2_root / self.rel if self.layout.v2_root is not None else None

    def v1(self, controller: str) -> Path | None:
        r = self.layout.v1_roots.get(controller)
        return r / self.rel if r is not None else None

    def dirs(self) -> list[Path]:
        """Every directory of this group, deduplicated (co-mounted v1 controllers share one)."""
        out: list[Path] = []
        seen = set()
        cands = [self.v2()] + [self.v1(c) for c in self.layout.v1_roots]
        for d in cands:
            if d is None:
                continue
            key = os.path.realpath(d.parent) + "/" + d.name
            if key not in seen:
                seen.add(key)
                out.append(d)
        return out

    def _ctrl_dir(self, controller: str) -> tuple[str | None, Path | None]:
        own = self.layout.owner(controller)
        if own == "v2":
            return "v2", self.v2()
        if own == "v1":
            return "v1", self.v1(controller)
        return None, None

    # ---------------------------------------------------------------- reading
    def read(self) -> CgroupSnapshot:
        s = CgroupSnapshot()
        v2 = self.v2()
        if v2 is not None:
            for res, fname in (("cpu", "cpu"), ("mem", "memory"), ("io", "io")):
                text = _read(v2 / f"{fname}.pressure")
                if text is not None:
                    s.psi[res] = parse_pressure(text)
            text = _read(v2 / "cpu.stat")
            if text is not None:
                st = parse_flat_keyed(text)
                s.usage_us = st.get("usage_usec", NAN)
                if self.layout.owner("cpu") == "v2":
                    s.nr_periods = st.get("nr_periods", NAN)
                    s.nr_throttled = st.get("nr_throttled", NAN)
                    s.throttled_us = st.get("throttled_usec", NAN)
        kind, d = self._ctrl_dir("cpu")
        if kind == "v1" and d is not None:
            text = _read(d / "cpu.stat")
            if text is not None:
                st = parse_flat_keyed(text)
                s.nr_periods = st.get("nr_periods", NAN)
                s.nr_throttled = st.get("nr_throttled", NAN)
                s.throttled_us = st.get("throttled_time", NAN) / 1000.0
            q, p = _read(d / "cpu.cfs_quota_us"), _read(d / "cpu.cfs_period_us")
            if q is not None and p is not None:
                qv, pv = float(q.split()[0]), float(p.split()[0])
                s.quota_cores = math.inf if qv < 0 else qv / pv
        elif kind == "v2" and d is not None:
            text = _read(d / "cpu.max")
            if text is not None:
                q, p = text.split()[:2]
                s.quota_cores = math.inf if q == "max" else float(q) / float(p)
        if math.isnan(s.usage_us):
            acct = self.v1("cpuacct") or self.v1("cpu")
            if acct is not None:
                text = _read(acct / "cpuacct.usage")
                if text is not None:
                    s.usage_us = float(text.split()[0]) / 1000.0
        kind, d = self._ctrl_dir("memory")
        if kind == "v2" and d is not None:
            text = _read(d / "memory.current")
            s.mem_bytes = float(text.split()[0]) if text else NAN
            s.mem_limit_bytes = parse_limit(_read(d / "memory.max"))
            text = _read(d / "memory.stat")
            if text is not None:
                st = parse_flat_keyed(text)
                s.mem_stat = {"anon": st.get("anon", NAN), "file": st.get("file", NAN)}
        elif kind == "v1" and d is not None:
            text = _read(d / "memory.usage_in_bytes")
            s.mem_bytes = float(text.split()[0]) if text else NAN
            s.mem_limit_bytes = parse_limit(_read(d / "memory.limit_in_bytes"))
            text = _read(d / "memory.stat")
            if text is not None:
                st = parse_flat_keyed(text)
                s.mem_stat = {
                    "anon": st.get("total_rss", st.get("rss", NAN)),
                    "file": st.get("total_cache", st.get("cache", NAN)),
                }
        kind, d = self._ctrl_dir("io")
        if kind == "v2" and d is not None:
            text = _read(d / "io.stat")
            if text is not None:
                s.io = parse_io_stat(text)
        elif kind == "v1" and d is not None:
            for fname in ("blkio.throttle.io_service_bytes_recursive", "blkio.throttle.io_service_bytes"):
                text = _read(d / fname)
                if text is not None:
                    s.io = parse_blkio_bytes(text)
                    break
        return s

    # ---------------------------------------------------------------- writing
    def create(self) -> None:
        """mkdir in every hierarchy (parents first). Enables cpu/memory/io for v2 children."""
        for d in self.dirs():
            d.mkdir(parents=True, exist_ok=True)
        v2 = self.v2()
        if v2 is not None and self.layout.v2_controllers:
            # enable our controllers from the root down to this group's parent
            parts = Path(self.rel).parts
            cur = self.layout.v2_root
            wanted = [c for c in V2_CONTROLLERS if c in self.layout.v2_controllers]
            for part in parts:
                sub = cur / "cgroup.subtree_control"
                try:
                    have = set(sub.read_text().split())
                    missing = [c for c in wanted if c not in have]
                    if missing:
                        sub.write_text(" ".join("+" + c for c in missing))
                except OSError:
                    pass
                cur = cur / part

    def procs_files(self) -> list[Path]:
        return [d / "cgroup.procs" for d in self.dirs()]

    def pids(self) -> set[int]:
        out: set[int] = set()
        for f in self.procs_files():
            text = _read(f)
            if text:
                out.update(int(x) for x in text.split())
        return out

    def member_pids(self, proc_root: str | os.PathLike = "/proc") -> set[int]:
        """PIDs listed in this group's ``cgroup.procs`` that ``/proc/<pid>/cgroup`` confirms are
        members right now (guards against stale lists, e.g. fixture trees, and PID reuse)."""
        out = set()
        suffix = "/" + self.rel
        for pid in self.pids():
            text = _read(Path(proc_root) / str(pid) / "cgroup")
            if text and any(line.rstrip().endswith(suffix) for line in text.splitlines()):
                out.add(pid)
        return out

    def set_cpu_quota(self, cores: float | None, period_us: int = 100_000) -> None:
        """``None``/inf = unlimited. v2 ``cpu.max`` or v1 ``cpu.cfs_quota_us``."""
        kind, d = self._ctrl_dir("cpu")
        if d is None:
            raise OSError("no cpu controller available for quotas")
        unlimited = cores is None or math.isinf(cores)
        quota = -1 if unlimited else max(1000, round(cores * period_us))
        if kind == "v2":
            (d / "cpu.max").write_text(f"{'max' if unlimited else quota} {period_us}")
        else:
            (d / "cpu.cfs_period_us").write_text(str(period_us))
            (d / "cpu.cfs_quota_us").write_text(str(quota))

    def set_cpu_weight(self, weight: int) -> None:
        """v2 ``cpu.weight`` (1..10000, default 100) or v1 ``cpu.shares`` (default 1024)."""
        kind, d = self._ctrl_dir("cpu")
        if d is None:
            return
        if kind == "v2":
            (d / "cpu.weight").write_text(str(int(weight)))
        else:
            (d / "cpu.shares").write_text(str(max(2, int(weight * 1024 / 100))))

    def set_mem_limit(self, mb: float | None) -> None:
        kind, d = self._ctrl_dir("memory")
        if d is None:
            raise OSError("no memory controller available for limits")
        unlimited = mb is None or math.isinf(mb)
        if kind == "v2":
            (d / "memory.max").write_text("max" if unlimited else str(int(mb * 1024 * 1024)))
        else:
            (d / "memory.limit_in_bytes").write_text("-1" if unlimited else str(int(mb * 1024 * 1024)))

    def remove(self, timeout_s: float = 5.0) -> list[str]:
        """rmdir in every hierarchy (children must be gone). Bounded retries; returns failures."""
        deadline = time.monotonic() + timeout_s
        failures = []
        for d in self.dirs():
            while True:
                try:
                    if d.exists():
                        d.rmdir()
                    break
                except OSError as e:
                    if time.monotonic() > deadline:
                        failures.append(f"{d}: {e}")
                        break
                    time.sleep(0.05)
        return failures


def self_cgroup_writable(layout: Layout, probe: str = "vpals-probe") -> tuple[bool, str]:
    """Can we create, populate and remove a cgroup here? Returns (ok, reason)."""
    if layout.kind == "none":
        return False, "no cgroup filesystem mounted"
    g = Cgroup(layout, f"{probe}-{os.getpid()}")
    try:
        g.create()
        for f in g.procs_files():
            if not os.access(f, os.W_OK):
                return False, f"{f} is not writable"
        return True, ""
    except OSError as e:
        return False, f"cannot create cgroups: {e}"
    finally:
        try:
            g.remove(timeout_s=1.0)
        except OSError:
            pass
