"""Training throughput: the JAX trainer against an equivalent PyTorch loop, same run.

Same MLP (17 -> 64 -> 64 -> 1 ReLU by default), same data, batch size, Adam and number of
epochs; each side gets one warm-up epoch (JIT compilation / allocator warm-up) that is not
timed. Prints samples/s of each and the ratio (goal: JAX >= 1.5x at batch 256 on 2 cores).

    python -m experiments.bench_train [--batch 256 --epochs 5 --width 64 --depth 2 --n 20000]
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np
import torch

from vpals_jax.config import ModelConfig, OptimConfig
from vpals_jax.models import build_model
from vpals_jax.train.steps import create_state, epoch_key, train_epoch


def bench_jax(x: np.ndarray, y: np.ndarray, args: argparse.Namespace) -> float:
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


def bench_torch(x: np.ndarray, y: np.ndarray, args: argparse.Namespace) -> float:
    torch.manual_seed(0)
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--features", type=int, default=17)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads (the machine has 2 cores)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(args.n, args.features)).astype(np.float32)
    y = (x @ rng.normal(size=args.features) / args.features).astype(np.float32)
    jax_sps = bench_jax(x, y, args)
    torch_sps = bench_torch(x, y, args)
    result = {"batch": args.batch, "jax_samples_per_s": jax_sps, "torch_samples_per_s": torch_sps,
              "ratio_jax_over_torch": jax_sps / torch_sps}  # fmt: skip
    print(f"batch {args.batch}, MLP {args.features}-{'-'.join([str(args.width)] * args.depth)}-1, {args.epochs} epochs")
    print(f"  JAX   {jax_sps:12,.0f} samples/s")
    print(f"  torch {torch_sps:12,.0f} samples/s")
    print(f"  ratio JAX / torch = {jax_sps / torch_sps:.2f}x (goal >= 1.5x)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
