#include "serve_engine.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>

namespace pyrt {
namespace serve {

double now_seconds() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

const char* const kCounterNames[kNumCounters] = {
    "requests", "rows", "batches", "completed", "failures", "retries", "deadline_exceeded",
    "replica_failed", "closed", "cancelled", "evictions", "probes", "recoveries"};

namespace {
// A wait of `seconds`, clamped to [0, 1 day]: huge or infinite values would overflow the
// clock conversion inside wait_for (callers loop, so a cap changes nothing else).
std::chrono::duration<double> span(double seconds) {
  return std::chrono::duration<double>(seconds > 0 ? (seconds < 86400 ? seconds : 86400) : 0);
}

std::string fmt_ms(double seconds) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f", seconds * 1e3);
  return b;
}
}  // namespace

// ------------------------------------------------------------------ Request, Series
void Request::signal() {
  {
    std::lock_guard<std::mutex> g(m);
    done = true;
  }
  cv.notify_all();
}

bool Request::wait(double seconds) {
  std::unique_lock<std::mutex> g(m);
  if (seconds < 0) {
    cv.wait(g, [this] { return done; });
    return true;
  }
  return cv.wait_for(g, span(seconds), [this] { return done; });
}

bool Request::is_done() {
  std::lock_guard<std::mutex> g(m);
  return done;
}

void Series::add(double v) {
  if (ring.size() < kWindow) {
    ring.push_back(v);
  } else {
    ring[next] = v;
    next = (next + 1) % kWindow;
  }
  ++count;
  total += v;
}

std::vector<double> Series::samples() const {
  std::vector<double> out(ring.begin() + next, ring.end());
  out.insert(out.end(), ring.begin(), ring.begin() + next);
  return out;
}

// ------------------------------------------------------------------ Engine
Engine::Engine(std::vector<const Plan*> plans, Options opt) : opt_(std::move(opt)) {
  if (plans.empty()) throw std::invalid_argument("serve engine: expected at least one plan");
  if (plans.size() > 64) throw std::invalid_argument("serve engine: at most 64 replicas");
  if (opt_.caps.size() != plans.size())
    throw std::invalid_argument("serve engine: expected one batch cap per replica");
  const Plan& p0 = *plans[0];
  if (p0.num_inputs() != 1) throw std::invalid_argument("serve engine: plans must have one input");
  in_floats_ = p0.input_per_sample(0);
  for (size_t i = 0; i < p0.num_outputs(); ++i) out_floats_.push_back(p0.output_per_sample(i));
  for (const Plan* p : plans) {
    bool same = p->num_inputs() == 1 && p->input_per_sample(0) == in_floats_ &&
                p->num_outputs() == out_floats_.size();
    for (size_t i = 0; same && i < out_floats_.size(); ++i)
      same = p->output_per_sample(i) == out_floats_[i];
    if (!same) throw std::invalid_argument("serve engine: replicas must be the same model");
  }
  for (size_t i = 0; i < plans.size(); ++i) {
    auto r = std::make_unique<Replica>();
    r->plan = plans[i];
    r->cap = std::max<int64_t>(1, opt_.caps[i]);
    reps_.push_back(std::move(r));
  }
  n_in_ = static_cast<int>(reps_.size());
  try {
    for (size_t i = 0; i < reps_.size(); ++i)
      reps_[i]->thread = std::thread([this, i] { work(static_cast<int>(i)); });
    reaper_ = std::thread([this] { reap(); });
  } catch (...) {
    // A thread that could not start (std::system_error): stop and join those that
    // did, or destroying them joinable below would be std::terminate.
    close(false);
    throw;
  }
}

Engine::~Engine() { close(false); }

std::shared_ptr<Request> Engine::make_request(const float* x, int64_t rows, double timeout,
                                              int priority, bool notify) const {
  if (rows < 1) throw std::invalid_argument("serve engine: a request needs at least one row");
  auto q = std::make_shared<Request>();
  q->x.assign(x, x + rows * in_floats_);  // before the lock: the copy is the big part
  q->rows = rows;
  q->priority = priority;
  q->notify = notify;
  q->t_submit = now_seconds();
  if (timeout >= 0) q->deadline = q->t_submit + timeout;
  return q;
}

void Engine::admit(const std::shared_ptr<Request>& q) {
  if (closing_) throw SubmitError(SubmitError::Closed, "submit after close(): the balancer takes no new requests");
  if (queued_ >= opt_.max_queue) {
    ++overloaded_;
    throw SubmitError(SubmitError::Overloaded,
                      "queue full: " + std::to_string(queued_) + " requests waiting (max_queue=" +
                          std::to_string(opt_.max_queue) + "); retry later or add replicas");
  }
  if (n_in_ == 0)
    throw SubmitError(SubmitError::NoReplica,
                      "no replica is in service (all failed repeatedly); they are probed and "
                      "rejoin when they work again");
  q->seq = seq_++;
  ++submitted_;
  ++pending_;
  const double gap = std::min(q->t_submit - last_arrival_, 0.1);
  gap_ += (gap - gap_) / 64;  // mean gap over ~64 arrivals: 1 / rate, even for bursts
  last_arrival_ = q->t_submit;
}

void Engine::add_deadline(const std::shared_ptr<Request>& q) {
  if (q->deadline == kNever) return;
  const bool first = deadlines_.empty() || q->deadline < deadlines_.begin()->first;
  deadlines_.emplace(q->deadline, q);
  if (first) reap_cv_.notify_one();  // the reaper waits for the earliest one
}

void Engine::enqueue(const std::shared_ptr<Request>& q) {
  std::unique_lock<std::mutex> lk(mu_);
  admit(q);
  const bool wake_all = push(q, false);
  add_deadline(q);
  if (filling_)
    for (auto& rp : reps_)
      if (rp->filling) rp->wake.notify_one();
  lk.unlock();  // the woken worker does not block on the lock at once
  if (wake_all)
    work_cv_.notify_all();
  else
    work_cv_.notify_one();
}

int Engine::claim_inline(const std::shared_ptr<Request>& q) {
  std::lock_guard<std::mutex> g(mu_);
  if (closing_ || paused_ || pending_ != 0) return -1;
  for (size_t i = 0; i < reps_.size(); ++i) {
    Replica& rep = *reps_[i];
    if (!rep.in_service || rep.busy || rep.filling) continue;
    admit(q);
    q->state = Request::Taken;  // its deadline is registered only if it is retried
    q->t_start = q->t_submit;
    rep.busy = true;
    ++running_;
    return static_cast<int>(i);
  }
  return -1;
}

void Engine::run_inline(const std::shared_ptr<Request>& q, int r) {
  Replica& rep = *reps_.at(size_t(r));
  bool fail;
  {
    std::lock_guard<std::mutex> g(mu_);
    fail = rep.inject > 0;
    if (fail) --rep.inject;
  }
  Buffers unused;  // a one-request batch runs on the request's own buffers
  const std::vector<std::shared_ptr<Request>> batch{q};
  const double t0 = now_seconds();
  const std::string err = run_batch(rep, batch, fail, unused);
  const double t1 = now_seconds();
  std::unique_lock<std::mutex> lk(mu_);
  book_batch(rep, r, batch, t0, t1, err);
  if (rep.held_wait) rep.wake.notify_all();  // its worker waited for the replica
  if (closing_ || queued_) {  // closing: idle workers re-check whether all is done
    work_cv_.notify_all();
    if (closing_)
      for (auto& o : reps_) o->wake.notify_all();
  }
  flush(lk);
}

bool Engine::push(const std::shared_ptr<Request>& q, bool front) {
  auto& lane = lanes_[q->priority];
  q->state = Request::Queued;
  if (front)
    lane.push_front(q);
  else
    lane.push_back(q);
  ++queued_;
  return q->failed_on != 0;  // some workers may not take it: wake every one
}

bool Engine::cancel(const std::shared_ptr<Request>& q) {
  std::unique_lock<std::mutex> lk(mu_);
  if (q->state != Request::Queued) return false;
  --queued_;  // its lane entry is dropped lazily (state is no longer Queued)
  finish(q, Status::Cancelled, "cancelled");
  flush(lk);
  return true;
}

void Engine::finish(const std::shared_ptr<Request>& q, Status s, std::string msg) {
  q->state = Request::Done;
  --pending_;
  switch (s) {
    case Status::Ok: ++overall_.counts[kCompleted]; break;
    case Status::DeadlineExceeded: ++overall_.counts[kDeadlineExceeded]; break;
    case Status::ReplicaFailed: ++overall_.counts[kReplicaFailed]; break;
    case Status::Closed: ++overall_.counts[kClosed]; break;
    case Status::Cancelled: ++overall_.counts[kCancelled]; break;
    default: break;
  }
  q->status = s;  // read by waiters only after signal() (flush)
  q->message = std::move(msg);
  to_signal_.push_back(q);
  if (q->notify) {
    completed_.push_back(q);
    done_cv_.notify_one();
  }
}

void Engine::flush(std::unique_lock<std::mutex>& lk) {
  if (to_signal_.empty()) return;
  std::vector<std::shared_ptr<Request>> go;
  go.swap(to_signal_);
  lk.unlock();  // waiters wake without meeting the engine lock
  for (auto& q : go) q->signal();
  lk.lock();
}

void Engine::expire(const std::shared_ptr<Request>& q, double now) {
  const std::string what = q->attempts
                               ? "before its retry after " + std::to_string(q->attempts) + " failed tries"
                               : std::string("before compute started");
  finish(q, Status::DeadlineExceeded,
         "deadline passed after " + fmt_ms(now - q->t_submit) + " ms " + what + " (timeout " +
             fmt_ms(q->deadline - q->t_submit) + " ms); not computed");
}

void Engine::drop_queued(Status status, const std::string& why) {
  for (auto& kv : lanes_)
    for (auto& q : kv.second)
      if (q->state == Request::Queued) finish(q, status, why);
  lanes_.clear();
  queued_ = 0;
}

bool Engine::other_idle(int r) const {
  for (size_t i = 0; i < reps_.size(); ++i)
    if (int(i) != r && reps_[i]->in_service && !reps_[i]->busy) return true;
  return false;
}

// Least-squares fit of batch seconds = fixed + per_row * rows (see BatchCost in Python).
double Engine::fixed_cost(const Replica& rep) const {
  const double n = rep.cost_n;
  if (n == 0) return 0;
  const double mb = rep.cost_b / n, mt = rep.cost_t / n;
  const double var = rep.cost_bb / n - mb * mb;
  if (var < 0.25) return 0.5 * mt;
  const double slope = std::max(0.0, (rep.cost_bt / n - mb * mt) / var);
  return std::min(mt, std::max(0.0, mt - slope * mb));
}

std::vector<std::shared_ptr<Request>> Engine::take(
    int r, int64_t max_rows, bool first, double now,
    std::vector<std::shared_ptr<Request>>& expired) {
  std::vector<std::shared_ptr<Request>> batch;
  int64_t rows = 0;
  const uint64_t bit = uint64_t(1) << r;
  for (auto lit = lanes_.begin(); lit != lanes_.end() && rows < max_rows;) {
    auto& lane = lit->second;
    for (auto it = lane.begin(); it != lane.end() && rows < max_rows;) {
      const std::shared_ptr<Request> q = *it;
      if (q->state != Request::Queued) {
        it = lane.erase(it);
        continue;
      }
      if (now >= q->deadline) {
        it = lane.erase(it);
        --queued_;
        expired.push_back(q);
        continue;
      }
      // A request bigger than max_rows runs alone, as the first of a batch.
      bool ok = rows + q->rows <= max_rows || (first && batch.empty());
      if (ok && (q->failed_on & bit)) {
        // Retry elsewhere when another replica in service has not failed it.
        for (size_t i = 0; i < reps_.size() && ok; ++i)
          if (reps_[i]->in_service && !(q->failed_on & (uint64_t(1) << i))) ok = false;
      }
      if (!ok) {
        ++it;
        continue;
      }
      q->state = Request::Taken;
      it = lane.erase(it);
      --queued_;
      rows += q->rows;
      batch.push_back(q);
    }
    lit = lane.empty() ? lanes_.erase(lit) : std::next(lit);
  }
  for (auto& q : expired)
    if (q->state != Request::Done) expire(q, now);
  return batch;
}

bool Engine::probe(Replica& rep) {
  std::vector<float> x, y;
  {
    std::lock_guard<std::mutex> g(mu_);
    if (rep.inject > 0) {
      --rep.inject;
      return false;
    }
    x = sample_;
  }
  if (x.empty()) return true;  // nothing known to work yet: the next batch is the probe
  try {
    std::vector<std::vector<float>> outs(out_floats_.size());
    std::vector<float*> op;
    for (size_t i = 0; i < outs.size(); ++i) {
      outs[i].resize(out_floats_[i]);
      op.push_back(outs[i].data());
    }
    const float* ip = x.data();
    rep.plan->run(1, &ip, op.data());
    return true;
  } catch (...) {
    return false;
  }
}

std::string Engine::run_batch(Replica& rep, const std::vector<std::shared_ptr<Request>>& batch,
                              bool fail, Buffers& buf) {
  const size_t nout = out_floats_.size();
  int64_t rows = 0;
  for (auto& q : batch) rows += q->rows;
  try {
    if (fail) throw std::runtime_error("injected replica fault");
    // One request runs straight from and into its own buffers; a batch is packed into
    // the worker's buffers and its outputs split back.
    const bool single = batch.size() == 1;
    std::vector<std::vector<float>>& ys = single ? batch[0]->out : buf.y;
    ys.resize(nout);
    buf.yp.resize(nout);
    for (size_t i = 0; i < nout; ++i) {
      ys[i].resize(size_t(rows * out_floats_[i]));
      buf.yp[i] = ys[i].data();
    }
    if (!single) {
      buf.x.resize(size_t(rows * in_floats_));
      int64_t o = 0;
      for (auto& q : batch) {
        std::memcpy(buf.x.data() + o * in_floats_, q->x.data(), q->x.size() * sizeof(float));
        o += q->rows;
      }
    }
    const float* ip = single ? batch[0]->x.data() : buf.x.data();
    rep.plan->run(rows, &ip, buf.yp.data());
    if (!single) {
      int64_t o = 0;
      for (auto& q : batch) {
        q->out.resize(nout);
        for (size_t i = 0; i < nout; ++i)
          q->out[i].assign(buf.y[i].begin() + o * out_floats_[i],
                           buf.y[i].begin() + (o + q->rows) * out_floats_[i]);
        o += q->rows;
      }
    }
  } catch (const std::exception& e) {
    return std::string("RuntimeError: ") + e.what();
  } catch (...) {
    return "RuntimeError: unknown error";
  }
  return "";
}

void Engine::book_batch(Replica& rep, int r, const std::vector<std::shared_ptr<Request>>& batch,
                        double t0, double t1, const std::string& err) {
  int64_t rows = 0;
  for (auto& q : batch) rows += q->rows;
  --running_;
  rep.busy = false;
  if (!batch.empty()) {
    for (Counts* s : {static_cast<Counts*>(&rep.st), &overall_}) {
      ++s->counts[kBatches];
      s->counts[kRequests] += batch.size();
      s->counts[kRows] += uint64_t(rows);
    }
    rep.st.batch.add(double(rows));
    rep.st.compute.add(t1 - t0);
    const double d = 0.98;
    rep.cost_n = d * rep.cost_n + 1;
    rep.cost_b = d * rep.cost_b + double(rows);
    rep.cost_bb = d * rep.cost_bb + double(rows) * double(rows);
    rep.cost_t = d * rep.cost_t + (t1 - t0);
    rep.cost_bt = d * rep.cost_bt + double(rows) * (t1 - t0);
    if (err.empty()) {
      rep.consecutive = 0;
      if (sample_.empty()) sample_.assign(batch[0]->x.begin(), batch[0]->x.begin() + in_floats_);
      rep.st.counts[kCompleted] += batch.size();
      for (auto& q : batch) {
        rep.st.queue.add(q->t_start - q->t_submit);
        rep.st.latency.add(t1 - q->t_submit);
        finish(q, Status::Ok, "");
      }
    } else {
      ++rep.consecutive;
      ++rep.st.counts[kFailures];
      ++overall_.counts[kFailures];
      if (rep.consecutive >= opt_.evict_after && rep.in_service) {
        rep.in_service = false;
        --n_in_;
        rep.probe_at = now_seconds() + opt_.probe_interval;
        ++rep.st.counts[kEvictions];
        ++overall_.counts[kEvictions];
        work_cv_.notify_all();  // retries it failed may now run on the others
      }
      const bool serving = n_in_ > 0;
      const double tnow = now_seconds();
      for (auto& q : batch) {
        ++q->attempts;
        q->failed_on |= uint64_t(1) << r;
        if (tnow >= q->deadline) {
          expire(q, tnow);
        } else if (q->attempts > opt_.max_retries || stopping_ || !serving) {
          std::string who;
          for (size_t i = 0; i < reps_.size(); ++i)
            if (q->failed_on & (uint64_t(1) << i)) who += (who.empty() ? "" : ", ") + std::to_string(i);
          finish(q, Status::ReplicaFailed,
                 "failed on replica(s) [" + who + "] in " + std::to_string(q->attempts) +
                     " tries: " + err);
        } else {
          ++rep.st.counts[kRetries];
          ++overall_.counts[kRetries];
          push(q, true);
          add_deadline(q);  // (again, for a queued retry: the reaper skips stale entries)
          work_cv_.notify_all();
        }
      }
      if (!serving)
        drop_queued(Status::ReplicaFailed, "no replica is in service (all failed repeatedly); last error: " + err);
    }
  }
}

void Engine::work(int r) {
  Replica& rep = *reps_[r];
  Buffers buf;
  std::vector<std::shared_ptr<Request>> batch, more, expired;
  std::unique_lock<std::mutex> lk(mu_);
  for (;;) {
    if (stopping_) return;
    if (closing_ && queued_ == 0 && running_ == 0) return;
    if (paused_ || rep.busy) {  // busy here: a caller runs its request on it (inline)
      if (queued_ && !paused_) work_cv_.notify_one();  // pass on a wake-up it cannot use
      rep.held_wait = true;
      rep.wake.wait(lk);
      rep.held_wait = false;
      continue;
    }
    double now = now_seconds();
    if (!rep.in_service) {
      if (now >= rep.probe_at && !closing_) {
        lk.unlock();
        const bool ok = probe(rep);
        lk.lock();
        ++rep.st.counts[kProbes];
        ++overall_.counts[kProbes];
        if (ok) {
          rep.in_service = true;
          ++n_in_;
          rep.consecutive = sample_.empty() ? opt_.evict_after - 1 : 0;
          ++rep.st.counts[kRecoveries];
          ++overall_.counts[kRecoveries];
          work_cv_.notify_all();
        } else {
          rep.probe_at = now_seconds() + opt_.probe_interval;
        }
        continue;
      }
      if (queued_) work_cv_.notify_one();  // pass on a wake-up it cannot use
      if (closing_)
        rep.wake.wait_for(lk, std::chrono::milliseconds(50));
      else
        rep.wake.wait_for(lk, span(rep.probe_at - now));
      continue;
    }
    expired.clear();
    batch = take(r, rep.cap, true, now, expired);
    if (batch.empty()) {
      if (!to_signal_.empty()) {
        flush(lk);
        continue;
      }
      work_cv_.wait(lk);
      continue;
    }
    rep.busy = true;
    ++running_;
    int64_t rows = 0;
    for (auto& q : batch) rows += q->rows;
    // Fill only while other requests are in flight, in slices no longer than this
    // replica's per-batch cost, never while another replica idles (see balancer.py).
    const double fixed = fixed_cost(rep);
    if (rows < rep.cap && opt_.max_delay > 0 && pending_ > int64_t(batch.size()) &&
        fixed >= 2 * gap_ && !other_idle(r)) {
      double end = kNever;
      for (auto& q : batch) end = std::min({end, q->t_submit + opt_.max_delay, q->deadline});
      // Natively an arrival wakes the filling worker at once (no GIL to thrash), so
      // the batch runs as soon as `fixed` passes without one.
      rep.filling = true;
      ++filling_;
      while (rows < rep.cap && !closing_) {
        now = now_seconds();
        if (now >= end) break;
        const double last = last_arrival_;
        rep.wake.wait_for(lk, span(std::min(end - now, fixed)));
        more = take(r, rep.cap - rows, false, now_seconds(), expired);
        for (auto& q : more) rows += q->rows;
        batch.insert(batch.end(), more.begin(), more.end());
        if ((more.empty() && last_arrival_ == last) || other_idle(r)) break;
      }
      rep.filling = false;
      --filling_;
    }
    // Deadlines again right before compute: never computed late.
    now = now_seconds();
    size_t n_live = 0;
    for (auto& q : batch) {
      if (now >= q->deadline) {
        expire(q, now);
      } else {
        if (q->t_start < 0) q->t_start = now;
        batch[n_live++] = q;
      }
    }
    batch.resize(n_live);
    const bool fail = !batch.empty() && rep.inject > 0;
    if (fail) --rep.inject;
    flush(lk);
    lk.unlock();

    std::string err;
    const double t0 = now_seconds();
    if (!batch.empty()) err = run_batch(rep, batch, fail, buf);
    const double t1 = now_seconds();
    lk.lock();
    book_batch(rep, r, batch, t0, t1, err);
    if (closing_) {
      work_cv_.notify_all();
      for (auto& o : reps_) o->wake.notify_all();
    }
    flush(lk);
  }
}

void Engine::reap() {
  std::unique_lock<std::mutex> lk(mu_);
  while (!joined_) {
    const double now = now_seconds();
    bool any = false;
    while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
      std::shared_ptr<Request> q = deadlines_.begin()->second.lock();
      deadlines_.erase(deadlines_.begin());
      if (q && q->state == Request::Queued) {
        --queued_;  // its lane entry is dropped lazily
        expire(q, now);
        any = true;
      }
    }
    if (any) {
      flush(lk);
      continue;
    }
    if (deadlines_.empty())
      reap_cv_.wait(lk);
    else
      reap_cv_.wait_for(lk, span(deadlines_.begin()->first - now));
  }
}

