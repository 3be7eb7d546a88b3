// The compiled plan binding: pyruntime.session lowers a Graph through these builder
// calls once; Plan.run executes the whole graph in one call with the GIL released.
#include <cmath>
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <initializer_list>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "../runtime/plan.h"
#include "../runtime/steps.h"
#include "bindings.h"
#include "release_gil.h"
#include "pyplan.h"
#include "pyrt/dispatch.h"

namespace py = pybind11;

namespace pyrt {

// Sizes from the caller are untrusted: products are checked (no signed overflow) and
// every count must be non-negative.
int64_t mul(int64_t a, int64_t b, const char* what) {
  int64_t r;
  if (a < 0 || b < 0) throw std::invalid_argument(std::string(what) + ": negative size");
  if (__builtin_mul_overflow(a, b, &r)) throw SizeError(std::string(what) + ": size overflows");
  return r;
}
int64_t mul(std::initializer_list<int64_t> xs, const char* what) {
  int64_t r = 1;
  for (int64_t x : xs) r = mul(r, x, what);
  return r;
}
// A step reading `x` and writing `y` must see exactly these per-sample sizes.
void check_sizes(Plan& p, int x, int64_t nx, int y, int64_t ny, const char* what) {
  if (p.per_sample(x) != nx || p.per_sample(y) != ny)
    throw std::invalid_argument(std::string(what) + ": sizes do not match the values (" +
                                std::to_string(p.per_sample(x)) + " -> " +
                                std::to_string(p.per_sample(y)) + " per sample, expected " +
                                std::to_string(nx) + " -> " + std::to_string(ny) + ")");
}
void check_residual(Plan& p, int residual, int y) {
  if (residual >= 0 && p.per_sample(residual) != p.per_sample(y))
    throw std::invalid_argument("residual: size does not match the output");
}


const KernelTable& table_for(const py::object& isa) {
  if (isa.is_none()) return kernel_table();
  return kernel_table_for(parse_isa(isa.cast<std::string>()));
}

// A float32 C-contiguous copy-free view of a weight (numpy converts if it must).
FArray weight(const py::object& o, py::ssize_t expect, const char* what) {
  FArray a = FArray::ensure(o);
  if (!a) throw std::invalid_argument(std::string(what) + ": expected a float32 array");
  if (expect >= 0 && a.size() != expect)
    throw std::invalid_argument(std::string(what) + ": expected " + std::to_string(expect) +
                                " values, got " + std::to_string(a.size()));
  return a;
}

static EpilogueSpec epilogue(const py::object& bias, int64_t n, int residual, Act act, float lo,
                      float hi, bool after) {
  EpilogueSpec e;
  if (!bias.is_none()) {
    FArray b = weight(bias, n, "bias");
    e.bias.assign(b.data(), b.data() + n);
  }
  e.residual = residual;
  e.act = act;
  e.lo = lo;
  e.hi = hi;
  e.residual_after_act = after;
  return e;
}

// The geometry must be non-negative, windows, strides and dilations at least 1, and
// every kernel size, stride, pad and dilation at most kMaxGeom.
void check_geom_values(const ConvGeom& q) {
  const int64_t all[] = {q.H, q.W, q.C, q.OH, q.OW, q.OC, q.KH, q.KW, q.sh, q.sw,
                         q.pt, q.pl, q.pb, q.pr, q.dh, q.dw, q.images};
  for (int64_t v : all)
    if (v < 0) throw std::invalid_argument("conv geometry must be non-negative");
  const int64_t bounded[] = {q.KH, q.KW, q.sh, q.sw, q.pt, q.pl, q.pb, q.pr, q.dh, q.dw};
  for (int64_t v : bounded)
    if (v > kMaxGeom) throw SizeError("conv geometry: kernel/stride/pad/dilation too large");
  if (q.sh < 1 || q.sw < 1 || q.dh < 1 || q.dw < 1 || q.KH < 1 || q.KW < 1)
    throw std::invalid_argument("conv/pool strides, dilations and kernel must be >= 1");
}

// The conv/pool geometry must describe exactly the sizes of the values it reads/writes.
void check_geom(Plan& p, int x, int y, const ConvGeom& q, int64_t oc) {
  check_geom_values(q);
  if (mul({q.images, q.H, q.W, q.C}, "conv input") != p.per_sample(x) ||
      mul({q.images, q.OH, q.OW, oc}, "conv output") != p.per_sample(y))
    throw std::invalid_argument("conv/pool geometry does not match the value sizes");
}

namespace {

WeightType weight_type(const std::string& s) {
  if (s == "f32") return WeightType::F32;
  if (s == "f16") return WeightType::F16;
  if (s == "bf16") return WeightType::BF16;
  if (s == "int8") return WeightType::Int8;
  throw std::invalid_argument("wtype must be 'f32', 'f16', 'bf16' or 'int8', got '" + s + "'");
}

// The per-output-channel scales of an int8 weight (wtype "int8"): float32 [n], finite
// and > 0; none for other types.
FArray int8_scales(WeightType wt, const py::object& scale, int64_t n, const char* what) {
  if (wt != WeightType::Int8) {
    if (!scale.is_none())
      throw std::invalid_argument(std::string(what) + ": scale is only for wtype 'int8'");
    return FArray();
  }
  if (scale.is_none())
    throw std::invalid_argument(std::string(what) + ": wtype 'int8' needs the scale array");
  FArray s = weight(scale, n, "int8 weight scale");
  for (int64_t i = 0; i < n; ++i)
    if (!(s.data()[i] > 0.0f) || !std::isfinite(s.data()[i]))
      throw std::invalid_argument(std::string(what) + ": int8 scales must be finite and > 0");
  return s;
}

SparseMode sparse_mode(const std::string& s) {
  if (s == "auto") return SparseMode::Auto;
  if (s == "dense") return SparseMode::Dense;
  if (s == "sparse") return SparseMode::Sparse;
  throw std::invalid_argument("sparse must be 'auto', 'dense' or 'sparse', got '" + s + "'");
}

// A depthwise conv step: NHWC (dwconv) or on NCHW planes (dwconv_chw), same checks.
void add_dwconv(PyPlan& s, bool planar, int x, int y, const ConvGeom& q, const py::object& W,
                const py::object& bias, int residual, Act act, float lo, float hi, bool after) {
  check_geom(s.p(), x, y, q, q.C);
  if (q.OC != q.C) throw std::invalid_argument("depthwise conv: OC must equal C");
  check_residual(s.p(), residual, y);
  FArray w = weight(W, mul({q.C, q.KH, q.KW}, "depthwise weight"), "depthwise weight");
  auto make = planar ? make_dwconv_chw_step : make_dwconv_step;
  EpilogueSpec ep = epilogue(bias, q.C, residual, act, lo, hi, after);
  add_packed_step(s, [&] {
    return make(s.p().kernels(), s.p().threads(), x, y, q, w.data(), std::move(ep));
  });
}

std::string geom_repr(const ConvGeom& q) {
  const std::pair<const char*, int64_t> f[] = {
      {"H", q.H}, {"W", q.W}, {"C", q.C}, {"OH", q.OH}, {"OW", q.OW}, {"OC", q.OC},
      {"KH", q.KH}, {"KW", q.KW}, {"sh", q.sh}, {"sw", q.sw}, {"pt", q.pt}, {"pl", q.pl},
      {"pb", q.pb}, {"pr", q.pr}, {"dh", q.dh}, {"dw", q.dw}, {"images", q.images}};
  std::string r = "ConvGeom(";
  for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); ++i)
    r += (i ? ", " : "") + std::string(f[i].first) + "=" + std::to_string(f[i].second);
  return r + ")";
}

