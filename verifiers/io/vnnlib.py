"""Export a monotonicity problem as a VNN-LIB 1.0 instance on the two-copy network.

VNN-LIB states the *negation* of a property over one ONNX network: the instance is UNSAT exactly
when the property holds. Monotonicity relates two points, so the ONNX network takes both:

* input ``X`` of shape ``(1, n + 1)``: ``X_0 .. X_{n-1}`` are ``x``, ``X_n`` is ``d >= 0``;
* ``x' = x + min(d, U_i - x_i) e_i`` (built from ``MatMul``/``Add``/``Relu``, no indexing:
  ``x + d e_i - relu(x_i + d - U_i) e_i``), so ``x'`` never leaves the region and every pair
  ``x <= x'`` along ``e_i`` in the region is reached with ``d in [0, W_i]``;
* output ``Y_0 = f(x') - f(x)`` from two weight-tied copies of ``f`` (shared initializers).

The ``.vnnlib`` file bounds ``X`` to the region (and ``d`` to ``[0, W_i]``) and asserts the violation:
``Y_0 <= -(t + margin)`` for ``increasing`` (``Y_0 >= t + margin`` for ``decreasing``), ``t`` the
tolerance. The ``margin`` (default 1e-6) is needed because VNN-LIB's comparisons are non-strict:
with ``margin = 0`` and ``t = 0`` the pair ``d = 0`` (``Y_0 = 0``) would satisfy the negation. So
UNSAT proves ``sign * (f(x') - f(x)) > -(t + margin)`` on the region, and a SAT witness is a real
violation by more than ``t + margin`` (re-check it with :meth:`Monotonicity.violation`).

Also written here: the same spec as a VNN-LIB 2.0 query over the plain network and an
``(equal-to f)`` copy (strict comparisons, so no margin: :func:`vnnlib2_text`); an
:class:`~verifiers.specs.OutputBound` as a 1.0 property (:func:`output_bound_text`); and the
``instances.csv`` index VNN-COMP benchmarks ship (:func:`write_instances_csv`). Every file states
its units in the header (``units``: the inputs the network reads; a normaliser the network does
not contain is *not* folded in) and the spec it encodes on a ``; vpals-jax spec:`` line, which
:func:`verifiers.io.vnnlib_read.read_vnnlib` checks against the assertions.
"""

from __future__ import annotations

import csv
import json
from os import PathLike
from pathlib import Path

import numpy as np

from verifiers.io.onnx import _elem_type, _onnx, mlp_nodes, save_model, write_onnx
from verifiers.io.vnnlib_read import HEADER
from verifiers.network import ReluNetwork
from verifiers.specs import Monotonicity, OutputBound, Spec

NETWORK_UNITS = "network (what the network itself reads and writes; no normaliser folded in)"


def _num(v: float) -> str:
    """A VNN-LIB numeral: positional decimal, shortest exact float repr, leading ``-`` for negatives."""
    s = np.format_float_positional(float(v), unique=True, trim="0")
    return s if "." in s else s + ".0"


