"""The training-verification loop: every correcting variant ends VERIFIED where `normal` does not,
the spec-aware loss pushes the right way, and a spent budget is reported as not verified."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import compose_train, make_table

from vpals_jax.runtime.predictor import SafePredictor
from vpals_jax.train import checkpoint as ckpt
from vpals_jax.train.steps import spec_hinge
from vpals_jax.train.trainer import run_training

# The fixture table's latency gets a sine dip along sys_psi_cpu_some_pct (a measurement artefact,
# say); operator knowledge says "non-decreasing", checked on a 1-D slice. A plain fit learns the dip.
SPEC = {
    "name": "noise_feature",
    "space": "normalized",
    "region": {"default": 0.5, "sys_psi_cpu_some_pct": [0.0, 1.0]},
    "specs": [{"kind": "monotonicity", "feature": "sys_psi_cpu_some_pct", "direction": "increasing"}],
}


def loop_cfg(table_csv, run_dir, loop: str, *extra: str):
    cfg = compose_train([
        "data=table", f"data.path={table_csv}", f"run_dir={run_dir}", "model.width=16", "train.batch_size=16",
        "train.progress=false", f"train.loop={loop}", "train.epochs=40", "train.tolerance=0.1",
        "train.accuracy_threshold=0.8", "train.verify_at_end=true", "verifier.time_budget_s=5", "optim.lr=1e-2",
        "data.calibration_fraction=0", *extra,
    ])  # fmt: skip
    for key, value in SPEC.items():
        cfg.spec[key] = value
    return cfg


def statuses(run_dir) -> list[list[str]]:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [[v["status"] for v in r["verdicts"]] for r in records if r.get("event") == "verification"]


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    path = tmp_path_factory.mktemp("loop") / "table.csv"
    df = make_table(n=400, seed=1)
    df["latency_p50_ms"] += 0.6 * np.sin(2 * np.pi * df["sys_psi_cpu_some_pct"] / 50)
    df.to_csv(path, index=False)
    return path


def test_normal_model_violates_the_spec(table, tmp_path):
    summary = run_training(loop_cfg(table, tmp_path, "normal", "train.epochs=12"))
    assert not summary["verified"] and summary["verdicts"][0]["status"] == "FALSIFIED"
    assert summary["counterexample_accuracy"] == 0.0  # its own witnesses, none ordered correctly
    assert SafePredictor.load(tmp_path).regions == []  # a FALSIFIED certificate certifies nothing


@pytest.mark.parametrize("loop", ["vanilla", "spec_data", "early_rejection"])
def test_correcting_loops_end_verified(table, tmp_path, loop):
    summary = run_training(loop_cfg(table, tmp_path, loop))
    assert summary["verified"], summary["stop_reason"]
    assert summary["stop_reason"] == "verified" and summary["verdicts"][0]["status"] == "VERIFIED"
    rounds = statuses(tmp_path)
    assert ["FALSIFIED"] in rounds[:-1] and rounds[-1] == ["VERIFIED"]  # it was wrong, then corrected
    assert summary["counterexample_accuracy"] == 1.0 and summary["counterexamples"] >= 1
    assert (tmp_path / "wall_time.png").exists()
    # the final round is the run's certificate: the runtime serves the slice as verified
    served = SafePredictor.load(tmp_path)
    assert len(served.regions) == 1
    centre = served.normalizer.inverse_x(served.regions[0].center)
    assert served.predict(centre[None]).status[0] == "verified"


def test_budget_exhaustion_is_not_verified(table, tmp_path):
    # The model is verified after its first epoch at the earliest; a budget spent before that is reported.
    summary = run_training(loop_cfg(table, tmp_path, "spec_data", "train.max_wall_s=1e-3"))
    assert not summary["verified"] and summary["time_to_verified_s"] is None
    assert summary["stop_reason"].startswith("wall-clock budget of 0.001s spent before the model was verified")
    summary = run_training(loop_cfg(table, tmp_path / "epochs", "vanilla", "train.epochs=1", "train.margin=0"))
    assert not summary["verified"] and summary["stop_reason"] == "epoch budget of 1 spent before the model was verified"


def test_resume_keeps_the_counterexample_pool(table, tmp_path):
    # Stopped (killed, say) after the first, failed round; the relaunch continues from the checkpoint.
    first = run_training(loop_cfg(table, tmp_path, "spec_data", "train.epochs=8"))
    _, _, _, meta = ckpt.load_checkpoint(tmp_path)
    assert not first["verified"] and meta["epoch"] == 8 and meta["rounds"][0]["added"] > 0
    summary = run_training(loop_cfg(table, tmp_path, "spec_data", "train.resume=true"))
    assert summary["verified"] and summary["rounds"] == first["rounds"] + 1  # earlier rounds came back
    assert summary["counterexamples"] == first["counterexamples"]  # and so did their witnesses
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    epochs = [r["epoch"] for r in records if "train" in r]
    assert (
        epochs == list(range(1, len(epochs) + 1)) and len(epochs) > 8
    )  # the relaunch appended to the metrics, it did not restart


def linear(params, x):
    return x @ params["params"]["w"]


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_spec_hinge_gradient_points_towards_the_spec(sign):
    lo = jnp.asarray(np.random.default_rng(0).uniform(size=(8, 3)), jnp.float32)
    hi = lo.at[:, 1].add(0.01)
    valid, signs = jnp.ones(8), jnp.full(8, sign)

    def grad_at(w1: float, margin: float):
        w = {"w": jnp.array([0.3, w1, -0.2])}
        return jax.grad(spec_hinge)(w, linear, lo, hi, signs, valid, margin)["w"]

    # Wrong direction: the gradient step (-grad) moves the slope towards sign's direction.
    assert float(-grad_at(-0.5 * sign, 0.0)[1]) * sign > 0
    # Right direction but below the margin: still pushed; above it: no push at all.
    assert float(-grad_at(0.05 * sign, 0.1)[1]) * sign > 0
    assert np.allclose(np.asarray(grad_at(0.5 * sign, 0.1)), 0.0)
    # For a linear model only the spec's feature's weight matters (the pair differs only there).
    g = np.asarray(grad_at(-0.5 * sign, 0.0))
    assert g[0] == 0 and g[2] == 0 and g[1] != 0


def test_round_log_line_names_each_spec_and_why_it_is_undecided():
    from verifiers import Box, Monotonicity, OutputBound, Status, Verdict
    from vpals_jax.train.loop import Round

    box = Box([0.0, 0.0], [1.0, 1.0])
    specs = [Monotonicity(feature=1, direction="increasing", region=box),
             Monotonicity(feature=0, direction="decreasing", region=box), OutputBound(lower=0.0, upper=None, region=box)]
    verdicts = {0: Verdict(Status.VERIFIED, "crown", {}), 1: Verdict(Status.TIMEOUT, "crown", {}, message="time budget of 5 s spent"),
                2: Verdict(Status.FALSIFIED, "crown", {})}  # fmt: skip
    line = Round(3, 12, 0.0, 1.0, verdicts).log_line(specs, ["quota", "cpu_psi"])
    assert line == ("round 3 (epoch 12): cpu_psi+ VERIFIED, quota- TIMEOUT (time budget of 5 s spent), "
                    "output_bound FALSIFIED")  # fmt: skip


def test_a_two_sided_directional_spec_trains_and_ends_verified(tmp_path):
    """A kind other than monotonicity learns from its own witnesses and regions: the dip table
    under ``0 <= d latency / d cpu_psi <= 1000 ms per %`` (two rows in the loop, one per bound)."""
    from tiny_problem import tiny_cfg, write_dip_table

    from vpals_jax.train.loop import Corrector

    table = write_dip_table(tmp_path / "dip.csv")
    cfg = tiny_cfg(table, tmp_path / "run", "spec_data", "train.epochs=40", "data.calibration_fraction=0")
    cfg.spec.specs = [{"kind": "directional_slope", "direction": {"sys_psi_cpu_some_pct": 1.0}, "lower": 0.0,
                       "upper": 1000.0}]  # fmt: skip
    summary = run_training(cfg)
    assert summary["verified"], summary["stop_reason"]
    statuses = [v["status"] for v in summary["verdicts"]]
    assert statuses == ["VERIFIED"]
    rounds = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert any(r.get("event") == "verification" and r["counterexamples_added"] > 0 for r in rounds)
    from verifiers import Box, DirectionalSlope

    spec = DirectionalSlope(direction=np.eye(3)[0], lower=0.0, upper=2.0, region=Box(np.zeros(3), np.ones(3)))
    rows = Corrector(cfg.train, cfg.verifier, [spec], 3).rows
    assert [(r.sign, r.pair_shift) for r in rows] == [(1.0, 0.0), (-1.0, 2.0)]


def budgets_over_rounds(c, statuses, budget) -> list:
    """``budget()`` before the first round and after each round, one per status (the budgets double
    while rounds leave a spec unproven and start again after a proof)."""
    from verifiers import Verdict
    from vpals_jax.train.loop import Round

    seen = [budget()]
    for status in statuses:
        c.rounds.append(Round(len(c.rounds) + 1, 0, 0.0, 0.0, {0: Verdict(status, "stub", {})}))
        seen.append(budget())
    return seen


def test_round_budget_doubles_after_unproven_rounds_and_the_final_round_gets_it_all():
    from verifiers import Box, Monotonicity, Status
    from vpals_jax.config import TrainConfig, VerifierConfig
    from vpals_jax.train.loop import Corrector

    spec = Monotonicity(feature=0, direction="increasing", region=Box([0.0, 0.0], [1.0, 1.0]))
    c = Corrector(TrainConfig(loop="certified", round_budget_s=0.5), VerifierConfig(name="ouroboros", time_budget_s=3.0),
                  [spec], 2)  # fmt: skip
    no, yes = Status.TIMEOUT, Status.VERIFIED
    seen = budgets_over_rounds(c, (no, no, no, yes, no), c.round_budget)
    assert seen == [0.5, 1.0, 2.0, 3.0, 0.5, 1.0]  # capped at the verifier's budget, reset by a proof
    assert c.round_budget(final=True) == 3.0
    assert Corrector(TrainConfig(loop="certified"), VerifierConfig(name="ouroboros", time_budget_s=3.0), [spec],
                     2).round_budget() == 3.0  # fmt: skip
    with pytest.raises(ValueError, match="round_budget_s"):
        Corrector(TrainConfig(loop="certified", round_budget_s=-1.0), VerifierConfig(name="ouroboros"), [spec], 2)


def test_the_certified_weight_grows_while_rounds_fail_and_reaches_the_term():
    """``cert_lam_max``: the hinge's weight doubles after each unproven round, capped, and starts
    again after a proof; the epoch's term carries it (the cached term is rebuilt when it changes)."""
    from verifiers import Box, Monotonicity, Status
    from vpals_jax.config import TrainConfig, VerifierConfig
    from vpals_jax.train.loop import Corrector

    spec = Monotonicity(feature=0, direction="increasing", region=Box([0.0, 0.0], [1.0, 1.0]))
    c = Corrector(TrainConfig(loop="certified", cert_lam=0.5, cert_lam_max=2.0, cert_warmup=0, cert_ramp=1),
                  VerifierConfig(), [spec], 2)  # fmt: skip
    no, yes = Status.UNKNOWN, Status.VERIFIED
    weights = budgets_over_rounds(c, (no, no, no, yes, no), lambda: float(c.certify(5).lam))
    assert weights == [0.5, 1.0, 2.0, 2.0, 0.5, 1.0]
    fixed = Corrector(TrainConfig(loop="certified", cert_lam=0.5), VerifierConfig(), [spec], 2)  # cert_lam_max 0
    assert budgets_over_rounds(fixed, (no, no), fixed.cert_weight) == [0.5, 0.5, 0.5]
    with pytest.raises(ValueError, match="train.cert_lam_max must be 0 .no growth. or >= train.cert_lam .0.5.; got 0.25"):
        TrainConfig(loop="certified", cert_lam=0.5, cert_lam_max=0.25)


