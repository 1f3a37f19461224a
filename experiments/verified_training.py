"""The issue's four experiments as Hydra multiruns, and the comparison of any sweep's jobs.

Each experiment is one command (see ``docs/experiments.md``)::

    python -m vpals_jax.train -m experiment=paper_synthetic      # 1. five synthetic apps, OOD split
    python -m vpals_jax.train -m experiment=paper_linnos         # 2. LinnOS, the four loop variants
    python -m vpals_jax.train -m experiment=paper_cardwiki       # 3. CardWiki
    python -m vpals_jax.train -m experiment=paper_linnos_domain  # 4. whole-domain LinnOS specs

:class:`AggregateSweep` is registered in ``conf/train.yaml`` (``hydra.callbacks.aggregate``), so
every multirun of ``vpals-train -m`` ends with a comparison: the callback reads every job's
``summary.json``, groups the jobs by the swept keys other than the seed, and writes
``results.csv`` (one row per job), ``aggregate.csv``, ``comparison.md`` (mean +- std per group,
best test accuracy first) and plots titled by the swept keys into the sweep directory. An
experiment config (``conf/experiment/paper_*.yaml``) fixes the settings, lists the swept values
in ``hydra.sweeper.params`` and picks the report's ``kind`` (published figures, goals, OOD...).
The launcher is free (basic, ``hydra/launcher=joblib``, ``submitit_local``, ``submitit_slurm``):
the callback runs in the launching process once all jobs are back. A sweep whose jobs finished
elsewhere is compared again with::

    python -m experiments.verified_training <sweep_dir> [--kind linnos]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)

SEED_KEYS = ("train.seed", "data.seed", "seed")
# generic: the table; linnos: + the published figures and goals; loops: + goals against normal;
# synthetic: + OOD degradation and the correlation figure; domain: + decided per run
KINDS = ("generic", "synthetic", "linnos", "loops", "domain")
# Ouroboros (MLSys 2023), LinnOS LatPredictor: accuracy ~0.998; wall times per loop variant (s).
PUBLISHED_LINNOS = {"accuracy": 0.998, "time_s": {"normal": 2, "vanilla": 119, "spec_data": 55, "early_rejection": 66}}
# (column, summary getter) for every job row
METRICS = ("test_accuracy", "test_rmse", "test_mape", "cex_accuracy", "verified", "verified_volume",
           "time_to_verified_s", "wall_time_s", "train_time_s", "rounds", "counterexamples")  # fmt: skip


def _overrides(job_dir: Path) -> dict[str, str]:
    path = job_dir / ".hydra" / "overrides.yaml"
    if not path.exists():
        return {}
    out = {}
    for item in yaml.safe_load(path.read_text()) or []:
        key, _, value = str(item).partition("=")
        out[key.lstrip("+~")] = value
    return out


def job_row(job_dir: Path) -> dict[str, Any] | None:
    """One job's summary flattened into a table row (None when the job left no summary)."""
    path = job_dir / "summary.json"
    if not path.exists():
        return None
    s = json.loads(path.read_text())
    row: dict[str, Any] = dict(_overrides(job_dir))
    row.update(
        job=job_dir.name,
        dataset=s["data"],
        loop=s["loop"],
        test_accuracy=s["test"]["accuracy"],
        test_rmse=s["test"]["rmse"],
        test_mape=s["test"]["mape"],
        cex_accuracy=s.get("counterexample_accuracy"),
        verified=float(bool(s.get("verified"))),
        verified_volume=s.get("verified_volume"),
        time_to_verified_s=s.get("time_to_verified_s"),
        wall_time_s=s.get("wall_time_s"),
        train_time_s=s.get("train_time_s"),
        rounds=s.get("rounds"),
        counterexamples=s.get("counterexamples"),
        statuses=" ".join(v["status"] for v in s.get("verdicts", [])),
        decided=all(v["status"] in ("VERIFIED", "FALSIFIED") for v in s.get("verdicts", []))
        and bool(s.get("verdicts")),
        final_verify_s=sum(v["time_s"] or 0.0 for v in s.get("verdicts", [])),
        stop_reason=s.get("stop_reason"),
    )
    return row


