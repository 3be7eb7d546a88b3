"""The CUDA backend (issue 13). Importing this package imports nothing GPU-related.

kernels/        Numba CUDA kernels for what cuBLAS lacks, each with a host launcher
                (depthwise conv, im2col, pooling, the bias/activation/residual epilogue,
                int8 quantize/dequantize/requantize, batch-1 sparse matrix-vector)
numba_compat.py the one place that imports numba.cuda (numpy shim, simulator switch)
"""
