// Kernel-level test entry points for the int8 GEMM (qs8_qc8w_gemm):
//   _core.testing.qgemm(A, B, a_scale, a_zp, w_scale, ...)  packs B, runs the kernel
//   _core.testing.quantize_rows(x, isa)                      (q, scale, zp) per row
//   _core.testing.qgemm_config(isa, variant)                 {name, mr, nr}
//   _core.testing.qgemm_variants()                           every variant and whether
//                                                            this CPU runs it
// `variant` picks one kernel by name (e.g. "qs8_qc8w_gemm_3x32__avx2", the AVX2 kernel
// without VNNI, which the avx2 table of a VNNI machine does not hold), so every variant
// the CPU can run is tested, not only the best one per level.
#include <pybind11/numpy.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "../bindings/bindings.h"
#include "../runtime/aligned.h"
#include "../runtime/qgemm.h"
#include "kern_testing_util.h"
#include "pyrt/dispatch.h"

namespace py = pybind11;

namespace pyrt {
namespace {

using kt::raise;
using kt::shape_str;

// The qs8_qc8w_gemm config of a variant name (any this CPU runs), or of a table.
struct Chosen {
  QGemmConfig g;
  Isa isa;  // the level it belongs to (the cost model's rates)
};

Chosen choose(const std::optional<std::string>& isa, const std::optional<std::string>& variant) {
  if (variant) {
    const uint32_t have = cpu_features().usable();
    const QGemmConfig emu = qs8_qc8w_gemm_avxvnni_emu_testing();
    if (*variant == emu.name) {
      if ((kFeatAvx2Fma & have) != kFeatAvx2Fma)
        raise("IsaError", "variant " + *variant + " needs AVX2, which this CPU/OS lacks");
      return {emu, Isa::Avx2};
    }
    std::string names = "'" + std::string(emu.name) + "'";
    for (const KernelVariant& v : kernel_variants()) {
      if (std::string(v.entry) != "qs8_qc8w_gemm") continue;
      KernelTable t{};
      v.fill(t);  // constexpr records: runs no ISA instruction
      if (*variant == t.qs8_qc8w_gemm.name) {
        if ((v.needs & have) != v.needs)
          raise("IsaError", "variant " + *variant + " needs CPU features this CPU/OS lacks");
        return {t.qs8_qc8w_gemm, v.level};
      }
      names += ", '" + std::string(t.qs8_qc8w_gemm.name) + "'";
    }
    raise("IsaError", "unknown qs8_qc8w_gemm variant '" + *variant + "': expected one of " + names);
  }
  const KernelTable& t = kt::table(isa);
  return {t.qs8_qc8w_gemm, t.isa};
}

template <class T>
const char* dtype_name();
template <> const char* dtype_name<uint8_t>() { return "uint8"; }
template <> const char* dtype_name<int8_t>() { return "int8"; }
template <> const char* dtype_name<float>() { return "float32"; }
template <> const char* dtype_name<int32_t>() { return "int32"; }

// A numpy array of exactly dtype T and `ndim` dimensions, as a C-contiguous copy or view.
template <class T>
py::array_t<T, py::array::c_style> typed(const py::handle& obj, const char* what, int ndim) {
  if (!py::isinstance<py::array>(obj))
    raise("DTypeError", std::string(what) + " must be a numpy " + dtype_name<T>() + " array, got " +
                            std::string(py::str(py::type::of(obj).attr("__name__"))));
  py::array a = py::reinterpret_borrow<py::array>(obj);
  if (!a.dtype().is(py::dtype::of<T>()))
    raise("DTypeError", std::string(what) + " must be " + dtype_name<T>() + ", got " +
                            std::string(py::str(a.dtype())));
  if (a.ndim() != ndim)
    raise("ShapeError", std::string(what) + " must be " + std::to_string(ndim) + "-D, got shape " +
                            shape_str(a));
  return py::array_t<T, py::array::c_style>::ensure(a);
}

// A per-row (array of M) or per-tensor (Python number / 0-d array) parameter.
template <class T>
std::vector<T> per_row(const py::object& obj, ptrdiff_t M, const char* what, ptrdiff_t* stride) {
  if (py::isinstance<py::array>(obj) && py::reinterpret_borrow<py::array>(obj).ndim() == 1) {
    auto a = typed<T>(obj, what, 1);
    if (a.shape(0) != M)
      raise("ShapeError", std::string(what) + " per row must have shape (" + std::to_string(M) +
                              ",), got " + shape_str(a));
    *stride = 1;
    std::vector<T> v(a.data(), a.data() + M);
    if (v.empty()) v.push_back(T(0));
    return v;
  }
  if (py::isinstance<py::array>(obj) && py::reinterpret_borrow<py::array>(obj).ndim() != 0)
    raise("ShapeError", std::string(what) + " must be a number or a 1-D array of one value per row");
  *stride = 0;
  try {
    return {obj.cast<T>()};
  } catch (const py::cast_error&) {
    raise("DTypeError", std::string(what) + " must be a number or a " + dtype_name<T>() +
                            " array, got " + std::string(py::str(py::type::of(obj).attr("__name__"))));
  }
}

constexpr ptrdiff_t kPad = 5;  // output columns past N that must stay untouched
constexpr unsigned char kSentinelByte = 0xA5;

py::array qgemm(const py::object& A_obj, const py::object& B_obj, const py::object& a_scale_obj,
                const py::object& a_zp_obj, const py::object& w_scale_obj,
                const py::object& bias_obj, const py::object& res_obj, const std::string& act,
                float lo, float hi, bool residual_after_act, bool out_u8, float out_scale,
                int32_t out_zp, const std::optional<std::string>& isa,
                const std::optional<std::string>& variant, int threads, int64_t n_split,
                int64_t repeat, float res_scale, int32_t res_zp) {
  const Chosen ch = choose(isa, variant);
  const QGemmConfig& g = ch.g;
  if (g.run == nullptr) raise("IsaError", "no qs8_qc8w_gemm kernel registered");
  auto A = typed<uint8_t>(A_obj, "A", 2);
  auto B = typed<int8_t>(B_obj, "B", 2);
  const ptrdiff_t M = A.shape(0), K = A.shape(1), N = B.shape(1);
  if (B.shape(0) != K)
    raise("ShapeError", "A is " + shape_str(A) + " so B must have " + std::to_string(K) +
                            " rows; got " + shape_str(B));
  for (ptrdiff_t i = 0; i < K * N; ++i)
    if (B.data()[i] == -128)
      raise("InputError", "B must hold int8 values in [-127, 127] (symmetric weights); found -128");
  if (threads < 1 || n_split < 1 || repeat < 1)
    raise("InputError", "threads, n_split and repeat must be >= 1; got " + std::to_string(threads) +
                            ", " + std::to_string(n_split) + ", " + std::to_string(repeat));
  QGemmEpilogue ep{};
  ptrdiff_t s_stride = 0, z_stride = 0;
  const std::vector<float> a_scale = per_row<float>(a_scale_obj, M, "a_scale", &s_stride);
  const std::vector<int32_t> a_zp = per_row<int32_t>(a_zp_obj, M, "a_zp", &z_stride);
  if (s_stride != z_stride)
    raise("InputError", "a_scale and a_zp must both be per row (arrays) or both per tensor (numbers)");
  for (int32_t z : a_zp)
    if (z < 0 || z > 255) raise("InputError", "a_zp must be in [0, 255]; got " + std::to_string(z));
  for (float s : a_scale)
    if (!std::isfinite(s)) raise("InputError", "a_scale must be finite");
  auto ws = typed<float>(w_scale_obj, "w_scale", 1);
  if (ws.shape(0) != N)
    raise("ShapeError", "w_scale must have shape (" + std::to_string(N) + ",), got " + shape_str(ws));
  ep.a_scale = a_scale.data();
  ep.a_zp = a_zp.data();
  ep.a_stride = s_stride;
  ep.w_scale = ws.data();
  py::array_t<float, py::array::c_style> bias, res;
  py::array_t<uint8_t, py::array::c_style> res_q;
  if (!bias_obj.is_none()) {
    bias = typed<float>(bias_obj, "bias", 1);
    if (bias.shape(0) != N)
      raise("ShapeError", "bias must have shape (" + std::to_string(N) + ",), got " + shape_str(bias));
    ep.bias = bias.data();
  }
  // a uint8 residual: real = res_scale * (q - res_zp)
  const bool res_u8 = py::isinstance<py::array>(res_obj) &&
                      py::reinterpret_borrow<py::array>(res_obj).dtype().is(py::dtype::of<uint8_t>());
  if (!res_obj.is_none()) {
    const py::array r = res_u8 ? py::array(res_q = typed<uint8_t>(res_obj, "residual", 2))
                               : py::array(res = typed<float>(res_obj, "residual", 2));
    if (r.shape(0) != M || r.shape(1) != N)
      raise("ShapeError", "residual must have shape (" + std::to_string(M) + ", " +
                              std::to_string(N) + "), got " + shape_str(r));
    if (res_u8) {
      if (res_zp < 0 || res_zp > 255 || !(res_scale > 0.0f) || !std::isfinite(res_scale))
        raise("InputError", "a uint8 residual needs res_zp in [0, 255] and a finite res_scale > 0");
      ep.residual_u8 = res_q.data();
      ep.res_scale = res_scale;
      ep.res_zp = res_zp;
    } else {
      ep.residual = res.data();
    }
    ep.ldr = N;
  }
  ep.residual_after_act = residual_after_act ? 1 : 0;
  ep.act = kt::parse_act(act);
  ep.lo = lo;
  ep.hi = hi;
  ep.out_u8 = out_u8 ? 1 : 0;
  if (out_u8) {
    if (!(out_scale > 0.0f) || !std::isfinite(out_scale))
      raise("InputError", "out_scale must be finite and > 0; got " + std::to_string(out_scale));
    if (out_zp < 0 || out_zp > 255)
      raise("InputError", "out_zp must be in [0, 255]; got " + std::to_string(out_zp));
  }
  ep.out_scale = out_scale;
  ep.out_zp = out_zp;

  // Packed weights with guard bytes after packed_bytes.
  const size_t pbytes = g.packed_bytes(K, N);
  constexpr size_t kGuard = 64;
  AlignedBuffer packed(pbytes + kGuard, g.pack_align);
  std::memset(packed.get(), kSentinelByte, pbytes + kGuard);
  const size_t esz = out_u8 ? 1 : sizeof(float);
  const ptrdiff_t ldc = N + kPad;
  std::vector<unsigned char> cbuf(size_t(M * ldc) * esz + 1, kSentinelByte);
  {
    py::gil_scoped_release nogil;
    if (N > 0) g.pack(K, N, B.data(), N, packed.get());
  }
  for (size_t i = pbytes; i < pbytes + kGuard; ++i)
    if (packed.as<unsigned char>()[i] != kSentinelByte)
      throw std::logic_error(std::string(g.name) + ": pack wrote past packed_bytes");
  if (M > 0 && N > 0) {
    py::gil_scoped_release nogil;
    for (int64_t rep = 0; rep < repeat; ++rep) {
      if (threads > 1) {
        qgemm_parallel(g, ch.isa, threads, M, N, K, A.data(), K, packed.get(), cbuf.data(), ldc, ep);
        continue;
      }
      // Column blocks on multiples of nr, last first, as threads would run them.
      const ptrdiff_t panels = (N + g.nr - 1) / g.nr;
      for (int64_t i = n_split - 1; i >= 0; --i) {
        const ptrdiff_t q0 = panels * i / n_split, q1 = panels * (i + 1) / n_split;
        const ptrdiff_t n0 = q0 * g.nr, n1 = q1 * g.nr < N ? q1 * g.nr : N;
        if (n1 > n0) g.run(M, N, K, A.data(), K, packed.get(), cbuf.data(), ldc, &ep, n0, n1);
      }
    }
  }
  for (ptrdiff_t m = 0; m < M; ++m)
    for (size_t b = size_t(N) * esz; b < size_t(ldc) * esz; ++b)
      if (cbuf[size_t(m * ldc) * esz + b] != kSentinelByte)
        throw std::logic_error(std::string(g.name) + ": wrote past column N in row " + std::to_string(m));
  const std::vector<py::ssize_t> shape{py::ssize_t(M), py::ssize_t(N)};
  py::array out = out_u8 ? py::array(py::array_t<uint8_t>(shape)) : py::array(py::array_t<float>(shape));
  unsigned char* dst = static_cast<unsigned char*>(out.mutable_data());
  for (ptrdiff_t m = 0; m < M; ++m)
    std::memcpy(dst + size_t(m * N) * esz, cbuf.data() + size_t(m * ldc) * esz, size_t(N) * esz);
  return out;
}

py::tuple quantize_rows(const py::object& x_obj, const std::optional<std::string>& isa,
                        const std::optional<std::string>& variant) {
  const QGemmConfig g = choose(isa, variant).g;
  auto x = typed<float>(x_obj, "x", 2);
  const ptrdiff_t M = x.shape(0), K = x.shape(1);
  py::array_t<uint8_t> q({py::ssize_t(M), py::ssize_t(K)});
  py::array_t<float> scale(py::ssize_t{M});
  py::array_t<int32_t> zp(py::ssize_t{M});
  if (M > 0) {
    uint8_t* qd = q.mutable_data();
    float* sd = scale.mutable_data();
    int32_t* zd = zp.mutable_data();
    py::gil_scoped_release nogil;
    g.quantize_rows(M, K, x.data(), K, qd, K, sd, zd);
  }
  return py::make_tuple(q, scale, zp);
}

py::array_t<uint8_t> quantize(const py::object& x_obj, float scale, int32_t zp,
                             const std::optional<std::string>& isa,
                             const std::optional<std::string>& variant) {
  const QGemmConfig g = choose(isa, variant).g;
  auto x = typed<float>(x_obj, "x", 2);
  if (!(scale > 0.0f) || !std::isfinite(scale))
    kt::raise("InputError", "quantize: scale must be finite and > 0");
  if (zp < 0 || zp > 255) kt::raise("InputError", "quantize: zp must lie in [0, 255]");
  const ptrdiff_t M = x.shape(0), K = x.shape(1);
  py::array_t<uint8_t> q({py::ssize_t(M), py::ssize_t(K)});
  if (M > 0) {
    uint8_t* qd = q.mutable_data();
    py::gil_scoped_release nogil;
    g.quantize(M, K, x.data(), K, qd, K, scale, zp);
  }
  return q;
}

}  // namespace

void bind_testing_qgemm(py::module_& testing) {
  testing.def("qgemm", &qgemm, py::arg("A"), py::arg("B"), py::arg("a_scale"), py::arg("a_zp"),
              py::arg("w_scale"), py::arg("bias") = py::none(), py::arg("residual") = py::none(),
              py::arg("act") = "none", py::arg("lo") = 0.0f, py::arg("hi") = 0.0f,
              py::arg("residual_after_act") = false, py::arg("out_u8") = false,
              py::arg("out_scale") = 1.0f, py::arg("out_zp") = 0, py::arg("isa") = py::none(),
              py::arg("variant") = py::none(), py::arg("threads") = 1, py::arg("n_split") = 1,
              py::arg("repeat") = 1, py::arg("res_scale") = 1.0f, py::arg("res_zp") = 0,
              "C = requantize(A @ B) by qs8_qc8w_gemm (QGemmEpilogue in kernels.h): A uint8 "
              "[M, K], B int8 [K, N] in [-127, 127], a_scale / a_zp numbers (per tensor) or "
              "arrays [M] (per row), w_scale [N]; residual float32, or uint8 (real = res_scale "
              "* (q - res_zp)). float32 C, or uint8 with out_u8. isa: a "
              "table level (None: the one in use); variant: one kernel by name. threads > 1 "
              "runs qgemm_parallel; else n_split column blocks, last first. `repeat` reruns "
              "after one packing (timing).");
  testing.def("quantize_rows", &quantize_rows, py::arg("x"), py::arg("isa") = py::none(),
              py::arg("variant") = py::none(),
              "Dynamic per-row quantization of float32 x [M, K]: (q uint8 [M, K], scale "
              "float32 [M], zp int32 [M]) (QGemmConfig::quantize_rows).");
  testing.def("quantize", &quantize, py::arg("x"), py::arg("scale"), py::arg("zp"),
              py::arg("isa") = py::none(), py::arg("variant") = py::none(),
              "Static quantization of float32 x [M, K] with one scale and zero point: uint8 "
              "[M, K] (QGemmConfig::quantize).");
  testing.def("qgemm_config", [](const std::optional<std::string>& isa,
                                 const std::optional<std::string>& variant) {
    const Chosen ch = choose(isa, variant);
    py::dict d;
    d["name"] = ch.g.name ? ch.g.name : "";
    d["mr"] = ch.g.mr;
    d["nr"] = ch.g.nr;
    d["level"] = isa_name(ch.isa);
    return d;
  }, py::arg("isa") = py::none(), py::arg("variant") = py::none(),
     "The qs8_qc8w_gemm kernel of a table level or a variant: {name, mr, nr, level}.");
  testing.def("qgemm_variants", [] {
    const uint32_t have = cpu_features().usable();
    py::list out;
    for (const KernelVariant& v : kernel_variants()) {
      if (std::string(v.entry) != "qs8_qc8w_gemm") continue;
      KernelTable t{};
      v.fill(t);
      py::dict d;
      d["name"] = t.qs8_qc8w_gemm.name;
      d["level"] = isa_name(v.level);
      d["runs"] = (v.needs & have) == v.needs;
      d["testing"] = false;
      out.append(d);
    }
    py::dict emu;  // test-only: the AVX-VNNI tile with an emulated vpdpbusd
    emu["name"] = qs8_qc8w_gemm_avxvnni_emu_testing().name;
    emu["level"] = isa_name(Isa::Avx2);
    emu["runs"] = (kFeatAvx2Fma & have) == kFeatAvx2Fma;
    emu["testing"] = true;
    out.append(emu);
    return out;
  }, "Every qs8_qc8w_gemm variant in the dispatch list, then the test-only AVX-VNNI tile "
     "with an emulated vpdpbusd: {name, level, runs (this CPU has its features), testing "
     "(never in a table)}.");
}

}  // namespace pyrt
