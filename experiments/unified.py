"""One network for all apps against one network per app: the table of ``experiment=unified``.

::

    python -m vpals_jax.train -m experiment=unified         # 5 synthetic apps: the sweep, then table.md
    python -m vpals_jax.train -m experiment=unified_real    # the 3 real tables, separately
    python -m experiments.unified multirun/unified/<time>   # the table again (--rows, --epochs)

The sweep trains, with the same settings in the same run: the unified network (``data.source=
unified``: every app's rows, the app a one-hot input, the target scaled per app), one network per
app, and the unified network without one app (``data.app=<group>-<app>``). This module then, in
the sweep directory:

* scores every model per app on the same test rows with the per-app networks' tolerance;
* verifies every model per app with the sweep's verifier: a per-app network its spec set over its
  own training domain, the unified one the same spec set over each app's region (that app's
  one-hot fixed, its own domain elsewhere; ``vpals_jax.unified_specs``), timing each;
* few-shot (``experiments.unified_few_shot``): the left-out app's first 100 training rows fine-tune
  the network trained without it, against a per-app network trained on those 100 rows and the
  per-app network trained on all of them;
* writes ``results.csv`` (one row per model and app), ``few_shot.csv`` and ``table.md``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from experiments.unified_few_shot import accuracy, few_shot, few_shot_markdown, n_params, verdict_cell, verify_timed
from verifiers import Status
from vpals_jax.config import DataConfig, VerifierConfig
from vpals_jax.convert import load_network
from vpals_jax.data import unified
from vpals_jax.data.dataset import Dataset, load_dataset
from vpals_jax.spec_files import build_specs
from vpals_jax.unified_specs import build_per_app_specs

log = logging.getLogger(__name__)


@dataclass
class Job:
    """One finished training of the sweep: its role, its group (synthetic, real) and its app."""

    run_dir: Path
    config: dict[str, Any]
    summary: dict[str, Any]
    role: str  # unified | held_out | per_app
    group: str
    app: str | None  # per_app: its app; held_out: the app left out

    @property
    def data(self) -> DataConfig:
        return DataConfig(**self.config["data"])


def classify(run_dir: Path) -> Job:
    """A finished job of the sweep, read from its ``config.yaml`` and ``summary.json``."""
    config = OmegaConf.to_container(OmegaConf.load(run_dir / "config.yaml"), resolve=True)
    summary = json.loads((run_dir / "summary.json").read_text())
    data = config["data"]
    if data["source"] == "unified":
        group, apps, trained = unified.members(data["app"])
        left = [a for a in apps if a not in trained]
        return Job(run_dir, config, summary, "held_out" if left else "unified", group, left[0] if left else None)
    group = "synthetic" if data["source"] == "synthetic" else "real"
    return Job(run_dir, config, summary, "per_app", group, data["app"])


def members_of(job: Job) -> dict[str, Dataset]:
    return {app: load_dataset(c) for app, c in unified.member_configs(job.data)}


def base_specs(job: Job, per_app: dict[str, Job]) -> dict[str, Any]:
    """Each app's spec set: its per-app job's (the same content the per-app network is verified on),
    else the unified job's own ``spec``."""
    _, _, trained = unified.members(job.data.app)
    return {app: (per_app[app].config if app in per_app else job.config)["spec"] for app in trained}


def per_app_rows(job: Job, verifier: VerifierConfig) -> list[dict[str, Any]]:
    """A per-app network: accuracy on its test rows, its spec set over its own domain."""
    net, norm, _ = load_network(str(job.run_dir))
    data = load_dataset(job.data)
    tol = float(job.config["train"]["tolerance"])
    pred = net(norm.transform_x(data.x_test)).reshape(-1)
    verdicts, secs = verify_timed(net, build_specs(job.config["spec"], norm), verifier)
    return [{"group": job.group, "model": "per_app", "app": job.app, "test_accuracy": accuracy(pred, norm.transform_y(data.y_test), tol),
             "rmse_ms": float(np.sqrt(np.mean((norm.inverse_y(pred) - data.y_test) ** 2))), "params": n_params(net),
             "train_time_s": job.summary["train_time_s"], "verify_s": secs, "specs": verdict_cell(verdicts),
             "all_verified": all(v.status == Status.VERIFIED for v in verdicts), "run_dir": str(job.run_dir)}]  # fmt: skip


def unified_rows(job: Job, per_app: dict[str, Job], verifier: VerifierConfig) -> list[dict[str, Any]]:
    """The unified network, per app: accuracy on that app's test rows, the app's specs over its region."""
    net, norm, _ = load_network(str(job.run_dir))
    data = load_dataset(job.data)
    scales = unified.target_scales(members_of(job))
    domains = unified.app_domains(data.x_train, data.feature_names)
    specs = build_per_app_specs(base_specs(job, per_app), norm, domains, scales)
    tol = float(job.config["train"]["tolerance"])
    pred = net(norm.transform_x(data.x_test)).reshape(-1)
    rows = []
    for app, app_specs in specs.items():
        at = unified.rows_of(data.x_test, data.feature_names, app)
        _, scale = scales[app]
        verdicts, secs = verify_timed(net, app_specs, verifier)
        rows.append({"group": job.group, "model": "unified", "app": app,
                     "test_accuracy": accuracy(norm.inverse_y(pred[at]), data.y_test[at], tol),
                     "rmse_ms": float(np.sqrt(np.mean(((norm.inverse_y(pred[at]) - data.y_test[at]) * scale) ** 2))),
                     "params": n_params(net), "train_time_s": job.summary["train_time_s"], "verify_s": secs,
                     "specs": verdict_cell(verdicts), "all_verified": all(v.status == Status.VERIFIED for v in verdicts),
                     "run_dir": str(job.run_dir)})  # fmt: skip
    return rows


