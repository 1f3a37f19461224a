"""A tiny verified-training problem shared by the resume and run-directory tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from helpers import compose_train, make_table

# Latency with a sine dip along sys_psi_cpu_some_pct; the spec says "non-decreasing" on a 1-D slice,
# so every correcting loop fails a few rounds (and collects counterexamples) before it verifies.
DIP_SPEC = {
    "name": "dip",
    "space": "normalized",
    "region": {"default": 0.5, "sys_psi_cpu_some_pct": [0.0, 1.0]},
    "specs": [
        {"kind": "monotonicity", "feature": "sys_psi_cpu_some_pct", "direction": "increasing"},
        {"kind": "output_bound", "lower": -10.0},
    ],
}


def write_dip_table(path: Path) -> Path:
    df = make_table(n=200, seed=1)
    df["latency_p50_ms"] += 0.6 * np.sin(2 * np.pi * df["sys_psi_cpu_some_pct"] / 50)
    df.to_csv(path, index=False)
    return path


def tiny_overrides(table, run_dir, loop: str = "normal", *extra: str) -> list[str]:
    return [
        "data=table", f"data.path={table}", f"run_dir={run_dir}", "model.width=8", "train.batch_size=16",
        "train.progress=false", f"train.loop={loop}", "train.epochs=10", "train.tolerance=0.1",
        "train.accuracy_threshold=0.5", "train.verify_at_end=true", "train.pool_capacity=256", "train.pair_batch=16",
        "verifier.time_budget_s=30", "optim.lr=1e-2", *extra,
    ]  # fmt: skip


def tiny_cfg(table, run_dir, loop: str = "normal", *extra: str):
    cfg = compose_train(tiny_overrides(table, run_dir, loop, *extra))
    for key, value in DIP_SPEC.items():
        cfg.spec[key] = value
    return cfg
