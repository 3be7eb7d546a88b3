// GEMM-based steps: Gemm, and group-1 Conv as im2col (NHWC, (kh, kw, c) order) + GEMM.
#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdio>
#include <memory>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "aligned.h"
#include "parallel.h"
#include "sparse.h"
#include "steps.h"

namespace pyrt {

GemmBlocks gemm_blocks(int threads, double work, ptrdiff_t M, ptrdiff_t N, ptrdiff_t mt,
                       ptrdiff_t rows_per_tile, ptrdiff_t nr) {
  const ptrdiff_t nt = ceil_div(N, nr);
  // Choose an nm x nn grid (nm * nn = target tasks) minimising the largest task: its
  // multiply-adds per K (rows * cols) plus what it streams per K (rows of A, columns of
  // the packed B), weighted as 8 flops per float. Small M then splits N (each task reads
  // part of the weights); tall M splits M (each task reads part of A).
  // Up to 4 tasks per thread when there is enough work, so threads the OS delays
  // leave work to the others (parallel_for hands tasks out dynamically).
  const int per = static_cast<int>(std::clamp(work / (double(threads) * 524288.0), 1.0, 4.0));
  const int target = threads * per;
  ptrdiff_t best_nm = 1, best_nn = 1;
  double best = 1e300;
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
  return {ceil_div(mt, best_nm) * rows_per_tile, ceil_div(nt, best_nn) * nr};
}

void gemm_parallel(const GemmConfig& g, Isa isa, int threads, ptrdiff_t M, ptrdiff_t N,
                   ptrdiff_t K, const float* A, ptrdiff_t lda, const void* packed, float* C,
                   ptrdiff_t ldc, const Epilogue& ep) {
  if (M <= 0 || N <= 0) return;
  const double work = double(M) * double(N) * double(K > 0 ? K : 1);
  const double bytes = 4.0 * (double(M) * double(K) + double(K) * double(N) + double(M) * double(N));
  if (threads_for(threads, isa, work, bytes) <= 1) {
    g.run(M, N, K, A, lda, packed, C, ldc, &ep, 0, N);
    return;
  }
  const GemmBlocks b = gemm_blocks(threads, work, M, N, ceil_div(M, g.mr), g.mr, g.nr);
  const ptrdiff_t mb = b.mb, nb = b.nb, nm = ceil_div(M, mb), nn = ceil_div(N, nb);
  parallel_for(threads, nm * nn, [&](ptrdiff_t t, int) {
    const ptrdiff_t im = t / nn, in = t % nn;
    const ptrdiff_t m0 = im * mb, m1 = std::min(M, m0 + mb);
    const ptrdiff_t n0 = in * nb, n1 = std::min(N, n0 + nb);
    Epilogue e = ep;
    if (e.residual) e.residual += m0 * e.ldr;
    g.run(m1 - m0, N, K, A + m0 * lda, lda, packed, C + m0 * ldc, ldc, &e, n0, n1);
  });
}

void check_gemm(const GemmConfig& g) {
  if (!g.run || !g.pack || !g.packed_bytes || g.mr <= 0 || g.nr <= 0)
    throw std::logic_error("the f32_gemm entry of the kernel table is empty");
}

const GemmConfig& gemm_for(const GemmConfig& g, int64_t N) {
  const GemmConfig* n = g.narrow;
  if (n == nullptr || n->run == nullptr || N <= 0) return g;
  const int64_t wide = ceil_div(N, g.nr) * g.nr, narrow = ceil_div(N, n->nr) * n->nr;
  return 4 * narrow <= 3 * wide ? *n : g;
}

AlignedBuffer pack_gemm(const GemmConfig& g, int64_t K, int64_t N, const float* B, int64_t ldb) {
  AlignedBuffer p(g.packed_bytes(K, N), g.pack_align);
  g.pack(K, N, B, ldb, p.get());
  return p;
}

Epilogue make_ep(const EpilogueSpec& s, const ExecCtx& c, ptrdiff_t ldr) {
  Epilogue e{};
  e.bias = s.bias.empty() ? nullptr : s.bias.data();
  e.residual = s.residual >= 0 ? c.ptr[s.residual] : nullptr;
  e.ldr = ldr;
  e.act = s.act;
  e.lo = s.lo;
  e.hi = s.hi;
  e.residual_after_act = s.residual_after_act ? 1 : 0;
  return e;
}

namespace {

// Copies n floats. A library call costs more than the copy for the few floats of a
// narrow conv's window row (a 3-channel stem conv copies 9 floats at a time, 37K times
// per 112x112 image), so short runs use fixed-size copies the compiler inlines (a plain
// loop would be turned back into a call).
inline void copy_floats(float* dst, const float* src, ptrdiff_t n) {
  if (n > 32) {
    std::memcpy(dst, src, sizeof(float) * size_t(n));
    return;
  }
  for (; n >= 8; n -= 8, dst += 8, src += 8) std::memcpy(dst, src, 8 * sizeof(float));
  if (n >= 4) {
    std::memcpy(dst, src, 4 * sizeof(float));
    dst += 4, src += 4, n -= 4;
  }
  if (n >= 2) {
    std::memcpy(dst, src, 2 * sizeof(float));
    dst += 2, src += 2, n -= 2;
  }
  if (n) *dst = *src;
}

struct GemmStep final : Step {
  GemmConfig g;
  int threads;
  int64_t rows, K, N;
  AlignedBuffer packed;  // dense; empty when the sparse kernel always runs
  std::unique_ptr<SparseWeight> sp;
  SparseChoice choice;  // with sp: the rows at which it runs (else the dense GEMM)
  EpilogueSpec eps;
  Work work(ptrdiff_t batch) const override {
    const double M = double(batch) * double(rows);
    return {M * double(N) * double(K), 4.0 * (M * double(K) + double(K) * double(N) + M * double(N))};
  }
  size_t scratch_floats() const override { return sp ? size_t(threads) * sp->scratch_floats() : 0; }
  void run(const ExecCtx& c) const override {
    const Epilogue e = make_ep(eps, c, N);
    const ptrdiff_t M = c.batch * rows;
    if (sp && choice.sparse_at(M)) {
      sparse_parallel(*sp, c.isa, threads, M, c.ptr[reads[0]], K, c.ptr[writes[0]], N, e, c.scratch);
      return;
    }
    gemm_parallel(g, c.isa, threads, M, N, K, c.ptr[reads[0]], K, packed.get(),
                  c.ptr[writes[0]], N, e);
  }
  size_t weight_bytes() const override {
    return packed.size() + (sp ? sp->packed.size() + sp->qpacked.size() : 0);
  }
};

struct ConvStep final : Step {
  GemmConfig g;
  int threads;
  ConvGeom geo;
  int64_t Kd;    // KH * KW * C
  int64_t tile;  // output pixels per im2col tile (multiple of mr)
  AlignedBuffer packed;  // dense; empty when the sparse kernel always runs
  std::unique_ptr<SparseWeight> sp;
  SparseChoice choice;  // with sp: the output pixels per run at which it runs
  EpilogueSpec eps;

