"""ONNX in and out: `load_onnx` (importer), `to_onnx` (exporter) and the conformance
harness over onnx's own backend node tests (`python -m pyruntime.onnx.conformance`).
Needs the `onnx` extra; importing this package does not import onnx."""

from __future__ import annotations

from .export import to_onnx
from .importer import SUPPORTED_OPS, load_onnx

__all__ = ["load_onnx", "to_onnx", "SUPPORTED_OPS"]
