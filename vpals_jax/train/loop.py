"""The Ouroboros training-verification loop: when to verify, and what counterexamples teach.

Variants (``train.loop``):

* ``normal``: train, then verify once (the unverified baseline);
* ``vanilla``: after each failed round, add the first counterexample of every violated spec;
* ``spec_data``: add every re-checked counterexample plus ``augment`` jittered copies of each
  (spec-aware data augmentation);
* ``early_rejection``: like ``spec_data``, but a round first re-checks only the specs that
  failed last time and stops at the first that still fails, saving verifier time.

Counterexamples become pairs ``(x, x + eps e_i)`` for the spec-aware hinge loss
(``steps.spec_hinge``). Only re-checked witnesses (the verifiers' own guarantee) enter the pool.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import jax.numpy as jnp
import numpy as np

from verifiers import Counterexample, Monotonicity, ReluNetwork, Spec, Status, Verdict, get_verifier
from vpals_jax.config import TrainConfig, VerifierConfig
from vpals_jax.train.steps import PairPool

log = logging.getLogger(__name__)

LOOPS = ("normal", "vanilla", "spec_data", "early_rejection")


@dataclass
class Round:
    """One verification interval, as logged to metrics.jsonl and shaded in the wall-time plot."""

    index: int
    epoch: int
    start_s: float
    end_s: float
    verdicts: dict[int, Verdict]  # spec index -> verdict (early rejection may skip some)
    added: int = 0

    @property
    def all_verified(self) -> bool:
        return bool(self.verdicts) and all(v.status == Status.VERIFIED for v in self.verdicts.values())

    def record(self, specs: list[Spec]) -> dict[str, Any]:
        return {
            "event": "verification",
            "round": self.index,
            "epoch": self.epoch,
            "start_s": self.start_s,
            "end_s": self.end_s,
            "counterexamples_added": self.added,
            "verdicts": [
                {
                    "spec": specs[i].to_dict().get("name") or specs[i].kind,
                    "status": v.status.value,
                    "time_s": v.wall_time_s,
                    "boxes": v.boxes,
                    "verified_fraction": v.verified_fraction,
                    "counterexamples": len(v.counterexamples),
                    "worst_margin": v.worst_margin,
                }
                for i, v in sorted(self.verdicts.items())
            ],
        }


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
        if not 0 < self.train.eps < 1:
            raise ValueError(f"train.eps must be in (0, 1), got {self.train.eps}")
        self.verifier = get_verifier(self.verifier_cfg.name, **dict(self.verifier_cfg.options))
        cap, n = self.train.pool_capacity, self.n_features
        self._lo, self._hi = np.zeros((cap, n), np.float32), np.zeros((cap, n), np.float32)
        self._sign, self._valid = np.zeros(cap, np.float32), np.zeros(cap, np.float32)
        self._next = 0
        self._rng = np.random.default_rng(self.seed)

    # -- when -------------------------------------------------------------------------------
    def due(self, epoch: int, train_accuracy: float) -> bool:
        return (
            self.train.loop != "normal"
            and train_accuracy >= self.train.accuracy_threshold
            and epoch % max(self.train.verify_every, 1) == 0
        )

    # -- verify -----------------------------------------------------------------------------
    def verify(self, net: ReluNetwork, epoch: int, clock: float) -> Round:
        """One round; ``clock`` is seconds since the run started (for the wall-time plot)."""
        t0 = time.perf_counter()
        order = list(range(len(self.specs)))
        last_failed = self.failed_last_round()
        if self.train.loop == "early_rejection" and last_failed:
            order = last_failed + [i for i in order if i not in last_failed]
        verdicts: dict[int, Verdict] = {}
        for i in order:
            verdicts[i] = self.verifier.verify(net, self.specs[i], time_budget_s=self.verifier_cfg.time_budget_s)
            if self.train.loop == "early_rejection" and verdicts[i].status != Status.VERIFIED:
                break
        rnd = Round(len(self.rounds) + 1, epoch, clock, clock + time.perf_counter() - t0, verdicts)
        if self.train.loop != "normal":
            rnd.added = self._learn_from(verdicts)
        self.rounds.append(rnd)
        return rnd

    def failed_last_round(self) -> list[int]:
        if not self.rounds:
            return []
        return [i for i, v in self.rounds[-1].verdicts.items() if v.status != Status.VERIFIED]

    # -- learn ------------------------------------------------------------------------------
    def _learn_from(self, verdicts: dict[int, Verdict]) -> int:
        added = 0
        for i, v in verdicts.items():
            spec = self.specs[i]
            if not isinstance(spec, Monotonicity) or not v.counterexamples:
                continue
            witnesses = v.counterexamples[:1] if self.train.loop == "vanilla" else v.counterexamples
            for cex in witnesses:
                self.pairs.append((i, cex))
                points = [np.asarray(cex.x), np.asarray(cex.x_prime)]
                if self.train.loop in ("spec_data", "early_rejection"):
                    points += [self._jitter(np.asarray(cex.x), spec) for _ in range(self.train.augment)]
                for x in points:
                    self._add_pair(x, spec)
                    added += 1
        return added

    def _jitter(self, x: np.ndarray, spec: Monotonicity) -> np.ndarray:
        step = self._rng.uniform(-self.train.eps, self.train.eps, size=x.shape)
        return np.clip(x + step, spec.region.lower, spec.region.upper)

    def _add_pair(self, x: np.ndarray, spec: Monotonicity) -> None:
        i, lo_i, hi_i = spec.feature, spec.region.lower[spec.feature], spec.region.upper[spec.feature]
        lo = x.copy()
        lo[i] = min(max(x[i], lo_i), max(hi_i - self.train.eps, lo_i))
        hi = lo.copy()
        hi[i] = lo[i] + self.train.eps
        k = self._next % self.train.pool_capacity
        self._lo[k], self._hi[k], self._sign[k], self._valid[k] = lo, hi, spec.sign, 1.0
        self._next += 1

    def pool(self) -> PairPool:
        return PairPool(jnp.asarray(self._lo), jnp.asarray(self._hi), jnp.asarray(self._sign), jnp.asarray(self._valid))

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
            "pool_next": np.asarray(self._next),
            "pair_spec": np.asarray([i for i, _ in self.pairs], np.int64),
            "pair_x": np.asarray([c.x for _, c in self.pairs], np.float64).reshape(-1, n),
            "pair_x_prime": np.asarray([c.x_prime for _, c in self.pairs], np.float64).reshape(-1, n),
        }  # fmt: skip

    def rounds_meta(self) -> list[dict[str, Any]]:
        return [
            {"index": r.index, "epoch": r.epoch, "start_s": r.start_s, "end_s": r.end_s, "added": r.added,
             "verdicts": {str(i): v.to_dict() for i, v in r.verdicts.items()}}
            for r in self.rounds
        ]  # fmt: skip

    def restore(self, arrays: dict[str, np.ndarray], rounds: list[dict[str, Any]]) -> None:
        if arrays:
            self._lo, self._hi = arrays["pool_lo"].copy(), arrays["pool_hi"].copy()
            self._sign, self._valid = arrays["pool_sign"].copy(), arrays["pool_valid"].copy()
            self._next = int(arrays["pool_next"])
            self.pairs = [
                (int(i), Counterexample.make(x, xp))
                for i, x, xp in zip(arrays["pair_spec"], arrays["pair_x"], arrays["pair_x_prime"])
            ]
        self.rounds = [
            Round(r["index"], r["epoch"], r["start_s"], r["end_s"],
                  {int(i): Verdict.from_dict(v) for i, v in r["verdicts"].items()}, r["added"])
            for r in rounds
        ]  # fmt: skip
