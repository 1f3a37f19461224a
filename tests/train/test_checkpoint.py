"""Checkpoints: a save killed at any step leaves a complete checkpoint (the old or the new one),
and every load refuses a file that does not match its recorded SHA-256, naming the file."""

from __future__ import annotations

import json
import os

import jax
import numpy as np
import pytest
from helpers import write_monotone_run

from vpals_jax.convert import load_network
from vpals_jax.runtime.predictor import SafePredictor
from vpals_jax.train import checkpoint as ckpt


class Killed(BaseException):
    """Stands for SIGKILL: nothing in the checkpoint code may catch it."""


@pytest.fixture
def run(tmp_path):
    """A run directory with a committed checkpoint, its content, other weights, and a save function."""
    run_dir, norm = write_monotone_run(tmp_path / "run")
    saved = ckpt.read_checkpoint(run_dir)
    other = jax.tree_util.tree_map(lambda a: a + 1.0, saved.state)
    arrays = {"pool": np.arange(6.0).reshape(2, 3)}

    def save(epoch: int, state=other) -> None:
        ckpt.save_checkpoint(run_dir, state, norm, saved.config, {"epoch": epoch}, arrays)

    return run_dir, saved, other, save


def kill_at_step(mp: pytest.MonkeyPatch, n: int) -> None:
    """Kill at the n-th file-system step of a save: a write (after writing half), fsync, rename or unlink."""
    steps = [0]

    def step(original, partial=False):
        def wrapper(*args):
            steps[0] += 1
            if steps[0] == n:
                if partial:  # a torn write: half the bytes reach the file
                    fd, data = args
                    original(fd, bytes(data)[: len(data) // 2])
                raise Killed(f"{original.__name__} (step {n})")
            return original(*args)

        return wrapper

    mp.setattr(os, "write", step(os.write, partial=True))
    for name in ("fsync", "replace", "unlink"):
        mp.setattr(os, name, step(getattr(os, name)))


def named_files(run_dir) -> set[str]:
    record = json.loads((ckpt.checkpoint_path(run_dir) / "meta.json").read_text())
    return {f["file"] for f in record["files"].values()}


def test_a_save_killed_at_any_step_leaves_the_old_or_the_new_checkpoint(run):
    run_dir, saved, other, save = run
    save(1, saved.state)
    committed = False
    for n in range(1, 100):
        with pytest.MonkeyPatch.context() as mp:
            kill_at_step(mp, n)
            try:
                save(2)
            except Killed:
                pass
            else:
                break
        loaded = ckpt.read_checkpoint(run_dir)  # complete and digest-checked, never a mixture
        assert loaded.meta["epoch"] == 2 or not committed  # once committed at step n, also at every later step
        committed = loaded.meta["epoch"] == 2
        jax.tree_util.tree_map(np.testing.assert_array_equal, loaded.state, other if committed else saved.state)
        # a relaunch saves over whatever the kill left: committed, and the garbage is gone
        previous = named_files(run_dir)
        save(3)
        assert ckpt.read_checkpoint(run_dir).meta["epoch"] == 3
        left = {p.name for p in ckpt.checkpoint_path(run_dir).iterdir()}
        assert left == {"meta.json"} | named_files(run_dir) | previous  # no *.tmp, nothing older
        save(1, saved.state)  # back to the starting point for the next kill
    else:
        pytest.fail("the save never completed")
    assert committed and n > 15  # every write, fsync, rename and unlink of the save was a kill point


def flip_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def truncate(path):
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


ROLES = ["meta.json", "state", "normalizer", "config", "arrays"]


def file_of(run_dir, role):
    folder = ckpt.checkpoint_path(run_dir)
    return folder / role if role == "meta.json" else next(folder.glob(f"{role}-*"))


@pytest.mark.parametrize("damage", [flip_byte, truncate, os.unlink])
@pytest.mark.parametrize("role", ROLES)
def test_every_load_refuses_a_damaged_file_naming_it(run, role, damage):
    run_dir, _, _, save = run
    save(2)
    victim = file_of(run_dir, role)
    damage(victim)
    loaders = [ckpt.read_checkpoint, ckpt.load_checkpoint, load_network, SafePredictor.load]  # resume, verify, serve
    for load in loaders:
        expected = ckpt.CheckpointError if role != "meta.json" or damage is not os.unlink else FileNotFoundError
        with pytest.raises(expected) as err:
            load(run_dir)
        message = str(err.value)
        assert "\n" not in message and str(victim) in message, message


def test_a_checkpoint_without_digests_is_refused(run):
    run_dir, *_ = run
    meta = ckpt.checkpoint_path(run_dir) / "meta.json"
    record = json.loads(meta.read_text())
    for key in ("format", "files", "sha256"):
        record.pop(key)
    meta.write_text(json.dumps(record))
    with pytest.raises(ckpt.CheckpointError, match="meta.json: not a format-2 checkpoint record"):
        ckpt.load_checkpoint(run_dir)


def test_meta_may_not_use_the_record_keys(run):
    run_dir, saved, *_ = run
    with pytest.raises(ValueError, match="reserved"):
        ckpt.save_checkpoint(run_dir, saved.state, saved.normalizer, saved.config, {"files": 1})


def test_the_previous_checkpoint_outlives_one_save(run):
    # a verifier or server that read meta.json just before a save still finds the files it names
    run_dir, _, other, save = run
    save(2)
    record = (ckpt.checkpoint_path(run_dir) / "meta.json").read_bytes()
    save(3, jax.tree_util.tree_map(lambda a: a * 2.0, other))
    (ckpt.checkpoint_path(run_dir) / "meta.json").write_bytes(record)
    assert ckpt.read_checkpoint(run_dir).meta["epoch"] == 2
