"""Pure training steps: explicit state in, new state out, everything jitted.

An epoch is one ``lax.scan`` over shuffled mini-batches, so a whole epoch is a single XLA
call: per-step Python dispatch (the cost that dominates small MLPs) disappears. The shuffle
key is ``fold_in(seed, epoch)``, which is what makes a resumed run end exactly where an
uninterrupted one does.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training.train_state import TrainState

from vpals_jax.config import OptimConfig
from vpals_jax.models import MLP


def make_optimizer(cfg: OptimConfig) -> optax.GradientTransformation:
    if cfg.name == "adam":
        return optax.adam(cfg.lr) if cfg.weight_decay == 0 else optax.adamw(cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.name == "adamw":
        return optax.adamw(cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.name == "sgd":
        return optax.chain(optax.add_decayed_weights(cfg.weight_decay), optax.sgd(cfg.lr, momentum=0.9))
    raise ValueError(f"unknown optim.name {cfg.name!r}; use adam, adamw or sgd")


def create_state(model: MLP, optim: OptimConfig, n_features: int, seed: int) -> TrainState:
    params = model.init(jax.random.PRNGKey(seed), jnp.zeros((1, n_features), jnp.float32))["params"]
    return TrainState.create(apply_fn=model.apply, params=params, tx=make_optimizer(optim))


def mse_loss(params, apply_fn, x: jnp.ndarray, y: jnp.ndarray) -> jnp.ndarray:
    pred = apply_fn({"params": params}, x)
    return jnp.mean((pred - y) ** 2)


@jax.jit
def train_step(state: TrainState, x: jnp.ndarray, y: jnp.ndarray) -> tuple[TrainState, jnp.ndarray]:
    loss, grads = jax.value_and_grad(mse_loss)(state.params, state.apply_fn, x, y)
    return state.apply_gradients(grads=grads), loss


@partial(jax.jit, static_argnames=("batch_size",))
def train_epoch(
    state: TrainState, x: jnp.ndarray, y: jnp.ndarray, key: jax.Array, batch_size: int
) -> tuple[TrainState, jnp.ndarray]:
    """One pass over a fresh permutation; the last ``len(x) % batch_size`` rows of it are left out."""
    n_batches = x.shape[0] // batch_size
    perm = jax.random.permutation(key, x.shape[0])[: n_batches * batch_size]
    xb = x[perm].reshape(n_batches, batch_size, x.shape[1])
    yb = y[perm].reshape(n_batches, batch_size)

    def body(s, batch):
        return train_step(s, *batch)

    state, losses = jax.lax.scan(body, state, (xb, yb))
    return state, losses.mean()


def epoch_key(seed: int, epoch: int) -> jax.Array:
    return jax.random.fold_in(jax.random.PRNGKey(seed), epoch)


@jax.jit
def _apply(state: TrainState, x: jnp.ndarray) -> jnp.ndarray:
    return state.apply_fn({"params": state.params}, x)


def predict(state: TrainState, x: np.ndarray) -> np.ndarray:
    """Normalised predictions for normalised inputs (one jitted call)."""
    return np.asarray(_apply(state, jnp.asarray(x, jnp.float32)))
