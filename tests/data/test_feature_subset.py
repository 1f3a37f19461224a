"""A spec set on a model trained on a feature subset: specs on absent features are skipped and named,
or refused with spec.missing_features=fail; what is kept still means what the file says."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from omegaconf import OmegaConf

from verifiers import Monotonicity, OutputBound
from vpals_jax.config import SpecSetConfig
from vpals_jax.data import schema
from vpals_jax.data.normalizer import MinMaxNormalizer
from vpals_jax.spec_files import applicable_specs, build_specs

SUBSET = [f for f in schema.FEATURES if f not in ("mem_limit_mb", "cg_psi_io_full_pct")]


@pytest.fixture
def norm() -> MinMaxNormalizer:
    rng = np.random.default_rng(0)
    x = rng.uniform(1, 50, size=(40, len(SUBSET)))
    return MinMaxNormalizer.fit(x, rng.uniform(1, 9, 40), SUBSET, "latency_p50_ms")


def psi_monotone(**extra) -> dict:
    return {**OmegaConf.to_container(OmegaConf.load("conf/spec/psi_monotone.yaml")), **extra}


def test_specs_on_absent_features_are_skipped_and_named(norm, caplog):
    caplog.set_level(logging.WARNING)
    specs = build_specs(psi_monotone(), norm)
    assert len(specs) == 13  # 15 minus the two on absent features
    mono = [s for s in specs if isinstance(s, Monotonicity)]
    assert [SUBSET[s.feature] for s in mono] == [s.split()[0] for s in (m.name for m in mono)]
    assert isinstance(specs[-1], OutputBound)
    assert "skipped 2 spec(s) (cg_psi_io_full_pct increasing; mem_limit_mb decreasing)" in caplog.text
    _, kept, skipped = applicable_specs(psi_monotone(), SUBSET)
    assert skipped == ["cg_psi_io_full_pct increasing", "mem_limit_mb decreasing"]
    assert [i for i, _ in kept] == [*range(11), 12, 14]  # positions in the file, for error messages


def test_region_bounds_on_absent_features_are_dropped(norm):
    """The network is constant in a feature it does not take: a proof without that bound covers every value of it."""
    cfg = {"name": "r", "region": {"default": "domain", "mem_limit_mb": [512, 1024], "cg_psi_cpu_some_pct": [0, 25]},
           "specs": [{"feature": "cpu_quota_cores", "direction": "decreasing",
                      "region": {"cg_psi_io_full_pct": [0, 1]}}]}  # fmt: skip
    (spec,) = build_specs(cfg, norm)
    i = SUBSET.index("cg_psi_cpu_some_pct")
    assert spec.region.upper[i] == pytest.approx(norm.transform_x(np.full(len(SUBSET), 25.0))[i])
    others = [j for j in range(len(SUBSET)) if j != i]
    np.testing.assert_allclose(spec.region.lower[others], 0.0)
    np.testing.assert_allclose(spec.region.upper[others], 1.0)


def test_fail_refuses_and_names_the_absent_features(norm):
    with pytest.raises(ValueError, match=r"unknown feature 'cg_psi_io_full_pct', 'mem_limit_mb' \(spec.missing_features=fail\)"):
        build_specs(psi_monotone(missing_features="fail"), norm)
    with pytest.raises(ValueError, match=r"unknown feature 'mem_limit_mb' \(spec.missing_features=fail\)"):
        build_specs(SpecSetConfig(name="s", missing_features="fail", region={"mem_limit_mb": [1, 2]},
                                  specs=[{"kind": "output_bound", "lower": 0.0}]), norm)  # fmt: skip
    assert len(build_specs(psi_monotone(missing_features="fail"), MinMaxNormalizer.fit(
        np.random.default_rng(1).uniform(size=(9, 17)), np.arange(9.0), list(schema.FEATURES), "y"))) == 15  # fmt: skip


def test_a_set_of_which_nothing_applies_is_refused_and_a_typo_gets_a_hint(norm):
    with pytest.raises(ValueError, match=r"unknown feature 'queue_len_now' \(no spec applies to this model\)"):
        build_specs({"name": "l", "specs": [{"feature": "queue_len_now", "direction": "increasing"}]}, norm)
    with pytest.raises(ValueError, match=r"'cg_psi_cpu_som_pct' \(did you mean 'cg_psi_cpu_some_pct'\?\)"):
        build_specs({"name": "t", "specs": [{"feature": "cg_psi_cpu_som_pct", "direction": "increasing"}]}, norm)


def test_an_unknown_policy_is_refused(norm):
    with pytest.raises(ValueError, match=r"spec.missing_features must be one of \['skip', 'fail'\], got 'ignore'"):
        build_specs(psi_monotone(missing_features="ignore"), norm)
