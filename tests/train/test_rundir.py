"""The run directory: one training at a time, a resume refuses a changed config, a refused or failed
command changes no file, and names that would leave the run directory are refused (exit code 2)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from helpers import compose_train
from omegaconf import OmegaConf
from tiny_problem import tiny_cfg

from vpals_jax.train import checkpoint as ckpt
from vpals_jax.train.rundir import LOCK_FILE, RunLock
from vpals_jax.train.trainer import RunDirError, run_training

FAST = ("train.epochs=1", "train.verify_at_end=false")


def snapshot(run_dir) -> dict[str, tuple[bytes, int]]:
    """Every file's content and mtime (the lock file's content only: taking a lock touches it)."""
    return {str(p.relative_to(run_dir)): (p.read_bytes(), 0 if p.name == LOCK_FILE else p.stat().st_mtime_ns)
            for p in sorted(run_dir.rglob("*")) if p.is_file()}  # fmt: skip


@pytest.fixture
def trained(dip_table, tmp_path):
    run_dir = tmp_path / "run"
    run_training(tiny_cfg(dip_table, run_dir, "normal", *FAST))
    return run_dir


def test_a_second_training_in_a_busy_run_directory_is_refused_naming_the_holder(dip_table, trained):
    before = snapshot(trained)
    with RunLock(trained):  # another training holds the directory (flock is per open file, so this process counts)
        with pytest.raises(RunDirError, match=f"in use by pid {os.getpid()} "):
            run_training(tiny_cfg(dip_table, trained, "normal", *FAST, "train.epochs=2", "train.resume=true"))
        assert (trained / LOCK_FILE).read_text() == f"{os.getpid()}\n"
    assert snapshot(trained) == before and (trained / LOCK_FILE).read_text() == ""  # released and emptied


@pytest.mark.parametrize(
    ("override", "key"),
    [("model.width=16", "model.width"), ("train.seed=1", "train.seed"), ("optim.lr=0.5", "optim.lr"),
     ("train.loop=vanilla", "train.loop")],
)  # fmt: skip
def test_resume_refuses_a_changed_model_or_trajectory_naming_the_key(dip_table, trained, override, key):
    before = snapshot(trained)
    with pytest.raises(RunDirError, match=rf"^cannot resume .*: {key} was .* when it was trained, now "):
        run_training(tiny_cfg(dip_table, trained, "normal", *FAST, "train.resume=true", override))
    assert snapshot(trained) == before


def test_resume_refuses_a_changed_spec(dip_table, trained):
    cfg = tiny_cfg(dip_table, trained, "normal", *FAST, "train.resume=true")
    cfg.spec.specs[0]["direction"] = "decreasing"
    with pytest.raises(RunDirError, match=r"spec\.specs\.0\.direction was 'increasing' when it was trained"):
        run_training(cfg)


def synthetic(run_dir, *extra):
    return compose_train(["data.n_samples=300", "model.width=8", "train.batch_size=32", "train.progress=false",
                          f"run_dir={run_dir}", *extra])  # fmt: skip


def test_resume_refuses_other_data_and_allows_more_epochs(tmp_path):
    run_training(synthetic(tmp_path, "train.epochs=1"))
    before = snapshot(tmp_path)
    with pytest.raises(RunDirError, match="data.app was 'nginx' when it was trained, now 'redis'"):
        run_training(synthetic(tmp_path, "train.epochs=2", "train.resume=true", "data.app=redis"))
    assert snapshot(tmp_path) == before
    run_training(synthetic(tmp_path, "train.epochs=2", "train.resume=true"))  # extending a run is a resume
    assert ckpt.read_checkpoint(tmp_path).meta["epoch"] == 2


def test_a_failed_resume_writes_nothing(dip_table, trained):
    before = snapshot(trained)
    state = next(ckpt.checkpoint_path(trained).glob("state-*"))
    state.write_bytes(state.read_bytes()[:-1])
    before[str(state.relative_to(trained))] = (state.read_bytes(), state.stat().st_mtime_ns)
    with pytest.raises(ckpt.CheckpointError, match=f"^{state}: SHA-256 mismatch"):
        run_training(tiny_cfg(dip_table, trained, "normal", *FAST, "train.epochs=2", "train.resume=true"))
    assert snapshot(trained) == before  # config.yaml and metrics.jsonl included


@pytest.mark.parametrize("override", ["name=../x", "data.app=a/../../x", "spec.name=../x", "verifier.name=../x"])
def test_config_refuses_names_that_are_not_plain(dip_table, tmp_path, override):
    key, value = override.split("=")
    cfg = tiny_cfg(dip_table, tmp_path / "run", "normal", *FAST)
    OmegaConf.update(cfg, key, value)
    with pytest.raises(ValueError, match=rf"^{key}='{value}' is not a plain name"):
        run_training(cfg)
    assert not (tmp_path / "run").exists()


def cli(module: str, *args: str, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300, check=False)  # fmt: skip


def test_cli_refusals_are_one_line_exit_2_and_change_no_file(dip_table, tmp_path):
    run_dir = tmp_path / "run"
    args = ["data=table", f"data.path={dip_table}", "model.width=8", "train.batch_size=16", "train.progress=false",
            "train.epochs=1", f"hydra.run.dir={run_dir}"]  # fmt: skip
    first = cli("vpals_jax.train", *args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    assert json.loads((run_dir / "summary.json").read_text())["epochs"] == 1
    assert (run_dir / ".hydra" / "overrides.yaml").exists()
    before = snapshot(run_dir)
    state = next(ckpt.checkpoint_path(run_dir).glob("state-*"))
    refusals = [
        (("train.resume=true", "model.width=16"), "model.width was 8 when it was trained, now 16"),
        (("train.resume=true", "train.epochs=2"), f"in use by pid {os.getpid()} "),  # run while this test holds it
        (("train.resume=true", "train.epochs=2"), f"{state}: SHA-256 mismatch"),  # with the state file damaged
    ]
    for i, (extra, message) in enumerate(refusals):
        if i == 2:
            state.write_bytes(state.read_bytes()[::-1])
            before = snapshot(run_dir)
        if i == 1:
            with RunLock(run_dir):
                proc = cli("vpals_jax.train", *args, *extra, cwd=tmp_path)
        else:
            proc = cli("vpals_jax.train", *args, *extra, cwd=tmp_path)
        assert proc.returncode == 2, proc.stderr[-2000:]
        last = proc.stderr.strip().splitlines()[-1]
        assert last.startswith("vpals-train: error: ") and message in last, last
        assert snapshot(run_dir) == before, extra  # .hydra/*.yaml, config.yaml, metrics, checkpoint


@pytest.mark.parametrize(
    ("module", "override", "escaped"),
    [("vpals_jax.train", "name=../../escaped", "escaped"), ("vpals_jax.train", "data.app=../../escaped", "escaped"),
     ("vpals_jax.verify", "spec.name=../../../../escaped", "escaped_ouroboros")],
)  # fmt: skip
def test_cli_refuses_names_that_leave_the_run_directory(tmp_path, module, override, escaped):
    cwd = tmp_path / "a" / "b"
    cwd.mkdir(parents=True)
    extra = [f"run_dir={cwd / 'run'}"] if module == "vpals_jax.verify" else ["train.epochs=1"]
    proc = cli(module, override, *extra, cwd=cwd)
    key = override.split("=")[0]
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines() == [
        (f"vpals-{module.split('.')[1]}: error: {key}='{override.split('=')[1]}' is not a plain name (letters, "
         "digits, '_', '.', '-', not starting with '.'): it names a directory")
    ]
    assert not list(tmp_path.rglob(escaped)) and not (cwd / "runs").exists()


def test_a_key_added_to_the_schema_since_training_stands_for_its_default(tmp_path):
    """A run saved before ``data.test_path`` existed resumes with the default, and is refused
    with another value (naming the key)."""
    from vpals_jax.train.rundir import RunDirError, check_resumable

    saved = {"data": {"source": "synthetic", "app": "nginx"}, "model": {"depth": 2}}
    check_resumable(saved, {"data": {"source": "synthetic", "app": "nginx", "test_path": None}, "model": {"depth": 2}},
                    tmp_path)  # fmt: skip
    with pytest.raises(RunDirError, match="data.test_path"):
        check_resumable(saved, {"data": {"source": "synthetic", "app": "nginx", "test_path": "b.csv"},
                                "model": {"depth": 2}}, tmp_path)  # fmt: skip
