"""One benchmark job: one verifier configuration on every instance of a saved suite.

Hydra app (``conf/bench_verifiers.yaml``) so that backends and methods sweep as a multirun:
``python -m experiments.bench_verifiers.job -m suite_dir=S verifier=ouroboros,crown,lirpa_crown``.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import hydra
import numpy as np
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import MISSING, DictConfig, OmegaConf
from tqdm.auto import tqdm

import vpals_jax
from experiments.bench_verifiers.suite import load_suite
from verifiers import get_verifier
from vpals_jax.config import VerifierConfig

CONF_DIR = str(Path(vpals_jax.__file__).resolve().parent / "conf")  # the config tree, installed or not


@dataclass
class BenchJobConfig:
    suite_dir: str = MISSING
    time_limit_s: float = 8.0
    verifier: VerifierConfig = field(default_factory=VerifierConfig)


ConfigStore.instance().store(name="bench_job_schema", node=BenchJobConfig)


def run_job(suite_dir: Path, verifier: VerifierConfig, label: str, time_limit_s: float, out: Path) -> Path:
    """Times include JIT compilation, as a user (and VNN-COMP) pays it: the first instance of each
    network shape carries it, and no job inherits what an earlier job of the process compiled. ``job.json`` holds the job's total wall time beside the per-instance
    times (a crown job once spent 237 s of wall time against 1.2 s of summed warm instance time)."""
    import jax

    jax.clear_caches()  # each backend compiles its own programs, as in a fresh process (basic launcher: one process)
    t0 = time.perf_counter()
    backend = get_verifier(verifier.name, **dict(verifier.options))
    out.mkdir(parents=True, exist_ok=True)
    suite = load_suite(suite_dir)
    path = out / "results.jsonl"
    with path.open("w") as f:
        for inst in tqdm(suite, desc=label, unit="instance"):
            v = backend.verify(inst.net, inst.spec, time_budget_s=time_limit_s)
            f.write(json.dumps({
                "instance": inst.name, "kind": inst.kind, "truth": inst.truth, "width": inst.width,
                "depth": inst.depth, "n_inputs": inst.net.n_inputs, "tolerance": inst.spec.to_dict().get("tolerance"),
                "spread": float(np.mean(inst.spec.region.widths)), "time_limit_s": time_limit_s,
                "verifier": label, "backend": verifier.name, "status": v.status.value, "time_s": v.wall_time_s,
                "compile_s": v.compile_s,
                "boxes": v.boxes, "best_bound": v.best_bound, "unresolved_fraction": v.unresolved_fraction,
                "verified_fraction": v.verified_fraction, "counterexamples": len(v.counterexamples),
                "worst_margin": v.worst_margin, "message": v.message[:300],
            }) + "\n")  # fmt: skip
            f.flush()
    (out / "job.json").write_text(json.dumps({"verifier": label, "wall_s": time.perf_counter() - t0}))
    return path


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="bench_verifiers")
def main(cfg: DictConfig) -> None:
    typed: BenchJobConfig = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(BenchJobConfig), cfg))  # type: ignore[assignment]
    label = HydraConfig.get().runtime.choices.get("verifier", typed.verifier.name)
    run_job(
        Path(typed.suite_dir), typed.verifier, label, typed.time_limit_s, Path(HydraConfig.get().runtime.output_dir)
    )


if __name__ == "__main__":
    sys.exit(main())
