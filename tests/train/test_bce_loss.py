"""``train.loss=bce``: binary cross-entropy on a logit for 0/1 targets (Heart), through the pure steps,
the trainer's metrics and Hydra; refused for any other target."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
import pytest
from helpers import compose_train

from experiments.monotone_baselines import heart_accuracy
from vpals_jax.config import ModelConfig, OptimConfig
from vpals_jax.convert import load_network
from vpals_jax.data.dataset import Dataset, load_dataset
from vpals_jax.data.normalizer import MinMaxNormalizer
from vpals_jax.data.tables import DataError
from vpals_jax.evaluate import score
from vpals_jax.models import build_model
from vpals_jax.runtime.predictor import SafePredictor
from vpals_jax.train.metrics import binary_metrics
from vpals_jax.train.steps import create_state, data_loss, epoch_key, total_loss, train_epoch, train_step
from vpals_jax.train.trainer import as_config, check_binary_target, run_training

ROOT = Path(__file__).resolve().parents[2]
HEART = ["experiment=monotone_baselines", "+experiment/monotone_baselines/dataset=heart", "train.epochs=1",
         "verifier.time_budget_s=30"]  # fmt: skip


def _problem(seed: int = 0):
    """A separable 0/1 problem: class 1 when x0 + x1 > 1."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(256, 3)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 1.0).astype(np.float32)
    state = create_state(build_model(ModelConfig(depth=2, width=16)), OptimConfig(lr=1e-2), 3, seed=seed)
    return state, jnp.asarray(x), jnp.asarray(y)


def test_bce_loss_is_optax_sigmoid_cross_entropy_of_the_logit():
    state, x, y = _problem()
    logit = state.apply_fn({"params": state.params}, x)
    want = float(optax.sigmoid_binary_cross_entropy(logit, y).mean())
    # the textbook form, -y log p - (1 - y) log(1 - p), in float64
    z, t = np.asarray(logit, np.float64), np.asarray(y, np.float64)
    p = 1 / (1 + np.exp(-z))
    textbook = float(np.mean(-t * np.log(p) - (1 - t) * np.log(1 - p)))
    assert float(data_loss(state.params, state.apply_fn, x, y, "bce")) == pytest.approx(want, rel=1e-6)
    assert want == pytest.approx(textbook, rel=1e-5)
    assert float(data_loss(state.params, state.apply_fn, x, y, "mse")) == pytest.approx(float(jnp.mean((logit - y) ** 2)))
    assert binary_metrics(np.asarray(logit), np.asarray(y))["loss"] == pytest.approx(textbook, rel=1e-5)
    # the loop's objective with no pairs and no certificate is the same number
    z2 = jnp.zeros((1, 3), jnp.float32)
    zero = jnp.zeros(1, jnp.float32)
    tot = total_loss(state.params, state.apply_fn, x, y, z2, z2, zero, zero, 0.0, loss_kind="bce")
    assert float(tot) == pytest.approx(want, rel=1e-6)
    with pytest.raises(ValueError, match="unknown train.loss 'hinge'"):
        data_loss(state.params, state.apply_fn, x, y, "hinge")


def test_bce_steps_learn_the_classes():
    state, x, y = _problem()
    _, loss0 = train_step(state, x, y, "bce")
    assert float(loss0) == pytest.approx(float(data_loss(state.params, state.apply_fn, x, y, "bce")), rel=1e-6)
    for epoch in range(60):
        state, _ = train_epoch(state, x, y, epoch_key(0, epoch), 32, loss="bce")
    after = float(data_loss(state.params, state.apply_fn, x, y, "bce"))
    assert after < 0.5 * float(loss0)
    logit = np.asarray(state.apply_fn({"params": state.params}, x))
    m = binary_metrics(logit, np.asarray(y))
    assert m["accuracy"] == pytest.approx(np.mean((logit > 0) == (np.asarray(y) > 0.5))) and m["accuracy"] > 0.9
    assert m["rmse"] ** 2 == pytest.approx(np.mean((1 / (1 + np.exp(-logit)) - np.asarray(y)) ** 2), rel=1e-6)


