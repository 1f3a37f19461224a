"""Few-shot: a new app for the unified network from 100 of its rows (``experiments.unified``).

The network trained without app ``h`` (``data.app=<group>-h``) already has ``h``'s one-hot input,
always 0 in training. ``h``'s first ``rows`` training rows (a seeded draw from its training split,
the same rows for every contender) then train, for the same epochs and batches:

* ``unified, all weights``: the left-out network, every weight fine-tuned;
* ``unified, app input only``: only the weights of ``h``'s one-hot column (``width`` numbers, the
  app's learned offset into the first layer): the other apps' function is left exactly as it was;
* ``per-app, same rows``: a fresh per-app network (the per-app jobs' size) on those rows alone;

beside ``per-app, all rows``, the sweep's per-app network of ``h``. All are scored on ``h``'s test
rows with the per-app network's tolerance (0.05 of ``h``'s full training range, in ms); the few
rows fix the target scale of the fine-tuned models (their min and range). Each is verified on
``h``'s spec set over ``h``'s own training domain, as the per-app network is.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd

from verifiers import ReluNetwork, Spec, Status, Verdict
from vpals_jax.config import ModelConfig, VerifierConfig
from vpals_jax.convert import load_network, to_relu_network
from vpals_jax.data import unified
from vpals_jax.data.dataset import load_dataset
from vpals_jax.data.normalizer import MinMaxNormalizer
from vpals_jax.models import build_model
from vpals_jax.spec_files import build_specs
from vpals_jax.train.checkpoint import load_checkpoint
from vpals_jax.unified_specs import build_per_app_specs
from vpals_jax.verify import verify_network

log = logging.getLogger(__name__)
BATCH = 20


# scoring shared with experiments.unified
def n_params(net: ReluNetwork) -> int:
    return int(sum(w.size + b.size for w, b in zip(net.weights, net.biases)))


def verify_timed(net: ReluNetwork, specs: Sequence[Spec], verifier: VerifierConfig) -> tuple[list[Verdict], float]:
    t0 = time.perf_counter()
    verdicts = verify_network(net, specs, verifier)
    return verdicts, time.perf_counter() - t0


def verdict_cell(verdicts: Sequence[Verdict]) -> str:
    """``"3/15 VERIFIED (12 FALSIFIED)"``."""
    counts = pd.Series([v.status.value for v in verdicts]).value_counts()
    rest = ", ".join(f"{n} {s}" for s, n in counts.items() if s != Status.VERIFIED.value)
    return f"{int(counts.get(Status.VERIFIED.value, 0))}/{len(verdicts)} VERIFIED" + (f" ({rest})" if rest else "")


def accuracy(pred: np.ndarray, y: np.ndarray, tol: float) -> float:
    return float(np.mean(np.abs(np.asarray(pred) - np.asarray(y)) < tol))


def fit(model: Any, params: Any, x: np.ndarray, y: np.ndarray, epochs: int, lr: float, seed: int,
        mask: Any = None) -> tuple[Any, float]:  # fmt: skip
    """Adam on the MSE, batches of ``BATCH`` rows; ``mask`` (a 0/1 tree like ``params``) freezes weights.
    Returns the parameters and the training time in seconds."""
    tx = optax.adam(lr)
    opt = tx.init(params)
    x, y = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)

    @jax.jit
    def step(params, opt, xb, yb):
        grads = jax.grad(lambda p: jnp.mean((model.apply({"params": p}, xb) - yb) ** 2))(params)
        if mask is not None:
            grads = jax.tree_util.tree_map(lambda g, m: g * m, grads, mask)
        updates, opt = tx.update(grads, opt, params)
        return optax.apply_updates(params, updates), opt

    rng = np.random.default_rng(seed)
    batch = min(BATCH, len(x))
    t0 = time.perf_counter()
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for k in range(len(x) // batch):
            idx = order[k * batch : (k + 1) * batch]
            params, opt = step(params, opt, x[idx], y[idx])
    jax.block_until_ready(params)
    return params, time.perf_counter() - t0


def column_mask(params: Any, column: int) -> Any:
    """1 on the first layer's weights of input ``column``, 0 everywhere else."""
    mask = jax.tree_util.tree_map(jnp.zeros_like, params)
    first = mask["hidden_0"]["kernel"].at[column].set(1.0)
    return {**mask, "hidden_0": {**mask["hidden_0"], "kernel": first}}


