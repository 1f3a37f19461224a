"""Certified training against the Ouroboros loops: accuracy, proofs over the whole domain, served rows.

Two ways to run it, with the same table at the end::

    python -m vpals_jax.train -m experiment=certified          # Hydra multirun: 5 apps x 3 loops x 3 seeds
    python -m vpals_jax.train -m experiment=certified_linnos   # LinnOS, both specs over [0, 1]^9
    python -m experiments.certified --apps nginx --seeds 0 --loops normal,certified
    python -m experiments.certified --experiment certified_real --apps redis,nginx,mariadb --loops normal,certified

The command-line runner starts each training in its own process (``python -m vpals_jax.train``),
normal and certified training of a seed one after the other: take time ratios from it. The Hydra
experiments clear JAX's compilation caches before each job (:class:`ColdStart`), so no job reuses
another's compiled code, but their jobs share one process, whose first job also pays its start-up
(0.3-0.7 s on real redis, where a run takes 2 s), which flatters that seed's ratio.

The synthetic apps' spec set is the whole training domain (``conf/spec/psi_monotone_tol.yaml``:
every PSI feature, the quota and the memory limit, tolerance 0.01 ms, and latency never negative).
Every run is then served on its own test rows by :class:`vpals_jax.runtime.predictor.SafePredictor`,
which answers ``verified`` only inside a region whose whole spec set a certificate proves for
exactly the served function.

Writes ``results.csv`` (one row per run) and ``table.md`` (mean per app and loop, with the
accuracy and RMSE relative to normal training and the time relative to normal training of the
same app and seed) into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
import pandas as pd
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from vpals_jax.config import DataConfig
from vpals_jax.data.dataset import load_dataset
from vpals_jax.runtime.predictor import SafePredictor

log = logging.getLogger(__name__)

CONF = Path(__file__).resolve().parents[1] / "conf"


class ColdStart(Callback):
    """Hydra callback: every job of a multirun compiles its own programs, as a fresh process would
    (the basic launcher runs jobs in one process, where later jobs would look faster). The process's
    other start-up costs fall on its first job only: time ratios come from :func:`main`'s processes."""

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        jax.clear_caches()


class Aggregate(Callback):
    """Hydra callback: ``results.csv`` and ``table.md`` in the sweep directory, once all jobs are back."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep = Path(config.hydra.sweep.dir)
        runs = sorted(p.parent for p in sweep.glob("*/summary.json"))
        if not runs:
            log.error("certified: no finished job under %s", sweep)
            return
        df = pd.DataFrame([run_row(r) for r in runs])
        print(write_tables(df, sweep))
        print(f"results.csv and table.md in {sweep}")


def run_row(run_dir: Path) -> dict:
    """One finished run as a row: accuracy, proofs, time, and the share of its test rows served ``verified``."""
    summary = json.loads((run_dir / "summary.json").read_text())
    config = OmegaConf.load(run_dir / "config.yaml")
    data = load_dataset(DataConfig(**OmegaConf.to_container(config.data)))
    served = SafePredictor.load(run_dir).predict(pd.DataFrame(data.x_test, columns=data.feature_names))
    verified = np.asarray(served.status) == "verified"
    # in distribution: inside the training domain the specs are stated over (no margin)
    inside = ((data.x_test >= data.x_train.min(axis=0)) & (data.x_test <= data.x_train.max(axis=0))).all(axis=1)
    statuses = [v["status"] for v in summary["verdicts"]]
    return {
        "app": data.name, "loop": config.train.loop, "seed": int(config.train.seed),
        "test_accuracy": summary["test"]["accuracy"], "test_rmse": summary["test"]["rmse"],
        "specs_verified": f"{statuses.count('VERIFIED')}/{len(statuses)}",
        "all_verified": bool(statuses) and all(s == "VERIFIED" for s in statuses),
        "verified_volume": summary["verified_volume"], "train_time_s": summary["train_time_s"],
        "wall_s": summary["wall_time_s"], "training_wall_s": summary.get("training_wall_s", summary["wall_time_s"]),
        "time_to_verified_s": summary["time_to_verified_s"],
        "served_verified": float(verified.mean()), "test_in_domain": float(inside.mean()),
        "served_verified_in_domain": float(verified[inside].mean()) if inside.any() else float("nan"),
        "run_dir": str(run_dir),
    }  # fmt: skip


def write_tables(df: pd.DataFrame, out: Path) -> str:
    df.to_csv(out / "results.csv", index=False)
    table = summarise(df).to_markdown(index=False, floatfmt=".4g")
    (out / "table.md").write_text(table + "\n")
    return table


def app_override(experiment: str, app: str) -> str:
    """How ``experiment`` picks an app: an option of its own group (``certified_real``'s app pairs a
    table with its spec set) or the synthetic generator's ``data.app``."""
    if (CONF / "experiment" / experiment / "app").is_dir():
        return f"+experiment/{experiment}/app={app}"
    return f"data.app={app}"


