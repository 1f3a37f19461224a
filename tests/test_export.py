"""vpals-export: a run directory in, ONNX / NNet / VNN-LIB files out that compute, in the data's
units, exactly what the run serves; bad input is one line and writes nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import make_table, write_monotone_run

from verifiers.io import read_nnet, run_onnx
from vpals_jax.certificate import function_fingerprint
from vpals_jax.convert import load_network
from vpals_jax.data import schema

ROOT = Path(__file__).resolve().parents[1]


def export_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vpals_jax.export", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, check=False)  # fmt: skip


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    run_dir, _ = write_monotone_run(tmp_path_factory.mktemp("export") / "run")
    return run_dir, export_cli(f"run_dir={run_dir}")


def served_ms(run_dir: Path, raw: np.ndarray) -> np.ndarray:
    """What the run predicts for raw rows: the normalised network between the normaliser's maps."""
    net, norm, _ = load_network(str(run_dir))
    return norm.inverse_y(net.forward(norm.transform_x(raw))[:, 0])


def test_onnx_and_nnet_compute_the_served_function_in_raw_units(exported):
    run_dir, proc = exported
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = run_dir / "export"
    raw = make_table(n=20, seed=3)[list(schema.FEATURES)].to_numpy()
    want = served_ms(run_dir, raw)
    np.testing.assert_allclose(run_onnx(out / "model.onnx", raw)[:, 0], want, rtol=1e-4)  # float32 graph
    nnet = read_nnet(out / "model.nnet")
    np.testing.assert_allclose(nnet.network.forward(raw)[:, 0], want, rtol=1e-9)
    _, norm, _ = load_network(str(run_dir))
    np.testing.assert_allclose(nnet.domain.lower, norm.x_min)
    np.testing.assert_allclose(nnet.domain.upper, norm.x_max)


def test_every_spec_becomes_a_vnnlib_instance_in_raw_units_and_a_manifest_names_the_inputs(exported):
    run_dir, proc = exported
    out = run_dir / "export"
    manifest = json.loads((out / "manifest.json").read_text())
    net, norm, _ = load_network(str(run_dir))
    assert manifest["inputs"] == list(schema.FEATURES) and manifest["output"] == "latency_p50_ms"
    assert manifest["function_sha256"] == function_fingerprint(net, norm) and manifest["raw_units"] is True
    properties = sorted((out / "vnnlib").glob("*.vnnlib"))
    assert len(properties) == 15 and len(list((out / "vnnlib").glob("*.onnx"))) == 15
    assert sorted(manifest["files"]) == sorted(
        str(p.relative_to(out)) for p in out.rglob("*.*") if p.name != "manifest.json"
    )
    text = (out / "vnnlib" / "13_mem_limit_mb_decreasing.vnnlib").read_text()
    i = schema.FEATURES.index("mem_limit_mb")
    assert f"(assert (<= X_{i} {float(norm.x_max[i])!r}))" in text  # MiB, not [0, 1]
    assert "; units: raw: inputs sys_psi_cpu_some_pct [%]" in text
    assert proc.stdout.strip().splitlines()[-1] == f"33 files (raw units) in {out}"


def test_normalised_export_and_format_selection(tmp_path):
    run_dir, norm = write_monotone_run(tmp_path / "run")
    proc = export_cli(f"run_dir={run_dir}", f"out_dir={tmp_path / 'n'}", "raw_units=false", "formats=[onnx]")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "n").iterdir()) == ["manifest.json", "model.onnx"]
    xn = norm.transform_x(make_table(n=5, seed=4)[list(schema.FEATURES)].to_numpy())
    net, _, _ = load_network(str(run_dir))
    np.testing.assert_allclose(run_onnx(tmp_path / "n" / "model.onnx", xn)[:, 0], net.forward(xn)[:, 0], rtol=1e-4)


@pytest.mark.parametrize(
    "args, message",
    [(["formats=[pdf]"], "formats: 'pdf' is not one of"),
     (["formats=[]"], "formats: '[]' is not one of"),
     (["spec=linnos"], "unknown feature 'queue_len_h0'"),
     (["raw_units=maybe"], "raw_units")],
)  # fmt: skip
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, args, message):
    run_dir, _ = write_monotone_run(tmp_path / "run")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    proc = export_cli(f"run_dir={run_dir}", *args)
    assert proc.returncode == 2 and proc.stdout == ""
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("vpals-export: error: ") and message in line
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_missing_run_and_an_earlier_export_are_refused(tmp_path):
    proc = export_cli(f"run_dir={tmp_path / 'nothing'}")
    assert proc.returncode == 2 and "no checkpoint" in proc.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "nothing").exists()
    run_dir, _ = write_monotone_run(tmp_path / "run")
    (run_dir / "export").mkdir()
    (run_dir / "export" / "mine.txt").write_text("keep")
    proc = export_cli(f"run_dir={run_dir}", "formats=[nnet]")
    assert proc.returncode == 2 and "overwrite=true" in proc.stderr
    assert [p.name for p in (run_dir / "export").iterdir()] == ["mine.txt"]
    proc = export_cli(f"run_dir={run_dir}", "formats=[nnet]", "overwrite=true")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (run_dir / "export").iterdir()) == ["manifest.json", "model.nnet"]
    assert [p.name for p in run_dir.iterdir() if p.name.startswith(".")] == []  # no temporary folder left


def test_help_lists_the_options():
    proc = export_cli("--help")
    assert proc.returncode == 0 and proc.stdout.startswith("vpals-export")
    for text in ("run_dir=", "out_dir=", "formats=", "raw_units=", "overwrite=", "spec: ", "psi_monotone"):
        assert text in proc.stdout, text
