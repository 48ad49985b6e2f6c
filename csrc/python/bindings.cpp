// kd_edge._runtime: Python bindings for kd_edge::Solver.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>

#include "kd_edge/solver.hpp"

namespace py = pybind11;

namespace {

using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;

// Float arrays of any precision and layout become C-contiguous float32 (copied only if
// needed); anything else is refused rather than silently reinterpreted.
FloatArray as_points(const py::handle& x, std::size_t n_inputs) {
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
  return FloatArray::ensure(array);
}

py::array_t<float> predict(kd_edge::Solver& solver, const py::handle& x) {
  FloatArray points = as_points(x, solver.n_inputs());
  const std::size_t n = static_cast<std::size_t>(points.shape(0));
  py::array_t<float> out({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(solver.n_outputs())});
  const float* in = points.data();
  float* dst = out.mutable_data();
  {
    py::gil_scoped_release release;
    solver.predict(in, n, dst);
  }
  return out;
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
        case kd_edge::ErrorKind::kRuntime: PyErr_SetString(PyExc_RuntimeError, e.what()); return;
      }
    }
  });

  m.attr("MANIFEST_FORMAT") = kd_edge::kManifestFormat;

  py::class_<kd_edge::Solver>(m, "Solver", "A compiled artifact loaded for prediction (one per thread).")
      .def(py::init<const std::string&, int>(), py::arg("artifact_dir"), py::arg("threads") = 0,
           "Open an artifact directory; validates manifest.json and the library's sha256 before loading it. "
           "threads=1 keeps every call on the calling thread; 0 (default) uses TVM's thread pool "
           "(TVM_NUM_THREADS, default all CPUs) for large batches.")
      .def("predict", &predict, py::arg("x"),
           "Evaluate the model on x of shape (n_points, n_inputs). Floating input of any precision or "
           "memory layout is converted to C-contiguous float32 (a copy only when needed); other dtypes "
           "raise TypeError. Returns a new (n_points, n_outputs) float32 array. Releases the GIL.")
      .def_property_readonly("threads", &kd_edge::Solver::threads)
      .def_property_readonly("n_inputs", &kd_edge::Solver::n_inputs)
      .def_property_readonly("n_outputs", &kd_edge::Solver::n_outputs)
      .def_property_readonly("input_names", [](const kd_edge::Solver& s) { return s.info().input_names; })
      .def_property_readonly("output_names", [](const kd_edge::Solver& s) { return s.info().output_names; })
      .def_property_readonly("target_cpu", [](const kd_edge::Solver& s) { return s.info().target_cpu; })
      .def("__repr__", [](const kd_edge::Solver& s) {
        return "<kd_edge.Solver " + std::to_string(s.n_inputs()) + " -> " + std::to_string(s.n_outputs()) +
               " for " + s.info().target_cpu + ">";
      });

  m.def("sha256_file", &kd_edge::sha256_file, py::arg("path"), "Lower-case hex SHA-256 of a file (the runtime's own).");
}
