// The quantized builder calls of _core.Plan: quantize / dequantize a value, and the
// int8 Gemm, conv and depthwise conv steps. Checked under the GIL like plan.cpp's.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "../runtime/steps_quant.h"
#include "pyplan.h"

namespace py = pybind11;

namespace pyrt {
namespace {

using I8Array = py::array_t<int8_t, py::array::c_style>;

I8Array int8_weight(const py::object& o, int64_t expect, const char* what) {
  if (!py::isinstance<py::array>(o) || py::array(o).dtype().kind() != 'i' ||
      py::array(o).dtype().itemsize() != 1)
    throw std::invalid_argument(std::string(what) + ": expected an int8 array");
  I8Array a = I8Array::ensure(o);
  if (!a || a.size() != expect)
    throw std::invalid_argument(std::string(what) + ": expected " + std::to_string(expect) +
                                " int8 values");
  for (py::ssize_t i = 0; i < a.size(); ++i)
    if (a.data()[i] < -127)
      throw std::invalid_argument(std::string(what) + ": int8 weights must lie in [-127, 127]");
  return a;
}

std::vector<float> floats(const py::object& o, int64_t n, const char* what, bool positive) {
  FArray a = weight(o, n, what);
  std::vector<float> v(a.data(), a.data() + n);
  if (positive)
    for (float f : v)
      if (!(f > 0.0f) || !std::isfinite(f))
        throw std::invalid_argument(std::string(what) + ": expected finite values > 0");
  return v;
}

QuantSpec spec(float scale, int32_t zp, bool allow_float, const char* what) {
  if (zp < (allow_float ? -1 : 0) || zp > 255)
    throw std::invalid_argument(std::string(what) + ": zero point must lie in [0, 255]");
  if (zp >= 0 && (!(scale > 0.0f) || !std::isfinite(scale)))
    throw std::invalid_argument(std::string(what) + ": scale must be finite and > 0");
  return QuantSpec{scale, zp};
}

// The input side: static (scale, zp) or dynamic values (scale_v, zp_v) with `group`
// rows per scale; `rows` per sample.
QuantInput input(Plan& p, float scale, int32_t zp, int scale_v, int zp_v, int64_t group,
                 int64_t rows) {
  QuantInput in;
  if (scale_v < 0) {
    in.spec = spec(scale, zp, false, "input");
    return in;
  }
  if (group < 1 || rows % group || p.per_sample(scale_v) != rows / group ||
      p.per_sample(zp_v) != rows / group)
    throw std::invalid_argument("dynamic input: scale/zero-point values must hold one entry per group");
  in.scale_v = scale_v;
  in.zp_v = zp_v;
  in.group = group;
  return in;
}

QuantEpilogue q_epilogue(const py::object& w_scale, const py::object& bias, int64_t n,
                         int residual, Act act, float lo, float hi, bool after,
                         float out_scale, int32_t out_zp, float res_scale, int32_t res_zp) {
  QuantEpilogue e;
  e.w_scale = floats(w_scale, n, "w_scale", true);
  if (!bias.is_none()) e.bias = floats(bias, n, "bias", false);
  e.residual = residual;
  e.res = spec(res_scale, res_zp, true, "residual");
  e.act = act;
  e.lo = lo;
  e.hi = hi;
  e.residual_after_act = after;
  e.out = spec(out_scale, out_zp, true, "output");
  return e;
}

}  // namespace

void bind_plan_quant(py::class_<PyPlan>& cls) {
  cls.def("quantize", [](PyPlan& s, int x, int y, int64_t rows, int64_t cols, float scale,
                         int32_t zp, int scale_v, int zp_v, int64_t group, bool planar) {
        check_sizes(s.p(), x, mul(rows, cols, "quantize input"), y, u8_floats(rows, cols), "quantize");
        QuantInput in = group > 0 ? input(s.p(), scale, zp, scale_v, zp_v, group, rows)
                                  : input(s.p(), scale, zp, -1, -1, 0, rows);
        s.p().add_step(make_quantize_step(s.p().kernels(), s.p().threads(), x, y, rows, cols,
                                          in.spec, scale_v, zp_v, group > 0 ? group : 0, planar));
      }, py::arg("x"), py::arg("y"), py::arg("rows"), py::arg("cols"), py::arg("scale") = 1.0f,
         py::arg("zp") = 0, py::arg("scale_v") = -1, py::arg("zp_v") = -1, py::arg("group") = 0,
         py::arg("planar") = false,
         "f32 [rows, cols] per sample -> uint8 rows (stride a multiple of 4): static with "
         "(scale, zp), or dynamic (group > 0) writing one scale / zero point per group rows; "
         "planar: static, the input per sample [cols][rows] (NCHW, at most 4 channels).")
      .def("qmaxpool", [](PyPlan& s, int x, int y, const ConvGeom& q) {
        check_geom_values(q);
        if (q.OC != q.C) throw std::invalid_argument("qmaxpool: OC must equal C");
        check_sizes(s.p(), x, u8_floats(mul({q.images, q.H, q.W}, "qmaxpool input"), q.C), y,
                    u8_floats(mul({q.images, q.OH, q.OW}, "qmaxpool output"), q.C), "qmaxpool");
        s.p().add_step(make_qmaxpool_step(s.p().threads(), x, y, q));
      }, "Max pool on uint8 NHWC rows (stride a multiple of 4); the output on the input's grid.")
      .def("qglobal_avgpool", [](PyPlan& s, int x, int y, int64_t HW, int64_t C, int64_t images,
                                 float scale, int32_t zp) {
        check_sizes(s.p(), x, u8_floats(mul(images, HW, "qglobal_avgpool"), C), y,
                    mul(images, C, "qglobal_avgpool"), "qglobal_avgpool");
        s.p().add_step(make_qglobal_avgpool_step(s.p().threads(), x, y, HW, C, images,
                                                 spec(scale, zp, false, "qglobal_avgpool input")));
      }, "Global average pool of uint8 NHWC images (real = scale * (q - zp)) to float [images, C].")
      .def("dequantize", [](PyPlan& s, int x, int y, int64_t rows, int64_t cols, float scale,
                            int32_t zp) {
        check_sizes(s.p(), x, u8_floats(rows, cols), y, mul(rows, cols, "dequantize output"), "dequantize");
        s.p().add_step(make_dequantize_step(x, y, rows, cols, spec(scale, zp, false, "dequantize")));
      })
      .def("qgemm", [](PyPlan& s, int x, int y, int64_t rows, int64_t K, int64_t N,
                       const py::object& W, const py::object& w_scale, const py::object& bias,
                       int residual, Act act, float lo, float hi, bool after, float in_scale,
                       int32_t in_zp, int scale_v, int zp_v, int64_t group, float out_scale,
                       int32_t out_zp, float res_scale, int32_t res_zp) {
        const int64_t ny = out_zp >= 0 ? u8_floats(rows, N) : mul(rows, N, "qgemm output");
        check_sizes(s.p(), x, u8_floats(rows, K), y, ny, "qgemm");
        const int64_t nr = res_zp >= 0 ? u8_floats(rows, N) : mul(rows, N, "residual");
        if (residual >= 0 && s.p().per_sample(residual) != nr)
          throw std::invalid_argument("residual: size does not match the output");
        I8Array w = int8_weight(W, mul(K, N, "qgemm weight"), "qgemm weight");
        QuantInput in = input(s.p(), in_scale, in_zp, scale_v, zp_v, group, rows);
        QuantEpilogue e = q_epilogue(w_scale, bias, N, residual, act, lo, hi, after,
                                     out_scale, out_zp, res_scale, res_zp);
        add_packed_step(s, [&] {
          return make_qgemm_step(s.p().kernels(), s.p().threads(), x, y, rows, K, N, w.data(), in, e);
        });
      })
      .def("qgemm_chain", [](PyPlan& s, int x, int y, int64_t rows, const py::list& layers) {
        // layers: (K, N, W int8 [K, N], w_scale [N], bias [N] or None, act, lo, hi)
        if (layers.empty()) throw std::invalid_argument("qgemm_chain: expected at least one layer");
        std::vector<I8Array> ws;  // kept alive until the step is packed
        std::vector<QDenseLayer> ls;
        for (const py::handle h : layers) {
          const auto t = h.cast<py::tuple>();
          if (t.size() != 8)
            throw std::invalid_argument("qgemm_chain: a layer is (K, N, W, w_scale, bias, act, lo, hi), got " +
                                        std::to_string(t.size()) + " items");
          const int64_t K = t[0].cast<int64_t>(), N = t[1].cast<int64_t>();
          if (K <= 0 || N <= 0) throw std::invalid_argument("qgemm_chain: K and N must be > 0");
          ws.push_back(int8_weight(t[2], mul(K, N, "qgemm_chain weight"), "qgemm_chain weight"));
          ls.push_back({K, N, ws.back().data(),
                        q_epilogue(t[3], t[4], N, -1, t[5].cast<Act>(), t[6].cast<float>(),
                                   t[7].cast<float>(), false, 1.0f, -1, 1.0f, -1)});
        }
        check_sizes(s.p(), x, mul(rows, ls.front().K, "qgemm_chain input"), y,
                    mul(rows, ls.back().N, "qgemm_chain output"), "qgemm_chain");
        add_packed_step(s, [&] {
          return make_qdense_chain_step(s.p().kernels(), s.p().threads(), x, y, rows, ls);
        });
      })
      .def("qconv", [](PyPlan& s, int x, int y, const ConvGeom& q, bool depthwise,
                       const py::object& W, const py::object& w_scale, const py::object& bias,
                       int residual, Act act, float lo, float hi, bool after, float in_scale,
                       int32_t in_zp, int scale_v, int zp_v, int64_t group, float out_scale,
                       int32_t out_zp, float res_scale, int32_t res_zp) {
        check_geom_values(q);
        if (depthwise && q.OC != q.C) throw std::invalid_argument("depthwise conv: OC must equal C");
        const int64_t px = mul({q.images, q.H, q.W}, "conv input");
        const int64_t py_ = mul({q.images, q.OH, q.OW}, "conv output");
        const int64_t ny = out_zp >= 0 ? u8_floats(py_, q.OC) : mul(py_, q.OC, "conv output");
        check_sizes(s.p(), x, u8_floats(px, q.C), y, ny, "qconv");
        const int64_t nr = res_zp >= 0 ? u8_floats(py_, q.OC) : mul(py_, q.OC, "residual");
        if (residual >= 0 && s.p().per_sample(residual) != nr)
          throw std::invalid_argument("residual: size does not match the output");
        const int64_t nw = depthwise ? mul({q.C, q.KH, q.KW}, "w") : mul({q.OC, q.C, q.KH, q.KW}, "w");
        I8Array w = int8_weight(W, nw, "qconv weight");
        // dynamic groups: per pixel (group 1, 1x1 convs) or per image (H * W pixels)
        const bool pointwise = q.KH == 1 && q.KW == 1 && q.sh == 1 && q.sw == 1 && q.pt == 0 &&
                               q.pl == 0 && q.OH == q.H && q.OW == q.W && !depthwise;
        if (scale_v >= 0 && !(group == q.H * q.W || (group == 1 && pointwise)))
          throw std::invalid_argument("qconv: a dynamic input has one scale per image (or per "
                                      "pixel for a 1x1 conv)");
        QuantInput in = input(s.p(), in_scale, in_zp, scale_v, zp_v, group, px);
        QuantEpilogue e = q_epilogue(w_scale, bias, q.OC, residual, act, lo, hi, after,
                                     out_scale, out_zp, res_scale, res_zp);
        add_packed_step(s, [&] {
          return depthwise
                     ? make_qdwconv_step(s.p().kernels(), s.p().threads(), x, y, q, w.data(), in, e)
                     : make_qconv_step(s.p().kernels(), s.p().threads(), x, y, q, w.data(), in, e);
        });
      });
}

}  // namespace pyrt
