"""Interchange formats: NNet (read/write), ONNX (write, run), VNN-LIB 1.0 (monotonicity instances).

* :func:`read_nnet` / :func:`write_nnet` -- the ACAS Xu / Marabou / Ouroboros text format;
  normalisation is folded into the first and last layers (see :mod:`verifiers.io.nnet`).
* :func:`write_onnx` / :func:`run_onnx` -- a plain MatMul/Add/Relu graph, checked by onnxruntime.
* :func:`export_vnnlib` -- a monotonicity spec as the two-copy ONNX network (inputs ``x`` and
  ``d``, output ``f(x + d e_i) - f(x)``) plus its ``.vnnlib`` property, the form VNN-COMP uses,
  so that alpha-beta-CROWN, Marabou and others can check the same instances.

``onnx`` / ``onnxruntime`` are imported only when an ONNX function runs.
"""

from verifiers.io.nnet import NNetFile, read_nnet, write_nnet
from verifiers.io.onnx import run_onnx, write_onnx
from verifiers.io.vnnlib import export_vnnlib, two_copy_onnx, vnnlib_text

__all__ = [
    "NNetFile",
    "export_vnnlib",
    "read_nnet",
    "run_onnx",
    "two_copy_onnx",
    "vnnlib_text",
    "write_nnet",
    "write_onnx",
]
