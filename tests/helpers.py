"""Helpers shared by test modules (imported as ``helpers``; fixtures live in conftest.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from hydra import compose, initialize_config_dir

from vpals_jax.config import ModelConfig, OptimConfig, SpecSetConfig, VerifierConfig, register_configs
from vpals_jax.data import schema
from vpals_jax.data.normalizer import MinMaxNormalizer
from vpals_jax.models import build_model
from vpals_jax.train import checkpoint as ckpt
from vpals_jax.train.steps import create_state
from vpals_jax.verify import verify_run

CONF_DIR = str(Path(__file__).resolve().parents[1] / "conf")
register_configs()


def make_table(n: int = 400, seed: int = 0, app: str = "nginx") -> pd.DataFrame:
    """A canonical-schema frame whose latency is a known monotone function of the PSI features."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({c: rng.uniform(0, 50, n) for c in schema.FEATURES})
    df["cpu_quota_cores"] = rng.uniform(0.5, 4, n)
    df["mem_limit_mb"] = rng.uniform(256, 4096, n)
    psi = df[[schema.psi_column("cg", r, "some") for r in schema.PSI_RESOURCES]].sum(axis=1)
    df["latency_p50_ms"] = 1 + 0.05 * psi + 2 / df["cpu_quota_cores"]
    df["latency_p99_ms"] = 2 * df["latency_p50_ms"]
    df["throughput_rps"] = 1000 / df["latency_p50_ms"]
    df["app"] = app
    for c in ("timestamp_s", "window_s", "corunner_cpu", "corunner_mem", "corunner_io"):
        df[c] = 0.0
    df["corunner_kind"] = "none"
    return df


def compose_train(overrides: list[str]):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


SPEC_SET = "runtime_test"
PSI_LIMIT = 25.0  # the certified region: cg cpu some pressure in [0, 25] %, the rest the training domain


def write_monotone_run(run_dir: Path, seed: int = 0) -> tuple[Path, MinMaxNormalizer]:
    """Latency rises with every pressure feature and falls with quota and limit, by construction."""
    df = make_table(n=500, seed=seed)
    feats = list(schema.FEATURES)
    norm = MinMaxNormalizer.fit(df[feats].to_numpy(), df["latency_p50_ms"].to_numpy(), feats, "latency_p50_ms")
    rng = np.random.default_rng(seed)
    w1 = rng.uniform(0.05, 0.5, size=(len(feats), 8))
    for name in ("cpu_quota_cores", "mem_limit_mb"):
        w1[feats.index(name)] *= -1
    params = {"hidden_0": {"kernel": w1, "bias": np.full(8, 0.1)},
              "out": {"kernel": rng.uniform(0.05, 0.3, size=(8, 1)), "bias": np.zeros(1)}}  # fmt: skip
    state = create_state(build_model(ModelConfig(depth=1, width=8)), OptimConfig(), len(feats), seed=0)
    state = state.replace(params=params)
    config = {"model": {"depth": 1, "width": 8, "activation": "relu"}, "spec": {"name": SPEC_SET}}
    ckpt.save_checkpoint(run_dir, state, norm, config, {"epoch": 1})
    return run_dir, norm


def certify(run_dir: Path, psi_limit: float = PSI_LIMIT, name: str = SPEC_SET) -> None:
    spec = SpecSetConfig(name=name, space="raw", region={"default": "domain", "cg_psi_cpu_some_pct": [0.0, psi_limit]},
                         specs=[{"kind": "monotonicity", "feature": f, "direction": "increasing"}
                                for f in schema.FEATURES if "_psi_" in f]
                         + [{"kind": "monotonicity", "feature": "cpu_quota_cores", "direction": "decreasing"},
                            {"kind": "output_bound", "lower": 0.0}])  # fmt: skip
    verdicts = verify_run(run_dir, spec, VerifierConfig(name="ouroboros", time_budget_s=30.0), run_dir / "verify" / name)
    assert all(v.status.value == "VERIFIED" for v in verdicts), [v.status for v in verdicts]
