"""One VNN-LIB instance (an ONNX network and a property) as a network and a spec of ours.

Our own 1.0 two-copy export (:func:`verifiers.io.vnnlib.two_copy_onnx`: input ``[x, d]``, output
``f(x') - f(x)``) is recognised and read back as the monotonicity of the inner network ``f``,
which the derivative-based backends decide far faster than an output bound of the two-copy
network; every other file is read by :func:`verifiers.io.onnx_read.read_onnx`.
"""

from __future__ import annotations

import re
from os import PathLike
from pathlib import Path

import numpy as np

from verifiers.io.onnx_read import read_onnx
from verifiers.io.vnnlib_read import VnnlibError, VnnlibProperty, _with_declared, read_vnnlib
from verifiers.network import ReluNetwork
from verifiers.specs import Box, Monotonicity, OutputBound, Spec


def _two_copy_inner(path: Path) -> tuple[ReluNetwork, int, float] | None:
    """``(f, i, U_i)`` of a two-copy network written by :func:`verifiers.io.vnnlib.two_copy_onnx`,
    checked numerically against the generic reading of the same file; None for any other file."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    m = re.search(r"feature i = (\d+), U_i = ([^;]+);", model.doc_string)
    if model.graph.name != "monotonicity_two_copy" or m is None:
        return None
    w = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in model.graph.initializer}
    k = sum(1 for key in w if re.fullmatch(r"f_W\d+", key))
    f = ReluNetwork([w[f"f_W{j}"] for j in range(k)], [w[f"f_b{j}"] for j in range(k)])
    i, upper = int(m[1]), float(m[2])
    whole = read_onnx(path)
    pts = np.random.default_rng(0).uniform(-1.0, 1.0, (64, f.n_inputs + 1))
    xp = pts[:, :-1].copy()
    xp[:, i] += np.minimum(pts[:, -1], upper - pts[:, i])
    want = f(xp)[:, 0] - f(pts[:, :-1])[:, 0]
    if not np.allclose(whole(pts)[:, 0], want, rtol=1e-5, atol=1e-5 * (1 + np.abs(want).max())):
        raise VnnlibError(f"{path}: named a two-copy network but does not compute f(x') - f(x)")
    return f, i, upper


def load_instance(onnx_path: str | PathLike, vnnlib_path: str | PathLike) -> tuple[ReluNetwork, Spec, VnnlibProperty]:
    """The network and the spec of one VNN-LIB instance, in the network's flattened input space."""
    prop = read_vnnlib(vnnlib_path)
    spec = prop.spec
    inner = _two_copy_inner(Path(onnx_path)) if prop.version == "1.0" else None
    if inner is not None and isinstance(spec, OutputBound) and (spec.lower is None) != (spec.upper is None):
        f, i, upper = inner
        region = Box(spec.region.lower[:-1], spec.region.upper[:-1])
        if spec.region.lower[-1] != 0.0 or spec.region.upper[-1] < region.widths[i] or upper != region.upper[i]:
            raise VnnlibError(
                f"{vnnlib_path}: the step d must range over [0, {region.widths[i]}] and U_i match the box"
            )
        tol = -spec.lower if spec.lower is not None else spec.upper
        if not tol >= 0:
            raise VnnlibError(f"unsupported property: {vnnlib_path} asks for strict monotonicity")
        direction = "increasing" if spec.lower is not None else "decreasing"
        mono = Monotonicity(feature=i, direction=direction, region=region, tolerance=float(tol), name=spec.name)
        faithful = VnnlibProperty(prop.version, mono, 0, f.n_inputs, 1)
        return f, mono, _with_declared(faithful, Path(vnnlib_path).read_text())
    net = read_onnx(onnx_path)
    if net.n_inputs != prop.n_inputs or net.n_outputs != prop.n_outputs:
        raise VnnlibError(f"{vnnlib_path} declares {prop.n_inputs} inputs and {prop.n_outputs} outputs, "
                          f"{onnx_path} has {net.n_inputs} and {net.n_outputs}")  # fmt: skip
    if net.n_outputs > 1:  # keep the one output the property is about (exact: a column of the last layer)
        j = prop.output
        net = ReluNetwork(list(net.weights[:-1]) + [net.weights[-1][:, j : j + 1]],
                          list(net.biases[:-1]) + [net.biases[-1][j : j + 1]])  # fmt: skip
    return net, spec, prop


__all__ = ["load_instance"]
