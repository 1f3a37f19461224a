"""Read VNN-LIB properties (1.0 and 2.0) onto the spec family, and load ONNX + VNN-LIB instances.

A VNN-LIB file asserts the *negation* of a property: the instance is UNSAT exactly when the
property holds. The reader maps the files the spec family can state, and names the first
assertion it cannot map (``unsupported property: ...``):

* **1.0** (``declare-const X_k`` / ``Y_k``): a box on every input and the violation of one linear
  bound on one output (``(<= Y_j c)``, ``(>= Y_j c)``, or an ``or`` of one of each on the same
  output) -> :class:`~verifiers.specs.OutputBound` on output ``j``.
* **2.0** (``declare-network``): one network with the same shape -> OutputBound; or two networks,
  the second ``(equal-to <first>)``, with the same box on both inputs, ``==`` ties on every input
  but one, an ordering ``x_i <= x'_i`` on that one, and a bound on ``Y' - Y`` ->
  :class:`~verifiers.specs.Monotonicity` (``Y' - Y < -t``: increasing with tolerance ``t``;
  ``Y' - Y > t``: decreasing). Syntax: the VNN-LIB 2.0 grammar (``docs/interchange.md``).

Strictness. Specs are non-strict (``f >= lower``); a file's non-strict violation ``Y <= c`` asks
for ``Y > c``, so the bound is moved one ulp inward (``lower = nextafter(c, +inf)``): VERIFIED
then implies UNSAT. Strict input bounds are read as closed (a superset: sound for VERIFIED).

:func:`verifiers.io.instance.load_instance` pairs a property with its ONNX file.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np

from verifiers.specs import Box, Monotonicity, OutputBound, Spec, spec_from_dict

HEADER = "; vpals-jax spec: "  # the spec our exporter declares (checked against the assertions)
_TOKEN = re.compile(r"\(|\)|\[[^\]]*\]|[^\s()\[\]]+")


class VnnlibError(ValueError):
    """A VNN-LIB file that is malformed or states a property the spec family cannot (one line)."""


@dataclass(frozen=True)
class VnnlibProperty:
    """A property read from a file: ``spec`` is faithful to the file (VERIFIED implies UNSAT);
    ``declared`` is the spec a vpals-jax header names, when the assertions agree with it."""

    version: str
    spec: Spec
    output: int  # the network output the spec is about
    n_inputs: int  # variables the file declares for the (first) network's input
    n_outputs: int
    declared: Spec | None = None


def _parse(text: str) -> list:
    tokens = _TOKEN.findall("\n".join(line.split(";", 1)[0] for line in text.splitlines()))
    stack: list[list] = [[]]
    for tok in tokens:
        if tok == "(":
            stack.append([])
        elif tok == ")":
            if len(stack) == 1:
                raise VnnlibError("unbalanced ')'")
            done = stack.pop()
            stack[-1].append(done)
        elif tok.startswith("[") and stack[-1] and isinstance(stack[-1][-1], str):
            stack[-1][-1] = (stack[-1][-1], tuple(int(v) for v in tok[1:-1].replace(",", " ").split()))
        else:
            stack[-1].append(tok)
    if len(stack) != 1:
        raise VnnlibError("unbalanced '(' (file ends inside an expression)")
    return stack[0]


def _show(e) -> str:
    if isinstance(e, list):
        return "(" + " ".join(_show(x) for x in e) + ")"
    if isinstance(e, tuple):
        return f"{e[0]}[{','.join(map(str, e[1]))}]"
    return str(e)


@dataclass
class _Var:
    role: str  # "in" or "out"
    net: int
    shape: tuple[int, ...]


def _linear(e, vars_: dict[str, _Var]) -> tuple[dict[tuple[str, int], float], float]:
    """``e`` as ``sum coef[v] v + const`` (``v = (name, flat index)``)."""
    if isinstance(e, tuple) or (isinstance(e, str) and e in vars_):
        name, idx = (e, ()) if isinstance(e, str) else e
        var = vars_.get(name)
        if var is None:
            raise VnnlibError(f"undeclared variable {name!r}")
        if len(idx) != len(var.shape) or any(not 0 <= i < d for i, d in zip(idx, var.shape)):
            raise VnnlibError(f"index {_show(e)} does not fit the declared shape {list(var.shape)}")
        flat = int(np.ravel_multi_index(idx, var.shape)) if idx else 0
        return {(name, flat): 1.0}, 0.0
    if isinstance(e, str):
        try:
            return {}, float(e)
        except ValueError:
            raise VnnlibError(f"undeclared variable {e!r}") from None
    if not e or e[0] not in ("+", "-", "*"):
        raise VnnlibError(f"unsupported arithmetic {_show(e)}")
    parts = [_linear(a, vars_) for a in e[1:]]
    if e[0] == "-" and len(parts) == 1:
        return {k: -v for k, v in parts[0][0].items()}, -parts[0][1]
    if e[0] == "*":
        coef, const = {}, 1.0
        for c, k in parts:
            if c and coef:
                raise VnnlibError(f"non-linear product {_show(e)}")
            coef = {v: a * const for v, a in c.items()} if c else {v: a * k for v, a in coef.items()}
            const *= k
        return coef, const
    coef, const = dict(parts[0][0]), parts[0][1]
    sign = -1.0 if e[0] == "-" else 1.0
    for c, k in parts[1:]:
        for v, a in c.items():
            coef[v] = coef.get(v, 0.0) + sign * a
        const += sign * k
    return coef, const


_FLIP = {"<=": ">=", "<": ">", ">=": "<=", ">": "<", "==": "=="}


@dataclass
class _Atom:
    coef: dict[tuple[str, int], float]  # sum coef v + const OP 0
    const: float
    op: str
    text: str


def _atoms(e, vars_: dict[str, _Var], out: list[list[_Atom]]) -> None:
    """Flatten conjunctions; each entry of ``out`` is a disjunction of atoms (mostly one)."""
    if isinstance(e, list) and e and e[0] == "and":
        for a in e[1:]:
            _atoms(a, vars_, out)
        return
    if isinstance(e, list) and e and e[0] == "or":
        alts: list[list[_Atom]] = []
        for a in e[1:]:
            _atoms(a, vars_, alts)
        if len(alts) == 1 or all(len(x) == 1 for x in alts):
            out.append([a for x in alts for a in x])
            return
        raise VnnlibError(f"unsupported property: disjunction of conjunctions {_show(e)[:120]}")
    if not (isinstance(e, list) and len(e) == 3 and e[0] in ("<=", "<", ">=", ">", "=", "==")):
        raise VnnlibError(f"unsupported property: {_show(e)[:120]}")
    (ca, ka), (cb, kb) = _linear(e[1], vars_), _linear(e[2], vars_)
    coef = dict(ca)
    for v, a in cb.items():
        coef[v] = coef.get(v, 0.0) - a
    coef = {v: a for v, a in coef.items() if a != 0.0}
    out.append([_Atom(coef, ka - kb, "==" if e[0] == "=" else e[0], _show(e))])


def _solve_one(atom: _Atom) -> tuple[tuple[str, int], str, float, bool]:
    """``a v + k op 0`` as ``v op' b``; the last item says whether ``b`` is exact (``|a| == 1``)."""
    ((v, a),) = atom.coef.items()
    op = atom.op if a > 0 else _FLIP[atom.op]
    return v, op, -atom.const / a + 0.0, abs(a) == 1.0  # + 0.0: no -0.0 bounds


