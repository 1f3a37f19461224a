"""Correlation report: Pearson r of a target against every feature, per application.

``python -m vpals_jax.data.correlation --out DIR [--n N --seed S --target latency_p50_ms]``
writes ``DIR/correlations.csv`` (rows: features, columns: apps) and ``DIR/correlations.png``
(a grouped bar plot like the paper's Figure 2) for the five synthetic applications.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from vpals_jax.data import schema


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson r of two 1-D arrays; NaN (silently) when either is constant or too short."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size < 2 or np.ptp(x) == 0.0 or np.ptp(y) == 0.0:
        return float("nan")
    xc = x - x.mean()
    yc = y - y.mean()
    denom = np.sqrt(np.dot(xc, xc)) * np.sqrt(np.dot(yc, yc))
    if not np.isfinite(denom) or denom == 0.0:
        return float("nan")
    return float(np.clip(np.dot(xc, yc) / denom, -1.0, 1.0))


def correlation_table(frames: dict[str, pd.DataFrame], target: str, features: Sequence[str]) -> pd.DataFrame:
    """Pearson r of ``target`` vs each feature: one row per feature, one column per app.

    Constant features (or a constant target) give NaN without warnings. A missing column raises
    ``ValueError`` naming the app and the column.
    """
    table: dict[str, list[float]] = {}
    for app, df in frames.items():
        missing = [c for c in (target, *features) if c not in df.columns]
        if missing:
            raise ValueError(f"app {app!r}: missing column(s) {', '.join(missing)}")
        y = df[target].to_numpy(dtype=float)
        table[app] = [pearson(df[f].to_numpy(dtype=float), y) for f in features]
    out = pd.DataFrame(table, index=pd.Index(list(features), name="feature"))
    out.columns.name = "app"
    return out


def plot_correlations(table: pd.DataFrame, path: str | Path, title: str | None = None) -> Path:
    """Grouped bar plot (features on the x axis, one bar per app) with lines at 0 and +-0.5."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    feats = list(table.index)
    apps = list(table.columns)
    x = np.arange(len(feats))
    width = 0.8 / max(len(apps), 1)
    fig, ax = plt.subplots(figsize=(max(8.0, 0.75 * len(feats) + 2.0), 5.0))
    for i, app in enumerate(apps):
        vals = table[app].to_numpy(dtype=float)
        ax.bar(x - 0.4 + (i + 0.5) * width, np.nan_to_num(vals, nan=0.0), width, label=app)
    ax.axhline(0.0, color="black", linewidth=0.8)
    for level in (0.5, -0.5):
        ax.axhline(level, color="grey", linestyle="--", linewidth=0.8)
    labels = [f.removesuffix("_pct").replace("_psi_", " ").replace("_", " ") for f in feats]
    ax.set_xticks(x)
    ax.set_xticklabels(labels, rotation=45, ha="right", fontsize=8)
    ax.set_ylim(-1.05, 1.05)
    ax.set_ylabel("Pearson r")
    ax.set_title(title or "Correlation of latency with each feature")
    ax.legend(ncol=min(len(apps), 5), fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    from vpals_jax.data import synthetic

    p = argparse.ArgumentParser(prog="python -m vpals_jax.data.correlation", description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--n", type=int, default=5000, help="rows per app (default 5000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--target", default=schema.DEFAULT_TARGET, choices=schema.TARGETS)
    args = p.parse_args(argv)
    if args.n < 2:
        p.error(f"--n must be >= 2, got {args.n}")
    frames = {app: synthetic.generate(app, args.n, seed=args.seed) for app in synthetic.APPS}
    table = correlation_table(frames, args.target, schema.FEATURES)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table.round(4).to_csv(out / "correlations.csv")
    plot_correlations(table, out / "correlations.png", title=f"Pearson r of {args.target} (synthetic, n={args.n})")
    print(table.round(2).to_string())
    print(f"wrote {out / 'correlations.csv'} and {out / 'correlations.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
