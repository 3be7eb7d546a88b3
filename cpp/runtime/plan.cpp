// Plan building, buffer planning by liveness, and the executor.
#include "plan.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <system_error>

#include "parallel.h"
#include "steps.h"

namespace pyrt {

namespace {

constexpr size_t kAlign = 64;
// Arenas bigger than this are freed after a run instead of going back to the pool.
constexpr size_t kKeepArenaBytes = size_t(1) << 30;

size_t checked_mul(size_t a, size_t b, const char* what) {
  size_t r;
  if (__builtin_mul_overflow(a, b, &r)) throw SizeError(std::string(what) + ": size overflows");
  return r;
}
size_t checked_add(size_t a, size_t b, const char* what) {
  size_t r;
  if (__builtin_add_overflow(a, b, &r)) throw SizeError(std::string(what) + ": size overflows");
  return r;
}
size_t align_up(size_t n) { return checked_add(n, kAlign - 1, "buffer") / kAlign * kAlign; }

}  // namespace

double step_ns(Isa isa, double macs, double bytes) {
  // Nanoseconds per multiply-add (scalar, AVX2, AVX-512) and per byte on one thread,
  // fitted to the single-thread times of every step of small models (MLPs, the digits
  // CNNs, a MobileNetV2-style net at 96x96) at batches 1-64 on this project's 2-vCPU
  // Sapphire Rapids guest: bench/latency.py --calibrate.
  static constexpr double kMacNs[kNumIsa] = {0.25, 0.019, 0.0125};
  static constexpr double kByteNs = 0.009;
  const int i = static_cast<int>(isa);
  return macs * kMacNs[i >= 0 && i < kNumIsa ? i : 0] + bytes * kByteNs;
}

namespace {
std::atomic<double>& min_parallel_ref() {
  static std::atomic<double> ns{[] {
    const char* p = std::getenv("PYRUNTIME_MIN_PARALLEL_US");
    char* end = nullptr;
    const double us = p ? std::strtod(p, &end) : 0.0;
    return p && end != p && us >= 0 ? us * 1e3 : 5000.0;
  }()};
  return ns;
}
}  // namespace

double min_parallel_ns() { return min_parallel_ref().load(std::memory_order_relaxed); }
void set_min_parallel_ns(double ns) { min_parallel_ref().store(ns >= 0 ? ns : 0, std::memory_order_relaxed); }

Plan::Plan(const KernelTable& kt, int threads) : kt_(kt), threads_(threads < 1 ? 1 : threads) {
  // Start the workers now rather than in the first run (if the OS refuses threads, runs
  // use the workers there are).
  if (threads_ > 1) {
    try {
      ThreadPool::shared().reserve(threads_ - 1);
    } catch (const std::system_error&) {
    }
  }
}

void Plan::check_value(int v) const {
  if (v < 0 || static_cast<size_t>(v) >= values_.size())
    throw std::invalid_argument("plan: unknown value id " + std::to_string(v));
}

int Plan::add_value(int64_t per_sample) {
  if (final_) throw std::logic_error("plan is finalized");
  if (per_sample < 0) throw std::invalid_argument("plan: negative value size");
  if (static_cast<uint64_t>(per_sample) > kMemoryCap / sizeof(float))
    throw SizeError("plan: a value of " + std::to_string(per_sample) +
                    " floats per sample is more than the memory cap");
  Value v;
  v.per_sample = per_sample;
  values_.push_back(std::move(v));
  return static_cast<int>(values_.size() - 1);
}

int Plan::add_input(int64_t per_sample) {
  const int v = add_value(per_sample);
  values_[v].kind = ValueKind::Input;
  values_[v].io_index = static_cast<int>(inputs_.size());
  inputs_.push_back(v);
  return v;
}

int Plan::add_const(const float* data, int64_t n) {
  const int v = add_value(n);
  values_[v].kind = ValueKind::Const;
  values_[v].data = AlignedBuffer(static_cast<size_t>(n) * sizeof(float), 64);
  if (n) std::memcpy(values_[v].data.get(), data, static_cast<size_t>(n) * sizeof(float));
  return v;
}

int Plan::add_alias(int src) {
  check_value(src);
  const int v = add_value(values_[src].per_sample);
  values_[v].alias_of = root(src);
  return v;
}

int Plan::root(int v) const {
  while (values_[v].alias_of >= 0) v = values_[v].alias_of;
  return v;
}

void Plan::add_step(std::unique_ptr<Step> s) {
  if (final_) throw std::logic_error("plan is finalized");
  for (int v : s->reads) check_value(v);
  for (int v : s->writes) {
    check_value(v);
    if (values_[v].kind == ValueKind::Input || values_[v].kind == ValueKind::Const ||
        values_[v].alias_of >= 0)
      throw std::invalid_argument("plan: a step writes an input, constant or alias");
  }
  steps_.push_back(std::move(s));
}

void Plan::mark_output(int v) {
  check_value(v);
  outputs_.push_back(v);
}

void Plan::finalize() {
  if (final_) return;
  const int nv = static_cast<int>(values_.size());
  // Who writes what: every arena value must be written by exactly one step.
  std::vector<int> writer(nv, -1);
  for (size_t s = 0; s < steps_.size(); ++s)
    for (int v : steps_[s]->writes) {
      if (writer[v] >= 0) throw std::invalid_argument("plan: value written twice");
      writer[v] = static_cast<int>(s);
    }
  // Graph outputs: written straight into the caller's array when a step produces the
  // value itself and nothing aliases it; otherwise copied at the end.
  std::vector<int> alias_count(nv, 0);
  for (int v = 0; v < nv; ++v)
    if (values_[v].alias_of >= 0) alias_count[values_[v].alias_of]++;
  for (size_t i = 0; i < outputs_.size(); ++i) {
    const int v = outputs_[i];
    Value& val = values_[v];
    if (val.kind == ValueKind::Arena && val.alias_of < 0 && alias_count[v] == 0 && writer[v] >= 0) {
      val.kind = ValueKind::Output;
      val.io_index = static_cast<int>(i);
    } else {
      const int64_t per_sample = val.per_sample;  // add_value may reallocate values_
      const int o = add_value(per_sample);
      values_[o].kind = ValueKind::Output;
      values_[o].io_index = static_cast<int>(i);
      add_step(make_copy_step(v, o, per_sample));
      outputs_[i] = o;
    }
  }
  // In-place reuse: the output of an elementwise step takes over an arena input's buffer
  // when that buffer (with all its aliases) is read for the last time by this step.
  const int nv2 = static_cast<int>(values_.size());
  const int ns = static_cast<int>(steps_.size());
  std::vector<int> last(nv2, -1), first(nv2, ns);
  auto note_read = [&](int v, int s) {
    const int r = root(v);
    last[r] = std::max(last[r], s);
    first[r] = std::min(first[r], s);
  };
  for (int s = 0; s < ns; ++s) {
    for (int v : steps_[s]->reads) note_read(v, s);
    for (int v : steps_[s]->writes) note_read(v, s);
  }
  for (int s = 0; s < ns; ++s) {
    Step& st = *steps_[s];
    if (st.writes.size() != 1) continue;
    const int w = st.writes[0];
    Value& wv = values_[w];
    if (wv.kind != ValueKind::Arena || wv.alias_of >= 0) continue;
    for (int idx : st.inplace_candidates) {
      const int r = root(st.reads[idx]);
      if (values_[r].kind != ValueKind::Arena || values_[r].per_sample != wv.per_sample) continue;
      if (last[r] != s) continue;
      // w joins r's group; the group lives until w's last use.
      for (int v = 0; v < static_cast<int>(values_.size()); ++v)
        if (values_[v].alias_of == w) values_[v].alias_of = r;
      wv.alias_of = r;
      last[r] = std::max(last[r], last[w]);
      first[r] = std::min(first[r], first[w]);
      last[w] = -1;
      first[w] = ns;
      break;
    }
  }
  live_first_ = first;
  live_last_ = last;
  scratch_floats_ = 0;
  for (auto& st : steps_) scratch_floats_ = std::max(scratch_floats_, st->scratch_floats());
  final_ = true;
}

std::shared_ptr<const Plan::Layout> Plan::plan_layout(ptrdiff_t batch) const {
  auto lay = std::make_shared<Layout>();
  const int nv = static_cast<int>(values_.size());
  lay->offset.assign(nv, 0);
  struct Item { int v; size_t size; };
  std::vector<Item> items;
  // Inputs and outputs live outside the arena but must fit the same cap.
  for (const Value& v : values_) {
    if (v.kind == ValueKind::Const) continue;
    const size_t bytes = checked_mul(checked_mul(static_cast<size_t>(v.per_sample),
                                                 static_cast<size_t>(batch), "value"),
                                     sizeof(float), "value");
    if (bytes > kMemoryCap)
      throw SizeError("batch " + std::to_string(batch) + " makes a tensor of " +
                      std::to_string(bytes >> 20) + " MiB, more than the cap of " +
                      std::to_string(kMemoryCap >> 20) + " MiB");
  }
  for (int v = 0; v < nv; ++v) {
    if (values_[v].kind != ValueKind::Arena || values_[v].alias_of >= 0) continue;
    if (live_last_[v] < 0) continue;  // never used
    const size_t n = checked_mul(static_cast<size_t>(values_[v].per_sample),
                                 static_cast<size_t>(batch), "activation buffer");
    items.push_back({v, align_up(checked_mul(n, sizeof(float), "activation buffer"))});
  }
  std::stable_sort(items.begin(), items.end(),
                   [](const Item& a, const Item& b) { return a.size > b.size; });
  // Greedy: largest first, at the lowest offset that overlaps no placed buffer whose
  // lifetime intersects.
  std::vector<Item> placed;
  size_t total = 0;
  for (const Item& it : items) {
    std::vector<std::pair<size_t, size_t>> busy;
    for (const Item& p : placed)
      if (!(live_last_[p.v] < live_first_[it.v] || live_last_[it.v] < live_first_[p.v]))
        busy.emplace_back(lay->offset[p.v], lay->offset[p.v] + p.size);
    std::sort(busy.begin(), busy.end());
    size_t off = 0;
    for (const auto& [b, e] : busy) {
      if (off + it.size <= b) break;
      off = std::max(off, e);
    }
    lay->offset[it.v] = off;
    total = std::max(total, checked_add(off, it.size, "arena"));
    placed.push_back(it);
  }
  lay->scratch_offset = total;
  total = checked_add(total, align_up(checked_mul(scratch_floats_, sizeof(float), "scratch")), "arena");
  lay->total = total;
  if (total > kMemoryCap)
    throw SizeError("batch " + std::to_string(batch) + " needs " + std::to_string(total >> 20) +
                    " MiB of working memory, more than the cap of " +
                    std::to_string(kMemoryCap >> 20) + " MiB");
  return lay;
}

std::shared_ptr<const Plan::Layout> Plan::layout_for(ptrdiff_t batch) const {
  {
    std::lock_guard<std::mutex> g(mu_);
    auto it = layouts_.find(batch);
    if (it != layouts_.end()) return it->second;
  }
  auto lay = plan_layout(batch);  // outside the lock: may be slow or throw
  std::lock_guard<std::mutex> g(mu_);
  if (layouts_.size() >= 256) layouts_.clear();  // bound the cache for adversarial batch mixes
  layouts_.emplace(batch, lay);
  return lay;
}

size_t Plan::arena_bytes(ptrdiff_t batch) const {
  if (!final_) throw std::logic_error("plan is not finalized");
  if (batch <= 0) return 0;
  return layout_for(batch)->total;
}

void Plan::run(ptrdiff_t batch, const float* const* inputs, float* const* outputs,
               std::vector<double>* step_seconds) const {
  if (!final_) throw std::logic_error("plan is not finalized");
  if (batch < 0) throw std::invalid_argument("negative batch");
  if (batch == 0) return;
  // Checked once here so no step can overflow: every buffer is batch * per_sample floats.
  for (const Value& v : values_)
    if (v.kind != ValueKind::Const)
      checked_mul(checked_mul(static_cast<size_t>(v.per_sample), static_cast<size_t>(batch), "value"),
                  sizeof(float), "value");
  const auto lay = layout_for(batch);

  std::unique_ptr<AlignedBytes> arena;
  {
    std::lock_guard<std::mutex> g(mu_);
    if (!arenas_.empty()) {
      arena = std::move(arenas_.back());
      arenas_.pop_back();
    }
  }
  if (!arena) arena = std::make_unique<AlignedBytes>();
  arena->reserve(lay->total);

  const size_t nv = values_.size();
  float* small[64];
  std::vector<float*> big;
  float** ptr = small;
  if (nv > 64) {
    big.resize(nv);
    ptr = big.data();
  }
  unsigned char* base = arena->get();
  for (size_t v = 0; v < nv; ++v) {
    const Value& r = values_[root(static_cast<int>(v))];
    switch (r.kind) {
      case ValueKind::Arena: ptr[v] = reinterpret_cast<float*>(base + lay->offset[root(static_cast<int>(v))]); break;
      case ValueKind::Input: ptr[v] = const_cast<float*>(inputs[r.io_index]); break;
      case ValueKind::Output: ptr[v] = outputs[r.io_index]; break;
      case ValueKind::Const: ptr[v] = r.data.as<float>(); break;
    }
  }
  ExecCtx c{batch, threads_, kt_.isa, ptr, reinterpret_cast<float*>(base + lay->scratch_offset)};
  if (step_seconds) {
    step_seconds->assign(steps_.size(), 0.0);
    for (size_t i = 0; i < steps_.size(); ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      steps_[i]->run(c);
      (*step_seconds)[i] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
  } else {
    for (const auto& st : steps_) st->run(c);
  }

  std::lock_guard<std::mutex> g(mu_);
  if (arena->capacity() <= kKeepArenaBytes) arenas_.push_back(std::move(arena));
}

std::vector<StepInfo> Plan::summary() const {
  std::vector<StepInfo> out;
  for (const auto& st : steps_) out.push_back({st->op, st->kernel, st->reads, st->writes});
  return out;
}

std::vector<Work> Plan::step_work(ptrdiff_t batch) const {
  std::vector<Work> out;
  for (const auto& st : steps_) out.push_back(st->work(batch));
  return out;
}

size_t Plan::packed_weight_bytes() const {
  size_t n = 0;
  for (const Value& v : values_)
    if (v.kind == ValueKind::Const) n += v.data.size();
  for (const auto& st : steps_) n += st->weight_bytes();
  return n;
}

}  // namespace pyrt
