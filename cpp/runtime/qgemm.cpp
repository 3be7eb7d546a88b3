// qgemm_parallel and pack_qgemm (qgemm.h).
#include "qgemm.h"

#include <algorithm>

#include "parallel.h"

namespace pyrt {

void qgemm_parallel(const QGemmConfig& g, Isa isa, int threads, ptrdiff_t M, ptrdiff_t N,
                    ptrdiff_t K, const uint8_t* A, ptrdiff_t lda, const void* packed, void* C,
                    ptrdiff_t ldc, const QGemmEpilogue& ep) {
  if (M <= 0 || N <= 0) return;
  const double work = double(M) * double(N) * double(K > 0 ? K : 1);
  const size_t out_bytes = ep.out_u8 ? 1 : sizeof(float);
  // The cost model's rates are float multiply-adds: an int8 multiply-add is cheaper, but
  // a step too small to split at fp32 rates is small enough here too. Bytes: A and B
  // are one byte per element.
  const double bytes = double(M) * double(K) + double(K) * double(N) + double(out_bytes) * double(M) * double(N);
  if (threads_for(threads, isa, work, bytes) <= 1) {
    g.run(M, N, K, A, lda, packed, C, ldc, &ep, 0, N);
    return;
  }
  const ptrdiff_t mr = g.mr, nr = g.nr;
  // Batch 1..3 runs the kernel's GEMV path, which streams each weight panel once for all
  // rows: split those by columns only.
  const ptrdiff_t mt = M <= 3 ? 1 : ceil_div(M, mr), nt = ceil_div(N, nr);
  // The grid of gemm_parallel (steps_gemm.cpp): nm x nn tasks minimising the largest
  // task's multiply-adds plus what it streams.
  const int per = static_cast<int>(std::clamp(work / (double(threads) * 524288.0), 1.0, 4.0));
  const int target = threads * per;
  ptrdiff_t best_nm = 1, best_nn = 1;
  double best = 1e300;
  const ptrdiff_t rows_per_tile = M <= 3 ? M : mr;
  for (ptrdiff_t nm = 1; nm <= target; ++nm) {
    if (target % nm) continue;
    const ptrdiff_t nn = target / nm;
    const ptrdiff_t a = std::min(nm, mt), b = std::min(nn, nt);
    const double rows = double(std::min(M, ceil_div(mt, a) * rows_per_tile));
    const double cols = double(std::min(N, ceil_div(nt, b) * nr));
    const double cost = rows * cols + 8.0 * (rows + cols);
    if (cost < best) {
      best = cost;
      best_nm = a;
      best_nn = b;
    }
  }
  const ptrdiff_t mb = ceil_div(mt, best_nm) * rows_per_tile;  // rows per M block
  const ptrdiff_t nb = ceil_div(nt, best_nn) * nr;              // columns per N block
  const ptrdiff_t nm = ceil_div(M, mb), nn = ceil_div(N, nb);
  unsigned char* c_bytes = static_cast<unsigned char*>(C);
  parallel_for(threads, nm * nn, [&](ptrdiff_t t, int) {
    const ptrdiff_t im = t / nn, in = t % nn;
    const ptrdiff_t m0 = im * mb, m1 = std::min(M, m0 + mb);
    const ptrdiff_t n0 = in * nb, n1 = std::min(N, n0 + nb);
    QGemmEpilogue e = ep;
    if (e.residual) e.residual += m0 * e.ldr;
    if (e.a_stride) {
      e.a_scale += m0 * e.a_stride;
      e.a_zp += m0 * e.a_stride;
    }
    g.run(m1 - m0, N, K, A + m0 * lda, lda, packed, c_bytes + size_t(m0 * ldc) * out_bytes, ldc,
          &e, n0, n1);
  });
}

AlignedBuffer pack_qgemm(const QGemmConfig& g, int64_t K, int64_t N, const int8_t* B, int64_t ldb) {
  AlignedBuffer p(g.packed_bytes(K, N), g.pack_align);
  if (p.size()) g.pack(K, N, B, ldb, p.get());
  return p;
}

}  // namespace pyrt
