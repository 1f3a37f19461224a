"""A bound on the XLA programs one process keeps: compiled code per network shape, forever.

Why: the jitted bounding functions compile once per network shape (and batch size), and JAX keeps
every executable for the life of the process. A benchmark or serving process that meets many
shapes grows without bound; one that compiled about 90 shapes across the backends died with
"LLVM compilation error: Cannot allocate memory". Past ``limit`` distinct shapes, the caches are
cleared (the shapes in use now recompile once; correctness is unaffected).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

import jax

DEFAULT_LIMIT = 32


class ShapeBudget:
    """Counts distinct network shapes; clears the compilation caches when there are too many."""

    def __init__(self, limit: int = DEFAULT_LIMIT, clear: Callable[[], None] = jax.clear_caches):
        self.limit = limit
        self.clear = clear
        self.seen: set[Hashable] = set()
        self.clears = 0

    def note(self, shape: Hashable) -> None:
        if shape in self.seen:
            return
        if len(self.seen) >= self.limit:
            self.clear()
            self.clears += 1
            self.seen.clear()
        self.seen.add(shape)


SHAPES = ShapeBudget()


def note_network_shape(kind: str, layer_shapes: tuple) -> None:
    """Record that a network of these layer shapes is about to be compiled for ``kind``."""
    SHAPES.note((kind, layer_shapes))
