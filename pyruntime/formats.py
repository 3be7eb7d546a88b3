"""Weight formats: the one registry that knows, per storage format of an `rt.Weight`, how
to check its arrays, its logical shape, its storage size and its dense float32 view.

Everything else asks this module: graph validation (`shapes.validate` runs `check` on
every weight, so a malformed weight is a `WeightFormatError` naming it before any pass,
backend or kernel sees it), the file format (stores each weight's arrays, logical shape
and attributes; `rt.load` checks them), and every consumer that computes in float32
(`Weight.numpy()` is `dense_f32`). Adding a format = one `register(Format(...))` entry.

Formats (R x C is the sparse matrix defined below):

    format  arrays (dtype [shape])                          attrs         logical shape
    f32     data float32 [any]                              -             data.shape
    f16     data float16 [any]                              -             data.shape
    bf16    data uint16 [any]: bfloat16 bits (the top       -             data.shape
            16 bits of a float32)
    qc8     data int8 [any, rank >= 1] in [-127, 127],      axis          data.shape
            scale float32 [shape[axis]], finite and > 0
    csr     values float32 [nnz] | int8 [nnz] (+ scale),    axis          `shape` (given)
            indices int32 | uint16 [nnz] (column of each value),
            indptr int32 [R + 1]; int8 values need scale float32 [R]
    bsr     values float32 | int8 [nnzb, br, bc] (+ scale), axis, block   `shape` (given)
            indices int32 | uint16 [nnzb] (block column), (br, bc)
            indptr int32 [R / br + 1]; int8 values need scale float32 [R]

The output-channel axis (`attrs["axis"]`). Per-channel scales and sparse rows both run
along the output channels of the op that reads the weight: Gemm W is stored [K, N], so
its output axis is 1; Conv W is [O, I/group, KH, KW], axis 0 (`OUTPUT_AXIS`). The
constructors (`Weight.qc8`, `Weight.csr`, `Weight.bsr`) default to axis 1 for 2-D and 0
for 4-D (and 1-D) arrays; other ranks must say. A weight encoded along another axis is
still valid and has the same dense view; a backend without a kernel for it uses that.

The sparse matrix. csr and bsr store the 2-D matrix M = moveaxis(W, axis, 0) reshaped to
[R, C] with R = shape[axis] (one row per output channel) and C = the product of the other
dims in their order: a Conv weight [O, I, KH, KW] is M = W.reshape(O, I*KH*KW) (columns
in (i, kh, kw) order), a Gemm weight [K, N] is M = W.T, [N, K]. The logical shape stays
in `Weight.shape`. Rows are output channels because a sparse kernel keeps a tile of
outputs in registers and walks that row's nonzeros (XNNPACK's SpMM); a bsr block (br, bc)
is br output channels x bc inputs, stored row-major: (16, 1) is one 16-lane f32 vector of
outputs per broadcast input, (16, 4) with int8 values is exactly what one AVX512-VNNI
vpdpbusd reads (each 32-bit lane: 4 consecutive inputs of one output channel).

Rules the check enforces (each is a `WeightFormatError` saying what was expected and
what came, naming the weight):
- the array keys and attribute keys are exactly the format's; arrays are numpy arrays of
  the listed dtype (any byte order) and rank;
- `shape`, when given, is a tuple of non-negative ints and equals the shape the arrays
  imply; csr/bsr need it; the dense view has at most MAX_ELEMENTS elements;
- indptr: int32, length rows + 1 (bsr: block rows + 1), starts at 0, never decreases,
  ends at the number of values (blocks);
- indices: int32, or uint16 where the columns fit (the constructors pick uint16 when
  C (bsr: C / bc) <= 65536), in range, strictly increasing within a row (sorted, no
  duplicates);
- bsr: block (br, bc) two positive ints equal to values.shape[1:], dividing R and C:
  ragged edges are rejected (pad the weight);
- int8 values (qc8 data, int8 csr/bsr values) lie in [-127, 127]: symmetric, so negating
  a channel is exact; scales are float32, finite and > 0, one per output channel.
Values of float formats are not checked (NaN and Inf weights compute as IEEE says). Explicit
zeros inside a sparse pattern are allowed (a bsr block is stored whole).

Dense views: f16 and bf16 widen exactly; int8 formats give q * scale rounded to float32;
csr/bsr scatter their values into zeros. Storage size: the bytes of the arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from . import _core
from .errors import Error, WeightFormatError
from .graph import Weight

__all__ = ["Format", "FORMATS", "register", "check", "logical_shape", "storage_bytes",
           "dense_f32", "encode_like", "pattern", "trainable", "describe", "OUTPUT_AXIS",
           "default_axis", "matrix_dims", "MAX_ELEMENTS", "encode_f16", "encode_bf16",
           "encode_qc8", "encode_csr", "encode_bsr"]

#: The output-channel axis of each op's weight (see the module doc).
OUTPUT_AXIS = {"Gemm": 1, "Conv": 0}
#: Largest logical size (elements) of a weight: its dense float32 view must fit the CPU
#: runtime's 64 GiB memory cap. Bounds sparse weights whose arrays are small.
MAX_ELEMENTS = _core.MEMORY_CAP // 4

_F32, _F16, _U16, _I8, _I32 = (np.dtype(t) for t in (np.float32, np.float16, np.uint16,
                                                      np.int8, np.int32))
_INDEX_DTYPES = (_I32, _U16)
_VALUE_DTYPES = (_F32, _I8)


@dataclass(frozen=True)
class Format:
    """One registry entry. `check` runs after the common checks (keys, shape type) with
    `where` naming the weight; the other functions may assume a checked weight."""
    name: str
    summary: str
    arrays: tuple[str, ...]                       # required array keys
    check: Callable[[Weight, str], None]
    shape: Callable[[Weight], tuple]              # logical shape
    dense: Callable[[Weight], np.ndarray]         # dense float32 view, logical shape
    encode_like: Callable[[np.ndarray, Weight], Weight]   # dense -> same format/attrs
    optional: tuple[str, ...] = ()                # optional array keys
    attrs: tuple[str, ...] = ()                   # required attribute keys
    needs_shape: bool = False                     # the logical shape must be given
    pattern: Callable[[Weight], np.ndarray] | None = None  # stored entries (sparse)
    trainable: Callable[[Weight], bool] = field(default=lambda w: True)
    details: Callable[[Weight], str] = field(default=lambda w: "")


FORMATS: dict[str, Format] = {}


def register(fmt: Format) -> Format:
    """Add a format to the registry (a new format is this call and nothing else)."""
    if fmt.name in FORMATS:
        raise ValueError(f"weight format {fmt.name!r} is already registered")
    FORMATS[fmt.name] = fmt
    return fmt


# =========================================================================== public API

def _where(name: str | None, w: Any) -> str:
    fmt = getattr(w, "format", None)
    label = f"weight {name!r}" if name is not None else "weight"
    return f"{label} ({fmt})" if isinstance(fmt, str) and fmt in FORMATS else label


def check(w: Weight, name: str | None = None) -> None:
    """Raise WeightFormatError if `w` is not a well-formed weight of a known format."""
    where = _where(name, w)
    if not isinstance(w, Weight):
        raise WeightFormatError(f"{where}: expected an rt.Weight (e.g. Weight.f32(a)), got "
                                f"{type(w).__name__}")
    if not isinstance(w.format, str) or w.format not in FORMATS:
        raise WeightFormatError(f"{where}: unknown format {w.format!r}; expected one of "
                                f"{', '.join(FORMATS)}")
    f = FORMATS[w.format]
    if not isinstance(w.arrays, dict):
        raise WeightFormatError(f"{where}: arrays must be a dict {{key: numpy array}}, got "
                                f"{type(w.arrays).__name__}")
    keys = set(w.arrays)
    missing = [k for k in f.arrays if k not in keys]
    extra = sorted(map(str, keys - set(f.arrays) - set(f.optional)))
    if missing or extra:
        want = list(f.arrays) + [f"[{k}]" for k in f.optional]
        raise WeightFormatError(f"{where}: expected arrays {want}, got {sorted(map(str, keys))}"
                                + (f" (missing {missing})" if missing else "")
                                + (f" (unexpected {extra})" if extra else ""))
    for k, a in w.arrays.items():
        if not isinstance(a, np.ndarray):
            raise WeightFormatError(f"{where}: array {k!r} must be a numpy array, got "
                                    f"{type(a).__name__}")
    if not isinstance(w.attrs, dict):
        raise WeightFormatError(f"{where}: attrs must be a dict, got {type(w.attrs).__name__}")
    if set(w.attrs) != set(f.attrs):
        raise WeightFormatError(f"{where}: expected attributes {sorted(f.attrs)}, got "
                                f"{sorted(map(str, w.attrs))}")
    s = w._shape
    if s is not None and not (isinstance(s, tuple) and all(
            isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 0 for d in s)):
        raise WeightFormatError(f"{where}: shape must be a tuple of non-negative ints, got "
                                f"{s!r}")
    if f.needs_shape and s is None:
        raise WeightFormatError(f"{where}: the logical shape must be given (shape=...): "
                                f"{f.name} arrays do not imply it")
    f.check(w, where)
    n = math.prod(f.shape(w))
    if n > MAX_ELEMENTS:
        raise WeightFormatError(f"{where}: logical shape {f.shape(w)} has {n} elements; at "
                                f"most {MAX_ELEMENTS} (a 64 GiB dense float32 view)")


def logical_shape(w: Weight) -> tuple[int, ...]:
    """The shape of the tensor the weight stands for (its dense view's shape). Unknown
    formats fall back to the given shape or the shape of a `data` array."""
    f = FORMATS.get(w.format) if isinstance(w.format, str) else None
    if f is not None:
        try:
            return tuple(int(d) for d in f.shape(w))
        except (KeyError, AttributeError, TypeError, IndexError) as e:
            raise WeightFormatError(f"weight ({w.format}): no logical shape: {e!r}") from None
    if w._shape is not None:
        return tuple(w._shape)
    data = w.arrays.get("data") if isinstance(w.arrays, dict) else None
    if isinstance(data, np.ndarray):
        return tuple(data.shape)
    raise WeightFormatError(f"weight: unknown format {w.format!r} and no shape or data "
                            f"array to take one from")


def storage_bytes(w: Weight) -> int:
    """Bytes the weight's arrays hold (what a file stores and memory keeps)."""
    arrays = w.arrays.values() if isinstance(w.arrays, dict) else ()
    return int(sum(a.nbytes for a in arrays if isinstance(a, np.ndarray)))


def dense_f32(w: Weight, name: str | None = None) -> np.ndarray:
    """The weight as a dense float32 array of its logical shape, after checking it. For
    f32 that is the stored array itself (no copy); for other formats a new array."""
    check(w, name)
    return FORMATS[w.format].dense(w)


def encode_like(dense: np.ndarray, like: Weight) -> Weight:
    """`dense` (the logical shape of `like`) in `like`'s format and attributes: the same
    axis, block, index dtype and sparsity pattern (entries outside it are dropped),
    quantized formats requantized per output channel, f16/bf16 rounded again. Passes that
    rewrite weights (BatchNorm folding) and the trainer use it to keep formats."""
    check(like)
    dense = np.asarray(dense)
    if tuple(dense.shape) != logical_shape(like):
        raise WeightFormatError(f"encode_like: dense shape {dense.shape} differs from the "
                                f"weight's logical shape {logical_shape(like)}")
    return FORMATS[like.format].encode_like(dense, like)


def pattern(w: Weight) -> np.ndarray | None:
    """Bool array of the logical shape: True where a sparse format stores an entry (its
    pattern, explicit zeros included); None for dense formats."""
    check(w)
    f = FORMATS[w.format]
    return None if f.pattern is None else f.pattern(w)


def trainable(w: Weight) -> bool:
    """Whether the trainer may update the weight: float formats are (and are written back
    in their format); int8 formats are not (their values are fixed by their scales)."""
    return isinstance(w, Weight) and w.format in FORMATS and FORMATS[w.format].trainable(w)


def describe(w: Weight) -> str:
    """One line: format, logical shape, format details, storage bytes."""
    try:
        check(w)
    except Error as e:
        return f"{getattr(w, 'format', '?')} (malformed: {e})"
    f = FORMATS[w.format]
    extra = f.details(w)
    return (f"{w.format} {logical_shape(w)}" + (f" {extra}" if extra else "")
            + f", {storage_bytes(w):,} bytes")


def default_axis(rank: int, axis: int | None) -> int:
    """The output-channel axis a constructor uses: as given, else 1 for a 2-D Gemm weight
    [K, N], 0 for a 4-D Conv weight [O, I, KH, KW] or a 1-D vector."""
    if axis is None:
        if rank not in (1, 2, 4):
            raise WeightFormatError(f"axis: a rank-{rank} weight has no default output-channel "
                                    f"axis; pass axis= (Gemm [K, N]: 1, Conv [O, I, KH, KW]: 0)")
        return 1 if rank == 2 else 0
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) \
            or not -rank <= axis < rank:
        raise WeightFormatError(f"axis: expected an int in [{-rank}, {rank}) for a rank-{rank} "
                                f"weight, got {axis!r}")
    return int(axis) % rank


