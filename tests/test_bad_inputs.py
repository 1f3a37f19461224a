"""The catalogue of bad inputs (issue 18): each one, given to an entry point the way a user gives it,
ends with exit code 2 and ONE line on stderr naming the file, column, key or value, with no
traceback and nothing overwritten; a bad line on vpals-predict's stdin is answered in place and the
lines after it still are.

A case is a row of ``CASES``: the command after ``python``, what to write first, stdin, the exit
code, a fragment of the last stderr line and fragments of stdout. ``{tmp}`` is the case's own
folder, ``{run}`` the shared tiny run (never modified: a case that damages a run copies it to
``{tmp}/run`` first). Every case is one subprocess of the venv's python, most under two seconds.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import make_table, write_monotone_run

from vpals_jax.data import schema

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ("-m", "vpals_jax.train", "hydra.run.dir={tmp}/out", "train.progress=false")
TABLE = (*TRAIN, "data=table", "data.path={tmp}/data.csv")
VERIFY = ("-m", "vpals_jax.verify")
# spec=: the deployment requires a spec set (the tiny run's config lists none, which is warned about)
PREDICT = ("-m", "vpals_jax.runtime", "spec=psi_monotone")
COLLECT = ("-m", "vpals_jax.collector", "out={tmp}/out", "hydra.run.dir={tmp}/hydra", "progress=false")
EVALUATE = ("-m", "vpals_jax.evaluate", "hydra.run.dir={tmp}/out", "run_dir={run}", "app=nginx")
ROW = json.dumps({f: 1.0 for f in schema.FEATURES})  # a well-formed line: answered, whatever came before
Setup = Callable[[Path, Path], None]  # (case folder, shared run)


@dataclass(frozen=True)
class Case:
    name: str
    argv: tuple[str, ...]
    code: int
    message: str  # expected in the last stderr line
    setup: Setup | None = None
    stdin: bytes = b""
    stdout: tuple[str, ...] = ()  # expected in stdout
    as_nobody: bool = False  # run without root's right to read any file
    env: dict[str, str] = field(default_factory=dict)  # added to the environment
    marks: tuple = field(default=())


def table(edit: Callable[[pd.DataFrame], None] = lambda df: None) -> Setup:
    """``{tmp}/data.csv``: the canonical test table after ``edit`` (which changes it in place)."""

    def write(tmp: Path, _: Path) -> None:
        df = make_table(n=60)
        edit(df)
        df.to_csv(tmp / "data.csv", index=False)

    return write


def cell(column: str, row: int, value: float) -> Setup:
    def edit(df: pd.DataFrame) -> None:
        df[column] = df[column].astype(np.float64)
        df.loc[row, column] = value

    return table(edit)


def raw(name: str, data: bytes, mode: int | None = None) -> Setup:
    def write(tmp: Path, _: Path) -> None:
        (tmp / name).write_bytes(data)
        if mode is not None:
            (tmp / name).chmod(mode)

    return write


def damaged_run(pattern: str, data: bytes) -> Setup:
    """``{tmp}/run``: a copy of the run whose checkpoint file matching ``pattern`` holds ``data``."""

    def write(tmp: Path, run: Path) -> None:
        shutil.copytree(run, tmp / "run")
        (target,) = (tmp / "run" / "checkpoint").glob(pattern)
        target.write_bytes(data)

    return write


def run_with_calibration(data: bytes) -> Setup:
    """``{tmp}/run``: a copy of the run with ``calibration.json`` holding ``data``."""

    def write(tmp: Path, run: Path) -> None:
        shutil.copytree(run, tmp / "run")
        (tmp / "run" / "calibration.json").write_bytes(data)

    return write


def duplicated_column(df: pd.DataFrame) -> None:
    df.insert(3, "cg_psi_cpu_some_pct", df["cg_psi_cpu_some_pct"], allow_duplicates=True)


def misspelt_header(tmp: Path, _: Path) -> None:
    make_table(n=5)[list(schema.FEATURES)].rename(columns={"cg_psi_cpu_some_pct": "cg_psi_cpu_som_pct"}).to_csv(
        tmp / "m.csv", index=False
    )


def nnet_with_nan(tmp: Path, _: Path) -> None:
    """Two inputs, three hidden neurons, one output; the first weight is NaN."""
    head = ["2,2,1,3,", "2,3,1,", "0,", "-1,-1,", "1,1,", "0,0,0,", "1,1,1,"]
    body = ["nan,1,", "1,1,", "1,1,", "0,", "0,", "0,", "1,1,1,", "0,"]
    (tmp / "nan.nnet").write_text("\n".join(head + body) + "\n")


CASES = [
    # -- training data (data=table data.path=...) ------------------------------------------------
    Case("train_empty_csv", TABLE, 2, "data.csv: the file is empty", raw("data.csv", b"")),
    Case("train_binary_csv", TABLE, 2, "data.csv: not a text CSV file", raw("data.csv", bytes(range(256)) * 8)),
    Case("train_psi_above_100", TABLE, 2, "column 'cg_psi_cpu_some_pct' has an impossible value 130.0 at row 3",
         cell("cg_psi_cpu_some_pct", 3, 130.0)),
    Case("train_psi_negative", TABLE, 2, "column 'sys_psi_io_full_pct' has an impossible value -5.0 at row 4",
         cell("sys_psi_io_full_pct", 4, -5.0)),
    Case("train_negative_latency", TABLE, 2, "column 'latency_p50_ms' has an impossible value -1.0 at row 2",
         cell("latency_p50_ms", 2, -1.0)),
    Case("train_negative_resource", TABLE, 2, "column 'cpu_quota_cores' has an impossible value -0.5 at row 6",
         cell("cpu_quota_cores", 6, -0.5)),
    Case("train_infinite_value", TABLE, 2, "column 'mem_usage_mb' has an impossible value inf at row 1 (not finite)",
         cell("mem_usage_mb", 1, np.inf)),
    Case("train_absurd_magnitude", TABLE, 2, "column 'latency_p50_ms' has an impossible value 1e+308 at row 0",
         cell("latency_p50_ms", 0, 1e308)),
    Case("train_duplicated_column", TABLE, 2, "column(s) 'cg_psi_cpu_some_pct' appear more than once in the header",
         table(duplicated_column)),
    Case("train_unreadable_csv", TABLE, 2, "data.csv: cannot read the file (Permission denied)",
         raw("data.csv", make_table(n=5).to_csv(index=False).encode(), mode=0o000), as_nobody=True),
    # -- tables from elsewhere (data.columns, data.units, data.test_path) -------------------------------
    Case("train_unknown_rename_column", (*TABLE, "+data.columns={{cpu_pcnt:cpu_usage_cores}}"), 2,
         "data.columns names column 'cpu_pcnt', which the file does not have", table()),
    Case("train_unit_scale_zero", (*TABLE, "+data.units={{cpu_usage_cores:0}}"), 2,
         "data.units.cpu_usage_cores must be a finite number > 0", table()),
    Case("train_unit_scale_not_a_number", (*TABLE, "+data.units={{cpu_usage_cores:abc}}"), 2,
         "could not be converted to Float (key data.units.cpu_usage_cores)", table()),
    Case("train_unit_on_unknown_column", (*TABLE, "+data.units={{cpu_pct:0.01}}"), 2,
         "data.units names column 'cpu_pct', which the table does not have", table()),
    Case("train_missing_test_path", (*TABLE, "data.test_path={tmp}/day2.csv"), 2,
         "data file not found: {tmp}/day2.csv", table()),
    # -- configuration ------------------------------------------------------------------------------
    Case("train_misspelt_key", (*TRAIN, "data.pth=x"), 2, "Could not override 'data.pth'"),
    Case("train_misspelt_group", (*TRAIN, "dta=table"), 2, "Could not override 'dta'"),
    Case("train_misspelt_group_option", (*TRAIN, "data=tabel"), 2, "Could not find 'data/tabel'"),
    Case("train_wrong_type", (*TRAIN, "optim.lr=fast"), 2, "optim.lr"),
    # a missing data file would end the run too: refused at config validation first, the
    # learning rate is what the line names
    *[Case(f"train_lr_{name}", (*TABLE, f"optim.lr={lr}"), 2, "optim.lr")
      for name, lr in (("zero", "0"), ("negative", "-1e-3"))],
    Case("verify_without_run_dir", VERIFY, 2, "Missing mandatory value: run_dir"),
    Case("verify_misspelt_key", (*VERIFY, "run_dir={run}", "verifer.name=crown"), 2, "Could not override 'verifer.name'"),
    Case("verify_misspelt_group_option", (*VERIFY, "run_dir={run}", "spec=psi_monotne"), 2,
         "Could not find 'spec/psi_monotne'"),
    Case("predict_misspelt_key", (*PREDICT, "run_dir={run}", "input=-", "colour=red"), 2, "got 'colour=red'"),
    Case("collect_misspelt_key", (*COLLECT, "pointz=3"), 2, "Could not override 'pointz'"),
    # -- damaged checkpoints --------------------------------------------------------------------------
    Case("verify_corrupt_normalizer", (*VERIFY, "run_dir={tmp}/run"), 2, "SHA-256 mismatch",
         damaged_run("normalizer-*.json", b'{"feature_names": 1}')),
    Case("verify_corrupt_meta", (*VERIFY, "run_dir={tmp}/run"), 2, "meta.json: corrupt checkpoint record",
         damaged_run("meta.json", b"{\x00")),
    Case("predict_corrupt_normalizer", (*PREDICT, "run_dir={tmp}/run", "input=-"), 2, "SHA-256 mismatch",
         damaged_run("normalizer-*.json", b"\xff\xfe binary")),
    Case("predict_corrupt_meta", (*PREDICT, "run_dir={tmp}/run", "input=-"), 2, "meta.json: corrupt checkpoint record",
         damaged_run("meta.json", b"")),
    # -- vpals-predict ------------------------------------------------------------------------------
    Case("predict_ood_margin_not_a_number", (*PREDICT, "run_dir={run}", "input=-", "ood_margin=abc"), 2,
         "ood_margin must be a number >= 0, got 'abc'"),
    Case("predict_batch_zero", (*PREDICT, "run_dir={run}", "input=-", "batch=0"), 2,
         "batch must be an integer >= 1, got '0'"),
    Case("predict_deep_nesting_on_stdin", (*PREDICT, "run_dir={run}", "input=-"), 0, "1 malformed line(s) reported",
         stdin=b"[" * 2048 + b"\n" + ROW.encode() + b"\n",
         stdout=('{"row": 1, "error": "malformed line', '{"row": 2, "prediction"')),
    # strict UTF-8 decoding of stdin, as under a UTF-8 locale (C.UTF-8 would escape the bytes)
    Case("predict_binary_on_stdin", (*PREDICT, "run_dir={run}", "input=-"), 0, "1 malformed line(s) reported",
         stdin=bytes(range(14, 256)) + b"\n" + ROW.encode() + b"\n", env={"PYTHONIOENCODING": "utf-8"},
         stdout=('{"row": 1, "error": "malformed line', '{"row": 2, "prediction"')),
    Case("predict_coverage_above_one", (*PREDICT, "run_dir={run}", "input=-", "coverage=1.5"), 2,
         "coverage must be in (0, 1), got 1.5"),
    Case("predict_drift_threshold_one", (*PREDICT, "run_dir={run}", "input=-", "drift_threshold=1"), 2,
         "drift_threshold must be a number > 1, got '1'"),
    Case("predict_unknown_format", (*PREDICT, "run_dir={run}", "input=-", "format=xml"), 2,
         "format must be jsonl, or csv with input=FILE; got format='xml'"),
    Case("predict_corrupt_calibration", (*PREDICT, "run_dir={tmp}/run", "input=-"), 2,
         "calibration.json: unusable calibration", run_with_calibration(b'{"format": 1, "method": "split"}')),
    Case("predict_binary_calibration", (*PREDICT, "run_dir={tmp}/run", "input=-"), 2,
         "calibration.json: unusable calibration", run_with_calibration(bytes(range(256)))),
    Case("train_calibration_fraction_one", (*TABLE, "data.calibration_fraction=1.0"), 2,
         "data.calibration_fraction must be in [0, 1), got 1.0", table()),
    Case("train_unknown_calibration_method", (*TABLE, "calibration.method=quantile"), 2,
         "calibration.method must be split, normalized or mondrian, got 'quantile'", table()),
    Case("predict_misspelt_header", (*PREDICT, "run_dir={run}", "input={tmp}/m.csv"), 2,
         "m.csv: missing column 'cg_psi_cpu_some_pct' (did you mean 'cg_psi_cpu_som_pct'?)", misspelt_header),
    # -- vpals_jax.evaluate --------------------------------------------------------------------------
    Case("evaluate_missing_input", (*EVALUATE, "input={tmp}/held.csv"), 2, "data file not found: {tmp}/held.csv"),
    Case("evaluate_misspelt_header", (*EVALUATE, "input={tmp}/m.csv"), 2,
         "m.csv: missing columns 'cg_psi_cpu_some_pct' (did you mean 'cg_psi_cpu_som_pct'?)", misspelt_header),
    Case("evaluate_impossible_value", (*EVALUATE, "input={tmp}/data.csv"), 2,
         "column 'cg_psi_cpu_some_pct' has an impossible value 130.0 at row 3", cell("cg_psi_cpu_some_pct", 3, 130.0)),
    Case("evaluate_tolerance_zero", (*EVALUATE, "input={tmp}/data.csv", "tolerance=0"), 2,
         "tolerance must be a finite number > 0, got 0.0", table()),
    # -- vpals_jax.collector (refused before any cgroup, tool or service is looked for) ----------------
    Case("collect_negative_points", (*COLLECT, "points=-1"), 2, "points must be an integer >= 1, got -1"),
    Case("collect_missing_cgroup_root", (*COLLECT, "cgroup_root={tmp}/nowhere"), 2,
         "cgroup_root={tmp}/nowhere: no such directory"),
    # ... and refused before anything is started (a plan of another sweep: tests/collect/test_collect_cli.py)
    Case("collect_no_cgroup_hierarchy", (*COLLECT, "cgroup_root={tmp}"), 2, "no cgroup hierarchy under {tmp}"),
    Case("collect_missing_tools", (*COLLECT, "cgroup_root={tmp}"), 2,
         "missing tools ['redis-server', 'redis-benchmark', 'stress-ng']",
         raw("cgroup.controllers", b"cpu memory io\n"), env={"PATH": "/nonexistent"}),
    # -- NNet files, read by the verifier benchmark (--nnet) --------------------------------------------
    *[Case(f"nnet_{kind}", ("-m", "experiments.bench_verifiers", "--no-trained", "--out={tmp}/out",
                            f"--nnet={{tmp}}/{kind}.nnet"), 2, f"{kind}.nnet", setup)
      for kind, setup in (("nan", nnet_with_nan), ("binary", raw("binary.nnet", bytes(range(256)) * 8)))],
]  # fmt: skip


@dataclass(frozen=True)
class Outcome:
    code: int
    stdout: str
    stderr: str
    message: str  # the case's message with {tmp} and {run} filled in
    changed: list[str]  # the case's input files that the command changed


def digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


@functools.cache
def nobody() -> list[str] | None:
    """A prefix that takes root's right to read every file away (an ordinary user needs none);
    None as root without setpriv, or when ``nobody`` cannot reach this checkout and its venv (a
    clone inside a private directory, say): then no case can run as ``nobody`` at all."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    prefix = [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    probe = subprocess.run([*prefix, sys.executable, "-c", "import vpals_jax"], cwd="/", capture_output=True, check=False)
    return prefix if probe.returncode == 0 else None


