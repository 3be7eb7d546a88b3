// qgemm_parallel and pack_qgemm (qgemm.h).
#include "qgemm.h"

#include <algorithm>

#include "parallel.h"
#include "steps.h"

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
  // Batch 1..3 runs the kernel's GEMV path, which streams each weight panel once for all
  // rows: split those by columns only (one row tile of all M rows).
  const GemmBlocks blk = M <= 3 ? gemm_blocks(threads, work, M, N, 1, M, g.nr)
                                : gemm_blocks(threads, work, M, N, ceil_div(M, g.mr), g.mr, g.nr);
  const ptrdiff_t mb = blk.mb, nb = blk.nb, nm = ceil_div(M, mb), nn = ceil_div(N, nb);
  unsigned char* c_bytes = static_cast<unsigned char*>(C);
  parallel_for(threads, nm * nn, [&](ptrdiff_t t, int) {
    const ptrdiff_t im = t / nn, in = t % nn;
    const ptrdiff_t m0 = im * mb, m1 = std::min(M, m0 + mb);
    const ptrdiff_t n0 = in * nb, n1 = std::min(N, n0 + nb);
    QGemmEpilogue e = ep;
    e.skip_residual_rows(m0);
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
