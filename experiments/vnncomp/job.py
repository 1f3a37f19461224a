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

import vpals_jax
from experiments.vnncomp.results import VNNCOMP_RESULT, read_instances
from vpals_jax.config import VerifierConfig

CONF_DIR = str(Path(vpals_jax.__file__).resolve().parent / "conf")  # the config tree, installed or not

_started = False  # the first job of a process carries its start-up time


@dataclass
class VnncompJobConfig:
    instances_csv: str = MISSING
    instance: int = 0
    timeout_s: float = 0.0  # > 0 overrides the csv's per-instance timeout
    cache_dir: str = "results/vnncomp/jax_cache"
    counterexample_dir: str = ""  # where sat witnesses go ("": the job's output folder)
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


def witness_file(cex_dir: Path, onnx_path: Path, vnnlib_path: Path) -> Path:
    """VNN-COMP's name for an instance's counterexample: ``<network>_<property>.counterexample``."""
    return cex_dir / f"{onnx_path.stem}_{vnnlib_path.stem}.counterexample"


def run_instance(csv_path: Path, index: int, verifier: VerifierConfig, timeout_s: float, cache_dir: Path,
                 cex_dir: Path | None = None) -> dict:  # fmt: skip
    """Decide instance ``index``; the result row of ``results.csv`` (``result.json`` of the job).

    A FALSIFIED verdict is ``sat`` only once one of its witnesses, written in VNN-COMP's format and
    read back, satisfies every assertion of the ``.vnnlib`` on the ONNX file's network
    (:func:`verifiers.io.counterexample.instance_witness`); the file then goes to ``cex_dir``.
    Otherwise the result is ``unknown``. The check is part of the instance's time, as in VNN-COMP."""
    global _started
    t0 = time.perf_counter()
    startup = 0.0 if _started else t0 - _T_IMPORT
    _started = True
    enable_compilation_cache(cache_dir)
    from verifiers import Status, get_verifier
    from verifiers.io import load_instance
    from verifiers.io.counterexample import WitnessCheck, instance_witness, write_witness

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
    result, message, witness, check = VNNCOMP_RESULT[v.status.value], v.message, None, None
    if v.status is Status.FALSIFIED:
        try:
            witness, check = instance_witness(onnx_path, vnnlib_path, v.counterexamples)
        except Exception as e:  # noqa: BLE001 - a witness that cannot be checked is never reported sat
            witness, check = None, WitnessCheck(False, f"the check itself failed: {e}", float("nan"), float("nan"))
        if witness is None:
            result = "unknown"
            message = f"no witness survived the re-check on the ONNX network ({check.reason if check else 'none'})"
    run = time.perf_counter() - t1
    total = startup + prepare + run
    result = result if total <= timeout_s else "timeout"
    cex_file = ""
    if cex_dir is not None:
        target = witness_file(cex_dir, onnx_path, vnnlib_path)
        if result == "sat":
            cex_file = str(write_witness(target, witness))
        else:
            target.unlink(missing_ok=True)  # a witness of an earlier run must not stand for this one
    return {**row, "result": result, "time_s": total, "startup_s": startup, "prepare_s": prepare, "run_s": run,
            "status": v.status.value, "worst_margin": v.worst_margin, "counterexample": cex_file,
            "cex_check": "" if check is None else ("passed" if check.ok else f"failed: {check.reason}"),
            "message": message[:300]}  # fmt: skip


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="vnncomp")
def main(cfg: DictConfig) -> None:
    typed: VnncompJobConfig = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(VnncompJobConfig), cfg))  # type: ignore[assignment]
    out = Path(HydraConfig.get().runtime.output_dir)
    cex_dir = Path(typed.counterexample_dir) if typed.counterexample_dir else out
    row = run_instance(Path(typed.instances_csv), typed.instance, typed.verifier, typed.timeout_s,
                       Path(typed.cache_dir), cex_dir)  # fmt: skip
    row["verifier"] = HydraConfig.get().runtime.choices.get("verifier", typed.verifier.name)
    (out / "result.json").write_text(json.dumps(row))


if __name__ == "__main__":
    sys.exit(main())