  size_t per_thread() const { return size_t(tile) * size_t(Kd) + (sp ? sp->scratch_floats() : 0); }
  size_t scratch_floats() const override { return size_t(threads) * per_thread(); }
  size_t weight_bytes() const override {
    return packed.size() + (sp ? sp->packed.size() + sp->qpacked.size() : 0);
  }

  // Rows [p0, p0 + rows) of the im2col matrix (output pixels over the whole batch), one
  // output-row segment at a time: per kernel row, the input row is checked once, and the
  // pixels whose window lies inside it horizontally copy one contiguous run each (a
  // 3-channel stem conv spent as long on per-pixel index and bounds work as on copying).
  void im2col(const float* x, ptrdiff_t p0, ptrdiff_t rows, float* buf) const {
    const ConvGeom& q = geo;
    const ptrdiff_t OHW = q.OH * q.OW, C = q.C;
    const ptrdiff_t krow = q.KW * C;
    // Output columns whose window is inside horizontally (dilation 1): [in0, in1).
    ptrdiff_t in0 = q.OW, in1 = q.OW;
    if (q.dw == 1) {
      in0 = std::min<ptrdiff_t>(q.OW, ceil_div(q.pl, q.sw));
      const ptrdiff_t num = q.W + q.pl - q.KW;
      in1 = num < 0 ? in0 : std::clamp<ptrdiff_t>(num / q.sw + 1, in0, q.OW);
    }
    ptrdiff_t r = 0, p = p0;
    while (r < rows) {
      const ptrdiff_t n = p / OHW, oh = p % OHW / q.OW, ow0 = p % q.OW;
      const ptrdiff_t ow1 = std::min<ptrdiff_t>(q.OW, ow0 + (rows - r));  // this segment
      const float* img = x + n * q.H * q.W * C;
      float* seg = buf + r * Kd;
      for (ptrdiff_t kh = 0; kh < q.KH; ++kh) {
        const ptrdiff_t ih = oh * q.sh - q.pt + kh * q.dh;
        float* d = seg + kh * krow;
        if (ih < 0 || ih >= q.H) {
          for (ptrdiff_t ow = ow0; ow < ow1; ++ow)
            std::memset(d + (ow - ow0) * Kd, 0, sizeof(float) * krow);
          continue;
        }
        const float* src = img + ih * q.W * C;
        auto edge = [&](ptrdiff_t ow) {  // a window crossing the left or right edge
          const ptrdiff_t iw0 = ow * q.sw - q.pl;
          float* dd = d + (ow - ow0) * Kd;
          for (ptrdiff_t kw = 0; kw < q.KW; ++kw) {
            const ptrdiff_t iw = iw0 + kw * q.dw;
            if (iw < 0 || iw >= q.W)
              std::memset(dd + kw * C, 0, sizeof(float) * C);
            else
              copy_floats(dd + kw * C, src + iw * C, C);
          }
        };
        const ptrdiff_t a = std::clamp(in0, ow0, ow1), b = std::clamp(in1, a, ow1);
        for (ptrdiff_t ow = ow0; ow < a; ++ow) edge(ow);
        for (ptrdiff_t ow = a; ow < b; ++ow)
          copy_floats(d + (ow - ow0) * Kd, src + (ow * q.sw - q.pl) * C, krow);
        for (ptrdiff_t ow = b; ow < ow1; ++ow) edge(ow);
      }
      r += ow1 - ow0;
      p += ow1 - ow0;
    }
  }

