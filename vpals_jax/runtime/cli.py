"""``vpals-predict run_dir=RUN input=metrics.csv|- [slo=..] [max_slowdown=..] [policy=flag] [spec=..]``.

``slo`` is an absolute latency in the target's own units (ms for ``latency_p50_ms``, us for
LinnOS' ``latency_us``). Every output record carries ``row``: the row's index in the file (from 0),
or, with ``input=-``, the line's number on standard input (from 1).

Writes one JSON line per input row (``format=csv``: one CSV row, for file input): prediction, its
interval ``lower``/``upper`` (``coverage``: the calibrated one unless given), status, decision,
and the drift alarm's ``drift`` / ``drift_martingale`` (``runtime.drift``; rows carrying the
observed target column test residuals, the others the predictions; ``drift_threshold``,
default 100, bounds the false-alarm probability by its inverse). ``spec`` (a ``conf/spec`` name
or a YAML path) is the spec set this deployment requires proven before a row is ``verified``;
by default the one the run was configured with. With ``input=-`` it reads JSON lines from
standard input and answers each line as it arrives; a malformed line gets an ``error`` line of
its own, so no line is ever lost, and a value that is not a JSON number (``true``, ``"3"``,
``null``) makes its row ``invalid``. ``--watch`` reads live PSI and CPU/memory
metrics of this machine (optionally of one cgroup) every ``interval`` seconds and prints a
decision per tick, for ``count`` ticks or until interrupted.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Iterator
from typing import Any, NoReturn, TextIO

import numpy as np
import pandas as pd

from vpals_jax.cli import fail
from vpals_jax.data.tables import DataError, read_frame, require_columns
from vpals_jax.runtime.drift import DriftMonitor, defer_on_alarm

KEYS = {"run_dir": None, "input": None, "policy": "flag", "ood_margin": "0.05", "slo": None,
        "max_slowdown": None, "interval": "1.0", "count": "0", "cgroup": None, "cpu_quota_cores": None,
        "mem_limit_mb": None, "batch": "4096", "spec": None, "coverage": None, "drift_threshold": "100",
        "format": "jsonl"}  # fmt: skip
# Numeric keys: type, smallest value, and whether that value itself is allowed.
NUMBERS: dict[str, tuple[type, float, bool]] = {
    "ood_margin": (float, 0.0, True), "slo": (float, 0.0, False), "max_slowdown": (float, 0.0, False),
    "interval": (float, 0.0, False), "cpu_quota_cores": (float, 0.0, False), "mem_limit_mb": (float, 0.0, False),
    "count": (int, 0, True), "batch": (int, 1, True), "coverage": (float, 0.0, False),
    "drift_threshold": (float, 1.0, False),
}  # fmt: skip


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line (the house rule), not the usage plus the message."""

    def error(self, message: str) -> NoReturn:
        fail(self.prog, ValueError(message))


def number(key: str, value: str) -> float | int:
    """``value`` as the type ``NUMBERS`` gives ``key``, within its range; ``ValueError`` naming both otherwise."""
    kind, least, inclusive = NUMBERS[key]
    try:
        x = kind(value)
    except ValueError:
        x = None
    if x is None or not math.isfinite(x) or x < least or (x == least and not inclusive):
        what = "an integer" if kind is int else "a number"
        raise ValueError(f"{key} must be {what} {'>=' if inclusive else '>'} {least:g}, got {value!r}")
    return x


def parse_args(argv: list[str]) -> dict[str, Any]:
    ap = ArgumentParser(prog="vpals-predict", description=__doc__.splitlines()[0])
    ap.add_argument("--watch", action="store_true", help="read live metrics of this machine every interval")
    ap.add_argument("overrides", nargs="*", help=f"key=value; keys: {', '.join(KEYS)}")
    ns = ap.parse_args(argv)
    args: dict[str, Any] = dict(KEYS)
    for item in ns.overrides:
        key, sep, value = item.partition("=")
        if not sep or key not in KEYS:
            ap.error(f"expected key=value with a key among {list(KEYS)}, got {item!r}")
        args[key] = value
    if not args["run_dir"]:
        ap.error("run_dir=... is required")
    if not ns.watch and not args["input"]:
        ap.error("give input=FILE (CSV/Parquet), input=- (JSON lines on stdin), or --watch")
    args["watch"] = ns.watch
    if args["format"] not in ("jsonl", "csv") or (args["format"] == "csv" and (ns.watch or args["input"] == "-")):
        ap.error(f"format must be jsonl, or csv with input=FILE; got format={args['format']!r}")
    for key in NUMBERS:
        if args[key] is not None:
            try:
                args[key] = number(key, args[key])
            except ValueError as e:
                ap.error(str(e))
    return args


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v.item() if hasattr(v, "item") else v


