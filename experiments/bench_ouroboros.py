"""Box throughput of the vectorised Ouroboros backend against one-box-at-a-time NumPy.

Same network (a seeded, nearly monotone 9 -> 300 -> 300 -> 1 ReLU network, the LinnOS
predictor's shape), same spec (non-decreasing in input 4 over ``[0, 1]^9``), same algorithm
(interval bounds, interval gradient with the same outward rounding slack, breadth-first
bisection of the widest dimension under a box budget), same process. The reference walks the
boxes the way the original artifact does: a FIFO queue, one box bounded per step, NumPy
float64. The witness search is switched off in both so that only box processing is timed.

Run: ``.venv/bin/python -m experiments.bench_ouroboros [--boxes N] [--ref-boxes N]``.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import time

import jax
import numpy as np

from verifiers import Monotonicity, ReluNetwork, get_verifier
from verifiers.bounds.interval import make_monotonicity_bound_fn
from verifiers.search.splitting import split_and_bound
from verifiers.testing.instances import monotone_net, unit_box


def bench_network(seed: int = 0) -> ReluNetwork:
    """Monotone by construction in input 4, then perturbed so that proofs need splitting."""
    net = monotone_net(9, (300, 300), increasing=(4,), seed=seed)
    rng = np.random.default_rng(seed)
    w = [np.array(a) for a in net.weights]
    w[1] = w[1] - rng.uniform(0.0, 0.08, size=w[1].shape)
    return ReluNetwork(w, net.biases)


class NumpyOneBox:
    """The same bound as :mod:`verifiers.bounds`, for one box at a time, in NumPy float64."""

    def __init__(self, net: ReluNetwork, feature: int, sign: float):
        self.w = net.weights
        self.aw = [np.abs(w) for w in net.weights]
        self.b = net.biases
        u = np.finfo(np.float64).eps / 2
        self.colsum = [np.abs(w).sum(axis=0) * (1 + 4 * u) for w in net.weights]
        self.nonneg = [np.all(w >= 0, axis=0) for w in net.weights]
        self.nonpos = [np.all(w <= 0, axis=0) for w in net.weights]
        self.gamma = 2.0 * (max(w.shape[0] for w in net.weights) + 8) * u
        self.row = net.weights[0][feature]
        self.sign = sign

    def _affine(self, c, r, k, bias=True):
        b = self.b[k] if bias else 0.0
        zc = c @ self.w[k] + b
        zr = r @ self.aw[k]
        s = self.gamma * (np.max(np.abs(c) + r) * self.colsum[k] + np.abs(b))
        return zc - zr - s, zc + zr + s

    def lower(self, lo: np.ndarray, hi: np.ndarray) -> float:
        c, r = (lo + hi) / 2, (hi - lo) / 2
        gl = gh = self.row
        for k in range(len(self.w) - 1):
            zl, zh = self._affine(c, r, k)
            a, b = np.maximum(zl, 0), np.maximum(zh, 0)
            c, r = (a + b) / 2, (b - a) / 2
            act = zl >= 0
            inact = (zh <= 0) & ~act
            hl = np.where(act, gl, np.where(inact, 0.0, np.minimum(gl, 0.0)))
            hh = np.where(act, gh, np.where(inact, 0.0, np.maximum(gh, 0.0)))
            gl, gh = self._affine((hl + hh) / 2, (hh - hl) / 2, k + 1, bias=False)
            lo_nn, hi_np = np.all(hl >= 0), np.all(hh <= 0)
            nn, npos = self.nonneg[k + 1], self.nonpos[k + 1]
            gl = np.where((nn & lo_nn) | (npos & hi_np), np.maximum(gl, 0), gl)
            gh = np.where((nn & hi_np) | (npos & lo_nn), np.minimum(gh, 0), gh)
        return float(gl[0]) if self.sign > 0 else float(-gh[0])


def numpy_search(net: ReluNetwork, spec: Monotonicity, max_boxes: int) -> dict:
    """Breadth-first bisection, one box per step (the reference artifact's loop)."""
    bound = NumpyOneBox(net, spec.feature, spec.sign)
    region = spec.region
    rel = 1.0 / np.where(region.widths > 0, region.widths, np.inf)
    queue = collections.deque([(region.lower.copy(), region.upper.copy(), 1.0)])
    examined, verified, unresolved = 0, 0.0, 0.0
    start = time.perf_counter()
    while queue and examined < max_boxes:
        lo, hi, vol = queue.popleft()
        lb = bound.lower(lo, hi)
        examined += 1
        if lb >= 0:
            verified += vol
            continue
        if max_boxes - examined - len(queue) >= 2:
            d = int(np.argmax((hi - lo) * rel))
            mid = (lo[d] + hi[d]) / 2
            left_hi, right_lo = hi.copy(), lo.copy()
            left_hi[d] = mid
            right_lo[d] = mid
            queue.append((lo, left_hi, vol / 2))
            queue.append((right_lo, hi, vol / 2))
        else:
            unresolved += vol
    elapsed = time.perf_counter() - start
    unresolved += sum(v for _, _, v in queue)
    return {"boxes": examined, "seconds": elapsed, "verified_fraction": verified, "unresolved_fraction": unresolved}


def vectorised_search(net, spec, max_boxes: int, batch_size: int, precision: str) -> dict:
    bound_fn = make_monotonicity_bound_fn(net, spec.feature, spec.sign, spec.region, precision)
    t = time.perf_counter()
    split_and_bound(spec.region, bound_fn, None, batch_size=batch_size, max_boxes=batch_size, time_budget_s=600)
    compile_s = time.perf_counter() - t
    t = time.perf_counter()
    res = split_and_bound(spec.region, bound_fn, None, batch_size=batch_size, max_boxes=max_boxes, time_budget_s=600)
    elapsed = time.perf_counter() - t
    return {
        "boxes": res.boxes,
        "seconds": elapsed,
        "verified_fraction": res.verified_fraction,
        "unresolved_fraction": res.unresolved_fraction,
        "compile_s": compile_s,
        "bound_s": res.stats["bound_s"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--boxes", type=int, default=300_000, help="box budget of the vectorised run")
    ap.add_argument("--ref-boxes", type=int, default=20_000, help="box budget of the NumPy reference")
    ap.add_argument("--batch-size", type=int, default=0, help="0: the backend's default for this device")
    ap.add_argument("--json", default="", help="also write the results to this file")
    args = ap.parse_args()

    net = bench_network()
    spec = Monotonicity(feature=4, direction="increasing", region=unit_box(9), name="bench")
    batch = args.batch_size or get_verifier("ouroboros").settings()["batch_size"]
    print(f"device: {jax.devices()[0]}  cpus: {os.cpu_count()}  network: {net.layer_sizes}  batch: {batch}")

    ref = numpy_search(net, spec, args.ref_boxes)
    same = {p: vectorised_search(net, spec, args.ref_boxes, batch, p) for p in ("float64", "float32")}
    print(
        f"same budget ({args.ref_boxes} boxes), verified fraction: numpy {ref['verified_fraction']:.6f}, "
        f"vectorised float64 {same['float64']['verified_fraction']:.6f}, "
        f"float32 {same['float32']['verified_fraction']:.6f}"
    )
    results = {"numpy_one_box": ref}
    for precision in ("float64", "float32"):
        results[f"vectorised_{precision}"] = vectorised_search(net, spec, args.boxes, batch, precision)

    ref_rate = ref["boxes"] / ref["seconds"]
    print(f"{'implementation':<24}{'boxes':>10}{'seconds':>10}{'boxes/s':>12}{'ratio':>8}")
    for name, r in results.items():
        rate = r["boxes"] / r["seconds"]
        r["boxes_per_s"] = rate
        r["ratio"] = rate / ref_rate
        print(f"{name:<24}{r['boxes']:>10}{r['seconds']:>10.2f}{rate:>12.0f}{r['ratio']:>7.1f}x")
    v64 = results["vectorised_float64"]
    print(
        f"float64 proof path: {v64['boxes_per_s']:.0f} boxes/s, {v64['ratio']:.1f}x the NumPy reference "
        f"(goals: >= 100000 boxes/s, >= 50x); compile {v64['compile_s']:.2f} s, "
        f"bounding {100 * v64['bound_s'] / v64['seconds']:.0f}% of the time"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
