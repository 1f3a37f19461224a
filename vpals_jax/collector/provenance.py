"""Where a data set was measured: kernel, OS, CPU, cgroup layout, tool and package versions.

Written into ``<out>/<app>.meta.json`` with every run, so a number in the CSV can be traced to the
machine and the code that produced it.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from vpals_jax.collector.apps import App, tool_version
from vpals_jax.collector.cgroups import Layout
from vpals_jax.collector.procfs import psi_available, read_system


def environment(app: App, layout: Layout, proc_root: str) -> dict:
    """The machine, the software and the tools of this run."""
    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path(proc_root, "cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    return {
        "kernel": " ".join(platform.uname()),
        "os": _os_release(),
        "python": sys.version.split()[0],
        "vpals_jax": _package_version(),
        "git_commit": _git_commit(),
        "pandas": pd.__version__,
        "numpy": np.__version__,
        "cpu_model": cpu_model,
        "ncpu": os.cpu_count(),
        "mem_total_mb": read_system(proc_root).meminfo.get("MemTotal"),
        "layout": layout.describe(),
        "psi_available": psi_available(proc_root),
        "tools": {**app.versions(), "stress-ng": tool_version(["stress-ng", "--version"])},
    }


def _package_version() -> str:
    try:
        return importlib.metadata.version("vpals-jax")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _git_commit() -> str:
    """The checkout's HEAD (provenance of the harness code), or "unknown" outside a git checkout."""
    try:
        r = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return r.stdout.strip() if r.returncode == 0 else "unknown"


def _os_release() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    return platform.platform()
