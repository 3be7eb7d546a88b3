// Kernel-level test entry points for pooling: _core.testing.maxpool / avgpool /
// global_avgpool, on one HWC image.
#include "../bindings/bindings.h"
#include "kern_testing_util.h"

namespace pyrt {

namespace {
using namespace kt;

py::array pool(bool is_max, farray x, py::sequence kernel, py::sequence strides,
               py::sequence pads, py::sequence dilations, bool count_include_pad,
               std::optional<std::string> isa, ptrdiff_t row_split, bool ceil_mode) {
  const char* name = is_max ? "maxpool" : "avgpool";
  const KernelTable& t = table(isa);
  if (x.ndim() != 3 || x.shape(0) < 1 || x.shape(1) < 1 || x.shape(2) < 1)
    raise("ShapeError", std::string(name) + ": x must be one non-empty HWC image, got shape " +
                            shape_str(x));
  const ptrdiff_t H = x.shape(0), W = x.shape(1), C = x.shape(2);
  const auto k = ints(kernel, 2, "kernel", 1);
  const auto s = ints(strides, 2, "strides", 1);
  const auto p = ints(pads, 4, "pads (top, left, bottom, right)", 0);
  const auto d = ints(dilations, 2, "dilations", 1);
  if (row_split < 1) raise("InputError", "row_split must be >= 1");
  const ptrdiff_t eh = d[0] * (k[0] - 1) + 1, ew = d[1] * (k[1] - 1) + 1;
  if (H + p[0] + p[2] < eh || W + p[1] + p[3] < ew)
    raise("ShapeError", std::string(name) + ": the (dilated) kernel is larger than the padded input");
  // ceil_mode: a last window may start inside the padded input and run past it (ONNX
  // drops a window that would start inside the bottom/right padding only).
  auto out = [&](ptrdiff_t n, ptrdiff_t pa, ptrdiff_t pz, ptrdiff_t e, ptrdiff_t st) {
    ptrdiff_t o = ceil_mode ? (n + pa + pz - e + st - 1) / st + 1 : (n + pa + pz - e) / st + 1;
    if (ceil_mode && (o - 1) * st >= n + pa) --o;
    return o;
  };
  const ptrdiff_t OH = out(H, p[0], p[2], eh, s[0]);
  const ptrdiff_t OW = out(W, p[1], p[3], ew, s[1]);
  const auto fn = is_max ? t.f32_pool.maxpool : t.f32_pool.avgpool;
  if (!fn) raise("UnsupportedOpError", std::string("no pool kernel for ISA ") + t.isa_name);
  farray y({OH, OW, C});
  PoolArgs a{};
  a.x = x.data();
  a.H = H; a.W = W; a.C = C;
  a.KH = k[0]; a.KW = k[1]; a.sh = s[0]; a.sw = s[1]; a.pt = p[0]; a.pl = p[1];
  a.dh = d[0]; a.dw = d[1];
  a.y = y.mutable_data();
  a.OH = OH; a.OW = OW;
  a.count_include_pad = count_include_pad ? 1 : 0;
  a.pb = p[2];
  a.pr = p[3];
  {
    py::gil_scoped_release nogil;
    for_row_ranges(OH, row_split, [&](ptrdiff_t r0, ptrdiff_t r1) { fn(&a, r0, r1); });
  }
  return std::move(y);
}

py::array global_avgpool(farray x, std::optional<std::string> isa) {
  const KernelTable& t = table(isa);
  if (x.ndim() != 3 || x.shape(0) < 1 || x.shape(1) < 1 || x.shape(2) < 1)
    raise("ShapeError", "global_avgpool: x must be one non-empty HWC image, got shape " +
                            shape_str(x));
  if (!t.f32_pool.global_avgpool)
    raise("UnsupportedOpError", std::string("no pool kernel for ISA ") + t.isa_name);
  const ptrdiff_t HW = x.shape(0) * x.shape(1), C = x.shape(2);
  farray y({C});
  const float* xp = x.data();
  float* yp = y.mutable_data();
  {
    py::gil_scoped_release nogil;
    t.f32_pool.global_avgpool(xp, HW, C, yp);
  }
  return std::move(y);
}

}  // namespace

void bind_testing_pool(py::module_& testing) {
  const char* doc_tail = " of one HWC image; pads are (top, left, bottom, right); floor output "
                         "size (ceil with ceil_mode, ONNX's rule); output rows run as "
                         "`row_split` separate kernel calls.";
  testing.def(
      "maxpool",
      [](farray x, py::sequence kernel, py::sequence strides, py::sequence pads,
         py::sequence dilations, bool cip, std::optional<std::string> isa, ptrdiff_t rs,
         bool ceil) {
        return pool(true, std::move(x), kernel, strides, pads, dilations, cip, std::move(isa), rs,
                    ceil);
      },
      py::arg("x"), py::arg("kernel"), py::arg("strides") = py::make_tuple(1, 1),
      py::arg("pads") = py::make_tuple(0, 0, 0, 0), py::arg("dilations") = py::make_tuple(1, 1),
      py::arg("count_include_pad") = false, py::arg("isa") = py::none(),
      py::arg("row_split") = 1, py::arg("ceil_mode") = false,
      (std::string("Max pool") + doc_tail).c_str());
  testing.def(
      "avgpool",
      [](farray x, py::sequence kernel, py::sequence strides, py::sequence pads,
         py::sequence dilations, bool cip, std::optional<std::string> isa, ptrdiff_t rs,
         bool ceil) {
        return pool(false, std::move(x), kernel, strides, pads, dilations, cip, std::move(isa), rs,
                    ceil);
      },
      py::arg("x"), py::arg("kernel"), py::arg("strides") = py::make_tuple(1, 1),
      py::arg("pads") = py::make_tuple(0, 0, 0, 0), py::arg("dilations") = py::make_tuple(1, 1),
      py::arg("count_include_pad") = false, py::arg("isa") = py::none(),
      py::arg("row_split") = 1, py::arg("ceil_mode") = false,
      (std::string("Average pool") + doc_tail).c_str());
  testing.def("global_avgpool", &global_avgpool, py::arg("x"), py::arg("isa") = py::none(),
              "Mean over H and W of one HWC image -> (C,).");
}

}  // namespace pyrt
