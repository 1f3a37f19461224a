"""The Ouroboros training-verification loop: when to verify, and what counterexamples teach.

Variants (``train.loop``):

* ``normal``: train, then verify once (the unverified baseline);
* ``vanilla``: after each failed round, add the first counterexample of every violated spec;
* ``spec_data``: add every re-checked counterexample plus ``augment`` jittered copies of each
  and, with ``sample_regions``, train from then on with fresh pairs drawn at every step from the
  region of each spec the round did not prove (spec-aware data augmentation);
* ``early_rejection``: like ``spec_data``, but a round first re-checks only the specs that
  failed last time and stops at the first that still fails, saving verifier time;
* ``certified``: ``spec_data`` plus certified training from the start: every step pushes the
  interval lower bound of every spec over boxes that grow to its whole region above a margin
  (``steps.certified_hinge``), so that the verifier can prove the specs over the whole domain;
  its rounds stop at the first unproven spec, as ``early_rejection``'s do (only a round that
  proves everything can end the run, and the bound hinge already covers every region), or, with
  ``round_survey``, give the specs they did not reach a fraction of the box budget, whose
  unresolved boxes then train too.

Counterexamples become pairs ``(x, x + eps c)`` for the spec-aware hinge loss
(``steps.spec_hinge``). Only re-checked witnesses (the verifiers' own guarantee) enter the pool.
Any spec with gradient bounds (``Spec.slope_bounds``: monotonicity along ``e_i``, a user's
``directional_slope`` or ``bounded_slope``) trains the same way, one *row* per bound it sets
(:func:`slope_rows`); the pairs of a monotonicity spec ask for slope ``margin``, those of other
kinds for their own bound plus ``margin``.

Why regions and not only witnesses: Ouroboros samples its training points from every unproven
box, but a ``Verdict`` reports witnesses, not boxes, and an UNKNOWN/TIMEOUT round (interval
bounds too loose, no witness found) would teach nothing. Drawing pairs from the spec's region
while it is unproven covers that volume, and the hinge's ``margin`` (a required slope > 0)
makes the model robustly monotone there, which is what lets the interval proof close. Interval
gradients are loose by a box-size-independent amount wherever a first-layer ReLU switches inside
the region (the chain rule's terms are bounded one by one), so a spec that stays unproven with no
witness gets its margin multiplied by ``margin_growth`` (up to ``max_margin``) for its region. On
LinnOS, witness pairs alone leave the model FALSIFIED/UNKNOWN round after round (see
``docs/experiments.md``).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import jax.numpy as jnp
import numpy as np

from verifiers import Counterexample, ReluNetwork, Spec, Status, Verdict, get_verifier
from vpals_jax.certificate import network_fingerprint
from vpals_jax.config import TrainConfig, VerifierConfig
from vpals_jax.train.cert_regions import SlopeRow, inert_regions, output_regions, slope_rows, witness_box
from vpals_jax.train.rounds import Round, escalated
from vpals_jax.train.steps import Certify, PairPool, RegionSet, UnresolvedBoxes

log = logging.getLogger(__name__)

LOOPS = ("normal", "vanilla", "spec_data", "early_rejection", "certified")
CORRECTING = ("spec_data", "early_rejection", "certified")  # loops that learn from regions and jitter
REJECTING = ("early_rejection", "certified")  # rounds stop at the first unproven spec (module docstring)
UNRESOLVED_CAPACITY = 64


@dataclass
class Corrector:
    """Owns the verifier, the counterexample pool and the round history of one run."""

    train: TrainConfig
    verifier_cfg: VerifierConfig
    specs: list[Spec]
    n_features: int
    seed: int = 0
    rounds: list[Round] = field(default_factory=list)
    pairs: list[tuple[int, Counterexample]] = field(default_factory=list)  # (spec index, witness)

    def __post_init__(self) -> None:
        if self.train.loop not in LOOPS:
            raise ValueError(f"unknown train.loop {self.train.loop!r}; use one of {list(LOOPS)}")
        self.verifier = get_verifier(self.verifier_cfg.name, **dict(self.verifier_cfg.options))
        if self.train.round_budget_boxes < 0 or (self.train.round_budget_boxes and "max_boxes" not in
                                                 self.verifier.options):  # fmt: skip
            raise ValueError(f"train.round_budget_boxes must be >= 0 and needs a box-search backend (crown, "
                             f"ouroboros); got {self.train.round_budget_boxes} with {self.verifier_cfg.name}")
        cap, n = self.train.pool_capacity, self.n_features
        self._lo, self._hi = np.zeros((cap, n), np.float32), np.zeros((cap, n), np.float32)
        self._sign, self._valid = np.zeros(cap, np.float32), np.zeros(cap, np.float32)
        self._next = 0
        self._rng = np.random.default_rng(self.seed)
        self.rows = slope_rows(self.specs, n)
        self._shift = np.zeros(self.train.pool_capacity, np.float32)
        self._region_active = np.asarray([self.train.loop == "certified" and not r.inert for r in self.rows], np.float32)
        self._region_margin = np.full(len(self.rows), self.train.margin, np.float32)
        cap = UNRESOLVED_CAPACITY  # certified: the boxes the last rounds left unproven (ring buffer)
        self._box_lo, self._box_hi = np.zeros((cap, n), np.float32), np.zeros((cap, n), np.float32)
        self._box_spec, self._box_valid = np.zeros(cap, np.int64), np.zeros(cap, np.float32)
        self._box_next = 0
        self._warming: threading.Thread | None = None
        self._cert_cache: tuple[tuple[float, float], Certify | None] | None = None  # (scale, lam) -> term

    # -- when -------------------------------------------------------------------------------
    def due(self, epoch: int, train_accuracy: float) -> bool:
        return (
            self.train.loop != "normal"
            and (self.train.loop != "certified" or self.cert_scale(epoch) >= 1.0)
            and train_accuracy >= self.train.accuracy_threshold
            and epoch >= self.train.verify_from
            and epoch % max(self.train.verify_every, 1) == 0
        )

    # -- verify -----------------------------------------------------------------------------
    def warm_up(self, net: ReluNetwork) -> None:
        """Compile the verifier for ``net``'s shapes on a thread while the epochs before the first
        round train (once per run; :meth:`Verifier.warm_up`). Why: training keeps one core busy,
        and crown's first round otherwise spends half its time compiling. The normal loop's one
        check is not training, so it does not warm up."""
        if self._warming is not None or self.train.loop == "normal" or self.rounds:
            return

        def run() -> None:
            try:
                self.verifier.warm_up(net, self.specs)
            except Exception as e:  # noqa: BLE001 -- the round compiles what this did not
                log.warning("verifier warm-up failed (%s: %s); the first round compiles instead", type(e).__name__, e)

        self._warming = threading.Thread(target=run, name="verifier-warm-up", daemon=True)
        self._warming.start()

    def close(self) -> None:
        """Wait for the warm-up: left running at the interpreter's exit (a run that ends before its
        first round), the compiling thread aborts the process."""
        if self._warming is not None:
            self._warming.join()

    def round_budget(self, final: bool = False) -> float:
        """Seconds per spec for the next round: ``train.round_budget_s`` doubled after each round in a
        row that left a spec unproven, capped at the verifier's budget (which the final round gets).
        Why: until the weights are provable, a round mostly learns "not yet" (nginx: 57 s of 104)."""
        cap, base = float(self.verifier_cfg.time_budget_s), float(self.train.round_budget_s)
        return cap if final or base <= 0 else escalated(base, cap, self.rounds, len(self.specs))

    def round_boxes(self, final: bool = False) -> int | None:
        """Boxes per spec for the next round (``train.round_budget_boxes``, doubled like the seconds),
        or None: the backend's ``max_boxes``. Why boxes: in seconds, a round's verdict (and so the
        run's rounds, accuracy and time) depends on the machine's load; the same weights passed in
        one sweep and failed in the next. Boxes decide alike anywhere; the seconds stay as a cap."""
        base, cap = self.train.round_budget_boxes, self.verifier.options.get("max_boxes")
        return None if final or base <= 0 or cap is None else int(escalated(base, cap, self.rounds, len(self.specs)))

    def verify(self, net: ReluNetwork, epoch: int, clock: float, final: bool = False) -> Round:
        """One round; ``clock`` is seconds since the run started (for the wall-time plot); the
        ``final`` round (the last epoch's) gets the verifier's whole time budget."""
        t0 = time.perf_counter()
        if self._warming is not None:
            self._warming.join()  # a round never shares the machine with the warm-up (and counts the wait)
        budget, boxes, own = self.round_budget(final), self.round_boxes(final), self.verifier.options.get("max_boxes")
        order = list(range(len(self.specs)))
        last_failed = self.failed_last_round()
        if self.train.loop in REJECTING and last_failed:
            order = last_failed + [i for i in order if i not in last_failed]
        verdicts: dict[int, Verdict] = {}
        if boxes is not None:
            self.verifier.options["max_boxes"] = boxes  # recorded in each verdict's settings
        try:
            for i in order:
                verdicts[i] = self.verifier.verify(net, self.specs[i], time_budget_s=budget)
                if self.train.loop in REJECTING and verdicts[i].status != Status.VERIFIED:
                    if not (self.train.loop == "certified" and self.train.round_survey and boxes is not None):
                        break
                    # the rest surveyed: where each unproven spec fails trains at once (round_survey)
                    self.verifier.options["max_boxes"] = max(1, int(boxes * self.train.round_survey))
        finally:
            if boxes is not None:
                self.verifier.options["max_boxes"] = own
        rnd = Round(len(self.rounds) + 1, epoch, clock, clock + time.perf_counter() - t0, verdicts,
                    fingerprint=network_fingerprint(net))  # fmt: skip
        if self.train.loop != "normal":
            rnd.added = self._learn_from(verdicts)
        else:  # the baseline learns nothing, but its witnesses count against its counterexample accuracy
            self.pairs += [(i, c) for i, v in verdicts.items() for c in v.counterexamples if c.x_prime is not None]
        self.rounds.append(rnd)
        return rnd

    def failed_last_round(self) -> list[int]:
        if not self.rounds:
            return []
        return [i for i, v in self.rounds[-1].verdicts.items() if v.status != Status.VERIFIED]

    # -- learn ------------------------------------------------------------------------------
    def _learn_from(self, verdicts: dict[int, Verdict]) -> int:
        self._cert_cache = None  # the regions' margins and the unresolved boxes change here
        added = 0
        for i, v in verdicts.items():
            spec, mine = self.specs[i], [k for k, r in enumerate(self.rows) if r.spec == i and not r.inert]
            if not mine or v.status == Status.VERIFIED:
                continue
            for k in mine:
                if self.train.sample_regions and self.train.loop in CORRECTING:
                    if self._region_active[k] and not v.counterexamples:
                        # Trained on, no witness left, still unproven: the interval bound is looser than
                        # the slope we ask for (see the module docstring), so ask for more.
                        self._region_margin[k] = min(
                            self._region_margin[k] * self.train.margin_growth, self.train.max_margin
                        )
                    self._region_active[k] = 1.0  # stays on: a proven region must stay proven
                if self.train.loop == "certified":
                    boxes = [(box["lower"], box["upper"]) for box in v.unresolved_boxes]
                    pairs = [c for c in v.counterexamples if c.x_prime is not None]
                    boxes += [witness_box(c, spec.region, self.train.eps) for c in pairs]
                    for lo, hi in boxes:
                        b = self._box_next % UNRESOLVED_CAPACITY
                        self._box_lo[b], self._box_hi[b] = lo, hi
                        self._box_spec[b], self._box_valid[b] = k, 1.0
                        self._box_next += 1
            witnesses = v.counterexamples[:1] if self.train.loop == "vanilla" else v.counterexamples
            for cex in witnesses:
                self.pairs.append((i, cex))
                if self.train.loop == "certified":
                    added += 1
                    continue  # trained as a box (above), not as pairs
                x = np.asarray(cex.x)
                points = [x]
                if cex.x_prime is not None:  # a pair: it trains as it is, then eps-pairs at both ends
                    points.append(np.asarray(cex.x_prime))
                    self._store(x, points[1], self.rows[mine[0]])
                    added += 1
                if self.train.loop in CORRECTING:
                    points += [self._jitter(x, spec) for _ in range(self.train.augment)]
                for p in points:
                    for k in mine:
                        self._add_pair(p, spec, self.rows[k])
                added += len(points)
        return added

    def _jitter(self, x: np.ndarray, spec: Spec) -> np.ndarray:
        step = self._rng.uniform(-self.train.eps, self.train.eps, size=x.shape)
        return np.clip(x + step, spec.region.lower, spec.region.upper)

    def _add_pair(self, x: np.ndarray, spec: Spec, row: SlopeRow) -> None:
        """``(lo, lo + step c)`` with ``lo`` the point of the region nearest ``x`` that leaves room
        for the step, ``step <= eps`` (shorter only where the region is narrower along ``c``)."""
        lower, upper, c = spec.region.lower, spec.region.upper, row.axis
        moved = c != 0
        step = min(self.train.eps, float(np.min((upper - lower)[moved] / np.abs(c[moved]))))
        if step <= 0:
            return
        move = step * c
        lo = np.clip(x, lower - np.minimum(move, 0.0), upper - np.maximum(move, 0.0))
        self._store(lo, lo + move, row)

    def _store(self, lo: np.ndarray, hi: np.ndarray, row: SlopeRow) -> None:
        k = self._next % self.train.pool_capacity
        self._lo[k], self._hi[k], self._sign[k], self._valid[k] = lo, hi, row.sign, 1.0
        self._shift[k] = row.pair_shift
        self._next += 1

    def pool(self) -> PairPool | None:
        """The counterexample pairs, or None before the first one (training runs plain MSE)."""
        if not self.pool_size:
            return None
        arrays = (self._lo, self._hi, self._sign, self._valid, self._shift)
        return PairPool(*(jnp.asarray(a) for a in arrays))

    def regions(self) -> RegionSet | None:
        """The regions trained on at every step (one row per slope bound), or None while none is active."""
        if not self._region_active.any():
            return None
        boxes = [self.specs[r.spec].region for r in self.rows]
        lower = np.stack([b.lower for b in boxes]).astype(np.float32)
        upper = np.stack([b.upper for b in boxes]).astype(np.float32)
        axis = np.stack([r.axis for r in self.rows]).astype(np.float32)
        sign = np.asarray([r.sign for r in self.rows], np.float32)
        margin = self._region_margin - np.asarray([r.pair_shift for r in self.rows], np.float32)
        arrays = (lower, upper, axis, sign, self._region_active, margin)
        return RegionSet(*(jnp.asarray(a) for a in arrays))

    def pair_regions(self) -> RegionSet | None:
        """The regions pairs are drawn from at every step: none in the certified loop, whose bound
        hinge covers the regions already (pairs with the loop's slope margin would only cost
        accuracy: the bound needs no margin beyond the tolerance)."""
        return None if self.train.loop == "certified" else self.regions()

    def cert_scale(self, epoch: int) -> float:
        """Box size (fraction of the region) at ``epoch``: 0 during warm-up, then a linear ramp."""
        t = self.train
        if epoch < t.cert_warmup:
            return 0.0
        if epoch >= t.cert_warmup + max(t.cert_ramp, 1):  # exactly 1: the sum below can round to 1 - 1e-16
            return 1.0
        return float(min(1.0, t.cert_min_scale + (1 - t.cert_min_scale) * (epoch - t.cert_warmup) / max(t.cert_ramp, 1)))

    def certify(self, epoch: int) -> Certify | None:
        """The certified-training term of ``epoch`` (None outside the certified loop).

        Warm-up epochs get the term with weight 0: plain training, run by the same compiled epoch.
        Why not ``None`` there: that is another program to compile for two epochs (0.9 s of a 12 s
        mindspore run), and a zero weight changes no gradient (the bounds are finite)."""
        if self.train.loop != "certified":
            return None
        t = self.train
        scale = self.cert_scale(epoch)
        lam = self.cert_weight() if scale > 0 else 0.0
        scale = scale if scale > 0 else t.cert_min_scale  # warm-up: any size will do, its weight is 0
        if self._cert_cache is None or self._cert_cache[0] != (scale, lam):
            # Why cached: rebuilt, the term cost 3 ms an epoch (the boxes' arrays to the device), 1 s
            # of a 300-epoch run; only a round (_learn_from) or a restore changes what it holds.
            self._cert_cache = (scale, lam), self._certify(scale, lam)
        return self._cert_cache[1]

    def cert_weight(self) -> float:
        """``cert_lam``, doubled while rounds fail, up to ``cert_lam_max``. Why: the weight that costs the
        fit least does not always get the proof (mindspore at 0.5: one seed took 5 rounds); raised
        like a multiplier while its constraint is violated, it pushes only the runs that need it."""
        t = self.train
        return escalated(t.cert_lam, max(t.cert_lam_max, t.cert_lam), self.rounds, len(self.specs))

    def _certify(self, scale: float, lam: float) -> Certify | None:
        regions, outputs = self.regions(), output_regions(self.specs)
        if regions is None and outputs is None:
            return None
        allowance = [r.bound_shift for r in self.rows]
        if regions is None:  # output bounds only
            regions, allowance = inert_regions(self.n_features), [0.0]
        return Certify(regions, outputs, jnp.asarray(scale, jnp.float32), jnp.asarray(lam, jnp.float32),
                       jnp.asarray(self.train.cert_margin, jnp.float32), jnp.asarray(allowance, jnp.float32),
                       self._unresolved_boxes())  # fmt: skip

    def _unresolved_boxes(self) -> UnresolvedBoxes:
        """The boxes, valid ones first (``steps.certified_hinge`` draws among the first ``valid.sum()``)."""
        order = np.argsort(-self._box_valid, kind="stable")
        rows = [self.rows[k] for k in self._box_spec[order]]  # box_spec holds row indices
        axis = np.stack([r.axis for r in rows])
        sign = np.asarray([r.sign for r in rows])
        allowance = np.asarray([r.bound_shift for r in rows])
        arrays = (self._box_lo[order], self._box_hi[order], axis, sign, allowance, self._box_valid[order])
        return UnresolvedBoxes(*(jnp.asarray(a, jnp.float32) for a in arrays))

    @property
    def pool_size(self) -> int:
        return int(self._valid.sum())

    # -- report -----------------------------------------------------------------------------
    def counterexample_accuracy(self, net: ReluNetwork) -> float | None:
        """Share of collected witness pairs that ``net`` now orders as its spec demands."""
        if not self.pairs:
            return None
        ok = [self.specs[i].violation(net, cex) <= 0 for i, cex in self.pairs]
        return float(np.mean(ok))

    def state_arrays(self) -> dict[str, np.ndarray]:
        """The pool and the collected witnesses, saved with the checkpoint for resume."""
        n = self.n_features
        return {
            "pool_lo": self._lo, "pool_hi": self._hi, "pool_sign": self._sign, "pool_valid": self._valid,
            "pool_shift": self._shift,
            "pool_next": np.asarray(self._next), "region_active": self._region_active,
            "region_margin": self._region_margin, "box_lo": self._box_lo, "box_hi": self._box_hi,
            "box_spec": self._box_spec, "box_valid": self._box_valid, "box_next": np.asarray(self._box_next),
            "pair_spec": np.asarray([i for i, _ in self.pairs], np.int64),
            "pair_x": np.asarray([c.x for _, c in self.pairs], np.float64).reshape(-1, n),
            "pair_x_prime": np.asarray([c.x if c.x_prime is None else c.x_prime for _, c in self.pairs],
                                       np.float64).reshape(-1, n),
            "pair_is_point": np.asarray([c.x_prime is None for _, c in self.pairs], bool),
        }  # fmt: skip

    def state_meta(self) -> dict[str, Any]:
        """The rounds and the jitter generator's position, saved in the checkpoint's meta: without the
        generator a resumed ``spec_data`` run jitters its next counterexamples differently."""
        rounds = [
            {"index": r.index, "epoch": r.epoch, "start_s": r.start_s, "end_s": r.end_s, "added": r.added,
             "fingerprint": r.fingerprint, "verdicts": {str(i): v.to_dict() for i, v in r.verdicts.items()}}
            for r in self.rounds
        ]  # fmt: skip
        return {"rounds": rounds, "corrector_rng": self._rng.bit_generator.state}

    def restore(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        """Back to the state ``state_arrays`` and ``state_meta`` saved."""
        self._rng.bit_generator.state = meta["corrector_rng"]
        self._cert_cache = None
        self._lo, self._hi = arrays["pool_lo"].copy(), arrays["pool_hi"].copy()
        self._sign, self._valid = arrays["pool_sign"].copy(), arrays["pool_valid"].copy()
        # checkpoints saved before non-monotonicity specs trained have no shifts: theirs were all 0
        self._shift = arrays.get("pool_shift", np.zeros_like(self._sign)).copy()
        self._next = int(arrays["pool_next"])
        self._region_active = arrays["region_active"].copy()
        self._region_margin = arrays["region_margin"].copy()
        self._box_lo, self._box_hi = arrays["box_lo"].copy(), arrays["box_hi"].copy()
        self._box_spec, self._box_valid = arrays["box_spec"].copy(), arrays["box_valid"].copy()
        self._box_next = int(arrays["box_next"])
        points = arrays.get("pair_is_point", np.zeros(len(arrays["pair_spec"]), bool))
        self.pairs = [
            (int(i), Counterexample.make(x, None if point else xp))
            for i, x, xp, point in zip(arrays["pair_spec"], arrays["pair_x"], arrays["pair_x_prime"], points)
        ]
        self.rounds = [
            Round(r["index"], r["epoch"], r["start_s"], r["end_s"],
                  {int(i): Verdict.from_dict(v) for i, v in r["verdicts"].items()}, r["added"], r.get("fingerprint", ""))
            for r in meta["rounds"]
        ]  # fmt: skip