def matrix_dims(shape: tuple, axis: int) -> tuple[int, int]:
    """(R, C) of the sparse matrix of a weight of logical `shape` (rows = `axis`)."""
    return int(shape[axis]), math.prod(int(d) for i, d in enumerate(shape) if i != axis)


# =========================================================================== check helpers

def _dtype(where: str, key: str, a: np.ndarray, allowed: tuple[np.dtype, ...]) -> None:
    if a.dtype.newbyteorder("=") not in allowed:
        raise WeightFormatError(f"{where}: array {key!r} must be "
                                f"{' or '.join(d.name for d in allowed)}, got {a.dtype}")


def _rank(where: str, key: str, a: np.ndarray, rank: int) -> None:
    if a.ndim != rank:
        raise WeightFormatError(f"{where}: array {key!r} must have rank {rank}, got shape "
                                f"{a.shape}")


def _length(where: str, key: str, a: np.ndarray, n: int, why: str) -> None:
    if a.shape[0] != n:
        raise WeightFormatError(f"{where}: array {key!r} must have length {n} ({why}), got "
                                f"{a.shape[0]}")


def _axis(where: str, w: Weight, rank: int) -> int:
    ax = w.attrs["axis"]
    if isinstance(ax, bool) or not isinstance(ax, (int, np.integer)) or not 0 <= ax < rank:
        raise WeightFormatError(f"{where}: attribute 'axis' (output channels) must be an int "
                                f"in [0, {rank}) for logical rank {rank}, got {ax!r}")
    return int(ax)