void Engine::close(bool drain) {
  {
    std::unique_lock<std::mutex> lk(mu_);
    if (all_joined_) return;
    const bool first = !closer_;
    closer_ = true;
    closing_ = true;
    paused_ = false;
    if (!drain && !stopping_) {
      stopping_ = true;
      drop_queued(Status::Closed, "closed (drain=False) before this request ran");
    }
    work_cv_.notify_all();
    for (auto& r : reps_) r->wake.notify_all();
    flush(lk);
    if (!first) {  // another thread joins the threads: wait until every one is joined
      done_cv_.wait(lk, [this] { return all_joined_; });
      return;
    }
  }
  for (auto& r : reps_)
    if (r->thread.joinable() && r->thread.get_id() != std::this_thread::get_id()) r->thread.join();
  {
    std::unique_lock<std::mutex> lk(mu_);
    // none queued, unless every worker stopped with work queued
    drop_queued(Status::Closed, "closed before this request ran");
    joined_ = true;
    reap_cv_.notify_all();
    done_cv_.notify_all();
    flush(lk);
  }
  if (reaper_.joinable()) reaper_.join();
  // Only now may another close() return (and the engine be destroyed): every
  // std::thread is joined, none is destroyed joinable.
  std::lock_guard<std::mutex> g(mu_);
  all_joined_ = true;
  done_cv_.notify_all();
}

