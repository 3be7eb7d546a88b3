// CPUID + XGETBV feature detection and the kernel tables.
#include "pyrt/dispatch.h"

#include <cpuid.h>

#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <stdexcept>

namespace pyrt {
namespace {

uint64_t read_xcr0() {
  uint32_t eax = 0, edx = 0;
  // xgetbv with ecx = 0; encoded as bytes so no -mxsave flag is needed.
  __asm__ volatile(".byte 0x0f, 0x01, 0xd0" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
}

CpuFeatures detect() {
  CpuFeatures f;
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid(0, &a, &b, &c, &d))  // vendor string in ebx, edx, ecx
    f.amd = b == 0x68747541u && d == 0x69746e65u && c == 0x444d4163u;  // "Auth" "enti" "cAMD"
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = (c >> 27) & 1;
  f.avx = (c >> 28) & 1;
  f.fma = (c >> 12) & 1;
  f.f16c = (c >> 29) & 1;
  if (osxsave) {
    const uint64_t xcr0 = read_xcr0();
    f.os_avx = (xcr0 & 0x6) == 0x6;              // SSE and AVX state
    f.os_avx512 = f.os_avx && (xcr0 & 0xe0) == 0xe0;  // opmask, ZMM_Hi256, Hi16_ZMM
  }
  if (__get_cpuid_max(0, nullptr) >= 7) {
    __cpuid_count(7, 0, a, b, c, d);
    f.avx2 = (b >> 5) & 1;
    f.avx512f = (b >> 16) & 1;
    f.avx512dq = (b >> 17) & 1;
    f.avx512bw = (b >> 30) & 1;
    f.avx512vl = (b >> 31) & 1;
    f.avx512vnni = (c >> 11) & 1;
    const unsigned max_sub = a;
    if (max_sub >= 1) {
      __cpuid_count(7, 1, a, b, c, d);
      f.avxvnni = (a >> 4) & 1;
      f.avx512bf16 = (a >> 5) & 1;
    }
  }
  return f;
}

// Every kernel variant, scalar first. A new variant (e.g. an AVX-VNNI int8 GEMM) is one
// line here naming what it needs, not a new rung on a ladder.
const std::vector<KernelVariant> kVariants = {
    {"f32_gemm", Isa::Scalar, 0, register_f32_gemm__scalar},
    {"f32_dwconv", Isa::Scalar, 0, register_f32_dwconv__scalar},
    {"f32_dwconv2d_chw", Isa::Scalar, 0, register_f32_dwconv2d_chw__scalar},
    {"f32_pool", Isa::Scalar, 0, register_f32_pool__scalar},
    {"f32_eltwise", Isa::Scalar, 0, register_f32_eltwise__scalar},
    {"x32_transpose", Isa::Scalar, 0, register_x32_transpose__scalar},
    {"f32_spmm", Isa::Scalar, 0, register_f32_spmm__scalar},
    {"qc8w_spmm", Isa::Scalar, 0, register_qc8w_spmm__scalar},
    {"qs8_qc8w_gemm", Isa::Scalar, 0, register_qs8_qc8w_gemm__scalar},
    {"qu8_dwconv", Isa::Scalar, 0, register_qu8_dwconv__scalar},
    {"f16w_gemm", Isa::Scalar, 0, register_f16w_gemm__scalar},
    {"bf16w_gemm", Isa::Scalar, 0, register_bf16w_gemm__scalar},
    {"f32_gemm", Isa::Avx2, kLevelAvx2, register_f32_gemm__avx2},
    {"f32_dwconv", Isa::Avx2, kLevelAvx2, register_f32_dwconv__avx2},
    {"f32_dwconv2d_chw", Isa::Avx2, kLevelAvx2, register_f32_dwconv2d_chw__avx2},
    {"f32_pool", Isa::Avx2, kLevelAvx2, register_f32_pool__avx2},
    {"f32_eltwise", Isa::Avx2, kLevelAvx2, register_f32_eltwise__avx2},
    {"x32_transpose", Isa::Avx2, kLevelAvx2, register_x32_transpose__avx2},
    {"f32_spmm", Isa::Avx2, kLevelAvx2, register_f32_spmm__avx2},
    {"qc8w_spmm", Isa::Avx2, kLevelAvx2, register_qc8w_spmm__avx2},
    {"qs8_qc8w_gemm", Isa::Avx2, kLevelAvx2, register_qs8_qc8w_gemm__avx2},
    {"qs8_qc8w_gemm", Isa::Avx2, kLevelAvx2 | kFeatAvxVnni, register_qs8_qc8w_gemm__avxvnni},
    {"qu8_dwconv", Isa::Avx2, kLevelAvx2, register_qu8_dwconv__avx2},
    {"f16w_gemm", Isa::Avx2, kLevelAvx2, register_f16w_gemm__avx2},
    {"bf16w_gemm", Isa::Avx2, kLevelAvx2, register_bf16w_gemm__avx2},
    {"f32_gemm", Isa::Avx512, kLevelAvx512, register_f32_gemm__avx512},
    {"f32_dwconv", Isa::Avx512, kLevelAvx512, register_f32_dwconv__avx512},
    {"f32_dwconv2d_chw", Isa::Avx512, kLevelAvx512, register_f32_dwconv2d_chw__avx512},
    {"f32_pool", Isa::Avx512, kLevelAvx512, register_f32_pool__avx512},
    {"f32_eltwise", Isa::Avx512, kLevelAvx512, register_f32_eltwise__avx512},
    {"f32_spmm", Isa::Avx512, kLevelAvx512, register_f32_spmm__avx512},
    {"qc8w_spmm", Isa::Avx512, kLevelAvx512, register_qc8w_spmm__avx512},
    {"qs8_qc8w_gemm", Isa::Avx512, kLevelAvx512, register_qs8_qc8w_gemm__avx512},
    {"qs8_qc8w_gemm", Isa::Avx512, kLevelAvx512 | kFeatAvx512Vnni, register_qs8_qc8w_gemm__avx512vnni},
    {"qu8_dwconv", Isa::Avx512, kLevelAvx512, register_qu8_dwconv__avx512},
    {"qu8_dwconv", Isa::Avx512, kLevelAvx512 | kFeatAvx512Vnni, register_qu8_dwconv__avx512vnni},
    {"f16w_gemm", Isa::Avx512, kLevelAvx512, register_f16w_gemm__avx512},
    {"bf16w_gemm", Isa::Avx512, kLevelAvx512, register_bf16w_gemm__avx512},
    // Enters the table (after the plain kernel, so it wins) only where vdpbf16ps is fast:
    // on Sapphire Rapids one vdpbf16ps (32 products) took the time of 4 FMAs (64 products)
    // and 256x1024x1024 ran at 0.63x of the plain kernel; on Zen 4, 2.6x (bench/gemm16.py).
    {"bf16w_gemm", Isa::Avx512, kLevelAvx512 | kFeatAvx512Bf16, register_bf16w_gemm__avx512bf16,
     kFeatBf16DotFast},
};

uint32_t level_needs(Isa isa) {
  switch (isa) {
    case Isa::Scalar: return 0;
    case Isa::Avx2: return kLevelAvx2;
    case Isa::Avx512: return kLevelAvx512;
  }
  return ~0u;
}

KernelTable build_table(Isa cap) {
  KernelTable t{};
  t.isa = cap;
  t.isa_name = isa_name(cap);
  const uint32_t have = cpu_features().usable();
  for (const KernelVariant& v : kVariants)
    if (v.level <= cap && ((v.needs | v.table_needs) & have) == (v.needs | v.table_needs)) v.fill(t);
  return t;
}

}  // namespace

const std::vector<KernelVariant>& kernel_variants() { return kVariants; }

uint32_t CpuFeatures::usable() const {
  uint32_t u = 0;
  if (os_avx && avx && avx2 && fma) u |= kFeatAvx2Fma;
  if (os_avx && avx && f16c) u |= kFeatF16c;
  if (os_avx512 && avx512f && avx512bw && avx512dq && avx512vl) u |= kFeatAvx512;
  if (os_avx512 && avx512f && avx512vnni) u |= kFeatAvx512Vnni;
  if (os_avx512 && avx512f && avx512bf16) u |= kFeatAvx512Bf16;
  if (os_avx && avx2 && avxvnni) u |= kFeatAvxVnni;
  if ((u & kFeatAvx512Bf16) && amd) u |= kFeatBf16DotFast;
  return u;
}

std::vector<std::string> CpuFeatures::names() const {
  std::vector<std::string> out;
  const std::pair<bool, const char*> all[] = {
      {avx, "avx"},           {fma, "fma"},           {f16c, "f16c"},
      {avx2, "avx2"},         {avx512f, "avx512f"},   {avx512bw, "avx512bw"},
      {avx512dq, "avx512dq"}, {avx512vl, "avx512vl"}, {avx512vnni, "avx512vnni"},
      {avx512bf16, "avx512bf16"}, {avxvnni, "avxvnni"}, {os_avx, "os_avx"},
      {os_avx512, "os_avx512"}};
  for (const auto& [on, name] : all)
    if (on) out.emplace_back(name);
  return out;
}

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect();
  return f;
}

