"""Sweeps: a two-seed multirun aggregates into mean ± std, every multirun writes its comparison
and labelled plots, the submitit_local launcher runs a tiny sweep, and a relaunched sweep resumes
every job from its checkpoint: finished jobs train no epoch again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from helpers import make_table

from experiments.verified_training import aggregate, collect, group_keys, markdown_table, plot_title

ROOT = Path(__file__).resolve().parents[1]


def rows(seed_acc: dict[tuple[str, int], float]) -> pd.DataFrame:
    return pd.DataFrame([
        {"train.loop": loop, "train.seed": str(seed), "test_accuracy": acc, "test_rmse": 1.0, "test_mape": 5.0,
         "cex_accuracy": 1.0, "verified": 1.0, "verified_volume": 1.0, "time_to_verified_s": 10.0 + seed,
         "wall_time_s": 12.0, "train_time_s": 5.0, "rounds": 2, "counterexamples": 4}
        for (loop, seed), acc in seed_acc.items()
    ])  # fmt: skip


def test_aggregation_of_a_two_seed_sweep_is_mean_and_std_per_group():
    df = rows({("normal", 0): 0.90, ("normal", 1): 0.94, ("spec_data", 0): 0.80, ("spec_data", 1): 0.80})
    assert group_keys(df) == ["train.loop"]  # the seed is averaged over, not grouped by
    agg = aggregate(df)
    normal = agg[agg["train.loop"] == "normal"].iloc[0]
    assert normal["runs"] == 2 and normal["test_accuracy"] == pytest.approx(0.92)
    assert normal["test_accuracy_std"] == pytest.approx(0.0282843, rel=1e-5)  # sample std
    assert normal["time_to_verified_s"] == pytest.approx(10.5)
    table = markdown_table(agg, ["train.loop"])
    assert "| normal | 2 | 0.9200 ± 0.0283 |" in table and "| spec_data | 2 | 0.8000 ± 0.0000 |" in table


def multirun(
    tmp_path: Path, sweep: Path, *extra: str, timeout: int = 240, code: int = 0
) -> subprocess.CompletedProcess:
    """A two-seed sweep on a small table; the comparison callback comes from conf/train.yaml."""
    csv = tmp_path / "table.csv"
    if not csv.exists():
        make_table(n=200).to_csv(csv, index=False)
    cmd = [
        sys.executable, "-m", "vpals_jax.train", "-m", "data=table", f"data.path={csv}", "model.width=8",
        "train.batch_size=50", "train.progress=false", "train.resume=true", "train.seed=0,1", f"hydra.sweep.dir={sweep}",
        *extra,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == code, proc.stderr[-3000:]
    return proc


def epochs_logged(job: Path) -> list[int]:
    records = [json.loads(line) for line in (job / "metrics.jsonl").read_text().splitlines()]
    return [r["epoch"] for r in records if "train" in r]


def test_submitit_local_sweep_aggregates_and_resumes(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="hydra-submitit-launcher is not installed")
    sweep = tmp_path / "sweep"
    launcher = ["hydra/launcher=submitit_local", "hydra.launcher.timeout_min=5", "hydra.launcher.mem_gb=null"]
    multirun(tmp_path, sweep, "train.epochs=1", *launcher)
    assert (sweep / ".submitit").is_dir()  # the jobs really went through submitit
    df = collect(sweep)
    assert sorted(df["train.seed"]) == ["0", "1"]
    assert "± " in (sweep / "comparison.md").read_text()
    first_epoch = {job: (sweep / job / "metrics.jsonl").read_text().splitlines()[0] for job in ("0", "1")}
    # A killed or requeued job is the same job started again in the same directory: it resumes.
    multirun(tmp_path, sweep, "train.epochs=3", *launcher)
    for job in ("0", "1"):
        assert epochs_logged(sweep / job) == [1, 2, 3]
        assert json.loads((sweep / job / "checkpoint" / "meta.json").read_text())["epoch"] == 3
        # epoch 1 was not trained again: its record (with its timings) is the first run's
        assert (sweep / job / "metrics.jsonl").read_text().splitlines()[0] == first_epoch[job]
    logs = "".join(p.read_text() for p in sweep.rglob("*.log")) + "".join(p.read_text() for p in sweep.rglob("*.out"))
    assert logs.count("resumed") >= 2


def test_every_multirun_writes_its_comparison_and_resuming_a_crashed_sweep_skips_finished_jobs(tmp_path):
    """A plain sweep (basic launcher, no experiment config) over two tables, one missing at first:
    the sweep crashes at its second job; relaunched as written, the finished job trains nothing
    again, the crashed one runs, and the comparison names the best setting."""
    sweep, good, late = tmp_path / "sweep", tmp_path / "a.csv", tmp_path / "b.csv"
    make_table(n=200).to_csv(good, index=False)
    tables = f"data.path={good},{late}"
    proc = multirun(tmp_path, sweep, "train.epochs=2", tables, "train.seed=0", code=2)
    assert "vpals-train: error: " in proc.stderr and not (sweep / "comparison.md").exists()
    first = (sweep / "0" / "metrics.jsonl").read_text()
    make_table(n=200, seed=1).to_csv(late, index=False)
    proc = multirun(tmp_path, sweep, "train.epochs=2", tables, "train.seed=0")
    assert (sweep / "0" / "metrics.jsonl").read_text() == first  # finished: no epoch trained again
    assert "resumed" in "".join(p.read_text() for p in (sweep / "0").glob("*.log"))
    assert epochs_logged(sweep / "1") == [1, 2]
    text = (sweep / "comparison.md").read_text()
    assert text.startswith(f"# 2 runs of {sweep}, grouped by data.path") and "| test acc |" in text
    accuracy = {str(p): json.loads((sweep / j / "summary.json").read_text())["test"]["accuracy"]
                for j, p in (("0", good), ("1", late))}  # fmt: skip
    best = max(accuracy, key=accuracy.get)
    assert f"best: data.path={best}: test accuracy {accuracy[best]:.4f}" in text and text in proc.stdout
    assert (sweep / "test_accuracy.png").is_file() and (sweep / "results.csv").is_file()


def test_plot_titles_name_the_swept_keys_not_the_folder():
    df = rows({("normal", 0): 0.9, ("normal", 1): 0.94, ("spec_data", 0): 0.8, ("spec_data", 1): 0.8})
    assert (
        plot_title("test_accuracy", ["train.loop"], df) == "test acc by train.loop (4 runs, mean ± std over train.seed)"
    )
    assert plot_title("wall_time_s", ["model.width", "optim.lr"], df[df["train.seed"] == "0"]) == (
        "wall (s) by model.width / optim.lr (2 runs)"
    )
