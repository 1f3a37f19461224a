"""Lipschitz monotonic network (LMN): Nolte et al., "Expressive Monotonic Neural Networks",
ICLR 2023.

``g(x) = h(x) + lambda * sum_i s_i x_i`` over the monotone inputs ``i`` (``s_i`` = +1 or -1),
where ``h`` is ``lambda``-Lipschitz with respect to the L1 norm of its input, i.e.
``|dh/dx_i| <= lambda`` for every input: then ``s_i dg/dx_i >= 0``. The bound comes from the
layers: the first kernel's ``||W||_{1->inf}`` (its largest entry) and every later kernel's
``||W||_{inf->inf}`` (its largest column sum of ``|W|``, Flax's ``x @ W`` order) are each
normalised to at most ``lambda ** (1 / layers)``, and the activation is GroupSort with groups
of two (``max``, ``min`` of each pair), which is 1-Lipschitz and piecewise linear, so the
network converts exactly to a ``verifiers.ReluNetwork`` (``vpals_jax.convert``).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import ModuleType
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from vpals_jax.models.common import Linear

# Each layer's norm is held a relative 1e-5 below its share of lambda, so that the float32
# normalisation (and its float64 replay in the conversion) can never round the product of the
# norms above lambda: the slack keeps s_i dg/dx_i > 0 strictly instead of >= 0 up to rounding.
SAFETY = 1e-5


def layer_norm(kernel: Any, first: bool, xp: ModuleType = jnp) -> Any:
    """``||W||_{1->inf}`` for the first layer, ``||W||_{inf->inf}`` for the others."""
    return xp.max(xp.abs(kernel)) if first else xp.max(xp.sum(xp.abs(kernel), axis=0))


def normalise(kernel: Any, first: bool, bound: float, xp: ModuleType = jnp) -> Any:
    """``W / max(1, ||W|| / bound)``: the kernel if it is within the bound, else scaled onto it."""
    return kernel / xp.maximum(1.0, layer_norm(kernel, first, xp) / bound)


def per_layer_bound(lipschitz: float, n_layers: int) -> float:
    return lipschitz ** (1.0 / n_layers) * (1.0 - SAFETY)


def group_sort(z: Any, xp: ModuleType = jnp) -> Any:
    """GroupSort with groups of two: ``(z0, z1, z2, z3, ...) -> (max(z0, z1), min(z0, z1), ...)``."""
    pairs = z.reshape(*z.shape[:-1], z.shape[-1] // 2, 2)
    hi, lo = xp.max(pairs, axis=-1), xp.min(pairs, axis=-1)
    return xp.stack([hi, lo], axis=-1).reshape(z.shape)


def lmn_layers(params: Mapping[str, Any], lipschitz: float, xp: ModuleType = jnp) -> list[tuple[Any, Any]]:
    """The normalised (kernel, bias) of every layer of ``h``, hidden first, output last."""
    hidden = sorted((k for k in params if k.startswith("lip_") and k != "lip_out"), key=lambda k: int(k[4:]))
    if "lip_out" not in params or not hidden:
        raise ValueError(f"not an LMN parameter tree (expected lip_0..lip_k and lip_out), got keys {sorted(params)}")
    bound = per_layer_bound(lipschitz, len(hidden) + 1)
    return [(normalise(params[k]["kernel"], k == "lip_0", bound, xp), params[k]["bias"]) for k in [*hidden, "lip_out"]]


class LMN(nn.Module):
    """``depth`` GroupSort layers of ``width`` (even) units, a linear output, plus ``lipschitz * s . x``."""

    depth: int
    width: int
    signs: tuple[int, ...]
    lipschitz: float = 1.0

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        if x.shape[-1] != len(self.signs):
            raise ValueError(f"LMN built for {len(self.signs)} inputs, got {x.shape[-1]}")
        bound = per_layer_bound(self.lipschitz, self.depth + 1)
        h = x
        for i in range(self.depth):
            h = group_sort(Linear(self.width, name=f"lip_{i}")(h, lambda w, first=i == 0: normalise(w, first, bound)))
        h = Linear(1, name="lip_out")(h, lambda w: normalise(w, False, bound))[..., 0]
        return h + self.lipschitz * (x @ jnp.asarray(self.signs, x.dtype))
