// The native serving engine binding (used by pyruntime.serve.LoadBalancer when every
// replica is a compiled CPU Session). Submit copies the request's rows in under the GIL;
// waits, close and completed() release it; outcomes become numpy arrays under the GIL.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <string>
#include <vector>

#include "../serve/serve_engine.h"
#include "bindings.h"
#include "release_gil.h"
#include "pyplan.h"

namespace py = pybind11;

namespace pyrt {
namespace {

struct PyEngine {
  std::vector<py::object> keep;  // the Plan objects the engine runs (outlive it)
  std::vector<std::vector<py::ssize_t>> out_tails;
  std::unique_ptr<serve::Engine> e;

  ~PyEngine() {
    if (e) {
      ReleaseGil release;
      e->close(false);
      e.reset();
    }
  }
};

struct PyTicket {
  std::shared_ptr<serve::Request> r;
  py::object engine;  // keeps the PyEngine (and its plans) alive while the ticket lives
};

py::list outputs_of(const PyEngine& pe, const serve::Request& r) {
  py::list outs;
  for (size_t i = 0; i < r.out.size(); ++i) {
    std::vector<py::ssize_t> shape{r.rows};
    shape.insert(shape.end(), pe.out_tails[i].begin(), pe.out_tails[i].end());
    py::array_t<float> a(shape);
    std::copy(r.out[i].begin(), r.out[i].end(), a.mutable_data());
    outs.append(a);
  }
  return outs;
}

// (status, message, outputs or None) of a finished request.
py::tuple outcome_of(PyTicket& t) {
  PyEngine& pe = t.engine.cast<PyEngine&>();
  const bool ok = t.r->status == serve::Status::Ok;
  return py::make_tuple(static_cast<int>(t.r->status), t.r->message,
                        ok ? py::object(outputs_of(pe, *t.r)) : py::object(py::none()));
}

py::dict counts_dict(const serve::Counts& s) {
  py::dict d, counts;
  for (int c = 0; c < serve::kNumCounters; ++c) counts[serve::kCounterNames[c]] = s.counts[c];
  d["counts"] = counts;
  return d;
}

py::dict scope_dict(const serve::ScopeStats& s) {
  py::dict d = counts_dict(s);
  auto series = [](const serve::Series& x) {
    std::vector<double> v = x.samples();
    return py::make_tuple(py::array_t<double>(py::ssize_t(v.size()), v.data()), x.count, x.total);
  };
  d["queue"] = series(s.queue);
  d["compute"] = series(s.compute);
  d["latency"] = series(s.latency);
  d["batch"] = series(s.batch);
  return d;
}

}  // namespace

void bind_serve(py::module_& m) {
  py::class_<PyTicket>(m, "ServeTicket", "One request in a ServeEngine.")
      .def("wait", [](PyTicket& t, const py::object& timeout) {
             const double s = timeout.is_none() ? -1.0 : std::max(0.0, timeout.cast<double>());
             ReleaseGil release;
             return t.r->wait(s);
           }, py::arg("timeout") = py::none(),
           "Block (GIL released) until done or `timeout` seconds pass; returns done.")
      .def("done", [](PyTicket& t) { return t.r->is_done(); })
      .def("result", [](PyTicket& t, double slice) {
        // Wait in slices (GIL released), running Python's signal handlers in between, so
        // Ctrl-C interrupts a waiting caller; then the outcome.
        while (!t.r->is_done()) {
          {
            ReleaseGil release;
            if (t.r->wait(slice)) break;
          }
          if (PyErr_CheckSignals() != 0) throw py::error_already_set();
        }
        return outcome_of(t);
      }, py::arg("slice") = 0.2, "Wait until done, then outcome().")
      .def_property_readonly("seq", [](PyTicket& t) { return t.r->seq; })
      .def("cancel", [](PyTicket& t) {
        PyEngine& pe = t.engine.cast<PyEngine&>();
        return pe.e ? pe.e->cancel(t.r) : false;
      }, "Queued -> cancelled (never computed): True; else False.")
      .def("outcome", [](PyTicket& t) {
        if (!t.r->is_done()) throw std::logic_error("ServeTicket.outcome() before done");
        return outcome_of(t);
      }, "(status, message, outputs or None); status 1 ok, 2 deadline exceeded, 3 replica "
         "failed, 4 closed, 5 cancelled.");

  py::class_<PyEngine>(m, "ServeEngine",
                       "Shared-queue batching engine over compiled Plans with native workers.")
      .def(py::init([](const std::vector<py::object>& plans, const std::vector<int64_t>& caps,
                       double max_delay, int64_t max_queue, int max_retries, int evict_after,
                       double probe_interval) {
             auto pe = std::make_unique<PyEngine>();
             std::vector<const Plan*> ps;
             for (const py::object& o : plans) {
               PyPlan& pp = o.cast<PyPlan&>();
               pe->keep.push_back(o);
               ps.push_back(pp.plan.get());
             }
             if (plans.empty()) throw std::invalid_argument("serve engine: expected at least one plan");
             pe->out_tails = plans[0].cast<PyPlan&>().out_tails;
             serve::Options opt;
             opt.caps = caps;
             opt.max_delay = max_delay;
             opt.max_queue = max_queue;
             opt.max_retries = max_retries;
             opt.evict_after = evict_after;
             opt.probe_interval = probe_interval;
             pe->e = std::make_unique<serve::Engine>(std::move(ps), std::move(opt));
             return pe;
           }),
           py::arg("plans"), py::arg("caps"), py::arg("max_delay"), py::arg("max_queue"),
           py::arg("max_retries"), py::arg("evict_after"), py::arg("probe_interval"))
      .def("submit", [](py::object self, const py::array& x, const py::object& timeout,
                        int priority, bool notify, bool inline_ok) {
             PyEngine& pe = self.cast<PyEngine&>();
             if (!pe.e) throw std::invalid_argument("serve engine is closed");
             if (!x.dtype().is(py::dtype::of<float>()) || !(x.flags() & py::array::c_style) ||
                 x.ndim() < 1 || x.shape(0) < 1 ||
                 x.size() != x.shape(0) * pe.e->input_floats())
               throw std::invalid_argument("submit: expected a C-contiguous float32 array of rows "
                                           "of the model's input");
             const double t = timeout.is_none() ? -1.0 : timeout.cast<double>();
             try {
               auto r = pe.e->make_request(static_cast<const float*>(x.data()), x.shape(0), t,
                                           priority, notify);
               const int rep = inline_ok ? pe.e->claim_inline(r) : -1;
               if (rep >= 0) {
                 ReleaseGil release;
                 pe.e->run_inline(r, rep);
               } else {
                 pe.e->enqueue(r);
               }
               return PyTicket{std::move(r), self};
             } catch (const serve::SubmitError& err) {  // -> rt.serve.<the typed error>
               static const char* const names[] = {"Closed", "Overloaded", "ReplicaFailed"};
               py::object cls = py::module_::import("pyruntime.serve.errors").attr(names[err.kind]);
               PyErr_SetString(cls.ptr(), err.what());
               throw py::error_already_set();
             }
           }, py::arg("x"), py::arg("timeout") = py::none(), py::arg("priority") = 0,
           py::arg("notify") = false, py::arg("inline_ok") = false,
           "Queue rows (copied in); inline_ok: at low load (nothing in flight, a replica "
           "idle) run them in this thread instead, with the GIL released.")
      .def("close", [](PyEngine& pe, bool drain) {
        if (!pe.e) return;
        ReleaseGil release;
        pe.e->close(drain);
      }, py::arg("drain") = true)
      .def("completed", [](PyEngine& pe, double seconds) {
        std::vector<std::shared_ptr<serve::Request>> done;
        if (pe.e) {
          ReleaseGil release;
          done = pe.e->completed(seconds);
        }
        py::list seqs;
        for (auto& r : done) seqs.append(r->seq);
        return seqs;
      }, py::arg("seconds"),
         "Seqs of finished requests submitted with notify=True (waits up to `seconds`).")
      .def("stats", [](PyEngine& pe) {
        serve::Engine::Snapshot s = pe.e->stats();
        py::dict d;
        d["overall"] = counts_dict(s.overall);
        py::list reps;
        for (auto& r : s.replicas) reps.append(scope_dict(r));
        d["replicas"] = reps;
        d["in_service"] = s.in_service;
        d["submitted"] = s.submitted;
        d["overloaded"] = s.overloaded;
        d["queued"] = s.queued;
        d["running"] = s.running;
        d["pending"] = s.pending;
        return d;
      })
      .def("set_paused", [](PyEngine& pe, bool p) { pe.e->set_paused(p); },
           "Tests: hold every worker before its next batch (True) or release them.")
      .def("inject_failures", [](PyEngine& pe, int r, int n) { pe.e->inject_failures(r, n); },
           "Tests: replica r's next n batches (or probes) fail as if run() raised.");
}

}  // namespace pyrt
