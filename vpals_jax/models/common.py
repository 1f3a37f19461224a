"""What the monotone-by-construction models share: a raw linear layer whose kernel is
constrained at use, and the per-input monotonicity signs they are built for."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from vpals_jax.config import ModelConfig

SIGNS = {"increasing": 1, "decreasing": -1}


class Linear(nn.Module):
    """``x @ constrain(kernel) + bias``: the stored kernel is free, so any optimiser keeps the
    constraint (it is applied in the forward pass, as both source papers do)."""

    features: int

    @nn.compact
    def __call__(self, x: jnp.ndarray, constrain: Callable[[jnp.ndarray], jnp.ndarray]) -> jnp.ndarray:
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        return x @ constrain(kernel) + bias


def _spec_directions(spec: Any) -> dict[str, str]:
    """feature -> direction of every monotonicity spec of a spec set (config object or dict)."""
    entries = spec.get("specs", []) if isinstance(spec, Mapping) else getattr(spec, "specs", [])
    out: dict[str, str] = {}
    for entry in entries or []:
        if entry.get("kind", "monotonicity") != "monotonicity":
            continue
        feature, direction = entry["feature"], entry["direction"]
        if out.get(feature, direction) != direction:
            raise ValueError(f"the spec set asks {feature!r} to be both increasing and decreasing")
        out[feature] = direction
    return out


def monotone_signs(cfg: ModelConfig, feature_names: Sequence[str] | None, spec: Any = None) -> tuple[int, ...]:
    """+1 / -1 / 0 per input: ``model.monotone`` if not empty, else the monotonicity specs of ``spec``.

    Taking the spec set by default makes the model monotone in exactly what the run verifies.
    """
    if feature_names is None:
        raise ValueError(f"model={cfg.name} needs the feature names to place its monotone inputs")
    names = list(feature_names)
    if cfg.monotone:
        directions = dict(cfg.monotone)
        if unknown := [f for f in directions if f not in names]:
            raise ValueError(f"model.monotone names unknown feature {unknown[0]!r}; the features are {names}")
    else:  # a spec on a feature the model lacks is the spec layer's business (spec.missing_features)
        directions = {f: d for f, d in (_spec_directions(spec) if spec else {}).items() if f in names}
    if not directions:
        raise ValueError(f"model={cfg.name} needs monotone features: set model.monotone or a spec= with "
                         "monotonicity specs on the model's features")  # fmt: skip
    for feature, direction in directions.items():
        if direction not in SIGNS:
            raise ValueError(f"monotone feature {feature!r}: direction {direction!r} is not increasing or decreasing")
    return tuple(SIGNS[directions[f]] if f in directions else 0 for f in names)
