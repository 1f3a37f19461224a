"""Driver: build the suite, sweep the verifiers as a Hydra multirun, write the report."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from experiments.bench_verifiers.report import write_report
from experiments.bench_verifiers.suite import (
    ranking_instances,
    save_suite,
    synthetic_instances,
    trained_instances,
    user_instances,
)

DEFAULT_VERIFIERS = "ouroboros,crown,hybrid,milp,lirpa_crown,lirpa_alpha_crown"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="results/verifier_bench")
    ap.add_argument("--time-limit", type=float, default=8.0, help="seconds per instance and verifier")
    ap.add_argument("--verifiers", default=DEFAULT_VERIFIERS, help="conf/verifier/*.yaml names, comma-separated")
    ap.add_argument("--nnet", nargs="*", default=[], help="extra NNet files (monotonicity in every input)")
    ap.add_argument("--widths", default="16,64", help="widths of the trained instances")
    ap.add_argument("--no-trained", action="store_true", help="skip training the predictor instances")
    ap.add_argument("--reuse-suite", action="store_true", help="keep an existing suite.json")
    ap.add_argument("--launcher", default="basic", help="basic or joblib (one process per verifier)")
    ap.add_argument("--quick", action="store_true", help="small instances only (no training, no 300/500-wide nets)")
    args = ap.parse_args()
    out = Path(args.out).resolve()
    suite_dir = out / "suite"
    t0 = time.perf_counter()
    if not (args.reuse_suite and (suite_dir / "suite.json").exists()):
        try:  # the user's files first: a bad one ends the run before anything is computed or written
            extra = user_instances(args.nnet)
        except (OSError, ValueError) as e:
            print(f"vpals-bench-verifiers: {e}", file=sys.stderr)
            return 2
        instances = synthetic_instances() + ranking_instances(quick=args.quick)
        if not (args.no_trained or args.quick):
            instances += trained_instances(tuple(int(w) for w in args.widths.split(",")))
        instances += extra
        save_suite(instances, suite_dir)
        print(f"suite: {len(instances)} instances in {suite_dir} ({time.perf_counter() - t0:.0f}s)")
    jobs = out / "jobs"
    cmd = [sys.executable, "-m", "experiments.bench_verifiers.job", "-m", f"verifier={args.verifiers}",
           f"suite_dir={suite_dir}", f"time_limit_s={args.time_limit}", f"hydra.sweep.dir={jobs}"]  # fmt: skip
    if args.launcher != "basic":
        cmd.append(f"hydra/launcher={args.launcher}")
    subprocess.run(cmd, check=True)
    table, wrong = write_report(jobs, out, suite_dir)
    print(table.to_markdown(index=False, floatfmt=".3g"))
    print((out / "summary.md").read_text().splitlines()[-1])
    print(f"\n{len(wrong)} wrong verdict(s); report in {out}/summary.md, plots cactus.png and scaling.png; "
          f"total {time.perf_counter() - t0:.0f}s")  # fmt: skip
    return 1 if len(wrong) else 0


if __name__ == "__main__":
    sys.exit(main())
