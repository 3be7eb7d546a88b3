// The serving engine behind rt.serve.LoadBalancer when every replica is a compiled CPU
// Session: a shared request queue and one native worker thread per replica, batching,
// priorities, deadlines, backpressure, failover and metrics, none of it touching the
// GIL. Python threads only submit (copying their rows in) and wait on their request.
//
// Why native: with Python worker threads, every batch needs the GIL back after compute,
// and under many client threads that wait (a FIFO over all of them) dominated: 1-row
// MLP requests from 16 threads ran at ~10k/s with 2 workers idle most of the time.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "../runtime/plan.h"

namespace pyrt {
namespace serve {

constexpr double kNever = std::numeric_limits<double>::infinity();
double now_seconds();  // CLOCK_MONOTONIC seconds, the clock of Python's time.monotonic()

enum class Status : int { Pending = 0, Ok, DeadlineExceeded, ReplicaFailed, Closed, Cancelled };

// submit() refusals; `kind` names the Python error.
struct SubmitError : std::runtime_error {
  enum Kind { Closed, Overloaded, NoReplica } kind;
  SubmitError(Kind k, const std::string& m) : std::runtime_error(m), kind(k) {}
};

struct Request {
  // Set by submit, read-only afterwards (the engine owns copies: no caller lifetimes).
  std::vector<float> x;                // rows * input floats per row
  int64_t rows = 0;
  double deadline = kNever;            // compute must start before (now_seconds clock)
  int priority = 0;
  uint64_t seq = 0;
  double t_submit = 0;
  bool notify = false;                 // also report through Engine::completed()
  // Engine state, under the engine lock.
  enum State { Queued, Taken, Done } state = Queued;
  int attempts = 0;                    // failed runs so far
  uint64_t failed_on = 0;              // bit r: failed on replica r
  double t_start = -1;                 // first compute start
  // The outcome, written before `done` is set (under `m`).
  Status status = Status::Pending;
  std::string message;
  std::vector<std::vector<float>> out; // per plan output: rows * floats per row

  bool wait(double seconds);           // < 0: forever; returns done
  bool is_done();

 private:
  friend class Engine;
  void signal();                       // done: wake waiters (status set before)
  std::mutex m;
  std::condition_variable cv;
  bool done = false;
};

// Recent samples (a ring) plus running count and sum, like pyruntime.serve.metrics.Series.
struct Series {
  static constexpr size_t kWindow = 8192;
  std::vector<double> ring;
  size_t next = 0;
  uint64_t count = 0;
  double total = 0;
  void add(double v);
  std::vector<double> samples() const;  // oldest first
};

enum Counter : int {
  kRequests, kRows, kBatches, kCompleted, kFailures, kRetries, kDeadlineExceeded,
  kReplicaFailed, kClosed, kCancelled, kEvictions, kProbes, kRecoveries, kNumCounters
};
extern const char* const kCounterNames[kNumCounters];

struct Counts {
  uint64_t counts[kNumCounters] = {};
};
// A replica's counters and timing series (the balancer builds the overall series from
// the replicas', so the engine keeps only counters overall).
struct ScopeStats : Counts {
  Series queue, compute, latency, batch;
};

struct Options {
  std::vector<int64_t> caps;   // largest batch (rows) per replica
  double max_delay = 0;        // seconds a batch may wait to fill
  int64_t max_queue = 1024;
  int max_retries = 2;
  int evict_after = 3;
  double probe_interval = 1.0;
};

class Engine {
 public:
  Engine(std::vector<const Plan*> plans, Options opt);
  ~Engine();  // close(false)
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // A request for `rows` rows at `x` (copied); timeout < 0: none. Then either
  // enqueue(q) (throws SubmitError), or, at low load, claim_inline(q) >= 0 and
  // run_inline(q, r): the caller's thread runs it on idle replica r (no two thread
  // hand-offs; the caller releases the GIL around run_inline).
  std::shared_ptr<Request> make_request(const float* x, int64_t rows, double timeout,
                                        int priority, bool notify) const;
  void enqueue(const std::shared_ptr<Request>& q);
  int claim_inline(const std::shared_ptr<Request>& q);  // -1: not now (enqueue it)
  void run_inline(const std::shared_ptr<Request>& q, int r);
  // Still queued -> Cancelled (never computed) and true; else false.
  bool cancel(const std::shared_ptr<Request>& r);
  // Stop taking requests; drain: finish the queue, else fail it with Closed. Joins.
  void close(bool drain);
  // Finished requests submitted with notify, waiting up to `seconds` for the first;
  // empty on timeout or once closed and all reported.
  std::vector<std::shared_ptr<Request>> completed(double seconds);

