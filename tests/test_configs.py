"""Every config under conf/ composes against the schema; typos fail; the CLI runs and sweeps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import CONF_DIR, compose_train
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]
GROUPS_IN_DEFAULTS = ("data", "model", "optim", "train", "spec", "verifier", "experiment", "debug", "hparams_search")


def all_group_options():
    for group in sorted(p for p in Path(CONF_DIR).iterdir() if p.is_dir() and p.name != "hydra"):
        for f in sorted(group.glob("*.yaml")):
            yield group.name, f.stem


@pytest.mark.parametrize(("group", "option"), list(all_group_options()))
def test_every_config_composes(group, option):
    prefix = "" if group in GROUPS_IN_DEFAULTS else "+"
    cfg = compose_train([f"{prefix}{group}={option}", "run_dir=/tmp/unused"])
    assert cfg.model.depth >= 1 and cfg.train.epochs >= 1


def test_misspelt_key_fails_at_compose_time():
    with pytest.raises(ConfigCompositionException, match="widht"):
        compose_train(["model.widht=3"])


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    return subprocess.run([sys.executable, "-m", "vpals_jax.train", *args], cwd=ROOT, env=env, check=False,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def test_cli_bad_input_is_one_line_and_nonzero(tmp_path):
    proc = run_cli("data=table", "data.path=/no/such.csv", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == "vpals-train: error: data file not found: /no/such.csv"


def test_two_job_multirun(tmp_path, table_csv):
    sweep = tmp_path / "sweep"
    proc = run_cli("-m", "data=table", f"data.path={table_csv}", "model.width=8,16", "train.epochs=1",
                   "train.batch_size=32", "train.progress=false", f"hydra.sweep.dir={sweep}")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(OmegaConf.load(sweep / str(i) / "config.yaml").model.width for i in range(2)) == [8, 16]
    summaries = [json.loads((sweep / str(i) / "summary.json").read_text()) for i in range(2)]
    assert all(0.0 <= s["test"]["accuracy"] <= 1.0 for s in summaries)
