#include "bindings.h"

namespace py = pybind11;

PYBIND11_MODULE(_core, m) {
  m.doc() = "pyruntime native core: kernels, dispatch and the plan executor";
  pyrt::bind_info(m);
  py::module_ testing = m.def_submodule("testing", "kernel-level entry points for tests");
  pyrt::bind_testing_gemm(testing);
  pyrt::bind_testing_dwconv(testing);
  pyrt::bind_testing_pool(testing);
  pyrt::bind_testing_eltwise(testing);
  pyrt::bind_testing_transpose(testing);
  pyrt::bind_testing_spmm(testing);
  pyrt::bind_testing_qgemm(testing);
  pyrt::bind_testing_qdwconv(testing);
  pyrt::bind_testing_threadpool(testing);
  pyrt::bind_testing_peak(testing);
  pyrt::bind_plan(m);
  pyrt::bind_serve(m);
}
