"""The per-application predictor: a plain MLP.

ReLU is the default because the verifiers reason about piecewise-linear networks; other
activations train fine but cannot be converted to a ``verifiers.ReluNetwork``.
"""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax.numpy as jnp

from vpals_jax.config import ModelConfig

ACTIVATIONS: dict[str, Callable[[jnp.ndarray], jnp.ndarray]] = {"relu": nn.relu, "tanh": nn.tanh, "gelu": nn.gelu}


class MLP(nn.Module):
    """``depth`` hidden Dense layers of ``width`` units, then one linear output."""

    depth: int
    width: int
    activation: str = "relu"

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        act = ACTIVATIONS[self.activation]
        for i in range(self.depth):
            x = act(nn.Dense(self.width, name=f"hidden_{i}")(x))
        return nn.Dense(1, name="out")(x)[..., 0]


def build_mlp(cfg: ModelConfig) -> MLP:
    if cfg.activation not in ACTIVATIONS:
        raise ValueError(f"unknown model.activation {cfg.activation!r}; use one of {sorted(ACTIVATIONS)}")
    if cfg.depth < 1 or cfg.width < 1:
        raise ValueError(f"model.depth and model.width must be >= 1, got depth={cfg.depth} width={cfg.width}")
    return MLP(depth=cfg.depth, width=cfg.width, activation=cfg.activation)