def _box(bounds: dict[int, list[float]], n: int, name: str) -> Box:
    for k in range(n):
        lo, hi = bounds.get(k, [-math.inf, math.inf])
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise VnnlibError(f"unsupported property: input {name}[{k}] is not bounded on both sides")
        if lo > hi:
            raise VnnlibError(f"empty input box: {name}[{k}] in [{lo}, {hi}]")
    return Box([bounds[k][0] for k in range(n)], [bounds[k][1] for k in range(n)])


def _add_bound(bounds: dict[int, list[float]], k: int, op: str, b: float, exact: bool) -> None:
    lo, hi = bounds.setdefault(k, [-math.inf, math.inf])
    if op in (">=", ">", "=="):  # closed and, when inexact, widened: a superset of the true box
        lo = max(lo, b if exact else float(np.nextafter(b, -math.inf)))
    if op in ("<=", "<", "=="):
        hi = min(hi, b if exact else float(np.nextafter(b, math.inf)))
    bounds[k] = [lo, hi]


def _output_side(atom: _Atom) -> tuple[str, float]:
    """A violated bound ``a y + k op 0`` -> the property's side and bound: ``("lower", c)`` means
    the property is ``y >= c``. ``c`` moves one ulp inward for a non-strict violation and one more
    for a rounded quotient ``-k / a``, so that the property implies the file's."""
    _, op, b, exact = _solve_one(atom)
    if op == "==":
        raise VnnlibError(f"unsupported property: equality on an output {atom.text}")
    steps = (op in ("<=", ">=")) + (not exact)
    toward = math.inf if op in ("<=", "<") else -math.inf  # violation y <= b: property y > b
    for _ in range(steps):
        b = float(np.nextafter(b, toward))
    return ("lower" if toward > 0 else "upper"), b


