"""The verifier benchmark's soundness cross-check: it must find contradictions, and find none."""

from __future__ import annotations

import pandas as pd
import pytest

from experiments.bench_verifiers.job import run_job
from experiments.bench_verifiers.report import write_report, wrong_verdicts
from experiments.bench_verifiers.suite import load_suite, save_suite, synthetic_instances
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
        run_job(suite, cfg, label, time_limit_s=5.0, out=jobs / label)
    table, wrong = write_report(jobs, tmp_path, suite)
    assert "agree to 1e-5" in (tmp_path / "summary.md").read_text()
    assert len(wrong) == 0, wrong.to_string()
    assert (tmp_path / "cactus.png").exists() and (tmp_path / "scaling.png").exists()
    # the exact backend decides every small instance
    assert table.set_index("verifier").loc["milp", "solved"] == len(instances)
