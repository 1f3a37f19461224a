"""The monotone-by-construction baselines: monotone on sampled pairs, exact ReLU conversion,
and proved monotone over the whole box by the project's verifier."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from verifiers import Box, Monotonicity, Status, get_verifier
from vpals_jax.config import ModelConfig
from vpals_jax.convert import to_relu_network
from vpals_jax.models import CMNN, LMN, build_model, monotone_signs

FEATURES = ["a", "b", "c", "d", "e"]
MONOTONE = {"a": "increasing", "c": "decreasing", "e": "increasing"}


def make(name: str, seed: int = 0, scale: float = 3.0, **kw):
    """A baseline with weights far from their init (scaled, shifted), so the constraints bite."""
    model = build_model(ModelConfig(name=name, depth=2, width=12, monotone=MONOTONE, **kw), FEATURES)
    params = model.init(jax.random.PRNGKey(seed), jnp.zeros((1, len(FEATURES))))["params"]
    rng = np.random.default_rng(seed)
    params = jax.tree_util.tree_map(lambda p: jnp.asarray(p * scale + rng.normal(0, 0.5, p.shape), jnp.float32), params)
    return model, params


@pytest.mark.parametrize("name", ["cmnn", "lmn"])
@pytest.mark.parametrize("seed", [0, 1])
def test_monotone_on_sampled_pairs(name, seed):
    model, params = make(name, seed)
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 2.0, (4000, len(FEATURES))).astype(np.float32)
    f = np.asarray(model.apply({"params": params}, x), np.float64)
    for i, feature in enumerate(FEATURES):
        step = np.zeros(len(FEATURES), np.float32)
        step[i] = 0.37
        diff = np.asarray(model.apply({"params": params}, x + step), np.float64) - f
        if feature in MONOTONE:
            sign = 1 if MONOTONE[feature] == "increasing" else -1
            assert (sign * diff).min() >= -1e-5 * (1 + np.abs(f).max()), feature
        else:  # a free input really is free: the test would notice a model monotone in everything
            assert diff.min() < 0 < diff.max() or name == "lmn", feature


@pytest.mark.parametrize("name", ["cmnn", "lmn", "mlp"])
def test_relu_conversion_matches_flax_forward(name):
    model, params = make(name) if name != "mlp" else (build_model(ModelConfig(depth=2, width=12)), None)
    if params is None:
        params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, len(FEATURES))))["params"]
    x = np.random.default_rng(3).uniform(-0.5, 1.5, (2000, len(FEATURES)))
    net = to_relu_network(params, model=model)
    with jax.enable_x64(True):  # the float64 forward, so the comparison is not float32 rounding
        p64 = jax.tree_util.tree_map(lambda p: jnp.asarray(p, jnp.float64), params)
        ref = np.asarray(model.apply({"params": p64}, jnp.asarray(x, jnp.float64)))
    assert np.abs(net.forward(x)[:, 0] - ref).max() < 1e-6
    f32 = np.asarray(model.apply({"params": params}, x.astype(np.float32)))
    assert np.abs(net.forward(x)[:, 0] - f32).max() < 1e-4 * (1 + np.abs(f32).max())


@pytest.mark.parametrize("name", ["cmnn", "lmn"])
def test_baseline_parameters_are_not_read_as_an_mlp(name):
    _, params = make(name)
    with pytest.raises(ValueError, match="not an MLP parameter tree"):
        to_relu_network(params)


@pytest.mark.parametrize("name", ["cmnn", "lmn"])
def test_crown_proves_a_baseline_monotone_over_the_whole_box(name):
    """Known truth for the verifier: a by-construction network is VERIFIED (never FALSIFIED)."""
    model, params = make(name, seed=2)
    net = to_relu_network(params, model=model)
    box = Box(np.zeros(len(FEATURES)), np.ones(len(FEATURES)))
    verifier = get_verifier("crown")
    for feature, direction in MONOTONE.items():
        spec = Monotonicity(feature=FEATURES.index(feature), direction=direction, region=box, tolerance=1e-4)
        verdict = verifier.verify(net, spec, time_budget_s=60)
        assert verdict.status is Status.VERIFIED, (feature, verdict.status)


def test_module_types_and_sign_sources():
    spec = {"specs": [{"kind": "monotonicity", "feature": "b", "direction": "decreasing"},
                      {"kind": "output_bound", "lower": 0.0},
                      {"kind": "monotonicity", "feature": "zz", "direction": "increasing"}]}  # fmt: skip
    assert monotone_signs(ModelConfig(name="cmnn"), FEATURES, spec) == (0, -1, 0, 0, 0)  # zz: not a feature
    assert monotone_signs(ModelConfig(name="lmn", monotone={"e": "increasing"}), FEATURES, spec) == (0, 0, 0, 0, 1)
    assert isinstance(build_model(ModelConfig(name="cmnn"), FEATURES, spec), CMNN)
    assert isinstance(build_model(ModelConfig(name="lmn"), FEATURES, spec), LMN)
    with pytest.raises(ValueError, match="needs monotone features"):
        build_model(ModelConfig(name="cmnn"), FEATURES, {"specs": []})
    with pytest.raises(ValueError, match="unknown feature 'zz'"):
        build_model(ModelConfig(name="lmn", monotone={"zz": "increasing"}), FEATURES)
    with pytest.raises(ValueError, match="both increasing and decreasing"):
        monotone_signs(ModelConfig(name="cmnn"), FEATURES, {"specs": [{"feature": "a", "direction": "increasing"},
                                                                      {"feature": "a", "direction": "decreasing"}]})  # fmt: skip
    with pytest.raises(ValueError, match="width must be even"):
        build_model(ModelConfig(name="lmn", width=7), FEATURES, spec)


@pytest.mark.parametrize(("kw", "match"), [({"name": "tree"}, "model.name"), ({"cmnn_split": [1, 1]}, "cmnn_split"),
                                           ({"lmn_lipschitz": 0.0}, "lmn_lipschitz"),
                                           ({"monotone": {"a": "up"}}, "increasing or decreasing")])  # fmt: skip
def test_bad_model_config_names_the_key(kw, match):
    with pytest.raises(ValueError, match=match):
        ModelConfig(**kw)
