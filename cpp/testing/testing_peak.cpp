// Probes for bench/: peak FMA GFLOP/s and memory read GB/s on `threads` threads at once.
// Each thread times its own share; a probe's rate is the sum of its threads' rates, so a
// thread the OS starts late or delays cannot make the result look higher than the
// machine can do (bench takes the best of repeated probes as the bound).
#include <pybind11/pybind11.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "../bindings/bindings.h"
#include "pyrt/dispatch.h"

namespace py = pybind11;

namespace pyrt {
float f32_peak_fma__avx2(int64_t iters);
float f32_peak_fma__avx512(int64_t iters);
float f32_read_sum__avx2(const float* p, ptrdiff_t n);

namespace {

// Runs body(i) on `threads` threads released together; returns the seconds each took.
template <class F>
std::vector<double> timed_together(int threads, const F& body) {
  std::vector<double> secs(threads, 0.0);
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  auto one = [&](int i) {
    ready.fetch_add(1);
    while (!go.load(std::memory_order_acquire)) {
    }
    const auto t0 = std::chrono::steady_clock::now();
    body(i);
    secs[i] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  std::vector<std::thread> ts;
  for (int i = 1; i < threads; ++i) ts.emplace_back(one, i);
  while (ready.load() < threads - 1) std::this_thread::yield();
  go.store(true, std::memory_order_release);
  one(0);
  for (auto& t : ts) t.join();
  return secs;
}

}  // namespace

void bind_testing_peak(py::module_& testing) {
  testing.def("peak_gflops", [](const std::string& isa, int threads, int64_t iters) {
    const Isa want = parse_isa(isa);
    if (want == Isa::Scalar) throw std::invalid_argument("peak probe needs 'avx2' or 'avx512'");
    if (!isa_supported(want)) throw std::runtime_error("ISA '" + isa + "' not supported here");
    if (threads < 1 || threads > 1024) throw std::invalid_argument("threads must be in 1..1024");
    if (iters < 1) throw std::invalid_argument("iters must be >= 1");
    const double flops = (want == Isa::Avx512 ? 16.0 * 16 * 2 : 12.0 * 8 * 2) * double(iters);
    std::vector<float> sink(threads);
    std::vector<double> secs;
    {
      py::gil_scoped_release nogil;
      secs = timed_together(threads, [&](int i) {
        sink[i] = want == Isa::Avx512 ? f32_peak_fma__avx512(iters) : f32_peak_fma__avx2(iters);
      });
    }
    double rate = 0;
    for (double s : secs) rate += flops / s;
    return rate * 1e-9;
  }, py::arg("isa"), py::arg("threads") = 1, py::arg("iters") = 20000000,
     "GFLOP/s of independent FMA chains on `threads` threads at once (sum of per-thread rates).");

  testing.def("read_gbps", [](int threads, int64_t kbytes, int passes) {
    if (!isa_supported(Isa::Avx2)) throw std::runtime_error("read probe needs AVX2");
    if (threads < 1 || threads > 1024) throw std::invalid_argument("threads must be in 1..1024");
    if (kbytes < 1 || kbytes > (int64_t(16) << 20)) throw std::invalid_argument("kbytes must be in 1..16 GiB");
    if (passes < 1) throw std::invalid_argument("passes must be >= 1");
    const ptrdiff_t share = std::max<ptrdiff_t>(64, (ptrdiff_t(kbytes) << 8) / threads / 64 * 64);
    const ptrdiff_t n = share * threads;  // floats
    // Each thread reads its share `inner` times per pass (>= 32 MiB a pass), so small
    // buffers are read from the cache level they fit in and timed over milliseconds.
    const int64_t inner = std::max<int64_t>(1, (int64_t(32) << 20) / (share * 4));
    double best = 0;
    {
      py::gil_scoped_release nogil;
      // 2 MiB aligned and advised for huge pages, like the plan's large buffers.
      void* raw = nullptr;
      if (posix_memalign(&raw, size_t(2) << 20, size_t(n) * sizeof(float)) != 0) throw std::bad_alloc();
      std::unique_ptr<float, void (*)(void*)> buf(static_cast<float*>(raw), std::free);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
      madvise(raw, size_t(n) * sizeof(float), MADV_HUGEPAGE);
#endif
      for (ptrdiff_t i = 0; i < n; ++i) buf.get()[i] = 1.0f;  // fault every page in
      std::vector<float> sink(threads);
      for (int p = 0; p < passes; ++p) {
        const auto secs = timed_together(threads, [&](int i) {
          float acc = 0;
          for (int64_t r = 0; r < inner; ++r) acc += f32_read_sum__avx2(buf.get() + i * share, share);
          sink[i] = acc;
        });
        double rate = 0;
        for (double sec : secs) rate += double(share) * 4.0 * double(inner) / sec;
        if (rate > best) best = rate;
      }
    }
    return best * 1e-9;
  }, py::arg("threads") = 1, py::arg("kbytes") = 262144, py::arg("passes") = 5,
     "Best GB/s of `threads` threads each reading its share of a `kbytes` KiB buffer at "
     "once (repeatedly, so a small buffer is read from the cache it fits in).");
}
}  // namespace pyrt
