"""Interval bounds (IBP, ReLU-derivative indicators, interval gradient) contain sampled values."""

from __future__ import annotations

import numpy as np
import pytest

from verifiers import Box, ReluNetwork
from verifiers.bounds import interval as B
from verifiers.testing.instances import monotone_net, random_relu_net, unit_box


def random_boxes(rng, n_boxes, n, max_width=0.3):
    lo = rng.uniform(-1, 1, size=(n_boxes, n))
    hi = lo + rng.uniform(0, max_width, size=(n_boxes, n))
    return lo, hi


def layer_values(net: ReluNetwork, x: np.ndarray) -> list[np.ndarray]:
    out, h = [], x
    for k, (w, b) in enumerate(zip(net.weights, net.biases)):
        z = h @ w + b
        out.append(z)
        h = np.maximum(z, 0.0) if k < len(net.weights) - 1 else z
    return out


@pytest.mark.parametrize("precision", ["float64", "float32"])
@pytest.mark.parametrize("hidden", [(7,), (12, 9), (6, 6, 5)])
def test_preactivation_bounds_contain_samples(precision, hidden):
    rng = np.random.default_rng(len(hidden))
    net = random_relu_net(4, hidden, seed=len(hidden), bias_scale=0.5)
    lo, hi = random_boxes(rng, 40, 4)
    bounds = B.preactivation_bounds(net, lo, hi, precision=precision)
    assert len(bounds) == len(net.weights)
    for b in range(len(lo)):
        x = rng.uniform(lo[b], hi[b], size=(300, 4))
        x[:16] = np.where(rng.random((16, 4)) < 0.5, lo[b], hi[b])  # corners too
        for k, z in enumerate(layer_values(net, x)):
            assert np.all(z >= bounds[k][0][b]) and np.all(z <= bounds[k][1][b]), (k, b)


@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_gradient_bounds_contain_sampled_gradients(precision):
    rng = np.random.default_rng(3)
    net = random_relu_net(3, (10, 8), seed=3)
    lo, hi = random_boxes(rng, 40, 3, max_width=0.5)
    for i in range(3):
        gl, gh = B.gradient_bounds(net, lo, hi, i, precision=precision)
        assert gl.shape == (40, 1) and np.all(gl <= gh)
        for b in range(len(lo)):
            g = net.gradient(rng.uniform(lo[b], hi[b], size=(300, 3)), i)
            assert np.all(g >= gl[b, 0]) and np.all(g <= gh[b, 0])


def test_point_boxes_give_tight_bounds():
    net = random_relu_net(3, (16, 16), seed=4)
    x = np.random.default_rng(4).uniform(size=(10, 3))
    y_lo, y_hi = B.output_bounds(net, x, x)
    y = net.forward(x)
    assert np.all(y_lo <= y) and np.all(y <= y_hi)
    np.testing.assert_allclose(y_lo, y, atol=1e-12)
    np.testing.assert_allclose(y_hi, y, atol=1e-12)


def test_relu_derivative_bounds():
    z_lo = np.array([0.5, -2.0, -1.0, 0.0, -1.0])
    z_hi = np.array([1.0, -0.5, 1.0, 2.0, 0.0])
    d_lo, d_hi = B.relu_derivative_bounds(z_lo, z_hi)
    np.testing.assert_array_equal(d_lo, [1, 0, 0, 1, 0])
    np.testing.assert_array_equal(d_hi, [1, 0, 1, 1, 0])


def test_monotone_net_is_proven_in_one_box():
    net = monotone_net(5, (20, 20), increasing=(0, 3), decreasing=(1,), seed=2)
    lo, hi = np.full((1, 5), -2.0), np.full((1, 5), 2.0)
    for i, sign in ((0, 1), (3, 1), (1, -1)):
        gl, gh = B.gradient_bounds(net, lo, hi, i)
        assert (gl[0, 0] if sign > 0 else -gh[0, 0]) >= 0


def test_linear_network_gradient_is_exact():
    w = np.array([[2.0], [-3.0]])
    net = ReluNetwork([w], [np.zeros(1)])
    gl, gh = B.gradient_bounds(net, np.zeros((1, 2)), np.ones((1, 2)), 1)
    assert gl[0, 0] == gh[0, 0] == -3.0


def test_bound_fn_compiles_once_per_shape():
    """Networks of one shape share the compiled bound (weights are arguments, not constants)."""
    region = unit_box(3)
    lo, hi = random_boxes(np.random.default_rng(5), 64, 3)
    fn = B.make_monotonicity_bound_fn(random_relu_net(3, (9, 9), seed=0), 0, 1.0, region)
    fn(lo, hi)
    before = B._slope_jit._cache_size()
    for seed in range(1, 4):
        for feature in range(3):
            fn = B.make_monotonicity_bound_fn(random_relu_net(3, (9, 9), seed=seed), feature, -1.0, region)
            res = fn(lo, hi)
            assert res.lower.shape == (64,) and res.split_score.shape == (64, 3)
    assert B._slope_jit._cache_size() == before


def test_output_bound_fn_is_sound():
    rng = np.random.default_rng(6)
    net = random_relu_net(2, (8, 8), seed=6)
    region = Box([-1, -1], [1, 1])
    fn = B.make_output_bound_fn(net, -0.2, 0.3, region)
    lo, hi = random_boxes(rng, 32, 2)
    res = fn(lo, hi)
    for b in range(32):
        y = net.forward(rng.uniform(lo[b], hi[b], size=(200, 2)))[:, 0]
        assert res.lower[b] <= np.min(np.minimum(y + 0.2, 0.3 - y))


def test_batch_forward_matches_numpy():
    net = random_relu_net(4, (16, 16), seed=7)
    f = B.BatchForward(net, chunk=256)
    for n in (1, 100, 256, 1000):
        x = np.random.default_rng(n).normal(size=(n, 4))
        np.testing.assert_allclose(f(x), net.forward(x), rtol=1e-12, atol=1e-12)


def test_bad_box_shapes_are_rejected():
    net = random_relu_net(3, (4,), seed=0)
    with pytest.raises(ValueError, match="do not fit"):
        B.preactivation_bounds(net, np.zeros((2, 4)), np.ones((2, 4)))
    with pytest.raises(ValueError, match="precision"):
        B.device_net(net, precision="float16")


def test_compiled_programs_are_bounded_by_distinct_network_shapes():
    """A long process meeting many shapes must not keep every executable (LLVM ran out of memory)."""
    from verifiers.bounds.jit_cache import ShapeBudget

    cleared = []
    budget = ShapeBudget(limit=3, clear=lambda: cleared.append(1))
    for shape in [(1,), (2,), (1,), (3,), (2,), (4,), (5,)]:
        budget.note(shape)
    assert len(cleared) == 1 and budget.seen == {(4,), (5,)}
