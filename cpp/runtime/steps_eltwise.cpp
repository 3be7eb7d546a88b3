// Elementwise and data-movement steps: copy, layout transpose, broadcast add,
// activation, softmax, per-channel affine (unfused BatchNormalization).
#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "parallel.h"
#include "steps.h"

namespace pyrt {
namespace {

// n elements of `ops` operations each, reading and writing `bytes` per element.
Work elementwise(double n, double ops, double bytes) { return {n * ops, n * bytes}; }

void check_elt(const EltwiseConfig& e) {
  if (!e.add || !e.activation || !e.softmax)
    throw std::logic_error("the f32_eltwise entry of the kernel table is empty");
}

struct CopyStep final : Step {
  int64_t per_sample;
  Work work(ptrdiff_t batch) const override {
    return elementwise(double(batch) * double(per_sample), 0.0, 8.0);
  }
  void run(const ExecCtx& c) const override {
    const float* x = c.ptr[reads[0]];
    float* y = c.ptr[writes[0]];
    if (x == y) return;
    std::memcpy(y, x, sizeof(float) * size_t(c.batch) * size_t(per_sample));
  }
};

struct TransposeStep final : Step {
  void (*transpose)(ptrdiff_t, ptrdiff_t, const float*, ptrdiff_t, float*, ptrdiff_t);
  int threads;
  int64_t R, S, images;
  Work work(ptrdiff_t batch) const override {
    return elementwise(double(batch * images) * double(R * S), 0.0, 8.0);
  }
  void run(const ExecCtx& c) const override {
    const float* x = c.ptr[reads[0]];
    float* y = c.ptr[writes[0]];
    // Tasks are contiguous blocks of one image's R x S matrix, split along its longer
    // side: rows (each task reads whole input rows and writes long segments of every
    // output row) or columns (reads long segments, writes whole output rows). Small
    // interleaved pieces made the two threads fetch each other's cache lines: an
    // NHWC -> NCHW 112x112x32 transpose took 3x longer on 2 threads than on 1.
    const ptrdiff_t nimg = c.batch * images;
    const int t = threads_for(threads, c.isa, work(c.batch));
    // About 4 tasks per thread (dynamic hand-out), each of >= 16K elements, and blocks of
    // at most 64K elements (256 KiB) also on one thread: the kernel walks a block once per
    // 8-column strip, so a block must stay in L2 (a whole 112x112x96 NHWC image walked
    // 12 times from memory took 0.74 ms against 0.40 ms in blocks).
    const ptrdiff_t by_threads = t <= 1 ? 1 : std::clamp<ptrdiff_t>(
        ceil_div(4 * t, nimg), 1, std::max<ptrdiff_t>(1, R * S / 16384));
    const ptrdiff_t per_img = std::max(by_threads, ceil_div(R * S, 65536));
    const bool by_rows = R >= S;
    // Row ranges are multiples of 16 (64-byte output segments); column ranges of 8.
    const ptrdiff_t unit = by_rows ? 16 : 8, len = by_rows ? R : S;
    const ptrdiff_t step = ceil_div(ceil_div(len, per_img), unit) * unit;
    const ptrdiff_t parts = ceil_div(len, step);
    parallel_for(t, nimg * parts, [&](ptrdiff_t task, int) {
      const ptrdiff_t b = task / parts, i = task % parts;
      const ptrdiff_t a0 = i * step, a1 = std::min(len, a0 + step);
      const ptrdiff_t r0 = by_rows ? a0 : 0, r1 = by_rows ? a1 : R;
      const ptrdiff_t s0 = by_rows ? 0 : a0, s1 = by_rows ? S : a1;
      transpose(r1 - r0, s1 - s0, x + b * R * S + r0 * S + s0, S, y + b * R * S + s0 * R + r0, R);
    });
  }
};

struct AddStep final : Step {
  void (*add)(ptrdiff_t, const float*, ptrdiff_t, const float*, ptrdiff_t, float*);
  int threads;
  std::vector<int64_t> dims, sa, sb;  // dims[0] == -1: the batch

  Work work(ptrdiff_t batch) const override {
    double n = 1;
    for (int64_t d : dims) n *= d < 0 ? double(batch) : double(d);
    return elementwise(n, 1.0, 12.0);
  }

