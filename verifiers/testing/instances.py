"""Constructors of test and benchmark networks (a small public API, reused by the benchmarks).

* :func:`random_relu_net` -- a seeded random fully connected ReLU network.
* :func:`monotone_net` -- a network monotone *by construction* in chosen features.
* :func:`planted_violation` -- a monotone network plus a planted monotonicity violation that
  lives inside a known sub-box; returns the network, the spec and the sub-box.
* :func:`linnos_sized_net` -- the 9 -> 300 -> 300 -> 1 shape of the LinnOS predictor.

All weights follow :class:`verifiers.ReluNetwork` (Flax order, ``W_k`` of shape ``(in, out)``).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from verifiers.network import ReluNetwork
from verifiers.specs import Box, Monotonicity


def unit_box(n_inputs: int) -> Box:
    """``[0, 1]^n``, the normalised input domain used by the project's models."""
    return Box(np.zeros(n_inputs), np.ones(n_inputs))


def _init(rng: np.random.Generator, sizes: Sequence[int], bias_scale: float):
    ws = [rng.normal(size=(a, b)) * np.sqrt(2.0 / a) for a, b in itertools.pairwise(sizes)]
    bs = [rng.normal(size=b) * bias_scale for b in sizes[1:]]
    return ws, bs


def random_relu_net(
    n_inputs: int, hidden: Sequence[int] = (16, 16), seed: int = 0, bias_scale: float = 0.1, n_outputs: int = 1
) -> ReluNetwork:
    """He-initialised random ReLU network ``n_inputs -> hidden... -> n_outputs`` (seeded)."""
    rng = np.random.default_rng(seed)
    ws, bs = _init(rng, [n_inputs, *hidden, n_outputs], bias_scale)
    return ReluNetwork(ws, bs)


def linnos_sized_net(seed: int = 0) -> ReluNetwork:
    """A seeded random network of the LinnOS predictor's shape: 9 inputs, two hidden layers of 300."""
    return random_relu_net(9, (300, 300), seed=seed)


def monotone_net(
    n_inputs: int,
    hidden: Sequence[int] = (16, 16),
    increasing: Sequence[int] = (0,),
    decreasing: Sequence[int] = (),
    seed: int = 0,
    bias_scale: float = 0.1,
) -> ReluNetwork:
    """A network that is provably non-decreasing in ``increasing`` and non-increasing in
    ``decreasing`` features, on all of ``R^n``.

    Construction: every weight of layers 2..L is non-negative; in layer 1 the rows of
    ``increasing`` features are non-negative and those of ``decreasing`` features non-positive
    (other rows and all biases have any sign). Every hidden unit is then a composition of
    monotone maps in each such feature, and so is the output (a non-negative combination).
    """
    inc, dec = {int(i) for i in increasing}, {int(i) for i in decreasing}
    if inc & dec:
        raise ValueError(f"features {sorted(inc & dec)} cannot be both increasing and decreasing")
    if any(not 0 <= i < n_inputs for i in inc | dec):
        raise ValueError(f"monotone features must be in [0, {n_inputs})")
    rng = np.random.default_rng(seed)
    ws, bs = _init(rng, [n_inputs, *hidden, 1], bias_scale)
    for i in inc:
        ws[0][i] = np.abs(ws[0][i])
    for i in dec:
        ws[0][i] = -np.abs(ws[0][i])
    for k in range(1, len(ws)):
        ws[k] = np.abs(ws[k])
    return ReluNetwork(ws, bs)


@dataclass(frozen=True, eq=False)
class PlantedViolation:
    """A network whose monotonicity in ``spec.feature`` fails exactly inside ``violation_box``.

    Every violating pair ``(x, x')`` has its segment crossing ``violation_box`` (outside it
    the network is monotone), and the worst pair lies inside it.
    """

    net: ReluNetwork
    spec: Monotonicity
    violation_box: Box
    bump_height: float


