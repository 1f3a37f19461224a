"""One entry point from a ``DataConfig`` to train/test arrays in raw units."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from vpals_jax.config import DataConfig
from vpals_jax.data import schema
from vpals_jax.data.tables import (
    BENCHMARKS,
    DataError,
    check_values,
    coerce_numeric,
    drop_missing,
    read_benchmark,
    read_table,
    require_columns,
)

log = logging.getLogger(__name__)


@dataclass
class Dataset:
    """Train/test arrays in raw units; the normaliser is fitted on ``x_train`` by the trainer."""

    name: str
    feature_names: list[str]
    target_name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    # operator knowledge per feature (+1 / -1), used to write default specs
    feature_directions: dict[str, int]
    # calibration rows held out of training (data.calibration_fraction): conformal intervals
    x_cal: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))
    y_cal: np.ndarray = field(default_factory=lambda: np.empty(0))
    # a unified dataset (data.source=unified): per app, the (min, max - min) its target is scaled by
    target_scales: dict[str, tuple[float, float]] = field(default_factory=dict)


def _random_split(df: pd.DataFrame, fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    if not 0.0 < fraction < 1.0:
        raise DataError(f"data.test_fraction must be in (0, 1), got {fraction}")
    order = np.random.default_rng(seed).permutation(len(df))
    n_test = max(1, round(fraction * len(df)))
    return df.iloc[order[n_test:]], df.iloc[order[:n_test]]


def _calibration_split(train: pd.DataFrame, fraction: float, seed: int, where: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(training rows, calibration rows): a shuffle of the training rows seeded apart from the test split."""
    if not 0.0 <= fraction < 1.0:
        raise DataError(f"data.calibration_fraction must be in [0, 1), got {fraction}")
    n_cal = round(fraction * len(train))
    if n_cal == 0:
        return train, train.iloc[:0]
    if n_cal >= len(train):
        raise DataError(f"{where}: data.calibration_fraction={fraction} leaves no training rows")
    order = np.random.default_rng([seed, 1]).permutation(len(train))
    return train.iloc[np.sort(order[n_cal:])], train.iloc[np.sort(order[:n_cal])]


def _synthetic_frame(cfg: DataConfig) -> tuple[pd.DataFrame, dict[str, int]]:
    from vpals_jax.data import synthetic

    if cfg.app not in synthetic.APPS:
        raise DataError(f"unknown app {cfg.app!r}; synthetic apps: {list(synthetic.APPS)}")
    df = synthetic.generate(cfg.app, cfg.n_samples, seed=cfg.seed)
    return df, dict(synthetic.GROUND_TRUTH_DIRECTIONS[cfg.app])


def _table_frames(cfg: DataConfig) -> tuple[list[pd.DataFrame], dict[str, int]]:
    """The app's rows of ``data.path`` (and of ``data.test_path``), mapped into the schema."""
    if not cfg.path:
        raise DataError("data.source=table needs data.path (a canonical-schema CSV or Parquet file)")
    paths = [cfg.path, cfg.test_path] if cfg.test_path else [cfg.path]
    frames = [read_table(p, cfg.app, cfg.columns, cfg.units) for p in paths]
    directions = {c.name: c.latency_direction for c in schema.COLUMNS if c.latency_direction}
    return frames, directions


