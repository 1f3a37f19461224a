"""The pool of boxes waiting to be bounded, in the search order of :mod:`verifiers.search.splitting`."""

from __future__ import annotations

import numpy as np


class Pool:
    """Boxes waiting to be bounded: FIFO chunks (breadth-first) or a lowest-key pool (best-first)."""

    def __init__(self, n: int, order: str):
        self.n = n
        self.order = order
        self.chunks: list[tuple[np.ndarray, ...]] = []  # (lo, hi, vol, key)
        self.head = 0  # rows of chunks[0] already consumed (breadth)
        self.size = 0

    def push(self, lo: np.ndarray, hi: np.ndarray, vol: np.ndarray, key: np.ndarray) -> None:
        if len(lo):
            self.chunks.append((lo, hi, vol, key))
            self.size += len(lo)

    def _consolidate(self) -> None:
        if len(self.chunks) > 1 or self.head:
            parts = [tuple(a[self.head :] if i == 0 else a for a in c) for i, c in enumerate(self.chunks)]
            self.chunks = [tuple(np.concatenate(cols) for cols in zip(*parts))]
            self.head = 0

    def pop(self, k: int) -> tuple[np.ndarray, ...]:
        k = min(k, self.size)
        if self.order == "best":
            self._consolidate()
            lo, hi, vol, key = self.chunks[0]
            if k < len(key):
                idx = np.argpartition(key, k - 1)[:k]
                keep = np.ones(len(key), dtype=bool)
                keep[idx] = False
                out = (lo[idx], hi[idx], vol[idx], key[idx])
                self.chunks = [(lo[keep], hi[keep], vol[keep], key[keep])]
            else:
                out = (lo, hi, vol, key)
                self.chunks = []
            self.size -= k
            return out
        parts = []
        need = k
        while need:
            c = self.chunks[0]
            avail = len(c[0]) - self.head
            take = min(avail, need)
            parts.append(tuple(a[self.head : self.head + take] for a in c))
            need -= take
            if take == avail:
                self.chunks.pop(0)
                self.head = 0
            else:
                self.head += take
        self.size -= k
        if len(parts) == 1:
            return parts[0]
        return tuple(np.concatenate(cols) for cols in zip(*parts))

    def drain(self) -> tuple[np.ndarray, ...]:
        return self.pop(self.size) if self.size else empty(self.n)


def empty(n: int) -> tuple[np.ndarray, ...]:
    return np.zeros((0, n)), np.zeros((0, n)), np.zeros(0), np.zeros(0)


def grid_children(lo: np.ndarray, hi: np.ndarray, dims: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ``2**len(dims)`` boxes that halving box ``(lo, hi)`` along each of ``dims`` makes; they tile it."""
    mid = (lo + hi) / 2.0
    bits = ((np.arange(2 ** len(dims))[:, None] >> np.arange(len(dims))[None, :]) & 1).astype(bool)
    c_lo, c_hi = np.repeat(lo[None], len(bits), axis=0), np.repeat(hi[None], len(bits), axis=0)
    c_lo[:, dims] = np.where(bits, mid[dims], lo[dims])
    c_hi[:, dims] = np.where(bits, hi[dims], mid[dims])
    return c_lo, c_hi
