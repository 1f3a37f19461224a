"""Flax predictors: the free MLP and the monotone-by-construction baselines (docs/baselines.md)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn

from vpals_jax.config import ModelConfig
from vpals_jax.models.cmnn import CMNN
from vpals_jax.models.common import monotone_signs
from vpals_jax.models.lmn import LMN
from vpals_jax.models.mlp import MLP, build_mlp

__all__ = ["CMNN", "LMN", "MLP", "build_model", "monotone_signs"]


def build_model(cfg: ModelConfig, feature_names: Sequence[str] | None = None, spec: Any = None) -> nn.Module:
    """The module ``model.name`` selects; the baselines need the feature names (and, unless
    ``model.monotone`` is set, the spec set whose monotonicity specs they are built to satisfy)."""
    if cfg.depth < 1 or cfg.width < 1:
        raise ValueError(f"model.depth and model.width must be >= 1, got depth={cfg.depth} width={cfg.width}")
    if cfg.name == "mlp":
        return build_mlp(cfg)
    signs = monotone_signs(cfg, feature_names, spec)
    if cfg.name == "cmnn":
        if cfg.activation != "relu":
            raise ValueError(f"model=cmnn builds its activations from relu; model.activation={cfg.activation!r}")
        return CMNN(depth=cfg.depth, width=cfg.width, signs=signs, split=tuple(cfg.cmnn_split))
    if cfg.name == "lmn":
        if cfg.width % 2:
            raise ValueError(f"model=lmn sorts units in pairs: model.width must be even, got {cfg.width}")
        return LMN(depth=cfg.depth, width=cfg.width, signs=signs, lipschitz=float(cfg.lmn_lipschitz))
    raise ValueError(f"unknown model.name {cfg.name!r}")
