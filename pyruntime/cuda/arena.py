"""Device memory for one batch size: every intermediate tensor of a CUDA plan gets an
offset in one allocation, planned by liveness like the CPU executor's arena
(cpp/runtime/plan.cpp): two tensors whose lifetimes (first to last step that touches
them, inclusive) intersect never overlap; the rest share bytes. One allocation per batch
size means a captured CUDA graph replays with fixed addresses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..errors import InputError

__all__ = ["Arena", "plan_arena", "ALIGN"]

#: Offsets are multiples of this many bytes: cudaMalloc's own alignment, which cuBLAS's
#: tensor-core paths and vector loads in the kernels rely on.
ALIGN = 256


@dataclass(frozen=True)
class Arena:
    """Byte offsets of the tensors (by index) and the allocation's total size."""
    offsets: tuple[int, ...]
    total: int


def _align(n: int, a: int) -> int:
    return (n + a - 1) // a * a


def plan_arena(sizes: Sequence[int], first: Sequence[int], last: Sequence[int],
               align: int = ALIGN) -> Arena:
    """Offsets for tensors of `sizes` bytes live over steps [first[i], last[i]]. Largest
    first, each at the lowest aligned offset clear of every placed tensor whose lifetime
    intersects its own (the CPU plan's greedy rule). A tensor of size 0 gets offset 0
    and takes no room."""
    n = len(sizes)
    if len(first) != n or len(last) != n:
        raise InputError(f"plan_arena: sizes, first and last must have one entry per tensor; "
                         f"got {n}, {len(first)} and {len(last)}")
    if not (isinstance(align, int) and align > 0 and align & (align - 1) == 0):
        raise InputError(f"plan_arena: align must be a power of two, got {align!r}")
    for i in range(n):
        if int(sizes[i]) < 0 or int(first[i]) < 0 or int(first[i]) > int(last[i]):
            raise InputError(f"plan_arena: tensor {i}: expected size >= 0 and 0 <= first <= "
                             f"last, got size {sizes[i]}, first {first[i]}, last {last[i]}")
    order = sorted((i for i in range(n) if sizes[i] > 0), key=lambda i: (-int(sizes[i]), i))
    offsets = [0] * n
    placed: list[int] = []
    total = 0
    for i in order:
        size = _align(int(sizes[i]), align)
        busy = sorted((offsets[j], offsets[j] + _align(int(sizes[j]), align)) for j in placed
                      if not (last[j] < first[i] or last[i] < first[j]))
        off = 0
        for b, e in busy:
            if off + size <= b:
                break
            off = max(off, e)
        offsets[i] = off
        total = max(total, off + size)
        placed.append(i)
    return Arena(tuple(offsets), total)