def _int8_range(where: str, key: str, a: np.ndarray) -> None:
    if a.size and int(a.min()) < -127:
        i = int(np.argmin(a.reshape(-1)))
        raise WeightFormatError(f"{where}: array {key!r} must lie in [-127, 127] (symmetric "
                                f"int8), got {int(a.reshape(-1)[i])} at flat index {i}")


def _scales(where: str, w: Weight, n: int) -> None:
    s = w.arrays["scale"]
    _dtype(where, "scale", s, (_F32,))
    _rank(where, "scale", s, 1)
    _length(where, "scale", s, n, "one per output channel")
    bad = ~(np.isfinite(s) & (s > 0))
    if bad.any():
        i = int(np.argmax(bad))
        raise WeightFormatError(f"{where}: scales must be finite and > 0, got scale[{i}] = "
                                f"{float(s[i])!r}")


def _shape_matches(where: str, w: Weight, implied: tuple) -> None:
    if w._shape is not None and tuple(int(d) for d in w._shape) != tuple(implied):
        raise WeightFormatError(f"{where}: shape {w._shape} differs from the shape "
                                f"{tuple(implied)} its arrays imply")


def _compressed(where: str, w: Weight, rows: int, cols: int, nnz: int, unit: str) -> None:
    """indptr/indices rules shared by csr (unit 'value') and bsr (unit 'block')."""
    ptr, idx = w.arrays["indptr"], w.arrays["indices"]
    _dtype(where, "indptr", ptr, (_I32,))
    _rank(where, "indptr", ptr, 1)
    _length(where, "indptr", ptr, rows + 1, f"{unit} rows + 1")
    _dtype(where, "indices", idx, _INDEX_DTYPES)
    _rank(where, "indices", idx, 1)
    _length(where, "indices", idx, nnz, f"one per stored {unit}")
    p = ptr.astype(np.int64)
    if p[0] != 0:
        raise WeightFormatError(f"{where}: indptr must start at 0, got indptr[0] = {int(p[0])}")
    d = np.diff(p)
    if (d < 0).any():
        i = int(np.argmax(d < 0))
        raise WeightFormatError(f"{where}: indptr (row pointers) must not decrease, got "
                                f"indptr[{i}] = {int(p[i])} > indptr[{i + 1}] = {int(p[i + 1])}")
    if p[-1] != nnz:
        raise WeightFormatError(f"{where}: indptr must end at the number of stored {unit}s "
                                f"{nnz}, got indptr[{rows}] = {int(p[-1])}")
    if nnz == 0:
        return
    c = idx.astype(np.int64)
    lo, hi = int(c.min()), int(c.max())
    if lo < 0 or hi >= cols:
        i = int(np.argmax((c < 0) | (c >= cols)))
        raise WeightFormatError(f"{where}: column indices must lie in [0, {cols}), got "
                                f"indices[{i}] = {int(c[i])}")
    step = np.diff(c) <= 0
    starts = p[1:-1]
    starts = starts[(starts > 0) & (starts < nnz)]
    step[starts - 1] = False          # a new row may start anywhere
    if step.any():
        i = int(np.argmax(step))
        r = int(np.searchsorted(p, i, side="right")) - 1
        raise WeightFormatError(f"{where}: column indices must be strictly increasing within "
                                f"a row (sorted, no duplicates), got {int(c[i])} then "
                                f"{int(c[i + 1])} in row {r} (indices[{i}], indices[{i + 1}])")