def collect(sweep_dir: str | Path) -> pd.DataFrame:
    """Every finished job under ``sweep_dir`` (Hydra's numbered job directories), one row each."""
    if not Path(sweep_dir).is_dir():
        raise FileNotFoundError(f"no sweep directory {sweep_dir}")
    jobs = sorted(
        (d for d in Path(sweep_dir).iterdir() if d.is_dir()),
        key=lambda p: (not p.name.isdigit(), int(p.name) if p.name.isdigit() else 0, p.name),
    )
    rows = [r for d in jobs for r in [job_row(d)] if r]
    if not rows:
        raise FileNotFoundError(f"no job under {sweep_dir} has a summary.json")
    return pd.DataFrame(rows)


def group_keys(df: pd.DataFrame) -> list[str]:
    """The override keys that vary across jobs, seeds excepted (those are averaged over)."""
    keys = [c for c in df.columns if "." in c and c not in SEED_KEYS and c != "run_dir"]
    varying = [k for k in keys if df[k].astype(str).nunique() > 1]
    return varying or ["loop"]


def _fmt(mean: float, std: float, spec: str) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "-"
    if std is None or math.isnan(std):
        return f"{mean:{spec}}"
    return f"{mean:{spec}} ± {std:{spec}}"


def aggregate(df: pd.DataFrame, keys: Sequence[str] | None = None) -> pd.DataFrame:
    """Mean and std per group; time to a verified model is averaged over the verified runs only."""
    keys = list(keys or group_keys(df))
    out = []
    for values, g in df.groupby(keys, sort=False, dropna=False):
        values = values if isinstance(values, tuple) else (values,)
        row: dict[str, Any] = dict(zip(keys, values))
        row["runs"] = len(g)
        for m in METRICS:
            col = pd.to_numeric(g[m], errors="coerce")
            row[m] = col.mean()
            row[m + "_std"] = col.std(ddof=1) if col.notna().sum() > 1 else float("nan")
        out.append(row)
    return pd.DataFrame(out)


FORMATS = {"test_accuracy": ".4f", "test_rmse": ".4g", "test_mape": ".1f", "cex_accuracy": ".3f", "verified_volume": ".3f",
           "time_to_verified_s": ".1f", "wall_time_s": ".1f", "train_time_s": ".1f", "rounds": ".1f",
           "counterexamples": ".1f"}  # fmt: skip
HEADERS = {"test_accuracy": "test acc", "test_rmse": "RMSE", "test_mape": "MAPE %", "cex_accuracy": "cex acc",
           "verified": "verified", "verified_volume": "verified vol", "time_to_verified_s": "time to verified (s)",
           "wall_time_s": "wall (s)", "train_time_s": "train (s)", "rounds": "rounds",
           "counterexamples": "cex"}  # fmt: skip


