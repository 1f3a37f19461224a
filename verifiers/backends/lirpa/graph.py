"""The torch graphs that auto_LiRPA bounds: the network, its gradient and its two-copy difference.

The Heaviside derivative indicator is a custom op with our own bound class (auto_LiRPA 0.3's is
unsound at a pre-activation bound of exactly 0; see :mod:`verifiers.backends.lirpa`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from verifiers.lirpa_compat import import_auto_lirpa
from verifiers.network import ReluNetwork

FORMULATIONS = ("gradient", "difference")
DTYPES: dict[str, torch.dtype] = {"float64": torch.float64, "float32": torch.float32}
F64_SLACK = 1e-9  # relative outward slack on float64 bounds (see the module docstring)


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype) -> Iterator[None]:
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


# --------------------------------------------------------------------------------------------
# Torch modules
# --------------------------------------------------------------------------------------------


class _Heaviside0(torch.autograd.Function):
    """``H(z)`` with ``H(0) = 0`` (the ReLU derivative convention of ``ReluNetwork.gradient``)."""

    @staticmethod
    def forward(ctx: Any, z: torch.Tensor) -> torch.Tensor:
        return torch.heaviside(z, torch.zeros((), dtype=z.dtype, device=z.device))

    @staticmethod
    def symbolic(g: Any, z: Any) -> Any:
        out = g.op("vpals::Heaviside0", z)
        out.setType(z.type())  # same shape and dtype as the input (silences shape-inference warnings)
        return out


_BOUND_HEAVISIDE: type | None = None


def _bound_heaviside_class() -> type:
    """auto_LiRPA bound class for ``vpals::Heaviside0`` (built after the shim imports auto_LiRPA)."""
    global _BOUND_HEAVISIDE
    if _BOUND_HEAVISIDE is not None:
        return _BOUND_HEAVISIDE
    import_auto_lirpa()
    from auto_LiRPA.operators.activation import BoundATenHeaviside

    class BoundHeaviside0(BoundATenHeaviside):
        """BoundATenHeaviside with one input, working IBP, and ``z >= 0`` not taken as ``H = 1``."""

        def init_opt_parameters(self, start_nodes):
            # alpha: (2, 1, batch, *neurons), shared across the specs of a start node; batch is dim 2
            # (auto_LiRPA's own class allocates (2, batch, ...) but declares the batch at dim 2).
            lower = self.inputs[0].lower
            for ns, _size_s, _ in start_nodes:
                self.alpha[ns] = torch.zeros(
                    (2, 1, *lower.shape), dtype=lower.dtype, device=lower.device
                ).requires_grad_(True)

        def forward(self, x: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
            self.input_shape = x.shape
            return torch.heaviside(x, torch.zeros((), dtype=x.dtype, device=x.device))

        def bound_backward(self, last_lA, last_uA, *x, start_node=None, start_shape=None):
            x = x[0]
            lb_r, ub_r = (x.lower, x.upper) if x is not None else (self.lower, self.upper)
            # Stably inactive (u <= 0, including z == 0): H = 0 exactly. Stably active only for l > 0.
            # Unstable: 0 <= H <= 1 (constant bounds), or alpha-CROWN's sloped lines through (l, 0)
            # and (u, 1) clamped by 1e-3 as in auto_LiRPA (both sound for H(0) = 0).
            inactive = ub_r <= 0
            active = (lb_r > 0) & ~inactive
            unstable = (~inactive & ~active).to(lb_r.dtype)
            lower_b = active.to(lb_r.dtype)  # constant part of the lower line
            upper_b = lower_b + unstable  # constant part of the upper line
            sloped = self.opt_stage in ["opt", "reuse"]
            if sloped:
                upper_d = self.alpha[start_node.name][0].clamp(0, 1) * (1.0 / (-lb_r).clamp(min=1e-3))
                lower_d = self.alpha[start_node.name][1].clamp(0, 1) * (1.0 / (ub_r.clamp(min=1e-3)))
                upper_d = upper_d * unstable  # (1, batch, *neurons): broadcasts over specs
                lower_d = lower_d * unstable

            def bias(A, pos_b, neg_b):
                # sum over neurons of A+ * pos_b + A- * neg_b, without materialising both halves
                A2 = A.flatten(2)
                return torch.einsum("sbn,bn->sb", A2, pos_b.flatten(1)) + torch.einsum(
                    "sbn,bn->sb", A2.clamp(max=0), (neg_b - pos_b).flatten(1)
                )

            uA = lA = None
            ubias = lbias = 0
            if last_uA is not None:
                ubias = bias(last_uA, upper_b, lower_b)
                if sloped:
                    uA = upper_d * last_uA.clamp(min=0) + lower_d * last_uA.clamp(max=0)
            if last_lA is not None:
                lbias = bias(last_lA, lower_b, upper_b)
                if sloped:
                    lA = upper_d * last_lA.clamp(max=0) + lower_d * last_lA.clamp(min=0)
            return [(lA, uA)], lbias, ubias

        def interval_propagate(self, *v):
            h_L, h_U = v[0][0], v[0][1]
            return self.forward(h_L), self.forward(h_U)

    _BOUND_HEAVISIDE = BoundHeaviside0
    return BoundHeaviside0


def _linear(w: np.ndarray, b: np.ndarray | None, dtype: torch.dtype) -> torch.nn.Linear:
    """A torch Linear computing ``x @ w + b`` (``w`` in Flax order ``(in, out)``)."""
    lin = torch.nn.Linear(w.shape[0], w.shape[1], bias=b is not None, dtype=dtype)
    with torch.no_grad():
        lin.weight.copy_(torch.as_tensor(np.array(w.T), dtype=dtype))
        if b is not None:
            lin.bias.copy_(torch.as_tensor(np.array(b), dtype=dtype))
    lin.requires_grad_(False)
    return lin


def to_torch(net: ReluNetwork, dtype: torch.dtype = torch.float64) -> torch.nn.Sequential:
    """The network as ``nn.Sequential(Linear, ReLU, ..., Linear)``."""
    layers: list[torch.nn.Module] = []
    for k, (w, b) in enumerate(zip(net.weights, net.biases)):
        layers.append(_linear(w, b, dtype))
        if k < len(net.weights) - 1:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


class GradientNetwork(torch.nn.Module):
    """``x -> sign * d f_output / d x_feature`` for a ReLU MLP with at least one hidden layer; with
    ``row`` (``c W_1``, a direction's first step) given, ``x -> sign * c . grad f_output`` instead."""

    def __init__(
        self,
        net: ReluNetwork,
        feature: int,
        sign: float = 1.0,
        output: int = 0,
        dtype: torch.dtype = torch.float64,
        row: np.ndarray | None = None,
    ):
        super().__init__()
        if len(net.weights) < 2:
            raise ValueError("GradientNetwork needs a hidden layer (a linear network has a constant gradient)")
        ws, bs = net.weights, net.biases
        self.forward_layers = torch.nn.ModuleList(_linear(w, b, dtype) for w, b in zip(ws[:-1], bs[:-1]))
        self.backward_layers = torch.nn.ModuleList(_linear(w, None, dtype) for w in ws[1:-1])
        first = np.array(ws[0][feature] if row is None else row)
        self.register_buffer("g0", torch.as_tensor(first, dtype=dtype).reshape(1, -1))
        self.out = _linear(sign * ws[-1][:, output : output + 1], None, dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, g = x, None
        last = len(self.forward_layers) - 1
        for k, layer in enumerate(self.forward_layers):
            z = layer(h)
            s = _Heaviside0.apply(z)
            g = s * self.g0 if k == 0 else s * self.backward_layers[k - 1](g)
            if k < last:
                h = torch.relu(z)
        return self.out(g)


class DifferenceNetwork(torch.nn.Module):
    """``[x, d] -> sign * (f(x + d e_feature) - f(x))`` on two weight-tied copies of ``f``."""

    def __init__(
        self, net: ReluNetwork, feature: int, sign: float = 1.0, output: int = 0, dtype: torch.dtype = torch.float64
    ):
        super().__init__()
        n = net.n_inputs
        select = np.vstack([np.eye(n), np.zeros((1, n))])  # [x, d] -> x
        shifted = select.copy()
        shifted[n, feature] = 1.0  # [x, d] -> x + d e_i
        self.take_x = _linear(select, None, dtype)
        self.take_x_shifted = _linear(shifted, None, dtype)
        ws, bs = net.weights, net.biases
        self.hidden = torch.nn.ModuleList(_linear(w, b, dtype) for w, b in zip(ws[:-1], bs[:-1]))
        self.out = _linear(sign * ws[-1][:, output : output + 1], None, dtype)

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.hidden:
            x = torch.relu(layer(x))
        return x

    def forward(self, xd: torch.Tensor) -> torch.Tensor:
        a = self._features(self.take_x(xd))
        b = self._features(self.take_x_shifted(xd))
        return self.out(b) - self.out(a)


# --------------------------------------------------------------------------------------------
# Bounding through auto_LiRPA
# --------------------------------------------------------------------------------------------
