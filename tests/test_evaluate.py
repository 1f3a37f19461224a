"""vpals-evaluate: a run scored on a file it never saw, through the run's own table mapping and the
runtime's statuses; ``verified`` only where a certificate's region covers the row."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import compose_train, make_table

from vpals_jax.config import ModelConfig, OptimConfig, SpecSetConfig, VerifierConfig
from vpals_jax.data import schema
from vpals_jax.data.normalizer import MinMaxNormalizer
from vpals_jax.evaluate import EvaluateConfig, evaluate_run
from vpals_jax.models import build_model
from vpals_jax.train import checkpoint as ckpt
from vpals_jax.train.steps import create_state
from vpals_jax.train.trainer import run_training
from vpals_jax.verify import verify_run

ROOT = Path(__file__).resolve().parents[1]
SUBSET = [f for f in schema.FEATURES if f != "mem_limit_mb"]
PSI_LIMIT = 25.0
# Proven over cg cpu some pressure in [0, 25] %; the bound on mem_limit_mb, which the model does
# not take, is dropped, and so is the spec on it (spec.missing_features=skip).
CERTIFIED = SpecSetConfig(
    name="subset_test", region={"default": "domain", "cg_psi_cpu_some_pct": [0.0, PSI_LIMIT], "mem_limit_mb": [512, 1024]},
    specs=[{"kind": "monotonicity", "feature": f, "direction": "increasing"} for f in schema.FEATURES if "_psi_" in f]
    + [{"kind": "monotonicity", "feature": f, "direction": "decreasing"} for f in ("cpu_quota_cores", "mem_limit_mb")]
    + [{"kind": "output_bound", "lower": 0.0}],
)  # fmt: skip


def foreign(df: pd.DataFrame) -> pd.DataFrame:
    """Rows as another tool writes them: cgroup PSI as target_*, CPU in %, memory in bytes, no app, no limit."""
    out = df[[*SUBSET, "latency_p50_ms"]].copy()
    out["cpu_usage_cores"] *= 100
    out["mem_usage_mb"] *= 2**20
    out = out.rename(columns={c: c.replace("cg_", "target_", 1) for c in out.columns if c.startswith("cg_")})
    return out.rename(columns={"cpu_usage_cores": "cpu_pct", "mem_usage_mb": "mem_bytes", "latency_p50_ms": "p50_ms"})


@pytest.fixture(scope="module")
def subset_run(tmp_path_factory) -> tuple[Path, MinMaxNormalizer]:
    """A model of 16 features, monotone by construction, certified over part of its domain."""
    run_dir = tmp_path_factory.mktemp("subset") / "run"
    df = make_table(n=500, seed=0)
    norm = MinMaxNormalizer.fit(df[SUBSET].to_numpy(), df["latency_p50_ms"].to_numpy(), SUBSET, "latency_p50_ms")
    rng = np.random.default_rng(0)
    w1 = rng.uniform(0.05, 0.5, size=(len(SUBSET), 8))
    w1[SUBSET.index("cpu_quota_cores")] *= -1
    params = {"hidden_0": {"kernel": w1, "bias": np.full(8, 0.1)},
              "out": {"kernel": rng.uniform(0.05, 0.3, size=(8, 1)), "bias": np.zeros(1)}}  # fmt: skip
    state = create_state(build_model(ModelConfig(depth=1, width=8)), OptimConfig(), len(SUBSET), seed=0)
    config = {"model": {"depth": 1, "width": 8, "activation": "relu"}, "data": {"app": "nginx", "source": "table"},
              "train": {"tolerance": 0.05}, "spec": {"name": CERTIFIED.name}}  # fmt: skip
    ckpt.save_checkpoint(run_dir, state.replace(params=params), norm, config, {"epoch": 1})
    verdicts = verify_run(run_dir, CERTIFIED, VerifierConfig(time_budget_s=30.0), run_dir / "verify" / CERTIFIED.name)
    assert [v.status.value for v in verdicts] == ["VERIFIED"] * 14, [v.status for v in verdicts]
    return run_dir, norm


def held_out(path: Path) -> pd.DataFrame:
    """Rows of another seed, a few beyond the training range (a quota of 40 cores), a few with a missing feature."""
    df = make_table(n=300, seed=9)
    df.loc[:9, "cpu_quota_cores"] = 40.0
    df.loc[10:14, "sys_psi_io_some_pct"] = np.nan
    df.to_csv(path, index=False)
    return df


def test_verified_only_where_the_certificate_covers_the_row(subset_run, tmp_path):
    run_dir, norm = subset_run
    df = held_out(tmp_path / "held.csv")
    result = evaluate_run(EvaluateConfig(run_dir=str(run_dir), input=str(tmp_path / "held.csv"),
                                         out_dir=str(tmp_path / "out"), spec=CERTIFIED))  # fmt: skip
    x = df[SUBSET].to_numpy()
    valid = np.isfinite(x).all(axis=1)
    margin = 0.05 * norm.x_scale
    with np.errstate(invalid="ignore"):
        in_domain = valid & ((x >= norm.x_min - margin) & (x <= norm.x_max + margin)).all(axis=1)
        lo, hi = norm.x_min.copy(), norm.x_max.copy()
        i = SUBSET.index("cg_psi_cpu_some_pct")
        lo[i], hi[i] = 0.0, PSI_LIMIT
        in_region = ((x >= lo) & (x <= hi)).all(axis=1)
    assert result["rows"] == 300
    assert result["status_rows"] == {
        "verified": int((in_domain & in_region).sum()),
        "unverified_region": int((in_domain & ~in_region).sum()),
        "out_of_distribution": int((valid & ~in_domain).sum()),
        "invalid": 5,
    }
    assert result["status_rows"]["verified"] > 100 and result["status_rows"]["out_of_distribution"] == 10
    status = pd.read_csv(tmp_path / "out" / "predictions.csv")["status"].to_numpy()
    assert not (status[df["cg_psi_cpu_some_pct"].to_numpy() > PSI_LIMIT] == "verified").any()
    assert result["metrics"]["verified"]["rows"] == result["status_rows"]["verified"]
    assert result["metrics"]["all"]["rows"] == 295  # every row with a prediction; invalid rows have none
    assert result["in_domain_share"] == pytest.approx(in_domain.mean())
    # without the certified spec set required, nothing is verified (the run's config lists no specs)
    plain = evaluate_run(EvaluateConfig(run_dir=str(run_dir), input=str(tmp_path / "held.csv"), out_dir=str(tmp_path / "o2")))
    assert plain["status_rows"]["verified"] == 0


def test_scores_equal_the_trainers_test_metrics_on_its_test_file(tmp_path):
    """Train on one part of a real collection written by another tool, test on the rest (data.test_path);
    evaluating the run on that file again must reproduce the run's own test metrics."""
    real = pd.read_csv(ROOT / "data" / "real" / "redis.csv")
    foreign(real.iloc[:150]).to_csv(tmp_path / "day1.csv", index=False)
    foreign(real.iloc[150:]).to_csv(tmp_path / "day2.csv", index=False)
    cfg = compose_train(["data=table_mapped", f"data.path={tmp_path / 'day1.csv'}", f"data.test_path={tmp_path / 'day2.csv'}",
                         "model.width=16", "train.epochs=5", "train.batch_size=32", "train.progress=false",
                         f"run_dir={tmp_path / 'run'}"])  # fmt: skip
    summary = run_training(cfg)
    assert summary["n_test"] == 70
    result = evaluate_run(EvaluateConfig(run_dir=str(tmp_path / "run"), input=str(tmp_path / "day2.csv"),
                                         out_dir=str(tmp_path / "out")))  # fmt: skip
    got, want = result["metrics"]["all"], summary["test"]
    assert got["rows"] == 70 and result["app"] == "redis"
    for key in ("accuracy", "rmse", "r2", "mape"):
        assert got[key] == pytest.approx(want[key], rel=1e-4, abs=1e-6), key
    for name in ("metrics.json", "predictions.csv", "calibration.png"):
        assert (tmp_path / "out" / name).stat().st_size > 0
    # The canonical file of the same rows is read without the run's mapping.
    real.iloc[150:].to_csv(tmp_path / "canonical.csv", index=False)
    again = evaluate_run(EvaluateConfig(run_dir=str(tmp_path / "run"), input=str(tmp_path / "canonical.csv"),
                                        out_dir=str(tmp_path / "out2"), run_mapping=False))  # fmt: skip
    assert again["metrics"]["all"]["rmse"] == pytest.approx(got["rmse"], rel=1e-9)


def test_command_line_writes_its_files_and_prints_the_table(subset_run, tmp_path):
    run_dir, _ = subset_run
    held_out(tmp_path / "held.csv")
    proc = subprocess.run([sys.executable, "-m", "vpals_jax.evaluate", f"run_dir={run_dir}", f"input={tmp_path / 'held.csv'}",
                           f"hydra.run.dir={tmp_path / 'out'}", "tolerance=0.1"],
                          cwd=ROOT, check=False, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "accuracy" in proc.stdout and "statuses: verified 0," in proc.stdout
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["tolerance"] == 0.1 and metrics["status_rows"]["invalid"] == 5
    assert (tmp_path / "out" / "calibration.png").stat().st_size > 0
