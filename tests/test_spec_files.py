"""Flax -> ReluNetwork conversion and raw-unit spec files -> network-space specs."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from omegaconf import OmegaConf

from verifiers import Monotonicity, OutputBound
from vpals_jax.config import ModelConfig, OptimConfig
from vpals_jax.convert import to_relu_network
from vpals_jax.data.normalizer import MinMaxNormalizer
from vpals_jax.models import build_model
from vpals_jax.spec_files import build_specs
from vpals_jax.train.steps import create_state

CONF_SPEC = "conf/spec"


@pytest.fixture
def trained():
    rng = np.random.default_rng(0)
    x = rng.uniform([0, 10, -5], [100, 20, 5], size=(64, 3))
    y = x @ [0.1, 2.0, -1.0] + 3
    norm = MinMaxNormalizer.fit(x, y, ["psi", "quota", "other"], "lat")
    state = create_state(build_model(ModelConfig(depth=2, width=8)), OptimConfig(), 3, seed=1)
    return state, norm, x


def test_conversion_matches_flax_in_both_spaces(trained):
    state, norm, x = trained
    flax_out = np.asarray(state.apply_fn({"params": state.params}, jnp.asarray(norm.transform_x(x), jnp.float32)))
    net = to_relu_network(state.params)
    np.testing.assert_allclose(net.forward(norm.transform_x(x))[:, 0], flax_out, rtol=1e-5, atol=1e-5)
    raw = to_relu_network(state.params, norm, raw_units=True)
    np.testing.assert_allclose(raw.forward(x)[:, 0], norm.inverse_y(flax_out), rtol=1e-4, atol=1e-4)


def test_spec_file_maps_raw_units_into_network_space(trained):
    _, norm, _ = trained
    cfg = {
        "name": "t", "space": "raw", "region": {"default": "domain", "other": 0.0},
        "specs": [
            {"kind": "monotonicity", "feature": "psi", "direction": "increasing", "tolerance": 0.5,
             "region": {"psi": [10, 50]}},
            {"kind": "monotonicity", "feature": "quota", "direction": "decreasing"},
            {"kind": "output_bound", "lower": 0.0},
        ],
    }  # fmt: skip
    mono, dec, bound = build_specs(cfg, norm)
    assert isinstance(mono, Monotonicity) and mono.feature == 0 and mono.name == "psi increasing"
    np.testing.assert_allclose(mono.region.lower, norm.transform_x([10, norm.x_min[1], 0.0]))
    np.testing.assert_allclose(mono.region.upper, norm.transform_x([50, norm.x_max[1], 0.0]))
    assert mono.tolerance == pytest.approx(0.5 / norm.y_scale)
    assert dec.direction == "decreasing" and dec.region.lower[1] == 0 and dec.region.upper[1] == 1
    assert isinstance(bound, OutputBound) and bound.lower == pytest.approx(float(norm.transform_y(0.0)))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"kind": "monotonicity", "feature": "nope", "direction": "increasing"}, "unknown feature 'nope'"),
        ({"kind": "monotonicity", "feature": "psi", "direction": "up"}, "direction must be"),
        ({"kind": "monotonicity", "feature": "psi", "direction": "increasing", "tolerance": -1}, "tolerance must be >= 0"),
        ({"kind": "monotonicity", "feature": "psi", "direction": "increasing", "region": {"psi": [5, 1]}},
         "lower 5.0 is greater than upper 1.0"),
        ({"kind": "monotonicity", "feature": "psi", "direction": "increasing", "region": {"psi": [0, float("nan")]}},
         "bounds must be finite"),
        ({"kind": "monotonicity", "feature": "psi", "direction": "increasing", "colour": "red"}, "unknown key"),
        ({"kind": "sideways"}, "unknown spec kind 'sideways'"),
    ],
)  # fmt: skip
def test_bad_specs_are_named(trained, spec, message):
    _, norm, _ = trained
    with pytest.raises(ValueError, match=message):
        build_specs({"name": "bad", "space": "raw", "specs": [spec]}, norm)


def test_region_outside_the_training_domain_warns_but_builds(trained, caplog):
    _, norm, _ = trained
    (spec,) = build_specs({"space": "raw", "specs": [
        {"kind": "monotonicity", "feature": "psi", "direction": "increasing", "region": {"psi": [0, 500]}}]}, norm)  # fmt: skip
    assert "leaves the training domain" in caplog.text and spec.region.upper[0] > 1


@pytest.mark.parametrize("name", ["linnos", "linnos_domain", "cardwiki", "psi_monotone"])
def test_shipped_spec_files_build(name):
    from vpals_jax.data.tables import BENCHMARKS

    cfg = OmegaConf.to_container(OmegaConf.load(f"{CONF_SPEC}/{name}.yaml"))
    if name == "psi_monotone":
        from vpals_jax.data.schema import FEATURES as features
    else:
        features = BENCHMARKS[name.split("_")[0]].features
    n = len(features)
    norm = MinMaxNormalizer.fit(np.vstack([np.zeros(n), np.ones(n) * 10]), np.array([0.0, 1.0]), features, "y")
    specs = build_specs(cfg, norm)
    assert specs and all(s.region.dim == n for s in specs)
    if name == "linnos":
        assert specs[0].feature == 4 and specs[1].feature == 8
        np.testing.assert_allclose(specs[0].region.lower, [0.4, 0.4, 0.5, 0.5, 0.1, 0.5, 0.5, 0.5, 0.5])
