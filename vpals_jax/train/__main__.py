"""``python -m vpals_jax.train`` / ``vpals-train``: the thin Hydra entry point."""

from __future__ import annotations

import logging
import sys
from logging.handlers import MemoryHandler
from pathlib import Path
from typing import Any

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.plugins import Plugins
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from vpals_jax.cli import discard_job_dir, fail
from vpals_jax.cli_errors import one_line_config_errors
from vpals_jax.config import register_configs


def store_launcher_configs() -> None:
    """This project's settings of the launcher plugins, under the plugins' own names:
    ``hydra/launcher=joblib|submitit_local|submitit_slurm``.

    They are stored here, not as ``conf/hydra/launcher/<name>.yaml``: a config file named like a
    plugin's ConfigStore entry makes Hydra warn "validated against ConfigStore schema with the same
    name" in every process of a sweep. Hydra's plugin scan (re)stores the plugins' own entries, so
    it runs first (once per process; later calls reuse it). Without the ``launchers`` extra the
    plugins are absent and so are these names.
    """
    Plugins.instance()
    cs = ConfigStore.instance()
    try:
        from hydra_plugins.hydra_joblib_launcher.config import JobLibLauncherConf
    except ModuleNotFoundError:
        pass
    else:
        # Parallel jobs on this machine, in loky worker processes: JAX flags set in one job do not
        # leak into the others, unlike the basic in-process launcher.
        #   python -m vpals_jax.train -m hydra/launcher=joblib hydra.launcher.n_jobs=4 experiment=paper_linnos
        cs.store(group="hydra/launcher", name="joblib", node=JobLibLauncherConf(n_jobs=2), provider="vpals_jax")
    try:
        from hydra_plugins.hydra_submitit_launcher.config import LocalQueueConf, SlurmQueueConf
    except ModuleNotFoundError:
        return
    # submitit_local: one process per job (a clean JAX runtime each), with the submission, timeout
    # and requeue machinery of SLURM; try a sweep here before a cluster. Jobs re-launched into the
    # same sweep dir resume from their checkpoint (train.resume=true).
    cs.store(group="hydra/launcher", name="submitit_local", provider="vpals_jax",
             node=LocalQueueConf(timeout_min=60, cpus_per_task=1, mem_gb=4))  # fmt: skip
    # submitit_slurm: one array job per sweep; set hydra.launcher.partition / account. On preemption
    # or time-out submitit requeues a job (up to max_num_timeout times) and, with train.resume=true
    # (the experiment configs set it), it restores its checkpoint and goes on.
    #   python -m vpals_jax.train -m hydra/launcher=submitit_slurm hydra.launcher.partition=gpu experiment=paper_linnos
    cs.store(group="hydra/launcher", name="submitit_slurm", provider="vpals_jax",
             node=SlurmQueueConf(timeout_min=60, cpus_per_task=2, mem_gb=8, max_num_timeout=3, array_parallelism=64))  # fmt: skip


register_configs()
store_launcher_configs()


def start_run_files(cfg: DictConfig) -> None:
    """Once the run is accepted: write what Hydra's ``output_subdir`` would have written, and open
    the job's log file with the records logged so far.

    ``conf/train.yaml`` turns Hydra's own ``.hydra/`` copy off and buffers the log file's records
    (``conf/hydra/job_logging/buffered.yaml``): both would be written before the job could refuse a
    busy run directory or a checkpoint it cannot continue, and a refused run changes no file.
    """
    hydra_cfg = HydraConfig.instance().cfg
    out = Path(hydra_cfg.hydra.runtime.output_dir)
    (out / ".hydra").mkdir(exist_ok=True)
    files = {"config.yaml": cfg, "hydra.yaml": hydra_cfg, "overrides.yaml": hydra_cfg.hydra.overrides.task}
    for name, node in files.items():
        (out / ".hydra" / name).write_text(OmegaConf.to_yaml(node))
    root = logging.getLogger()
    for buffered in [h for h in root.handlers if isinstance(h, MemoryHandler) and h.target is None]:
        file = logging.FileHandler(out / f"{hydra_cfg.hydra.job.name}.log")
        file.setFormatter(buffered.formatter)
        buffered.setTarget(file)
        buffered.flush()
        root.addHandler(file)
        root.removeHandler(buffered)


class OptunaSearch(Callback):
    """Hydra callback of ``hparams_search``: an Optuna search without the libraries' start-up
    chatter, and at its end one line naming the best trial, its test accuracy, its run directory
    and the sweeper's ``optimization_results.yaml``."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # Before the sweeper imports optuna: alembic (its storage layer) logs "setup plugin ..."
        # lines at INFO, and optuna announces the in-memory study that Hydra's log already names.
        logging.getLogger("alembic").setLevel(logging.WARNING)
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep = Path(config.hydra.sweep.dir)
        results = sweep / "optimization_results.yaml"
        if not results.is_file():  # another sweeper, or the sweep failed before its end
            return
        best = OmegaConf.load(results)
        if "best_params" not in best:  # several objectives: a Pareto front, listed in the file
            print(f"Optuna search done: Pareto front in {results}")
            return
        overrides = [f"{key}={value}" for key, value in best.best_params.items()]
        jobs = [job.parents[1] for job in sorted(sweep.glob("*/.hydra/overrides.yaml"))
                if set(overrides) <= set(OmegaConf.load(job))]  # fmt: skip
        where = f", run dir {jobs[0]}" if jobs else ""
        print(f"best trial: {' '.join(overrides)}: test accuracy {best.best_value:.4f}{where}; "
              f"written to {results}")  # fmt: skip


@one_line_config_errors("vpals-train")
# "../conf" is vpals_jax/conf, the link to the repository's conf/ that installs as the package
# vpals_jax.conf: found next to this file (python -m) and as a package (the vpals-train script).
@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float:
    """Train; return the test accuracy (Hydra sweepers can optimise it)."""
    from vpals_jax.train.trainer import run_training

    try:
        summary = run_training(cfg, on_start=lambda _: start_run_files(cfg))
    except (ValueError, FileNotFoundError) as e:
        discard_job_dir(HydraConfig.get().runtime.output_dir)
        fail("vpals-train", e)
    acc = summary["test"]["accuracy"]
    print(f"{summary['data']}: test accuracy {acc:.4f} within tolerance {summary['tolerance']} "
          f"(RMSE {summary['test']['rmse']:.4g}, R2 {summary['test']['r2']:.3f}); run dir {summary['run_dir']}")  # fmt: skip
    return acc


if __name__ == "__main__":
    sys.exit(main())
