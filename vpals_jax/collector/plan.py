"""The sweep's settings and its plan of points.

The plan is deterministic for a seed and prefix-stable in ``points`` (``points=250`` after
``points=200`` measures 50 more), so a sweep can be resumed or extended into the same file.
The sweep order is shuffled; a baseline point (no co-runner) comes every ``baseline_every`` points.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass

import numpy as np

from vpals_jax.collector.corunner import KINDS

DEFAULTS: dict = {
    "app": "redis",
    "points": 200,
    "out": "data/real",
    "format": "csv",  # csv | parquet | both (CSV is always written: it is the resume log)
    "seed": 0,
    "warmup_s": 1.0,
    "window_s": 3.0,
    "baseline_every": 5,
    "max_wall_s": 3600.0,
    "max_failures": 10,
    "max_server_restarts": 3,
    "cgroup_root": "/sys/fs/cgroup",
    "proc_root": "/proc",
    "cgroup_parent": "",
    "experiment_cpu_weight": 100,
    "tmp_dir": None,
    "app_cpus": [0],
    "client_cpus": [1],
    "corunner_cpus": [0],
    "sweep": {
        "app_quota_cores": [0.2, 0.35, 0.5, 0.75, 1.0],
        "mem_limit_mb": [256, 1024],
        "corunner_kinds": list(KINDS),
        "corunner_levels": [0.1, 0.2, 0.3, 0.4, 0.5],
    },
    "corunner": {"mem_budget_mb": 2048, "hdd_bytes_mb": 256},
    "quality": {"max_unattributed_pct": 15.0, "max_steal_pct": 5.0, "drop_noisy": False},
    "apps": {},
}


def merge(base: dict, over: dict) -> dict:
    """``base`` with ``over`` laid on top, nested dicts merged key by key (a partial config is enough)."""
    out = dict(base)
    for k, v in (over or {}).items():
        out[k] = merge(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return out


@dataclass(frozen=True)
class Point:
    """One application configuration (CPU quota, memory limit) x one co-runner (kind, level)."""

    point_id: int
    app_quota_cores: float
    mem_limit_mb: float | None
    corunner_kind: str
    corunner_level: float
    baseline: bool


def plan_signature(cfg: dict) -> str:
    """Hash of everything that defines the plan except its length (plans are prefix-stable)."""
    key = json.dumps(
        {"seed": cfg["seed"], "sweep": cfg["sweep"], "baseline_every": cfg["baseline_every"]}, sort_keys=True
    )
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def make_plan(points: int, sweep: dict, seed: int, baseline_every: int) -> list[Point]:
    """Shuffled grid (cycled when exhausted, reshuffled each cycle) with a baseline every N points."""
    rng = np.random.default_rng(seed)
    quotas = [float(q) for q in sweep["app_quota_cores"]]
    mems = [None if m is None else float(m) for m in sweep["mem_limit_mb"]]
    grid = list(
        itertools.product(quotas, mems, list(sweep["corunner_kinds"]), [float(x) for x in sweep["corunner_levels"]])
    )
    out: list[Point] = []
    order: list[int] = []
    for i in range(int(points)):
        if baseline_every and i % int(baseline_every) == 0:
            q = quotas[int(rng.integers(len(quotas)))]
            m = mems[int(rng.integers(len(mems)))]
            out.append(Point(i, q, m, "none", 0.0, True))
            continue
        if not order:
            order = list(rng.permutation(len(grid)))
        q, m, k, lv = grid[order.pop()]
        out.append(Point(i, q, m, k, lv, False))
    return out
