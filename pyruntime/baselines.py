"""The engines pyruntime is timed against: onnxruntime on the same model, configured the
same way everywhere (bench/, `pyruntime bench`, the demo, rt.compress's report)."""

from __future__ import annotations

from typing import Any

from .graph import Graph

__all__ = ["ort_session"]


def ort_session(model: Graph | bytes, threads: int) -> Any:
    """An onnxruntime InferenceSession on the CPU with `threads` intra-op threads, one
    inter-op thread, every graph optimization, sequential execution; `model` is ONNX
    bytes or a Graph (exported by rt.to_onnx: qc8 weights and QDQ nodes as int8 + QDQ,
    which onnxruntime runs on its int8 kernels; other formats as dense float32)."""
    import onnxruntime as ort

    if isinstance(model, Graph):
        from .onnx import to_onnx
        model = to_onnx(model).SerializeToString()
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
