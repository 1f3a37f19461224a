"""Write a :class:`~verifiers.network.ReluNetwork` as ONNX (MatMul, Add, Relu), and run ONNX files.

The graph is built directly with ``onnx.helper`` (no torch needed): input ``X`` of shape
``(batch, n)``, output ``Y`` of shape ``(batch, m)``, one ``MatMul`` + ``Add`` per layer and a
``Relu`` after every hidden layer. ``dtype="float32"`` (the default, what VNN-COMP tools expect)
or ``"float64"``. :func:`run_onnx` evaluates a file with onnxruntime (used by the tests to check
that an exported file computes the network).
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path

import numpy as np

from verifiers.network import ReluNetwork

OPSET = 13
_NP = {"float32": np.float32, "float64": np.float64}


def _onnx():
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    return onnx, TensorProto, helper, numpy_helper


def _elem_type(dtype: str) -> int:
    _, TensorProto, _, _ = _onnx()
    if dtype not in _NP:
        raise ValueError(f"ONNX dtype must be one of {sorted(_NP)}, got {dtype!r}")
    return TensorProto.FLOAT if dtype == "float32" else TensorProto.DOUBLE


def mlp_nodes(net: ReluNetwork, x: str, out: str, prefix: str, dtype: str, weight_prefix: str | None = None):
    """Nodes and initializers computing ``net`` on tensor ``x`` into tensor ``out``.

    ``weight_prefix`` names the initializers; two calls with the same ``weight_prefix`` share the
    weights (a weight-tied copy): the second call returns no initializers.
    """
    _, _, helper, numpy_helper = _onnx()
    np_t = _NP[dtype]
    wp = prefix if weight_prefix is None else weight_prefix
    nodes, inits = [], []
    h = x
    last = len(net.weights) - 1
    for k, (w, b) in enumerate(zip(net.weights, net.biases)):
        wn, bn = f"{wp}W{k}", f"{wp}b{k}"
        inits.append(numpy_helper.from_array(np.asarray(w, dtype=np_t), wn))
        inits.append(numpy_helper.from_array(np.asarray(b, dtype=np_t), bn))
        mm, z = f"{prefix}mm{k}", (out if k == last else f"{prefix}z{k}")
        nodes.append(helper.make_node("MatMul", [h, wn], [mm], name=f"{prefix}MatMul{k}"))
        nodes.append(helper.make_node("Add", [mm, bn], [z], name=f"{prefix}Add{k}"))
        if k < last:
            h = f"{prefix}h{k}"
            nodes.append(helper.make_node("Relu", [z], [h], name=f"{prefix}Relu{k}"))
    return nodes, inits


def save_model(nodes, inits, inputs, outputs, path: str | PathLike, name: str, doc: str = "") -> Path:
    """Assemble, check and save an ONNX model; de-duplicates initializers by name."""
    onnx, _, helper, _ = _onnx()
    seen, uniq = set(), []
    for t in inits:
        if t.name not in seen:
            seen.add(t.name)
            uniq.append(t)
    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=uniq)
    model = helper.make_model(
        graph, producer_name="vpals-jax verifiers.io", opset_imports=[helper.make_opsetid("", OPSET)]
    )
    model.ir_version = min(model.ir_version, 8)  # readable by older onnxruntime / onnx2pytorch
    if doc:
        model.doc_string = doc
    onnx.checker.check_model(model)
    path = Path(path)
    onnx.save(model, str(path))
    return path


def write_onnx(net: ReluNetwork, path: str | PathLike, dtype: str = "float32", batch: int | None = None) -> Path:
    """Write ``net`` as ONNX: input ``X`` ``(batch, n)``, output ``Y`` ``(batch, m)`` (``batch=None``:
    a symbolic batch dimension)."""
    _, _, helper, _ = _onnx()
    et = _elem_type(dtype)
    dim = "batch" if batch is None else int(batch)
    nodes, inits = mlp_nodes(net, "X", "Y", "", dtype)
    inputs = [helper.make_tensor_value_info("X", et, [dim, net.n_inputs])]
    outputs = [helper.make_tensor_value_info("Y", et, [dim, net.n_outputs])]
    return save_model(nodes, inits, inputs, outputs, path, "relu_mlp")


def run_onnx(path: str | PathLike, x: np.ndarray) -> np.ndarray:
    """Evaluate an ONNX file with one input on ``x`` (cast to the input's type) with onnxruntime."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    np_t = np.float64 if inp.type == "tensor(double)" else np.float32
    return np.asarray(sess.run(None, {inp.name: np.asarray(x, dtype=np_t)})[0], dtype=np.float64)
