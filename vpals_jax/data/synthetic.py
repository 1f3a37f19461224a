"""Built-in synthetic data: a documented generative model for the paper's five applications.

One row is one measurement window of one application that shares a 16-core, 64 GiB machine with
a co-runner. The model has four stages (full equations in ``docs/data.md``):

1. **Scenario.** A co-runner kind (``none, cpu, vm, cache, stream, hdd, mixed``) and an
   interference level ``L`` drawn uniformly from the requested ``interference`` range give the
   co-runner's demands ``corunner_cpu/mem/io`` in [0, 1] (the kind's dominant resource gets
   exactly ``L``, the others a kind-specific share of it). The application gets a CPU quota and a
   memory limit drawn from app-specific ranges and two hidden workload factors: its load ``w``
   (CPU demand ``D = cpu_need * w`` cores) and its working set ``ws`` (MiB).
2. **Contention -> PSI.** Each of the six stall intensities ``x >= 0`` (cpu/mem/io, system and
   cgroup) is a non-negative combination of over-subscription terms: machine CPU load, demand
   over quota, co-runner memory plus working set over RAM, working set over the limit, co-runner
   and application I/O, and refault I/O caused by memory pressure, each with a small
   multiplicative measurement jitter. The system intensity is the cgroup's plus the rest of the
   machine's (``x_sys = x_cg + x_rest``: the union of independent stall periods). Then
   ``some = 100 (1 - e^-x)`` and ``full = some * rho * (1 - e^-x)`` with ``rho < 1``, so
   ``0 <= full <= some <= 100`` and ``sys some >= cg some``. CPU throttling, CPU usage and
   memory usage follow from the same quantities.
3. **Latency.** The noiseless median latency :func:`expected_latency` is an explicit function of
   the 17 schema features only, a product of non-negative factors that are each monotone in
   their features (see :data:`GROUND_TRUTH_DIRECTIONS`). The observed ``latency_p50_ms`` is that
   value times ``exp(sigma_app * z)`` with ``z`` a standard normal clipped to [-2.5, 2.5]
   (bounded noise, so the target has no heavy tail).
4. **Tail latency and throughput.** ``latency_p99_ms`` adds an app-specific tail factor that
   grows with the ``full`` stalls; ``throughput_rps`` is the offered load scaled down by
   throttling and contention. Neither carries a monotonicity claim.

Per-app sensitivities and noise levels mimic the paper's Figure 2: latency is strongly tied to
PSI for mindspore and nginx, moderately for solr, and weakly for redis and mysql, whose latency
is driven mostly by their own load (visible as CPU utilisation of the quota) and by noise.

:func:`interference_level` (the largest co-runner demand) is what the out-of-distribution split
uses (:func:`ood_split`: train on low interference, test on high).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from vpals_jax.data import schema
from vpals_jax.data.schema import psi_column

APPS: tuple[str, ...] = ("mindspore", "nginx", "solr", "redis", "mysql")
CORUNNER_KINDS: tuple[str, ...] = ("none", "cpu", "vm", "cache", "stream", "hdd", "mixed")

MACHINE_CORES = 16.0
MACHINE_MEM_MB = 65536.0
BACKGROUND_CORES = 0.5
WINDOW_S = 10.0
NOISE_CLIP = 2.5

# Co-runner demand profiles (cpu, mem, io): the share of the level L each resource gets. The
# dominant resource (1.0) gets exactly L; the others get L * share * U(0.6, 1).
_PROFILES: dict[str, tuple[float, float, float]] = {
    "none": (0.0, 0.0, 0.0),
    "cpu": (1.0, 0.05, 0.0),  # stress-ng --cpu
    "vm": (0.4, 1.0, 0.1),  # stress-ng --vm: memory capacity
    "cache": (1.0, 0.6, 0.0),  # cache thrashing: CPU plus some memory
    "stream": (0.5, 1.0, 0.0),  # STREAM: memory bandwidth and footprint
    "hdd": (0.2, 0.1, 1.0),  # stress-ng --hdd: disk I/O
    "mixed": (1.0, 1.0, 1.0),  # everything; one random resource gets exactly L
}

# Stall share of ``full`` at saturation, per (scope, resource).
_FULL_RHO = {
    ("sys", "cpu"): 0.25,
    ("sys", "mem"): 0.6,
    ("sys", "io"): 0.7,
    ("cg", "cpu"): 0.5,
    ("cg", "mem"): 0.7,
    ("cg", "io"): 0.8,
}

PSI_FEATURES: tuple[str, ...] = tuple(
    psi_column(scope, res, lvl) for scope in ("sys", "cg") for res in schema.PSI_RESOURCES for lvl in schema.PSI_LEVELS
)


@dataclass(frozen=True)
class AppModel:
    """App-specific parameters of the generative model (units as in the schema)."""

    cpu_need: float  # cores demanded at load w = 1
    quota: tuple[float, float]  # CPU quota range, cores
    ws_mb: float  # working set at factor 1, MiB
    limit: tuple[float, float]  # memory limit range, MiB
    io_share: float  # how I/O-bound the application is, 0..1
    load: tuple[float, float]  # range of the hidden load factor w
    base_ms: float  # latency with no contention, ample quota and no load
    psi_weight: dict[str, float]  # PSI feature -> weight in the PSI factor (>= 0)
    throttle_weight: float  # weight of cpu_throttled_pct / 100 (>= 0)
    quota_weight: float  # weight of quota_ref / quota (>= 0)
    mem_weight: float  # weight of relu(mem_usage / limit - MEM_KNEE) / (1 - MEM_KNEE) (>= 0)
    util_weight: float  # weight of the load factor u / (1 - 0.8 u), u = cpu_usage / quota (>= 0)
    sigma: float  # log-normal noise of latency_p50_ms
    tail: float  # p99 / p50 without stalls
    base_rps: float  # offered requests per second at w = 1


MEM_KNEE = 0.8
UTIL_SLOPE = 0.8


def _w(**kw: float) -> dict[str, float]:
    return {psi_column(*k.split("_")): v for k, v in kw.items()}


_MODELS: dict[str, AppModel] = {
    # Strong: training/inference steps stall directly on CPU and memory pressure.
    "mindspore": AppModel(
        cpu_need=4.0,
        quota=(2.0, 8.0),
        ws_mb=6144.0,
        limit=(4096.0, 16384.0),
        io_share=0.2,
        load=(0.6, 1.4),
        base_ms=20.0,
        psi_weight=_w(
            cg_cpu_some=2.0,
            cg_cpu_full=0.6,
            cg_mem_some=0.6,
            cg_mem_full=0.2,
            sys_mem_some=0.2,
            sys_cpu_some=0.2,
            cg_io_some=0.1,
        ),
        throttle_weight=0.2,
        quota_weight=0.15,
        mem_weight=0.3,
        util_weight=0.0,
        sigma=0.04,
        tail=1.6,
        base_rps=50.0,
    ),
    # Strong: short CPU-bound requests; latency tracks CPU stalls of its cgroup.
    "nginx": AppModel(
        cpu_need=1.5,
        quota=(0.5, 4.0),
        ws_mb=256.0,
        limit=(256.0, 2048.0),
        io_share=0.05,
        load=(0.5, 1.5),
        base_ms=2.0,
        psi_weight=_w(cg_cpu_some=1.5, cg_cpu_full=0.5, sys_cpu_some=0.3, cg_mem_some=0.2, cg_io_some=0.1),
        throttle_weight=0.3,
        quota_weight=0.1,
        mem_weight=0.1,
        util_weight=0.0,
        sigma=0.03,
        tail=2.5,
        base_rps=8000.0,
    ),
    # Medium: search requests mix CPU, memory and index I/O; more unexplained variation.
    "solr": AppModel(
        cpu_need=2.0,
        quota=(1.0, 6.0),
        ws_mb=2048.0,
        limit=(1024.0, 8192.0),
        io_share=0.5,
        load=(0.5, 1.5),
        base_ms=8.0,
        psi_weight=_w(cg_cpu_some=0.5, cg_io_some=0.5, cg_io_full=0.2, cg_mem_some=0.3, sys_io_some=0.1),
        throttle_weight=0.1,
        quota_weight=0.1,
        mem_weight=0.2,
        util_weight=0.2,
        sigma=0.4,
        tail=3.0,
        base_rps=600.0,
    ),
    # Weak: single-threaded, memory-resident; latency is queueing on its own load.
    "redis": AppModel(
        cpu_need=0.6,
        quota=(1.0, 2.0),
        ws_mb=1024.0,
        limit=(1024.0, 4096.0),
        io_share=0.05,
        load=(0.3, 1.5),
        base_ms=0.5,
        psi_weight=_w(cg_cpu_some=0.8, cg_mem_some=0.05),
        throttle_weight=0.05,
        quota_weight=0.0,
        mem_weight=0.05,
        util_weight=2.0,
        sigma=0.12,
        tail=4.0,
        base_rps=40000.0,
    ),
    # Weak: latency follows the query mix and its own load more than machine pressure.
    "mysql": AppModel(
        cpu_need=1.5,
        quota=(2.0, 6.0),
        ws_mb=2048.0,
        limit=(2048.0, 8192.0),
        io_share=0.6,
        load=(0.3, 1.5),
        base_ms=4.0,
        psi_weight=_w(cg_io_some=0.15, cg_cpu_some=0.1, cg_mem_some=0.05),
        throttle_weight=0.05,
        quota_weight=0.05,
        mem_weight=0.1,
        util_weight=1.5,
        sigma=0.25,
        tail=5.0,
        base_rps=2000.0,
    ),
}

# Reference quota for the quota factor: the app's typical CPU need.
_QUOTA_REF = {app: m.cpu_need for app, m in _MODELS.items()}


def _directions(model: AppModel) -> dict[str, int]:
    d: dict[str, int] = {name: +1 for name in PSI_FEATURES}  # every PSI weight is >= 0
    d["cpu_throttled_pct"] = +1
    d["cpu_quota_cores"] = -1  # quota factor and utilisation u = usage / quota both fall
    d["mem_limit_mb"] = -1  # memory factor falls with the limit
    d["mem_usage_mb"] = +1  # memory factor rises with usage
    if model.util_weight > 0:
        d["cpu_usage_cores"] = +1  # utilisation factor rises with usage
    return d


GROUND_TRUTH_DIRECTIONS: dict[str, dict[str, int]] = {app: _directions(m) for app, m in _MODELS.items()}
"""Per app: feature -> +1 (noiseless latency non-decreasing in it) or -1 (non-increasing),
holding the other features fixed. These hold by construction of :func:`expected_latency`.
Features not listed (``cpu_usage_cores`` for apps without a utilisation term) carry no claim."""


def app_model(app: str) -> AppModel:
    """The parameters of ``app``; unknown names raise ``ValueError`` naming the known apps."""
    try:
        return _MODELS[app]
    except KeyError:
        raise ValueError(f"unknown app {app!r}; known apps: {', '.join(APPS)}") from None


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)


def _sat(x: np.ndarray) -> np.ndarray:
    return 1.0 - np.exp(-x)


def expected_latency(df: pd.DataFrame, app: str) -> np.ndarray:
    """Noiseless ``latency_p50_ms`` of ``app`` as a function of the schema features in ``df``.

    ``base * (1 + sum_k a_k psi_k / 100 + a_thr thr / 100) * (1 + a_q q_ref / quota)
    * (1 + a_m relu(mem_usage / limit - 0.8) / 0.2) * (1 + a_u u / (1 - 0.8 u))`` with
    ``u = min(cpu_usage / quota, 1)`` and all weights ``a >= 0``. Each factor is positive and
    monotone in its features, which gives :data:`GROUND_TRUTH_DIRECTIONS`.
    """
    m = app_model(app)
    psi = 1.0 + sum(w * df[name].to_numpy(float) / 100.0 for name, w in m.psi_weight.items())
    psi = psi + m.throttle_weight * df["cpu_throttled_pct"].to_numpy(float) / 100.0
    quota = np.maximum(df["cpu_quota_cores"].to_numpy(float), 1e-6)
    limit = np.maximum(df["mem_limit_mb"].to_numpy(float), 1e-6)
    quota_f = 1.0 + m.quota_weight * _QUOTA_REF[app] / quota
    mem_f = 1.0 + m.mem_weight * _relu(df["mem_usage_mb"].to_numpy(float) / limit - MEM_KNEE) / (1.0 - MEM_KNEE)
    u = np.clip(df["cpu_usage_cores"].to_numpy(float) / quota, 0.0, 1.0)
    util_f = 1.0 + m.util_weight * u / (1.0 - UTIL_SLOPE * u)
    return m.base_ms * psi * quota_f * mem_f * util_f


def _check_range(interference: tuple[float, float]) -> tuple[float, float]:
    lo, hi = (float(v) for v in interference)
    if not (0.0 <= lo <= hi <= 1.0):
        raise ValueError(f"interference range must satisfy 0 <= lo <= hi <= 1, got {interference!r}")
    return lo, hi


def _corunner(rng: np.random.Generator, n: int, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """Co-runner kinds (n,) and demands (n, 3) with max(demands) = level in [lo, hi]."""
    kinds = CORUNNER_KINDS if lo <= 0.0 else CORUNNER_KINDS[1:]
    if hi <= 0.0:
        kinds = ("none",)
    kind_idx = rng.integers(0, len(kinds), size=n)
    level = rng.uniform(lo, hi, size=n)
    jitter = rng.uniform(0.6, 1.0, size=(n, 3))
    dominant_mixed = rng.integers(0, 3, size=n)
    profiles = np.array([_PROFILES[k] for k in kinds])[kind_idx]  # (n, 3)
    shares = np.where(profiles >= 1.0, 1.0, profiles * jitter)
    kind_names = np.array(kinds, dtype=object)[kind_idx]
    mixed = kind_names == "mixed"
    shares[mixed] = jitter[mixed]
    shares[mixed, dominant_mixed[mixed]] = 1.0
    none = kind_names == "none"
    level[none] = 0.0
    demands = np.clip(level[:, None] * shares, 0.0, 1.0)
    return kind_names, demands


def interference_level(df: pd.DataFrame) -> pd.Series:
    """The co-runner's overall demand: ``max(corunner_cpu, corunner_mem, corunner_io)`` in [0, 1].

    ``generate(..., interference=(lo, hi))`` yields rows whose level lies in ``[lo, hi]``.
    """
    cols = ["corunner_cpu", "corunner_mem", "corunner_io"]
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"interference_level needs columns {missing} (co-runner description)")
    return df[cols].max(axis=1).clip(0.0, 1.0).rename("interference_level")


def ood_split(df: pd.DataFrame, threshold: float = 0.5) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Distribution-shift split: rows with level ``<= threshold`` (train), the rest (test)."""
    level = interference_level(df)
    low = level <= threshold
    return df[low].reset_index(drop=True), df[~low].reset_index(drop=True)


