// The one way the runtime uses threads: a static parallel-for over tasks with the
// session's thread count (OpenMP when built with it, serial otherwise). Kernels never
// start threads themselves. Tasks must not throw.
#pragma once
#include <cstddef>
#ifdef PYRT_HAVE_OPENMP
#include <omp.h>
#endif

namespace pyrt {

// Calls f(task, thread_index) for task in [0, n); thread_index < min(threads, n).
template <class F>
void parallel_for(int threads, ptrdiff_t n, const F& f) {
  if (n <= 0) return;
#ifdef PYRT_HAVE_OPENMP
  if (threads > 1 && n > 1) {
    const int t = n < threads ? static_cast<int>(n) : threads;
#pragma omp parallel num_threads(t)
    {
      const int tid = omp_get_thread_num();
      const int nt = omp_get_num_threads();
      // Static contiguous split, the same for every run with the same (n, t).
      const ptrdiff_t per = n / nt, extra = n % nt;
      const ptrdiff_t b = tid * per + (tid < extra ? tid : extra);
      const ptrdiff_t e = b + per + (tid < extra ? 1 : 0);
      for (ptrdiff_t i = b; i < e; ++i) f(i, tid);
    }
    return;
  }
#endif
  (void)threads;
  for (ptrdiff_t i = 0; i < n; ++i) f(i, 0);
}

inline ptrdiff_t ceil_div(ptrdiff_t a, ptrdiff_t b) { return (a + b - 1) / b; }

}  // namespace pyrt
