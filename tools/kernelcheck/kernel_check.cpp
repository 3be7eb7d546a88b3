// Standalone differential check of a kernel table against the scalar table, and of the
// scalar table against float64.
//
// For the chosen ISA (argv[1]: scalar | avx2 | avx512 | avx2w16 | best; default best)
// every entry of the KernelTable (f32_gemm, f32_dwconv, f32_dwconv2d_chw, f32_pool,
// f32_eltwise, x32_transpose, f32_spmm, qc8w_spmm, qs8_qc8w_gemm, qu8_dwconv) runs on seeded random inputs and is compared with the scalar
// table's kernel. For `scalar` itself the reference is float64 loops (reference_f64.h),
// each element held to an error bound derived from float32 rounding. Calling conventions follow
// cpp/testing/testing_*.cpp. Inputs end exactly at a page boundary followed by a
// PROT_NONE page (a masked tail that reads past its end faults); outputs are surrounded
// by sentinels and padded row strides, and the sentinels must survive.
//
// "avx2w16" is the AVX2 table with the test-only 16-lane builds (gemm 12x16 tile and its
// narrow 14x8 one, dwconv/pool/eltwise on two AVX2 halves): the AVX-512 code paths on an
// AVX2 machine. A gemm with a narrow-output kernel (GemmConfig::narrow) has it checked
// too, in the gemm_narrow/ groups.
//
// Options: --small (sizes for an emulator), --seed N.
// Last line: "KERNELCHECK PASS n/n" or "KERNELCHECK FAIL f/n ...", exit 0 / 1 (2: the
// ISA is not available). Run as PID 1 (the initramfs of tools/avx512_emu.sh) it sets up
// a console, takes its arguments from the kernel command line after "--", and powers
// the machine off at the end.
#include <fcntl.h>
#include <signal.h>
#include <termios.h>
#include <sys/io.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "pyrt/dispatch.h"
#include "pyrt/kernels.h"
#include "reference_f64.h"

namespace pyrt {
// Test-only registrations (f32_gemm_avx2.cpp, f32_w16check_avx2.cpp).
void register_f32_gemm_12x16__avx2(KernelTable& t);
void register_all__avx2w16_testing(KernelTable& t);
QGemmConfig qs8_qc8w_gemm_avxvnni_emu_testing();  // cpp/testing/qs8_vnni_emu_avx2.cpp
}  // namespace pyrt

using namespace pyrt;

namespace {

bool g_small = false, g_pid1 = false;
bool g_f64 = false;  // the reference is float64 (checking the scalar table itself)
uint64_t g_seed = 12345;
char g_case[512] = "(none)";  // the case being run, for the SIGSEGV handler

void set_case(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(g_case, sizeof g_case, fmt, ap);
  va_end(ap);
}

void finish_and_exit(int code) {
  fflush(stdout);
  fflush(stderr);
  if (g_pid1) {
    sync();
    // Bochs: writing "Shutdown" to port 0x8900 ends the simulation (it works with
    // acpi=off, where the power off below only halts). Only ever done as PID 1, i.e. in
    // the initramfs of tools/avx512_emu.sh.
    printf("guest: powering off\n");
    fflush(stdout);
    tcdrain(1);  // the UART must have sent everything before the machine goes away
    usleep(100000);
    if (ioperm(0x8900, 1, 1) == 0)
      for (const char* s = "Shutdown"; *s; ++s) outb(static_cast<unsigned char>(*s), 0x8900);
    reboot(RB_POWER_OFF);
    for (;;) pause();
  }
  exit(code);
}

void on_fault(int sig) {
  // Not async-signal-safe in general, but the process is going down anyway.
  char buf[700];
  int n = snprintf(buf, sizeof buf, "\nFATAL signal %d in case: %s\nKERNELCHECK FAIL crash (signal %d)\n",
                   sig, g_case, sig);
  if (write(1, buf, n) < 0) {}
  finish_and_exit(1);
}

double now_s() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// ------------------------------------------------------------------ buffers

const size_t kPage = 4096;

// n floats ending exactly at a PROT_NONE page: reading past the end faults.
struct Fenced {
  void* base = nullptr;
  size_t bytes = 0;
  float* p = nullptr;
  size_t n = 0;
  Fenced() = default;
  explicit Fenced(size_t count) { alloc(count); }
  Fenced(const Fenced&) = delete;
  Fenced& operator=(const Fenced&) = delete;
  Fenced(Fenced&& o) noexcept { *this = std::move(o); }
  Fenced& operator=(Fenced&& o) noexcept {
    std::swap(base, o.base); std::swap(bytes, o.bytes); std::swap(p, o.p); std::swap(n, o.n);
    return *this;
  }
  void alloc(size_t count) {
    n = count;
    const size_t data = (count * sizeof(float) + kPage - 1) / kPage * kPage;
    bytes = data + kPage;
    base = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) { perror("mmap"); finish_and_exit(1); }
    mprotect(static_cast<char*>(base) + data, kPage, PROT_NONE);
    p = reinterpret_cast<float*>(static_cast<char*>(base) + data) - count;
  }
  ~Fenced() { if (base) munmap(base, bytes); }
  float& operator[](size_t i) { return p[i]; }
};

const float kSentinel = -1.2345e30f;
const size_t kGuard = 37;

// An output: kGuard sentinels, n floats (pre-set to the sentinel or given values),
// kGuard sentinels.
struct Guarded {
  std::vector<float> v;
  size_t n;
  explicit Guarded(size_t count) : v(count + 2 * kGuard, kSentinel), n(count) {}
  float* p() { return v.data() + kGuard; }
  bool guards_ok() const {
    for (size_t i = 0; i < kGuard; ++i)
      if (v[i] != kSentinel || v[kGuard + n + i] != kSentinel) return false;
    return true;
  }
};

// ------------------------------------------------------------------ random

std::mt19937_64 g_rng;
float urand(float lo, float hi) {
  return lo + (hi - lo) * static_cast<float>((g_rng() >> 11) * (1.0 / 9007199254740992.0));
}
int irand(int n) { return static_cast<int>(g_rng() % static_cast<uint64_t>(n)); }
void fill(float* p, size_t n, float lo = -1.0f, float hi = 1.0f) {
  for (size_t i = 0; i < n; ++i) p[i] = urand(lo, hi);
}
const float kInf = __builtin_inff();
const float kNaN = __builtin_nanf("");

// ------------------------------------------------------------------ compare

struct Group {
  std::string name;
  long cases = 0, fails = 0;
  double worst = 0;  // largest |got - ref| / allowed
  double t0 = now_s();
};
std::vector<std::string> g_failed_groups;
long g_total = 0, g_total_fail = 0;
int g_printed_fail = 0;

// Compares got with ref over n floats. exact: bitwise-equal value (NaN == NaN, and
// +0 == -0). Otherwise |got - ref| <= atol + rtol * |ref|; NaN must match NaN,
// infinities must match exactly.
bool match(const float* ref, const float* got, size_t n, double rtol, double atol, bool exact,
           Group& g, const char* what) {
  for (size_t i = 0; i < n; ++i) {
    const float r = ref[i], x = got[i];
    bool ok;
    double ratio = 0;
    if (std::isnan(r) || std::isnan(x)) ok = std::isnan(r) && std::isnan(x);
    else if (exact || std::isinf(r) || std::isinf(x)) ok = r == x;
    else {
      const double lim = atol + rtol * std::fabs(static_cast<double>(r));
      const double d = std::fabs(static_cast<double>(x) - r);
      ok = d <= lim;
      ratio = lim > 0 ? d / lim : (d > 0 ? 1e30 : 0);
    }
    if (ratio > g.worst && ok) g.worst = ratio;
    if (!ok) {
      if (g_printed_fail < 40) {
        ++g_printed_fail;
        printf("  %s [%s] %s: %s: first differing index %zu: scalar %.9g, got %.9g "
               "(|diff| %.3g, allowed %.3g)\n",
               "MISMATCH", g.name.c_str(), g_case, what, i, r, x, std::fabs(static_cast<double>(x) - r),
               exact ? 0.0 : atol + rtol * std::fabs(static_cast<double>(r)));
        fflush(stdout);
      }
      return false;
    }
  }
  return true;
}

// match() on a guarded output, which must also have left its guard zones untouched.
bool match_guarded(Guarded& ref, Guarded& got, size_t n, double rtol, double atol, bool exact,
                   Group& g, const char* what) {
  if (!match(ref.p(), got.p(), n, rtol, atol, exact, g, what)) return false;
  if (got.guards_ok()) return true;
  printf("  MISMATCH [%s] %s: wrote outside %s\n", g.name.c_str(), g_case, what);
  return false;
}

// Compares got with a float64 reference: |got - v| <= tol per element (tol 0: exact);
// NaN must match NaN and infinities must be equal. Guards must survive.
bool match_f64(const kref::Ref& ref, Guarded& got, size_t n, Group& g, const char* what) {
  for (size_t i = 0; i < n; ++i) {
    const double r = ref.v[i], x = got.p()[i];
    bool ok;
    double ratio = 0;
    if (std::isnan(r) || std::isnan(x)) ok = std::isnan(r) && std::isnan(x);
    else if (std::isinf(r) || std::isinf(x)) ok = r == x;
    else {
      const double d = std::fabs(x - r);
      ok = d <= ref.tol[i];
      ratio = ref.tol[i] > 0 ? d / ref.tol[i] : (d > 0 ? 1e30 : 0);
    }
    if (ok && ratio > g.worst) g.worst = ratio;
    if (!ok) {
      if (g_printed_fail < 40) {
        ++g_printed_fail;
        printf("  MISMATCH [%s] %s: %s: first differing index %zu: float64 %.17g, got %.9g "
               "(|diff| %.3g, allowed %.3g)\n",
               g.name.c_str(), g_case, what, i, r, x, std::fabs(x - r), ref.tol[i]);
        fflush(stdout);
      }
      return false;
    }
  }
  if (got.guards_ok()) return true;
  printf("  MISMATCH [%s] %s: wrote outside %s\n", g.name.c_str(), g_case, what);
  return false;
}

// Row padding of a strided output (columns [cols, ld) of every row but the last) must
// keep what it held before the kernel ran: that is its reference.
void keep_gaps(kref::Ref& r, const float* before, ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t ld) {
  for (ptrdiff_t i = 0; i + 1 < rows; ++i)
    for (ptrdiff_t j = cols; j < ld; ++j) {
      r.v[i * ld + j] = before[i * ld + j];
      r.tol[i * ld + j] = 0;
    }
}

void record(Group& g, bool ok) {
  ++g.cases;
  if (!ok) ++g.fails;
}

void end_group(Group& g) {
  g_total += g.cases;
  g_total_fail += g.fails;
  if (g.fails) g_failed_groups.push_back(g.name);
  printf("%s %-24s %6ld cases %4ld failed  worst err/tol %.3f  (%.2f s)\n",
         g.fails ? "[FAIL]" : "[PASS]", g.name.c_str(), g.cases, g.fails, g.worst,
         now_s() - g.t0);
  fflush(stdout);
}

const char* act_name(Act a) {
  switch (a) {
    case Act::None: return "none";
    case Act::Relu: return "relu";
    case Act::Clip: return "clip";
    case Act::Sigmoid: return "sigmoid";
    case Act::Tanh: return "tanh";
    case Act::Gelu: return "gelu";
  }
  return "?";
}
const Act kActs[] = {Act::None, Act::Relu, Act::Clip, Act::Sigmoid, Act::Tanh, Act::Gelu};

// Tolerance for a reduction of length k (float32 reassociation, FMA vs mul+add) followed
// by an activation (libm vs vector math: a few ulp).
double rtol_for(ptrdiff_t k) { return 1e-5 * std::sqrt(static_cast<double>(k < 1 ? 1 : k)); }

// ================================================================== GEMM

struct GemmCase {
  ptrdiff_t M, N, K;
  ptrdiff_t lda_pad = 0, ldc_pad = 0, ldr_pad = 0;
  bool bias = false;
  int res = 0;  // 0 none, 1 before act, 2 after act, 3 in place (before), 4 in place (after)
  Act act = Act::None;
  float lo = -0.5f, hi = 0.5f;
  int m_split = 1, n_split = 1;
  int nan_mode = 0;  // 1: NaN/inf in A
};

