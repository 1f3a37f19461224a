"""Serving throughput and latency of ``SafePredictor`` against the bare jitted model, same run.

Trains a small nginx model (2x64 ReLU, synthetic data, a few epochs) into a temporary run
directory, then measures: rows/s of ``predict`` (guard + model) and of the bare jitted MLP on
batches of 10k rows, the guard's overhead, and single-row ``predict`` latency p50/p99.
Goals: overhead <= 10 %, >= 1M rows/s at 10k, single-row p99 < 200 us. The certified region is
the whole training domain here (the guard's cost does not depend on what a region proves).

    python -m experiments.bench_runtime [--batch 10000 --repeats 50 --single 3000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from verifiers import Box
from vpals_jax.config import Config, DataConfig, TrainConfig
from vpals_jax.convert import load_network
from vpals_jax.runtime.predictor import SafePredictor, _mlp32
from vpals_jax.train.trainer import run_training


def rows_per_s(fn, x, repeats: int) -> float:
    fn(x)  # compile / warm caches
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn(x)
    return repeats * len(x) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--single", type=int, default=3000, help="single-row calls timed")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run_training(Config(run_dir=tmp, data=DataConfig(n_samples=5000), train=TrainConfig(epochs=3, progress=False)))
        net, norm, _ = load_network(tmp)
    full = Box(np.zeros(len(norm.feature_names)), np.ones(len(norm.feature_names)))
    pred = SafePredictor(net, norm, [full])
    rng = np.random.default_rng(0)
    x = rng.uniform(norm.x_min, norm.x_max, size=(args.batch, len(norm.feature_names)))

    w, b = pred._w32, pred._b32

    def bare(x_np):
        return np.asarray(_mlp32(w, b, pred._x_min32, pred._x_inv32, jnp.asarray(x_np, jnp.float32)))

    def guarded(x_np):
        return pred.predict(x_np).latency

    jax.block_until_ready(_mlp32(w, b, pred._x_min32, pred._x_inv32, jnp.asarray(x, jnp.float32)))
    bare_rps, guard_rps = [], []
    for _ in range(3):  # interleave to share the machine's noise fairly
        bare_rps.append(rows_per_s(bare, x, args.repeats))
        guard_rps.append(rows_per_s(guarded, x, args.repeats))
    bare_best, guard_best = max(bare_rps), max(guard_rps)
    overhead = bare_best / guard_best - 1.0

    one = x[:1]
    pred.predict(one)
    lat = np.empty(args.single)
    for i in range(args.single):
        row = x[i % len(x)][None]
        t0 = time.perf_counter()
        pred.predict(row)
        lat[i] = time.perf_counter() - t0
    p50, p99 = np.percentile(lat, [50, 99]) * 1e6
    result = {"batch": args.batch, "bare_rows_per_s": bare_best, "guarded_rows_per_s": guard_best,
              "guard_overhead": overhead, "single_row_p50_us": p50, "single_row_p99_us": p99}  # fmt: skip
    print(f"batch {args.batch}: bare jitted model {bare_best:,.0f} rows/s, SafePredictor {guard_best:,.0f} rows/s")
    print(f"  guard overhead {100 * overhead:.1f} % (goal <= 10 %), throughput goal >= 1,000,000 rows/s")
    print(f"single row: p50 {p50:.0f} us, p99 {p99:.0f} us (goal p99 < 200 us)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
