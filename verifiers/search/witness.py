"""Counterexample search shared by the box-splitting backends (sampling, never a proof).

:func:`make_falsifier` returns a ``falsify_fn`` for :func:`verifiers.search.splitting.split_and_bound`:
given boxes (lowest bound first) it samples points in them and proposes *unchecked*
:class:`~verifiers.verdict.Counterexample` objects; the engine and then
:meth:`verifiers.base.Verifier.verify` re-check every one in float64 NumPy.

Monotonicity (feature ``i``, ``sign`` +1 increasing / -1 decreasing, tolerance ``t``). Through
each sampled point ``p`` the network is evaluated on a grid along ``e_i`` made of points
spread evenly over the *region's* range of feature ``i`` (so that pairs far apart, needed
when ``t > 0``, are seen), points spread evenly over the sampled box's own range (fine
resolution where the bound failed) and ``p`` itself. With ``v = sign * f`` on the sorted grid the worst pair
``s < u`` maximises ``v(s) - v(u)``: a running maximum of ``v`` minus ``v``. The best pairs are
then refined on finer grids around both ends. A pair is proposed when its drop exceeds ``t``.

OutputBound. Points are sampled uniformly in the boxes (plus their centres and any candidate
points of the bounding function), then each is pushed to the box corner that the sign of the
input gradient points to (ReLU networks are piecewise linear, so extremes are often at
corners); the points with the worst violation ``max(lower - f, f - upper) > 0`` are proposed.

DirectionalSlope (``lower <= c . grad f <= upper``). The gradient of a ReLU network is constant
on each linear piece, so points sampled in the boxes (centres, uniform points, candidate points of
the bounding function) are each a piece's representative; those whose slope along ``c`` violates
a bound are proposed as single-point witnesses (the spec re-checks that the point lies inside
its piece).

All network evaluations are batched JAX calls in float64 with fixed chunk shapes.
"""

from __future__ import annotations

import numpy as np

from verifiers.bounds.interval import BatchForward, DeviceNet, device_net
from verifiers.directional import DirectionalSlope
from verifiers.network import ReluNetwork
from verifiers.specs import Monotonicity, OutputBound, Spec
from verifiers.verdict import Counterexample


def _pick_boxes(lower: np.ndarray, upper: np.ndarray, n: int, rng: np.random.Generator):
    """``n`` boxes: every given box once (in order) while they last, then random repeats."""
    m = len(lower)
    if m >= n:
        idx = np.arange(n)
    else:
        idx = np.concatenate([np.arange(m), rng.integers(0, m, n - m)])
    return idx, lower[idx], upper[idx]


