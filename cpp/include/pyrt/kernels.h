// Kernel signatures and the one kernel table.
//
// Rules for files that include this header from an ISA-specific translation unit
// (*_avx2.cpp, *_avx512.cpp): this header holds only declarations, enums and plain
// structs without constructors or inline functions, so nothing compiled with AVX
// flags can be emitted as a shared (COMDAT) symbol and picked by the linker for
// baseline code. ISA files put all their code in an anonymous namespace or in
// namespace pyrt::<isa>, and include no C++ standard library headers that define
// inline templates (use <immintrin.h>, <cstddef>, <cstdint>, <cstring>, <cmath>).
#pragma once
#include <cstddef>
#include <cstdint>

namespace pyrt {

// Instruction-set levels: what PYRUNTIME_ISA and rt.compile(isa=...) can cap a table at.
// Within a level each entry takes the best variant the CPU's features allow.
enum class Isa : int32_t { Scalar = 0, Avx2 = 1, Avx512 = 2 };
constexpr int kNumIsa = 3;

// CPU features a kernel variant may need, each checked on its own (CPUID, and XGETBV for
// the OS-saved register state), never implied by another.
enum Feature : uint32_t {
  kFeatAvx2Fma = 1u << 0,     // AVX, AVX2, FMA, and the OS saves YMM state
  kFeatF16c = 1u << 1,        // F16C (half <-> float conversions)
  kFeatAvx512 = 1u << 2,      // AVX-512 F, BW, DQ, VL, and the OS saves opmask/ZMM state
  kFeatAvx512Vnni = 1u << 3,  // AVX512-VNNI (vpdpbusd on zmm)
  kFeatAvx512Bf16 = 1u << 4,  // AVX512-BF16 (vdpbf16ps)
  kFeatAvxVnni = 1u << 5,     // AVX-VNNI (vpdpbusd on ymm, VEX): VNNI without AVX-512
  // AVX512-BF16 on a core where vdpbf16ps (32 products) outruns two fp32 FMAs: AMD's
  // (Zen 4: bf16w_gemm 256x1024x1024 2.6x the plain AVX-512 kernel), not Intel's
  // (Sapphire Rapids: 0.63x). A table preference, not a requirement to run.
  kFeatBf16DotFast = 1u << 6,
};
// What each level's variants are compiled for (the files' flags in CMakeLists.txt).
constexpr uint32_t kLevelAvx2 = kFeatAvx2Fma | kFeatF16c;
constexpr uint32_t kLevelAvx512 = kLevelAvx2 | kFeatAvx512;

// Activations that fuse into a kernel's epilogue.
enum class Act : int32_t { None = 0, Relu = 1, Clip = 2, Sigmoid = 3, Tanh = 4, Gelu = 5 };

// Applied to every output element after accumulation, in this order:
//   v = acc + bias[col]
//   if (residual && !residual_after_act) v += residual[row * ldr + col]
//   v = act(v)                                   (Clip clamps to [lo, hi])
//   if (residual && residual_after_act)  v += residual[row * ldr + col]
// Plain aggregate on purpose (see the file comment): zero it with `Epilogue ep{};`.
struct Epilogue {
  const float* bias;      // indexed by absolute output column; nullptr = none
  const float* residual;  // same row origin as the output; nullptr = none
  ptrdiff_t ldr;          // row stride of residual, in floats
  Act act;
  float lo, hi;           // Clip bounds
  int32_t residual_after_act;
};

// Every entry below is one config record: the kernel(s), their tile, and the packer
// that lays a weight out for them once at compile time. Packed weights are bytes: the
// packer says how many (`packed_bytes`) and at what alignment (`pack_align`, a power of
// two), so int8, bf16 or sparse packers fit the same records. `name` comes first in
// every record: it is what rt.info() and plan_summary() report.

// ------------------------------------------------------------- f32_gemm
// C[M, N] = epilogue(A[M, K] @ B[K, N]); A and C row-major with strides lda / ldc.
// B is a weight, packed once at compile time by `pack`.
struct GemmConfig {
  const char* name;  // spec name, e.g. "f32_gemm_6x16__avx2"
  int32_t mr, nr;    // register tile
  size_t pack_align;
  size_t (*packed_bytes)(ptrdiff_t K, ptrdiff_t N);
  void (*pack)(ptrdiff_t K, ptrdiff_t N, const float* B, ptrdiff_t ldb, void* packed);
  // Single-threaded: computes rows [0, M) and columns [n0, n1) of C. n0 is a multiple
  // of nr; n1 is a multiple of nr or equals N. A, C and ep->residual point at row 0 of
  // the block (the caller offsets them); ep->bias is indexed by absolute column.
  void (*run)(ptrdiff_t M, ptrdiff_t N, ptrdiff_t K, const float* A, ptrdiff_t lda,
              const void* packed, float* C, ptrdiff_t ldc, const Epilogue* ep,
              ptrdiff_t n0, ptrdiff_t n1);
  // The same family's kernel for narrow outputs (a tile of fewer columns, its own packer)
  // or nullptr. A layer packed for one must run on it: steps pick once, when they pack
  // (gemm_for in cpp/runtime/steps.h). On AVX-512, N = 16 fills half of a 32-column tile.
  const GemmConfig* narrow;
};

// ----------------------------------------------------------- f32_dwconv
// One image, NHWC, channel multiplier 1. Output rows [oh0, oh1) only (threads split rows).
struct DwConvArgs {
  const float* x; ptrdiff_t H, W, C;
  const void* w;  // packed by DwConvConfig::pack
  ptrdiff_t KH, KW, sh, sw, pt, pl, dh, dw;
  float* y; ptrdiff_t OH, OW;
  const Epilogue* ep;  // bias[C]; residual is NHWC like y with ldr = C (row = pixel)
};
struct DwConvConfig {
  const char* name;  // e.g. "f32_dwconv__avx2" (3x3 / 5x5 specialised inside)
  size_t pack_align;
  size_t (*packed_bytes)(ptrdiff_t KH, ptrdiff_t KW, ptrdiff_t C);
  // w_src is the ONNX layout [C][1][KH][KW].
  void (*pack)(const float* w_src, ptrdiff_t KH, ptrdiff_t KW, ptrdiff_t C, void* packed);
  void (*run)(const DwConvArgs* a, ptrdiff_t oh0, ptrdiff_t oh1);
};

// ----------------------------------------------------- f32_dwconv2d_chw
// Depthwise conv on NCHW data, one H x W plane per (image, channel) (XNNPACK's
// dwconv2d_chw): a graph that is one depthwise layer with public NCHW input and output
// runs without layout transposes. Planes lie back to back; plane p uses channel p % C.
// Padded taps contribute +0 * w (not skipped): this differs from skipping them only for
// a non-finite weight.
struct DwConvChwArgs {
  const float* x; ptrdiff_t H, W;  // input planes of H * W floats
  ptrdiff_t C;                     // channels (weights and bias of plane p: p % C)
  const void* w;                   // packed by DwConvChwConfig::pack
  ptrdiff_t KH, KW, sh, sw, pt, pl, dh, dw;
  float* y; ptrdiff_t OH, OW;      // output planes of OH * OW floats
  // bias[C] (one value per plane); residual laid out like y: row (p, oh) at
  // residual + (p * OH + oh) * ldr. nullptr = no epilogue.
  const Epilogue* ep;
};
struct DwConvChwConfig {
  const char* name;  // e.g. "f32_dwconv2d_chw__avx512"
  size_t pack_align;
  size_t (*packed_bytes)(ptrdiff_t KH, ptrdiff_t KW, ptrdiff_t C);
  // w_src is the ONNX layout [C][1][KH][KW].
  void (*pack)(const float* w_src, ptrdiff_t KH, ptrdiff_t KW, ptrdiff_t C, void* packed);
  // Floats of scratch one `run` call needs for this geometry (per thread).
  size_t (*scratch_floats)(const DwConvChwArgs* a);
  // Single-threaded: output rows [oh0, oh1) of planes [p0, p1). `scratch` holds
  // scratch_floats(a) floats, 64-byte aligned.
  void (*run)(const DwConvChwArgs* a, ptrdiff_t p0, ptrdiff_t p1, ptrdiff_t oh0, ptrdiff_t oh1,
              float* scratch);
};

// ------------------------------------------------------------- f32_pool
// One image, NHWC. Padded positions are skipped by max; avg divides by the number of
// taps inside the image, or, when count_include_pad, by the taps inside the padded image
// (rows [-pt, H + pb), columns [-pl, W + pr)): KH*KW except for a window that ceil mode
// lets run past the padding, as ONNX defines it.
struct PoolArgs {
  const float* x; ptrdiff_t H, W, C;
  ptrdiff_t KH, KW, sh, sw, pt, pl, dh, dw;
  float* y; ptrdiff_t OH, OW;
  int32_t count_include_pad;
  ptrdiff_t pb, pr;  // pads after (bottom, right): only count_include_pad reads them
};
struct PoolConfig {
  const char* name;
  void (*maxpool)(const PoolArgs* a, ptrdiff_t oh0, ptrdiff_t oh1);
  void (*avgpool)(const PoolArgs* a, ptrdiff_t oh0, ptrdiff_t oh1);
  // y[c] = mean over HW pixels of x[p, c] (one image, NHWC).
  void (*global_avgpool)(const float* x, ptrdiff_t HW, ptrdiff_t C, float* y);
};

// ---------------------------------------------------------- f32_eltwise
struct EltwiseConfig {
  const char* name;
  // y[i] = a[i * sa] + b[i * sb] for i in [0, n); sa, sb are 0 (broadcast) or 1.
  void (*add)(ptrdiff_t n, const float* a, ptrdiff_t sa, const float* b, ptrdiff_t sb,
              float* y);
  // y = act(x), n elements; x == y allowed.
  void (*activation)(ptrdiff_t n, const float* x, float* y, Act act, float lo, float hi);
  // Applies `ep` in place to a rows x cols block with row stride ld (column 0 = bias[0]).
  void (*epilogue)(ptrdiff_t rows, ptrdiff_t cols, float* y, ptrdiff_t ld,
                   const Epilogue* ep);
  // Softmax over the last axis of a rows x cols row-major block; x == y allowed.
  void (*softmax)(ptrdiff_t rows, ptrdiff_t cols, const float* x, float* y);
};

// -------------------------------------------------------- x32_transpose
// y[c * ldy + r] = x[r * ldx + c] for r < rows, c < cols: the NCHW <-> NHWC boundary
// transposes (any 32-bit elements). Single-threaded; the executor splits rows.
struct TransposeConfig {
  const char* name;
  void (*transpose)(ptrdiff_t rows, ptrdiff_t cols, const float* x, ptrdiff_t ldx, float* y,
                    ptrdiff_t ldy);
};

// ------------------------------------------------------------- f32_spmm
// Sparse weight x dense activations: C[M, N] = A[M, K] @ B[K, N] with B sparse, for
// Dense layers and convolutions (1x1 directly, k x k after im2col). The weight is packed
// by output-channel groups of R channels (R in {1, 2, 4, 8, 16}: R = 1 is unstructured,
// larger R are blocks of R outputs x 1 input, "blocks along output channels"): a group
// stores the inputs k where any of its R channels has a nonzero, and R values per such
// input (zeros inside a block stored). Indices are uint16 when K <= 65536, else int32.
// The layout is one header and three arrays in the packed bytes (f32_spmm_pack.cpp
// writes it, every ISA reads it):
struct SpmmHeader {
  int64_t K, N;        // the logical weight B [K, N]
  int64_t R, G;        // channels per group, groups = ceil(N / R) (the last may be partial)
  int64_t nnzb;        // stored (group, input) pairs; values = nnzb * R floats
  int64_t idx_bytes;   // 2 (uint16) or 4 (int32)
  int64_t off_ptr;     // int64 [G + 1]: group g's pairs are [ptr[g], ptr[g + 1])
  int64_t off_idx;     // uint16 | int32 [nnzb]: the input k of each pair
  int64_t off_val;     // float [nnzb][R]; columns past N in the last group are 0
};
static_assert(sizeof(SpmmHeader) == 72, "SpmmHeader is read from packed bytes");
struct SpmmConfig {
  const char* name;  // e.g. "f32_spmm__avx512"
  int32_t mt;        // pixels (rows of A) per spmm tile: a multiple of the vector width
  size_t pack_align;
  // Bytes of the packed form of B [K, N] (row stride ldb) with groups of R channels.
  size_t (*packed_bytes)(ptrdiff_t K, ptrdiff_t N, const float* B, ptrdiff_t ldb, int32_t R);
  void (*pack)(ptrdiff_t K, ptrdiff_t N, const float* B, ptrdiff_t ldb, int32_t R, void* packed);
  // One row: y[c] = sum_k x[k] B[k, c] for the columns of groups [g0, g1) (y indexed by
  // absolute column; columns >= N not written). No epilogue.
  void (*spmv)(const float* x, const void* packed, float* y, ptrdiff_t g0, ptrdiff_t g1);
  // A tile, channel-major: At [K][mt] holds `cols` <= mt rows of A transposed (column j =
  // row j of A); writes Ct[(g - g0) * R + r][j] = sum_k At[k][j] B[k, g * R + r] for
  // j < cols (lanes up to the next vector width may be written too), every r < R.
  void (*spmm)(const float* At, ptrdiff_t cols, const void* packed, float* Ct, ptrdiff_t g0,
               ptrdiff_t g1);
  // Row-major rows, no transposes, for groups that fill whole vectors (R a multiple of
  // nhwc_r, the vector width; nullptr where the ISA has none): C[m][g * R + r] = sum_k
  // A[m][k] B[k][g * R + r] for m < rows, the columns of groups [g0, g1) below N. A pair
  // loads its R values once for a register tile of rows and multiplies them by each
  // row's broadcast input. No epilogue.
  int32_t nhwc_r;
  void (*spmm_nhwc)(const float* A, ptrdiff_t lda, ptrdiff_t rows, const void* packed, float* C,
                    ptrdiff_t ldc, ptrdiff_t g0, ptrdiff_t g1);
};

// ------------------------------------------------------------ qc8w_spmm
// f32_spmm with int8 weight values: C = A @ (Q * scale) for Q int8 [K, N] in [-127, 127]
// and one float32 scale per output column (weight-only int8: fp32 activations, sums and
// output). The values widen exactly in registers (vpmovsxbd + vcvtdq2ps); the scale
// multiplies each finished sum once. Same grouping as f32_spmm (R channels per group,
// stored (group, input k) pairs, uint16 indices when K <= 65536). The layout is
// f32_spmm's header with int8 values and the scales (qc8w_spmm_pack.cpp writes it):
struct QSpmmHeader {
  SpmmHeader s;       // off_val: int8 [nnzb][R], columns past N 0, 64 bytes of zero slack
  int64_t off_scale;  // float [G * R]: scale of each column, 0 past N
};
static_assert(sizeof(QSpmmHeader) == 80, "QSpmmHeader is read from packed bytes");
// Only the row kernel (one or two rows: batch-1 layers are memory-bound, and 1-byte
// values stream a quarter of the bytes): more rows run f32_spmm's tile kernels on the
// weight dequantized at pack time (runtime/sparse.h).
struct QSpmmConfig {
  const char* name;  // e.g. "qc8w_spmm__avx512"
  size_t pack_align;
  size_t (*packed_bytes)(ptrdiff_t K, ptrdiff_t N, const int8_t* B, ptrdiff_t ldb, int32_t R);
  void (*pack)(ptrdiff_t K, ptrdiff_t N, const int8_t* B, ptrdiff_t ldb, const float* scale,
               int32_t R, void* packed);
  // One row: y[c] = scale[c] * sum_k x[k] Q[k, c] for the columns of groups [g0, g1)
  // (absolute columns; columns >= N not written). No epilogue.
  void (*spmv)(const float* x, const void* packed, float* y, ptrdiff_t g0, ptrdiff_t g1);
};

// -------------------------------------------------------- qs8_qc8w_gemm
// Quantized GEMM: C[M, N] = requantize(A[M, K] @ B[K, N]) with A uint8 activations
// (asymmetric: real = a_scale * (q - a_zp), a_zp in [0, 255]) and B int8 weights in
// [-127, 127] (symmetric per output column: real = w_scale[n] * q), exact int32
// accumulation (no saturating 16-bit intermediate), then, per element,
//   v = a_scale[m] * w_scale[n] * (acc[m][n] - a_zp[m] * colsum[n]) + bias[n]
//   if (residual && !residual_after_act) v += r
//   v = act(v)
//   if (residual && residual_after_act)  v += r
// where r = residual[m * ldr + n] (float) or, with a uint8 residual (a value the graph
// keeps quantized), r = res_scale * (residual_u8[m * ldr + n] - res_zp) (at most one of
// the two is set),
// and stores v as float, or as uint8 q = clamp(nearbyint(v * inv) + out_zp, 0, 255) with
// inv = 1.0f / out_scale (round half to even as ONNX QuantizeLinear, by the float
// reciprocal: a value on a rounding edge may land one step from x / out_scale's).
// A uint8 output with act none / relu / clip and no residual, or a uint8 residual added
// before the activation (every int8 layer between QDQ nodes, an inverted-residual
// block's projection included) is computed in the quantized domain with the zero point
// added: with rsi = res_scale * inv, b = bias * inv + out_zp (- res_zp * rsi with the
// residual), t = fma(float(acc - a_zp * colsum), (a_scale * w_scale) * inv, b), then with
// the residual t = fma(float(residual_u8), rsi, t), clamped to [0, 255] narrowed by the
// activation (relu: out_zp; clip: lo * inv + out_zp, hi * inv + out_zp), q = nearbyint(t):
// the same value within float rounding (again, an edge may land one step away); every
// variant, scalar included, computes exactly this. colsum[n] = sum_k B[k][n] is computed
// by the packer (the zero-point term costs nothing at run time).
// Plain aggregate (see the file comment): zero it with `QGemmEpilogue ep{};`.
struct QGemmEpilogue {
  const float* a_scale;   // A's scale: a_scale[m * a_stride]
  const int32_t* a_zp;    // A's zero point: a_zp[m * a_stride], in [0, 255]
  ptrdiff_t a_stride;     // 1: per row (dynamic), 0: one value for all rows (static)
  const float* w_scale;   // [N], indexed by absolute column
  const float* bias;      // [N], absolute column; nullptr = none
  const float* residual;  // float, same row origin as C; nullptr = none
  const uint8_t* residual_u8;  // or uint8 (real = res_scale * (q - res_zp)); nullptr = none
  float res_scale;
  int32_t res_zp;         // in [0, 255]
  ptrdiff_t ldr;          // residual row stride in elements (bytes for residual_u8)
  int32_t residual_after_act;
  Act act;
  float lo, hi;           // Clip bounds
  int32_t out_u8;         // 0: C is float; 1: C is uint8 quantized with out_scale/out_zp
  float out_scale;
  int32_t out_zp;         // in [0, 255]
  // Moves the residual (either kind) down `rows` rows: a block of C starting there.
  void skip_residual_rows(ptrdiff_t rows) {
    if (residual) residual += rows * ldr;
    if (residual_u8) residual_u8 += rows * ldr;
  }
};
struct QGemmConfig {
  const char* name;  // spec name, e.g. "qs8_qc8w_gemm_4x32__avx512vnni"
  int32_t mr, nr;    // register tile
  size_t pack_align;
  size_t (*packed_bytes)(ptrdiff_t K, ptrdiff_t N);
  // B int8 [K, N] (row stride ldb, values in [-127, 127]) and its column sums.
  void (*pack)(ptrdiff_t K, ptrdiff_t N, const int8_t* B, ptrdiff_t ldb, void* packed);
  // Single-threaded: rows [0, M), columns [n0, n1) of C (n0 a multiple of nr; n1 a
  // multiple of nr or N). A points at row 0 of the block, exactly K bytes per row read
  // (never past); C (float or uint8 by ep->out_u8; ldc in elements), ep->residual,
  // ep->a_scale and ep->a_zp (when a_stride is 1) point at row 0 of the block too.
  void (*run)(ptrdiff_t M, ptrdiff_t N, ptrdiff_t K, const uint8_t* A, ptrdiff_t lda,
              const void* packed, void* C, ptrdiff_t ldc, const QGemmEpilogue* ep,
              ptrdiff_t n0, ptrdiff_t n1);
  // Dynamic quantization, per row of a float matrix: lo = min(0, min x), hi = max(0, max
  // x), scale = (hi - lo) / 255 (1 when hi == lo), zp = clamp(nearbyint(-lo / scale), 0,
  // 255), q = clamp(nearbyint(x * (1.0f / scale)) + zp, 0, 255). Non-finite x: undefined
  // values, never a fault.
  void (*quantize_rows)(ptrdiff_t M, ptrdiff_t K, const float* A, ptrdiff_t lda, uint8_t* Q,
                        ptrdiff_t ldq, float* scale, int32_t* zp);
  // Static quantization (a QDQ node's): every row with the same scale and zero point,
  // q = clamp(nearbyint(x * (1.0f / scale)) + zp, 0, 255) as quantize_rows does.
  void (*quantize)(ptrdiff_t M, ptrdiff_t K, const float* A, ptrdiff_t lda, uint8_t* Q,
                   ptrdiff_t ldq, float scale, int32_t zp);
};

// ------------------------------------------------------------ qu8_dwconv
// Quantized depthwise conv (channel multiplier 1), one image, NHWC: uint8 activations
// (real = a_scale * (x - a_zp)), int8 weights in [-127, 127] (real = w_scale[c] * w), then
// the QGemmEpilogue of qs8_qc8w_gemm with a_stride 0 (one a_scale / a_zp for the image,
// read from ep->a_scale[0] / ep->a_zp[0]; colsum is not used; a float residual only,
// residual_u8 must be null) where an output pixel is a
// row: acc[c] = sum over the taps inside the image of (x - a_zp) * w (a padded tap adds
// nothing), v = a_scale * w_scale[c] * acc[c] + bias[c], residual, act, float or uint8.
// The AVX2 / AVX-512 variants accumulate in float, exact while |acc| < 2^24: they take at
// most `max_taps` = kQDwMaxTaps taps (255 * 127 * 512 < 2^24); the scalar one (int32) any.
// The AVX512-VNNI variant (qu8_dwconv__avx512vnni, where the CPU has it) sums 3x3 and 5x5
// kernels with stride 1 or 2 (the same both ways) and no dilation in int32 with vpdpbusd
// (each lane one channel, its 4 bytes 4 kernel rows of one kernel column; padded taps
// read as the zero point and cancel against -a_zp * sum(w)), and every other shape as
// the AVX-512 variant does (it packs the float weights too), so it also takes kQDwMaxTaps.
// Every variant gives the scalar one's bits (vector sigmoid / tanh / gelu aside).
constexpr int32_t kQDwMaxTaps = 512;
struct QDwConvArgs {
  const uint8_t* x; ptrdiff_t ldx;  // pixel stride in bytes: a multiple of 4, >= C; the
  ptrdiff_t H, W, C;                // kernels read at most ldx bytes of a pixel
  const void* w;                    // packed by QDwConvConfig::pack
  ptrdiff_t KH, KW, sh, sw, pt, pl, dh, dw;
  void* y; ptrdiff_t ldy;           // float or uint8 (ep->out_u8); pixel stride in elements
  ptrdiff_t OH, OW;
  const QGemmEpilogue* ep;          // residual: pixel p at ep->residual + p * ep->ldr
};
struct QDwConvConfig {
  const char* name;  // e.g. "qu8_dwconv__avx512" (3x3 / 5x5 specialised inside)
  size_t pack_align;
  int32_t max_taps;  // largest KH * KW that run() takes; 0 = any
  size_t (*packed_bytes)(ptrdiff_t KH, ptrdiff_t KW, ptrdiff_t C);
  // w_src is the ONNX layout [C][1][KH][KW], int8 in [-127, 127].
  void (*pack)(const int8_t* w_src, ptrdiff_t KH, ptrdiff_t KW, ptrdiff_t C, void* packed);
  // Single-threaded: output rows [oh0, oh1) of all OW pixels and C channels (writes no
  // byte past C of an output pixel).
  void (*run)(const QDwConvArgs* a, ptrdiff_t oh0, ptrdiff_t oh1);
};

// ------------------------------------------------------------ the table
// One record per entry, named by what it computes: <dtype>_<op>. The list macro is the
// one place that enumerates them (rt.info(), the kernel check).
struct KernelTable {
  Isa isa;               // the level this table was built for (its cap)
  const char* isa_name;
  GemmConfig f32_gemm;
  DwConvConfig f32_dwconv;
  DwConvChwConfig f32_dwconv2d_chw;
  PoolConfig f32_pool;
  EltwiseConfig f32_eltwise;
  TransposeConfig x32_transpose;
  SpmmConfig f32_spmm;
  QSpmmConfig qc8w_spmm;  // int8 sparse values, fp32 activations
  QGemmConfig qs8_qc8w_gemm;
  QDwConvConfig qu8_dwconv;
  GemmConfig f16w_gemm;   // 16-bit weights (f16 / bf16), fp32 activations and output:
  GemmConfig bf16w_gemm;  // the f32_gemm record, packing to its own 16-bit layout
};
#define PYRT_KERNEL_ENTRIES(X) \
  X(f32_gemm) X(f32_dwconv) X(f32_dwconv2d_chw) X(f32_pool) X(f32_eltwise) X(x32_transpose) \
  X(f32_spmm) \
  X(qc8w_spmm) \
  X(qs8_qc8w_gemm) X(qu8_dwconv) \
  X(f16w_gemm) \
  X(bf16w_gemm)

// Each kernel file defines one filler per variant; it overwrites its entry. Which fillers
// run, in which order, is the variant list in cpp/runtime/dispatch.cpp.
void register_f32_gemm__scalar(KernelTable& t);
void register_f32_gemm__avx2(KernelTable& t);
void register_f32_gemm__avx512(KernelTable& t);
void register_f32_dwconv__scalar(KernelTable& t);
void register_f32_dwconv__avx2(KernelTable& t);
void register_f32_dwconv__avx512(KernelTable& t);
void register_f32_dwconv2d_chw__scalar(KernelTable& t);
void register_f32_dwconv2d_chw__avx2(KernelTable& t);
void register_f32_dwconv2d_chw__avx512(KernelTable& t);
void register_f32_pool__scalar(KernelTable& t);
void register_f32_pool__avx2(KernelTable& t);
void register_f32_pool__avx512(KernelTable& t);
void register_f32_eltwise__scalar(KernelTable& t);
void register_f32_eltwise__avx2(KernelTable& t);
void register_f32_eltwise__avx512(KernelTable& t);
// Memory-bound 8x8 AVX2 blocks already saturate bandwidth: no AVX-512 variant.
void register_x32_transpose__scalar(KernelTable& t);
void register_x32_transpose__avx2(KernelTable& t);
void register_f32_spmm__scalar(KernelTable& t);
void register_f32_spmm__avx2(KernelTable& t);
void register_f32_spmm__avx512(KernelTable& t);
void register_qc8w_spmm__scalar(KernelTable& t);
void register_qc8w_spmm__avx2(KernelTable& t);
void register_qc8w_spmm__avx512(KernelTable& t);
void register_qs8_qc8w_gemm__scalar(KernelTable& t);
void register_qs8_qc8w_gemm__avx2(KernelTable& t);        // vpmaddubsw on a - 128, no VNNI
void register_qs8_qc8w_gemm__avxvnni(KernelTable& t);     // needs kFeatAvxVnni
void register_qs8_qc8w_gemm__avx512(KernelTable& t);      // vpmaddubsw on a - 128, no VNNI
void register_qs8_qc8w_gemm__avx512vnni(KernelTable& t);  // needs kFeatAvx512Vnni
void register_qu8_dwconv__scalar(KernelTable& t);
void register_qu8_dwconv__avx2(KernelTable& t);
void register_qu8_dwconv__avx512(KernelTable& t);
void register_qu8_dwconv__avx512vnni(KernelTable& t);  // needs kFeatAvx512Vnni
// 16-bit weights (GemmConfig, like f32_gemm): `pack` takes float32 B and rounds each
// value to the weight type (round to nearest even; overflow to inf; NaN stays NaN), so
// the dense float32 view of an f16/bf16 weight packs exactly. `run` widens the weights
// to fp32 (exactly) and accumulates in fp32; the AVX512-BF16 variant's vdpbf16ps tiles
// also round the activations to bf16 (see bf16w_gemm_avx512bf16.cpp).
void register_f16w_gemm__scalar(KernelTable& t);
void register_f16w_gemm__avx2(KernelTable& t);
void register_f16w_gemm__avx512(KernelTable& t);
void register_bf16w_gemm__scalar(KernelTable& t);
void register_bf16w_gemm__avx2(KernelTable& t);
void register_bf16w_gemm__avx512(KernelTable& t);
void register_bf16w_gemm__avx512bf16(KernelTable& t);
// The one packer of f32_spmm (layout above; not ISA code), and its count of the stored
// (group, input) pairs of B [K, N] for groups of R (ptr: nullptr, or G + 1 group starts).
int64_t f32_spmm_count_pairs(ptrdiff_t K, ptrdiff_t N, const float* B, ptrdiff_t ldb, int32_t R,
                             int64_t* ptr);
size_t f32_spmm_packed_bytes(ptrdiff_t K, ptrdiff_t N, const float* B, ptrdiff_t ldb, int32_t R);
void f32_spmm_pack(ptrdiff_t K, ptrdiff_t N, const float* B, ptrdiff_t ldb, int32_t R, void* packed);
// The one packer of qc8w_spmm (layout: QSpmmHeader; not ISA code).
size_t qc8w_spmm_packed_bytes(ptrdiff_t K, ptrdiff_t N, const int8_t* B, ptrdiff_t ldb, int32_t R);
void qc8w_spmm_pack(ptrdiff_t K, ptrdiff_t N, const int8_t* B, ptrdiff_t ldb, const float* scale,
                    int32_t R, void* packed);

}  // namespace pyrt
