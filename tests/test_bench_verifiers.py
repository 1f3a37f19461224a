"""The verifier benchmark's soundness cross-check: it must find contradictions, and find none."""

from __future__ import annotations

import pandas as pd
import pytest

from experiments.bench_verifiers.job import run_job
from experiments.bench_verifiers.report import write_report, wrong_verdicts
from experiments.bench_verifiers.suite import load_suite, ranking_instances, save_suite, synthetic_instances
from vpals_jax.config import VerifierConfig


def test_cross_check_flags_contradictions_and_ground_truth():
    rows = pd.DataFrame([
        {"instance": "a", "truth": None, "verifier": "x", "status": "VERIFIED", "counterexamples": 0},
        {"instance": "a", "truth": None, "verifier": "y", "status": "FALSIFIED", "counterexamples": 1},
        {"instance": "b", "truth": "FALSIFIED", "verifier": "x", "status": "VERIFIED", "counterexamples": 0},
        {"instance": "c", "truth": "VERIFIED", "verifier": "y", "status": "UNKNOWN", "counterexamples": 0},
    ])  # fmt: skip
    wrong = wrong_verdicts(rows)
    assert sorted(zip(wrong.instance, wrong.verifier)) == [("a", "x"), ("b", "x")]


@pytest.mark.parametrize("kinds", [("planted", "monotone", "random")])
def test_small_suite_has_no_wrong_verdicts_across_backends(tmp_path, kinds):
    instances = [i for i in synthetic_instances() if i.kind in kinds and i.width <= 16]
    suite = tmp_path / "suite"
    save_suite(instances, suite)
    assert len(load_suite(suite)) == len(instances)
    jobs = tmp_path / "jobs"
    for label, cfg in (("ouroboros", VerifierConfig(name="ouroboros")), ("milp", VerifierConfig(name="milp")),
                       ("crown", VerifierConfig(name="crown"))):  # fmt: skip
        # times include compilation (the first instance of each shape pays it): milp gets room for it
        run_job(suite, cfg, label, time_limit_s=30.0 if label == "milp" else 5.0, out=jobs / label)
    table, wrong = write_report(jobs, tmp_path, suite)
    assert "agree to 1e-5" in (tmp_path / "summary.md").read_text()
    assert len(wrong) == 0, wrong.to_string()
    assert (tmp_path / "cactus.png").exists() and (tmp_path / "scaling.png").exists()
    # the exact backend decides every small instance
    assert table.set_index("verifier").loc["milp", "solved"] == len(instances)


def test_quick_ranking_suite_has_no_wrong_verdicts_and_reports_wall_times(tmp_path):
    """Near-tolerance bands (drops 1e-4..1e-6, tolerance 10 % below or above): ground truth known.
    The ACAS Xu-sized instances of the quick suite take 25 s each here (compilation), so they run
    in ``python -m experiments.bench_verifiers --quick``, not in the tests."""
    suite = tmp_path / "suite"
    save_suite([i for i in ranking_instances(quick=True) if i.kind == "near_tolerance"], suite)
    jobs = tmp_path / "jobs"
    for label in ("crown", "milp"):
        run_job(suite, VerifierConfig(name=label), label, time_limit_s=3.0, out=jobs / label)
    table, wrong = write_report(jobs, tmp_path)
    assert len(wrong) == 0, wrong.to_string()
    t = table.set_index("verifier")
    assert (t.job_wall_s >= t.sum_time_s).all()  # compilation and set-up are counted, not hidden
    assert t.loc["crown", "solved"] >= 1 and t.loc["milp", "solved"] >= 1