// The GEMM record under test: f32_gemm, or a 16-bit weight entry (f16w_gemm, bf16w_gemm)
// whose variants run one by one (main). For those, B is drawn exactly representable in
// the weight type (what the packers are given: the dense view of an f16/bf16 weight), so
// scalar, SIMD and float64 multiply the same weights; packer rounding itself is tested
// in tests/test_kernels_gemm16.py.
GemmConfig KernelTable::*g_gemm_field = &KernelTable::f32_gemm;
int g_wtype = 0;  // 0: f32 weights, 1: f16, 2: bf16
// The AVX512-BF16 bf16w_gemm rounds the activations of blocks of more than 12 rows to
// bf16 (vdpbf16ps), except for an in-place residual with K above its K block: its
// reference then gets those rows of A rounded the same way.
bool g_round_a = false;
constexpr ptrdiff_t kDpRows = 12, kDpKc = 512;

#include "../../cpp/kernels/common/half_convert.inc"

float round_weight(float x) {
  return g_wtype == 1 ? f16_to_f32(f32_to_f16_rne(x)) : g_wtype == 2 ? bf16_to_f32(f32_to_bf16_rne(x)) : x;
}

// Runs g over an m_split x n_split grid of blocks like testing_gemm.cpp / the executor.
void gemm_run(const GemmConfig& g, const GemmCase& c, const float* A, ptrdiff_t lda,
              const float* packed, float* C, ptrdiff_t ldc, const Epilogue& ep) {
  const ptrdiff_t nr = g.nr, panels = (c.N + nr - 1) / nr;
  for (int mi = 0; mi < c.m_split; ++mi) {
    const ptrdiff_t m0 = c.M * mi / c.m_split, m1 = c.M * (mi + 1) / c.m_split;
    for (int ni = c.n_split - 1; ni >= 0; --ni) {
      const ptrdiff_t p0 = panels * ni / c.n_split, p1 = panels * (ni + 1) / c.n_split;
      const ptrdiff_t n0 = p0 * nr, n1 = p1 * nr < c.N ? p1 * nr : c.N;
      if (m1 <= m0 || n1 <= n0) continue;
      Epilogue blk = ep;
      if (blk.residual) blk.residual += m0 * ep.ldr;
      g.run(m1 - m0, c.N, c.K, A + m0 * lda, lda, packed, C + m0 * ldc, ldc, &blk, n0, n1);
    }
  }
}

bool gemm_check(const KernelTable& ref, const KernelTable& tst, const GemmCase& c, Group& grp) {
  set_case("gemm M=%td N=%td K=%td lda+%td ldc+%td ldr+%td bias=%d res=%d act=%s lo=%g hi=%g "
           "split=%dx%d nan=%d",
           c.M, c.N, c.K, c.lda_pad, c.ldc_pad, c.ldr_pad, c.bias, c.res, act_name(c.act), c.lo,
           c.hi, c.m_split, c.n_split, c.nan_mode);
  const ptrdiff_t lda = c.K + c.lda_pad, ldc = c.N + c.ldc_pad;
  const bool inplace = c.res >= 3;
  const ptrdiff_t ldr = inplace ? ldc : c.N + c.ldr_pad;
  Fenced A(static_cast<size_t>((c.M - 1) * lda + c.K)), B(static_cast<size_t>(c.K * c.N));
  fill(A.p, A.n);
  fill(B.p, B.n);
  for (size_t i = 0; i < B.n; ++i) B[i] = round_weight(B[i]);
  if (c.nan_mode == 1 && A.n > 0) {
    A[irand(static_cast<int>(A.n))] = kNaN;
    A[irand(static_cast<int>(A.n))] = kInf;
    A[irand(static_cast<int>(A.n))] = -kInf;
  }
  Fenced bias(static_cast<size_t>(c.N));
  fill(bias.p, bias.n);
  Fenced R(c.res && !inplace ? static_cast<size_t>((c.M - 1) * ldr + c.N) : 0);
  fill(R.p, R.n, -2.0f, 2.0f);
  const size_t csize = static_cast<size_t>((c.M - 1) * ldc + c.N);
  Guarded Cr(csize), Ct(csize);
  if (inplace) {  // C starts as the residual
    std::vector<float> init(csize);
    fill(init.data(), csize, -2.0f, 2.0f);
    std::memcpy(Cr.p(), init.data(), csize * 4);
    std::memcpy(Ct.p(), init.data(), csize * 4);
  }
  bool ok = true;
  float* outs[2] = {Cr.p(), Ct.p()};
  const KernelTable* tabs[2] = {&ref, &tst};
  kref::Ref f64(0);
  // The reference's A: A itself, or with the rows the tested kernel rounds rounded.
  std::vector<float> a_ref;
  const float* A_ref = A.p;
  if (g_round_a && !(inplace && c.K > kDpKc)) {
    a_ref.assign(A.p, A.p + A.n);
    for (int mi = 0; mi < c.m_split; ++mi) {
      const ptrdiff_t m0 = c.M * mi / c.m_split, m1 = c.M * (mi + 1) / c.m_split;
      if (m1 - m0 <= kDpRows) continue;
      for (ptrdiff_t i = m0; i < m1; ++i)
        for (ptrdiff_t k = 0; k < c.K; ++k)
          a_ref[i * lda + k] = bf16_to_f32(f32_to_bf16_rne(a_ref[i * lda + k]));
    }
    A_ref = a_ref.data();
  }
  for (int t = 0; t < 2; ++t) {
    const GemmConfig& g = tabs[t]->*g_gemm_field;
    const size_t bytes = g.packed_bytes(c.K, c.N);
    const size_t ps = (bytes + sizeof(float) - 1) / sizeof(float);
    if (bytes < static_cast<size_t>(c.K * c.N) * (g_wtype ? 2 : 4)) {
      printf("  %s: packed_bytes %zu < K*N weights\n", g.name, bytes);
      return false;
    }
    Fenced P(ps);  // pack must not write past packed_bytes (fault)
    if (ps) g.pack(c.K, c.N, B.p, c.N, P.p);
    Epilogue ep{};
    ep.bias = c.bias ? bias.p : nullptr;
    ep.residual = c.res == 0 ? nullptr : inplace ? outs[t] : R.p;
    ep.ldr = ldr;
    ep.act = c.act;
    ep.lo = c.lo;
    ep.hi = c.hi;
    ep.residual_after_act = (c.res == 2 || c.res == 4) ? 1 : 0;
    GemmCase cc = c;
    if (t == 0) cc.m_split = cc.n_split = 1;  // the reference runs in one call
    if (t == 0 && g_f64) {  // float64 reference; the residual as it was before the run
      std::vector<float> before(Cr.p(), Cr.p() + csize);
      if (inplace) ep.residual = before.data();
      kref::Ref r = kref::gemm(c.M, c.N, c.K, A_ref, lda, B.p, ldc, ep);
      keep_gaps(r, before.data(), c.M, c.N, ldc);
      f64 = std::move(r);
      continue;
    }
    gemm_run(g, cc, t == 0 ? A_ref : A.p, lda, P.p, outs[t], ldc, ep);
  }
  if (g_f64) return match_f64(f64, Ct, csize, grp, "C");
  ok = match_guarded(Cr, Ct, csize, rtol_for(c.K), rtol_for(c.K), false, grp, "C");
  return ok;
}

// Group name prefix of test_gemm: "gemm", or "gemm_narrow" for the narrow-output kernel.
std::string g_gemm_group = "gemm";

void test_gemm(const KernelTable& ref, const KernelTable& tst) {
  {
    Group g{g_gemm_group + "/shapes"};
    std::vector<ptrdiff_t> Ms = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 17, 24, 25,
                                 28, 31, 33};
    std::vector<ptrdiff_t> Ns = {1, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 47, 64, 97};
    std::vector<ptrdiff_t> Ks = {1, 2, 3, 5, 7, 17, 64};
    if (!g_small) {
      Ms.insert(Ms.end(), {64, 97});
      Ns.insert(Ns.end(), {130, 257});
      Ks.insert(Ks.end(), {31, 130});
    }
    for (ptrdiff_t M : Ms)
      for (ptrdiff_t N : Ns)
        for (ptrdiff_t K : Ks) {
          GemmCase c{M, N, K};
          c.bias = true;
          c.act = Act::Relu;
          c.lda_pad = (M + N) % 3;
          c.ldc_pad = (N + K) % 5;
          record(g, gemm_check(ref, tst, c, g));
        }
    end_group(g);
  }
  {
    Group g{g_gemm_group + "/kblock"};  // K above kKc (256 avx2, 1024 avx512) with M > kMr
    std::vector<ptrdiff_t> Ms = {13, 25}, Ns = {17, 33}, Ks = {255, 257, 1025, 1100};
    if (!g_small) {
      Ms = {13, 25, 97, 130, 257};
      Ns = {17, 33, 64, 130, 257};
      Ks = {255, 256, 257, 513, 1023, 1024, 1025, 1100, 2049};
    }
    for (ptrdiff_t M : Ms)
      for (ptrdiff_t N : Ns)
        for (ptrdiff_t K : Ks) {
          GemmCase c{M, N, K};
          c.bias = true;
          c.res = 1;
          c.act = Act::Clip;
          c.lo = -3.0f;
          c.hi = 3.0f;
          c.ldc_pad = 3;
          c.ldr_pad = 1;
          record(g, gemm_check(ref, tst, c, g));
        }
    // M block boundary (kMc = 96 / 240) with ragged row tiles
    for (ptrdiff_t M : std::vector<ptrdiff_t>(g_small ? std::vector<ptrdiff_t>{97, 241}
                                                      : std::vector<ptrdiff_t>{97, 241, 250, 480, 491})) {
      GemmCase c{M, 33, g_small ? 9 : 300};
      c.bias = true;
      record(g, gemm_check(ref, tst, c, g));
    }
    end_group(g);
  }
  {
    Group g{g_gemm_group + "/epilogue"};
    std::vector<GemmCase> shapes = {{1, 17, 5}, {13, 33, 17}, {12, 32, 8}, {7, 47, 3}};
    shapes.push_back(g_small ? GemmCase{25, 33, 1030} : GemmCase{25, 47, 1100});
    for (GemmCase s : shapes)
      for (Act act : kActs)
        for (int bias = 0; bias < 2; ++bias)
          for (int res = 0; res <= 4; ++res) {
            GemmCase c = s;
            c.act = act;
            c.bias = bias;
            c.res = res;
            c.lda_pad = 1;
            c.ldc_pad = 2;
            c.ldr_pad = 3;
            record(g, gemm_check(ref, tst, c, g));
          }
    end_group(g);
  }
  {
    // Clip with lo > hi gives hi everywhere (np.clip, ONNX). The scalar GEMM once gave
    // lo where v < lo; this group found it.
    Group g{g_gemm_group + "/clip-lo>hi"};
    for (GemmCase s : std::vector<GemmCase>{{1, 17, 5}, {13, 33, 17}})
      for (int res = 0; res < 3; ++res) {
        GemmCase c = s;
        c.act = Act::Clip;
        c.lo = 0.3f;
        c.hi = -0.2f;
        c.res = res;
        record(g, gemm_check(ref, tst, c, g));
      }
    end_group(g);
  }
  {
    Group g{g_gemm_group + "/splits"};  // blocks as the executor's threads call them
    for (GemmCase s : std::vector<GemmCase>{{13, 97, 17}, {31, 130, 9}, {5, 257, 3}, {25, 70, 300}})
      for (int ms : {1, 2, 3})
        for (int ns : {2, 3, 5}) {
          GemmCase c = s;
          c.m_split = ms;
          c.n_split = ns;
          c.bias = true;
          c.res = (ms + ns) % 5;
          c.act = kActs[(ms * 3 + ns) % 6];
          c.ldr_pad = 2;
          record(g, gemm_check(ref, tst, c, g));
        }
    end_group(g);
  }
  {
    Group g{g_gemm_group + "/nan-inf"};
    for (GemmCase s : std::vector<GemmCase>{{3, 17, 5}, {13, 33, 9}, {12, 16, 4}})
      for (Act act : kActs) {
        GemmCase c = s;
        c.act = act;
        c.bias = true;
        c.nan_mode = 1;
        record(g, gemm_check(ref, tst, c, g));
      }
    end_group(g);
  }
}

// ================================================================== depthwise conv

struct DwCase {
  ptrdiff_t H, W, C, KH, KW, sh, sw, pt, pl, pb, pr, dh = 1, dw = 1;
  bool bias = true;
  int res = 0;  // 0 none, 1 before, 2 after act
  Act act = Act::None;
  float lo = -0.5f, hi = 0.5f;
  int split = 1;
  bool nan = false;
};

