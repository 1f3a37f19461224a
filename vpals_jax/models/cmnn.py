"""Constrained monotone network (CMNN): Runje & Shankaranarayana, "Constrained Monotonic Neural
Networks", ICML 2023.

Monotone inputs enter through kernels of fixed sign (``|W|`` for increasing, ``-|W|`` for
decreasing), every later kernel is ``|W|``, and every activation is non-decreasing, so the
output is monotone in those inputs by construction. Non-negative kernels with a convex
activation alone can only build convex functions; the paper's fix splits each layer's units
between the convex ``relu``, the concave ``-relu(-z)`` and the saturated ``clip(z, -1, 1)``
(the paper's construction from a convex activation, here with ReLU so that the network stays
piecewise linear and converts exactly to a ``verifiers.ReluNetwork``, see ``vpals_jax.convert``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from vpals_jax.models.common import Linear


def split_counts(width: int, weights: Sequence[int]) -> tuple[int, int, int]:
    """(convex, concave, saturated) units of a layer: ``weights`` as ratios, rounded down,
    the remainder saturated (the authors' activation selector)."""
    total = sum(weights)
    convex, concave = (width * weights[0]) // total, (width * weights[1]) // total
    return convex, concave, width - convex - concave


def first_kernel(kernel: Any, signs: Sequence[int], xp: ModuleType = jnp) -> Any:
    """Row ``i`` is ``s_i |W_i|`` for a monotone input, free otherwise (``xp``: jnp or numpy)."""
    s = xp.asarray(signs, dtype=kernel.dtype)[:, None]
    return xp.where(s != 0, s * xp.abs(kernel), kernel)


def cmnn_layers(params: Mapping[str, Any], signs: Sequence[int], xp: ModuleType = jnp) -> list[tuple[Any, Any]]:
    """The effective (kernel, bias) of every layer, hidden first, output last."""
    hidden = sorted((k for k in params if k.startswith("mono_") and k != "mono_out"), key=lambda k: int(k[5:]))
    if "mono_out" not in params or not hidden:
        raise ValueError(f"not a CMNN parameter tree (expected mono_0..mono_k and mono_out), got keys {sorted(params)}")
    out = []
    for k in [*hidden, "mono_out"]:
        w = params[k]["kernel"]
        out.append((first_kernel(w, signs, xp) if k == "mono_0" else xp.abs(w), params[k]["bias"]))
    return out


class CMNN(nn.Module):
    """``depth`` constrained layers of ``width`` units split by ``split``, then one constrained output."""

    depth: int
    width: int
    signs: tuple[int, ...]
    split: tuple[int, int, int] = (2, 2, 1)

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        if x.shape[-1] != len(self.signs):
            raise ValueError(f"CMNN built for {len(self.signs)} inputs, got {x.shape[-1]}")
        convex, concave, _ = split_counts(self.width, self.split)
        h = Linear(self.width, name="mono_0")(x, lambda w: first_kernel(w, self.signs))
        for i in range(self.depth):
            if i:
                h = Linear(self.width, name=f"mono_{i}")(h, jnp.abs)
            h = jnp.concatenate(
                [nn.relu(h[..., :convex]), -nn.relu(-h[..., convex : convex + concave]),
                 jnp.clip(h[..., convex + concave :], -1.0, 1.0)], axis=-1)  # fmt: skip
        return Linear(1, name="mono_out")(h, jnp.abs)[..., 0]