def test_a_round_budget_in_boxes_doubles_binds_the_search_and_leaves_the_backend_as_it_was():
    """Budgets in boxes decide the same way on any machine (seconds depend on its load)."""
    from verifiers import Box, Monotonicity, Status
    from vpals_jax.config import OptimConfig, TrainConfig, VerifierConfig
    from vpals_jax.convert import to_relu_network
    from vpals_jax.models import MLP
    from vpals_jax.train.loop import Corrector
    from vpals_jax.train.steps import create_state

    spec = Monotonicity(feature=0, direction="increasing", region=Box([0.0, 0.0], [1.0, 1.0]))
    verifier = VerifierConfig(name="crown", time_budget_s=30.0, options={"max_boxes": 1000})
    c = Corrector(TrainConfig(loop="certified", round_budget_boxes=64), verifier, [spec], 2)
    no, yes = Status.TIMEOUT, Status.VERIFIED
    seen = budgets_over_rounds(c, (no, no, no, no, yes), c.round_boxes)
    assert seen == [64, 128, 256, 512, 1000, 64]  # capped at the backend's max_boxes, reset by a proof
    assert c.round_boxes(final=True) is None and c.round_budget() == 30.0  # no seconds budget: the cap
    # This random 2x32 network is neither proven nor refuted within 64 boxes.
    c.rounds.clear()
    net = to_relu_network(create_state(MLP(depth=2, width=32), OptimConfig(), 2, 2).params)
    v = c.verify(net, 10, 0.0).verdicts[0]
    assert v.status == Status.UNKNOWN and "box budget of 64 spent" in v.message and v.settings["max_boxes"] == 64
    assert c.verifier.options["max_boxes"] == 1000
    with pytest.raises(ValueError, match="round_budget_boxes"):
        Corrector(TrainConfig(loop="certified", round_budget_boxes=64), VerifierConfig(name="milp"), [spec], 2)


