// kd_edge._runtime: Python bindings for kd_edge::Artifact and kd_edge::Solver.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <string>

#include "kd_edge/solver.hpp"

namespace py = pybind11;

namespace {

using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;
using OutArray = py::array_t<float, py::array::c_style>;

// Batches from this size release the GIL while they run.
constexpr std::size_t kReleaseGilFrom = 256;

// A Solver plus what its last call reported (Python reads it as attributes).
struct PySolver {
  kd_edge::Solver solver;
  kd_edge::PredictReport report;
};

// Float arrays of any precision and layout become C-contiguous float32 (copied only if
// needed); anything else is refused rather than silently reinterpreted.
FloatArray as_points(const py::handle& x, std::size_t n_inputs) {
  // numpy.ma keeps whatever sits under a mask in the data: computing on it would be a silent guess.
  static const py::handle masked_type = py::module_::import("numpy.ma").attr("MaskedArray").cast<py::object>().release();
  if (py::isinstance(x, masked_type) && py::module_::import("numpy.ma").attr("is_masked")(x).cast<bool>())
    throw py::value_error("predict got a masked array with masked values; drop those points or fill them "
                          "(x.filled(value)) first");
  py::array array = py::array::ensure(x);
  if (!array) throw py::type_error("predict expects a 2-D numpy array of floats, got " +
                                   std::string(py::str(py::type::of(x))));
  const char kind = array.dtype().kind();
  if (kind != 'f')
    throw py::type_error("predict expects floating-point input, got dtype " + std::string(py::str(array.dtype())) +
                         "; convert with x.astype(numpy.float32)");
  if (array.ndim() != 2)
    throw py::value_error("predict expects shape (n_points, " + std::to_string(n_inputs) + "), got an array with " +
                          std::to_string(array.ndim()) + " dimension(s)");
  if (static_cast<std::size_t>(array.shape(1)) != n_inputs)
    throw py::value_error("input has " + std::to_string(array.shape(1)) + " columns, this artifact expects " +
                          std::to_string(n_inputs));
  // The converting constructor raises what numpy raised (ensure() would hand back null).
  return FloatArray(array);
}

// The caller's output array must already be what the runtime writes: no conversion, no copy.
void check_out(const py::handle& out, std::size_t n, std::size_t n_outputs) {
  const std::string want = "(" + std::to_string(n) + ", " + std::to_string(n_outputs) + ")";
  if (!py::isinstance<OutArray>(out))
    throw py::type_error("out must be a C-contiguous float32 numpy array of shape " + want);
  auto array = py::reinterpret_borrow<py::array>(out);
  if (array.ndim() != 2 || static_cast<std::size_t>(array.shape(0)) != n ||
      static_cast<std::size_t>(array.shape(1)) != n_outputs)
    throw py::value_error("out has the wrong shape; expected " + want);
  if (!array.writeable()) throw py::value_error("out is read-only");
}

py::object predict(PySolver& s, const py::handle& x, const py::object& out) {
  FloatArray points = as_points(x, s.solver.n_inputs());
  const std::size_t n = static_cast<std::size_t>(points.shape(0));
  py::object result = out;
  if (out.is_none()) {
    result = py::array_t<float>({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(s.solver.n_outputs())});
  } else {
    check_out(out, n, s.solver.n_outputs());
  }
  float* dst = static_cast<float*>(py::reinterpret_borrow<py::array>(result).mutable_data());
  const float* in = points.data();
  // The report is written with the GIL held: a thread refused by the Solver's busy check (kBusy)
  // never touches it, and the thread that ran writes it after the call.
  kd_edge::PredictReport report;
  try {
    if (n < kReleaseGilFrom) {  // a few microseconds: handing the GIL over would cost more
      report = s.solver.predict(in, n, dst);
    } else {
      py::gil_scoped_release release;
      report = s.solver.predict(in, n, dst);
    }
  } catch (const kd_edge::Error& e) {
    if (e.kind() != kd_edge::ErrorKind::kBusy) s.report = {};
    throw;
  }
  s.report = report;
  return result;
}

kd_edge::SolverOptions solver_options(int threads, std::size_t max_batch, const py::object& out_of_domain,
                                      const py::object& check_outputs, const py::object& residual) {
  kd_edge::SolverOptions o;
  const std::string residual_name = py::isinstance<py::str>(residual) ? py::cast<std::string>(residual) : "";
  if (residual_name == "off") o.residual_policy = kd_edge::ResidualPolicy::kOff;
  else if (residual_name == "flag") o.residual_policy = kd_edge::ResidualPolicy::kFlag;
  else if (residual_name == "reject") o.residual_policy = kd_edge::ResidualPolicy::kReject;
  else throw py::value_error("residual must be \"off\", \"flag\" or \"reject\", got " + std::string(py::repr(residual)));
  o.threads = threads;
  o.max_batch = max_batch;
  if (!out_of_domain.is_none()) {
    if (!py::isinstance<py::str>(out_of_domain))
      throw py::type_error("out_of_domain must be \"flag\", \"clamp\", \"reject\" or None, got " +
                           std::string(py::repr(out_of_domain)));
    const std::string name = py::cast<std::string>(out_of_domain);
    kd_edge::DomainPolicy policy;
    if (!kd_edge::domain_policy_from_name(name, &policy))
      throw py::value_error("out_of_domain must be \"flag\", \"clamp\" or \"reject\", got \"" + name + "\"");
    o.domain_policy = policy;
  }
  if (!check_outputs.is_none()) {
    static const py::handle numpy_bool = py::module_::import("numpy").attr("bool_").cast<py::object>().release();
    if (!py::isinstance<py::bool_>(check_outputs) && !py::isinstance(check_outputs, numpy_bool))
      throw py::type_error("check_outputs must be True, False or None (the manifest's default), got " +
                           std::string(py::repr(check_outputs)));
    o.check_outputs = check_outputs.cast<bool>();
  }
  return o;
}

py::dict info_dict(const kd_edge::ArtifactInfo& info) {
  py::dict d;
  d["format"] = info.format;
  d["runtime"] = info.runtime == kd_edge::RuntimeKind::kFused ? "fused" : "vm";
  d["library"] = info.library;
  d["inputs"] = info.input_names;
  d["outputs"] = info.output_names;
  d["lower"] = info.lower;
  d["upper"] = info.upper;
  d["out_of_domain"] = kd_edge::domain_policy_name(info.default_domain_policy);
  d["check_outputs"] = info.default_check_outputs;
  d["target_name"] = info.target_name;
  d["target_arch"] = info.target_arch;
  d["target_triple"] = info.target_triple;
  d["target_cpu"] = info.target_cpu;
  d["target_features"] = info.target_features;
  return d;
}

// pybind11 lets `Solver.__new__(Solver)` make an object whose C++ side was never constructed (its
// memory is uninitialised), and a method bound to `T&` would use it: methods take the Python
// object and come through here instead.
template <typename T>
T& constructed(py::handle self, const char* name) {
  if (!py::isinstance<T>(self)) throw py::type_error(std::string("expected a kd_edge.") + name);
  auto* inst = reinterpret_cast<py::detail::instance*>(self.ptr());
  auto vh = inst->get_value_and_holder(py::detail::get_type_info(typeid(T)));
  if (!vh.holder_constructed())
    throw py::type_error(std::string("this kd_edge.") + name + " was never initialised (made with __new__ alone); "
                         "make one with kd_edge." + name + "(...)");
  return *static_cast<T*>(vh.value_ptr());
}

// A property of Solver: f(const PySolver&), the instance checked first.
template <typename F>
auto on_solver(F f) {
  return [f](py::handle self) { return f(constructed<PySolver>(self, "Solver")); };
}

}  // namespace