def two_copy_onnx(net: ReluNetwork, spec: Monotonicity, path: str | PathLike, dtype: str = "float32") -> Path:
    """Write the two-copy network ``[x, d] -> f(x + min(d, U_i - x_i) e_i) - f(x)`` (module docstring)."""
    _, _, helper, numpy_helper = _onnx()
    if net.n_outputs != 1:
        raise ValueError("two_copy_onnx needs a single-output network")
    n, i = net.n_inputs, int(spec.feature)
    np_t = np.float64 if dtype == "float64" else np.float32
    et = _elem_type(dtype)
    U_i = float(spec.region.upper[i])
    take_x = np.vstack([np.eye(n), np.zeros((1, n))])  # [x, d] -> x
    shift = take_x.copy()
    shift[n, i] = 1.0  # [x, d] -> x + d e_i
    over = np.zeros((n + 1, 1))
    over[i, 0] = over[n, 0] = 1.0  # [x, d] -> x_i + d
    e_i = np.zeros((1, n))
    e_i[0, i] = 1.0
    inits = [
        numpy_helper.from_array(take_x.astype(np_t), "P_x"),
        numpy_helper.from_array(shift.astype(np_t), "P_shift"),
        numpy_helper.from_array(over.astype(np_t), "P_over"),
        numpy_helper.from_array(np.array([-U_i], dtype=np_t), "neg_upper_i"),
        numpy_helper.from_array(e_i.astype(np_t), "e_i"),
    ]
    nodes = [
        helper.make_node("MatMul", ["X", "P_x"], ["x"], name="take_x"),
        helper.make_node("MatMul", ["X", "P_shift"], ["x_plus_d"], name="take_x_plus_d"),
        helper.make_node("MatMul", ["X", "P_over"], ["xi_plus_d"], name="xi_plus_d"),
        helper.make_node("Add", ["xi_plus_d", "neg_upper_i"], ["overshoot_pre"], name="overshoot_pre"),
        helper.make_node("Relu", ["overshoot_pre"], ["overshoot"], name="overshoot"),
        helper.make_node("MatMul", ["overshoot", "e_i"], ["overshoot_vec"], name="overshoot_vec"),
        helper.make_node("Sub", ["x_plus_d", "overshoot_vec"], ["x_prime"], name="x_prime"),
    ]
    n1, i1 = mlp_nodes(net, "x", "f_x", "a_", dtype, weight_prefix="f_")
    n2, i2 = mlp_nodes(net, "x_prime", "f_x_prime", "b_", dtype, weight_prefix="f_")
    nodes += n1 + n2 + [helper.make_node("Sub", ["f_x_prime", "f_x"], ["Y"], name="difference")]
    inputs = [helper.make_tensor_value_info("X", et, [1, n + 1])]
    outputs = [helper.make_tensor_value_info("Y", et, [1, 1])]
    doc = f"f(x + min(d, U_i - x_i) e_i) - f(x), feature i = {i}, U_i = {U_i!r}; input X = [x, d]"
    return save_model(nodes, inits + i1 + i2, inputs, outputs, path, "monotonicity_two_copy", doc)


def _header(spec: Spec, units: str) -> list[str]:
    return [f"; units: {units}", HEADER + json.dumps(spec.to_dict())]


def vnnlib_text(net: ReluNetwork, spec: Monotonicity, margin: float = 1e-6, units: str = NETWORK_UNITS) -> str:
    """The VNN-LIB 1.0 property for :func:`two_copy_onnx` (see the module docstring)."""
    if margin < 0 or not np.isfinite(margin):
        raise ValueError(f"margin must be a finite number >= 0, got {margin}")
    spec.validate_for(net)
    n, i = net.n_inputs, int(spec.feature)
    lo, hi = spec.region.lower, spec.region.upper
    width = float(hi[i] - lo[i])
    thresh = spec.tolerance + margin
    lines = [
        f"; Monotonicity ({spec.direction}) of the network output in input {i} over a box, as the",
        "; negation (a violating pair) on the two-copy network: X = [x, d], Y_0 = f(x') - f(x),",
        f"; x' = x + min(d, U_{i} - x_{i}) e_{i}. Tolerance {spec.tolerance!r}, margin {margin!r}: UNSAT proves",
        f"; sign * (f(x') - f(x)) > -{thresh!r} for every pair in the region.",
    ]
    lines += _header(spec, units)
    lines.append("")
    lines += [f"(declare-const X_{k} Real)" for k in range(n + 1)]
    lines.append("(declare-const Y_0 Real)")
    lines.append("")
    lines.append("; input region (x), then the step d")
    for k in range(n):
        lines.append(f"(assert (>= X_{k} {_num(lo[k])}))")
        lines.append(f"(assert (<= X_{k} {_num(hi[k])}))")
    lines.append(f"(assert (>= X_{n} {_num(0.0)}))")
    lines.append(f"(assert (<= X_{n} {_num(width)}))")
    lines.append("")
    lines.append("; the violation")
    if spec.direction == "increasing":
        lines.append(f"(assert (<= Y_0 {_num(-thresh)}))")
    else:
        lines.append(f"(assert (>= Y_0 {_num(thresh)}))")
    return "\n".join(lines) + "\n"