def test_a_failed_round_surveys_the_specs_it_did_not_reach_with_a_fraction_of_its_boxes():
    """round_survey: training then sees where every unproven spec fails, not only the first."""
    from verifiers import Box, Monotonicity, Status
    from vpals_jax.config import OptimConfig, TrainConfig, VerifierConfig
    from vpals_jax.convert import to_relu_network
    from vpals_jax.models import MLP
    from vpals_jax.train.loop import Corrector
    from vpals_jax.train.steps import create_state

    box = Box([0.0, 0.0], [1.0, 1.0])
    specs = [Monotonicity(feature=f, direction=d, region=box) for f, d in ((0, "increasing"), (1, "increasing"),
                                                                          (1, "decreasing"))]  # fmt: skip
    verifier = VerifierConfig(name="crown", time_budget_s=30.0, options={"max_boxes": 1000})
    net = to_relu_network(create_state(MLP(depth=2, width=32), OptimConfig(), 2, 2).params)  # spec 0: UNKNOWN at 64
    stops = Corrector(TrainConfig(loop="certified", round_budget_boxes=64), verifier, specs, 2)
    assert list(stops.verify(net, 10, 0.0).verdicts) == [0]  # early rejection
    surveys = Corrector(TrainConfig(loop="certified", round_budget_boxes=64, round_survey=0.25), verifier, specs, 2)
    verdicts = surveys.verify(net, 10, 0.0).verdicts
    assert list(verdicts) == [0, 1, 2] and verdicts[0].status == Status.UNKNOWN
    assert [v.settings["max_boxes"] for v in verdicts.values()] == [64, 16, 16]
    assert surveys.verifier.options["max_boxes"] == 1000
    assert list(surveys.verify(net, 20, 0.0, final=True).verdicts) == [0]  # the final round: no box budget
    with pytest.raises(ValueError, match="train.round_survey must be in .0, 1. and needs train.round_budget_boxes"):
        TrainConfig(loop="certified", round_survey=0.25)


