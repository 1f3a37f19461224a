"""Verify a trained run: ``python -m vpals_jax.verify run_dir=<run> spec=<name> verifier=<backend>``.

Loads the checkpoint, maps the spec set (raw units, feature names) into the network's space,
runs the chosen backend on every spec, prints a table and writes ``verdicts.json`` into a new
subdirectory ``<run_dir>/verify/<time>_<spec>_<verifier>/``: a certificate bound to the served
function and to each spec's content (``vpals_jax.certificate``), so verifying an overridden spec
set under a familiar name (``spec=psi_monotone 'spec.specs=[...]'``) certifies only that content.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from verifiers import Verdict, get_verifier
from vpals_jax.certificate import save_verdicts
from vpals_jax.cli import fail
from vpals_jax.cli_errors import CONFIG_ERRORS, fail_config, one_line_config_errors
from vpals_jax.config import SpecSetConfig, VerifierConfig
from vpals_jax.spec_files import build_specs

log = logging.getLogger(__name__)


@dataclass
class VerifyConfig:
    run_dir: str = MISSING
    out_dir: str = MISSING
    spec: SpecSetConfig = field(default_factory=SpecSetConfig)
    verifier: VerifierConfig = field(default_factory=VerifierConfig)


def register_configs() -> None:
    cs = ConfigStore.instance()
    cs.store(name="verify_schema", node=VerifyConfig)


def verify_network(net, specs, verifier: VerifierConfig) -> list[Verdict]:
    backend = get_verifier(verifier.name, **dict(verifier.options))
    verdicts = []
    for spec in specs:
        v = backend.verify(net, spec, time_budget_s=verifier.time_budget_s)
        log.info("%s: %s in %.2fs (%d boxes)", getattr(spec, "name", spec.kind), v.status.value, v.wall_time_s, v.boxes)
        verdicts.append(v)
    return verdicts


def verdict_table(verdicts: list[Verdict]) -> str:
    head = f"{'spec':34} {'status':10} {'time_s':>8} {'boxes':>9} {'verified':>9} {'worst_margin':>13}"
    rows = [head, "-" * len(head)]
    for v in verdicts:
        margin = "" if v.worst_margin is None else f"{v.worst_margin:.3g}"
        rows.append(f"{(v.spec.get('name') or v.spec['kind'])[:34]:34} {v.status.value:10} {v.wall_time_s:8.2f} "
                    f"{v.boxes:9d} {v.verified_fraction:9.3f} {margin:>13}")  # fmt: skip
    return "\n".join(rows)


def verify_run(run_dir: str | Path, spec: SpecSetConfig, verifier: VerifierConfig, out_dir: str | Path) -> list[Verdict]:
    """Hydra-free: verify every spec of ``spec`` on the run's checkpoint, write verdicts.json."""
    from vpals_jax.convert import load_network

    net, normalizer, _ = load_network(str(run_dir))
    specs = build_specs(spec, normalizer)
    verdicts = verify_network(net, specs, verifier)
    save_verdicts(out_dir, net, normalizer, verdicts, run_dir=str(run_dir), spec_set=spec.name,
                  verifier={"name": verifier.name, "time_budget_s": verifier.time_budget_s,
                            "options": dict(verifier.options)})  # fmt: skip
    return verdicts


register_configs()
# "Unable to initialize backend 'tpu'" on every run without a TPU: JAX's platform probe, at INFO.
logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)


@one_line_config_errors("vpals-verify")
# "conf" is vpals_jax/conf (the package vpals_jax.conf, a link to the repository's conf/), found
# from a checkout, an editable install and a regular install alike.
@hydra.main(version_base="1.3", config_path="conf", config_name="verify")
def main(cfg: DictConfig) -> None:
    try:
        typed: VerifyConfig = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(VerifyConfig), cfg))  # type: ignore[assignment]
        verdicts = verify_run(typed.run_dir, typed.spec, typed.verifier, typed.out_dir)
    except CONFIG_ERRORS as e:  # a value the job reads only now, such as run_dir when hydra.run.dir is given
        fail_config("vpals-verify", e)
    except (ValueError, FileNotFoundError) as e:
        fail("vpals-verify", e)
    print(verdict_table(verdicts))
    print(f"verdicts written to {Path(typed.out_dir) / 'verdicts.json'}")


if __name__ == "__main__":
    sys.exit(main())
