"""LMN's Auto-MPG protocol (``monotone_baselines_select --split random``): random 80/20 splits of both
files put together, and validation copies drawn from a split's training rows only."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vpals_jax.config import DataConfig
from vpals_jax.data.dataset import load_dataset
from vpals_jax.data.validation import write_random_split_validation_copy


def _rows(x: np.ndarray, y: np.ndarray) -> set[tuple[float, ...]]:
    return {tuple(r) for r in np.column_stack([x, y]).tolist()}


def test_a_random_split_copy_holds_that_splits_training_rows_and_none_of_its_test_rows(tmp_path):
    split = load_dataset(DataConfig(source="auto_mpg", app="auto_mpg", split="random", seed=3, calibration_fraction=0.0))
    assert len(split.x_train) + len(split.x_test) == 314 + 78  # both files, put together
    dest = write_random_split_validation_copy("auto_mpg", tmp_path / "copy", split_seed=3, fraction=0.2, seed=1)
    copy = load_dataset(DataConfig(source="auto_mpg", app="auto_mpg", split="given", path=str(dest),
                                   calibration_fraction=0.0))  # fmt: skip
    assert len(copy.x_test) == round(0.2 * len(split.x_train))
    assert len(copy.x_train) + len(copy.x_test) == len(split.x_train)
    fit, val = _rows(copy.x_train, copy.y_train), _rows(copy.x_test, copy.y_test)
    assert fit | val == _rows(split.x_train, split.y_train) and not fit & val
    assert not (fit | val) & _rows(split.x_test, split.y_test)  # the split's test rows are never written
    other = load_dataset(DataConfig(source="auto_mpg", app="auto_mpg", split="random", seed=4, calibration_fraction=0.0))
    assert _rows(other.x_test, other.y_test) != _rows(split.x_test, split.y_test)  # the seed picks the split


def test_selection_on_a_random_split_trains_on_that_splits_training_rows(tmp_path, monkeypatch):
    import experiments.monotone_baselines_select as sel

    monkeypatch.setattr(sel, "GRID", {"model.width": [8], "optim.lr": [1e-2], "optim.weight_decay": [0.0]})
    monkeypatch.setattr(sel, "MAX_EPOCHS", {"auto_mpg": 2})
    choice = sel.select("auto_mpg", "mlp", tmp_path, folds=1, fraction=0.2, split_seed=2)
    run_dir = tmp_path / "split2" / "select" / "auto_mpg" / "mlp" / "width8_lr0.01_weight_decay0" / "0"
    summary = json.loads((run_dir / "summary.json").read_text())
    n_split_train = round(0.8 * (314 + 78))
    assert summary["n_train"] + summary["n_test"] == n_split_train
    assert choice["epochs"] == int(np.argmin(sel.validation_curve(run_dir))) + 1
    assert choice["val_mse"] == pytest.approx(sel.validation_curve(run_dir).min())