def run_case(case: Case, run: Path, prefix: list[str]) -> Outcome:
    """Write the case's inputs into a fresh folder (one ``nobody`` may use), run it, compare the inputs."""
    folder = Path(tempfile.mkdtemp(prefix="vpals-bad-"))
    try:
        folder.chmod(0o777)
        if case.setup is not None:
            case.setup(folder, run)
        fill = lambda s: s.format(tmp=folder, run=run)
        before = digests(folder)
        env = {**os.environ, **case.env, **({"HOME": str(folder)} if prefix else {})}  # nobody has no home
        proc = subprocess.run([*prefix, sys.executable, *map(fill, case.argv)], cwd=ROOT, input=case.stdin,
                              capture_output=True, timeout=120, env=env, check=False)  # fmt: skip
        after = digests(folder)
        return Outcome(proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace"),
                       fill(case.message), [k for k, v in before.items() if after.get(k) != v])  # fmt: skip
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def outcomes(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """The selected cases, run two at a time up front (each is mostly interpreter start-up and
    imports), on one tiny run: a monotone MLP written directly, no training."""
    run, _ = write_monotone_run(tmp_path_factory.mktemp("bad_inputs") / "run")
    selected = {item.callspec.params["case"].name for item in request.session.items
                if item.module is request.module and hasattr(item, "callspec")}  # fmt: skip
    prefixes = {c.name: nobody() if c.as_nobody else [] for c in CASES if c.name in selected}
    cases = [c for c in CASES if prefixes.get(c.name) is not None]
    before = digests(run)
    with ThreadPoolExecutor(max_workers=2) as pool:
        done = pool.map(lambda c: run_case(c, run, prefixes[c.name]), cases)
        results = dict(zip((c.name for c in cases), done))
    assert digests(run) == before, "a case changed the shared run"
    return results


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name, marks=c.marks) for c in CASES])
def test_bad_input(case: Case, outcomes: dict[str, Outcome]) -> None:
    if case.as_nobody and nobody() is None:
        pytest.skip("running as root without setpriv, or nobody cannot reach this checkout: no file can be made "
                    "unreadable to the command")
    out = outcomes[case.name]
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.code == case.code, out.stderr[-3000:]
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    assert lines and out.message in lines[-1], out.stderr[-3000:]
    if case.code == 2:
        assert len(lines) == 1 and lines[0].startswith("vpals-"), out.stderr[-3000:]
    for fragment in case.stdout:
        assert fragment in out.stdout, out.stdout[-3000:]
    assert not out.changed, f"input files changed: {out.changed}"
