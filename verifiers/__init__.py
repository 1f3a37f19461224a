"""Verifiers for properties of ReLU networks, independent of any training framework.

Public API (stable): ``ReluNetwork``, ``Box``, ``Monotonicity``, ``OutputBound``,
``DirectionalSlope``, ``get_verifier``, ``Status``, ``Verdict``, ``Counterexample``.
"""

from verifiers.base import Verifier, get_verifier, register_verifier
from verifiers.directional import DirectionalSlope
from verifiers.network import ReluNetwork
from verifiers.specs import Box, Monotonicity, OutputBound, Spec, register_spec, spec_from_dict
from verifiers.verdict import Counterexample, Status, Verdict

__all__ = [
    "Box",
    "Counterexample",
    "DirectionalSlope",
    "Monotonicity",
    "OutputBound",
    "ReluNetwork",
    "Spec",
    "Status",
    "Verdict",
    "Verifier",
    "get_verifier",
    "register_spec",
    "register_verifier",
    "spec_from_dict",
]