PYBIND11_MODULE(_runtime, m) {
  m.doc() = "kd-edge C++ runtime";
  PYBIND11_CONSTINIT static py::gil_safe_call_once_and_store<py::object> artifact_error;
  artifact_error.call_once_and_store_result(
      [&]() { return py::exception<kd_edge::Error>(m, "ArtifactError", PyExc_ValueError); });
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const kd_edge::Error& e) {
      switch (e.kind()) {
        case kd_edge::ErrorKind::kNotFound: PyErr_SetString(PyExc_FileNotFoundError, e.what()); return;
        case kd_edge::ErrorKind::kInvalidArtifact: py::set_error(artifact_error.get_stored(), e.what()); return;
        case kd_edge::ErrorKind::kInvalidInput: PyErr_SetString(PyExc_ValueError, e.what()); return;
        case kd_edge::ErrorKind::kRuntime:
        case kd_edge::ErrorKind::kBusy: PyErr_SetString(PyExc_RuntimeError, e.what()); return;
      }
    }
  });

  m.attr("MANIFEST_FORMAT") = kd_edge::kManifestFormat;

  using ArtifactPtr = std::shared_ptr<kd_edge::Artifact>;  // pybind11 holders are non-const
  py::class_<kd_edge::Artifact, ArtifactPtr>(m, "Artifact",
                                             "A loaded artifact library, shared by any number of Solvers and threads.")
      .def(py::init([](const py::object& path) {
             if (!py::isinstance<py::str>(path) && !py::hasattr(path, "__fspath__"))
               throw py::type_error("Artifact expects an artifact directory (str or path)");
             const std::string dir = py::cast<std::string>(py::module_::import("os").attr("fspath")(path));
             py::gil_scoped_release release;
             return std::const_pointer_cast<kd_edge::Artifact>(kd_edge::Artifact::load(dir));
           }),
           py::arg("artifact_dir"),
           "Validate manifest.json and the library's sha256, then load the library (this runs its code: "
           "load only artifacts you trust).")
      .def_property_readonly("info", [](py::handle self) {
        return info_dict(constructed<kd_edge::Artifact>(self, "Artifact").info());
      });

  py::class_<PySolver>(m, "Solver", "A compiled artifact ready for prediction (one per thread).")
      .def(py::init([](const py::object& artifact, int threads, std::size_t max_batch, const py::object& out_of_domain,
                       const py::object& check_outputs, const py::object& residual) {
             kd_edge::SolverOptions o = solver_options(threads, max_batch, out_of_domain, check_outputs, residual);
             if (py::isinstance<kd_edge::Artifact>(artifact)) {
               ArtifactPtr shared = py::cast<ArtifactPtr>(artifact);
               py::gil_scoped_release release;
               return new PySolver{kd_edge::Solver(shared, o), {}};
             }
             if (!py::isinstance<py::str>(artifact) && !py::hasattr(artifact, "__fspath__"))
               throw py::type_error("Solver expects an artifact directory (str or path) or a kd_edge.Artifact");
             const std::string dir = py::cast<std::string>(py::module_::import("os").attr("fspath")(artifact));
             py::gil_scoped_release release;
             return new PySolver{kd_edge::Solver(dir, o), {}};
           }),
           py::arg("artifact"), py::arg("threads") = 0, py::arg("max_batch") = 0, py::arg("out_of_domain") = py::none(),
           py::arg("check_outputs") = py::none(), py::arg("residual") = "off",
           "Open an artifact directory (or share a loaded kd_edge.Artifact). threads=1 keeps every call on the "
           "calling thread; 0 (default) uses the runtime's pool (KD_EDGE_NUM_THREADS, default all CPUs) for large "
           "batches. "
           "max_batch: scratch prepared up front. out_of_domain: \"flag\", \"clamp\" or \"reject\" (None: the "
           "manifest's default). check_outputs: refuse non-finite outputs (None: the manifest's default). "
           "residual: for an artifact compiled with residual=True, \"flag\" counts points whose PDE residual is "
           "over the manifest's threshold, \"reject\" refuses the call (RuntimeError) at the first; \"off\" "
           "(default) leaves the residual columns as outputs.")
      .def("predict", [](py::handle self, const py::handle& x, const py::object& out) {
             return predict(constructed<PySolver>(self, "Solver"), x, out);
           }, py::arg("x"), py::arg("out") = py::none(),
           "Evaluate the model on x of shape (n_points, n_inputs). Floating input of any precision or "
           "memory layout is converted to C-contiguous float32 (a copy only when needed); other dtypes "
           "raise TypeError. Writes into out (C-contiguous float32, (n_points, n_outputs)) if given, else "
           "into a new array, and returns it. Batches of 256 points or more release the GIL.")
      .def_property_readonly("out_of_domain", on_solver([](const PySolver& s) { return s.report.out_of_domain; }),
                             "Points of the last predict outside the training domain (flagged or clamped).")
      .def_property_readonly("first_out_of_domain", on_solver([](const PySolver& s) -> py::object {
                               if (s.report.out_of_domain == 0) return py::none();
                               return py::int_(s.report.first_out_of_domain);
                             }),
                             "Index of the first such point, or None.")
      .def_property_readonly("residual_exceeded",
                             on_solver([](const PySolver& s) { return s.report.residual_exceeded; }),
                             "Points of the last predict whose residual was over the threshold (residual=\"flag\").")
      .def_property_readonly("first_residual_exceeded", on_solver([](const PySolver& s) -> py::object {
                               if (s.report.residual_exceeded == 0) return py::none();
                               return py::int_(s.report.first_residual_exceeded);
                             }),
                             "Index of the first such point, or None.")
      .def_property_readonly("threads", on_solver([](const PySolver& s) { return s.solver.threads(); }))
      .def_property_readonly("max_batch", on_solver([](const PySolver& s) { return s.solver.max_batch(); }))
      .def_property_readonly("domain_policy",
                             on_solver([](const PySolver& s) { return kd_edge::domain_policy_name(s.solver.domain_policy()); }))
      .def_property_readonly("check_outputs", on_solver([](const PySolver& s) { return s.solver.check_outputs(); }))
      .def_property_readonly("n_inputs", on_solver([](const PySolver& s) { return s.solver.n_inputs(); }))
      .def_property_readonly("n_outputs", on_solver([](const PySolver& s) { return s.solver.n_outputs(); }))
      .def_property_readonly("input_names", on_solver([](const PySolver& s) { return s.solver.info().input_names; }))
      .def_property_readonly("output_names", on_solver([](const PySolver& s) { return s.solver.info().output_names; }))
      .def_property_readonly("target_cpu", on_solver([](const PySolver& s) { return s.solver.info().target_cpu; }))
      .def_property_readonly("artifact", on_solver([](const PySolver& s) {
        return std::const_pointer_cast<kd_edge::Artifact>(s.solver.artifact());
      }))
      .def("__repr__", on_solver([](const PySolver& s) {
        return "<kd_edge.Solver " + std::to_string(s.solver.n_inputs()) + " -> " + std::to_string(s.solver.n_outputs()) +
               " for " + s.solver.info().target_cpu + ">";
      }));

  m.def("sha256_file", &kd_edge::sha256_file, py::arg("path"), "Lower-case hex SHA-256 of a file (the runtime's own).");
  m.def("parse_manifest", [](const std::string& text) { return info_dict(kd_edge::parse_manifest(text, "manifest")); },
        py::arg("text"), "Parse and validate manifest text as the runtime does (no host checks); returns its fields.");
}
