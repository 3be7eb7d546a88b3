"""The device a CUDA Session runs on: memory, copies, cuBLAS and the stream, behind one
small interface with two implementations.

- `GpuDevice`: CuPy memory and cuBLAS (`blas.py`), the Numba kernels launched on the
  CuPy stream (`cuda.external_stream`), CUDA graph capture through CuPy's stream capture.
- `SimDevice`: under Numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1, how CI runs the
  kernels without a GPU): memory is host numpy, the Numba kernels run in the simulator,
  and the GEMMs are numpy's in the precision cuBLAS is asked for (fp16 operands widened,
  fp32 accumulation; int8 with int32). It runs the same lowering, arena and steps as the
  GPU, so CI checks everything but cuBLAS and capture, which tools/gpu_check.sh checks
  on a GPU.

Every tensor is held in two forms over the same bytes: `xp` (a CuPy or numpy array, for
cuBLAS and copies) and `nb` (a Numba device array, for the kernels); both are made once
when a batch size's arena is built, never while a run (or a capture) is in progress.
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import Any, Callable

import numpy as np

from ..errors import DeviceError, InputError, MissingDependencyError

__all__ = ["open_device", "GpuDevice", "SimDevice", "View"]


class View:
    """One tensor: `xp` for library calls and copies, `nb` for the Numba kernels."""
    __slots__ = ("xp", "nb")

    def __init__(self, xp: Any, nb: Any) -> None:
        self.xp, self.nb = xp, nb


class SimDevice:
    """Host memory and numpy GEMMs under the Numba CUDA simulator (module doc)."""
    name = "simulator"
    captures = False
    #: Launch sizes: the simulator runs every thread in Python, so few small blocks (the
    #: kernels' grid-stride loops compute the same result with any grid).
    launch = {"threads": 32, "blocks": 2}
    #: The simulator runs one kernel at a time per process: runs from several threads
    #: (different batch sizes hold different entry locks) take this one as well.
    exclusive = threading.Lock()

    def __init__(self) -> None:
        from .numba_compat import cuda
        from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray
        self._fake = FakeCUDAArray
        self.cuda = cuda
        self.stream = 0
        self.xp = np

    def bind_thread(self) -> None:
        pass

    def alloc(self, nbytes: int) -> Any:
        return np.zeros(max(int(nbytes), 1), np.uint8)

    def view(self, buf: Any, offset: int, shape: tuple, dtype: Any) -> View:
        dt = np.dtype(dtype)
        n = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        a = buf[offset:offset + n].view(dt).reshape(shape)
        return View(a, self._fake(a))

    def upload(self, a: np.ndarray) -> View:
        a = np.ascontiguousarray(a).copy()
        return View(a, self._fake(a))

    def to_host(self, v: View) -> np.ndarray:
        return np.array(v.xp, copy=True)

    def from_host(self, dst: View, src: np.ndarray) -> None:
        np.copyto(dst.xp, src)

    def copy(self, dst: Any, src: Any) -> None:
        """dst[...] = src (xp arrays; casts and strided sources allowed)."""
        np.copyto(dst, src, casting="unsafe")

    def add(self, a: Any, b: Any, out: Any) -> None:
        np.add(a, b, out=out)

    def gemm(self, a: Any, b: Any, c: Any, tf32: bool = False) -> None:
        np.matmul(a.astype(np.float32, copy=False), b.astype(np.float32, copy=False), out=c)

    def gemm_int8(self, a: Any, bt: Any, c: Any) -> None:
        np.matmul(a.astype(np.int32), bt.T.astype(np.int32), out=c)

    def synchronize(self) -> None:
        pass

    def capture(self, fn: Callable[[], None]) -> Any:
        raise DeviceError("the CUDA simulator cannot capture CUDA graphs")

    def info(self) -> dict[str, Any]:
        return {"device": "Numba CUDA simulator (NUMBA_ENABLE_CUDASIM=1)"}


class GpuDevice:
    """CuPy memory and cuBLAS on one GPU, the Numba kernels on the same stream."""
    name = "cuda"
    captures = True
    launch: dict = {}  # the launchers' own grid sizes
    exclusive = contextlib.nullcontext()  # entries of different batch sizes run at once

    def __init__(self, device_id: int) -> None:
        import cupy as cp

        from . import blas
        from .numba_compat import cuda
        self.cp, self.blas, self.cuda, self.xp = cp, blas, cuda, cp
        self.device_id = device_id
        self._dev = cp.cuda.Device(device_id)
        with self._dev:
            # a non-blocking stream of our own: work on it may be captured (the legacy
            # default stream cannot be), and it does not wait on other libraries' work
            self.cp_stream = cp.cuda.Stream(non_blocking=True)
            cuda.select_device(device_id)
            self.stream = cuda.external_stream(self.cp_stream.ptr)
            props = cp.cuda.runtime.getDeviceProperties(device_id)
        name = props["name"]
        self._name = name.decode() if isinstance(name, bytes) else str(name)
        self._cc = (int(props["major"]), int(props["minor"]))

    def __enter__(self) -> "GpuDevice":
        self._dev.__enter__()
        self.cp_stream.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.cp_stream.__exit__(*exc)
        self._dev.__exit__(*exc)

    def bind_thread(self) -> None:
        """Make this GPU Numba's current device in the calling thread (Numba keeps a
        context per thread; a worker thread would otherwise launch on device 0)."""
        self.cuda.select_device(self.device_id)

    def alloc(self, nbytes: int) -> Any:
        with self._dev:
            return self.cp.zeros(max(int(nbytes), 1), self.cp.uint8)

    def view(self, buf: Any, offset: int, shape: tuple, dtype: Any) -> View:
        dt = np.dtype(dtype)
        n = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        a = buf[offset:offset + n].view(dt).reshape(shape)
        return View(a, self.cuda.as_cuda_array(a, sync=False))

    def upload(self, a: np.ndarray) -> View:
        with self._dev:
            x = self.cp.asarray(np.ascontiguousarray(a))
        return View(x, self.cuda.as_cuda_array(x, sync=False))

    def to_host(self, v: View) -> np.ndarray:
        return v.xp.get(stream=self.cp_stream)

    def from_host(self, dst: View, src: np.ndarray) -> None:
        dst.xp.set(np.ascontiguousarray(src), stream=self.cp_stream)

    def copy(self, dst: Any, src: Any) -> None:
        self.cp.copyto(dst, src, casting="unsafe")

    def add(self, a: Any, b: Any, out: Any) -> None:
        self.cp.add(a, b, out=out)

    def gemm(self, a: Any, b: Any, c: Any, tf32: bool = False) -> None:
        self.blas.gemm(a, b, out=c, tf32=tf32)

    def gemm_int8(self, a: Any, bt: Any, c: Any) -> None:
        self.blas.gemm_int8(a, bt, out=c)

    def synchronize(self) -> None:
        self.cp_stream.synchronize()

    def capture(self, fn: Callable[[], None]) -> Any:
        """A CUDA graph of the work `fn` launches on this stream (relaunch: `graph.launch`)."""
        s = self.cp_stream
        s.begin_capture()
        try:
            fn()
        finally:
            graph = s.end_capture()
        return graph

    def replay(self, graph: Any) -> None:
        graph.launch(self.cp_stream)

    def info(self) -> dict[str, Any]:
        return {"device": f"cuda:{self.device_id} {self._name}",
                "compute_capability": f"{self._cc[0]}.{self._cc[1]}"}


def open_device(device_id: int = 0) -> Any:
    """The device for `rt.compile(..., device="cuda")`: the simulator when
    NUMBA_ENABLE_CUDASIM=1, else GPU `device_id`. Typed errors say what is missing:
    MissingDependencyError (CuPy, numba-cuda), DeviceError (no driver, no GPU, an id
    out of range)."""
    if isinstance(device_id, bool) or not isinstance(device_id, (int, np.integer)) \
            or device_id < 0:
        raise InputError(f"device_id: expected an integer >= 0, got {device_id!r}")
    device_id = int(device_id)
    if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"):
        from .numba_compat import simulator
        if simulator():
            if device_id != 0:
                raise DeviceError(f"device_id {device_id}: the CUDA simulator has device 0 only")
            return SimDevice()
    try:
        import cupy as cp
    except ImportError as e:
        raise MissingDependencyError(
            "device='cuda' needs CuPy for CUDA 12 or 13 (pip install 'pyruntime[cuda]', or "
            f"'pyruntime[cuda13]' for CUDA 13): {e}") from e
    try:
        from . import numba_compat
    except ImportError as e:
        raise MissingDependencyError(str(e)) from e
    if numba_compat.simulator():
        raise DeviceError("numba.cuda was imported as the CUDA simulator in this process "
                          "(NUMBA_ENABLE_CUDASIM=1 before it was imported); the GPU path "
                          "needs it unset")
    try:
        count = cp.cuda.runtime.getDeviceCount()
    except Exception as e:  # CUDARuntimeError: no driver, driver too old, no device
        raise DeviceError(f"device='cuda': no usable CUDA driver or GPU ({e}); "
                          "rt.info()['cuda'] shows what was found") from None
    if count == 0:
        raise DeviceError("device='cuda': the CUDA driver sees no GPU")
    if device_id >= count:
        raise DeviceError(f"device_id {device_id}: this machine has {count} CUDA device(s) "
                          f"(ids 0..{count - 1})")
    return GpuDevice(device_id)
