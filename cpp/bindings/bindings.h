// Each binding file adds its functions to the module; module.cpp calls them all.
#pragma once
#include <pybind11/pybind11.h>

namespace pyrt {
void bind_info(pybind11::module_& m);
// Kernel-level entry points for tests: `_core.testing.<family>(..., isa="avx2")`.
void bind_testing_gemm(pybind11::module_& testing);
void bind_testing_dwconv(pybind11::module_& testing);
void bind_testing_pool(pybind11::module_& testing);
void bind_testing_eltwise(pybind11::module_& testing);
void bind_testing_transpose(pybind11::module_& testing);
void bind_testing_spmm(pybind11::module_& testing);
void bind_testing_qgemm(pybind11::module_& testing);
void bind_testing_qdwconv(pybind11::module_& testing);
// The executor's worker pool (tests and benchmarks).
void bind_testing_threadpool(pybind11::module_& testing);
// Peak FLOP/s probe used by bench/.
void bind_testing_peak(pybind11::module_& testing);
// The compiled plan and its executor.
void bind_plan(pybind11::module_& m);
// The native serving engine (pyruntime.serve on compiled CPU Sessions).
void bind_serve(pybind11::module_& m);
}  // namespace pyrt