// The inputs of a depthwise case, shared by the NHWC and the planar check: `planes`
// NCHW planes (planar) or one NHWC image (planes == 1 with C channels, same element
// count), weights [C][KH][KW], bias, and a residual shaped like the output.
struct DwData {
  bool valid = false;
  ptrdiff_t OH = 0, OW = 0;
  size_t ysize = 0;
  Fenced x, w, bias, R;
  DwData(const DwCase& c, ptrdiff_t planes) {
    const ptrdiff_t eh = c.dh * (c.KH - 1) + 1, ew = c.dw * (c.KW - 1) + 1;
    if (c.H + c.pt + c.pb < eh || c.W + c.pl + c.pr < ew) return;
    valid = true;
    OH = (c.H + c.pt + c.pb - eh) / c.sh + 1;
    OW = (c.W + c.pl + c.pr - ew) / c.sw + 1;
    const ptrdiff_t images = planes == 1 ? c.C : planes;  // channels (NHWC) or planes
    x.alloc(static_cast<size_t>(images * c.H * c.W));
    w.alloc(static_cast<size_t>(c.C * c.KH * c.KW));
    fill(x.p, x.n);
    fill(w.p, w.n);
    if (c.nan) {
      x[irand(static_cast<int>(x.n))] = kNaN;
      x[irand(static_cast<int>(x.n))] = kInf;
    }
    bias.alloc(static_cast<size_t>(c.C));
    fill(bias.p, bias.n);
    ysize = static_cast<size_t>(images * OH * OW);
    R.alloc(c.res ? ysize : 0);
    fill(R.p, R.n, -2.0f, 2.0f);
  }
  Epilogue epilogue(const DwCase& c, ptrdiff_t ldr) const {
    Epilogue ep{};
    ep.bias = c.bias ? bias.p : nullptr;
    ep.residual = c.res ? R.p : nullptr;
    ep.ldr = ldr;
    ep.act = c.act;
    ep.lo = c.lo;
    ep.hi = c.hi;
    ep.residual_after_act = c.res == 2;
    return ep;
  }
};

bool dw_check(const KernelTable& ref, const KernelTable& tst, const DwCase& c, Group& grp) {
  set_case("dwconv H=%td W=%td C=%td K=%tdx%td s=%td,%td pads=%td,%td,%td,%td d=%td,%td bias=%d "
           "res=%d act=%s split=%d nan=%d",
           c.H, c.W, c.C, c.KH, c.KW, c.sh, c.sw, c.pt, c.pl, c.pb, c.pr, c.dh, c.dw, c.bias, c.res,
           act_name(c.act), c.split, c.nan);
  DwData d(c, 1);
  if (!d.valid) return true;  // kernel larger than the padded input: skip
  const ptrdiff_t OH = d.OH, OW = d.OW;
  Fenced &x = d.x, &w = d.w;
  const size_t ysize = d.ysize;
  Guarded yr(ysize), yt(ysize);
  Guarded* outs[2] = {&yr, &yt};
  const KernelTable* tabs[2] = {&ref, &tst};
  kref::Ref f64(0);
  for (int t = 0; t < 2; ++t) {
    const DwConvConfig& k = tabs[t]->f32_dwconv;
    Fenced P(k.packed_bytes(c.KH, c.KW, c.C) / sizeof(float));
    k.pack(w.p, c.KH, c.KW, c.C, P.p);
    const Epilogue ep = d.epilogue(c, c.C);
    DwConvArgs a{};
    a.x = x.p; a.H = c.H; a.W = c.W; a.C = c.C;
    a.w = P.p;
    a.KH = c.KH; a.KW = c.KW; a.sh = c.sh; a.sw = c.sw; a.pt = c.pt; a.pl = c.pl;
    a.dh = c.dh; a.dw = c.dw;
    a.y = outs[t]->p(); a.OH = OH; a.OW = OW;
    a.ep = &ep;
    if (t == 0 && g_f64) {
      f64 = kref::dwconv(a, w.p, ep);
      continue;
    }
    const int split = t == 0 ? 1 : c.split;
    for (int i = split - 1; i >= 0; --i) {  // last range first, like the tests
      const ptrdiff_t r0 = OH * i / split, r1 = OH * (i + 1) / split;
      if (r1 > r0) k.run(&a, r0, r1);
    }
  }
  if (g_f64) return match_f64(f64, yt, ysize, grp, "y");
  bool ok = match_guarded(yr, yt, ysize, rtol_for(c.KH * c.KW), rtol_for(c.KH * c.KW), false, grp, "y");
  return ok;
}

// Shapes of the generic (not unrolled) depthwise paths: KH, KW, sh, sw, dh, dw.
struct DwShape { ptrdiff_t KH, KW, sh, sw, dh, dw; };
const DwShape kDwGenericShapes[] = {{1, 1, 1, 1, 1, 1}, {2, 2, 2, 2, 1, 1}, {3, 3, 1, 1, 2, 2},
                                    {3, 3, 3, 3, 1, 1}, {3, 5, 1, 2, 1, 1}, {7, 7, 1, 1, 1, 1},
                                    {5, 5, 2, 1, 1, 2}, {1, 3, 1, 1, 1, 3}};

// Every activation x bias x residual mode on each base case, then NaN / inf in x.
template <class Check>
void dw_epilogue_group(const char* name, const std::vector<DwCase>& bases, Check check) {
  Group g{name};
  for (const DwCase& s : bases)
    for (Act act : kActs)
      for (int bias = 0; bias < 2; ++bias)
        for (int res = 0; res < 3; ++res) {
          DwCase c = s;
          c.act = act;
          c.bias = bias;
          c.res = res;
          c.split = 3;
          record(g, check(c, g));
        }
  for (Act act : kActs) {
    DwCase c = bases[0];
    c.act = act;
    c.nan = true;
    record(g, check(c, g));
  }
  end_group(g);
}

void test_dwconv(const KernelTable& ref, const KernelTable& tst) {
  const std::vector<ptrdiff_t> Cs = g_small ? std::vector<ptrdiff_t>{1, 7, 16, 17, 33, 48}
                                            : std::vector<ptrdiff_t>{1, 3, 7, 8, 15, 16, 17, 31, 33, 48, 65, 96};
  {
    Group g{"dwconv/fast-3x3-5x5"};
    const std::vector<ptrdiff_t> HWs = g_small ? std::vector<ptrdiff_t>{1, 3, 5, 8, 13}
                                               : std::vector<ptrdiff_t>{1, 2, 3, 4, 5, 7, 8, 13, 14, 29};
    for (ptrdiff_t k : {3, 5})
      for (ptrdiff_t s : {1, 2})
        for (ptrdiff_t hw : HWs)
          for (ptrdiff_t C : Cs)
            for (int padv = 0; padv < 3; ++padv) {
              const ptrdiff_t p = padv == 0 ? 0 : padv == 1 ? k / 2 : 1;
              DwCase c{hw, hw + 2, C, k, k, s, s, p, p, padv == 2 ? 0 : p, p};
              c.act = padv == 1 ? Act::Relu : padv == 2 ? Act::Clip : Act::None;
              c.split = 1 + static_cast<int>((hw + C) % 3);
              record(g, dw_check(ref, tst, c, g));
            }
    end_group(g);
  }
  {
    Group g{"dwconv/generic"};
    for (const DwShape& s : kDwGenericShapes)
      for (ptrdiff_t C : Cs)
        for (ptrdiff_t hw : {5, 11}) {
          DwCase c{hw, hw + 1, C, s.KH, s.KW, s.sh, s.sw, s.KH / 2, s.KW / 2, s.KH / 2, (s.KW - 1) / 2};
          c.dh = s.dh;
          c.dw = s.dw;
          c.bias = C % 2;
          c.split = 2;
          record(g, dw_check(ref, tst, c, g));
        }
    end_group(g);
  }
  dw_epilogue_group("dwconv/epilogue",
                    {{7, 9, 17, 3, 3, 1, 1, 1, 1, 1, 1}, {9, 7, 33, 5, 5, 2, 2, 2, 2, 2, 2},
                     {6, 6, 20, 3, 3, 2, 2, 0, 0, 1, 1}, {5, 5, 16, 2, 3, 1, 1, 1, 1, 0, 1}},
                    [&](const DwCase& c, Group& g) { return dw_check(ref, tst, c, g); });
}

// ======================================================= depthwise conv, CHW planes

// The float64 reference of `planes` CHW planes: each plane is a one-channel NHWC image
// for kref::dwconv, with its channel's weights, bias and residual plane.
kref::Ref dwc_f64(const DwConvChwArgs& a, ptrdiff_t planes, const float* w_onnx,
                  const Epilogue& ep) {
  const ptrdiff_t plane_out = a.OH * a.OW, KK = a.KH * a.KW;
  kref::Ref r(static_cast<size_t>(planes * plane_out));
  for (ptrdiff_t p = 0; p < planes; ++p) {
    const ptrdiff_t c = p % a.C;
    DwConvArgs one{};
    one.x = a.x + p * a.H * a.W; one.H = a.H; one.W = a.W; one.C = 1;
    one.KH = a.KH; one.KW = a.KW; one.sh = a.sh; one.sw = a.sw; one.pt = a.pt; one.pl = a.pl;
    one.dh = a.dh; one.dw = a.dw; one.OH = a.OH; one.OW = a.OW;
    Epilogue e = ep;
    e.bias = ep.bias ? ep.bias + c : nullptr;
    e.residual = ep.residual ? ep.residual + p * plane_out : nullptr;
    e.ldr = 1;  // one channel: row = pixel
    const kref::Ref rp = kref::dwconv(one, w_onnx + c * KK, e);
    for (ptrdiff_t i = 0; i < plane_out; ++i) {
      r.v[size_t(p * plane_out + i)] = rp.v[size_t(i)];
      r.tol[size_t(p * plane_out + i)] = rp.tol[size_t(i)];
    }
  }
  return r;
}

bool dwc_check(const KernelTable& ref, const KernelTable& tst, const DwCase& c, ptrdiff_t planes,
               int plane_split, Group& grp) {
  set_case("dwconv_chw planes=%td H=%td W=%td C=%td K=%tdx%td s=%td,%td pads=%td,%td,%td,%td "
           "d=%td,%td bias=%d res=%d act=%s split=%d,%d nan=%d",
           planes, c.H, c.W, c.C, c.KH, c.KW, c.sh, c.sw, c.pt, c.pl, c.pb, c.pr, c.dh, c.dw,
           c.bias, c.res, act_name(c.act), plane_split, c.split, c.nan);
  DwData d(c, planes);
  if (!d.valid) return true;  // kernel larger than the padded input: skip
  const ptrdiff_t OH = d.OH, OW = d.OW;
  Fenced &x = d.x, &w = d.w;
  const size_t ysize = d.ysize;
  Guarded yr(ysize), yt(ysize);
  Guarded* outs[2] = {&yr, &yt};
  const KernelTable* tabs[2] = {&ref, &tst};
  kref::Ref f64(0);
  for (int t = 0; t < 2; ++t) {
    const DwConvChwConfig& k = tabs[t]->f32_dwconv2d_chw;
    Fenced P(k.packed_bytes(c.KH, c.KW, c.C) / sizeof(float));
    k.pack(w.p, c.KH, c.KW, c.C, P.p);
    const Epilogue ep = d.epilogue(c, OW);
    DwConvChwArgs a{};
    a.x = x.p; a.H = c.H; a.W = c.W; a.C = c.C;
    a.w = P.p;
    a.KH = c.KH; a.KW = c.KW; a.sh = c.sh; a.sw = c.sw; a.pt = c.pt; a.pl = c.pl;
    a.dh = c.dh; a.dw = c.dw;
    a.y = outs[t]->p(); a.OH = OH; a.OW = OW;
    a.ep = &ep;
    if (t == 0 && g_f64) {
      f64 = dwc_f64(a, planes, w.p, ep);
      continue;
    }
    // Scratch of exactly the size asked for (rounded to 64 bytes), ending at a fence.
    Fenced scratch((k.scratch_floats(&a) + 15) / 16 * 16);
    const int ps = t == 0 ? 1 : plane_split, rs = t == 0 ? 1 : c.split;
    for (int i = ps - 1; i >= 0; --i) {  // last range first, like the tests
      const ptrdiff_t p0 = planes * i / ps, p1 = planes * (i + 1) / ps;
      for (int j = rs - 1; j >= 0; --j) {
        const ptrdiff_t r0 = OH * j / rs, r1 = OH * (j + 1) / rs;
        if (p1 > p0 && r1 > r0) k.run(&a, p0, p1, r0, r1, scratch.p);
      }
    }
  }
  if (g_f64) return match_f64(f64, yt, ysize, grp, "y");
  return match_guarded(yr, yt, ysize, rtol_for(c.KH * c.KW), rtol_for(c.KH * c.KW), false, grp, "y");
}

