"""The CUDA backend (issue 13). Importing this package imports nothing GPU-related.

kernels/        Numba CUDA kernels for what cuBLAS lacks, each with a host launcher
                (depthwise conv, im2col, pooling, the bias/activation/residual epilogue,
                int8 quantize/dequantize/requantize, batch-1 sparse matrix-vector)
numba_compat.py the one place that imports numba.cuda (numpy shim, simulator switch)
device_probe.py rt.info()["cuda"]: versions, driver, devices (libcuda through ctypes)
weights.py      the engine and device dtype per stored weight format
arena.py        device memory per batch size, planned by liveness
capture.py      the per-batch-size cache of captured CUDA graphs
blas.py         cuBLAS GEMMs through CuPy (fp32, fp16/bf16, int8 TN); imports CuPy
"""
