"""No tampered artefact ever yields a ``verified`` row (issue 18).

A certificate is bound to the served function (weights, architecture, normaliser, feature order)
and to the content of the deployment's required spec set; changing any of them, or the
certificate's own spec content, must leave nothing served as verified.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from helpers import PSI_LIMIT, write_monotone_run
from hypothesis import given, settings
from hypothesis import strategies as st
from served_runs import FEATS, PSI, SERVED_SPEC, inside_rows, resave

from verifiers import Box, Monotonicity, OutputBound
from vpals_jax.certificate import function_fingerprint, spec_digest
from vpals_jax.config import SpecSetConfig, VerifierConfig
from vpals_jax.convert import load_network
from vpals_jax.data.normalizer import MinMaxNormalizer
from vpals_jax.runtime.predictor import SafePredictor
from vpals_jax.runtime.requirement import load_spec_set
from vpals_jax.train import checkpoint as ckpt
from vpals_jax.verify import verify_run

ROOT = Path(__file__).resolve().parents[2]


def verified_rows(run_dir: Path, rows: np.ndarray, **kw) -> int:
    return int((SafePredictor.load(run_dir, **kw).predict(rows).status == "verified").sum())


@pytest.fixture(scope="module")
def pristine(certified_run):
    """The certified run and rows it serves as verified (the control every tamper is measured against)."""
    run_dir, norm = certified_run
    rows = inside_rows(norm, n=20)
    assert verified_rows(run_dir, rows) == len(rows)
    return run_dir, norm, rows


def copy_run(run_dir: Path, into: str) -> Path:
    return Path(shutil.copytree(run_dir, Path(into) / "run"))


# -- the fingerprints ------------------------------------------------------------------------
def test_function_fingerprint_covers_everything_that_defines_the_function(certified_run):
    net, norm, _ = load_network(str(certified_run[0]))
    d = norm.to_dict()

    def with_norm(**change) -> str:
        return function_fingerprint(net, MinMaxNormalizer.from_dict({**d, **change}))

    def with_weight(layer: int, bias: bool) -> str:
        ws, bs = [w.copy() for w in net.weights], [b.copy() for b in net.biases]
        arr = (bs if bias else ws)[layer]
        arr.flat[0] = np.nextafter(arr.flat[0], np.inf)
        return function_fingerprint(type(net)(ws, bs), norm)

    def ulp(values: list[float], j: int = 0) -> list[float]:
        return [np.nextafter(v, np.inf) if i == j else v for i, v in enumerate(values)]

    names = list(norm.feature_names)
    variants = [
        with_weight(0, False), with_weight(1, False), with_weight(0, True), with_weight(1, True),
        with_norm(x_min=ulp(d["x_min"])), with_norm(x_scale=ulp(d["x_scale"], 3)),
        with_norm(y_min=np.nextafter(d["y_min"], -np.inf)), with_norm(y_scale=np.nextafter(d["y_scale"], np.inf)),
        with_norm(feature_names=[names[1], names[0], *names[2:]]), with_norm(target_name="latency_p99_ms"),
    ]  # fmt: skip
    base = function_fingerprint(net, norm)
    assert base == function_fingerprint(*load_network(str(certified_run[0]))[:2])  # deterministic
    assert len({base, *variants}) == len(variants) + 1


def test_spec_digest_is_the_content_not_the_name():
    box = Box([0.0, 0.0], [1.0, 0.5])
    mono = Monotonicity(feature=0, direction="increasing", region=box, tolerance=0.01, name="a")
    assert spec_digest(mono) == spec_digest(Monotonicity(0, "increasing", box, 0.01, name="renamed"))
    assert spec_digest(mono) == spec_digest(json.loads(json.dumps(mono.to_dict())))  # as stored in verdicts.json
    others = [
        Monotonicity(1, "increasing", box, 0.01), Monotonicity(0, "decreasing", box, 0.01),
        Monotonicity(0, "increasing", box, np.nextafter(0.01, 1)),
        Monotonicity(0, "increasing", Box([0.0, 0.0], [1.0, np.nextafter(0.5, 1)]), 0.01),
        OutputBound(lower=0.0, upper=None, region=box), OutputBound(lower=None, upper=0.0, region=box),
        OutputBound(lower=-0.0, upper=None, region=box),
    ]  # fmt: skip
    assert len({spec_digest(s) for s in [mono, *others]}) == len(others) + 1


# -- the findings of issue 18, each failing on the old name-and-weights matching -------------
def test_an_edited_normaliser_serves_nothing_verified(pristine, tmp_path):
    run_dir, norm, rows = pristine
    run = copy_run(run_dir, str(tmp_path))
    resave(run, normalizer=MinMaxNormalizer.from_dict({**norm.to_dict(), "y_min": -1000.0}))
    served = SafePredictor.load(run).predict(rows)
    assert served.latency.max() < -900  # the edit took effect...
    assert "verified" not in set(served.status)  # ...and nothing proven covers it


def test_a_changed_activation_is_refused(pristine, tmp_path):
    run = copy_run(pristine[0], str(tmp_path))
    config = ckpt.load_checkpoint(run)[2]
    resave(run, config={**config, "model": {**config["model"], "activation": "tanh"}})
    with pytest.raises(ValueError, match="tanh"):
        SafePredictor.load(run)


def test_a_weaker_spec_set_verified_under_the_deployments_name_serves_nothing(tmp_path):
    """``spec=psi_monotone 'spec.specs=[...]'`` certifies only the overridden content."""
    run_dir, norm = write_monotone_run(tmp_path / "run")
    required = load_spec_set("psi_monotone")
    resave(run_dir, config={**ckpt.load_checkpoint(run_dir)[2], "spec": required})
    proc = subprocess.run([sys.executable, "-m", "vpals_jax.verify", f"run_dir={run_dir}", "spec=psi_monotone",
                           "spec.specs=[{kind:output_bound,lower:-1e6}]"], check=False, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = np.random.default_rng(0).uniform(norm.x_min, norm.x_max, size=(20, len(FEATS)))
    assert verified_rows(run_dir, rows) == 0
    # the deployment's own spec set, verified, serves the rows
    verify_run(run_dir, SpecSetConfig(**required), VerifierConfig(time_budget_s=20.0), run_dir / "verify" / "full")
    assert verified_rows(run_dir, rows) == len(rows)


# -- the property ----------------------------------------------------------------------------
def mutate_spec_set(data: st.DataObject) -> dict:
    """A spec set that differs from ``SERVED_SPEC`` in content (never only in a name)."""
    spec = copy.deepcopy(SERVED_SPEC)
    specs = spec["specs"]
    k = data.draw(st.integers(0, len(specs) - 2), label="monotonicity spec")
    change = data.draw(st.sampled_from(["direction", "tolerance", "region", "own region", "drop", "add", "replace"]))
    if change == "direction":
        specs[k]["direction"] = {"increasing": "decreasing", "decreasing": "increasing"}[specs[k]["direction"]]
    elif change == "tolerance":
        specs[k]["tolerance"] = data.draw(st.floats(1e-3, 10.0))
    elif change == "region":
        delta = data.draw(st.floats(0.01, 20.0)) * data.draw(st.sampled_from([-1, 1]))
        spec["region"]["cg_psi_cpu_some_pct"] = [0.0, PSI_LIMIT + delta]
    elif change == "own region":
        specs[k]["region"] = {"cg_psi_cpu_some_pct": [0.0, data.draw(st.floats(1.0, PSI_LIMIT - 0.01))]}
    elif change == "drop":
        del specs[k]
    elif change == "add":
        specs.append({"kind": "output_bound", "lower": -1e6})
    else:
        spec["specs"] = [{"kind": "output_bound", "lower": -1e6}]
    return spec


def tamper(run: Path, norm: MinMaxNormalizer, data: st.DataObject) -> dict:
    """Apply one drawn tamper to ``run``; returns extra arguments for ``SafePredictor.load``."""
    what = data.draw(st.sampled_from(["weights", "normaliser", "feature order", "config spec", "serving spec",
                                      "certificate"]))  # fmt: skip
    if what == "weights":
        params = {k: {kk: np.array(vv, dtype=np.float64) for kk, vv in v.items()} for k, v in
                  ckpt.load_checkpoint(run)[0].items()}  # fmt: skip
        arr = params[data.draw(st.sampled_from(sorted(params)))][data.draw(st.sampled_from(["kernel", "bias"]))]
        i = data.draw(st.integers(0, arr.size - 1))
        old, arr.flat[i] = arr.flat[i], data.draw(st.floats(-1.0, 1.0))
        if arr.flat[i] == old:
            arr.flat[i] = np.nextafter(old, np.inf)
        resave(run, params=params)
    elif what in ("normaliser", "feature order"):
        d = norm.to_dict()
        if what == "feature order":
            perm = data.draw(st.permutations(range(len(FEATS))).filter(lambda p: list(p) != sorted(p)))
            d["feature_names"] = [d["feature_names"][i] for i in perm]
        else:
            key = data.draw(st.sampled_from(["x_min", "x_scale", "y_min", "y_scale"]))
            factor = data.draw(st.floats(0.5, 2.0).filter(lambda f: abs(f - 1.0) > 1e-3))
            if key in ("x_min", "x_scale"):
                j = data.draw(st.integers(0, len(FEATS) - 1))
                d[key][j] = d[key][j] * factor if key == "x_scale" else d[key][j] + (factor - 1.0) * d["x_scale"][j]
            else:
                d[key] = d[key] * factor if key == "y_scale" else d[key] + (factor - 1.0) * d["y_scale"]
        resave(run, normalizer=MinMaxNormalizer.from_dict(d))
    elif what == "config spec":
        resave(run, config={**ckpt.load_checkpoint(run)[2], "spec": mutate_spec_set(data)})
    elif what == "serving spec":
        return {"spec": mutate_spec_set(data)}
    else:  # the certificate's own spec content, optionally re-digested by whoever edited it
        (path,) = run.rglob("verdicts.json")
        payload = json.loads(path.read_text())
        entry = payload["verdicts"][data.draw(st.integers(0, len(payload["verdicts"]) - 1))]
        j = data.draw(st.integers(0, len(FEATS) - 1))
        entry["spec"]["region"]["lower"][j] -= data.draw(st.floats(0.01, 1.0))
        if data.draw(st.booleans(), label="re-digest"):
            entry["spec_sha256"] = spec_digest(entry["spec"])
        path.write_text(json.dumps(payload))
    return {}


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_property_no_tampered_artefact_is_ever_served_verified(pristine, data):
    run_dir, norm, rows = pristine
    with tempfile.TemporaryDirectory() as tmp:
        run = copy_run(run_dir, tmp)
        kw = tamper(run, norm, data)
        served = SafePredictor.load(run, **kw)
        probe = np.vstack([rows, norm.inverse_x(np.full(len(FEATS), 0.5))[None]])
        probe[-1, PSI] = PSI_LIMIT / 2
        assert served.regions == []
        assert "verified" not in set(served.predict(probe).status)


def test_a_faithful_resave_still_serves_verified(pristine, tmp_path):
    """The control for the property: re-saving changes no artefact, so the certificate still holds."""
    run_dir, _, rows = pristine
    run = copy_run(run_dir, str(tmp_path))
    resave(run)
    assert verified_rows(run, rows) == len(rows)
