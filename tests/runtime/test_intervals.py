"""Conformal intervals, the interval decision rule and the drift alarm (issue 15, part 1).

The statistical tests state their false-failure rate: each compares an average over many seeds
with its exchangeable-data expectation at a width of about 4.4 standard deviations (two-sided
false-failure probability below 1e-5 by the normal approximation), or bounds a binomial count.
"""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
from served_runs import FEATS, PSI, inside_rows

from verifiers import ReluNetwork
from vpals_jax.config import CalibrationConfig
from vpals_jax.data.normalizer import MinMaxNormalizer
from vpals_jax.runtime.drift import DriftMonitor
from vpals_jax.runtime.predictor import SafePredictor
from vpals_jax.train.calibrate import CALIBRATION_FILE, Calibration, fit_calibration

NAMES = ["cg_psi_cpu_some_pct", "cg_psi_io_some_pct", "cpu_quota_cores"]
NET = ReluNetwork([np.array([[1.0, 0.5], [0.5, 1.0], [-0.5, -0.2]]), np.array([[1.0], [0.5]])],
                  [np.array([0.2, 0.1]), np.array([0.0])])  # fmt: skip
NORM = MinMaxNormalizer(tuple(NAMES), "latency_p50_ms", np.zeros(3), np.ones(3), 0.0, 1.0)


