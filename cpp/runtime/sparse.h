// Sparse weights on the f32_spmm entry: packing with the group size that runs fastest,
// the dense-or-sparse decision (a roofline cost model), and the tiled, threaded product
// with the fused epilogue. Used by the Gemm, 1x1 conv and im2col conv steps.
#pragma once
#include <climits>
#include <cstdint>

#include "aligned.h"
#include "pyrt/kernels.h"

namespace pyrt {

// Products of at most this many rows run the row kernel (spmv) row by row; more rows run
// in tiles of the tile or row-major kernels.
constexpr int64_t kSpmvMaxRows = 2;

// rt.compile(sparse=...): "auto" decides per layer by the cost model, "dense" never runs
// a sparse kernel, "sparse" always does (tests and benchmarks).
enum class SparseMode : int32_t { Auto = 0, Dense = 1, Sparse = 2 };

// A weight B [K, N] packed for f32_spmm, with the kernels a sparse product needs.
// An int8 weight (values Q with per-channel scales) also, or only, holds the qc8w_spmm
// packing: products of at most kSpmvMaxRows rows run its row kernel; more rows run the
// f32 kernels on `packed` (the weight dequantized at pack time), or, when only the int8
// packing is kept (a fixed batch of at most kSpmvMaxRows rows), its row kernel row by row.
struct SparseWeight {
  SpmmConfig cfg;
  TransposeConfig tr;   // At and Ct tiles <-> row-major rows
  EltwiseConfig el;     // the fused epilogue, applied to each finished block
  SpmmHeader h;         // of `packed`, or of `qpacked` when that is the only packing
  AlignedBuffer packed; // f32_spmm; empty for an int8 weight that keeps only qpacked
  QSpmmConfig qcfg{};   // qc8w_spmm (int8 weights only)
  AlignedBuffer qpacked;
  int64_t chunk_groups; // groups per Ct block (Ct stays in L1)
  size_t scratch_floats() const;  // per thread
  const int64_t* group_ptr() const;  // [G + 1]: the group starts (both packings share them)
};

// What the cost model chose for B [K, N]: the group size R and the rows per run at which
// the sparse kernel runs: [0, dense_from) and [sparse_from, inf). The dense GEMM runs in
// between: a weight with 70% zeros gains from the row kernel at one row and from full
// tiles at 64, while the dense GEMM is faster at a few rows. dense_from = 0 and
// sparse_from = INT64_MAX: always dense; dense_from = INT64_MAX: always sparse.
struct SparseChoice {
  int32_t R = 1;
  int64_t dense_from = 0;
  int64_t sparse_from = INT64_MAX;
  double density = 1.0;  // stored values / (K * N)
  bool sparse_at(int64_t rows) const { return rows < dense_from || rows >= sparse_from; }
  bool ever_sparse() const { return dense_from > 0 || sparse_from != INT64_MAX; }
  bool ever_dense() const { return dense_from != INT64_MAX; }
};
// row_value_bytes: bytes per stored value that the row kernel streams (4, or 1 for int8
// values on qc8w_spmm; more rows run the f32 tiles either way).
SparseChoice choose_sparse(const KernelTable& kt, int64_t K, int64_t N, const float* B,
                           int64_t ldb, SparseMode mode, double row_value_bytes = 4.0);
SparseWeight pack_sparse(const KernelTable& kt, int64_t K, int64_t N, const float* B,
                         int64_t ldb, int32_t R);
// An int8 weight: Q int8 [K, N] (row stride N), scale [N], B its dense float view (Q *
// scale). row_kernel: keep the qc8w_spmm packing; tiles: keep the dequantized f32_spmm
// one (at least one of the two).
SparseWeight pack_sparse_int8(const KernelTable& kt, int64_t K, int64_t N, const int8_t* Q,
                              const float* scale, const float* B, int32_t R, bool row_kernel,
                              bool tiles);

// C rows [0, rows) = ep(A rows @ B) for the columns of groups [g0, g1), single-threaded.
// A, C and ep.residual point at row 0 of the block; ep.bias at column 0 of B.
void sparse_rows(const SparseWeight& w, const float* A, ptrdiff_t lda, ptrdiff_t rows, float* C,
                 ptrdiff_t ldc, const Epilogue& ep, ptrdiff_t g0, ptrdiff_t g1, float* scratch);
// The whole product, split over threads by rows (tiles) and by groups of equal nonzeros.
// scratch: threads * w.scratch_floats() floats.
void sparse_parallel(const SparseWeight& w, Isa isa, int threads, ptrdiff_t M, const float* A,
                     ptrdiff_t lda, float* C, ptrdiff_t ldc, const Epilogue& ep, float* scratch);
// The group boundary that splits [0, G) into `parts` ranges of about equal stored pairs.
ptrdiff_t group_split(const SparseWeight& w, ptrdiff_t part, ptrdiff_t parts);

}  // namespace pyrt
