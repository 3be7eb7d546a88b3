"""The CUDA backend: `rt.compile(graph, device="cuda")`. Importing this package imports
nothing GPU-related.

session.py      CudaSession: weights uploaded once, one arena and one captured CUDA graph
                per batch size, replayed; a lock per batch size; numpy or device arrays
lowering.py     Graph -> device tensors and steps (pure Python; tested on the CPU)
device.py       GpuDevice (CuPy memory, cuBLAS, stream capture) / SimDevice (the Numba
                simulator: host memory, numpy GEMMs; how CI runs the session)

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
