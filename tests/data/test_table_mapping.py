"""Tables from elsewhere: data.columns (renames, '*' patterns), data.units (scales) and data.test_path."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers import compose_train, make_table

from vpals_jax.config import DataConfig
from vpals_jax.data import schema
from vpals_jax.data.dataset import load_dataset
from vpals_jax.data.tables import DataError
from vpals_jax.train.trainer import as_config

SUBSET = [f for f in schema.FEATURES if f != "mem_limit_mb"]  # the foreign tool records no memory limit
COLUMNS = {"target_*": "cg_*", "cpu_pct": "cpu_usage_cores", "mem_bytes": "mem_usage_mb", "p50_ms": "latency_p50_ms"}
UNITS = {"cpu_usage_cores": 0.01, "mem_usage_mb": 1 / 2**20}


def foreign(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` as another tool writes it: cgroup PSI as target_*, CPU in %, memory in bytes, no app, no limit."""
    out = df[[*SUBSET, "latency_p50_ms"]].copy()
    out["cpu_usage_cores"] *= 100
    out["mem_usage_mb"] *= 2**20
    out = out.rename(columns={c: c.replace("cg_", "target_", 1) for c in out.columns if c.startswith("cg_")})
    return out.rename(columns={"cpu_usage_cores": "cpu_pct", "mem_usage_mb": "mem_bytes", "latency_p50_ms": "p50_ms"})


@pytest.fixture
def files(tmp_path):
    """(canonical file, the same rows in the foreign format, a second foreign file with other rows)."""
    canonical, first, second = tmp_path / "canonical.csv", tmp_path / "day1.csv", tmp_path / "day2.parquet"
    df = make_table(n=200, seed=3)
    df.to_csv(canonical, index=False)
    foreign(df).to_csv(first, index=False)
    foreign(make_table(n=80, seed=4)).to_parquet(second)
    return canonical, first, second


def mapped(path, **kw) -> DataConfig:
    return DataConfig(source="table", app="nginx", path=str(path), features=SUBSET, columns=dict(COLUMNS),
                      units=dict(UNITS), **kw)  # fmt: skip


def test_mapped_file_reads_as_the_canonical_one(files):
    canonical, first, _ = files
    want = load_dataset(DataConfig(source="table", app="nginx", path=str(canonical), features=SUBSET))
    got = load_dataset(mapped(first))
    assert got.feature_names == SUBSET
    np.testing.assert_allclose(got.x_train, want.x_train, rtol=1e-12)
    np.testing.assert_allclose(got.x_test, want.x_test, rtol=1e-12)
    np.testing.assert_allclose(got.y_test, want.y_test)


def test_test_path_is_the_test_split_and_the_whole_path_trains(files):
    _, first, second = files
    ds = load_dataset(mapped(first, test_path=str(second)))
    assert len(ds.x_train) + len(ds.x_cal) == 200 and len(ds.x_test) == 80
    want = make_table(n=80, seed=4)
    np.testing.assert_allclose(ds.y_test, want["latency_p50_ms"])
    np.testing.assert_allclose(ds.x_test[:, SUBSET.index("cpu_usage_cores")], want["cpu_usage_cores"], rtol=1e-12)


def test_the_example_config_reads_the_foreign_format(files):
    _, first, second = files
    cfg = as_config(compose_train(["data=table_mapped", f"data.path={first}", f"data.test_path={second}",
                                   "data.app=nginx", "run_dir=/tmp/unused"]))  # fmt: skip
    ds = load_dataset(cfg.data)
    assert ds.feature_names == SUBSET and len(ds.x_test) == 80
    assert ds.x_train[:, SUBSET.index("mem_usage_mb")].max() < 100  # MiB, not bytes


def test_errors_in_the_test_file_name_the_test_file(files, tmp_path):
    _, first, _ = files
    bad = foreign(make_table(n=20, seed=5))
    bad.loc[4, "target_psi_cpu_some_pct"] = 130.0
    bad.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(DataError, match=r"bad\.csv: column 'cg_psi_cpu_some_pct' has an impossible value 130\.0 at row 4"):
        load_dataset(mapped(first, test_path=str(tmp_path / "bad.csv")))
    with pytest.raises(DataError, match="data file not found: /no/day2.csv"):
        load_dataset(mapped(first, test_path="/no/day2.csv"))