def _values_scale(where: str, w: Weight, rows: int) -> None:
    v = w.arrays["values"]
    _dtype(where, "values", v, _VALUE_DTYPES)
    if v.dtype == _I8:
        if "scale" not in w.arrays:
            raise WeightFormatError(f"{where}: int8 values need a 'scale' array (float32, one "
                                    f"per output channel, {rows})")
        _scales(where, w, rows)
        _int8_range(where, "values", v)
    elif "scale" in w.arrays:
        raise WeightFormatError(f"{where}: a 'scale' array is only for int8 values; these "
                                f"values are {v.dtype}")


# =========================================================================== dense formats

def _data_shape(w: Weight) -> tuple:
    return tuple(w.arrays["data"].shape)


def _dense_check(dtype: np.dtype) -> Callable[[Weight, str], None]:
    def run(w: Weight, where: str) -> None:
        _dtype(where, "data", w.arrays["data"], (dtype,))
        _shape_matches(where, w, w.arrays["data"].shape)
    return run


def encode_f16(a: Any) -> Weight:
    """float16, rounded to nearest even; a finite value beyond +-65504 is an error."""
    x = _real(a, "Weight.f16")
    with np.errstate(over="ignore"):
        h = x.astype(np.float16)
    _no_overflow(x, h, "Weight.f16", "float16", 65504.0)
    return Weight("f16", {"data": np.ascontiguousarray(h)})


