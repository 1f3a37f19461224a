"""What a deployment requires before a row may be served as ``verified``: its spec set, by content.

The required spec set is, in this order of precedence:

* the serving config's ``spec``: a name under ``conf/spec/`` or a path to a spec YAML file, or
  a spec-set mapping (``SafePredictor.load(spec=...)``, ``vpals-predict spec=...``);
* otherwise the spec set the run was configured with: the ``spec`` section of its saved config
  (its content — the specs trained and verified against — not only its name).

It is built into network space with the served normaliser (``vpals_jax.spec_files.build_specs``) and
compared with certificates by content (``vpals_jax.certificate.spec_digest``). A run whose
config lists no specs requires nothing that can be proven, so nothing is served as verified.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from verifiers import Spec
from vpals_jax.config import SpecSetConfig
from vpals_jax.data.normalizer import MinMaxNormalizer
from vpals_jax.spec_files import build_specs

log = logging.getLogger(__name__)

SPEC_DIR = Path(__file__).resolve().parents[1] / "conf" / "spec"  # vpals_jax/conf, installed or not

SpecRef = str | Mapping[str, Any] | SpecSetConfig


def load_spec_set(ref: str) -> dict[str, Any]:
    """A spec set from ``conf/spec/<ref>.yaml`` or from the YAML file ``ref``."""
    path = Path(ref) if ref.endswith((".yaml", ".yml")) else SPEC_DIR / f"{ref}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"spec set {ref!r}: no file {path}")
    node = OmegaConf.load(path)
    if not OmegaConf.is_dict(node):
        raise ValueError(f"spec set {ref!r}: {path} is not a mapping")
    return OmegaConf.to_container(node, resolve=True)  # type: ignore[return-value]


def required_specs(config: Mapping[str, Any], normalizer: MinMaxNormalizer, spec: SpecRef | None = None) -> list[Spec]:
    """The deployment's required specs in network space (see the module docstring); [] if none."""
    cfg: Any = load_spec_set(spec) if isinstance(spec, str) else spec
    if cfg is None:
        cfg = config.get("spec") or {}
    listed = cfg.get("specs") if isinstance(cfg, Mapping) else cfg.specs
    if not listed:
        log.warning("no spec set is required (the run's config lists none): nothing is served as verified")
        return []
    return build_specs(cfg, normalizer)
