"""The Hydra-free training job: data -> normaliser -> model -> epochs -> checkpoint -> summary.

Tests and experiments call ``run_training`` directly; ``vpals_jax.train.__main__`` is only the
thin Hydra wrapper around it.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from vpals_jax.config import Config
from vpals_jax.data.dataset import Dataset, load_dataset
from vpals_jax.data.normalizer import MinMaxNormalizer
from vpals_jax.models import build_model
from vpals_jax.train import checkpoint as ckpt
from vpals_jax.train.metrics import MetricsLog, regression_metrics
from vpals_jax.train.plots import plot_training_curve
from vpals_jax.train.steps import create_state, epoch_key, predict, train_epoch

log = logging.getLogger(__name__)


class RunDirError(ValueError):
    """The run directory cannot be used as asked (e.g. it already holds a checkpoint)."""


def as_config(cfg: Config | DictConfig) -> Config:
    """Accept the dataclass or a (Hydra-composed) DictConfig; validate against the schema."""
    if isinstance(cfg, Config):
        return cfg
    merged = OmegaConf.merge(OmegaConf.structured(Config), cfg)
    return OmegaConf.to_object(merged)  # type: ignore[return-value]


def evaluate(state, data: Dataset, norm: MinMaxNormalizer, tol: float) -> dict[str, dict[str, float]]:
    out = {}
    for split, x, y in (("train", data.x_train, data.y_train), ("test", data.x_test, data.y_test)):
        pred_n = predict(state, norm.transform_x(x))
        out[split] = regression_metrics(pred_n, norm.transform_y(y), norm.y_scale, norm.y_min, tol)
    return out


def run_training(cfg: Config | DictConfig) -> dict[str, Any]:
    """Train one model as configured; return the summary (also written to ``summary.json``)."""
    cfg = as_config(cfg)
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if ckpt.has_checkpoint(run_dir) and not cfg.train.resume:
        raise RunDirError(
            f"run directory {run_dir} already holds a checkpoint; pass train.resume=true to continue it "
            "or choose another run directory"
        )
    if cfg.train.epochs < 1 or cfg.train.batch_size < 1:
        raise ValueError(f"train.epochs and train.batch_size must be >= 1 (got {cfg.train.epochs}, {cfg.train.batch_size})")
    config_dict = asdict(cfg)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.structured(cfg)))

    data = load_dataset(cfg.data)
    if cfg.train.batch_size > len(data.x_train):
        raise ValueError(f"train.batch_size={cfg.train.batch_size} exceeds the {len(data.x_train)} training rows")
    norm = MinMaxNormalizer.fit(data.x_train, data.y_train, data.feature_names, data.target_name)
    x_train = jnp.asarray(norm.transform_x(data.x_train), jnp.float32)
    y_train = jnp.asarray(norm.transform_y(data.y_train), jnp.float32)

    model = build_model(cfg.model)
    state = create_state(model, cfg.optim, len(data.feature_names), cfg.train.seed)
    start_epoch, elapsed = 0, 0.0
    metrics = MetricsLog(run_dir / "metrics.jsonl")
    if cfg.train.resume and ckpt.has_checkpoint(run_dir):
        state, meta = ckpt.restore_state(run_dir, state)
        start_epoch, elapsed = meta["epoch"], meta.get("train_time_s", 0.0)
        metrics.truncate_after(start_epoch)
        log.info("resumed %s at epoch %d", run_dir, start_epoch)
    elif metrics.path.exists():
        metrics.path.unlink()

    bar = tqdm(
        range(start_epoch, cfg.train.epochs),
        initial=start_epoch,
        total=cfg.train.epochs,
        desc=f"train {data.name}",
        disable=not cfg.train.progress,
        unit="epoch",
    )
    result = evaluate(state, data, norm, cfg.train.tolerance) if start_epoch >= cfg.train.epochs else None
    for epoch in bar:
        t0 = time.perf_counter()
        state, loss = train_epoch(state, x_train, y_train, epoch_key(cfg.train.seed, epoch), cfg.train.batch_size)
        jax.block_until_ready(loss)
        elapsed += time.perf_counter() - t0
        result = evaluate(state, data, norm, cfg.train.tolerance)
        metrics.write({"epoch": epoch + 1, "train_time_s": elapsed, "batch_loss": float(loss), **result})
        ckpt.save_checkpoint(run_dir, state, norm, config_dict, {"epoch": epoch + 1, "train_time_s": elapsed})
        bar.set_postfix(loss=f"{float(loss):.2e}", test_acc=f"{result['test']['accuracy']:.3f}")

    plot_training_curve(metrics.read(), run_dir / "training_curve.png", title=f"{data.name}: {data.target_name}")
    summary = {
        "name": cfg.name,
        "data": data.name,
        "target": data.target_name,
        "features": data.feature_names,
        "n_train": int(len(data.x_train)),
        "n_test": int(len(data.x_test)),
        "epochs": cfg.train.epochs,
        "train_time_s": elapsed,
        "train": result["train"],
        "test": result["test"],
        "tolerance": cfg.train.tolerance,
        "run_dir": str(run_dir),
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    log.info("test accuracy %.4f (tol %.3g), RMSE %.4g, R2 %.3f", summary["test"]["accuracy"],
             cfg.train.tolerance, summary["test"]["rmse"], summary["test"]["r2"])  # fmt: skip
    return summary