void test_dwconv_chw(const KernelTable& ref, const KernelTable& tst) {
  const std::vector<ptrdiff_t> Ws = g_small ? std::vector<ptrdiff_t>{1, 7, 16, 17, 33}
                                            : std::vector<ptrdiff_t>{1, 2, 3, 7, 8, 15, 16, 17, 29, 31, 32, 33, 47, 65};
  {
    Group g{"dwconv_chw/fast-3x3-5x5"};
    const std::vector<ptrdiff_t> Hs = g_small ? std::vector<ptrdiff_t>{1, 3, 5, 9}
                                              : std::vector<ptrdiff_t>{1, 2, 3, 4, 5, 7, 9, 13};
    for (ptrdiff_t k : {3, 5})
      for (ptrdiff_t s : {1, 2})
        for (ptrdiff_t h : Hs)
          for (ptrdiff_t wd : Ws)
            for (int padv = 0; padv < 3; ++padv) {
              const ptrdiff_t p = padv == 0 ? 0 : padv == 1 ? k / 2 : 1;
              DwCase c{h, wd, 3, k, k, s, s, p, p, padv == 2 ? 0 : p, p};
              c.act = padv == 1 ? Act::Relu : padv == 2 ? Act::Clip : Act::None;
              c.split = 1 + static_cast<int>((h + wd) % 5);
              record(g, dwc_check(ref, tst, c, 5, 1 + static_cast<int>(wd % 3), g));
            }
    end_group(g);
  }
  {
    Group g{"dwconv_chw/generic"};
    std::vector<DwShape> shapes(std::begin(kDwGenericShapes), std::end(kDwGenericShapes));
    shapes.push_back({3, 3, 2, 1, 1, 1});  // row stride != column stride
    shapes.push_back({1, 7, 1, 3, 1, 1});  // column stride 3: three phases
    for (const DwShape& s : shapes)
      for (ptrdiff_t wd : Ws)
        for (ptrdiff_t h : {5, 11}) {
          DwCase c{h, wd, 2, s.KH, s.KW, s.sh, s.sw, s.KH / 2, s.KW / 2, s.KH / 2, (s.KW - 1) / 2};
          c.dh = s.dh;
          c.dw = s.dw;
          c.bias = wd % 2;
          c.split = 2;
          record(g, dwc_check(ref, tst, c, 4, 3, g));
        }
    end_group(g);
  }
  dw_epilogue_group("dwconv_chw/epilogue",
                    {{7, 21, 3, 3, 3, 1, 1, 1, 1, 1, 1}, {9, 33, 3, 5, 5, 2, 2, 2, 2, 2, 2},
                     {6, 17, 3, 3, 3, 2, 2, 0, 0, 1, 1}, {5, 5, 3, 2, 3, 1, 1, 1, 1, 0, 1}},
                    [&](const DwCase& c, Group& g) { return dwc_check(ref, tst, c, 7, 2, g); });
}

// ================================================================== pooling

struct PoolCase {
  ptrdiff_t H, W, C, KH, KW, sh, sw, pt, pl, pb, pr, dh = 1, dw = 1;
  bool cip = false, ceil = false;
  int split = 1;
  bool nan = false;
};

bool pool_check(const KernelTable& ref, const KernelTable& tst, bool is_max, const PoolCase& c,
                Group& grp) {
  set_case("%s H=%td W=%td C=%td K=%tdx%td s=%td,%td pads=%td,%td,%td,%td d=%td,%td cip=%d "
           "ceil=%d split=%d nan=%d",
           is_max ? "maxpool" : "avgpool", c.H, c.W, c.C, c.KH, c.KW, c.sh, c.sw, c.pt, c.pl, c.pb,
           c.pr, c.dh, c.dw, c.cip, c.ceil, c.split, c.nan);
  const ptrdiff_t eh = c.dh * (c.KH - 1) + 1, ew = c.dw * (c.KW - 1) + 1;
  if (c.H + c.pt + c.pb < eh || c.W + c.pl + c.pr < ew) return true;
  auto out = [&](ptrdiff_t n, ptrdiff_t pa, ptrdiff_t pz, ptrdiff_t e, ptrdiff_t st) {
    ptrdiff_t o = c.ceil ? (n + pa + pz - e + st - 1) / st + 1 : (n + pa + pz - e) / st + 1;
    if (c.ceil && (o - 1) * st >= n + pa) --o;
    return o;
  };
  const ptrdiff_t OH = out(c.H, c.pt, c.pb, eh, c.sh), OW = out(c.W, c.pl, c.pr, ew, c.sw);
  Fenced x(static_cast<size_t>(c.H * c.W * c.C));
  fill(x.p, x.n, -3.0f, 3.0f);
  if (c.nan)
    for (int i = 0; i < 3; ++i) {
      x[irand(static_cast<int>(x.n))] = kNaN;
      x[irand(static_cast<int>(x.n))] = i ? kInf : -kInf;
    }
  const size_t ysize = static_cast<size_t>(OH * OW * c.C);
  Guarded yr(ysize), yt(ysize);
  Guarded* outs[2] = {&yr, &yt};
  const KernelTable* tabs[2] = {&ref, &tst};
  kref::Ref f64(0);
  for (int t = 0; t < 2; ++t) {
    PoolArgs a{};
    a.x = x.p; a.H = c.H; a.W = c.W; a.C = c.C;
    a.KH = c.KH; a.KW = c.KW; a.sh = c.sh; a.sw = c.sw; a.pt = c.pt; a.pl = c.pl;
    a.dh = c.dh; a.dw = c.dw;
    a.y = outs[t]->p(); a.OH = OH; a.OW = OW;
    a.count_include_pad = c.cip;
    a.pb = c.pb; a.pr = c.pr;
    if (t == 0 && g_f64) {
      f64 = kref::pool(a, is_max);
      continue;
    }
    const auto fn = is_max ? tabs[t]->f32_pool.maxpool : tabs[t]->f32_pool.avgpool;
    const int split = t == 0 ? 1 : c.split;
    for (int i = split - 1; i >= 0; --i) {
      const ptrdiff_t r0 = OH * i / split, r1 = OH * (i + 1) / split;
      if (r1 > r0) fn(&a, r0, r1);
    }
  }
  if (g_f64) return match_f64(f64, yt, ysize, grp, "y");
  bool ok = match_guarded(yr, yt, ysize, 2e-6 * c.KH * c.KW, 2e-6 * c.KH * c.KW, is_max, grp, "y");
  return ok;
}

void test_pool(const KernelTable& ref, const KernelTable& tst) {
  const std::vector<ptrdiff_t> Cs = g_small ? std::vector<ptrdiff_t>{1, 15, 17, 64, 65}
                                            : std::vector<ptrdiff_t>{1, 3, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 80};
  struct S { ptrdiff_t KH, KW, sh, sw, pt, pl, pb, pr, dh, dw; };
  const S shapes[] = {{1, 1, 1, 1, 0, 0, 0, 0, 1, 1}, {2, 2, 2, 2, 0, 0, 0, 0, 1, 1},
                      {3, 3, 2, 2, 1, 1, 1, 1, 1, 1}, {3, 3, 1, 1, 1, 1, 1, 1, 1, 1},
                      {3, 3, 2, 2, 0, 0, 1, 1, 1, 1}, {5, 5, 3, 3, 2, 2, 2, 2, 1, 1},
                      {2, 3, 1, 2, 1, 0, 0, 2, 1, 1}, {3, 3, 1, 1, 2, 2, 2, 2, 2, 2},
                      {7, 7, 1, 1, 0, 0, 0, 0, 1, 1}, {4, 4, 3, 3, 3, 3, 3, 3, 1, 1}};
  for (int is_max = 1; is_max >= 0; --is_max) {
    Group g{is_max ? "pool/max" : "pool/avg"};
    for (const S& s : shapes)
      for (ptrdiff_t C : Cs)
        for (ptrdiff_t hw : {1, 4, 7, 10})
          for (int ceil = 0; ceil < 2; ++ceil)
            for (int cip = 0; cip < (is_max ? 1 : 2); ++cip)
              for (int nan = 0; nan < (is_max ? 2 : 1); ++nan) {
                PoolCase c{hw, hw + 1, C, s.KH, s.KW, s.sh, s.sw, s.pt, s.pl, s.pb, s.pr, s.dh, s.dw};
                c.ceil = ceil;
                c.cip = cip;
                c.nan = nan;
                c.split = 1 + static_cast<int>((C + hw) % 3);
                record(g, pool_check(ref, tst, is_max, c, g));
              }
    end_group(g);
  }
  {
    Group g{"pool/global_avg"};
    for (ptrdiff_t HW : {1, 2, 7, 49, 50, 197})
      for (ptrdiff_t C : Cs) {
        set_case("global_avgpool HW=%td C=%td", HW, C);
        Fenced x(static_cast<size_t>(HW * C));
        fill(x.p, x.n);
        Guarded yr(C), yt(C);
        tst.f32_pool.global_avgpool(x.p, HW, C, yt.p());
        bool ok;
        if (g_f64) {
          ok = match_f64(kref::global_avgpool(x.p, HW, C), yt, C, g, "y");
        } else {
          ref.f32_pool.global_avgpool(x.p, HW, C, yr.p());
          ok = match_guarded(yr, yt, C, rtol_for(HW), rtol_for(HW), false, g, "y");
        }
        record(g, ok);
      }
    end_group(g);
  }
}

// ================================================================== elementwise

std::vector<ptrdiff_t> elt_sizes() {
  std::vector<ptrdiff_t> n = {0, 1, 2, 3, 5, 7, 8, 9, 13, 15, 16, 17, 31, 32, 33, 47, 48, 63, 64, 65, 97, 127, 128, 129};
  if (!g_small) n.insert(n.end(), {255, 256, 257, 1000, 4097});
  return n;
}

// Values that hurt activations: zeros, huge, tiny, inf, NaN, around the polynomial
// switch points, plus random ones in a wide range.
void fill_act_inputs(float* p, size_t n) {
  static const float special[] = {0.0f, -0.0f, 1e-30f, -1e-30f, 1e-40f, 0.625f, -0.625f,
                                  0.62f, 0.63f, 1.0f, -1.0f, 4.0f, -4.0f, 9.0f, -9.0f,
                                  20.0f, -20.0f, 44.0f, -44.0f, 88.0f, -88.0f, 89.0f, -89.0f,
                                  104.0f, -104.0f, 200.0f, -200.0f, 3e38f, -3e38f,
                                  kInf, -kInf, kNaN};
  const size_t ns = sizeof special / sizeof special[0];
  for (size_t i = 0; i < n; ++i) {
    const int r = irand(4);
    p[i] = r == 0 ? special[irand(static_cast<int>(ns))] : r == 1 ? urand(-12.0f, 12.0f) : urand(-2.0f, 2.0f);
  }
}