def markdown_table(agg: pd.DataFrame, keys: Sequence[str], metrics: Sequence[str] = METRICS) -> str:
    """``mean ± std`` per metric; ``verified`` counts the runs that ended VERIFIED, and the time to a
    verified model is averaged over those runs."""
    head = [*keys, "runs", *(HEADERS[m] for m in metrics)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in agg.iterrows():
        cells = [str(r[k]) for k in keys] + [str(int(r["runs"]))]
        cells += [f"{round(r[m] * r['runs'])}/{int(r['runs'])}" if m == "verified" else _fmt(r[m], r[m + "_std"], FORMATS[m])
                  for m in metrics]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_title(metric: str, keys: Sequence[str], df: pd.DataFrame) -> str:
    """What the plot compares, from the swept keys (the sweep folder's name is only a time stamp)."""
    seeds = [k for k in SEED_KEYS if k in df.columns and df[k].astype(str).nunique() > 1]
    over = f", mean ± std over {', '.join(seeds)}" if seeds else ""
    return f"{HEADERS[metric]} by {' / '.join(keys)} ({len(df)} runs{over})"


def _bar(agg: pd.DataFrame, keys: Sequence[str], metric: str, path: Path, title: str) -> None:
    labels = [" / ".join(str(r[k]) for k in keys) for _, r in agg.iterrows()]
    fig, ax = plt.subplots(figsize=(max(5, 0.55 * len(labels) + 2), 3.8))
    ax.bar(range(len(labels)), agg[metric].fillna(0), yerr=agg[metric + "_std"].fillna(0), capsize=3,
           color="tab:blue", alpha=0.8)  # fmt: skip
    ax.set_xticks(range(len(labels)), labels, rotation=40, ha="right", fontsize=8)
    ax.set(xlabel=" / ".join(keys), ylabel=HEADERS[metric], title=title)
    if metric == "test_accuracy":
        lo = float(np.nanmin(agg[metric] - agg[metric + "_std"].fillna(0)))
        ax.set_ylim(max(0.0, lo - 0.01), 1.0)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _goals(agg: pd.DataFrame, published: dict[str, Any] | None = None) -> str:
    """Each loop variant against the normal model (the issue's goals), beside published figures."""
    if "loop" not in agg.columns and "train.loop" not in agg.columns:
        return ""
    loop_col = "train.loop" if "train.loop" in agg.columns else "loop"
    normal = agg[agg[loop_col] == "normal"]
    if normal.empty:
        return ""
    base_acc, base_wall = float(normal["test_accuracy"].iloc[0]), float(normal["wall_time_s"].iloc[0])
    base_train = float(normal["train_time_s"].iloc[0])
    pub = published or {"accuracy": "-", "time_s": {}}
    head = (
        "| loop | test acc (ours) | published acc | time to verified (s, ours) | published time (s) | "
        "ratio to normal wall | acc − normal | cex acc | goals met |"
    )
    lines = [head, "|---|---|---|---|---|---|---|---|---|"]
    for _, r in agg.iterrows():
        loop = r[loop_col]
        t = r["time_to_verified_s"] if loop != "normal" else r["wall_time_s"]
        ratio = t / base_wall if not math.isnan(t) else float("nan")
        d_acc = r["test_accuracy"] - base_acc
        ok = loop != "normal" and r["verified"] == 1.0 and ratio <= 3 and d_acc >= -0.002 and r["cex_accuracy"] == 1.0
        t_txt, ratio_txt = (f"{t:.1f}", f"{ratio:.2f}") if not math.isnan(t) else ("not verified", "-")
        if loop != "normal" and not math.isnan(t) and r["verified"] < 1.0:
            t_txt += f" ({round(r['verified'] * r['runs'])}/{int(r['runs'])} runs verified)"
        lines.append(f"| {loop} | {r['test_accuracy']:.4f} | {pub['accuracy']} | {t_txt} | "
                     f"{pub['time_s'].get(loop, '-')} | {ratio_txt} | {d_acc:+.4f} | "
                     f"{_fmt(r['cex_accuracy'], float('nan'), '.3f')} | {'yes' if ok else ('-' if loop == 'normal' else 'no')} |")  # fmt: skip
    note = (f"\nNormal training: {base_wall:.1f} s wall ({base_train:.1f} s in train steps, JIT compile included). "
            "Goal per correcting loop: verified in <= 3x the normal wall time, test accuracy within 0.002 of "
            "normal, counterexample accuracy 1.0 (all runs; mean over seeds).\n")  # fmt: skip
    return "\n".join(lines) + "\n" + note


def _decided_table(df: pd.DataFrame) -> str:
    lines = ["| job | loop | seed | final verdicts | decided | verifier time, last round (s) | rounds | wall (s) |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for _, r in df.iterrows():
        lines.append(f"| {r['job']} | {r['loop']} | {r.get('train.seed', '-')} | {r['statuses']} | "
                     f"{'yes' if r['decided'] else 'no'} | {r['final_verify_s']:.1f} | {r['rounds']} | {r['wall_time_s']:.1f} |")  # fmt: skip
    return "\n".join(lines)


def _ood_table(df: pd.DataFrame) -> str:
    """Synthetic: accuracy on the random split vs the OOD split per app and loop (degradation)."""
    split_col = next((c for c in ("data.split", "data") if c in df.columns and df[c].astype(str).nunique() > 1), None)
    if split_col is None or "data.app" not in df.columns:
        return ""
    loop_col = "train.loop" if "train.loop" in df.columns else "loop"
    piv = df.groupby(["data.app", loop_col, split_col])["test_accuracy"].mean().unstack(split_col)
    if piv.shape[1] != 2:
        return ""
    a, b = sorted(piv.columns, key=lambda c: "ood" in str(c))
    lines = [f"| app | loop | acc ({a}) | acc ({b}) | drop |", "|---|---|---|---|---|"]
    for (app, loop), r in piv.iterrows():
        lines.append(f"| {app} | {loop} | {r[a]:.4f} | {r[b]:.4f} | {r[a] - r[b]:+.4f} |")
    return "\n".join(lines)


def shown_metrics(df: pd.DataFrame, agg: pd.DataFrame) -> list[str]:
    """The metrics some job has; the verification ones only when some job verified anything."""
    verifying = df["statuses"].astype(str).str.strip().ne("").any()
    return [m for m in METRICS if agg[m].notna().any()
            and (verifying or m not in ("verified", "rounds", "counterexamples"))]  # fmt: skip


def best_line(agg: pd.DataFrame, keys: Sequence[str]) -> str:
    """Which is best: the group of highest mean test accuracy."""
    best = agg.loc[agg["test_accuracy"].idxmax()]
    settings = " ".join(f"{k}={best[k]}" for k in keys)
    return f"best: {settings}: test accuracy {_fmt(best['test_accuracy'], best['test_accuracy_std'], '.4f')}"


def report(sweep_dir: str | Path, kind: str = "generic") -> str:
    """Collect, aggregate and write ``results.csv``, ``comparison.md`` and plots; returns the markdown.

    The generic comparison lists the best test accuracy first; the paper kinds keep the sweep's
    order (normal training first, as their goal tables read)."""
    sweep_dir = Path(sweep_dir)
    df = collect(sweep_dir)
    keys = group_keys(df)
    agg = aggregate(df, keys)
    if kind == "generic":
        agg = agg.sort_values("test_accuracy", ascending=False, kind="stable").reset_index(drop=True)
    df.to_csv(sweep_dir / "results.csv", index=False)
    agg.to_csv(sweep_dir / "aggregate.csv", index=False)
    parts = [f"# {len(df)} runs of {sweep_dir}, grouped by {', '.join(keys)} (mean ± std over seeds)\n",
             markdown_table(agg, keys, shown_metrics(df, agg)), "", best_line(agg, keys)]  # fmt: skip
    if kind in ("linnos", "loops"):
        title = "Beside the published Ouroboros figures" if kind == "linnos" else "Against the normal model"
        parts += [f"\n## {title}\n", _goals(agg, PUBLISHED_LINNOS if kind == "linnos" else None)]
    if kind == "domain":
        parts += ["\n## Per run: decided? (VERIFIED or FALSIFIED for every spec) and verifier time of the last round\n",
                  _decided_table(df)]  # fmt: skip
    if kind == "synthetic":
        ood = _ood_table(df)
        if ood:
            parts += ["\n## Distribution shift (train low interference, test high)\n", ood]
        corr = _correlation_figure(sweep_dir)
        if corr:
            parts += [f"\nCorrelation figure: `{corr.name}`"]
    text = "\n".join(parts) + "\n"
    (sweep_dir / "comparison.md").write_text(text)
    for metric in ("test_accuracy", "time_to_verified_s", "cex_accuracy"):
        if agg[metric].notna().any():
            _bar(agg, keys, metric, sweep_dir / f"{metric}.png", plot_title(metric, keys, df))
    return text


def _correlation_figure(out: Path) -> Path | None:
    """The paper's Figure 2 on the built-in data: Pearson r of latency per feature and app."""
    from vpals_jax.data import schema, synthetic
    from vpals_jax.data.correlation import correlation_table, plot_correlations

    frames = {app: synthetic.generate(app, 5000, seed=0) for app in synthetic.APPS}
    table = correlation_table(frames, schema.DEFAULT_TARGET, schema.FEATURES)
    table.round(4).to_csv(out / "correlations.csv")
    return plot_correlations(table, out / "correlations.png", title="Pearson r of latency_p50_ms (synthetic, n=5000)")


class AggregateSweep(Callback):
    """Hydra callback: compare the jobs of the sweep directory once every job of the multirun is back."""

    def __init__(self, kind: str = "generic"):
        if kind not in KINDS:
            raise ValueError(f"AggregateSweep: kind must be one of {KINDS}, got {kind!r}")
        self.kind = kind

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            text = report(sweep_dir, self.kind)
        except FileNotFoundError as e:
            log.error("no comparison written: %s", e)
            return
        print(text)
        print(f"comparison.md, results.csv and plots in {sweep_dir}")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.verified_training", description=__doc__.splitlines()[0])
    p.add_argument("sweep_dir", help="a Hydra multirun directory (holds one numbered directory per job)")
    p.add_argument("--kind", default="generic", choices=KINDS)
    args = p.parse_args(argv)
    try:
        print(report(args.sweep_dir, args.kind))
    except FileNotFoundError as e:
        print(f"verified_training: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
