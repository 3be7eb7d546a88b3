// Test entry points for the executor's worker pool (cpp/runtime/threadpool.h):
// _core.testing.pool_* run loops on a private pool or the shared one and report what
// happened, so tests can check every task runs once, on which threads, and that a
// worker that never starts does not hold a loop up.
#include <pybind11/stl.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "../bindings/bindings.h"
#include "../runtime/parallel.h"
#include "../runtime/threadpool.h"
#include "pyrt/dispatch.h"

namespace py = pybind11;

namespace pyrt {
namespace {

py::dict stats_dict(const ThreadPool::Stats& s) {
  py::dict d;
  d["claimed"] = s.claimed;
  d["revoked"] = s.revoked;
  d["parked"] = s.parked;
  d["woken"] = s.woken;
  d["moved"] = s.moved;
  return d;
}

// What one loop did: per task, how often it ran and the thread index and OS thread
// that ran it last.
struct LoopRecord {
  std::vector<std::atomic<int>> runs;
  std::vector<std::atomic<int>> thread;
  std::vector<std::atomic<int>> on_caller;  // 1 when run on the thread that called run()
  std::thread::id caller;
  double task_us = 0;
  ptrdiff_t throw_at = -1;      // this task throws ...
  bool throw_off_caller = false;  // ... or every task a worker runs throws
  explicit LoopRecord(ptrdiff_t n) : runs(n), thread(n), on_caller(n) {}
};

void record_task(void* ctx, ptrdiff_t i, int t) {
  auto& r = *static_cast<LoopRecord*>(ctx);
  const bool caller = std::this_thread::get_id() == r.caller;
  if (r.task_us > 0) {
    const auto until = std::chrono::steady_clock::now() +
                       std::chrono::nanoseconds(static_cast<int64_t>(r.task_us * 1e3));
    while (std::chrono::steady_clock::now() < until) {
    }
  }
  r.runs[i].fetch_add(1, std::memory_order_relaxed);
  r.thread[i].store(t, std::memory_order_relaxed);
  r.on_caller[i].store(caller ? 1 : 0, std::memory_order_relaxed);
  if (i == r.throw_at || (r.throw_off_caller && !caller))
    throw std::runtime_error("task " + std::to_string(i) + " failed on thread " + std::to_string(t));
}

py::dict loop_result(const LoopRecord& r, double seconds) {
  std::vector<int> runs, thread, on_caller;
  for (size_t i = 0; i < r.runs.size(); ++i) {
    runs.push_back(r.runs[i].load());
    thread.push_back(r.thread[i].load());
    on_caller.push_back(r.on_caller[i].load());
  }
  py::dict d;
  d["runs"] = runs;
  d["thread"] = thread;
  d["on_caller"] = on_caller;
  d["seconds"] = seconds;
  return d;
}

// A private pool for tests (destroyed by Python: checks destruction while idle).
struct TestPool {
  std::unique_ptr<ThreadPool> pool;
};

}  // namespace

void bind_testing_threadpool(py::module_& testing) {
  py::class_<TestPool>(testing, "ThreadPool", "A private executor worker pool (tests only).")
      .def(py::init([](int workers) {
             if (workers < 0 || workers > ThreadPool::kMaxWorkers)
               throw std::invalid_argument("workers out of range");
             auto p = std::make_unique<TestPool>();
             p->pool = std::make_unique<ThreadPool>(workers);
             return p;
           }),
           py::arg("workers"))
      .def_property_readonly("workers", [](TestPool& p) { return p.pool->workers(); })
      .def("run", [](TestPool& p, int threads, ptrdiff_t n, double task_us, ptrdiff_t throw_at,
                     bool throw_off_caller) {
             if (n < 0 || n > (1 << 24)) throw std::invalid_argument("n out of range");
             LoopRecord r(n);
             r.task_us = task_us;
             r.throw_at = throw_at;
             r.throw_off_caller = throw_off_caller;
             double seconds;
             {
               py::gil_scoped_release nogil;
               r.caller = std::this_thread::get_id();
               const auto t0 = std::chrono::steady_clock::now();
               p.pool->run(threads, n, &record_task, &r);
               seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
             }
             return loop_result(r, seconds);
           },
           py::arg("threads"), py::arg("n"), py::arg("task_us") = 0.0, py::arg("throw_at") = -1,
           py::arg("throw_off_caller") = false,
           "Run n recording tasks (each busy for task_us); returns per-task runs, thread "
           "index and whether the caller ran it. A throwing task's exception propagates.")
      .def("run_many", [](TestPool& p, int callers, int loops, int threads, ptrdiff_t n) {
             // `callers` C++ threads each run `loops` loops of n tasks at once; returns the
             // number of tasks that did not run exactly once (0 when correct).
             std::atomic<long> wrong{0};
             {
               py::gil_scoped_release nogil;
               std::vector<std::thread> ts;
               for (int c = 0; c < callers; ++c)
                 ts.emplace_back([&] {
                   for (int l = 0; l < loops; ++l) {
                     LoopRecord r(n);
                     r.caller = std::this_thread::get_id();
                     p.pool->run(threads, n, &record_task, &r);
                     for (ptrdiff_t i = 0; i < n; ++i)
                       if (r.runs[i].load() != 1 || r.thread[i].load() >= threads) wrong++;
                   }
                 });
               for (auto& t : ts) t.join();
             }
             return wrong.load();
           },
           py::arg("callers"), py::arg("loops"), py::arg("threads"), py::arg("n"))
      .def("hold_worker", [](TestPool& p, int i, bool held) { p.pool->hold_worker(i, held); })
      .def("stats", [](TestPool& p) { return stats_dict(p.pool->stats()); })
      .def("close", [](TestPool& p) {
        py::gil_scoped_release nogil;
        p.pool.reset(new ThreadPool(0));
      }, "Destroy the pool's workers now (joins them).");
  testing.def("pool_stats", [] { return stats_dict(ThreadPool::shared().stats()); },
              "Counters of the shared executor pool.");
  testing.def("pool_workers", [] { return ThreadPool::shared().workers(); });
  testing.def("pool_spin_us", [] { return ThreadPool::spin_us(); });
  testing.def("set_pool_spin_us", [](double us) { ThreadPool::set_spin_us(us); }, py::arg("us"));
  testing.def("set_pool_step_aside", [](bool on) { ThreadPool::set_step_aside(on); }, py::arg("on"));
  testing.def("min_parallel_us", [] { return min_parallel_ns() * 1e-3; },
              "Estimated single-thread step time below which a step runs on one thread.");
  testing.def("set_min_parallel_us", [](double us) { set_min_parallel_ns(us * 1e3); }, py::arg("us"));
  testing.def("step_us", [](const std::string& isa, double macs, double bytes) {
    return step_ns(parse_isa(isa), macs, bytes) * 1e-3;
  }, py::arg("isa"), py::arg("macs"), py::arg("bytes"), "The cost model's estimate of a step.");
}

}  // namespace pyrt