  struct Snapshot {
    Counts overall;
    std::vector<ScopeStats> replicas;
    std::vector<int> in_service;
    uint64_t submitted = 0, overloaded = 0;
    int64_t queued = 0, running = 0, pending = 0;
  };
  Snapshot stats();
  int64_t input_floats() const { return in_floats_; }

  // Tests: hold every worker before its next batch (true) or let them go; make replica
  // `r`'s next `n` batches fail as if run() threw.
  void set_paused(bool paused);
  void inject_failures(int r, int n);

 private:
  struct Replica {
    const Plan* plan;
    int64_t cap;
    bool in_service = true;
    bool busy = false;
    bool filling = false;          // waiting to fill its batch (arrivals wake it)
    bool held_wait = false;        // its worker waits while a caller runs on it inline
    int consecutive = 0;
    double probe_at = 0;
    int inject = 0;
    double cost_n = 0, cost_b = 0, cost_bb = 0, cost_t = 0, cost_bt = 0;  // batch time fit
    ScopeStats st;
    std::condition_variable wake;  // this worker alone (fill waits, probes)
    std::thread thread;
  };
  struct Buffers {  // a worker's batch input/outputs, reused across batches
    std::vector<float> x;
    std::vector<std::vector<float>> y;
    std::vector<float*> yp;
  };
  void work(int r);
  void admit(const std::shared_ptr<Request>& q);  // lock held: refusals, seq, counts
  void add_deadline(const std::shared_ptr<Request>& q);  // lock held: tell the reaper
  // Runs a batch (no lock); fills each request's outputs; returns the error or "".
  std::string run_batch(Replica& rep, const std::vector<std::shared_ptr<Request>>& batch,
                        bool fail, Buffers& buf);
  // Lock held: metrics, then finish, retry or fail the batch's requests (evicting the
  // replica after repeated failures); frees the replica.
  void book_batch(Replica& rep, int r, const std::vector<std::shared_ptr<Request>>& batch,
                  double t0, double t1, const std::string& err);
  // Under the lock: up to max_rows rows for replica r, highest priority then oldest
  // (`first`: a batch's first take, where one oversized request may run alone). Requests
  // found past their deadline fail and are appended to `expired`.
  std::vector<std::shared_ptr<Request>> take(int r, int64_t max_rows, bool first, double now,
                                             std::vector<std::shared_ptr<Request>>& expired);
  // Lock held. push: queue q; returns whether every worker must be woken (a retry).
  bool push(const std::shared_ptr<Request>& q, bool front);
  // Lock held: book q's outcome; its waiters are woken by the next flush().
  void finish(const std::shared_ptr<Request>& q, Status s, std::string msg);
  // Wake the waiters of finished requests with the lock released (re-taken after).
  void flush(std::unique_lock<std::mutex>& lk);
  void expire(const std::shared_ptr<Request>& q, double now);                 // lock held
  void drop_queued(Status status, const std::string& why);  // ends every queued request; lock held
  bool other_idle(int r) const;
  double fixed_cost(const Replica& rep) const;
  bool probe(Replica& rep);
  void reap();

  std::vector<std::unique_ptr<Replica>> reps_;
  Options opt_;
  int64_t in_floats_ = 0;
  std::vector<int64_t> out_floats_;

  std::mutex mu_;
  std::condition_variable work_cv_;     // idle in-service workers
  std::condition_variable reap_cv_;
  std::condition_variable done_cv_;     // completed() waiters
  std::map<int, std::deque<std::shared_ptr<Request>>, std::greater<int>> lanes_;
  std::multimap<double, std::weak_ptr<Request>> deadlines_;
  std::deque<std::shared_ptr<Request>> completed_;
  std::vector<std::shared_ptr<Request>> to_signal_;  // finished, waiters not woken yet
  int64_t queued_ = 0, running_ = 0, pending_ = 0;
  uint64_t seq_ = 0, submitted_ = 0, overloaded_ = 0;
  int n_in_ = 0;
  int filling_ = 0;                      // replicas waiting to fill a batch
  double last_arrival_ = 0, gap_ = 1e-3;
  std::vector<float> sample_;            // one row that ran fine (for probes)
  Counts overall_;
  bool closing_ = false, stopping_ = false, paused_ = false;
  bool joined_ = false;                  // workers joined: the reaper and completed() end
  bool all_joined_ = false;              // the reaper joined too: close() is over
  bool closer_ = false;                  // a close() call is joining the threads
  std::thread reaper_;
};

}  // namespace serve
}  // namespace pyrt