def few_shot(job: Any, per_app: Any, rows: int, epochs: int, verifier: VerifierConfig) -> list[dict[str, Any]]:
    """The few-shot rows of one left-out job (``experiments.unified.Job``); ``per_app`` its app's per-app job."""
    app, data_cfg = job.app, job.data
    own = load_dataset(unified.member_config(data_cfg, app))
    if rows > len(own.x_train):
        raise ValueError(f"few-shot rows={rows} exceeds the {len(own.x_train)} training rows of {app}")
    pick = np.random.default_rng(data_cfg.seed).permutation(len(own.x_train))[:rows]
    x_few, y_few = own.x_train[pick], own.y_train[pick]
    full = MinMaxNormalizer.fit(own.x_train, own.y_train, own.feature_names, own.target_name)
    tol_ms = float(job.config["train"]["tolerance"]) * full.y_scale
    base = (per_app.config if per_app else job.config)["spec"]
    lr, seed = float(job.config["optim"]["lr"]), int(job.config["train"]["seed"])
    out = []

    def row(name: str, net, x_test: np.ndarray, to_ms, specs, train_s: float | None, n_rows: int) -> None:
        pred = to_ms(net(x_test).reshape(-1))
        verdicts, secs = verify_timed(net, specs, verifier)
        out.append({"group": job.group, "app": app, "model": name, "rows": n_rows,
                    "test_accuracy": accuracy(pred, own.y_test, tol_ms),
                    "rmse_ms": float(np.sqrt(np.mean((pred - own.y_test) ** 2))), "params": n_params(net),
                    "train_s": train_s, "verify_s": secs, "specs": verdict_cell(verdicts),
                    "all_verified": all(v.status == Status.VERIFIED for v in verdicts)})  # fmt: skip

    # the unified network trained without the app, fine-tuned; its normaliser is kept (the network's input)
    params, norm, config, _ = load_checkpoint(str(job.run_dir))
    model = build_model(ModelConfig(**config["model"]))
    names = list(norm.feature_names)
    onehot = np.zeros((1, len(unified.apps_of(names))))
    onehot[0, unified.apps_of(names).index(app)] = 1.0

    def with_app(x: np.ndarray) -> np.ndarray:
        return norm.transform_x(np.hstack([x, np.repeat(onehot, len(x), axis=0)]))

    y_lo, y_scale = float(y_few.min()), float(np.ptp(y_few)) or 1.0
    domain = unified.app_domains(np.hstack([own.x_train, np.repeat(onehot, len(own.x_train), axis=0)]), names)
    outside = int(np.sum((domain[app][0] < norm.x_min - 1e-9) | (domain[app][1] > norm.x_max + 1e-9)))
    log.info("few-shot %s: its domain leaves the left-out network's training domain on %d inputs (verified "
             "there anyway)", app, outside)  # fmt: skip
    quiet = logging.getLogger("vpals_jax.spec_files")
    level, _ = quiet.level, quiet.setLevel(logging.ERROR)  # that warning, once per spec, says the same
    try:
        specs = build_per_app_specs({app: base}, norm, domain, {app: (y_lo, y_scale)})[app]
    finally:
        quiet.setLevel(level)
    start = jax.tree_util.tree_map(jnp.asarray, params)
    for name, mask in (("unified, all weights", None),
                       ("unified, app input only", column_mask(start, names.index(unified.app_column(app))))):  # fmt: skip
        tuned, secs = fit(model, start, with_app(x_few), (y_few - y_lo) / y_scale, epochs, lr, seed, mask)
        row(name, to_relu_network(tuned), with_app(own.x_test), lambda p: norm.inverse_y(p) * y_scale + y_lo,
            specs, secs, rows)  # fmt: skip

    # a fresh per-app network on the same rows (the per-app jobs' size); its normaliser from those rows
    few = MinMaxNormalizer.fit(x_few, y_few, own.feature_names, own.target_name)
    small = build_model(ModelConfig(**(per_app.config if per_app else config)["model"]))
    init = small.init(jax.random.PRNGKey(seed), jnp.zeros((1, len(own.feature_names)), jnp.float32))["params"]
    trained, secs = fit(small, init, few.transform_x(x_few), few.transform_y(y_few), epochs, lr, seed)
    # its own domain is the app's full training domain, as for the per-app network trained on all rows
    region = MinMaxNormalizer(few.feature_names, few.target_name, full.x_min, full.x_scale, few.y_min, few.y_scale)
    specs_few = build_specs(base, region)
    net_few = to_relu_network(trained)
    net_region = _reparametrise(net_few, few, region)
    row("per-app, same rows", net_region, region.transform_x(own.x_test), region.inverse_y, specs_few, secs, rows)
    if per_app is not None:
        net, norm_all, _ = load_network(str(per_app.run_dir))
        row("per-app, all rows", net, norm_all.transform_x(own.x_test), norm_all.inverse_y,
            build_specs(base, norm_all), per_app.summary["train_time_s"], len(own.x_train))  # fmt: skip
    return out


def _reparametrise(net: Any, fitted: MinMaxNormalizer, target: MinMaxNormalizer) -> Any:
    """The same function with its inputs normalised by ``target`` instead of ``fitted`` (same target scale):
    the specs' regions are then the app's full domain in the network's own input space."""
    from verifiers import ReluNetwork

    # x_fitted = (x - a) / s = (x_target * t + b - a) / s  =>  first layer W' = (t / s)[:, None] W
    ratio = target.x_scale / fitted.x_scale
    shift = (target.x_min - fitted.x_min) / fitted.x_scale
    weights = [np.asarray(w, np.float64) for w in net.weights]
    biases = [np.asarray(b, np.float64) for b in net.biases]
    biases[0] = biases[0] + shift @ weights[0]
    weights[0] = ratio[:, None] * weights[0]
    return ReluNetwork(weights=weights, biases=biases)


def few_shot_markdown(df: pd.DataFrame, rows: int) -> str:
    """The few-shot table: one block per left-out app."""
    cols = ["group", "app", "model", "rows", "test_accuracy", "rmse_ms", "params", "train_s", "verify_s", "specs"]
    return (f"## Few-shot: an app left out of training, then {rows} of its rows\n\n"
            + df[cols].to_markdown(index=False, floatfmt=".4g") + "\n")  # fmt: skip
