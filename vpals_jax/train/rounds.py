"""A verification round of a training run: what it decided, as logged and plotted."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from verifiers import Monotonicity, Spec, Status, Verdict


@dataclass
class Round:
    """One verification interval, as logged to metrics.jsonl and shaded in the wall-time plot."""

    index: int
    epoch: int
    start_s: float
    end_s: float
    verdicts: dict[int, Verdict]  # spec index -> verdict (early rejection may skip some)
    added: int = 0
    fingerprint: str = ""  # SHA-256 of the verified weights: the verdicts are evidence about those only

    @property
    def all_verified(self) -> bool:
        return bool(self.verdicts) and all(v.status == Status.VERIFIED for v in self.verdicts.values())

    def log_line(self, specs: list[Spec], feature_names: list[str]) -> str:
        """``round 2 (epoch 10): cpu_psi+ VERIFIED, quota- TIMEOUT (time budget of 5 s spent ...)``:
        which spec got which verdict and, when it is not decided, why."""
        parts = []
        for i, v in sorted(self.verdicts.items()):
            s = specs[i]
            name = s.to_dict().get("name") or (f"{feature_names[s.feature]}{'+' if s.sign > 0 else '-'}"
                                               if isinstance(s, Monotonicity) else s.kind)  # fmt: skip
            why = f" ({v.message})" if v.status in (Status.UNKNOWN, Status.TIMEOUT, Status.ERROR) else ""
            parts.append(f"{name} {v.status.value}{why}")
        return f"round {self.index} (epoch {self.epoch}): " + ", ".join(parts)

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


def escalated(base: float, cap: float, rounds: list[Round], n_specs: int) -> float:
    """``base`` doubled after each round in a row that left a spec unproven, capped at ``cap``: a
    round's seconds and boxes, and the certified hinge's weight, grow only while rounds fail."""
    return min(cap, base * 2 ** unproven_in_a_row(rounds, n_specs))


def unproven_in_a_row(rounds: list[Round], n_specs: int) -> int:
    """How many rounds since the last one that proved all ``n_specs`` specs (the budgets double per round)."""
    failed = 0
    for rnd in reversed(rounds):
        if rnd.all_verified and len(rnd.verdicts) == n_specs:
            break
        failed += 1
    return failed
