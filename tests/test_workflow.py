"""The researcher's workflow (issue 16): the console scripts work from any directory, in an editable
and in a regular install; the README's Optuna search runs as written and reports its best trial;
runs print none of the libraries' noise; ``vpals-train --help`` describes the app."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
FAST = ["debug=fast", "train.epochs=1"]
# Lines every run used to print that a user can do nothing about.
NOISE = (
    "Unable to initialize backend",  # jax probing for a TPU
    "Running HiGHS",  # the HiGHS banner, on the C-level stdout
    "torch.jit.script",  # torch's DeprecationWarning about auto_LiRPA's code
    "validated against ConfigStore schema",  # Hydra: a launcher config named like the plugin's schema
    "setup plugin alembic",  # optuna's storage layer, at INFO
)


def env_outside_checkout() -> dict[str, str]:
    """The environment of a user: nothing points into the checkout."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HYDRA_FULL_ERROR")}
    env["PYTHONWARNINGS"] = "default::DeprecationWarning"  # what would show if it were not filtered
    return env


def run(cmd: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env_outside_checkout(), capture_output=True,
                          text=True, timeout=timeout, check=False)  # fmt: skip
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


def assert_quiet(proc: subprocess.CompletedProcess) -> None:
    out = proc.stdout + proc.stderr
    assert [s for s in NOISE if s in out] == [], out[-3000:]


def console_script(name: str) -> Path:
    path = BIN / name
    if not path.exists():
        pytest.skip(f"{name} is not installed in this environment (pip install -e .)")
    return path


# 1. Console scripts --------------------------------------------------------------------------


def test_console_scripts_run_from_any_directory(tmp_path):
    """vpals-train, vpals-verify and vpals-predict from a directory that is not the checkout."""
    proc = run([console_script("vpals-train"), *FAST, "hydra.run.dir=run"], cwd=tmp_path)
    assert "test accuracy" in proc.stdout and (tmp_path / "run" / "checkpoint").is_dir()
    proc = run([console_script("vpals-verify"), f"run_dir={tmp_path / 'run'}", "spec=psi_monotone"], cwd=tmp_path)
    assert "verdicts written to" in proc.stdout
    assert_quiet(proc)
    proc = run([console_script("vpals-predict"), "--help"], cwd=tmp_path)
    assert "run_dir" in proc.stdout


@pytest.mark.slow
def test_console_scripts_of_a_regular_install(tmp_path):
    """A wheel installed into a fresh environment ships the config tree: vpals-train finds it."""
    source = tmp_path / "source"  # a copy: building in the checkout would leave build/ there
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    junk = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in ("conf", "vpals_jax", "verifiers", "experiments"):
        shutil.copytree(ROOT / package, source / package, symlinks=True, ignore=junk)  # vpals_jax/conf stays a link
    wheels = tmp_path / "wheels"
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", wheels, source],
        cwd=tmp_path, timeout=600)  # fmt: skip
    (wheel,) = wheels.glob("vpals_jax-*.whl")
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp_path)
    py = venv / "bin" / "python"
    run([sys.executable, "-m", "pip", "--python", py, "install", "-q", "--no-deps", wheel], cwd=tmp_path, timeout=600)
    # The dependencies come from this environment; a path added by a .pth file does not run the .pth
    # files there, so this environment's editable install of the checkout stays out.
    site = Path(
        run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp_path).stdout.strip()
    )
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    where = run([py, "-c", "import vpals_jax; print(vpals_jax.__file__)"], cwd=tmp_path).stdout
    assert where.startswith(str(site)), where
    work = tmp_path / "work"
    work.mkdir()
    proc = run([venv / "bin" / "vpals-train", *FAST], cwd=work)
    assert "test accuracy" in proc.stdout and list(work.glob("runs/nginx/*/checkpoint"))
    assert "hparams_search: width_lr" in run([venv / "bin" / "vpals-train", "--help"], cwd=work).stdout


# 2. The README's Optuna search ---------------------------------------------------------------


def test_readme_hparams_search_runs_optuna_and_reports_the_best_trial(tmp_path):
    command = "python -m vpals_jax.train -m hparams_search=width_lr"
    assert command in (ROOT / "README.md").read_text()
    sweep = tmp_path / "sweep"
    cmd = [sys.executable, *command.split()[1:], "hydra.sweeper.n_trials=2", *FAST, f"hydra.sweep.dir={sweep}"]
    proc = run(cmd, cwd=tmp_path)
    results = OmegaConf.load(sweep / "optimization_results.yaml")
    assert set(results.best_params) == {"model.width", "optim.lr"}
    accuracy = {job.name: json.loads((job / "summary.json").read_text())["test"]["accuracy"]
                for job in sweep.iterdir() if (job / "summary.json").is_file()}  # fmt: skip
    assert len(accuracy) == 2  # two Optuna trials, each its own run directory
    assert results.best_value == pytest.approx(max(accuracy.values()))  # maximised: the best is the highest
    best_job = max(accuracy, key=accuracy.get)
    (line,) = [line for line in proc.stdout.splitlines() if line.startswith("best trial: ")]
    assert line.startswith("best trial: model.width=") and f"run dir {sweep / best_job}" in line
    assert str(sweep / "optimization_results.yaml") in line
    # the sweep's comparison (every multirun writes one) names the same trial as best
    (best,) = [line for line in (sweep / "comparison.md").read_text().splitlines() if line.startswith("best: ")]
    width, lr, acc = re.fullmatch(r"best: model.width=(\d+) optim.lr=(\S+): test accuracy (\S+)", best).groups()
    assert int(width) == results.best_params["model.width"] and float(acc) == round(results.best_value, 4)
    assert float(lr) == pytest.approx(results.best_params["optim.lr"])
    assert_quiet(proc)


