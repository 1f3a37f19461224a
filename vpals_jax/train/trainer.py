"""The Hydra-free training job: data -> normaliser -> model -> epochs -> checkpoint -> summary.

Tests and experiments call ``run_training`` directly; ``vpals_jax.train.__main__`` is only the
thin Hydra wrapper around it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax.training.train_state import TrainState
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from verifiers import Verdict
from vpals_jax.certificate import network_fingerprint, save_verdicts
from vpals_jax.config import Config
from vpals_jax.convert import to_relu_network
from vpals_jax.data.dataset import Dataset, load_dataset
from vpals_jax.data.normalizer import MinMaxNormalizer
from vpals_jax.data.tables import DataError
from vpals_jax.models import build_model
from vpals_jax.train import checkpoint as ckpt
from vpals_jax.train.calibrate import coverage_report, fit_calibration, save_calibration
from vpals_jax.train.loop import Corrector
from vpals_jax.train.metrics import MetricsLog, binary_metrics, regression_metrics
from vpals_jax.train.plots import plot_training_curve, plot_wall_time
from vpals_jax.train.rundir import RunDirError, RunLock, check_resumable
from vpals_jax.train.steps import create_state, epoch_key, predict, train_epoch
from vpals_jax.unified_specs import run_specs

log = logging.getLogger(__name__)


# The meta of a run that starts from scratch (the checkpoint's meta when it resumes).
FRESH = {"epoch": 0, "train_time_s": 0.0, "wall_s": 0.0, "stop_reason": None, "verified_at_s": None,
         "metrics_records": 0}  # fmt: skip


def as_config(cfg: Config | DictConfig) -> Config:
    """Accept the dataclass or a (Hydra-composed) DictConfig; validate against the schema."""
    if isinstance(cfg, Config):
        return cfg
    merged = OmegaConf.merge(OmegaConf.structured(Config), cfg)
    return OmegaConf.to_object(merged)  # type: ignore[return-value]


def evaluate(state, data: Dataset, norm: MinMaxNormalizer, tol: float, loss: str = "mse") -> dict[str, dict[str, float]]:
    """Metrics on the training and test rows; a ``bce`` run's output is a logit (``binary_metrics``)."""
    out = {}
    for split, x, y in (("train", data.x_train, data.y_train), ("test", data.x_test, data.y_test)):
        pred_n = predict(state, norm.transform_x(x))
        out[split] = (binary_metrics(pred_n, norm.transform_y(y)) if loss == "bce" else
                      regression_metrics(pred_n, norm.transform_y(y), norm.y_scale, norm.y_min, tol))  # fmt: skip
    return out


def check_binary_target(data: Dataset, norm: MinMaxNormalizer) -> None:
    """``train.loss=bce`` learns a logit of a 0/1 target: refuse any other target, and a training split
    holding one class only (its min-max scale would not leave the target 0/1)."""
    for part, y in (("training", data.y_train), ("test", data.y_test), ("calibration", data.y_cal)):
        if (bad := ~np.isin(y, (0.0, 1.0))).any():
            raise DataError(f"{data.name}: train.loss=bce needs a 0/1 target; column {data.target_name!r} holds "
                            f"{float(y[bad][0]):g} in the {part} rows (use train.loss=mse)")  # fmt: skip
    if norm.y_min != 0.0 or norm.y_scale != 1.0:
        raise DataError(f"{data.name}: train.loss=bce needs both classes in the training rows; column "
                        f"{data.target_name!r} holds only {norm.y_min:g} there")  # fmt: skip


def _final_verdicts(corrector: Corrector | None) -> dict[int, tuple[int, Verdict]]:
    """Latest verdict of every spec, with the round it comes from."""
    latest: dict[int, tuple[int, Verdict]] = {}
    for rnd in corrector.rounds if corrector else []:
        for i, v in rnd.verdicts.items():
            latest[i] = (rnd.index, v)
    return latest


