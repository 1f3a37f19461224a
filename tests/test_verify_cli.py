"""vpals-verify end to end: a checkpoint in, a table out, verdicts.json bound to the function and specs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import write_monotone_run

from verifiers import Box, Monotonicity, OutputBound, ReluNetwork, Status, Verdict
from vpals_jax.certificate import function_fingerprint, spec_digest
from vpals_jax.config import ModelConfig, OptimConfig
from vpals_jax.convert import load_network
from vpals_jax.data.normalizer import MinMaxNormalizer
from vpals_jax.models import build_model
from vpals_jax.train.checkpoint import load_checkpoint, save_checkpoint
from vpals_jax.train.steps import create_state
from vpals_jax.verify import describe

ROOT = Path(__file__).resolve().parents[1]


def verify_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vpals_jax.verify", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, check=False)  # fmt: skip


def test_verifies_every_spec_of_the_set_and_writes_verdicts(tmp_path):
    run_dir, _ = write_monotone_run(tmp_path / "run")
    proc = verify_cli(f"run_dir={run_dir}", "spec=psi_monotone", "verifier.time_budget_s=20")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "15 specs: 15 VERIFIED; verdicts written to" in proc.stdout
    (path,) = (run_dir / "verify").glob("*_psi_monotone_ouroboros/verdicts.json")
    payload = json.loads(path.read_text())
    assert payload["function_sha256"] == function_fingerprint(*load_network(str(run_dir))[:2])
    assert all(v["spec_sha256"] == spec_digest(v["spec"]) for v in payload["verdicts"])
    statuses = {v["spec"]["name"]: v["status"] for v in payload["verdicts"]}
    assert len(statuses) == 15
    # increasing in every pressure feature and decreasing in the quota/limit by construction
    assert all(s == "VERIFIED" for s in statuses.values()), statuses


def test_run_directory_without_checkpoint_is_one_line(tmp_path):
    proc = verify_cli(f"run_dir={tmp_path}", "spec=linnos")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("vpals-verify: error: no checkpoint in run directory")


def test_spec_for_another_model_names_the_feature(tmp_path):
    run_dir, _ = write_monotone_run(tmp_path / "run")
    proc = verify_cli(f"run_dir={run_dir}", "spec=linnos")
    assert proc.returncode == 2
    assert "unknown feature 'queue_len_h0'" in proc.stderr.strip().splitlines()[-1]


# One line per spec, in the data's units ----------------------------------------------------------


def test_prints_one_line_per_spec_naming_feature_direction_and_verdict(tmp_path):
    run_dir, _ = write_monotone_run(tmp_path / "run")
    proc = verify_cli(f"run_dir={run_dir}", "spec=psi_monotone", "verifier.time_budget_s=20")
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 16 and lines[0].startswith("[1/15] sys_psi_cpu_some_pct increasing: VERIFIED in ")
    assert lines[12].startswith("[13/15] cpu_quota_cores decreasing: VERIFIED")
    assert lines[14].startswith("[15/15] latency never negative (latency_p50_ms >= 0 ms): VERIFIED")
    assert lines[-1].startswith("15 specs: 15 VERIFIED; verdicts written to ")
    assert proc.stderr.strip() == ""  # no warning a user cannot act on


def falsified_run(tmp_path: Path) -> tuple[Path, MinMaxNormalizer]:
    """The monotone run with latency made to fall as cg cpu pressure rises: a real violation."""
    run_dir, norm = write_monotone_run(tmp_path / "run")
    params, norm, config, meta = load_checkpoint(run_dir)
    i = norm.feature_index("cg_psi_cpu_some_pct")
    kernel = np.array(params["hidden_0"]["kernel"])
    kernel[i] = -np.abs(kernel[i]) * 4
    params = {**params, "hidden_0": {**params["hidden_0"], "kernel": kernel}}
    state = create_state(build_model(ModelConfig(depth=1, width=8)), OptimConfig(), len(norm.feature_names), seed=0)
    save_checkpoint(run_dir, state.replace(params=params), norm, config, meta)
    return run_dir, norm


def test_a_falsified_spec_shows_margin_and_witness_in_raw_units(tmp_path):
    run_dir, norm = falsified_run(tmp_path)
    spec = "spec.specs=[{kind: monotonicity, feature: cg_psi_cpu_some_pct, direction: increasing}]"
    proc = verify_cli(f"run_dir={run_dir}", "spec=psi_monotone", spec, "verifier.time_budget_s=20")
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = proc.stdout.splitlines()[0]
    head, ms, normalised = re.match(r"(.*), violated by ([\d.e+-]+) ms \[([\d.e+-]+) normalised\]: ", line).groups()
    assert head.startswith("[1/1] cg_psi_cpu_some_pct increasing: FALSIFIED in ")
    assert float(ms) == pytest.approx(float(normalised) * norm.y_scale, rel=2e-3)
    a, b, fa, fb = map(float, re.search(r"cg_psi_cpu_some_pct ([\d.e+-]+)% -> ([\d.e+-]+)% moves latency_p50_ms "
                                        r"([\d.e+-]+) ms -> ([\d.e+-]+) ms", line).groups())  # fmt: skip
    i = norm.feature_index("cg_psi_cpu_some_pct")
    # raw units (printed to 4 digits), not normalised: inside the training range, in ms
    assert norm.x_min[i] * 0.999 <= a < b <= norm.x_max[i] * 1.001 and b > 1
    assert fa - fb == pytest.approx(float(ms), rel=2e-3)


def test_an_unknown_verdict_says_why_with_its_bound_in_raw_units():
    net, norm = ReluNetwork([np.eye(2), np.ones((2, 1))], [np.zeros(2), np.zeros(1)]), make_norm()
    spec = Monotonicity(feature=1, direction="decreasing", region=Box([0, 0], [1, 1]), name="")
    v = Verdict(Status.UNKNOWN, "ouroboros", spec.to_dict(), wall_time_s=3.0, verified_fraction=0.25,
                best_bound=-0.5, message="box budget of 10 spent")  # fmt: skip
    line = describe(v, net, norm)
    # -df/dx >= -0.5 normalised, i.e. df/dx <= 0.5 * 20 ms / 4 cores
    assert line == ("cpu_quota_cores decreasing: UNKNOWN in 3.00 s, 25.0% of the region proven, slope proven <= "
                    "2.5 ms/cores [0.5 normalised]: box budget of 10 spent")  # fmt: skip
    timeout = Verdict(Status.TIMEOUT, "milp", OutputBound(lower=0.25, upper=None, region=Box([0, 0], [1, 1]),
                                                          name="floor").to_dict(), best_bound=-0.1)  # fmt: skip
    assert describe(timeout, net, norm).startswith("floor (latency_p50_ms >= 10 ms): TIMEOUT in 0.00 s, 0.0% of "
                                                   "the region proven, worst slack -2 ms [-0.1 normalised]")  # fmt: skip


def make_norm() -> MinMaxNormalizer:
    return MinMaxNormalizer(("cg_psi_cpu_some_pct", "cpu_quota_cores"), "latency_p50_ms", np.array([0.0, 0.5]),
                            np.array([100.0, 4.0]), y_min=5.0, y_scale=20.0)  # fmt: skip


def test_help_lists_the_options_and_groups(tmp_path):
    proc = verify_cli("--help")
    assert proc.returncode == 0 and proc.stdout.startswith("vpals-verify")
    assert "powered by Hydra" not in proc.stdout
    for text in ("run_dir=", "spec: ", "verifier: ", "psi_monotone", "ouroboros", "time_budget_s"):
        assert text in proc.stdout, text


def test_a_refused_verify_leaves_nothing_behind(tmp_path):
    """Hydra creates the job's folder (and a missing run directory above it) before the job can
    check anything: a refused verify removes what only Hydra put there (issue 18, section 4)."""
    missing = tmp_path / "no_such_run"
    proc = verify_cli(f"run_dir={missing}")
    assert proc.returncode == 2 and "no checkpoint in run directory" in proc.stderr
    assert not missing.exists()
    run_dir, _ = write_monotone_run(tmp_path / "run")
    before = sorted(p.relative_to(run_dir) for p in run_dir.rglob("*"))
    proc = verify_cli(f"run_dir={run_dir}", "verifier=crown", "+verifier.options.tolerance_form=bogus")
    assert proc.returncode == 2 and "tolerance_form must be 'slope' or 'drop'" in proc.stderr
    assert sorted(p.relative_to(run_dir) for p in run_dir.rglob("*")) == before
