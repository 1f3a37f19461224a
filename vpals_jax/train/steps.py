"""Pure training steps: explicit state in, new state out, everything jitted.

An epoch is one ``lax.scan`` over shuffled mini-batches, so a whole epoch is a single XLA
call: per-step Python dispatch (the cost that dominates small MLPs) disappears. The shuffle
key is ``fold_in(seed, epoch)``, which is what makes a resumed run end exactly where an
uninterrupted one does.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

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


class PairPool(NamedTuple):
    """Counterexample pairs for the spec-aware loss, padded to a fixed capacity.

    Row k asks ``sign_k * (f(hi_k) - f(lo_k)) >= 0`` where ``hi_k = lo_k + eps e_i``; ``valid``
    marks filled rows. A fixed capacity keeps one compiled ``train_epoch`` for the whole run.
    """

    lo: jnp.ndarray  # (P, n)
    hi: jnp.ndarray  # (P, n)
    sign: jnp.ndarray  # (P,)
    valid: jnp.ndarray  # (P,) float 0/1

    @classmethod
    def empty(cls, capacity: int, n_features: int) -> PairPool:
        z = jnp.zeros((capacity, n_features), jnp.float32)
        return cls(z, z, jnp.zeros(capacity, jnp.float32), jnp.zeros(capacity, jnp.float32))


def mse_loss(params, apply_fn, x: jnp.ndarray, y: jnp.ndarray) -> jnp.ndarray:
    pred = apply_fn({"params": params}, x)
    return jnp.mean((pred - y) ** 2)


def spec_hinge(params, apply_fn, lo: jnp.ndarray, hi: jnp.ndarray, sign: jnp.ndarray, valid: jnp.ndarray) -> jnp.ndarray:
    """Ouroboros' spec-aware loss: mean over valid pairs of max(0, sign * (f(lo) - f(hi)))."""
    f_lo = apply_fn({"params": params}, lo)
    f_hi = apply_fn({"params": params}, hi)
    hinge = jnp.maximum(0.0, sign * (f_lo - f_hi)) * valid
    return hinge.sum() / jnp.maximum(valid.sum(), 1.0)


def total_loss(params, apply_fn, x, y, lo, hi, sign, valid, lam):
    return mse_loss(params, apply_fn, x, y) + lam * spec_hinge(params, apply_fn, lo, hi, sign, valid)


@jax.jit
def train_step(state: TrainState, x: jnp.ndarray, y: jnp.ndarray) -> tuple[TrainState, jnp.ndarray]:
    loss, grads = jax.value_and_grad(mse_loss)(state.params, state.apply_fn, x, y)
    return state.apply_gradients(grads=grads), loss


@partial(jax.jit, static_argnames=("batch_size", "pair_batch"))
def train_epoch(
    state: TrainState,
    x: jnp.ndarray,
    y: jnp.ndarray,
    key: jax.Array,
    batch_size: int,
    pool: PairPool | None = None,
    lam: float | jnp.ndarray = 0.0,
    pair_batch: int = 256,
) -> tuple[TrainState, jnp.ndarray]:
    """One pass over a fresh permutation; the last ``len(x) % batch_size`` rows of it are left out.

    With a non-empty ``pool``, every step also draws ``pair_batch`` counterexample pairs and adds
    ``lam`` times their hinge, so corrections cost a constant amount per step however many
    counterexamples have been collected.
    """
    n_batches = x.shape[0] // batch_size
    perm_key, pair_key = jax.random.split(key)
    perm = jax.random.permutation(perm_key, x.shape[0])[: n_batches * batch_size]
    xb = x[perm].reshape(n_batches, batch_size, x.shape[1])
    yb = y[perm].reshape(n_batches, batch_size)
    if pool is None:

        def body(s, batch):
            return train_step(s, *batch)

        state, losses = jax.lax.scan(body, state, (xb, yb))
        return state, losses.mean()

    n_valid = jnp.maximum(pool.valid.sum().astype(jnp.int32), 1)
    order = jnp.argsort(-pool.valid, stable=True)  # valid rows first
    idx = order[jax.random.randint(pair_key, (n_batches, pair_batch), 0, n_valid)]

    def body_pairs(s, batch):
        xs, ys, ks = batch
        loss, grads = jax.value_and_grad(total_loss)(
            s.params, s.apply_fn, xs, ys, pool.lo[ks], pool.hi[ks], pool.sign[ks], pool.valid[ks], lam
        )
        return s.apply_gradients(grads=grads), loss

    state, losses = jax.lax.scan(body_pairs, state, (xb, yb, idx))
    return state, losses.mean()


def epoch_key(seed: int, epoch: int) -> jax.Array:
    return jax.random.fold_in(jax.random.PRNGKey(seed), epoch)


@jax.jit
def _apply(state: TrainState, x: jnp.ndarray) -> jnp.ndarray:
    return state.apply_fn({"params": state.params}, x)


def predict(state: TrainState, x: np.ndarray) -> np.ndarray:
    """Normalised predictions for normalised inputs (one jitted call)."""
    return np.asarray(_apply(state, jnp.asarray(x, jnp.float32)))
