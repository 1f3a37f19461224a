"""Compatibility shim: auto_LiRPA 0.3 on torch 2.13 and NumPy 2.

auto_LiRPA 0.3 (PyPI, 2022) declares ``torch<1.13`` and is installed with ``--no-deps``. On the
pinned torch 2.13 / NumPy 2 a plain ``import auto_LiRPA`` fails, and bounding a module fails
further on. Exactly four patches make it work; :func:`import_auto_lirpa` applies them once
(idempotently) and returns the imported ``auto_LiRPA`` module:

1. ``numpy.lib.arraysetops`` was removed in NumPy 2; auto_LiRPA imports ``isin`` from it. We
   register a tiny alias module exposing ``numpy.isin``.
2. ``torch.onnx.symbolic_helper._set_opset_version`` is gone; auto_LiRPA calls it before
   ``_optimize_graph``. The replacement sets the opset on the TorchScript exporter's ``GLOBALS``
   object (``torch.onnx._internal.torchscript_exporter._globals``), which is what
   ``_optimize_graph`` reads.
3. ``torch._C.Node.__getitem__`` (``node["value"]`` attribute access, formerly installed by
   ``torch.onnx.utils``) is gone; it is re-added through ``Node.kindOf``, which names the typed
   getter (``i``, ``f``, ``t``, ``is``, ...) for an attribute.
4. ``BoundedModule._named_members`` overrides ``nn.Module._named_members`` with the old
   signature; torch 2.x calls it with ``remove_duplicate=...``. The replacement accepts it
   (and honours it) while keeping auto_LiRPA's node-name translation.

Note for callers (not a patch): alpha-CROWN (``compute_bounds(method="CROWN-Optimized")``) on the
networks here also needs the sparse bound options off, i.e. construct ``BoundedModule`` with
``bound_opts={"sparse_intermediate_bounds": False, "sparse_conv_intermediate_bounds": False,
"sparse_intermediate_bounds_with_ibp": False, "sparse_features_alpha": False,
"sparse_spec_alpha": False}`` (see :data:`DENSE_BOUND_OPTS`); the lirpa backend always does.

Runtime imports auto_LiRPA really needs beyond torch and numpy: ``appdirs`` (``utils.py``),
``tqdm`` (``backward_bound.py``) and ``packaging`` (imported by torch's own modules that
auto_LiRPA touches); all three are in ``pyproject.toml``.
"""

from __future__ import annotations

import importlib
import sys
import threading
import types
import warnings
from typing import Any

_LOCK = threading.Lock()
_MODULE: types.ModuleType | None = None

# Bound options under which alpha-CROWN works on auto_LiRPA 0.3 / torch 2.13 (see module docstring).
DENSE_BOUND_OPTS: dict[str, Any] = {
    "sparse_intermediate_bounds": False,
    "sparse_conv_intermediate_bounds": False,
    "sparse_intermediate_bounds_with_ibp": False,
    "sparse_features_alpha": False,
    "sparse_spec_alpha": False,
}


def _patch_numpy() -> None:
    import numpy as np

    if "numpy.lib.arraysetops" in sys.modules:
        return
    try:  # NumPy 1.x still has it
        import numpy.lib.arraysetops

        return
    except ImportError:
        pass
    alias = types.ModuleType("numpy.lib.arraysetops")
    alias.isin = np.isin  # type: ignore[attr-defined]
    alias.__doc__ = "Alias installed by verifiers.lirpa_compat for auto_LiRPA 0.3 (removed in NumPy 2)."
    sys.modules["numpy.lib.arraysetops"] = alias


def _patch_opset() -> None:
    # The submodule itself (what auto_LiRPA imports from), not the torch.onnx attribute of the same
    # name, which is the TorchScript exporter's internal symbolic_helper.
    symbolic_helper = importlib.import_module("torch.onnx.symbolic_helper")

    if hasattr(symbolic_helper, "_set_opset_version"):
        return
    from torch.onnx._internal.torchscript_exporter._globals import GLOBALS

    def _set_opset_version(opset_version: int) -> None:
        GLOBALS.export_onnx_opset_version = opset_version

    symbolic_helper._set_opset_version = _set_opset_version


def _patch_node_getitem() -> None:
    import torch

    node = torch._C.Node
    if hasattr(node, "__getitem__"):
        return

    def _node_getitem(self: Any, key: str) -> Any:
        return getattr(self, self.kindOf(key))(key)

    node.__getitem__ = _node_getitem


def _patch_named_members(bounded_module_cls: type) -> None:
    if getattr(bounded_module_cls._named_members, "_vpals_patched", False):
        return

    def _named_members(self, get_members_fn, prefix="", recurse=True, remove_duplicate: bool = True):
        """auto_LiRPA's version (names translated to original names) with torch 2.x's signature."""
        memo = set()
        modules = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse else [(prefix, self)]
        for module_prefix, module in modules:
            for k, v in get_members_fn(module):
                if v is None:
                    continue
                if remove_duplicate:
                    if v in memo:
                        continue
                    memo.add(v)
                name = module_prefix + ("." if module_prefix else "") + k
                if name in self.node_name_map:
                    name = self.node_name_map[name]
                yield name, v

    _named_members._vpals_patched = True  # type: ignore[attr-defined]
    bounded_module_cls._named_members = _named_members


def import_auto_lirpa() -> types.ModuleType:
    """Apply the four patches (once) and return the ``auto_LiRPA`` module."""
    global _MODULE
    if _MODULE is not None:
        return _MODULE
    with _LOCK:
        if _MODULE is None:
            _patch_numpy()
            _patch_opset()
            _patch_node_getitem()
            # auto_LiRPA decorates operators with @torch.jit.script at import, and torch 2.13 warns that
            # this is deprecated: about auto_LiRPA's code, which no user of ours can change. The
            # import also calls warnings.simplefilter("once") (showing every library's
            # DeprecationWarning from then on); catch_warnings undoes that, and every other warning
            # of the import is re-issued under the caller's own filters.
            with warnings.catch_warnings(record=True) as caught:
                import auto_LiRPA
            for w in caught:
                jit_script = str(w.message).startswith("`torch.jit.script` is deprecated")
                if not (jit_script and issubclass(w.category, DeprecationWarning)):
                    warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)

            _patch_named_members(auto_LiRPA.BoundedModule)
            _MODULE = auto_LiRPA
    return _MODULE