def answer_frame(predictor, frame: pd.DataFrame, args: dict[str, Any], monitor: DriftMonitor | None) -> pd.DataFrame:
    if args["slo"] is not None or args["max_slowdown"] is not None:
        out = predictor.decide(frame, slo=args["slo"], max_slowdown=args["max_slowdown"])
    else:
        out = predictor.predict(frame).to_frame()
    if monitor is None:
        return out
    target = predictor.normalizer.target_name
    observed = None
    if target in frame and frame[target].dtype != bool:  # the measured target, where the stream carries it
        observed = pd.to_numeric(frame[target], errors="coerce").to_numpy(np.float64, na_value=np.nan)
    # f(x) feeds the monitor; rows answered by a bound or refused have none and are skipped
    y_hat = np.where(out["bounded"].to_numpy(bool), np.nan, out["prediction"].to_numpy(np.float64))
    return defer_on_alarm(out, monitor.observe(predictor.as_matrix(frame), y_hat, observed))


def answer_rows(predictor, frame: pd.DataFrame, args: dict[str, Any],
                monitor: DriftMonitor | None = None) -> list[dict[str, Any]]:  # fmt: skip
    out = answer_frame(predictor, frame, args, monitor)
    return [{k: _clean(v) for k, v in rec.items()} for rec in out.to_dict(orient="records")]


def json_numbers(row: dict[str, Any]) -> dict[str, Any]:
    """Keep JSON numbers; anything else (booleans, strings, null, lists) becomes missing."""
    return {k: v if isinstance(v, (int, float)) and not isinstance(v, bool) else None for k, v in row.items()}


def stream_lines(predictor, lines: TextIO, out: TextIO, args: dict[str, Any],
                 monitor: DriftMonitor | None = None) -> int:  # fmt: skip
    """Answer JSON lines one by one (a resource manager feeds them live); returns the error count.

    Whatever a line holds (nesting deep enough to exhaust the parser's recursion, bytes that are
    not UTF-8 once ``main`` has made them U+FFFD), it gets its own answer or error line and the
    lines after it are still read."""
    errors = 0
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise ValueError(f"expected a JSON object, got {type(row).__name__}")
        except (ValueError, RecursionError) as e:
            errors += 1
            out.write(json.dumps({"row": n, "error": f"malformed line: {e}"}) + "\n")
        else:
            rec = answer_rows(predictor, pd.DataFrame([json_numbers(row)]), args, monitor)[0]
            out.write(json.dumps({"row": n, **rec}) + "\n")
        out.flush()
    return errors


def live_rows(args: dict[str, Any]) -> Iterator[dict[str, Any]]:
    from vpals_jax.runtime.live import LiveReader

    reader = LiveReader(cgroup=args["cgroup"], cpu_quota_cores=args["cpu_quota_cores"],
                        mem_limit_mb=args["mem_limit_mb"])  # fmt: skip
    ticks = 0
    while args["count"] <= 0 or ticks < args["count"]:
        time.sleep(args["interval"])
        yield reader.read()
        ticks += 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from vpals_jax.runtime.predictor import SafePredictor

    try:
        predictor = SafePredictor.load(
            args["run_dir"], policy=args["policy"], ood_margin=args["ood_margin"], spec=args["spec"],
            coverage=args["coverage"],
        )
        monitor = None
        if predictor.calibration is not None:
            monitor = DriftMonitor(predictor.calibration, threshold=args["drift_threshold"])
        if args["input"] not in (None, "-") and not args["watch"]:
            frame = read_frame(args["input"])
            require_columns(frame, predictor.features, args["input"])  # else every row would be invalid
        if monitor is None:  # said once input is accepted: a refused command prints its one error line only
            print(f"vpals-predict: {args['run_dir']} has no calibration: no intervals and no drift alarm",
                  file=sys.stderr)  # fmt: skip
        if args["watch"]:
            try:
                for row in live_rows(args):
                    rec = answer_rows(predictor, pd.DataFrame([row]), args, monitor)[0]
                    print(json.dumps({"time": time.time(), **rec}), flush=True)
            except KeyboardInterrupt:
                pass
            return 0
        if args["input"] == "-":
            sys.stdin.reconfigure(errors="replace")  # type: ignore[union-attr]
            errors = stream_lines(predictor, sys.stdin, sys.stdout, args, monitor)
            if errors:
                print(f"vpals-predict: {errors} malformed line(s) reported", file=sys.stderr)
            return 0
        for start in range(0, len(frame), args["batch"]):
            part = frame.iloc[start : start + args["batch"]]
            if args["format"] == "csv":
                out = answer_frame(predictor, part, args, monitor)
                out.insert(0, "row", range(start, start + len(part)))
                out.to_csv(sys.stdout, header=start == 0, index=False)
                continue
            for i, rec in enumerate(answer_rows(predictor, part, args, monitor)):
                sys.stdout.write(json.dumps({"row": start + i, **rec}) + "\n")
        return 0
    except (DataError, ValueError, FileNotFoundError, OSError) as e:
        fail("vpals-predict", e)


if __name__ == "__main__":
    sys.exit(main())
