"""Training: pure steps, the end-to-end job through Hydra's compose API, checkpoints and resume."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import compose_train

from vpals_jax.config import ModelConfig, OptimConfig
from vpals_jax.models import build_model
from vpals_jax.train import checkpoint as ckpt
from vpals_jax.train.steps import create_state, mse_loss, train_step
from vpals_jax.train.trainer import RunDirError, run_training


def table_overrides(table_csv, run_dir, *extra):
    return [
        "data=table", f"data.path={table_csv}", f"run_dir={run_dir}", "model.width=16",
        "train.batch_size=32", "train.progress=false", *extra,
    ]  # fmt: skip


def test_train_step_lowers_the_loss():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.uniform(size=(128, 4)), jnp.float32)
    y = x @ jnp.array([1.0, -0.5, 0.3, 0.0]) + 0.1
    state = create_state(build_model(ModelConfig(depth=2, width=16)), OptimConfig(lr=1e-2), 4, seed=0)
    before = float(mse_loss(state.params, state.apply_fn, x, y))
    for _ in range(50):
        state, _ = train_step(state, x, y)
    assert float(mse_loss(state.params, state.apply_fn, x, y)) < 0.2 * before


def test_one_epoch_end_to_end_writes_the_run_directory(tmp_path, table_csv):
    run_dir = tmp_path / "run"
    summary = run_training(compose_train(table_overrides(table_csv, run_dir, "train.epochs=1")))
    for name in ("config.yaml", "metrics.jsonl", "summary.json", "training_curve.png", "checkpoint/meta.json"):
        assert (run_dir / name).exists(), name
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1]
    for split in ("train", "test"):
        assert set(records[0][split]) == {"loss", "rmse", "mape", "r2", "accuracy"}
    assert json.loads((run_dir / "summary.json").read_text())["test"] == summary["test"]
    params, norm, config, meta = ckpt.load_checkpoint(run_dir)
    assert meta["epoch"] == 1 and norm.target_name == "latency_p50_ms"
    assert params["hidden_0"]["kernel"].shape == (17, 16) and config["model"]["width"] == 16


def test_the_last_epoch_is_saved_whatever_the_save_interval(tmp_path, table_csv):
    """Checkpoints every ``save_every`` epochs, but the one served is always the trained network."""
    runs = {}
    for every in (1, 4):
        run_dir = tmp_path / f"every{every}"
        run_training(compose_train(table_overrides(table_csv, run_dir, "train.epochs=6", f"train.save_every={every}")))
        params, _, _, meta = ckpt.load_checkpoint(run_dir)
        assert meta["epoch"] == 6
        runs[every] = params
    jax.tree_util.tree_map(np.testing.assert_array_equal, runs[1], runs[4])
    with pytest.raises(ValueError, match="train.save_every must be >= 1"):
        run_training(compose_train(table_overrides(table_csv, tmp_path / "bad", "train.save_every=0")))


def test_refuses_a_run_directory_that_holds_a_checkpoint(tmp_path, table_csv):
    cfg = compose_train(table_overrides(table_csv, tmp_path, "train.epochs=1"))
    run_training(cfg)
    with pytest.raises(RunDirError, match="already holds a checkpoint; pass train.resume=true"):
        run_training(cfg)


def test_resume_ends_where_an_uninterrupted_run_ends(tmp_path, table_csv):
    straight = tmp_path / "straight"
    run_training(compose_train(table_overrides(table_csv, straight, "train.epochs=4")))
    split = tmp_path / "split"
    run_training(compose_train(table_overrides(table_csv, split, "train.epochs=2")))
    run_training(compose_train(table_overrides(table_csv, split, "train.epochs=4", "train.resume=true")))
    a, b = ckpt.read_checkpoint(straight).state, ckpt.read_checkpoint(split).state  # params and optimiser state
    jax.tree_util.tree_map(np.testing.assert_array_equal, a, b)
    epochs = [json.loads(line)["epoch"] for line in (split / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3, 4]
