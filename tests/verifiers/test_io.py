"""Interchange formats: NNet round trips and normalisation, ONNX through onnxruntime, VNN-LIB export."""

from __future__ import annotations

import re

import numpy as np
import pytest

from verifiers import Box, Monotonicity
from verifiers.io import export_vnnlib, read_nnet, run_onnx, vnnlib_text, write_nnet, write_onnx
from verifiers.testing.instances import monotone_net, random_relu_net, unit_box

pytest.importorskip("onnxruntime")


def _points(n, k=64, seed=0, scale=2.0):
    return np.random.default_rng(seed).uniform(-scale, scale, (k, n))


@pytest.mark.parametrize("sizes", [(3, (5,)), (5, (7, 6)), (9, (30, 30)), (2, ())])
def test_nnet_round_trip_is_exact(tmp_path, sizes):
    n, hidden = sizes
    net = random_relu_net(n, hidden, seed=n)
    path = write_nnet(net, tmp_path / "net.nnet")
    back = read_nnet(path).network
    assert back.layer_sizes == net.layer_sizes
    x = _points(n)
    np.testing.assert_allclose(back(x), net(x), rtol=0, atol=1e-12)
    # and once more: NNet -> ReluNetwork -> NNet gives the same file
    again = write_nnet(back, tmp_path / "again.nnet")
    assert again.read_text().splitlines()[1:] == path.read_text().splitlines()[1:]


def test_nnet_domain_is_written_and_read(tmp_path):
    net = random_relu_net(3, (4,), seed=1)
    box = Box([0, -1, 2], [1, 1, 5])
    f = read_nnet(write_nnet(net, tmp_path / "d.nnet", domain=box))
    assert f.domain is not None and np.array_equal(f.domain.lower, box.lower)
    assert read_nnet(write_nnet(net, tmp_path / "n.nnet")).domain is None


def _nnet_reference(weights_rows, biases, mins, maxes, means, ranges, x):
    """The NNet semantics written out: clip, normalise, run, de-normalise (weights as (out, in))."""
    h = (np.clip(x, mins, maxes) - means[:-1]) / ranges[:-1]
    for k, (w, b) in enumerate(zip(weights_rows, biases)):
        h = h @ w.T + b
        if k < len(biases) - 1:
            h = np.maximum(h, 0)
    return h * ranges[-1] + means[-1]


def _write_raw(path, weights_rows, biases, mins, maxes, means, ranges, fmt="{:.9f}"):
    sizes = [weights_rows[0].shape[1]] + [len(b) for b in biases]
    lines = ["// hand-written test file", "// second comment line"]
    lines.append(f"{len(biases)},{sizes[0]},{sizes[-1]},{max(sizes)},")
    lines.append(",".join(map(str, sizes)) + ",")
    lines.append("0,")
    for arr in (mins, maxes, means, ranges):
        lines.append(",".join(fmt.format(v) for v in arr) + ",")
    for w, b in zip(weights_rows, biases):
        lines += [",".join(fmt.format(v) for v in row) + "," for row in w]
        lines += [fmt.format(v) + "," for v in b]
    path.write_text("\n".join(lines) + "\n")


def test_nnet_normalisation_is_folded_into_the_network(tmp_path):
    rng = np.random.default_rng(3)
    ws = [np.round(rng.normal(size=(6, 4)), 6), np.round(rng.normal(size=(1, 6)), 6)]
    bs = [np.round(rng.normal(size=6), 6), np.round(rng.normal(size=1), 6)]
    mins, maxes = np.array([-1.0, 0.0, 2.0, -5.0]), np.array([1.0, 10.0, 3.0, 5.0])
    means = np.array([0.5, 4.0, 2.5, 0.0, 7.5])
    ranges = np.array([2.0, 10.0, 0.5, 10.0, 3.0])
    _write_raw(tmp_path / "norm.nnet", ws, bs, mins, maxes, means, ranges)
    f = read_nnet(tmp_path / "norm.nnet")
    x = np.random.default_rng(0).uniform(mins, maxes, (200, 4))  # inside the domain: no clipping
    np.testing.assert_allclose(f.network(x), _nnet_reference(ws, bs, mins, maxes, means, ranges, x), atol=1e-9)
    assert f.domain is not None and np.array_equal(f.domain.upper, maxes)