def run_training(cfg: Config | DictConfig, on_start: Callable[[Path], None] | None = None) -> dict[str, Any]:
    """Train one model as configured (with the verifier in the loop unless ``train.loop=normal``).

    Everything that can refuse the run (config, data, specs, the run directory's lock, the
    checkpoint and the config it was trained with) is checked before the first write, so a refused
    command changes no file; ``on_start(run_dir)`` is called once the run is accepted (the Hydra
    entry point writes ``.hydra/`` there). Returns the summary, also written to ``summary.json``.
    """
    cfg = as_config(cfg)
    tc = cfg.train
    if tc.epochs < 1 or tc.batch_size < 1 or tc.save_every < 1:
        raise ValueError(f"train.epochs, train.batch_size and train.save_every must be >= 1 (got {tc.epochs}, "
                         f"{tc.batch_size}, {tc.save_every})")  # fmt: skip
    data = load_dataset(cfg.data)
    if tc.batch_size > len(data.x_train):
        raise ValueError(f"train.batch_size={tc.batch_size} exceeds the {len(data.x_train)} training rows")
    norm = MinMaxNormalizer.fit(data.x_train, data.y_train, data.feature_names, data.target_name)
    if tc.loss == "bce":
        check_binary_target(data, norm)
    n_features = len(data.feature_names)
    corrector = None
    if tc.loop != "normal" or tc.verify_at_end:
        corrector = Corrector(tc, cfg.verifier, run_specs(cfg.spec, data, norm), n_features, seed=tc.seed)
    if tc.loop == "certified" and cfg.model.name != "mlp":
        raise ValueError(f"train.loop=certified trains the MLP layout only; model={cfg.model.name} is monotone by "
                         "construction (use train.loop=normal train.verify_at_end=true)")  # fmt: skip
    model = build_model(cfg.model, data.feature_names, cfg.spec)
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with RunLock(run_dir):
        state, meta = _restore(cfg, run_dir, norm, create_state(model, cfg.optim, n_features, tc.seed), corrector)
        if on_start:
            on_start(run_dir)
        (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.structured(cfg)))
        return _train(cfg, run_dir, data, norm, corrector, model, state, meta)


def _restore(cfg: Config, run_dir: Path, norm: MinMaxNormalizer, state: TrainState,
             corrector: Corrector | None) -> tuple[TrainState, dict[str, Any]]:  # fmt: skip
    """(state, meta) to start from: the checkpoint's when resuming, refusing one this run cannot continue."""
    if not ckpt.has_checkpoint(run_dir):
        return state, dict(FRESH)
    if not cfg.train.resume:
        raise RunDirError(
            f"run directory {run_dir} already holds a checkpoint; pass train.resume=true to continue it "
            "or choose another run directory"
        )
    saved = ckpt.read_checkpoint(run_dir)
    check_resumable(saved.config, asdict(cfg), run_dir)
    if saved.normalizer.to_dict() != norm.to_dict():
        raise RunDirError(f"cannot resume {run_dir}: the training data differ from the data it was trained on "
                          f"(same config, but the normaliser fitted on them changed)")  # fmt: skip
    if corrector and saved.arrays:  # no arrays: trained without a corrector so far (normal, verify_at_end added)
        corrector.restore(saved.arrays, saved.meta)
    log.info("resumed %s at epoch %d", run_dir, saved.meta["epoch"])
    return ckpt.restore_state(saved, state), saved.meta


