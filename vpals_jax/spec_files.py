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
an operator can write "never below 0 ms" without knowing the normaliser. A gradient spec::

      - {kind: directional_slope, direction: {cg_psi_cpu_some_pct: 1, cg_psi_mem_some_pct: 1}, lower: 0.0}

bounds the slope along a raw step (here +1 % of both) in target units per step
(``verifiers.DirectionalSlope.from_raw`` converts it). Any other kind registered with
``verifiers.register_spec`` is built by its class's ``from_raw`` (by default: values in network
space); an entry's ``plugin: my_module`` (a module name or a ``.py`` path) is imported first, so
a kind defined in a user's own file works from a spec file (``docs/extending.md``).

One spec set serves models trained on different feature subsets (a table without
``mem_limit_mb``): with ``missing_features: skip`` (the default) a monotonicity spec on a feature
the model does not take is skipped and region bounds on such features are dropped, both named in
a warning; ``missing_features: fail`` refuses them. Skipping stays sound: the network is constant
in a feature it does not take, so it is monotone in it, and a proof over a box without a bound on
such a feature covers every value of it. A set of which no spec applies is refused either way.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from verifiers import Box, Monotonicity, OutputBound, Spec
from verifiers.plugins import load_plugin
from verifiers.specs import RawUnits, spec_class
from vpals_jax.config import SpecSetConfig
from vpals_jax.data import schema
from vpals_jax.data.normalizer import MinMaxNormalizer
from vpals_jax.data.unified import APP_PREFIX, SCALED_SUFFIX

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


MISSING_FEATURES = ("skip", "fail")


def applicable_specs(
    cfg: SpecSetConfig | Mapping[str, Any], feature_names: Sequence[str]
) -> tuple[dict[str, Any], list[tuple[int, dict[str, Any]]], list[str]]:
    """(shared region, (position in the file, entry) of each spec kept, names of the skipped specs)
    of a spec set for a model taking ``feature_names``, under its ``missing_features`` policy."""
    get = cfg.get if isinstance(cfg, Mapping) else lambda k, d=None: getattr(cfg, k, d)
    policy = get("missing_features", "skip")
    if policy not in MISSING_FEATURES:
        raise ValueError(f"spec.missing_features must be one of {list(MISSING_FEATURES)}, got {policy!r}")
    known = set(feature_names)
    absent: list[str] = []

    def keep(region: Mapping[str, Any]) -> dict[str, Any]:
        absent.extend(k for k in region if k != "default" and k not in known and k not in absent)
        return {k: v for k, v in region.items() if k == "default" or k in known}

    shared = keep(get("region", None) or {"default": "domain"})
    kept, skipped = [], []
    for i, raw in enumerate(get("specs", []) or []):
        entry = dict(raw)
        if "region" in entry:
            entry["region"] = keep(entry["region"] or {})
        feature = entry.get("feature")
        if entry.get("kind", "monotonicity") == "monotonicity" and feature is not None and feature not in known:
            absent.extend([] if feature in absent else [feature])
            skipped.append(str(entry.get("name", f"{feature} {entry.get('direction')}")))
        else:
            kept.append((i, entry))
    named = ", ".join(_with_hint(f, feature_names) for f in absent)
    if absent and (policy == "fail" or not kept):
        why = "spec.missing_features=fail" if kept else "no spec applies to this model"
        raise ValueError(f"spec set {get('name', '?')!r}: unknown feature {named} ({why}); "
                         f"the model's features are {list(feature_names)}")  # fmt: skip
    if absent:
        log.warning("spec set %r: skipped %d spec(s) (%s); feature(s) the model does not take, their region "
                    "bounds dropped: %s", get("name", "?"), len(skipped), "; ".join(skipped) or "none", named)  # fmt: skip
    return shared, kept, skipped


def _with_hint(name: str, features: Sequence[str]) -> str:
    """A schema column is a feature the model was simply trained without; any other name may be a typo."""
    close = [] if name in schema.COLUMN_BY_NAME else difflib.get_close_matches(name, list(features), n=1)
    return repr(name) + (f" (did you mean {close[0]!r}?)" if close else "")


def build_specs(cfg: SpecSetConfig | Mapping[str, Any], normalizer: MinMaxNormalizer) -> list[Spec]:
    """Every applicable spec of a spec set as a verifier spec over the normalised network."""
    get = cfg.get if isinstance(cfg, Mapping) else lambda k, d=None: getattr(cfg, k, d)
    space = get("space", "raw")
    shared, entries, _ = applicable_specs(cfg, normalizer.feature_names)
    units = RawUnits(normalizer.feature_names, normalizer.x_scale, normalizer.y_min, normalizer.y_scale)
    specs: list[Spec] = []
    for i, entry in entries:
        if plugin := entry.pop("plugin", None):
            load_plugin(str(plugin))
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
            name = entry.get("name", kind)
            try:
                spec = spec_class(kind).from_raw(entry, region, units)
            except (KeyError, TypeError) as e:  # a missing or unexpected key of the kind's own
                raise ValueError(f"spec {i} ({name}): {type(e).__name__}: {e}") from e
            entry = {}
        if entry:
            raise ValueError(f"spec {i} ({name}): unknown key(s) {sorted(entry)}")
        specs.append(spec)
    if not specs:
        raise ValueError(f"spec set {get('name', '?')!r} lists no specs")
    _check_app_fixed(specs, normalizer, get("name", "?"))
    return specs


def _check_app_fixed(specs: Sequence[Spec], normalizer: MinMaxNormalizer, set_name: str) -> None:
    """A unified model (``data.source=unified``) takes the app as a one-hot input and its target scaled
    per app: a spec means something only per app, with every app column fixed (``vpals_jax.unified_specs``)."""
    if not normalizer.target_name.endswith(SCALED_SUFFIX):
        return
    for i, name in enumerate(normalizer.feature_names):
        if not name.startswith(APP_PREFIX):
            continue
        free = [s for s in specs if s.region.lower[i] != s.region.upper[i]]
        if free:
            raise ValueError(f"spec set {set_name!r} leaves the app input {name!r} free ({free[0].name!r}): a unified "
                             "model's specs hold per app; derive them with vpals_jax.unified_specs (docs/unified.md)")