def test_no_round_before_verify_from():
    from verifiers import Box, Monotonicity
    from vpals_jax.config import TrainConfig, VerifierConfig
    from vpals_jax.train.loop import Corrector

    spec = Monotonicity(feature=0, direction="increasing", region=Box([0.0, 0.0], [1.0, 1.0]))
    c = Corrector(TrainConfig(loop="spec_data", verify_every=10, verify_from=30, accuracy_threshold=0.0),
                  VerifierConfig(name="ouroboros"), [spec], 2)  # fmt: skip
    assert [e for e in range(1, 61) if c.due(e, 1.0)] == [30, 40, 50, 60]


def test_boxes_reach_the_whole_region_exactly_at_the_end_of_the_ramp():
    """0.05 + 0.95 * 3 / 3 rounds to 1 - 1e-16: no round would be due where the ramp ends."""
    from vpals_jax.config import TrainConfig, VerifierConfig
    from vpals_jax.train.loop import Corrector

    c = Corrector(TrainConfig(loop="certified", cert_warmup=1, cert_ramp=3, cert_min_scale=0.05, verify_every=1,
                              verify_from=0, accuracy_threshold=0.0), VerifierConfig(), [], 3)  # fmt: skip
    assert c.cert_scale(0) == 0.0 and 0 < c.cert_scale(3) < 1.0
    assert c.cert_scale(4) == 1.0 and c.due(4, 1.0) and not c.due(3, 1.0)


