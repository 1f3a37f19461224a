"""The collection entry point: bad input is one line and exit code 2, before anything is started."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_unknown_app_is_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "vpals_jax.collect", "app=nosuch", "points=1", f"out={tmp_path}"],
                          check=False, cwd=ROOT, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "vpals-collect: error: unknown app 'nosuch'; choose from ['mariadb', 'nginx', 'redis']"
    )