def encode_bf16(a: Any) -> Weight:
    """bfloat16 bits (uint16): the float32 value rounded to nearest even to its top 16
    bits. NaN stays a (quiet) NaN with its sign; finite values past bf16's range error."""
    x = np.ascontiguousarray(_real(a, "Weight.bf16"), dtype=np.float32)
    bits = x.view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
    nan = np.isnan(x)
    out = np.where(nan, ((bits >> 16) | 0x0040).astype(np.uint16), rounded)
    _no_overflow(x, _bf16_dense(out), "Weight.bf16", "bfloat16", 3.3895313892515355e38)
    return Weight("bf16", {"data": out.astype(np.uint16)})


def _bf16_dense(bits: np.ndarray) -> np.ndarray:
    return (np.ascontiguousarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(
        np.float32)


def _real(a: Any, what: str) -> np.ndarray:
    x = np.asarray(a)
    if x.dtype.kind not in "biuf":
        raise WeightFormatError(f"{what}: expected a real numeric array, got dtype {x.dtype}")
    return x


def _no_overflow(x: np.ndarray, y: np.ndarray, what: str, fmt: str, top: float) -> None:
    bad = np.isinf(y) & np.isfinite(x)
    if bad.any():
        i = int(np.argmax(bad.reshape(-1)))
        raise WeightFormatError(f"{what}: value {float(x.reshape(-1)[i])!r} at flat index {i} "
                                f"does not fit {fmt} (largest finite {top:g})")


register(Format(
    "f32", "float32", ("data",), _dense_check(_F32), _data_shape,
    dense=lambda w: np.asarray(w.arrays["data"], dtype=np.float32),
    encode_like=lambda d, like: Weight.f32(d)))

register(Format(
    "f16", "float16 (IEEE half)", ("data",), _dense_check(_F16), _data_shape,
    dense=lambda w: w.arrays["data"].astype(np.float32),
    encode_like=lambda d, like: encode_f16(np.asarray(d, np.float32))))

register(Format(
    "bf16", "bfloat16 as uint16 bits", ("data",), _dense_check(_U16), _data_shape,
    dense=lambda w: _bf16_dense(w.arrays["data"]),
    encode_like=lambda d, like: encode_bf16(d)))


# =========================================================================== qc8

def _per_channel_scale(m: np.ndarray, what: str) -> np.ndarray:
    """float32 scales for the rows of a 2-D float64 matrix: max |row| / 127, 1 for a row
    of zeros (its values quantize to 0 anyway)."""
    if m.size and not np.isfinite(m).all():
        raise WeightFormatError(f"{what}: cannot quantize non-finite values (NaN or Inf)")
    amax = np.abs(m).max(axis=1) if m.shape[1] else np.zeros(m.shape[0])
    s = (amax / 127.0).astype(np.float32)
    s[(amax == 0) | (s == 0)] = 1.0      # all-zero rows, and rows too small for float32
    return s


def _quantize(m: np.ndarray, s: np.ndarray) -> np.ndarray:
    """int8 of rows of `m` divided by their scale `s`, nearest even, in [-127, 127]."""
    return np.clip(np.rint(m / s.astype(np.float64)[:, None]), -127, 127).astype(np.int8)


def _to_matrix(a: np.ndarray, axis: int) -> np.ndarray:
    """The [R, C] matrix of a logical array: rows along `axis` (see the module doc)."""
    return np.moveaxis(a, axis, 0).reshape(matrix_dims(a.shape, axis))


def _from_matrix(m: np.ndarray, shape: tuple, axis: int) -> np.ndarray:
    other = tuple(d for i, d in enumerate(shape) if i != axis)
    return np.ascontiguousarray(np.moveaxis(m.reshape(shape[axis], *other), 0, axis))


def encode_qc8(a: Any, axis: int | None = None) -> Weight:
    """int8, symmetric, one float32 scale per output channel (`axis`; default by rank,
    see default_axis): scale = max|channel| / 127, q = round-half-even(w / scale)."""
    x = _real(a, "Weight.qc8").astype(np.float64)
    if x.ndim == 0:
        raise WeightFormatError("Weight.qc8: a scalar has no output channels; pass an array")
    ax = default_axis(x.ndim, axis)
    m = _to_matrix(x, ax)
    s = _per_channel_scale(m, "Weight.qc8")
    q = _from_matrix(_quantize(m, s), x.shape, ax)
    return Weight("qc8", {"data": q, "scale": s}, attrs={"axis": ax})


def _qc8_check(w: Weight, where: str) -> None:
    d = w.arrays["data"]
    _dtype(where, "data", d, (_I8,))
    if d.ndim == 0:
        raise WeightFormatError(f"{where}: array 'data' must have rank >= 1, got a scalar")
    ax = _axis(where, w, d.ndim)
    _scales(where, w, d.shape[ax])
    _int8_range(where, "data", d)
    _shape_matches(where, w, d.shape)


def _qc8_dense(w: Weight) -> np.ndarray:
    d, ax = w.arrays["data"], int(w.attrs["axis"])
    s = w.arrays["scale"].astype(np.float32).reshape([-1 if i == ax else 1
                                                      for i in range(d.ndim)])
    return d.astype(np.float32) * s


register(Format(
    "qc8", "int8 symmetric, float32 scale per output channel", ("data", "scale"),
    _qc8_check, _data_shape, _qc8_dense,
    encode_like=lambda d, like: encode_qc8(d, int(like.attrs["axis"])),
    attrs=("axis",), trainable=lambda w: False,
    details=lambda w: f"axis={w.attrs['axis']}"))


# =========================================================================== csr / bsr

def _index_dtype(cols: int, index_dtype: Any, what: str) -> np.dtype:
    if index_dtype is None:
        return _U16 if cols <= 1 << 16 else _I32
    dt = np.dtype(index_dtype)
    if dt not in _INDEX_DTYPES:
        raise WeightFormatError(f"{what}: index_dtype must be int32 or uint16, got {dt}")
    if dt == _U16 and cols > 1 << 16:
        raise WeightFormatError(f"{what}: uint16 indices cannot address {cols} columns "
                                f"(at most 65536)")
    return dt


def _values_dtype(dtype: Any, what: str) -> np.dtype:
    dt = np.dtype(dtype)
    if dt not in _VALUE_DTYPES:
        raise WeightFormatError(f"{what}: dtype (of the values) must be float32 or int8, "
                                f"got {dt}")
    return dt


def _indptr(counts: np.ndarray, what: str) -> np.ndarray:
    ptr = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])
    if ptr[-1] > np.iinfo(np.int32).max:
        raise WeightFormatError(f"{what}: {int(ptr[-1])} stored entries do not fit int32 "
                                f"row pointers")
    return ptr.astype(np.int32)


