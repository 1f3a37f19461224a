"""The contract between bounding functions and the search engine (see :mod:`verifiers.search.splitting`).

It lives with the bounds, below the search, so that a bounding module never imports the engine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from verifiers.specs import Box
from verifiers.verdict import Counterexample


@dataclass
class BoundResult:
    """What a bounding function returns for a batch of ``B`` boxes of dimension ``n``."""

    lower: np.ndarray  # (B,) sound lower bound of the objective over each box; >= 0 proves it
    split_score: np.ndarray  # (B, n) preference for splitting each input dimension (higher first)
    candidates: np.ndarray | None = None  # (B, n) optional points handed to the falsifier


BoundFn = Callable[[np.ndarray, np.ndarray], BoundResult]
FalsifyFn = Callable[..., list[Counterexample]]
CheckFn = Callable[[Counterexample], float]


def widest_split_score(lower: np.ndarray, upper: np.ndarray, region: Box) -> np.ndarray:
    """Split score "widest dimension", measured relative to the region's width (scale-free)."""
    w = region.widths
    rel = np.where(w > 0, 1.0 / np.where(w > 0, w, 1.0), 0.0)
    return (upper - lower) * rel[None, :]
