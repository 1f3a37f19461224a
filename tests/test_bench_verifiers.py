"""The verifier benchmark's soundness cross-check: it must find contradictions, and find none."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from experiments.bench_verifiers.job import run_job
from experiments.bench_verifiers.report import suite_lines, summary, write_report, wrong_verdicts
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


def test_reference_is_the_exact_milp_where_truth_is_unknown():
    """A verdict against the exact MILP is wrong even when no counterexample contradicts it."""
    rows = pd.DataFrame([
        {"instance": "d", "truth": None, "verifier": "milp", "backend": "milp", "status": "VERIFIED", "counterexamples": 0},
        {"instance": "d", "truth": None, "verifier": "y", "backend": "crown", "status": "FALSIFIED", "counterexamples": 0},
        {"instance": "d", "truth": None, "verifier": "z", "backend": "crown", "status": "TIMEOUT", "counterexamples": 0},
        {"instance": "e", "truth": None, "verifier": "milp", "backend": "milp", "status": "TIMEOUT", "counterexamples": 0},
        {"instance": "e", "truth": None, "verifier": "y", "backend": "crown", "status": "VERIFIED", "counterexamples": 0},
    ])  # fmt: skip
    wrong = wrong_verdicts(rows)
    assert list(zip(wrong.instance, wrong.verifier)) == [("d", "y")] and "exact MILP" in wrong.why.iloc[0]


def test_summary_states_suite_size_references_and_whether_the_ranking_separates(tmp_path):
    rows = [{"instance": f"i{k}", "kind": "planted" if k < 2 else "random", "truth": "FALSIFIED" if k < 2 else None,
             "verifier": v, "backend": v, "status": s, "counterexamples": int(s == "FALSIFIED"), "time_s": 0.5,
             "compile_s": 0.1, "boxes": 1, "time_limit_s": 2.0}
            for k in range(3) for v, s in (("milp", "FALSIFIED" if k < 2 else "VERIFIED"),
                                          ("crown", "FALSIFIED" if k == 0 else "TIMEOUT"))]  # fmt: skip
    df = pd.DataFrame(rows)
    table = summary(df, wrong_verdicts(df))
    lines = suite_lines(df, table)
    assert lines[0].startswith("Suite: 3 instances (planted 2, random 1); time limit 2 s")
    assert "2 by ground truth" in lines[1] and "1 by exact MILP" in lines[1]
    assert "best milp solves 3/3" in lines[2] and "a backend solves everything" in lines[2]
    t = table.set_index("verifier")
    assert (t.loc["crown", ["verified", "falsified", "solved"]] == [0, 1, 1]).all() and t.loc[
        "crown", "compile_s"
    ] == pytest.approx(0.3)
    df.loc[(df.verifier == "milp") & (df.instance == "i2"), "status"] = "TIMEOUT"
    assert suite_lines(df, summary(df, wrong_verdicts(df)))[2].endswith("no backend solves everything.")


def test_domain_predictors_are_17_input_whole_domain_cached_and_deterministic(tmp_path, monkeypatch):
    """Tiny recipes (2 epochs): the suite's predictor instances, their cache, their determinism."""
    from experiments.bench_verifiers import predictors

    tiny = {"epochs": 2, "n_samples": 600, "width": 8}
    instances = predictors.predictor_instances(tmp_path / "cache", ("nginx",), quick=True, **tiny)
    assert len(instances) == 2 * len(predictors.QUICK_SPECS)
    assert {i.kind for i in instances} == {"domain17_normal", "domain17_certified"}
    for inst in instances:
        assert inst.net.n_inputs == 17 and inst.width == 8
        # whole domain: the spec's region is the normaliser's whole training range, not a slice
        assert np.allclose(inst.spec.region.lower, 0.0) and np.allclose(inst.spec.region.upper, 1.0)
    assert {type(i.spec).__name__ for i in instances} == {"Monotonicity", "OutputBound"}

    def no_training(cfg):
        raise AssertionError("trained again although cached")

    monkeypatch.setattr("vpals_jax.train.trainer.run_training", no_training)
    again = predictors.predictor_instances(tmp_path / "cache", ("nginx",), quick=True, **tiny)
    assert all(np.array_equal(a.net.weights[0], b.net.weights[0]) for a, b in zip(instances, again))
    monkeypatch.undo()
    fresh = predictors.train_predictor(predictors.Recipe("nginx", "normal", **tiny), tmp_path / "other")
    from vpals_jax.convert import load_network

    net = load_network(str(fresh))[0]
    assert all(np.array_equal(a, b) for a, b in zip(net.weights, instances[0].net.weights))  # same recipe, same net


def test_command_line_takes_key_value_settings_and_the_older_flags(capsys):
    from experiments.bench_verifiers.cli import parse_args

    new = parse_args(["quick=true", "time_limit=1", "verifiers=crown,milp", "nnet=[a.nnet,b.nnet]"])
    old = parse_args(["--quick", "--time-limit", "1", "--verifiers", "crown,milp", "--nnet", "a.nnet", "b.nnet"])
    assert new == old and new["quick"] is True and new["time_limit"] == 1.0 and new["nnet"] == ["a.nnet", "b.nnet"]
    assert parse_args(["--no-trained"])["trained"] is False and parse_args([])["trained"] is True
    for bad, named in (["quick=maybe"], "quick"), (["time_limit=-1"], "time_limit"), (["verifiers=nope"], "nope"), (
            ["colour=red"], "colour=red"):  # fmt: skip
        with pytest.raises(SystemExit) as e:
            parse_args(bad)
        err = capsys.readouterr().err.strip()
        assert e.value.code == 2 and err.startswith("vpals-bench: error: ") and named in err and "\n" not in err