std::vector<std::shared_ptr<Request>> Engine::completed(double seconds) {
  std::unique_lock<std::mutex> lk(mu_);
  if (completed_.empty() && !joined_)
    done_cv_.wait_for(lk, span(seconds),
                      [this] { return !completed_.empty() || joined_; });
  std::vector<std::shared_ptr<Request>> out(completed_.begin(), completed_.end());
  completed_.clear();
  return out;
}

Engine::Snapshot Engine::stats() {
  std::lock_guard<std::mutex> g(mu_);
  Snapshot s;
  s.overall = overall_;
  for (auto& r : reps_) {
    s.replicas.push_back(r->st);
    s.in_service.push_back(r->in_service ? 1 : 0);
  }
  s.submitted = submitted_;
  s.overloaded = overloaded_;
  s.queued = queued_;
  s.running = running_;
  s.pending = pending_;
  return s;
}

void Engine::set_paused(bool paused) {
  std::lock_guard<std::mutex> g(mu_);
  paused_ = paused;
  work_cv_.notify_all();
  for (auto& r : reps_) r->wake.notify_all();
}

void Engine::inject_failures(int r, int n) {
  std::lock_guard<std::mutex> g(mu_);
  reps_.at(size_t(r))->inject = n;
}

}  // namespace serve
}  // namespace pyrt