def _sparse_parts(fmt: str, a: tuple, shape: Any, axis: Any, attrs: dict) -> Weight:
    """A csr/bsr Weight from given parts (values, indices, indptr[, scale]), checked."""
    what = f"Weight.{fmt}"
    if shape is None:
        raise WeightFormatError(f"{what}: parts (values, indices, indptr[, scale]) need the "
                                f"logical shape=")
    if len(a) not in (3, 4):
        raise WeightFormatError(f"{what}: parts must be (values, indices, indptr[, scale]), "
                                f"got {len(a)} items")
    shape = tuple(shape)
    keys = ("values", "indices", "indptr", "scale")
    arrays = {k: np.asarray(v) for k, v in zip(keys, a)}
    w = Weight(fmt, arrays, shape=shape, attrs={"axis": default_axis(len(shape), axis), **attrs})
    check(w)
    return w


def _sparse_input(fmt: str, a: Any, shape: Any, axis: Any, dtype: Any
                  ) -> tuple[np.ndarray, int, np.dtype, np.ndarray]:
    """(dense float64 array, output axis, values dtype, [R, C] matrix) for a sparse
    constructor given a dense array."""
    what = f"Weight.{fmt}"
    x = _real(a, what).astype(np.float64)
    if shape is not None and tuple(shape) != x.shape:
        raise WeightFormatError(f"{what}: shape {tuple(shape)} differs from the dense array's "
                                f"{x.shape}")
    if x.ndim == 0:
        raise WeightFormatError(f"{what}: a scalar has no rows; pass an array")
    ax = default_axis(x.ndim, axis)
    return x, ax, _values_dtype(dtype, what), _to_matrix(x, ax)


def encode_csr(a: Any, axis: int | None = None, shape: Any = None, dtype: Any = np.float32,
               index_dtype: Any = None) -> Weight:
    """CSR of a dense array (its nonzeros; NaN counts as nonzero) or of given parts
    (values, indices, indptr[, scale]) with `shape`. int8 `dtype` quantizes each output
    channel's values symmetrically (scale = max|row| / 127)."""
    if isinstance(a, tuple):
        return _sparse_parts("csr", a, shape, axis, {})
    x, ax, vdt, m = _sparse_input("csr", a, shape, axis, dtype)
    nz = m != 0
    rows, cols = np.nonzero(nz)                   # row-major: sorted within each row
    arrays = {"indices": cols.astype(_index_dtype(m.shape[1], index_dtype, "Weight.csr")),
              "indptr": _indptr(nz.sum(axis=1), "Weight.csr")}
    if vdt == _I8:
        s = _per_channel_scale(m, "Weight.csr")
        arrays["values"] = _quantize(m, s)[rows, cols]
        arrays["scale"] = s
    else:
        arrays["values"] = m[rows, cols].astype(np.float32)
    return Weight("csr", arrays, shape=x.shape, attrs={"axis": ax})


