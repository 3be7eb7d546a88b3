"""Every Numba CUDA kernel compiles for a real GPU (PTX, compute capability 8.0) with the
argument types its launcher passes, and holds no float64 arithmetic: the simulator runs
the kernels as Python and cannot tell (tools/cuda_ptx_check.py; no GPU needed, only the
NVVM/NVRTC libraries that numba-cuda[cu12] installs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("numba_cuda", reason="numba-cuda is not installed")

ROOT = Path(__file__).resolve().parent.parent


def test_kernels_compile_to_ptx_without_float64():
    # the same pyruntime this process imported (installed, or the tree on PYTHONPATH)
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="0")
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "cuda_ptx_check.py")], env=env,
                       capture_output=True, text=True, timeout=600)
    if r.returncode == 2:
        pytest.skip(json.loads(r.stdout)["error"])
    assert r.returncode in (0, 3), r.stderr[-3000:]
    kernels = json.loads(r.stdout)["kernels"]
    names = {k.split("(")[0] for k in kernels}
    assert {"epilogue._bias_act", "dwconv._dwconv", "im2col._im2col", "pool._pool",
            "pool._global_avg", "quant._quantize", "quant._quantize_rows_kernel",
            "quant._dequantize", "quant._requant_f32", "quant._requant_u8",
            "spmv._spmv_kernel"} <= names, names
    bad = {k: v["f64"] for k, v in kernels.items() if v["f64_count"]}
    assert not bad, bad
