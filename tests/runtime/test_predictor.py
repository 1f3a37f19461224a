"""SafePredictor: statuses, policies, decisions, and the properties a resource manager relies on."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from helpers import PSI_LIMIT, make_table, write_monotone_run
from hypothesis import given, settings
from hypothesis import strategies as st
from served_runs import FEATS, PSI, SERVED_SPEC, certified_run_at, inside_rows, resave

from verifiers import Box
from vpals_jax.convert import load_network
from vpals_jax.runtime.predictor import SafePredictor
from vpals_jax.train import checkpoint as ckpt


@pytest.fixture(scope="module")
def predictor(certified_run):
    return SafePredictor.load(certified_run[0])


def test_statuses(predictor, certified_run):
    _, norm = certified_run
    x = inside_rows(norm, n=4)
    x[1, PSI] = (PSI_LIMIT + norm.x_max[PSI]) / 2  # in the domain, outside the certified region
    x[2, 0] = norm.x_max[0] + norm.x_scale[0]  # far outside the training domain
    x[3, 5] = np.nan
    pred = predictor.predict(x)
    assert list(pred.status) == ["verified", "unverified_region", "out_of_distribution", "invalid"]
    assert np.isfinite(pred.latency[:3]).all() and np.isnan(pred.latency[3])


def test_ood_margin_is_a_fraction_of_the_range(certified_run):
    run_dir, norm = certified_run
    x = inside_rows(norm, n=1)
    x[0, 0] = norm.x_max[0] + 0.03 * norm.x_scale[0]
    assert SafePredictor.load(run_dir, ood_margin=0.05).predict(x).status[0] != "out_of_distribution"
    assert SafePredictor.load(run_dir, ood_margin=0.01).predict(x).status[0] == "out_of_distribution"


def test_inputs_as_frame_dict_and_array_agree(predictor, certified_run):
    x = inside_rows(certified_run[1], n=3)
    frame = pd.DataFrame(x, columns=FEATS)
    a = predictor.predict(x).latency
    np.testing.assert_allclose(predictor.predict(frame).latency, a)
    np.testing.assert_allclose(predictor.predict(frame.iloc[0].to_dict()).latency, a[:1])
    bad = frame.iloc[0].to_dict() | {"mem_usage_mb": "lots"}
    assert predictor.predict(bad).status[0] == "invalid"
    assert predictor.predict({k: v for k, v in bad.items() if k != "cg_psi_io_full_pct"}).status[0] == "invalid"
    assert predictor.predict(frame.iloc[0].to_dict() | {"mem_usage_mb": "12.5"}).status[0] == "verified"  # CSV text


def test_booleans_are_not_numbers(predictor, certified_run):
    """True must not read as 1 (an in-region value here): a boolean row is invalid, never verified."""
    row = dict(zip(FEATS, inside_rows(certified_run[1], n=1)[0]))
    assert predictor.predict(row | {"cg_psi_cpu_some_pct": 1.0}).status[0] == "verified"
    for value in (True, np.bool_(True), False):
        assert predictor.predict(row | {"cg_psi_cpu_some_pct": value}).status[0] == "invalid"
    frame = pd.DataFrame([row] * 2)
    frame["cg_psi_cpu_some_pct"] = [True, False]  # a bool column
    assert list(predictor.predict(frame).status) == ["invalid", "invalid"]
    assert list(predictor.predict(np.ones((2, len(FEATS)), bool)).status) == ["invalid", "invalid"]
    mixed = np.array([list(inside_rows(certified_run[1], n=1)[0])], dtype=object)
    mixed[0, PSI] = True
    assert predictor.predict(mixed).status[0] == "invalid"


def test_large_batches_use_the_jitted_path_with_the_same_answers(predictor, certified_run):
    x = inside_rows(certified_run[1], n=1000)
    big = predictor.predict(x).latency
    small = np.concatenate([predictor.predict(x[i : i + 100]).latency for i in range(0, 1000, 100)])
    np.testing.assert_allclose(big, small, rtol=1e-5, atol=1e-5)


def test_policies(certified_run):
    run_dir, norm = certified_run
    x = inside_rows(norm, n=3)
    x[1, PSI] = norm.x_max[PSI]  # unverified region
    refuse = SafePredictor.load(run_dir, policy="refuse").predict(x)
    assert np.isfinite(refuse.latency[0]) and np.isnan(refuse.latency[1])
    bound = SafePredictor.load(run_dir, policy="bound").predict(x)
    assert bound.bounded.tolist() == [False, True, False]
    # the bound is sound over the region: no sampled prediction inside it exceeds it
    region_max = SafePredictor.load(run_dir).predict(inside_rows(norm, n=2000, seed=3)).latency.max()
    assert bound.latency[1] >= region_max


def test_decisions(predictor, certified_run):
    x = inside_rows(certified_run[1], n=3)
    x[2, 4] = np.inf
    lat = predictor.predict(x).latency
    out = predictor.decide(x, slo=float((lat[0] + lat[1]) / 2))
    lo, hi = sorted([0, 1], key=lambda i: lat[i])
    assert out.decision[lo] == "stay" and out.decision[hi] == "migrate"
    assert out.decision[2] == "defer" and out.reason[2] == "invalid input"
    slow = predictor.decide(x[:2], max_slowdown=1.0)
    assert (slow.slowdown >= 1.0 - 1e-9).all()  # pressure can only slow the task down: monotone model
    with pytest.raises(ValueError, match="slo and/or max_slowdown"):
        predictor.decide(x)


row_values = st.lists(st.floats(allow_nan=True, allow_infinity=True, width=64), min_size=len(FEATS), max_size=len(FEATS))


@settings(max_examples=200, deadline=None)
@given(row_values)
def test_property_statuses_are_never_wrong(predictor, values):
    x = np.array([values])
    status = predictor.predict(x).status[0]
    norm = predictor.normalizer
    if not np.isfinite(x).all():
        assert status == "invalid"
    elif ((x < norm.x_min - 0.05 * norm.x_scale) | (x > norm.x_max + 0.05 * norm.x_scale)).any():
        assert status == "out_of_distribution"
    elif status == "verified":
        assert norm.x_min[PSI] <= x[0, PSI] <= PSI_LIMIT and (x >= norm.x_min).all() and (x <= norm.x_max).all()


@settings(max_examples=100, deadline=None)
@given(st.integers(0, len(FEATS) - 1), st.floats(-1e6, 1e6))
def test_property_never_verified_outside_a_verified_region(predictor, j, value):
    x = inside_rows(predictor.normalizer, n=1, seed=j)
    x[0, j] = value
    r = predictor.regions[0]
    xn = predictor.normalizer.transform_x(x[0])
    if predictor.predict(x).status[0] == "verified":
        assert r.contains(xn)


def test_a_certificate_for_other_weights_is_not_trusted(tmp_path):
    run_dir, norm = certified_run_at(tmp_path / "a")
    assert SafePredictor.load(run_dir).regions
    # retrain in place: new weights, while the old certificate stays on disk
    shutil.rmtree(run_dir / "checkpoint")
    write_monotone_run(run_dir, seed=5)
    resave(run_dir, config={**ckpt.load_checkpoint(run_dir)[2], "spec": SERVED_SPEC})
    stale = SafePredictor.load(run_dir)
    assert stale.regions == []
    assert set(stale.predict(inside_rows(norm, n=5)).status) == {"unverified_region"}


def test_training_table_rows_get_statuses(predictor):
    frame = make_table(n=20, seed=9)
    assert set(predictor.predict(frame).status) <= {"verified", "unverified_region", "out_of_distribution"}


def test_fused_float32_guard_agrees_with_the_exact_float64_guard(predictor, certified_run):
    """Rows on and one float64 ulp around every boundary: the jitted path must not round across."""
    norm = certified_run[1]
    base = inside_rows(norm, n=1)[0]
    lo = predictor._dom_lo
    hi = predictor._dom_hi
    edges = [lo, hi, predictor._reg_lo[0], predictor._reg_hi[0]]
    rows = []
    for j in range(len(FEATS)):
        for edge in edges:
            for v in (edge[j], np.nextafter(edge[j], -np.inf), np.nextafter(edge[j], np.inf)):
                r = base.copy()
                r[j] = v
                rows.append(r)
    x = np.array(rows * 3)  # >= JAX_MIN_ROWS rows: the fused path
    x[::7, 3] = np.nan
    x[::11, 2] = 1e300  # finite in float64, inf in float32
    fused = predictor.predict(x).status_code
    exact = predictor.status_codes(x)
    np.testing.assert_array_equal(fused, exact)
    assert {0, 1, 2, 3} <= set(exact.tolist())


def test_region_edges_never_round_outside_the_proven_box(certified_run):
    """inverse_x rounds: a raw bound can normalise to just outside the proven box, and must not count."""
    net, norm, _ = load_network(str(certified_run[0]))
    rng = np.random.default_rng(0)
    lower = rng.uniform(0.1, 0.4, size=(4000, len(FEATS)))
    outside = norm.transform_x(norm.inverse_x(lower)) < lower
    k = int(np.flatnonzero(outside.any(axis=1))[0])
    box = Box(lower[k], np.full(len(FEATS), 0.9))
    p = SafePredictor(net, norm, [box])
    edge = norm.inverse_x(box.lower)[None]
    for x in (edge, np.nextafter(edge, np.inf), np.nextafter(np.nextafter(edge, np.inf), np.inf)):
        xs = np.repeat(x, 300, axis=0)  # the fused float32 path too
        for status, row in ((p.predict(x).status[0], x[0]), (p.predict(xs).status[0], xs[0])):
            assert status != "verified" or box.contains(norm.transform_x(row)), norm.transform_x(row) - box.lower
    assert p.predict(np.nextafter(norm.inverse_x(box.center), np.inf)[None]).status[0] == "verified"