def test_warm_up_epochs_train_plainly_through_the_certified_epoch():
    """Warm-up runs the certified epoch with the hinge's weight 0 (one program to compile, not two):
    that must be exactly plain training."""
    from verifiers import Box, Monotonicity
    from vpals_jax.config import OptimConfig, TrainConfig, VerifierConfig
    from vpals_jax.models import MLP
    from vpals_jax.train.loop import Corrector
    from vpals_jax.train.steps import create_state, epoch_key, train_epoch

    spec = Monotonicity(feature=0, direction="increasing", region=Box([0.0, 0.0, 0.0], [1.0, 1.0, 1.0]))
    c = Corrector(TrainConfig(loop="certified", cert_warmup=2, cert_lam=0.5), VerifierConfig(), [spec], 3)
    warm, on = c.certify(1), c.certify(2)
    assert float(warm.lam) == 0.0 and float(on.lam) == 0.5
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.uniform(size=(64, 3)), jnp.float32)
    y = jnp.asarray(x[:, 0] - x[:, 1] ** 2, jnp.float32)
    state = create_state(MLP(depth=2, width=8), OptimConfig(lr=1e-2), 3, 0)
    plain, _ = train_epoch(state, x, y, epoch_key(0, 1), 16)
    warmed, _ = train_epoch(state, x, y, epoch_key(0, 1), 16, cert=warm)
    stepped, _ = train_epoch(state, x, y, epoch_key(0, 1), 16, cert=on)
    close = jax.tree_util.tree_map(lambda a, b: bool(jnp.allclose(a, b, atol=1e-7)), plain.params, warmed.params)
    assert all(jax.tree_util.tree_leaves(close))
    moved = jax.tree_util.tree_map(lambda a, b: bool(jnp.allclose(a, b, atol=1e-7)), plain.params, stepped.params)
    assert not all(jax.tree_util.tree_leaves(moved))  # the weight, not the program, is what made them equal


