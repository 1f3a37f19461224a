"""Pure training steps: explicit state in, new state out, everything jitted.

An epoch is one ``lax.scan`` over shuffled mini-batches, so a whole epoch is a single XLA
call: per-step Python dispatch (the cost that dominates small MLPs) disappears. The shuffle
key is ``fold_in(seed, epoch)``, which is what makes a resumed run end exactly where an
uninterrupted one does.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache, partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training.train_state import TrainState

from verifiers.bounds.differentiable import interval_output_bounds, interval_slope_lower
from vpals_jax.config import LOSSES, OptimConfig
from vpals_jax.models import MLP


def make_optimizer(cfg: OptimConfig) -> optax.GradientTransformation:
    return _optimizer(cfg.name, cfg.lr, cfg.weight_decay)


@lru_cache(maxsize=64)
def _optimizer(name: str, lr: float, weight_decay: float) -> optax.GradientTransformation:
    """One object per setting: see ``_apply_fn``."""
    if name == "adam":
        return optax.adam(lr) if weight_decay == 0 else optax.adamw(lr, weight_decay=weight_decay)
    if name == "adamw":
        return optax.adamw(lr, weight_decay=weight_decay)
    if name == "sgd":
        return optax.chain(optax.add_decayed_weights(weight_decay), optax.sgd(lr, momentum=0.9))
    raise ValueError(f"unknown optim.name {name!r}; use adam, adamw or sgd")


@lru_cache(maxsize=64)
def _apply_fn(model: MLP) -> Callable:
    """One apply function per model config (Flax modules are hashed by value). A TrainState's
    ``apply_fn`` and ``tx`` are part of the jit cache key, so sharing them lets every run of one
    process (a Hydra sweep, a resumed run, the tests) reuse the compiled epoch instead of compiling
    it again."""
    return model.apply


def create_state(model: MLP, optim: OptimConfig, n_features: int, seed: int) -> TrainState:
    params = model.init(jax.random.PRNGKey(seed), jnp.zeros((1, n_features), jnp.float32))["params"]
    return TrainState.create(apply_fn=_apply_fn(model), params=params, tx=make_optimizer(optim))


class PairPool(NamedTuple):
    """Counterexample pairs for the spec-aware loss, padded to a fixed capacity.

    Row k asks ``sign_k * (f(hi_k) - f(lo_k)) / |hi_k - lo_k| + shift_k >= margin`` where
    ``hi_k = lo_k + step c`` along its spec's direction (``e_i`` for monotonicity, whose shift is
    0); ``valid`` marks filled rows. A fixed capacity keeps one compiled ``train_epoch`` for the run.
    """

    lo: jnp.ndarray  # (P, n)
    hi: jnp.ndarray  # (P, n)
    sign: jnp.ndarray  # (P,)
    valid: jnp.ndarray  # (P,) float 0/1
    shift: jnp.ndarray  # (P,) the slope the spec allows below zero (a bound on c . grad f, moved)

    @classmethod
    def empty(cls, capacity: int, n_features: int) -> PairPool:
        z, zero = jnp.zeros((capacity, n_features), jnp.float32), jnp.zeros(capacity, jnp.float32)
        return cls(z, z, zero, zero, zero)


class RegionSet(NamedTuple):
    """The monotonicity specs' regions, from which fresh pairs are drawn at every step.

    One row per side of each slope spec (an inert row for any other spec; fixed shape, so one
    compile); ``active`` marks the rows whose region is being trained on (those the verifier has
    not proven), ``axis`` is the direction (one-hot for monotonicity; L1 norm 1) and ``margin`` the
    slope each row's pairs must reach, its shift already taken off (it grows while a proof stays
    out of reach).
    """

    lower: jnp.ndarray  # (S, n)
    upper: jnp.ndarray  # (S, n)
    axis: jnp.ndarray  # (S, n) the spec's direction, L1 norm 1 (zeros: an inert row)
    sign: jnp.ndarray  # (S,) +1 increasing, -1 decreasing
    active: jnp.ndarray  # (S,) float 0/1
    margin: jnp.ndarray  # (S,)


class OutputRegionSet(NamedTuple):
    """The output-bound specs' regions and their bounds on the normalised target (``-inf``/``inf``
    for a missing side replaced by a large finite number, so that the hinge stays finite)."""

    lower: jnp.ndarray  # (S, n)
    upper: jnp.ndarray  # (S, n)
    y_lower: jnp.ndarray  # (S,)
    y_upper: jnp.ndarray  # (S,)


class Certify(NamedTuple):
    """What certified training pushes up: the regions, how large the boxes are now (``scale`` of
    the region, growing to 1) and the weight of the bound hinge (``lam``)."""

    regions: RegionSet
    outputs: OutputRegionSet | None
    scale: jnp.ndarray  # () in (0, 1]
    lam: jnp.ndarray  # ()
    margin: jnp.ndarray  # () the slope (normalised units) the bound must reach, beyond...
    allowance: jnp.ndarray  # (S,) ...each spec's tolerance as a slope, t / W_i (what the proof needs)
    boxes: UnresolvedBoxes  # where the last verification failed, trained on as they are


class UnresolvedBoxes(NamedTuple):
    """Boxes a verification round left unproven (fixed capacity; ``valid`` marks filled rows, which
    come first)."""

    lower: jnp.ndarray  # (B, n)
    upper: jnp.ndarray  # (B, n)
    axis: jnp.ndarray  # (B, n)
    sign: jnp.ndarray  # (B,)
    allowance: jnp.ndarray  # (B,)
    valid: jnp.ndarray  # (B,)


def param_layers(params) -> tuple[list[jnp.ndarray], list[jnp.ndarray]]:
    """The MLP's weights and biases in layer order (``hidden_0..hidden_k``, ``out``)."""
    hidden = sorted((k for k in params if k.startswith("hidden_")), key=lambda k: int(k.split("_")[1]))
    names = [*hidden, "out"]
    return [params[k]["kernel"] for k in names], [params[k]["bias"] for k in names]