def load_dataset(cfg: DataConfig) -> Dataset:
    """Read, validate, filter and split the data the config names."""
    frames: list[pd.DataFrame]
    if cfg.source == "unified":  # several apps, the app a one-hot input: each member loaded as its own run would
        from vpals_jax.data import unified

        return Dataset(**unified.combine(cfg, {app: load_dataset(c) for app, c in unified.member_configs(cfg)}))
    if cfg.source != "table" and (cfg.test_path or cfg.columns or cfg.units):
        raise DataError(f"data.test_path, data.columns and data.units need data.source=table, not {cfg.source!r}")
    if cfg.source == "synthetic":
        df, directions = _synthetic_frame(cfg)
        frames, default_target, default_features, where = [df], schema.DEFAULT_TARGET, schema.FEATURES, "synthetic"
    elif cfg.source == "table":
        frames, directions = _table_frames(cfg)
        default_target, default_features, where = schema.DEFAULT_TARGET, schema.FEATURES, cfg.path
    elif cfg.source in BENCHMARKS:
        src = BENCHMARKS[cfg.source]
        frames = read_benchmark(cfg.source, cfg.path)
        directions = dict(src.feature_directions)
        default_target, default_features, where = src.target, src.features, cfg.path or cfg.source
    else:
        raise DataError(f"unknown data.source {cfg.source!r}; use synthetic, table, unified or one of {sorted(BENCHMARKS)}")

    target = cfg.target or default_target
    features = list(cfg.features) if cfg.features else list(default_features)
    if target in features:
        raise DataError(f"{where}: target {target!r} is also listed as a feature")
    if repeated := sorted({f for f in features if features.count(f) > 1}):
        raise DataError(f"{where}: feature(s) {repeated} listed more than once in data.features")
    cleaned = []
    wheres = [cfg.path, cfg.test_path] if cfg.source == "table" and cfg.test_path else [where] * len(frames)
    for df, at in zip(frames, wheres):
        require_columns(df, [*features, target], at)
        df = coerce_numeric(df, [*features, target], at)
        df = drop_missing(df, [*features, target], cfg.nan_policy, at)
        check_values(df, [*features, target], at)
        min_target = cfg.min_target if cfg.min_target is not None else getattr(BENCHMARKS.get(cfg.source), "min_target", None)
        if min_target is not None:
            df = df[df[target] > min_target]
        if cfg.target_log:
            if (bad := df[target] <= 0).any():
                raise DataError(f"{at}: data.target_log needs a positive target; column {target!r} holds "
                                f"{float(df[target][bad].iloc[0])} (set data.min_target to filter such rows)")  # fmt: skip
            df = df.assign(**{f"log_{target}": np.log(df[target])})
        cleaned.append(df)
    if cfg.target_log:
        target = f"log_{target}"

    if cfg.split == "given" or (cfg.source == "table" and cfg.test_path):  # data.test_path: the test rows
        if len(cleaned) != 2:
            raise DataError(f"data.split=given needs a source with separate train/test files, not {cfg.source!r}")
        train, test = cleaned
    elif cfg.split == "ood":
        if cfg.source != "synthetic":
            raise DataError("data.split=ood needs the synthetic source (it splits by co-runner interference)")
        from vpals_jax.data.synthetic import interference_level

        df = cleaned[0]
        level = interference_level(df)
        train, test = df[level <= cfg.ood_threshold], df[level > cfg.ood_threshold]
    elif cfg.split == "random":
        train, test = _random_split(pd.concat(cleaned), cfg.test_fraction, cfg.seed)
    else:
        raise DataError(f"unknown data.split {cfg.split!r}; use random, ood or given")
    for part, frame in (("train", train), ("test", test)):
        if len(frame) == 0:
            raise DataError(f"{where}: the {part} split is empty after filtering (check data.min_target / split)")
    log.info("data %s: %d train / %d test rows, %d features -> %s", where, len(train), len(test), len(features), target)
    train, cal = _calibration_split(train, cfg.calibration_fraction, cfg.seed, where)
    name = cfg.app if cfg.source in ("synthetic", "table") else cfg.source
    return Dataset(
        name=name,
        feature_names=features,
        target_name=target,
        x_train=train[features].to_numpy(np.float64),
        y_train=train[target].to_numpy(np.float64),
        x_test=test[features].to_numpy(np.float64),
        y_test=test[target].to_numpy(np.float64),
        feature_directions={f: d for f, d in directions.items() if f in features},
        x_cal=cal[features].to_numpy(np.float64),
        y_cal=cal[target].to_numpy(np.float64),
    )
