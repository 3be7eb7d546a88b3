// Per-image spatial steps on NHWC: depthwise conv, max/avg pool, global average pool;
// and depthwise conv on NCHW planes. Threads split (image, output-row range) tasks.
#include <algorithm>
#include <stdexcept>

#include "aligned.h"
#include "parallel.h"
#include "steps.h"

namespace pyrt {
namespace {

// Row chunks per image so that there are enough tasks for the threads.
ptrdiff_t chunks_per_image(int threads, ptrdiff_t batch, ptrdiff_t OH) {
  if (threads <= 1 || batch >= 2 * threads) return 1;
  return std::max<ptrdiff_t>(1, std::min<ptrdiff_t>(OH, ceil_div(2 * threads, batch)));
}

// A window op over NHWC images: one operation per output element and tap.
Work window_work(const ConvGeom& g, ptrdiff_t batch) {
  const double nimg = double(batch * g.images);
  return {nimg * double(g.OH * g.OW * g.C) * double(g.KH * g.KW),
          4.0 * nimg * double(g.H * g.W * g.C + g.OH * g.OW * g.C)};
}

struct DwConvStep final : Step {
  DwConvConfig k;
  int threads;
  ConvGeom geo;
  AlignedBuffer packed;
  EpilogueSpec eps;
  size_t weight_bytes() const override { return packed.size(); }
  Work work(ptrdiff_t batch) const override { return window_work(geo, batch); }
  void run(const ExecCtx& c) const override {
    const float* x = c.ptr[reads[0]];
    float* y = c.ptr[writes[0]];
    const ptrdiff_t in_img = geo.H * geo.W * geo.C, out_img = geo.OH * geo.OW * geo.C;
    const ptrdiff_t nimg = c.batch * geo.images;
    const int nt = threads_for(threads, c.isa, work(c.batch));
    const ptrdiff_t cpi = chunks_per_image(nt, nimg, geo.OH);
    parallel_for(nt, nimg * cpi, [&](ptrdiff_t t, int) {
      const ptrdiff_t n = t / cpi, ch = t % cpi;
      const ptrdiff_t oh0 = ch * geo.OH / cpi, oh1 = (ch + 1) * geo.OH / cpi;
      Epilogue e = make_ep(eps, c, geo.C);
      if (e.residual) e.residual += n * out_img;
      DwConvArgs a{x + n * in_img, geo.H, geo.W, geo.C, packed.get(), geo.KH, geo.KW,
                   geo.sh, geo.sw, geo.pt, geo.pl, geo.dh, geo.dw,
                   y + n * out_img, geo.OH, geo.OW, &e};
      k.run(&a, oh0, oh1);
    });
  }
};

// Depthwise conv on NCHW planes (public layout in and out). Tasks are (plane range,
// output-row range) pieces: whole planes when there are enough of them for the threads,
// else row ranges of each plane.
struct DwConvChwStep final : Step {
  DwConvChwConfig k;
  int threads;
  ConvGeom geo;
  AlignedBuffer packed;
  EpilogueSpec eps;
  size_t per_thread = 0;  // scratch floats per thread, rounded to 64 bytes
  size_t weight_bytes() const override { return packed.size(); }
  size_t scratch_floats() const override { return per_thread * size_t(threads); }
  Work work(ptrdiff_t batch) const override { return window_work(geo, batch); }
  DwConvChwArgs args(const ExecCtx* c, const Epilogue* e) const {
    DwConvChwArgs a{};
    a.x = c ? c->ptr[reads[0]] : nullptr;
    a.H = geo.H; a.W = geo.W; a.C = geo.C;
    a.w = packed.get();
    a.KH = geo.KH; a.KW = geo.KW; a.sh = geo.sh; a.sw = geo.sw; a.pt = geo.pt; a.pl = geo.pl;
    a.dh = geo.dh; a.dw = geo.dw;
    a.y = c ? c->ptr[writes[0]] : nullptr;
    a.OH = geo.OH; a.OW = geo.OW;
    a.ep = e;
    return a;
  }
  void run(const ExecCtx& c) const override {
    const Epilogue e = make_ep(eps, c, geo.OW);
    const DwConvChwArgs a = args(&c, &e);
    const ptrdiff_t planes = c.batch * geo.images * geo.C;
    const int nt = threads_for(threads, c.isa, work(c.batch));
    // Pieces of about 1/4 of a thread's share (dynamic hand-out), at least a plane's row
    // or a whole plane; a plane is cut into row ranges only when planes are few.
    const ptrdiff_t want = nt > 1 ? 4 * nt : 1;
    const ptrdiff_t per_task = std::max<ptrdiff_t>(1, planes / want);
    const ptrdiff_t ptasks = ceil_div(planes, per_task);
    const ptrdiff_t rchunks = ptasks >= want ? 1 : std::min<ptrdiff_t>(geo.OH, ceil_div(want, ptasks));
    parallel_for(nt, ptasks * rchunks, [&](ptrdiff_t t, int tid) {
      const ptrdiff_t pt = t / rchunks, rc = t % rchunks;
      const ptrdiff_t p0 = pt * per_task, p1 = std::min(planes, p0 + per_task);
      const ptrdiff_t oh0 = rc * geo.OH / rchunks, oh1 = (rc + 1) * geo.OH / rchunks;
      k.run(&a, p0, p1, oh0, oh1, c.scratch + size_t(tid) * per_thread);
    });
  }
};

struct PoolStep final : Step {
  void (*fn)(const PoolArgs*, ptrdiff_t, ptrdiff_t);
  int threads;
  ConvGeom geo;
  bool count_include_pad;
  Work work(ptrdiff_t batch) const override { return window_work(geo, batch); }
  void run(const ExecCtx& c) const override {
    const float* x = c.ptr[reads[0]];
    float* y = c.ptr[writes[0]];
    const ptrdiff_t in_img = geo.H * geo.W * geo.C, out_img = geo.OH * geo.OW * geo.C;
    const ptrdiff_t nimg = c.batch * geo.images;
    const int nt = threads_for(threads, c.isa, work(c.batch));
    const ptrdiff_t cpi = chunks_per_image(nt, nimg, geo.OH);
    parallel_for(nt, nimg * cpi, [&](ptrdiff_t t, int) {
      const ptrdiff_t n = t / cpi, ch = t % cpi;
      const ptrdiff_t oh0 = ch * geo.OH / cpi, oh1 = (ch + 1) * geo.OH / cpi;
      PoolArgs a{x + n * in_img, geo.H, geo.W, geo.C, geo.KH, geo.KW, geo.sh, geo.sw,
                 geo.pt, geo.pl, geo.dh, geo.dw, y + n * out_img, geo.OH, geo.OW,
                 count_include_pad ? 1 : 0, geo.pb, geo.pr};
      fn(&a, oh0, oh1);
    });
  }
};

struct GapStep final : Step {
  void (*fn)(const float*, ptrdiff_t, ptrdiff_t, float*);
  int threads;
  int64_t HW, C, images;
  Work work(ptrdiff_t batch) const override {
    const double n = double(batch * images) * double(HW * C);
    return {n, 4.0 * (n + double(batch * images) * double(C))};
  }
  void run(const ExecCtx& c) const override {
    const float* x = c.ptr[reads[0]];
    float* y = c.ptr[writes[0]];
    const ptrdiff_t nimg = c.batch * images;
    const int t = threads_for(threads, c.isa, work(c.batch));
    parallel_for(t, nimg, [&](ptrdiff_t n, int) { fn(x + n * HW * C, HW, C, y + n * C); });
  }
};

}  // namespace

// Depthwise weights [C][1][KH][KW] packed by either depthwise record (NHWC or planar).
template <class Config>
AlignedBuffer pack_depthwise(const Config& k, const ConvGeom& g, const float* W) {
  AlignedBuffer p(k.packed_bytes(g.KH, g.KW, g.C), k.pack_align);
  k.pack(W, g.KH, g.KW, g.C, p.get());
  return p;
}

std::unique_ptr<Step> make_dwconv_step(const KernelTable& kt, int threads, int x, int y,
                                       const ConvGeom& g, const float* W, EpilogueSpec ep) {
  const DwConvConfig& k = kt.f32_dwconv;
  if (!k.run || !k.pack || !k.packed_bytes)
    throw std::logic_error("the f32_dwconv entry of the kernel table is empty");
  auto s = new_step<DwConvStep>("dwconv", k.name, {x}, {y});
  s->k = k;
  s->threads = threads;
  s->geo = g;
  s->packed = pack_depthwise(k, g, W);
  if (ep.residual >= 0) s->reads.push_back(ep.residual);
  s->eps = std::move(ep);
  return s;
}

std::unique_ptr<Step> make_dwconv_chw_step(const KernelTable& kt, int threads, int x, int y,
                                           const ConvGeom& g, const float* W, EpilogueSpec ep) {
  const DwConvChwConfig& k = kt.f32_dwconv2d_chw;
  if (!k.run || !k.pack || !k.packed_bytes || !k.scratch_floats)
    throw std::logic_error("the f32_dwconv2d_chw entry of the kernel table is empty");
  auto s = new_step<DwConvChwStep>("dwconv_chw", k.name, {x}, {y});
  s->k = k;
  s->threads = std::max(1, threads);
  s->geo = g;
  const DwConvChwArgs a = s->args(nullptr, nullptr);
  const size_t n = k.scratch_floats(&a);
  if (n > Plan::kMemoryCap / sizeof(float) / size_t(s->threads))
    throw SizeError("depthwise conv: the row buffers of this geometry pass the memory cap");
  s->per_thread = (n + 15) / 16 * 16;
  s->packed = pack_depthwise(k, g, W);
  if (ep.residual >= 0) s->reads.push_back(ep.residual);
  s->eps = std::move(ep);
  return s;
}

std::unique_ptr<Step> make_pool_step(const KernelTable& kt, int threads, int x, int y,
                                     const ConvGeom& g, bool is_max, bool count_include_pad) {
  auto fn = is_max ? kt.f32_pool.maxpool : kt.f32_pool.avgpool;
  if (!fn) throw std::logic_error("the f32_pool entry of the kernel table is empty");
  auto s = new_step<PoolStep>(is_max ? "maxpool" : "avgpool", kt.f32_pool.name, {x}, {y});
  s->fn = fn;
  s->threads = threads;
  s->geo = g;
  s->count_include_pad = count_include_pad;
  return s;
}

std::unique_ptr<Step> make_global_avgpool_step(const KernelTable& kt, int threads, int x, int y,
                                               int64_t HW, int64_t C, int64_t images) {
  if (!kt.f32_pool.global_avgpool) throw std::logic_error("the f32_pool entry of the kernel table is empty");
  auto s = new_step<GapStep>("global_avgpool", kt.f32_pool.name, {x}, {y});
  s->fn = kt.f32_pool.global_avgpool;
  s->threads = threads;
  s->HW = HW;
  s->C = C;
  s->images = images;
  return s;
}

}  // namespace pyrt
