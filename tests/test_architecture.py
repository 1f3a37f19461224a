"""The house: imports run one way, with no cycles, counting imports deferred into functions.

Every module of ``verifiers/`` and ``vpals_jax/`` is parsed (no import is executed); only imports
under ``if TYPE_CHECKING:`` are exempt, since they never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("verifiers", "vpals_jax")

# verifiers' layers, lowest first: a module may import only from its own layer or lower ones
LAYERS = [
    {"verifiers.network", "verifiers.specs", "verifiers.verdict", "verifiers.base", "verifiers.directional",
     "verifiers.plugins"},
    {"verifiers.bounds"},
    {"verifiers.search", "verifiers.milp"},
    {"verifiers.backends", "verifiers.lirpa_compat"},
    {"verifiers.io", "verifiers.testing", "verifiers"},
]


def _module_name(path: Path) -> str:
    parts = list((path.relative_to(ROOT) if path.is_relative_to(ROOT) else Path(path.name)).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING"
    )


def _imports(path: Path, modules: set[str]) -> set[str]:
    """Project modules imported anywhere in ``path`` (resolved to the longest known module)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    me = _module_name(path)
    is_pkg = path.name == "__init__.py"
    found: set[str] = set()

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            for a in node.names:
                if (m := resolve(a.name)) is not None:
                    found.add(m)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = me if is_pkg else me.rpartition(".")[0]
                for _ in range(node.level - 1):
                    pkg = pkg.rpartition(".")[0]
                base = f"{pkg}.{base}" if base else pkg
            for a in node.names:
                if (m := resolve(f"{base}.{a.name}")) is not None:
                    found.add(m)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    found.discard(me)
    return found


def _graph() -> dict[str, set[str]]:
    files = [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")]
    modules = {_module_name(p) for p in files}
    return {_module_name(p): _imports(p, modules) for p in files}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def _parent_package_edge(a: str, b: str) -> bool:
    """``pkg/__init__.py`` re-exporting its own submodules is not an upward arrow."""
    return b.startswith(a + ".")


def test_no_import_cycles():
    graph = {m: {d for d in deps if not _parent_package_edge(m, d)} for m, deps in _graph().items()}
    assert _cycles(graph) == []


def test_the_cycle_finder_sees_deferred_imports(tmp_path):
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
    assert _cycles(graph) == [["a", "b", "c"]]
    src = tmp_path / "m.py"
    src.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import x.y\ndef f():\n    import x.z\n")
    assert _imports(src, {"x.y", "x.z"}) == {"x.z"}


def _layer(module: str) -> int | None:
    for rank, layer in enumerate(LAYERS):
        for prefix in layer:
            if module == prefix or module.startswith(prefix + "."):
                if prefix == "verifiers" and module != "verifiers":
                    continue
                return rank
    return None


def test_verifiers_import_downward_only():
    bad = []
    for m, deps in _graph().items():
        if not m.startswith("verifiers"):
            continue
        if (rank := _layer(m)) is None:
            bad.append(f"{m} is in no layer: add it to LAYERS")
            continue
        for d in deps:
            if d.startswith("vpals_jax"):
                bad.append(f"{m} -> {d} (verifiers knows nothing of vpals_jax)")
            elif (dr := _layer(d)) is not None and dr > rank and not _parent_package_edge(m, d):
                bad.append(f"{m} -> {d}")
    assert bad == []


def test_modules_stay_small():
    """About 400 lines a module: small enough to hold in one's head (400 in verifiers, 420 elsewhere)."""
    files = [(p, 400) for p in (ROOT / "verifiers").rglob("*.py")] + [(p, 420) for p in (ROOT / "vpals_jax").rglob("*.py")]
    big = {str(p.relative_to(ROOT)): n for p, most in files if (n := len(p.read_text().splitlines())) > most}
    assert big == {}
