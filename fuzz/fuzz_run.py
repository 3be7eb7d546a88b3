"""atheris target: Session.run over random shapes, dtypes and strides.

    python fuzz/fuzz_run.py [corpus_dir] [-atheris_runs=N | -max_total_time=S]

Property: run returns what the same data as a C-contiguous float32 array gives (bit for
bit), or raises DTypeError / ShapeError / InputError (or MemoryError for a batch under
the cap that the machine cannot allocate); never anything else.
"""

from __future__ import annotations

import atheris
import numpy as np

with atheris.instrument_imports(include=["pyruntime"]):
    import common
    import pyruntime as rt

_SESSIONS: list = []
_DTYPES = [np.float32, np.float64, np.float16, np.int8, np.uint8, np.int32, np.int64,
           np.uint64, np.bool_, np.complex64, np.object_]


def sessions() -> list:
    if not _SESSIONS:
        _SESSIONS.extend(rt.compile(g, threads=t) for g, t in zip(common.seed_models(), (1, 2, 2)))
        # the sparse kernels: row (batch 1-2), tile and row-major paths over random batches
        _SESSIONS.extend(rt.compile(g, threads=t, sparse="sparse")
                         for g, t in zip(common.sparse_models(), (2, 1)))
        # the int8 and 16-bit kernels, static and dynamic quantization
        _SESSIONS.extend(rt.compile(g, threads=t)
                         for g, t in zip(common.quantized_models(), (2, 1, 2)))
    return _SESSIONS


def make_array(fdp: atheris.FuzzedDataProvider) -> np.ndarray:
    rank = fdp.ConsumeIntInRange(0, 5)
    shape = tuple(fdp.ConsumeIntInRange(0, 9) for _ in range(rank))
    dtype = np.dtype(fdp.PickValueInList(_DTYPES))
    n = int(np.prod(shape))
    vals = [fdp.ConsumeRegularFloat() for _ in range(min(n, 64))]
    base = np.resize(np.asarray(vals or [0.0]), shape) if n else np.zeros(shape)
    x = base.astype(dtype) if dtype.kind != "O" else base.astype(object)
    layout = fdp.ConsumeIntInRange(0, 4)
    if layout == 1:
        x = np.asfortranarray(x)
    elif layout == 2 and rank:
        x = x[::-1]
    elif layout == 3 and rank and shape[-1]:
        x = np.repeat(x, 2, axis=-1)[..., ::2]
    elif layout == 4 and rank:
        # Small batches, or ones past the 64 GiB cap (a typed error before any copy);
        # legal multi-GiB batches in between would only test this machine's RAM.
        big = fdp.ConsumeIntInRange(0, 64) if fdp.ConsumeBool() else \
            fdp.ConsumeIntInRange(1 << 34, 1 << 45)
        x = np.broadcast_to(x[:1] if shape[0] else x, (big,) + shape[1:] if shape[0] else shape)
    return x


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    sess = fdp.PickValueInList(sessions())
    try:
        x = make_array(fdp)
    except (ValueError, OverflowError, TypeError):
        return  # e.g. float -> int casts numpy refuses
    try:
        got = sess.run(x)
    except (rt.DTypeError, rt.ShapeError, rt.InputError):
        return
    except MemoryError:
        # Documented: a batch under the 64 GiB cap that this machine cannot allocate (the
        # input copy of a broadcast view, the arena) raises Python's MemoryError.
        return
    want = sess.run(np.ascontiguousarray(x, dtype=np.float32))
    if not np.array_equal(got, want, equal_nan=True):
        raise AssertionError(f"run over a {x.dtype} {x.shape} strides {x.strides} array "
                             f"differs from the contiguous float32 run")


if __name__ == "__main__":
    common.main(test_one_input, lambda: [b"\x00" * 64, bytes(range(256))])
