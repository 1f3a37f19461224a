"""Driver: check every instance, run the Hydra multirun of ``job.py``, write ``results.csv``."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from experiments.vnncomp.results import collect, read_instances

PROG = "vnncomp"
CONF = Path(__file__).resolve().parents[2] / "conf"


def preflight(csv_path: Path, verifier: str) -> int:
    """Load every instance once (the files, the ONNX graph, the property) so that a bad one ends
    the run before any job starts; returns the number of instances."""
    from verifiers.io import load_instance

    if not (CONF / "verifier" / f"{verifier}.yaml").exists():
        known = sorted(p.stem for p in (CONF / "verifier").glob("*.yaml"))
        raise ValueError(f"unknown --verifier {verifier!r}; known: {', '.join(known)}")
    rows = read_instances(csv_path)
    for onnx_path, vnnlib_path, timeout in rows:
        if not timeout > 0:
            raise ValueError(f"{csv_path}: timeout {timeout} of {vnnlib_path.name} must be positive")
        try:
            load_instance(onnx_path, vnnlib_path)
        except FileNotFoundError as e:
            raise ValueError(f"{e.filename}: no such file (listed in {csv_path})") from None
        except ValueError as e:
            raise ValueError(f"{onnx_path.name} + {vnnlib_path.name}: {e}") from None
    return len(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__)
    ap.add_argument("instances_csv", type=Path, help="VNN-COMP instances.csv: onnx,vnnlib,timeout per line")
    ap.add_argument("--timeout", type=float, default=0.0, help="seconds per instance (default: the csv's)")
    ap.add_argument("--verifier", default="crown", help="a conf/verifier/*.yaml name")
    ap.add_argument("--out", type=Path, default=None, help="default results/vnncomp/<csv folder name>")
    ap.add_argument("--launcher", default="basic", help="basic, joblib, submitit_local or submitit_slurm")
    args = ap.parse_args(argv)
    out = (args.out or Path("results/vnncomp") / args.instances_csv.resolve().parent.name).resolve()
    jobs = out / f"jobs_{args.verifier}"
    try:
        if args.timeout < 0:
            raise ValueError(f"--timeout must be >= 0, got {args.timeout}")
        if jobs.exists():
            raise ValueError(f"{jobs} exists (an earlier run): choose another --out")
        n = preflight(args.instances_csv.resolve(), args.verifier)
    except (OSError, ValueError) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "experiments.vnncomp.job", "-m", f"instances_csv={args.instances_csv.resolve()}",
           f"instance=range(0,{n})", f"verifier={args.verifier}", f"timeout_s={args.timeout}",
           f"cache_dir={out / 'jax_cache'}", f"counterexample_dir={out / f'counterexamples_{args.verifier}'}",
           f"hydra.sweep.dir={jobs}"]  # fmt: skip
    if args.launcher != "basic":
        cmd.append(f"hydra/launcher={args.launcher}")
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - t0
    df = collect(jobs, out / f"results_{args.verifier}.csv")
    counts = df.result.value_counts().to_dict()
    print(f"{n} instances, {args.verifier}: {counts}; sum of instance times {df.time_s.sum():.1f} s, "
          f"wall time {wall:.1f} s; {out / f'results_{args.verifier}.csv'}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
