"""Exact resume: a run killed anywhere (between epochs, inside a verification round, while writing
its results) and relaunched ends bitwise where the uninterrupted run ends, for every loop."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest
from tiny_problem import tiny_cfg

from verifiers.backends.ouroboros import OuroborosVerifier
from vpals_jax.train import checkpoint as ckpt
from vpals_jax.train import trainer
from vpals_jax.train.loop import Corrector
from vpals_jax.train.trainer import run_training

TIMINGS = {"train_time_s", "wall_s", "start_s", "end_s", "time_s", "wall_time_s", "training_wall_s", "time_to_verified_s",
           "run_dir"}


class Killed(BaseException):
    """Stands for SIGKILL: a BaseException, so no ``except Exception`` in the trainer can absorb it."""


def strip_timings(value):
    if isinstance(value, dict):
        return {k: strip_timings(v) for k, v in value.items() if k not in TIMINGS}
    if isinstance(value, list):
        return [strip_timings(v) for v in value]
    return value


def outcome(run_dir):
    params = ckpt.load_checkpoint(run_dir)[0]
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    summary = json.loads((run_dir / "summary.json").read_text())
    return params, strip_timings(metrics), strip_timings(summary)


def kill_at(mp: pytest.MonkeyPatch, owner, name: str, n: int) -> None:
    """Raise ``Killed`` at the n-th call of ``owner.name``."""
    original, calls = getattr(owner, name), [0]

    def wrapper(*args, **kwargs):
        calls[0] += 1
        if calls[0] == n:
            raise Killed(f"{name} #{n}")
        return original(*args, **kwargs)

    mp.setattr(owner, name, wrapper)


# (owner, attribute, call) at which each relaunch of one run is killed, in order. The dip problem
# trains 4 epochs, then fails rounds at epochs 5 and 6 and verifies at 7 (normal: 10 epochs, one
# final round); each kill is counted from the relaunch it happens in.
BETWEEN_EPOCHS = (trainer, "train_epoch", 3)
IN_ROUND = (OuroborosVerifier, "verify", 1)  # inside a round, before its first verdict
IN_LEARNING = (Corrector, "_learn_from", 2)  # inside a round, after its verdicts, before the pool grows
WRITING_RESULTS = (trainer, "plot_training_curve", 1)  # after the last checkpoint, while finishing
KILLS = {
    "normal": [BETWEEN_EPOCHS, BETWEEN_EPOCHS, IN_ROUND, WRITING_RESULTS],
    "vanilla": [BETWEEN_EPOCHS, IN_ROUND, IN_LEARNING, WRITING_RESULTS],
    "spec_data": [IN_ROUND, IN_LEARNING, (trainer, "train_epoch", 2), WRITING_RESULTS],
    "early_rejection": [BETWEEN_EPOCHS, IN_LEARNING, IN_ROUND, WRITING_RESULTS],
}


@pytest.mark.parametrize("save_every", [1, 3])  # every epoch; or a kill loses epochs that are trained again
@pytest.mark.parametrize("loop", list(KILLS))
def test_killed_and_resumed_run_ends_bitwise_where_the_uninterrupted_one_does(dip_table, tmp_path, loop, save_every):
    every = f"train.save_every={save_every}"
    straight = run_training(tiny_cfg(dip_table, tmp_path / "straight", loop, every))
    assert straight["rounds"] >= (1 if loop == "normal" else 2)
    run_dir = tmp_path / "killed"
    for owner, name, n in KILLS[loop]:
        with pytest.MonkeyPatch.context() as mp:
            kill_at(mp, owner, name, n)
            with pytest.raises(Killed):
                run_training(tiny_cfg(dip_table, run_dir, loop, "train.resume=true", every))
    run_training(tiny_cfg(dip_table, run_dir, loop, "train.resume=true", every))
    (p_straight, m_straight, s_straight), (p_killed, m_killed, s_killed) = outcome(tmp_path / "straight"), outcome(run_dir)
    jax.tree_util.tree_map(np.testing.assert_array_equal, p_straight, p_killed)
    assert m_killed == m_straight
    assert s_killed == s_straight