py::list run_plan(PyPlan& self, const py::sequence& feeds, std::vector<double>* times) {
  Plan& p = self.p();
  const size_t ni = p.num_inputs();
  if (static_cast<size_t>(py::len(feeds)) != ni)
    throw std::invalid_argument("expected " + std::to_string(ni) + " input arrays, got " +
                                std::to_string(py::len(feeds)));
  std::vector<py::array> keep;
  std::vector<const float*> in(ni);
  py::ssize_t batch = -1;
  for (size_t i = 0; i < ni; ++i) {
    py::object o = feeds[i];
    if (!py::isinstance<py::array>(o))
      throw std::invalid_argument("input " + std::to_string(i) + ": expected a numpy array");
    py::array a = py::reinterpret_borrow<py::array>(o);
    if (!a.dtype().is(py::dtype::of<float>()) ||
        !(a.flags() & py::array::c_style) || a.ndim() < 1)
      throw std::invalid_argument("input " + std::to_string(i) +
                                  ": expected a C-contiguous float32 array of rank >= 1");
    const py::ssize_t b = a.shape(0);
    if (batch >= 0 && b != batch)
      throw std::invalid_argument("all inputs must have the same batch size");
    batch = b;
    if (a.size() != mul(b, p.input_per_sample(i), "input"))
      throw std::invalid_argument("input " + std::to_string(i) + ": expected " +
                                  std::to_string(p.input_per_sample(i)) + " values per sample");
    in[i] = static_cast<const float*>(a.data());
    keep.push_back(a);
  }
  if (batch < 0) batch = 1;
  if (batch > 0) p.arena_bytes(batch);  // size check (SizeError) before allocating outputs
  const size_t no = p.num_outputs();
  std::vector<py::array_t<float>> outs;
  std::vector<float*> out(no);
  for (size_t i = 0; i < no; ++i) {
    std::vector<py::ssize_t> shape{batch};
    shape.insert(shape.end(), self.out_tails[i].begin(), self.out_tails[i].end());
    outs.emplace_back(shape);
    out[i] = outs.back().mutable_data();
  }
  {
    ReleaseGil release;
    p.run(batch, in.data(), out.data(), times);
  }
  py::list r;
  for (auto& o : outs) r.append(o);
  return r;
}

}  // namespace

