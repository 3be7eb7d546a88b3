// The executor's worker pool (see threadpool.h for the protocol).
//
// A worker's slot says what it is doing:
//   0            idle: a caller may claim it (CAS 0 -> job)
//   job          claimed for that job, not started: the worker starts it (CAS job ->
//                job|1) or the caller revokes it (CAS job -> 0); exactly one CAS wins
//   job | 1      running the job's tasks; the worker stores 0 when it leaves
//   kStop        the pool is being destroyed
// A job's state counts the workers claimed for it that have not left it (started or
// not), plus kParked once the caller sleeps waiting for them. The worker whose decrement
// takes the count to zero while kParked is set wakes the caller under the job's mutex;
// no worker touches the job after its decrement otherwise, so the job can live on the
// caller's stack.
#include "threadpool.h"

#include <chrono>
#include <cstdlib>
#include <exception>
#include <system_error>
#if defined(__linux__)
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace pyrt {

namespace {

constexpr uintptr_t kStop = 2;  // never a job address (jobs are 64-byte aligned)
constexpr uint32_t kParked = 1u << 31;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

double env_spin_us() {
  const char* s = std::getenv("PYRUNTIME_SPIN_US");
  if (!s || !*s) return ThreadPool::kDefaultSpinUs;
  char* end = nullptr;
  const double v = std::strtod(s, &end);
  if (end == s || !(v >= 0)) return ThreadPool::kDefaultSpinUs;
  return v > 1e6 ? 1e6 : v;
}

std::atomic<int64_t>& spin_ns_ref() {
  static std::atomic<int64_t> ns{static_cast<int64_t>(env_spin_us() * 1e3)};
  return ns;
}

// How long a caller spins for workers still inside a task before it sleeps: a task is
// microseconds, so a longer wait means the worker was preempted, and a spinning caller
// would then keep the core the worker needs.
constexpr int64_t kCallerSpinNs = 20000;
// At most one move per worker per this many nanoseconds (see step_aside).
constexpr int64_t kMoveEveryNs = 1000000;

std::atomic<bool> g_step_aside{true};
std::atomic<ThreadPool*> g_shared{nullptr};

int current_cpu() {
#if defined(__linux__)
  return sched_getcpu();
#else
  return -1;
#endif
}

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Moves thread `tid` (0: the calling thread) to another CPU it may run on, by narrowing
// its affinity mask for a moment: the kernel migrates it at once (a waiting thread to
// the other CPU's run queue), and the mask is then restored.
void move_off_cpu(int tid, int cpu) {
#if defined(__linux__)
  cpu_set_t all, other;
  if (sched_getaffinity(static_cast<pid_t>(tid), sizeof all, &all) != 0 || CPU_COUNT(&all) < 2) return;
  other = all;
  CPU_CLR(cpu, &other);
  if (CPU_COUNT(&other) == 0 || sched_setaffinity(tid, sizeof other, &other) != 0) return;
  sched_setaffinity(tid, sizeof all, &all);
#else
  (void)tid;
  (void)cpu;
#endif
}

}  // namespace

struct alignas(64) ThreadPool::Worker {
  // One cache line, written by the callers that claim this worker and by the worker.
  std::atomic<uintptr_t> slot{0};
  std::atomic<bool> sleeping{false};
  std::atomic<bool> held{false};
  std::atomic<uint64_t> claimed{0}, revoked{0}, woken{0}, parked{0}, moved{0};
  std::atomic<int> misses{0};          // loops in a row revoked before it started
  std::atomic<int64_t> last_move{0};   // steady-clock ns of its last move off a caller's CPU
  int tid = 0;                         // its kernel thread id (Linux), set before `started`
  std::atomic<bool> started{false};
  // Parking.
  alignas(64) std::mutex mu;
  std::condition_variable cv;
  std::thread th;
};

struct alignas(64) ThreadPool::Job {
  struct alignas(64) Range {
    std::atomic<ptrdiff_t> next{0};
    ptrdiff_t end = 0;
  };
  TaskFn fn = nullptr;
  void* ctx = nullptr;
  int nranges = 1;
  std::atomic<int> next_id{1};
  std::atomic<bool> cancelled{false};
  std::atomic<bool> failed{false};
  std::exception_ptr error;
  alignas(64) std::atomic<uint32_t> state{0};
  std::mutex mu;
  std::condition_variable cv;
  bool woken = false;
  Range ranges[kRanges];
};

ThreadPool::ThreadPool(int workers) { reserve(workers); }

ThreadPool::~ThreadPool() {
  const int n = count_.load(std::memory_order_acquire);
  for (int i = 0; i < n; ++i) {
    Worker* w = slots_[i];
    {
      std::lock_guard<std::mutex> g(w->mu);
      w->slot.store(kStop, std::memory_order_seq_cst);
    }
    w->cv.notify_all();
  }
  for (int i = 0; i < n; ++i) {
    slots_[i]->th.join();
    delete slots_[i];
  }
}

ThreadPool& ThreadPool::shared() {
  ThreadPool* p = g_shared.load(std::memory_order_acquire);
  if (p) return *p;
  static std::mutex mu;
  std::lock_guard<std::mutex> g(mu);
  p = g_shared.load(std::memory_order_acquire);
  if (!p) {
    p = new ThreadPool(0);
#if defined(__linux__)
    // A forked child has none of the parent's threads: give it a fresh, empty pool
    // (the parent's is left as it is, unused, since its locks may be held).
    pthread_atfork(nullptr, nullptr,
                   [] { g_shared.store(new ThreadPool(0), std::memory_order_release); });
#endif
    g_shared.store(p, std::memory_order_release);
  }
  return *p;
}

void ThreadPool::reserve(int n) {
  if (n > kMaxWorkers) n = kMaxWorkers;
  if (count_.load(std::memory_order_acquire) >= n) return;
  std::lock_guard<std::mutex> g(grow_mu_);
  for (int c = count_.load(std::memory_order_relaxed); c < n; ++c) {
    auto* w = new Worker;
    try {
      w->th = std::thread([this, w] { worker_main(w); });
    } catch (...) {
      delete w;
      throw;
    }
#if defined(__linux__)
    pthread_setname_np(w->th.native_handle(), "pyrt-worker");
#endif
    slots_[c] = w;
    count_.store(c + 1, std::memory_order_release);
  }
}

double ThreadPool::spin_us() { return spin_ns_ref().load(std::memory_order_relaxed) * 1e-3; }

void ThreadPool::set_step_aside(bool on) { g_step_aside.store(on, std::memory_order_relaxed); }

void ThreadPool::set_spin_us(double us) {
  if (!(us >= 0)) us = 0;
  if (us > 1e6) us = 1e6;
  spin_ns_ref().store(static_cast<int64_t>(us * 1e3), std::memory_order_relaxed);
}

ThreadPool::Stats ThreadPool::stats() const {
  Stats s;
  const int n = count_.load(std::memory_order_acquire);
  for (int i = 0; i < n; ++i) {
    const Worker* w = slots_[i];
    s.claimed += w->claimed.load(std::memory_order_relaxed);
    s.revoked += w->revoked.load(std::memory_order_relaxed);
    s.woken += w->woken.load(std::memory_order_relaxed);
    s.parked += w->parked.load(std::memory_order_relaxed);
    s.moved += w->moved.load(std::memory_order_relaxed);
  }
  return s;
}

void ThreadPool::hold_worker(int i, bool held) {
  if (i < 0 || i >= count_.load(std::memory_order_acquire)) return;
  Worker* w = slots_[i];
  {
    std::lock_guard<std::mutex> g(w->mu);
    w->held.store(held, std::memory_order_seq_cst);
  }
  w->cv.notify_all();
}

// A spinning worker on the CPU of the thread that last called run() keeps that thread
// from running: a kernel that packs threads onto few CPUs (some VMs do, to spare waking
// an idle vCPU) put a woken worker beside the caller for whole seconds here, and the
// worker then never got to a task. So the worker moves to another CPU (at most once a
// millisecond) or else yields. A worker alone on its CPU spins without yielding.
void ThreadPool::step_aside(Worker* w, int64_t now) {
  if (!g_step_aside.load(std::memory_order_relaxed)) return;
  const int cpu = current_cpu();
  if (cpu < 0) return;
  if (cpu != caller_cpu_.load(std::memory_order_relaxed)) return;
  if (!try_move(w, now, cpu, 0)) std::this_thread::yield();
}

bool ThreadPool::try_move(Worker* w, int64_t now, int cpu, int tid) {
  int64_t last = w->last_move.load(std::memory_order_relaxed);
  if (now - last < kMoveEveryNs ||
      !w->last_move.compare_exchange_strong(last, now, std::memory_order_relaxed))
    return false;
  w->moved.fetch_add(1, std::memory_order_relaxed);
  move_off_cpu(tid, cpu);
  return true;
}

uintptr_t ThreadPool::wait_for_job(Worker* w) {
  for (;;) {
    const int64_t spin_ns = spin_ns_ref().load(std::memory_order_relaxed);
    if (spin_ns > 0) {
      const int64_t until = now_ns() + spin_ns;
      for (unsigned i = 1;; ++i) {
        const uintptr_t v = w->slot.load(std::memory_order_acquire);
        if (v) return v;
        cpu_relax();
        if ((i & 31) == 0) {
          const int64_t now = now_ns();
          if (now >= until) break;
          step_aside(w, now);
        }
      }
    }
    std::unique_lock<std::mutex> lk(w->mu);
    // Dekker with the claiming caller: it CASes the slot, then reads `sleeping`; we set
    // `sleeping`, then read the slot. One of us sees the other (seq_cst), and the mutex
    // makes the caller's notify wait until we are inside cv.wait.
    w->sleeping.store(true, std::memory_order_seq_cst);
    uintptr_t v = w->slot.load(std::memory_order_seq_cst);
    if (v == 0) {
      w->parked.fetch_add(1, std::memory_order_relaxed);
      w->cv.wait(lk);
      v = w->slot.load(std::memory_order_seq_cst);
    }
    w->sleeping.store(false, std::memory_order_relaxed);
    if (v) return v;
    // Woken for a loop that ended before we ran (revoked), or spuriously: more steps
    // of that run are likely to follow, so spin again before parking.
  }
}

void ThreadPool::worker_main(Worker* w) {
#if defined(__linux__)
  w->tid = static_cast<int>(syscall(SYS_gettid));
#endif
  w->started.store(true, std::memory_order_release);
  for (;;) {
    uintptr_t v = w->slot.load(std::memory_order_acquire);
    if (v == 0) v = wait_for_job(w);
    if (v == kStop) return;
    if (w->held.load(std::memory_order_acquire)) {
      std::unique_lock<std::mutex> lk(w->mu);
      while (w->held.load(std::memory_order_seq_cst) &&
             w->slot.load(std::memory_order_seq_cst) != kStop)
        w->cv.wait(lk);
      continue;
    }
    uintptr_t expected = v;
    if (!w->slot.compare_exchange_strong(expected, v | 1, std::memory_order_acq_rel,
                                         std::memory_order_acquire))
      continue;  // revoked (or a new claim arrived): look again
    Job& j = *reinterpret_cast<Job*>(v);
    if (w->misses.load(std::memory_order_relaxed)) w->misses.store(0, std::memory_order_relaxed);
    work(j, j.next_id.fetch_add(1, std::memory_order_relaxed));
    // Idle before the decrement, so the caller's next loop can claim this worker again.
    w->slot.store(0, std::memory_order_release);
    if (j.state.fetch_sub(1, std::memory_order_acq_rel) == (kParked | 1u)) {
      std::lock_guard<std::mutex> g(j.mu);
      j.woken = true;
      j.cv.notify_one();
    }
  }
}

void ThreadPool::work(Job& j, int id) {
  const int nr = j.nranges;
  int r = id % nr;
  for (int k = 0; k < nr; ++k) {
    Job::Range& R = j.ranges[r];
    while (R.next.load(std::memory_order_relaxed) < R.end) {
      if (j.cancelled.load(std::memory_order_relaxed)) return;
      const ptrdiff_t i = R.next.fetch_add(1, std::memory_order_relaxed);
      if (i >= R.end) break;
      try {
        j.fn(j.ctx, i, id);
      } catch (...) {
        if (!j.failed.exchange(true, std::memory_order_acq_rel)) j.error = std::current_exception();
        j.cancelled.store(true, std::memory_order_relaxed);
        return;
      }
    }
    if (++r == nr) r = 0;
  }
}

void ThreadPool::run(int threads, ptrdiff_t n, TaskFn fn, void* ctx) {
  if (n <= 0) return;
  int t = threads;
  if (t > n) t = static_cast<int>(n);
  if (t > kMaxWorkers + 1) t = kMaxWorkers + 1;
  if (t <= 1) {
    for (ptrdiff_t i = 0; i < n; ++i) fn(ctx, i, 0);
    return;
  }
  if (count_.load(std::memory_order_acquire) < t - 1) {
    try {
      reserve(t - 1);
    } catch (const std::system_error&) {
      // No more threads: run with the workers there are.
    }
  }
  const int cpu = current_cpu();
  if (caller_cpu_.load(std::memory_order_relaxed) != cpu)
    caller_cpu_.store(cpu, std::memory_order_relaxed);
  Job j;
  j.fn = fn;
  j.ctx = ctx;
  const int nr = t < kRanges ? t : kRanges;
  j.nranges = nr;
  const ptrdiff_t q = n / nr, rem = n % nr;
  for (int r = 0; r < nr; ++r) {
    const ptrdiff_t b = q * r + (r < rem ? r : rem);
    j.ranges[r].next.store(b, std::memory_order_relaxed);
    j.ranges[r].end = b + q + (r < rem ? 1 : 0);
  }
  // Claim idle workers, lowest index first (the same workers serve the same ranges).
  const int nw = count_.load(std::memory_order_acquire);
  int want = t - 1, last = -1;
  for (int k = 0; k < nw && want > 0; ++k) {
    Worker* w = slots_[k];
    if (w->slot.load(std::memory_order_relaxed) != 0) continue;
    j.state.fetch_add(1, std::memory_order_relaxed);
    uintptr_t idle = 0;
    if (!w->slot.compare_exchange_strong(idle, reinterpret_cast<uintptr_t>(&j),
                                         std::memory_order_seq_cst, std::memory_order_relaxed)) {
      j.state.fetch_sub(1, std::memory_order_relaxed);
      continue;
    }
    w->claimed.fetch_add(1, std::memory_order_relaxed);
    // One notify per park: the first caller to see the worker asleep wakes it (a woken
    // worker can take tens of microseconds to run, and other claims meanwhile need no
    // second futex call).
    if (w->sleeping.exchange(false, std::memory_order_seq_cst)) {
      {
        std::lock_guard<std::mutex> g(w->mu);
      }
      w->cv.notify_one();
      w->woken.fetch_add(1, std::memory_order_relaxed);
    }
    --want;
    last = k;
  }
  work(j, 0);
  // Every task is taken: workers that have not started get nothing to do; revoke them.
  for (int k = 0; k <= last; ++k) {
    uintptr_t mine = reinterpret_cast<uintptr_t>(&j);
    Worker* w = slots_[k];
    if (w->slot.compare_exchange_strong(mine, 0, std::memory_order_acq_rel,
                                        std::memory_order_relaxed)) {
      j.state.fetch_sub(1, std::memory_order_relaxed);
      w->revoked.fetch_add(1, std::memory_order_relaxed);
      // A worker that keeps missing loops may be waiting for this very CPU (packed
      // beside the caller after it last looked): it cannot step aside until it runs,
      // so move it off this CPU (a no-op when it is elsewhere).
      if (w->misses.fetch_add(1, std::memory_order_relaxed) >= 2 && cpu >= 0 &&
          w->started.load(std::memory_order_acquire) && g_step_aside.load(std::memory_order_relaxed))
        try_move(w, now_ns(), cpu, w->tid);
    }
  }
  // Wait for the workers inside a task: spin briefly, then sleep.
  if (j.state.load(std::memory_order_acquire) != 0) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::nanoseconds(kCallerSpinNs);
    for (unsigned i = 1; j.state.load(std::memory_order_acquire) != 0; ++i) {
      cpu_relax();
      if ((i & 31) == 0) {
        // A worker inside a task on this CPU needs it: let it run.
        std::this_thread::yield();
        if (std::chrono::steady_clock::now() < until) continue;
        std::unique_lock<std::mutex> lk(j.mu);
        if ((j.state.fetch_or(kParked, std::memory_order_acq_rel) & ~kParked) != 0)
          while (!j.woken) j.cv.wait(lk);
        break;
      }
    }
  }
  if (j.failed.load(std::memory_order_acquire)) std::rethrow_exception(j.error);
}

}  // namespace pyrt
