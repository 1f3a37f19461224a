"""The unified cross-application learner (issue 15, part 2): data, per-app regions, per-app verdicts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import compose_train

from verifiers import ReluNetwork, Status, get_verifier
from vpals_jax.config import DataConfig
from vpals_jax.data import unified
from vpals_jax.data.dataset import load_dataset
from vpals_jax.data.normalizer import MinMaxNormalizer
from vpals_jax.data.tables import DataError
from vpals_jax.spec_files import build_specs
from vpals_jax.unified_specs import build_per_app_specs, combined_spec_set, per_app_spec_set

ROOT = Path(__file__).resolve().parents[1]
FEATURES = ["m0", "m1", "app_a", "app_b"]
BASE = {"name": "toy", "space": "raw", "region": {"default": "domain", "m1": [0.0, 0.5]},
        "specs": [{"kind": "monotonicity", "feature": "m0", "direction": "increasing", "tolerance": 0.2},
                  {"kind": "output_bound", "lower": 1.0, "name": "never below 1"}]}  # fmt: skip


def test_members_name_the_apps_and_refuse_unknown_ones() -> None:
    assert unified.members("synthetic-nginx") == ("synthetic", unified.GROUPS["synthetic"],
                                                  ("mindspore", "solr", "redis", "mysql"))  # fmt: skip
    assert unified.members("real")[2] == ("redis", "nginx", "mariadb")
    with pytest.raises(DataError, match="unknown app 'foo'"):
        unified.members("synthetic-foo")
    with pytest.raises(DataError, match="unknown app group 'nginx'"):
        unified.members("nginx")


def test_unified_data_stack_the_per_app_splits_with_a_one_hot_input() -> None:
    cfg = DataConfig(source="unified", app="synthetic-nginx", n_samples=200)
    data = load_dataset(cfg)
    assert data.feature_names[-5:] == [unified.app_column(a) for a in unified.GROUPS["synthetic"]]
    assert not unified.rows_of(data.x_train, data.feature_names, "nginx").any()  # left out: its column is 0
    solr = load_dataset(DataConfig(source="synthetic", app="solr", n_samples=200))
    at = unified.rows_of(data.x_test, data.feature_names, "solr")
    np.testing.assert_array_equal(data.x_test[at, :-5], solr.x_test)  # the very rows of solr's own run
    lo, scale = solr.y_train.min(), np.ptp(solr.y_train)
    np.testing.assert_allclose(data.y_test[at], (solr.y_test - lo) / scale)
    assert data.y_train.min() == 0.0 and data.y_train.max() == 1.0


def test_per_app_region_fixes_the_app_and_takes_its_own_domain() -> None:
    lo, hi = np.array([2.0, 0.0, 0.0, 1.0]), np.array([4.0, 3.0, 0.0, 1.0])
    spec_set = per_app_spec_set(BASE, "b", FEATURES, (lo, hi), scale=(1.0, 10.0))
    region = spec_set["region"]
    assert region == {"m0": [2.0, 4.0], "m1": [0.0, 0.5], "app_a": 0.0, "app_b": 1.0}  # explicit m1 kept
    mono, bound = spec_set["specs"]
    assert mono["name"] == "b: m0 increasing" and mono["tolerance"] == pytest.approx(0.02)  # 0.2 ms / 10
    assert bound["name"] == "b: never below 1" and bound["lower"] == pytest.approx(0.0)  # (1 - 1) / 10
    with pytest.raises(ValueError, match="app input 'app_a'"):
        per_app_spec_set({**BASE, "region": {"app_a": 1.0}}, "b", FEATURES, (lo, hi), (0.0, 1.0))
    with pytest.raises(ValueError, match="kind 'directional_slope' has no per-app form"):
        per_app_spec_set({**BASE, "specs": [{"kind": "directional_slope", "direction": {"m0": 1}}]}, "b", FEATURES,
                         (lo, hi), (0.0, 1.0))  # fmt: skip


def _toy() -> tuple[ReluNetwork, MinMaxNormalizer, dict]:
    """f = relu(m0 + 0.5) - 2 relu(m0 + 2 app_b - 1.5) + 2 on m0 in [0, 1]: m0 + 2.5 for app a, 1.5 - m0
    for app b (a planted violation in b only; every unit stable, so a sound bound proves a exactly);
    inputs and output already in [0, 1]-scaled units."""
    net = ReluNetwork(weights=[np.array([[1.0, 1.0], [0.0, 0.0], [0.0, 0.0], [0.0, 2.0]]), np.array([[1.0], [-2.0]])],
                      biases=[np.array([0.5, -1.5]), np.array([2.0])])  # fmt: skip
    norm = MinMaxNormalizer(tuple(FEATURES), "y", np.zeros(4), np.ones(4), 0.0, 1.0)
    domains = {a: (np.array([0.0, 0.0, a == "a", a == "b"], float), np.array([1.0, 1.0, a == "a", a == "b"], float))
               for a in ("a", "b")}  # fmt: skip
    return net, norm, domains


@pytest.mark.parametrize("backend", ["milp", "crown"])
def test_per_app_specs_reject_a_violation_planted_in_one_app_only(backend: str) -> None:
    net, norm, domains = _toy()
    base = {**BASE, "region": {"default": "domain"}, "specs": [BASE["specs"][0], {**BASE["specs"][1], "lower": 0.25}]}
    specs = build_per_app_specs({"a": base, "b": base}, norm, domains, {"a": (0.0, 1.0), "b": (0.0, 1.0)})
    assert [s.name for s in specs["b"]] == ["b: m0 increasing", "b: never below 1"]  # named per app
    region = specs["b"][0].region
    assert region.lower[3] == region.upper[3] == 1.0 and region.lower[2] == region.upper[2] == 0.0
    verifier = get_verifier(backend)
    verdicts = {a: [verifier.verify(net, s, time_budget_s=10.0) for s in ss] for a, ss in specs.items()}
    assert [v.status for v in verdicts["a"]] == [Status.VERIFIED, Status.VERIFIED]
    mono_b, bound_b = verdicts["b"]
    assert mono_b.status == Status.FALSIFIED and bound_b.status == Status.VERIFIED  # f >= 0.25 still holds on b
    cex = np.asarray(mono_b.counterexamples[0].x)
    assert cex[3] == 1.0 and cex[2] == 0.0  # the witness lies in b's region


def test_the_combined_set_is_the_per_app_sets_in_one() -> None:
    _, norm, domains = _toy()
    scales = {"a": (0.0, 1.0), "b": (1.0, 10.0)}
    per_app = build_per_app_specs({"a": BASE, "b": BASE}, norm, domains, scales)
    combined = build_specs(combined_spec_set({"a": BASE, "b": BASE}, FEATURES, domains, scales), norm)
    assert [s.to_dict() for s in combined] == [s.to_dict() for ss in per_app.values() for s in ss]


def test_a_spec_set_with_the_app_input_free_is_refused_on_a_unified_model() -> None:
    _, norm, domains = _toy()
    scaled = MinMaxNormalizer(norm.feature_names, unified.scaled_target("y"), norm.x_min, norm.x_scale, 0.0, 1.0)
    with pytest.raises(ValueError, match="leaves the app input 'app_a' free"):
        build_specs(BASE, scaled)
    assert len(build_per_app_specs({"a": BASE}, scaled, domains, {"a": (0.0, 1.0)})["a"]) == 2


def test_a_training_run_asks_its_spec_set_once_per_app() -> None:
    """``vpals-train data.source=unified spec=...``: the spec set holds per app, over each app's own
    domain with its one-hot column fixed (what the certified loop then proves)."""
    from vpals_jax.train.trainer import as_config
    from vpals_jax.unified_specs import run_specs

    cfg = as_config(compose_train(["data.source=unified", "data.app=synthetic", "data.n_samples=200",
                                   "spec=psi_monotone_tol", "run_dir=/tmp/unused"]))  # fmt: skip
    data = load_dataset(cfg.data)
    norm = MinMaxNormalizer.fit(data.x_train, data.y_train, data.feature_names, data.target_name)
    specs = run_specs(cfg.spec, data, norm)
    apps = unified.apps_of(data.feature_names)
    assert len(specs) == len(apps) * len(cfg.spec.specs)
    for k, app in enumerate(apps):
        col = data.feature_names.index(unified.app_column(app))
        mine = specs[k * len(cfg.spec.specs) : (k + 1) * len(cfg.spec.specs)]
        assert all(s.name.startswith(f"{app}: ") for s in mine)
        assert all(s.region.lower[col] == s.region.upper[col] == 1.0 for s in mine)
        others = [data.feature_names.index(unified.app_column(a)) for a in apps if a != app]
        assert all(s.region.upper[j] == 0.0 for s in mine for j in others)


@pytest.mark.parametrize(("overrides", "named"), [(["data.app=synthetic-foo"], "'foo'")])
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, overrides: list[str], named: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "vpals_jax.train", "data.source=unified", *overrides,
                           f"hydra.run.dir={tmp_path / 'run'}"], capture_output=True, text=True, cwd=ROOT, check=False)  # fmt: skip
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0], proc.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("job", sorted(p.stem for p in (ROOT / "conf/experiment/unified/job").glob("*.yaml")))
def test_every_job_of_the_experiments_composes(job: str) -> None:
    experiment = "unified_real" if job.startswith("real") else "unified"
    cfg = compose_train([f"experiment={experiment}", f"+experiment/unified/job={job}", "run_dir=/tmp/unused"])
    assert cfg.data.source == ("unified" if job.startswith(("synthetic", "real_without")) or job == "real"
                               else "table" if job.startswith("real") else "synthetic")  # fmt: skip


@pytest.mark.slow
def test_experiment_unified_one_epoch(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    proc = subprocess.run(
        [sys.executable, "-m", "vpals_jax.train", "-m", "experiment=unified", "train.epochs=1", "train.batch_size=64", "data.n_samples=300",
         "model.width=8", "verifier.name=milp", "verifier.time_budget_s=0.2", f"hydra.sweep.dir={sweep}",
         "hydra.callbacks.aggregate.few_shot_rows=50", "hydra.callbacks.aggregate.few_shot_epochs=1"],
        capture_output=True, text=True, cwd=ROOT, timeout=600, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    table = (sweep / "table.md").read_text()
    for app in unified.GROUPS["synthetic"]:
        assert f"| {app} " in table
    assert "fewer total parameters: met" in table
    assert "unified, app input only" in table and "per-app, all rows" in table
