"""The synthetic generator: determinism, schema, PSI invariants, ground truth, interference."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vpals_jax.data import schema, synthetic
from vpals_jax.data.schema import psi_column


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    return {app: synthetic.generate(app, 3000, seed=7) for app in synthetic.APPS}


def test_same_seed_identical_different_seed_differs():
    a = synthetic.generate("nginx", 500, seed=3)
    b = synthetic.generate("nginx", 500, seed=3)
    pd.testing.assert_frame_equal(a, b)
    c = synthetic.generate("nginx", 500, seed=4)
    assert not np.allclose(a["latency_p50_ms"], c["latency_p50_ms"])
    # Apps use distinct streams even with the same seed.
    d = synthetic.generate("solr", 500, seed=3)
    assert not np.allclose(a["corunner_cpu"], d["corunner_cpu"])


@pytest.mark.parametrize("app", synthetic.APPS)
def test_schema_complete_with_dtypes(app, frames):
    df = frames[app]
    assert list(df.columns) == [c.name for c in schema.COLUMNS]
    assert len(df) == 3000
    for c in schema.COLUMNS:
        if c.dtype == "str":
            assert pd.api.types.is_string_dtype(df[c.name]), c.name
        else:
            assert df[c.name].dtype == np.float64, c.name
            assert np.isfinite(df[c.name]).all(), c.name
    assert (df["app"] == app).all()
    assert set(df["corunner_kind"]) <= set(synthetic.CORUNNER_KINDS)
    for f in schema.FEATURES:
        assert df[f].std() > 0, f"{f} is constant"


def test_empty_frame_keeps_schema():
    df = synthetic.generate("redis", 0)
    assert list(df.columns) == [c.name for c in schema.COLUMNS] and len(df) == 0


@pytest.mark.parametrize("app", synthetic.APPS)
def test_psi_invariants(app, frames):
    df = frames[app]
    for scope in ("sys", "cg"):
        for res in schema.PSI_RESOURCES:
            some = df[psi_column(scope, res, "some")].to_numpy()
            full = df[psi_column(scope, res, "full")].to_numpy()
            assert (full >= 0).all() and (full <= some).all() and (some <= 100).all(), (scope, res)
    # A stall inside the cgroup is a stall of the system: sys some >= cg some.
    for res in schema.PSI_RESOURCES:
        assert (df[psi_column("sys", res, "some")] >= df[psi_column("cg", res, "some")] - 1e-9).all(), res


@pytest.mark.parametrize("app", synthetic.APPS)
def test_physical_sanity(app, frames):
    df = frames[app]
    assert (df["cpu_usage_cores"] <= df["cpu_quota_cores"] + 1e-9).all()
    assert (df["mem_usage_mb"] <= df["mem_limit_mb"]).all()
    assert df["cpu_throttled_pct"].between(0, 100).all()
    for col in ("corunner_cpu", "corunner_mem", "corunner_io"):
        assert df[col].between(0, 1).all()
    assert (df["latency_p50_ms"] > 0).all() and (df["throughput_rps"] > 0).all()
    assert (df["latency_p99_ms"] > df["latency_p50_ms"]).all()
    none = df["corunner_kind"] == "none"
    assert none.any() and (synthetic.interference_level(df[none]) == 0).all()


@pytest.mark.parametrize("app", synthetic.APPS)
def test_noiseless_latency_is_expected_latency(app):
    df = synthetic.generate(app, 400, seed=1, noise=False)
    np.testing.assert_allclose(df["latency_p50_ms"], synthetic.expected_latency(df, app), rtol=1e-12)
    noisy = synthetic.generate(app, 400, seed=1)
    # Same scenario, only the latency noise differs.
    pd.testing.assert_frame_equal(noisy[list(schema.FEATURES)], df[list(schema.FEATURES)])
    assert not np.allclose(noisy["latency_p50_ms"], df["latency_p50_ms"])


def test_directions_agree_with_schema():
    for app in synthetic.APPS:
        dirs = synthetic.GROUND_TRUTH_DIRECTIONS[app]
        assert set(dirs) <= set(schema.FEATURES)
        assert set(dirs.values()) <= {-1, 1}
        for c in schema.COLUMNS:
            if c.kind == "feature" and c.latency_direction != 0:
                assert dirs.get(c.name) == c.latency_direction, (app, c.name)


@pytest.mark.parametrize("app", synthetic.APPS)
def test_ground_truth_directions_hold_noiselessly(app, frames):
    """Finite differences of the noiseless latency, on generated rows and on random points of the
    feature box (where a verifier looks), never go against the documented direction."""
    rng = np.random.default_rng(0)
    data = frames[app][list(schema.FEATURES)].iloc[:500].reset_index(drop=True)
    lo, hi = frames[app][list(schema.FEATURES)].min(), frames[app][list(schema.FEATURES)].max()
    box = pd.DataFrame({f: rng.uniform(lo[f], hi[f], 500) for f in schema.FEATURES})
    for base in (data, box):
        y0 = synthetic.expected_latency(base, app)
        for feat, sign in synthetic.GROUND_TRUTH_DIRECTIONS[app].items():
            span = hi[feat] - lo[feat]
            for frac in (0.01, 0.1, 0.5):
                moved = base.copy()
                moved[feat] = moved[feat] + frac * span
                diff = synthetic.expected_latency(moved, app) - y0
                assert (sign * diff >= -1e-9 * np.abs(y0)).all(), (feat, frac)
    # The PSI weights are not all zero: latency really moves with some PSI feature.
    moved = data.copy()
    moved[psi_column("cg", "cpu", "some")] += 10.0
    assert (synthetic.expected_latency(moved, app) > synthetic.expected_latency(data, app)).all()


@pytest.mark.parametrize("rng_", [(0.0, 0.3), (0.6, 0.9), (0.5, 0.5), (0.0, 0.0)])
def test_interference_range_respected(rng_):
    df = synthetic.generate("mysql", 800, seed=2, interference=rng_)
    level = synthetic.interference_level(df)
    assert level.between(rng_[0] - 1e-12, rng_[1] + 1e-12).all()
    if rng_[0] > 0:
        assert (df["corunner_kind"] != "none").all()
    if rng_[1] == 0:
        assert (df["corunner_kind"] == "none").all()


def test_interference_shifts_latency_and_ood_split():
    low = synthetic.generate("nginx", 2000, seed=0, interference=(0.0, 0.3))
    high = synthetic.generate("nginx", 2000, seed=0, interference=(0.7, 1.0))
    assert high["latency_p50_ms"].mean() > low["latency_p50_ms"].mean()
    assert high[psi_column("sys", "cpu", "some")].mean() > low[psi_column("sys", "cpu", "some")].mean()
    df = synthetic.generate("nginx", 2000, seed=0)
    train, test = synthetic.ood_split(df, threshold=0.5)
    assert len(train) + len(test) == len(df) and len(train) > 0 and len(test) > 0
    assert (synthetic.interference_level(train) <= 0.5).all()
    assert (synthetic.interference_level(test) > 0.5).all()


@pytest.mark.parametrize("bad", [(-0.1, 0.5), (0.6, 0.4), (0.0, 1.5)])
def test_bad_interference_range(bad):
    with pytest.raises(ValueError, match="interference"):
        synthetic.generate("nginx", 10, interference=bad)


def test_unknown_app():
    with pytest.raises(ValueError) as e:
        synthetic.generate("postgres", 10)
    msg = str(e.value)
    assert "postgres" in msg and all(app in msg for app in synthetic.APPS)
    with pytest.raises(ValueError, match="postgres"):
        synthetic.expected_latency(synthetic.generate("nginx", 5), "postgres")


def test_correlation_strength_resembles_figure_2(frames):
    best = {}
    for app, df in frames.items():
        y = df["latency_p50_ms"].to_numpy()
        best[app] = max(abs(np.corrcoef(df[f].to_numpy(), y)[0, 1]) for f in synthetic.PSI_FEATURES)
    strong, medium, weak = (["mindspore", "nginx"], ["solr"], ["redis", "mysql"])
    assert min(best[a] for a in strong) >= 0.7, best
    assert 0.35 < best["solr"] < 0.7, best
    assert max(best[a] for a in weak) < 0.35, best
    assert min(best[a] for a in strong) > max(best[a] for a in medium) > max(best[a] for a in weak)


def test_corunner_profiles_have_a_dominant_resource():
    # interference_level = max demand = L relies on every kind but "none" having a share of 1.
    for kind, profile in synthetic._PROFILES.items():
        assert max(profile) == (0.0 if kind == "none" else 1.0), kind