def _psi_pair(x: np.ndarray, rho: float) -> tuple[np.ndarray, np.ndarray]:
    some = 100.0 * _sat(x)
    full = some * rho * _sat(x)
    return some, full


def generate(
    app: str,
    n: int,
    seed: int = 0,
    interference: tuple[float, float] = (0.0, 1.0),
    noise: bool = True,
) -> pd.DataFrame:
    """``n`` synthetic windows of ``app`` in the canonical schema (all of ``schema.COLUMNS``).

    Deterministic given ``(app, n, seed, interference, noise)``. ``noise=False`` sets the
    latency noise to zero, so ``latency_p50_ms == expected_latency(df, app)`` (PSI measurement
    jitter and the hidden workload factors stay, they are part of the scenario).
    """
    m = app_model(app)
    n = int(n)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    lo, hi = _check_range(interference)
    rng = np.random.default_rng([int(seed), APPS.index(app)])

    # 1. Scenario.
    kind, dem = _corunner(rng, n, lo, hi)
    c_cpu, c_mem, c_io = dem[:, 0], dem[:, 1], dem[:, 2]
    quota = np.round(rng.uniform(*m.quota, size=n), 1)
    limit = np.round(rng.uniform(*m.limit, size=n) / 64.0) * 64.0
    w = rng.uniform(*m.load, size=n)
    ws = m.ws_mb * rng.uniform(0.6, 1.3, size=n)
    jit = np.exp(0.05 * np.clip(rng.standard_normal((n, 6)), -3, 3))
    z = np.clip(rng.standard_normal((n, 3)), -NOISE_CLIP, NOISE_CLIP)

    # 2. Contention -> PSI.
    demand = m.cpu_need * w
    run = np.minimum(demand, quota)
    r_cpu = (c_cpu * MACHINE_CORES + run + BACKGROUND_CORES) / MACHINE_CORES
    over_quota = _relu(demand / quota - 0.75)
    # Machine-wide contention, from the scenario alone.
    k_cpu = 4.0 * _relu(r_cpu - 0.55)  # run-queue contention
    k_mem = 4.0 * _relu(c_mem + ws / MACHINE_MEM_MB - 0.6)  # global reclaim
    k_io = 2.0 * c_io  # device queueing caused by the co-runner
    k_lim = 6.0 * _relu(ws / limit - 0.85)  # reclaim inside the cgroup near its limit
    # Stall intensities of the application's cgroup.
    x_cpu_cg = (3.0 * over_quota + 0.8 * k_cpu) * jit[:, 0]
    x_mem_cg = (k_lim + 0.7 * k_mem) * jit[:, 1]
    x_io_cg = (m.io_share * (k_io + 0.3 * w) + 0.3 * x_mem_cg) * jit[:, 2]
    # System = the cgroup's stalls united with the rest of the machine's: x_sys = x_cg + x_rest.
    x_cpu_sys = x_cpu_cg + k_cpu * jit[:, 3]
    x_mem_sys = x_mem_cg + k_mem * jit[:, 4]
    x_io_sys = x_io_cg + (k_io + 0.5 * k_mem) * jit[:, 5]
    xs = {
        ("sys", "cpu"): x_cpu_sys,
        ("cg", "cpu"): x_cpu_cg,
        ("sys", "mem"): x_mem_sys,
        ("cg", "mem"): x_mem_cg,
        ("sys", "io"): x_io_sys,
        ("cg", "io"): x_io_cg,
    }

    cols: dict[str, object] = {
        "app": np.full(n, app, dtype=object),
        "timestamp_s": np.arange(n, dtype=float),  # schema: synthetic timestamps are the index
        "window_s": np.full(n, WINDOW_S),
    }
    for (scope, res), x in xs.items():
        some, full = _psi_pair(x, _FULL_RHO[(scope, res)])
        cols[psi_column(scope, res, "some")] = some
        cols[psi_column(scope, res, "full")] = full
    cols["cpu_usage_cores"] = run * (1.0 - 0.4 * _sat(k_cpu))
    cols["mem_usage_mb"] = np.minimum(ws, 0.97 * limit)
    cols["cpu_throttled_pct"] = 100.0 * _sat(4.0 * over_quota)
    cols["cpu_quota_cores"] = quota
    cols["mem_limit_mb"] = limit
    cols["corunner_kind"] = kind
    cols["corunner_cpu"] = c_cpu
    cols["corunner_mem"] = c_mem
    cols["corunner_io"] = c_io
    df = pd.DataFrame({k: cols[k] for k in cols if k in schema.COLUMN_BY_NAME})

    # 3. Latency; 4. tail latency and throughput.
    scale = 1.0 if noise else 0.0
    p50 = expected_latency(df, app) * np.exp(scale * m.sigma * z[:, 0])
    full_sum = sum(df[psi_column("cg", r, "full")].to_numpy() for r in schema.PSI_RESOURCES) / 100.0
    p99 = p50 * m.tail * (1.0 + 1.5 * full_sum) * np.exp(scale * 0.1 * z[:, 1])
    stall = _sat(x_cpu_cg + 0.5 * x_mem_cg + 0.5 * x_io_cg)
    rps = m.base_rps * w * (1.0 - 0.6 * stall) * np.exp(scale * 0.05 * z[:, 2])
    df["latency_p50_ms"] = p50
    df["latency_p99_ms"] = p99
    df["throughput_rps"] = rps

    out = pd.DataFrame({c.name: df[c.name] for c in schema.COLUMNS})
    for c in schema.COLUMNS:
        out[c.name] = out[c.name].astype(str if c.dtype == "str" else float)
    return out
