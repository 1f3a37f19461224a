"""``model=cmnn`` / ``model=lmn`` through Hydra: one epoch composes, trains, is proved monotone over
the whole domain at the end and loads back as the same network; the experiment's table is
written from a small sweep; certified training refuses the baselines."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import compose_train

from experiments.monotone_baselines import report
from vpals_jax.convert import load_network
from vpals_jax.data.dataset import load_dataset
from vpals_jax.train.trainer import as_config, run_training

BASE = ["experiment=monotone_baselines", "+experiment/monotone_baselines/dataset=auto_mpg", "train.epochs=1",
        "verifier.time_budget_s=60"]  # fmt: skip


def test_one_epoch_of_each_model_trains_verifies_and_loads(tmp_path):
    for i, variant in enumerate(["cmnn", "lmn", "mlp"]):
        run_dir = tmp_path / str(i)
        cfg = compose_train([*BASE, f"+experiment/monotone_baselines/variant={variant}", f"run_dir={run_dir}"])
        assert cfg.model.name == variant and cfg.spec.name == "auto_mpg_monotone"
        summary = run_training(cfg)
        assert np.isfinite(summary["test"]["rmse"]) and len(summary["verdicts"]) == 3
        statuses = {v["status"] for v in summary["verdicts"]}
        if variant != "mlp":  # monotone by construction: proved, whatever one epoch of training did
            assert statuses == {"VERIFIED"} and summary["verified"], statuses
        net, norm, config = load_network(str(run_dir))
        assert config["model"]["name"] == variant
        data = load_dataset(as_config(cfg).data)
        served = net.forward(norm.transform_x(data.x_test))[:, 0] * norm.y_scale + norm.y_min
        assert np.sqrt(np.mean((served - data.y_test) ** 2)) == pytest.approx(summary["test"]["rmse"], rel=1e-4)
    text = report(tmp_path)
    assert "### auto_mpg" in text and "| cmnn | 1 |" in text and "LMN (Nolte et al., ICLR 2023) | 7.580" in text
    assert (tmp_path / "table.md").exists() and (tmp_path / "baselines.png").stat().st_size > 0
    assert len((tmp_path / "results.csv").read_text().splitlines()) == 4  # header + one row per job


def test_certified_loop_refuses_a_baseline(tmp_path):
    cfg = compose_train([*BASE, "+experiment/monotone_baselines/variant=cmnn", "train.loop=certified",
                         f"run_dir={tmp_path / 'r'}"])  # fmt: skip
    with pytest.raises(ValueError, match="train.loop=certified trains the MLP layout only; model=cmnn"):
        run_training(cfg)
    assert not (tmp_path / "r").exists()  # refused before anything was written
