"""Incremental verification: the leaves of one search seed the next search of the same spec.

Why: the training loop verifies the same specs every few epochs on weights that changed a
little. A fresh search bounds every node of the bisection tree again (about twice its leaves);
starting from the last tree's leaves bounds each leaf once, and a leaf that the new weights still
prove needs nothing more. Only leaves the weight change broke are split further.

Soundness rests on one fact: the leaves of a bisection search over a region tile that region
(every box the engine pops is proven, bisected into two halves, or left unresolved, and the pool
is drained at the end). So they may replace the region's own first bisection. A
:class:`Frontier` is therefore only ever made by the engine (:func:`verifiers.search.splitting.split_and_bound`)
from its own leaves, is never read from a file, and is used only on the exact region it tiles;
its volume fractions must sum to one. The search still bounds the whole region first: when the
new weights prove it in one box, the old tree is not needed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np

from verifiers.specs import Box, Spec

VOLUME_SLACK = 1e-9  # the leaves' volume fractions are exact halvings: their sum is 1 up to rounding


@dataclass(frozen=True)
class Frontier:
    """The leaves of one search over ``region`` (proven and unresolved alike)."""

    region_lower: np.ndarray
    region_upper: np.ndarray
    lower: np.ndarray  # (m, n)
    upper: np.ndarray  # (m, n)
    volume: np.ndarray  # (m,) fractions of the region's volume

    def __len__(self) -> int:
        return len(self.volume)

    def tiles(self, region: Box) -> bool:
        """Whether this frontier was made on exactly ``region`` (and is whole)."""
        return (
            np.array_equal(self.region_lower, region.lower)
            and np.array_equal(self.region_upper, region.upper)
            and abs(float(self.volume.sum()) - 1.0) <= VOLUME_SLACK
        )


def make_frontier(region: Box, parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> Frontier | None:
    """The frontier of the leaves ``parts`` (``(lower, upper, volume)`` chunks), or None when they
    do not account for the whole region (a search that did not finish its bookkeeping)."""
    parts = [p for p in parts if len(p[0])]
    if not parts:
        return None
    lo, hi, vol = (np.concatenate(cols) for cols in zip(*parts))
    f = Frontier(region.lower.copy(), region.upper.copy(), lo, hi, vol)
    return f if f.tiles(region) else None


def spec_key(spec: Spec) -> str:
    """What identifies a spec across rounds: its full description, region included."""
    text = json.dumps(spec.to_dict(), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class FrontierStore:
    """A backend's last proof tree per spec (in memory, for one backend instance: one training run)."""

    def __init__(self) -> None:
        self._by_spec: dict[str, Frontier] = {}

    def get(self, spec: Spec) -> Frontier | None:
        f = self._by_spec.get(spec_key(spec))
        return f if f is not None and f.tiles(spec.region) else None

    def put(self, spec: Spec, frontier: Frontier | None, proven: bool) -> None:
        """Keep the leaves of a proof; forget them after a search that did not prove the spec.

        Why only proofs: a failed search ends over-refined where it failed (up to its box
        budget), and seeding the next round with that depth costs more than a fresh search once
        the weights have moved (measured: 10,000 boxes against 47)."""
        key = spec_key(spec)
        if proven and frontier is not None:
            self._by_spec[key] = frontier
        else:
            self._by_spec.pop(key, None)


__all__ = ["Frontier", "FrontierStore", "make_frontier", "spec_key"]