void test_eltwise(const KernelTable& ref, const KernelTable& tst) {
  {
    Group g{"eltwise/add"};
    for (ptrdiff_t n : elt_sizes())
      for (int sa = 0; sa < 2; ++sa)
        for (int sb = 0; sb < 2; ++sb) {
          set_case("add n=%td sa=%d sb=%d", n, sa, sb);
          Fenced a(sa ? n : 1), b(sb ? n : 1);
          fill(a.p, a.n);
          fill(b.p, b.n);
          if (n > 3 && sa) a[n / 2] = kNaN;
          Guarded yr(n), yt(n);
          tst.f32_eltwise.add(n, a.p, sa, b.p, sb, yt.p());
          bool ok;
          if (g_f64) {
            ok = match_f64(kref::add(n, a.p, sa, b.p, sb), yt, n, g, "y");
          } else {
            ref.f32_eltwise.add(n, a.p, sa, b.p, sb, yr.p());
            ok = match_guarded(yr, yt, n, 0, 0, true, g, "y");
          }
          record(g, ok);
        }
    end_group(g);
  }
  {
    Group g{"eltwise/activation"};
    for (ptrdiff_t n : elt_sizes())
      for (Act act : kActs)
        for (int inplace = 0; inplace < 2; ++inplace) {
          const float lo = act == Act::Clip && n % 5 == 3 ? 0.5f : -0.75f;  // lo > hi once
          const float hi = act == Act::Clip && n % 5 == 3 ? -0.5f : 1.25f;
          set_case("activation n=%td act=%s lo=%g hi=%g inplace=%d", n, act_name(act), lo, hi, inplace);
          Fenced x(n);
          fill_act_inputs(x.p, x.n);
          Guarded yr(n), yt(n);
          ref.f32_eltwise.activation(n, x.p, yr.p(), act, lo, hi);
          if (inplace) {
            Fenced xy(n);
            if (n) std::memcpy(xy.p, x.p, 4 * n);
            tst.f32_eltwise.activation(n, xy.p, xy.p, act, lo, hi);
            if (n) std::memcpy(yt.p(), xy.p, 4 * n);
          } else {
            tst.f32_eltwise.activation(n, x.p, yt.p(), act, lo, hi);
          }
          const bool exact = act == Act::None || act == Act::Relu || act == Act::Clip;
          bool ok = g_f64 ? match_f64(kref::activation(n, x.p, act, lo, hi), yt, n, g, "y")
                          : match_guarded(yr, yt, n, 1e-5, 1e-6, exact, g, "y");
          record(g, ok);
        }
    end_group(g);
  }
  {
    Group g{"eltwise/epilogue"};
    const std::vector<ptrdiff_t> rows = {1, 2, 5}, cols = g_small
        ? std::vector<ptrdiff_t>{1, 7, 16, 17, 33, 65}
        : std::vector<ptrdiff_t>{1, 3, 7, 8, 15, 16, 17, 31, 33, 64, 65, 130};
    for (ptrdiff_t r : rows)
      for (ptrdiff_t cN : cols)
        for (Act act : kActs)
          for (int bias = 0; bias < 2; ++bias)
            for (int res = 0; res < 3; ++res) {
              const ptrdiff_t pad = (r + cN) % 3, ld = cN + pad, ldr = cN + pad + 1;
              set_case("epilogue rows=%td cols=%td ld=%td ldr=%td act=%s bias=%d res=%d", r, cN,
                       ld, ldr, act_name(act), bias, res);
              const size_t ysize = static_cast<size_t>((r - 1) * ld + cN);
              std::vector<float> y0(ysize);
              fill_act_inputs(y0.data(), ysize);
              Fenced b(cN), R(static_cast<size_t>((r - 1) * ldr + cN));
              fill(b.p, b.n);
              fill(R.p, R.n, -2.0f, 2.0f);
              Epilogue ep{};
              ep.bias = bias ? b.p : nullptr;
              ep.residual = res ? R.p : nullptr;
              ep.ldr = ldr;
              ep.act = act;
              ep.lo = -0.75f;
              ep.hi = 1.25f;
              ep.residual_after_act = res == 2;
              Guarded yr(ysize), yt(ysize);
              std::memcpy(yr.p(), y0.data(), 4 * ysize);
              std::memcpy(yt.p(), y0.data(), 4 * ysize);
              // keep the padding between rows at a sentinel: it must not be touched
              for (ptrdiff_t i = 0; i < r - 1; ++i)
                for (ptrdiff_t j = cN; j < ld; ++j) yr.p()[i * ld + j] = yt.p()[i * ld + j] = kSentinel;
              tst.f32_eltwise.epilogue(r, cN, yt.p(), ld, &ep);
              bool ok;
              if (g_f64) {
                kref::Ref f(ysize);
                for (ptrdiff_t i = 0; i < r; ++i)
                  for (ptrdiff_t j = 0; j < cN; ++j)
                    kref::finish(y0[i * ld + j], 0.0, i, j, ep, &f.v[i * ld + j], &f.tol[i * ld + j]);
                keep_gaps(f, yr.p(), r, cN, ld);
                ok = match_f64(f, yt, ysize, g, "y");
              } else {
                ref.f32_eltwise.epilogue(r, cN, yr.p(), ld, &ep);
                const bool exact = act == Act::None || act == Act::Relu || act == Act::Clip;
                ok = match_guarded(yr, yt, ysize, 1e-5, 1e-6, exact, g, "y");
              }
              record(g, ok);
            }
    end_group(g);
  }
  {
    Group g{"eltwise/softmax"};
    const std::vector<ptrdiff_t> cols = g_small
        ? std::vector<ptrdiff_t>{1, 2, 3, 7, 15, 16, 17, 31, 32, 33, 47, 65, 100}
        : std::vector<ptrdiff_t>{1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 47, 48, 63, 64, 65, 100, 1000, 1001};
    for (ptrdiff_t cN : cols)
      for (ptrdiff_t r : {1, 3})
        for (int mode = 0; mode < 5; ++mode)
          for (int inplace = 0; inplace < 2; ++inplace) {
            // mode 0: N(0,1)-ish, 1: large (+-80), 2: some -inf, 3: a NaN, 4: a +inf
            set_case("softmax rows=%td cols=%td mode=%d inplace=%d", r, cN, mode, inplace);
            const size_t n = static_cast<size_t>(r * cN);
            Fenced x(n);
            fill(x.p, n, mode == 1 ? -80.0f : -3.0f, mode == 1 ? 80.0f : 3.0f);
            if (mode >= 2)
              for (ptrdiff_t i = 0; i < r; ++i) {
                const size_t j = static_cast<size_t>(i * cN + irand(static_cast<int>(cN)));
                x[j] = mode == 2 ? -kInf : mode == 3 ? kNaN : kInf;
              }
            Guarded yr(n), yt(n);
            if (!g_f64) ref.f32_eltwise.softmax(r, cN, x.p, yr.p());
            if (inplace) {
              Fenced xy(n);
              std::memcpy(xy.p, x.p, 4 * n);
              tst.f32_eltwise.softmax(r, cN, xy.p, xy.p);
              std::memcpy(yt.p(), xy.p, 4 * n);
            } else {
              tst.f32_eltwise.softmax(r, cN, x.p, yt.p());
            }
            bool ok = g_f64 ? match_f64(kref::softmax(r, cN, x.p), yt, n, g, "y")
                            : match_guarded(yr, yt, n, 2e-5 + 1e-6 * std::sqrt(double(cN)), 1e-7, false, g, "y");
            record(g, ok);
          }
    end_group(g);
  }
}

// ================================================================== transpose

void test_transpose(const KernelTable& ref, const KernelTable& tst) {
  Group g{"transpose"};
  const std::vector<ptrdiff_t> sz = g_small ? std::vector<ptrdiff_t>{1, 2, 7, 8, 9, 16, 17, 33}
                                            : std::vector<ptrdiff_t>{1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 33, 64, 100};
  for (ptrdiff_t rows : sz)
    for (ptrdiff_t cols : sz)
      for (ptrdiff_t pad : {0, 3}) {
        const ptrdiff_t ldx = cols + (pad ? 1 : 0), ldy = rows + pad;
        set_case("transpose rows=%td cols=%td ldx=%td ldy=%td", rows, cols, ldx, ldy);
        Fenced x(static_cast<size_t>((rows - 1) * ldx + cols));
        fill(x.p, x.n);
        const size_t ysize = static_cast<size_t>((cols - 1) * ldy + rows);
        Guarded yr(ysize), yt(ysize);
        if (g_f64) {  // the definition: y[c * ldy + r] = x[r * ldx + c]
          for (ptrdiff_t r = 0; r < rows; ++r)
            for (ptrdiff_t c = 0; c < cols; ++c) yr.p()[c * ldy + r] = x[r * ldx + c];
        } else {
          ref.x32_transpose.transpose(rows, cols, x.p, ldx, yr.p(), ldy);
        }
        tst.x32_transpose.transpose(rows, cols, x.p, ldx, yt.p(), ldy);
        bool ok = match_guarded(yr, yt, ysize, 0, 0, true, g, "y");
        record(g, ok);
      }
  end_group(g);
}

// ================================================================= qspmm

// qc8w_spmm's row kernel (int8 values, per-channel scales) against float64 loops on the
// int8 values times the scales; packed weights end at a no-access page.
void test_qspmm(const KernelTable& tst) {
  Group g{"qspmm"};
  const QSpmmConfig& s = tst.qc8w_spmm;
  const std::vector<ptrdiff_t> Ks = g_small ? std::vector<ptrdiff_t>{1, 17, 64}
                                            : std::vector<ptrdiff_t>{1, 2, 17, 64, 301};
  const std::vector<ptrdiff_t> Ns = g_small ? std::vector<ptrdiff_t>{1, 16, 37}
                                            : std::vector<ptrdiff_t>{1, 5, 16, 37, 64};
  for (ptrdiff_t K : Ks)
    for (ptrdiff_t N : Ns)
      for (int32_t R : {1, 2, 4, 8, 16})
        for (float density : {0.0f, 0.1f, 0.6f, 1.0f}) {
          std::vector<int8_t> Q(size_t(K * N));
          for (auto& q : Q) q = urand(0, 1) < density ? int8_t(std::lround(urand(-127, 127))) : int8_t(0);
          std::vector<float> sc(static_cast<size_t>(N));
          for (auto& v : sc) v = urand(0.001f, 0.1f);
          Fenced packed(s.packed_bytes(K, N, Q.data(), N, R) / sizeof(float));
          s.pack(K, N, Q.data(), N, sc.data(), R, packed.p);
          const ptrdiff_t G = (N + R - 1) / R, gs = G / 2;
          set_case("qspmv K=%td N=%td R=%d density=%.1f", K, N, R, double(density));
          Fenced x{size_t(K)};
          fill(x.p, x.n);
          Guarded y{size_t(N)};
          s.spmv(x.p, packed.p, y.p(), 0, gs);
          s.spmv(x.p, packed.p, y.p(), gs, G);
          kref::Ref r{size_t(N)};
          for (ptrdiff_t c = 0; c < N; ++c) {
            double v = 0, mag = 0;
            for (ptrdiff_t k = 0; k < K; ++k) {
              const double w = double(Q[size_t(k * N + c)]) * double(sc[size_t(c)]);
              v += double(x[k]) * w;
              mag += std::fabs(double(x[k]) * w);
            }
            r.v[c] = v;
            r.tol[c] = rtol_for(K + 1) * mag + 1e-30;
          }
          record(g, match_f64(r, y, size_t(N), g, "y"));
        }
  end_group(g);
}

// ================================================================== spmm

