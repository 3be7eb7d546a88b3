"""Deprecated path (until 0.2): the ONNX exporter is `rt.to_onnx` (pyruntime/onnx/export.py).
Kept because earlier READMEs documented `pyruntime.onnx_export.to_onnx(g)`."""

from __future__ import annotations

import warnings

from .onnx.export import to_onnx

__all__ = ["to_onnx"]

warnings.warn("pyruntime.onnx_export is deprecated: use rt.to_onnx (pyruntime.onnx.export)",
              DeprecationWarning, stacklevel=2)
