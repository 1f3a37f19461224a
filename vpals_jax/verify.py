"""Verify a trained run: ``python -m vpals_jax.verify run_dir=<run> spec=<name> verifier=<backend>``.

Loads the checkpoint, maps the spec set (raw units, feature names) into the network's space,
runs the chosen backend on every spec, prints one line per spec as it is decided and writes
``verdicts.json`` into a new subdirectory ``<run_dir>/verify/<time>_<spec>_<verifier>/``: a
certificate bound to the served function and to each spec's content (``vpals_jax.certificate``),
so verifying an overridden spec set under a familiar name (``spec=psi_monotone 'spec.specs=[...]'``)
certifies only that content.

The backends work on the normalised network; a person reads ms, % and cores. Each line therefore
gives margins, bounds and witnesses in the data's units first, normalised values in brackets.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import hydra
import numpy as np
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import MISSING, DictConfig, OmegaConf

from verifiers import ReluNetwork, Spec, Status, Verdict, get_verifier
from vpals_jax.certificate import save_verdicts
from vpals_jax.cli import discard_job_dir, fail
from vpals_jax.cli_errors import CONFIG_ERRORS, fail_config, one_line_config_errors
from vpals_jax.config import SpecSetConfig, VerifierConfig
from vpals_jax.data.normalizer import MinMaxNormalizer
from vpals_jax.data.schema import COLUMN_BY_NAME
from vpals_jax.spec_files import build_specs
from vpals_jax.train.calibrate import load_calibration


@dataclass
class VerifyConfig:
    run_dir: str = MISSING
    out_dir: str = MISSING
    spec: SpecSetConfig = field(default_factory=SpecSetConfig)
    verifier: VerifierConfig = field(default_factory=VerifierConfig)


def register_configs() -> None:
    cs = ConfigStore.instance()
    cs.store(name="verify_schema", node=VerifyConfig)


CONF_DIR = Path(__file__).resolve().parent / "conf"


def group_options(group: str) -> str:
    """``${vpals.options:spec}`` in a --help template: the options of one config group. Hydra's
    ``$APP_CONFIG_GROUPS`` lists every group of conf/, the training ones too."""
    return ", ".join(sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml")))


OmegaConf.register_new_resolver("vpals.options", group_options, replace=True)


def verify_network(
    net: ReluNetwork,
    specs: Sequence[Spec],
    verifier: VerifierConfig,
    on_verdict: Callable[[Verdict], None] | None = None,
) -> list[Verdict]:
    """Every spec with one backend; ``on_verdict`` sees each verdict as soon as it is decided."""
    backend = get_verifier(verifier.name, **dict(verifier.options))
    verdicts = []
    for spec in specs:
        verdicts.append(backend.verify(net, spec, time_budget_s=verifier.time_budget_s))
        if on_verdict is not None:
            on_verdict(verdicts[-1])
    return verdicts


# Units of columns outside the canonical schema (LinnOS, CardWiki...), read from the name's suffix.
_SUFFIX_UNITS = {"ms": "ms", "us": "us", "s": "s", "pct": "%", "mb": "MiB", "cores": "cores"}


def unit_of(name: str) -> str:
    """The unit a person reads a column in ("" when neither the schema nor the name tells)."""
    col = COLUMN_BY_NAME.get(name)
    return col.unit if col else _SUFFIX_UNITS.get(name.rsplit("_", 1)[-1], "")


def _q(value: float, unit: str) -> str:
    return f"{value:.4g} {unit}".rstrip() if unit != "%" else f"{value:.4g}%"


def _witness(v: Verdict, net: ReluNetwork, norm: MinMaxNormalizer) -> str:
    """The worst counterexample in raw units: the feature's move and the output's answer."""
    cex = max(v.counterexamples, key=lambda c: c.margin)
    target, t_unit = norm.target_name, unit_of(norm.target_name)
    points = [np.asarray(cex.x)] + ([] if cex.x_prime is None else [np.asarray(cex.x_prime)])
    f_raw = norm.inverse_y(net.forward(np.stack(points))[:, 0])
    if v.spec.get("kind") == "monotonicity" and cex.x_prime is not None:
        i = int(v.spec["feature"])
        name, unit = norm.feature_names[i], unit_of(norm.feature_names[i])
        a, b = norm.inverse_x(points[0])[i], norm.inverse_x(points[1])[i]
        return (f"{name} {_q(a, unit)} -> {_q(b, unit)} moves {target} {_q(f_raw[0], t_unit)} -> "
                f"{_q(f_raw[1], t_unit)}")  # fmt: skip
    return f"{target} = {_q(f_raw[0], t_unit)}"


def describe(v: Verdict, net: ReluNetwork, norm: MinMaxNormalizer) -> str:
    """One line a person reads: the spec (feature, direction), its verdict, and why.

    Margins and bounds of the built-in kinds are in the target's units (a slope bound per unit of
    the feature), normalised values in brackets; other kinds are shown normalised only.
    """
    kind, t_unit = v.spec.get("kind"), unit_of(norm.target_name)
    name = v.spec.get("name") or ("" if kind in ("monotonicity", "output_bound") else kind)
    if kind == "monotonicity":
        what = f"{norm.feature_names[int(v.spec['feature'])]} {v.spec['direction']}"
        name = what if name in ("", what) else f"{name} ({what})"
    elif kind == "output_bound":
        sides = [f"{side} {_q(float(norm.inverse_y(v.spec[key])), t_unit)}"
                 for side, key in ((">=", "lower"), ("<=", "upper")) if v.spec.get(key) is not None]  # fmt: skip
        what = f"{norm.target_name} {' and '.join(sides)}"
        name = f"{name} ({what})" if name else what
    line = f"{name}: {v.status.value} in {v.wall_time_s:.2f} s"
    if v.status is Status.FALSIFIED and v.counterexamples and kind in ("monotonicity", "output_bound"):
        margin = max(c.margin for c in v.counterexamples)
        line += (f", violated by {_q(margin * norm.y_scale, t_unit)} [{margin:.4g} normalised]: "
                 f"{_witness(v, net, norm)}")  # fmt: skip
    elif v.status is Status.FALSIFIED and v.counterexamples:
        line += f", violated by {max(c.margin for c in v.counterexamples):.3g} (normalised)"
    if v.status in (Status.UNKNOWN, Status.TIMEOUT):
        line += f", {v.verified_fraction:.1%} of the region proven"
        if v.best_bound is not None and kind == "monotonicity":
            i = int(v.spec["feature"])
            sign = 1.0 if v.spec["direction"] == "increasing" else -1.0
            bound = sign * v.best_bound  # best_bound bounds sign * df/dx_i from below
            per = unit_of(norm.feature_names[i]) or "unit"
            line += (f", slope proven {'>=' if sign > 0 else '<='} {bound * norm.y_scale / norm.x_scale[i]:.4g} "
                     f"{t_unit or 'output'}/{per} [{bound:.4g} normalised]")  # fmt: skip
        elif v.best_bound is not None and kind == "output_bound":
            line += f", worst slack {_q(v.best_bound * norm.y_scale, t_unit)} [{v.best_bound:.4g} normalised]"
    message = v.message.strip().splitlines()[0] if v.message.strip() else ""
    if message and v.status is not Status.FALSIFIED:
        line += f": {message}"
    return line


def verify_run(
    run_dir: str | Path,
    spec: SpecSetConfig,
    verifier: VerifierConfig,
    out_dir: str | Path,
    on_line: Callable[[str], None] | None = None,
) -> list[Verdict]:
    """Hydra-free: verify every spec of ``spec`` on the run's checkpoint, write verdicts.json;
    ``on_line`` receives :func:`describe`'s line of each spec as it is decided."""
    from vpals_jax.convert import load_network

    net, normalizer, _ = load_network(str(run_dir))
    specs = build_specs(spec, normalizer)
    count = 0

    def show(v: Verdict) -> None:
        nonlocal count
        count += 1
        if on_line is not None:
            on_line(f"[{count}/{len(specs)}] {describe(v, net, normalizer)}")

    verdicts = verify_network(net, specs, verifier, show)
    # the served function includes its calibrated intervals: a certificate binds them too
    calibration = load_calibration(run_dir, normalizer)
    save_verdicts(out_dir, net, normalizer, verdicts, run_dir=str(run_dir), spec_set=spec.name,
                  calibration=calibration.to_dict() if calibration else None,
                  verifier={"name": verifier.name, "time_budget_s": verifier.time_budget_s,
                            "options": dict(verifier.options)})  # fmt: skip
    return verdicts


