// Pooling on uint8 values (steps_quant.h): max pool keeps the input's grid (max commutes
// with the monotonic dequantization, so it is exact), global average pool reads one grid
// and writes float.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "parallel.h"
#include "steps_quant.h"

namespace pyrt {
namespace {

// Max over the window's taps inside the image, NHWC uint8 rows of u8_stride(C) bytes,
// one task per output row.
struct QMaxPoolStep final : Step {
  ConvGeom geo;
  int threads = 1;
  Work work(ptrdiff_t batch) const override {
    const double P = double(batch * geo.images) * double(geo.OH * geo.OW);
    // a byte max is a sixteenth of a multiply-add's cost per element, or less
    return {P * double(geo.KH * geo.KW) * double(geo.C) / 16.0,
            double(batch * geo.images) * double(geo.H * geo.W + geo.OH * geo.OW) * double(geo.C)};
  }
  void run(const ExecCtx& c) const override {
    const ConvGeom& q = geo;
    const ptrdiff_t ld = u8_stride(q.C), rows = c.batch * q.images * q.OH;
    const uint8_t* x = reinterpret_cast<const uint8_t*>(c.ptr[reads[0]]);
    uint8_t* y = reinterpret_cast<uint8_t*>(c.ptr[writes[0]]);
    parallel_for(threads_for(threads, c.isa, work(c.batch)), rows, [&](ptrdiff_t r, int) {
      const ptrdiff_t im = r / q.OH, oh = r % q.OH;
      const uint8_t* img = x + im * q.H * q.W * ld;
      for (ptrdiff_t ow = 0; ow < q.OW; ++ow) {
        uint8_t* o = y + (r * q.OW + ow) * ld;
        std::memset(o, 0, size_t(q.C));  // a window always holds a tap (ONNX pads < kernel)
        for (ptrdiff_t kh = 0; kh < q.KH; ++kh) {
          const ptrdiff_t ih = oh * q.sh - q.pt + kh * q.dh;
          if (ih < 0 || ih >= q.H) continue;
          for (ptrdiff_t kw = 0; kw < q.KW; ++kw) {
            const ptrdiff_t iw = ow * q.sw - q.pl + kw * q.dw;
            if (iw < 0 || iw >= q.W) continue;
            const uint8_t* p = img + (ih * q.W + iw) * ld;
            for (ptrdiff_t ch = 0; ch < q.C; ++ch) o[ch] = std::max(o[ch], p[ch]);
          }
        }
      }
    });
  }
};

// y[image][c] = scale * (sum over pixels of x - HW * zp) / HW, float out; the sum is an
// exact integer (HW * 255 < 2^31).
struct QGlobalAvgPoolStep final : Step {
  int64_t HW = 0, C = 0, images = 0;
  QuantSpec in;
  int threads = 1;
  size_t scratch_floats() const override { return size_t(threads) * size_t(C); }
  Work work(ptrdiff_t batch) const override {
    const double n = double(batch * images) * double(HW) * double(C);
    return {n / 4.0, n};
  }
  void run(const ExecCtx& c) const override {
    const ptrdiff_t ld = u8_stride(C), imgs = c.batch * images;
    const uint8_t* x = reinterpret_cast<const uint8_t*>(c.ptr[reads[0]]);
    float* y = c.ptr[writes[0]];
    const int nt = threads_for(threads, c.isa, work(c.batch));
    const float mul = in.scale / float(HW);
    parallel_for(nt, imgs, [&](ptrdiff_t im, int tid) {
      int32_t* acc = reinterpret_cast<int32_t*>(c.scratch + size_t(tid) * size_t(C));
      std::fill(acc, acc + C, int32_t(-HW * in.zp));
      const uint8_t* img = x + im * HW * ld;
      for (ptrdiff_t p = 0; p < HW; ++p)
        for (ptrdiff_t ch = 0; ch < C; ++ch) acc[ch] += img[p * ld + ch];
      for (ptrdiff_t ch = 0; ch < C; ++ch) y[im * C + ch] = float(acc[ch]) * mul;
    });
  }
};

}  // namespace

std::unique_ptr<Step> make_qmaxpool_step(int threads, int x, int y, const ConvGeom& q) {
  auto s = new_step<QMaxPoolStep>("qmaxpool", "u8 max", {x}, {y});
  s->geo = q;
  s->threads = threads;
  return s;
}

std::unique_ptr<Step> make_qglobal_avgpool_step(int threads, int x, int y, int64_t HW, int64_t C,
                                                int64_t images, QuantSpec in) {
  if (!in.is_u8()) throw std::invalid_argument("qglobal_avgpool: the input must be uint8");
  if (HW <= 0 || HW > (int64_t(1) << 23))
    throw std::invalid_argument("qglobal_avgpool: pixels per image must be in [1, 2^23], got " +
                                std::to_string(HW));
  auto s = new_step<QGlobalAvgPoolStep>("qglobal_avgpool", "u8 sum", {x}, {y});
  s->HW = HW;
  s->C = C;
  s->images = images;
  s->in = in;
  s->threads = threads;
  return s;
}

}  // namespace pyrt
