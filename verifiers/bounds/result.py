"""The contract between bounding functions and the search engine (see :mod:`verifiers.search.splitting`).

It lives with the bounds, below the search, so that a bounding module never imports the engine.

Contract (helpers plug into it; keep it stable):

``bound_fn(lower, upper) -> BoundResult``
    ``lower``/``upper`` are float64 arrays of shape ``(batch_size, n)``. The engine always
    pads to exactly ``batch_size`` rows (by repeating a real box) so that a jitted bounding
    function compiles once. ``BoundResult.lower`` is a *sound* lower bound of the objective
    over each box (``-inf`` or NaN means "nothing known"); ``split_score`` says which input
    dimension to bisect (higher first; zero-width dimensions are never split). The optional
    ``candidates`` are points (one per box) where the bound is attained or the objective is
    believed small; they are handed to the falsifier.

``falsify_fn(lower, upper, rng, candidates=None) -> list[Counterexample]``
    Proposes *unchecked* counterexamples inside the given boxes (``candidates`` is ``None`` or
    an ``(m, n)`` array; a falsifier whose signature has no ``candidates`` parameter is called
    with three arguments). The engine confirms each with ``check_fn`` (when given) before it
    stops on it; :meth:`verifiers.base.Verifier.verify` re-checks again in float64.
    :func:`verifiers.search.witness.make_falsifier` builds a suitable one for the shipped spec kinds.
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
