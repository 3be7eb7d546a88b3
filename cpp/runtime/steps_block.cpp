// A fused inverted-residual block (MobileNetV2): [1x1 expand conv + activation] ->
// depthwise conv + activation -> 1x1 project conv [+ residual] [+ activation], NHWC, as
// one step tiled by output rows. Each thread keeps a few rows of the expanded activation
// (t times the block's channels) and of the depthwise output in its own scratch, so they
// stay in cache instead of going through memory between three steps. The kernels are the
// table's: the GEMM through GemmConfig::run on row blocks (with its epilogue), the
// depthwise conv through DwConvConfig::run on output-row ranges of a sub-image.
#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "aligned.h"
#include "parallel.h"
#include "sparse.h"
#include "steps.h"

namespace pyrt {
namespace {

constexpr size_t kFloatsPerLine = 16;
inline size_t round_line(size_t n) {
  return (n + kFloatsPerLine - 1) / kFloatsPerLine * kFloatsPerLine;
}

struct InvertedResidualStep final : Step {
  GemmConfig ge, gp;  // the expand and project GEMMs' kernels (gemm_for their widths)
  DwConvConfig d;
  EltwiseConfig el;  // add and epilogue, for the channel split's partial sums
  int threads = 1;
  ConvGeom geo;  // the depthwise conv: C = hidden channels; H, W = the block's input
  int64_t cin = 0, cout = 0;
  bool expand = false;
  AlignedBuffer pe, pd, pp;  // packed expand / depthwise / project weights
  // Sparse expand / project weights (f32_spmm) where the cost model chose them; pe / pp
  // are then empty. Their tiles need sparse_floats of scratch per thread.
  std::unique_ptr<SparseWeight> se, sp;
  size_t sparse_floats = 0;
  EpilogueSpec ee, ed, ej;   // their epilogues (ej: the project's, with the residual)
  int64_t tile = 1;          // output rows per pass
  int64_t cap = 1;           // expanded input rows one thread's buffer holds
  size_t buf_floats = 0, dw_floats = 0;
  // Channel split (small images, fewer images than threads): the hidden channels in
  // groups [cg[i], cg[i + 1]), each group's depthwise weights and rows of the project
  // weights packed on their own. Empty when not built.
  std::vector<int64_t> cg;
  std::vector<AlignedBuffer> pd_g, pp_g;
  // Scratch floats of the channel split: per thread, and per group's partial sums (of
  // up to threads - 1 images: the split runs only with fewer images than threads).
  size_t ch_thread = 0, ch_part = 0;

  size_t per_thread() const { return buf_floats + dw_floats + sparse_floats; }
  size_t groups() const { return cg.empty() ? 0 : cg.size() - 1; }
  size_t scratch_floats() const override {
    return std::max(per_thread() * size_t(threads),
                    ch_thread * size_t(threads) + ch_part * groups());
  }
  // Multiply-adds of the three convs; bytes of the block's input, output and residual
  // and of its weights (the expanded rows stay in cache).
  Work work(ptrdiff_t batch) const override {
    const ConvGeom& q = geo;
    const double nimg = double(batch * q.images), in = double(q.H * q.W), out = double(q.OH * q.OW);
    const double macs = nimg * (in * double(expand ? cin : 0) * double(q.C) +
                                out * double(q.C) * double(q.KH * q.KW + cout));
    const double bytes = 4.0 * nimg * (in * double(cin) + out * double(cout) * (ej.residual >= 0 ? 2 : 1)) +
                         double(weight_bytes());
    return {macs, bytes};
  }
  size_t weight_bytes() const override {
    size_t n = pe.size() + pd.size() + pp.size() + (se ? se->packed.size() : 0) +
               (sp ? sp->packed.size() : 0);
    for (size_t i = 0; i < pd_g.size(); ++i) n += pd_g[i].size() + pp_g[i].size();
    return n;
  }

