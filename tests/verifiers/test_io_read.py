"""Interchange in: ONNX networks from our writer, PyTorch and Keras-shaped graphs; VNN-LIB 1.0 and 2.0."""

from __future__ import annotations

import numpy as np
import pytest

from verifiers import Box, Monotonicity, OutputBound, get_verifier
from verifiers.io import (
    OnnxReadError,
    VnnlibError,
    export_vnnlib,
    load_instance,
    read_onnx,
    read_vnnlib,
    run_onnx,
    write_instances_csv,
    write_onnx,
)
from verifiers.testing.instances import planted_violation, random_relu_net

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper


def _x(n, k=128, seed=0):
    return np.random.default_rng(seed).uniform(-1.5, 1.5, (k, n))


@pytest.mark.parametrize("sizes", [(9, (500, 500)), (9, (300, 300)), (5, (50,) * 6), (17, (64, 64)), (3, ())])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_onnx_round_trip_within_1e6(tmp_path, sizes, dtype):
    n, hidden = sizes
    net = random_relu_net(n, hidden, seed=n)
    back = read_onnx(write_onnx(net, tmp_path / "n.onnx", dtype=dtype))
    assert back.layer_sizes == net.layer_sizes
    x = _x(n)
    err = np.abs(back(x) - net(x)).max()
    assert err <= (1e-6 if dtype == "float32" else 1e-12) * max(1.0, np.abs(net(x)).max())


# The TorchScript exporter (dynamo=False) is deprecated, but it is what most published ReLU ONNX
# files come from, so it is the one to read exactly; its notices are expected here.
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torch_export_reads_exactly(tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(6, 32), torch.nn.ReLU(), torch.nn.Linear(32, 16),
                                torch.nn.ReLU(), torch.nn.Linear(16, 3)).double()  # fmt: skip
    path = tmp_path / "torch.onnx"
    torch.onnx.export(model, torch.zeros(1, 1, 6, dtype=torch.float64), str(path), dynamo=False)
    net = read_onnx(path)
    assert net.layer_sizes == [6, 32, 16, 3]
    x = _x(6)
    with torch.no_grad():
        ref = model(torch.tensor(x[:, None, :])).numpy()
    np.testing.assert_allclose(net(x), ref, rtol=0, atol=1e-12)


def _keras_like(path, net, mean, std):
    """The tf2onnx shape: a symbolic batch, Sub/Div normaliser, MatMul + Add, Identity nodes."""
    f32 = lambda a, name: numpy_helper.from_array(np.asarray(a, dtype=np.float32), name)
    nodes = [helper.make_node("Sub", ["input_1:0", "mean"], ["centred"]),
             helper.make_node("Div", ["centred", "std"], ["scaled"]),
             helper.make_node("Identity", ["scaled"], ["h_in"])]  # fmt: skip
    inits = [f32(mean, "mean"), f32(std, "std")]
    h = "h_in"
    for k, (w, b) in enumerate(zip(net.weights, net.biases)):
        inits += [f32(w, f"W{k}"), f32(b, f"b{k}")]
        nodes += [
            helper.make_node("MatMul", [h, f"W{k}"], [f"m{k}"]),
            helper.make_node("Add", [f"m{k}", f"b{k}"], [f"z{k}"]),
        ]
        h = f"z{k}"
        if k < len(net.weights) - 1:
            nodes.append(helper.make_node("Relu", [h], [f"r{k}"]))
            h = f"r{k}"
    nodes.append(helper.make_node("Identity", [h], ["dense_out"]))
    graph = helper.make_graph(nodes, "keras", [helper.make_tensor_value_info("input_1:0", TensorProto.FLOAT, ["N", net.n_inputs])],
                              [helper.make_tensor_value_info("dense_out", TensorProto.FLOAT, ["N", 1])], inits)  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(model, str(path))
    return path


def test_keras_shaped_graph_with_normaliser_is_folded(tmp_path):
    net = random_relu_net(4, (12, 12), seed=3)
    mean, std = np.array([0.5, -1.0, 2.0, 0.0]), np.array([2.0, 0.5, 4.0, 1.0])
    path = _keras_like(tmp_path / "k.onnx", net, mean, std)
    back = read_onnx(path)
    x = _x(4)
    np.testing.assert_allclose(back(x), run_onnx(path, x), rtol=0, atol=1e-5)
    np.testing.assert_allclose(back(x), net((x - mean) / std), rtol=0, atol=1e-5)


