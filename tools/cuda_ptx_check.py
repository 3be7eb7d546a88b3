"""Compile every Numba CUDA kernel of pyruntime/cuda/kernels for a real GPU (PTX for
compute capability 8.0) with the argument types its launcher passes, without a GPU, and
report any float64 arithmetic in the PTX (the kernels compute in float32; a stray Python
float or a float64 promotion halves a GPU's speed or worse).

How: with the simulator off, each kernel dispatcher is swapped for a recorder and the
launchers run on host arrays (`launch.as_device` / `launch.output` return numpy arrays),
so the recorded argument types are exactly the launch's; then `cuda.compile_ptx`
compiles each (needs NVVM/NVRTC, e.g. `pip install numba-cuda[cu12]`). Prints a JSON
report; exit 3 if a kernel holds float64 instructions, 2 if the compiler is missing
(1: the check itself failed).

    python tools/cuda_ptx_check.py
"""

from __future__ import annotations

import json
import os
import sys

os.environ["NUMBA_ENABLE_CUDASIM"] = "0"

import numpy as np  # noqa: E402

from pyruntime.cuda import numba_compat  # noqa: E402,F401  (numpy shim before numba.cuda)
from numba import cuda, typeof  # noqa: E402
from numba.cuda.dispatcher import CUDADispatcher  # noqa: E402

import importlib  # noqa: E402

# the submodules (the package exports a function named spmv, so not `from ... import`)
dwconv, epilogue, im2col, launch, pool, quant, softmax, spmv = (
    importlib.import_module(f"pyruntime.cuda.kernels.{m}")
    for m in ("dwconv", "epilogue", "im2col", "launch", "pool", "quant", "softmax", "spmv"))

RECORDS: list[tuple[str, object, tuple]] = []


class Recorder:
    def __init__(self, name: str, disp: CUDADispatcher) -> None:
        self.name, self.disp = name, disp

    def __getitem__(self, config):
        return lambda *args: RECORDS.append((self.name, self.disp, args))


def host(x, name, dtype, shape=None, ndim=None):
    return np.ascontiguousarray(np.asarray(x, dtype=dtype))


def host_out(out, name, dtype, shape, stream):
    return np.zeros(shape, dtype) if out is None else np.asarray(out, dtype)


class _Device:
    """What numba asks of the current device while compiling a device function."""
    compute_capability = (8, 0)


def install() -> None:
    # device functions compile for the current device's capability: there is none here
    import numba.cuda.dispatcher as nd
    nd.get_current_device = lambda: _Device()
    launch.as_device = host
    launch.output = host_out
    for mod in (dwconv, epilogue, im2col, pool, quant, softmax, spmv):
        for k, v in list(vars(mod).items()):
            if isinstance(v, CUDADispatcher) and not v.targetoptions.get("device", False):
                setattr(mod, k, Recorder(f"{mod.__name__.rsplit('.', 1)[1]}.{k}", v))
    for mod, fac in ((quant, "_quantize_rows_kernel"), (spmv, "_spmv_kernel")):
        f = getattr(mod, fac)
        setattr(mod, fac, lambda n, f=f, fac=fac, mod=mod:
                Recorder(f"{mod.__name__.rsplit('.', 1)[1]}.{fac}", f(n)))


def launch_all() -> None:
    rng = np.random.default_rng(0)
    f = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    x2, b = f(3, 5), f(5)
    for act in launch.ACTS:
        epilogue.bias_act(x2, b, act=act, lo=-1.0, hi=1.0, residual=f(3, 5))
    epilogue.bias_act(x2)
    x4 = f(2, 6, 5, 3)
    dwconv.dwconv2d_nhwc(x4, f(3, 3, 3), (6, 5), pads=(1, 1), bias=f(3), act="relu",
                         residual=f(2, 6, 5, 3))
    dwconv.dwconv2d_nhwc(x4, f(3, 3, 3), (4, 3))
    im2col.im2col_nhwc(x4, (3, 3), (6, 5), pads=(1, 1))
    im2col.im2col_nhwc(rng.integers(-128, 128, (2, 6, 5, 3)).astype(np.int8), (3, 3), (6, 5),
                       pads=(1, 1), fill=-5)
    softmax.softmax(x2)
    pool.maxpool_nhwc(x4, (2, 2), (3, 2), strides=(2, 2))
    pool.avgpool_nhwc(x4, (3, 3), (6, 5), pads=(1, 1, 1, 1), count_include_pad=True)
    pool.global_avgpool_nhwc(x4)
    quant.quantize(x2, 0.05, 128)
    quant.quantize_rows(x2)
    q = rng.integers(0, 256, (3, 5)).astype(np.uint8)
    quant.dequantize(q, 0.05, 128)
    quant.signed(q)
    quant.signed(q, zero_point=np.full(3, 7, np.int32))
    quant.dequantize(q, np.full(3, 0.05, np.float32), np.full(3, 7, np.int32))
    acc = rng.integers(-1000, 1000, (3, 5)).astype(np.int32)
    w8 = rng.integers(-127, 128, (4, 5)).astype(np.int8)
    cs = quant.colsum(w8)
    for out_scale in (None, 0.1):
        quant.requantize(acc, 0.02, 3, np.full(5, 0.01, np.float32), cs, bias=b, act="relu",
                         residual=f(3, 5), out_scale=out_scale, out_zp=10)
        quant.requantize(acc, np.full(3, 0.02, np.float32), np.full(3, 3, np.int32),
                         np.full(5, 0.01, np.float32), cs, out_scale=out_scale)
    w = f(40, 6)
    w[np.abs(w) < 1.0] = 0.0
    ip, ix, v = spmv.csr_by_column(w)
    spmv.spmv(f(40), ip, ix, v, bias=f(6), act="gelu", residual=f(6))
    spmv.spmv(f(40), ip, ix.astype(np.int32), v)


F64 = (".f64", "cvt.rn.f32.f64", "cvt.f64.f32")


def main() -> int:
    install()
    launch_all()
    report, worst = {}, 0
    for name, disp, args in RECORDS:
        sig = tuple(typeof(a) for a in args)
        key = f"{name}{tuple(str(t) for t in sig)}"
        if key in report:
            continue
        try:
            ptx, _ = cuda.compile_ptx(disp.py_func, sig, cc=(8, 0))
        except Exception as e:  # no NVVM / NVRTC: the check cannot run here
            if "nvrtc" in str(e).lower() or "nvvm" in str(e).lower() or "libdevice" in str(e).lower():
                print(json.dumps({"error": f"no CUDA compiler: {type(e).__name__}: {e}"[:500]}))
                return 2
            raise
        f64 = [ln.strip() for ln in ptx.splitlines()
               if any(t in ln for t in F64) and not ln.strip().startswith("//")]
        report[key] = {"ptx_lines": ptx.count("\n"), "f64": f64[:5], "f64_count": len(f64)}
        worst = max(worst, len(f64))
    print(json.dumps({"kernels": report}, indent=1))
    return 3 if worst else 0


if __name__ == "__main__":
    sys.exit(main())
