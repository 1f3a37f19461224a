"""Training throughput: the JAX trainer against an equivalent PyTorch loop, same run, same threads.

Same MLP (17 -> 64 -> 64 -> 1 ReLU by default), same data, batch size, Adam and number of
epochs; each side gets one warm-up epoch (JIT compilation / allocator warm-up) that is not
timed. Prints samples/s of each and the ratio (goal: JAX >= 1.5x at batch 256 on 2 cores).

Each side runs in its own fresh process, one after the other, pinned to the same ``--threads``
CPUs with as many compute threads (XLA's Eigen pool, torch's intra-op pool): on a loaded machine
a side left with its default pool oversubscribes the cores and the ratio measures the fight
(133x once, 4.3x with one thread each), not the trainers.

    python -m experiments.bench_train [--threads 1 --batch 256 --epochs 5 --width 64 --depth 2 --n 20000]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import time

import numpy as np

from vpals_jax.cli import fail


def pin(threads: int) -> None:
    """Restrict this process to ``threads`` of the CPUs it may use, and JAX to as many threads.
    Runs before JAX or torch is imported (a fresh process): both read their settings at import."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:threads])
    eigen = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" if threads == 1 else ""
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {eigen}".strip()
    os.environ["JAX_PLATFORMS"] = "cpu"
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)


def data(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(args.n, args.features)).astype(np.float32)
    return x, (x @ rng.normal(size=args.features) / args.features).astype(np.float32)


def bench_jax(args: argparse.Namespace) -> float:
    pin(args.threads)
    import jax
    import jax.numpy as jnp

    from vpals_jax.config import ModelConfig, OptimConfig
    from vpals_jax.models import build_model
    from vpals_jax.train.steps import create_state, epoch_key, train_epoch

    x, y = data(args)
    model = build_model(ModelConfig(depth=args.depth, width=args.width))
    state = create_state(model, OptimConfig(lr=1e-3), x.shape[1], seed=0)
    xj, yj = jnp.asarray(x), jnp.asarray(y)
    state, loss = train_epoch(state, xj, yj, epoch_key(0, 0), args.batch)  # compile
    jax.block_until_ready(loss)
    t0 = time.perf_counter()
    for e in range(args.epochs):
        state, loss = train_epoch(state, xj, yj, epoch_key(0, e + 1), args.batch)
    jax.block_until_ready(loss)
    return args.epochs * (len(x) // args.batch) * args.batch / (time.perf_counter() - t0)


def bench_torch(args: argparse.Namespace) -> float:
    pin(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(args.threads)
    torch.manual_seed(0)
    x, y = data(args)
    layers: list[torch.nn.Module] = []
    width_in = x.shape[1]
    for _ in range(args.depth):
        layers += [torch.nn.Linear(width_in, args.width), torch.nn.ReLU()]
        width_in = args.width
    net = torch.nn.Sequential(*layers, torch.nn.Linear(width_in, 1))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    n_batches = len(x) // args.batch

    def epoch(seed: int) -> None:
        perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
        for b in range(n_batches):
            idx = perm[b * args.batch : (b + 1) * args.batch]
            opt.zero_grad(set_to_none=True)
            loss = torch.mean((net(xt[idx])[:, 0] - yt[idx]) ** 2)
            loss.backward()
            opt.step()

    epoch(0)
    t0 = time.perf_counter()
    for e in range(args.epochs):
        epoch(e + 1)
    return args.epochs * n_batches * args.batch / (time.perf_counter() - t0)


def in_fresh_process(fn, args: argparse.Namespace) -> float:
    """``fn(args)`` in a new interpreter (spawn): JAX and torch are imported there, after pinning."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, (args,))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--features", type=int, default=17)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="CPUs and compute threads for each side (default 1)")
    args = ap.parse_args()
    if args.threads < 1:
        fail("bench_train", ValueError(f"--threads must be >= 1, got {args.threads}"))
    jax_sps = in_fresh_process(bench_jax, args)
    torch_sps = in_fresh_process(bench_torch, args)
    result = {"batch": args.batch, "threads": args.threads, "jax_samples_per_s": jax_sps,
              "torch_samples_per_s": torch_sps, "ratio_jax_over_torch": jax_sps / torch_sps}  # fmt: skip
    print(f"batch {args.batch}, MLP {args.features}-{'-'.join([str(args.width)] * args.depth)}-1, {args.epochs} epochs, "
          f"{args.threads} thread(s) each")  # fmt: skip
    print(f"  JAX   {jax_sps:12,.0f} samples/s")
    print(f"  torch {torch_sps:12,.0f} samples/s")
    print(f"  ratio JAX / torch = {jax_sps / torch_sps:.2f}x (goal >= 1.5x)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
