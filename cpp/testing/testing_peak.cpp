// Peak FLOP/s probe for bench/: runs the widest FMA loop the CPU supports on `threads`
// threads at once and returns GFLOP/s.
#include <chrono>
#include <cstdint>

#include "../bindings/bindings.h"
#include "pyrt/dispatch.h"
#ifdef PYRT_HAVE_OPENMP
#include <omp.h>
#endif

namespace py = pybind11;

namespace pyrt {
float f32_peak_fma__avx2(int64_t iters);
float f32_peak_fma__avx512(int64_t iters);

void bind_testing_peak(py::module_& testing) {
  testing.def("peak_gflops", [](const std::string& isa, int threads, int64_t iters) {
    const Isa want = parse_isa(isa);
    if (want == Isa::Scalar) throw std::invalid_argument("peak probe needs 'avx2' or 'avx512'");
    if (!isa_supported(want)) throw std::runtime_error("ISA '" + isa + "' not supported here");
    if (threads < 1) throw std::invalid_argument("threads must be >= 1");
    const double flops_per_iter = want == Isa::Avx512 ? 24.0 * 16 * 2 : 12.0 * 8 * 2;
    volatile float sink = 0;
    double seconds;
    {
      py::gil_scoped_release nogil;
      const auto t0 = std::chrono::steady_clock::now();
#ifdef PYRT_HAVE_OPENMP
#pragma omp parallel num_threads(threads)
#endif
      {
        const float r = want == Isa::Avx512 ? f32_peak_fma__avx512(iters) : f32_peak_fma__avx2(iters);
        sink = r;
      }
      seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
    (void)sink;
#ifdef PYRT_HAVE_OPENMP
    const int used = threads;
#else
    const int used = 1;
#endif
    return flops_per_iter * static_cast<double>(iters) * used / seconds * 1e-9;
  }, py::arg("isa"), py::arg("threads") = 1, py::arg("iters") = 20000000);
}
}  // namespace pyrt
