"""VNN-COMP counterexample files: a witness written as VNN-COMP scores it, re-checked on the files.

VNN-COMP (2022-2024; the scoring script ``SCORING/counterexamples.py`` of the results
repositories) expects, for a ``sat`` result, ``sat`` on the first line and then the witness as
one s-expression: every input, then every output, in flat order::

    sat
    ((X_0 0.5)
     (X_1 -0.25)
     (Y_0 1.5))

The scorer runs the ONNX file on the ``X`` values with onnxruntime, requires the written ``Y`` to
match within ``1e-4`` and the ``.vnnlib`` assertions to hold. A two-copy monotonicity instance
(1.0, :func:`verifiers.io.vnnlib.two_copy_onnx`) has one network whose input is the pair
``X = [x, d]`` (``d = x'_i - x_i``). A VNN-LIB 2.0 query over two networks has no VNN-COMP format;
each declared variable is written by its own name, flat index after ``_`` (``(X_0 ..) (Xp_0 ..)
(Y_0 ..) (Yp_0 ..)``), in the order the file declares the networks.

:func:`instance_witness` turns a backend's :class:`~verifiers.verdict.Counterexample` into the
file's variables and keeps it only if :func:`check_witness` accepts the text as it will be
written (parsed back): every assertion of the ``.vnnlib`` holds *exactly* in float64 on the
file's network (:func:`~verifiers.io.onnx_read.read_onnx`), and onnxruntime's outputs agree with
the written ``Y`` within the scorer's ``1e-4``. A witness that fails must not be reported ``sat``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np

from verifiers.io.onnx_read import read_onnx
from verifiers.io.vnnlib_read import _atoms, _declarations_v1, _parse, _rename_v1, _Var
from verifiers.network import ReluNetwork
from verifiers.verdict import Counterexample

ORT_TOL = 1e-4  # VNN-COMP's COUNTEREXAMPLE_TOL: written outputs vs onnxruntime
_PAIR = re.compile(r"\(\s*([A-Za-z][\w']*?)_(\d+)\s+(\S+?)\s*\)")


@dataclass(frozen=True)
class Witness:
    """Declared variable name -> flat values, in file order (inputs of each network, then outputs)."""

    values: dict[str, np.ndarray]

    def text(self) -> str:
        """``sat`` and the s-expression; values as shortest round-trip reprs, so parsing is exact."""
        pairs = [f"({name}_{k} {float(v)!r})" for name, vals in self.values.items() for k, v in enumerate(vals)]
        return "sat\n(" + "\n ".join(pairs) + ")\n"


@dataclass(frozen=True)
class WitnessCheck:
    ok: bool
    reason: str  # why it failed, or what held
    margin: float  # smallest slack of the violated assertions (> 0: every one holds strictly enough)
    ort_diff: float  # max |onnxruntime(X) - written Y|


@dataclass(frozen=True)
class _Query:
    nets: list[tuple[str, str]]  # (input name, output name) per network, in declaration order
    sizes: dict[str, int]
    clauses: list  # conjunction of disjunctions of linear atoms (vnnlib_read._Atom)


def parse_witness(text: str) -> Witness:
    """The inverse of :meth:`Witness.text` (``sat`` line optional); ValueError for anything else."""
    body = text.strip()
    if body.startswith("sat"):
        body = body[3:].strip()
    if not (body.startswith("(") and body.endswith(")")):
        raise ValueError("a counterexample is '((X_0 v) ... (Y_0 v))'")
    values: dict[str, list[float]] = {}
    for name, k, v in _PAIR.findall(body[1:-1]):
        if int(k) != len(values.setdefault(name, [])):
            raise ValueError(f"{name}_{k} out of order")
        values[name].append(float(v))
    if not values:
        raise ValueError("no (name value) pairs")
    return Witness({name: np.asarray(v, dtype=np.float64) for name, v in values.items()})


def read_witness(path: str | PathLike) -> Witness:
    return parse_witness(Path(path).read_text())


def _query(vnnlib_path: Path) -> _Query:
    items = _parse(vnnlib_path.read_text())
    clauses: list = []
    if not any(isinstance(e, list) and e and e[0] == "vnnlib-version" for e in items):  # 1.0
        decl = _declarations_v1(items)
        n_in = sum(v.role == "in" for v in decl.values())
        vars_ = {"X": _Var("in", 0, (n_in,)), "Y": _Var("out", 0, (len(decl) - n_in,))}
        for e in items:
            if isinstance(e, list) and e and e[0] == "assert":
                _atoms(_rename_v1(e[1]), vars_, clauses)
        return _Query([("X", "Y")], {k: v.shape[0] for k, v in vars_.items()}, clauses)
    vars_, nets = {}, []
    for e in items:
        if isinstance(e, list) and e and e[0] == "declare-network":
            io = {
                d[0]: d[1] for d in e[2:] if isinstance(d, list) and d and d[0] in ("declare-input", "declare-output")
            }
            for d in e[2:]:
                if isinstance(d, list) and d and d[0] in ("declare-input", "declare-output"):
                    vars_[d[1]] = _Var("in" if d[0] == "declare-input" else "out", len(nets), tuple(d[2][1]))
            nets.append((io["declare-input"], io["declare-output"]))
    for e in items:
        if isinstance(e, list) and e and e[0] == "assert":
            _atoms(e[1], vars_, clauses)
    return _Query(nets, {k: int(np.prod(v.shape)) for k, v in vars_.items()}, clauses)


def _holds(atom, values: dict[str, np.ndarray]) -> float:
    """Slack of ``sum coef v + const OP 0`` (>= 0 holds; a strict atom needs > 0; == needs 0)."""
    s = atom.const + sum(a * float(values[name][k]) for (name, k), a in atom.coef.items())
    if atom.op in ("<=", "<"):
        return -s if (atom.op == "<=" or s < 0) else -np.inf
    if atom.op in (">=", ">"):
        return s if (atom.op == ">=" or s > 0) else -np.inf
    return 0.0 if s == 0 else -np.inf


def _ort_outputs(onnx_path: Path, xs: list[np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    dtype = np.float64 if inp.type == "tensor(double)" else np.float32
    shape = [d if isinstance(d, int) and d > 0 else 1 for d in inp.shape]
    return [np.asarray(sess.run(None, {inp.name: x.astype(dtype).reshape(shape)})[0], np.float64).ravel() for x in xs]


def check_witness(onnx_path: str | PathLike, vnnlib_path: str | PathLike, witness: Witness,
                  net: ReluNetwork | None = None) -> WitnessCheck:  # fmt: skip
    """Does ``witness``, fed to the file's network, satisfy every assertion of the ``.vnnlib``?"""
    q = _query(Path(vnnlib_path))
    net = read_onnx(onnx_path) if net is None else net
    names = [n for pair in q.nets for n in pair]
    if sorted(witness.values) != sorted(names) or any(witness.values[n].size != q.sizes[n] for n in names):
        got = {k: v.size for k, v in witness.values.items()}
        return WitnessCheck(False, f"variables {got} do not match the file's {q.sizes}", -np.inf, np.inf)
    xs = [witness.values[x] for x, _ in q.nets]
    exact = {
        **{x: witness.values[x] for x, _ in q.nets},
        **{y: net.forward(x[None])[0] for (_, y), x in zip(q.nets, xs)},
    }
    written = np.concatenate([witness.values[y] for _, y in q.nets])
    ort_diff = float(np.max(np.abs(np.concatenate(_ort_outputs(Path(onnx_path), xs)) - written)))
    f64_diff = float(np.max(np.abs(np.concatenate([exact[y] for _, y in q.nets]) - written)))
    margin = min((max(_holds(a, exact) for a in clause) for clause in q.clauses), default=np.inf)
    if not margin >= 0:
        bad = next(c for c in q.clauses if max(_holds(a, exact) for a in c) < 0)
        return WitnessCheck(False, f"assertion {bad[0].text} fails on the network", float(margin), ort_diff)
    if max(ort_diff, f64_diff) > ORT_TOL:
        return WitnessCheck(False, f"written Y differs from the network by {max(ort_diff, f64_diff):.2e}", margin,
                            ort_diff)  # fmt: skip
    return WitnessCheck(True, "every assertion holds on the network", float(margin), ort_diff)


