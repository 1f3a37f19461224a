"""Interchange formats: NNet (read/write), ONNX (read/write/run), VNN-LIB 1.0 and 2.0 (read/write).

* :func:`read_nnet` / :func:`write_nnet` -- the ACAS Xu / Marabou / Ouroboros text format;
  normalisation is folded into the first and last layers (see :mod:`verifiers.io.nnet`).
* :func:`write_onnx` / :func:`run_onnx` -- a plain MatMul/Add/Relu graph, checked by onnxruntime.
* :func:`read_onnx` -- feed-forward ReLU networks as PyTorch, Keras and VNN-COMP export them
  (:mod:`verifiers.io.onnx_read`).
* :func:`export_vnnlib` -- a spec as a VNN-COMP instance: monotonicity as the two-copy network
  (1.0) or as two ``equal-to`` network declarations (2.0); output bounds as 1.0 properties;
  :func:`write_instances_csv` writes the benchmark's ``instances.csv``.
* :func:`read_vnnlib` / :func:`load_instance` -- a property (and its network) back onto the spec
  family (:mod:`verifiers.io.vnnlib_read`, :mod:`verifiers.io.instance`).

``onnx`` / ``onnxruntime`` are imported only when an ONNX function runs.
"""

from verifiers.io.instance import load_instance
from verifiers.io.nnet import NNetFile, read_nnet, write_nnet
from verifiers.io.onnx import run_onnx, write_onnx
from verifiers.io.onnx_read import OnnxReadError, read_onnx
from verifiers.io.vnnlib import (
    export_vnnlib,
    output_bound_text,
    two_copy_onnx,
    vnnlib2_text,
    vnnlib_text,
    write_instances_csv,
)
from verifiers.io.vnnlib_read import VnnlibError, VnnlibProperty, read_vnnlib

__all__ = [
    "NNetFile",
    "OnnxReadError",
    "VnnlibError",
    "VnnlibProperty",
    "export_vnnlib",
    "load_instance",
    "output_bound_text",
    "read_nnet",
    "read_onnx",
    "read_vnnlib",
    "run_onnx",
    "two_copy_onnx",
    "vnnlib2_text",
    "vnnlib_text",
    "write_instances_csv",
    "write_nnet",
    "write_onnx",
]