def test_zero_range_nnet_means_no_scaling(tmp_path):
    """Ouroboros' files write zeros for every normalisation value: the weights are used as is."""
    rng = np.random.default_rng(4)
    ws = [np.round(rng.normal(size=(5, 3)), 6), np.round(rng.normal(size=(2, 5)), 6)]
    bs = [np.round(rng.normal(size=5), 6), np.round(rng.normal(size=2), 6)]
    zeros3, zeros4 = np.zeros(3), np.zeros(4)
    _write_raw(tmp_path / "z.nnet", ws, bs, zeros3, zeros3, zeros4, zeros4)
    f = read_nnet(tmp_path / "z.nnet")
    assert f.domain is None  # min == max == 0 is "no domain", not the point 0
    x = _points(3)
    expected = np.maximum(x @ ws[0].T + bs[0], 0) @ ws[1].T + bs[1]
    np.testing.assert_allclose(f.network(x), expected, atol=1e-12)
    # a zero range for some inputs only, with non-zero means: subtract the mean, do not divide
    means = np.array([1.0, 0.0, -2.0, 0.5])
    ranges = np.array([0.0, 4.0, 0.0, 0.0])
    _write_raw(tmp_path / "p.nnet", ws, bs, -10 * np.ones(3), 10 * np.ones(3), means, ranges)
    g = read_nnet(tmp_path / "p.nnet").network
    safe = np.where(ranges == 0, 1.0, ranges)
    np.testing.assert_allclose(g(x), _nnet_reference(ws, bs, -10, 10, means, safe, x), atol=1e-12)


def test_malformed_nnet_is_rejected(tmp_path):
    p = tmp_path / "bad.nnet"
    p.write_text("// nothing\n1,2,1,2,\n")
    with pytest.raises(ValueError, match="not an NNet"):
        read_nnet(p)
    net = random_relu_net(2, (3,))
    text = write_nnet(net, tmp_path / "ok.nnet").read_text().splitlines()
    (tmp_path / "short.nnet").write_text("\n".join(text[:-1]) + "\n")
    with pytest.raises(ValueError, match="expected"):
        read_nnet(tmp_path / "short.nnet")


@pytest.mark.parametrize("dtype, tol", [("float64", 1e-12), ("float32", 1e-6)])
def test_onnx_export_runs_in_onnxruntime(tmp_path, dtype, tol):
    net = random_relu_net(4, (8, 6), seed=2)
    path = write_onnx(net, tmp_path / f"net_{dtype}.onnx", dtype=dtype)
    x = _points(4, scale=1.0)
    y = run_onnx(path, x)
    assert y.shape == (64, 1)
    np.testing.assert_allclose(y, net(x), rtol=0, atol=tol * max(1.0, float(np.abs(net(x)).max())))


def test_nnet_to_onnx_chain(tmp_path):
    """NNet -> ReluNetwork -> ONNX reproduces the NNet semantics to 1e-6."""
    rng = np.random.default_rng(8)
    ws = [np.round(rng.normal(size=(6, 3)), 6), np.round(rng.normal(size=(1, 6)), 6)]
    bs = [np.round(rng.normal(size=6), 6), np.round(rng.normal(size=1), 6)]
    mins, maxes = -np.ones(3), np.ones(3)
    means, ranges = np.array([0.1, 0.2, 0.3, 1.0]), np.array([2.0, 2.0, 2.0, 0.5])
    _write_raw(tmp_path / "c.nnet", ws, bs, mins, maxes, means, ranges)
    net = read_nnet(tmp_path / "c.nnet").network
    x = np.random.default_rng(1).uniform(-1, 1, (100, 3))
    ref = _nnet_reference(ws, bs, mins, maxes, means, ranges, x)
    np.testing.assert_allclose(run_onnx(write_onnx(net, tmp_path / "c.onnx", dtype="float64"), x), ref, atol=1e-9)
    np.testing.assert_allclose(run_onnx(write_onnx(net, tmp_path / "c32.onnx"), x), ref, atol=1e-6)