def _train(cfg: Config, run_dir: Path, data: Dataset, norm: MinMaxNormalizer, corrector: Corrector | None, model,
           state, meta: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    """The epochs from ``meta["epoch"]`` on, checkpointed every ``train.save_every`` epochs, after
    every round and at the end, then the summary."""
    tc = cfg.train
    config_dict = asdict(cfg)
    x_train = jnp.asarray(norm.transform_x(data.x_train), jnp.float32)
    y_train = jnp.asarray(norm.transform_y(data.y_train), jnp.float32)
    n_features = len(data.feature_names)
    start_epoch, train_time, wall_before = meta["epoch"], meta["train_time_s"], meta["wall_s"]
    metrics = MetricsLog(run_dir / "metrics.jsonl")
    metrics.restart(meta["metrics_records"])

    t_start = time.perf_counter()

    def clock() -> float:
        return wall_before + time.perf_counter() - t_start

    saved_epoch = start_epoch

    def save(epoch: int, stop: str | None = None) -> None:
        nonlocal saved_epoch
        saved_epoch = epoch
        meta = {"epoch": epoch, "train_time_s": train_time, "wall_s": clock(), "stop_reason": stop,
                "verified_at_s": verified_at, "metrics_records": metrics.count,
                **(corrector.state_meta() if corrector else {})}  # fmt: skip
        ckpt.save_checkpoint(run_dir, state, norm, config_dict, meta, corrector.state_arrays() if corrector else None)

    result = evaluate(state, data, norm, tc.tolerance, tc.loss)
    if meta["stop_reason"] == "verified":  # the run is over: resumed, it only writes its results again
        return _finish(cfg, run_dir, data, norm, result, corrector, state, metrics, "verified", meta["verified_at_s"],
                       train_time, clock())  # fmt: skip
    budget = tc.loop_epochs if tc.loop != "normal" and tc.loop_epochs else tc.epochs
    bar = tqdm(range(start_epoch, budget), initial=start_epoch, total=budget, desc=f"train {data.name} ({tc.loop})",
               disable=not tc.progress, unit="epoch")  # fmt: skip
    stop_reason, verified_at = "epochs done", None
    epoch = start_epoch
    for epoch in bar:
        if tc.loop != "normal" and clock() > tc.max_wall_s:
            stop_reason = f"wall-clock budget of {tc.max_wall_s:g}s spent before the model was verified"
            epoch -= 1
            if saved_epoch != epoch + 1:  # the weights the summary reports are the ones saved
                save(epoch + 1)
            break
        t0 = time.perf_counter()
        pool, regions = (corrector.pool(), corrector.pair_regions()) if corrector else (None, None)
        cert = corrector.certify(epoch) if corrector else None
        state, loss = train_epoch(state, x_train, y_train, epoch_key(tc.seed, epoch), tc.batch_size, pool, tc.lam,
                                  tc.pair_batch, regions, tc.eps, tc.margin, tc.slope_hinge, cert,
                                  tc.cert_boxes, tc.cert_full_boxes, tc.loss)  # fmt: skip
        jax.block_until_ready(loss)
        train_time += time.perf_counter() - t0
        if corrector and tc.loop != "normal" and epoch == start_epoch:  # compiled: the verifier's turn, beside it
            corrector.warm_up(to_relu_network(state.params, model=model))
        result = evaluate(state, data, norm, tc.tolerance, tc.loss)
        metrics.write({"epoch": epoch + 1, "train_time_s": train_time, "wall_s": clock(), "batch_loss": float(loss),
                       **result})  # fmt: skip
        bar.set_postfix(loss=f"{float(loss):.2e}", test_acc=f"{result['test']['accuracy']:.3f}")
        if corrector and corrector.due(epoch + 1, result["train"]["accuracy"]):
            rnd = corrector.verify(to_relu_network(state.params, model=model), epoch + 1, clock(),
                                   final=epoch + 1 == budget)  # fmt: skip
            metrics.write(rnd.record(corrector.specs))
            log.info("%s", rnd.log_line(corrector.specs, data.feature_names))
            if rnd.all_verified and len(rnd.verdicts) == len(corrector.specs) and epoch + 1 >= tc.min_epochs:
                stop_reason, verified_at = "verified", clock()
                save(epoch + 1, stop_reason)
                epoch += 1
                break
            if tc.reset_weights:
                state = create_state(model, cfg.optim, n_features, tc.seed + 1000 * rnd.index)
            save(epoch + 1)  # a round changed the corrector: its state is saved with the weights
        elif (epoch + 1) % tc.save_every == 0 or epoch + 1 == budget:
            save(epoch + 1)
    else:
        epoch = budget
        if tc.loop != "normal":
            stop_reason = f"epoch budget of {budget} spent before the model was verified"

    trained_at = clock()  # the normal loop's verification below is a measurement, not training
    if tc.loop == "normal" and corrector:
        rnd = corrector.verify(to_relu_network(state.params, model=model), epoch, clock())
        metrics.write(rnd.record(corrector.specs))
        log.info("%s", rnd.log_line(corrector.specs, data.feature_names))
        if rnd.all_verified:
            verified_at = clock()
    return _finish(cfg, run_dir, data, norm, result, corrector, state, metrics, stop_reason, verified_at, train_time,
                   clock(), trained_at)  # fmt: skip


def _finish(cfg: Config, run_dir: Path, data: Dataset, norm: MinMaxNormalizer, result: dict,
            corrector: Corrector | None, state, metrics: MetricsLog, stop_reason: str, verified_at: float | None,
            train_time: float, wall: float, trained_at: float | None = None) -> dict[str, Any]:  # fmt: skip
    records = metrics.read()
    metrics.close()
    if corrector:
        corrector.close()
    title = f"{data.name}: {data.target_name} ({cfg.train.loop})"
    plot_training_curve(records, run_dir / "training_curve.png", title=title)
    if corrector:
        plot_wall_time(records, run_dir / "wall_time.png", title=title)
    latest = _final_verdicts(corrector)
    module = build_model(cfg.model, data.feature_names, cfg.spec)  # the converter needs the baselines' signs
    net = to_relu_network(state.params, model=module) if corrector else None
    # Calibrate the final function on the held-out rows before any certificate binds it.
    served = net or to_relu_network(state.params, model=module)
    # (not a bce run's: conformal intervals around a logit say nothing about a 0/1 target)
    calibration = None if cfg.train.loss == "bce" else fit_calibration(cfg.calibration, served, norm, data.x_cal,
                                                                       data.y_cal, seed=cfg.data.seed)  # fmt: skip
    save_calibration(run_dir, calibration)
    verified = bool(corrector) and len(latest) == len(corrector.specs) and verified_at is not None
    summary = {
        "name": cfg.name,
        "data": data.name,
        "target": data.target_name,
        "features": data.feature_names,
        "n_train": len(data.x_train),
        "n_test": len(data.x_test),
        "loop": cfg.train.loop,
        "epochs": cfg.train.epochs,
        "train_time_s": train_time,
        "wall_time_s": wall,
        "training_wall_s": wall if trained_at is None else trained_at,  # without the normal loop's final check
        "train": result["train"],
        "test": result["test"],
        "tolerance": cfg.train.tolerance,
        "loss": cfg.train.loss,
        "verified": verified,
        "stop_reason": stop_reason if corrector else "epochs done",
        "time_to_verified_s": verified_at,
        "rounds": len(corrector.rounds) if corrector else 0,
        "counterexamples": len(corrector.pairs) if corrector else 0,
        "counterexample_accuracy": corrector.counterexample_accuracy(net) if corrector else None,
        "verdicts": [
            {"spec": corrector.specs[i].to_dict().get("name") or corrector.specs[i].kind, "round": r,
             "status": v.status.value, "verified_fraction": v.verified_fraction, "time_s": v.wall_time_s}
            for i, (r, v) in sorted(latest.items())
        ],
        "run_dir": str(run_dir),
        "calibration": None if calibration is None else {
            "method": calibration.method, "n_rows": len(data.x_cal),
            "test": coverage_report(calibration, served, norm, data.x_test, data.y_test)},
    }
    if corrector and corrector.rounds and corrector.rounds[-1].fingerprint == network_fingerprint(net):
        # The last round verified exactly the final weights: its verdicts are the run's certificate.
        last = corrector.rounds[-1]
        save_verdicts(run_dir / "verify" / "training", net, norm, [last.verdicts[i] for i in sorted(last.verdicts)],
                      calibration=calibration.to_dict() if calibration else None, run_dir=str(run_dir),
                      spec_set=cfg.spec.name, round=last.index,
                      verifier={"name": cfg.verifier.name, "time_budget_s": cfg.verifier.time_budget_s,
                                "options": dict(cfg.verifier.options)})  # fmt: skip
    # a spec not VERIFIED has a pocket left, however small its share rounds to: never a volume of 1
    vols = [v["verified_fraction"] if v["status"] == "VERIFIED" else min(v["verified_fraction"], np.nextafter(1.0, 0.0))
            for v in summary["verdicts"]]  # fmt: skip
    summary["verified_volume"] = float(np.mean(vols)) if vols else None
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    log.info("test accuracy %.4f (tol %.3g), RMSE %.4g, R2 %.3f; %s", summary["test"]["accuracy"],
             cfg.train.tolerance, summary["test"]["rmse"], summary["test"]["r2"], summary["stop_reason"])  # fmt: skip
    return summary
