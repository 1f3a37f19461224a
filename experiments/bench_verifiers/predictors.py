"""17-input latency predictors over whole domains: the suite's instances of the real use case.

Each app's predictor is trained twice with the project's own trainer on the synthetic data
(``data=synthetic data.app=<app>``): ``normal`` training (whole-domain monotonicity fails: the
backends race to a witness) and ``certified`` training (``train.loop=certified``: most specs are
provable, some only just, so proofs take the time). The specs are those of
``conf/spec/psi_monotone_tol.yaml`` over the whole training domain (14 monotone features,
tolerance 0.01 ms, and latency never negative). Ground truth is unknown: the report checks these
verdicts against the exact MILP and across backends.

Training is deterministic (seeded data, initialisation and shuffle; no verification rounds during
training: ``verify_every`` beyond the budget) and cached: a checkpoint under ``cache_dir`` keyed by
every training setting, defaults included, is loaded instead of trained again. Batch 64 over 4000
rows for 40 epochs was chosen by measurement (two loaded cores): the certified nginx model reaches test accuracy 0.89, crown
proves 12 of its 15 specs within 3 s, and three (``sys_psi_mem_full_pct``, ``sys_psi_io_full_pct``,
``cg_psi_io_full_pct``) stay undecided by crown, lirpa and MILP at 8 s (batch 256: accuracy
0.66-0.71 and no proof). The normal model is falsified on most specs within a second; its
``cg_psi_cpu_some_pct`` and output bound resisted some backends at 2 s.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from experiments.bench_verifiers.suite import Instance

SPEC_SET = "psi_monotone_tol"
# sys cpu some, sys mem full (hard when certified), cg cpu some, cpu quota, memory limit, output bound
QUICK_SPECS = (0, 3, 6, 12, 13, 14)
FULL_SPECS = tuple(range(15))  # every spec of psi_monotone_tol


@dataclass(frozen=True)
class Recipe:
    """Everything a trained predictor depends on (its cache key)."""

    app: str
    loop: str  # normal | certified
    width: int = 64
    depth: int = 2
    epochs: int = 40
    batch_size: int = 64
    n_samples: int = 4000
    seed: int = 0

    def config(self, run_dir: str):
        """The whole training config (every default included) of this recipe's run."""
        from vpals_jax.config import Config, DataConfig, ModelConfig, SpecSetConfig, TrainConfig
        from vpals_jax.runtime.requirement import load_spec_set

        train = TrainConfig(epochs=self.epochs, batch_size=self.batch_size, seed=self.seed, progress=False,
                            loop=self.loop, verify_every=10**9, accuracy_threshold=0.0,
                            cert_warmup=1, cert_ramp=self.epochs // 2)  # fmt: skip
        return Config(run_dir=run_dir, train=train, spec=SpecSetConfig(**load_spec_set(SPEC_SET)),
                      data=DataConfig(source="synthetic", app=self.app, n_samples=self.n_samples, seed=self.seed),
                      model=ModelConfig(depth=self.depth, width=self.width))  # fmt: skip

    def key(self) -> str:
        """Named by the recipe, hashed over the whole config: a changed default or spec file trains
        a new model instead of serving a cached one trained under other settings."""
        settings = asdict(self.config(""))
        digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:10]
        return f"{self.app}_{self.loop}_{self.depth}x{self.width}_{digest}"


def train_predictor(recipe: Recipe, cache_dir: Path) -> Path:
    """The run directory of ``recipe``'s model, trained now unless the cache holds it.

    Trained into a temporary folder and moved into place, so an interrupted run leaves no half
    checkpoint in the cache."""
    from vpals_jax.train.trainer import run_training

    run = cache_dir / recipe.key()
    if (run / "checkpoint").is_dir():
        return run
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=cache_dir, prefix=f".{recipe.key()}."))
    cfg = recipe.config(str(tmp))
    try:
        run_training(cfg)
        if run.exists():  # a concurrent run cached it first
            shutil.rmtree(tmp)
        else:
            tmp.rename(run)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return run


def predictor_instances(cache_dir: Path, apps: tuple[str, ...] = ("nginx",), quick: bool = True,
                        **recipe: int) -> list[Instance]:  # fmt: skip
    """Normal and certified predictors of each app, with the chosen specs of ``psi_monotone_tol``;
    ``recipe`` overrides :class:`Recipe` settings (the tests train tiny ones)."""
    from vpals_jax.convert import load_network
    from vpals_jax.runtime.requirement import load_spec_set
    from vpals_jax.spec_files import build_specs

    spec_set = load_spec_set(SPEC_SET)
    out = []
    for app in apps:
        for loop in ("normal", "certified"):
            rec = Recipe(app, loop, **recipe)
            net, norm, _ = load_network(str(train_predictor(rec, cache_dir)))
            specs = build_specs(spec_set, norm)
            if len(specs) != len(spec_set["specs"]):
                raise ValueError(f"{SPEC_SET}: {len(specs)} of {len(spec_set['specs'])} specs apply to {app}")
            names = [e.get("name") or e["feature"] for e in spec_set["specs"]]
            for k in QUICK_SPECS if quick else FULL_SPECS:
                tag = str(names[k]).replace(" ", "_")
                out.append(Instance(f"domain17_{app}_{loop}_{tag}", f"domain17_{loop}", net, specs[k], None,
                                    rec.width, rec.depth))  # fmt: skip
    return out