// Always against float64 loops on the dense B: the scalar table's tile width differs from
// the SIMD ones', so its At/Ct layouts are not comparable. Packed weights end at a
// no-access page like every input.
void test_spmm(const KernelTable& tst) {
  Group g{"spmm"};
  const SpmmConfig& s = tst.f32_spmm;
  const ptrdiff_t mt = s.mt;
  const std::vector<ptrdiff_t> Ks = g_small ? std::vector<ptrdiff_t>{1, 17, 64}
                                            : std::vector<ptrdiff_t>{1, 2, 17, 64, 301};
  const std::vector<ptrdiff_t> Ns = g_small ? std::vector<ptrdiff_t>{1, 16, 37}
                                            : std::vector<ptrdiff_t>{1, 5, 16, 37, 64};
  for (ptrdiff_t K : Ks)
    for (ptrdiff_t N : Ns)
      for (int32_t R : {1, 2, 4, 8, 16})
        for (float density : {0.0f, 0.1f, 0.6f, 1.0f}) {
          std::vector<float> B(size_t(K * N));
          for (auto& b : B) b = urand(0, 1) < density ? urand(-1, 1) : 0.0f;
          const size_t bytes = s.packed_bytes(K, N, B.data(), N, R);
          Fenced packed(bytes / sizeof(float));
          s.pack(K, N, B.data(), N, R, packed.p);
          const ptrdiff_t G = (N + R - 1) / R;
          const ptrdiff_t gs = G / 2;  // two group ranges, as threads split them
          // spmv: one row
          set_case("spmv K=%td N=%td R=%d density=%.1f", K, N, R, double(density));
          Fenced x{size_t(K)};
          fill(x.p, x.n);
          Guarded y{size_t(N)};
          s.spmv(x.p, packed.p, y.p(), 0, gs);
          s.spmv(x.p, packed.p, y.p(), gs, G);
          kref::Ref r{size_t(N)};
          for (ptrdiff_t c = 0; c < N; ++c) {
            double v = 0, mag = 0;
            for (ptrdiff_t k = 0; k < K; ++k) {
              v += double(x[k]) * B[k * N + c];
              mag += std::fabs(double(x[k]) * B[k * N + c]);
            }
            r.v[c] = v;
            r.tol[c] = rtol_for(K) * mag + 1e-30;
          }
          record(g, match_f64(r, y, size_t(N), g, "y"));
          // spmm: a tile of `cols` rows, channel-major
          for (ptrdiff_t cols : {ptrdiff_t(1), ptrdiff_t(3), mt / 4 + 1, mt / 2 + 1, mt - 1, mt}) {
            set_case("spmm K=%td N=%td R=%d density=%.1f cols=%td", K, N, R, double(density), cols);
            Fenced at(size_t(K * mt));
            fill(at.p, at.n);
            const size_t csize = size_t(G * R * mt);
            Guarded ct(csize);
            s.spmm(at.p, cols, packed.p, ct.p(), 0, gs);
            s.spmm(at.p, cols, packed.p, ct.p() + gs * R * mt, gs, G);
            kref::Ref rc(csize);
            for (ptrdiff_t row = 0; row < G * R; ++row)
              for (ptrdiff_t j = 0; j < mt; ++j) {
                const size_t i = size_t(row * mt + j);
                if (j >= cols) {  // lanes past the tile: unspecified
                  rc.v[i] = ct.p()[i];
                  continue;
                }
                double v = 0, mag = 0;
                if (row < N)
                  for (ptrdiff_t k = 0; k < K; ++k) {
                    v += double(at[k * mt + j]) * B[k * N + row];
                    mag += std::fabs(double(at[k * mt + j]) * B[k * N + row]);
                  }
                rc.v[i] = v;
                rc.tol[i] = rtol_for(K) * mag + 1e-30;
              }
            record(g, match_f64(rc, ct, csize, g, "Ct"));
          }
          // spmm_nhwc: row-major rows, groups that fill vectors
          if (s.spmm_nhwc && s.nhwc_r > 0 && R % s.nhwc_r == 0)
            for (ptrdiff_t rows : {ptrdiff_t(1), ptrdiff_t(5), ptrdiff_t(8), ptrdiff_t(19)}) {
              set_case("spmm_nhwc K=%td N=%td R=%d density=%.1f rows=%td", K, N, R, double(density), rows);
              const ptrdiff_t lda = K + 3;
              Fenced a{size_t((rows - 1) * lda + K)};
              fill(a.p, a.n);
              Guarded c{size_t(rows * N)};
              s.spmm_nhwc(a.p, lda, rows, packed.p, c.p(), N, 0, gs);
              s.spmm_nhwc(a.p, lda, rows, packed.p, c.p(), N, gs, G);
              kref::Ref rn{size_t(rows * N)};
              for (ptrdiff_t m = 0; m < rows; ++m)
                for (ptrdiff_t col = 0; col < N; ++col) {
                  double v = 0, mag = 0;
                  for (ptrdiff_t k = 0; k < K; ++k) {
                    v += double(a[m * lda + k]) * B[k * N + col];
                    mag += std::fabs(double(a[m * lda + k]) * B[k * N + col]);
                  }
                  rn.v[size_t(m * N + col)] = v;
                  rn.tol[size_t(m * N + col)] = rtol_for(K) * mag + 1e-30;
                }
              record(g, match_f64(rn, c, size_t(rows * N), g, "C"));
            }
        }
  end_group(g);
}

// ================================================================== QGEMM
// qs8_qc8w_gemm: every variant of the table's level this CPU runs (the VNNI one and the
// one without), against the scalar table (or, for scalar, int64 loops). The int32
// accumulator (scales 1, float output) must match exactly; the epilogue too (the same
// float operations in the same order; libm activations in both), uint8 outputs included.
// A ends at a PROT_NONE page (a row read past its K bytes faults on the last row);
// outputs have padded rows and guard bytes that must survive.

struct QCase {
  ptrdiff_t M, N, K;
  int mode;  // 0: accumulator (scale 1, zp random), 1: float epilogue, 2: uint8 out
  Act act;
  int res;   // 0 none, 1 / 2 float before / after act, 3 / 4 uint8 before / after
  int per_row;
  int n_split;
  int maxima;  // 1 / -1: A all 255, B all +127 / -127; 2: A of 0 and 255, B of +-127
};

// Runs g on column blocks (last first) into a guarded byte buffer; returns the bytes.
std::vector<unsigned char> qgemm_out(const QGemmConfig& g, const QCase& c, const uint8_t* A,
                                     const std::vector<int8_t>& B, const QGemmEpilogue& ep,
                                     bool* guards_ok) {
  const size_t esz = ep.out_u8 ? 1 : 4;
  const ptrdiff_t ldc = c.N + 3;
  const size_t guard = 64;
  std::vector<unsigned char> buf(guard * 2 + size_t(c.M * ldc) * esz, 0xA5);
  std::vector<unsigned char> packed(g.packed_bytes(c.K, c.N) + 64 + 64, 0xA5);
  unsigned char* pk = packed.data() + (64 - reinterpret_cast<uintptr_t>(packed.data()) % 64) % 64;
  g.pack(c.K, c.N, B.data(), c.N, pk);
  const ptrdiff_t panels = (c.N + g.nr - 1) / g.nr;
  for (int i = c.n_split - 1; i >= 0; --i) {
    const ptrdiff_t q0 = panels * i / c.n_split, q1 = panels * (i + 1) / c.n_split;
    const ptrdiff_t n0 = q0 * g.nr, n1 = q1 * g.nr < c.N ? q1 * g.nr : c.N;
    if (n1 > n0) g.run(c.M, c.N, c.K, A, c.K, pk, buf.data() + guard, ldc, &ep, n0, n1);
  }
  bool ok = true;
  for (size_t i = 0; i < guard; ++i) ok = ok && buf[i] == 0xA5 && buf[buf.size() - 1 - i] == 0xA5;
  for (ptrdiff_t m = 0; m < c.M; ++m)
    for (size_t b = size_t(c.N) * esz; b < size_t(ldc) * esz; ++b)
      ok = ok && buf[guard + size_t(m * ldc) * esz + b] == 0xA5;
  *guards_ok = ok;
  std::vector<unsigned char> out(size_t(c.M * c.N) * esz);
  for (ptrdiff_t m = 0; m < c.M; ++m)
    std::memcpy(out.data() + size_t(m * c.N) * esz, buf.data() + guard + size_t(m * ldc) * esz,
                size_t(c.N) * esz);
  return out;
}

void test_qgemm_one(const QGemmConfig& ref, const QGemmConfig& tst, Group& g) {
  std::vector<QCase> cases;
  const ptrdiff_t Ms[] = {1, 2, 3, 4, 5, 7, 8, 9, 13, 64, 131};
  const ptrdiff_t Ks[] = {1, 3, 4, 5, 17, 64, 255, 1031};
  const ptrdiff_t Ns[] = {1, 7, 16, 17, 33, 100, 257};
  int i = 0;
  for (ptrdiff_t M : Ms)
    for (ptrdiff_t K : Ks) {
      const ptrdiff_t N = Ns[i++ % 7];
      if (g_small && M * K * N > 200000) continue;
      cases.push_back({M, N, K, 0, Act::None, 0, 1, 1 + i % 3, 0});
    }
  // res: 0 none, 1 / 2 float before / after the activation, 3 / 4 uint8 before / after
  for (Act act : kActs)
    for (int res = 0; res < 5; ++res)
      for (int mode = 1; mode <= 2; ++mode)
        cases.push_back({ptrdiff_t(1 + (res * 5 + mode) % 13), 45, 37, mode, act, res, mode == 1, 2, 0});
  // The lean whole-tile paths: tile_u8 (one scale and zero point, uint8 out, no residual
  // or a uint8 one before the activation) and tile_f32 (float out, no residual, per-row
  // or per-tensor scales): full and partial panels (N = 16, 24: one vector, one and a
  // half), short K (the 1x1 convolutions), rows past the tiles, two column blocks.
  const ptrdiff_t lean_tiles[][3] = {{8, 16, 16}, {17, 24, 4}, {24, 96, 24},  // M, N, K
                                     {41, 144, 37}, {16, 45, 1}, {33, 64, 96}};
  for (Act act : {Act::None, Act::Relu, Act::Clip})
    for (const auto& d : lean_tiles) {
      for (int res : {0, 3, 4})
        cases.push_back({d[0], d[1], d[2], 2, act, res, 0, 1 + int(d[0] % 2), 0});
      for (int per_row : {0, 1})
        cases.push_back({d[0], d[1], d[2], 1, act, 0, per_row, 1 + int(d[0] % 2), 0});
    }
  cases.push_back({3, 33, g_small ? 257 : 4099, 0, Act::None, 0, 0, 1, 1});
  cases.push_back({9, 17, g_small ? 257 : 4099, 0, Act::None, 0, 0, 1, -1});
  // a - 128 = -128 and 127 against +-127 (the AVX2 kernel's pair sums at their limits)
  cases.push_back({7, 41, g_small ? 259 : 4099, 0, Act::None, 0, 0, 1, 2});
  cases.push_back({4, 40, 1031, 2, Act::Relu, 0, 1, 2, 2});
  for (const QCase& c : cases) {
    set_case("qgemm %s M=%td N=%td K=%td mode=%d act=%s res=%d split=%d", tst.name, c.M, c.N, c.K,
             c.mode, act_name(c.act), c.res, c.n_split);
    const size_t abytes = size_t(c.M * c.K);
    Fenced fa((abytes + 3) / 4 + 1);
    uint8_t* A = reinterpret_cast<uint8_t*>(fa.p + fa.n) - abytes;  // ends at the fence
    std::vector<int8_t> B(size_t(c.K * c.N));
    for (size_t j = 0; j < abytes; ++j)
      A[j] = c.maxima == 2 ? (j % 3 == 0 || irand(2) ? 0 : 255) : c.maxima ? 255 : uint8_t(irand(256));
    for (size_t j = 0; j < B.size(); ++j)
      B[j] = c.maxima == 2 ? int8_t(j % 5 == 0 || irand(2) ? 127 : -127)
                           : c.maxima ? int8_t(127 * c.maxima) : int8_t(irand(255) - 127);
    std::vector<float> as(size_t(c.M)), ws(size_t(c.N)), bias(size_t(c.N)), res(size_t(c.M * c.N));
    std::vector<uint8_t> resq(size_t(c.M * c.N));
    for (auto& v : resq) v = uint8_t(irand(256));
    std::vector<int32_t> zp(size_t(c.M));
    for (auto& v : as) v = c.mode ? urand(0.005f, 0.02f) : 1.0f;
    for (auto& v : ws) v = c.mode ? urand(0.0005f, 0.001f) : 1.0f;
    for (auto& v : zp) v = c.maxima ? 0 : irand(256);
    fill(bias.data(), bias.size());
    fill(res.data(), res.size());
    QGemmEpilogue ep{};
    ep.a_scale = as.data();
    ep.a_zp = zp.data();
    ep.a_stride = c.per_row || c.mode == 0 ? 1 : 0;
    ep.w_scale = ws.data();
    ep.bias = c.mode ? bias.data() : nullptr;
    ep.residual = c.res == 1 || c.res == 2 ? res.data() : nullptr;
    ep.residual_u8 = c.res >= 3 ? resq.data() : nullptr;
    ep.res_scale = 0.013f;
    ep.res_zp = 90;
    ep.ldr = c.N;
    ep.residual_after_act = c.res == 2 || c.res == 4;
    ep.act = c.act;
    ep.lo = -0.3f;
    ep.hi = 0.4f;
    ep.out_u8 = c.mode == 2;
    ep.out_scale = 0.01f;
    ep.out_zp = 77;
    bool gok = true, rok = true;
    const std::vector<unsigned char> got = qgemm_out(tst, c, A, B, ep, &gok);
    std::vector<unsigned char> want;
    if (g_f64) {  // scalar: int64 loops for the accumulator, the table itself otherwise
      if (c.mode != 0) { record(g, gok); continue; }
      want.resize(got.size());
      for (ptrdiff_t m = 0; m < c.M; ++m)
        for (ptrdiff_t n = 0; n < c.N; ++n) {
          int64_t s = 0;
          for (ptrdiff_t k = 0; k < c.K; ++k) s += (int64_t(A[m * c.K + k]) - zp[size_t(m)]) * B[size_t(k * c.N + n)];
          const float f = float(s);
          std::memcpy(want.data() + size_t(m * c.N + n) * 4, &f, 4);
        }
    } else {
      want = qgemm_out(ref, c, A, B, ep, &rok);
    }
    bool ok = gok && rok && want.size() == got.size();
    const bool libm = c.act == Act::Sigmoid || c.act == Act::Tanh || c.act == Act::Gelu;
    for (size_t j = 0; ok && j < got.size(); j += c.mode == 2 ? 1 : 4) {
      if (c.mode == 2) {
        ok = got[j] == want[j] || (libm && std::abs(int(got[j]) - int(want[j])) <= 1);
        if (!ok) printf("  MISMATCH [%s] %s: u8 index %zu: scalar %d, got %d\n", g.name.c_str(), g_case, j, want[j], got[j]);
      } else {
        float x, r;
        std::memcpy(&x, got.data() + j, 4);
        std::memcpy(&r, want.data() + j, 4);
        ok = x == r || (libm && std::fabs(double(x) - r) <= 1e-6 * (1 + std::fabs(double(r))));
        if (!ok) printf("  MISMATCH [%s] %s: index %zu: scalar %.9g, got %.9g\n", g.name.c_str(), g_case, j / 4, r, x);
      }
    }
    if (!gok) printf("  MISMATCH [%s] %s: wrote outside C\n", g.name.c_str(), g_case);
    record(g, ok);
  }
  // quantize_rows: exactly the scalar's, rows ending at the fence.
  for (ptrdiff_t K : {ptrdiff_t(1), ptrdiff_t(7), ptrdiff_t(16), ptrdiff_t(17), ptrdiff_t(100), ptrdiff_t(1031)}) {
    set_case("qgemm quantize_rows %s K=%td", tst.name, K);
    const ptrdiff_t M = 6;
    Fenced x(size_t(M * K));
    fill(x.p, x.n, -3.0f, 2.0f);
    for (ptrdiff_t k = 0; k < K; ++k) { x[size_t(K + k)] = 0.0f; x[size_t(2 * K + k)] = 1.5f; x[size_t(3 * K + k)] = -urand(0.1f, 1.0f); }
    std::vector<uint8_t> q1(size_t(M * K) + 64, 0xA5), q2(size_t(M * K) + 64, 0xA5);
    std::vector<float> s1(static_cast<size_t>(M)), s2(static_cast<size_t>(M));
    std::vector<int32_t> z1(static_cast<size_t>(M)), z2(static_cast<size_t>(M));
    tst.quantize_rows(M, K, x.p, K, q1.data(), K, s1.data(), z1.data());
    const QGemmConfig& r = g_f64 ? tst : ref;
    r.quantize_rows(M, K, x.p, K, q2.data(), K, s2.data(), z2.data());
    const bool ok = q1 == q2 && s1 == s2 && z1 == z2;
    if (!ok) printf("  MISMATCH [%s] %s\n", g.name.c_str(), g_case);
    record(g, ok);
    // quantize (static): the same rows with one scale / zero point, exactly the scalar's
    set_case("qgemm quantize %s K=%td", tst.name, K);
    std::vector<uint8_t> p1(size_t(M * K) + 64, 0xA5), p2(size_t(M * K) + 64, 0xA5);
    tst.quantize(M, K, x.p, K, p1.data(), K, 0.0173f, 131);
    r.quantize(M, K, x.p, K, p2.data(), K, 0.0173f, 131);
    const bool sok = p1 == p2;
    if (!sok) printf("  MISMATCH [%s] %s\n", g.name.c_str(), g_case);
    record(g, sok);
  }
}

