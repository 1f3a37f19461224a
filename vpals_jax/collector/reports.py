"""What the benchmark clients print, parsed into the row's performance columns.

Each parser returns ``throughput_rps``, ``latency_p50_ms``, ``latency_p99_ms`` (plus the
``latency_avg_ms``, ``bench_requests`` and ``bench_errors`` extras it can read), and raises
ValueError on output it does not recognise, so a garbled report fails its point, not the row.
"""

from __future__ import annotations

import csv
import io
import math
import re

NAN = math.nan


def parse_redis_benchmark_csv(text: str) -> dict[str, float]:
    """redis-benchmark ``--csv`` (7.x: test, rps, avg/min/p50/p95/p99/max latency in ms)."""
    rows = [r for r in csv.reader(io.StringIO(text)) if r]
    if len(rows) < 2:
        raise ValueError(f"no redis-benchmark CSV rows in {text[:200]!r}")
    head = rows[0]
    vals = [dict(zip(head, r)) for r in rows[1:] if r[0] != head[0]]

    # one row per test; aggregate request-weighted would need counts, so average the rows
    def mean(key):
        return sum(float(v[key]) for v in vals) / len(vals)

    return {
        "throughput_rps": mean("rps"),
        "latency_p50_ms": mean("p50_latency_ms"),
        "latency_p99_ms": mean("p99_latency_ms"),
        "latency_avg_ms": mean("avg_latency_ms"),
    }


_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def _to_ms(tok: str) -> float:
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m|h)", tok)
    if not m:
        raise ValueError(f"bad wrk time {tok!r}")
    return float(m.group(1)) * _UNITS_MS[m.group(2)]


def parse_wrk(text: str) -> dict[str, float]:
    """wrk ``--latency`` report: Latency Distribution 50%/99%, Requests/sec, request count."""
    pct = dict(re.findall(r"^\s*(\d+)%\s+([0-9.]+(?:us|ms|s|m|h))\s*$", text, re.MULTILINE))
    rps = re.search(r"Requests/sec:\s+([0-9.]+)", text)
    avg = re.search(r"^\s*Latency\s+([0-9.]+(?:us|ms|s|m|h))", text, re.MULTILINE)
    n = re.search(r"(\d+) requests in", text)
    if not rps or "50" not in pct or "99" not in pct:
        raise ValueError(f"unparseable wrk output: {text[:300]!r}")
    errs = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    return {
        "throughput_rps": float(rps.group(1)),
        "latency_p50_ms": _to_ms(pct["50"]),
        "latency_p99_ms": _to_ms(pct["99"]),
        "latency_avg_ms": _to_ms(avg.group(1)) if avg else NAN,
        "bench_requests": float(n.group(1)) if n else NAN,
        "bench_errors": float(errs.group(1) if errs else 0) + (sum(float(x) for x in sock.groups()) if sock else 0.0),
    }


def parse_sysbench(text: str) -> dict[str, float]:
    """sysbench 1.0 report with ``--histogram=on --percentile=99``: p50 from the histogram."""
    tps = re.search(r"transactions:\s+(\d+)\s+\(([0-9.]+) per sec", text)
    p99 = re.search(r"99th percentile:\s+([0-9.]+)", text)
    avg = re.search(r"^\s*avg:\s+([0-9.]+)", text, re.MULTILINE)
    errs = re.search(r"ignored errors:\s+(\d+)", text)
    hist = [(float(v), int(c)) for v, c in re.findall(r"^\s*([0-9.]+)\s+\|\**\s+(\d+)\s*$", text, re.MULTILINE)]
    if not tps or not p99:
        raise ValueError(f"unparseable sysbench output: {text[-400:]!r}")
    p50 = NAN
    if hist:
        total = sum(c for _, c in hist)
        acc = 0
        for v, c in hist:
            acc += c
            if acc >= 0.5 * total:
                p50 = v
                break
    return {
        "throughput_rps": float(tps.group(2)),
        "latency_p50_ms": p50,
        "latency_p99_ms": float(p99.group(1)),
        "latency_avg_ms": float(avg.group(1)) if avg else NAN,
        "bench_requests": float(tps.group(1)),
        "bench_errors": float(errs.group(1)) if errs else 0.0,
    }
