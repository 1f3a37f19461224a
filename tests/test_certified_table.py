"""The certified experiment's table: a run with a spec left unproven never reads as the whole domain."""

from __future__ import annotations

import pandas as pd

from experiments.certified import summarise


def test_a_volume_short_of_one_is_not_printed_as_one():
    runs = pd.DataFrame([
        {"app": "nginx", "loop": loop, "seed": 0, "test_accuracy": 0.9, "test_rmse": 1.0,
         "training_wall_s": 2.0 if loop == "normal" else 4.0, "wall_s": 4.0 if loop == "certified" else 3.0,
         "time_to_verified_s": None, "all_verified": loop == "normal", "verified_volume": vol,
         "served_verified": 0.0, "test_in_domain": 1.0, "served_verified_in_domain": 0.0}
        for loop, vol in (("normal", 1.0), ("certified", 0.999996))
    ])  # fmt: skip
    table = summarise(runs).set_index("loop")
    assert table.loc["normal", "verified_volume"] == 1.0
    assert table.loc["certified", "verified_volume"] == 0.9999
    assert table.loc["certified", "time_ratio"] == 2.0
    assert table.loc["normal", "time_ratio"] == 1.0  # its closing check is not training


def test_the_runner_picks_an_app_as_its_experiment_does():
    from experiments.certified import app_override

    assert app_override("certified", "nginx") == "data.app=nginx"  # the synthetic generator
    assert app_override("certified_real", "redis") == "+experiment/certified_real/app=redis"  # table + spec set
