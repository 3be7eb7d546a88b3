// The one way the runtime uses threads: a parallel-for over tasks with the session's
// thread count, on the executor's worker pool (threadpool.h). Kernels never start
// threads themselves.
//
// The pool replaced OpenMP regions here: on this project's 2-vCPU machine it was as fast
// on large steps (GEMM 256x1024x1024, MLP batch 64: same time within noise; MobileNetV2
// batch 1 2.8 vs 3.1 ms) and its p99 at batch 1 on a busy machine was 33 us where a
// region's end barrier gave 1.8 ms (bench/latency.py).
#pragma once
#include <cstddef>

#include "plan.h"
#include "pyrt/kernels.h"
#include "threadpool.h"

namespace pyrt {

// Calls f(task, thread_index) for task in [0, n); thread_index < min(threads, n), and
// one thread at a time uses each index (per-thread scratch). The calling thread works
// too; a thread the OS delays leaves its tasks to the others (see threadpool.h). Which
// thread runs a task never changes its result, so runs stay bit-reproducible. A task
// that throws skips the remaining ones; the exception comes out here.
template <class F>
void parallel_for(int threads, ptrdiff_t n, const F& f) {
  if (n <= 0) return;
  if (threads > 1 && n > 1) {
    ThreadPool::shared().run(
        threads, n, [](void* ctx, ptrdiff_t i, int t) { (*static_cast<const F*>(ctx))(i, t); },
        const_cast<void*>(static_cast<const void*>(&f)));
    return;
  }
  for (ptrdiff_t i = 0; i < n; ++i) f(i, 0);
}

// The cost model that decides whether a step is worth a parallel loop: its estimated
// time on one thread from the multiply-adds (or element operations) it does and the
// bytes it reads and writes, at rates measured on this project's machine per ISA (see
// step_ns in plan.cpp). A step estimated below min_parallel_ns() runs on the calling
// thread alone: handing out tasks, a worker's start, and the cache lines its results
// take back to the caller's core cost more than the split saves.
double step_ns(Isa isa, double macs, double bytes);
// PYRUNTIME_MIN_PARALLEL_US (microseconds) or the measured default; settable for
// tests and benchmarks.
double min_parallel_ns();
void set_min_parallel_ns(double ns);
inline int threads_for(int threads, Isa isa, double macs, double bytes) {
  return threads > 1 && step_ns(isa, macs, bytes) >= min_parallel_ns() ? threads : 1;
}
inline int threads_for(int threads, Isa isa, const Work& w) {
  return threads_for(threads, isa, w.macs, w.bytes);
}

inline ptrdiff_t ceil_div(ptrdiff_t a, ptrdiff_t b) { return (a + b - 1) / b; }

}  // namespace pyrt
