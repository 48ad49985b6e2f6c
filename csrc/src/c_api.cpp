// C API over kd_edge::Solver: exceptions stop here and become status codes.
#include "kd_edge/c_api.h"

#include <atomic>
#include <memory>
#include <new>
#include <string>

#include "kd_edge/solver.hpp"

struct kd_edge_solver {
  kd_edge::Solver solver;
  std::string last_error;
  kd_edge::PredictReport report;
  std::atomic<int> busy{0};  // covers last_error and report as well as the Solver
};

struct kd_edge_artifact {
  std::shared_ptr<const kd_edge::Artifact> artifact;
};

namespace {

thread_local std::string open_error;

kd_edge_status status_of(kd_edge::ErrorKind kind) {
  switch (kind) {
    case kd_edge::ErrorKind::kNotFound: return KD_EDGE_ERR_NOT_FOUND;
    case kd_edge::ErrorKind::kInvalidArtifact: return KD_EDGE_ERR_INVALID_ARTIFACT;
    case kd_edge::ErrorKind::kInvalidInput: return KD_EDGE_ERR_INVALID_INPUT;
    case kd_edge::ErrorKind::kRuntime: return KD_EDGE_ERR_RUNTIME;
    case kd_edge::ErrorKind::kBusy: return KD_EDGE_ERR_BUSY;
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

// Checks the C options struct and turns it into SolverOptions.
kd_edge::SolverOptions solver_options(const kd_edge_options* options) {
  kd_edge::SolverOptions o;
  if (options == nullptr) return o;
  o.threads = options->threads;
  o.max_batch = options->max_batch;
  switch (options->domain_policy) {
    case KD_EDGE_DOMAIN_DEFAULT: break;
    case KD_EDGE_DOMAIN_FLAG: o.domain_policy = kd_edge::DomainPolicy::kFlag; break;
    case KD_EDGE_DOMAIN_CLAMP: o.domain_policy = kd_edge::DomainPolicy::kClamp; break;
    case KD_EDGE_DOMAIN_REJECT: o.domain_policy = kd_edge::DomainPolicy::kReject; break;
    default:
      throw kd_edge::Error(kd_edge::ErrorKind::kInvalidInput,
                           "options.domain_policy must be -1 (default), 0 (flag), 1 (clamp) or 2 (reject), got " +
                               std::to_string(options->domain_policy));
  }
  if (options->check_outputs < -1 || options->check_outputs > 1)
    throw kd_edge::Error(kd_edge::ErrorKind::kInvalidInput,
                         "options.check_outputs must be -1 (default), 0 or 1, got " + std::to_string(options->check_outputs));
  if (options->check_outputs >= 0) o.check_outputs = options->check_outputs == 1;
  switch (options->residual_policy) {
    case KD_EDGE_RESIDUAL_OFF: o.residual_policy = kd_edge::ResidualPolicy::kOff; break;
    case KD_EDGE_RESIDUAL_FLAG: o.residual_policy = kd_edge::ResidualPolicy::kFlag; break;
    case KD_EDGE_RESIDUAL_REJECT: o.residual_policy = kd_edge::ResidualPolicy::kReject; break;
    default:
      throw kd_edge::Error(kd_edge::ErrorKind::kInvalidInput,
                           "options.residual_policy must be 0 (off), 1 (flag) or 2 (reject), got " +
                               std::to_string(options->residual_policy));
  }
  return o;
}

// The open calls refuse a null out argument before anything else.
bool start_open(const void* out, const char* what) {
  if (out == nullptr) {
    open_error = std::string(what) + ": out is null";
    return false;
  }
  return true;
}

}  // namespace

extern "C" {

kd_edge_options kd_edge_default_options(void) {
  return kd_edge_options{0, 0, KD_EDGE_DOMAIN_DEFAULT, -1, KD_EDGE_RESIDUAL_OFF};
}

kd_edge_status kd_edge_open_with(const char* artifact_dir, const kd_edge_options* options, kd_edge_solver** out) {
  if (!start_open(out, "kd_edge_open")) return KD_EDGE_ERR_INVALID_INPUT;
  *out = nullptr;
  if (artifact_dir == nullptr) {
    open_error = "kd_edge_open: artifact_dir is null";
    return KD_EDGE_ERR_INVALID_INPUT;
  }
  return guarded(&open_error, [&] {
    *out = new kd_edge_solver{kd_edge::Solver(artifact_dir, solver_options(options)), {}, {}};
  });
}

kd_edge_status kd_edge_open(const char* artifact_dir, kd_edge_solver** out) {
  return kd_edge_open_with(artifact_dir, nullptr, out);
}

kd_edge_status kd_edge_artifact_load(const char* artifact_dir, kd_edge_artifact** out) {
  if (!start_open(out, "kd_edge_artifact_load")) return KD_EDGE_ERR_INVALID_INPUT;
  *out = nullptr;
  if (artifact_dir == nullptr) {
    open_error = "kd_edge_artifact_load: artifact_dir is null";
    return KD_EDGE_ERR_INVALID_INPUT;
  }
  return guarded(&open_error, [&] { *out = new kd_edge_artifact{kd_edge::Artifact::load(artifact_dir)}; });
}

kd_edge_status kd_edge_open_artifact(const kd_edge_artifact* artifact, const kd_edge_options* options,
                                     kd_edge_solver** out) {
  if (!start_open(out, "kd_edge_open_artifact")) return KD_EDGE_ERR_INVALID_INPUT;
  *out = nullptr;
  if (artifact == nullptr) {
    open_error = "kd_edge_open_artifact: artifact is null";
    return KD_EDGE_ERR_INVALID_INPUT;
  }
  return guarded(&open_error, [&] {
    *out = new kd_edge_solver{kd_edge::Solver(artifact->artifact, solver_options(options)), {}, {}};
  });
}

void kd_edge_artifact_close(kd_edge_artifact* artifact) { delete artifact; }

kd_edge_status kd_edge_predict(kd_edge_solver* solver, const float* in, size_t n_points, float* out) {
  if (solver == nullptr) {
    open_error = "kd_edge_predict: solver is null";
    return KD_EDGE_ERR_INVALID_INPUT;
  }
  if (solver->busy.exchange(1, std::memory_order_acquire) != 0) return KD_EDGE_ERR_BUSY;
  solver->report = {};
  const kd_edge_status status =
      guarded(&solver->last_error, [&] { solver->report = solver->solver.predict(in, n_points, out); });
  solver->busy.store(0, std::memory_order_release);
  return status;
}

size_t kd_edge_out_of_domain(const kd_edge_solver* solver, size_t* first) {
  if (solver == nullptr) return 0;
  if (first != nullptr && solver->report.out_of_domain > 0) *first = solver->report.first_out_of_domain;
  return solver->report.out_of_domain;
}

size_t kd_edge_residual_exceeded(const kd_edge_solver* solver, size_t* first) {
  if (solver == nullptr) return 0;
  if (first != nullptr && solver->report.residual_exceeded > 0) *first = solver->report.first_residual_exceeded;
  return solver->report.residual_exceeded;
}

size_t kd_edge_n_inputs(const kd_edge_solver* solver) { return solver ? solver->solver.n_inputs() : 0; }
size_t kd_edge_n_outputs(const kd_edge_solver* solver) { return solver ? solver->solver.n_outputs() : 0; }

const char* kd_edge_last_error(const kd_edge_solver* solver) {
  return solver ? solver->last_error.c_str() : open_error.c_str();
}

void kd_edge_close(kd_edge_solver* solver) { delete solver; }

}  // extern "C"
