// Kernel-level test entry points for the f32_spmm family:
//   _core.testing.spmm(A, B, R, ...)   packs B in groups of R, runs the sparse product
//                                       (rows split and group ranges like the executor)
//   _core.testing.spmm_info(B, R)       the packed header: stored pairs, index width
#include <pybind11/numpy.h>

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "../bindings/bindings.h"
#include "../bindings/release_gil.h"
#include "../runtime/aligned.h"
#include "../runtime/sparse.h"
#include "kern_testing_util.h"

namespace py = pybind11;

namespace pyrt {
namespace {

using kt::farray;
using kt::raise;
using kt::shape_str;

py::array_t<float> spmm(const farray& A, const farray& B, int R, const py::object& bias,
                        const py::object& residual, const std::string& act, float lo, float hi,
                        bool after, const std::optional<std::string>& isa, int parts, int repeat) {
  if (A.ndim() != 2 || B.ndim() != 2 || A.shape(1) != B.shape(0))
    raise("ShapeError", "spmm: expected A [M, K] and B [K, N], got " + shape_str(A) + " and " +
                            shape_str(B));
  const ptrdiff_t M = A.shape(0), K = A.shape(1), N = B.shape(1);
  if (parts < 1 || repeat < 1)
    raise("InputError", "spmm: parts and repeat must be >= 1, got " + std::to_string(parts) +
                            " and " + std::to_string(repeat));
  const KernelTable& t = kt::table(isa);
  Epilogue ep{};
  std::vector<float> b;
  farray res;
  if (!bias.is_none()) {
    farray bb = bias.cast<farray>();
    if (bb.ndim() != 1 || bb.shape(0) != N) raise("ShapeError", "spmm: bias must be [N]");
    b.assign(bb.data(), bb.data() + N);
    ep.bias = b.data();
  }
  if (!residual.is_none()) {
    res = residual.cast<farray>();
    if (res.ndim() != 2 || res.shape(0) != M || res.shape(1) != N)
      raise("ShapeError", "spmm: residual must be [M, N]");
    ep.residual = res.data();
    ep.ldr = N;
  }
  ep.act = kt::parse_act(act);
  ep.lo = lo;
  ep.hi = hi;
  ep.residual_after_act = after ? 1 : 0;
  py::array_t<float> C({M, N});
  float* c = C.mutable_data();
  {
    ReleaseGil release;
    SparseWeight w = pack_sparse(t, K, N, B.data(), N, R);
    // Row blocks like sparse_parallel (all rows for M <= kSpmvMaxRows, else tiles), each block's
    // groups split into `parts` ranges of equal nonzeros, run one after another.
    AlignedBuffer scratch(w.scratch_floats() * sizeof(float) + 64, 64);
    float* s = static_cast<float*>(scratch.get());
    const ptrdiff_t unit = M <= kSpmvMaxRows ? (M > 0 ? M : 1) : w.cfg.mt;
    for (int it = 0; it < repeat; ++it)
      for (ptrdiff_t m0 = 0; m0 < M; m0 += unit)
        for (int p = 0; p < parts; ++p) {
          Epilogue e = ep;
          if (e.residual) e.residual += m0 * e.ldr;
          sparse_rows(w, A.data() + m0 * K, K, std::min(unit, M - m0), c + m0 * N, N, e,
                      group_split(w, p, parts), group_split(w, p + 1, parts), s);
        }
  }
  return C;
}

// C = epilogue(A @ (Q * scale)) through the int8 sparse product: the qc8w_spmm row
// kernel (rows <= kSpmvMaxRows, or every row when `tiles` is false), else f32_spmm's
// tiles on the dequantized packing, as a step runs it.
py::array_t<float> qspmm(const farray& A, const py::array_t<int8_t, py::array::c_style>& Q,
                         const farray& scale, int R, const py::object& bias,
                         const py::object& residual, const std::string& act, float lo, float hi,
                         bool after, const std::optional<std::string>& isa, int parts, bool tiles) {
  if (A.ndim() != 2 || Q.ndim() != 2 || A.shape(1) != Q.shape(0))
    raise("ShapeError", "qspmm: expected A [M, K] and Q [K, N], got " + shape_str(A));
  const ptrdiff_t M = A.shape(0), K = A.shape(1), N = Q.shape(1);
  if (scale.ndim() != 1 || scale.shape(0) != N) raise("ShapeError", "qspmm: scale must be [N]");
  if (parts < 1) raise("InputError", "qspmm: parts must be >= 1");
  const KernelTable& t = kt::table(isa);
  Epilogue ep{};
  std::vector<float> b;
  farray res;
  if (!bias.is_none()) {
    farray bb = bias.cast<farray>();
    if (bb.ndim() != 1 || bb.shape(0) != N) raise("ShapeError", "qspmm: bias must be [N]");
    b.assign(bb.data(), bb.data() + N);
    ep.bias = b.data();
  }
  if (!residual.is_none()) {
    res = residual.cast<farray>();
    if (res.ndim() != 2 || res.shape(0) != M || res.shape(1) != N)
      raise("ShapeError", "qspmm: residual must be [M, N]");
    ep.residual = res.data();
    ep.ldr = N;
  }
  ep.act = kt::parse_act(act);
  ep.lo = lo;
  ep.hi = hi;
  ep.residual_after_act = after ? 1 : 0;
  py::array_t<float> C({M, N});
  float* c = C.mutable_data();
  {
    ReleaseGil release;
    std::vector<float> B(size_t(K) * size_t(N));
    for (ptrdiff_t k = 0; k < K; ++k)
      for (ptrdiff_t n = 0; n < N; ++n) B[size_t(k * N + n)] = float(Q.data()[k * N + n]) * scale.data()[n];
    SparseWeight w = pack_sparse_int8(t, K, N, Q.data(), scale.data(), B.data(), R, true, tiles);
    AlignedBuffer scratch(w.scratch_floats() * sizeof(float) + 64, 64);
    float* s = static_cast<float*>(scratch.get());
    const ptrdiff_t unit = M <= kSpmvMaxRows ? (M > 0 ? M : 1) : w.cfg.mt;
    for (ptrdiff_t m0 = 0; m0 < M; m0 += unit)
      for (int p = 0; p < parts; ++p) {
        Epilogue e = ep;
        if (e.residual) e.residual += m0 * e.ldr;
        sparse_rows(w, A.data() + m0 * K, K, std::min(unit, M - m0), c + m0 * N, N, e,
                    group_split(w, p, parts), group_split(w, p + 1, parts), s);
      }
  }
  return C;
}

}  // namespace

void bind_testing_spmm(py::module_& testing) {
  testing.def("qspmm", &qspmm, py::arg("A"), py::arg("Q"), py::arg("scale"), py::arg("R") = 1,
              py::arg("bias") = py::none(), py::arg("residual") = py::none(),
              py::arg("act") = "none", py::arg("lo") = 0.0f, py::arg("hi") = 0.0f,
              py::arg("residual_after_act") = false, py::arg("isa") = py::none(),
              py::arg("parts") = 1, py::arg("tiles") = true,
              "C = epilogue(A @ (Q * scale)) through qc8w_spmm (rows <= 2, or all rows when "
              "tiles=False) and f32_spmm on the dequantized weight for more rows.");
  testing.def("qspmm_kernel", [](const std::optional<std::string>& isa) {
    return std::string(kt::table(isa).qc8w_spmm.name);
  }, py::arg("isa") = py::none());
  testing.def("spmm", &spmm, py::arg("A"), py::arg("B"), py::arg("R") = 1,
              py::arg("bias") = py::none(), py::arg("residual") = py::none(),
              py::arg("act") = "none", py::arg("lo") = 0.0f, py::arg("hi") = 0.0f,
              py::arg("residual_after_act") = false, py::arg("isa") = py::none(),
              py::arg("parts") = 1, py::arg("repeat") = 1,
              "C = epilogue(A @ B) through f32_spmm with B packed in groups of R output "
              "channels; `parts` splits the groups into ranges of equal nonzeros.");
  testing.def("spmm_info", [](const farray& B, int R) {
    if (B.ndim() != 2) raise("ShapeError", "spmm_info: expected B [K, N]");
    SparseWeight w = pack_sparse(kernel_table_for(Isa::Scalar), B.shape(0), B.shape(1), B.data(),
                                 B.shape(1), R);
    py::dict d;
    d["pairs"] = w.h.nnzb;
    d["groups"] = w.h.G;
    d["idx_bytes"] = w.h.idx_bytes;
    d["packed_bytes"] = w.packed.size();
    return d;
  }, py::arg("B"), py::arg("R") = 1);
}

}  // namespace pyrt
