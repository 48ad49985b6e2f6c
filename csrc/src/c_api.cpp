// C API over kd_edge::Solver: exceptions stop here and become status codes.
#include "kd_edge/c_api.h"

#include <new>
#include <string>

#include "kd_edge/solver.hpp"

struct kd_edge_solver {
  kd_edge::Solver solver;
  std::string last_error;
};

namespace {

thread_local std::string open_error;

kd_edge_status status_of(kd_edge::ErrorKind kind) {
  switch (kind) {
    case kd_edge::ErrorKind::kNotFound: return KD_EDGE_ERR_NOT_FOUND;
    case kd_edge::ErrorKind::kInvalidArtifact: return KD_EDGE_ERR_INVALID_ARTIFACT;
    case kd_edge::ErrorKind::kInvalidInput: return KD_EDGE_ERR_INVALID_INPUT;
    case kd_edge::ErrorKind::kRuntime: return KD_EDGE_ERR_RUNTIME;
  }
  return KD_EDGE_ERR_RUNTIME;
}

// Runs f, turning any exception into a status and a message stored in *message.
template <typename F>
kd_edge_status guarded(std::string* message, F&& f) noexcept {
  try {
    f();
    message->clear();
    return KD_EDGE_OK;
  } catch (const kd_edge::Error& e) {
    *message = e.what();
    return status_of(e.kind());
  } catch (const std::bad_alloc&) {
    *message = "out of memory";
    return KD_EDGE_ERR_RUNTIME;
  } catch (const std::exception& e) {
    *message = e.what();
    return KD_EDGE_ERR_RUNTIME;
  } catch (...) {
    *message = "unknown error";
    return KD_EDGE_ERR_RUNTIME;
  }
}

}  // namespace

extern "C" {

kd_edge_status kd_edge_open(const char* artifact_dir, kd_edge_solver** out) {
  if (out == nullptr) {
    open_error = "kd_edge_open: out is null";
    return KD_EDGE_ERR_INVALID_INPUT;
  }
  *out = nullptr;
  if (artifact_dir == nullptr) {
    open_error = "kd_edge_open: artifact_dir is null";
    return KD_EDGE_ERR_INVALID_INPUT;
  }
  return guarded(&open_error, [&] { *out = new kd_edge_solver{kd_edge::Solver(artifact_dir), {}}; });
}

kd_edge_status kd_edge_predict(kd_edge_solver* solver, const float* in, size_t n_points, float* out) {
  if (solver == nullptr) return KD_EDGE_ERR_INVALID_INPUT;
  return guarded(&solver->last_error, [&] { solver->solver.predict(in, n_points, out); });
}

size_t kd_edge_n_inputs(const kd_edge_solver* solver) { return solver ? solver->solver.n_inputs() : 0; }
size_t kd_edge_n_outputs(const kd_edge_solver* solver) { return solver ? solver->solver.n_outputs() : 0; }

const char* kd_edge_last_error(const kd_edge_solver* solver) {
  return solver ? solver->last_error.c_str() : open_error.c_str();
}

void kd_edge_close(kd_edge_solver* solver) { delete solver; }

}  // extern "C"
