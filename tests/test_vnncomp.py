"""The VNN-COMP-style runner: verdicts on exported instances, full times, the compilation cache, bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from experiments.vnncomp.__main__ import main
from experiments.vnncomp.job import run_instance
from verifiers import Counterexample, Monotonicity, Status, Verdict
from verifiers.io import export_vnnlib, run_onnx, write_instances_csv
from verifiers.io.counterexample import Witness, check_witness, read_witness
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
    # one VNN-COMP counterexample file, for the sat instance only
    assert [p.name for p in (out / "counterexamples_crown").iterdir()] == ["planted_planted.counterexample"]
    assert df.counterexample.iloc[0].endswith("planted_planted.counterexample") and df.cex_check.iloc[0] == "passed"
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


def _planted_pair(d: Path):
    """A planted violation as a 1.0 two-copy instance and as a 2.0 two-network query, and a
    monotone (VERIFIED) instance; timeouts generous (compilation counts)."""
    d.mkdir(parents=True, exist_ok=True)
    p = planted_violation(4, (8, 8), feature=1, seed=0)
    m = monotone_net(4, (8, 8), increasing=(0,), seed=0)
    rows = [export_vnnlib(p.net, p.spec, d / "p1.onnx", d / "p1.vnnlib", version="1.0") + (60,),
            export_vnnlib(p.net, p.spec, d / "p2.onnx", d / "p2.vnnlib", version="2.0") + (60,),
            export_vnnlib(m, Monotonicity(0, "increasing", unit_box(4), tolerance=1e-3), d / "mono.onnx",
                          d / "mono.vnnlib", version="2.0") + (60,)]  # fmt: skip
    return p, write_instances_csv(rows, d / "instances.csv")


def test_sat_writes_a_counterexample_that_violates_the_property_on_the_network(tmp_path, monkeypatch):
    monkeypatch.setattr("experiments.vnncomp.job._started", True)
    p, csv = _planted_pair(tmp_path / "bench")
    cex = tmp_path / "cex"
    rows = [run_instance(csv, k, VerifierConfig(name="crown"), 120.0, tmp_path / "cache", cex) for k in range(3)]
    assert [r["result"] for r in rows] == ["sat", "sat", "unsat"], [r["message"] for r in rows]
    assert sorted(f.name for f in cex.iterdir()) == ["p1_p1.counterexample", "p2_p2.counterexample"]
    assert rows[2]["counterexample"] == "" and all(r["cex_check"] == "passed" for r in rows[:2])
    n, i, t = 4, p.spec.feature, p.spec.tolerance
    # 1.0, two-copy network: X = [x, d], Y_0 = f(x') - f(x); fed to onnxruntime it breaks Y_0 > -t
    text = (cex / "p1_p1.counterexample").read_text()
    assert text.startswith("sat\n((X_0 ") and text.rstrip().endswith(")")
    w = read_witness(cex / "p1_p1.counterexample")
    X, Y = w.values["X"], w.values["Y"]
    assert X.size == n + 1 and Y.size == 1 and X[n] > 0
    assert run_onnx(tmp_path / "bench" / "p1.onnx", X[None])[0, 0] == pytest.approx(Y[0], abs=1e-4) and Y[0] < -t
    xp = X[:n].copy()
    xp[i] += X[n]
    assert p.spec.violation(p.net, Counterexample(x=list(X[:n]), x_prime=list(xp))) > 0
    # 2.0, two networks: the pair (X, Xp), each copy's output written
    w = read_witness(cex / "p2_p2.counterexample")
    assert list(w.values) == ["X", "Y", "Xp", "Yp"]
    for x, y in (("X", "Y"), ("Xp", "Yp")):
        assert run_onnx(tmp_path / "bench" / "p2.onnx", w.values[x][None])[0, 0] == pytest.approx(
            w.values[y][0], abs=1e-4
        )
    assert p.spec.violation(p.net, Counterexample(x=list(w.values["X"]), x_prime=list(w.values["Xp"]))) > 0
    assert w.values["Yp"][0] - w.values["Y"][0] < -t


def test_a_witness_that_fails_the_recheck_is_not_reported_sat(tmp_path, monkeypatch):
    """A backend that claims FALSIFIED with a pair that is no violation (on the monotone net)."""
    monkeypatch.setattr("experiments.vnncomp.job._started", True)
    _, csv = _planted_pair(tmp_path / "bench")

    class Liar:
        def verify(self, net, spec, time_budget_s=None):
            x = [0.2] * 4
            return Verdict(Status.FALSIFIED, "liar", spec.to_dict(), counterexamples=[
                Counterexample(x=x, x_prime=[0.9, 0.2, 0.2, 0.2], margin=1.0)])  # fmt: skip

    monkeypatch.setattr("verifiers.get_verifier", lambda name, **kw: Liar())
    cex = tmp_path / "cex"
    cex.mkdir()
    stale = cex / "mono_mono.counterexample"
    stale.write_text("sat\n((X_0 0.0))\n")
    row = run_instance(csv, 2, VerifierConfig(name="crown"), 60.0, tmp_path / "cache", cex)
    assert row["result"] == "unknown" and row["cex_check"].startswith("failed: assertion")
    assert not stale.exists() and row["counterexample"] == ""


def test_check_witness_rejects_tampered_files(tmp_path, monkeypatch):
    monkeypatch.setattr("experiments.vnncomp.job._started", True)
    _, csv = _planted_pair(tmp_path / "bench")
    cex = tmp_path / "cex"
    run_instance(csv, 1, VerifierConfig(name="crown"), 120.0, tmp_path / "cache", cex)
    onnx, vnnlib = tmp_path / "bench" / "p2.onnx", tmp_path / "bench" / "p2.vnnlib"
    good = read_witness(cex / "p2_p2.counterexample")
    assert check_witness(onnx, vnnlib, good).ok
    shifted_y = Witness({**good.values, "Y": good.values["Y"] + 1e-3})  # output not the network's
    assert "differs" in check_witness(onnx, vnnlib, shifted_y).reason
    untied = dict(good.values)
    untied["Xp"] = untied["Xp"].copy()
    untied["Xp"][0] = np.nextafter(untied["X"][0], 2.0)  # breaks the tie X[0,0] == Xp[0,0]
    assert not check_witness(onnx, vnnlib, Witness(untied)).ok
    assert not check_witness(onnx, vnnlib, Witness({"X": good.values["X"], "Y": good.values["Y"]})).ok


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
