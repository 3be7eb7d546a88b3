// The executor's own worker pool: a parallel loop in which the calling thread works too
// and a worker that has not started is never waited for.
//
// Why not an OpenMP region: a region ends with a barrier that waits for every team
// thread, also one the OS has not run yet. On a busy machine a woken worker sat in the
// run queue for 0.3 ms typically and up to a scheduler tick (4 ms), and every parallel
// step of a batch-1 run waited for it (bench/latency.py; perf sched).
//
// How a loop runs (ThreadPool::run):
// - The tasks [0, n) are cut into one contiguous range per thread of the team; each
//   range hands out its tasks from its own atomic counter. A thread drains its own range
//   first (the same thread gets the same tasks run after run, so weights split across
//   cores stay in their caches), then takes what is left of the others, so a thread the
//   OS delays leaves its share to the rest.
// - The caller claims up to threads - 1 idle workers (one CAS each; a worker busy with
//   another caller's loop is not available, so concurrent runs share the workers without
//   oversubscribing them), then works on range 0 itself.
// - When no task is left the caller revokes every claimed worker that has not started
//   (CAS back to idle), waits only for workers already inside a task, and returns.
// - Idle workers spin for a while (spin_us(), default kDefaultSpinUs) and then park on
//   a condition variable; claiming a parked worker wakes it.
// - A worker must not sit on the caller's CPU: some kernels (this project's VM packs
//   threads onto few vCPUs) put a woken worker there, where it runs only when the
//   caller's time slice ends. An idle worker that finds itself on the CPU of the last
//   caller moves to another CPU it may use (its affinity mask narrowed for a moment and
//   restored), else yields; a caller that has revoked the same worker 3 loops in a row
//   moves it off the caller's CPU itself (it cannot step aside before it runs). At most
//   one move per worker per millisecond.
// - A task that throws: the remaining tasks are skipped and run() rethrows the first
//   exception on the calling thread.
// Nothing is allocated per loop: the loop's state lives on the caller's stack.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <thread>

namespace pyrt {

using TaskFn = void (*)(void* ctx, ptrdiff_t task, int thread);

class ThreadPool {
 public:
  static constexpr int kMaxWorkers = 1023;  // a Session has at most 1024 threads
  static constexpr int kRanges = 16;        // home ranges per loop (threads share beyond)
  static constexpr double kDefaultSpinUs = 1000.0;

  // A pool with `workers` threads started now (more start on demand, see run()).
  explicit ThreadPool(int workers = 0);
  // Stops and joins the workers. No run() may be in progress.
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // The process-wide pool the executor uses. Never destroyed (workers parked at exit
  // simply end with the process); replaced by an empty one in a forked child, which
  // inherits no threads.
  static ThreadPool& shared();

  // Starts workers until there are at least `n` (at most kMaxWorkers).
  void reserve(int n);
  int workers() const { return count_.load(std::memory_order_acquire); }

  // Calls fn(ctx, i, thread) for every i in [0, n) exactly once, on the calling thread
  // (thread 0) and on up to threads - 1 idle workers (thread 1, 2, ...; every thread
  // number is < min(threads, n) and used by one thread at a time). Returns when every
  // task has finished; rethrows the first exception a task threw.
  void run(int threads, ptrdiff_t n, TaskFn fn, void* ctx);

  // Microseconds an idle worker spins before parking; read by each worker whenever it
  // goes idle. Default: PYRUNTIME_SPIN_US if set, else kDefaultSpinUs (chosen with
  // bench/latency.py --variants: see the commit that set it).
  static double spin_us();
  static void set_spin_us(double us);
  // Whether workers step aside from the caller's CPU (see above; default on, off only to
  // measure what it is worth).
  static void set_step_aside(bool on);

  // Counters for tests and benchmarks (relaxed; exact only when the pool is quiet).
  struct Stats {
    uint64_t claimed = 0;   // workers claimed
    uint64_t revoked = 0;   // claimed workers revoked before they started
    uint64_t parked = 0;    // times a worker parked
    uint64_t woken = 0;     // times a caller woke a parked worker
    uint64_t moved = 0;     // times a worker moved off its caller's CPU
  };
  Stats stats() const;
  // Test hook: while held, worker `i` takes no new loop (it behaves like a thread the OS
  // does not run); claims of it are revoked at the loop's end.
  void hold_worker(int i, bool held);

 private:
  struct Job;
  struct Worker;
  void worker_main(Worker* w);
  uintptr_t wait_for_job(Worker* w);
  void step_aside(Worker* w, int64_t now_ns);
  static bool try_move(Worker* w, int64_t now_ns, int cpu, int tid);
  static void work(Job& j, int id);

  mutable std::mutex grow_mu_;
  Worker* slots_[kMaxWorkers] = {};
  std::atomic<int> count_{0};
  alignas(64) std::atomic<int> caller_cpu_{-1};
};

}  // namespace pyrt
