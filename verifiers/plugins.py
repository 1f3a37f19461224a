"""Plugins: spec kinds and backends defined in a user's own module, found by name.

Why: a new spec kind or backend should be one file of the user's, with no edit inside the
package. A kind or backend registers itself when its module is imported (``register_spec``,
``register_verifier``); this module makes sure that import happens before a name is looked up:

* a module named in a spec file (``plugin: my_module`` or ``plugin: path/to/my_module.py`` on
  a spec entry, see ``vpals_jax.spec_files``) is imported by :func:`load_plugin`;
* ``VPALS_PLUGINS`` (module names or ``.py`` paths, separated by ``,``) is imported the first time
  an unknown name is looked up;
* an installed package may declare entry points in the groups ``vpals_jax.specs`` and
  ``vpals_jax.verifiers``; the entry point of that name is loaded on an unknown name.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

ENV_VAR = "VPALS_PLUGINS"
SPEC_GROUP = "vpals_jax.specs"
VERIFIER_GROUP = "vpals_jax.verifiers"


def load_plugin(ref: str) -> ModuleType:
    """Import a plugin by module name or by the path of a ``.py`` file (once per file).

    Raises ValueError naming ``ref`` when it cannot be imported, so that the command lines turn
    it into one line and exit code 2.
    """
    ref = str(ref).strip()
    try:
        if not ref.endswith(".py"):
            return importlib.import_module(ref)
        path = Path(ref).expanduser().resolve()
        if not path.is_file():
            raise FileNotFoundError(f"no file {path}")
        name = f"vpals_plugin_{path.stem}_{hashlib.sha256(str(path).encode()).hexdigest()[:8]}"
        if name in sys.modules:
            return sys.modules[name]
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
        return module
    except Exception as e:  # an import runs arbitrary code: any failure is the plugin's
        raise ValueError(f"plugin {ref!r} could not be loaded: {type(e).__name__}: {e}") from e


def discover(group: str, name: str) -> Any:
    """Import what may define ``name``: the ``VPALS_PLUGINS`` modules, then the entry point
    ``name`` of ``group``; returns the entry point's object (None when there is none)."""
    for ref in filter(None, (r.strip() for r in os.environ.get(ENV_VAR, "").split(","))):
        load_plugin(ref)
    for ep in entry_points(group=group):
        if ep.name == name:
            try:
                return ep.load()
            except Exception as e:
                raise ValueError(f"entry point {name!r} of {group} ({ep.value}) could not be loaded: {e}") from e
    return None


__all__ = ["ENV_VAR", "SPEC_GROUP", "VERIFIER_GROUP", "discover", "load_plugin"]
