// Quantized steps: uint8 activations, int8 weights (qs8_qc8w_gemm), requantized in the
// epilogue. The layout of a uint8 value: rows of `cols` bytes at a stride of
// u8_stride(cols) (a multiple of 4, so every sample starts on a float boundary of the
// plan's buffers); an NHWC image's row is a pixel. A value's scale and zero point are
// constants (static quantization: a QDQ node) or, when quantized at run time
// (dynamic), one float and one int32 per group of rows in two more values.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "parallel.h"
#include "pyrt/dispatch.h"
#include "qgemm.h"
#include "steps.h"
#include "steps_quant.h"

namespace pyrt {

namespace {

void check_qgemm(const QGemmConfig& g) {
  if (!g.run || !g.pack || !g.packed_bytes || !g.quantize_rows || !g.quantize || g.mr <= 0 ||
      g.nr <= 0)
    throw std::logic_error("the qs8_qc8w_gemm entry of the kernel table is empty");
}

// ------------------------------------------------------------------ quantize
// Pixels [0, n) of C <= 4 planes of bytes (tmp[ch][i]) as one 32-bit word each at y
// (channel ch in byte ch, the bytes past C zero): a word store per pixel, which the
// compiler vectorizes, where a byte store per channel cost 1.6 ns per value (the
// stem input of a 224x224 RGB image: 241 us).
template <int C>
void interleave_pixels(const uint8_t (*tmp)[kPlanarChunk], ptrdiff_t n, uint8_t* y) {
  for (ptrdiff_t i = 0; i < n; ++i) {
    uint32_t w = 0;
    for (int ch = 0; ch < C; ++ch) w |= uint32_t(tmp[ch][i]) << (8 * ch);
    std::memcpy(y + 4 * i, &w, 4);
  }
}

// n bytes (a multiple of 4: whole uint8 pixels) from s to d: word by word inline for a
// few pixels of a thin image (memcpy's call cost more than such a copy: the stem conv's
// 12-byte window rows), memcpy for longer runs.
inline void copy_pixels(uint8_t* d, const uint8_t* s, ptrdiff_t n) {
  if (n > 64) {
    std::memcpy(d, s, size_t(n));
    return;
  }
  for (ptrdiff_t i = 0; i < n; i += 4) {
    uint32_t w;
    std::memcpy(&w, s + i, 4);
    std::memcpy(d + i, &w, 4);
  }
}

// f32 rows [rows, cols] -> uint8 rows at stride u8_stride(cols). Static: one scale and
// zero point. Dynamic: per group of `group` rows, the range of the group (with 0)
// gives scale and zero point, written to two more values.
struct QuantizeStep final : Step {
  int64_t rows, cols, group;  // per sample; group = 0: static
  bool planar = false;        // static only: the input per sample is [cols][rows]
  float scale = 1.f;
  int32_t zp = 0;
  const QGemmConfig* q = nullptr;  // its quantize / quantize_rows
  int threads = 1;
  Work work(ptrdiff_t batch) const override {
    const double n = double(batch) * double(rows) * double(cols);
    return {n * (group ? 2.0 : 1.0), 5.0 * n};
  }
  void run(const ExecCtx& c) const override {
    const float* x = c.ptr[reads[0]];
    uint8_t* y = reinterpret_cast<uint8_t*>(c.ptr[writes[0]]);
    const ptrdiff_t ld = u8_stride(cols), R = c.batch * rows;
    // A row costs about 10 cycles per 16 values (a min/max pass, then a quantize pass):
    // 64 rows of 784 took 11 us on one thread, so from 16K values the rows split.
    const int nt = R >= 2 && R * cols >= 16384 ? threads : 1;
    if (planar) {  // an NCHW image of a few channels: each plane's chunk, then interleaved
      const ptrdiff_t per_s = ceil_div(rows, kPlanarChunk), tasks = c.batch * per_s;
      parallel_for(tasks >= 2 ? nt : 1, tasks, [&](ptrdiff_t t, int) {
        const ptrdiff_t b = t / per_s, p0 = (t % per_s) * kPlanarChunk;
        const ptrdiff_t n = std::min<ptrdiff_t>(kPlanarChunk, rows - p0);
        alignas(64) uint8_t tmp[kPlanarMaxCols][kPlanarChunk];
        const float* xs = x + b * rows * cols + p0;
        for (ptrdiff_t ch = 0; ch < cols; ++ch)
          q->quantize(1, n, xs + ch * rows, n, tmp[ch], kPlanarChunk, scale, zp);
        uint8_t* yb = y + (b * rows + p0) * ld;
        switch (cols) {  // ld is 4: one 32-bit word per pixel, padding bytes 0
          case 1: interleave_pixels<1>(tmp, n, yb); break;
          case 2: interleave_pixels<2>(tmp, n, yb); break;
          case 3: interleave_pixels<3>(tmp, n, yb); break;
          default: interleave_pixels<4>(tmp, n, yb); break;
        }
      });
      return;
    }
    if (group <= 1) {  // static, or per row: the kernel's quantizers on row ranges
      float* sc = group ? c.ptr[writes[1]] : nullptr;
      int32_t* zs = group ? reinterpret_cast<int32_t*>(c.ptr[writes[2]]) : nullptr;
      const ptrdiff_t per = ceil_div(R, nt);
      parallel_for(nt, ceil_div(R, per), [&](ptrdiff_t t, int) {
        const ptrdiff_t r0 = t * per, n = std::min(per, R - r0);
        if (group)
          q->quantize_rows(n, cols, x + r0 * cols, cols, y + r0 * ld, ld, sc + r0, zs + r0);
        else
          q->quantize(n, cols, x + r0 * cols, cols, y + r0 * ld, ld, scale, zp);
      });
      return;
    }
    // per image (group rows): the range of the image, then the kernel's quantize
    float* sc = c.ptr[writes[1]];
    int32_t* zs = reinterpret_cast<int32_t*>(c.ptr[writes[2]]);
    parallel_for(nt, R / group, [&](ptrdiff_t gi, int) {
      const float* xg = x + gi * group * cols;
      const ptrdiff_t n = group * cols;
      float lo = 0.f, hi = 0.f;
      for (ptrdiff_t i = 0; i < n; ++i) {
        lo = std::min(lo, xg[i]);
        hi = std::max(hi, xg[i]);
      }
      float s = (hi - lo) / 255.0f;
      if (!(s > 0.0f) || !std::isfinite(s)) s = 1.0f;
      const int32_t z = int32_t(std::clamp(std::nearbyint(-lo / s), 0.0f, 255.0f));
      sc[gi] = s;
      zs[gi] = z;
      q->quantize(group, cols, xg, cols, y + gi * group * ld, ld, s, z);
    });
  }
};

// uint8 rows -> f32: (q - zp) * scale.
struct DequantizeStep final : Step {
  int64_t rows, cols;
  float scale;
  int32_t zp;
  Work work(ptrdiff_t batch) const override {
    const double n = double(batch) * double(rows) * double(cols);
    return {n, 5.0 * n};
  }
  void run(const ExecCtx& c) const override {
    const uint8_t* x = reinterpret_cast<const uint8_t*>(c.ptr[reads[0]]);
    float* y = c.ptr[writes[0]];
    const ptrdiff_t ld = u8_stride(cols), R = c.batch * rows;
    for (ptrdiff_t r = 0; r < R; ++r) {
      const uint8_t* xr = x + r * ld;
      float* yr = y + r * cols;
      for (ptrdiff_t k = 0; k < cols; ++k) yr[k] = float(int32_t(xr[k]) - zp) * scale;
    }
  }
};

// The build-time parts of a quantized step's epilogue: weight scales, bias, activation,
// output; the residual and the input's scale and zero point are the run's.
QGemmEpilogue qep_fixed(const QuantEpilogue& q) {
  QGemmEpilogue e{};
  e.w_scale = q.w_scale.data();
  e.bias = q.bias.empty() ? nullptr : q.bias.data();
  e.residual_after_act = q.residual_after_act ? 1 : 0;
  e.act = q.act;
  e.lo = q.lo;
  e.hi = q.hi;
  e.out_u8 = q.out.is_u8() ? 1 : 0;
  e.out_scale = q.out.scale;
  e.out_zp = q.out.zp;
  return e;
}

// The run-time epilogue of a quantized step: its build-time parts, the residual
// resolved for this run, and the input's scale and zero point (constants, or the
// values of a dynamic quantize step from row `group0` on).
QGemmEpilogue make_qep(const QuantEpilogue& q, const QuantInput& in, const ExecCtx& c,
                       ptrdiff_t ldr, ptrdiff_t group0) {
  QGemmEpilogue e = qep_fixed(q);
  if (q.residual >= 0 && q.res.is_u8()) {
    e.residual_u8 = reinterpret_cast<const uint8_t*>(c.ptr[q.residual]);
    e.res_scale = q.res.scale;
    e.res_zp = q.res.zp;
    e.ldr = u8_stride(ldr);
  } else {
    e.residual = q.residual >= 0 ? c.ptr[q.residual] : nullptr;
    e.ldr = ldr;
  }
  if (in.scale_v < 0) {
    e.a_scale = &in.spec.scale;
    e.a_zp = &in.spec.zp;
    e.a_stride = 0;
  } else {
    e.a_scale = c.ptr[in.scale_v] + group0;
    e.a_zp = reinterpret_cast<const int32_t*>(c.ptr[in.zp_v]) + group0;
    e.a_stride = 1;
  }
  return e;
}

// y[rows, N] = requant(x_u8[rows, K] @ W[K, N]); rows = batch * rows_per_sample. With a
// dynamic input every row has its own scale (group of one row).
struct QGemmStep final : Step {
  QGemmConfig g;
  int threads;
  int64_t rows, K, N;
  AlignedBuffer packed;
  QuantInput in;
  QuantEpilogue ep;
  Work work(ptrdiff_t batch) const override {
    const double M = double(batch) * double(rows);
    return {M * double(N) * double(K), M * double(K) + double(K) * double(N) + 4.0 * M * double(N)};
  }
  size_t weight_bytes() const override { return packed.size(); }
  void run(const ExecCtx& c) const override {
    const ptrdiff_t M = c.batch * rows;
    const QGemmEpilogue e = make_qep(ep, in, c, N, 0);
    const ptrdiff_t ldc = ep.out.is_u8() ? u8_stride(N) : N;
    qgemm_parallel(g, c.isa, threads, M, N, K, reinterpret_cast<const uint8_t*>(c.ptr[reads[0]]),
                   u8_stride(K), packed.get(), c.ptr[writes[0]], ldc, e);
  }
};

// Dense layers with dynamically quantized inputs, each layer's float output read by the
// next alone (an MLP): y = L_n(... L_1(x)), every layer quantizing its input per row
// (quantize_rows) into the int8 GEMM with a float epilogue. Rows pass through all the
// layers in blocks, one block per task, so a block's intermediate rows stay in its
// thread's cache and a run is one parallel loop: the separate quantize and qgemm steps
// were two loops per layer, each a hand-out of tasks and a wait, and the quantize loops
// split 11 us of work (MLP 784-512-256-10, batch 64) at a loss. The weights are small
// enough to stay in L2 (the builder's cap), so every block streaming them costs little.
// Same kernels, same per-row quantization: bit-identical to the separate steps.
struct QDenseChainStep final : Step {
  struct Layer {
    int64_t K, N;
    AlignedBuffer packed;
    QuantEpilogue ep;
  };
  QGemmConfig g;
  int threads;
  int64_t rows;  // per sample
  std::vector<Layer> layers;
  int64_t q_bytes = 0, mid = 0;  // per row: widest uint8 input (u8_stride), widest hidden output
  // A block of r rows: its uint8 input rows, float hidden rows, scales and zero points,
  // in block_floats(r) floats (whole cache lines, so threads' blocks share none).
  struct Block {
    uint8_t* q;
    float* mid;
    float* scale;
    int32_t* zp;
  };
  size_t block_floats(int64_t r) const {
    return size_t(ceil_div(r * (q_bytes / 4 + mid + 2), 16) * 16);
  }
  Block block(float* base, int64_t r) const {
    float* m = base + r * (q_bytes / 4);
    return {reinterpret_cast<uint8_t*>(base), m, m + r * mid, reinterpret_cast<int32_t*>(m + r * mid + r)};
  }
  size_t scratch_floats() const override { return size_t(threads) * block_floats(kChainBlockRows); }
  size_t weight_bytes() const override {
    size_t b = 0;
    for (const Layer& l : layers) b += l.packed.size();
    return b;
  }
  Work work(ptrdiff_t batch) const override {
    const double M = double(batch) * double(rows);
    Work w;
    for (const Layer& l : layers) {
      w.macs += M * double(l.N) * double(l.K);
      w.bytes += double(l.K) * double(l.N) + 4.0 * M * double(l.K + l.N);
    }
    return w;
  }
  static QGemmEpilogue layer_ep(const Layer& l, const Block& b) {
    QGemmEpilogue e = qep_fixed(l.ep);  // no residual (make_qdense_chain_step checks)
    e.a_scale = b.scale;
    e.a_zp = b.zp;
    e.a_stride = 1;
    return e;
  }
  // Rows [0, n) of x (row stride layers[0].K) through every layer into y, in block b
  // (n rows at most); each product on `nt` threads (1: this thread alone).
  void run_rows(Isa isa, int nt, ptrdiff_t n, const float* x, float* y, const Block& b) const {
    const float* in = x;
    for (size_t i = 0; i < layers.size(); ++i) {
      const Layer& l = layers[i];
      const ptrdiff_t ldq = u8_stride(l.K);
      g.quantize_rows(n, l.K, in, l.K, b.q, ldq, b.scale, b.zp);
      float* out = i + 1 == layers.size() ? y : b.mid;
      qgemm_parallel(g, isa, nt, n, l.N, l.K, b.q, ldq, l.packed.get(), out, l.N, layer_ep(l, b));
      in = b.mid;
    }
  }
  void run(const ExecCtx& c) const override {
    const ptrdiff_t M = c.batch * rows;
    if (M <= 0) return;
    const float* x = c.ptr[reads[0]];
    float* y = c.ptr[writes[0]];
    const int nt = threads_for(threads, c.isa, work(c.batch));
    const ptrdiff_t K0 = layers.front().K, Nl = layers.back().N;
    // Blocks of whole row tiles, about two per thread (the pool hands them out, so a
    // thread the OS delays leaves its share to the others).
    const ptrdiff_t mr = g.mr;
    const ptrdiff_t br = nt > 1 ? std::clamp<ptrdiff_t>(ceil_div(ceil_div(M, 2 * nt), mr) * mr, mr,
                                                        kChainBlockRows)
                                : kChainBlockRows;
    const ptrdiff_t blocks = ceil_div(M, br);
    if (nt > 1 && blocks < nt) {
      // Too few rows to give every thread a block (batch 1): all rows as one block, each
      // product split by columns (qgemm_parallel); M < nt * kChainBlockRows rows fit the
      // scratch as one block.
      run_rows(c.isa, nt, M, x, y, block(c.scratch, M));
      return;
    }
    const size_t per = block_floats(kChainBlockRows);
    parallel_for(nt, blocks, [&](ptrdiff_t t, int tid) {
      const ptrdiff_t r0 = t * br, n = std::min(br, M - r0);
      run_rows(c.isa, 1, n, x + r0 * K0, y + r0 * Nl,
               block(c.scratch + size_t(tid) * per, kChainBlockRows));
    });
  }
};

// Group-1 conv on uint8 NHWC images: im2col tiles of uint8 (padding = the input's zero
// point, so a padded tap adds exactly 0) into the int8 GEMM. Tiles never cross images,
// so a dynamically quantized input (one scale per image) has one scale per tile.
struct QConvStep final : Step {
  QGemmConfig g;
  int threads;
  ConvGeom geo;
  int64_t Kd, tile;
  AlignedBuffer packed;
  QuantInput in;
  QuantEpilogue ep;
  size_t per_thread() const { return size_t(ceil_div(tile * Kd, 4)); }  // floats
  size_t scratch_floats() const override { return size_t(threads) * per_thread(); }
  size_t weight_bytes() const override { return packed.size(); }
  Work work(ptrdiff_t batch) const override {
    const double P = double(batch * geo.images) * double(geo.OH * geo.OW);
    return {P * double(Kd) * double(geo.OC), P * double(Kd + 4 * geo.OC) + double(Kd * geo.OC)};
  }
  // Rows [p0, p0 + n) of one image's im2col matrix. A tap is a whole pixel of Cp =
  // u8_stride(C) bytes (the weight rows of the padding bytes are zero), so a window row
  // inside the image is one copy of KW * Cp bytes: a 3-channel stem conv then copies
  // 12 bytes per kernel row instead of 3 per tap.
  void im2col(const uint8_t* img, ptrdiff_t p0, ptrdiff_t n, uint8_t pad, uint8_t* buf) const {
    const ConvGeom& q = geo;
    const ptrdiff_t Cp = u8_stride(q.C), krow = q.KW * Cp;
    const ptrdiff_t row_bytes = q.W * Cp, kh_bytes = q.dh * row_bytes;
    // Output columns whose window lies inside the image horizontally: [ow_a, ow_b).
    const ptrdiff_t ow_a = q.dw == 1 ? ceil_div(q.pl, q.sw) : q.OW;
    const ptrdiff_t ow_b = q.dw == 1 && q.W + q.pl >= q.KW
                               ? std::clamp<ptrdiff_t>((q.W - q.KW + q.pl) / q.sw + 1, ow_a, q.OW)
                               : ow_a;
    ptrdiff_t r = 0;
    while (r < n) {
      // One output image row at a time (one division): its pixels are consecutive.
      const ptrdiff_t oh = (p0 + r) / q.OW, ow0 = (p0 + r) % q.OW;
      const ptrdiff_t count = std::min(n - r, q.OW - ow0);
      const ptrdiff_t ih0 = oh * q.sh - q.pt;
      const ptrdiff_t off0 = ih0 * row_bytes;  // offsets: a row above the image is no pointer
      const bool rows_in = ih0 >= 0 && ih0 + (q.KH - 1) * q.dh < q.H;
      // Any pixel, window rows one by one with padding: the borders.
      auto edge = [&](ptrdiff_t ow) {
        const ptrdiff_t iw0 = ow * q.sw - q.pl;
        uint8_t* d = buf + (r + ow - ow0) * Kd;
        ptrdiff_t off = off0;
        for (ptrdiff_t kh = 0; kh < q.KH; ++kh, d += krow, off += kh_bytes) {
          const ptrdiff_t ih = ih0 + kh * q.dh;
          for (ptrdiff_t kw = 0; kw < q.KW; ++kw) {
            const ptrdiff_t iw = iw0 + kw * q.dw;
            if (ih < 0 || ih >= q.H || iw < 0 || iw >= q.W)
              std::memset(d + kw * Cp, pad, size_t(Cp));
            else
              copy_pixels(d + kw * Cp, img + off + iw * Cp, Cp);
          }
        }
      };
      const ptrdiff_t e = ow0 + count;
      const ptrdiff_t a = rows_in ? std::clamp(ow_a, ow0, e) : e, b = rows_in ? std::clamp(ow_b, a, e) : e;
      for (ptrdiff_t ow = ow0; ow < a; ++ow) edge(ow);
      if (b > a)
        im2col_inside(buf + (r + a - ow0) * Kd, img + off0 + (a * q.sw - q.pl) * Cp, b - a);
      for (ptrdiff_t ow = b; ow < e; ++ow) edge(ow);
      r += count;
    }
  }
  // `count` pixels whose whole window lies inside the image (dilation 1 along W): pixel
  // i's window row kh is krow bytes at src + i * sw * Cp + kh * dh * row_bytes, to
  // d + i * Kd + kh * krow. A window row of a thin image (the stem conv: 12 bytes) is a
  // fixed-size copy, so the loop is a few moves per row.
  void im2col_inside(uint8_t* d, const uint8_t* src, ptrdiff_t count) const {
    const ptrdiff_t Cp = u8_stride(geo.C), krow = geo.KW * Cp;
    switch (krow) {
      case 4: return copy_windows<4>(d, src, count);
      case 8: return copy_windows<8>(d, src, count);
      case 12: return copy_windows<12>(d, src, count);
      case 16: return copy_windows<16>(d, src, count);
      case 20: return copy_windows<20>(d, src, count);
      case 24: return copy_windows<24>(d, src, count);
      default: return copy_windows<0>(d, src, count);
    }
  }
  template <int KROW>  // 0: krow bytes, any length
  void copy_windows(uint8_t* d, const uint8_t* src, ptrdiff_t count) const {
    const ptrdiff_t Cp = u8_stride(geo.C), krow = KROW ? KROW : geo.KW * Cp;
    const ptrdiff_t step = geo.sw * Cp, kh_bytes = geo.dh * geo.W * Cp, KH = geo.KH;
    for (ptrdiff_t i = 0; i < count; ++i, d += Kd, src += step) {
      uint8_t* dk = d;
      const uint8_t* sk = src;
      for (ptrdiff_t kh = 0; kh < KH; ++kh, dk += krow, sk += kh_bytes) {
        if constexpr (KROW > 0) std::memcpy(dk, sk, KROW);
        else copy_pixels(dk, sk, krow);
      }
    }
  }
  void run(const ExecCtx& c) const override {
    const uint8_t* x = reinterpret_cast<const uint8_t*>(c.ptr[reads[0]]);
    const ptrdiff_t OHW = geo.OH * geo.OW, imgs = c.batch * geo.images;
    const ptrdiff_t per_img = ceil_div(OHW, tile);
    const ptrdiff_t ldc = ep.out.is_u8() ? u8_stride(geo.OC) : geo.OC;
    const size_t esz = ep.out.is_u8() ? 1 : 4;
    const int nt = threads_for(threads, c.isa, work(c.batch));
    parallel_for(nt, imgs * per_img, [&](ptrdiff_t i, int tid) {
      const ptrdiff_t im = i / per_img, p0 = (i % per_img) * tile;
      const ptrdiff_t n = std::min<ptrdiff_t>(tile, OHW - p0);
      QGemmEpilogue e = make_qep(ep, in, c, geo.OC, im);
      e.a_stride = 0;  // one scale per image: every row of the tile shares it
      uint8_t* buf = reinterpret_cast<uint8_t*>(c.scratch + size_t(tid) * per_thread());
      im2col(x + im * geo.H * geo.W * u8_stride(geo.C), p0, n, uint8_t(*e.a_zp), buf);
      const ptrdiff_t row0 = im * OHW + p0;
      e.skip_residual_rows(row0);
      char* y = reinterpret_cast<char*>(c.ptr[writes[0]]) + size_t(row0 * ldc) * esz;
      g.run(n, geo.OC, Kd, buf, Kd, packed.get(), y, ldc, &e, 0, geo.OC);
    });
  }
};

// Depthwise conv (channel multiplier 1) on uint8 NHWC images with int8 weights: the
// table's qu8_dwconv (exact integer accumulation, the QGemmEpilogue in the kernel), rows
// of every image split over threads. A kernel with more taps than the SIMD variant
// takes (kQDwMaxTaps) runs the scalar variant.
struct QDwConvStep final : Step {
  QDwConvConfig k;
  int threads;
  ConvGeom geo;
  AlignedBuffer packed;
  QuantInput in;
  QuantEpilogue ep;
  size_t weight_bytes() const override { return packed.size(); }
  Work work(ptrdiff_t batch) const override {
    const double P = double(batch * geo.images) * double(geo.OH * geo.OW);
    return {P * double(geo.KH * geo.KW) * double(geo.C), P * double(geo.C) * 5.0};
  }
  void run(const ExecCtx& c) const override {
    const ConvGeom& q = geo;
    const ptrdiff_t C = q.C, ldx = u8_stride(C), OHW = q.OH * q.OW;
    const ptrdiff_t imgs = c.batch * q.images, rows = imgs * q.OH;
    const bool u8out = ep.out.is_u8();
    const ptrdiff_t ldy = u8out ? u8_stride(C) : C;
    const size_t esz = u8out ? 1 : 4;
    const uint8_t* x = reinterpret_cast<const uint8_t*>(c.ptr[reads[0]]);
    char* y = reinterpret_cast<char*>(c.ptr[writes[0]]);
    const int nt = threads_for(threads, c.isa, work(c.batch));
    // Tasks of a few rows each, never crossing an image (one scale per image).
    const ptrdiff_t per = std::max<ptrdiff_t>(1, std::min<ptrdiff_t>(q.OH, ceil_div(rows, 4 * nt)));
    const ptrdiff_t per_img = ceil_div(q.OH, per);
    parallel_for(nt, imgs * per_img, [&](ptrdiff_t ti, int) {
      const ptrdiff_t im = ti / per_img, oh0 = (ti % per_img) * per;
      const ptrdiff_t oh1 = std::min<ptrdiff_t>(q.OH, oh0 + per);
      QGemmEpilogue e = make_qep(ep, in, c, C, im);
      e.skip_residual_rows(im * OHW);
      QDwConvArgs a{};
      a.x = x + im * q.H * q.W * ldx;
      a.ldx = ldx;
      a.H = q.H; a.W = q.W; a.C = C;
      a.w = packed.get();
      a.KH = q.KH; a.KW = q.KW; a.sh = q.sh; a.sw = q.sw;
      a.pt = q.pt; a.pl = q.pl; a.dh = q.dh; a.dw = q.dw;
      a.y = y + size_t(im * OHW * ldy) * esz;
      a.ldy = ldy;
      a.OH = q.OH; a.OW = q.OW;
      a.ep = &e;
      k.run(&a, oh0, oh1);
    });
  }
};

}  // namespace

ptrdiff_t u8_stride(ptrdiff_t cols) { return (cols + 3) / 4 * 4; }

int64_t u8_floats(int64_t rows, int64_t cols) { return rows * u8_stride(cols) / 4; }

std::unique_ptr<Step> make_quantize_step(const KernelTable& kt, int threads, int x, int y,
                                         int64_t rows, int64_t cols, QuantSpec spec, int scale_v,
                                         int zp_v, int64_t group, bool planar) {
  if (planar && (group != 0 || cols > kPlanarMaxCols))
    throw std::invalid_argument("quantize: a planar input is static with at most " +
                                std::to_string(kPlanarMaxCols) + " channels, got group " +
                                std::to_string(group) + " and " + std::to_string(cols) + " channels");
  auto s = new_step<QuantizeStep>("quantize", "", {x}, {y});
  s->planar = planar;
  s->rows = rows;
  s->cols = cols;
  s->group = group;
  s->scale = spec.scale;
  s->zp = spec.zp;
  s->threads = threads;
  if (group > 0) {
    if (scale_v < 0 || zp_v < 0) throw std::invalid_argument("quantize: dynamic needs scale/zp values");
    s->writes.push_back(scale_v);
    s->writes.push_back(zp_v);
  }
  check_qgemm(kt.qs8_qc8w_gemm);
  s->q = &kt.qs8_qc8w_gemm;
  s->kernel = std::string(kt.qs8_qc8w_gemm.name) + (group == 1   ? " quantize_rows"
                                                        : group ? " quantize per image"
                                                                : " quantize");
  return s;
}

std::unique_ptr<Step> make_dequantize_step(int x, int y, int64_t rows, int64_t cols, QuantSpec spec) {
  auto s = new_step<DequantizeStep>("dequantize", "u8 -> f32", {x}, {y});
  s->rows = rows;
  s->cols = cols;
  s->scale = spec.scale;
  s->zp = spec.zp;
  return s;
}

namespace {

template <class S>
void fill_q(S& s, const QuantInput& in, const QuantEpilogue& qe, int64_t n) {
  if (int64_t(qe.w_scale.size()) != n) throw std::invalid_argument("w_scale must have one value per output");
  s.in = in;
  s.ep = qe;
  if (in.scale_v >= 0) {
    s.reads.push_back(in.scale_v);
    s.reads.push_back(in.zp_v);
  }
  if (qe.residual >= 0) s.reads.push_back(qe.residual);
}

}  // namespace

std::unique_ptr<Step> make_qgemm_step(const KernelTable& kt, int threads, int x, int y,
                                      int64_t rows_per_sample, int64_t K, int64_t N,
                                      const int8_t* W, const QuantInput& in, const QuantEpilogue& qe) {
  check_qgemm(kt.qs8_qc8w_gemm);
  auto s = new_step<QGemmStep>("qgemm", kt.qs8_qc8w_gemm.name, {x}, {y});
  s->g = kt.qs8_qc8w_gemm;
  s->threads = threads;
  s->rows = rows_per_sample;
  s->K = K;
  s->N = N;
  s->packed = pack_qgemm(s->g, K, N, W, N);
  fill_q(*s, in, qe, N);
  return s;
}

std::unique_ptr<Step> make_qdense_chain_step(const KernelTable& kt, int threads, int x, int y,
                                            int64_t rows_per_sample,
                                            const std::vector<QDenseLayer>& layers) {
  check_qgemm(kt.qs8_qc8w_gemm);
  if (layers.empty()) throw std::invalid_argument("qgemm chain: no layers");
  auto s = new_step<QDenseChainStep>("qgemm_chain", std::string(kt.qs8_qc8w_gemm.name) + " dynamic",
                                     {x}, {y});
  s->g = kt.qs8_qc8w_gemm;
  s->threads = threads;
  s->rows = rows_per_sample;
  for (size_t i = 0; i < layers.size(); ++i) {
    const QDenseLayer& l = layers[i];
    if (l.K <= 0 || l.N <= 0 || (i > 0 && l.K != layers[i - 1].N))
      throw std::invalid_argument("qgemm chain: layer " + std::to_string(i) + " is " +
                                  std::to_string(l.K) + " x " + std::to_string(l.N) +
                                  ", expected K > 0, N > 0 and K equal to the previous N");
    if (l.ep.residual >= 0 || l.ep.out.is_u8() || int64_t(l.ep.w_scale.size()) != l.N ||
        (!l.ep.bias.empty() && int64_t(l.ep.bias.size()) != l.N))
      throw std::invalid_argument("qgemm chain: layer " + std::to_string(i) +
                                  " needs a float output, no residual and N weight scales");
    s->layers.push_back({l.K, l.N, pack_qgemm(s->g, l.K, l.N, l.W, l.N), l.ep});
    s->q_bytes = std::max<int64_t>(s->q_bytes, u8_stride(l.K));
    if (i + 1 < layers.size()) s->mid = std::max(s->mid, l.N);
  }
  return s;
}

std::unique_ptr<Step> make_qconv_step(const KernelTable& kt, int threads, int x, int y,
                                      const ConvGeom& q, const int8_t* W, const QuantInput& in,
                                      const QuantEpilogue& qe) {
  check_qgemm(kt.qs8_qc8w_gemm);
  const bool pointwise = q.KH == 1 && q.KW == 1 && q.sh == 1 && q.sw == 1 && q.pt == 0 &&
                         q.pl == 0 && q.OH == q.H && q.OW == q.W;
  if (pointwise && (in.scale_v < 0 || in.group == 1)) {  // one GEMM over every pixel
    auto s = make_qgemm_step(kt, threads, x, y, q.images * q.OH * q.OW, q.C, q.OC,
                             im2col_weight(q, W).data(), in, qe);
    s->op = "qconv1x1";
    return s;
  }
  auto s = new_step<QConvStep>("qconv", std::string("im2col+") + kt.qs8_qc8w_gemm.name, {x}, {y});
  s->g = kt.qs8_qc8w_gemm;
  s->threads = threads;
  s->geo = q;
  // The weight over whole pixels of Cp bytes: zero rows for the padding bytes.
  ConvGeom qp = q;
  qp.C = u8_stride(q.C);
  std::vector<int8_t> Wp(size_t(q.OC * qp.C * q.KH * q.KW), 0);
  const int64_t taps = q.KH * q.KW;
  for (int64_t o = 0; o < q.OC; ++o)
    std::memcpy(Wp.data() + o * qp.C * taps, W + o * q.C * taps, size_t(q.C * taps));
  s->Kd = taps * qp.C;
  int64_t tile = std::clamp<int64_t>(65536 / std::max<int64_t>(s->Kd, 1), 64, 512);
  s->tile = std::max<int64_t>(s->g.mr, tile / s->g.mr * s->g.mr);
  s->packed = pack_qgemm(s->g, s->Kd, q.OC, im2col_weight(qp, Wp.data()).data(), q.OC);
  fill_q(*s, in, qe, q.OC);
  return s;
}

std::unique_ptr<Step> make_qdwconv_step(const KernelTable& kt, int threads, int x, int y,
                                        const ConvGeom& q,
                                        const int8_t* W, const QuantInput& in,
                                        const QuantEpilogue& qe) {
  if (qe.residual >= 0 && qe.res.is_u8())
    throw std::invalid_argument("qconv depthwise: the residual must be float (the qu8_dwconv "
                                "kernels take no uint8 residual)");
  QDwConvConfig k = kt.qu8_dwconv;
  if (k.max_taps > 0 && q.KH * q.KW > k.max_taps) k = kernel_table_for(Isa::Scalar).qu8_dwconv;
  if (!k.run || !k.pack || !k.packed_bytes)
    throw std::logic_error("the qu8_dwconv entry of the kernel table is empty");
  auto s = new_step<QDwConvStep>("qdwconv", k.name, {x}, {y});
  s->k = k;
  s->threads = threads;
  s->geo = q;
  s->packed = AlignedBuffer(k.packed_bytes(q.KH, q.KW, q.C), k.pack_align);
  k.pack(W, q.KH, q.KW, q.C, s->packed.get());
  fill_q(*s, in, qe, q.C);
  return s;
}

}  // namespace pyrt
