// The int8 GEMM (qs8_qc8w_gemm) as plan steps call it: packing a weight once, and a
// run split over threads like gemm_parallel.
#pragma once
#include <cstddef>
#include <cstdint>

#include "aligned.h"
#include "pyrt/kernels.h"

namespace pyrt {

// C[M, N] = requantize(A[M, K] @ B) (QGemmConfig::run, QGemmEpilogue in kernels.h) on up
// to `threads` threads, when the cost model (threads_for) says the split pays. A is
// uint8 with row stride lda (exactly K bytes per row read); C is float or uint8 by
// ep.out_u8, row stride ldc in elements. Tasks are blocks of rows (A, C, the residual,
// and a_scale / a_zp when a_stride is 1 are offset per block) and of columns (n0 on
// multiples of nr). `packed` comes from pack_qgemm with the same config.
void qgemm_parallel(const QGemmConfig& g, Isa isa, int threads, ptrdiff_t M, ptrdiff_t N,
                    ptrdiff_t K, const uint8_t* A, ptrdiff_t lda, const void* packed, void* C,
                    ptrdiff_t ldc, const QGemmEpilogue& ep);

// B int8 [K, N] (row stride ldb, values in [-127, 127]) packed for g, with its column
// sums: g.packed_bytes(K, N) bytes at g.pack_align.
AlignedBuffer pack_qgemm(const QGemmConfig& g, int64_t K, int64_t N, const int8_t* B, int64_t ldb);

}  // namespace pyrt