# --- VNN-LIB -----------------------------------------------------------------------------------------


def _parse_vnnlib(text):
    """A strict little reader for the subset we write: declarations and simple bound assertions."""
    body = "\n".join(ln.split(";", 1)[0] for ln in text.splitlines())
    assert body.count("(") == body.count(")")
    decls = re.findall(r"\(declare-const (\w+) Real\)", body)
    num = r"(-?\d+(?:\.\d*)?)"
    asserts = re.findall(rf"\(assert \((<=|>=) (\w+) {num}\)\)", body)
    assert len(asserts) == body.count("(assert"), "every assertion is a simple bound"
    bounds = {}
    for op, var, val in asserts:
        assert var in decls
        bounds.setdefault(var, {})[op] = float(val)
    return decls, bounds


@pytest.mark.parametrize("direction", ["increasing", "decreasing"])
def test_vnnlib_export_is_well_formed_and_the_onnx_computes_the_difference(tmp_path, direction):
    n, i = 4, 1
    net = random_relu_net(n, (8, 8), seed=5)
    region = Box([-1.0, 0.0, 0.5, -2.0], [1.0, 0.5, 1.5, 2.0])
    spec = Monotonicity(feature=i, direction=direction, region=region, tolerance=0.02, name="demo")
    onnx_path, vnn_path = export_vnnlib(net, spec, tmp_path / "m.onnx", tmp_path / "m.vnnlib", dtype="float64")
    decls, bounds = _parse_vnnlib(vnn_path.read_text())
    assert decls == [f"X_{k}" for k in range(n + 1)] + ["Y_0"]
    for k in range(n):
        assert bounds[f"X_{k}"] == {">=": region.lower[k], "<=": region.upper[k]}
    assert bounds[f"X_{n}"] == {">=": 0.0, "<=": 0.5}
    if direction == "increasing":
        assert bounds["Y_0"] == {"<=": pytest.approx(-(0.02 + 1e-6))}
    else:
        assert bounds["Y_0"] == {">=": pytest.approx(0.02 + 1e-6)}

    rng = np.random.default_rng(0)
    x = rng.uniform(region.lower, region.upper, (50, n))
    d = rng.uniform(0, 1, 50) * (region.upper[i] - x[:, i])  # x + d e_i stays in the region
    xp = x.copy()
    xp[:, i] += d
    y = np.array([run_onnx(onnx_path, np.append(x[k], d[k])[None])[0, 0] for k in range(50)])
    np.testing.assert_allclose(y, net(xp)[:, 0] - net(x)[:, 0], atol=1e-12)
    # a step past the region's edge is clipped to it: x' never leaves the region
    far = np.append(x[0], 10.0)[None]
    edge = x[0].copy()
    edge[i] = region.upper[i]
    assert run_onnx(onnx_path, far)[0, 0] == pytest.approx(net(edge)[0] - net(x[0])[0], abs=1e-12)
    # the default float32 export: the same to float32 accuracy
    o32, _ = export_vnnlib(net, spec, tmp_path / "m32.onnx", tmp_path / "m32.vnnlib")
    y32 = np.array([run_onnx(o32, np.append(x[k], d[k])[None])[0, 0] for k in range(10)])
    np.testing.assert_allclose(y32, y[:10], atol=1e-5)


def test_vnnlib_zero_tolerance_needs_a_margin_and_bad_input():
    net = monotone_net(2, (4,), increasing=(0,))
    spec = Monotonicity(0, "increasing", unit_box(2))
    _, bounds = _parse_vnnlib(vnnlib_text(net, spec))
    assert bounds["Y_0"]["<="] < 0  # d = 0 (Y_0 = 0) must not satisfy the negation
    with pytest.raises(ValueError):
        vnnlib_text(net, spec, margin=-1.0)
    with pytest.raises(ValueError):
        vnnlib_text(random_relu_net(3, (4,)), spec)  # region / network dimension mismatch