def cert_draws(k: int, n: int) -> int:
    """How many uniforms one step's :func:`certified_hinge` consumes for ``k`` boxes in ``n`` inputs.

    Why uniforms drawn up front: every ``jax.random`` call inside the scanned step is its own
    threefry circuit for XLA to compile (0.15-0.25 s each on CPU; eight of them per step made the
    certified epoch compile in 3.0 s against 0.6 s for a plain one); one draw per epoch compiles once."""
    return 2 * k * (n + 2) + k


def _sample_boxes(u: jnp.ndarray, lower: jnp.ndarray, upper: jnp.ndarray, weights: jnp.ndarray, k: int, scale,
                  full: int):  # fmt: skip
    """``k`` boxes at uniform positions inside the regions (region ``s`` uniform among those with
    ``weights > 0``), from ``k * (n + 2)`` uniforms ``u``: ``full`` of them ``scale`` times the
    region's size (at ``scale = 1``, the region itself), the others of a size drawn uniformly up to that.

    Why both: over a whole region every ReLU that switches somewhere is unstable, its derivative
    only known to lie in [0, 1], so the interval slope bound can reach 0 but hardly any margin
    above it; on smaller boxes units are stable and the margin is real, which is what the
    verifier's splitting then proves box by box."""
    n = lower.shape[1]
    u_s, u_size, u_pos = u[:k], u[k : 2 * k], u[2 * k :].reshape(k, n)
    on = weights > 0
    count = jnp.maximum(on.sum(), 1)
    s = jnp.argsort(~on, stable=True)[jnp.minimum((u_s * count).astype(jnp.int32), count - 1)]
    lo_r, hi_r = lower[s], upper[s]
    frac = jnp.where(jnp.arange(k)[:, None] < full, 1.0, u_size[:, None])
    size = (hi_r - lo_r) * scale * frac
    lo = lo_r + u_pos * (hi_r - lo_r - size)
    return s, lo, lo + size


