// The Python-visible Plan object (pyruntime._core.Plan): the plan and its output shapes.
#pragma once
#include <pybind11/pybind11.h>

#include <memory>
#include <vector>

#include "../runtime/plan.h"
#include "../runtime/sparse.h"

namespace pyrt {

struct PyPlan {
  std::unique_ptr<Plan> plan;
  std::vector<std::vector<pybind11::ssize_t>> out_tails;  // output shapes without the batch
  SparseMode sparse = SparseMode::Auto;  // rt.compile(sparse=...)

  Plan& p() { return *plan; }
};

}  // namespace pyrt
