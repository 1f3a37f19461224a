"""``python -m vpals_jax.train`` / ``vpals-train``: the thin Hydra entry point."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from vpals_jax.cli import fail
from vpals_jax.config import register_configs

register_configs()


@hydra.main(version_base="1.3", config_path="../../conf", config_name="train")
def main(cfg: DictConfig) -> float:
    """Train; return the test accuracy (Hydra sweepers can optimise it)."""
    from vpals_jax.train.trainer import run_training

    try:
        summary = run_training(cfg)
    except (ValueError, FileNotFoundError) as e:
        fail("vpals-train", e)
    acc = summary["test"]["accuracy"]
    print(f"{summary['data']}: test accuracy {acc:.4f} within tolerance {summary['tolerance']} "
          f"(RMSE {summary['test']['rmse']:.4g}, R2 {summary['test']['r2']:.3f}); run dir {summary['run_dir']}")  # fmt: skip
    return acc


if __name__ == "__main__":
    sys.exit(main())