  Work work(ptrdiff_t batch) const override {
    const double P = double(batch * geo.images) * double(geo.OH * geo.OW);
    const double in = double(batch * geo.images) * double(geo.H * geo.W * geo.C);
    return {P * double(Kd) * double(geo.OC),
            4.0 * (in + double(Kd) * double(geo.OC) + P * double(geo.OC + Kd))};
  }

  void run(const ExecCtx& c) const override {
    const float* x = c.ptr[reads[0]];
    float* y = c.ptr[writes[0]];
    const Epilogue e0 = make_ep(eps, c, geo.OC);
    const ptrdiff_t P = c.batch * geo.images * geo.OH * geo.OW;
    ptrdiff_t t = tile;
    if (ceil_div(P, t) < threads) t = std::max<ptrdiff_t>(g.mr, ceil_div(ceil_div(P, threads), g.mr) * g.mr);
    t = std::min<ptrdiff_t>(t, tile);
    const ptrdiff_t tasks = ceil_div(P, t);
    const int nt = threads_for(threads, c.isa, work(c.batch));
    if (sp && choice.sparse_at(P)) {
      // im2col tiles into the sparse product; few tiles also split the output channels
      // into ranges of equal nonzeros.
      const ptrdiff_t parts =
          nt <= 1 || tasks >= 2 * nt ? 1 : std::min<ptrdiff_t>(sp->h.G, ceil_div(2 * nt, tasks));
      parallel_for(nt, tasks * parts, [&](ptrdiff_t i, int tid) {
        const ptrdiff_t p0 = (i / parts) * t, rows = std::min(t, P - p0), part = i % parts;
        float* buf = c.scratch + size_t(tid) * per_thread();
        im2col(x, p0, rows, buf);
        Epilogue e = e0;
        if (e.residual) e.residual += p0 * geo.OC;
        sparse_rows(*sp, buf, Kd, rows, y + p0 * geo.OC, geo.OC, e, group_split(*sp, part, parts),
                    group_split(*sp, part + 1, parts), buf + size_t(tile) * size_t(Kd));
      });
      return;
    }
    if (nt > 1 && P < 2 * ptrdiff_t(nt) * g.mr && P <= tile && geo.OC >= 2 * g.nr) {
      // Too few output pixels for two row tiles per thread (a 4x4 map is 16 rows: 12 + 4
      // with mr = 12): every task builds the whole im2col matrix in its own scratch and
      // computes a block of output channels. Building it once and sharing it cost more:
      // its cache lines then move between cores, in this step and the next one that
      // reuses the scratch.
      const ptrdiff_t nblocks = std::min<ptrdiff_t>(nt, ceil_div(geo.OC, g.nr));
      const ptrdiff_t nb = ceil_div(ceil_div(geo.OC, g.nr), nblocks) * g.nr;
      parallel_for(nt, ceil_div(geo.OC, nb), [&](ptrdiff_t i, int tid) {
        float* buf = c.scratch + size_t(tid) * per_thread();
        im2col(x, 0, P, buf);
        const ptrdiff_t n0 = i * nb, n1 = std::min<ptrdiff_t>(geo.OC, n0 + nb);
        g.run(P, geo.OC, Kd, buf, Kd, packed.get(), y, geo.OC, &e0, n0, n1);
      });
      return;
    }
    parallel_for(nt, tasks, [&](ptrdiff_t i, int tid) {
      const ptrdiff_t p0 = i * t, rows = std::min(t, P - p0);
      float* buf = c.scratch + size_t(tid) * per_thread();
      im2col(x, p0, rows, buf);
      Epilogue e = e0;
      if (e.residual) e.residual += p0 * geo.OC;
      g.run(rows, geo.OC, Kd, buf, Kd, packed.get(), y + p0 * geo.OC, geo.OC, &e, 0, geo.OC);
    });
  }
};

}  // namespace

namespace {

// "f32_spmm__avx512 (16x1 blocks, 90.0% zeros stored)" and, when both kernels are kept,
// the rows at which the dense one runs.
std::string sparse_name(const SparseWeight& w, const SparseChoice& c, const GemmConfig* dense) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "%s (%s, %.1f%% zeros stored)", w.cfg.name,
                w.h.R == 1 ? "unstructured" : (std::to_string(w.h.R) + "x1 blocks").c_str(),
                100.0 * (1.0 - c.density));
  std::string s = buf;
  if (dense) {
    s += "; dense " + std::string(dense->name) + " from " + std::to_string(c.dense_from) + " rows";
    if (c.sparse_from != INT64_MAX) s += " to " + std::to_string(c.sparse_from - 1);
  }
  return s;
}

