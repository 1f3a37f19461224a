"""vpals-verify end to end: a checkpoint in, a table out, verdicts.json bound to the function and specs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from helpers import write_monotone_run

from vpals_jax.certificate import function_fingerprint, spec_digest
from vpals_jax.convert import load_network

ROOT = Path(__file__).resolve().parents[1]


def verify_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vpals_jax.verify", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)  # fmt: skip


def test_verifies_every_spec_of_the_set_and_writes_verdicts(tmp_path):
    run_dir, _ = write_monotone_run(tmp_path / "run")
    proc = verify_cli(f"run_dir={run_dir}", "spec=psi_monotone", "verifier.time_budget_s=20")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "spec" in proc.stdout and "status" in proc.stdout and "worst_margin" in proc.stdout
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
