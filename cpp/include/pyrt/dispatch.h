// CPU feature detection and the kernel tables, filled once at first use.
#pragma once
#include <string>
#include <vector>

#include "pyrt/kernels.h"

namespace pyrt {

struct CpuFeatures {
  bool avx = false, fma = false, f16c = false, avx2 = false;
  bool avx512f = false, avx512bw = false, avx512dq = false, avx512vl = false;
  bool avx512vnni = false, avx512bf16 = false;
  bool os_avx = false, os_avx512 = false;  // XGETBV: the OS saves the register state
  std::vector<std::string> names() const;
};

const CpuFeatures& cpu_features();
// Best ISA this CPU and OS support.
Isa best_isa();
bool isa_supported(Isa isa);
const char* isa_name(Isa isa);
// Parses "scalar" | "avx2" | "avx512"; throws std::invalid_argument otherwise.
Isa parse_isa(const std::string& s);

// The table in use: best_isa(), or PYRUNTIME_ISA when set (read once). Throws
// std::runtime_error if PYRUNTIME_ISA names an unknown ISA or one this CPU lacks.
const KernelTable& kernel_table();
// The table for a given ISA (for tests that run every variant); throws
// std::runtime_error if the CPU lacks it.
const KernelTable& kernel_table_for(Isa isa);

}  // namespace pyrt
