"""The published baselines' own scoring applied to our models: how much of their figures is selection
on the test file.

::

    python -m experiments.paper_protocol --out results/paper_protocol [--datasets auto_mpg heart]

Why: ``docs/baselines.md`` attributes most of the gap between the published Auto-MPG / Heart figures
and ours to choices made on the test rows (CMNN: hyperparameters tuned with the test file as
validation data, each run at its best test epoch, the mean of the best 5 of 10 runs; LMN: the best
test epoch). This measures that instead of arguing it. Every candidate of the selection grid
(``experiments.monotone_baselines_select``: width x learning rate, LMN's lambda on Heart) trains on
the whole training file with ``--seeds`` seeds and is scored on COMET's test file three ways:

* ``best epoch, best K of N``: CMNN's protocol; the candidate with the best such mean wins;
* ``best epoch, all N``: LMN's protocol (without its search over 100 decision thresholds on Heart);
* ``last epoch, all N``: the same candidate scored at its last epoch, nothing chosen on test rows
  but the candidate.

A diagnostic only: no figure of it is a result of ours (no verifier runs; nothing here is served).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from experiments.monotone_baselines import PUBLISHED, epoch_records
from experiments.monotone_baselines_select import MAX_EPOCHS, add_grid_args, candidates, cell, compose, grid_from_args

log = logging.getLogger(__name__)
# the metric per data set, and whether lower is better
METRIC = {"auto_mpg": ("test MSE", True), "heart": ("test acc", False)}


def curve(run_dir: Path, dataset: str) -> np.ndarray:
    """Per-epoch test metric of a run: MSE on Auto-MPG, accuracy (logit > 0) on Heart."""
    tests = [r["test"] for r in epoch_records(run_dir)]
    return np.array([t["rmse"] ** 2 if dataset == "auto_mpg" else t["accuracy"] for t in tests])


def train_candidate(dataset: str, model: str, cand: dict[str, Any], tag: str, seeds: Sequence[int], out: Path
                    ) -> list[np.ndarray]:  # fmt: skip
    """One run per seed of ``cand`` on the whole training file (skipping finished ones): their test curves."""
    from vpals_jax.train.trainer import run_training

    curves = []
    for seed in seeds:
        run_dir = out / dataset / model / tag / str(seed)
        if not (run_dir / "summary.json").exists():
            run_training(compose([*cell(dataset, model), f"train.seed={seed}", f"train.epochs={MAX_EPOCHS[dataset]}",
                                  "train.verify_at_end=false", *(f"{a}={b}" for a, b in cand.items()),
                                  f"run_dir={run_dir}"]))  # fmt: skip
        curves.append(curve(run_dir, dataset))
    return curves


def score(curves: list[np.ndarray], lower: bool, keep: int) -> dict[str, float]:
    """The three scorings of one candidate's runs (module docstring)."""
    best = np.array([c.min() if lower else c.max() for c in curves])
    kept = np.sort(best)[:keep] if lower else np.sort(best)[::-1][:keep]
    last = np.array([c[-1] for c in curves])
    return {"best_k": kept.mean(), "best_k_std": kept.std(), "best_all": best.mean(), "best_all_std": best.std(),
            "last_all": last.mean(), "last_all_std": last.std()}  # fmt: skip


def protocol(dataset: str, model: str, seeds: Sequence[int], keep: int, out: Path,
             grid: dict[str, list[Any]] | None = None) -> dict[str, Any]:  # fmt: skip
    """The candidate the papers' protocol would pick for ``model`` on ``dataset`` over ``grid`` (default:
    the selection's), with its scores."""
    _, lower = METRIC[dataset]
    rows = []
    for cand, tag in candidates(dataset, model, grid):
        rows.append({"candidate": cand, **score(train_candidate(dataset, model, cand, tag, seeds, out), lower, keep)})
        log.info("%s %s %s: %s", dataset, model, cand, {k: round(float(v), 4) for k, v in rows[-1].items() if k != "candidate"})
    pick = min(rows, key=lambda r: r["best_k"]) if lower else max(rows, key=lambda r: r["best_k"])
    return {"dataset": dataset, "model": model, **pick}


def table(rows: list[dict[str, Any]], n: int, keep: int) -> str:
    """Markdown: our models scored the papers' way, beside the published figures."""
    lines = []
    for dataset, group in pd.DataFrame(rows).groupby("dataset", sort=False):
        name, _ = METRIC[dataset]
        lines += [f"#### {dataset} ({name}, COMET's test file)", "",
                  f"| model | chosen on test | best epoch, best {keep} of {n} | best epoch, all {n} | last epoch, all {n} |",
                  "|---|---|---|---|---|"]  # fmt: skip
        for r in group.itertuples():
            cand = ", ".join(f"{k.split('.')[-1]} {v:g}" for k, v in r.candidate.items())
            lines.append(f"| {r.model} | {cand} | {r.best_k:.3f} ± {r.best_k_std:.3f} | {r.best_all:.3f} ± "
                         f"{r.best_all_std:.3f} | {r.last_all:.3f} ± {r.last_all_std:.3f} |")  # fmt: skip
        pub = [f"{m} {v:g}" + (f" ± {s:g}" if s is not None else "") + f" ({how})"
               for (d, m), (v, s, how) in PUBLISHED.items() if d == dataset]  # fmt: skip
        lines += ["", "Published: " + "; ".join(pub) + ".", ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.paper_protocol", description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="output directory (rerunning skips finished runs)")
    p.add_argument("--datasets", nargs="+", default=["auto_mpg", "heart"], choices=sorted(MAX_EPOCHS))
    p.add_argument("--models", nargs="+", default=["mlp", "cmnn", "lmn"], choices=["mlp", "cmnn", "lmn"])
    p.add_argument("--seeds", nargs="+", type=int, default=list(range(10)))
    p.add_argument("--keep", type=int, default=5, help="runs kept per candidate (CMNN: the best 5 of 10)")
    add_grid_args(p)
    args = p.parse_args(argv)
    grid = grid_from_args(p, args)
    if not 1 <= args.keep <= len(args.seeds):
        p.error(f"--keep must be between 1 and the number of seeds ({len(args.seeds)}); got {args.keep}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for noisy in ("vpals_jax", "verifiers", "jax", "absl"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    out = Path(args.out)
    rows = [protocol(d, m, args.seeds, args.keep, out, grid) for d in args.datasets for m in args.models]
    text = table(rows, len(args.seeds), args.keep)
    (out / "table.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
