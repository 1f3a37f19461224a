"""Framework-neutral ReLU networks.

Verifiers never see Flax or PyTorch objects: a network is a list of weight matrices and
biases, so that any model (Flax, PyTorch, an NNet file) can be verified by any backend.
Evaluation here is float64 NumPy because it is the ground truth against which every
counterexample is re-checked before it is reported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class ReluNetwork:
    """A fully connected network ``x -> W_L relu(... relu(x W_1 + b_1) ...) + b_L``.

    Weights use Flax order: ``W_k`` has shape ``(in, out)`` and a row vector ``x`` maps to
    ``x @ W_k + b_k``. Every hidden layer is followed by a ReLU; the last layer is linear.
    """

    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]

    def __init__(self, weights: Sequence[np.ndarray], biases: Sequence[np.ndarray]):
        ws = tuple(np.array(w, dtype=np.float64) for w in weights)
        bs = tuple(np.array(b, dtype=np.float64).reshape(-1) for b in biases)
        if not ws:
            raise ValueError("ReluNetwork needs at least one layer")
        if len(ws) != len(bs):
            raise ValueError(f"ReluNetwork: {len(ws)} weight matrices but {len(bs)} bias vectors")
        for k, (w, b) in enumerate(zip(ws, bs)):
            if w.ndim != 2:
                raise ValueError(f"ReluNetwork: weight {k} has shape {w.shape}, expected (in, out)")
            if 0 in w.shape:
                raise ValueError(f"ReluNetwork: layer {k} has shape {w.shape}; every layer needs at least one unit")
            if b.shape[0] != w.shape[1]:
                raise ValueError(
                    f"ReluNetwork: bias {k} has {b.shape[0]} entries but weight {k} has {w.shape[1]} outputs"
                )
            if k and ws[k - 1].shape[1] != w.shape[0]:
                raise ValueError(
                    f"ReluNetwork: weight {k - 1} outputs {ws[k - 1].shape[1]} values but weight {k} "
                    f"expects {w.shape[0]} inputs"
                )
            if not (np.all(np.isfinite(w)) and np.all(np.isfinite(b))):
                raise ValueError(f"ReluNetwork: layer {k} has NaN or infinite weights or biases")
        for arr in ws + bs:
            arr.setflags(write=False)
        object.__setattr__(self, "weights", ws)
        object.__setattr__(self, "biases", bs)

    @property
    def n_inputs(self) -> int:
        return self.weights[0].shape[0]

    @property
    def n_outputs(self) -> int:
        return self.weights[-1].shape[1]

    @property
    def layer_sizes(self) -> list[int]:
        return [self.n_inputs] + [w.shape[1] for w in self.weights]

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Evaluate in float64; ``x`` has shape ``(n_inputs,)`` or ``(batch, n_inputs)``."""
        h = np.asarray(x, dtype=np.float64)
        squeeze = h.ndim == 1
        h = np.atleast_2d(h)
        if h.shape[-1] != self.n_inputs:
            raise ValueError(f"ReluNetwork: input has {h.shape[-1]} features, network expects {self.n_inputs}")
        for k, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = h @ w + b
            if k < len(self.weights) - 1:
                h = np.maximum(h, 0.0)
        return h[0] if squeeze else h

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)

    def select_output(self, k: int) -> ReluNetwork:
        """The scalar network ``x -> f_k(x)``: the last layer cut to its column ``k``.

        Why: every spec is a property of one output, and every backend decides scalar networks;
        cutting the column is exact (no arithmetic), so a proof about the cut network is one about
        output ``k``.
        """
        if not 0 <= k < self.n_outputs:
            raise ValueError(f"ReluNetwork: output {k} does not exist (the network has {self.n_outputs} outputs)")
        if self.n_outputs == 1:
            return self
        return ReluNetwork(self.weights[:-1] + (self.weights[-1][:, k : k + 1],), self.biases[:-1] + (self.biases[-1][k : k + 1],))

    def direction_row(self, direction: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """``c @ W_1`` (the first step of the derivative chain along ``c``), a bound on its
        rounding error per unit, and a bound on how far that error can move ``c . grad f_k`` for
        any output and activation pattern (the error pushed through ``|W_2| ... |W_L|``, every ReLU
        derivative lying in [0, 1]). Exact, with zero error, for a unit vector ``+-e_i``.
        """
        c = np.asarray(direction, dtype=np.float64).reshape(-1)
        if c.size != self.n_inputs or not np.all(np.isfinite(c)):
            raise ValueError(f"direction must be {self.n_inputs} finite numbers, got {c.size}")
        row = c @ self.weights[0]
        nz = np.flatnonzero(c)
        if nz.size == 1 and abs(c[nz[0]]) == 1.0:
            return row, np.zeros_like(row), 0.0
        k = nz.size + 1  # products and additions: at most k roundings per term (Higham 3.1)
        u = np.finfo(np.float64).eps / 2
        err = 2 * (k * u / (1 - k * u)) * (np.abs(c) @ np.abs(self.weights[0])) + k * np.finfo(np.float64).smallest_subnormal
        gain = err
        for w in self.weights[1:]:
            gain = gain @ np.abs(w)
        return row, err, float(np.max(gain)) * (1 + 1e-9)

    def gradient(self, x: np.ndarray, feature: int | np.ndarray, output: int = 0) -> np.ndarray:
        """d f_output / d x_feature in float64 (the ReLU derivative at 0 is taken as 0); a vector
        ``feature`` is a direction ``c`` and gives ``c . grad f_output``.

        Piecewise-linear networks are differentiable almost everywhere; this is a diagnostic
        and a sampling aid, never a proof.
        """
        h = np.atleast_2d(np.asarray(x, dtype=np.float64))
        masks = []
        for w, b in zip(self.weights[:-1], self.biases[:-1]):
            z = h @ w + b
            masks.append((z > 0).astype(np.float64))
            h = np.maximum(z, 0.0)
        first = self.weights[0][feature] if np.ndim(feature) == 0 else np.asarray(feature, np.float64) @ self.weights[0]
        g = np.broadcast_to(first, (h.shape[0], self.weights[0].shape[1]))
        for mask, w in zip(masks, self.weights[1:]):
            g = (g * mask) @ w
        out = g[:, output]
        return out[0] if np.asarray(x).ndim == 1 else out

    def certified_slope(self, x: np.ndarray, direction: np.ndarray) -> tuple[float, float] | None:
        """``(s, e)`` with the exact directional derivative ``c . grad f`` at ``x`` in
        ``[s - e, s + e]``, or None when some hidden pre-activation at ``x`` may be 0.

        Why: a witness of a gradient spec is a point inside one linear piece of a scalar network;
        every pre-activation there is provably non-zero (its float64 value exceeds a rigorous bound
        on its rounding error, as in :func:`verifiers.base.numeric_slack`), so the activation
        pattern and hence the gradient are those of an open neighbourhood of ``x``.
        """
        u = np.finfo(np.float64).eps / 2
        h = np.asarray(x, dtype=np.float64).reshape(-1)
        mag, err = np.abs(h), np.zeros_like(h)
        g, gerr = self.direction_row(direction)[:2]
        gmag = np.abs(np.asarray(direction, np.float64)) @ np.abs(self.weights[0])
        for k, (w, b) in enumerate(zip(self.weights, self.biases)):
            gamma = 2 * (w.shape[0] + 1) * u / (1 - (w.shape[0] + 1) * u)
            if k:
                g = g @ w
                gmag = gmag @ np.abs(w)
                gerr = gerr @ np.abs(w) + gamma * gmag
            if k == len(self.weights) - 1:
                return float(g[0]), float(gerr[0] + 2 * gamma * gmag[0])
            z = h @ w + b
            mag = np.abs(w).T @ mag + np.abs(b)
            err = np.abs(w).T @ err + gamma * mag
            if np.any(np.abs(z) <= 2 * err):
                return None
            on = z > 0
            h, mag, err = np.where(on, z, 0.0), np.where(on, mag + err, 0.0), np.where(on, err, 0.0)
            g, gmag, gerr = np.where(on, g, 0.0), np.where(on, gmag, 0.0), np.where(on, gerr, 0.0)
        raise AssertionError("unreachable: the last layer returns")

    def to_dict(self) -> dict:
        return {"weights": [w.tolist() for w in self.weights], "biases": [b.tolist() for b in self.biases]}

    @classmethod
    def from_dict(cls, d: dict) -> ReluNetwork:
        return cls(weights=[np.asarray(w) for w in d["weights"]], biases=[np.asarray(b) for b in d["biases"]])
