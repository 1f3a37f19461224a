"""Certified training end to end: a whole-domain spec set proven, and served row by row."""

from __future__ import annotations

import json

import numpy as np
from helpers import compose_train, make_table

from vpals_jax.runtime.predictor import SafePredictor
from vpals_jax.train.trainer import run_training

# Whole training domain, three features; a tolerance of 0.01 ms (proven in the slope form that composes)
WHOLE_DOMAIN = {
    "name": "whole_domain",
    "space": "raw",
    "region": {"default": "domain"},
    "specs": [
        {"kind": "monotonicity", "feature": "cg_psi_cpu_some_pct", "direction": "increasing", "tolerance": 0.01},
        {"kind": "monotonicity", "feature": "cg_psi_io_some_pct", "direction": "increasing", "tolerance": 0.01},
        {"kind": "monotonicity", "feature": "cpu_quota_cores", "direction": "decreasing", "tolerance": 0.01},
    ],
}


def test_a_tiny_whole_domain_problem_certifies_and_is_served_verified(tmp_path):
    table = tmp_path / "t.csv"
    df = make_table(n=400, seed=3)
    df.to_csv(table, index=False)
    cfg = compose_train([
        "data=table", f"data.path={table}", f"run_dir={tmp_path / 'run'}", "model.width=16", "train.batch_size=32",
        "train.progress=false", "train.loop=certified", "train.epochs=80", "train.cert_warmup=1", "train.cert_ramp=5",
        "train.cert_margin=0.003", "train.cert_full_boxes=0", "train.verify_every=5", "train.accuracy_threshold=0.0",
        "verifier=crown", "verifier.time_budget_s=5", "optim.lr=3e-3",
    ])  # fmt: skip
    for key, value in WHOLE_DOMAIN.items():
        cfg.spec[key] = value
    summary = run_training(cfg)
    assert summary["stop_reason"] == "verified", summary["stop_reason"]
    verdicts = json.loads((tmp_path / "run" / "verify" / "training" / "verdicts.json").read_text())
    assert verdicts  # the certificate the runtime reads
    predictor = SafePredictor.load(tmp_path / "run")
    norm = predictor.normalizer
    rows = df[predictor.features].to_numpy()
    in_domain = ((rows >= norm.x_min) & (rows <= norm.x_max)).all(axis=1)  # the training split's domain
    inside = df[predictor.features][in_domain]
    assert len(inside) >= 300
    assert (predictor.predict(inside).status == "verified").all()
    outside = inside.copy()
    outside["cg_psi_cpu_some_pct"] = norm.x_max[predictor.features.index("cg_psi_cpu_some_pct")] + 5.0
    assert not (predictor.predict(outside).status == "verified").any()  # beyond the proven domain


def test_a_log_target_is_proven_with_the_exact_spec_and_served_in_log_units(tmp_path):
    """CardWiki's path (``data.target_log``): the exact spec proven of log(num_rows) over the whole
    box, the rows served ``verified``, and the served values log row counts."""
    cfg = compose_train([
        "data.source=cardwiki", "data.target_log=true", "spec=cardwiki", f"run_dir={tmp_path / 'run'}",
        "model.depth=1", "model.width=32", "train.batch_size=256", "train.progress=false", "train.loop=certified",
        "train.epochs=30", "train.min_epochs=30", "train.verify_from=30", "train.loop_epochs=40",
        "train.verify_every=5", "train.cert_lam=0.1", "train.accuracy_threshold=0.0", "verifier=crown",
        "verifier.time_budget_s=10", "optim.lr=3e-3",
    ])  # fmt: skip
    summary = run_training(cfg)
    assert summary["target"] == "log_num_rows"
    assert summary["stop_reason"] == "verified", summary["stop_reason"]
    predictor = SafePredictor.load(tmp_path / "run")
    from vpals_jax.data.tables import read_benchmark

    rows = read_benchmark("cardwiki")[0]
    rows = rows[rows["num_rows"] > 100]
    norm = predictor.normalizer
    x = rows[predictor.features].to_numpy()
    inside = rows[((x >= norm.x_min) & (x <= norm.x_max)).all(axis=1)].head(500)
    served = predictor.predict(inside[predictor.features])
    assert (served.status == "verified").all()
    # log units: the served values lie in the range of log(num_rows), far below the raw counts
    assert (served.latency > np.log(100) - 2).all() and (served.latency < np.log(rows["num_rows"].max()) + 2).all()