def vnnlib2_text(net: ReluNetwork, spec: Monotonicity, units: str = NETWORK_UNITS) -> str:
    """The VNN-LIB 2.0 query for ``spec`` over the plain network ``f`` and an ``(equal-to f)`` copy:
    ``x`` and ``x'`` in the region, tied on every input but ``i``, ``x_i <= x'_i``, and the strict
    violation ``f(x') - f(x) < -t`` (``> t`` for decreasing)."""
    spec.validate_for(net)
    n, i = net.n_inputs, int(spec.feature)
    lo, hi = spec.region.lower, spec.region.upper
    lines = [f"; Monotonicity ({spec.direction}) in input {i}, tolerance {spec.tolerance!r}: a violating pair",
             *_header(spec, units), "", "(vnnlib-version <2.0>)", "",
             f"(declare-network f\n    (declare-input X Real [1,{n}])\n    (declare-output Y Real [1,1]))",
             f"(declare-network f_copy\n    (equal-to f)\n    (declare-input Xp Real [1,{n}])"
             + "\n    (declare-output Yp Real [1,1]))", ""]  # fmt: skip
    for v in ("X", "Xp"):
        for k in range(n):
            lines += [f"(assert (>= {v}[0,{k}] {_num(lo[k])}))", f"(assert (<= {v}[0,{k}] {_num(hi[k])}))"]
    lines += [f"(assert (== Xp[0,{k}] X[0,{k}]))" for k in range(n) if k != i]
    lines.append(f"(assert (<= X[0,{i}] Xp[0,{i}]))")
    if spec.direction == "increasing":
        lines.append(f"(assert (< (- Yp[0,0] Y[0,0]) {_num(-spec.tolerance)}))")
    else:
        lines.append(f"(assert (> (- Yp[0,0] Y[0,0]) {_num(spec.tolerance)}))")
    return "\n".join(lines) + "\n"


def output_bound_text(net: ReluNetwork, spec: OutputBound, units: str = NETWORK_UNITS) -> str:
    """A VNN-LIB 1.0 property for ``lower <= f <= upper``: the box, and ``Y_0`` below ``lower`` or
    above ``upper``. 1.0 tools compare non-strictly, so each side is written one ulp outside the
    bound (``Y_0 <= nextafter(lower, -inf)``): UNSAT then proves ``f >= lower`` in doubles."""
    spec.validate_for(net)
    lo, hi = spec.region.lower, spec.region.upper
    lines = ["; Output bound: a point of the box where Y_0 leaves [lower, upper]", *_header(spec, units), ""]
    lines += [f"(declare-const X_{k} Real)" for k in range(net.n_inputs)] + ["(declare-const Y_0 Real)", ""]
    for k in range(net.n_inputs):
        lines += [f"(assert (>= X_{k} {_num(lo[k])}))", f"(assert (<= X_{k} {_num(hi[k])}))"]
    sides = []
    if spec.lower is not None:
        sides.append(f"(<= Y_0 {_num(np.nextafter(spec.lower, -np.inf))})")
    if spec.upper is not None:
        sides.append(f"(>= Y_0 {_num(np.nextafter(spec.upper, np.inf))})")
    lines.append(f"(assert {sides[0]})" if len(sides) == 1 else f"(assert (or {' '.join(sides)}))")
    return "\n".join(lines) + "\n"


def export_vnnlib(
    net: ReluNetwork,
    spec: Spec,
    onnx_path: str | PathLike,
    vnnlib_path: str | PathLike,
    margin: float = 1e-6,
    dtype: str = "float32",
    version: str = "1.0",
    units: str = NETWORK_UNITS,
) -> tuple[Path, Path]:
    """Write the ``.onnx`` network and the ``.vnnlib`` property; returns both paths.

    Monotonicity: version "1.0" writes the two-copy network, "2.0" the plain network (its query
    declares the copy). OutputBound: the plain network and a 1.0 property.
    """
    if isinstance(spec, Monotonicity) and version == "1.0":
        text = vnnlib_text(net, spec, margin, units)
        onnx_path = two_copy_onnx(net, spec, onnx_path, dtype)
    elif isinstance(spec, Monotonicity) and version == "2.0":
        text = vnnlib2_text(net, spec, units)
        onnx_path = write_onnx(net, onnx_path, dtype=dtype, batch=1)
    elif isinstance(spec, OutputBound) and version == "1.0":
        text = output_bound_text(net, spec, units)
        onnx_path = write_onnx(net, onnx_path, dtype=dtype, batch=1)
    else:
        raise TypeError(f"export_vnnlib: no VNN-LIB {version} export for {type(spec).__name__} specs")
    vnnlib_path = Path(vnnlib_path)
    vnnlib_path.write_text(text)
    return onnx_path, vnnlib_path


def write_instances_csv(rows: list[tuple[Path, Path, float]], path: str | PathLike) -> Path:
    """VNN-COMP's ``instances.csv``: ``onnx,vnnlib,timeout`` per line, no header, paths relative to
    the file's folder."""
    path = Path(path)
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        for onnx_path, vnnlib_path, timeout in rows:
            out.writerow([Path(onnx_path).resolve().relative_to(path.parent.resolve()).as_posix(),
                          Path(vnnlib_path).resolve().relative_to(path.parent.resolve()).as_posix(),
                          f"{float(timeout):g}"])  # fmt: skip
    return path
