"""docs/extending.md, executed: a user's own spec kind in one file, verified from a spec file."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import write_monotone_run

from verifiers import Status, get_verifier
from vpals_jax.config import SpecSetConfig, VerifierConfig
from vpals_jax.convert import load_network
from vpals_jax.spec_files import build_specs
from vpals_jax.verify import verify_run

DOC = Path(__file__).resolve().parents[1] / "docs" / "extending.md"


def _block(lang: str) -> str:
    return re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(), re.DOTALL)[0]


@pytest.fixture(scope="module")
def walkthrough(tmp_path_factory):
    """The run, the user's module and the spec set as the page writes them (plugin by path)."""
    root = tmp_path_factory.mktemp("extending")
    (root / "bounded_slope.py").write_text(_block("python"))
    spec = yaml.safe_load(_block("yaml"))
    spec["specs"][0]["plugin"] = str(root / "bounded_slope.py")
    run_dir, norm = write_monotone_run(root / "run")
    return run_dir, norm, spec


def _with_limit(spec: dict, limit: float) -> SpecSetConfig:
    entry = {**spec["specs"][0], "limit": limit}
    return SpecSetConfig(name=spec["name"], space=spec["space"], region=spec["region"], specs=[entry])


def test_the_page_verifies_and_falsifies_as_the_exact_milp_does(walkthrough, tmp_path):
    run_dir, _, spec = walkthrough
    net, normalizer, _ = load_network(str(run_dir))
    built = build_specs(_with_limit(spec, 1.0), normalizer)[0]
    assert built.kind == "bounded_slope" and built.reduced().kind == "directional_slope"
    # the steepest slope (ms per %) over the region: the exact MILP's worst case sits between these
    i = normalizer.feature_index("cg_psi_cpu_some_pct")
    pts = np.random.default_rng(0).uniform(built.region.lower, built.region.upper, (4000, built.region.dim))
    steepest = float(np.max(np.abs(net.gradient(pts, i)))) * normalizer.y_scale / normalizer.x_scale[i]
    for limit, want in ((1.5 * steepest, Status.VERIFIED), (0.5 * steepest, Status.FALSIFIED)):
        lines: list[str] = []
        verdicts = verify_run(run_dir, _with_limit(spec, limit), VerifierConfig(name="crown", time_budget_s=30.0),
                              tmp_path / f"out_{limit}", on_line=lines.append)  # fmt: skip
        assert [v.status for v in verdicts] == [want], [v.message for v in verdicts]
        assert verdicts[0].spec["kind"] == "bounded_slope" and len(lines) == 1 and want.value in lines[0]
        exact = get_verifier("milp").verify(net, build_specs(_with_limit(spec, limit), normalizer)[0], 30.0)
        assert exact.status == want, exact.message
        if want == Status.FALSIFIED:
            cex = verdicts[0].counterexamples[0]
            slope = net.gradient(cex.x, i) * normalizer.y_scale / normalizer.x_scale[i]
            assert abs(slope) > limit  # the witness point really is steeper than the limit
    assert (tmp_path / f"out_{1.5 * steepest}" / "verdicts.json").is_file()


def test_a_plugin_that_does_not_load_is_one_line_naming_it(walkthrough, tmp_path):
    _, norm, spec = walkthrough
    bad = {**spec["specs"][0], "plugin": str(tmp_path / "missing.py")}
    with pytest.raises(ValueError, match="plugin .*missing.py.* could not be loaded"):
        build_specs(SpecSetConfig(name="x", specs=[bad]), norm)
    with pytest.raises(ValueError, match="unknown spec kind 'no_such_kind'"):
        build_specs(SpecSetConfig(name="x", specs=[{"kind": "no_such_kind"}]), norm)
