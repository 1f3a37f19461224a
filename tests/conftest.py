"""Shared fixtures: small canonical-schema tables and composed configs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from vpals_jax.config import register_configs
from vpals_jax.data import schema

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


@pytest.fixture
def table_csv(tmp_path: Path) -> Path:
    path = tmp_path / "table.csv"
    make_table().to_csv(path, index=False)
    return path


def compose_train(overrides: list[str]):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="train", overrides=overrides)
