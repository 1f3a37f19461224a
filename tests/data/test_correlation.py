"""The correlation report: Pearson table, NaN for constant features, plot and CLI."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from vpals_jax.data import correlation, schema, synthetic


def _frames() -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(0)
    frames = {}
    for app in ("a", "b"):
        x1 = rng.normal(size=200)
        x2 = rng.uniform(size=200)
        y = 2.0 * x1 - x2 + rng.normal(scale=0.5, size=200)
        frames[app] = pd.DataFrame({"x1": x1, "x2": x2, "const": np.full(200, 3.3), "y": y})
    return frames


def test_table_matches_numpy_corrcoef():
    frames = _frames()
    table = correlation.correlation_table(frames, "y", ["x1", "x2"])
    assert list(table.index) == ["x1", "x2"] and list(table.columns) == ["a", "b"]
    for app, df in frames.items():
        for f in ("x1", "x2"):
            assert table.loc[f, app] == pytest.approx(np.corrcoef(df[f], df["y"])[0, 1], abs=1e-12)


def test_constant_feature_is_nan_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = correlation.correlation_table(_frames(), "y", ["x1", "const"])
    assert table.loc["const"].isna().all()
    assert table.loc["x1"].notna().all()


def test_missing_column_names_app_and_column():
    with pytest.raises(ValueError, match="'a'.*nope"):
        correlation.correlation_table(_frames(), "y", ["x1", "nope"])


def test_plot_written(tmp_path):
    table = correlation.correlation_table(_frames(), "y", ["x1", "x2", "const"])
    path = correlation.plot_correlations(table, tmp_path / "sub" / "corr.png")
    assert path.exists() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_main_writes_csv_and_png(tmp_path, capsys):
    assert correlation.main(["--out", str(tmp_path), "--n", "300", "--seed", "1"]) == 0
    csv = pd.read_csv(tmp_path / "correlations.csv", index_col="feature")
    assert list(csv.columns) == list(synthetic.APPS)
    assert list(csv.index) == list(schema.FEATURES)
    assert csv.abs().max().max() <= 1.0
    assert (tmp_path / "correlations.png").stat().st_size > 1000
