"""Collect real co-location data: ``python -m vpals_jax.collect app=redis points=200 out=data/real``.

Arguments are Hydra overrides of ``conf/collect.yaml`` (``key=value``, nested as ``sweep.app_quota_cores=[0.5,1.0]``).
Needs root (cgroup writes) and the apps from Debian packages; see docs/collect.md.
"""

from __future__ import annotations

import json
import logging
import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from vpals_jax.cli import fail

log = logging.getLogger("vpals_jax.collect")


@hydra.main(version_base="1.3", config_path="../conf", config_name="collect")
def main(cfg: DictConfig) -> None:
    from vpals_jax.data.collect.harness import run

    c = OmegaConf.to_container(cfg, resolve=True)
    progress = bool(c.pop("progress", True))
    try:
        summary = run(c, progress=progress)
    except KeyboardInterrupt as e:
        log.error("interrupted (%s); finished points are kept, re-run the same command to resume", e or "SIGINT")
        sys.exit(130)
    except (ValueError, FileNotFoundError, PermissionError) as e:
        fail("vpals-collect", e)
    log.info("summary: %s", json.dumps(summary))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