void bind_plan(py::module_& m) {
  py::register_exception<SizeError>(m, "SizeError", PyExc_ValueError);
  m.attr("MEMORY_CAP") = Plan::kMemoryCap;
  m.attr("MAX_GEOM") = kMaxGeom;

  py::enum_<Act>(m, "Act", "Activations a kernel epilogue fuses (pyrt::Act).")
      .value("none", Act::None)
      .value("relu", Act::Relu)
      .value("clip", Act::Clip)
      .value("sigmoid", Act::Sigmoid)
      .value("tanh", Act::Tanh)
      .value("gelu", Act::Gelu);

  py::class_<ConvGeom>(m, "ConvGeom",
                       "Conv/pool window geometry on NHWC images (pyrt::ConvGeom).")
      .def(py::init([](const py::kwargs& kw) {
        ConvGeom q;
        for (auto item : kw) {
          const std::string k = py::str(item.first);
          const int64_t v = item.second.cast<int64_t>();
#define PYRT_GEOM_FIELD(f) if (k == #f) { q.f = v; continue; }
          PYRT_GEOM_FIELD(H) PYRT_GEOM_FIELD(W) PYRT_GEOM_FIELD(C) PYRT_GEOM_FIELD(OH)
          PYRT_GEOM_FIELD(OW) PYRT_GEOM_FIELD(OC) PYRT_GEOM_FIELD(KH) PYRT_GEOM_FIELD(KW)
          PYRT_GEOM_FIELD(sh) PYRT_GEOM_FIELD(sw) PYRT_GEOM_FIELD(pt) PYRT_GEOM_FIELD(pl)
          PYRT_GEOM_FIELD(pb) PYRT_GEOM_FIELD(pr) PYRT_GEOM_FIELD(dh) PYRT_GEOM_FIELD(dw)
          PYRT_GEOM_FIELD(images)
#undef PYRT_GEOM_FIELD
          throw py::type_error("ConvGeom: unknown field '" + k + "'");
        }
        return q;
      }))
#define PYRT_GEOM_RW(f) .def_readwrite(#f, &ConvGeom::f)
      PYRT_GEOM_RW(H) PYRT_GEOM_RW(W) PYRT_GEOM_RW(C) PYRT_GEOM_RW(OH) PYRT_GEOM_RW(OW)
      PYRT_GEOM_RW(OC) PYRT_GEOM_RW(KH) PYRT_GEOM_RW(KW) PYRT_GEOM_RW(sh) PYRT_GEOM_RW(sw)
      PYRT_GEOM_RW(pt) PYRT_GEOM_RW(pl) PYRT_GEOM_RW(pb) PYRT_GEOM_RW(pr) PYRT_GEOM_RW(dh)
      PYRT_GEOM_RW(dw) PYRT_GEOM_RW(images)
#undef PYRT_GEOM_RW
      .def("check", &check_geom_values, "Raise if a field is out of range.")
      .def("__repr__", &geom_repr);

  m.def("sparse_choice", [](const py::object& W, const py::object& isa, const std::string& mode) {
        FArray w = weight(W, -1, "weight");
        if (w.ndim() != 2) throw std::invalid_argument("sparse_choice: expected a 2-D weight [K, N]");
        const KernelTable& kt = table_for(isa);
        SparseChoice c;
        {
          ReleaseGil release;
          c = choose_sparse(kt, w.shape(0), w.shape(1), w.data(), w.shape(1), sparse_mode(mode));
        }
        return py::make_tuple(c.R, c.dense_from, c.sparse_from, c.density);
      }, py::arg("W"), py::arg("isa"), py::arg("mode") = "auto",
      "(R, dense_from, sparse_from, density): the group size the sparse kernel would use "
      "for W [K, N]; it runs for rows per run below dense_from or from sparse_from on, the "
      "dense GEMM in between (2**63-1 = never); the stored fraction.");

  py::class_<PyPlan> cls(m, "Plan", "A compiled execution plan (built by pyruntime.compile).");
  bind_plan_quant(cls);
  cls.def(py::init([](const py::object& isa, int threads, const std::string& sparse) {
             if (threads < 1) throw std::invalid_argument("threads must be >= 1");
             auto pp = std::make_unique<PyPlan>();
             pp->sparse = sparse_mode(sparse);
             pp->plan = std::make_unique<Plan>(table_for(isa), threads);
             return pp;
           }),
           py::arg("isa"), py::arg("threads"), py::arg("sparse") = "auto")
      .def_property_readonly("isa", [](PyPlan& s) { return std::string(s.p().kernels().isa_name); })
      .def_property_readonly("threads", [](PyPlan& s) { return s.p().threads(); })
      .def("add_value", [](PyPlan& s, int64_t n) { return s.p().add_value(n); })
      .def("add_input", [](PyPlan& s, int64_t n) { return s.p().add_input(n); })
      .def("add_const", [](PyPlan& s, const py::object& a) {
        FArray w = weight(a, -1, "constant");
        return s.p().add_const(w.data(), w.size());
      })
      .def("add_alias", [](PyPlan& s, int v) { return s.p().add_alias(v); })
      .def("mark_output", [](PyPlan& s, int v, std::vector<py::ssize_t> tail) {
        int64_t n = 1;
        for (auto d : tail) n = mul(n, d, "output shape");
        if (n != s.p().per_sample(v)) throw std::invalid_argument("output shape does not match its value");
        s.p().mark_output(v);
        s.out_tails.push_back(std::move(tail));
      })
      .def("copy", [](PyPlan& s, int x, int y) {
        check_sizes(s.p(), x, s.p().per_sample(x), y, s.p().per_sample(x), "copy");
        s.p().add_step(make_copy_step(x, y, s.p().per_sample(x)));
      })
      .def("transpose", [](PyPlan& s, int x, int y, int64_t R, int64_t S, int64_t images) {
        const int64_t n = mul({images, R, S}, "transpose");
        if (n != s.p().per_sample(x) || n != s.p().per_sample(y))
          throw std::invalid_argument("transpose: images * R * S must equal the per-sample size");
        s.p().add_step(make_transpose_step(s.p().kernels(), s.p().threads(), x, y, R, S, images));
      }, py::arg("x"), py::arg("y"), py::arg("R"), py::arg("S"), py::arg("images") = 1)
      .def("gemm", [](PyPlan& s, int x, int y, int64_t rows, int64_t K, int64_t N,
                      const py::object& W, const py::object& bias, int residual, Act act,
                      float lo, float hi, bool after, bool fixed_rows, const std::string& wtype,
                      const py::object& scale) {
        check_sizes(s.p(), x, mul(rows, K, "gemm input"), y, mul(rows, N, "gemm output"), "gemm");
        const WeightType wt = weight_type(wtype);
        check_residual(s.p(), residual, y);
        FArray w = weight(W, mul(K, N, "gemm weight"), "gemm weight");
        FArray sc = int8_scales(wt, scale, N, "gemm");
        EpilogueSpec ep = epilogue(bias, N, residual, act, lo, hi, after);
        add_packed_step(s, [&] {
          return make_gemm_step(s.p().kernels(), s.p().threads(), x, y, rows, K, N, w.data(),
                                std::move(ep), s.sparse, fixed_rows ? rows : -1, wt,
                                wt == WeightType::Int8 ? sc.data() : nullptr);
        });
      }, py::arg("x"), py::arg("y"), py::arg("rows"), py::arg("K"), py::arg("N"), py::arg("W"),
         py::arg("bias"), py::arg("residual"), py::arg("act"), py::arg("lo"), py::arg("hi"),
         py::arg("after"), py::arg("fixed_rows") = false, py::arg("wtype") = "f32",
         py::arg("scale") = py::none())
      .def("conv", [](PyPlan& s, int x, int y, const ConvGeom& q, const py::object& W,
                      const py::object& bias, int residual, Act act, float lo, float hi, bool after,
                      bool fixed_rows, const std::string& wtype, const py::object& scale) {
        check_geom(s.p(), x, y, q, q.OC);
        const WeightType wt = weight_type(wtype);
        check_residual(s.p(), residual, y);
        FArray w = weight(W, mul({q.OC, q.C, q.KH, q.KW}, "conv weight"), "conv weight");
        FArray sc = int8_scales(wt, scale, q.OC, "conv");
        EpilogueSpec ep = epilogue(bias, q.OC, residual, act, lo, hi, after);
        add_packed_step(s, [&] {
          return make_conv_step(s.p().kernels(), s.p().threads(), x, y, q, w.data(),
                                std::move(ep), s.sparse, fixed_rows, wt, wt == WeightType::Int8 ? sc.data() : nullptr);
        });
      }, py::arg("x"), py::arg("y"), py::arg("geom"), py::arg("W"), py::arg("bias"),
         py::arg("residual"), py::arg("act"), py::arg("lo"), py::arg("hi"), py::arg("after"),
         py::arg("fixed_rows") = false, py::arg("wtype") = "f32", py::arg("scale") = py::none())
      .def("dwconv", [](PyPlan& s, int x, int y, const ConvGeom& q, const py::object& W,
                        const py::object& bias, int residual, Act act, float lo, float hi, bool after) {
        add_dwconv(s, false, x, y, q, W, bias, residual, act, lo, hi, after);
      })
      .def("dwconv_chw", [](PyPlan& s, int x, int y, const ConvGeom& q, const py::object& W,
                            const py::object& bias, int residual, Act act, float lo, float hi,
                            bool after) {
        // Same geometry and sizes as dwconv; x, y (and the residual) in NCHW order.
        add_dwconv(s, true, x, y, q, W, bias, residual, act, lo, hi, after);
      })
      .def("inverted_residual", [](PyPlan& s, int x, int y, const ConvGeom& q, int64_t cin,
                                   int64_t cout, const py::object& We, const py::object& be,
                                   Act act_e, float lo_e, float hi_e, const py::object& Wd,
                                   const py::object& bd, Act act_d, float lo_d, float hi_d,
                                   const py::object& Wp, const py::object& bp, int residual,
                                   Act act_p, float lo_p, float hi_p, bool after_p) {
        // q: the depthwise conv's geometry (C = hidden channels, H/W = the block input's).
        check_geom_values(q);
        if (q.OC != q.C) throw std::invalid_argument("inverted residual: depthwise OC must equal C");
        const bool expand = !We.is_none();
        if (cin < 1 || cout < 1 || (!expand && cin != q.C))
          throw std::invalid_argument("inverted residual: bad channel counts");
        if (mul({q.images, q.H, q.W, cin}, "block input") != s.p().per_sample(x) ||
            mul({q.images, q.OH, q.OW, cout}, "block output") != s.p().per_sample(y))
          throw std::invalid_argument("inverted residual: geometry does not match the value sizes");
        check_residual(s.p(), residual, y);
        FArray we;
        if (expand) we = weight(We, mul(q.C, cin, "expand weight"), "expand weight");
        FArray wd = weight(Wd, mul({q.C, q.KH, q.KW}, "depthwise weight"), "depthwise weight");
        FArray wp = weight(Wp, mul(cout, q.C, "project weight"), "project weight");
        EpilogueSpec ee = epilogue(be, q.C, -1, act_e, lo_e, hi_e, false);
        EpilogueSpec ed = epilogue(bd, q.C, -1, act_d, lo_d, hi_d, false);
        EpilogueSpec ep = epilogue(bp, cout, residual, act_p, lo_p, hi_p, after_p);
        add_packed_step(s, [&] {
          return make_inverted_residual_step(
              s.p().kernels(), s.p().threads(), x, y, q, cin, expand ? we.data() : nullptr,
              std::move(ee), wd.data(), std::move(ed), cout, wp.data(), std::move(ep), s.sparse);
        });
      }, py::arg("x"), py::arg("y"), py::arg("geom"), py::arg("cin"), py::arg("cout"),
         py::arg("We"), py::arg("be"), py::arg("act_e"), py::arg("lo_e"), py::arg("hi_e"),
         py::arg("Wd"), py::arg("bd"), py::arg("act_d"), py::arg("lo_d"), py::arg("hi_d"),
         py::arg("Wp"), py::arg("bp"), py::arg("residual"), py::arg("act_p"), py::arg("lo_p"),
         py::arg("hi_p"), py::arg("after_p"))
      .def("pool", [](PyPlan& s, int x, int y, const ConvGeom& q, bool is_max, bool cip) {
        check_geom(s.p(), x, y, q, q.C);
        s.p().add_step(make_pool_step(s.p().kernels(), s.p().threads(), x, y, q, is_max, cip));
      }, py::arg("x"), py::arg("y"), py::arg("geom"), py::arg("is_max"), py::arg("count_include_pad"))
      .def("global_avgpool", [](PyPlan& s, int x, int y, int64_t HW, int64_t C, int64_t images) {
        check_sizes(s.p(), x, mul({images, HW, C}, "global_avgpool"), y, mul(images, C, "global_avgpool"),
                    "global_avgpool");
        s.p().add_step(make_global_avgpool_step(s.p().kernels(), s.p().threads(), x, y, HW, C, images));
      }, py::arg("x"), py::arg("y"), py::arg("HW"), py::arg("C"), py::arg("images") = 1)
      .def("add", [](PyPlan& s, int a, int b, int y, std::vector<int64_t> dims,
                     std::vector<int64_t> sa, std::vector<int64_t> sb, bool a_full, bool b_full) {
        // Every read must stay inside its operand, and y must be exactly covered.
        if (dims.empty() || sa.size() != dims.size() || sb.size() != dims.size() || dims[0] != -1)
          throw std::invalid_argument("add: dims must start with -1 (batch), strides match dims");
        int64_t ny = 1, ra = 0, rb = 0;
        for (size_t i = 1; i < dims.size(); ++i) {
          if (dims[i] < 1 || sa[i] < 0 || sb[i] < 0) throw std::invalid_argument("add: bad dims");
          ny = mul(ny, dims[i], "add");
          if (__builtin_add_overflow(ra, mul(dims[i] - 1, sa[i], "add"), &ra) ||
              __builtin_add_overflow(rb, mul(dims[i] - 1, sb[i], "add"), &rb))
            throw SizeError("add: strides overflow");
        }
        auto size_of = [&](int v) { return s.p().per_sample(v); };
        if (ny != size_of(y) || ra >= std::max<int64_t>(size_of(a), 1) || rb >= std::max<int64_t>(size_of(b), 1) ||
            (!s.p().is_const(a) && sa[0] != size_of(a)) || (!s.p().is_const(b) && sb[0] != size_of(b)) ||
            (s.p().is_const(a) && sa[0] != 0) || (s.p().is_const(b) && sb[0] != 0))
          throw std::invalid_argument("add: strides reach outside an operand");
        s.p().add_step(make_add_step(s.p().kernels(), s.p().threads(), a, b, y, std::move(dims),
                                     std::move(sa), std::move(sb), a_full, b_full));
      })
      .def("activation", [](PyPlan& s, int x, int y, Act act, float lo, float hi) {
        if (act == Act::None) throw std::invalid_argument("activation step without an activation");
        check_sizes(s.p(), x, s.p().per_sample(x), y, s.p().per_sample(x), "activation");
        s.p().add_step(make_activation_step(s.p().kernels(), s.p().threads(), x, y,
                                            s.p().per_sample(x), act, lo, hi));
      })
      .def("softmax", [](PyPlan& s, int x, int y, int64_t rows, int64_t cols) {
        const int64_t n = mul(rows, cols, "softmax");
        check_sizes(s.p(), x, n, y, n, "softmax");
        s.p().add_step(make_softmax_step(s.p().kernels(), s.p().threads(), x, y, rows, cols));
      })
      .def("affine", [](PyPlan& s, int x, int y, int64_t rows, int64_t C, const py::object& scale,
                        const py::object& bias) {
        const int64_t n = mul(rows, C, "affine");
        check_sizes(s.p(), x, n, y, n, "affine");
        FArray sc = weight(scale, C, "scale"), b = weight(bias, C, "bias");
        s.p().add_step(make_affine_step(s.p().threads(), x, y, rows, C,
                                        std::vector<float>(sc.data(), sc.data() + C),
                                        std::vector<float>(b.data(), b.data() + C)));
      })
      .def("finalize", [](PyPlan& s) { s.p().finalize(); })
      .def("run", [](PyPlan& s, const py::sequence& feeds) { return run_plan(s, feeds, nullptr); },
           py::arg("feeds"),
           "Run the plan on C-contiguous float32 arrays (one per input); returns the outputs.")
      .def("run_profiled", [](PyPlan& s, const py::sequence& feeds) {
             std::vector<double> t;
             py::list outs = run_plan(s, feeds, &t);
             return py::make_tuple(outs, t);
           }, py::arg("feeds"), "Like run, also returning the seconds spent in every step.")
      .def("arena_bytes", [](PyPlan& s, int64_t batch) { return s.p().arena_bytes(batch); })
      .def("step_work", [](PyPlan& s, int64_t batch) {
        py::list out;
        for (const Work& w : s.p().step_work(batch)) out.append(py::make_tuple(w.macs, w.bytes));
        return out;
      }, py::arg("batch"), "Per step: (multiply-adds or element operations, bytes) at this batch.")
      .def("packed_weight_bytes", [](PyPlan& s) { return s.p().packed_weight_bytes(); })
      .def("summary", [](PyPlan& s) {
        py::list out;
        for (const StepInfo& i : s.p().summary())
          out.append(py::make_tuple(i.op, i.kernel, i.reads, i.writes));
        return out;
      });
}

}  // namespace pyrt