def _output_bound(clauses: list[list[_Atom]], vars_: dict[str, _Var], ins: list[str], n_in: int,
                  name: str) -> tuple[OutputBound, int]:  # fmt: skip
    bounds: dict[int, list[float]] = {}
    out_clauses = []
    for clause in clauses:
        roles = {vars_[v[0]].role for a in clause for v in a.coef}
        if len(clause) == 1 and roles == {"in"} and len(clause[0].coef) == 1:
            v, op, b, exact = _solve_one(clause[0])
            _add_bound(bounds, v[1], op, b, exact)
        elif roles == {"out"} and all(len(a.coef) == 1 for a in clause):
            out_clauses.append(clause)
        else:
            raise VnnlibError(f"unsupported property: {clause[0].text}")
    if len(out_clauses) != 1:
        raise VnnlibError(f"unsupported property: {len(out_clauses)} output constraints (one bound is supported)")
    (clause,) = out_clauses
    outs = {next(iter(a.coef)) for a in clause}
    sides = dict(_output_side(a) for a in clause)
    if len(outs) != 1 or len(sides) != len(clause):
        raise VnnlibError(f"unsupported property: {' or '.join(a.text for a in clause)}")
    spec = OutputBound(lower=sides.get("lower"), upper=sides.get("upper"), region=_box(bounds, n_in, ins[0]), name=name)
    return spec, next(iter(outs))[1]


def _declarations_v1(items: list) -> dict[str, _Var]:
    vars_: dict[str, _Var] = {}
    for e in items:
        if isinstance(e, list) and e and e[0] == "declare-const":
            m = re.fullmatch(r"([XY])_(\d+)", str(e[1]))
            if m is None or e[2] != "Real":
                raise VnnlibError(f"VNN-LIB 1.0 declares X_k and Y_k of sort Real, got {_show(e)}")
            vars_[e[1]] = _Var("in" if m[1] == "X" else "out", 0, ())
    return vars_


def _read_v1(items: list, name: str) -> VnnlibProperty:
    decl = _declarations_v1(items)
    n_in = sum(v.role == "in" for v in decl.values())
    n_out = len(decl) - n_in
    if [f"X_{k}" for k in range(n_in)] != [k for k, v in decl.items() if v.role == "in"]:
        raise VnnlibError("VNN-LIB 1.0 inputs must be declared X_0, X_1, ... in order")
    # 1.0 variables are scalars: put them in one flat input "X" and output "Y" for the shared code
    vars_ = {"X": _Var("in", 0, (n_in,)), "Y": _Var("out", 0, (n_out,))}
    clauses: list[list[_Atom]] = []
    for e in items:
        if isinstance(e, list) and e and e[0] == "assert":
            _atoms(_rename_v1(e[1]), vars_, clauses)
    spec, output = _output_bound(clauses, vars_, ["X"], n_in, name)
    return VnnlibProperty("1.0", spec, output, n_in, n_out)


