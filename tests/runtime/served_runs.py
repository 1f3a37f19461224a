"""Runs for the runtime tests: a certified monotone model, and re-saves of it through the checkpoint API.

Re-saving (``resave``) models a deployment whose artefacts were replaced consistently — the
checkpoint's own integrity checks pass — so only the certificate's binding can stop them.
"""

from __future__ import annotations

import functools
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from helpers import PSI_LIMIT, SPEC_SET, write_monotone_run

from vpals_jax.certificate import save_verdicts
from vpals_jax.config import CalibrationConfig, ModelConfig, OptimConfig, SpecSetConfig, VerifierConfig
from vpals_jax.convert import load_network
from vpals_jax.data import schema
from vpals_jax.data.normalizer import MinMaxNormalizer
from vpals_jax.models import build_model
from vpals_jax.spec_files import build_specs
from vpals_jax.train import checkpoint as ckpt
from vpals_jax.train.calibrate import fit_calibration, save_calibration
from vpals_jax.train.steps import create_state
from vpals_jax.verify import verify_network, verify_run

FEATS = list(schema.FEATURES)
PSI = FEATS.index("cg_psi_cpu_some_pct")

# The deployment's spec set: monotone in every pressure feature and the CPU quota, never negative,
# with cg cpu some pressure in [0, PSI_LIMIT] % and the rest over the training domain.
SERVED_SPEC: dict[str, Any] = {
    "name": SPEC_SET,
    "space": "raw",
    "region": {"default": "domain", "cg_psi_cpu_some_pct": [0.0, PSI_LIMIT]},
    "specs": [{"kind": "monotonicity", "feature": f, "direction": "increasing"} for f in FEATS if "_psi_" in f]
    + [{"kind": "monotonicity", "feature": "cpu_quota_cores", "direction": "decreasing"},
       {"kind": "output_bound", "lower": 0.0}],
}  # fmt: skip


@functools.lru_cache
def _template(depth: int, width: int, n_features: int):
    return create_state(build_model(ModelConfig(depth=depth, width=width)), OptimConfig(), n_features, seed=0)


def resave(
    run_dir: Path, params: dict | None = None, normalizer: MinMaxNormalizer | None = None, config: dict | None = None
) -> None:
    """Save the run's checkpoint again with any of its parameters, normaliser or config replaced."""
    old_params, old_norm, old_config, meta = ckpt.load_checkpoint(run_dir)
    params, normalizer, config = params or old_params, normalizer or old_norm, config or old_config
    model = old_config["model"]
    state = _template(model["depth"], model["width"], len(normalizer.feature_names)).replace(params=params)
    ckpt.save_checkpoint(run_dir, state, normalizer, config, meta)


def certified_run_at(run_dir: Path, seed: int = 0) -> tuple[Path, MinMaxNormalizer]:
    """A monotone run configured with ``SERVED_SPEC`` and a certificate proving it."""
    run_dir, norm = write_monotone_run(run_dir, seed=seed)
    resave(run_dir, config={**ckpt.load_checkpoint(run_dir)[2], "spec": SERVED_SPEC})
    verdicts = verify_run(run_dir, SpecSetConfig(**SERVED_SPEC), VerifierConfig(name="ouroboros", time_budget_s=30.0),
                          run_dir / "verify" / SPEC_SET)  # fmt: skip
    assert all(v.status.value == "VERIFIED" for v in verdicts), [v.status for v in verdicts]
    return run_dir, norm


def inside_rows(norm: MinMaxNormalizer, n: int = 50, seed: int = 1) -> np.ndarray:
    """Rows in the training domain with the certified feature inside [0, PSI_LIMIT]."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(norm.x_min, norm.x_max, size=(n, len(FEATS)))
    x[:, PSI] = rng.uniform(norm.x_min[PSI], PSI_LIMIT, size=n)
    return x


def calibrated_run_at(certified: Path, run: Path) -> tuple[Path, MinMaxNormalizer]:
    """A copy of a certified run with a Mondrian calibration (log-normal noise around the model),
    certified again with the calibration bound in; the old certificate, of the function without
    a calibration, is removed, as a run calibrated at training time never has one."""
    shutil.copytree(certified, run)
    shutil.rmtree(run / "verify")
    net, norm, _ = load_network(str(run))
    x = inside_rows(norm, n=400, seed=2)
    noise = np.exp(0.05 * np.random.default_rng(0).standard_normal(len(x)))
    cal = fit_calibration(CalibrationConfig(method="mondrian"), net, norm, x,
                          norm.inverse_y(net.forward(norm.transform_x(x))[:, 0]) * noise)  # fmt: skip
    save_calibration(run, cal)
    verdicts = verify_network(net, build_specs(SpecSetConfig(**SERVED_SPEC), norm),
                              VerifierConfig(name="ouroboros", time_budget_s=30.0))  # fmt: skip
    save_verdicts(run / "verify" / "calibrated", net, norm, verdicts, calibration=cal.to_dict())
    return run, norm
