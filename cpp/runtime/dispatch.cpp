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
    __cpuid_count(7, 1, a, b, c, d);
    f.avx512bf16 = (a >> 5) & 1;
  }
  return f;
}

KernelTable build_table(Isa isa) {
  KernelTable t{};
  t.isa = Isa::Scalar;
  t.isa_name = "scalar";
  register_gemm__scalar(t);
  register_dwconv__scalar(t);
  register_dwconv_chw__scalar(t);
  register_pool__scalar(t);
  register_eltwise__scalar(t);
  register_transpose__scalar(t);
  if (isa >= Isa::Avx2) {
    t.isa = Isa::Avx2;
    t.isa_name = "avx2";
    register_gemm__avx2(t);
    register_dwconv__avx2(t);
    register_dwconv_chw__avx2(t);
    register_pool__avx2(t);
    register_eltwise__avx2(t);
    register_transpose__avx2(t);
  }
  if (isa >= Isa::Avx512) {
    t.isa = Isa::Avx512;
    t.isa_name = "avx512";
    register_gemm__avx512(t);
    register_dwconv__avx512(t);
    register_dwconv_chw__avx512(t);
    register_pool__avx512(t);
    register_eltwise__avx512(t);
  }
  return t;
}

}  // namespace

std::vector<std::string> CpuFeatures::names() const {
  std::vector<std::string> out;
  const std::pair<bool, const char*> all[] = {
      {avx, "avx"},           {fma, "fma"},           {f16c, "f16c"},
      {avx2, "avx2"},         {avx512f, "avx512f"},   {avx512bw, "avx512bw"},
      {avx512dq, "avx512dq"}, {avx512vl, "avx512vl"}, {avx512vnni, "avx512vnni"},
      {avx512bf16, "avx512bf16"}, {os_avx, "os_avx"}, {os_avx512, "os_avx512"}};
  for (const auto& [on, name] : all)
    if (on) out.emplace_back(name);
  return out;
}

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect();
  return f;
}

bool isa_supported(Isa isa) {
  const CpuFeatures& f = cpu_features();
  switch (isa) {
    case Isa::Scalar: return true;
    case Isa::Avx2: return f.os_avx && f.avx && f.avx2 && f.fma && f.f16c;
    case Isa::Avx512:
      return isa_supported(Isa::Avx2) && f.os_avx512 && f.avx512f && f.avx512bw &&
             f.avx512dq && f.avx512vl;
  }
  return false;
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
  throw std::invalid_argument("unknown ISA '" + s +
                              "': expected one of 'scalar', 'avx2', 'avx512'");
}

const KernelTable& kernel_table_for(Isa isa) {
  static std::once_flag once[kNumIsa];
  static KernelTable tables[kNumIsa];
  if (!isa_supported(isa))
    throw std::runtime_error(std::string("ISA '") + isa_name(isa) +
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
    } catch (const std::invalid_argument& e) {
      throw std::runtime_error(std::string("PYRUNTIME_ISA: ") + e.what());
    }
    if (!isa_supported(want))
      throw std::runtime_error(std::string("PYRUNTIME_ISA=") + env +
                               " asks for an ISA this CPU/OS lacks (best available: '" +
                               isa_name(best_isa()) + "')");
    return want;
  }();
  return kernel_table_for(chosen);
}

}  // namespace pyrt