void test_qgemm(const KernelTable& ref, const KernelTable& tst) {
  const uint32_t have = cpu_features().usable();
  for (const KernelVariant& v : kernel_variants()) {
    if (std::string(v.entry) != "qs8_qc8w_gemm" || v.level != tst.isa || (v.needs & have) != v.needs)
      continue;
    KernelTable t{};
    v.fill(t);
    Group g;
    g.name = std::string("qgemm/") + t.qs8_qc8w_gemm.name;
    test_qgemm_one(ref.qs8_qc8w_gemm, t.qs8_qc8w_gemm, g);
    end_group(g);
  }
  if (tst.isa == Isa::Avx2) {  // the AVX-VNNI tile, vpdpbusd emulated (runs on AVX2)
    const QGemmConfig emu = qs8_qc8w_gemm_avxvnni_emu_testing();
    Group g;
    g.name = std::string("qgemm/") + emu.name;
    test_qgemm_one(ref.qs8_qc8w_gemm, emu, g);
    end_group(g);
  }
}

// qu8_dwconv: the table's variant against the scalar table (or, for scalar, int64 loops).
// The integer accumulator (scales 1, float output) must match exactly, and so must the
// float and uint8 epilogues (the same float operations in the same order) except the
// vector-math sigmoid/tanh/gelu (1e-6 relative / one uint8 step). The image (pixels at
// the 4-byte padded stride) ends at a PROT_NONE page; outputs have guard elements past C
// in every pixel and guard bytes around the buffer. Rows run as split calls, last first.

struct QdwCase {
  ptrdiff_t C, H, W, KH, KW, sh, sw, pt, pl, pb, pr, dh, dw;
  int mode;  // 0: accumulator, 1: float epilogue, 2: uint8 out
  Act act;
  int res;   // 0 none, 1 / 2 float before / after act, 3 / 4 uint8 before / after
  int split;
  int maxima;  // x all 255, w all +-127 (zp 0); with zp 255: x all 0
  int zp = -1;           // activation zero point; -1: random
  float oscale = 0.01f;  // uint8 output scale (0.0005: past the +-512-step clamps)
};

std::vector<unsigned char> qdw_out(const QDwConvConfig& k, const QdwCase& c, const uint8_t* x,
                                   const std::vector<int8_t>& w, const QGemmEpilogue& ep,
                                   ptrdiff_t OH, ptrdiff_t OW, bool* guards_ok) {
  const size_t esz = ep.out_u8 ? 1 : 4;
  const ptrdiff_t ldy = c.C + 3;
  const size_t guard = 64;
  std::vector<unsigned char> buf(guard * 2 + size_t(OH * OW * ldy) * esz, 0xA5);
  std::vector<unsigned char> packed(k.packed_bytes(c.KH, c.KW, c.C) + 64 + 64, 0xA5);
  unsigned char* pk = packed.data() + (64 - reinterpret_cast<uintptr_t>(packed.data()) % 64) % 64;
  k.pack(w.data(), c.KH, c.KW, c.C, pk);
  QDwConvArgs a{};
  a.x = x;
  a.ldx = (c.C + 3) / 4 * 4;
  a.H = c.H; a.W = c.W; a.C = c.C;
  a.w = pk;
  a.KH = c.KH; a.KW = c.KW; a.sh = c.sh; a.sw = c.sw; a.pt = c.pt; a.pl = c.pl;
  a.dh = c.dh; a.dw = c.dw;
  a.y = buf.data() + guard;
  a.ldy = ldy;
  a.OH = OH; a.OW = OW;
  a.ep = &ep;
  for (int i = c.split - 1; i >= 0; --i) {
    const ptrdiff_t r0 = OH * i / c.split, r1 = OH * (i + 1) / c.split;
    if (r1 > r0) k.run(&a, r0, r1);
  }
  bool ok = true;
  for (size_t i = 0; i < guard; ++i) ok = ok && buf[i] == 0xA5 && buf[buf.size() - 1 - i] == 0xA5;
  for (ptrdiff_t p = 0; p < OH * OW; ++p)
    for (size_t b = size_t(c.C) * esz; b < size_t(ldy) * esz; ++b)
      ok = ok && buf[guard + size_t(p * ldy) * esz + b] == 0xA5;
  *guards_ok = ok;
  std::vector<unsigned char> out(size_t(OH * OW * c.C) * esz);
  for (ptrdiff_t p = 0; p < OH * OW; ++p)
    std::memcpy(out.data() + size_t(p * c.C) * esz, buf.data() + guard + size_t(p * ldy) * esz,
                size_t(c.C) * esz);
  return out;
}

