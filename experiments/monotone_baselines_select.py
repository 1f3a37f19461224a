"""Model selection on validation data for the Auto-MPG and Heart baselines, then the seeded runs.

::

    python -m experiments.monotone_baselines_select --out multirun/monotone_select/<name>
    python -m experiments.monotone_baselines multirun/monotone_select/<name>/final   # the table again

Why: the published numbers beside ours (``docs/baselines.md``) chose hyperparameters and the epoch
on their *test* rows. Here every choice is made on validation copies of the training file
(``vpals_jax.data.validation``): for each data set and model, a small grid of width, learning rate
and weight decay is trained on ``--folds`` seeded 80/20 splits of the training file; the
candidate and the epoch with the lowest mean validation MSE (Brier score on Heart) win. The chosen
setting is then trained on the whole training file for that many epochs with ``--seeds`` seeds
and scored once on the test file. The certified MLP is selected like the others, on validation
runs of certified training; ``--loops`` variants reuse the plain MLP's choice instead. Writes
``selected.json`` and, under ``final/``, one run per (data set, variant, seed) with ``table.md``
from ``experiments.monotone_baselines``.

``--split random`` is LMN's / SMNN's Auto-MPG protocol instead of COMET's files: seed ``s`` is a
random 80/20 split of the two files put together (``data.split=random data.seed=s``), the
selection is made again for every split on validation copies of *that split's* training rows
(``write_random_split_validation_copy``), and the final run of seed ``s`` is scored on that
split's test rows. On Heart (``train.loss=bce``, the dataset option) the validation MSE is the
Brier score of the predicted probability.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
# width x learning rate, depth 2 as in both papers' best settings; small because the machine is a
# shared 2-core one (each cell trains len(grid) x folds runs)
GRID: dict[str, list[Any]] = {"model.width": [8, 32], "optim.lr": [1e-3, 1e-2], "optim.weight_decay": [0.0]}
MAX_EPOCHS = {"auto_mpg": 500, "heart": 300}
# Added to the grid of one (data set, model). LMN bounds the slope in every input by lambda; on
# min-max inputs (a range of 1, where LMN's own scripts standardise to a range of 4-6) and with a
# logit output (Heart, train.loss=bce) lambda = 1 caps what one feature can move the logit at 1.
EXTRA_GRID: dict[tuple[str, str], dict[str, list[Any]]] = {("heart", "lmn"): {"model.lmn_lipschitz": [1.0, 4.0]}}


def compose(overrides: Sequence[str]) -> Any:
    """The training config of ``experiment=monotone_baselines`` with ``overrides`` (no Hydra run)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from vpals_jax.config import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(config_name="train", overrides=["experiment=monotone_baselines", *overrides])


def add_grid_args(p: argparse.ArgumentParser) -> None:
    """The grid's command-line options (defaults: :data:`GRID`), shared with ``experiments.paper_protocol``."""
    p.add_argument("--widths", nargs="+", type=int, default=GRID["model.width"], help="the grid's widths")
    p.add_argument("--lrs", nargs="+", type=float, default=GRID["optim.lr"], help="the grid's learning rates")
    p.add_argument("--weight-decays", nargs="+", type=float, default=GRID["optim.weight_decay"],
                   help="the grid's weight decays (AdamW when > 0)")


def grid_from_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, list[Any]]:
    """The grid of :func:`add_grid_args`'s options; a value no candidate can train with exits with 2."""
    bad = [f"--widths {w}" for w in args.widths if w < 1] + [f"--lrs {v:g}" for v in args.lrs if not v > 0]
    bad += [f"--weight-decays {v:g}" for v in args.weight_decays if not v >= 0]
    if bad:
        p.error(f"{', '.join(bad)}: widths must be >= 1, learning rates > 0 and weight decays >= 0")
    return {"model.width": args.widths, "optim.lr": args.lrs, "optim.weight_decay": args.weight_decays}


def candidates(dataset: str, model: str, grid: dict[str, list[Any]] | None = None) -> list[tuple[dict[str, Any], str]]:
    """Every candidate of ``grid`` (default :data:`GRID`) and the model's :data:`EXTRA_GRID`, with its run tag."""
    full = {**(grid or GRID), **EXTRA_GRID.get((dataset, model), {})}
    cands = [dict(zip(full, values)) for values in itertools.product(*full.values())]
    return [(c, "_".join(f"{k.split('.')[-1]}{v:g}" for k, v in c.items())) for c in cands]


