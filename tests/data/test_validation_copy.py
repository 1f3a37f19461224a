"""Validation copies for model selection: drawn from the training file only, read by the unchanged
loader through ``data.path``, seeded, and refused for sources without given train/test files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vpals_jax.config import DataConfig
from vpals_jax.data.dataset import load_dataset
from vpals_jax.data.tables import DataError, read_benchmark
from vpals_jax.data.validation import write_validation_copy


def _rows(x: np.ndarray) -> set[tuple[float, ...]]:
    return {tuple(r) for r in np.round(x, 6)}


@pytest.mark.parametrize("source", ["auto_mpg", "heart"])
def test_copy_splits_the_training_file_and_never_reads_the_test_file(tmp_path, source):
    real = load_dataset(DataConfig(source=source, app=source, split="given", calibration_fraction=0.0))
    dest = write_validation_copy(source, tmp_path / "v", fraction=0.2, seed=3)
    val = load_dataset(DataConfig(source=source, app=source, split="given", calibration_fraction=0.0, path=str(dest)))
    assert val.feature_names == real.feature_names
    n = len(real.x_train)
    assert len(val.x_test) == round(0.2 * n) and len(val.x_train) + len(val.x_test) == n
    # every row of both parts is a training row, in the source's own order, with its target
    both = np.vstack([val.x_train, val.x_test])
    assert sorted(_rows(both)) == sorted(_rows(real.x_train))
    assert sorted(np.concatenate([val.y_train, val.y_test])) == sorted(real.y_train)
    test_only = _rows(real.x_test) - _rows(real.x_train)
    assert test_only and not (test_only & _rows(both))  # no row that exists only in the test file
    # the copy keeps the shipped layout (index column first) so it round-trips through read_benchmark
    frames = read_benchmark(source, str(dest))
    assert len(frames) == 2 and "Unnamed: 0" not in frames[0].columns


def test_copy_is_seeded(tmp_path):
    a = write_validation_copy("auto_mpg", tmp_path / "a", seed=0)
    b = write_validation_copy("auto_mpg", tmp_path / "b", seed=0)
    c = write_validation_copy("auto_mpg", tmp_path / "c", seed=1)
    read = [pd.read_csv(d / "auto_mpg" / "test_data.csv") for d in (a, b, c)]
    pd.testing.assert_frame_equal(read[0], read[1])
    assert not read[0].equals(read[2])


@pytest.mark.parametrize(("source", "fraction", "match"), [
    ("linnos", 0.2, "needs a source with given train/test files"),
    ("auto_mpg", 0.0, r"validation fraction must be in \(0, 1\)"),
    ("auto_mpg", 1e-4, "leaves an empty part"),
])  # fmt: skip
def test_refusals(tmp_path, source, fraction, match):
    with pytest.raises(DataError, match=match):
        write_validation_copy(source, tmp_path / "v", fraction=fraction)
    assert not (tmp_path / "v").exists()
