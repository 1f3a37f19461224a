"""Read a feed-forward ReLU network from ONNX into a :class:`~verifiers.network.ReluNetwork`.

Exporters disagree on the graph but agree on the function: PyTorch writes ``Gemm`` (``transB=1``),
Keras (tf2onnx) ``MatMul`` + ``Add`` with ``Identity`` nodes, VNN-COMP files add ``Flatten`` or
``Reshape`` and an input normaliser (``Sub``, ``Div``). So the graph is *interpreted*, not matched:
every tensor is an affine function of the input ``x`` and of the outputs ``h_r`` of the ``Relu``
nodes before it (``sum_r h_r M_r + x A + c``), with constants folded as they come. Supported ops:
Gemm, MatMul, Add, Sub, Mul, Div (by a constant), Neg, Relu, Flatten, Reshape, Squeeze, Unsqueeze,
Identity, Constant; the first other node ends the read with an error naming it.

The affine DAG is then laid out as an MLP: a Relu node's *depth* is one more than the deepest
source it reads; hidden layer ``d`` holds the Relu nodes of depth ``d`` plus carried copies of
what a later layer still reads (``relu(h) = h`` for a Relu output, ``relu(x) - relu(-x) = x`` for
the input, both exact in floating point). A plain MLP gets no carries and keeps its shape; a
two-copy monotonicity network (two branches and a difference) becomes one wider MLP.

Tensors keep a leading batch dimension of 1 (or a symbolic one, read as 1); elements are
flattened in C order, the order ``Flatten`` and ``Reshape`` use. Weights are read in float64, so
a float32 file gives exactly the float32 weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from os import PathLike

import numpy as np

from verifiers.network import ReluNetwork

INPUT = -1  # source id of the network input


@dataclass
class _Affine:
    """A tensor ``sum_s src_s @ coef[s] + bias`` of the given shape (batch dimension first)."""

    shape: tuple[int, ...]
    coef: dict[int, np.ndarray]  # source id -> (source size, size)
    bias: np.ndarray  # (size,)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def map(self, fn) -> _Affine:
        """Apply a linear map (on row vectors of length ``size``) to coefficients; bias separately."""
        return _Affine(self.shape, {s: fn(c) for s, c in self.coef.items()}, fn(self.bias[None])[0])


@dataclass
class _Graph:
    """What the interpreter has built: Relu nodes (pre-activations) and the value of each tensor."""

    relus: list[_Affine] = field(default_factory=list)
    values: dict[str, object] = field(default_factory=dict)


class OnnxReadError(ValueError):
    """The file is not a feed-forward ReLU network this reader understands (message names the node)."""


def _node_label(node) -> str:
    return f"node {node.name or '(unnamed)'!r} (op {node.op_type})"


def _attrs(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _broadcast_const(c: np.ndarray, shape: tuple[int, ...], label: str) -> np.ndarray:
    try:
        return np.broadcast_to(c, shape).reshape(-1).astype(np.float64)
    except ValueError:
        raise OnnxReadError(f"{label}: constant of shape {c.shape} does not broadcast to {shape}") from None


def _add(a: _Affine, b: _Affine, scale_b: float = 1.0) -> _Affine:
    coef = {s: c.copy() for s, c in a.coef.items()}
    for s, c in b.coef.items():
        coef[s] = coef[s] + scale_b * c if s in coef else scale_b * c
    return _Affine(a.shape, coef, a.bias + scale_b * b.bias)


def _matmul(v: _Affine, w: np.ndarray, label: str) -> _Affine:
    if w.ndim != 2 or v.shape[-1] != w.shape[0] or v.size != v.shape[-1]:
        raise OnnxReadError(f"{label}: only (1, k) @ (k, m) products are supported, got {v.shape} @ {w.shape}")
    return _Affine(v.shape[:-1] + (w.shape[1],), {s: c @ w for s, c in v.coef.items()}, v.bias @ w)


def _reshape(v: _Affine, shape: tuple[int, ...]) -> _Affine:
    return _Affine(tuple(int(d) for d in shape), v.coef, v.bias)


def _target_shape(v: _Affine, spec: np.ndarray, label: str) -> tuple[int, ...]:
    dims = [int(d) for d in spec.reshape(-1)]
    dims = [v.shape[k] if d == 0 and k < len(v.shape) else d for k, d in enumerate(dims)]
    if dims.count(-1) == 1:
        known = int(np.prod([d for d in dims if d != -1]))
        dims[dims.index(-1)] = v.size // max(known, 1)
    if int(np.prod(dims)) != v.size:
        raise OnnxReadError(f"{label}: cannot reshape {v.shape} to {tuple(int(d) for d in spec)}")
    return tuple(dims)


def _const_op(node, args: list[np.ndarray], at: dict) -> np.ndarray:
    """Constant folding for the few ops that shape computations use."""
    op = node.op_type
    folds = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}
    if op in folds:
        return folds[op](args[0], args[1])
    if op == "Neg":
        return -args[0]
    if op == "Identity":
        return args[0]
    if op == "Reshape":
        return args[0].reshape([int(d) for d in args[1]])
    if op == "Transpose":
        return np.transpose(args[0], at.get("perm"))
    if op == "Cast":
        return args[0]
    raise OnnxReadError(f"{_node_label(node)}: unsupported on constants")


def _step(g: _Graph, node) -> None:
    """Interpret one node: constants fold, affine tensors transform, Relu opens a new source."""
    label = _node_label(node)
    op, at = node.op_type, _attrs(node)
    if op == "Constant":
        from onnx import numpy_helper

        if "value" not in at:
            raise OnnxReadError(f"{label}: only tensor constants are supported")
        g.values[node.output[0]] = numpy_helper.to_array(at["value"]).astype(np.float64)
        return
    try:
        args = [g.values[name] for name in node.input if name]
    except KeyError as e:
        raise OnnxReadError(f"{label}: input {e.args[0]!r} is not computed by any earlier node") from None
    if all(isinstance(a, np.ndarray) for a in args):
        g.values[node.output[0]] = _const_op(node, args, at)
        return
    v = next(a for a in args if isinstance(a, _Affine))
    if op == "Identity" or (op == "Dropout" and len(node.output) == 1):
        out = v
    elif op == "Relu":
        g.relus.append(v)
        r = len(g.relus) - 1
        out = _Affine(v.shape, {r: np.eye(v.size)}, np.zeros(v.size))
    elif op == "MatMul" and isinstance(args[1], np.ndarray):
        out = _matmul(v, args[1], label)
    elif op == "Gemm" and isinstance(args[0], _Affine) and all(isinstance(a, np.ndarray) for a in args[1:]):
        if at.get("transA", 0):
            raise OnnxReadError(f"{label}: Gemm with transA=1 is not supported")
        w = args[1].T if at.get("transB", 0) else args[1]
        out = _matmul(v, float(at.get("alpha", 1.0)) * w, label)
        if len(args) > 2:
            c = float(at.get("beta", 1.0)) * args[2]
            out = _Affine(out.shape, out.coef, out.bias + _broadcast_const(c, out.shape, label))
    elif op in ("Add", "Sub") and len(args) == 2:
        a, b = args
        sign = -1.0 if op == "Sub" else 1.0
        if isinstance(a, _Affine) and isinstance(b, _Affine):
            if a.shape != b.shape:
                raise OnnxReadError(f"{label}: operands of shapes {a.shape} and {b.shape} (no broadcasting)")
            out = _add(a, b, sign)
        elif isinstance(a, _Affine):
            out = _Affine(a.shape, a.coef, a.bias + sign * _broadcast_const(b, a.shape, label))
        else:  # constant - tensor
            neg = b.map(lambda c: sign * c)
            out = _Affine(b.shape, neg.coef, neg.bias + _broadcast_const(a, b.shape, label))
    elif op in ("Mul", "Div") and len(args) == 2 and isinstance(args[1 if args[0] is v else 0], np.ndarray):
        c = args[1] if args[0] is v else args[0]
        if op == "Div" and args[0] is not v:
            raise OnnxReadError(f"{label}: division by a tensor is not affine")
        s = _broadcast_const(c, v.shape, label)
        s = 1.0 / s if op == "Div" else s
        out = v.map(lambda m: m * s[None, :])
    elif op == "Neg":
        out = v.map(lambda m: -m)
    elif op == "Flatten":
        axis = int(at.get("axis", 1))
        lead = int(np.prod(v.shape[:axis]))
        out = _reshape(v, (lead, v.size // max(lead, 1)))
    elif op == "Reshape" and isinstance(args[1], np.ndarray):
        out = _reshape(v, _target_shape(v, args[1], label))
    elif op in ("Squeeze", "Unsqueeze"):
        given = [int(a) for a in np.asarray(args[1] if len(args) > 1 else at.get("axes", [])).reshape(-1)]
        shape = list(v.shape)
        if op == "Squeeze":
            axes = {a % len(shape) for a in given}
            shape = [d for k, d in enumerate(shape) if (k not in axes if axes else d != 1)]
        else:
            for a in sorted(a % (len(shape) + len(given)) for a in given):
                shape.insert(a, 1)
        out = _reshape(v, tuple(shape))
    else:
        raise OnnxReadError(f"{label}: unsupported operation (supported: Gemm, MatMul, Add, Sub, Mul, Div, Neg, "
                            "Relu, Flatten, Reshape, Squeeze, Unsqueeze, Identity, Constant)")  # fmt: skip
    g.values[node.output[0]] = out


def _depths(relus: list[_Affine]) -> list[int]:
    depth: list[int] = []
    for pre in relus:  # Relu nodes are created in topological order
        depth.append(1 + max((depth[s] if s != INPUT else 0) for s in pre.coef))
    return depth


def _layout(relus: list[_Affine], out: _Affine, n_in: int) -> ReluNetwork:
    """Lay the affine DAG out as an MLP (module docstring): each hidden layer is a list of units,
    and every source a later layer reads is available in the layer just before it."""
    depth = _depths(relus)
    n_layers = max(depth, default=0)
    src_depth = {INPUT: 0, **{r: d for r, d in enumerate(depth)}}
    last_read: dict[int, int] = {}
    for r, pre in enumerate(relus):
        for s in pre.coef:
            last_read[s] = max(last_read.get(s, 0), depth[r])
    for s in out.coef:
        last_read[s] = n_layers + 1
    size = {INPUT: n_in, **{r: pre.size for r, pre in enumerate(relus)}}
    # where each source sits in layer d: (unit offset, is the input's +/- pair)
    prev: dict[int, tuple[int, bool]] = {INPUT: (0, False)}
    prev_width = n_in
    weights, biases = [], []

    def read(pre: _Affine, width: int, where: dict[int, tuple[int, bool]]) -> tuple[np.ndarray, np.ndarray]:
        w = np.zeros((width, pre.size))
        for s, c in pre.coef.items():
            off, pair = where[s]
            w[off : off + size[s]] += c
            if pair:  # x = relu(x) - relu(-x)
                w[off + size[s] : off + 2 * size[s]] -= c
        return w, pre.bias.copy()

    for d in range(1, n_layers + 1):
        cols_w, cols_b, where, width = [], [], {}, 0
        for r in (r for r in range(len(relus)) if depth[r] == d):
            w, b = read(relus[r], prev_width, prev)
            cols_w.append(w)
            cols_b.append(b)
            where[r] = (width, False)
            width += size[r]
        for s in sorted(s for s, last in last_read.items() if src_depth[s] < d < last):
            off, pair = prev[s]
            k = size[s]
            if s == INPUT and not pair:  # first carry of the input: split into relu(x), relu(-x)
                w = np.zeros((prev_width, 2 * k))
                w[off : off + k, :k] = np.eye(k)
                w[off : off + k, k:] = -np.eye(k)
            else:
                w = np.zeros((prev_width, 2 * k if pair else k))
                w[off : off + w.shape[1], :] = np.eye(w.shape[1])
            cols_w.append(w)
            cols_b.append(np.zeros(w.shape[1]))
            where[s] = (width, s == INPUT)
            width += w.shape[1]
        weights.append(np.hstack(cols_w))
        biases.append(np.concatenate(cols_b))
        prev, prev_width = where, width
    w, b = read(out, prev_width, prev)
    weights.append(w)
    biases.append(b)
    return ReluNetwork(weights, biases)


def read_onnx(path: str | PathLike) -> ReluNetwork:
    """The network of an ONNX file with one input and one output (module docstring).

    Raises :class:`OnnxReadError` (a ``ValueError``) naming the first unsupported node, and
    ``OSError``/``ValueError`` for a file that is missing or not ONNX.
    """
    import onnx
    from google.protobuf.message import DecodeError
    from onnx import numpy_helper

    try:
        model = onnx.load(str(path))
    except DecodeError:
        raise ValueError(f"{path}: not an ONNX model (protobuf cannot decode it)") from None
    graph = model.graph
    inits = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in inits]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise OnnxReadError(f"{path}: need exactly one input and one output, got {len(inputs)} and {len(graph.output)}")
    dims = [d.dim_value if d.dim_value > 0 else 1 for d in inputs[0].type.tensor_type.shape.dim]
    if not dims:
        raise OnnxReadError(f"{path}: input {inputs[0].name!r} has no shape")
    shape = tuple(dims) if len(dims) > 1 else (1, dims[0])
    n_in = int(np.prod(shape))
    g = _Graph(values={**inits, inputs[0].name: _Affine(shape, {INPUT: np.eye(n_in)}, np.zeros(n_in))})
    for node in graph.node:
        _step(g, node)
    out = g.values.get(graph.output[0].name)
    if not isinstance(out, _Affine):
        raise OnnxReadError(f"{path}: output {graph.output[0].name!r} does not depend on the input")
    return _layout(g.relus, out, n_in)


__all__ = ["OnnxReadError", "read_onnx"]