void test_qdwconv_one(const KernelTable& ref, const QDwConvConfig& k) {
  Group g;
  g.name = std::string("qdwconv/") + k.name;
  std::vector<QdwCase> cases;
  const ptrdiff_t Cs[] = {1, 3, 8, 15, 16, 17, 33, 64, 100};
  const ptrdiff_t Ks[][2] = {{3, 3}, {5, 5}, {1, 1}, {2, 3}, {7, 7}};
  const ptrdiff_t HWs[][2] = {{1, 1}, {2, 3}, {5, 7}, {7, 5}, {11, 13}, {13, 2}, {3, 11}, {17, 19}};
  // strides, pads (t, l, b, r), dilations
  const ptrdiff_t Gs[][8] = {{1, 1, 1, 1, 1, 1, 1, 1}, {2, 2, 1, 1, 1, 1, 1, 1}, {1, 2, 0, 2, 1, 0, 1, 1},
                             {2, 1, 2, 0, 0, 1, 2, 2}, {1, 1, 0, 0, 0, 0, 2, 1}, {2, 2, 2, 2, 2, 2, 1, 1},
                             {1, 1, 2, 2, 2, 2, 1, 1}, {2, 2, 0, 0, 0, 0, 1, 1}};
  int i = 0;
  for (ptrdiff_t C : Cs)
    for (const auto& kk : Ks)
      for (int rep = 0; rep < (g_small ? 1 : 3); ++rep, ++i) {
        const ptrdiff_t* gg = Gs[i % 8];
        const ptrdiff_t* hw = HWs[(i * 3) % 8];
        QdwCase c{C, hw[0], hw[1], kk[0], kk[1], gg[0], gg[1], gg[2], gg[3], gg[4], gg[5], gg[6], gg[7],
                  0, Act::None, 0, 1 + i % 4, 0};
        const ptrdiff_t eh = c.dh * (c.KH - 1) + 1, ew = c.dw * (c.KW - 1) + 1;
        if (c.H + c.pt + c.pb < eh) c.H = eh;
        if (c.W + c.pl + c.pr < ew) c.W = ew;
        cases.push_back(c);
      }
  for (Act act : kActs)
    for (int res = 0; res < 3; ++res)
      for (int mode = 1; mode <= 2; ++mode) {
        const bool five = (res + mode) % 2;
        cases.push_back({ptrdiff_t(5 + 12 * res + mode), 9, 11, five ? 5 : 3, five ? 5 : 3, 1 + mode % 2,
                         1 + mode % 2, 1, 2, 2, 1, 1, 1, mode, act, res, 2, 0});
      }
  for (int m : {1, -1}) {
    cases.push_back({33, 24, 25, 22, 22, 1, 1, 0, 0, 0, 0, 1, 1, 0, Act::None, 0, 1, m});
    cases.push_back({17, 9, 10, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0, Act::None, 0, 3, m});
  }
  // The integer 3x3 / 5x5 paths (qu8_dwconv__avx512vnni): channel counts around the
  // 16-lane vectors and 64-channel blocks, H/W 1, 2 and primes, strides 1-2, pads 0-2,
  // zero points 0 / 128 / 255, odd row splits (the 3x3 stride-1 row pairs), saturation
  // edges with padding, and every epilogue.
  {
    const ptrdiff_t ICs[] = {1, 3, 7, 13, 17, 31, 48, 64, 67, 144, 960};
    const ptrdiff_t IHWs[][2] = {{1, 1}, {2, 2}, {1, 7}, {7, 1}, {2, 5}, {3, 3}, {5, 7}, {13, 11}};
    const ptrdiff_t IPs[][4] = {{0, 0, 0, 0}, {1, 1, 1, 1}, {2, 2, 2, 2}, {0, 1, 2, 0}, {2, 0, 1, 2}};
    const int zps[] = {0, 128, 255};
    int j = 0;
    for (ptrdiff_t C : ICs)
      for (ptrdiff_t K : {3, 5})
        for (ptrdiff_t s : {1, 2})
          for (int rep = 0; rep < (g_small ? 1 : 3); ++rep, ++j) {
            const ptrdiff_t* hw = IHWs[j % 8];
            const ptrdiff_t* pp = IPs[(j * 3) % 5];
            QdwCase c{C, hw[0], hw[1], K, K, s, s, pp[0], pp[1], pp[2], pp[3], 1, 1, 0, Act::None, 0,
                      1 + j % 3, 0, zps[j % 3]};
            if (c.H + c.pt + c.pb < K) c.H = K;
            if (c.W + c.pl + c.pr < K) c.W = K;
            cases.push_back(c);
          }
    for (ptrdiff_t K : {3, 5})
      for (ptrdiff_t s : {1, 2})
        for (int m : {1, -1})
          for (int zp : {0, 255})
            cases.push_back({67, 2 * K + 1, 2 * K + 3, K, K, s, s, K / 2, K / 2, K / 2 + 1, K / 2, 1, 1, 0,
                             Act::None, 0, 2, m, zp});
    int i2 = 0;
    for (Act act : kActs)
      for (int res = 0; res < 3; ++res)
        for (int mode = 1; mode <= 2; ++mode, ++i2) {
          const ptrdiff_t K = i2 % 2 ? 5 : 3, s = 1 + (i2 / 2) % 2;
          QdwCase c{ptrdiff_t(i2 % 3 ? 67 : 144), 9, 10, K, K, s, s, K / 2, K / 2, K / 2, K / 2, 1, 1,
                    mode, act, res, 3, 0, -1};
          if (mode == 2 && act == Act::None && res == 0) c.oscale = 0.0005f;
          cases.push_back(c);
        }
  }
  for (const QdwCase& c : cases) {
    set_case("qdwconv %s C=%td H=%td W=%td K=%tdx%td s=%td,%td p=%td,%td,%td,%td d=%td,%td mode=%d act=%s res=%d",
             k.name, c.C, c.H, c.W, c.KH, c.KW, c.sh, c.sw, c.pt, c.pl, c.pb, c.pr, c.dh, c.dw, c.mode,
             act_name(c.act), c.res);
    const ptrdiff_t OH = (c.H + c.pt + c.pb - (c.dh * (c.KH - 1) + 1)) / c.sh + 1;
    const ptrdiff_t OW = (c.W + c.pl + c.pr - (c.dw * (c.KW - 1) + 1)) / c.sw + 1;
    const ptrdiff_t ldx = (c.C + 3) / 4 * 4;
    const size_t xbytes = size_t(c.H * c.W * ldx);
    Fenced fx(xbytes / 4 + 1);
    uint8_t* x = reinterpret_cast<uint8_t*>(fx.p + fx.n) - xbytes;  // ends at the fence
    for (size_t j = 0; j < xbytes; ++j) x[j] = c.maxima ? (c.zp == 255 ? 0 : 255) : uint8_t(irand(256));
    std::vector<int8_t> w(size_t(c.C * c.KH * c.KW));
    for (auto& b : w) b = c.maxima ? int8_t(127 * c.maxima) : int8_t(irand(255) - 127);
    std::vector<float> ws(size_t(c.C)), bias(size_t(c.C)), res(size_t(OH * OW * c.C));
    for (auto& v : ws) v = c.mode ? urand(0.0005f, 0.002f) : 1.0f;
    fill(bias.data(), bias.size());
    fill(res.data(), res.size());
    const float as = c.mode ? 0.013f : 1.0f;
    const int32_t zp = c.zp >= 0 ? c.zp : c.maxima ? 0 : irand(256);
    QGemmEpilogue ep{};
    ep.a_scale = &as;
    ep.a_zp = &zp;
    ep.w_scale = ws.data();
    ep.bias = c.mode ? bias.data() : nullptr;
    ep.residual = c.res ? res.data() : nullptr;
    ep.ldr = c.C;
    ep.residual_after_act = c.res == 2;
    ep.act = c.act;
    ep.lo = -0.3f;
    ep.hi = 0.4f;
    ep.out_u8 = c.mode == 2;
    ep.out_scale = c.oscale;
    ep.out_zp = 77;
    bool gok = true, rok = true;
    const std::vector<unsigned char> got = qdw_out(k, c, x, w, ep, OH, OW, &gok);
    std::vector<unsigned char> want;
    if (g_f64) {  // scalar: int64 loops for the accumulator
      if (c.mode != 0) { record(g, gok); continue; }
      want.resize(got.size());
      for (ptrdiff_t oh = 0; oh < OH; ++oh)
        for (ptrdiff_t ow = 0; ow < OW; ++ow)
          for (ptrdiff_t ch = 0; ch < c.C; ++ch) {
            int64_t s = 0;
            for (ptrdiff_t kh = 0; kh < c.KH; ++kh)
              for (ptrdiff_t kw = 0; kw < c.KW; ++kw) {
                const ptrdiff_t ih = oh * c.sh - c.pt + kh * c.dh, iw = ow * c.sw - c.pl + kw * c.dw;
                if (ih < 0 || ih >= c.H || iw < 0 || iw >= c.W) continue;
                s += (int64_t(x[(ih * c.W + iw) * ldx + ch]) - zp) * w[size_t((ch * c.KH + kh) * c.KW + kw)];
              }
            const float f = float(s);
            std::memcpy(want.data() + size_t((oh * OW + ow) * c.C + ch) * 4, &f, 4);
          }
    } else {
      want = qdw_out(ref.qu8_dwconv, c, x, w, ep, OH, OW, &rok);
    }
    bool ok = gok && rok && want.size() == got.size();
    const bool vmath = c.act == Act::Sigmoid || c.act == Act::Tanh || c.act == Act::Gelu;
    for (size_t j = 0; ok && j < got.size(); j += c.mode == 2 ? 1 : 4) {
      if (c.mode == 2) {
        ok = got[j] == want[j] || (vmath && std::abs(int(got[j]) - int(want[j])) <= 1);
        if (!ok) printf("  MISMATCH [%s] %s: u8 index %zu: scalar %d, got %d\n", g.name.c_str(), g_case, j, want[j], got[j]);
      } else {
        float xv, r;
        std::memcpy(&xv, got.data() + j, 4);
        std::memcpy(&r, want.data() + j, 4);
        ok = xv == r || (vmath && std::fabs(double(xv) - r) <= 1e-6 * (1 + std::fabs(double(r))));
        if (!ok) printf("  MISMATCH [%s] %s: index %zu: reference %.9g, got %.9g\n", g.name.c_str(), g_case, j / 4, r, xv);
      }
    }
    if (!gok) printf("  MISMATCH [%s] %s: wrote outside y\n", g.name.c_str(), g_case);
    record(g, ok);
  }
  end_group(g);
}

// Every qu8_dwconv variant of the table's level that this CPU runs (on AVX-512 with VNNI:
// qu8_dwconv__avx512 and qu8_dwconv__avx512vnni), each against the scalar table.
void test_qdwconv(const KernelTable& ref, const KernelTable& tst) {
  const uint32_t have = cpu_features().usable();
  bool any = false;
  for (const KernelVariant& v : kernel_variants()) {
    if (std::string(v.entry) != "qu8_dwconv" || v.level != tst.isa || (v.needs & have) != v.needs)
      continue;
    KernelTable t{};
    v.fill(t);
    if (std::string(t.qu8_dwconv.name) == tst.qu8_dwconv.name) any = true;
    test_qdwconv_one(ref, t.qu8_dwconv);
  }
  if (!any) test_qdwconv_one(ref, tst.qu8_dwconv);  // a table not built from the list as is
}

// ================================================================== main

void setup_pid1_console() {
  if (fcntl(1, F_GETFD) >= 0) return;  // the kernel gave us /dev/console
  mkdir("/dev", 0755);
  mount("devtmpfs", "/dev", "devtmpfs", 0, nullptr);
  int fd = open("/dev/console", O_RDWR);
  if (fd < 0) fd = open("/dev/ttyS0", O_RDWR);
  if (fd >= 0) { dup2(fd, 0); dup2(fd, 1); dup2(fd, 2); if (fd > 2) close(fd); }
}

}  // namespace

int main(int argc, char** argv) {
  g_pid1 = getpid() == 1;
  if (g_pid1) setup_pid1_console();
  setvbuf(stdout, nullptr, _IOLBF, 0);
  signal(SIGSEGV, on_fault);
  signal(SIGBUS, on_fault);
  signal(SIGILL, on_fault);
  signal(SIGFPE, on_fault);

  std::string isa_arg = "best";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--small") g_small = true;
    else if (a == "--seed" && i + 1 < argc) g_seed = strtoull(argv[++i], nullptr, 0);
    else if (a == "-h" || a == "--help") {
      printf("usage: %s [scalar|avx2|avx512|avx2w16|best] [--small] [--seed N]\n", argv[0]);
      return 0;
    } else if (!a.empty() && a[0] != '-') isa_arg = a;
  }
  g_rng.seed(g_seed);

  const CpuFeatures& f = cpu_features();
  std::string feats;
  for (const auto& s : f.names()) feats += " " + s;
  printf("kernel_check: pid1=%d small=%d seed=%llu\n", g_pid1, g_small,
         static_cast<unsigned long long>(g_seed));
  printf("CPUID features:%s\n", feats.c_str());
  printf("detected best ISA: %s\n", isa_name(best_isa()));

  bool w16 = false;
  Isa want;
  if (isa_arg == "best") want = best_isa();
  else if (isa_arg == "avx2w16") { want = Isa::Avx2; w16 = true; }
  else {
    try {
      want = parse_isa(isa_arg);
    } catch (const std::exception& e) {
      printf("KERNELCHECK FAIL bad ISA argument: %s\n", e.what());
      finish_and_exit(2);
    }
  }
  if (!isa_supported(want)) {
    printf("KERNELCHECK FAIL requested ISA '%s' is not available on this CPU/OS (best: %s)\n",
           isa_name(want), isa_name(best_isa()));
    finish_and_exit(2);
  }
  const KernelTable& ref = kernel_table_for(Isa::Scalar);
  KernelTable tst = kernel_table_for(want);
  g_f64 = tst.isa == Isa::Scalar && !w16;  // scalar against itself would prove nothing
  if (w16) {
    register_f32_gemm_12x16__avx2(tst);
    register_all__avx2w16_testing(tst);
    tst.isa_name = "avx2w16";
  }
  printf("testing ISA %s (table isa_name=%s) against %s\n",
         isa_arg == "best" ? isa_name(want) : isa_arg.c_str(), tst.isa_name,
         g_f64 ? "float64 loops" : "the scalar table");
  printf("kernels: gemm=%s (mr=%d nr=%d) dwconv=%s dwconv_chw=%s pool=%s eltwise=%s "
         "transpose=%s spmm=%s\n",
         tst.f32_gemm.name, tst.f32_gemm.mr, tst.f32_gemm.nr, tst.f32_dwconv.name,
         tst.f32_dwconv2d_chw.name, tst.f32_pool.name, tst.f32_eltwise.name,
         tst.x32_transpose.name, tst.f32_spmm.name);
  fflush(stdout);

  const double t0 = now_s();
  test_gemm(ref, tst);
  if (tst.f32_gemm.narrow) {  // the family's narrow-output kernel (GemmConfig::narrow)
    KernelTable narrow = tst;
    narrow.f32_gemm = *tst.f32_gemm.narrow;
    printf("narrow gemm=%s (mr=%d nr=%d)\n", narrow.f32_gemm.name, narrow.f32_gemm.mr,
           narrow.f32_gemm.nr);
    g_gemm_group = "gemm_narrow";
    test_gemm(ref, narrow);
    g_gemm_group = "gemm";
  }
  // The 16-bit weight GEMM entries: every variant of the level this table is capped at
  // (and below, scalar excepted unless it is the one checked against float64) that
  // this CPU can run, each against the scalar variant (groups "<kernel name>/...").
  for (GemmConfig KernelTable::*field : {&KernelTable::f16w_gemm, &KernelTable::bf16w_gemm}) {
    const bool f16 = field == &KernelTable::f16w_gemm;
    for (const KernelVariant& v : kernel_variants()) {
      if (std::string(v.entry) != (f16 ? "f16w_gemm" : "bf16w_gemm")) continue;
      if (v.level > tst.isa || (v.level == Isa::Scalar) != g_f64) continue;
      if ((v.needs & f.usable()) != v.needs) continue;
      KernelTable t16 = tst;
      v.fill(t16);
      g_gemm_field = field;
      g_wtype = f16 ? 1 : 2;
      g_gemm_group = (t16.*field).name;
      g_round_a = g_gemm_group.find("__avx512bf16") != std::string::npos;
      printf("16-bit weight gemm=%s (mr=%d nr=%d)\n", (t16.*field).name, (t16.*field).mr,
             (t16.*field).nr);
      test_gemm(ref, t16);
    }
  }
  g_gemm_field = &KernelTable::f32_gemm;
  g_wtype = 0;
  g_round_a = false;
  g_gemm_group = "gemm";
  test_dwconv(ref, tst);
  test_dwconv_chw(ref, tst);
  test_pool(ref, tst);
  test_eltwise(ref, tst);
  test_transpose(ref, tst);
  test_spmm(tst);
  test_qspmm(tst);
  test_qgemm(ref, tst);
  test_qdwconv(ref, tst);
  printf("total %.2f s\n", now_s() - t0);
  if (g_total_fail == 0) {
    printf("KERNELCHECK PASS %ld/%ld isa=%s\n", g_total, g_total, tst.isa_name);
    finish_and_exit(0);
  }
  std::string groups;
  for (const auto& s : g_failed_groups) groups += " " + s;
  printf("KERNELCHECK FAIL %ld/%ld cases failed isa=%s groups:%s\n", g_total_fail, g_total,
         tst.isa_name, groups.c_str());
  finish_and_exit(1);
}
