"""``python -m vpals_jax.collector`` / ``vpals-collect``: collect real co-location data, e.g.
``vpals-collect app=redis points=200 out=data/real``.

Arguments are Hydra overrides of ``conf/collect.yaml`` (``key=value``, nested as ``sweep.app_quota_cores=[0.5,1.0]``).
Needs root (cgroup writes) and the apps from Debian packages; see docs/collect.md.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from vpals_jax.cli import fail
from vpals_jax.cli_errors import CONFIG_ERRORS, fail_config, one_line_config_errors

log = logging.getLogger("vpals_jax.collector")

# The harness takes these as they come (points=-1 planned nothing and exited 0): the smallest count
# allowed, whether a duration (seconds) must be positive rather than only non-negative, and the
# directories read before anything is started.
COUNTS = {"points": 1, "baseline_every": 0, "max_failures": 0, "max_server_restarts": 0}
SECONDS = {"warmup_s": False, "window_s": True, "max_wall_s": True}
DIRECTORIES = ("cgroup_root", "proc_root")


def check_args(c: dict[str, Any]) -> None:
    """Refuse a bad argument before any cgroup or service is touched (one line naming the key)."""
    for key, least in COUNTS.items():
        v = c.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or v < least:
            raise ValueError(f"{key} must be an integer >= {least}, got {v!r}")
    for key, positive in SECONDS.items():
        v = c.get(key)
        number = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        if not number or v < 0 or (positive and v == 0):
            sign = "positive" if positive else "non-negative"
            raise ValueError(f"{key} must be a {sign} number of seconds, got {v!r}")
    for key in DIRECTORIES:
        if not Path(str(c.get(key))).is_dir():
            raise FileNotFoundError(f"{key}={c.get(key)}: no such directory")


@one_line_config_errors("vpals-collect")
@hydra.main(version_base="1.3", config_path="../conf", config_name="collect")
def main(cfg: DictConfig) -> None:
    # pandas and the harness load only once the config is composed: a typo is answered at once
    from vpals_jax.collector.harness import Refused, run

    try:
        c = OmegaConf.to_container(cfg, resolve=True)
        check_args(c)
        summary = run(c, progress=bool(c.pop("progress", True)))
    except KeyboardInterrupt as e:
        log.error("interrupted (%s); finished points are kept, re-run the same command to resume", e or "SIGINT")
        sys.exit(130)
    except CONFIG_ERRORS as e:
        fail_config("vpals-collect", e)
    except (ValueError, FileNotFoundError, PermissionError, Refused) as e:
        fail("vpals-collect", e)
    log.info("summary: %s", json.dumps(summary))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
