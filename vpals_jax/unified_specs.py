"""Per-app spec sets for a unified model, generated from an ordinary per-app spec set.

A unified network (``data.source=unified``, ``vpals_jax.data.unified``) takes the app as a one-hot
input. What operators know still holds per application, so every spec of a per-app set (say
``psi_monotone_tol``) is asked once per app, over that app's region: its one-hot column fixed to
1 and the others to 0 (lower == upper, a box every verifier handles), its own training domain on
every other input. Writing that by hand would be one copy per app; here it is derived:

* ``domain`` (the shared region's default, or a feature's value) becomes the app's own ``[min,
  max]``; explicit values and intervals of the base set are kept;
* tolerances and output bounds, written in the target's units (ms), are converted into the
  unified target, which is scaled per app (``unified.target_scales``): ``t / scale``, ``(b - min) /
  scale``;
* each spec's name starts with ``"<app>: "``, so verdicts read per app.

The result is a plain spec-set mapping (``space: raw``) that :func:`vpals_jax.spec_files.build_specs`
turns into verifier specs; a run config can hold it as its ``spec``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from verifiers import Spec
from vpals_jax.data.normalizer import MinMaxNormalizer
from vpals_jax.data.unified import app_column, app_domains, apps_of
from vpals_jax.spec_files import build_specs

KINDS = ("monotonicity", "output_bound")


def _as_dict(cfg: Any) -> dict[str, Any]:
    if isinstance(cfg, Mapping):
        return dict(cfg)
    return {k: getattr(cfg, k) for k in ("name", "space", "region", "specs", "missing_features") if hasattr(cfg, k)}


def app_region(region: Mapping[str, Any], app: str, feature_names: Sequence[str], lo: np.ndarray,
               hi: np.ndarray) -> dict[str, Any]:  # fmt: skip
    """``region`` (a spec file's, raw units) over ``app``: its one-hot fixed, ``domain`` -> its own range."""
    apps = apps_of(feature_names)
    if named := [k for k in region if k in map(app_column, apps)]:
        raise ValueError(f"region names the app input {named[0]!r}; a per-app spec set fixes it per app")
    default = region.get("default", "domain")
    out: dict[str, Any] = {}
    for i, name in enumerate(feature_names):
        if name in map(app_column, apps):
            out[name] = 1.0 if name == app_column(app) else 0.0
            continue
        value = region.get(name, default)
        out[name] = [float(lo[i]), float(hi[i])] if value == "domain" else value
    return out


def per_app_spec_set(base: Any, app: str, feature_names: Sequence[str], domain: tuple[np.ndarray, np.ndarray],
                     scale: tuple[float, float]) -> dict[str, Any]:  # fmt: skip
    """The spec set ``base`` over ``app``'s region of a unified model, as a spec-file mapping.

    ``domain``: the app's raw ``(min, max)`` per input (``unified.app_domains``); ``scale``: its
    target's ``(min, max - min)`` (``unified.target_scales``).
    """
    cfg = _as_dict(base)
    if cfg.get("space", "raw") != "raw":
        raise ValueError(f"spec set {cfg.get('name')!r}: a per-app spec set is derived from one in raw units")
    lo, hi = domain
    y_min, y_scale = scale
    shared = dict(cfg.get("region") or {"default": "domain"})
    specs = []
    for i, raw in enumerate(cfg.get("specs") or []):
        entry = dict(raw)
        kind = entry.get("kind", "monotonicity")
        if kind not in KINDS:
            raise ValueError(f"spec {i} of {cfg.get('name')!r}: kind {kind!r} has no per-app form; use {list(KINDS)}")
        if kind == "monotonicity":
            entry.setdefault("name", f"{entry.get('feature')} {entry.get('direction')}")
            entry["tolerance"] = float(entry.get("tolerance", 0.0)) / y_scale
        else:
            entry.setdefault("name", f"output in [{entry.get('lower')}, {entry.get('upper')}]")
            for key in ("lower", "upper"):
                if entry.get(key) is not None:
                    entry[key] = (float(entry[key]) - y_min) / y_scale
        entry["name"] = f"{app}: {entry['name']}"
        if entry.get("region"):  # a spec's own region is laid over the shared one, then taken to the app
            entry["region"] = app_region({**shared, **entry["region"]}, app, feature_names, lo, hi)
        specs.append(entry)
    region = app_region(shared, app, feature_names, lo, hi)
    return {"name": f"{cfg.get('name', 'specs')}_{app}", "space": "raw", "region": region, "specs": specs,
            "missing_features": cfg.get("missing_features", "skip")}  # fmt: skip


def build_per_app_specs(bases: Mapping[str, Any], normalizer: MinMaxNormalizer,
                        domains: Mapping[str, tuple[np.ndarray, np.ndarray]],
                        scales: Mapping[str, tuple[float, float]]) -> dict[str, list[Spec]]:  # fmt: skip
    """Verifier specs per app of a unified model: ``bases[app]`` is that app's per-app spec set."""
    names = list(normalizer.feature_names)
    out = {}
    for app, base in bases.items():
        if app not in domains or app not in scales:
            raise ValueError(f"unknown app {app!r}; the model's apps with data are {sorted(domains)}")
        out[app] = build_specs(per_app_spec_set(base, app, names, domains[app], scales[app]), normalizer)
    return out


def combined_spec_set(bases: Mapping[str, Any], feature_names: Sequence[str],
                      domains: Mapping[str, tuple[np.ndarray, np.ndarray]], scales: Mapping[str, tuple[float, float]],
                      name: str = "per_app") -> dict[str, Any]:  # fmt: skip
    """Every app's set in one spec-file mapping, each spec carrying its app's region: what a run
    config's ``spec`` can hold (``SpecSetConfig(**...)``), so ``run_training``'s loops verify per app."""
    specs = []
    for app, base in bases.items():
        one = per_app_spec_set(base, app, feature_names, domains[app], scales[app])
        specs += [{**entry, "region": entry.get("region") or one["region"]} for entry in one["specs"]]
    missing = {_as_dict(b).get("missing_features", "skip") for b in bases.values()}
    return {"name": name, "space": "raw", "region": {"default": "domain"}, "specs": specs,
            "missing_features": "fail" if "fail" in missing else "skip"}  # fmt: skip


def run_specs(spec: Any, data: Any, normalizer: MinMaxNormalizer) -> list[Spec]:
    """The specs a training run verifies: ``spec`` itself for a per-app model; for a unified one
    (``data.target_scales`` set), ``spec`` asked per app over each app's own training domain, in
    the order of the app columns (what ``vpals-train data.source=unified`` proves)."""
    if not data.target_scales:
        return build_specs(spec, normalizer)
    domains = app_domains(data.x_train, data.feature_names)
    bases = {app: spec for app in apps_of(data.feature_names) if app in data.target_scales}
    per_app = build_per_app_specs(bases, normalizer, domains, data.target_scales)
    return [s for app in bases for s in per_app[app]]