def cell(dataset: str, variant: str) -> list[str]:
    return [f"+experiment/monotone_baselines/dataset={dataset}", f"+experiment/monotone_baselines/variant={variant}"]


def validation_curve(run_dir: Path) -> np.ndarray:
    """Per-epoch MSE on the run's test file (here: the validation rows), from ``metrics.jsonl``."""
    from vpals_jax.train.metrics import MetricsLog

    return np.array([r["test"]["rmse"] ** 2 for r in MetricsLog(run_dir / "metrics.jsonl").read() if "test" in r])


def select(dataset: str, model: str, out: Path, folds: int, fraction: float, split_seed: int | None = None,
           grid: dict[str, list[Any]] | None = None) -> dict[str, Any]:  # fmt: skip
    """The grid candidate and epoch with the lowest mean validation MSE over ``folds`` splits of the
    training file, or (``split_seed``) of the training rows of that random split, over ``grid``
    (default :data:`GRID`) and the model's :data:`EXTRA_GRID`.

    ``model`` may be ``mlp_certified``: its candidates train with certified training and no round
    (a round only decides when training stops), and only epochs at which a round can be due count
    (the boxes span the whole region), so the final run keeps the schedule that was selected."""
    from vpals_jax.data.validation import write_random_split_validation_copy, write_validation_copy
    from vpals_jax.train.trainer import run_training

    if split_seed is None:
        fold_dirs = [write_validation_copy(dataset, out / "folds" / dataset / str(k), fraction, seed=k)
                     for k in range(folds)]  # fmt: skip
    else:
        out = out / f"split{split_seed}"
        fold_dirs = [write_random_split_validation_copy(dataset, out / "folds" / dataset / str(k), split_seed,
                                                        fraction=fraction, seed=k) for k in range(folds)]  # fmt: skip
    best: dict[str, Any] | None = None
    first, no_rounds = 1, []
    if model == "mlp_certified":
        tc = compose(cell(dataset, model)).train
        first = tc.cert_warmup + max(tc.cert_ramp, 1)
        no_rounds = [f"train.verify_from={MAX_EPOCHS[dataset] + 1}", "train.loop_epochs=0"]  # train.epochs, no more
    for cand, tag in candidates(dataset, model, grid):
        curves = []
        for k, fold in enumerate(fold_dirs):
            run_dir = out / "select" / dataset / model / tag / str(k)
            if not (run_dir / "summary.json").exists():
                run_training(compose([*cell(dataset, model), f"data.path={fold}", f"train.seed={k}",
                                      f"train.epochs={MAX_EPOCHS[dataset]}", "train.verify_at_end=false", *no_rounds,
                                      *(f"{a}={b}" for a, b in cand.items()), f"run_dir={run_dir}"]))  # fmt: skip
            curves.append(validation_curve(run_dir))
        mean = np.mean(curves, axis=0)
        epoch = first + int(np.argmin(mean[first - 1 :]))
        log.info("%s %s %s: validation MSE %.4f at epoch %d", dataset, model, tag, mean[epoch - 1], epoch)
        if best is None or mean[epoch - 1] < best["val_mse"]:
            best = {"overrides": cand, "epochs": epoch, "val_mse": float(mean[epoch - 1])}
    assert best is not None
    return best