def test_a_test_file_with_an_app_column_is_filtered_by_app(files, tmp_path):
    canonical, _, _ = files
    other = make_table(n=30, seed=6, app="redis")
    pd.concat([make_table(n=40, seed=7), other]).to_csv(tmp_path / "two_apps.csv", index=False)
    ds = load_dataset(DataConfig(source="table", app="nginx", path=str(canonical), test_path=str(tmp_path / "two_apps.csv")))
    assert len(ds.x_test) == 40
    with pytest.raises(DataError, match=r"other\.csv: unknown app 'nginx'; the file holds \['redis'\]"):
        other.to_csv(tmp_path / "other.csv", index=False)
        load_dataset(DataConfig(source="table", app="nginx", path=str(canonical), test_path=str(tmp_path / "other.csv")))


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ({**COLUMNS, "cpu_pcnt": "cpu_usage_cores"},
         r"data.columns names column 'cpu_pcnt', which the file does not have \(did you mean 'cpu_pct'\?\)"),
        ({**COLUMNS, "host_*": "sys_*"}, r"data.columns pattern 'host_\*' matches no column"),
        ({**COLUMNS, "sys_*": "cg_*"},
         r"makes 'sys_psi_cpu_full_pct' and 'target_psi_cpu_full_pct' both 'cg_psi_cpu_full_pct'"),
        ({**COLUMNS, "*_*": "x_*"}, r"a pattern needs exactly one '\*' on each side"),
        ({**COLUMNS, "mem_bytes": "cpu_usage_cores"}, r"makes 'cpu_pct' and 'mem_bytes' both 'cpu_usage_cores'"),
    ],
)  # fmt: skip
def test_bad_rename_maps_are_named(files, columns, message):
    _, first, _ = files
    cfg = mapped(first)
    cfg.columns = columns
    with pytest.raises(DataError, match=message):
        load_dataset(cfg)


@pytest.mark.parametrize("factor", [0.0, -0.01, float("nan"), float("inf"), "0.01", True])
def test_unit_scales_must_be_positive_finite_numbers(files, factor):
    _, first, _ = files
    cfg = mapped(first)
    cfg.units = {**UNITS, "cpu_usage_cores": factor}
    with pytest.raises(DataError, match=r"data.units.cpu_usage_cores must be a finite number > 0"):
        load_dataset(cfg)


def test_units_on_an_unknown_column_and_non_numeric_values_are_named(files, tmp_path):
    _, first, _ = files
    cfg = mapped(first)
    cfg.units = {**UNITS, "cpu_usage_core": 0.01}
    with pytest.raises(DataError, match=r"data.units names column 'cpu_usage_core'.*did you mean 'cpu_usage_cores'"):
        load_dataset(cfg)
    df = pd.read_csv(first).astype({"mem_bytes": object})
    df.loc[2, "mem_bytes"] = "12 GB"
    df.to_csv(tmp_path / "text.csv", index=False)
    with pytest.raises(DataError, match=r"text\.csv: column 'mem_usage_mb' has a non-numeric value '12 GB' at row 2"):
        load_dataset(mapped(tmp_path / "text.csv"))


def test_a_wrong_scale_is_caught_by_the_physical_range(files):
    """The physical range is checked after scaling: a PSI share scaled by 100 is refused."""
    _, first, _ = files
    cfg = mapped(first)
    cfg.units = {**UNITS, "cg_psi_cpu_some_pct": 100.0}
    with pytest.raises(DataError, match=r"column 'cg_psi_cpu_some_pct' has an impossible value .* \(outside the physical range"):
        load_dataset(cfg)


def test_mapping_needs_the_table_source():
    with pytest.raises(DataError, match="need data.source=table, not 'synthetic'"):
        load_dataset(DataConfig(source="synthetic", n_samples=100, test_path="x.csv"))
    with pytest.raises(DataError, match="need data.source=table, not 'linnos'"):
        load_dataset(DataConfig(source="linnos", units={"queue_len_now": 2.0}))