def run_one(app: str, loop: str, seed: int, out: Path, extra: tuple[str, ...] = (),
            experiment: str = "certified") -> dict:  # fmt: skip
    """Train one job in its own process with ``experiment``'s settings (the Hydra multirun's, kept in
    one place); ``extra`` Hydra overrides come after them."""
    run_dir = out / "runs" / f"{app}_{loop}_{seed}"
    cmd = [sys.executable, "-m", "vpals_jax.train", f"experiment={experiment}", app_override(experiment, app),
           f"train.loop={loop}", f"train.seed={seed}", f"hydra.run.dir={run_dir}", *extra]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"vpals-certified: {app}/{loop}/seed {seed} failed: {last}", file=sys.stderr)
        raise SystemExit(2)
    return {**run_row(run_dir), "process_wall_s": wall}


def summarise(df: pd.DataFrame) -> pd.DataFrame:
    """Mean per app and loop; accuracy, RMSE and time against normal training (same app and seed).

    Times are training wall times: a correcting loop's includes every round (its rounds are part of
    training), normal training's leaves out the check it does at its end to report its verdicts
    (a measurement, not training), so a normal row reads 1."""
    base = df[df.loop == "normal"][["app", "seed", "test_accuracy", "test_rmse", "training_wall_s"]]
    rel = df.merge(base, on=["app", "seed"], how="left", suffixes=("", "_normal"))
    rel["acc_minus_normal"] = rel.test_accuracy - rel.test_accuracy_normal
    rel["rmse_ratio"] = rel.test_rmse / rel.test_rmse_normal
    rel["time_ratio"] = rel.training_wall_s / rel.training_wall_s_normal
    rel["time_to_verified_ratio"] = rel.time_to_verified_s.astype(float) / rel.training_wall_s_normal
    agg = rel.groupby(["app", "loop"]).agg(
        runs=("seed", "count"), test_accuracy=("test_accuracy", "mean"), acc_minus_normal=("acc_minus_normal", "mean"),
        rmse_ratio=("rmse_ratio", "mean"), all_verified=("all_verified", "mean"),
        verified_volume=("verified_volume", "mean"), time_ratio=("time_ratio", "mean"),
        time_to_verified_ratio=("time_to_verified_ratio", "mean"),
        served_verified=("served_verified", "mean"), test_in_domain=("test_in_domain", "mean"),
        served_verified_in_domain=("served_verified_in_domain", "mean"),
    )  # fmt: skip
    agg["verified_volume"] = np.floor(agg.verified_volume * 1e4) / 1e4  # printed to 4 digits: short of 1 stays short
    return agg.reset_index()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiment", default="certified", choices=("certified", "certified_real"),
                    help="certified: the synthetic apps; certified_real: redis, nginx, mariadb (real tables)")
    ap.add_argument("--apps", default="mindspore,nginx,solr,redis,mysql")
    ap.add_argument("--loops", default="normal,spec_data,certified")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--out", default="results/certified")
    ap.add_argument("overrides", nargs="*", help="Hydra overrides for every job, e.g. train.cert_lam=0.5")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    jobs = [(a, lp, int(s)) for a in args.apps.split(",") for s in args.seeds.split(",") for lp in args.loops.split(",")]
    for k, (app, loop, seed) in enumerate(jobs, 1):
        rows.append(run_one(app, loop, seed, out, tuple(args.overrides), args.experiment))
        r = rows[-1]
        print(f"[{k}/{len(jobs)}] {app} {loop} seed {seed}: acc {r['test_accuracy']:.4f}, "
              f"specs {r['specs_verified']}, served verified {r['served_verified']:.3f}, {r['wall_s']:.0f} s", flush=True)
    print(write_tables(pd.DataFrame(rows), out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