def _rename_v1(e):
    if isinstance(e, list):
        return [_rename_v1(x) for x in e]
    m = re.fullmatch(r"([XY])_(\d+)", e) if isinstance(e, str) else None
    return (m[1], (int(m[2]),)) if m else e


def _read_v2(items: list, name: str) -> VnnlibProperty:
    vars_: dict[str, _Var] = {}
    nets: list[dict] = []
    for e in items:
        if not (isinstance(e, list) and e and e[0] == "declare-network"):
            continue
        net = {"name": e[1], "equal_to": None, "in": [], "out": []}
        for d in e[2:]:
            head = d[0] if isinstance(d, list) and d else None
            if head in ("equal-to", "isomorphic-to"):
                if head == "isomorphic-to":
                    raise VnnlibError(f"unsupported property: {_show(d)} (only equal-to copies are supported)")
                net["equal_to"] = d[1]
            elif head in ("declare-input", "declare-output"):
                if len(d) < 3 or not isinstance(d[2], tuple):
                    raise VnnlibError(f"declaration without a shape: {_show(d)}")
                shape = d[2][1]
                vars_[d[1]] = _Var("in" if head == "declare-input" else "out", len(nets), tuple(shape))
                net["in" if head == "declare-input" else "out"].append(d[1])
            else:
                raise VnnlibError(f"unsupported declaration {_show(d)[:120]}")
        if len(net["in"]) != 1 or len(net["out"]) != 1:
            raise VnnlibError(f"network {net['name']}: one input and one output are supported")
        nets.append(net)
    clauses: list[list[_Atom]] = []
    for e in items:
        if isinstance(e, list) and e and e[0] == "assert":
            _atoms(e[1], vars_, clauses)
    size = {k: int(np.prod(v.shape)) for k, v in vars_.items()}
    x, y = nets[0]["in"][0], nets[0]["out"][0]
    if len(nets) == 1:
        spec, output = _output_bound(clauses, vars_, [x], size[x], name)
        return VnnlibProperty("2.0", spec, output, size[x], size[y])
    if len(nets) != 2 or nets[1]["equal_to"] != nets[0]["name"]:
        raise VnnlibError("unsupported property: two networks, the second (equal-to <first>), are supported")
    spec, output = _monotonicity(clauses, vars_, (x, nets[1]["in"][0]), (y, nets[1]["out"][0]), size[x], name)
    return VnnlibProperty("2.0", spec, output, size[x], size[y])


