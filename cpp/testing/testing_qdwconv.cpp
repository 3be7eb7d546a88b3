// Kernel-level test entry points for the quantized depthwise conv (qu8_dwconv):
//   _core.testing.qdwconv(x, w, a_scale, a_zp, w_scale, ...)  packs w, runs the kernel
//   _core.testing.qdwconv_variants()                          every variant, and whether
//                                                            this CPU runs it
// `variant` picks one kernel by name (e.g. "qu8_dwconv__avx2"), `isa` a table level.
// The input is copied to pixels at a 4-byte padded stride (padding bytes 0xA5) and the
// output to pixels with guard elements past C that must survive.
#include <pybind11/numpy.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "../bindings/bindings.h"
#include "../runtime/aligned.h"
#include "../runtime/parallel.h"
#include "kern_testing_util.h"
#include "pyrt/dispatch.h"

namespace py = pybind11;

namespace pyrt {
namespace {

using kt::raise;
using kt::shape_str;

QDwConvConfig choose(const std::optional<std::string>& isa, const std::optional<std::string>& variant) {
  if (variant) {
    const uint32_t have = cpu_features().usable();
    std::string names;
    for (const KernelVariant& v : kernel_variants()) {
      if (std::string(v.entry) != "qu8_dwconv") continue;
      KernelTable t{};
      v.fill(t);  // constexpr records: runs no ISA instruction
      if (*variant == t.qu8_dwconv.name) {
        if ((v.needs & have) != v.needs)
          raise("IsaError", "variant " + *variant + " needs CPU features this CPU/OS lacks");
        return t.qu8_dwconv;
      }
      names += (names.empty() ? "'" : ", '") + std::string(t.qu8_dwconv.name) + "'";
    }
    raise("IsaError", "unknown qu8_dwconv variant '" + *variant + "': expected one of " + names);
  }
  return kt::table(isa).qu8_dwconv;
}

template <class T>
py::array_t<T, py::array::c_style> typed(const py::handle& obj, const char* what, int ndim,
                                         const char* dtype) {
  if (!py::isinstance<py::array>(obj))
    raise("DTypeError", std::string(what) + " must be a numpy " + dtype + " array, got " +
                            std::string(py::str(py::type::of(obj).attr("__name__"))));
  py::array a = py::reinterpret_borrow<py::array>(obj);
  if (!a.dtype().is(py::dtype::of<T>()))
    raise("DTypeError", std::string(what) + " must be " + dtype + ", got " + std::string(py::str(a.dtype())));
  if (a.ndim() != ndim)
    raise("ShapeError", std::string(what) + " must be " + std::to_string(ndim) + "-D, got shape " +
                            shape_str(a));
  return py::array_t<T, py::array::c_style>::ensure(a);
}

constexpr ptrdiff_t kGuard = 3;  // output elements past C per pixel that must stay untouched
constexpr unsigned char kSentinel = 0xA5;

py::array qdwconv(const py::object& x_obj, const py::object& w_obj, float a_scale, int32_t a_zp,
                  const py::object& w_scale_obj, const py::object& bias_obj,
                  const py::object& res_obj, py::sequence strides, py::sequence pads,
                  py::sequence dilations, const std::string& act, float lo, float hi,
                  bool residual_after_act, bool out_u8, float out_scale, int32_t out_zp,
                  const std::optional<std::string>& isa, const std::optional<std::string>& variant,
                  ptrdiff_t row_split, int threads) {
  const QDwConvConfig k = choose(isa, variant);
  if (k.run == nullptr) raise("IsaError", "no qu8_dwconv kernel registered");
  auto x = typed<uint8_t>(x_obj, "x", 3, "uint8");
  auto w = typed<int8_t>(w_obj, "w", 4, "int8");
  const ptrdiff_t H = x.shape(0), W = x.shape(1), C = x.shape(2);
  if (H < 1 || W < 1 || C < 1)
    raise("ShapeError", "x must be one HWC image with no empty dimension, got shape " + shape_str(x));
  if (w.shape(0) != C || w.shape(1) != 1 || w.shape(2) < 1 || w.shape(3) < 1)
    raise("ShapeError", "w must be [C=" + std::to_string(C) + ", 1, KH, KW] (ONNX depthwise layout), got shape " +
                            shape_str(w));
  const ptrdiff_t KH = w.shape(2), KW = w.shape(3);
  for (ptrdiff_t i = 0; i < w.size(); ++i)
    if (w.data()[i] == -128)
      raise("InputError", "w must hold int8 values in [-127, 127] (symmetric weights); found -128");
  if (k.max_taps > 0 && KH * KW > k.max_taps)
    raise("InputError", std::string(k.name) + " takes at most " + std::to_string(k.max_taps) +
                            " taps (KH * KW); got " + std::to_string(KH * KW));
  const std::vector<ptrdiff_t> s = kt::ints(strides, 2, "strides", 1);
  const std::vector<ptrdiff_t> p = kt::ints(pads, 4, "pads (top, left, bottom, right)", 0);
  const std::vector<ptrdiff_t> d = kt::ints(dilations, 2, "dilations", 1);
  const ptrdiff_t eh = d[0] * (KH - 1) + 1, ew = d[1] * (KW - 1) + 1;
  if (H + p[0] + p[2] < eh || W + p[1] + p[3] < ew)
    raise("ShapeError", "qdwconv: the (dilated) kernel is larger than the padded input");
  const ptrdiff_t OH = (H + p[0] + p[2] - eh) / s[0] + 1, OW = (W + p[1] + p[3] - ew) / s[1] + 1;
  if (row_split < 1 || threads < 1)
    raise("InputError", "row_split and threads must be >= 1; got " + std::to_string(row_split) +
                            ", " + std::to_string(threads));
  if (a_zp < 0 || a_zp > 255) raise("InputError", "a_zp must be in [0, 255]; got " + std::to_string(a_zp));
  if (!std::isfinite(a_scale)) raise("InputError", "a_scale must be finite");
  auto ws = typed<float>(w_scale_obj, "w_scale", 1, "float32");
  if (ws.shape(0) != C)
    raise("ShapeError", "w_scale must have shape (" + std::to_string(C) + ",), got " + shape_str(ws));
  QGemmEpilogue ep{};
  ep.a_scale = &a_scale;
  ep.a_zp = &a_zp;
  ep.a_stride = 0;
  ep.w_scale = ws.data();
  py::array_t<float, py::array::c_style> bias, res;
  if (!bias_obj.is_none()) {
    bias = typed<float>(bias_obj, "bias", 1, "float32");
    if (bias.shape(0) != C)
      raise("ShapeError", "bias must have shape (" + std::to_string(C) + ",), got " + shape_str(bias));
    ep.bias = bias.data();
  }
  if (!res_obj.is_none()) {
    res = typed<float>(res_obj, "residual", 3, "float32");
    if (res.shape(0) != OH || res.shape(1) != OW || res.shape(2) != C)
      raise("ShapeError", "residual must have the output shape (" + std::to_string(OH) + ", " +
                              std::to_string(OW) + ", " + std::to_string(C) + "), got " + shape_str(res));
    ep.residual = res.data();
    ep.ldr = C;
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

  // Input pixels at the plan's padded stride, exactly H * W * ldx bytes.
  const ptrdiff_t ldx = (C + 3) / 4 * 4;
  std::vector<uint8_t> xb(size_t(H * W * ldx), kSentinel);
  for (ptrdiff_t i = 0; i < H * W; ++i) std::memcpy(xb.data() + i * ldx, x.data() + i * C, size_t(C));
  const size_t pbytes = k.packed_bytes(KH, KW, C);
  AlignedBuffer packed(pbytes + 64, k.pack_align);
  std::memset(packed.get(), kSentinel, pbytes + 64);
  const size_t esz = out_u8 ? 1 : sizeof(float);
  const ptrdiff_t ldy = C + kGuard;
  std::vector<unsigned char> yb(size_t(OH * OW * ldy) * esz, kSentinel);
  QDwConvArgs a{};
  a.x = xb.data();
  a.ldx = ldx;
  a.H = H; a.W = W; a.C = C;
  a.w = packed.get();
  a.KH = KH; a.KW = KW; a.sh = s[0]; a.sw = s[1]; a.pt = p[0]; a.pl = p[1]; a.dh = d[0]; a.dw = d[1];
  a.y = yb.data();
  a.ldy = ldy;
  a.OH = OH; a.OW = OW;
  a.ep = &ep;
  const int8_t* wd = w.data();
  {
    py::gil_scoped_release nogil;
    k.pack(wd, KH, KW, C, packed.get());
    for (size_t i = pbytes; i < pbytes + 64; ++i)
      if (packed.as<unsigned char>()[i] != kSentinel)
        throw std::logic_error(std::string(k.name) + ": pack wrote past packed_bytes");
    if (threads > 1) {
      const ptrdiff_t n = row_split;
      parallel_for(threads, n, [&](ptrdiff_t i, int) {
        const ptrdiff_t r0 = OH * i / n, r1 = OH * (i + 1) / n;
        if (r1 > r0) k.run(&a, r0, r1);
      });
    } else {
      kt::for_row_ranges(OH, row_split, [&](ptrdiff_t r0, ptrdiff_t r1) { k.run(&a, r0, r1); });
    }
  }
  for (ptrdiff_t i = 0; i < OH * OW; ++i)
    for (size_t b = size_t(C) * esz; b < size_t(ldy) * esz; ++b)
      if (yb[size_t(i * ldy) * esz + b] != kSentinel)
        throw std::logic_error(std::string(k.name) + ": wrote past channel C of output pixel " +
                               std::to_string(i));
  const std::vector<py::ssize_t> shape{py::ssize_t(OH), py::ssize_t(OW), py::ssize_t(C)};
  py::array out = out_u8 ? py::array(py::array_t<uint8_t>(shape)) : py::array(py::array_t<float>(shape));
  unsigned char* dst = static_cast<unsigned char*>(out.mutable_data());
  for (ptrdiff_t i = 0; i < OH * OW; ++i)
    std::memcpy(dst + size_t(i * C) * esz, yb.data() + size_t(i * ldy) * esz, size_t(C) * esz);
  return out;
}

}  // namespace

void bind_testing_qdwconv(py::module_& testing) {
  const float inf = std::numeric_limits<float>::infinity();
  testing.def("qdwconv", &qdwconv, py::arg("x"), py::arg("w"), py::arg("a_scale"), py::arg("a_zp"),
              py::arg("w_scale"), py::arg("bias") = py::none(), py::arg("residual") = py::none(),
              py::arg("strides") = py::make_tuple(1, 1), py::arg("pads") = py::make_tuple(0, 0, 0, 0),
              py::arg("dilations") = py::make_tuple(1, 1), py::arg("act") = "none",
              py::arg("lo") = -inf, py::arg("hi") = inf, py::arg("residual_after_act") = false,
              py::arg("out_u8") = false, py::arg("out_scale") = 1.0f, py::arg("out_zp") = 0,
              py::arg("isa") = py::none(), py::arg("variant") = py::none(),
              py::arg("row_split") = 1, py::arg("threads") = 1,
              "Quantized depthwise conv (qu8_dwconv) of one uint8 HWC image x with int8 weights "
              "[C, 1, KH, KW] in [-127, 127]: the QGemmEpilogue with one a_scale / a_zp, w_scale "
              "[C], bias [C], float residual [OH, OW, C]; float32 output, or uint8 with out_u8. "
              "pads are (top, left, bottom, right). isa: a table level (None: the one in use); "
              "variant: one kernel by name. The output rows run as `row_split` calls (last "
              "first), on `threads` threads when > 1.");
  testing.def("qdwconv_variants", [] {
    const uint32_t have = cpu_features().usable();
    py::list out;
    for (const KernelVariant& v : kernel_variants()) {
      if (std::string(v.entry) != "qu8_dwconv") continue;
      KernelTable t{};
      v.fill(t);
      py::dict dd;
      dd["name"] = t.qu8_dwconv.name;
      dd["level"] = isa_name(v.level);
      dd["runs"] = (v.needs & have) == v.needs;
      dd["max_taps"] = t.qu8_dwconv.max_taps;
      out.append(dd);
    }
    return out;
  }, "Every qu8_dwconv variant in the dispatch list: {name, level, runs (this CPU has its "
     "features), max_taps (0 = any)}.");
}

}  // namespace pyrt