def test_a_bce_run_through_hydra_trains_one_epoch_and_scores_at_logit_zero(tmp_path):
    run_dir = tmp_path / "heart"
    cfg = compose_train([*HEART, "+experiment/monotone_baselines/variant=mlp", f"run_dir={run_dir}"])
    assert cfg.train.loss == "bce" and cfg.data.source == "heart"
    summary = run_training(cfg)
    assert summary["loss"] == "bce" and len(summary["verdicts"]) == 2
    record = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[0])
    assert record["epoch"] == 1 and np.isnan(record["test"]["mape"])
    net, norm, config = load_network(str(run_dir))
    assert config["train"]["loss"] == "bce" and (norm.y_min, norm.y_scale) == (0.0, 1.0)
    data = load_dataset(as_config(cfg).data)
    logit = net.forward(norm.transform_x(data.x_test))[:, 0]
    acc = float(np.mean((logit > 0) == (data.y_test > 0.5)))
    assert summary["test"]["accuracy"] == pytest.approx(acc)
    assert heart_accuracy(run_dir, config) == pytest.approx(acc)
    p = 1 / (1 + np.exp(-logit))
    assert summary["test"]["rmse"] == pytest.approx(np.sqrt(np.mean((p - data.y_test) ** 2)), rel=1e-4)
    # served: the probability of class 1, not the logit; no SLO decisions for a classifier
    served = SafePredictor.load(run_dir)
    out = served.predict(pd.DataFrame(data.x_test, columns=served.features))
    np.testing.assert_allclose(out.latency, p, rtol=1e-6)
    assert served.link == "sigmoid" and served.describe()["target"] == "probability that target is 1"
    assert float(np.mean((out.latency > 0.5) == (data.y_test > 0.5))) == pytest.approx(acc)
    assert score(out.latency, data.y_test, norm, 0.1, probability=True)["accuracy"] == pytest.approx(acc)
    with pytest.raises(ValueError, match="classifier"):
        served.decide(pd.DataFrame(data.x_test[:2], columns=served.features), slo=1.0)


def test_bce_is_refused_for_a_target_that_is_not_zero_one(tmp_path):
    run_dir = tmp_path / "mpg"
    cfg = compose_train(["experiment=monotone_baselines", "+experiment/monotone_baselines/dataset=auto_mpg",
                         "+experiment/monotone_baselines/variant=mlp", "train.loss=bce", f"run_dir={run_dir}"])  # fmt: skip
    with pytest.raises(DataError, match=r"train.loss=bce needs a 0/1 target; column 'MPG' holds"):
        run_training(cfg)
    assert not run_dir.exists()  # refused before anything was written


def test_bce_is_refused_when_the_training_rows_hold_one_class():
    x = np.zeros((4, 1))
    data = Dataset("d", ["a"], "y", x, np.ones(4), x, np.array([0.0, 1.0, 1.0, 0.0]), {})
    with pytest.raises(DataError, match="needs both classes in the training rows; column 'y' holds only 1"):
        check_binary_target(data, MinMaxNormalizer.fit(data.x_train, data.y_train, ["a"], "y"))
    data.y_train = np.array([0.0, 1.0, 0.0, 1.0])
    check_binary_target(data, MinMaxNormalizer.fit(data.x_train, data.y_train, ["a"], "y"))  # accepted
    data.y_test = np.array([0.0, 0.5, 1.0, 0.0])
    with pytest.raises(DataError, match="column 'y' holds 0.5 in the test rows"):
        check_binary_target(data, MinMaxNormalizer.fit(data.x_train, data.y_train, ["a"], "y"))


def test_the_command_line_refuses_bce_on_mpg_in_one_line_with_exit_code_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "vpals_jax.train", "experiment=monotone_baselines",
                           "+experiment/monotone_baselines/dataset=auto_mpg", "+experiment/monotone_baselines/variant=mlp",
                           "train.loss=bce", f"run_dir={tmp_path / 'r'}", f"hydra.run.dir={tmp_path / 'h'}"],
                          cwd=ROOT, capture_output=True, text=True, check=False)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "train.loss=bce needs a 0/1 target; column 'MPG'" in lines[0], proc.stderr
    assert not (tmp_path / "r").exists()


def test_an_unknown_loss_is_refused_when_the_config_is_built():
    with pytest.raises(ValueError, match="unknown train.loss 'l1'; use mse or bce"):
        as_config(compose_train(["train.loss=l1"]))