def _monotonicity(clauses, vars_, xs: tuple[str, str], ys: tuple[str, str], n: int, name: str):
    bounds: tuple[dict, dict] = ({}, {})
    tied, order, delta = set(), [], []
    for clause in clauses:
        if len(clause) != 1:
            raise VnnlibError(f"unsupported property: {' or '.join(a.text for a in clause)}")
        a = clause[0]
        names = {v[0] for v in a.coef}
        if len(a.coef) == 1 and names <= set(xs):
            v, op, b, exact = _solve_one(a)
            _add_bound(bounds[xs.index(v[0])], v[1], op, b, exact)
        elif names == set(xs) and len({v[1] for v in a.coef}) == 1 and a.const == 0 and len(a.coef) == 2:
            j = next(iter(a.coef))[1]
            cx, cxp = a.coef[(xs[0], j)], a.coef[(xs[1], j)]
            if cx != -cxp:
                raise VnnlibError(f"unsupported property: {a.text}")
            if a.op == "==":
                tied.add(j)
            else:  # cx (x - x') op 0: x <= x' when (cx > 0 and op is <=, <) or (cx < 0 and op is >=, >)
                order.append((j, (cx > 0) == (a.op in ("<=", "<"))))
        elif names == set(ys) and len(a.coef) == 2:
            delta.append(a)
        else:
            raise VnnlibError(f"unsupported property: {a.text}")
    if len(order) != 1 or len(delta) != 1:
        raise VnnlibError(f"unsupported property: {len(order)} input orderings, {len(delta)} bounds on Y' - Y")
    i, forward = order[0]
    if tied != set(range(n)) - {i}:
        raise VnnlibError(f"unsupported property: every input but {i} must be tied (==) between the two copies")
    if not forward:  # x' <= x: swap the roles of the two copies
        bounds = bounds[::-1]
        ys = ys[::-1]
    a = delta[0]
    j = {v[1] for v in a.coef}
    cy, cyp = a.coef.get((ys[0], min(j))), a.coef.get((ys[1], min(j)))
    if len(j) != 1 or cy is None or cyp is None or cy != -cyp:
        raise VnnlibError(f"unsupported property: {a.text} (expected a bound on Y'[j] - Y[j])")
    side, c = _output_side(_Atom({("d", 0): cyp}, a.const, a.op, a.text))  # the property on d = Y' - Y
    tol = -c if side == "lower" else c
    if not tol >= 0:
        raise VnnlibError(f"unsupported property: {a.text} asks for strict monotonicity or is always satisfiable")
    box_x, box_xp = _box(bounds[0], n, xs[0]), _box(bounds[1], n, xs[1])
    lo = np.where(np.arange(n) == i, box_x.lower, np.maximum(box_x.lower, box_xp.lower))
    hi = np.where(np.arange(n) == i, box_x.upper, np.minimum(box_x.upper, box_xp.upper))
    if box_x.lower[i] != box_xp.lower[i] or box_x.upper[i] != box_xp.upper[i]:
        raise VnnlibError(f"unsupported property: the two copies range over different intervals of input {i}")
    direction = "increasing" if side == "lower" else "decreasing"
    return Monotonicity(feature=i, direction=direction, region=Box(lo, hi), tolerance=float(tol), name=name), min(j)


def read_vnnlib(path: str | PathLike) -> VnnlibProperty:
    """Read a 1.0 or 2.0 property (module docstring); :class:`VnnlibError` names what is not supported."""
    path = Path(path)
    text = path.read_text()
    items = _parse(text)
    version = next((e for e in items if isinstance(e, list) and e and e[0] == "vnnlib-version"), None)
    name = path.stem
    if version is None:
        prop = _read_v1(items, name)
    elif str(version[1]).strip("<>") in ("2.0", "2"):
        prop = _read_v2(items, name)
    else:
        raise VnnlibError(f"unsupported VNN-LIB version {version[1]}")
    return _with_declared(prop, text)


def _with_declared(prop: VnnlibProperty, text: str) -> VnnlibProperty:
    """Attach the header's spec when it states no less than the file (same kind, box and side, a
    tolerance no larger): a header can then only make a VERIFIED harder, never wrong."""
    line = next((ln for ln in text.splitlines() if ln.startswith(HEADER)), None)
    if line is None:
        return prop
    try:
        d = spec_from_dict(json.loads(line[len(HEADER) :]))
    except (ValueError, KeyError, TypeError):
        return prop
    same_box = np.array_equal(d.region.lower, prop.spec.region.lower) and np.array_equal(
        d.region.upper, prop.spec.region.upper
    )
    s = prop.spec
    if isinstance(d, Monotonicity) and isinstance(s, Monotonicity):
        ok = (d.feature, d.direction) == (s.feature, s.direction) and d.tolerance <= s.tolerance
    elif isinstance(d, OutputBound) and isinstance(s, OutputBound):
        ok = all((getattr(d, k) is None) == (getattr(s, k) is None) for k in ("lower", "upper")) and (
            d.lower is None or d.lower >= s.lower) and (d.upper is None or d.upper <= s.upper)  # fmt: skip
    else:
        ok = False
    return VnnlibProperty(prop.version, s, prop.output, prop.n_inputs, prop.n_outputs, d if ok and same_box else None)


__all__ = ["HEADER", "VnnlibError", "VnnlibProperty", "read_vnnlib"]
