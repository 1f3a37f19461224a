"""Flax predictors."""

from vpals_jax.models.mlp import MLP, build_model

__all__ = ["MLP", "build_model"]