// The int8 values of an int8 weight's dense view B [K, N] (B = fl(Q * scale[n]) with |Q|
// <= 127 and scale > 0, so B / scale is within 2^-17 of Q: rounding recovers Q exactly);
// checked, so a view that is not one is an error, not a wrong product.
std::vector<int8_t> int8_values(int64_t K, int64_t N, const float* B, const float* scale) {
  std::vector<int8_t> Q(size_t(K) * size_t(N));
  for (int64_t k = 0; k < K; ++k)
    for (int64_t n = 0; n < N; ++n) {
      const float b = B[k * N + n];
      const double q = std::nearbyint(double(b) / double(scale[n]));
      if (!(q >= -127.0 && q <= 127.0) || float(q) * scale[n] != b)
        throw std::invalid_argument("int8 weight: value " + std::to_string(b) + " of output channel " +
                                    std::to_string(n) + " is not an int8 in [-127, 127] times its scale " +
                                    std::to_string(scale[n]));
      Q[size_t(k * N + n)] = static_cast<int8_t>(q);
    }
  return Q;
}

// An int8 weight's sparse packings as the rows of its runs need them (the row kernel for
// at most kSpmvMaxRows rows, the dequantized f32 tiles above), and its summary name.
std::string pack_int8_sparse(std::unique_ptr<SparseWeight>& sp, const KernelTable& kt,
                             const SparseChoice& c, int64_t K, int64_t N, const float* B,
                             const float* scale, int64_t rows_hint) {
  const bool few = rows_hint >= 0 ? rows_hint <= kSpmvMaxRows : c.sparse_at(1) || c.sparse_at(2);
  const bool many = rows_hint >= 0 ? rows_hint > kSpmvMaxRows
                                   : c.dense_from > kSpmvMaxRows + 1 || c.sparse_from != INT64_MAX;
  const std::vector<int8_t> Q = int8_values(K, N, B, scale);
  sp = std::make_unique<SparseWeight>(pack_sparse_int8(kt, K, N, Q.data(), scale, B, int32_t(c.R),
                                                       few || !many, many));
  std::string s = sp->qpacked.size() ? std::string(sp->qcfg.name) + " int8w" : "";
  if (sp->packed.size()) s += std::string(s.empty() ? "" : " + ") + sp->cfg.name + " dequantized";
  return s;
}

