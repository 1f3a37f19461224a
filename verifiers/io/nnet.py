"""The NNet format (ACAS Xu, Reluplex/Marabou, the Ouroboros artifact): read and write.

File layout (text, comma separated, lines starting with ``//`` are comments)::

    numLayers, inputSize, outputSize, maxLayerSize,
    layerSize_0, layerSize_1, ..., layerSize_numLayers,
    0,                                  (obsolete "symmetric" flag)
    min_0, ..., min_{n-1},              (input minimums)
    max_0, ..., max_{n-1},              (input maximums)
    mean_0, ..., mean_{n-1}, mean_out,  (input means, then one output mean)
    range_0, ..., range_{n-1}, range_out,
    then for each layer: one line per output neuron with its incoming weights, then one line per
    output neuron with its bias.

A file's network evaluates ``y = range_out * N((clip(x, min, max) - mean) / range) + mean_out``
with ``N`` the ReLU MLP of the weights. :func:`read_nnet` folds the normalisation into the first
and last layers, so that :class:`~verifiers.network.ReluNetwork` evaluates exactly as the file
specifies for inputs inside ``[min, max]``; the clipping itself is not a layer and is returned as
the input domain instead (``NNetFile.domain``). A zero range means "no scaling" (some published
files, the Ouroboros artifact's among them, write zeros for every normalisation value), and a
minimum that is not below its maximum means "no domain" for that input.

:func:`write_nnet` writes the network unnormalised (means 0, ranges 1) with ``%.17g`` numbers, so a
write/read round trip is exact.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np

from verifiers.network import ReluNetwork
from verifiers.specs import Box

_BIG = 1e300  # written when no input domain is given: effectively "no clipping"


@dataclass(frozen=True, eq=False)
class NNetFile:
    """What an NNet file holds: the folded network and the raw normalisation values."""

    network: ReluNetwork
    input_min: np.ndarray  # (n,) as written
    input_max: np.ndarray  # (n,)
    means: np.ndarray  # (n + 1,) as written (last: output)
    ranges: np.ndarray  # (n + 1,) as written (last: output)

    @property
    def domain(self) -> Box | None:
        """The input box ``[min, max]`` when the file gives one (``min < max`` in every input)."""
        lo, hi = self.input_min, self.input_max
        if lo.size and np.all(lo < hi) and np.all(np.abs(lo) < _BIG) and np.all(np.abs(hi) < _BIG):
            return Box(lo, hi)
        return None


def _numbers(line: str) -> list[float]:
    return [float(tok) for tok in line.replace(";", ",").split(",") if tok.strip()]


def read_nnet(path: str | PathLike) -> NNetFile:
    """Parse an NNet file (see the module docstring); raise ``ValueError`` on a malformed file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not an NNet file (not UTF-8 text: byte {e.start})") from None
    lines = [ln.strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("//")]
    if len(lines) < 7:
        raise ValueError(f"{path}: not an NNet file (only {len(lines)} non-comment lines)")
    try:
        head = [round(v) for v in _numbers(lines[0])]
        n_layers, n_in, n_out = head[0], head[1], head[2]
        sizes = [round(v) for v in _numbers(lines[1])]
        mins = np.array(_numbers(lines[3]))
        maxes = np.array(_numbers(lines[4]))
        means = np.array(_numbers(lines[5]))
        ranges = np.array(_numbers(lines[6]))
        body = np.array([v for ln in lines[7:] for v in _numbers(ln)])
    except (ValueError, IndexError) as e:
        raise ValueError(f"{path}: malformed NNet header: {e}") from e
    if len(sizes) < n_layers + 1 or sizes[0] != n_in or sizes[n_layers] != n_out:
        raise ValueError(f"{path}: layer sizes {sizes} do not match {n_layers} layers, {n_in} inputs, {n_out} outputs")
    sizes = sizes[: n_layers + 1]
    if mins.size < n_in or maxes.size < n_in or means.size < n_in + 1 or ranges.size < n_in + 1:
        raise ValueError(f"{path}: normalisation lines are shorter than the {n_in} inputs (+1 output)")
    mins, maxes, means, ranges = mins[:n_in], maxes[:n_in], means[: n_in + 1], ranges[: n_in + 1]
    expected = sum(a * b + b for a, b in itertools.pairwise(sizes))
    if body.size != expected:
        raise ValueError(f"{path}: expected {expected} weight and bias values, found {body.size}")
    weights, biases = [], []
    pos = 0
    for a, b in itertools.pairwise(sizes):
        w = body[pos : pos + a * b].reshape(b, a)  # one row per output neuron
        pos += a * b
        weights.append(w.T.copy())  # Flax order (in, out)
        biases.append(body[pos : pos + b].copy())
        pos += b

    in_mean, out_mean = means[:n_in], float(means[n_in])
    in_range = np.where(ranges[:n_in] == 0, 1.0, ranges[:n_in])
    out_range = float(ranges[n_in]) if ranges[n_in] != 0 else 1.0
    # (x - m) / r -> first layer: W' = W / r (per input row), b' = b - (m / r) @ W
    biases[0] = biases[0] - (in_mean / in_range) @ weights[0]
    weights[0] = weights[0] / in_range[:, None]
    # y * R + M -> last layer
    weights[-1] = weights[-1] * out_range
    biases[-1] = biases[-1] * out_range + out_mean
    try:
        network = ReluNetwork(weights, biases)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    return NNetFile(network=network, input_min=mins, input_max=maxes, means=means, ranges=ranges)


def _fmt(v: float) -> str:
    return format(float(v), ".17g")


def write_nnet(net: ReluNetwork, path: str | PathLike, domain: Box | None = None, comment: str = "") -> Path:
    """Write ``net`` (unnormalised: means 0, ranges 1) to ``path``; ``domain`` fills min/max."""
    path = Path(path)
    n = net.n_inputs
    if domain is not None and domain.dim != n:
        raise ValueError(f"write_nnet: domain has {domain.dim} dimensions, network has {n} inputs")
    lo = np.full(n, -_BIG) if domain is None else domain.lower
    hi = np.full(n, _BIG) if domain is None else domain.upper
    sizes = net.layer_sizes
    out = ["// Neural Network File Format (written by verifiers.io.nnet)"]
    out += [f"// {c}" for c in comment.splitlines() if c.strip()]
    out.append(f"{len(net.weights)},{n},{net.n_outputs},{max(sizes)},")
    out.append(",".join(str(s) for s in sizes) + ",")
    out.append("0,")
    out.append(",".join(_fmt(v) for v in lo) + ",")
    out.append(",".join(_fmt(v) for v in hi) + ",")
    out.append(",".join("0.0" for _ in range(n + 1)) + ",")
    out.append(",".join("1.0" for _ in range(n + 1)) + ",")
    for w, b in zip(net.weights, net.biases):
        for row in w.T:
            out.append(",".join(_fmt(v) for v in row) + ",")
        out.extend(_fmt(v) + "," for v in b)
    path.write_text("\n".join(out) + "\n")
    return path
