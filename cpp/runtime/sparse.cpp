// Sparse products on f32_spmm: see sparse.h.
#include "sparse.h"

#include <algorithm>
#include <cmath>
#include <climits>
#include <cstring>
#include <stdexcept>
#include <string>

#include "parallel.h"

namespace pyrt {
namespace {

// Roofline rates per thread, from bench/sparse.py on this project's machine (Xeon
// Sapphire Rapids class, 2 vCPUs; a 4096 x 4096 layer, 2 threads, rows 1 to 256): bytes/ns
// streaming weights, and multiply-adds/ns of the dense GEMM, of the sparse tile kernel
// per stored value (at full tiles; a tile of M rows runs at M / (M + 16) of it: its
// vectors are part empty) and of the sparse row kernel (gathers), per ISA level.
struct Rates {
  double bw, dense, spmm, spmv;
};
Rates rates(Isa isa) {
  switch (isa) {
    case Isa::Avx512: return {28.0, 100.0, 40.0, 4.0};
    case Isa::Avx2: return {28.0, 56.0, 30.0, 4.4};
    default: return {28.0, 3.7, 4.7, 0.8};
  }
}

// Streaming the weights and computing overlap only in part at mid batches: the norm of
// the two times fits our GEMM's measured 4096 x 4096 times at 1, 16 and 64 rows within
// 5% (the max underestimated 16 rows by 22%, the sum overestimated it by 47%).
double dense_ns(const Rates& r, double M, double K, double N) {
  return std::hypot(4.0 * K * N / r.bw, M * K * N / r.dense);
}
// A transposed element (A into a tile, the tile's result back, and the epilogue's pass)
// costs about as much as this many multiply-adds of the tile kernel (measured on
// MobileNetV2's 1x1 convs: K = 16..960 inputs, 10% of the weights).
constexpr double kMoveCost = 5.0;

double sparse_ns(const Rates& r, double M, double K, double N, double values, double pairs,
                 double idx_bytes, bool transposes, double row_value_bytes = 4.0) {
  const bool row_kernel = M <= double(kSpmvMaxRows);
  const double bytes = (row_kernel ? row_value_bytes : 4.0) * values + idx_bytes * pairs;
  const double macs = M * values;
  const double rate = row_kernel ? r.spmv : r.spmm * M / (M + 16.0);
  const double moves = row_kernel || !transposes ? 0.0 : kMoveCost * M * (K + N) / r.spmm;
  return std::max(bytes / r.bw, macs / rate) + moves;
}

constexpr int32_t kGroupSizes[] = {1, 2, 4, 8, 16};

}  // namespace

const int64_t* SparseWeight::group_ptr() const {
  const AlignedBuffer& b = packed.size() ? packed : qpacked;
  return reinterpret_cast<const int64_t*>(static_cast<const char*>(b.get()) + h.off_ptr);
}

size_t SparseWeight::scratch_floats() const {
  return size_t(h.K) * size_t(cfg.mt) + size_t(chunk_groups) * size_t(h.R) * size_t(cfg.mt);
}

SparseChoice choose_sparse(const KernelTable& kt, int64_t K, int64_t N, const float* B,
                           int64_t ldb, SparseMode mode, double row_value_bytes) {
  SparseChoice c;
  // An empty product has nothing to gain (also with sparse="sparse"): the dense GEMM.
  if (mode == SparseMode::Dense || K <= 0 || N <= 0 || K > INT32_MAX || !kt.f32_spmm.spmm)
    return c;
  const Rates r = rates(kt.isa);
  const double idx_bytes = K <= 65536 ? 2.0 : 4.0;
  // The group size: the least estimated time for a 64-row tile by the model below (R = 1
  // pays a broadcast and a load per value; blocks share the activation load; groups that
  // fill vectors run row-major without the tile transposes), ties to the larger R.
  const auto nhwc = [&](int32_t R) {
    return kt.f32_spmm.spmm_nhwc && kt.f32_spmm.nhwc_r > 0 && R % kt.f32_spmm.nhwc_r == 0;
  };
  // Under 40% zeros the sparse kernels never win (at one row, where they gain most, the
  // measured crossover is near 45%): stay dense without asking the model.
  const int64_t nonzeros = f32_spmm_count_pairs(K, N, B, ldb, 1, nullptr);
  if (mode == SparseMode::Auto && double(nonzeros) > 0.6 * double(K) * double(N)) return c;
  double best = 1e300;
  int64_t best_pairs = 0;
  for (int32_t R : kGroupSizes) {
    if (R > 1 && R > N) break;
    const int64_t pairs = R == 1 ? nonzeros : f32_spmm_count_pairs(K, N, B, ldb, R, nullptr);
    const double t = sparse_ns(r, 64.0, double(K), double(N), double(pairs) * R, double(pairs),
                               idx_bytes, !nhwc(R));
    if (t <= best) {
      best = t;
      c.R = R;
      best_pairs = pairs;
    }
  }
  const double values = double(best_pairs) * c.R;
  c.density = values / (double(K) * double(N));
  if (mode == SparseMode::Sparse) {
    c.dense_from = INT64_MAX;
    return c;
  }
  // The rows (doubling) where the model's choice changes: first to dense, then back.
  c.dense_from = INT64_MAX;
  bool dense_now = false;
  for (int64_t M = 1; M <= (int64_t(1) << 20); M *= 2) {
    const double s = sparse_ns(r, double(M), double(K), double(N), values, double(best_pairs),
                               idx_bytes, !nhwc(c.R), row_value_bytes);
    const double d = dense_ns(r, double(M), double(K), double(N));
    if (!dense_now && s >= d) {
      c.dense_from = M == 1 ? 0 : M;
      dense_now = true;
    } else if (dense_now && s < d) {
      c.sparse_from = M;
      break;
    }
  }
  return c;
}

SparseWeight pack_sparse(const KernelTable& kt, int64_t K, int64_t N, const float* B, int64_t ldb,
                         int32_t R) {
  const SpmmConfig& s = kt.f32_spmm;
  if (!s.spmm || !s.spmv || !s.pack || !kt.x32_transpose.transpose || !kt.f32_eltwise.epilogue)
    throw std::logic_error("the f32_spmm entry of the kernel table is empty");
  if (std::find(std::begin(kGroupSizes), std::end(kGroupSizes), R) == std::end(kGroupSizes))
    throw std::invalid_argument("sparse group size must be 1, 2, 4, 8 or 16");
  if (K > INT32_MAX)  // the widest index is int32
    throw SizeError("a sparse weight has at most 2**31 - 1 inputs, got " + std::to_string(K));
  SparseWeight w;
  w.cfg = s;
  w.tr = kt.x32_transpose;
  w.el = kt.f32_eltwise;
  w.packed = AlignedBuffer(s.packed_bytes(K, N, B, ldb, R), s.pack_align);
  s.pack(K, N, B, ldb, R, w.packed.get());
  std::memcpy(&w.h, w.packed.get(), sizeof w.h);
  // Ct blocks of about 8 KiB.
  w.chunk_groups = std::max<int64_t>(1, 2048 / (int64_t(s.mt) * R));
  return w;
}

SparseWeight pack_sparse_int8(const KernelTable& kt, int64_t K, int64_t N, const int8_t* Q,
                              const float* scale, const float* B, int32_t R, bool row_kernel,
                              bool tiles) {
  const QSpmmConfig& q = kt.qc8w_spmm;
  if (!q.spmv || !q.pack || !q.packed_bytes)
    throw std::logic_error("the qc8w_spmm entry of the kernel table is empty");
  if (!row_kernel && !tiles) throw std::logic_error("pack_sparse_int8: no packing asked for");
  // The f32 packing (also for its checks and the kernels the product needs); dropped below
  // when only the row kernel runs.
  SparseWeight w = pack_sparse(kt, K, N, B, N, R);
  if (!row_kernel) return w;
  w.qcfg = q;
  w.qpacked = AlignedBuffer(q.packed_bytes(K, N, Q, N, R), q.pack_align);
  q.pack(K, N, Q, N, scale, R, w.qpacked.get());
  QSpmmHeader qh;
  std::memcpy(&qh, w.qpacked.get(), sizeof qh);
  if (qh.s.nnzb != w.h.nnzb)  // the scales are > 0: Q * scale is zero exactly where Q is
    throw std::invalid_argument("int8 sparse weight: the float view's zeros are not the int8 zeros");
  if (!tiles) {
    w.packed = AlignedBuffer();
    w.h = qh.s;
  }
  return w;
}

ptrdiff_t group_split(const SparseWeight& w, ptrdiff_t part, ptrdiff_t parts) {
  if (part <= 0) return 0;
  if (part >= parts) return w.h.G;
  const int64_t* ptr = w.group_ptr();
  const int64_t target = w.h.nnzb * part / parts;
  return std::lower_bound(ptr, ptr + w.h.G + 1, target) - ptr;
}

void sparse_rows(const SparseWeight& w, const float* A, ptrdiff_t lda, ptrdiff_t rows, float* C,
                 ptrdiff_t ldc, const Epilogue& ep, ptrdiff_t g0, ptrdiff_t g1, float* scratch) {
  const ptrdiff_t R = w.h.R, N = w.h.N, K = w.h.K, mt = w.cfg.mt;
  if (g0 >= g1 || rows <= 0) return;
  auto finish = [&](ptrdiff_t r0, ptrdiff_t nr, ptrdiff_t c0, ptrdiff_t c1) {
    Epilogue e = ep;
    if (e.bias) e.bias += c0;
    if (e.residual) e.residual += r0 * e.ldr + c0;
    w.el.epilogue(nr, c1 - c0, C + r0 * ldc + c0, ldc, &e);
  };
  if (rows <= kSpmvMaxRows || !w.packed.size()) {  // row by row: the gather kernel
    const bool q = w.qpacked.size() != 0;
    for (ptrdiff_t r = 0; r < rows; ++r) {
      if (q)
        w.qcfg.spmv(A + r * lda, w.qpacked.get(), C + r * ldc, g0, g1);
      else
        w.cfg.spmv(A + r * lda, w.packed.get(), C + r * ldc, g0, g1);
      finish(r, 1, g0 * R, std::min(N, g1 * R));
    }
    return;
  }
  if (w.cfg.spmm_nhwc && w.cfg.nhwc_r > 0 && R % w.cfg.nhwc_r == 0) {
    // Groups that fill whole vectors: row-major in and out, no transposes.
    w.cfg.spmm_nhwc(A, lda, rows, w.packed.get(), C, ldc, g0, g1);
    finish(0, rows, g0 * R, std::min(N, g1 * R));
    return;
  }
  float* At = scratch;
  float* Ct = scratch + size_t(K) * size_t(mt);
  for (ptrdiff_t m0 = 0; m0 < rows; m0 += mt) {
    const ptrdiff_t cols = std::min(mt, rows - m0);
    w.tr.transpose(cols, K, A + m0 * lda, lda, At, mt);
    // The kernel reads whole vectors: lanes past `cols` must hold numbers, not stale
    // scratch (a denormal there costs a microcode assist per multiply).
    if (cols < mt)
      for (ptrdiff_t k = 0; k < K; ++k) std::memset(At + k * mt + cols, 0, sizeof(float) * (mt - cols));
    for (ptrdiff_t ga = g0; ga < g1; ga += w.chunk_groups) {
      const ptrdiff_t gb = std::min<ptrdiff_t>(g1, ga + w.chunk_groups);
      w.cfg.spmm(At, cols, w.packed.get(), Ct, ga, gb);
      const ptrdiff_t c0 = ga * R, c1 = std::min(N, gb * R);
      w.tr.transpose(c1 - c0, cols, Ct, mt, C + m0 * ldc + c0, ldc);
      finish(m0, cols, c0, c1);
    }
  }
}

void sparse_parallel(const SparseWeight& w, Isa isa, int threads, ptrdiff_t M, const float* A,
                     ptrdiff_t lda, float* C, ptrdiff_t ldc, const Epilogue& ep, float* scratch) {
  if (M <= 0 || w.h.N <= 0) return;
  const double macs = double(M) * double(w.h.nnzb) * double(w.h.R);
  // The dense GEMM's rate model, with a sparse value counted as 2.5 dense multiply-adds.
  const double vb = w.qpacked.size() && (M <= kSpmvMaxRows || !w.packed.size()) ? 1.0 : 4.0;
  const double bytes = double(w.h.nnzb) * (vb * double(w.h.R) + 2.0) +
                       4.0 * double(M) * double(w.h.K + w.h.N);
  const int nt = threads_for(threads, isa, 2.5 * macs, bytes);
  const size_t per = w.scratch_floats();
  const ptrdiff_t G = w.h.G, mt = w.cfg.mt;
  if (nt <= 1) {
    sparse_rows(w, A, lda, M, C, ldc, ep, 0, G, scratch);
    return;
  }
  // Row blocks: all rows (M <= kSpmvMaxRows) or tiles of mt; when there are fewer blocks than
  // 2 per thread, each block's groups are also split into ranges of equal nonzeros.
  const ptrdiff_t unit = M <= kSpmvMaxRows ? M : w.packed.size() ? mt : 1;
  const ptrdiff_t blocks = ceil_div(M, unit);
  const ptrdiff_t parts = blocks >= 2 * nt ? 1 : std::min<ptrdiff_t>(G, ceil_div(2 * nt, blocks));
  parallel_for(nt, blocks * parts, [&](ptrdiff_t t, int tid) {
    const ptrdiff_t b = t / parts, p = t % parts;
    const ptrdiff_t m0 = b * unit, rows = std::min(unit, M - m0);
    Epilogue e = ep;
    if (e.residual) e.residual += m0 * e.ldr;
    sparse_rows(w, A + m0 * lda, lda, rows, C + m0 * ldc, ldc, e, group_split(w, p, parts),
                group_split(w, p + 1, parts), scratch + size_t(tid) * per);
  });
}

}  // namespace pyrt
