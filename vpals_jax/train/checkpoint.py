"""Checkpoints: train state (params + optimiser state), normaliser and config in one folder.

Written to a temporary folder and renamed into place, so a job killed mid-write (a SLURM
preemption) leaves the previous checkpoint intact and the requeued job resumes from it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from flax import serialization
from flax.training.train_state import TrainState

from vpals_jax.data.normalizer import MinMaxNormalizer

CHECKPOINT_DIR = "checkpoint"


def checkpoint_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR


def has_checkpoint(run_dir: str | Path) -> bool:
    return (checkpoint_path(run_dir) / "meta.json").is_file()


def save_checkpoint(
    run_dir: str | Path,
    state: TrainState,
    normalizer: MinMaxNormalizer,
    config: dict,
    meta: dict[str, Any],
    arrays: dict[str, np.ndarray] | None = None,
) -> Path:
    final = checkpoint_path(run_dir)
    tmp = final.with_name(CHECKPOINT_DIR + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    (tmp / "state.msgpack").write_bytes(serialization.to_bytes(state))
    (tmp / "normalizer.json").write_text(json.dumps(normalizer.to_dict(), indent=1))
    (tmp / "config.json").write_text(json.dumps(config, indent=1))
    (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
    if arrays:
        np.savez(tmp / "arrays.npz", **arrays)
    old = final.with_name(CHECKPOINT_DIR + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def restore_state(
    run_dir: str | Path, target: TrainState
) -> tuple[TrainState, dict[str, Any], dict[str, np.ndarray]]:
    """Restore into ``target`` (a freshly created state of the same shapes): state, meta, arrays."""
    path = checkpoint_path(run_dir)
    state = serialization.from_bytes(target, (path / "state.msgpack").read_bytes())
    arrays = dict(np.load(path / "arrays.npz")) if (path / "arrays.npz").is_file() else {}
    return state, json.loads((path / "meta.json").read_text()), arrays


def load_checkpoint(run_dir: str | Path) -> tuple[dict, MinMaxNormalizer, dict, dict]:
    """Framework-light load for verification and serving: (params, normaliser, config, meta).

    ``params`` is the nested dict of NumPy arrays Flax saved; no model object is needed.
    """
    path = checkpoint_path(run_dir)
    if not (path / "meta.json").is_file():
        raise FileNotFoundError(f"no checkpoint in run directory {run_dir} (expected {path}/meta.json)")
    raw = serialization.msgpack_restore((path / "state.msgpack").read_bytes())
    normalizer = MinMaxNormalizer.from_dict(json.loads((path / "normalizer.json").read_text()))
    config = json.loads((path / "config.json").read_text())
    meta = json.loads((path / "meta.json").read_text())
    return raw["params"], normalizer, config, meta
