// Kernel-level test entry points for depthwise conv: _core.testing.dwconv(...) (NHWC) and
// _core.testing.dwconv_chw(...) (NCHW planes).
#include "../bindings/bindings.h"
#include "kern_testing_util.h"
#include "../runtime/aligned.h"

#include <vector>

namespace pyrt {

namespace {
using namespace kt;

// Checked depthwise geometry of one call (shared by the NHWC and CHW entry points).
struct DwGeo {
  ptrdiff_t N, H, W, C, KH, KW, OH, OW;
  std::vector<ptrdiff_t> s, p, d;
};

DwGeo dw_geometry(const char* who, ptrdiff_t N, ptrdiff_t H, ptrdiff_t W, ptrdiff_t C,
                  const farray& x, const farray& w, const std::optional<farray>& bias,
                  py::sequence strides, py::sequence pads, py::sequence dilations,
                  ptrdiff_t row_split) {
  const std::string name(who);
  if (N < 1 || H < 1 || W < 1 || C < 1)
    raise("ShapeError", name + ": x must have no empty dimension, got shape " + shape_str(x));
  if (w.ndim() != 4 || w.shape(0) != C || w.shape(1) != 1 || w.shape(2) < 1 || w.shape(3) < 1)
    raise("ShapeError", name + ": w must be [C=" + std::to_string(C) +
                            ", 1, KH, KW] (ONNX depthwise layout), got shape " + shape_str(w));
  DwGeo g;
  g.N = N; g.H = H; g.W = W; g.C = C;
  g.KH = w.shape(2);
  g.KW = w.shape(3);
  g.s = ints(strides, 2, "strides", 1);
  g.p = ints(pads, 4, "pads (top, left, bottom, right)", 0);
  g.d = ints(dilations, 2, "dilations", 1);
  if (row_split < 1) raise("InputError", "row_split must be >= 1");
  const ptrdiff_t eh = g.d[0] * (g.KH - 1) + 1, ew = g.d[1] * (g.KW - 1) + 1;
  if (H + g.p[0] + g.p[2] < eh || W + g.p[1] + g.p[3] < ew)
    raise("ShapeError", name + ": the (dilated) kernel is larger than the padded input");
  g.OH = (H + g.p[0] + g.p[2] - eh) / g.s[0] + 1;
  g.OW = (W + g.p[1] + g.p[3] - ew) / g.s[1] + 1;
  if (bias && (bias->ndim() != 1 || bias->shape(0) != C))
    raise("ShapeError", name + ": bias must be (C=" + std::to_string(C) + ",), got " +
                            shape_str(*bias));
  return g;
}

void check_residual_shape(const char* who, const std::optional<farray>& residual,
                          const std::vector<py::ssize_t>& yshape) {
  if (!residual) return;
  bool ok = residual->ndim() == static_cast<py::ssize_t>(yshape.size());
  for (size_t i = 0; ok && i < yshape.size(); ++i) ok = residual->shape(i) == yshape[i];
  if (!ok) {
    std::string want = "(";
    for (size_t i = 0; i < yshape.size(); ++i) want += (i ? ", " : "") + std::to_string(yshape[i]);
    raise("ShapeError", std::string(who) + ": residual must have the output shape " + want +
                            "), got " + shape_str(*residual));
  }
}

Epilogue make_epilogue(const float* bias, const float* res, ptrdiff_t ldr, Act act, float lo,
                       float hi, bool residual_after_act) {
  Epilogue ep{};
  ep.bias = bias;
  ep.residual = res;
  ep.ldr = ldr;
  ep.act = act;
  ep.lo = lo;
  ep.hi = hi;
  ep.residual_after_act = residual_after_act ? 1 : 0;
  return ep;
}

py::array dwconv(farray x, farray w, std::optional<farray> bias, std::optional<farray> residual,
                 py::sequence strides, py::sequence pads, py::sequence dilations,
                 const std::string& act_name, float lo, float hi, bool residual_after_act,
                 std::optional<std::string> isa, ptrdiff_t row_split) {
  const KernelTable& t = table(isa);
  const Act act = parse_act(act_name);
  if (x.ndim() != 3 && x.ndim() != 4)
    raise("ShapeError", "dwconv: x must be NHWC (N, H, W, C) or one image (H, W, C), got shape " +
                            shape_str(x));
  const bool batched = x.ndim() == 4;
  const int o = batched ? 1 : 0;
  const DwGeo g = dw_geometry("dwconv", batched ? x.shape(0) : 1, x.shape(o), x.shape(o + 1),
                              x.shape(o + 2), x, w, bias, strides, pads, dilations, row_split);
  const ptrdiff_t N = g.N, H = g.H, W = g.W, C = g.C, KH = g.KH, KW = g.KW, OH = g.OH, OW = g.OW;
  std::vector<py::ssize_t> yshape;
  if (batched) yshape.push_back(N);
  yshape.insert(yshape.end(), {OH, OW, C});
  check_residual_shape("dwconv", residual, yshape);
  const DwConvConfig& k = t.f32_dwconv;
  if (!k.run) raise("UnsupportedOpError", std::string("no dwconv kernel for ISA ") + t.isa_name);
  farray y(yshape);
  std::vector<float> packed(k.packed_bytes(KH, KW, C) / sizeof(float) + 1);
  const float* xp = x.data();
  const float* wp = w.data();
  const float* bp = bias ? bias->data() : nullptr;
  const float* rp = residual ? residual->data() : nullptr;
  float* yp = y.mutable_data();
  {
    py::gil_scoped_release nogil;
    k.pack(wp, KH, KW, C, packed.data());
    for (ptrdiff_t n = 0; n < N; ++n) {
      const Epilogue ep = make_epilogue(bp, rp ? rp + n * OH * OW * C : nullptr, C, act, lo, hi,
                                        residual_after_act);
      DwConvArgs a{};
      a.x = xp + n * H * W * C;
      a.H = H; a.W = W; a.C = C;
      a.w = packed.data();
      a.KH = KH; a.KW = KW; a.sh = g.s[0]; a.sw = g.s[1]; a.pt = g.p[0]; a.pl = g.p[1];
      a.dh = g.d[0]; a.dw = g.d[1];
      a.y = yp + n * OH * OW * C;
      a.OH = OH; a.OW = OW;
      a.ep = &ep;
      for_row_ranges(OH, row_split, [&](ptrdiff_t r0, ptrdiff_t r1) { k.run(&a, r0, r1); });
    }
  }
  return std::move(y);
}

// NCHW x (or one CHW image): every plane in `plane_split` calls (last first), each over
// `row_split` output-row ranges, each with a fresh scratch buffer.
py::array dwconv_chw(farray x, farray w, std::optional<farray> bias,
                     std::optional<farray> residual, py::sequence strides, py::sequence pads,
                     py::sequence dilations, const std::string& act_name, float lo, float hi,
                     bool residual_after_act, std::optional<std::string> isa,
                     ptrdiff_t row_split, ptrdiff_t plane_split) {
  const KernelTable& t = table(isa);
  const Act act = parse_act(act_name);
  if (x.ndim() != 3 && x.ndim() != 4)
    raise("ShapeError", "dwconv_chw: x must be NCHW (N, C, H, W) or one image (C, H, W), "
                        "got shape " + shape_str(x));
  const bool batched = x.ndim() == 4;
  const int o = batched ? 1 : 0;
  const DwGeo g = dw_geometry("dwconv_chw", batched ? x.shape(0) : 1, x.shape(o + 1),
                              x.shape(o + 2), x.shape(o), x, w, bias, strides, pads, dilations,
                              row_split);
  if (plane_split < 1) raise("InputError", "plane_split must be >= 1");
  std::vector<py::ssize_t> yshape;
  if (batched) yshape.push_back(g.N);
  yshape.insert(yshape.end(), {g.C, g.OH, g.OW});
  check_residual_shape("dwconv_chw", residual, yshape);
  const DwConvChwConfig& k = t.f32_dwconv2d_chw;
  if (!k.run) raise("UnsupportedOpError", std::string("no dwconv_chw kernel for ISA ") + t.isa_name);
  farray y(yshape);
  AlignedBuffer packed(k.packed_bytes(g.KH, g.KW, g.C), k.pack_align);
  const Epilogue ep = make_epilogue(bias ? bias->data() : nullptr,
                                    residual ? residual->data() : nullptr, g.OW, act, lo, hi,
                                    residual_after_act);
  DwConvChwArgs a{};
  a.x = x.data();
  a.H = g.H; a.W = g.W; a.C = g.C;
  a.w = packed.get();
  a.KH = g.KH; a.KW = g.KW; a.sh = g.s[0]; a.sw = g.s[1]; a.pt = g.p[0]; a.pl = g.p[1];
  a.dh = g.d[0]; a.dw = g.d[1];
  a.y = y.mutable_data();
  a.OH = g.OH; a.OW = g.OW;
  a.ep = &ep;
  const float* wp = w.data();
  {
    py::gil_scoped_release nogil;
    k.pack(wp, g.KH, g.KW, g.C, packed.get());
    const ptrdiff_t P = g.N * g.C;
    for_row_ranges(P, plane_split, [&](ptrdiff_t p0, ptrdiff_t p1) {
      for_row_ranges(g.OH, row_split, [&](ptrdiff_t r0, ptrdiff_t r1) {
        // Exactly the size asked for: a read or write past it shows up under ASan.
        const size_t n = k.scratch_floats(&a);
        AlignedBuffer scratch(n * sizeof(float), 64);
        k.run(&a, p0, p1, r0, r1, n ? scratch.as<float>() : nullptr);
      });
    });
  }
  return std::move(y);
}

}  // namespace

void bind_testing_dwconv(py::module_& testing) {
  const float inf = std::numeric_limits<float>::infinity();
  testing.def("dwconv", &dwconv, py::arg("x"), py::arg("w"), py::arg("bias") = py::none(),
              py::arg("residual") = py::none(), py::arg("strides") = py::make_tuple(1, 1),
              py::arg("pads") = py::make_tuple(0, 0, 0, 0),
              py::arg("dilations") = py::make_tuple(1, 1), py::arg("act") = "none",
              py::arg("lo") = -inf, py::arg("hi") = inf, py::arg("residual_after_act") = false,
              py::arg("isa") = py::none(), py::arg("row_split") = 1,
              "Depthwise conv of NHWC x (or one HWC image) with ONNX weights [C,1,KH,KW]; "
              "pads are (top, left, bottom, right); floor output size. Runs the output rows "
              "as `row_split` separate kernel calls.");
  testing.def("dwconv_chw", &dwconv_chw, py::arg("x"), py::arg("w"), py::arg("bias") = py::none(),
              py::arg("residual") = py::none(), py::arg("strides") = py::make_tuple(1, 1),
              py::arg("pads") = py::make_tuple(0, 0, 0, 0),
              py::arg("dilations") = py::make_tuple(1, 1), py::arg("act") = "none",
              py::arg("lo") = -inf, py::arg("hi") = inf, py::arg("residual_after_act") = false,
              py::arg("isa") = py::none(), py::arg("row_split") = 1, py::arg("plane_split") = 1,
              "Depthwise conv of NCHW x (or one CHW image) with the planar kernel "
              "(f32_dwconv2d_chw); runs the planes as `plane_split` and the output rows as "
              "`row_split` separate kernel calls.");
}

}  // namespace pyrt
