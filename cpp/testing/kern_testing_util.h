// Helpers shared by the kernel-level test bindings (testing_dwconv/pool/eltwise.cpp):
// typed pyruntime errors, ISA table lookup, activation names. Baseline code only.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "pyrt/dispatch.h"
#include "pyrt/kernels.h"

namespace pyrt {

// Test-only 16-lane AVX2 build of the dwconv/pool/eltwise templates
// (cpp/testing/f32_w16check_avx2.cpp): runs the AVX-512 logic on AVX2 machines.
void register_all__avx2w16_testing(KernelTable& t);
// Test-only AVX-VNNI int8 GEMM with vpdpbusd emulated in AVX2
// (cpp/testing/qs8_vnni_emu_avx2.cpp): needs AVX2 only.
QGemmConfig qs8_qc8w_gemm_avxvnni_emu_testing();

namespace kt {

namespace py = pybind11;
using farray = py::array_t<float, py::array::c_style | py::array::forcecast>;

// Raises pyruntime.errors.<cls>(msg) (ShapeError, InputError, IsaError, ...).
[[noreturn]] inline void raise(const char* cls, const std::string& msg) {
  py::object e = py::module_::import("pyruntime.errors").attr(cls);
  PyErr_SetString(e.ptr(), msg.c_str());
  throw py::error_already_set();
}

// The kernel table for `isa` (None = the one in use); IsaError when unusable.
// "avx2w16" (tests only) is the avx2 table with dwconv/pool/eltwise replaced by their
// 16-lane AVX2 build.
inline const KernelTable& table(const std::optional<std::string>& isa) {
  try {
    if (!isa) return kernel_table();
    if (*isa == "avx2w16") {
      static const KernelTable t = [] {
        KernelTable k = kernel_table_for(Isa::Avx2);
        register_all__avx2w16_testing(k);
        k.isa_name = "avx2w16";
        return k;
      }();
      return t;
    }
    return kernel_table_for(parse_isa(*isa));
  } catch (const std::exception& e) {
    raise("IsaError", e.what());
  }
}

// An activation by its name in the bound enum (_core.Act): the one activation list.
inline Act parse_act(const std::string& s) {
  py::dict members = py::module_::import("pyruntime._core").attr("Act").attr("__members__");
  if (members.contains(s)) return members[py::str(s)].cast<Act>();
  std::string names;
  for (auto kv : members) names += (names.empty() ? "'" : ", '") + std::string(py::str(kv.first)) + "'";
  raise("InputError", "unknown activation '" + s + "': expected one of " + names);
}

inline std::string shape_str(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) {
    if (i) s += ", ";
    s += std::to_string(a.shape(i));
  }
  if (a.ndim() == 1) s += ",";
  return s + ")";
}

// A pair of positive/non-negative ints from a Python sequence of length 2 (or 4 for pads).
inline std::vector<ptrdiff_t> ints(const py::sequence& seq, size_t n, const char* what,
                                   ptrdiff_t min_value) {
  if (seq.size() != n)
    raise("InputError", std::string(what) + ": expected " + std::to_string(n) +
                            " integers, got " + std::to_string(seq.size()));
  std::vector<ptrdiff_t> out;
  for (auto item : seq) {
    const ptrdiff_t v = item.cast<ptrdiff_t>();
    // Bounded so kernel-extent and output-size arithmetic (d * (K - 1) + 1, H + pads)
    // cannot overflow.
    if (v > (ptrdiff_t(1) << 31))
      raise("InputError", std::string(what) + ": " + std::to_string(v) + " is too large (at most 2**31)");
    if (v < min_value)
      raise("InputError", std::string(what) + ": expected integers >= " +
                              std::to_string(min_value) + ", got " + std::to_string(v));
    out.push_back(v);
  }
  return out;
}

// Output rows [0, OH) as `split` contiguous ranges, run last range first, so a kernel
// that writes or reads outside its [oh0, oh1) shows up in the tests.
template <class F>
void for_row_ranges(ptrdiff_t OH, ptrdiff_t split, F&& f) {
  if (split < 1) split = 1;
  for (ptrdiff_t i = split - 1; i >= 0; --i) {
    const ptrdiff_t r0 = OH * i / split, r1 = OH * (i + 1) / split;
    if (r1 > r0) f(r0, r1);
  }
}

}  // namespace kt
}  // namespace pyrt
