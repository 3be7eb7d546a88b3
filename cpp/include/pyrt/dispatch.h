// CPU feature detection and the kernel tables, filled once at first use.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "pyrt/kernels.h"

namespace pyrt {

struct CpuFeatures {
  // Raw CPUID bits and the OS state XGETBV reports.
  bool avx = false, fma = false, f16c = false, avx2 = false;
  bool avx512f = false, avx512bw = false, avx512dq = false, avx512vl = false;
  bool avx512vnni = false, avx512bf16 = false, avxvnni = false;
  bool os_avx = false, os_avx512 = false;  // XGETBV: the OS saves the register state
  bool amd = false;                        // CPUID vendor "AuthenticAMD"
  // The Feature bits (kernels.h) these make usable, each checked on its own.
  uint32_t usable() const;
  std::vector<std::string> names() const;
};

// An instruction-set level this CPU/OS cannot run, or an unknown level name.
struct IsaUnavailable : std::runtime_error {
  using std::runtime_error::runtime_error;
};

const CpuFeatures& cpu_features();
// Best level this CPU and OS support.
Isa best_isa();
bool isa_supported(Isa isa);
const char* isa_name(Isa isa);
// Parses "scalar" | "avx2" | "avx512"; throws IsaUnavailable otherwise.
Isa parse_isa(const std::string& s);

// The table in use: best_isa(), or PYRUNTIME_ISA when set (read once). Throws
// IsaUnavailable if PYRUNTIME_ISA names an unknown level or one this CPU lacks.
const KernelTable& kernel_table();
// The table capped at a given level (tests run every level the machine has); throws
// IsaUnavailable if the CPU lacks it.
const KernelTable& kernel_table_for(Isa isa);

// One variant of one table entry: the level it belongs to, the features it needs, and
// the function that fills the entry. Within a level's cap, every variant whose features
// the CPU has fills its entry, in list order, so the last one that fits wins.
struct KernelVariant {
  const char* entry;  // e.g. "f32_gemm"
  Isa level;
  uint32_t needs;     // Feature bits it runs with (the kernel tests run it wherever)
  void (*fill)(KernelTable&);
  uint32_t table_needs = 0;  // more Feature bits before it enters the kernel table
};
const std::vector<KernelVariant>& kernel_variants();

}  // namespace pyrt