def draw(rng: np.random.Generator, n: int, noise_scale: float = 1.0, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose noise grows with pressure (so Mondrian bins matter); exchangeable for fixed arguments."""
    x = rng.uniform(0.0, 1.0, size=(n, 3))
    y = NET.forward(x)[:, 0] + shift + noise_scale * (0.02 + 0.2 * x[:, :2].mean(axis=1)) * rng.standard_normal(n)
    return x, y


@pytest.mark.parametrize("method", ["split", "normalized", "mondrian"])
def test_coverage_is_nominal_on_exchangeable_data(method):
    """Mean coverage over 200 seeds lies within 4.4 sd of its exact expectation (false failure < 1e-5)."""
    n_cal, n_test, seeds, nominal = 400, 200, 200, 0.9
    cfg = CalibrationConfig(method=method, coverage=nominal, bins=4, min_bin_rows=50)
    covered = []
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        cal = fit_calibration(cfg, NET, NORM, *draw(rng, n_cal))
        x, y = draw(rng, n_test)
        iv = cal.interval(x, NET.forward(x)[:, 0], NORM)
        covered.append(np.mean((y >= iv[:, 0]) & (y <= iv[:, 1])))
    # Per Mondrian bin of m rows the quantile index is floor(0.1 (m + 1)): expected coverage
    # 1 - floor(0.1 (m+1)) / (m+1), at least nominal; the per-seed variance is at most
    # 0.09 / (smallest bin) + 0.09 / n_test.
    m = n_cal // (cfg.bins if method == "mondrian" else 1)
    expected = 1 - math.floor((1 - nominal) * (m + 1)) / (m + 1)
    sd = math.sqrt((0.09 / m + 0.09 / n_test) / seeds)
    assert abs(np.mean(covered) - expected) < 4.4 * sd, (np.mean(covered), expected, sd)


def test_mondrian_intervals_widen_with_load_and_keep_coverage_per_load_level():
    rng = np.random.default_rng(0)
    cal = fit_calibration(CalibrationConfig(method="mondrian"), NET, NORM, *draw(rng, 4000))
    split = fit_calibration(CalibrationConfig(method="split"), NET, NORM, *draw(rng, 4000))
    x, y = draw(rng, 20000)
    y_hat = NET.forward(x)[:, 0]
    heavy = x[:, :2].mean(axis=1) > np.quantile(x[:, :2].mean(axis=1), 0.75)
    for c, wide_where_loaded in ((cal, True), (split, False)):
        iv = c.interval(x, y_hat, NORM)
        width, inside = iv[:, 1] - iv[:, 0], (y >= iv[:, 0]) & (y <= iv[:, 1])
        assert (width[heavy].mean() > 1.5 * width[~heavy].mean()) == wide_where_loaded
        if wide_where_loaded:  # conditional coverage on the loaded quarter, 20000/4 rows: sd 0.004
            assert abs(inside[heavy].mean() - 0.9) < 0.02
        else:
            assert inside[heavy].mean() < 0.85  # one quantile for all: the loaded rows are under-covered


def test_calibration_round_trips_exactly(tmp_path):
    cal = fit_calibration(CalibrationConfig(), NET, NORM, *draw(np.random.default_rng(1), 300))
    back = Calibration.from_dict(json.loads(json.dumps(cal.to_dict())))
    assert back.to_dict() == cal.to_dict()
    assert fit_calibration(CalibrationConfig(), NET, NORM, np.empty((0, 3)), np.empty(0)) is None


# -- the drift alarm -------------------------------------------------------------------------------
def test_no_alarm_on_exchangeable_streams_and_an_alarm_soon_after_a_planted_shift():
    """20 exchangeable streams of 2000 rows: P(alarm) <= 1/100 each, so >= 3 alarms has probability
    < 0.002; every planted shift (noise x3 from row 1000) raises the alarm within 200 rows, never before."""
    false_alarms, delays = 0, []
    for seed in range(20):
        rng = np.random.default_rng(100 + seed)
        cal = fit_calibration(CalibrationConfig(), NET, NORM, *draw(rng, 1000))
        x, y = draw(rng, 2000)
        calm = DriftMonitor(cal, seed=seed)
        false_alarms += calm.observe(x, NET.forward(x)[:, 0], y)["drift"].eq("alarm").any()
        (x1, y1), (x2, y2) = draw(rng, 1000), draw(rng, 1000, noise_scale=3.0)
        shifted = DriftMonitor(cal, seed=seed)
        drift = [shifted.observe(xs, NET.forward(xs)[:, 0], ys) for xs, ys in ((x1, y1), (x2, y2))]
        assert not drift[0]["drift"].eq("alarm").any()
        assert drift[1]["drift"].eq("alarm").any()
        first = int(np.argmax(drift[1]["drift"].eq("alarm").to_numpy()))
        assert drift[1]["drift"].iloc[first:].eq("alarm").all()  # the alarm stays raised
        delays.append(first)
    assert false_alarms <= 2, false_alarms
    assert max(delays) < 200, delays


def test_without_observed_targets_the_alarm_watches_the_predictions():
    rng = np.random.default_rng(5)
    cal = fit_calibration(CalibrationConfig(), NET, NORM, *draw(rng, 1000))
    monitor = DriftMonitor(cal)
    x = rng.uniform(0.0, 1.0, size=(500, 3))
    assert not monitor.observe(x, NET.forward(x)[:, 0])["drift"].eq("alarm").any()
    x[:, :2] = rng.uniform(0.9, 1.0, size=(500, 2))  # every row heavily loaded: predictions move up
    assert monitor.observe(x, NET.forward(x)[:, 0])["drift"].eq("alarm").any()


# -- served runs with a calibration: intervals, decisions, and the certificate binding --------------------
def constant_calibration(half_width: float, coverage: float = 0.9) -> Calibration:
    """A hand-made split calibration whose every interval is prediction +- half_width."""
    n = 99
    return Calibration("split", coverage, FEATS, [], np.zeros(n), np.full(n, half_width), np.ones(n), np.zeros(n),
                       np.array([-np.inf, np.inf]))  # fmt: skip


def test_a_calibrated_run_serves_intervals_and_verified_rows(calibrated_run):
    run, norm = calibrated_run
    p = SafePredictor.load(run)
    pred = p.predict(inside_rows(norm, n=20))
    assert (pred.status == "verified").all()
    assert (pred.lower < pred.latency).all() and (pred.latency < pred.upper).all()
    assert p.describe()["intervals"] == "mondrian conformal, 90% coverage"
    wider = SafePredictor.load(run, coverage=0.99).predict(inside_rows(norm, n=20))
    assert (wider.upper - wider.lower > pred.upper - pred.lower).all()


def test_a_run_without_calibration_serves_points_and_says_so(certified_run):
    p = SafePredictor.load(certified_run[0])
    pred = p.predict(inside_rows(certified_run[1], n=3))
    assert (pred.status == "verified").all() and np.isnan(pred.lower).all() and np.isnan(pred.upper).all()
    assert p.describe()["intervals"] == "none (the run has no calibration)"
    out = p.decide(inside_rows(certified_run[1], n=3), slo=1e9)
    assert (out.decision == "stay").all() and out.reason.str.contains("no calibration").all()


def test_the_decision_rule_on_hand_made_intervals(certified_run):
    run, norm = certified_run
    x = inside_rows(norm, n=4)
    x[3, PSI] = norm.x_max[PSI]  # in the domain, not verified
    p = SafePredictor.load(run)
    hand = SafePredictor(p.net, p.normalizer, p.regions, calibration=constant_calibration(1.0))
    lat = hand.predict(x).latency
    np.testing.assert_allclose(hand.predict(x).upper - lat, 1.0)
    rows, slo = x[[0, 0, 0, 3]], float(lat[0])
    for limit, want in ((slo - 1.5, "migrate"), (slo + 1.5, "stay"), (slo - 0.5, "defer"), (slo + 0.5, "defer")):
        out = hand.decide(rows, slo=limit)
        assert list(out.decision) == [want] * 3 + ["defer"], (limit, list(out.reason))
        assert out.reason[3] == "prediction not trusted: unverified_region"
    assert "straddles the SLO" in hand.decide(rows[:1], slo=slo)["reason"][0]
    # the point rule would have acted on the same row: the interval is what makes it defer
    assert SafePredictor(p.net, p.normalizer, p.regions).decide(rows[:1], slo=slo - 0.5)["decision"][0] == "migrate"


def tampered(cal: dict, what: str, rng: np.random.Generator) -> dict | None:
    cal = json.loads(json.dumps(cal))
    if what == "residual":
        i = int(rng.integers(len(cal["residuals"])))
        cal["residuals"][i] *= 0.5
    elif what == "coverage":
        cal["coverage"] = 0.5
    elif what == "method":
        cal["method"] = "split"
    elif what == "edges":
        cal["edges"] = ["-inf", "inf"]
    elif what == "prediction":
        cal["y_hat"][0] += 1.0
    else:
        return None  # deleted
    return cal


@pytest.mark.parametrize("what", ["residual", "coverage", "method", "edges", "prediction", "deleted"])
def test_a_tampered_calibration_serves_nothing_verified(calibrated_run, tmp_path, what):
    run_dir, norm = calibrated_run
    run = shutil.copytree(run_dir, tmp_path / "run")
    path = run / CALIBRATION_FILE
    cal = tampered(json.loads(path.read_text()), what, np.random.default_rng(0))
    if cal is None:
        path.unlink()
    else:
        path.write_text(json.dumps(cal))
    served = SafePredictor.load(run)
    assert served.regions == []
    assert "verified" not in set(served.predict(inside_rows(norm, n=20)).status)


def test_the_untampered_calibrated_copy_still_serves_verified(calibrated_run, tmp_path):
    run = shutil.copytree(calibrated_run[0], tmp_path / "run")
    assert (SafePredictor.load(run).predict(inside_rows(calibrated_run[1], n=20)).status == "verified").all()


def test_training_calibrates_its_run_and_serves_its_intervals(tmp_path):
    from helpers import make_table
    from omegaconf import OmegaConf

    from vpals_jax.config import Config
    from vpals_jax.train.trainer import run_training

    make_table(n=300, seed=3).to_csv(tmp_path / "t.csv", index=False)
    cfg = OmegaConf.merge(OmegaConf.structured(Config), {
        "run_dir": str(tmp_path / "run"), "train": {"epochs": 2, "batch_size": 32, "progress": False},
        "data": {"source": "table", "path": str(tmp_path / "t.csv"), "calibration_fraction": 0.2}})  # fmt: skip
    summary = run_training(cfg)
    assert summary["calibration"]["n_rows"] == 48  # 20 % of the 240 training rows
    assert (tmp_path / "run" / CALIBRATION_FILE).is_file()
    pred = SafePredictor.load(tmp_path / "run").predict(make_table(n=5, seed=4))
    assert np.isfinite(pred.lower).all() and (pred.lower < pred.upper).all()
