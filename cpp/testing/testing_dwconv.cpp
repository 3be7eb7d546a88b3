// Kernel-level test entry point for depthwise conv: _core.testing.dwconv(...).
#include "../bindings/bindings.h"
#include "kern_testing_util.h"

#include <vector>

namespace pyrt {

namespace {
using namespace kt;

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
  const ptrdiff_t N = batched ? x.shape(0) : 1;
  const ptrdiff_t H = x.shape(batched ? 1 : 0), W = x.shape(batched ? 2 : 1),
                  C = x.shape(batched ? 3 : 2);
  if (N < 1 || H < 1 || W < 1 || C < 1)
    raise("ShapeError", "dwconv: x must have no empty dimension, got shape " + shape_str(x));
  if (w.ndim() != 4 || w.shape(0) != C || w.shape(1) != 1 || w.shape(2) < 1 || w.shape(3) < 1)
    raise("ShapeError", "dwconv: w must be [C=" + std::to_string(C) +
                            ", 1, KH, KW] (ONNX depthwise layout), got shape " + shape_str(w));
  const ptrdiff_t KH = w.shape(2), KW = w.shape(3);
  const auto s = ints(strides, 2, "strides", 1);
  const auto p = ints(pads, 4, "pads (top, left, bottom, right)", 0);
  const auto d = ints(dilations, 2, "dilations", 1);
  if (row_split < 1) raise("InputError", "row_split must be >= 1");
  const ptrdiff_t eh = d[0] * (KH - 1) + 1, ew = d[1] * (KW - 1) + 1;
  if (H + p[0] + p[2] < eh || W + p[1] + p[3] < ew)
    raise("ShapeError", "dwconv: the (dilated) kernel is larger than the padded input");
  const ptrdiff_t OH = (H + p[0] + p[2] - eh) / s[0] + 1;
  const ptrdiff_t OW = (W + p[1] + p[3] - ew) / s[1] + 1;
  if (bias && (bias->ndim() != 1 || bias->shape(0) != C))
    raise("ShapeError", "dwconv: bias must be (C=" + std::to_string(C) + ",), got " +
                            shape_str(*bias));
  std::vector<py::ssize_t> yshape;
  if (batched) yshape.push_back(N);
  yshape.insert(yshape.end(), {OH, OW, C});
  if (residual) {
    bool ok = residual->ndim() == static_cast<py::ssize_t>(yshape.size());
    for (size_t i = 0; ok && i < yshape.size(); ++i) ok = residual->shape(i) == yshape[i];
    if (!ok) {
      std::string want = "(";
      for (size_t i = 0; i < yshape.size(); ++i) want += (i ? ", " : "") + std::to_string(yshape[i]);
      raise("ShapeError", "dwconv: residual must have the output shape " + want + "), got " +
                              shape_str(*residual));
    }
  }
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
      Epilogue ep{};
      ep.bias = bp;
      ep.residual = rp ? rp + n * OH * OW * C : nullptr;
      ep.ldr = C;
      ep.act = act;
      ep.lo = lo;
      ep.hi = hi;
      ep.residual_after_act = residual_after_act ? 1 : 0;
      DwConvArgs a{};
      a.x = xp + n * H * W * C;
      a.H = H; a.W = W; a.C = C;
      a.w = packed.data();
      a.KH = KH; a.KW = KW; a.sh = s[0]; a.sw = s[1]; a.pt = p[0]; a.pl = p[1];
      a.dh = d[0]; a.dw = d[1];
      a.y = yp + n * OH * OW * C;
      a.OH = OH; a.OW = OW;
      a.ep = &ep;
      for_row_ranges(OH, row_split, [&](ptrdiff_t r0, ptrdiff_t r1) { k.run(&a, r0, r1); });
    }
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
}

}  // namespace pyrt