  // Output rows [oh0, oh1) of one image. x: its input (H x W x cin), y: its output
  // (OH x OW x cout), res: its residual (like y) or nullptr.
  void rows(const float* x, float* y, const float* res, ptrdiff_t oh0, ptrdiff_t oh1,
            float* buf, float* dwb, const Epilogue& e1, const Epilogue& e2,
            const Epilogue& e3) const {
    float* sbuf = dwb + dw_floats;  // the sparse tiles' scratch
    const ConvGeom& q = geo;
    const ptrdiff_t Ch = q.C, row = q.W * Ch;  // floats per expanded row
    ptrdiff_t b0 = 0, b1 = 0;                  // buf holds expanded rows [b0, b1)
    for (ptrdiff_t oh = oh0; oh < oh1; oh += tile) {
      const ptrdiff_t g1 = std::min<ptrdiff_t>(oh + tile, oh1);
      // Input rows the depthwise conv reads for output rows [oh, g1).
      const ptrdiff_t r0 = std::max<ptrdiff_t>(0, oh * q.sh - q.pt);
      const ptrdiff_t r1 = std::max<ptrdiff_t>(
          r0, std::min<ptrdiff_t>(q.H, (g1 - 1) * q.sh - q.pt + (q.KH - 1) * q.dh + 1));
      const float* src = x + r0 * row;
      if (expand) {
        if (b1 <= b0 || r0 < b0 || r0 > b1) b0 = b1 = r0;  // nothing to reuse
        if (r1 - b0 > cap) {  // drop rows above r0: move the kept ones to the front
          std::memmove(buf, buf + (r0 - b0) * row, sizeof(float) * size_t((b1 - r0) * row));
          b0 = r0;
        }
        if (r1 > b1) {
          if (se)
            sparse_rows(*se, x + b1 * q.W * cin, cin, (r1 - b1) * q.W, buf + (b1 - b0) * row, Ch,
                        e1, 0, se->h.G, sbuf);
          else
            ge.run((r1 - b1) * q.W, Ch, cin, x + b1 * q.W * cin, cin, pe.get(),
                   buf + (b1 - b0) * row, Ch, &e1, 0, Ch);
          b1 = r1;
        }
        src = buf + (r0 - b0) * row;
      }
      // The depthwise conv on the sub-image of rows [r0, r1): its top padding is what
      // lies above r0 for output row oh.
      DwConvArgs a{src, r1 - r0, q.W, Ch, pd.get(), q.KH, q.KW, q.sh, q.sw,
                   q.pt + r0 - oh * q.sh, q.pl, q.dh, q.dw, dwb, g1 - oh, q.OW, &e2};
      d.run(&a, 0, g1 - oh);
      Epilogue e = e3;
      if (res) e.residual = res + oh * q.OW * cout;
      if (sp)
        sparse_rows(*sp, dwb, Ch, (g1 - oh) * q.OW, y + oh * q.OW * cout, cout, e, 0, sp->h.G, sbuf);
      else
        gp.run((g1 - oh) * q.OW, cout, Ch, dwb, Ch, pp.get(), y + oh * q.OW * cout, cout, &e, 0,
               cout);
    }
  }

  void run(const ExecCtx& c) const override {
    const ConvGeom& q = geo;
    const float* x = c.ptr[reads[0]];
    float* y = c.ptr[writes[0]];
    const Epilogue e1 = make_ep(ee, c, q.C);
    const Epilogue e2 = make_ep(ed, c, q.C);
    const Epilogue e3 = make_ep(ej, c, cout);
    const ptrdiff_t in_img = q.H * q.W * (expand ? cin : q.C), out_img = q.OH * q.OW * cout;
    const ptrdiff_t nimg = c.batch * q.images;
    const int nt = threads_for(threads, c.isa, work(c.batch));
    if (nt > 1 && nimg < nt && groups() > 1) {
      run_channel_split(c, x, y, nimg, nt, e1, e2, e3);
      return;
    }
    const ptrdiff_t cpi = chunks(nt, nimg);
    parallel_for(nt, nimg * cpi, [&](ptrdiff_t t, int tid) {
      const ptrdiff_t n = t / cpi, ch = t % cpi;
      float* buf = c.scratch + size_t(tid) * per_thread();
      rows(x + n * in_img, y + n * out_img, e3.residual ? e3.residual + n * out_img : nullptr,
           ch * q.OH / cpi, (ch + 1) * q.OH / cpi, buf, buf + buf_floats, e1, e2, e3);
    });
  }

