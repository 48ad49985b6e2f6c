// Stands in for vm.cpp in a runtime built without KD_EDGE_WITH_VM (no TVM library linked).
#include "backend.hpp"
#include "library.hpp"

namespace kd_edge {

std::unique_ptr<Backend> load_vm(const VerifiedLibrary& library, const ArtifactInfo&) {
  throw Error(ErrorKind::kInvalidArtifact,
              library.origin() + " runs on TVM's Relax VM (runtime kind \"vm\"), and this kd-edge runtime was built "
                                 "without it: rebuild with -DKD_EDGE_WITH_VM=ON, or compile the model with "
                                 "backend=\"fused\" (a dense chain)");
}

bool has_vm_backend() noexcept { return false; }

}  // namespace kd_edge
