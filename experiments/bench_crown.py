"""Linear bounds (``crown``) against interval bounds (``ouroboros``), auto_LiRPA (``lirpa``) and MILP.

Three questions, each on the same networks and specs for every backend:

1. **Boxes and wall time for the same verdict**, crown vs ouroboros (same splitting engine, same
   witness search; only the bounding function differs). Instances: seeded random networks made
   monotone in ``x_0`` with a small exact margin (the exact minimum of the derivative is computed
   by the MILP and shifted to ``+margin`` through an extra always-active unit), Ouroboros-style
   slices of two LinnOS-shaped predictors (input 4 or 8 over ``[0.1, 0.9]``, inputs 0-1 over
   ``0.5 +- w``, the others at 0.5), and the nearly-monotone 9-300-300-1 network of
   ``experiments.bench_ouroboros`` over all of ``[0, 1]^9``. Wall times are warm (compilation is
   done by a first call with a tiny budget) and budgets are 60 s.
2. **Bound tightness and throughput against auto_LiRPA's CROWN** on the gradient network (the
   ``lirpa`` backend, gradient formulation), on the same boxes of a LinnOS-shaped predictor.
3. **The whole-domain LinnOS question**: monotonicity in columns 4 and 8 over the entire
   normalised box ``[0, 1]^9``, every backend with the same 60 s budget.

LinnOS predictors. The project's trained LinnOS model comes from the training pipeline; until it
exists this benchmark trains *stand-ins* inline, clearly labelled: a 9-300-300-1 ReLU MLP fitted
with Adam (MSE) on ``data/external/linnos/linnos.csv`` (min-max normalised inputs and target),
seeded, a few epochs; ``standin-plain`` with the MSE alone and ``standin-penalty`` with an added
hinge penalty on negative slopes in columns 4 and 8 at random points (a cheap proxy of
monotonicity-aware training).

Run: ``.venv/bin/python -m experiments.bench_crown [--quick] [--json PATH]`` (about 5 minutes on
two busy cores; ``--quick`` runs a subset).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments.bench_ouroboros import bench_network
from verifiers import Box, Monotonicity, ReluNetwork, get_verifier
from verifiers.bounds.linear import LinearBounder
from verifiers.milp import BoxMilp
from verifiers.testing.instances import random_relu_net, unit_box

LINNOS_CSV = Path(__file__).resolve().parents[1] / "data" / "external" / "linnos" / "linnos.csv"
BUDGET_S = 60.0


# --- instances ------------------------------------------------------------------------------------


def with_slope_shift(net: ReluNetwork, feature: int, alpha: float) -> ReluNetwork:
    """``f(x) + alpha * x_feature`` through one extra unit per hidden layer that carries
    ``x_feature + 2`` (active for ``x_feature >= -2``, so on every box used here)."""
    ws = [np.array(w) for w in net.weights]
    bs = [np.array(b) for b in net.biases]
    carry = np.zeros((ws[0].shape[0], 1))
    carry[feature, 0] = 1.0
    ws[0] = np.hstack([ws[0], carry])
    bs[0] = np.r_[bs[0], 2.0]
    for k in range(1, len(ws)):
        w = np.vstack([ws[k], np.zeros((1, ws[k].shape[1]))])
        if k < len(ws) - 1:
            unit = np.zeros((w.shape[0], 1))
            unit[-1, 0] = 1.0
            w = np.hstack([w, unit])
            bs[k] = np.r_[bs[k], 0.0]
        else:
            w[-1, 0] = alpha
            bs[k] = bs[k] - 2.0 * alpha
        ws[k] = w
    return ReluNetwork(ws, bs)


def margin_instance(
    n: int, hidden: tuple[int, ...], seed: int, margin: float
) -> tuple[ReluNetwork, Monotonicity, float]:
    """A random network shifted so that ``min df/dx_0`` over ``[0, 1]^n`` is ``margin`` (exactly,
    when the MILP solves to optimality; otherwise at least ``margin``)."""
    net = random_relu_net(n, hidden, seed=seed)
    region = unit_box(n)
    res = BoxMilp(net, region.lower, region.upper, feature=0).min_derivative(1.0, time_limit=30.0, rel_gap=0.0)
    low = res.objective if res.status == "optimal" else res.dual_bound
    spec = Monotonicity(feature=0, direction="increasing", region=region, name=f"x0 up, margin {margin}")
    return with_slope_shift(net, 0, margin - low), spec, low


def ouroboros_slice(col: int, width: float) -> Box:
    lo, hi = np.full(9, 0.5), np.full(9, 0.5)
    lo[col], hi[col] = 0.1, 0.9
    lo[:2], hi[:2] = 0.5 - width, 0.5 + width
    return Box(lo, hi)


def train_linnos_standin(penalty: float, epochs: int, seed: int = 0) -> ReluNetwork:
    """A quick LinnOS-shaped predictor (see the module docstring); ``penalty`` weighs the hinge on
    negative slopes in columns 4 and 8."""
    data = np.loadtxt(LINNOS_CSV, delimiter=",")
    x, y = data[:, :9], data[:, 9]
    x = (x - x.min(0)) / np.where(np.ptp(x, 0) > 0, np.ptp(x, 0), 1.0)
    y = (y - y.min()) / (y.max() - y.min())
    key = jax.random.PRNGKey(seed)
    params = []
    for a, b in zip([9, 300, 300], [300, 300, 1]):
        key, sub = jax.random.split(key)
        params.append((jax.random.normal(sub, (a, b)) * np.sqrt(2.0 / a), jnp.zeros(b)))

    def f(p, xb):
        for k, (w, b) in enumerate(p):
            xb = xb @ w + b
            if k < len(p) - 1:
                xb = jax.nn.relu(xb)
        return xb[:, 0]

    def loss(p, xb, yb, xu):
        slopes = jax.grad(lambda z: f(p, z).sum())(xu)
        hinge = jnp.mean(jax.nn.relu(0.02 - slopes[:, 4]) + jax.nn.relu(0.02 - slopes[:, 8]))
        return jnp.mean((f(p, xb) - yb) ** 2) + penalty * hinge

    opt = optax.adam(1e-3)
    state = opt.init(params)

    @jax.jit
    def step(p, s, xb, yb, xu):
        g = jax.grad(loss)(p, xb, yb, xu)
        upd, s = opt.update(g, s, p)
        return optax.apply_updates(p, upd), s

    rng = np.random.default_rng(seed)
    xj, yj = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)
    for _ in range(epochs):
        perm = rng.permutation(len(x))
        for s in range(0, len(x) - 511, 512):
            idx = perm[s : s + 512]
            params, state = step(params, state, xj[idx], yj[idx], jnp.asarray(rng.random((512, 9)), jnp.float32))
    return ReluNetwork([np.asarray(w, np.float64) for w, _ in params], [np.asarray(b, np.float64) for _, b in params])


# --- measurements ---------------------------------------------------------------------------------


def timed(name: str, net: ReluNetwork, spec, budget: float = BUDGET_S, warm: bool = True, **options) -> dict:
    """Run a backend and summarise its verdict; with ``warm``, a first call with a tiny budget (the
    engine still bounds one batch) compiles everything beforehand."""
    verifier = get_verifier(name, **options)
    if warm:
        verifier.verify(net, spec, 1e-3)
    t = time.perf_counter()
    v = verifier.verify(net, spec, budget)
    return {
        "status": v.status.value,
        "boxes": int(v.boxes),
        "seconds": round(time.perf_counter() - t, 3),
        "verified_fraction": round(float(v.verified_fraction), 4),
        "best_bound": None if v.best_bound is None else round(float(v.best_bound), 5),
        "worst_margin": None if v.worst_margin is None else round(float(v.worst_margin), 6),
    }


def question_boxes(quick: bool, standins: dict[str, ReluNetwork]) -> list[dict]:
    rows = []
    shapes = [(4, (16, 16), 0.05), (4, (16, 16), 0.2), (5, (16, 16), 0.2), (3, (8, 8, 8), 0.1)]
    seeds = range(2) if quick else range(3)
    cases = []
    for n, hidden, margin in shapes:
        for seed in seeds:
            net, spec, _low = margin_instance(n, hidden, seed, margin)
            cases.append((f"random {n}-{'-'.join(map(str, hidden))} s{seed} m{margin}", net, spec))
    for label, net in standins.items():
        for col in (4, 8):
            for width in (0.1,) if quick else (0.1, 0.2):
                spec = Monotonicity(feature=col, direction="increasing", region=ouroboros_slice(col, width))
                cases.append((f"{label} col{col} slice+-{width}", net, spec))
    cases.append(
        (
            "bench_ouroboros 2x300 [0,1]^9",
            bench_network(0),
            Monotonicity(feature=4, direction="increasing", region=unit_box(9)),
        )
    )
    for label, net, spec in cases:
        row = {"instance": label, "ouroboros": timed("ouroboros", net, spec), "crown": timed("crown", net, spec)}
        rows.append(row)
        o, c = row["ouroboros"], row["crown"]
        print(
            f"  {label:42s} ouroboros {o['status']:9s} {o['boxes']:7d} boxes {o['seconds']:7.2f} s | "
            f"crown {c['status']:9s} {c['boxes']:6d} boxes {c['seconds']:6.2f} s",
            flush=True,
        )
    return rows


def summarise_boxes(rows: list[dict]) -> dict:
    same = [r for r in rows if r["ouroboros"]["status"] == r["crown"]["status"] in ("VERIFIED",)]
    only_crown = [
        r
        for r in rows
        if r["crown"]["status"] in ("VERIFIED", "FALSIFIED")
        and r["ouroboros"]["status"] not in ("VERIFIED", "FALSIFIED")
    ]
    only_ouro = [
        r
        for r in rows
        if r["ouroboros"]["status"] in ("VERIFIED", "FALSIFIED")
        and r["crown"]["status"] not in ("VERIFIED", "FALSIFIED")
    ]
    ratio = [r["ouroboros"]["boxes"] / r["crown"]["boxes"] for r in same]
    wall = [r["ouroboros"]["seconds"] / max(r["crown"]["seconds"], 1e-9) for r in same]
    both_decided = [
        r
        for r in rows
        if r["crown"]["status"] in ("VERIFIED", "FALSIFIED") and r["ouroboros"]["status"] in ("VERIFIED", "FALSIFIED")
    ]
    return {
        "same_verified": len(same),
        "box_ratio_geomean": float(np.exp(np.mean(np.log(ratio)))) if ratio else None,
        "box_ratio_min": float(min(ratio)) if ratio else None,
        "wall_ratio_geomean": float(np.exp(np.mean(np.log(wall)))) if wall else None,
        "wall_total_ouroboros": round(sum(r["ouroboros"]["seconds"] for r in same), 2),
        "wall_total_crown": round(sum(r["crown"]["seconds"] for r in same), 2),
        "decided_only_by_crown": len(only_crown),
        "decided_only_by_ouroboros": len(only_ouro),
        "verdict_conflicts": sum(r["crown"]["status"] != r["ouroboros"]["status"] for r in both_decided),
    }


def question_lirpa(net: ReluNetwork, quick: bool) -> dict:
    """Mean lower bound of df/dx_4 and boxes/s, crown vs auto_LiRPA CROWN, on the same boxes."""
    rng = np.random.default_rng(0)
    region = ouroboros_slice(4, 0.2)
    n_boxes = 64 if quick else 128
    centre = rng.uniform(region.lower, region.upper, size=(n_boxes, 9))
    half = rng.uniform(0.01, 0.08, size=(n_boxes, 9)) * (region.widths > 0)
    lo = np.clip(centre - half, region.lower, region.upper)
    hi = np.clip(centre + half, region.lower, region.upper)
    spec = Monotonicity(feature=4, direction="increasing", region=region)
    bounder = LinearBounder(net, batch_size=64)
    rates = {}
    for iters in (0, 10):
        bounder.derivative(lo[:64], hi[:64], 4, 1.0, iters=iters)  # compile
        t = time.perf_counter()
        ours = bounder.derivative(lo, hi, 4, 1.0, iters=iters)
        rates[iters] = n_boxes / (time.perf_counter() - t)
    crown_rate = rates[10]
    out = {
        "boxes": n_boxes,
        "crown_mean_lower": float(ours.lower.mean()),
        "crown_plain_mean_lower": float(ours.plain_lower.mean()),
        "interval_mean_lower": float(ours.interval_lower.mean()),
        "crown_boxes_per_s": round(crown_rate, 1),
        "crown_plain_boxes_per_s": round(rates[0], 1),
    }
    try:
        lirpa = get_verifier("lirpa", method="crown", batch_size=32)
        fn = lirpa.monotonicity_bound_fn(net, spec)
    except Exception as e:  # noqa: BLE001 - the comparison is optional when auto_LiRPA is unusable
        out["lirpa"] = f"unavailable: {e}"
        return out
    m = 32
    fn(lo[:m], hi[:m])  # build
    t = time.perf_counter()
    theirs = np.concatenate([fn(lo[s : s + m], hi[s : s + m]).lower for s in range(0, n_boxes, m)])
    lirpa_rate = n_boxes / (time.perf_counter() - t)
    out.update(
        lirpa_mean_lower=float(theirs.mean()),
        lirpa_boxes_per_s=round(lirpa_rate, 2),
        crown_at_least_as_tight_frac=float(np.mean(ours.lower >= theirs - 1e-9)),
        crown_plain_at_least_as_tight_frac=float(np.mean(ours.plain_lower >= theirs - 1e-9)),
        throughput_ratio=round(crown_rate / lirpa_rate, 1),
        throughput_ratio_plain=round(rates[0] / lirpa_rate, 1),
    )
    return out


def question_whole_domain(standins: dict[str, ReluNetwork], quick: bool) -> list[dict]:
    backends = [
        ("crown", {}),
        ("crown+milp", {"hybrid_milp": True}),
        ("ouroboros", {}),
        ("milp", {"worst_case": False}),
        ("lirpa", {"method": "crown"}),
    ]
    rows = []
    for label, net in standins.items():
        for col in (4, 8):
            spec = Monotonicity(feature=col, direction="increasing", region=unit_box(9))
            for name, opts in backends:
                if quick and name in ("milp", "lirpa"):
                    continue
                backend = "crown" if name.startswith("crown") else name
                try:
                    r = timed(backend, net, spec, warm=False, **opts)
                except Exception as e:  # noqa: BLE001 - report an unusable optional backend
                    r = {"status": f"unavailable: {e}"}
                rows.append(dict(network=label, column=col, backend=name, **r))
                print(
                    f"  {label:16s} col{col} {name:11s} {r.get('status'):9s} boxes {r.get('boxes', '-')!s:>7} "
                    f"{r.get('seconds', float('nan')):6.2f} s  worst margin {r.get('worst_margin')}",
                    flush=True,
                )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a subset (about a third of the time)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    t0 = time.perf_counter()
    epochs = 2 if args.quick else 4
    print(f"Training the LinnOS stand-ins (9-300-300-1, {epochs} epochs each; NOT the project's trained model)...")
    standins = {
        "standin-plain": train_linnos_standin(penalty=0.0, epochs=epochs),
        "standin-penalty": train_linnos_standin(penalty=1.0, epochs=epochs),
    }
    print("\n1. Boxes and warm wall time for the same verdict (budget 60 s, ouroboros max_boxes 200000)")
    rows = question_boxes(args.quick, standins)
    summary = summarise_boxes(rows)
    print("   summary:", json.dumps(summary))
    print("\n2. Bounds of df/dx_4 on the same boxes: crown vs auto_LiRPA CROWN (standin-penalty)")
    lirpa = question_lirpa(standins["standin-penalty"], args.quick)
    print("  ", json.dumps(lirpa))
    print("\n3. Whole domain [0,1]^9, columns 4 and 8, 60 s per backend")
    whole = question_whole_domain(standins, args.quick)
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps({"boxes": rows, "summary": summary, "lirpa": lirpa, "whole_domain": whole}, indent=1)
        )


if __name__ == "__main__":
    main()