  // Expanded rows a row chunk shares with the chunk above it (recomputed by both).
  ptrdiff_t halo_rows() const {
    return std::max<ptrdiff_t>(0, (geo.KH - 1) * geo.dh + 1 - geo.sh);
  }

  // An image too small to split by rows between the threads: each thread's chunk of
  // fewer than 8 output rows would recompute halo rows worth a large part of it, or be a
  // GEMM of a few dozen rows. Measured alone on 2 threads (MobileNetV2's shapes, 4 x 7
  // runs): 14x14 outputs 0-5% faster by channels, 28x28 9% slower.
  bool small_image() const {
    return geo.OH * geo.OW <= 64 || geo.OH < 8 * int64_t(threads) ||
           2 * halo_rows() * threads > geo.OH;
  }

  // Small images: the hidden channels split into groups, one task per (image, group):
  // expand its columns, depthwise conv them, and multiply by its rows of the project
  // weights into a partial sum; then the partials are added and the project's epilogue
  // applied, split by rows. Nothing is computed twice, at the cost of a second parallel
  // region; row chunks would recompute halo rows that are a large part of a small image.
  void run_channel_split(const ExecCtx& c, const float* x, float* y, ptrdiff_t nimg, int nt,
                         const Epilogue& e1, const Epilogue& e2, const Epilogue& e3) const {
    const ConvGeom& q = geo;
    const ptrdiff_t G = static_cast<ptrdiff_t>(groups());
    const ptrdiff_t in_img = q.H * q.W * cin, out_img = q.OH * q.OW * cout;
    float* parts = c.scratch + ch_thread * size_t(threads);  // G partials of nimg images
    const Epilogue none{};
    parallel_for(nt, nimg * G, [&](ptrdiff_t t, int tid) {
      const ptrdiff_t n = t / G, gi = t % G, c0 = cg[gi], c1 = cg[gi + 1], cw = c1 - c0;
      // Thread scratch: q.C floats of lead (the GEMM writes column j at C + j, so C
      // points c0 floats before the group's buffer), the group's expanded image, its
      // depthwise output.
      float* e_buf = c.scratch + size_t(tid) * ch_thread + q.C;
      float* d_buf = e_buf + round_line(size_t(q.H * q.W * cw));
      ge.run(q.H * q.W, c1, cin, x + n * in_img, cin, pe.get(), e_buf - c0, cw, &e1, c0, c1);
      Epilogue ed_g = e2;
      if (ed_g.bias) ed_g.bias += c0;
      DwConvArgs a{e_buf, q.H, q.W, cw, pd_g[gi].get(), q.KH, q.KW, q.sh, q.sw, q.pt, q.pl,
                   q.dh, q.dw, d_buf, q.OH, q.OW, &ed_g};
      d.run(&a, 0, q.OH);
      gp.run(q.OH * q.OW, cout, cw, d_buf, cw, pp_g[gi].get(),
             parts + size_t(gi) * ch_part + size_t(n * out_img), cout, &none, 0, cout);
    });
    const ptrdiff_t rows = nimg * q.OH * q.OW;
    const ptrdiff_t tasks = std::min<ptrdiff_t>(ptrdiff_t(nt), rows);
    parallel_for(nt, tasks, [&](ptrdiff_t t, int) {
      const ptrdiff_t r0 = rows * t / tasks, r1 = rows * (t + 1) / tasks;
      float* yr = y + r0 * cout;
      const ptrdiff_t n = (r1 - r0) * cout;
      el.add(n, parts + r0 * cout, 1, parts + ch_part + r0 * cout, 1, yr);
      for (ptrdiff_t gi = 2; gi < G; ++gi)
        el.add(n, yr, 1, parts + size_t(gi) * ch_part + r0 * cout, 1, yr);
      Epilogue e = e3;
      if (e.residual) e.residual += r0 * cout;
      el.epilogue(r1 - r0, cout, yr, cout, &e);
    });
  }

