// Quantized step factories (steps_quant.cpp): uint8 activations, int8 weights.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "plan.h"
#include "steps.h"

namespace pyrt {

// Bytes between rows of a uint8 value of `cols` columns: a multiple of 4, so every
// sample of a value starts on a float boundary of the plan's buffers.
ptrdiff_t u8_stride(ptrdiff_t cols);
// Floats a uint8 value of rows x cols takes per sample.
int64_t u8_floats(int64_t rows, int64_t cols);

// A uint8 tensor's quantization: real = scale * (q - zp). zp < 0: not uint8 (float).
struct QuantSpec {
  float scale = 1.f;
  int32_t zp = -1;
  bool is_u8() const { return zp >= 0; }
};

// Where a quantized step finds its input's scale and zero point: constants (static,
// scale_v < 0) or values written by a dynamic quantize step, one per `group` rows
// (group 1: per row; else per image).
struct QuantInput {
  QuantSpec spec;
  int scale_v = -1, zp_v = -1;
  int64_t group = 0;
};

// The epilogue of a quantized step: weight scales (per output), bias, residual (float,
// or uint8 with `res`'s scale and zero point), activation, and the output: float, or
// uint8 with `out`'s scale and zero point.
struct QuantEpilogue {
  std::vector<float> w_scale, bias;
  int residual = -1;
  QuantSpec res;
  Act act = Act::None;
  float lo = 0.f, hi = 0.f;
  bool residual_after_act = false;
  QuantSpec out;
};

// A planar (NCHW) quantize takes images of at most this many channels, in chunks of
// this many pixels.
constexpr int64_t kPlanarMaxCols = 4;
constexpr int64_t kPlanarChunk = 512;
// f32 [rows, cols] per sample -> uint8. group 0: static (spec); group g > 0: per g rows,
// the range of those rows gives a scale and zero point, written to values scale_v and
// zp_v (one float / int32 each per group). planar (static only, cols <= kPlanarMaxCols):
// the input per sample is [cols][rows] (an NCHW image), the output the same NHWC rows.
std::unique_ptr<Step> make_quantize_step(const KernelTable& kt, int threads, int x, int y,
                                         int64_t rows, int64_t cols, QuantSpec spec, int scale_v,
                                         int zp_v, int64_t group, bool planar = false);
std::unique_ptr<Step> make_dequantize_step(int x, int y, int64_t rows, int64_t cols, QuantSpec spec);
// y = requant(x_u8 [rows, K] @ W [K, N]); W int8, row-major.
std::unique_ptr<Step> make_qgemm_step(const KernelTable& kt, int threads, int x, int y,
                                      int64_t rows_per_sample, int64_t K, int64_t N,
                                      const int8_t* W, const QuantInput& in, const QuantEpilogue& qe);
// One layer of a dense chain: W int8 [K, N] row-major (read while the step is built),
// its epilogue (float output, no residual).
struct QDenseLayer {
  int64_t K, N;
  const int8_t* W;
  QuantEpilogue ep;
};
// Rows a dense chain's task takes at most (its per-thread scratch holds this many).
constexpr int64_t kChainBlockRows = 32;
// y = L_n(... L_1(x)): float [rows, layers[0].K] per sample in, float [rows, N_n] out,
// each layer's input quantized per row at run time (steps_quant.cpp).
std::unique_ptr<Step> make_qdense_chain_step(const KernelTable& kt, int threads, int x, int y,
                                            int64_t rows_per_sample,
                                            const std::vector<QDenseLayer>& layers);
// Group-1 conv on uint8 NHWC; W int8 [OC, C, KH, KW].
std::unique_ptr<Step> make_qconv_step(const KernelTable& kt, int threads, int x, int y,
                                      const ConvGeom& q, const int8_t* W, const QuantInput& in,
                                      const QuantEpilogue& qe);
// Depthwise conv on uint8 NHWC; W int8 [C, 1, KH, KW].
std::unique_ptr<Step> make_qdwconv_step(const KernelTable& kt, int threads, int x, int y,
                                        const ConvGeom& q, const int8_t* W, const QuantInput& in,
                                        const QuantEpilogue& qe);

// Max pool on uint8 NHWC (steps_qpool.cpp): output on the input's grid (exact).
std::unique_ptr<Step> make_qmaxpool_step(int threads, int x, int y, const ConvGeom& q);
// Global average pool of uint8 NHWC images (grid `in`) to float [images, C].
std::unique_ptr<Step> make_qglobal_avgpool_step(int threads, int x, int y, int64_t HW, int64_t C,
                                                int64_t images, QuantSpec in);

}  // namespace pyrt
