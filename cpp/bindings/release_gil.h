// ReleaseGil: releases the GIL around native work, like py::gil_scoped_release, but safe
// at interpreter exit.
//
// Why: a daemon Python thread (the balancer's resolver, a caller's thread) inside a
// GIL-released call when the interpreter finalizes would, on taking the GIL back, be
// ended by CPython (< 3.14) with pthread_exit. That forced unwind through the noexcept
// destructor of py::gil_scoped_release is std::terminate ("terminate called without an
// active exception", seen once in three exits of a process holding native-engine
// LoadBalancers). Here:
//   - a thread whose work ends while another thread finalizes parks for good instead of
//     taking the GIL back (as CPython 3.14 itself does; the process is ending);
//   - during finalization the GIL is not released at all (the finalizing thread, e.g.
//     destroying an engine, keeps it; native work never needs it);
//   - the destructor may be left by that forced unwind (noexcept(false)) in the narrow
//     window where finalization starts while the thread already waits for the GIL:
//     the thread then ends like a Python daemon thread (pybind11 rethrows the unwind)
//     instead of aborting the process.
#pragma once
#include <Python.h>

#include <chrono>
#include <thread>

namespace pyrt {

inline bool interpreter_finalizing() {
#if PY_VERSION_HEX >= 0x030D0000
  return Py_IsFinalizing() != 0;
#else
  return _Py_IsFinalizing() != 0;
#endif
}

class ReleaseGil {
 public:
  ReleaseGil() : ts_(interpreter_finalizing() ? nullptr : PyEval_SaveThread()) {}
  ~ReleaseGil() noexcept(false) {
    if (ts_ == nullptr) return;
    if (interpreter_finalizing())
      for (;;) std::this_thread::sleep_for(std::chrono::hours(24));  // never returns
    PyEval_RestoreThread(ts_);
  }
  ReleaseGil(const ReleaseGil&) = delete;
  ReleaseGil& operator=(const ReleaseGil&) = delete;

 private:
  PyThreadState* ts_;
};

}  // namespace pyrt
