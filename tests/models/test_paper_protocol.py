"""The papers' scoring (``experiments.paper_protocol``): a candidate is judged by the mean of its best
runs at their best test epochs, and the table keeps that candidate's three scorings."""

import numpy as np
import pytest


def test_score_keeps_the_best_runs_at_their_best_epochs():
    from experiments.paper_protocol import score

    curves = [np.array([5.0, 3.0, 4.0]), np.array([6.0, 2.0, 2.5]), np.array([9.0, 8.0, 7.0])]
    s = score(curves, lower=True, keep=2)
    assert s["best_k"] == pytest.approx(2.5) and s["best_all"] == pytest.approx(4.0)
    assert s["last_all"] == pytest.approx((4.0 + 2.5 + 7.0) / 3)
    acc = score([np.array([0.7, 0.9]), np.array([0.8, 0.6])], lower=False, keep=1)
    assert acc["best_k"] == pytest.approx(0.9) and acc["last_all"] == pytest.approx(0.75)


def test_protocol_picks_the_candidate_on_the_test_file(tmp_path, monkeypatch):
    import experiments.monotone_baselines_select as sel
    import experiments.paper_protocol as pp

    monkeypatch.setattr(sel, "GRID", {"model.width": [4, 8], "optim.lr": [1e-2], "optim.weight_decay": [0.0]})
    monkeypatch.setattr(pp, "MAX_EPOCHS", {"auto_mpg": 2})
    pick = pp.protocol("auto_mpg", "cmnn", seeds=[0, 1], keep=1, out=tmp_path)
    scores = {}
    for width in (4, 8):
        runs = [pp.curve(tmp_path / "auto_mpg" / "cmnn" / f"width{width}_lr0.01_weight_decay0" / str(s), "auto_mpg")
                for s in (0, 1)]  # fmt: skip
        assert [len(c) for c in runs] == [2, 2]
        scores[width] = min(c.min() for c in runs)
    assert pick["candidate"]["model.width"] == min(scores, key=scores.get)
    assert pick["best_k"] == pytest.approx(min(scores.values()))
    assert "| cmnn | width " in pp.table([pick], n=2, keep=1)


def test_keep_beyond_the_seeds_is_refused(capsys):
    from experiments.paper_protocol import main

    with pytest.raises(SystemExit) as e:
        main(["--out", "unused", "--seeds", "0", "1", "--keep", "3"])
    assert e.value.code == 2 and "--keep" in capsys.readouterr().err


@pytest.mark.parametrize("bad", [["--widths", "0"], ["--lrs", "0"], ["--weight-decays", "-0.1"]])
def test_a_grid_no_candidate_can_train_with_is_refused(bad, capsys):
    from experiments.monotone_baselines_select import main as select_main
    from experiments.paper_protocol import main

    for entry in (main, select_main):
        with pytest.raises(SystemExit) as e:
            entry(["--out", "unused", *bad])
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert e.value.code == 2 and bad[0] in err and bad[1] in err
