"""Classical models on the Auto-MPG and Heart splits the baselines table uses: how hard is each split?

::

    python -m experiments.classical_references [--seeds 0,1,2,3,4] [--out results/classical_references]

Why: ``docs/baselines.md`` compares our networks with published figures that were chosen on the
test rows. Ridge / logistic regression, a random forest and gradient boosting, fitted with their
library defaults and scored once on the same test rows (``vpals_jax.data.load_dataset``, so the
very splits of ``experiment=monotone_baselines``), say what these splits allow without any
selection on the test rows. None of them is monotone; they are a yardstick, not a competitor.

Auto-MPG is scored by test MSE (miles per gallon squared) on COMET's files (``data.split=given``)
and on LMN's random 80/20 splits of both files (``data.split=random data.seed=s``); Heart by test
accuracy on COMET's files. Writes ``table.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from vpals_jax.config import DataConfig
from vpals_jax.data.dataset import load_dataset


def models(classify: bool, seed: int) -> dict:
    """Library defaults: nothing here is tuned, so nothing can have been tuned on the test rows."""
    if classify:
        return {"logistic regression": make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)),
                "random forest": RandomForestClassifier(500, random_state=seed),
                "gradient boosting": GradientBoostingClassifier(random_state=seed)}  # fmt: skip
    return {"ridge regression": make_pipeline(StandardScaler(), Ridge()),
            "random forest": RandomForestRegressor(500, random_state=seed),
            "gradient boosting": GradientBoostingRegressor(random_state=seed)}  # fmt: skip


def score(source: str, split: str, seed: int) -> dict[str, float]:
    data = load_dataset(DataConfig(source=source, app=source, split=split, seed=seed, calibration_fraction=0.0))
    classify = source == "heart"
    out = {}
    for name, model in models(classify, seed).items():
        model.fit(data.x_train, data.y_train)
        pred = model.predict(data.x_test)
        out[name] = float(np.mean(pred == data.y_test) if classify else np.mean((pred - data.y_test) ** 2))
    return out


def seed_list(text: str) -> list[int]:
    """``--seeds 0,1,2``: argparse turns a ValueError here into one line and exit code 2."""
    return [int(s) for s in text.split(",")]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=seed_list, default="0,1,2,3,4", help="comma-separated integers")
    ap.add_argument("--out", default="results/classical_references")
    args = ap.parse_args(argv)
    seeds = args.seeds
    rows = []
    for table, source, split, metric in (("Auto-MPG, COMET's files", "auto_mpg", "given", "test MSE"),
                                         ("Auto-MPG, random 80/20 splits", "auto_mpg", "random", "test MSE"),
                                         ("Heart, COMET's files", "heart", "given", "test accuracy")):  # fmt: skip
        per_seed = pd.DataFrame([score(source, split, s) for s in seeds])
        for name in per_seed:
            rows.append({"table": table, "metric": metric, "model": name, "mean": per_seed[name].mean(),
                         "std": per_seed[name].std(ddof=1) if len(seeds) > 1 else 0.0, "seeds": len(seeds)})  # fmt: skip
        print(f"{table}: done", flush=True)
    table = pd.DataFrame(rows).to_markdown(index=False, floatfmt=".3f")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