def comparison(df: pd.DataFrame) -> str:
    """Per app and group: the per-app network beside the unified one, then the totals and the goals."""
    out = []
    for group, g in df.groupby("group", sort=False):
        per, uni = g[g.model == "per_app"].set_index("app"), g[g.model == "unified"].set_index("app")
        apps = [a for a in uni.index if a in per.index] or list(per.index) or list(uni.index)
        rows = []
        for app in apps:
            p = per.loc[app] if app in per.index else None
            u = uni.loc[app] if app in uni.index else None
            acc_p, acc_u = (float(r.test_accuracy) if r is not None else float("nan") for r in (p, u))
            rows.append({"app": app, "per-app acc": acc_p, "unified acc": acc_u,
                         "unified - per-app (points)": 100 * (acc_u - acc_p),
                         "per-app RMSE (ms)": p.rmse_ms if p is not None else float("nan"),
                         "unified RMSE (ms)": u.rmse_ms if u is not None else float("nan"),
                         "per-app specs": p.specs if p is not None else "-", "unified specs": u.specs if u is not None else "-",
                         "per-app verify (s)": p.verify_s if p is not None else float("nan"),
                         "unified verify (s)": u.verify_s if u is not None else float("nan")})  # fmt: skip
        table = pd.DataFrame(rows)
        p_params = int(per.params.sum()) if len(per) else 0
        u_params = int(uni.params.iloc[0]) if len(uni) else 0
        p_train = float(per.train_time_s.sum()) if len(per) else float("nan")
        u_train = float(uni.train_time_s.iloc[0]) if len(uni) else float("nan")
        both = table.dropna(subset=["per-app acc", "unified acc"])
        gap = both["unified - per-app (points)"]
        goals = [
            (f"- per-app accuracy within 1 point of the per-app networks: {'met' if (gap >= -1).all() else 'missed'} "
             f"(worst {gap.min():+.2f} points)") if len(both) else "- accuracy: no pair to compare",
            (f"- fewer total parameters: {'met' if u_params < p_params else 'missed'} "
             f"({u_params} unified vs {p_params} in {len(per)} per-app networks)"),
            (f"- all specs verified: unified {'met' if len(uni) and uni.all_verified.all() else 'missed'}, "
             f"per-app {'met' if len(per) and per.all_verified.all() else 'missed'}"),
        ]  # fmt: skip
        times = (f"training time: unified {u_train:.1f} s, per-app networks {p_train:.1f} s in all; verification "
                 f"time: unified {uni.verify_s.sum():.1f} s, per-app {per.verify_s.sum():.1f} s in all")  # fmt: skip
        out += [f"### {group}", "", table.to_markdown(index=False, floatfmt=".4g"), "", times, "", *goals, ""]
    return "\n".join(out)


def report(sweep_dir: str | Path, rows: int = 100, epochs: int = 200) -> str:
    """Score, verify and fine-tune every finished job under ``sweep_dir``; write the tables; return table.md."""
    sweep = Path(sweep_dir)
    jobs = [classify(p.parent) for p in sorted(sweep.glob("*/summary.json"))]
    if not jobs:
        raise FileNotFoundError(f"no finished job (*/summary.json) under {sweep}")
    results, shots = [], []
    for group in dict.fromkeys(j.group for j in jobs):
        mine = [j for j in jobs if j.group == group]
        per_app = {j.app: j for j in mine if j.role == "per_app"}
        for job in mine:
            verifier = VerifierConfig(**job.config["verifier"])
            log.info("unified: scoring and verifying %s (%s)", job.run_dir, job.role)
            if job.role == "per_app":
                results += per_app_rows(job, verifier)
            elif job.role == "unified":
                results += unified_rows(job, per_app, verifier)
            else:
                shots += few_shot(job, per_app.get(job.app), rows, epochs, verifier)
    df = pd.DataFrame(results)
    df.to_csv(sweep / "results.csv", index=False)
    text = "## Unified network against one network per app\n\n" + (comparison(df) if len(df) else "no model scored\n")
    if shots:
        pd.DataFrame(shots).to_csv(sweep / "few_shot.csv", index=False)
        text += "\n" + few_shot_markdown(pd.DataFrame(shots), rows)
    (sweep / "table.md").write_text(text)
    return text


class AggregateUnified(Callback):
    """Hydra callback of ``experiment=unified``: the tables, once every job is back."""

    def __init__(self, few_shot_rows: int = 100, few_shot_epochs: int = 200) -> None:
        self.rows, self.epochs = few_shot_rows, few_shot_epochs

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep = Path(config.hydra.sweep.dir)
        try:
            print(report(sweep, self.rows, self.epochs))
        except FileNotFoundError as e:
            log.error("unified: %s", e)
            return
        print(f"results.csv, few_shot.csv and table.md in {sweep}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sweep_dir")
    ap.add_argument("--rows", type=int, default=100, help="rows of the left-out app for fine-tuning")
    ap.add_argument("--epochs", type=int, default=200, help="fine-tuning epochs (batches of 20 rows)")
    args = ap.parse_args(argv)
    try:
        print(report(args.sweep_dir, args.rows, args.epochs))
    except (FileNotFoundError, ValueError) as e:
        print(f"experiments.unified: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