// Packs B [K, N] as the cost model chose: dense only, sparse only, or both. Returns the
// kernel name for plan summaries. scale: an int8 weight's per-column scales (B is its
// dense view), else nullptr.
template <class S>
std::string pack_weights(S& s, const KernelTable& kt, const GemmConfig& g, int64_t K, int64_t N,
                         const float* B, SparseMode mode, int64_t rows_hint,
                         const float* scale = nullptr) {
  SparseChoice c = choose_sparse(kt, K, N, B, N, mode, scale ? 1.0 : 4.0);
  // A graph with a fixed batch knows its rows: keep only the kernel that runs.
  const bool sparse = rows_hint < 0 ? c.ever_sparse() : c.sparse_at(rows_hint);
  const bool dense = rows_hint < 0 ? c.ever_dense() : !c.sparse_at(rows_hint);
  if (dense) s.packed = pack_gemm(g, K, N, B, N);
  if (!sparse) return g.name;
  std::string qname;
  if (scale)
    qname = pack_int8_sparse(s.sp, kt, c, K, N, B, scale, rows_hint);
  else
    s.sp = std::make_unique<SparseWeight>(pack_sparse(kt, K, N, B, N, c.R));
  if (!dense) c.dense_from = INT64_MAX;  // only the sparse kernel is packed
  s.choice = c;
  std::string name = sparse_name(*s.sp, c, dense ? &g : nullptr);
  if (scale) name = qname + name.substr(std::strlen(s.sp->cfg.name));
  return name;
}

}  // namespace

const GemmConfig& gemm_family(const KernelTable& kt, WeightType wt) {
  const GemmConfig& g = wt == WeightType::F16    ? kt.f16w_gemm
                        : wt == WeightType::BF16 ? kt.bf16w_gemm
                                                 : kt.f32_gemm;
  check_gemm(g);
  return g;
}

std::unique_ptr<Step> make_gemm_step(const KernelTable& kt, int threads, int x, int y,
                                     int64_t rows_per_sample, int64_t K, int64_t N,
                                     const float* W, EpilogueSpec ep, SparseMode mode,
                                     int64_t rows_hint, WeightType wt, const float* scale) {
  const GemmConfig& g = gemm_for(gemm_family(kt, wt), N);
  if (wt == WeightType::F16 || wt == WeightType::BF16) mode = SparseMode::Dense;
  if (wt == WeightType::Int8 && !scale) throw std::invalid_argument("an int8 weight needs its scales");
  if (wt != WeightType::Int8) scale = nullptr;
  auto s = new_step<GemmStep>("gemm", g.name, {x}, {y});
  s->g = g;
  s->threads = threads;
  s->rows = rows_per_sample;
  s->K = K;
  s->N = N;
  s->kernel = pack_weights(*s, kt, g, K, N, W, mode, rows_hint, scale);
  if (ep.residual >= 0) s->reads.push_back(ep.residual);
  s->eps = std::move(ep);
  return s;
}

std::unique_ptr<Step> make_conv_step(const KernelTable& kt, int threads, int x, int y,
                                     const ConvGeom& q, const float* W, EpilogueSpec ep,
                                     SparseMode mode, bool static_batch, WeightType wt,
                                     const float* scale) {
  if (wt == WeightType::F16 || wt == WeightType::BF16) mode = SparseMode::Dense;
  if (wt == WeightType::Int8 && !scale) throw std::invalid_argument("an int8 weight needs its scales");
  if (wt != WeightType::Int8) scale = nullptr;
  const int64_t Kd = q.KH * q.KW * q.C;
  const std::vector<float> B = im2col_weight(q, W);
  const bool pointwise = q.KH == 1 && q.KW == 1 && q.sh == 1 && q.sw == 1 && q.pt == 0 &&
                         q.pl == 0 && q.OH == q.H && q.OW == q.W;
  const int64_t pixels = q.images * q.OH * q.OW;
  if (pointwise) {
    auto s = make_gemm_step(kt, threads, x, y, pixels, q.C, q.OC, B.data(), std::move(ep), mode,
                            static_batch ? pixels : -1, wt, scale);
    s->op = "conv1x1";
    return s;
  }
  const GemmConfig& g = gemm_for(gemm_family(kt, wt), q.OC);
  auto s = new_step<ConvStep>("conv", "", {x}, {y});
  s->g = g;
  s->threads = threads;
  s->geo = q;
  s->Kd = Kd;
  const int64_t mr = g.mr;
  int64_t tile = 65536 / std::max<int64_t>(Kd, 1);
  tile = std::clamp<int64_t>(tile, 64, 256);
  s->tile = std::max<int64_t>(mr, tile / mr * mr);
  s->kernel = "im2col+" + pack_weights(*s, kt, g, Kd, q.OC, B.data(), mode, static_batch ? pixels : -1, scale);
  if (ep.residual >= 0) s->reads.push_back(ep.residual);
  s->eps = std::move(ep);
  return s;
}

}  // namespace pyrt
