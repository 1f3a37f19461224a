"""A validation copy of a benchmark with given train/test files, for model selection.

The published monotone baselines picked epochs and hyperparameters on their test files
(``docs/baselines.md``). Selecting on a validation copy instead keeps the test rows unseen: the
copy's "test" file is a seeded share of the *training* file and its training file the rest, laid
out like ``data/external`` so that ``data.path=<copy>`` reads it with the unchanged loader.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from vpals_jax.data.tables import BENCHMARKS, DataError, read_benchmark


def write_validation_copy(source: str, dest: str | Path, fraction: float = 0.2, seed: int = 0,
                          path: str | None = None) -> Path:  # fmt: skip
    """Write ``<dest>/<train file>`` and ``<dest>/<test file>`` from the source's training file only.

    The "test" file holds ``round(fraction * rows)`` training rows drawn with ``seed``; the
    source's real test file is never read. Returns ``dest`` (pass it as ``data.path``).
    """
    _check(source, fraction)
    return _write_copy(source, read_benchmark(source, path)[0], dest, fraction, seed)


def write_random_split_validation_copy(source: str, dest: str | Path, split_seed: int, test_fraction: float = 0.2,
                                       fraction: float = 0.2, seed: int = 0, path: str | None = None) -> Path:  # fmt: skip
    """The same from the *training* rows of a random split of the source's files put together
    (``data.split=random data.seed=<split_seed> data.test_fraction=<test_fraction>``, as the trainer
    draws it): LMN's Auto-MPG protocol. That split's test rows are never written."""
    from vpals_jax.config import DataConfig
    from vpals_jax.data.dataset import load_dataset

    _check(source, fraction)
    data = load_dataset(DataConfig(source=source, app=source, path=path, split="random", seed=split_seed,
                                   test_fraction=test_fraction, calibration_fraction=0.0))  # fmt: skip
    train = pd.DataFrame(data.x_train, columns=data.feature_names).assign(**{data.target_name: data.y_train})
    return _write_copy(source, train, dest, fraction, seed)


def _check(source: str, fraction: float) -> None:
    if source not in BENCHMARKS or len(BENCHMARKS[source].files) != 2:
        given = sorted(k for k, v in BENCHMARKS.items() if len(v.files) == 2)
        raise DataError(f"a validation copy needs a source with given train/test files ({given}), not {source!r}")
    if not 0.0 < fraction < 1.0:
        raise DataError(f"validation fraction must be in (0, 1), got {fraction}")


def _write_copy(source: str, train: pd.DataFrame, dest: str | Path, fraction: float, seed: int) -> Path:
    n_val = round(fraction * len(train))
    if not 0 < n_val < len(train):
        raise DataError(f"{source}: validation fraction {fraction} of {len(train)} rows leaves an empty part")
    order = np.random.default_rng([seed, 2]).permutation(len(train))
    fit, val = train.iloc[np.sort(order[n_val:])], train.iloc[np.sort(order[:n_val])]
    dest = Path(dest)
    for frame, name in ((fit, BENCHMARKS[source].files[0]), (val, BENCHMARKS[source].files[1])):
        out = dest / name
        out.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(out)  # the index column, as in the shipped files (dropped on reading)
    return dest
