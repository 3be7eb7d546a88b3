// Kernel-level test entry points for the GEMM records (f32_gemm and the 16-bit weight
// entries f16w_gemm / bf16w_gemm, which share its GemmConfig record):
//   _core.testing.gemm(A, B, ..., entry=, variant=, threads=)  packs B, runs over a block
//                                          grid like the executor
//   _core.testing.gemm_config(isa)         {name, mr, nr}
//   _core.testing.gemm_pack(B, isa)        the packed weight (float32 panels for f32_gemm,
//                                          raw bytes for the others), exactly packed_bytes
//   _core.testing.gemm_variants(entry)     every variant of an entry in the dispatch list
#include <pybind11/numpy.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "../bindings/bindings.h"
#include "kern_testing_util.h"
#include "pyrt/dispatch.h"
#include "../runtime/parallel.h"

namespace py = pybind11;

namespace pyrt {

// Defined in f32_gemm_avx2.cpp for tests only (not part of the kernel table).
void register_f32_gemm_12x16__avx2(KernelTable& t);

namespace {

constexpr const char* kAvx512Shape = "avx2_12x16";

using kt::parse_act;
using kt::raise;
using kt::shape_str;

// "avx2_12x16": the AVX2 table with its gemm replaced by the test-only kernel that has
// the AVX-512 kernel's tile shape (see f32_gemm_avx2.cpp); any other name is an ISA.
const KernelTable& base_table_for(const std::string& isa) {
  try {
    if (isa == kAvx512Shape) {
      static const KernelTable t = [] {
        KernelTable copy = kernel_table_for(Isa::Avx2);
        register_f32_gemm_12x16__avx2(copy);
        return copy;
      }();
      return t;
    }
    return kernel_table_for(parse_isa(isa));
  } catch (const std::exception& e) {
    raise("IsaError", e.what());
  }
}

constexpr const char* kNarrowSuffix = "/narrow";

bool is_narrow(const std::string& name) {
  const size_t n = std::strlen(kNarrowSuffix);
  return name.size() > n && name.compare(name.size() - n, n, kNarrowSuffix) == 0;
}

// The name without its "/narrow".
std::string base_name(const std::string& name) {
  return is_narrow(name) ? name.substr(0, name.size() - std::strlen(kNarrowSuffix)) : name;
}

// A base name (above), or one followed by "/narrow": that table with its gemm replaced
// by the family's narrow-output kernel (GemmConfig::narrow), e.g. "avx512/narrow".
const KernelTable& table_for(const std::string& name) {
  if (!is_narrow(name)) return base_table_for(name);
  const std::string base = base_name(name);
  const KernelTable& t = base_table_for(base);
  if (t.f32_gemm.narrow == nullptr)
    raise("IsaError", "the f32_gemm kernel " + std::string(t.f32_gemm.name) + " of '" + base +
                          "' has no narrow variant");
  static std::map<std::string, KernelTable> tables;  // guarded by the GIL
  auto it = tables.find(base);
  if (it == tables.end()) {
    KernelTable copy = t;
    copy.f32_gemm = *t.f32_gemm.narrow;
    it = tables.emplace(base, copy).first;
  }
  return it->second;
}

// The GemmConfig field of a table entry name.
GemmConfig KernelTable::*gemm_field(const std::string& entry) {
  if (entry == "f32_gemm") return &KernelTable::f32_gemm;
  if (entry == "f16w_gemm") return &KernelTable::f16w_gemm;
  if (entry == "bf16w_gemm") return &KernelTable::bf16w_gemm;
  raise("InputError", "entry must be 'f32_gemm', 'f16w_gemm' or 'bf16w_gemm'; got '" + entry + "'");
}

// Bytes per weight of an entry's packed form (the least packed_bytes may give per K*N).
size_t weight_bytes(const std::string& entry) { return entry == "f32_gemm" ? 4 : 2; }

// The record of one variant of `entry` by its kernel name (e.g. the plain AVX-512
// bf16w_gemm on a CPU whose table takes the AVX512-BF16 one); IsaError when this CPU
// lacks a feature it needs, InputError for an unknown name.
const GemmConfig& gemm_variant(const std::string& entry, const std::string& name) {
  static std::map<std::string, GemmConfig> found;  // guarded by the GIL
  const auto key = entry + "/" + name;
  auto it = found.find(key);
  if (it != found.end()) return it->second;
  const auto field = gemm_field(entry);
  std::string names;
  for (const KernelVariant& v : kernel_variants()) {
    if (entry != v.entry) continue;
    KernelTable blank{};
    v.fill(blank);  // registering runs no ISA instruction
    const GemmConfig& g = blank.*field;
    if (name != g.name) {
      names += std::string(names.empty() ? "" : ", ") + "'" + g.name + "'";
      continue;
    }
    if ((v.needs & cpu_features().usable()) != v.needs)
      raise("IsaError", "variant '" + name + "' needs CPU features this CPU/OS lacks");
    return found.emplace(key, g).first->second;
  }
  raise("InputError", "no " + entry + " variant named '" + name + "'; expected one of " + names);
}

// The record to run: a named variant, or the entry of the table for `isa`.
const GemmConfig& gemm_config_for(const std::string& entry, const std::string& isa,
                                  const std::string& variant) {
  const auto field = gemm_field(entry);
  if (!variant.empty()) return gemm_variant(entry, variant);
  if (is_narrow(isa) && entry != "f32_gemm")
    raise("IsaError", "only f32_gemm has narrow variants; got '" + isa + "' for " + entry);
  return table_for(isa).*field;
}

// A float32 matrix view with unit column stride: rows, cols and the row stride in floats.
struct Mat {
  float* data = nullptr;
  ptrdiff_t rows = 0, cols = 0, ld = 0;
  const char* lo = nullptr;  // byte range covered, for overlap checks
  const char* hi = nullptr;
};


Mat as_mat(const py::handle& obj, const char* what, bool writable) {
  if (!py::isinstance<py::array>(obj))
    raise("DTypeError", std::string(what) + " must be a numpy float32 array, got " +
                            std::string(py::str(py::type::of(obj).attr("__name__"))));
  py::array a = py::reinterpret_borrow<py::array>(obj);
  if (!a.dtype().is(py::dtype::of<float>()))
    raise("DTypeError", std::string(what) + " must be float32, got " +
                            std::string(py::str(a.dtype())));
  if (a.ndim() != 2)
    raise("ShapeError", std::string(what) + " must be 2-D, got shape " + shape_str(a));
  Mat m;
  m.rows = a.shape(0);
  m.cols = a.shape(1);
  const ptrdiff_t s0 = a.strides(0), s1 = a.strides(1);
  const ptrdiff_t fs = static_cast<ptrdiff_t>(sizeof(float));
  const bool empty = m.rows == 0 || m.cols == 0;  // numpy may give any strides
  if (!empty && m.cols > 1 && s1 != fs)
    raise("InputError", std::string(what) + " must have unit stride along its columns "
                            "(rows may be padded); got strides (" + std::to_string(s0) + ", " +
                            std::to_string(s1) + ") bytes");
  if (!empty && m.rows > 1 && (s0 % fs != 0 || s0 / fs < m.cols))
    raise("InputError", std::string(what) + " needs a row stride that is a multiple of 4 "
                            "bytes and at least its width; got strides (" +
                            std::to_string(s0) + ", " + std::to_string(s1) + ") bytes");
  if (writable && !a.writeable())
    raise("InputError", std::string(what) + " must be writable");
  m.ld = !empty && m.rows > 1 ? s0 / fs : m.cols;
  m.data = static_cast<float*>(const_cast<void*>(a.data()));
  m.lo = reinterpret_cast<const char*>(m.data);
  m.hi = m.rows && m.cols
             ? reinterpret_cast<const char*>(m.data + (m.rows - 1) * m.ld + m.cols)
             : m.lo;
  return m;
}

bool overlaps(const Mat& a, const Mat& b) { return a.lo < b.hi && b.lo < a.hi; }


struct AlignedFree {
  void operator()(float* p) const { std::free(p); }
};
using Buffer = std::unique_ptr<float[], AlignedFree>;

// 64-byte aligned, with `guard` sentinel floats after `n` so overruns are caught.
constexpr float kSentinel = -1.2345e30f;
Buffer alloc_guarded(size_t n, size_t guard) {
  const size_t bytes = ((n + guard) * sizeof(float) + 63) / 64 * 64;
  float* p = static_cast<float*>(std::aligned_alloc(64, bytes ? bytes : 64));
  if (p == nullptr) throw std::bad_alloc();
  for (size_t i = 0; i < n + guard; ++i) p[i] = kSentinel;
  return Buffer(p);
}

// Packs B with the config into a guarded buffer (whole floats, 64-byte aligned); throws
// if pack overran packed_bytes. *bytes_out: packed_bytes.
Buffer pack_checked(const GemmConfig& g, const Mat& B, size_t elem_bytes, size_t* bytes_out) {
  const size_t bytes = g.packed_bytes(B.rows, B.cols);
  if (bytes < static_cast<size_t>(B.rows) * static_cast<size_t>(B.cols) * elem_bytes)
    throw std::logic_error(std::string(g.name) + ": packed_bytes smaller than K*N weights");
  const size_t size = (bytes + sizeof(float) - 1) / sizeof(float);
  constexpr size_t kGuard = 64;
  Buffer buf = alloc_guarded(size, kGuard);
  const unsigned char* raw = reinterpret_cast<const unsigned char*>(buf.get());
  std::vector<unsigned char> tail(raw + bytes, raw + (size + kGuard) * sizeof(float));
  {
    py::gil_scoped_release nogil;
    if (bytes) g.pack(B.rows, B.cols, B.data, B.ld, buf.get());
  }
  if (std::memcmp(raw + bytes, tail.data(), tail.size()) != 0)
    throw std::logic_error(std::string(g.name) + ": pack wrote past packed_bytes");
  *bytes_out = bytes;
  return buf;
}

// Seconds the last gemm() call spent in its run loop (all repeats; packing excluded).
double g_last_run_seconds = 0;  // guarded by the GIL

py::array_t<float> gemm(const py::object& A_obj, const py::object& B_obj,
                        const py::object& bias_obj, const py::object& res_obj,
                        const std::string& act, float lo, float hi, bool residual_after_act,
                        const std::string& isa, int64_t n_split, int64_t m_split,
                        const py::object& out_obj, int64_t repeat, const std::string& entry,
                        const std::string& variant, int64_t threads) {
  const GemmConfig& g = gemm_config_for(entry, isa, variant);
  if (g.run == nullptr) raise("IsaError", "no " + entry + " kernel registered for ISA '" + isa + "'");
  if (threads < 1 || threads > 256)
    raise("InputError", "threads must be in [1, 256]; got " + std::to_string(threads));
  const Mat A = as_mat(A_obj, "A", false);
  const Mat B = as_mat(B_obj, "B", false);
  const ptrdiff_t M = A.rows, K = A.cols, N = B.cols;
  if (B.rows != K)
    raise("ShapeError", "A is (" + std::to_string(M) + ", " + std::to_string(K) +
                            ") so B must have " + std::to_string(K) + " rows; got (" +
                            std::to_string(B.rows) + ", " + std::to_string(N) + ")");
  if (repeat < 1) raise("InputError", "repeat must be >= 1; got " + std::to_string(repeat));
  if (n_split < 1 || m_split < 1)
    raise("InputError", "n_split and m_split must be >= 1; got " + std::to_string(n_split) +
                            " and " + std::to_string(m_split));
  Epilogue ep{};
  ep.act = parse_act(act);
  ep.lo = lo;
  ep.hi = hi;
  ep.residual_after_act = residual_after_act ? 1 : 0;

  py::array bias_arr;
  if (!bias_obj.is_none()) {
    if (!py::isinstance<py::array>(bias_obj) ||
        !py::reinterpret_borrow<py::array>(bias_obj).dtype().is(py::dtype::of<float>()))
      raise("DTypeError", "bias must be a float32 numpy array");
    bias_arr = py::reinterpret_borrow<py::array>(bias_obj);
    if (bias_arr.ndim() != 1 || bias_arr.shape(0) != N)
      raise("ShapeError", "bias must have shape (" + std::to_string(N) + ",), got " +
                              shape_str(bias_arr));
    if (N > 1 && bias_arr.strides(0) != static_cast<py::ssize_t>(sizeof(float)))
      raise("InputError", "bias must be contiguous");
    ep.bias = static_cast<const float*>(bias_arr.data());
  }

  Mat R;
  if (!res_obj.is_none()) {
    R = as_mat(res_obj, "residual", false);
    if (R.rows != M || R.cols != N)
      raise("ShapeError", "residual must have shape (" + std::to_string(M) + ", " +
                              std::to_string(N) + "), got (" + std::to_string(R.rows) +
                              ", " + std::to_string(R.cols) + ")");
    ep.residual = R.data;
    ep.ldr = R.ld;
  }

  py::array_t<float> out;
  Mat C;
  if (out_obj.is_none()) {
    out = py::array_t<float>({static_cast<py::ssize_t>(M), static_cast<py::ssize_t>(N)});
    C = as_mat(out, "out", true);
  } else {
    C = as_mat(out_obj, "out", true);
    out = py::reinterpret_borrow<py::array_t<float>>(out_obj);
    if (C.rows != M || C.cols != N)
      raise("ShapeError", "out must have shape (" + std::to_string(M) + ", " +
                              std::to_string(N) + "), got (" + std::to_string(C.rows) +
                              ", " + std::to_string(C.cols) + ")");
    if (overlaps(C, A) || overlaps(C, B))
      raise("InputError", "out must not overlap A or B");
    // In place residual (out is residual) is allowed; partial overlap is not.
    if (ep.residual && overlaps(C, R) && !(R.data == C.data && R.ld == C.ld))
      raise("InputError", "out may be the residual itself but must not partly overlap it");
  }

  size_t psize = 0;
  Buffer packed = pack_checked(g, B, weight_bytes(entry), &psize);
  if (M == 0 || N == 0) return out;

  const ptrdiff_t nr = g.nr;
  const ptrdiff_t panels = (N + nr - 1) / nr;
  // The blocks, one run() call each, as the executor's threads would call them.
  struct Block { ptrdiff_t m0, m1, n0, n1; };
  std::vector<Block> blocks;
  for (int64_t mi = 0; mi < m_split; ++mi) {
    const ptrdiff_t m0 = M * mi / m_split, m1 = M * (mi + 1) / m_split;
    for (int64_t ni = 0; ni < n_split; ++ni) {
      const ptrdiff_t p0 = panels * ni / n_split, p1 = panels * (ni + 1) / n_split;
      const ptrdiff_t n0 = p0 * nr, n1 = p1 * nr < N ? p1 * nr : N;
      if (m1 > m0 && n1 > n0) blocks.push_back({m0, m1, n0, n1});
    }
  }
  {
    py::gil_scoped_release nogil;
    const auto t0 = std::chrono::steady_clock::now();
    const void* pk = packed.get();
    for (int64_t rep = 0; rep < repeat; ++rep) {
      parallel_for(static_cast<int>(threads), static_cast<ptrdiff_t>(blocks.size()),
                   [&](ptrdiff_t i, int) {
                     const Block& b = blocks[static_cast<size_t>(i)];
                     Epilogue blk = ep;
                     if (blk.residual) blk.residual += b.m0 * ep.ldr;
                     g.run(b.m1 - b.m0, N, K, A.data + b.m0 * A.ld, A.ld, pk,
                           C.data + b.m0 * C.ld, C.ld, &blk, b.n0, b.n1);
                   });
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    py::gil_scoped_acquire gil;
    g_last_run_seconds = secs;
  }
  return out;
}

}  // namespace

void bind_testing_gemm(py::module_& testing) {
  testing.def("gemm", &gemm, py::arg("A"), py::arg("B"), py::arg("bias") = py::none(),
              py::arg("residual") = py::none(), py::arg("act") = "none",
              py::arg("lo") = 0.0f, py::arg("hi") = 0.0f,
              py::arg("residual_after_act") = false, py::arg("isa") = "avx2",
              py::arg("n_split") = 1, py::arg("m_split") = 1, py::arg("out") = py::none(),
              py::arg("repeat") = 1, py::arg("entry") = "f32_gemm", py::arg("variant") = "",
              py::arg("threads") = 1,
              "C = epilogue(A @ B) with B packed by the ISA's `entry` record (f32_gemm, "
              "f16w_gemm, bf16w_gemm: B rounded to the weight type by its packer), or by "
              "the variant of that entry named `variant` (a kernel name), computed over an "
              "m_split x n_split grid of blocks (n boundaries on multiples of nr) the way "
              "the executor calls it. A, residual and out may have padded rows (row stride "
              ">= width); out, when given, is written in place and returned. `repeat` "
              "runs the grid that many times after one packing, for timing the kernel; `threads` "
              "runs the grid's blocks on that many threads of the executor's pool.");
  testing.def("gemm_last_seconds", [] { return g_last_run_seconds; },
              "Seconds the last testing.gemm call spent running its grid (all repeats), "
              "without the packing: what bench/gemm16.py times.");
  testing.def("gemm_config", [](const std::string& isa, bool check_cpu, const std::string& entry) {
    const auto field = gemm_field(entry);
    KernelTable blank{};
    const KernelTable* t = &blank;
    const std::string base = base_name(isa);
    if (check_cpu || base == kAvx512Shape) {
      t = &base_table_for(base);
    } else {  // names and shapes only: registering runs no ISA instruction
      Isa want;
      try {
        want = parse_isa(base);
      } catch (const std::exception& e) {
        raise("IsaError", e.what());
      }
      for (const KernelVariant& v : kernel_variants())
        if (entry == v.entry && v.level <= want) v.fill(blank);
    }
    const GemmConfig* g = &(t->*field);
    if (base != isa) {
      if (g->narrow == nullptr)
        raise("IsaError", "the " + entry + " kernel of '" + base + "' has no narrow variant");
      g = g->narrow;
    }
    py::dict d;
    d["name"] = g->name ? g->name : "";
    d["mr"] = g->mr;
    d["nr"] = g->nr;
    d["narrow"] = g->narrow && g->narrow->name ? py::object(py::str(g->narrow->name)) : py::none();
    return d;
  }, py::arg("isa"), py::arg("check_cpu") = true, py::arg("entry") = "f32_gemm",
     "The `entry` kernel for an ISA (or '<isa>/narrow': its narrow-output kernel): {name, mr, "
     "nr, narrow (that kernel's name or None)}. check_cpu=False also describes the "
     "kernel of an ISA this CPU lacks (it is not run).");
  testing.def("gemm_pack", [](const py::object& B_obj, const std::string& isa,
                              const std::string& entry, const std::string& variant) -> py::object {
    const GemmConfig& g = gemm_config_for(entry, isa, variant);
    const Mat B = as_mat(B_obj, "B", false);
    size_t bytes = 0;
    Buffer packed = pack_checked(g, B, weight_bytes(entry), &bytes);
    if (entry == "f32_gemm") {
      py::array_t<float> out(static_cast<py::ssize_t>(bytes / sizeof(float)));
      if (bytes) std::memcpy(out.mutable_data(), packed.get(), bytes);
      return out;
    }
    py::array_t<uint8_t> out(static_cast<py::ssize_t>(bytes));
    if (bytes) std::memcpy(out.mutable_data(), packed.get(), bytes);
    return out;
  }, py::arg("B"), py::arg("isa"), py::arg("entry") = "f32_gemm", py::arg("variant") = "",
     "B[K, N] packed by the ISA's `entry` record (or the named variant): exactly "
     "packed_bytes(K, N) bytes, as float32 for f32_gemm and uint8 for the others.");
  testing.def("gemm_variants", [](const std::string& entry) {
    const auto field = gemm_field(entry);
    const uint32_t have = cpu_features().usable();
    py::list out;
    for (const KernelVariant& v : kernel_variants()) {
      if (entry != v.entry) continue;
      KernelTable blank{};
      v.fill(blank);  // registering runs no ISA instruction
      py::dict d;
      d["name"] = (blank.*field).name;
      d["level"] = isa_name(v.level);
      d["runnable"] = (v.needs & have) == v.needs;
      out.append(d);
    }
    return out;
  }, py::arg("entry"),
     "Every variant of a GEMM entry in the dispatch list, in order: {name, level (the ISA "
     "cap it belongs to), runnable (this CPU/OS has every feature it needs)}.");
  testing.def("gemm_packed_bytes", [](int64_t K, int64_t N, const std::string& isa,
                                      const std::string& entry, const std::string& variant) {
    return gemm_config_for(entry, isa, variant).packed_bytes(K, N);
  }, py::arg("K"), py::arg("N"), py::arg("isa"), py::arg("entry") = "f32_gemm",
     py::arg("variant") = "");
}

}  // namespace pyrt