def _uniform(lo: np.ndarray, hi: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.clip(lo + rng.random(lo.shape) * (hi - lo), lo, hi)


def _worst_pairs(t: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each row of sorted ``t`` with values ``v``: indices ``(s, u)``, ``s <= u``, maximising
    ``v[s] - v[u]``, and that drop."""
    run = np.maximum.accumulate(v, axis=1)
    drop = run - v
    u = np.argmax(drop, axis=1)
    rows = np.arange(len(v))
    cols = np.arange(v.shape[1])[None, :]
    s = np.argmax(np.where(cols <= u[:, None], v, -np.inf), axis=1)
    return s, u, drop[rows, u]


class MonotonicityFalsifier:
    """Grid search along the feature axis through sampled points (see the module docstring)."""

    def __init__(
        self,
        net: ReluNetwork | DeviceNet,
        spec: Monotonicity,
        n_samples: int = 1024,
        n_grid: int = 32,
        max_witnesses: int = 8,
        chunk: int = 8192,
        refine: int = 16,
    ):
        self.f = BatchForward(net if isinstance(net, DeviceNet) else device_net(net), chunk=chunk)
        self.spec = spec
        self.n_samples = int(n_samples)
        self.n_grid = max(int(n_grid), 4)
        self.max_witnesses = int(max_witnesses)
        self.refine = max(int(refine), 2)
        self.i = int(spec.feature)
        self.sign = spec.sign
        self.r_lo = float(spec.region.lower[self.i])
        self.r_hi = float(spec.region.upper[self.i])

    def _eval_lines(self, pts: np.ndarray, t: np.ndarray) -> np.ndarray:
        """``sign * f`` at ``pts[s]`` with feature ``i`` replaced by ``t[s, g]``; shape of ``t``."""
        S, G = t.shape
        x = np.repeat(pts[:, None, :], G, axis=1)
        x[:, :, self.i] = t
        return self.sign * self.f(x.reshape(S * G, -1))[:, 0].reshape(S, G)

    def __call__(self, lower, upper, rng: np.random.Generator, candidates=None) -> list[Counterexample]:
        lower, upper = _boxes(lower, upper)
        if not len(lower) or self.r_hi <= self.r_lo:
            return []
        n_pts = min(self.n_samples, max(4 * len(lower), 256))
        idx, lo, hi = _pick_boxes(lower, upper, n_pts, rng)
        pts = _uniform(lo, hi, rng)
        if candidates is not None:
            c = np.asarray(candidates, dtype=np.float64)[idx]
            k = min(len(c), n_pts // 2)
            pts[:k] = np.clip(c[:k], lo[:k], hi[:k])
        i = self.i
        # n_grid / 2 + 1 points each: with n_grid a power of two the grids hit the dyadic
        # points where bisection puts box edges.
        g_region = self.n_grid // 2 + 1
        g_box = self.n_grid - self.n_grid // 2 + 1
        t_region = np.broadcast_to(np.linspace(self.r_lo, self.r_hi, g_region), (n_pts, g_region))
        t_box = lo[:, i : i + 1] + np.linspace(0.0, 1.0, g_box)[None, :] * (hi[:, i : i + 1] - lo[:, i : i + 1])
        t = np.sort(np.concatenate([t_region, t_box, pts[:, i : i + 1]], axis=1), axis=1)
        v = self._eval_lines(pts, t)
        s, u, drop = _worst_pairs(t, v)

        # Refine the most promising lines around both ends of their worst pair.
        k = min(len(drop), max(4 * self.max_witnesses, 16))
        top = np.argsort(-drop, kind="stable")[:k]
        top = top[drop[top] > 0]
        if len(top):
            tt, st, ut = t[top], s[top], u[top]
            rows = np.arange(len(top))

            def around(j):
                # Between the distinct grid neighbours of t[j] (the grids may share points).
                tj = tt[rows, j][:, None]
                a = np.max(np.where(tt < tj, tt, -np.inf), axis=1)
                b = np.min(np.where(tt > tj, tt, np.inf), axis=1)
                a = np.where(np.isfinite(a), a, tj[:, 0])
                b = np.where(np.isfinite(b), b, tj[:, 0])
                return a[:, None] + np.linspace(0.0, 1.0, self.refine)[None, :] * (b - a)[:, None]

            t2 = np.sort(np.concatenate([tt, around(st), around(ut)], axis=1), axis=1)
            v2 = self._eval_lines(pts[top], t2)
            s2, u2, drop2 = _worst_pairs(t2, v2)
            t, s, u, drop, pts = t2, s2, u2, drop2, pts[top]

        ok = np.flatnonzero((drop > self.spec.tolerance) & (t[np.arange(len(t)), u] > t[np.arange(len(t)), s]))
        ok = ok[np.argsort(-drop[ok], kind="stable")][: self.max_witnesses]
        out = []
        for r in ok:
            x = pts[r].copy()
            xp = pts[r].copy()
            x[i] = t[r, s[r]]
            xp[i] = t[r, u[r]]
            out.append(Counterexample.make(x, xp))
        return out


def _worst_outside(points: np.ndarray, y: np.ndarray, lower: float | None, upper: float | None,
                   k: int) -> list[Counterexample]:  # fmt: skip
    """The ``k`` points whose value ``y`` lies furthest outside ``[lower, upper]`` (a missing side
    never binds), furthest first."""
    v = np.full(y.shape, -np.inf)
    if lower is not None:
        v = np.maximum(v, lower - y)
    if upper is not None:
        v = np.maximum(v, y - upper)
    ok = np.flatnonzero(v > 0)
    return [Counterexample.make(points[r]) for r in ok[np.argsort(-v[ok], kind="stable")][:k]]


def _boxes(lower, upper) -> tuple[np.ndarray, np.ndarray]:
    return np.atleast_2d(np.asarray(lower, dtype=np.float64)), np.atleast_2d(np.asarray(upper, dtype=np.float64))


def _sample_points(lower, upper, rng: np.random.Generator, n_samples: int, candidates=None, inward: float = 0.0):
    """Points in the boxes: every box's centre first, then uniform draws, the last half replaced by
    the bounding function's ``candidates`` (moved ``inward`` towards the box centre)."""
    n_pts = min(n_samples, max(4 * len(lower), 256))
    idx, lo, hi = _pick_boxes(lower, upper, n_pts, rng)
    pts = _uniform(lo, hi, rng)
    m = min(len(lower), n_pts)
    pts[:m] = (lo[:m] + hi[:m]) / 2.0
    if candidates is not None:
        c = np.asarray(candidates, dtype=np.float64)[idx]
        k = min(len(c), n_pts // 2)
        pts[n_pts - k :] = (1 - inward) * np.clip(c[:k], lo[:k], hi[:k]) + inward * (lo[:k] + hi[:k]) / 2
    return pts, lo, hi


class OutputBoundFalsifier:
    """Sampling plus gradient-sign corner jumps for ``lower <= f <= upper``."""

    def __init__(
        self,
        net: ReluNetwork,
        spec: OutputBound,
        n_samples: int = 1024,
        max_witnesses: int = 8,
        chunk: int = 8192,
    ):
        self.net = net
        self.f = BatchForward(device_net(net), chunk=chunk)
        self.spec = spec
        self.n_samples = int(n_samples)
        self.max_witnesses = int(max_witnesses)

    def __call__(self, lower, upper, rng: np.random.Generator, candidates=None) -> list[Counterexample]:
        lower, upper = _boxes(lower, upper)
        if not len(lower):
            return []
        pts, lo, hi = _sample_points(lower, upper, rng, self.n_samples, candidates)
        # Corner jumps along the sign of the local gradient, towards lower and higher outputs.
        grad = np.stack([self.net.gradient(pts, j) for j in range(pts.shape[1])], axis=1)
        down = np.where(grad > 0, lo, hi)
        up = np.where(grad > 0, hi, lo)
        allp = np.concatenate([pts, down, up])
        return _worst_outside(allp, self.f(allp)[:, 0], self.spec.lower, self.spec.upper, self.max_witnesses)


class SlopeFalsifier:
    """Sampled points whose slope along the spec's direction violates a bound (module docstring)."""

    def __init__(self, net: ReluNetwork, spec: DirectionalSlope, n_samples: int = 1024, max_witnesses: int = 8):
        self.net = spec.scalar(net)
        self.spec = spec
        self.n_samples = int(n_samples)
        self.max_witnesses = int(max_witnesses)

    def __call__(self, lower, upper, rng: np.random.Generator, candidates=None) -> list[Counterexample]:
        lower, upper = _boxes(lower, upper)
        if not len(lower):
            return []
        # a candidate corner may sit on a piece's edge: step a little into its box
        pts, _, _ = _sample_points(lower, upper, rng, self.n_samples, candidates, inward=0.01)
        slope = np.asarray(self.net.gradient(pts, self.spec.direction), dtype=np.float64)
        return _worst_outside(pts, slope, self.spec.lower, self.spec.upper, self.max_witnesses)


def make_falsifier(
    net: ReluNetwork,
    spec: Spec,
    *,
    n_samples: int = 1024,
    n_grid: int = 32,
    max_witnesses: int = 8,
):
    """A ``falsify_fn`` for :func:`verifiers.search.splitting.split_and_bound` for ``spec``'s kind."""
    if isinstance(spec, Monotonicity):
        return MonotonicityFalsifier(net, spec, n_samples=n_samples, n_grid=n_grid, max_witnesses=max_witnesses)
    if isinstance(spec, OutputBound):
        return OutputBoundFalsifier(net, spec, n_samples=n_samples, max_witnesses=max_witnesses)
    if isinstance(spec, DirectionalSlope):
        return SlopeFalsifier(net, spec, n_samples=n_samples, max_witnesses=max_witnesses)
    raise ValueError(f"no counterexample search for spec kind {spec.kind!r}")


__all__ = ["MonotonicityFalsifier", "OutputBoundFalsifier", "SlopeFalsifier", "make_falsifier"]
