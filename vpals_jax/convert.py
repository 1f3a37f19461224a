"""Trained Flax parameters (+ normaliser) -> ``verifiers.ReluNetwork``.

This is the one place that knows both the Flax parameter layout and the verifier's network
format; everything downstream of a checkpoint (verification, export, serving) goes through it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from verifiers import ReluNetwork
from vpals_jax.data.normalizer import MinMaxNormalizer


def _layers(params: Mapping[str, Any]) -> list[tuple[np.ndarray, np.ndarray]]:
    hidden = sorted((k for k in params if k.startswith("hidden_")), key=lambda k: int(k.split("_")[1]))
    if "out" not in params or not hidden:
        raise ValueError(f"not an MLP parameter tree (expected hidden_0..hidden_k and out), got keys {sorted(params)}")
    return [(np.asarray(params[k]["kernel"]), np.asarray(params[k]["bias"])) for k in [*hidden, "out"]]


def to_relu_network(
    params: Mapping[str, Any], normalizer: MinMaxNormalizer | None = None, raw_units: bool = False
) -> ReluNetwork:
    """The network in normalised space (default), or with the normaliser folded in (``raw_units``).

    Min-max scaling is a positive affine map per coordinate, so monotonicity directions are the
    same in both spaces; verifying in normalised space keeps the boxes well scaled.
    """
    layers = _layers(params)
    weights = [w.astype(np.float64) for w, _ in layers]
    biases = [b.astype(np.float64) for _, b in layers]
    if raw_units:
        if normalizer is None:
            raise ValueError("raw_units=True needs the normaliser saved with the checkpoint")
        # x_n = (x - min) / scale  =>  x_n W + b = x (W / scale[:, None]) + (b - (min / scale) W)
        w0 = weights[0]
        weights[0] = w0 / normalizer.x_scale[:, None]
        biases[0] = biases[0] - (normalizer.x_min / normalizer.x_scale) @ w0
        # y = y_n * y_scale + y_min
        weights[-1] = weights[-1] * normalizer.y_scale
        biases[-1] = biases[-1] * normalizer.y_scale + normalizer.y_min
    return ReluNetwork(weights=weights, biases=biases)


def load_network(run_dir: str, raw_units: bool = False) -> tuple[ReluNetwork, MinMaxNormalizer, dict]:
    """Read a run's checkpoint as a verifier network; refuses non-ReLU models."""
    from vpals_jax.train.checkpoint import load_checkpoint

    params, normalizer, config, _ = load_checkpoint(run_dir)
    activation = config.get("model", {}).get("activation", "relu")
    if activation != "relu":
        raise ValueError(f"run {run_dir} uses activation {activation!r}; the verifiers need a ReLU network")
    return to_relu_network(params, normalizer, raw_units), normalizer, config
