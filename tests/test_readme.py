"""Every command of README.md's ``bash`` blocks runs as written, so the README cannot drift again.

Each command runs in a fresh workspace (a temporary folder where ``.venv`` links to this
checkout's environment), in README order, through bash. Only quick settings are appended
(``QUICK``: fewer epochs, trials, rows), placeholders a reader fills in are filled in
(``<time>`` becomes the newest such run of the workspace, trained on demand), and only the
commands listed in ``SKIP`` are left out, each with its reason. A command that is new to the
README runs unchanged. Commands marked ``SLOW`` (paper sweeps, certified training, benchmarks,
LinnOS, joblib) take from 15 s to minutes each (``-m slow``); the rest take about three minutes
together on two busy cores.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from helpers import make_table
from test_workflow import NOISE

ROOT = Path(__file__).resolve().parents[1]

# substring of the command -> why it is not run here
SKIP = {
    "make test": "runs this test suite itself; CI runs it",
    "make run": (
        "(re)creates .venv (network) when pyproject.toml is newer; it runs `python -m vpals_jax.train`, "
        "the Training block's first command"
    ),
    "vpals_jax.collector app=": "needs root, cgroups and the real redis/stress-ng (make test-collect)",
    "--watch": "reads a live cgroup's PSI until interrupted",
}
# substring -> quick settings appended (first match wins)
QUICK = [
    ("-sc install=bash", "&& complete -p vpals-train"),  # eval of nothing would pass: check it installed
    ("hparams_search=width_lr", "hydra.sweeper.n_trials=2 debug=fast train.epochs=1"),
    (
        "experiment=paper_",
        "train.seed=0 debug=fast train.epochs=1 train.loop_epochs=2 train.max_wall_s=60 verifier.time_budget_s=5",
    ),
    ("train.loop=certified", "debug=fast train.epochs=1 train.loop_epochs=2 verifier.time_budget_s=5"),
    ("experiment=certified", ("train.seed=0 train.loop=normal,certified debug=fast train.epochs=1 train.min_epochs=1 "
                              "train.loop_epochs=1 verifier.time_budget_s=2")),
    ("experiment=monotone_baselines", ("+experiment/monotone_baselines/dataset=auto_mpg train.seed=0 train.epochs=2 train.loop_epochs=2 "
                                       "verifier.time_budget_s=5")),
    ("experiments.monotone_baselines_select", "--folds 1 --widths 8 --lrs 1e-2 --seeds 0"),
    ("experiments.paper_protocol", "--datasets heart --models cmnn --widths 8 --lrs 1e-2 --seeds 0 1 --keep 1"),
    ("experiments.conformal", "--apps nginx --real none --n-samples 2000 --epochs 2 --stream 500 --lead 200"),
    ("vpals_jax.train", "debug=fast train.epochs=1"),
    ("experiments.bench_verifiers", "--quick --time-limit 1"),
    ("vpals-bench", "quick=true time_limit=1"),
    ("experiments.bench_train", "--n 2000 --epochs 1"),
    ("experiments.bench_ouroboros", "--boxes 2000 --ref-boxes 200"),
    ("experiments.bench_runtime", "--batch 500 --repeats 2 --single 50"),
    ("vpals_jax.data.correlation", "--n 500"),
]
# substring -> marked slow (15 s to several minutes each, even with QUICK)
SLOW = ("experiment=paper_", "experiment=certified", "experiment=monotone_baselines", "experiments.conformal",
        "experiments.monotone_baselines_select", "experiments.paper_protocol",
        "experiments.certified", "experiments.bench_", "vpals-bench", "train.loop=certified",
        "experiment=linnos", "runs/linnos/", "hydra/launcher=joblib")  # fmt: skip


def readme_commands() -> list[str]:
    """Every command line of the README's ``bash`` blocks, trailing comments removed; a ``source``
    line sets up the lines after it in its block (``source .venv/bin/activate && ...``)."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL):
        setup = ""
        for line in block.splitlines():
            line = re.sub(r"(^|\s+)#\s.*$", "", line).strip()
            if line.startswith("source "):
                setup += f"{line} && "
            elif line:
                commands.append(setup + line)
    return commands


