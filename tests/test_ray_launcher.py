"""hydra/launcher=ray: a two-job sweep of vpals-train on a local Ray cluster (ray.init starts one
when no address is given) finishes both jobs, and the multirun callback writes its comparison.

The ray extra cannot live in .venv (hydra-ray-launcher pins cloudpickle<3, joblib 1.6 needs
cloudpickle>=3): `make test-ray` builds .venv-ray with it and runs this file. Elsewhere it skips.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytest.importorskip(
    "hydra_plugins.hydra_ray_launcher", reason="needs the ray extra (hydra-ray-launcher): run `make test-ray`"
)

pytestmark = pytest.mark.ray

ROOT = Path(__file__).resolve().parents[1]


def test_ray_launcher_sweep_on_a_local_cluster(tmp_path):
    sweep = tmp_path / "sweep"
    # Ray's session files (and its unix sockets, whose paths must stay short) in a directory of
    # this test's own, removed at the end; two CPUs, no dashboard.
    ray_tmp = tempfile.mkdtemp(prefix="vpals-ray-", dir="/tmp")
    cmd = [
        sys.executable, "-m", "vpals_jax.train", "-m", "hydra/launcher=ray", "+hydra.launcher.ray.init.num_cpus=2",
        "+hydra.launcher.ray.init.include_dashboard=false", f"+hydra.launcher.ray.init._temp_dir={ray_tmp}",
        "debug=fast", "train.epochs=1", "model.width=8,16", f"hydra.sweep.dir={sweep}",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # The jobs really went through the Ray launcher ...
    assert "hydra_ray_launcher" in (sweep / "multirun.yaml").read_text()
    # ... both finished ...
    for job in ("0", "1"):
        assert (sweep / job / "summary.json").is_file(), sorted(p.name for p in sweep.iterdir())
    # ... and the multirun callback (experiments.verified_training.AggregateSweep) compared them.
    comparison = (sweep / "comparison.md").read_text()
    assert "2 runs" in comparison and "model.width" in comparison and "best:" in comparison
    assert (sweep / "results.csv").is_file()