# 3. No noise -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "launcher", [[], ["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=1"]], ids=["run", "joblib"]
)
def test_training_prints_no_library_noise(tmp_path, launcher):
    out = ["hydra.sweep.dir=sweep"] if launcher else ["hydra.run.dir=run"]
    proc = run([sys.executable, "-m", "vpals_jax.train", *launcher, *FAST, *out], cwd=tmp_path)
    assert "test accuracy" in proc.stdout
    assert_quiet(proc)


def test_launcher_settings_keep_their_names(tmp_path):
    """The project's launcher settings are selected by the plugins' names, without Hydra's warning."""
    proc = run(
        [sys.executable, "-m", "vpals_jax.train", "hydra/launcher=submitit_slurm", "--cfg", "hydra"], cwd=tmp_path
    )
    launcher = OmegaConf.create(proc.stdout).hydra.launcher
    assert launcher.max_num_timeout == 3 and launcher.cpus_per_task == 2  # requeued on preemption
    assert_quiet(proc)


def test_verifier_backends_print_no_library_noise(tmp_path):
    """The MILP backend (HiGHS) and the auto_LiRPA import, in a fresh process."""
    code = """
import numpy as np
from verifiers import ReluNetwork
from verifiers.lirpa_compat import import_auto_lirpa
from verifiers.milp import BoxMilp
net = ReluNetwork([np.array([[1.0, 1.0], [0.0, 0.0]]), np.array([[1.0], [-1.0]])], [np.zeros(2), np.zeros(1)])
milp = BoxMilp(net, np.array([-1.0, 0.0]), np.array([1.0, 1.0]), feature=0)
print(milp.min_derivative(1.0, time_limit=10.0, rel_gap=0.0).objective)
import_auto_lirpa()
"""
    proc = run([sys.executable, "-c", code], cwd=ROOT)
    assert float(proc.stdout) == -1.0  # HiGHS solved it, silently
    assert_quiet(proc)


# 4. --help -----------------------------------------------------------------------------------


def test_help_describes_the_app_and_its_groups(tmp_path):
    proc = run([console_script("vpals-train"), "--help"], cwd=tmp_path)
    text = proc.stdout
    assert "powered by Hydra" not in text and text.startswith("vpals-train")
    for line in ("hparams_search: width_lr", "verifier: ", "data: ", "spec: ", "experiment: "):
        assert line in text
    assert "  width: 64" in text  # the options, with their values
    assert "vpals-train -m hparams_search=width_lr" in text


def test_bench_help_lists_its_options(tmp_path):
    """vpals-bench follows the other entry points: key=value settings, listed by --help."""
    proc = run([console_script("vpals-bench"), "--help"], cwd=tmp_path)
    text = proc.stdout
    assert text.startswith("vpals-bench") and "Usage:\n  vpals-bench [key=value ...]" in text
    for option in ("out=results/verifier_bench", "time_limit=8", "verifiers=", "quick=false", "apps=", "nnet=",
                   "launcher=basic", "milp", "lirpa_alpha_crown"):  # fmt: skip
        assert option in text, option
    assert not list(tmp_path.iterdir())  # --help builds nothing
    assert_quiet(proc)


def test_bench_tab_completion_installs_like_the_hydra_commands(tmp_path):
    script = run([console_script("vpals-bench"), "-sc", "install=bash"], cwd=tmp_path).stdout
    proc = subprocess.run(["bash", "-c", f"{script}\ncomplete -p vpals-bench"], capture_output=True, text=True,
                          check=False)  # fmt: skip
    assert proc.returncode == 0 and "time_limit=" in proc.stdout and "verifiers=" in proc.stdout, proc.stderr


# 5. Figures ----------------------------------------------------------------------------------


def test_training_curve_zooms_the_accuracy_axis_to_the_data(tmp_path):
    from vpals_jax.train.plots import accuracy_limits, plot_training_curve

    lo, hi = accuracy_limits([0.991, 0.995, 0.998])  # LinnOS: a flat line on a [0, 1] axis
    assert 0.98 < lo < 0.991 and 0.998 < hi <= 1.001
    lo, hi = accuracy_limits([0.0, 0.1875])  # a smoke run: the axis ends near its best, not at 1
    assert lo == 0.0 and 0.1875 < hi < 0.25
    records = [{"epoch": e, "train": {"loss": 1.0 / e, "accuracy": 0.99 + e / 1000},
                "test": {"loss": 1.0 / e, "accuracy": 0.99 + e / 2000}} for e in range(1, 5)]  # fmt: skip
    assert plot_training_curve(records, tmp_path / "curve.png").stat().st_size > 0


# 6. Tab completion -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line, expected",
    [("vpals-train hparams_search=", "hparams_search=width_lr"), ("vpals-verify verifier=c", "verifier=crown"),
     ("vpals-export spe", "spec=")],
)  # fmt: skip
def test_tab_completion_as_the_readme_installs_it(tmp_path, line, expected):
    """``eval "$(vpals-train -sc install=bash)"`` (README), then what bash asks on <TAB>."""
    program = line.split()[0]
    console_script(program)
    script = (f'eval "$({program} -sc install=bash)"; COMP_LINE="{line}"; COMP_POINT={len(line)}; '
              f'COMP_WORDS=({line}); COMP_CWORD={len(line.split()) - 1}; hydra_bash_completion; '
              'printf "%s\\n" "${COMPREPLY[@]}"')  # fmt: skip
    env = {**env_outside_checkout(), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
                          check=False)  # fmt: skip
    assert expected in proc.stdout.split(), proc.stdout + proc.stderr
