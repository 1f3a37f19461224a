"""Which latency directions the real redis / nginx / mariadb tables support, feature by feature.

::

    python -m experiments.real_directions [--apps redis,nginx,mariadb] [--out results/real_directions]

For every candidate feature (the 12 PSI shares, ``cpu_quota_cores``, ``mem_limit_mb``) two kinds of
evidence, because neither alone is enough on 220 noisy rows:

* Spearman rho with the target over all rows (a rank statistic: the tables' latencies are skewed
  and bimodal), with its two-sided p-value.
* Pairs of rows at equal configuration (same quota and memory limit; for a configuration feature,
  the same value of the other one) in which the feature rises: the share in which latency falls by
  more than the noise (against "increasing") and the share in which it rises by more than the
  noise (against "decreasing"). Pairs that differ by less than the noise count as neither. The
  same shares are also taken over the pairs whose other varying PSI features are close (within
  ``--close`` of their 5-95 % range), so that a feature is not credited with what a correlated one does.

The noise is the median |latency difference| between baseline rows (no co-runner) at equal
configuration: nominal repeats, which differ only by what the harness does not control.

A direction is *supported* when all of them agree: rho has its sign with p < ``--alpha``, and
fewer pairs violate it than the opposite direction, both among configuration pairs and among
close pairs. With fewer than ``--min-pairs`` close pairs the feature cannot be told apart from the
other PSI and gets no verdict; a constant column gives no evidence either way. Prints a markdown table and writes ``table.md`` and ``directions.csv`` to ``--out``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from vpals_jax.data import schema
from vpals_jax.data.correlation import pearson

CONFIG = ("cpu_quota_cores", "mem_limit_mb")
PSI = tuple(f for f in schema.FEATURES if "_psi_" in f)
CANDIDATES = (*PSI, *CONFIG)
# Two PSI columns ranked alike this closely measure the same stalls (cg cpu some == full when one
# thread runs); holding one fixed would hold the other fixed too, so they are not conditioned on.
SAME_SIGNAL_RHO = 0.9


def spearman(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Spearman rho (Pearson r of the ranks) and its two-sided p-value from the t approximation."""
    rho = pearson(stats.rankdata(x), stats.rankdata(y))
    n = len(x)
    if not np.isfinite(rho) or n < 3:
        return rho, float("nan")
    t = rho * np.sqrt((n - 2) / max(1.0 - rho * rho, 1e-300))
    return rho, float(2.0 * stats.t.sf(abs(t), n - 2))


def resolution(y: np.ndarray) -> float:
    """Smallest positive difference between two measured values: what the table resolves."""
    gaps = np.diff(np.unique(np.asarray(y, dtype=float)))
    return float(gaps.min()) if gaps.size else float("nan")


def repeat_noise(df: pd.DataFrame, target: str, baseline: str = "baseline") -> float:
    """Median |target difference| between baseline rows at equal configuration (nominal repeats)."""
    diffs = []
    for _, g in df[df[baseline].astype(bool)].groupby(list(CONFIG)):
        y = g[target].to_numpy(dtype=float)
        i, j = np.triu_indices(len(y), 1)
        diffs.append(np.abs(y[i] - y[j]))
    d = np.concatenate(diffs) if diffs else np.empty(0)
    if d.size == 0:
        raise ValueError("no two baseline rows share a configuration: give the noise explicitly")
    return float(np.median(d))


def _pairs(df: pd.DataFrame, feature: str, target: str, others: Sequence[str], close: float):
    """Latency change over the configuration pairs in which ``feature`` rises, and which are close."""
    spread = {g: np.subtract(*np.percentile(df[g], [95, 5])) for g in others}
    dy, near = [], []
    for _, g in df.groupby([c for c in CONFIG if c != feature]):
        x = g[feature].to_numpy(dtype=float)
        i, j = np.triu_indices(len(x), 1)
        lo, hi = np.where(x[i] < x[j], i, j), np.where(x[i] < x[j], j, i)
        keep = x[i] != x[j]
        lo, hi = lo[keep], hi[keep]
        y = g[target].to_numpy(dtype=float)
        dy.append(y[hi] - y[lo])
        ok = np.ones(len(lo), dtype=bool)
        for o in others:
            v = g[o].to_numpy(dtype=float)
            ok &= np.abs(v[hi] - v[lo]) <= close * spread[o]
        near.append(ok)
    return np.concatenate(dy), np.concatenate(near)


def _shares(dy: np.ndarray, noise: float) -> tuple[float, float]:
    """(share falling by more than the noise, share rising by more than it); NaN without pairs."""
    if dy.size == 0:
        return float("nan"), float("nan")
    return float(np.mean(dy < -noise)), float(np.mean(dy > noise))


def _agrees(sign: int, fall: float, rise: float) -> bool:
    """Fewer pairs against direction ``sign`` than against the opposite one."""
    against, opposite = (fall, rise) if sign > 0 else (rise, fall)
    return bool(against < opposite)


