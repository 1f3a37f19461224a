"""What the loops' hinges are given, built from specs and verdicts (pure functions): the slope rows
of every loop's pairs and regions, and the certified loop's output regions and witness boxes.

Kept apart from :mod:`vpals_jax.train.loop`, which owns the state (which regions are active, the
ring buffer of boxes); these only translate specs and witnesses into the arrays of
:mod:`vpals_jax.train.steps`.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np

from verifiers import Box, Counterexample, Monotonicity, OutputBound, Spec
from vpals_jax.train.steps import OutputRegionSet, RegionSet


@dataclass(frozen=True)
class SlopeRow:
    """One side of one slope spec: ``sign * c . grad f + shift >= 0`` with ``|c|_1 = 1``."""

    spec: int
    axis: np.ndarray  # c, L1 norm 1 (zeros: the inert row of a spec with no slope bounds)
    sign: float
    pair_shift: float  # what pairs may fall below a zero slope (0 for monotonicity: they ask for margin)
    bound_shift: float  # what the bound may (the spec's slope allowance)

    @property
    def inert(self) -> bool:
        return self.sign == 0.0


def slope_rows(specs: list[Spec], n: int) -> list[SlopeRow]:
    """The rows of ``specs`` in order: one per bound of a slope spec, one inert row for any other
    (so a monotonicity-only set has one row per spec, as the saved checkpoints expect)."""
    rows = []
    for i, spec in enumerate(specs):
        sb = spec.slope_bounds()
        if sb is None:
            rows.append(SlopeRow(i, np.zeros(n), 0.0, 0.0, 0.0))
            continue
        norm = float(np.abs(sb.direction).sum())
        for sign, shift in sb.sides():
            pair = 0.0 if isinstance(spec, Monotonicity) else shift / norm
            rows.append(SlopeRow(i, np.asarray(sb.direction, np.float64) / norm, sign, pair, shift / norm))
    return rows


def output_regions(specs: list[Spec]) -> OutputRegionSet | None:
    """The output-bound specs' regions and bounds, or None when there are none."""
    outs = [s for s in specs if isinstance(s, OutputBound)]
    if not outs:
        return None
    big = 1e3  # normalised units: a missing side never binds
    return OutputRegionSet(
        jnp.asarray(np.stack([s.region.lower for s in outs]), jnp.float32),
        jnp.asarray(np.stack([s.region.upper for s in outs]), jnp.float32),
        jnp.asarray([-big if s.lower is None else s.lower for s in outs], jnp.float32),
        jnp.asarray([big if s.upper is None else s.upper for s in outs], jnp.float32),
    )


def inert_regions(n_features: int) -> RegionSet:
    """One inactive monotonicity row: output bounds alone keep the compiled shapes fixed with it."""
    z = jnp.zeros((1, n_features), jnp.float32)
    return RegionSet(z, z, z, jnp.zeros(1), jnp.zeros(1), jnp.zeros(1))


def witness_box(cex: Counterexample, region: Box, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """The certified loop's form of a witness pair: the box around its segment, ``eps`` wider on every
    side (within ``region``), which the bound hinge then pushes like an unproven box. Why not pairs: a
    pool is a second program to compile (1.5-2.5 s, a third of a run), and its hinge over 256 pairs a
    step cost more than the bound hinge."""
    x, xp = np.asarray(cex.x), np.asarray(cex.x_prime)
    lo = np.clip(np.minimum(x, xp) - eps, region.lower, region.upper)
    return lo, np.clip(np.maximum(x, xp) + eps, region.lower, region.upper)