bool isa_supported(Isa isa) {
  const uint32_t need = level_needs(isa);
  return (cpu_features().usable() & need) == need;
}

Isa best_isa() {
  if (isa_supported(Isa::Avx512)) return Isa::Avx512;
  if (isa_supported(Isa::Avx2)) return Isa::Avx2;
  return Isa::Scalar;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Scalar: return "scalar";
    case Isa::Avx2: return "avx2";
    case Isa::Avx512: return "avx512";
  }
  return "?";
}

Isa parse_isa(const std::string& s) {
  if (s == "scalar") return Isa::Scalar;
  if (s == "avx2") return Isa::Avx2;
  if (s == "avx512") return Isa::Avx512;
  throw IsaUnavailable("unknown ISA '" + s + "': expected one of 'scalar', 'avx2', 'avx512'");
}

const KernelTable& kernel_table_for(Isa isa) {
  static std::once_flag once[kNumIsa];
  static KernelTable tables[kNumIsa];
  if (!isa_supported(isa))
    throw IsaUnavailable(std::string("ISA '") + isa_name(isa) +
                             "' is not supported by this CPU/OS (best available: '" +
                             isa_name(best_isa()) + "')");
  const int i = static_cast<int>(isa);
  std::call_once(once[i], [&] { tables[i] = build_table(isa); });
  return tables[i];
}

const KernelTable& kernel_table() {
  static const Isa chosen = [] {
    const char* env = std::getenv("PYRUNTIME_ISA");
    if (env == nullptr || *env == '\0') return best_isa();
    Isa want;
    try {
      want = parse_isa(env);
    } catch (const IsaUnavailable& e) {
      throw IsaUnavailable(std::string("PYRUNTIME_ISA: ") + e.what());
    }
    if (!isa_supported(want))
      throw IsaUnavailable(std::string("PYRUNTIME_ISA=") + env +
                               " asks for an ISA this CPU/OS lacks (best available: '" +
                               isa_name(best_isa()) + "')");
    return want;
  }();
  return kernel_table_for(chosen);
}

}  // namespace pyrt