def _csr_check(w: Weight, where: str) -> None:
    shape = w._shape
    if not shape:
        raise WeightFormatError(f"{where}: shape must have rank >= 1, got {shape!r}")
    ax = _axis(where, w, len(shape))
    rows, cols = matrix_dims(shape, ax)
    v = w.arrays["values"]
    _dtype(where, "values", v, _VALUE_DTYPES)
    _rank(where, "values", v, 1)
    _compressed(where, w, rows, cols, v.shape[0], "value")
    _values_scale(where, w, rows)


def _rows_of(ptr: np.ndarray) -> np.ndarray:
    return np.repeat(np.arange(len(ptr) - 1), np.diff(ptr.astype(np.int64)))


def _csr_scatter(w: Weight, values: np.ndarray) -> np.ndarray:
    shape, ax = w._shape, int(w.attrs["axis"])
    rows, cols = matrix_dims(shape, ax)
    m = np.zeros((rows, cols), values.dtype)
    m[_rows_of(w.arrays["indptr"]), w.arrays["indices"].astype(np.int64)] = values
    return _from_matrix(m, shape, ax)


def _csr_values(w: Weight) -> np.ndarray:
    v = w.arrays["values"]
    if v.dtype == _I8:
        s = w.arrays["scale"].astype(np.float32)
        return v.astype(np.float32) * s[_rows_of(w.arrays["indptr"])]
    return v.astype(np.float32)


def _csr_like(d: np.ndarray, like: Weight) -> Weight:
    ax = int(like.attrs["axis"])
    m = _to_matrix(np.asarray(d, np.float64), ax)
    rows = _rows_of(like.arrays["indptr"])
    cols = like.arrays["indices"].astype(np.int64)
    arrays = {"indices": like.arrays["indices"].copy(), "indptr": like.arrays["indptr"].copy()}
    if like.arrays["values"].dtype == _I8:
        s = _per_channel_scale(_pattern_matrix(m, rows, cols), "encode_like (csr int8)")
        arrays["values"] = _quantize(m, s)[rows, cols]
        arrays["scale"] = s
    else:
        arrays["values"] = m[rows, cols].astype(np.float32)
    return Weight("csr", arrays, shape=like._shape, attrs={"axis": ax})