def test_the_certified_term_carries_the_boxes_of_the_last_round():
    """The term is kept between epochs (rebuilt it cost 3 ms an epoch); a round that leaves boxes
    unproven must still reach the next epoch's term."""
    from verifiers import Box, Monotonicity, Status, Verdict
    from vpals_jax.config import OptimConfig, TrainConfig, VerifierConfig
    from vpals_jax.convert import to_relu_network
    from vpals_jax.models import MLP
    from vpals_jax.train.loop import Corrector
    from vpals_jax.train.steps import create_state

    spec = Monotonicity(feature=0, direction="increasing", region=Box([0.0, 0.0], [1.0, 1.0]))
    c = Corrector(TrainConfig(loop="certified", cert_warmup=0, cert_ramp=1), VerifierConfig(), [spec], 2)
    before = c.certify(5)
    assert c.certify(6) is before and float(before.boxes.valid.sum()) == 0.0
    box = {"lower": [0.25, 0.5], "upper": [0.5, 0.75], "bound": -1.0}

    class Unfinished:
        options: dict = {}  # noqa: RUF012

        def verify(self, net, spec, time_budget_s=None):
            return Verdict(Status.TIMEOUT, "stub", {}, unresolved_boxes=[box])

    c.verifier = Unfinished()
    c.verify(to_relu_network(create_state(MLP(depth=1, width=4), OptimConfig(), 2, 0).params), 10, 0.0)
    after = c.certify(10)
    assert float(after.boxes.valid.sum()) == 1.0
    np.testing.assert_allclose(np.asarray(after.boxes.lower[0]), box["lower"])


def test_a_spec_left_unproven_never_counts_as_the_whole_volume(table, tmp_path, monkeypatch):
    """A TIMEOUT whose proven share rounds to 1.0 in floating point must still read short of 1."""
    from verifiers import Status, Verdict
    from verifiers.backends.ouroboros import OuroborosVerifier

    def almost(self, net, spec, time_budget_s):
        return Verdict(Status.TIMEOUT, self.name, spec.to_dict(), verified_fraction=1.0, unresolved_fraction=0.0)

    monkeypatch.setattr(OuroborosVerifier, "_verify", almost)
    summary = run_training(loop_cfg(table, tmp_path, "normal", "train.epochs=1", "verifier=ouroboros"))
    assert summary["verdicts"][0]["status"] == "TIMEOUT" and 0.999 < summary["verified_volume"] < 1.0


def test_the_certified_loop_trains_a_witness_as_a_box_and_compiles_no_pair_pool():
    from verifiers import Box, Counterexample, Monotonicity, Status, Verdict
    from vpals_jax.config import OptimConfig, TrainConfig, VerifierConfig
    from vpals_jax.convert import to_relu_network
    from vpals_jax.models import MLP
    from vpals_jax.train.loop import Corrector
    from vpals_jax.train.steps import create_state

    spec = Monotonicity(feature=0, direction="increasing", region=Box([0.0, 0.0], [1.0, 1.0]))
    witness = Counterexample.make(np.array([0.5, 0.3]), np.array([0.52, 0.3]))

    class Refuting:
        options: dict = {}  # noqa: RUF012

        def verify(self, net, spec, time_budget_s=None):
            return Verdict(Status.FALSIFIED, "stub", {}, counterexamples=[witness])

    c = Corrector(TrainConfig(loop="certified", cert_warmup=0, cert_ramp=1, eps=0.01), VerifierConfig(), [spec], 2)
    c.verifier = Refuting()
    rnd = c.verify(to_relu_network(create_state(MLP(depth=1, width=4), OptimConfig(), 2, 0).params), 10, 0.0)
    assert rnd.added == 1 and c.pool() is None and len(c.pairs) == 1  # counted, kept for reports, no pool
    boxes = c.certify(10).boxes
    assert float(boxes.valid.sum()) == 1.0
    np.testing.assert_allclose(np.asarray(boxes.lower[0]), [0.49, 0.29], atol=1e-6)  # the segment, eps wider
    np.testing.assert_allclose(np.asarray(boxes.upper[0]), [0.53, 0.31], atol=1e-6)

