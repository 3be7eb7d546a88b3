// The compiled CPU plan: values (per-sample sizes), steps (kernels with packed weights),
// buffer planning by liveness, and a thread-safe executor.
//
// A Plan is built once (add_* calls, then finalize()) and is then immutable; run() may be
// called from many threads at once. Each run checks an arena out of a pool, resolves value
// ids to pointers through a per-batch-size layout (cached), and executes the steps in order.
// Activations inside are NHWC per sample ([H, W, C]); the caller inserts the transposes.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "pyrt/kernels.h"
#include "aligned.h"

namespace pyrt {

// A size or shape that does not fit (overflow, or more memory than the cap).
struct SizeError : std::length_error {
  using std::length_error::length_error;
};

// Everything a step needs while it runs.
struct ExecCtx {
  ptrdiff_t batch;
  int threads;
  Isa isa;            // of the plan's kernels (the cost model's rates)
  float* const* ptr;  // value id -> pointer for this run
  float* scratch;     // per-run scratch, Step::scratch_floats() floats
};

// What a step does at a batch size: multiply-adds (or element operations) and bytes
// read and written. The cost model (parallel.h) turns it into an estimated time.
struct Work {
  double macs = 0, bytes = 0;
};

struct Step {
  virtual ~Step() = default;
  virtual void run(const ExecCtx& c) const = 0;
  virtual Work work(ptrdiff_t batch) const = 0;
  // Floats of scratch this step needs during a run (shared by all steps, not live across).
  virtual size_t scratch_floats() const { return 0; }
  virtual size_t weight_bytes() const { return 0; }  // packed weights owned by the step
  std::string op;      // short op name for plan summaries, e.g. "conv"
  std::string kernel;  // kernel name(s) used
  std::vector<int> reads, writes;
  // Indices into `reads` whose buffer may be reused for writes[0] (same size, elementwise).
  std::vector<int> inplace_candidates;
};

enum class ValueKind : int32_t { Arena = 0, Input = 1, Output = 2, Const = 3 };

struct Value {
  int64_t per_sample = 0;  // floats per sample (Const: total floats)
  ValueKind kind = ValueKind::Arena;
  int alias_of = -1;       // shares the buffer of this value (a root, alias_of == -1)
  int io_index = -1;       // input/output position
  AlignedBuffer data;      // Const only: per_sample floats
};

struct StepInfo {
  std::string op, kernel;
  std::vector<int> reads, writes;
};

class Plan {
 public:
  Plan(const KernelTable& kt, int threads);
  Plan(const Plan&) = delete;
  Plan& operator=(const Plan&) = delete;

  const KernelTable& kernels() const { return kt_; }
  int threads() const { return threads_; }

  // ---- building
  int add_value(int64_t per_sample);
  int add_input(int64_t per_sample);
  int add_const(const float* data, int64_t n);
  int add_alias(int src);  // a new value sharing src's buffer (free reshape)
  void add_step(std::unique_ptr<Step> s);
  void mark_output(int v);
  void finalize();
  int64_t per_sample(int v) const { return values_.at(v).per_sample; }
  bool is_const(int v) const { return values_.at(v).kind == ValueKind::Const; }
  const float* const_data(int v) const { return values_.at(v).data.as<float>(); }
  size_t num_inputs() const { return inputs_.size(); }
  size_t num_outputs() const { return outputs_.size(); }
  int64_t output_per_sample(size_t i) const { return values_[outputs_.at(i)].per_sample; }
  int64_t input_per_sample(size_t i) const { return values_[inputs_.at(i)].per_sample; }

  // ---- running (thread-safe after finalize)
  // inputs[i]: batch * input_per_sample(i) floats; outputs[i]: batch * output_per_sample(i).
  // When step_seconds is given, it receives the wall time of every step (profiling).
  void run(ptrdiff_t batch, const float* const* inputs, float* const* outputs,
           std::vector<double>* step_seconds = nullptr) const;
  // Working memory a run with this batch needs (bytes); throws SizeError past the cap.
  size_t arena_bytes(ptrdiff_t batch) const;

  std::vector<StepInfo> summary() const;
  std::vector<Work> step_work(ptrdiff_t batch) const;
  size_t packed_weight_bytes() const;

  static constexpr size_t kMemoryCap = size_t(1) << 36;  // 64 GiB of working memory

 private:
  struct Layout {
    std::vector<size_t> offset;  // per value root, bytes (Arena roots only)
    size_t scratch_offset = 0;
    size_t total = 0;
  };
  std::shared_ptr<const Layout> layout_for(ptrdiff_t batch) const;
  std::shared_ptr<const Layout> plan_layout(ptrdiff_t batch) const;
  int root(int v) const;
  void check_value(int v) const;

  const KernelTable& kt_;
  int threads_;
  bool final_ = false;
  std::vector<Value> values_;
  std::vector<std::unique_ptr<Step>> steps_;
  std::vector<int> inputs_, outputs_;
  // Liveness of arena roots, in step indices [first, last].
  std::vector<int> live_first_, live_last_;
  size_t scratch_floats_ = 0;

  mutable std::mutex mu_;
  mutable std::map<ptrdiff_t, std::shared_ptr<const Layout>> layouts_;
  mutable std::vector<std::unique_ptr<AlignedBytes>> arenas_;
};

}  // namespace pyrt
