"""``model=cmnn`` / ``model=lmn`` through Hydra: one epoch composes, trains, is proved monotone over
the whole domain at the end and loads back as the same network; the experiment's table is
written from a small sweep; certified training refuses the baselines."""

from __future__ import annotations

import json

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


def test_best_epoch_reads_only_epoch_records(tmp_path):
    from experiments.monotone_baselines import best_epoch

    lines = [{"epoch": 1, "test": {"rmse": 3.0, "accuracy": 0.5}}, {"event": "verification", "round": 1},
             {"epoch": 2, "test": {"rmse": 2.0, "accuracy": 0.8}}, {"epoch": 3, "test": {"rmse": 2.5, "accuracy": 0.7}}]
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    assert best_epoch(tmp_path) == (4.0, 0.8)
    assert all(np.isnan(v) for v in best_epoch(tmp_path / "none"))


def test_selection_picks_the_epoch_on_validation_rows(tmp_path, monkeypatch):
    import experiments.monotone_baselines_select as sel

    monkeypatch.setattr(sel, "GRID", {"model.width": [8], "optim.lr": [1e-2], "optim.weight_decay": [0.0]})
    monkeypatch.setattr(sel, "MAX_EPOCHS", {"auto_mpg": 3})
    choice = sel.select("auto_mpg", "cmnn", tmp_path, folds=1, fraction=0.2)
    run_dir = tmp_path / "select" / "auto_mpg" / "cmnn" / "width8_lr0.01_weight_decay0" / "0"
    curve = sel.validation_curve(run_dir)
    assert len(curve) == 3 and choice["epochs"] == int(np.argmin(curve)) + 1
    assert choice["val_mse"] == pytest.approx(curve.min())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["n_test"] == round(0.2 * 314) and summary["n_train"] == 314 - round(0.2 * 314)  # validation rows
    assert summary["verdicts"] == []  # selection runs are not verified


def test_certified_selection_trains_certified_without_rounds_and_counts_only_full_box_epochs(tmp_path, monkeypatch):
    import experiments.monotone_baselines_select as sel
    from vpals_jax.train.metrics import MetricsLog

    monkeypatch.setattr(sel, "GRID", {"model.width": [8], "optim.lr": [1e-2], "optim.weight_decay": [0.0]})
    monkeypatch.setattr(sel, "MAX_EPOCHS", {"heart": 14})
    choice = sel.select("heart", "mlp_certified", tmp_path, folds=1, fraction=0.2)
    run_dir = tmp_path / "select" / "heart" / "mlp_certified" / "width8_lr0.01_weight_decay0" / "0"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["loop"] == "certified" and summary["rounds"] == 0  # certified training, no round
    assert not [r for r in MetricsLog(run_dir / "metrics.jsonl").read() if r.get("event") == "verification"]
    curve = sel.validation_curve(run_dir)
    assert len(curve) == 14 and choice["epochs"] == 12 + int(np.argmin(curve[11:]))  # the boxes span the region from 12


def test_loops_must_not_also_be_selected():
    import experiments.monotone_baselines_select as sel

    with pytest.raises(SystemExit) as e:
        sel.main(["--out", "unused", "--models", "mlp", "mlp_certified", "--loops", "mlp_certified"])
    assert e.value.code == 2


def _agg_row(dataset: str, variant: str, verified: int, metric: float, train: float, wall: float) -> dict:
    return {"dataset": dataset, "variant": variant, "runs": 3, "verified": verified, "test_accuracy": metric,
            "test_mse": metric, "train_time_s": train, "wall_time_s": wall}  # fmt: skip


def test_the_claim_is_judged_on_every_data_set():
    """A latency data set has no absolute goal: the best free model VERIFIED in every run must be at
    least as accurate as the best by-construction model; an unverified free model never counts."""
    import pandas as pd

    from experiments.monotone_baselines import goals

    agg = pd.DataFrame([
        _agg_row("synthetic/nginx", "mlp", 0, 0.97, 0.5, 3.0),  # more accurate, never proved: not the pick
        _agg_row("synthetic/nginx", "mlp+certified", 3, 0.92, 1.5, 40.0),
        _agg_row("synthetic/nginx", "cmnn", 3, 0.61, 0.5, 10.0),
        _agg_row("real/redis", "mlp+certified", 2, 0.70, 1.0, 5.0),  # one run unproved
        _agg_row("real/redis", "cmnn", 3, 0.43, 1.0, 5.0),
        _agg_row("auto_mpg", "mlp+certified", 3, 8.0, 2.0, 4.0),  # beats cmnn, misses the goal of 7.6
        _agg_row("auto_mpg", "cmnn", 3, 9.0, 1.0, 2.0),
    ])  # fmt: skip
    lines = {line.split(" | ")[0].strip("| "): line for line in goals(agg).splitlines()[2:]}
    assert lines["synthetic/nginx"].endswith("| mlp+certified | 0.92 | cmnn | 0.61 | +0.31 | 3.00 | 4.00 | yes |")
    assert "| none verified in every run; mlp+certified 2/3 |" in lines["real/redis"]
    assert lines["real/redis"].endswith("| no |")
    assert "<= 7.6" in lines["auto_mpg"] and lines["auto_mpg"].endswith("| -1 | 2.00 | 2.00 | no |")


def test_the_claims_difference_carries_a_welch_interval_over_seeds():
    import pandas as pd
    from scipy import stats

    from experiments.monotone_baselines import difference

    f = pd.Series({"runs": 5, "test_accuracy": 0.82, "test_accuracy_std": 0.02})
    b = pd.Series({"runs": 10, "test_accuracy": 0.80, "test_accuracy_std": 0.03})
    v = 0.02**2 / 5 + 0.03**2 / 10
    dof = v**2 / ((0.02**2 / 5) ** 2 / 4 + (0.03**2 / 10) ** 2 / 9)
    h = stats.t.ppf(0.975, dof) * v**0.5
    assert difference(f, b, "test_accuracy") == f"{0.02:+.3g} [{0.02 - h:+.3g}, {0.02 + h:+.3g}]"
    assert difference(f, b.drop("test_accuracy_std"), "test_accuracy") == "+0.02"  # no spread: no interval


def test_epochs_trained_and_several_sweeps(tmp_path, capsys):
    from experiments.monotone_baselines import epochs_trained, main

    lines = [{"epoch": 1, "test": {"rmse": 3.0, "accuracy": 0.5}}, {"event": "verification", "round": 1, "epoch": 9},
             {"epoch": 2, "test": {"rmse": 2.0, "accuracy": 0.8}}]  # fmt: skip
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    assert epochs_trained(tmp_path) == 2  # a round's record is not an epoch
    assert np.isnan(epochs_trained(tmp_path / "none"))
    assert main([str(tmp_path), str(tmp_path)]) == 2  # two sweeps, nowhere to write: one line, nothing written
    assert capsys.readouterr().err.strip() == "monotone_baselines: several sweeps need --out"
    assert not (tmp_path / "table.md").exists()
