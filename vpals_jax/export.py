"""Export a trained run: ``vpals-export run_dir=<run> [formats=[onnx,nnet,vnnlib]] [spec=<set>]``.

Other tools (onnxruntime, Marabou, NNV, alpha-beta-CROWN, VNN-COMP runners) read networks and
properties, not checkpoints. This writes the run's network as ONNX and NNet, and each spec of a
spec set as a VNN-LIB instance (its ``.onnx`` plus ``.vnnlib``), with the normaliser folded in by
default (``raw_units=true``): the files take and give the data's units (%, cores, MiB -> ms), so
they are usable without this package. ``manifest.json`` names the inputs in order, the units and
the fingerprint of the served function the files come from.

Nothing is written until everything has been checked (run, formats, specs, output folder), and
an existing export is replaced only with ``overwrite=true``.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from verifiers import Box, Monotonicity, OutputBound, ReluNetwork, Spec
from verifiers.io import export_vnnlib, write_nnet, write_onnx
from vpals_jax.certificate import function_fingerprint
from vpals_jax.cli import fail
from vpals_jax.cli_errors import CONFIG_ERRORS, fail_config, one_line_config_errors
from vpals_jax.config import SpecSetConfig
from vpals_jax.data.normalizer import MinMaxNormalizer
from vpals_jax.spec_files import build_specs
from vpals_jax.verify import unit_of

FORMATS = ("onnx", "nnet", "vnnlib")


@dataclass
class ExportConfig:
    run_dir: str = MISSING
    out_dir: str = MISSING
    formats: list[str] = field(default_factory=lambda: list(FORMATS))
    raw_units: bool = True
    overwrite: bool = False
    spec: SpecSetConfig = field(default_factory=SpecSetConfig)


ConfigStore.instance().store(name="export_schema", node=ExportConfig)


def raw_spec(spec: Spec, norm: MinMaxNormalizer) -> Spec:
    """A built-in spec of the normalised network restated for the network with the normaliser
    folded in: the region in raw inputs, tolerances and bounds in the target's units."""
    region = Box(norm.inverse_x(spec.region.lower), norm.inverse_x(spec.region.upper))
    if isinstance(spec, Monotonicity):
        return Monotonicity(feature=spec.feature, direction=spec.direction, region=region,
                            tolerance=spec.tolerance * norm.y_scale, name=spec.name)  # fmt: skip
    if isinstance(spec, OutputBound):
        lo, hi = (None if v is None else float(norm.inverse_y(v)) for v in (spec.lower, spec.upper))
        return OutputBound(lower=lo, upper=hi, region=region, name=spec.name)
    raise ValueError(
        f"spec {spec.name or spec.kind!r}: kind {spec.kind!r} has no raw-unit form; export with raw_units=false"
    )


def _file_stem(k: int, spec: Spec, norm: MinMaxNormalizer) -> str:
    if isinstance(spec, Monotonicity):
        return f"{k:02d}_{norm.feature_names[spec.feature]}_{spec.direction}"
    return f"{k:02d}_{spec.kind}"


def write_export(
    out: Path, net: ReluNetwork, norm: MinMaxNormalizer, specs: list[Spec], formats: list[str], raw_units: bool,
    fingerprint: str,
) -> list[Path]:  # fmt: skip
    """Write the files into ``out`` (an empty folder); returns them, manifest last."""
    units = "normalised: every input and the output min-max scaled to [0, 1] on the training split"
    if raw_units:
        named = [f"{n} [{unit_of(n) or 'raw'}]" for n in (*norm.feature_names, norm.target_name)]
        units = f"raw: inputs {', '.join(named[:-1])}; output {named[-1]}"
    domain = Box(norm.x_min, norm.x_max) if raw_units else Box([0.0] * len(norm.x_min), [1.0] * len(norm.x_min))
    files: list[Path] = []
    if "onnx" in formats:
        files.append(write_onnx(net, out / "model.onnx"))
    if "nnet" in formats:
        files.append(write_nnet(net, out / "model.nnet", domain=domain, comment=f"vpals-jax export, {units}"))
    if "vnnlib" in formats:
        (out / "vnnlib").mkdir()
        for k, spec in enumerate(specs):
            stem = out / "vnnlib" / _file_stem(k, spec, norm)
            files += export_vnnlib(net, spec, stem.with_suffix(".onnx"), stem.with_suffix(".vnnlib"), units=units)
    manifest = {"function_sha256": fingerprint, "units": units, "raw_units": raw_units,
                "inputs": list(norm.feature_names), "output": norm.target_name,
                "files": [str(f.relative_to(out)) for f in files]}  # fmt: skip
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return [*files, out / "manifest.json"]


def export_run(cfg: ExportConfig) -> list[Path]:
    """Hydra-free: check everything, write into a temporary folder beside ``out_dir``, then move it
    into place, so a failure leaves no half export and an old one is replaced only when asked."""
    from vpals_jax.convert import load_network

    unknown = [f for f in cfg.formats if f not in FORMATS]
    if unknown or not cfg.formats:
        raise ValueError(f"formats: {unknown[0] if unknown else '[]'!r} is not one of {list(FORMATS)}")
    out = Path(cfg.out_dir)
    if out.exists() and any(out.iterdir()) and not cfg.overwrite:
        raise ValueError(f"out_dir {out} already holds files; pass overwrite=true to replace them")
    net_n, norm, _ = load_network(cfg.run_dir)
    net = load_network(cfg.run_dir, raw_units=True)[0] if cfg.raw_units else net_n
    specs = build_specs(cfg.spec, norm) if "vnnlib" in cfg.formats else []
    specs = [raw_spec(s, norm) for s in specs] if cfg.raw_units else specs
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        files = write_export(tmp, net, norm, specs, list(cfg.formats), cfg.raw_units, function_fingerprint(net_n, norm))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return [out / f.relative_to(tmp) for f in files]


@one_line_config_errors("vpals-export")
@hydra.main(version_base="1.3", config_path="conf", config_name="export")
def main(cfg: DictConfig) -> None:
    try:
        typed: ExportConfig = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(ExportConfig), cfg))  # type: ignore[assignment]
        files = export_run(typed)
    except CONFIG_ERRORS as e:
        fail_config("vpals-export", e)
    except (ValueError, FileNotFoundError, TypeError) as e:
        fail("vpals-export", e)
    for f in files:
        print(f)
    print(f"{len(files)} files ({'raw units' if typed.raw_units else 'normalised'}) in {typed.out_dir}")


if __name__ == "__main__":
    sys.exit(main())