def certified_hinge(params, u: jnp.ndarray, cert: Certify, k: int, full: int) -> jnp.ndarray:
    """Mean hinge ``max(0, margin - allowance - lb)`` of the interval lower bound ``lb`` of ``sign * df/dx_i``
    over ``k`` boxes of the active monotonicity regions, plus the output bounds' hinge over ``k``
    boxes of their regions (:mod:`verifiers.bounds.differentiable`): the IBP training of
    certified robustness, applied to the derivative chain. ``u`` holds the step's
    :func:`cert_draws` uniforms in [0, 1).

    Once a round has left boxes unproven (``cert.boxes``), the second half of the ``k`` slots
    trains on those boxes (drawn among them) and the two halves' means are added. Why slots and
    not a second bound call on every box: the slots keep one bound computation in the compiled
    epoch, where a branch for the boxes cost 0.5-0.9 s of compilation in every run."""
    ws, bs = param_layers(params)
    reg, ub = cert.regions, cert.boxes
    m = k * (reg.lower.shape[1] + 2)
    s, lo, hi = _sample_boxes(u[:m], reg.lower, reg.upper, reg.active, k, cert.scale, full)
    axis, sign, allowance = reg.axis[s], reg.sign[s], cert.allowance[s]
    n_boxes = ub.valid.sum().astype(jnp.int32)  # the valid boxes come first (Corrector._unresolved_boxes)
    j = jnp.minimum((u[2 * m : 2 * m + k] * n_boxes).astype(jnp.int32), jnp.maximum(n_boxes - 1, 0))
    on_box = (jnp.arange(k) >= k // 2) & (n_boxes > 0)
    lo, hi, axis = (jnp.where(on_box[:, None], b[j], a) for a, b in ((lo, ub.lower), (hi, ub.upper), (axis, ub.axis)))
    sign, allowance = (jnp.where(on_box, b[j], a) for a, b in ((sign, ub.sign), (allowance, ub.allowance)))
    lb = interval_slope_lower(ws, bs, lo, hi, axis, sign)
    hinge = jnp.maximum(0.0, cert.margin - allowance - lb)
    in_region = (~on_box) * reg.active[s]
    loss = (hinge * in_region).sum() / jnp.maximum((~on_box).sum(), 1) + (hinge * on_box).sum() / jnp.maximum(
        on_box.sum(), 1)  # fmt: skip
    if cert.outputs is not None:
        out = cert.outputs
        so, lo_o, hi_o = _sample_boxes(u[m : 2 * m], out.lower, out.upper, jnp.ones_like(out.y_lower), k, cert.scale,
                                       full)  # fmt: skip
        fl, fu = interval_output_bounds(ws, bs, lo_o, hi_o)
        loss = loss + (jnp.maximum(0.0, out.y_lower[so] - fl) + jnp.maximum(0.0, fu - out.y_upper[so])).mean()
    return loss


def data_loss(params, apply_fn, x: jnp.ndarray, y: jnp.ndarray, loss: str = "mse") -> jnp.ndarray:
    """The fit term (``train.loss``): ``mse`` on the normalised target, or ``bce``, binary
    cross-entropy of the output taken as a logit against a 0/1 target (``loss`` is static)."""
    pred = apply_fn({"params": params}, x)
    if loss == "bce":
        return optax.sigmoid_binary_cross_entropy(pred, y).mean()
    if loss != "mse":
        raise ValueError(f"unknown train.loss {loss!r}; use one of {list(LOSSES)}")
    return jnp.mean((pred - y) ** 2)


def mse_loss(params, apply_fn, x: jnp.ndarray, y: jnp.ndarray) -> jnp.ndarray:
    return data_loss(params, apply_fn, x, y, "mse")


def spec_hinge(params, apply_fn, lo: jnp.ndarray, hi: jnp.ndarray, sign: jnp.ndarray, valid: jnp.ndarray,
               margin: float | jnp.ndarray = 0.0, slope: bool = True) -> jnp.ndarray:  # fmt: skip
    """Ouroboros' spec-aware loss, by default in slope form: mean over valid pairs of
    ``max(0, margin - sign * (f(hi) - f(lo)) / |hi - lo|)``.

    Dividing by the step makes ``lam`` independent of ``eps`` (the difference form,
    ``slope=False``: ``max(0, margin |hi - lo| - sign * (f(hi) - f(lo)))``, is ``eps`` times
    smaller, too weak to matter next to the MSE on LinnOS at ``lam = 0.1``); a positive
    ``margin`` asks for a slope of at least ``margin`` so the interval-gradient proof has room.
    """
    f_lo = apply_fn({"params": params}, lo)
    f_hi = apply_fn({"params": params}, hi)
    step = jnp.maximum(jnp.abs(hi - lo).sum(axis=-1), 1e-6)
    rise = sign * (f_hi - f_lo)
    hinge = (jnp.maximum(0.0, margin - rise / step) if slope else jnp.maximum(0.0, margin * step - rise)) * valid
    return hinge.sum() / jnp.maximum(valid.sum(), 1.0)


def sample_region_pairs(key: jax.Array, regions: RegionSet, k: int, eps: float) -> tuple[jnp.ndarray, ...]:
    """``k`` pairs ``(x, x + step c)`` uniform over the active rows' regions (``step <= eps``, both
    points inside), with their sign, validity and margin."""
    k_spec, k_pt = jax.random.split(key)
    logits = jnp.where(regions.active > 0, 0.0, -1e9)
    s = jax.random.categorical(k_spec, logits, shape=(k,))
    lower, upper, axis = regions.lower[s], regions.upper[s], regions.axis[s]
    reach = jnp.where(axis != 0, (upper - lower) / jnp.where(axis != 0, jnp.abs(axis), 1.0), jnp.inf)
    step = jnp.minimum(eps, reach.min(-1, keepdims=True))
    move = step * axis
    first_lo, first_hi = lower - jnp.minimum(move, 0.0), upper - jnp.maximum(move, 0.0)  # room for the step
    lo = first_lo + jax.random.uniform(k_pt, lower.shape) * (first_hi - first_lo)
    return lo, lo + move, regions.sign[s], regions.active[s], regions.margin[s]


def total_loss(params, apply_fn, x, y, lo, hi, sign, valid, lam, margin=0.0, slope=True, cert=None, cert_u=None,
               cert_boxes=64, cert_full=0, loss_kind="mse"):  # fmt: skip
    loss = data_loss(params, apply_fn, x, y, loss_kind)
    if lo is not None:
        loss = loss + lam * spec_hinge(params, apply_fn, lo, hi, sign, valid, margin, slope)
    if cert is not None:
        loss = loss + cert.lam * certified_hinge(params, cert_u, cert, cert_boxes, cert_full)
    return loss


@partial(jax.jit, static_argnames=("loss",))
def train_step(state: TrainState, x: jnp.ndarray, y: jnp.ndarray, loss: str = "mse") -> tuple[TrainState, jnp.ndarray]:
    value, grads = jax.value_and_grad(data_loss)(state.params, state.apply_fn, x, y, loss)
    return state.apply_gradients(grads=grads), value


@partial(jax.jit, static_argnames=("batch_size", "pair_batch", "slope", "cert_boxes", "cert_full", "loss"))
def train_epoch(
    state: TrainState,
    x: jnp.ndarray,
    y: jnp.ndarray,
    key: jax.Array,
    batch_size: int,
    pool: PairPool | None = None,
    lam: float | jnp.ndarray = 0.0,
    pair_batch: int = 256,
    regions: RegionSet | None = None,
    eps: float | jnp.ndarray = 1e-2,
    margin: float | jnp.ndarray = 0.0,
    slope: bool = True,
    cert: Certify | None = None,
    cert_boxes: int = 64,
    cert_full: int = 0,
    loss: str = "mse",
) -> tuple[TrainState, jnp.ndarray]:
    """One pass over a fresh permutation; the last ``len(x) % batch_size`` rows of it are left out.

    With a ``pool`` (and/or ``regions``), every step also draws ``pair_batch`` counterexample
    pairs (and ``pair_batch`` fresh pairs from the active regions) and adds ``lam`` times their
    hinge, so corrections cost a constant amount per step however many have been collected.
    With ``cert`` every step also adds the certified-training hinge over ``cert_boxes`` boxes.
    ``loss`` is the fit term (``data_loss``: ``mse`` or ``bce``).
    """
    n_batches = x.shape[0] // batch_size
    perm_key, pair_key, region_key = jax.random.split(key, 3)
    perm = jax.random.permutation(perm_key, x.shape[0])[: n_batches * batch_size]
    xb = x[perm].reshape(n_batches, batch_size, x.shape[1])
    yb = y[perm].reshape(n_batches, batch_size)
    cert_u = None if cert is None else jax.random.uniform(jax.random.fold_in(key, 7),
                                                          (n_batches, cert_draws(cert_boxes, x.shape[1])))
    if pool is None and regions is None and cert is None:

        def body(s, batch):
            return train_step(s, *batch, loss)

        state, losses = jax.lax.scan(body, state, (xb, yb))
        return state, losses.mean()

    pieces = []
    if pool is not None:
        n_valid = jnp.maximum(pool.valid.sum().astype(jnp.int32), 1)
        order = jnp.argsort(-pool.valid, stable=True)  # valid rows first
        idx = order[jax.random.randint(pair_key, (n_batches, pair_batch), 0, n_valid)]
        pieces.append((pool.lo[idx], pool.hi[idx], pool.sign[idx], pool.valid[idx], margin - pool.shift[idx]))
    if regions is not None:
        keys = jax.random.split(region_key, n_batches)
        pieces.append(jax.vmap(lambda k: sample_region_pairs(k, regions, pair_batch, eps))(keys))
    if pieces:
        lo, hi, sign, valid, margins = (jnp.concatenate(cols, axis=1) for cols in zip(*pieces))
    else:  # certified training before any witness: no pair hinge to compile
        lo = hi = sign = valid = margins = None

    def body_pairs(s, batch):
        xs, ys, l_, h_, g_, v_, m_, ck = batch
        value, grads = jax.value_and_grad(total_loss)(s.params, s.apply_fn, xs, ys, l_, h_, g_, v_, lam, m_, slope,
                                                      cert, ck, cert_boxes, cert_full, loss)  # fmt: skip
        return s.apply_gradients(grads=grads), value

    state, losses = jax.lax.scan(body_pairs, state, (xb, yb, lo, hi, sign, valid, margins, cert_u))
    return state, losses.mean()


def epoch_key(seed: int, epoch: int) -> jax.Array:
    return jax.random.fold_in(jax.random.PRNGKey(seed), epoch)


@jax.jit
def _apply(state: TrainState, x: jnp.ndarray) -> jnp.ndarray:
    return state.apply_fn({"params": state.params}, x)


def predict(state: TrainState, x: np.ndarray) -> np.ndarray:
    """Normalised predictions for normalised inputs (one jitted call)."""
    return np.asarray(_apply(state, jnp.asarray(x, jnp.float32)))
