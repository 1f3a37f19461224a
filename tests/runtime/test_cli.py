"""vpals-predict: files, streamed JSON lines (malformed ones reported, none lost), live watch."""

from __future__ import annotations

import io
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
    return subprocess.run([sys.executable, "-m", "vpals_jax.runtime", *args], cwd=ROOT, input=stdin, check=False,
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
    assert [o["row"] for o in out] == [1, 2, 3, 4, 5, 6]
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
    proc = predict_cli("--watch", f"run_dir={run_dir}", "interval=0.3", "count=2", "slo=1000")
    assert proc.returncode == 0, proc.stderr
    out = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(out) == 2 and all(o["status"] in ("verified", "unverified_region", "out_of_distribution")
                                 for o in out)  # fmt: skip


def test_intervals_csv_output_and_the_drift_alarm_on_a_calibrated_run(calibrated_run, tmp_path):
    """JSON lines and CSV carry lower/upper; rows with the observed target feed the alarm, which
    stays quiet on calibration-like targets and fires (deferring decisions) once they triple."""
    run_dir, norm = calibrated_run
    from vpals_jax.runtime.predictor import SafePredictor

    x = inside_rows(norm, n=600, seed=4)
    frame = pd.DataFrame(x, columns=FEATS)
    point = SafePredictor.load(run_dir).predict(x).latency
    noise = np.exp(0.05 * np.random.default_rng(1).standard_normal(len(x)))
    frame["latency_p50_ms"] = point * noise * np.where(np.arange(len(x)) < 300, 1.0, 3.0)
    path = tmp_path / "m.csv"
    frame.to_csv(path, index=False)
    proc = predict_cli(f"run_dir={run_dir}", f"input={path}", "slo=1e9", "batch=100")
    assert proc.returncode == 0, proc.stderr
    out = [json.loads(line) for line in proc.stdout.splitlines()]
    assert all(o["lower"] < o["prediction"] < o["upper"] for o in out)
    alarmed = [o["row"] for o in out if o["drift"] == "alarm"]
    assert alarmed and 300 <= alarmed[0] < 400 and alarmed == list(range(alarmed[0], 600))
    assert all(o["decision"] == "defer" and o["reason"].startswith("drift alarm") for o in out[alarmed[0]:])
    assert all(o["decision"] == "stay" for o in out[:300])
    csv = predict_cli(f"run_dir={run_dir}", f"input={path}", "format=csv", "batch=250")
    assert csv.returncode == 0, csv.stderr
    table = pd.read_csv(io.StringIO(csv.stdout))
    assert list(table.row) == list(range(600)) and {"lower", "upper", "drift"} <= set(table.columns)
    np.testing.assert_allclose(table.upper, [o["upper"] for o in out])


def test_a_run_without_calibration_says_so_once(certified_run):
    run_dir, norm = certified_run
    stdin = json.dumps(dict(zip(FEATS, inside_rows(norm, n=1)[0].tolist()))) + "\n"
    proc = predict_cli(f"run_dir={run_dir}", "input=-", stdin=stdin)
    assert proc.returncode == 0 and "has no calibration: no intervals and no drift alarm" in proc.stderr
    rec = json.loads(proc.stdout)
    assert rec["lower"] is None and rec["upper"] is None and "drift" not in rec
