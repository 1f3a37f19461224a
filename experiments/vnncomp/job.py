"""One VNN-COMP instance: load it, decide it with one backend, write ``result.json``.

Hydra app (``conf/vnncomp.yaml``) so that instances sweep as a multirun: ``python -m
experiments.vnncomp.job -m instances_csv=I instance=range(0,N) verifier=crown``. Times follow
VNN-COMP: the reported time includes this process's start-up (imports, for the first instance a
process runs) and JIT compilation. JAX's persistent compilation cache (``cache_dir``) lets a
second process reuse what a first one compiled.
"""

from __future__ import annotations

import time

_T_IMPORT = time.perf_counter()  # before the heavy imports: their cost is start-up

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import MISSING, DictConfig, OmegaConf

from experiments.vnncomp.results import VNNCOMP_RESULT, read_instances
from vpals_jax.config import VerifierConfig

_started = False  # the first job of a process carries its start-up time


@dataclass
class VnncompJobConfig:
    instances_csv: str = MISSING
    instance: int = 0
    timeout_s: float = 0.0  # > 0 overrides the csv's per-instance timeout
    cache_dir: str = "results/vnncomp/jax_cache"
    verifier: VerifierConfig = field(default_factory=VerifierConfig)


ConfigStore.instance().store(name="vnncomp_job_schema", node=VnncompJobConfig)


def enable_compilation_cache(cache_dir: Path) -> None:
    """Every compiled XLA executable goes to ``cache_dir`` (no size or compile-time threshold), so
    a later process loads instead of compiling: the cold-start cost VNN-COMP counts."""
    import jax

    cache_dir.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(cache_dir))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def run_instance(csv_path: Path, index: int, verifier: VerifierConfig, timeout_s: float, cache_dir: Path) -> dict:
    """Decide instance ``index``; the result row of ``results.csv`` (``result.json`` of the job)."""
    global _started
    t0 = time.perf_counter()
    startup = 0.0 if _started else t0 - _T_IMPORT
    _started = True
    enable_compilation_cache(cache_dir)
    from verifiers import get_verifier
    from verifiers.io import load_instance

    onnx_path, vnnlib_path, csv_timeout = read_instances(csv_path)[index]
    timeout_s = timeout_s if timeout_s > 0 else csv_timeout
    row = {"index": index, "onnx": str(onnx_path), "vnnlib": str(vnnlib_path), "verifier": verifier.name,
           "timeout_s": timeout_s}  # fmt: skip
    try:
        net, spec, _prop = load_instance(onnx_path, vnnlib_path)
        backend = get_verifier(verifier.name, **dict(verifier.options))
    except (OSError, ValueError) as e:
        prepare = time.perf_counter() - t0
        return {**row, "result": "error", "time_s": startup + prepare, "startup_s": startup, "prepare_s": prepare,
                "run_s": 0.0, "message": str(e)[:300]}  # fmt: skip
    prepare = time.perf_counter() - t0
    budget = max(timeout_s - startup - prepare, 1e-3)
    t1 = time.perf_counter()
    v = backend.verify(net, spec, time_budget_s=budget)
    run = time.perf_counter() - t1
    total = startup + prepare + run
    result = VNNCOMP_RESULT[v.status.value] if total <= timeout_s else "timeout"
    return {**row, "result": result, "time_s": total, "startup_s": startup, "prepare_s": prepare, "run_s": run,
            "status": v.status.value, "worst_margin": v.worst_margin, "message": v.message[:300]}  # fmt: skip


@hydra.main(version_base="1.3", config_path="../../conf", config_name="vnncomp")
def main(cfg: DictConfig) -> None:
    typed: VnncompJobConfig = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(VnncompJobConfig), cfg))  # type: ignore[assignment]
    out = Path(HydraConfig.get().runtime.output_dir)
    row = run_instance(Path(typed.instances_csv), typed.instance, typed.verifier, typed.timeout_s,
                       Path(typed.cache_dir))  # fmt: skip
    row["verifier"] = HydraConfig.get().runtime.choices.get("verifier", typed.verifier.name)
    (out / "result.json").write_text(json.dumps(row))


if __name__ == "__main__":
    sys.exit(main())
