// One small interface per way of running an artifact's library: the fused kernel (fused.cpp,
// no TVM library needed) and TVM's Relax VM (vm.cpp, built with KD_EDGE_WITH_VM).
#pragma once

#include <cstddef>
#include <memory>

#include "kd_edge/solver.hpp"

namespace kd_edge {

class VerifiedLibrary;

// Runs the compiled model; made per Solver, since a backend may keep per-call state.
class Runner {
 public:
  virtual ~Runner() = default;
  // in: n_points x n_inputs, out: n_points x n_outputs, row-major float32, n_points >= 1.
  // use_pool: the caller allows the multi-threaded entry. Throws Error(kRuntime) if the code fails.
  virtual void run(const float* in, std::size_t n_points, float* out, bool use_pool) = 0;
};

// A loaded library: immutable once made, shared by every Solver of the artifact.
class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::unique_ptr<Runner> make_runner() const = 0;
  // One point (of zeros) through an entry that checks the shapes it is given: throws Error if the
  // library does not take the manifest's widths.
  virtual void probe(const float* in, float* out) const = 0;
};

std::unique_ptr<Backend> load_fused(const VerifiedLibrary& library, const ArtifactInfo& info);
// Throws Error(kInvalidArtifact) naming the CMake option when the runtime was built without it.
std::unique_ptr<Backend> load_vm(const VerifiedLibrary& library, const ArtifactInfo& info);

// Whether this runtime was built with the Relax VM backend.
bool has_vm_backend() noexcept;

}  // namespace kd_edge