def totals(verdicts: Sequence[Verdict]) -> str:
    """``15 specs: 13 VERIFIED, 2 FALSIFIED`` in the order of the statuses."""
    counts = {s.value: sum(v.status is s for v in verdicts) for s in Status}
    return f"{len(verdicts)} specs: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n)


register_configs()


@one_line_config_errors("vpals-verify")
# "conf" is vpals_jax/conf (the package vpals_jax.conf, a link to the repository's conf/), found
# from a checkout, an editable install and a regular install alike.
@hydra.main(version_base="1.3", config_path="conf", config_name="verify")
def main(cfg: DictConfig) -> None:
    try:
        typed: VerifyConfig = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(VerifyConfig), cfg))  # type: ignore[assignment]
        verdicts = verify_run(typed.run_dir, typed.spec, typed.verifier, typed.out_dir,
                              on_line=lambda line: print(line, flush=True))  # fmt: skip
    except CONFIG_ERRORS as e:  # a value the job reads only now, such as run_dir when hydra.run.dir is given
        discard_job_dir(HydraConfig.get().runtime.output_dir)
        fail_config("vpals-verify", e)
    except (ValueError, FileNotFoundError) as e:
        discard_job_dir(HydraConfig.get().runtime.output_dir)
        fail("vpals-verify", e)
    print(f"{totals(verdicts)}; verdicts written to {Path(typed.out_dir) / 'verdicts.json'}")


if __name__ == "__main__":
    sys.exit(main())
