// Step factories: each lowers one op onto the kernel table (weights packed here, once).
// Value layouts per sample: 4-D activations NHWC [H, W, C]; others row-major as given.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "plan.h"
#include "sparse.h"

namespace pyrt {

// The fused epilogue of a producing step: bias per output channel, residual value
// (same shape as the output; -1 = none), activation.
struct EpilogueSpec {
  std::vector<float> bias;  // empty = none
  int residual = -1;
  Act act = Act::None;
  float lo = 0.f, hi = 0.f;
  bool residual_after_act = false;
};

// What every step factory starts with: a step of type S with its op and kernel names and
// the values it reads and writes.
template <class S>
std::unique_ptr<S> new_step(std::string op, std::string kernel, std::vector<int> reads,
                            std::vector<int> writes) {
  auto s = std::make_unique<S>();
  s->op = std::move(op);
  s->kernel = std::move(kernel);
  s->reads = std::move(reads);
  s->writes = std::move(writes);
  return s;
}

// Spatial geometry of a conv/pool on NHWC images: input H x W x C, output OH x OW x OC,
// kernel KH x KW, strides, pads (top, left, bottom, right), dilations. `images`: NHWC
// images per sample (1, or N of a graph with a fixed batch, which runs as one sample).
// Bound to Python as _core.ConvGeom: the one description of a window both sides use.
struct ConvGeom {
  int64_t H = 0, W = 0, C = 0, OH = 0, OW = 0, OC = 0, KH = 1, KW = 1;
  int64_t sh = 1, sw = 1, pt = 0, pl = 0, pb = 0, pr = 0, dh = 1, dw = 1;
  int64_t images = 1;
};
// Largest kernel size, stride, pad or dilation a plan accepts: index math such as
// oh * sh - pt + kh * dh then stays far inside int64.
constexpr int64_t kMaxGeom = int64_t(1) << 31;

// Multithreaded C = ep(A @ packed): splits M (multiples of mr) and N (multiples of nr).
// One thread when the cost model says the product is too small to split.
void gemm_parallel(const GemmConfig& g, Isa isa, int threads, ptrdiff_t M, ptrdiff_t N,
                   ptrdiff_t K, const float* A, ptrdiff_t lda, const void* packed, float* C,
                   ptrdiff_t ldc, const Epilogue& ep);

// The task grid of a threaded GEMM: blocks of mb rows (a multiple of rows_per_tile)
// and nb columns (a multiple of nr) minimising the largest task's multiply-adds plus
// what it streams; mt = row tiles (1 for a GEMV path that takes all rows at once).
struct GemmBlocks {
  ptrdiff_t mb, nb;
};
GemmBlocks gemm_blocks(int threads, double work, ptrdiff_t M, ptrdiff_t N, ptrdiff_t mt,
                       ptrdiff_t rows_per_tile, ptrdiff_t nr);

// A conv weight W [OC, C, KH, KW] as the GEMM's B [(kh, kw, c), OC]: the im2col column
// order (float for the f32 steps, int8 for the quantized ones).
template <class T>
std::vector<T> im2col_weight(const ConvGeom& q, const T* W) {
  std::vector<T> B(size_t(q.KH * q.KW * q.C) * size_t(q.OC));
  for (int64_t o = 0; o < q.OC; ++o)
    for (int64_t ci = 0; ci < q.C; ++ci)
      for (int64_t kh = 0; kh < q.KH; ++kh)
        for (int64_t kw = 0; kw < q.KW; ++kw)
          B[size_t(((kh * q.KW + kw) * q.C + ci) * q.OC + o)] = W[((o * q.C + ci) * q.KH + kh) * q.KW + kw];
  return B;
}

void check_gemm(const GemmConfig& g);  // throws when the table has no GEMM kernel
// The kernel of g's family for a product with N output columns: g.narrow when it pads N
// to fewer columns than g (by a quarter or more), else g. A step packs its weight with
// the kernel chosen here and keeps that kernel.
const GemmConfig& gemm_for(const GemmConfig& g, int64_t N);
// B [K, N] (row stride ldb) packed once for g.
AlignedBuffer pack_gemm(const GemmConfig& g, int64_t K, int64_t N, const float* B, int64_t ldb);
// The run-time epilogue of a spec: `bias`, its residual value resolved for this run.
Epilogue make_ep(const EpilogueSpec& s, const ExecCtx& c, ptrdiff_t ldr);

std::unique_ptr<Step> make_copy_step(int x, int y, int64_t per_sample);
// Per sample, `images` row-major [R, S] matrices -> [S, R] (NCHW <-> NHWC).
std::unique_ptr<Step> make_transpose_step(const KernelTable& kt, int threads, int x, int y, int64_t R, int64_t S,
                                          int64_t images = 1);
// y[rows, N] = ep(x[rows, K] @ W[K, N]) with rows = batch * rows_per_sample. A sparse W
// runs f32_spmm where the cost model (sparse.h) says it is faster; rows_hint: the rows
// of every run when the batch is fixed (-1: they vary).
// The stored type of a Gemm/Conv weight: which GEMM entry runs it (f32_gemm, or the
// 16-bit f16w_gemm / bf16w_gemm, which convert the weight in registers; their weights
// never run sparse). Int8: int8 values with one float32 scale per output channel (int8
// csr/bsr): W is their dense float view and `scale` (make_gemm_step / make_conv_step) the
// scales; dense runs f32_gemm on the view, sparse runs qc8w_spmm's row kernel (sparse.h).
enum class WeightType : int32_t { F32 = 0, F16 = 1, BF16 = 2, Int8 = 3 };
const GemmConfig& gemm_family(const KernelTable& kt, WeightType wt);
std::unique_ptr<Step> make_gemm_step(const KernelTable& kt, int threads, int x, int y,
                                     int64_t rows_per_sample, int64_t K, int64_t N,
                                     const float* W, EpilogueSpec ep,
                                     SparseMode mode = SparseMode::Auto, int64_t rows_hint = -1,
                                     WeightType wt = WeightType::F32, const float* scale = nullptr);
// Group-1 conv; W is [OC, C, KH, KW]. 1x1 stride-1 unpadded convs become one GEMM.
// Sparse weights (by the cost model of sparse.h, or as `mode` says) run f32_spmm on the
// im2col tiles; static_batch: the plan runs one sample, so the rows are known.
std::unique_ptr<Step> make_conv_step(const KernelTable& kt, int threads, int x, int y,
                                     const ConvGeom& g, const float* W, EpilogueSpec ep,
                                     SparseMode mode = SparseMode::Auto, bool static_batch = false,
                                     WeightType wt = WeightType::F32, const float* scale = nullptr);
// Depthwise conv (C == OC, multiplier 1); W is [C, 1, KH, KW].
std::unique_ptr<Step> make_dwconv_step(const KernelTable& kt, int threads, int x, int y,
                                       const ConvGeom& g, const float* W, EpilogueSpec ep);
// Depthwise conv on NCHW planes (x and y in public NCHW layout per sample, `images`
// images of C planes); W is [C, 1, KH, KW]; residual laid out like y.
std::unique_ptr<Step> make_dwconv_chw_step(const KernelTable& kt, int threads, int x, int y,
                                           const ConvGeom& g, const float* W, EpilogueSpec ep);
// A fused inverted-residual block, NHWC: [1x1 expand conv We [Ch, cin] + ee] ->
// depthwise conv Wd [Ch, 1, KH, KW] of geometry q (q.C = Ch, q.H/q.W = the input's) + ed
// -> 1x1 project conv Wp [cout, Ch] + ej (its residual laid out like y). We == nullptr:
// no expand conv (x has Ch channels). A 1x1 conv with zeros runs on f32_spmm where the
// cost model (sparse.h) says it is faster at one pass's rows.
std::unique_ptr<Step> make_inverted_residual_step(
    const KernelTable& kt, int threads, int x, int y, const ConvGeom& q, int64_t cin,
    const float* We, EpilogueSpec ee, const float* Wd, EpilogueSpec ed, int64_t cout,
    const float* Wp, EpilogueSpec ej, SparseMode mode = SparseMode::Auto);
// pb, pr of the geometry: only count_include_pad reads them (see PoolArgs).
std::unique_ptr<Step> make_pool_step(const KernelTable& kt, int threads, int x, int y,
                                     const ConvGeom& g, bool is_max, bool count_include_pad);
std::unique_ptr<Step> make_global_avgpool_step(const KernelTable& kt, int threads, int x, int y,
                                               int64_t HW, int64_t C, int64_t images = 1);
// y = a + b with broadcasting. dims: output dims in storage order, dims[0] = -1 for the
// batch dimension (filled at run time); sa/sb: element strides of a and b per dim (0 =
// broadcast; for dims[0] = -1 the per-sample size or 0).
std::unique_ptr<Step> make_add_step(const KernelTable& kt, int threads, int a, int b, int y,
                                    std::vector<int64_t> dims, std::vector<int64_t> sa,
                                    std::vector<int64_t> sb, bool a_full, bool b_full);
std::unique_ptr<Step> make_activation_step(const KernelTable& kt, int threads, int x, int y,
                                           int64_t per_sample, Act act, float lo, float hi);
std::unique_ptr<Step> make_softmax_step(const KernelTable& kt, int threads, int x, int y,
                                        int64_t rows_per_sample, int64_t cols);
// y[r, c] = x[r, c] * scale[c] + bias[c] (unfused BatchNormalization on the channel axis).
std::unique_ptr<Step> make_affine_step(int threads, int x, int y, int64_t rows_per_sample,
                                       int64_t C, std::vector<float> scale, std::vector<float> bias);

}  // namespace pyrt