def planted_violation(
    n_inputs: int,
    hidden: Sequence[int] = (16, 16),
    feature: int = 0,
    direction: str = "increasing",
    region: Box | None = None,
    sub_box: Box | None = None,
    seed: int = 0,
    strength: float = 2.0,
    plateau: float = 0.5,
) -> PlantedViolation:
    """A monotone network with a planted violation in ``sub_box`` (default: the dyadic box
    ``[0.5, 0.75]`` of every coordinate of the region, in region-relative units).

    How it is planted. Let ``g`` be :func:`monotone_net` (increasing in ``feature`` = ``i``),
    ``S = [c - h, c + h]`` the sub-box, ``e_j = (1 - plateau) h_j``. In parallel with ``g`` the
    network computes (first hidden layer, two ReLUs per coordinate; second hidden layer, one)

        bump(x) = relu(1 - |x_i - c_i| / h_i - sum_{j != i} relu(|x_j - c_j| - (h_j - e_j)) / e_j)

    which is zero outside ``S`` (one term reaches 1 on its boundary) and a tent along ``e_i``
    inside it, and outputs ``f = g - A bump`` with ``A = strength * h_i * (L + 1)``, where ``L``
    bounds ``dg/dx_i`` (product of the absolute weights along all paths). Inside ``S`` for
    ``x_i < c_i`` the slope is at most ``L - A / h_i < 0``: a violation; outside ``S``,
    ``f = g`` is monotone. Deeper networks carry ``bump`` (>= 0) through extra hidden layers
    with identity weights. For ``direction="decreasing"`` the output is negated.
    """
    if len(hidden) < 2:
        raise ValueError("planted_violation needs at least two hidden layers")
    if direction not in ("increasing", "decreasing"):
        raise ValueError(f"direction must be 'increasing' or 'decreasing', got {direction!r}")
    if not 0 <= feature < n_inputs:
        raise ValueError(f"feature {feature} is outside [0, {n_inputs})")
    if not 0.0 < plateau < 1.0:
        raise ValueError(f"plateau must be in (0, 1), got {plateau}")
    region = region if region is not None else unit_box(n_inputs)
    if region.dim != n_inputs:
        raise ValueError(f"region has {region.dim} dimensions, expected {n_inputs}")
    if sub_box is None:
        sub_box = Box(region.lower + 0.5 * region.widths, region.lower + 0.75 * region.widths)
    if sub_box.dim != n_inputs or np.any(sub_box.widths <= 0):
        raise ValueError("sub_box must have the network's dimension and positive widths")
    if np.any(sub_box.lower < region.lower) or np.any(sub_box.upper > region.upper):
        raise ValueError("sub_box must lie inside the region")

    g = monotone_net(n_inputs, hidden, increasing=(feature,), seed=seed)
    c, h = sub_box.center, sub_box.widths / 2.0
    e = (1.0 - plateau) * h
    lip = np.abs(g.weights[0][feature])
    for w in g.weights[1:]:
        lip = lip @ np.abs(w)
    height = float(strength * h[feature] * (float(lip[0]) + 1.0))

    n = n_inputs
    # Layer 1: g's units, then (relu(x_j - c_j - a_j), relu(c_j - x_j - a_j)) for each j.
    a = h - e
    a[feature] = 0.0
    w1b = np.zeros((n, 2 * n))
    b1b = np.zeros(2 * n)
    for j in range(n):
        w1b[j, 2 * j], b1b[2 * j] = 1.0, -(c[j] + a[j])
        w1b[j, 2 * j + 1], b1b[2 * j + 1] = -1.0, c[j] - a[j]
    scale = 1.0 / e
    scale[feature] = 1.0 / h[feature]
    w2b = -np.repeat(scale, 2)[:, None]
    ws = [np.concatenate([g.weights[0], w1b], axis=1)]
    bs = [np.concatenate([g.biases[0], b1b])]
    ws.append(_block(g.weights[1], w2b))
    bs.append(np.concatenate([g.biases[1], [1.0]]))
    for w, b in zip(g.weights[2:-1], g.biases[2:-1]):
        ws.append(_block(w, np.ones((1, 1))))
        bs.append(np.concatenate([b, [0.0]]))
    ws.append(np.concatenate([g.weights[-1], [[-height]]], axis=0))
    bs.append(g.biases[-1].copy())
    if direction == "decreasing":
        ws[-1], bs[-1] = -ws[-1], -bs[-1]
    net = ReluNetwork(ws, bs)
    spec = Monotonicity(feature=feature, direction=direction, region=region, name="planted")
    return PlantedViolation(net=net, spec=spec, violation_box=sub_box, bump_height=height)


