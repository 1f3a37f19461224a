"""Trained Flax parameters (+ normaliser) -> ``verifiers.ReluNetwork``.

This is the one place that knows both the Flax parameter layouts and the verifier's network
format; everything downstream of a checkpoint (verification, export, serving) goes through it.
The monotone baselines are piecewise linear and are written exactly as ReLU layers:

* CMNN: ``relu(z)``; ``-relu(-z)``; ``clip(z, -1, 1) = 1 - relu(2 - relu(z + 1))`` (one extra
  layer, identity on the other units). Every path then carries a weight product of fixed sign,
  so the verifiers' derivative bounds see a monotone network term by term.
* LMN: ``max(a, b) = b + relu(a - b)``, ``min(a, b) = b - relu(b - a)``, and the pass-through
  ``v = relu(v + K) - relu(-v - K) - K`` for ``b`` and for the linear term, with ``K`` from an
  interval bound over the training box ``[0, 1]^n``: exact for every ``K``, and with this one the
  pass-through units are stable on the box, which keeps the verifiers' relaxations tight there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import numpy as np

from verifiers import ReluNetwork
from vpals_jax.config import ModelConfig
from vpals_jax.data.normalizer import MinMaxNormalizer
from vpals_jax.models import CMNN, LMN, MLP, build_model
from vpals_jax.models.cmnn import cmnn_layers, split_counts
from vpals_jax.models.lmn import lmn_layers

Layers = list[tuple[np.ndarray, np.ndarray]]
# Pass-through offsets keep their units this far from the kink on the training box: at exactly 0
# (a box corner) a verifier must allow both ReLU states, and no split ever removes the corner.
STABLE = 1.0


def _as64(params: Mapping[str, Any]) -> dict[str, dict[str, np.ndarray]]:
    return {k: {n: np.asarray(a, np.float64) for n, a in v.items()} for k, v in params.items()}


def _mlp_layers(params: Mapping[str, Any]) -> Layers:
    hidden = sorted((k for k in params if k.startswith("hidden_")), key=lambda k: int(k.split("_")[1]))
    if "out" not in params or not hidden:
        raise ValueError(f"not an MLP parameter tree (expected hidden_0..hidden_k and out), got keys {sorted(params)}")
    return [(np.asarray(params[k]["kernel"]), np.asarray(params[k]["bias"])) for k in [*hidden, "out"]]


def _cmnn_layers(params: Mapping[str, Any], model: CMNN) -> Layers:
    """The CMNN's units as ReLU layers; ``(P, q)`` writes the current activations as ``r @ P + q``
    in the outputs ``r`` of the last ReLU layer (the input itself at first)."""
    *hidden, (w_out, b_out) = cmnn_layers(_as64(params), model.signs, np)
    P, q, layers = np.eye(len(model.signs)), np.zeros(len(model.signs)), []
    for w, b in hidden:
        a, c = P @ w, q @ w + b
        n_cv, n_cc, n_sat = split_counts(w.shape[1], model.split)
        sign = np.concatenate([np.ones(n_cv), -np.ones(n_cc), np.ones(n_sat)])  # relu(z), relu(-z), relu(z + 1)
        layers.append((a * sign, c * sign + np.concatenate([np.zeros(n_cv + n_cc), np.ones(n_sat)])))
        if n_sat:  # relu(2 - relu(z + 1)) for the saturated units, identity (on values >= 0) for the rest
            keep = np.concatenate([np.ones(n_cv + n_cc), -np.ones(n_sat)])
            layers.append((np.diag(keep), np.concatenate([np.zeros(n_cv + n_cc), 2.0 * np.ones(n_sat)])))
        P = np.diag(np.concatenate([np.ones(n_cv), -np.ones(n_cc), -np.ones(n_sat)]))
        q = np.concatenate([np.zeros(n_cv + n_cc), np.ones(n_sat)])
    layers.append((P @ w_out, q @ w_out + b_out))
    return layers


def _interval(w: np.ndarray, b: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    wp, wn = np.maximum(w, 0.0), np.minimum(w, 0.0)
    return lo @ wp + hi @ wn + b, hi @ wp + lo @ wn + b


def _lmn_layers(params: Mapping[str, Any], model: LMN) -> Layers:
    """The LMN as ReLU layers; ``(P, q)`` as in ``_cmnn_layers``, ``(pu, qu)`` the linear term."""
    *hidden, (w_out, b_out) = lmn_layers(_as64(params), model.lipschitz, np)
    n = len(model.signs)
    lin = model.lipschitz * np.asarray(model.signs, np.float64)
    P, q, pu, qu = np.eye(n), np.zeros(n), lin, 0.0
    k_u = STABLE - float(np.minimum(lin, 0.0).sum())  # linear term + k_u >= STABLE on [0, 1]^n
    lo, hi = np.zeros(n), np.ones(n)  # bounds of the activations on the training box
    layers = []
    for w, b in hidden:
        a, c = P @ w, q @ w + b
        zl, zu = _interval(w, b, lo, hi)
        h = w.shape[1] // 2
        aa, ab, ca, cb = a[:, 0::2], a[:, 1::2], c[0::2], c[1::2]
        k = np.maximum(0.0, -zl[1::2]) + STABLE
        layers.append((np.concatenate([aa - ab, ab - aa, ab, -ab, pu[:, None], -pu[:, None]], axis=1),
                       np.concatenate([ca - cb, cb - ca, cb + k, -cb - k, [qu + k_u], [-qu - k_u]])))  # fmt: skip
        # max_j = relu(a-b) + (relu(b+K) - relu(-b-K) - K), min_j = (...) - relu(b-a); outputs interleaved
        P, q = np.zeros((4 * h + 2, 2 * h)), np.repeat(-k, 2)
        j = np.arange(h)
        P[j, 2 * j] = 1.0
        P[h + j, 2 * j + 1] = -1.0
        for col in (2 * j, 2 * j + 1):
            P[2 * h + j, col], P[3 * h + j, col] = 1.0, -1.0
        pu, qu = np.zeros(4 * h + 2), -k_u
        pu[4 * h], pu[4 * h + 1] = 1.0, -1.0
        lo = np.stack([np.maximum(zl[0::2], zl[1::2]), np.minimum(zl[0::2], zl[1::2])], axis=-1).reshape(-1)
        hi = np.stack([np.maximum(zu[0::2], zu[1::2]), np.minimum(zu[0::2], zu[1::2])], axis=-1).reshape(-1)
    layers.append((P @ w_out + pu[:, None], q @ w_out + b_out + qu))
    return layers


def to_relu_network(
    params: Mapping[str, Any], normalizer: MinMaxNormalizer | None = None, raw_units: bool = False,
    model: nn.Module | None = None,
) -> ReluNetwork:  # fmt: skip
    """The network in normalised space (default), or with the normaliser folded in (``raw_units``).

    ``model`` is the Flax module the parameters belong to (``build_model``); ``None`` or an MLP
    reads the MLP layout. Min-max scaling is a positive affine map per coordinate, so
    monotonicity directions are the same in both spaces; verifying in normalised space keeps the
    boxes well scaled.
    """
    if isinstance(model, CMNN):
        layers = _cmnn_layers(params, model)
    elif isinstance(model, LMN):
        layers = _lmn_layers(params, model)
    elif model is None or isinstance(model, MLP):
        layers = _mlp_layers(params)
    else:
        raise ValueError(f"no ReLU conversion for a {type(model).__name__}")
    weights = [np.asarray(w, np.float64) for w, _ in layers]
    biases = [np.asarray(b, np.float64) for _, b in layers]
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


def model_from_config(config: Mapping[str, Any], feature_names: Sequence[str]) -> nn.Module:
    """The Flax module a saved run config describes (checkpoints written before ``model.name``
    existed are MLPs)."""
    model_cfg = ModelConfig(**dict(config.get("model") or {}))
    return build_model(model_cfg, feature_names, config.get("spec"))


def load_network(run_dir: str, raw_units: bool = False) -> tuple[ReluNetwork, MinMaxNormalizer, dict]:
    """Read a run's checkpoint as a verifier network; refuses non-ReLU models."""
    from vpals_jax.train.checkpoint import load_checkpoint

    params, normalizer, config, _ = load_checkpoint(run_dir)
    activation = config.get("model", {}).get("activation", "relu")
    name = config.get("model", {}).get("name", "mlp")
    if name == "mlp" and activation != "relu":
        raise ValueError(f"run {run_dir} uses activation {activation!r}; the verifiers need a ReLU network")
    model = model_from_config(config, normalizer.feature_names)
    return to_relu_network(params, normalizer, raw_units, model=model), normalizer, config
