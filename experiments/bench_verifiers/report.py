"""Aggregate benchmark jobs: results table, wrong verdicts, summary, cactus and scaling plots."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

DECIDED = ("VERIFIED", "FALSIFIED")
EXACT = "milp"  # the complete backend (every claim rigorously confirmed): the reference where truth is unknown


def load_results(jobs_dir: Path) -> pd.DataFrame:
    rows = [json.loads(line) for p in sorted(jobs_dir.glob("*/results.jsonl")) for line in p.read_text().splitlines()]
    if not rows:
        raise FileNotFoundError(f"no results.jsonl under {jobs_dir}")
    return pd.DataFrame(rows)


def reference(group: pd.DataFrame) -> tuple[str | None, str]:
    """An instance's reference verdict and where it comes from: the planted or by-construction
    ground truth, else the exact MILP backend's decided verdict, else none (cross-checks only)."""
    truth = group.truth.iloc[0]
    if truth in DECIDED:
        return truth, "ground truth"
    exact = group[(group.backend == EXACT) & group.status.isin(DECIDED)] if "backend" in group else group[:0]
    if len(exact):
        return exact.status.iloc[0], f"exact MILP ({', '.join(exact.verifier)})"
    return None, "none"


def wrong_verdicts(df: pd.DataFrame) -> pd.DataFrame:
    """Contradictions between backends on one instance, and verdicts against the reference.

    Every instance has one spec and one tolerance, so a VERIFIED from one backend and a
    (re-checked) counterexample from another cannot both be right: both rows are listed. The
    reference (:func:`reference`) is ground truth where known, else the exact MILP's verdict.
    """
    wrong = []
    for name, group in df.groupby("instance"):
        proved = group[group.status == "VERIFIED"]
        refuted = group[(group.status == "FALSIFIED") & (group.counterexamples > 0)]
        if len(proved) and len(refuted):
            for _, r in proved.iterrows():
                wrong.append({**r.to_dict(), "why": f"VERIFIED but {', '.join(refuted.verifier)} found a re-checked counterexample"})  # fmt: skip
        ref, source = reference(group)
        if ref is not None:
            for _, r in group[group.status.isin(DECIDED) & (group.status != ref)].iterrows():
                wrong.append({**r.to_dict(), "why": f"{source} says {ref}"})
    return pd.DataFrame(wrong).drop_duplicates(subset=["instance", "verifier"]) if wrong else pd.DataFrame(wrong)


def suite_lines(df: pd.DataFrame, table: pd.DataFrame) -> list[str]:
    """Suite size and kinds, how verdicts were checked, and whether the ranking separates backends."""
    inst = df.drop_duplicates("instance")
    kinds = ", ".join(f"{k} {n}" for k, n in inst.kind.value_counts().sort_index().items())
    sources = pd.Series([reference(g)[1].split(" (")[0] for _, g in df.groupby("instance")]).value_counts()
    checked = ", ".join(f"{n} by {s}" for s, n in sources.items())
    best = table.sort_values("solved", ascending=False).iloc[0]
    everything = (table.solved == len(inst)).any()
    return [
        f"Suite: {len(inst)} instances ({kinds}); time limit {df.time_limit_s.max():g} s per instance and backend.",
        f"Suite references: {checked} (none: checked only across backends).",
        f"Suite ranking: best {best.verifier} solves {best.solved}/{len(inst)}; "
        + ("a backend solves everything: the suite does not separate them." if everything
           else "no backend solves everything."),
    ]  # fmt: skip


def job_walls(jobs_dir: Path) -> dict[str, float]:
    """Each job's total wall time (compilation and set-up included), by verifier label."""
    walls = [json.loads(p.read_text()) for p in sorted(jobs_dir.glob("*/job.json"))]
    return {w["verifier"]: float(w["wall_s"]) for w in walls}


def summary(df: pd.DataFrame, wrong: pd.DataFrame, walls: dict[str, float] | None = None) -> pd.DataFrame:
    rows = []
    for label, g in df.groupby("verifier"):
        solved = g[g.status.isin(DECIDED)]
        rows.append({
            "verifier": label, "instances": len(g), "solved": len(solved),
            "verified": int((g.status == "VERIFIED").sum()), "falsified": int((g.status == "FALSIFIED").sum()),
            # decided, but after the time limit once compilation is counted: a timeout under VNN-COMP's rules
            "late": int((solved.time_s > solved.time_limit_s).sum()) if "time_limit_s" in g else 0,
            "unknown/timeout": int(g.status.isin(["UNKNOWN", "TIMEOUT"]).sum()),
            "error": int((g.status == "ERROR").sum()),
            "wrong": int((wrong.verifier == label).sum()) if len(wrong) else 0,
            "median_time_s (solved)": float(solved.time_s.median()) if len(solved) else float("nan"),
            "sum_time_s": float(g.time_s.sum()),
            "compile_s": float(g.compile_s.sum()) if "compile_s" in g else float("nan"),
            "job_wall_s": (walls or {}).get(label, float("nan")),
            "total_boxes": int(g.boxes.sum()),
        })  # fmt: skip
    return pd.DataFrame(rows).sort_values(["wrong", "solved"], ascending=[True, False])