def _block(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.zeros((a.shape[0] + b.shape[0], a.shape[1] + b.shape[1]))
    out[: a.shape[0], : a.shape[1]] = a
    out[a.shape[0] :, a.shape[1] :] = b
    return out


__all__ = [
    "PlantedViolation",
    "linnos_sized_net",
    "monotone_net",
    "planted_violation",
    "random_relu_net",
    "unit_box",
]


def split_band_net(
    n_inputs: int = 1,
    feature: int = 0,
    start: float = 0.3 + 1 / (3 * np.e),
    width: float = 0.4,
    drop: float = 0.04,
    slope: float = 10.0,
    mix: float = 0.0,
) -> ReluNetwork:
    """``f = slope x_i + sum_{j != i} x_j - c relu(s - start) + c relu(s - start - width)`` with
    ``s = x_i + mix * x_{i+1}`` and ``c = slope + drop / width``: monotone except a band of slope
    ``-drop / width`` and length ``width`` along ``x_i``, i.e. a drop of exactly ``drop``.

    On ``[0, 1]^n`` the default band straddles the first bisection point (0.5); wider or earlier
    bands straddle several, so that every box of a bisection sees only part of the drop: the
    instance on which per-box *difference* proofs with a tolerance just below ``drop`` (which do
    not compose) would wrongly verify. ``mix`` tilts the band into the next feature.
    """
    c = slope + drop / width
    other = (feature + 1) % n_inputs
    w0 = np.zeros((n_inputs, 3))
    w0[feature] = 1.0
    if mix and n_inputs > 1:
        w0[other, 1:] = mix
    b0 = np.array([0.0, -start, -start - width])
    w_lin = np.ones((n_inputs, 1))
    w_lin[feature] = 0.0
    # x_j >= 0 on the unit box: relu(x_j) = x_j carries the monotone linear part
    w0 = np.hstack([w0, np.eye(n_inputs)])
    b0 = np.concatenate([b0, np.zeros(n_inputs)])
    w1 = np.concatenate([[slope, -c, c], w_lin[:, 0]])[:, None]
    return ReluNetwork([w0, w1], [b0, np.zeros(1)])


def gated_violation(
    hidden: int = 16, depth: int = 4, gate_weight: float = 500.0, drop: float = 2e-5, seed: int = 0
) -> tuple[ReluNetwork, Monotonicity]:
    """A ``4 -> hidden^depth -> 1`` network on ``[-1, 1]^4`` whose monotonicity violation in
    ``x_0`` (a drop of about ``drop``, spec tolerance ``drop / 20``) is reachable only through the
    corner ``x_1 = x_2 = x_3 = 1``, behind a gate unit of weight ``gate_weight``; several units
    have pre-activation bounds within 1e-8 of 0 and large outgoing weights. Floating-point
    MILP solvers, whose feasibility tolerance is about 1e-9, can miss such a violation.
    """
    rng = np.random.default_rng(seed)
    g = gate_weight
    ws, bs = [], []
    w = np.zeros((4, hidden))
    b = np.zeros(hidden)
    w[1:, 0] = g
    b[0] = -g * 2.99  # gate: relu(g (x1 + x2 + x3 - 2.99)) in [0, 0.01 g], positive near the corner
    w[0, 1] = 1.0
    b[1] = 1.0  # x0 + 1 >= 0: carries x0
    for k in range(2, hidden):  # tiny units: pre-activation bounds within 1e-8 of 0
        w[rng.integers(0, 4), k] = rng.uniform(1e-10, 5e-9) * rng.choice([-1, 1])
        b[k] = rng.uniform(-1e-9, 1e-9)
    ws.append(w)
    bs.append(b)
    for layer in range(1, depth):
        w = np.zeros((hidden, hidden))
        b = np.zeros(hidden)
        w[0, 0] = 1.0
        w[1, 1] = 1.0
        if layer == depth - 1:  # band unit: relu(x0 + 1 - 2 + gate / (0.01 g)), active only near the corner
            w[1, 2] = 1.0
            w[0, 2] = 1.0 / (0.01 * g)
            b[2] = -2.0
        for k in range(2 if layer < depth - 1 else 3, hidden):  # tiny units pass on, amplified by the gate weight
            w[k, k] = g
            b[k] = rng.uniform(-1e-9, 1e-9)
        ws.append(w)
        bs.append(b)
    out = np.zeros((hidden, 1))
    out[1, 0] = drop / 20  # increasing in x0 everywhere ...
    out[2, 0] = -(drop + drop / 20)  # ... but the band drops by about `drop` along x0 near the corner
    out[3:, 0] = rng.choice([-1.0, 1.0], size=hidden - 3) * 1e-3
    ws.append(out)
    bs.append(np.zeros(1))
    net = ReluNetwork(ws, bs)
    spec = Monotonicity(feature=0, direction="increasing", region=Box(-np.ones(4), np.ones(4)), tolerance=drop / 20)
    return net, spec
