"""Numba CUDA kernels for what cuBLAS lacks, one module per kind, each with host launchers
that take and return device arrays (numba device arrays, or anything with
``__cuda_array_interface__``) and accept ``stream=`` (an external stream under CUDA graph
capture), ``threads=``/``blocks=`` (grid-stride loops: any grid computes the same result).
Importing this package imports numba.cuda (through ``..numba_compat``).

act.py       device functions: activations, the bias/residual/act epilogue, uint8 rounding
launch.py    device-array checks, output allocation, grid sizes, activation codes
epilogue.py  bias_act: the epilogue on an [M, N] matrix
dwconv.py    dwconv2d_nhwc: depthwise conv NHWC with the fused epilogue
im2col.py    im2col_nhwc: conv -> GEMM
pool.py      maxpool_nhwc, avgpool_nhwc, global_avgpool_nhwc
quant.py     quantize, quantize_rows, dequantize, requantize, signed (uint8 -> int8 for cuBLAS)
softmax.py   softmax over the last axis of [M, N]
spmv.py      spmv: batch-1 sparse x @ W, W CSR by output column
"""

from .dwconv import dw_weight_hwc, dwconv2d_nhwc
from .epilogue import bias_act
from .im2col import conv_weight_matrix, im2col_nhwc
from .pool import avgpool_nhwc, global_avgpool_nhwc, maxpool_nhwc
from .quant import colsum, dequantize, quantize, quantize_rows, requantize, signed
from .softmax import softmax
from .spmv import csr_by_column, spmv

__all__ = ["bias_act", "dwconv2d_nhwc", "dw_weight_hwc", "im2col_nhwc", "conv_weight_matrix",
           "maxpool_nhwc", "avgpool_nhwc", "global_avgpool_nhwc", "quantize", "quantize_rows",
           "dequantize", "requantize", "signed", "colsum", "softmax", "spmv", "csr_by_column"]
