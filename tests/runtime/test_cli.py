"""vpals-predict: files, streamed JSON lines (malformed ones reported, none lost), live watch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from served_runs import FEATS, SERVED_SPEC, inside_rows

from vpals_jax.data import schema

ROOT = Path(__file__).resolve().parents[2]


def predict_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vpals_jax.runtime", *args], cwd=ROOT, input=stdin,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def rows(norm, n: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(rng.uniform(norm.x_min, norm.x_max, size=(n, len(norm.x_min))), columns=list(schema.FEATURES))


def test_csv_input_gives_one_line_per_row_with_decisions(certified_run, tmp_path):
    run_dir, norm = certified_run
    path = tmp_path / "m.csv"
    rows(norm, 7).to_csv(path, index=False)
    proc = predict_cli(f"run_dir={run_dir}", f"input={path}", "max_slowdown=1.5")
    assert proc.returncode == 0, proc.stderr
    out = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [o["row"] for o in out] == list(range(7))
    assert all(o["status"] in ("verified", "unverified_region") and o["decision"] in ("migrate", "stay", "defer")
               for o in out)  # fmt: skip


def test_stdin_survives_malformed_lines_and_loses_none(certified_run):
    run_dir, norm = certified_run
    good = [json.dumps(r) for r in rows(norm, 3).to_dict(orient="records")]
    lines = [good[0], "{not json", good[1], "[1, 2]", json.dumps({"cpu_usage_cores": "x"}), good[2]]
    proc = predict_cli(f"run_dir={run_dir}", "input=-", stdin="\n".join(lines) + "\n")
    assert proc.returncode == 0, proc.stderr
    out = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [o["line"] for o in out] == [1, 2, 3, 4, 5, 6]
    assert "error" in out[1] and "error" in out[3] and out[4]["status"] == "invalid"
    assert all("prediction" in out[i] for i in (0, 2, 4, 5))
    assert "2 malformed line(s)" in proc.stderr


def test_json_values_that_are_not_numbers_are_invalid(certified_run):
    """JSON true is not 1 (in the certified region here): it, and every non-number, is invalid."""
    run_dir, norm = certified_run
    row = dict(zip(FEATS, inside_rows(norm, n=1)[0].tolist()))
    values = [1, 1.0, True, False, "1", None, [1], {"v": 1}]
    lines = [json.dumps(row | {"cg_psi_cpu_some_pct": v}) for v in values]
    proc = predict_cli(f"run_dir={run_dir}", "input=-", stdin="\n".join(lines) + "\n")
    assert proc.returncode == 0, proc.stderr
    statuses = [json.loads(line)["status"] for line in proc.stdout.splitlines()]
    assert statuses == ["verified", "verified"] + ["invalid"] * 6


def test_the_serving_spec_set_is_what_must_be_proven(certified_run, tmp_path):
    """spec=... names the deployment's requirement: its certificate serves, another set's does not."""
    run_dir, norm = certified_run
    stdin = json.dumps(dict(zip(FEATS, inside_rows(norm, n=1)[0].tolist()))) + "\n"
    path = tmp_path / "served.yaml"
    path.write_text(yaml.safe_dump(SERVED_SPEC))
    for spec, status in ((str(path), "verified"), ("psi_monotone", "unverified_region")):
        proc = predict_cli(f"run_dir={run_dir}", "input=-", f"spec={spec}", stdin=stdin)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["status"] == status, spec
    proc = predict_cli(f"run_dir={run_dir}", "input=-", "spec=no_such_set", stdin=stdin)
    assert proc.returncode == 2 and "spec set 'no_such_set': no file" in proc.stderr.strip().splitlines()[-1]


def test_missing_run_directory_is_one_line(tmp_path):
    proc = predict_cli(f"run_dir={tmp_path / 'none'}", "input=-", stdin="")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("vpals-predict: error: no checkpoint in run directory")


@pytest.mark.skipif(not os.path.exists("/proc/pressure/cpu"), reason="this kernel exposes no PSI (/proc/pressure)")
def test_watch_reads_live_metrics(certified_run):
    run_dir, _ = certified_run
    proc = predict_cli("--watch", f"run_dir={run_dir}", "interval=0.3", "count=2", "slo_ms=1000")
    assert proc.returncode == 0, proc.stderr
    out = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(out) == 2 and all(o["status"] in ("verified", "unverified_region", "out_of_distribution")
                                 for o in out)  # fmt: skip