def _pattern_matrix(m: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """`m` with everything outside the pattern set to zero (scales see only kept values)."""
    out = np.zeros_like(m)
    out[rows, cols] = m[rows, cols]
    return out


def _sparse_details(w: Weight) -> str:
    n = w.arrays["values"].size
    total = math.prod(w._shape)
    vals = "int8" if w.arrays["values"].dtype == _I8 else "f32"
    blk = f" block={tuple(w.attrs['block'])}" if "block" in w.attrs else ""
    return (f"axis={w.attrs['axis']}{blk} {n} stored ({100.0 * n / total if total else 0:.1f}%"
            f") {vals} values, {np.dtype(w.arrays['indices'].dtype).name} indices")


register(Format(
    "csr", "compressed sparse rows (rows = output channels)", ("values", "indices", "indptr"),
    _csr_check, shape=lambda w: tuple(w._shape),
    dense=lambda w: _csr_scatter(w, _csr_values(w)), encode_like=_csr_like,
    optional=("scale",), attrs=("axis",), needs_shape=True,
    pattern=lambda w: _csr_scatter(w, np.ones(w.arrays["values"].shape[0], bool)),
    trainable=lambda w: w.arrays["values"].dtype != _I8, details=_sparse_details))


def _block(where: str, b: Any) -> tuple[int, int]:
    if not (isinstance(b, (tuple, list)) and len(b) == 2 and all(
            isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 1 for d in b)):
        raise WeightFormatError(f"{where}: attribute 'block' must be two positive ints "
                                f"(rows, cols), got {b!r}")
    return int(b[0]), int(b[1])


def _check_divides(where: str, rows: int, cols: int, br: int, bc: int) -> None:
    if rows % br or cols % bc:
        raise WeightFormatError(f"{where}: block ({br}, {bc}) must divide the matrix "
                                f"[{rows}, {cols}] (output channels x fan-in) exactly; ragged "
                                f"edges are not stored (pad the weight)")


def encode_bsr(a: Any, block: Any, axis: int | None = None, shape: Any = None,
               dtype: Any = np.float32, index_dtype: Any = None) -> Weight:
    """BSR of a dense array (blocks holding any nonzero are stored whole) or of given
    parts (values [nnzb, br, bc], indices, indptr[, scale]) with `shape`. `block` =
    (output channels, inputs) per block; it must divide the matrix. int8 `dtype`
    quantizes each output channel symmetrically."""
    if isinstance(a, tuple):
        return _sparse_parts("bsr", a, shape, axis, {"block": _block("Weight.bsr", block)})
    br, bc = _block("Weight.bsr", block)
    x, ax, vdt, m = _sparse_input("bsr", a, shape, axis, dtype)
    rows, cols = m.shape
    _check_divides("Weight.bsr", rows, cols, br, bc)
    blocks = m.reshape(rows // br, br, cols // bc, bc).transpose(0, 2, 1, 3)
    nz = (blocks != 0).any(axis=(2, 3))
    brow, bcol = np.nonzero(nz)
    arrays = {"indices": bcol.astype(_index_dtype(cols // bc, index_dtype, "Weight.bsr")),
              "indptr": _indptr(nz.sum(axis=1), "Weight.bsr")}
    if vdt == _I8:
        s = _per_channel_scale(m, "Weight.bsr")
        q = _quantize(m, s).reshape(rows // br, br, cols // bc, bc).transpose(0, 2, 1, 3)
        arrays["values"] = np.ascontiguousarray(q[brow, bcol])
        arrays["scale"] = s
    else:
        arrays["values"] = np.ascontiguousarray(blocks[brow, bcol].astype(np.float32))
    return Weight("bsr", arrays, shape=x.shape, attrs={"axis": ax, "block": (br, bc)})


def _bsr_check(w: Weight, where: str) -> None:
    shape = w._shape
    if not shape:
        raise WeightFormatError(f"{where}: shape must have rank >= 1, got {shape!r}")
    ax = _axis(where, w, len(shape))
    br, bc = _block(where, w.attrs["block"])
    rows, cols = matrix_dims(shape, ax)
    _check_divides(where, rows, cols, br, bc)
    v = w.arrays["values"]
    _dtype(where, "values", v, _VALUE_DTYPES)
    _rank(where, "values", v, 3)
    if v.shape[1:] != (br, bc):
        raise WeightFormatError(f"{where}: array 'values' must be [nnzb, {br}, {bc}] (the "
                                f"block attribute), got shape {v.shape}")
    _compressed(where, w, rows // br, cols // bc, v.shape[0], "block")
    _values_scale(where, w, rows)


def _bsr_scatter(w: Weight, values: np.ndarray) -> np.ndarray:
    """values [nnzb, br, bc] (already dequantized) -> dense logical array."""
    shape, ax = w._shape, int(w.attrs["axis"])
    br, bc = (int(d) for d in w.attrs["block"])
    rows, cols = matrix_dims(shape, ax)
    b = np.zeros((rows // br, cols // bc, br, bc), values.dtype)
    b[_rows_of(w.arrays["indptr"]), w.arrays["indices"].astype(np.int64)] = values
    return _from_matrix(b.transpose(0, 2, 1, 3).reshape(rows, cols), shape, ax)


def _bsr_values(w: Weight) -> np.ndarray:
    v = w.arrays["values"]
    if v.dtype == _I8:
        br = int(w.attrs["block"][0])
        s = w.arrays["scale"].astype(np.float32).reshape(-1, br)   # [block rows, br]
        return v.astype(np.float32) * s[_rows_of(w.arrays["indptr"])][:, :, None]
    return v.astype(np.float32)


def _bsr_like(d: np.ndarray, like: Weight) -> Weight:
    ax = int(like.attrs["axis"])
    br, bc = (int(x) for x in like.attrs["block"])
    m = _to_matrix(np.asarray(d, np.float64), ax)
    rows, cols = m.shape
    brow = _rows_of(like.arrays["indptr"])
    bcol = like.arrays["indices"].astype(np.int64)
    arrays = {"indices": like.arrays["indices"].copy(), "indptr": like.arrays["indptr"].copy()}

    def blocks_of(mat: np.ndarray) -> np.ndarray:
        return mat.reshape(rows // br, br, cols // bc, bc).transpose(0, 2, 1, 3)[brow, bcol]

    if like.arrays["values"].dtype == _I8:
        kept = np.zeros((rows // br, cols // bc, br, bc))
        kept[brow, bcol] = blocks_of(m)
        s = _per_channel_scale(kept.transpose(0, 2, 1, 3).reshape(rows, cols),
                               "encode_like (bsr int8)")
        arrays["values"] = np.ascontiguousarray(blocks_of(_quantize(m, s)))
        arrays["scale"] = s
    else:
        arrays["values"] = np.ascontiguousarray(blocks_of(m).astype(np.float32))
    return Weight("bsr", arrays, shape=like._shape,
                  attrs={"axis": ax, "block": (br, bc)})


register(Format(
    "bsr", "block sparse rows (blocks of output channels x inputs)",
    ("values", "indices", "indptr"), _bsr_check, shape=lambda w: tuple(w._shape),
    dense=lambda w: _bsr_scatter(w, _bsr_values(w)), encode_like=_bsr_like,
    optional=("scale",), attrs=("axis", "block"), needs_shape=True,
    pattern=lambda w: _bsr_scatter(w, np.ones(w.arrays["values"].shape, bool)),
    trainable=lambda w: w.arrays["values"].dtype != _I8, details=_sparse_details))
