// rt.info() backend: version, compiler, OpenMP, CPU features, ISA and kernels chosen.
#include <pybind11/stl.h>

#include <stdexcept>

#include "bindings.h"
#include "pyrt/dispatch.h"
#ifdef PYRT_HAVE_OPENMP
#include <omp.h>
#endif

#ifndef PYRT_VERSION
#define PYRT_VERSION "0.0.0"
#endif
#ifndef PYRT_COMPILER
#define PYRT_COMPILER "unknown"
#endif

namespace py = pybind11;

namespace pyrt {

namespace {
py::dict kernels_of(const KernelTable& t) {
  py::dict d;
  d["gemm"] = t.gemm.name ? t.gemm.name : "";
  d["dwconv"] = t.dwconv.name ? t.dwconv.name : "";
  d["dwconv_chw"] = t.dwconv_chw.name ? t.dwconv_chw.name : "";
  d["pool"] = t.pool.name ? t.pool.name : "";
  d["eltwise"] = t.eltwise.name ? t.eltwise.name : "";
  d["transpose"] = t.transpose.name ? t.transpose.name : "";
  return d;
}
}  // namespace

void bind_info(py::module_& m) {
  m.def("info", [] {
    py::dict d;
    d["version"] = PYRT_VERSION;
    d["compiler"] = PYRT_COMPILER;
#ifdef PYRT_HAVE_OPENMP
    d["openmp"] = true;
    d["max_threads"] = omp_get_max_threads();
#else
    d["openmp"] = false;
    d["max_threads"] = 1;
#endif
    d["cpu_features"] = cpu_features().names();
    d["best_isa"] = isa_name(best_isa());
    std::vector<std::string> supported;
    for (int i = 0; i < kNumIsa; ++i)
      if (isa_supported(static_cast<Isa>(i))) supported.emplace_back(isa_name(static_cast<Isa>(i)));
    d["supported_isas"] = supported;
    const KernelTable& t = kernel_table();  // raises if PYRUNTIME_ISA is bad
    d["isa"] = t.isa_name;
    d["kernels"] = kernels_of(t);
    return d;
  }, "Build and CPU facts, the ISA in use and the kernel chosen per family.");
  m.def("kernels_for", [](const std::string& isa) {
    return kernels_of(kernel_table_for(parse_isa(isa)));
  }, "Kernel names per family for one ISA (raises if the CPU lacks it).");
  m.def("isa_supported", [](const std::string& isa) { return isa_supported(parse_isa(isa)); });
}

}  // namespace pyrt
