// rt.info() backend: version, compiler, threads, CPU features, ISA and kernels chosen.
#include <pybind11/stl.h>

#include <exception>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "../runtime/threadpool.h"
#include "bindings.h"
#include "pyrt/dispatch.h"

#ifndef PYRT_VERSION
#define PYRT_VERSION "0.0.0"
#endif
#ifndef PYRT_COMPILER
#define PYRT_COMPILER "unknown"
#endif

namespace py = pybind11;

namespace pyrt {

namespace {
// Entry name -> the kernel chosen for it.
py::dict kernels_of(const KernelTable& t) {
  py::dict d;
#define PYRT_ENTRY_NAME(e) d[#e] = t.e.name ? t.e.name : "";
  PYRT_KERNEL_ENTRIES(PYRT_ENTRY_NAME)
#undef PYRT_ENTRY_NAME
  return d;
}

const char* feature_name(uint32_t bit) {
  switch (bit) {
    case kFeatAvx2Fma: return "avx2+fma";
    case kFeatF16c: return "f16c";
    case kFeatAvx512: return "avx512f/bw/dq/vl";
    case kFeatAvx512Vnni: return "avx512vnni";
    case kFeatAvx512Bf16: return "avx512bf16";
    case kFeatAvxVnni: return "avxvnni";
  }
  return "?";
}

std::vector<std::string> feature_names(uint32_t bits) {
  std::vector<std::string> out;
  for (uint32_t b = 1; b != 0 && b <= bits; b <<= 1)
    if (bits & b) out.emplace_back(feature_name(b));
  return out;
}
}  // namespace

void bind_info(py::module_& m) {
  std::vector<std::string> levels;
  for (int i = 0; i < kNumIsa; ++i) levels.emplace_back(isa_name(static_cast<Isa>(i)));
  m.attr("ISA_LEVELS") = py::tuple(py::cast(levels));
  m.def("info", [] {
    py::dict d;
    d["version"] = PYRT_VERSION;
    d["compiler"] = PYRT_COMPILER;
    d["threading"] = "worker pool";  // cpp/runtime/threadpool.h
    d["max_threads"] = static_cast<int>(std::thread::hardware_concurrency());
    d["pool_workers"] = ThreadPool::shared().workers();
    d["cpu_features"] = cpu_features().names();
    d["usable_features"] = feature_names(cpu_features().usable());
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
  }, "Kernel name per table entry for one ISA level (raises if the CPU lacks it).");
  m.def("isa_supported", [](const std::string& isa) { return isa_supported(parse_isa(isa)); });
  m.def("kernel_variants", [] {
    py::list out;
    for (const KernelVariant& v : kernel_variants())
      out.append(py::make_tuple(v.entry, isa_name(v.level), feature_names(v.needs)));
    return out;
  }, "Every kernel variant: (entry, level, features it needs), in selection order.");
  // An unusable or unknown ISA is rt.IsaError wherever it surfaces (compile, info, tests).
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const IsaUnavailable& e) {
      py::object cls = py::module_::import("pyruntime.errors").attr("IsaError");
      PyErr_SetString(cls.ptr(), e.what());
    }
  });
}

}  // namespace pyrt