  void run(const ExecCtx& c) const override {
    const float* a = c.ptr[reads[0]];
    const float* b = c.ptr[reads[1]];
    float* y = c.ptr[writes[0]];
    // Substitute the batch, drop size-1 dims, merge dims that are contiguous for all three.
    ptrdiff_t d[16], xa[16], xb[16];
    int r = 0;
    for (size_t i = 0; i < dims.size(); ++i) {
      const ptrdiff_t n = dims[i] < 0 ? c.batch : dims[i];
      if (n == 1) continue;
      d[r] = n; xa[r] = sa[i]; xb[r] = sb[i]; ++r;
    }
    if (r == 0) { d[0] = 1; xa[0] = xb[0] = 0; r = 1; }
    // Element strides of y (contiguous) and merging from the innermost dim outwards.
    int m = r - 1;
    ptrdiff_t D[16], A[16], Bs[16];
    D[m] = d[r - 1]; A[m] = xa[r - 1]; Bs[m] = xb[r - 1];
    for (int i = r - 2; i >= 0; --i) {
      if (xa[i] == A[m] * D[m] && xb[i] == Bs[m] * D[m]) {
        D[m] *= d[i];  // y is contiguous, so its strides always merge
      } else {
        --m;
        D[m] = d[i]; A[m] = xa[i]; Bs[m] = xb[i];
      }
    }
    const int nd = r - m;
    const ptrdiff_t* dd = D + m;
    const ptrdiff_t* da = A + m;
    const ptrdiff_t* db = Bs + m;
    const ptrdiff_t inner = dd[nd - 1];
    const bool vec = (da[nd - 1] == 0 || da[nd - 1] == 1) && (db[nd - 1] == 0 || db[nd - 1] == 1);
    ptrdiff_t outer = 1;
    for (int i = 0; i < nd - 1; ++i) outer *= dd[i];
    const int t = threads_for(threads, c.isa, work(c.batch));
    const ptrdiff_t tasks = std::min<ptrdiff_t>(outer, t);
    parallel_for(t, tasks, [&](ptrdiff_t task, int) {
      const ptrdiff_t o0 = task * outer / tasks, o1 = (task + 1) * outer / tasks;
      // Multi-index of o0 over the outer dims.
      ptrdiff_t idx[16];
      ptrdiff_t rem = o0, oa = 0, ob = 0;
      for (int i = nd - 2; i >= 0; --i) {
        idx[i] = rem % dd[i];
        rem /= dd[i];
        oa += idx[i] * da[i];
        ob += idx[i] * db[i];
      }
      for (ptrdiff_t o = o0; o < o1; ++o) {
        float* yo = y + o * inner;
        if (vec) {
          add(inner, a + oa, da[nd - 1], b + ob, db[nd - 1], yo);
        } else {
          for (ptrdiff_t i = 0; i < inner; ++i) yo[i] = a[oa + i * da[nd - 1]] + b[ob + i * db[nd - 1]];
        }
        for (int i = nd - 2; i >= 0; --i) {  // odometer
          oa += da[i];
          ob += db[i];
          if (++idx[i] < dd[i]) break;
          oa -= idx[i] * da[i];
          ob -= idx[i] * db[i];
          idx[i] = 0;
        }
      }
    });
  }
};

struct ActStep final : Step {
  void (*fn)(ptrdiff_t, const float*, float*, Act, float, float);
  int threads;
  int64_t per_sample;
  Act act;
  float lo, hi;
  Work work(ptrdiff_t batch) const override {
    // sigmoid, tanh and gelu cost ~10 times a relu per element
    return elementwise(double(batch) * double(per_sample),
                       act == Act::Relu || act == Act::Clip ? 1.0 : 10.0, 8.0);
  }
  void run(const ExecCtx& c) const override {
    const float* x = c.ptr[reads[0]];
    float* y = c.ptr[writes[0]];
    const ptrdiff_t n = c.batch * per_sample;
    const ptrdiff_t tasks = threads_for(threads, c.isa, work(c.batch));
    parallel_for(threads, tasks, [&](ptrdiff_t t, int) {
      const ptrdiff_t i0 = (t * n / tasks) / 16 * 16;
      const ptrdiff_t i1 = t + 1 == tasks ? n : ((t + 1) * n / tasks) / 16 * 16;
      fn(i1 - i0, x + i0, y + i0, act, lo, hi);
    });
  }
};

struct SoftmaxStep final : Step {
  void (*fn)(ptrdiff_t, ptrdiff_t, const float*, float*);
  int threads;
  int64_t rows, cols;
  Work work(ptrdiff_t batch) const override {
    return elementwise(double(batch * rows) * double(cols), 10.0, 8.0);
  }
  void run(const ExecCtx& c) const override {
    const float* x = c.ptr[reads[0]];
    float* y = c.ptr[writes[0]];
    const ptrdiff_t R = c.batch * rows;
    const ptrdiff_t tasks = std::min<ptrdiff_t>(R, threads_for(threads, c.isa, work(c.batch)));
    parallel_for(threads, tasks, [&](ptrdiff_t t, int) {
      const ptrdiff_t r0 = t * R / tasks, r1 = (t + 1) * R / tasks;
      fn(r1 - r0, cols, x + r0 * cols, y + r0 * cols);
    });
  }
};

struct AffineStep final : Step {
  int threads;
  int64_t rows, C;
  std::vector<float> scale, bias;
  Work work(ptrdiff_t batch) const override {
    return elementwise(double(batch * rows) * double(C), 1.0, 8.0);
  }
  void run(const ExecCtx& c) const override {
    const float* x = c.ptr[reads[0]];
    float* y = c.ptr[writes[0]];
    const ptrdiff_t R = c.batch * rows;
    const ptrdiff_t tasks = std::min<ptrdiff_t>(R, threads_for(threads, c.isa, work(c.batch)));
    const float* s = scale.data();
    const float* b = bias.data();
    parallel_for(threads, tasks, [&](ptrdiff_t t, int) {
      const ptrdiff_t r0 = t * R / tasks, r1 = (t + 1) * R / tasks;
      for (ptrdiff_t r = r0; r < r1; ++r) {
        const float* xr = x + r * C;
        float* yr = y + r * C;
        for (ptrdiff_t j = 0; j < C; ++j) yr[j] = xr[j] * s[j] + b[j];
      }
    });
  }
};

}  // namespace

std::unique_ptr<Step> make_copy_step(int x, int y, int64_t per_sample) {
  auto s = new_step<CopyStep>("copy", "memcpy", {x}, {y});
  s->per_sample = per_sample;
  return s;
}

std::unique_ptr<Step> make_transpose_step(const KernelTable& kt, int threads, int x, int y,
                                          int64_t R, int64_t S, int64_t images) {
  if (!kt.x32_transpose.transpose) throw std::logic_error("the x32_transpose entry of the kernel table is empty");
  auto s = new_step<TransposeStep>("transpose", kt.x32_transpose.name, {x}, {y});
  s->transpose = kt.x32_transpose.transpose;
  s->threads = threads;
  s->R = R;
  s->S = S;
  s->images = images;
  return s;
}

std::unique_ptr<Step> make_add_step(const KernelTable& kt, int threads, int a, int b, int y,
                                    std::vector<int64_t> dims, std::vector<int64_t> sa,
                                    std::vector<int64_t> sb, bool a_full, bool b_full) {
  check_elt(kt.f32_eltwise);
  if (dims.empty() || dims.size() > 16 || sa.size() != dims.size() || sb.size() != dims.size())
    throw std::invalid_argument("add: dims and strides must have the same rank (1..16)");
  auto s = new_step<AddStep>("add", kt.f32_eltwise.name, {a, b}, {y});
  s->add = kt.f32_eltwise.add;
  s->threads = threads;
  s->dims = std::move(dims);
  s->sa = std::move(sa);
  s->sb = std::move(sb);
  if (a_full) s->inplace_candidates.push_back(0);
  if (b_full) s->inplace_candidates.push_back(1);
  return s;
}

std::unique_ptr<Step> make_activation_step(const KernelTable& kt, int threads, int x, int y,
                                           int64_t per_sample, Act act, float lo, float hi) {
  check_elt(kt.f32_eltwise);
  auto s = new_step<ActStep>("activation", kt.f32_eltwise.name, {x}, {y});
  s->fn = kt.f32_eltwise.activation;
  s->threads = threads;
  s->per_sample = per_sample;
  s->act = act;
  s->lo = lo;
  s->hi = hi;
  s->inplace_candidates = {0};
  return s;
}

std::unique_ptr<Step> make_softmax_step(const KernelTable& kt, int threads, int x, int y,
                                        int64_t rows_per_sample, int64_t cols) {
  check_elt(kt.f32_eltwise);
  auto s = new_step<SoftmaxStep>("softmax", kt.f32_eltwise.name, {x}, {y});
  s->fn = kt.f32_eltwise.softmax;
  s->threads = threads;
  s->rows = rows_per_sample;
  s->cols = cols;
  s->inplace_candidates = {0};
  return s;
}

std::unique_ptr<Step> make_affine_step(int threads, int x, int y, int64_t rows_per_sample,
                                       int64_t C, std::vector<float> scale, std::vector<float> bias) {
  if (scale.size() != size_t(C) || bias.size() != size_t(C))
    throw std::invalid_argument("affine: scale and bias need one value per channel");
  auto s = new_step<AffineStep>("batchnorm", "affine_scalar", {x}, {y});
  s->threads = threads;
  s->rows = rows_per_sample;
  s->C = C;
  s->scale = std::move(scale);
  s->bias = std::move(bias);
  s->inplace_candidates = {0};
  return s;
}

}  // namespace pyrt