def direction_table(
    df: pd.DataFrame,
    target: str,
    noise: float,
    features: Sequence[str] = CANDIDATES,
    close: float = 0.1,
    alpha: float = 0.01,
    min_pairs: int = 30,
) -> pd.DataFrame:
    """One row per feature: Spearman rho, pair shares, and the verdict ``increasing``,
    ``decreasing``, ``no evidence`` or ``constant``."""
    varying = [f for f in features if df[f].nunique() > 1]
    rows = []
    for f in features:
        row: dict = {"feature": f}
        if f not in varying:
            rows.append({**row, "verdict": "constant"})
            continue
        rho, p = spearman(df[f].to_numpy(dtype=float), df[target].to_numpy(dtype=float))
        others = [
            o for o in varying
            if o != f and o not in CONFIG and abs(spearman(df[f].to_numpy(float), df[o].to_numpy(float))[0]) < SAME_SIGNAL_RHO
        ]  # fmt: skip
        dy, near = _pairs(df, f, target, others, close)
        fall, rise = _shares(dy, noise)
        fall_c, rise_c = _shares(dy[near], noise)
        sign = int(np.sign(rho)) if p < alpha else 0
        ok = sign != 0 and near.sum() >= min_pairs and _agrees(sign, fall, rise) and _agrees(sign, fall_c, rise_c)
        verdict = {1: "increasing", -1: "decreasing"}[sign] if ok else "no evidence"
        rows.append({
            **row, "spearman": rho, "p": p, "pairs": dy.size, "falls": fall, "rises": rise,
            "close_pairs": int(near.sum()), "close_falls": fall_c, "close_rises": rise_c, "verdict": verdict,
        })  # fmt: skip
    return pd.DataFrame(rows)


def analyse(apps: Sequence[str], target: str, data_dir: Path, **kw) -> pd.DataFrame:
    """``direction_table`` for each real app, with its noise, resolution and the schema's direction."""
    out = []
    for app in apps:
        df = pd.read_csv(data_dir / f"{app}.csv")
        noise = repeat_noise(df, target)
        t = direction_table(df, target, noise, **kw)
        t.insert(0, "app", app)
        t["noise_ms"], t["resolution_ms"] = noise, resolution(df[target])
        t["schema"] = [
            {1: "increasing", -1: "decreasing"}[schema.COLUMN_BY_NAME[f].latency_direction] for f in t.feature
        ]
        out.append(t)
    return pd.concat(out, ignore_index=True)


def markdown(table: pd.DataFrame) -> str:
    """The table as markdown, shares in %, one line of noise and resolution per app first."""
    head = [
        f"- {app}: noise {g.noise_ms.iloc[0]:.3g} ms (median |dy| of baseline repeats), "
        f"resolution {g.resolution_ms.iloc[0]:.3g} ms"
        for app, g in table.groupby("app", sort=False)
    ]
    t = table.drop(columns=["noise_ms", "resolution_ms"]).astype(object)
    cell = {"spearman": "{:+.2f}", "p": "{:.1g}", "pairs": "{:.0f}", "close_pairs": "{:.0f}"}
    for c in t.columns.drop(["app", "feature", "verdict", "schema"]):
        fmt = cell.get(c, "{:.0%}")  # the rest are shares of pairs
        t[c] = [fmt.format(v) if pd.notna(v) else "" for v in t[c]]
    t.columns = [c.replace("_", " ") for c in t.columns]
    legend = (
        "falls / rises: share of the pairs at equal configuration in which the feature rises and latency falls / "
        "rises by more than the noise; close: the same over the pairs whose other varying PSI are close."
    )
    return "\n".join(head) + "\n\n" + legend + "\n\n" + t.to_markdown(index=False, disable_numparse=True)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m experiments.real_directions", description=__doc__.splitlines()[0])
    ap.add_argument("--apps", default="redis,nginx,mariadb")
    ap.add_argument("--data-dir", default="data/real")
    ap.add_argument("--target", default=schema.DEFAULT_TARGET, choices=schema.TARGETS)
    ap.add_argument("--close", type=float, default=0.1, help="other PSI within this share of their 5-95%% range")
    ap.add_argument("--alpha", type=float, default=0.01, help="p-value the Spearman rho must beat")
    ap.add_argument("--min-pairs", type=int, default=30, help="close pairs needed for them to count")
    ap.add_argument("--out", default="results/real_directions")
    args = ap.parse_args(argv)
    table = analyse(
        args.apps.split(","),
        args.target,
        Path(args.data_dir),
        close=args.close,
        alpha=args.alpha,
        min_pairs=args.min_pairs,
    )
    text = markdown(table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "directions.csv", index=False)
    (out / "table.md").write_text(text + "\n")
    print(text)
    print(f"wrote {out / 'table.md'} and {out / 'directions.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
