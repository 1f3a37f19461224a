"""experiments.classical_references scores library-default models on the baselines' own splits."""

from __future__ import annotations

from experiments.classical_references import main


def test_one_seed_writes_the_table_with_every_split_and_model(tmp_path):
    assert main(["--seeds", "0", "--out", str(tmp_path)]) == 0
    table = (tmp_path / "table.md").read_text()
    for name in ("COMET's files", "random 80/20", "Heart", "ridge regression", "logistic regression",
                 "random forest", "gradient boosting"):  # fmt: skip
        assert name in table
    rows = [r for r in table.splitlines()[2:] if r.strip()]
    assert len(rows) == 9
    heart = [float(r.split("|")[4]) for r in rows if "Heart" in r]
    mpg = [float(r.split("|")[4]) for r in rows if "Auto-MPG" in r]
    assert all(0.5 < a <= 1 for a in heart) and all(0 < m < 40 for m in mpg)  # accuracies and MSEs, not swapped


def test_a_bad_seed_list_is_one_line_and_exit_code_2(capsys):
    import pytest

    with pytest.raises(SystemExit) as e:
        main(["--seeds", "0,x"])
    assert e.value.code == 2 and "invalid seed_list value: '0,x'" in capsys.readouterr().err