def test_unsupported_node_is_named(tmp_path):
    nodes = [helper.make_node("Sigmoid", ["X"], ["Y"], name="squash")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 2])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 2])])  # fmt: skip
    onnx.save(helper.make_model(graph), str(tmp_path / "s.onnx"))
    with pytest.raises(OnnxReadError, match="'squash' \\(op Sigmoid\\)"):
        read_onnx(tmp_path / "s.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"\x00\xffnot onnx")
    with pytest.raises(ValueError):
        read_onnx(tmp_path / "junk.onnx")


@pytest.mark.parametrize("version", ["1.0", "2.0"])
@pytest.mark.parametrize("direction", ["increasing", "decreasing"])
def test_monotonicity_export_reads_back(tmp_path, version, direction):
    net = random_relu_net(4, (8, 8), seed=5)
    spec = Monotonicity(1, direction, Box([-1.0, 0.0, 0.5, -2.0], [1.0, 0.5, 1.5, 2.0]), tolerance=0.02, name="m")
    o, v = export_vnnlib(net, spec, tmp_path / "m.onnx", tmp_path / "m.vnnlib", version=version, dtype="float64")
    f, got, prop = load_instance(o, v)
    assert prop.declared is not None and prop.declared.to_dict() == spec.to_dict()  # exact round trip
    assert (got.feature, got.direction) == (1, direction)
    np.testing.assert_array_equal(got.region.lower, spec.region.lower)
    # the faithful reading: 2.0 is strict (t exactly); 1.0 adds the export's margin, one ulp inside
    assert got.tolerance == (0.02 if version == "2.0" else np.nextafter(0.02 + 1e-6, 0))
    x = _x(4)
    np.testing.assert_allclose(f(x), net(x), rtol=0, atol=1e-12)


def test_output_bound_export_reads_back_and_verdicts_agree(tmp_path):
    p = planted_violation(3, (8, 8), seed=1)
    lo, hi = (float(v) for v in (p.net(p.spec.region.lower)[0] - 50, p.net(p.spec.region.upper)[0] + 50))
    for spec, truth in ((OutputBound(lower=lo, upper=hi, region=p.spec.region), "VERIFIED"),
                        (OutputBound(lower=None, upper=float(p.net(p.spec.region.center)[0]), region=p.spec.region),
                         "FALSIFIED")):  # fmt: skip
        o, v = export_vnnlib(p.net, spec, tmp_path / "o.onnx", tmp_path / "o.vnnlib", dtype="float64")
        net, got, prop = load_instance(o, v)
        assert got.to_dict() == {**spec.to_dict(), "name": "o"} and prop.version == "1.0"
        assert get_verifier("milp").verify(net, got, time_budget_s=30).status.value == truth


def _write(tmp_path, text, name="p.vnnlib"):
    (tmp_path / name).write_text(text)
    return tmp_path / name


def test_vnncomp_style_1_0_property(tmp_path):
    box = "".join(f"(assert (>= X_{k} -1))\n(assert (<= X_{k} 1))\n" for k in range(3))
    decl = (
        "".join(f"(declare-const X_{k} Real)\n" for k in range(3))
        + "(declare-const Y_0 Real)\n(declare-const Y_1 Real)\n"
    )
    prop = read_vnnlib(_write(tmp_path, decl + box + "(assert (<= Y_1 0.25))\n"))
    assert prop.output == 1 and prop.n_outputs == 2
    assert prop.spec.lower == np.nextafter(0.25, np.inf) and prop.spec.upper is None  # Y_1 > 0.25 asked
    # a scaled, strict violation 2 Y_0 > 1 asks for Y_0 <= 0.5; a quotient may be rounded, so the
    # bound moves one ulp inward (VERIFIED must imply UNSAT)
    prop = read_vnnlib(_write(tmp_path, decl + box + "(assert (> (* 2.0 Y_0) 1.0))\n"))
    assert prop.spec.upper == np.nextafter(0.5, -np.inf) and prop.output == 0
    net = random_relu_net(3, (5,), n_outputs=2, seed=0)
    o = write_onnx(net, tmp_path / "two.onnx")
    sliced, spec, _ = load_instance(o, tmp_path / "p.vnnlib")
    assert spec.upper == np.nextafter(0.5, -np.inf)
    assert sliced.n_outputs == 1
    np.testing.assert_allclose(sliced(_x(3))[:, 0], net(_x(3))[:, 0], atol=1e-6)


@pytest.mark.parametrize("assertion, match", [
    ("(assert (<= (- Y_0 Y_1) 0))", "unsupported property"),
    ("(assert (or (and (<= Y_0 0) (<= X_0 0)) (and (>= Y_1 1) (<= X_0 0))))", "unsupported property"),
    ("(assert (<= Y_0 0))\n(assert (>= Y_1 1))", "2 output constraints"),
])  # fmt: skip
def test_unsupported_1_0_properties_are_named(tmp_path, assertion, match):
    decl = "(declare-const X_0 Real)\n(declare-const Y_0 Real)\n(declare-const Y_1 Real)\n"
    with pytest.raises(VnnlibError, match=match):
        read_vnnlib(_write(tmp_path, decl + "(assert (>= X_0 0))\n(assert (<= X_0 1))\n" + assertion + "\n"))
    with pytest.raises(VnnlibError, match="not bounded"):
        read_vnnlib(_write(tmp_path, decl + "(assert (>= X_0 0))\n(assert (<= Y_0 0))\n"))


def test_2_0_hand_written_monotonicity_with_swapped_copies(tmp_path):
    """x' declared first in the ordering, scalar output, '=' ties: still the same spec."""
    text = """(vnnlib-version <2.0>)
(declare-network g (declare-input A Real [2]) (declare-output B Real []))
(declare-network h (equal-to g) (declare-input C Real [2]) (declare-output D Real []))
(assert (and (>= A[0] 0.0) (<= A[0] 1.0) (>= A[1] -1.0) (<= A[1] 1.0)))
(assert (and (>= C[0] 0.0) (<= C[0] 1.0) (>= C[1] -0.5) (<= C[1] 2.0)))
(assert (= A[1] C[1]))
(assert (>= A[0] C[0]))
(assert (< (- B D) -0.125))
"""
    prop = read_vnnlib(_write(tmp_path, text))
    s = prop.spec
    assert isinstance(s, Monotonicity) and (s.feature, s.direction, s.tolerance) == (0, "increasing", 0.125)
    np.testing.assert_array_equal(s.region.lower, [0.0, -0.5])  # the tie intersects the two boxes
    np.testing.assert_array_equal(s.region.upper, [1.0, 1.0])


def test_instances_csv_is_relative(tmp_path):
    (tmp_path / "onnx").mkdir()
    path = write_instances_csv([(tmp_path / "onnx" / "a.onnx", tmp_path / "a.vnnlib", 100)], tmp_path / "instances.csv")
    assert path.read_text().strip() == "onnx/a.onnx,a.vnnlib,100"