def cactus(df: pd.DataFrame, path: Path) -> None:
    """Instances decided within a time, VERIFIED and FALSIFIED apart, with the time limit drawn."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    limit = float(df.time_limit_s.max()) if "time_limit_s" in df else None
    for status, ax in zip(DECIDED, axes):
        for label, g in df.groupby("verifier"):
            times = sorted(g[g.status == status].time_s)
            ax.step(times, range(1, len(times) + 1), where="post", label=f"{label} ({len(times)})")
        if limit:
            ax.axvline(limit, color="k", ls="--", lw=1, label=f"time limit {limit:g} s")
        ax.set(xscale="log", xlabel="time per instance (s), compilation included", title=f"{status}")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    axes[0].set_ylabel("instances decided within that time")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def scaling(df: pd.DataFrame, path: Path) -> None:
    keys = [k for k in ("width", "depth", "n_inputs", "spread") if k in df]
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 4.2), sharey=True)
    for key, ax in zip(keys, np.atleast_1d(axes)):
        for label, g in df.groupby("verifier"):
            means = g.groupby(key).time_s.median()
            ax.plot(means.index, means.values, "-o", label=label)
        ax.set(xlabel=key if key != "spread" else "spread (mean region width)", yscale="log",
               title=f"median time vs {key}")  # fmt: skip
        ax.grid(alpha=0.3, which="both")
    np.atleast_1d(axes)[0].set_ylabel("time per instance (s), all verdicts")
    np.atleast_1d(axes)[-1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def ibp_crosscheck(suite_dir: Path) -> float:
    """Largest |difference| between the Ouroboros backend's interval bounds and auto_LiRPA's IBP.

    Every pre-activation of every suite network over its spec's region; the two implementations
    are independent, so agreement to 1e-5 checks both.
    """
    from experiments.bench_verifiers.suite import load_suite
    from verifiers.backends.lirpa.bounding import preactivation_bounds as lirpa_bounds
    from verifiers.bounds.interval import preactivation_bounds

    worst = 0.0
    for inst in load_suite(suite_dir):
        lo, hi = inst.spec.region.lower, inst.spec.region.upper
        for (a_lo, a_hi), (b_lo, b_hi) in zip(preactivation_bounds(inst.net, lo, hi), lirpa_bounds(inst.net, lo, hi)):
            worst = max(worst, float(np.max(np.abs(a_lo - b_lo))), float(np.max(np.abs(a_hi - b_hi))))
    return worst


def write_report(jobs_dir: Path, out_dir: Path, suite_dir: Path | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    df = load_results(jobs_dir)
    wrong = wrong_verdicts(df)
    table = summary(df, wrong, job_walls(jobs_dir))
    df.to_csv(out_dir / "results.csv", index=False)
    lines = ["# Verifier benchmark", "", *suite_lines(df, table), "",
             ("`job_wall_s`: the backend's whole job (start-up, JIT compilation, every instance); `sum_time_s`: "
              "its instance times, compilation included (`compile_s` of it); `late`: solved, but after the time "
              "limit once compilation is counted (a timeout under VNN-COMP's rules)."), "",
             table.to_markdown(index=False, floatfmt=".3g"), ""]  # fmt: skip
    if len(wrong):
        lines += ["## WRONG VERDICTS", "", wrong[["instance", "verifier", "status", "why"]].to_markdown(index=False)]
    else:
        lines += [("0 wrong verdicts: no VERIFIED was contradicted by a re-checked counterexample, and no verdict "
                   "contradicts the ground truth of planted or by-construction instances or the exact MILP.")]  # fmt: skip
    if suite_dir is not None:
        diff = ibp_crosscheck(suite_dir)
        verdict = "agree" if diff <= 1e-5 else "DISAGREE"
        lines += ["", (f"Interval bounds of every pre-activation, Ouroboros backend vs auto_LiRPA IBP, all suite "
                       f"networks over their regions: max |difference| = {diff:.2e} ({verdict} to 1e-5).")]  # fmt: skip
    (out_dir / "summary.md").write_text("\n".join(lines) + "\n")
    cactus(df, out_dir / "cactus.png")
    scaling(df, out_dir / "scaling.png")
    return table, wrong
