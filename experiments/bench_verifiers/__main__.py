"""Driver: build the suite, sweep the verifiers as a Hydra multirun, write the report.

``vpals-bench [key=value ...]`` (``--help`` lists the settings, :mod:`experiments.bench_verifiers.cli`).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from experiments.bench_verifiers.cli import PROG, parse_args
from experiments.bench_verifiers.report import write_report
from experiments.bench_verifiers.suite import (
    ranking_instances,
    save_suite,
    synthetic_instances,
    trained_instances,
    user_instances,
)


def build_suite(args: dict, suite_dir: Path) -> int:
    """Generate and save the instances; returns how many. A bad user file raises before any training."""
    from experiments.bench_verifiers.predictors import predictor_instances

    extra = user_instances(args["nnet"])  # the user's files first: a bad one ends the run at once
    instances = synthetic_instances() + ranking_instances(quick=args["quick"])
    if args["trained"]:
        apps = ("nginx",) if args["quick"] else tuple(args["apps"].split(","))
        instances += predictor_instances(Path(args["out"]).resolve() / "trained_cache", apps, quick=args["quick"])
        if not args["quick"]:
            instances += trained_instances(tuple(int(w) for w in args["widths"].split(",")))
    instances += extra
    save_suite(instances, suite_dir)
    return len(instances)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args["out"]).resolve()
    suite_dir = out / "suite"
    t0 = time.perf_counter()
    if not (args["reuse_suite"] and (suite_dir / "suite.json").exists()):
        try:
            n = build_suite(args, suite_dir)
        except (OSError, ValueError) as e:
            print(f"{PROG}: error: {e}", file=sys.stderr)
            return 2
        print(f"suite: {n} instances in {suite_dir} ({time.perf_counter() - t0:.0f}s)")
    jobs = out / "jobs"
    cmd = [sys.executable, "-m", "experiments.bench_verifiers.job", "-m", f"verifier={args['verifiers']}",
           f"suite_dir={suite_dir}", f"time_limit_s={args['time_limit']}", f"hydra.sweep.dir={jobs}"]  # fmt: skip
    if args["launcher"] != "basic":
        cmd.append(f"hydra/launcher={args['launcher']}")
    subprocess.run(cmd, check=True)
    table, wrong = write_report(jobs, out, suite_dir)
    print(table.to_markdown(index=False, floatfmt=".3g"))
    print("\n".join(line for line in (out / "summary.md").read_text().splitlines() if line.startswith("Suite")))
    print(f"\n{len(wrong)} wrong verdict(s); report in {out}/summary.md, plots cactus.png and scaling.png; "
          f"total {time.perf_counter() - t0:.0f}s")  # fmt: skip
    return 1 if len(wrong) else 0


if __name__ == "__main__":
    sys.exit(main())