def _candidates(q: _Query, cex: Counterexample, n_inputs: int) -> list[list[np.ndarray]]:
    """The file's inputs per network from a witness of the instance's spec (a point or a pair)."""
    x = np.asarray(cex.x, dtype=np.float64)
    xp = None if cex.x_prime is None else np.asarray(cex.x_prime, dtype=np.float64)
    if len(q.nets) == 2 and xp is not None:  # 2.0 pair: which copy is the lower point is the file's
        return [[x, xp], [xp, x]]
    if len(q.nets) == 1 and xp is not None and n_inputs == x.size + 1:  # 1.0 two-copy: X = [x, d]
        i = np.flatnonzero(x != xp)
        d = float(xp[i[0]] - x[i[0]]) if i.size == 1 else 0.0
        return [[np.append(x, d)]]
    return [[x]] if len(q.nets) == 1 else []


def instance_witness(onnx_path: str | PathLike, vnnlib_path: str | PathLike,
                     counterexamples: list[Counterexample]) -> tuple[Witness | None, WitnessCheck | None]:  # fmt: skip
    """The first counterexample (largest margin first) whose written witness passes
    :func:`check_witness` as parsed back from its text; ``(None, last failed check)`` if none does."""
    q = _query(Path(vnnlib_path))
    net = read_onnx(onnx_path)
    last = None
    for cex in sorted(counterexamples, key=lambda c: -c.margin):
        for xs in _candidates(q, cex, q.sizes[q.nets[0][0]]):
            if [x.size for x in xs] != [q.sizes[x] for x, _ in q.nets]:
                continue
            values = {}
            for (xn, yn), x in zip(q.nets, xs):
                values[xn], values[yn] = x, net.forward(x[None])[0]
            written = parse_witness(Witness(values).text())  # check exactly what the file will hold
            last = check_witness(onnx_path, vnnlib_path, written, net)
            if last.ok:
                return written, last
    return None, last


def write_witness(path: str | PathLike, witness: Witness) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(witness.text())
    return path


__all__ = ["Witness", "WitnessCheck", "check_witness", "instance_witness", "parse_witness", "read_witness",
           "write_witness"]  # fmt: skip
