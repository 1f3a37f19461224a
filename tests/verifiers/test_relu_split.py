"""Activation branch and bound (:mod:`verifiers.search.relu_split`): sound against sampling and
the exact MILP, and able to prove what input splitting alone leaves open."""

from __future__ import annotations

import time

import numpy as np
import pytest

from verifiers import Box, Monotonicity, ReluNetwork, Status, get_verifier
from verifiers.bounds.interval import gradient_bounds
from verifiers.bounds.relu_split import MaskedMonotonicityBound, hidden_sizes
from verifiers.search.relu_split import relu_branch_and_bound


def _net(rng: np.random.Generator, n: int = 4, h: int = 12, depth: int = 2) -> ReluNetwork:
    """Mostly monotone in feature 0 (non-negative paths with a few negative weights): the kind of
    network where the interval derivative chain is loose but the truth is often monotone."""
    ws = [rng.normal(size=(n, h))]
    ws[0][0] = np.abs(ws[0][0]) * (rng.random(h) < 0.9) - 0.05 * (rng.random(h) < 0.1)
    for _ in range(depth - 1):
        ws.append(np.abs(rng.normal(size=(h, h))) - 0.3 * rng.random((h, h)) * (rng.random((h, h)) < 0.3))
    ws.append(np.abs(rng.normal(size=(h, 1))))
    return ReluNetwork(ws, [rng.normal(size=w.shape[1]) for w in ws[:-1]] + [np.zeros(1)])


def _pattern(net: ReluNetwork, x: np.ndarray) -> np.ndarray:
    """The activation signs (+1 / -1) of every hidden unit at each row of ``x``."""
    out, h = [], x
    for w, b in zip(net.weights[:-1], net.biases[:-1]):
        z = h @ w + b
        out.append(np.where(z >= 0, 1, -1))
        h = np.maximum(z, 0)
    return np.concatenate(out, axis=1).astype(np.int8)


def _derivative(net: ReluNetwork, x: np.ndarray, feature: int) -> np.ndarray:
    g, h = np.zeros((len(x), net.n_inputs)), x
    g[:, feature] = 1.0
    for k, (w, b) in enumerate(zip(net.weights, net.biases)):
        z, g = h @ w + b, g @ w
        if k < len(net.weights) - 1:
            g, h = g * (z > 0), np.maximum(z, 0)
    return g[:, 0]


def test_an_empty_mask_is_the_interval_chain():
    rng = np.random.default_rng(0)
    for _ in range(10):
        net = _net(rng)
        lo = rng.uniform(-1, 0, size=(8, 4))
        hi = lo + rng.uniform(0, 1, size=(8, 4))
        lb, _ = MaskedMonotonicityBound(net, 0, 1.0)(lo, hi, np.zeros((8, sum(hidden_sizes(net))), np.int8))
        np.testing.assert_array_equal(lb, gradient_bounds(net, lo, hi, 0)[0][:, 0])


def test_a_masked_bound_holds_at_every_point_of_its_branch():
    """Masks taken from the activation pattern of a point, partly freed: every sampled point of
    the box that satisfies the mask has a derivative at or above the bound."""
    rng = np.random.default_rng(1)
    checked = 0
    for _ in range(30):
        net = _net(rng, depth=int(rng.integers(1, 4)))
        lo, hi = -np.ones(4), np.ones(4)
        pts = rng.uniform(lo, hi, size=(4000, 4))
        pat = _pattern(net, pts)
        sign = float(rng.choice([-1.0, 1.0]))
        for k in range(4):
            mask = pat[k] * (rng.random(pat.shape[1]) < 0.5)
            lb, _ = MaskedMonotonicityBound(net, 0, sign)(lo[None], hi[None], mask[None])
            inside = np.all((mask == 0) | (pat == mask), axis=1)
            assert inside[k]  # the branch holds its own point, so it is not empty
            assert np.isfinite(lb[0])
            d = sign * _derivative(net, pts[inside], 0)
            assert np.all(d >= lb[0] - 1e-9), (d.min(), lb[0])
            checked += int(inside.sum())
    assert checked > 10_000


@pytest.mark.parametrize("seed", range(3))
def test_activation_splitting_agrees_with_milp_and_proves_what_input_splitting_cannot(seed):
    rng = np.random.default_rng(100 + seed)
    counts = {"relu_only": 0, "proven": 0}
    for _ in range(12):
        net = _net(rng)
        box = Box(-np.ones(4), np.ones(4))
        spec = Monotonicity(feature=0, direction="increasing", region=box)
        b = MaskedMonotonicityBound(net, 0, 1.0)
        out = relu_branch_and_bound(b, box.lower[None], box.upper[None], box.widths, batch_size=64, max_nodes=4000,
                                    deadline=time.perf_counter() + 30)  # fmt: skip
        exact = get_verifier("milp").verify(net, spec, time_budget_s=30)
        if out.proven[0]:
            counts["proven"] += 1
            assert exact.status != Status.FALSIFIED, "activation splitting proved a falsified spec"
            x = rng.uniform(-1, 1, size=(20_000, 4))
            xp = x.copy()
            xp[:, 0] = rng.uniform(x[:, 0], 1.0)
            assert np.all(net.forward(xp)[:, 0] - net.forward(x)[:, 0] >= -1e-9)
            inputs_only = get_verifier("ouroboros", max_boxes=4000).verify(net, spec, time_budget_s=30)
            counts["relu_only"] += inputs_only.status != Status.VERIFIED
        if exact.status == Status.FALSIFIED:
            assert not out.proven[0]
    assert counts["proven"] >= 6 and counts["relu_only"] >= 1, counts


@pytest.mark.parametrize("backend", ["ouroboros", "crown"])
def test_the_backends_finish_with_activation_splits(backend):
    """A network the input search leaves UNKNOWN on a tiny box budget is VERIFIED once the
    finisher is on; the verdict says so and counts its nodes."""
    rng = np.random.default_rng(7)
    for _ in range(50):
        net = _net(rng)
        spec = Monotonicity(feature=0, direction="increasing", region=Box(-np.ones(4), np.ones(4)))
        plain = get_verifier(backend, max_boxes=16).verify(net, spec, time_budget_s=20)
        if plain.status == Status.UNKNOWN:
            break
    else:
        pytest.fail("no network left UNKNOWN by input splitting")
    split = get_verifier(backend, max_boxes=16, relu_split=True).verify(net, spec, time_budget_s=20)
    assert split.status == Status.VERIFIED, split.message
    assert "activation splitting" in split.message and split.verified_fraction == 1.0
    assert get_verifier("milp").verify(net, spec, time_budget_s=30).status != Status.FALSIFIED