def params() -> list:
    out = []
    for k, command in enumerate(readme_commands()):
        skip = next((why for key, why in SKIP.items() if key in command), None)
        marks = [pytest.mark.skip(reason=skip)] if skip else []
        marks += [pytest.mark.slow] if any(key in command for key in SLOW) else []
        out.append(pytest.param(command, id=f"{k:02d} {command[:70]}", marks=marks))
    return out


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A folder like a fresh clone's root: the environment, and the input files the README names."""
    ws = tmp_path_factory.mktemp("readme")
    (ws / ".venv").symlink_to(ROOT / ".venv")
    (ws / "data").symlink_to(ROOT / "data")
    make_table(n=1000, app="redis").to_parquet(ws / "my_measurements.parquet")
    for day in (1, 2, 3):  # conf/data/table_mapped.yaml's layout: another tool's names and units
        mapped(make_table(n=600, seed=day, app="redis")).to_csv(ws / f"day{day}.csv", index=False)
    rows = make_table(n=20, seed=1).drop(columns=["latency_p50_ms", "latency_p99_ms", "throughput_rps"])
    for name in ("rows.csv", "metrics.csv"):
        rows.to_csv(ws / name, index=False)
    rows.to_json(ws / "rows.jsonl", orient="records", lines=True)
    return ws


def mapped(table: pd.DataFrame) -> pd.DataFrame:
    """A canonical table as conf/data/table_mapped.yaml expects it: cg PSI as target_psi_*, CPU in
    % of one core, memory in bytes, p50_ms, no app or memory limit column."""
    out = table.drop(columns=["app", "mem_limit_mb"]).rename(columns=lambda c: c.replace("cg_psi_", "target_psi_"))
    out["cpu_usage_cores"] *= 100.0
    out["mem_usage_mb"] *= 2.0**20
    return out.rename(columns={"cpu_usage_cores": "cpu_pct", "mem_usage_mb": "mem_bytes", "latency_p50_ms": "p50_ms"})


def shell(command: str, ws: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HYDRA_FULL_ERROR", "VIRTUAL_ENV")}
    # as in a fresh shell: the environment's scripts are on PATH only once the README activates it
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if Path(p) != ROOT / ".venv" / "bin")
    return subprocess.run(["bash", "-o", "pipefail", "-c", command], cwd=ws, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)  # fmt: skip


def newest_run(ws: Path, pattern: str, train: str) -> Path:
    """The newest run directory matching ``pattern`` in the workspace, trained now if there is none."""
    runs = sorted(ws.glob(pattern + "/checkpoint"))
    if not runs:
        proc = shell(f".venv/bin/python -m vpals_jax.train {train} debug=fast train.epochs=1", ws)
        assert proc.returncode == 0, proc.stderr[-2000:]
        runs = sorted(ws.glob(pattern + "/checkpoint"))
    return runs[-1].parent


def filled_in(command: str, ws: Path) -> str:
    """The command as a reader would type it: placeholders filled in, optional ``[...]`` left out."""
    # a served paper run is a run like any other: the newest nginx run stands in for it
    command = command.replace("multirun/paper_linnos/<time>/<job>", "runs/nginx/<time>")
    for app in sorted(set(re.findall(r"runs/(\w+)/<time>", command))):
        train = "experiment=linnos" if app == "linnos" else f"data.app={app}"
        command = command.replace(f"runs/{app}/<time>", str(newest_run(ws, f"runs/{app}/*", train)))
    command = command.replace("slo=...", "slo=20")
    command = re.sub(r"\s\[[^\]]*\]", "", command)
    assert "<" not in command.replace("<=", ""), f"a placeholder this test does not know: {command}"
    return command


@pytest.mark.parametrize("command", params())
def test_readme_command_runs_as_written(command, workspace):
    line = filled_in(command, workspace)
    quick = next((extra for key, extra in QUICK if key in line), "")
    proc = shell(f"{line} {quick}", workspace)
    assert proc.returncode == 0, f"{line} {quick}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    out = proc.stdout + proc.stderr
    assert [s for s in NOISE if s in out] == [], out[-3000:]
    assert not re.search(r"\b\w+Warning: ", out), out[-3000:]  # a Python warning nobody can act on


def test_every_readme_command_is_run_or_skipped_with_a_reason():
    """The extraction itself: it finds the blocks, and every SKIP entry still names a README command."""
    commands = readme_commands()
    assert ".venv/bin/python -m vpals_jax.train debug=fast" in commands
    assert all(any(key in c for c in commands) for key in SKIP), "a SKIP entry no README command matches"
