// The one way the runtime uses threads: a static parallel-for over tasks with the
// session's thread count (OpenMP when built with it, serial otherwise). Kernels never
// start threads themselves. Tasks must not throw.
#pragma once
#include <atomic>
#include <cstddef>
#ifdef PYRT_HAVE_OPENMP
#include <omp.h>
#endif

namespace pyrt {

// Calls f(task, thread_index) for task in [0, n); thread_index < min(threads, n).
// Threads claim tasks from a shared counter, so a thread the OS delays (a busy machine)
// leaves its tasks to the others instead of stalling the step. Which thread runs a task
// never changes its result, so runs stay bit-reproducible.
template <class F>
void parallel_for(int threads, ptrdiff_t n, const F& f) {
  if (n <= 0) return;
#ifdef PYRT_HAVE_OPENMP
  if (threads > 1 && n > 1) {
    const int t = n < threads ? static_cast<int>(n) : threads;
    std::atomic<ptrdiff_t> next{0};
#pragma omp parallel num_threads(t)
    {
      const int tid = omp_get_thread_num();
      for (ptrdiff_t i = next.fetch_add(1, std::memory_order_relaxed); i < n;
           i = next.fetch_add(1, std::memory_order_relaxed))
        f(i, tid);
    }
    return;
  }
#endif
  (void)threads;
  for (ptrdiff_t i = 0; i < n; ++i) f(i, 0);
}

// Work (multiply-adds or element operations) below which a step runs on one thread:
// 64K normally; 1M when OMP_WAIT_POLICY=passive, where every parallel region pays a
// wake-up of sleeping threads (tens of microseconds). Read once.
double min_parallel_work();
inline int threads_for(int threads, double work) {
  return work < min_parallel_work() ? 1 : threads;
}

inline ptrdiff_t ceil_div(ptrdiff_t a, ptrdiff_t b) { return (a + b - 1) / b; }

}  // namespace pyrt
