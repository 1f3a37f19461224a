"""``python -m vpals_jax.train`` / ``vpals-train``: the thin Hydra entry point."""

from __future__ import annotations

import logging
import sys
from logging.handlers import MemoryHandler
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from vpals_jax.cli import fail
from vpals_jax.cli_errors import one_line_config_errors
from vpals_jax.config import register_configs

register_configs()


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


@one_line_config_errors("vpals-train")
@hydra.main(version_base="1.3", config_path="../../conf", config_name="train")
def main(cfg: DictConfig) -> float:
    """Train; return the test accuracy (Hydra sweepers can optimise it)."""
    from vpals_jax.train.trainer import run_training

    try:
        summary = run_training(cfg, on_start=lambda _: start_run_files(cfg))
    except (ValueError, FileNotFoundError) as e:
        fail("vpals-train", e)
    acc = summary["test"]["accuracy"]
    print(f"{summary['data']}: test accuracy {acc:.4f} within tolerance {summary['tolerance']} "
          f"(RMSE {summary['test']['rmse']:.4g}, R2 {summary['test']['r2']:.3f}); run dir {summary['run_dir']}")  # fmt: skip
    return acc


if __name__ == "__main__":
    sys.exit(main())
