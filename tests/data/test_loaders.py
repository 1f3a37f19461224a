"""Loader validation: every bad input is a one-line DataError naming what is wrong."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers import make_table

from vpals_jax.config import DataConfig
from vpals_jax.data.dataset import load_dataset
from vpals_jax.data.normalizer import MinMaxNormalizer
from vpals_jax.data.tables import BENCHMARKS, DataError


def table_cfg(path, **kw) -> DataConfig:
    return DataConfig(source="table", app="nginx", path=str(path), **kw)


def test_canonical_table_loads_csv_and_parquet(tmp_path, table_csv):
    ds = load_dataset(table_cfg(table_csv))
    assert ds.x_train.shape[1] == 17 and len(ds.x_train) + len(ds.x_cal) + len(ds.x_test) == 400
    pq = tmp_path / "t.parquet"
    pd.read_csv(table_csv).to_parquet(pq)
    ds2 = load_dataset(table_cfg(pq))
    np.testing.assert_allclose(ds.x_train, ds2.x_train)


def test_missing_file():
    with pytest.raises(DataError, match="data file not found: /no/such.csv"):
        load_dataset(table_cfg("/no/such.csv"))


def test_misspelt_column_is_named_with_suggestion(tmp_path):
    path = tmp_path / "t.csv"
    make_table().rename(columns={"cg_psi_cpu_some_pct": "cg_psi_cpu_som_pct"}).to_csv(path, index=False)
    with pytest.raises(DataError, match=r"missing column 'cg_psi_cpu_some_pct' \(did you mean 'cg_psi_cpu_som_pct'"):
        load_dataset(table_cfg(path))


def test_non_numeric_value_is_named(tmp_path):
    df = make_table()
    df["mem_usage_mb"] = df["mem_usage_mb"].astype(object)
    df.loc[7, "mem_usage_mb"] = "lots"
    path = tmp_path / "t.csv"
    df.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"column 'mem_usage_mb' has a non-numeric value 'lots' at row 7"):
        load_dataset(table_cfg(path))


def test_nan_rows_dropped_or_fail(tmp_path, caplog):
    df = make_table()
    df.loc[3, "sys_psi_io_full_pct"] = np.nan
    df.loc[5, "latency_p50_ms"] = np.nan
    path = tmp_path / "t.csv"
    df.to_csv(path, index=False)
    ds = load_dataset(table_cfg(path))
    assert len(ds.x_train) + len(ds.x_cal) + len(ds.x_test) == 398
    assert "dropped 2 row(s) with NaN" in caplog.text
    with pytest.raises(DataError, match=r"2 row\(s\) with NaN, first at row 3 column 'sys_psi_io_full_pct'"):
        load_dataset(table_cfg(path, nan_policy="fail"))


def test_inf_is_refused_whatever_the_nan_policy(tmp_path):
    """NaN is a missing value (nan_policy decides); inf is a value no measurement takes."""
    df = make_table()
    df.loc[5, "latency_p50_ms"] = np.inf
    path = tmp_path / "t.csv"
    df.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"column 'latency_p50_ms' has an impossible value inf at row 5"):
        load_dataset(table_cfg(path, nan_policy="drop"))


def test_empty_after_filtering(table_csv):
    with pytest.raises(DataError, match="train split is empty after filtering"):
        load_dataset(table_cfg(table_csv, min_target=1e9))


def test_unknown_app(table_csv):
    with pytest.raises(DataError, match=r"unknown app 'redis'; the file holds \['nginx'\]"):
        load_dataset(DataConfig(source="table", app="redis", path=str(table_csv)))


def test_unknown_source():
    with pytest.raises(DataError, match="unknown data.source 'nosuch'"):
        load_dataset(DataConfig(source="nosuch"))


def test_normaliser_round_trip_and_constant_feature(caplog):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 3))
    x[:, 1] = 7.0  # constant: must not divide by zero
    y = rng.normal(size=50)
    norm = MinMaxNormalizer.fit(x, y, ["a", "b", "c"], "y")
    assert "constant feature(s) in the training split, scaled by 1: b" in caplog.text
    xn = norm.transform_x(x)
    assert np.all(np.isfinite(xn)) and xn.min() >= 0 and xn.max() <= 1
    np.testing.assert_allclose(norm.inverse_x(xn), x)
    np.testing.assert_allclose(norm.inverse_y(norm.transform_y(y)), y)
    again = MinMaxNormalizer.from_dict(norm.to_dict())
    np.testing.assert_allclose(again.transform_x(x), xn)


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_benchmark_sources_load(name):
    split = "given" if len(BENCHMARKS[name].files) == 2 else "random"
    ds = load_dataset(DataConfig(source=name, split=split))
    assert ds.x_train.shape[1] == len(BENCHMARKS[name].features)
    assert np.isfinite(ds.x_train).all() and len(ds.x_test) > 0
    if name == "cardwiki":
        assert ds.y_train.min() > 100


def test_benchmark_path_override_is_a_data_directory():
    ds = load_dataset(DataConfig(source="linnos", path="data/external"))
    assert len(ds.x_train) + len(ds.x_cal) + len(ds.x_test) == 59870  # every line of the file
    assert ds.feature_names == list(BENCHMARKS["linnos"].features)


def test_target_log_learns_the_log_and_refuses_non_positive_targets(tmp_path, table_csv):
    plain = load_dataset(table_cfg(table_csv))
    logged = load_dataset(table_cfg(table_csv, target_log=True))
    assert logged.target_name == f"log_{plain.target_name}"
    np.testing.assert_allclose(logged.y_train, np.log(plain.y_train))
    assert logged.feature_directions == plain.feature_directions  # log is increasing: directions hold
    df = pd.read_csv(table_csv)
    df.loc[3, plain.target_name] = 0.0
    bad = tmp_path / "zero.csv"
    df.to_csv(bad, index=False)
    with pytest.raises(DataError, match=rf"zero.csv: data.target_log needs a positive target; column '{plain.target_name}' holds 0.0"):
        load_dataset(table_cfg(str(bad), target_log=True))