def final_runs(dataset: str, variant: str, choices: dict[int, dict[str, Any]], seeds: Sequence[int], out: Path,
               random_split: bool = False, rounds: int = 1) -> None:  # fmt: skip
    """The chosen setting (``choices[seed]``) on the whole training file, scored on the test file, one run
    per seed; with ``random_split``, seed ``s`` trains and tests on random split ``s``."""
    from vpals_jax.train.trainer import run_training

    for seed in seeds:
        choice = choices[seed]
        split = ["data.split=random", f"data.seed={seed}"] if random_split else []
        run_dir = out / "final" / f"{dataset}_{variant}_{seed}"
        if (run_dir / "summary.json").exists():
            continue
        t0 = time.perf_counter()
        # The correcting loops verify every train.verify_every epochs and stop at the first all-VERIFIED
        # round at or after the chosen epoch: the first round is on the weights of the chosen epoch, like
        # the baselines' one verification. With ``rounds`` > 1 a loop whose round left a spec unproven
        # trains on (on the boxes it left) for as many epochs again, up to ``rounds`` rounds.
        epochs = choice["epochs"]
        loop = [f"train.verify_every={epochs}", f"train.loop_epochs={epochs * rounds}", f"train.min_epochs={epochs}"
                ] if variant.startswith("mlp_") else []  # fmt: skip
        if variant == "mlp_certified":  # the boxes must reach the whole region by the chosen epoch, or no round is due
            tc = compose(cell(dataset, variant)).train
            if tc.cert_warmup + tc.cert_ramp >= epochs:
                warmup = min(tc.cert_warmup, epochs // 4)
                loop += [f"train.cert_warmup={warmup}", f"train.cert_ramp={max(1, epochs - warmup - 1)}"]
        s = run_training(compose([*cell(dataset, variant), f"train.seed={seed}", f"train.epochs={epochs}", *split,
                                  *loop, *(f"{a}={b}" for a, b in choice["overrides"].items()),
                                  f"run_dir={run_dir}"]))  # fmt: skip
        log.info("%s %s seed %d: test RMSE %.4f, verified %s (%.0f s)", dataset, variant, seed, s["test"]["rmse"],
                 s["verified"], time.perf_counter() - t0)  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.monotone_baselines_select", description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="output directory (rerunning skips finished runs)")
    p.add_argument("--datasets", nargs="+", default=["auto_mpg", "heart"], choices=sorted(MAX_EPOCHS))
    p.add_argument("--models", nargs="+", default=["mlp", "cmnn", "lmn", "mlp_certified"],
                   choices=["mlp", "cmnn", "lmn", "mlp_certified"], help="each selected on its own validation runs")
    p.add_argument("--loops", nargs="*", default=[], choices=["mlp_certified", "mlp_spec_data"],
                   help="free-MLP variants with the verifier in the loop trained with the MLP's choice instead "
                        "(session 9's tables and earlier: mlp_certified)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--folds", type=int, default=2)
    p.add_argument("--val-fraction", type=float, default=0.2)
    add_grid_args(p)
    p.add_argument("--select-only", action="store_true")
    p.add_argument("--split", choices=["given", "random"], default="given",
                   help="given: COMET's train/test files; random: seed s is random 80/20 split s of both files, "
                        "selected on its own training rows (LMN's Auto-MPG protocol)")
    p.add_argument("--rounds", type=int, default=1,
                   help="verification rounds the correcting loops get, the chosen epochs apart (1: one, on the "
                        "chosen epoch's weights, like the baselines)")
    args = p.parse_args(argv)
    grid = grid_from_args(p, args)
    if set(args.models) & set(args.loops) or (args.loops and "mlp" not in args.models):
        p.error(f"--loops {' '.join(args.loops)}: each needs mlp in --models and must not be in --models itself")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for noisy in ("vpals_jax", "verifiers", "jax", "absl"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sel_path = out / "selected.json"
    selected: dict[str, Any] = json.loads(sel_path.read_text()) if sel_path.exists() else {}
    random_split = args.split == "random"
    # one selection per data set and model, or (random splits) per data set, model and split
    splits: list[int | None] = list(args.seeds) if random_split else [None]
    for dataset in args.datasets:
        for model in args.models:
            for split in splits:
                key = f"{dataset}/{model}" if split is None else f"{dataset}/split{split}/{model}"
                if key not in selected:
                    selected[key] = select(dataset, model, out, args.folds, args.val_fraction, split, grid)
                    sel_path.write_text(json.dumps(selected, indent=1))
                log.info("selected %s: %s", key, selected[key])
    if args.select_only:
        return 0
    from experiments.monotone_baselines import report

    for dataset in args.datasets:
        for variant in [*args.models, *args.loops]:
            model = "mlp" if variant in args.loops else variant
            choices = {s: selected[f"{dataset}/split{s}/{model}" if random_split else f"{dataset}/{model}"]
                       for s in args.seeds}  # fmt: skip
            final_runs(dataset, variant, choices, args.seeds, out, random_split, args.rounds)
    print(report(out / "final"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
