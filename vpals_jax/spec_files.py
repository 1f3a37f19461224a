"""Specs written in raw units and feature names -> verifier specs in the network's input space.

A spec file (``conf/spec/<name>.yaml``) looks like::

    name: linnos
    space: normalized          # units of the region bounds: raw (the data's units) or normalized
    region:                    # shared by every spec unless a spec gives its own
      default: 0.5             # features not listed: "domain" (training range), a value, or [lo, hi]
      queue_len_h0: [0.4, 0.6]
    specs:                     # a spec's own region entries are laid over the shared region
      - {kind: monotonicity, feature: queue_len_now, direction: increasing, region: {queue_len_now: [0.1, 0.9]}}
      - {kind: output_bound, lower: 0.0}     # bounds and tolerances in the target's raw units

Tolerances and output bounds of the built-in kinds are in the target's raw units (ms, us...), so
an operator can write "never below 0 ms" without knowing the normaliser. Any other kind
registered with ``verifiers.register_spec`` is passed through with its values in network space.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from verifiers import Box, Monotonicity, OutputBound, Spec, spec_from_dict
from vpals_jax.config import SpecSetConfig
from vpals_jax.data.normalizer import MinMaxNormalizer

log = logging.getLogger(__name__)


def _interval(value: Any, feature: str, lo: float, hi: float) -> tuple[float, float]:
    if isinstance(value, str):
        if value != "domain":
            raise ValueError(f"region of {feature!r}: {value!r} is not 'domain', a number or [lower, upper]")
        return lo, hi
    if isinstance(value, (int, float)):
        return float(value), float(value)
    if isinstance(value, Sequence) and len(value) == 2:
        a, b = float(value[0]), float(value[1])
        if not (np.isfinite(a) and np.isfinite(b)):
            raise ValueError(f"region of {feature!r}: bounds must be finite, got {list(value)}")
        if a > b:
            raise ValueError(f"region of {feature!r}: lower {a} is greater than upper {b}")
        return a, b
    raise ValueError(f"region of {feature!r}: {value!r} is not 'domain', a number or [lower, upper]")


def build_region(region: Mapping[str, Any], normalizer: MinMaxNormalizer, space: str) -> Box:
    """A Box in normalised input space; warns (and still returns it) if it leaves the training domain."""
    if space not in ("raw", "normalized"):
        raise ValueError(f"spec space must be 'raw' or 'normalized', got {space!r}")
    names = list(normalizer.feature_names)
    unknown = [k for k in region if k != "default" and k not in names]
    if unknown:
        raise ValueError(f"region names unknown feature {unknown[0]!r}; the model's features are {names}")
    default = region.get("default", "domain")
    lower, upper = np.empty(len(names)), np.empty(len(names))
    for i, name in enumerate(names):
        lo, hi = (0.0, 1.0) if space == "normalized" else (normalizer.x_min[i], normalizer.x_max[i])
        a, b = _interval(region.get(name, default), name, lo, hi)
        if a < lo - 1e-9 or b > hi + 1e-9:
            log.warning("region of %r, [%g, %g], leaves the training domain [%g, %g]; verifying anyway",
                        name, a, b, lo, hi)  # fmt: skip
        lower[i], upper[i] = a, b
    if space == "raw":
        lower, upper = normalizer.transform_x(lower), normalizer.transform_x(upper)
    return Box(lower, upper)


def build_specs(cfg: SpecSetConfig | Mapping[str, Any], normalizer: MinMaxNormalizer) -> list[Spec]:
    """Every spec of a spec set as a verifier spec over the normalised network."""
    get = cfg.get if isinstance(cfg, Mapping) else lambda k, d=None: getattr(cfg, k, d)
    space = get("space", "raw")
    shared = get("region", None) or {"default": "domain"}
    specs: list[Spec] = []
    for i, raw in enumerate(get("specs", []) or []):
        entry = dict(raw)
        kind = entry.pop("kind", "monotonicity")
        region = build_region({**shared, **(entry.pop("region", None) or {})}, normalizer, space)
        if kind == "monotonicity":
            feature = entry.pop("feature")
            direction = entry.pop("direction")
            tol = float(entry.pop("tolerance", 0.0))
            if tol < 0:
                raise ValueError(f"spec {i} ({feature}): tolerance must be >= 0, got {tol}")
            name = entry.pop("name", f"{feature} {direction}")
            spec: Spec = Monotonicity(feature=normalizer.feature_index(feature), direction=direction, region=region,
                                      tolerance=tol / normalizer.y_scale, name=name)  # fmt: skip
        elif kind == "output_bound":
            lo, hi = entry.pop("lower", None), entry.pop("upper", None)
            name = entry.pop("name", f"output in [{lo}, {hi}]")
            spec = OutputBound(lower=None if lo is None else float(normalizer.transform_y(lo)),
                               upper=None if hi is None else float(normalizer.transform_y(hi)),
                               region=region, name=name)  # fmt: skip
        else:
            # Other registered kinds (verifiers.register_spec) take their values in network space.
            name = entry.get("name", kind)
            spec = spec_from_dict({"kind": kind, "region": region.to_dict(), **entry})
            entry = {}
        if entry:
            raise ValueError(f"spec {i} ({name}): unknown key(s) {sorted(entry)}")
        specs.append(spec)
    if not specs:
        raise ValueError(f"spec set {get('name', '?')!r} lists no specs")
    return specs
