"""The VNN-COMP-style runner: verdicts on exported instances, full times, the compilation cache, bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from experiments.vnncomp.__main__ import main
from experiments.vnncomp.job import run_instance
from verifiers import Monotonicity
from verifiers.io import export_vnnlib, write_instances_csv
from verifiers.testing.instances import monotone_net, planted_violation, unit_box
from vpals_jax.config import VerifierConfig

pytest.importorskip("onnxruntime")
ROOT = Path(__file__).resolve().parents[1]


def _suite(d: Path) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    p = planted_violation(4, (8, 8), feature=1, seed=0)
    m = monotone_net(4, (8, 8), increasing=(0,), seed=0)
    rows = [export_vnnlib(p.net, p.spec, d / "planted.onnx", d / "planted.vnnlib", version="2.0") + (30,),
            export_vnnlib(m, Monotonicity(0, "increasing", unit_box(4), tolerance=1e-3), d / "mono.onnx",
                          d / "mono.vnnlib", version="1.0") + (30,)]  # fmt: skip
    return write_instances_csv(rows, d / "instances.csv")


def test_runner_writes_results_with_full_times_and_fills_the_compilation_cache(tmp_path):
    csv = _suite(tmp_path / "bench")
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "experiments.vnncomp", str(csv), "--timeout", "60", "--verifier",
                        "crown", "--out", str(out)], check=False, cwd=ROOT, capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    df = pd.read_csv(out / "results_crown.csv")
    assert list(df.result) == ["sat", "unsat"]  # planted violation; monotone by construction
    assert df.startup_s.iloc[0] > 0 and (df.time_s >= df.run_s + df.prepare_s).all()
    assert any((out / "jax_cache").iterdir()), "the persistent compilation cache stayed empty"


def test_milp_decides_the_same_instances_in_process(tmp_path, monkeypatch):
    csv = _suite(tmp_path / "bench")
    # start-up counts from the module's import, which in a test session is collection time: this
    # test checks verdicts, not times, so the process counts as started
    monkeypatch.setattr("experiments.vnncomp.job._started", True)
    rows = [run_instance(csv, k, VerifierConfig(name="milp"), 120.0, tmp_path / "cache") for k in (0, 1)]
    assert [r["result"] for r in rows] == ["sat", "unsat"]
    assert rows[0]["worst_margin"] > 0


def test_bad_inputs_exit_2_naming_them_and_write_nothing(tmp_path, capsys):
    csv = _suite(tmp_path / "bench")
    out = tmp_path / "out"
    cases = [
        (tmp_path / "missing.csv", "missing.csv"),
        (_write(tmp_path / "a.csv", "planted.onnx,planted.vnnlib\n"), "expected onnx,vnnlib,timeout"),
        (_write(tmp_path / "bench" / "b.csv", "nothere.onnx,planted.vnnlib,10\n"), "nothere.onnx"),
        (_write(tmp_path / "bench" / "c.csv", "planted.onnx,planted.vnnlib,abc\n"), "'abc'"),
        (_write(tmp_path / "bench" / "d.csv", "mono.onnx,planted.vnnlib,10\n"), "mono.onnx"),  # wrong network
    ]
    for path, named in cases:
        assert main([str(path), "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and named in err, err
    assert main([str(csv), "--out", str(out), "--verifier", "nope"]) == 2
    assert "nope" in capsys.readouterr().err
    assert not out.exists()


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
