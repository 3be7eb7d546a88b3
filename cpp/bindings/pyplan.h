// The Python-visible Plan object (pyruntime._core.Plan): the plan and its output shapes.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <utility>
#include <vector>

#include "../runtime/steps.h"
#include "release_gil.h"

#include "../runtime/plan.h"
#include "../runtime/sparse.h"

namespace pyrt {

struct PyPlan {
  std::unique_ptr<Plan> plan;
  std::vector<std::vector<pybind11::ssize_t>> out_tails;  // output shapes without the batch
  SparseMode sparse = SparseMode::Auto;  // rt.compile(sparse=...)

  Plan& p() { return *plan; }
};

// The builder calls' checks (bindings/plan.cpp), shared by the quantized ones
// (bindings/plan_quant.cpp). Sizes from the caller are untrusted: products are checked.
using FArray = pybind11::array_t<float, pybind11::array::c_style | pybind11::array::forcecast>;
int64_t mul(int64_t a, int64_t b, const char* what);
int64_t mul(std::initializer_list<int64_t> xs, const char* what);
void check_sizes(Plan& p, int x, int64_t nx, int y, int64_t ny, const char* what);
void check_residual(Plan& p, int residual, int y);
FArray weight(const pybind11::object& o, pybind11::ssize_t expect, const char* what);
void check_geom_values(const ConvGeom& q);
void check_geom(Plan& p, int x, int y, const ConvGeom& q, int64_t oc);
void bind_plan_quant(pybind11::class_<PyPlan>& cls);

// Packing a weight (copying, transposing, laying it out for the kernel) touches no
// Python object: build the step with the GIL released, add it to the plan with it held.
template <class Make>
void add_packed_step(PyPlan& s, Make&& make) {
  std::unique_ptr<Step> st;
  {
    ReleaseGil release;
    st = make();
  }
  s.p().add_step(std::move(st));
}

}  // namespace pyrt
