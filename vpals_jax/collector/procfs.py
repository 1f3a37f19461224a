"""Parsers for the system-wide procfs files the collector reads on every tick.

Every reader takes the procfs root as a parameter (default ``/proc``) so tests run against fixture
trees. Parsers take the file *text* and are pure.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

PSI_FILES = {"cpu": "cpu", "mem": "memory", "io": "io"}  # schema resource name -> file name
STAT_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal", "guest", "guest_nice")


def parse_pressure(text: str) -> dict[str, dict[str, float]]:
    """``some avg10=1.00 avg60=0.50 avg300=0.10 total=123`` lines -> ``{"some": {...}, "full": {...}}``.

    ``total`` is in microseconds (kept as a float of an exact integer). A missing ``full`` line (the
    system-wide ``cpu`` file of kernels before 5.13) is reported as NaN, not zero.
    """
    out: dict[str, dict[str, float]] = {}
    for line in text.splitlines():
        parts = line.split()
        if not parts or parts[0] not in ("some", "full"):
            continue
        vals = {}
        for kv in parts[1:]:
            k, _, v = kv.partition("=")
            vals[k] = float(v)
        out[parts[0]] = vals
    nan = {"avg10": math.nan, "avg60": math.nan, "avg300": math.nan, "total": math.nan}
    out.setdefault("some", dict(nan))
    out.setdefault("full", dict(nan))
    return out


def parse_proc_stat(text: str) -> dict[str, float]:
    """The aggregate ``cpu`` line of ``/proc/stat`` in USER_HZ ticks, plus ``ncpu``."""
    out: dict[str, float] = {}
    ncpu = 0
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "cpu":
            for name, v in zip(STAT_FIELDS, parts[1:]):
                out[name] = float(v)
        elif parts[0].startswith("cpu") and parts[0][3:].isdigit():
            ncpu += 1
    for name in STAT_FIELDS:
        out.setdefault(name, 0.0)
    out["ncpu"] = float(ncpu)
    return out


def parse_meminfo(text: str) -> dict[str, float]:
    """``/proc/meminfo`` -> values in MiB (``kB`` fields) keyed by the file's names."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if not parts:
            continue
        v = float(parts[0])
        if len(parts) > 1 and parts[1] == "kB":
            v /= 1024.0
        out[name.strip()] = v
    return out


def stat_busy_ticks(stat: dict[str, float]) -> float:
    """Ticks the CPUs spent running something in this guest (guest time is inside user/nice)."""
    return sum(stat[k] for k in ("user", "nice", "system", "irq", "softirq"))


def stat_total_ticks(stat: dict[str, float]) -> float:
    return sum(stat[k] for k in ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"))


def user_hz() -> float:
    try:
        return float(os.sysconf("SC_CLK_TCK"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover
        return 100.0


def psi_available(proc_root: str | os.PathLike = "/proc") -> bool:
    """True when ``/proc/pressure/cpu`` exists and can be read (``psi=0`` boots make it EOPNOTSUPP)."""
    try:
        (Path(proc_root) / "pressure" / "cpu").read_text()
        return True
    except OSError:
        return False


@dataclass
class SystemSnapshot:
    """One tick of the system-wide files. ``psi`` is keyed by schema resource names cpu/mem/io."""

    psi: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    stat: dict[str, float] = field(default_factory=dict)
    meminfo: dict[str, float] = field(default_factory=dict)


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def read_system(proc_root: str | os.PathLike = "/proc") -> SystemSnapshot:
    root = Path(proc_root)
    snap = SystemSnapshot()
    for res, fname in PSI_FILES.items():
        text = _read(root / "pressure" / fname)
        if text is not None:
            snap.psi[res] = parse_pressure(text)
    text = _read(root / "stat")
    if text is not None:
        snap.stat = parse_proc_stat(text)
    text = _read(root / "meminfo")
    if text is not None:
        snap.meminfo = parse_meminfo(text)
    return snap