  // Row chunks per image: whole images when there are enough for the threads; else
  // enough chunks for every thread, each recomputing the expanded rows its window
  // shares with the chunk above (so chunks are kept from getting too short).
  ptrdiff_t chunks(int nt, ptrdiff_t nimg) const {
    if (nt <= 1 || nimg >= 2 * nt) return 1;
    const ptrdiff_t want = ceil_div(2 * nt, nimg);
    const ptrdiff_t min_rows = std::max<ptrdiff_t>(tile, 4);
    const ptrdiff_t most = std::max<ptrdiff_t>(ceil_div(nt, nimg), geo.OH / min_rows);
    return std::max<ptrdiff_t>(1, std::min({want, most, ptrdiff_t(geo.OH)}));
  }
};

}  // namespace

std::unique_ptr<Step> make_inverted_residual_step(
    const KernelTable& kt, int threads, int x, int y, const ConvGeom& q, int64_t cin,
    const float* We, EpilogueSpec ee, const float* Wd, EpilogueSpec ed, int64_t cout,
    const float* Wp, EpilogueSpec ej, SparseMode mode) {
  check_gemm(kt.f32_gemm);
  const DwConvConfig& d = kt.f32_dwconv;
  if (!d.run || !d.pack || !d.packed_bytes)
    throw std::logic_error("the f32_dwconv entry of the kernel table is empty");
  const int64_t Ch = q.C;
  const GemmConfig& ge = gemm_for(kt.f32_gemm, q.C);
  const GemmConfig& gp = gemm_for(kt.f32_gemm, cout);
  auto s = new_step<InvertedResidualStep>("inverted_residual", "", {x}, {y});
  s->ge = ge;
  s->gp = gp;
  s->d = d;
  s->threads = std::max(1, threads);
  s->geo = q;
  s->cin = We ? cin : Ch;
  s->cout = cout;
  s->expand = We != nullptr;
  // Output rows per pass: computed below; the sparse choice needs its row count first.
  const int64_t ow = std::max<int64_t>(q.OW, 1), oh = std::max<int64_t>(q.OH, 1);
  const int64_t base = std::min<int64_t>(ceil_div(96, ow), oh);
  // A 1x1 conv runs sparse when the cost model says so at the rows of one pass (the
  // expand GEMM's new rows per pass are about as many).
  const auto sparse_for = [&](const std::vector<float>& B, int64_t K, int64_t N) {
    const SparseChoice c = choose_sparse(kt, K, N, B.data(), N, mode);
    const int64_t rows = base * ow;
    return c.sparse_at(rows) ? std::make_unique<SparseWeight>(pack_sparse(kt, K, N, B.data(), N, c.R))
                             : nullptr;
  };
  std::string kernel;
  if (We) {  // W [Ch, cin] -> B [cin, Ch]
    std::vector<float> B(size_t(cin) * size_t(Ch));
    for (int64_t o = 0; o < Ch; ++o)
      for (int64_t i = 0; i < cin; ++i) B[size_t(i * Ch + o)] = We[o * cin + i];
    s->se = sparse_for(B, cin, Ch);
    if (!s->se) s->pe = pack_gemm(ge, cin, Ch, B.data(), Ch);
    kernel = std::string(s->se ? s->se->cfg.name : ge.name) + " + ";
  }
  s->pd = AlignedBuffer(d.packed_bytes(q.KH, q.KW, Ch), d.pack_align);
  d.pack(Wd, q.KH, q.KW, Ch, s->pd.get());
  std::vector<float> Bp(size_t(Ch) * size_t(cout));  // W [cout, Ch] -> B [Ch, cout]
  for (int64_t o = 0; o < cout; ++o)
    for (int64_t i = 0; i < Ch; ++i) Bp[size_t(i * cout + o)] = Wp[o * Ch + i];
  s->sp = sparse_for(Bp, Ch, cout);
  if (!s->sp) s->pp = pack_gemm(gp, Ch, cout, Bp.data(), cout);
  s->kernel = kernel + d.name + " + " + (s->sp ? s->sp->cfg.name : gp.name);
  for (const auto* w : {s->se.get(), s->sp.get()})
    if (w) s->sparse_floats = std::max(s->sparse_floats, round_line(w->scratch_floats()));
  // Output rows per pass: about 96 output pixels or more, a GEMM row block that reuses
  // each B panel over several register tiles, preferably whole tiles of mr rows (the
  // expand GEMM's new rows per pass are then whole tiles too when sh * W is a multiple
  // of OW). The buffer: the input rows of one pass plus three more passes' new rows, so
  // the halo rows move to its front only every few passes.
  s->tile = base;
  for (int64_t t = base; t <= std::min<int64_t>(2 * base, oh); ++t)
    if (t * ow % gp.mr == 0) {
      s->tile = t;
      break;
    }
  const int64_t need = (s->tile - 1) * q.sh + (q.KH - 1) * q.dh + 1;
  s->cap = std::min<int64_t>(q.H, need + 3 * s->tile * q.sh);
  s->cap = std::max<int64_t>(s->cap, std::min<int64_t>(need, q.H));
  // Scratch sizes are checked in double first: absurd geometries must not wrap size_t.
  const double per_thread_cap = double(Plan::kMemoryCap / sizeof(float)) / s->threads;
  const double rows_floats = (s->expand ? double(s->cap) * double(q.W) : 0.0) * double(Ch) +
                             double(s->tile) * double(q.OW) * double(Ch);
  if (rows_floats > per_thread_cap)
    throw SizeError("inverted residual block: its row buffers pass the memory cap");
  const size_t row = size_t(q.W) * size_t(Ch);
  s->buf_floats = s->expand ? round_line(size_t(s->cap) * row) : 0;
  s->dw_floats = round_line(size_t(s->tile) * size_t(q.OW) * size_t(Ch));
  // The channel split for small images (see run_channel_split): groups of whole GEMM
  // panels, one per thread.
  const int64_t nr = ge.nr, panels = ceil_div(Ch, nr);
  const double split_floats = double(Ch) * double(q.H * q.W + q.OH * q.OW) +
                              double(q.OH * q.OW) * double(cout) * s->threads;
  const EltwiseConfig& el = kt.f32_eltwise;
  if (s->expand && !s->se && !s->sp && s->threads > 1 && panels >= 2 && el.add && el.epilogue &&
      s->small_image() && split_floats <= per_thread_cap) {
    const int64_t G = std::min<int64_t>(s->threads, panels);
    for (int64_t i = 0; i <= G; ++i) s->cg.push_back(std::min(Ch, panels * i / G * nr));
    int64_t cmax = 0;
    for (int64_t i = 0; i < G; ++i) {
      const int64_t c0 = s->cg[size_t(i)], cw = s->cg[size_t(i) + 1] - c0;
      cmax = std::max(cmax, cw);
      AlignedBuffer pdg(d.packed_bytes(q.KH, q.KW, cw), d.pack_align);
      d.pack(Wd + c0 * q.KH * q.KW, q.KH, q.KW, cw, pdg.get());
      s->pd_g.push_back(std::move(pdg));
      s->pp_g.push_back(pack_gemm(gp, cw, cout, Bp.data() + c0 * cout, cout));
    }
    s->ch_thread = size_t(Ch) + round_line(size_t(q.H * q.W * cmax)) +
                   round_line(size_t(q.OH * q.OW * cmax));
    s->ch_part = round_line(size_t(q.OH * q.OW * cout) * size_t(s->threads - 1));
    s->el = el;
  }
  if (ej.residual >= 0) s->reads.push_back(ej.residual);
  s->ee = std::move(ee);
  s->ed = std::move(ed);
  s->ej = std::move(ej);
  return s;
}

}  // namespace pyrt
