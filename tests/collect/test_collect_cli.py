"""The collection entry point: bad input is one line and exit code 2, before anything is started."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FX = Path(__file__).parent / "fixtures"


def collect(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vpals_jax.collector", "progress=false", *args],
                          check=False, cwd=ROOT, capture_output=True, text=True, timeout=120)  # fmt: skip


def test_unknown_app_is_one_line(tmp_path):
    proc = collect("app=nosuch", "points=1", f"out={tmp_path}")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "vpals-collect: error: unknown app 'nosuch'; choose from ['mariadb', 'nginx', 'redis']"
    )


def test_output_of_another_plan_is_one_line_and_left_alone(tmp_path, fake_tools, cgroupfs):
    """The tools (fakes, first on PATH) and a cgroup tree are there: only the plan stops the sweep."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "redis.meta.json").write_text(json.dumps({"plan_signature": "another"}))
    (out / "redis.csv").write_text("point_id\n0\n")
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in out.iterdir()}
    proc = collect("app=redis", "points=2", f"out={out}", f"cgroup_root={cgroupfs.root}",
                   f"proc_root={FX / 'v2' / 'a' / 'proc'}", f"hydra.run.dir={tmp_path / 'hydra'}")  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    line = f"vpals-collect: error: {out / 'redis.csv'} was collected with another plan (seed/sweep/baseline_every); "
    assert proc.stderr.strip().splitlines() == [line + "use another out= or the same settings"]
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in out.iterdir()} == before
    assert fake_tools.calls() == [] and not list(cgroupfs.root.glob("vpals-*"))
