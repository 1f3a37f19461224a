"""One table over several applications, with the application as a one-hot input (issue 15, part 2).

``data.source=unified`` trains one network over a group of apps instead of one per app:

    data.app=synthetic          the five synthetic apps (each generated as data.source=synthetic would)
    data.app=real               the three real tables (data/real/<app>.csv, or data.path holding all)
    data.app=synthetic-mysql    the group without mysql: its one-hot column stays in the input,
                                always 0 in training, so the network can be fine-tuned on it later

Each member app is loaded, filtered and split exactly as its own per-app run would be (same
config, ``data.app`` set to the member), then the parts are stacked: a unified model and the
per-app models are scored on the very same test rows; the target is scaled per app
(:func:`target_scales`). A one-hot input (not an embedding) keeps
the network a plain ReLU MLP, so every verifier handles it, and an app's region is a box: its
one-hot column fixed to 1, the others to 0 (``vpals_jax.unified_specs``).

This module does not import ``dataset`` (which dispatches here): ``dataset.load_dataset`` loads
the members and hands them to :func:`combine`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from vpals_jax.config import DataConfig
from vpals_jax.data.synthetic import APPS as SYNTHETIC_APPS
from vpals_jax.data.tables import DataError

if TYPE_CHECKING:
    from vpals_jax.data.dataset import Dataset

GROUPS: dict[str, tuple[str, ...]] = {"synthetic": SYNTHETIC_APPS, "real": ("redis", "nginx", "mariadb")}
APP_PREFIX = "app_"
SCALED_SUFFIX = "_app_scaled"


def app_column(app: str) -> str:
    """The one-hot input column of ``app``."""
    return f"{APP_PREFIX}{app}"


def members(name: str) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """``(group, apps of the one-hot input, apps trained on)`` of a ``data.app`` value."""
    group, _, left_out = name.partition("-")
    if group not in GROUPS:
        raise DataError(f"data.app={name!r}: unknown app group {group!r} for data.source=unified; "
                        f"use one of {sorted(GROUPS)}, optionally with -<app> to leave one app out")  # fmt: skip
    apps = GROUPS[group]
    if left_out and left_out not in apps:
        raise DataError(f"data.app={name!r}: unknown app {left_out!r}; {group} apps: {list(apps)}")
    return group, apps, tuple(a for a in apps if a != left_out)


def member_config(cfg: DataConfig, app: str) -> DataConfig:
    """The per-app data config of one member: what ``data=synthetic|real_<app> data.app=<app>`` loads."""
    group, apps, _ = members(cfg.app)
    if app not in apps:
        raise DataError(f"unknown app {app!r}; {group} apps: {list(apps)}")
    if group == "synthetic":
        if cfg.path:
            raise DataError(f"data.path={cfg.path!r}: data.app={cfg.app} is generated, it reads no file")
        return replace(cfg, source="synthetic", app=app)
    return replace(cfg, source="table", app=app, path=cfg.path or f"data/real/{app}.csv")


def member_configs(cfg: DataConfig) -> list[tuple[str, DataConfig]]:
    """``(app, per-app config)`` of every app the unified network is trained on."""
    _, _, trained = members(cfg.app)
    return [(app, member_config(cfg, app)) for app in trained]


def _stack(parts: Sequence[tuple[int, np.ndarray]], n_apps: int) -> np.ndarray:
    """Rows of every part with the one-hot block (columns in group order) appended."""
    blocks = []
    for k, x in parts:
        onehot = np.zeros((len(x), n_apps))
        onehot[:, k] = 1.0
        blocks.append(np.hstack([x.reshape(len(x), -1), onehot]))
    return np.vstack(blocks)


def combine(cfg: DataConfig, parts: Mapping[str, Dataset]) -> dict[str, Any]:
    """The fields of the unified ``Dataset`` from the members' datasets (every member takes the same features)."""
    _, apps, _ = members(cfg.app)
    first = next(iter(parts.values()))
    for app, part in parts.items():
        if part.feature_names != first.feature_names or part.target_name != first.target_name:
            raise DataError(f"data.app={cfg.app}: app {app!r} has features {part.feature_names} -> "
                            f"{part.target_name}, unlike {first.feature_names} -> {first.target_name}")  # fmt: skip
    index = {app: apps.index(app) for app in parts}
    scales = target_scales(parts)
    fields: dict[str, Any] = {}
    for split in ("train", "test", "cal"):
        xs = [(index[a], getattr(p, f"x_{split}")) for a, p in parts.items()]
        fields[f"x_{split}"] = _stack(xs, len(apps))
        fields[f"y_{split}"] = np.concatenate([(getattr(p, f"y_{split}") - scales[a][0]) / scales[a][1]
                                               for a, p in parts.items()])  # fmt: skip
    # a direction only where every member's operator knowledge agrees (the specs are per app anyway)
    shared = {f: d for f, d in first.feature_directions.items()
              if all(p.feature_directions.get(f) == d for p in parts.values())}  # fmt: skip
    return {"name": f"unified-{cfg.app}", "feature_names": [*first.feature_names, *map(app_column, apps)],
            "target_name": scaled_target(first.target_name), "feature_directions": shared, "target_scales": scales,
            **fields}  # fmt: skip


def scaled_target(target: str) -> str:
    """Name of the unified target: ``target`` min-max scaled per app (see :func:`target_scales`)."""
    return f"{target}{SCALED_SUFFIX}"


def target_scales(parts: Mapping[str, Any]) -> dict[str, tuple[float, float]]:
    """Per app: ``(min, max - min)`` of its training target, as its own per-app normaliser has them.

    The unified target is each app's target scaled by these, so the training loss weighs every app
    as its own network's loss does (latency ranges differ 25-fold across the synthetic apps: on one
    shared scale the fast apps' errors vanish in the slow ones'), and the trainer's accuracy within
    tolerance is the per-app networks' accuracy. In an app's region the served function in the
    target's units is ``min + (max - min) * f``: a positive affine map of the network, so monotonicity
    carries over and tolerances and bounds convert per app (``vpals_jax.unified_specs``).
    """
    out = {}
    for app, part in parts.items():
        lo, hi = float(np.min(part.y_train)), float(np.max(part.y_train))
        out[app] = (lo, hi - lo if hi > lo else 1.0)
    return out


def apps_of(feature_names: Sequence[str]) -> list[str]:
    """The apps of a unified model's one-hot input, in column order (empty for a per-app model)."""
    return [f[len(APP_PREFIX) :] for f in feature_names if f.startswith(APP_PREFIX)]


def rows_of(x: np.ndarray, feature_names: Sequence[str], app: str) -> np.ndarray:
    """Boolean mask of the rows of ``app`` in a unified array."""
    if app_column(app) not in feature_names:
        raise DataError(f"unknown app {app!r}; the model's apps are {apps_of(feature_names)}")
    return np.asarray(x)[:, list(feature_names).index(app_column(app))] == 1.0


def app_domains(x: np.ndarray, feature_names: Sequence[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per app with rows in ``x`` (the training rows): the raw ``(min, max)`` of every input, its own domain."""
    out = {}
    for app in apps_of(feature_names):
        rows = np.asarray(x)[rows_of(x, feature_names, app)]
        if len(rows):
            out[app] = (rows.min(axis=0), rows.max(axis=0))
    return out
