"""experiments.real_directions: planted directions are found, constant and unrelated columns get none."""

from __future__ import annotations

import numpy as np
import pandas as pd

from experiments import real_directions as rd

UP, DOWN, CONST, UNRELATED = "cg_psi_cpu_some_pct", "sys_psi_io_some_pct", "cg_psi_mem_some_pct", "sys_psi_cpu_some_pct"


def _frame(n: int = 200, seed: int = 0) -> pd.DataFrame:
    """Four configurations; latency rises with UP, falls with DOWN, ignores UNRELATED and the configuration."""
    rng = np.random.default_rng(seed)
    up, down = rng.uniform(0, 100, n), rng.uniform(0, 100, n)
    return pd.DataFrame({
        UP: up, DOWN: down, CONST: np.zeros(n), UNRELATED: rng.uniform(0, 100, n),
        "cpu_quota_cores": rng.choice([0.5, 1.0], n), "mem_limit_mb": rng.choice([256.0, 1024.0], n),
        "latency_p50_ms": 5 + 0.05 * up - 0.03 * down + rng.normal(0, 0.3, n),
        "baseline": rng.random(n) < 0.2,
    })  # fmt: skip


def test_planted_directions_and_constant():
    df = _frame()
    features = (UP, DOWN, CONST, UNRELATED, "cpu_quota_cores", "mem_limit_mb")
    t = rd.direction_table(df, "latency_p50_ms", noise=0.3, features=features).set_index("feature")
    assert t.verdict.to_dict() == {
        UP: "increasing", DOWN: "decreasing", CONST: "constant", UNRELATED: "no evidence",
        "cpu_quota_cores": "no evidence", "mem_limit_mb": "no evidence",
    }  # fmt: skip
    assert t.loc[UP, "spearman"] > 0.5 and t.loc[DOWN, "spearman"] < -0.3
    assert np.isnan(t.loc[CONST, "spearman"])  # a constant column: no statistic at all
    # UP is credited with its own effect: with the other PSI held close, violations nearly vanish
    assert t.loc[UP, "close_pairs"] >= 30 and t.loc[UP, "close_falls"] < 0.05 and t.loc[UP, "close_rises"] > 0.5


def test_a_direction_needs_pairs_with_the_other_psi_held_close():
    df = _frame()
    t = rd.direction_table(df, "latency_p50_ms", noise=0.3, features=(UP, DOWN), min_pairs=10**6)
    assert set(t.verdict) == {"no evidence"}


def test_noise_and_resolution():
    df = pd.DataFrame({
        "cpu_quota_cores": [1.0, 1.0, 1.0, 0.5, 0.5], "mem_limit_mb": [256.0] * 5,
        "latency_p50_ms": [1.0, 1.4, 2.0, 3.0, 3.2], "baseline": [True, True, False, True, True],
    })  # fmt: skip
    assert rd.repeat_noise(df, "latency_p50_ms") == np.median([0.4, 0.2])  # repeats within a configuration only
    assert np.isclose(rd.resolution(df.latency_p50_ms), 0.2)
