"""``Verifier.warm_up`` compiles what a verification of those specs will run, and decides nothing.

Checked through the jit caches of crown's bound functions, not by timing: after the warm-up, the
verification of every spec adds no compiled program. An output spec the interval stage proves
never compiles CROWN's output program (crown's staged output bound). The shape (5 inputs, 7 and 5 hidden) is
used nowhere else, so no other test warms these caches first.
"""

from __future__ import annotations

import numpy as np

from verifiers import Box, Monotonicity, OutputBound, Status, get_verifier
from verifiers.bounds.interval import _output_jit
from verifiers.bounds.jit_cache import SHAPES
from verifiers.bounds.linear_deriv import _derivative_batch, _output_batch
from verifiers.testing.instances import random_relu_net


def test_crown_warm_up_compiles_what_its_verification_runs(monkeypatch):
    # a worker that has met many shapes clears JAX's caches at the next new one (jit_cache.SHAPES):
    # that must not happen between the warm-up and the verification looked at here
    monkeypatch.setattr(SHAPES, "limit", 10**6)
    net = random_relu_net(5, (7, 5), seed=3, bias_scale=0.3)
    box = Box(np.zeros(5), np.ones(5))
    specs = [Monotonicity(feature=1, direction="increasing", region=box),
             Monotonicity(feature=4, direction="decreasing", region=box),
             OutputBound(region=box, lower=-1e6, upper=None)]  # fmt: skip
    crown = get_verifier("crown", batch_size=16)
    caches = _derivative_batch._cache_size, _output_jit._cache_size, _output_batch._cache_size
    before = [c() for c in caches]
    crown.warm_up(net, specs)
    warmed = [c() for c in caches]
    assert warmed[0] > before[0] and warmed[1] > before[1] and warmed[2] == before[2]
    verdicts = [crown.verify(net, s, time_budget_s=5) for s in specs]
    assert [c() for c in caches] == warmed
    assert verdicts[2].status == Status.VERIFIED and verdicts[2].boxes == 1  # decided as usual, at the root
    assert all(v.status != Status.ERROR for v in verdicts)


def test_a_loop_that_verifies_warms_up_on_a_thread_and_its_round_waits_for_it():
    from vpals_jax.config import TrainConfig, VerifierConfig
    from vpals_jax.train.loop import Corrector

    net = random_relu_net(5, (7, 5), seed=4, bias_scale=0.3)
    spec = Monotonicity(feature=0, direction="increasing", region=Box(np.zeros(5), np.ones(5)))
    normal = Corrector(TrainConfig(loop="normal", verify_at_end=True), VerifierConfig(name="crown"), [spec], 5)
    normal.warm_up(net)
    assert normal._warming is None  # its one check is a measurement, not training
    c = Corrector(TrainConfig(loop="spec_data"), VerifierConfig(name="crown"), [spec], 5)
    c.warm_up(net)
    assert c._warming is not None
    rnd = c.verify(net, epoch=1, clock=0.0)
    assert not c._warming.is_alive() and rnd.verdicts[0].status != Status.ERROR
    ended = Corrector(TrainConfig(loop="certified"), VerifierConfig(name="crown"), [spec], 5)
    ended.warm_up(random_relu_net(5, (9, 5), seed=4))  # a new shape: compiling while the run ends
    ended.close()  # (a run that ends before its first round: _finish)
    assert not ended._warming.is_alive()
