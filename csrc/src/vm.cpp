// The Relax VM backend: any model TVM compiles, run by TVM's runtime (libtvm_runtime and
// libtvm_ffi). Built with the CMake option KD_EDGE_WITH_VM.
#include <dlfcn.h>
#include <tvm/ffi/container/array.h>
#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/extra/module.h>
#include <tvm/ffi/function.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>

#include "aligned_buffer.hpp"
#include "backend.hpp"
#include "library.hpp"

namespace kd_edge {
namespace {

namespace ffi = tvm::ffi;

constexpr DLDataType kFloat32{kDLFloat, 32, 1};
constexpr DLDevice kCpu{kDLCPU, 0};
constexpr int kPooledAllocator = 2;  // tvm::runtime::memory::AllocatorType::kPooled
// TVM's generic kernels assume their buffers are this aligned (aligned vector loads): a caller's
// pointer that is not gets copied into an aligned staging buffer first.
constexpr std::size_t kTvmAlignment = AlignedBuffer::kAlignment;

// Lets a TVM tensor view caller memory without copying or owning it.
struct BorrowedData {
  void* data;
  void AllocData(DLTensor* tensor) { tensor->data = data; }
  void FreeData(DLTensor*) {}
};

ffi::Function require_function(const ffi::Module& module, const char* name, const std::string& library) {
  ffi::Optional<ffi::Function> f = module->GetFunction(ffi::String(name));
  if (!f.has_value())
    throw Error(ErrorKind::kInvalidArtifact, library + " has no function \"" + name +
                                                 "\": not a kd-edge artifact library");
  return *f;
}

// A library's calls into tvm-ffi (its error function) must find libtvm_ffi, which a process that
// loaded us privately (Python's extension modules are RTLD_LOCAL) has not made global: promote it,
// so an error inside the compiled code comes back as an error instead of ending the process.
void make_tvm_ffi_global() {
  static const bool done = [] {
    Dl_info where{};
    if (::dladdr(reinterpret_cast<void*>(&TVMFFIErrorSetRaisedFromCStrParts), &where) && where.dli_fname)
      ::dlopen(where.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_GLOBAL);
    // TVM sizes its pool once, from TVM_NUM_THREADS, and otherwise picks 1 on some machines.
    const unsigned cpus = std::thread::hardware_concurrency();
    if (cpus > 0) setenv("TVM_NUM_THREADS", std::to_string(cpus).c_str(), /*overwrite=*/0);
    return true;
  }();
  (void)done;
}

ffi::Module start_vm(const ffi::Module& library, const std::string& name) {
  try {
    ffi::Module vm = require_function(library, "vm_load_executable", name)().cast<ffi::Module>();
    require_function(vm, "vm_initialization", name)(static_cast<int>(kCpu.device_type), kCpu.device_id,
                                                    kPooledAllocator);
    return vm;
  } catch (const ffi::Error& e) {
    throw Error(ErrorKind::kInvalidArtifact, "cannot start the compiled model in " + name + ": " + e.what());
  }
}

class VmRunner final : public Runner {
 public:
  VmRunner(ffi::Module vm, const ArtifactInfo& info) : vm_(std::move(vm)), info_(info) {
    entry_ = require_function(vm_, info.entry.c_str(), info.library);
  }

  void run(const float* in, std::size_t n_points, float* out, bool) override {
    const std::size_t n_outputs = info_.output_names.size();
    const int64_t rows = static_cast<int64_t>(n_points);
    const int64_t shape[2] = {rows, static_cast<int64_t>(info_.input_names.size())};
    const std::size_t in_bytes = n_points * info_.input_names.size() * sizeof(float);
    if (reinterpret_cast<std::uintptr_t>(in) % kTvmAlignment != 0) {
      staging_.reserve(n_points * info_.input_names.size());
      std::memcpy(staging_.data(), in, in_bytes);
      in = staging_.data();
    }
    ffi::Tensor result;
    try {
      ffi::Tensor x = ffi::Tensor::FromNDAlloc(BorrowedData{const_cast<float*>(in)}, ffi::ShapeView(shape, 2),
                                               kFloat32, kCpu);
      ffi::Any returned = entry_(x);
      // torch.export wraps a single output in a tuple.
      if (auto tuple = returned.try_cast<ffi::Array<ffi::Any>>()) {
        result = (*tuple)[0].cast<ffi::Tensor>();
      } else {
        result = returned.cast<ffi::Tensor>();
      }
    } catch (const ffi::Error& e) {
      throw Error(ErrorKind::kRuntime, std::string("compiled model failed: ") + e.what());
    }
    const DLTensor* y = result.GetDLTensorPtr();
    if (y->ndim != 2 || y->shape[0] != rows || y->shape[1] != static_cast<int64_t>(n_outputs) ||
        y->dtype.code != kDLFloat || y->dtype.bits != 32)
      throw Error(ErrorKind::kRuntime, "compiled model returned a result of unexpected shape or dtype");
    std::memcpy(out, static_cast<const char*>(y->data) + y->byte_offset, n_points * n_outputs * sizeof(float));
  }

 private:
  ffi::Module vm_;
  const ArtifactInfo& info_;
  ffi::Function entry_;
  AlignedBuffer staging_;  // an aligned copy of a caller's unaligned input
};

ffi::Module load(const VerifiedLibrary& library) {
  make_tvm_ffi_global();
  try {
    // TVM picks a loader by file extension, which /proc/self/fd/N lacks: name the .so loader.
    const auto loader = ffi::Function::GetGlobal("ffi.Module.load_from_file.so");
    if (!loader.has_value()) throw Error(ErrorKind::kRuntime, "TVM's runtime has no shared-library loader");
    return (*loader)(ffi::String(library.load_path()), ffi::String("so")).cast<ffi::Module>();
  } catch (const ffi::Error& e) {
    throw Error(ErrorKind::kInvalidArtifact, "cannot load " + library.origin() + ": " + e.what());
  }
}

class VmBackend final : public Backend {
 public:
  VmBackend(const VerifiedLibrary& library, const ArtifactInfo& info) : info_(info), library_(load(library)) {
    std::lock_guard<std::mutex> lock(mutex_);
    start_vm(library_, info.library);  // fail at load, not at the first Solver
  }

  // A VM holds per-call state, so each Solver gets its own.
  std::unique_ptr<Runner> make_runner() const override {
    std::lock_guard<std::mutex> lock(mutex_);
    return std::make_unique<VmRunner>(start_vm(library_, info_.library), info_);
  }

  void probe(const float* in, float* out) const override { make_runner()->run(in, 1, out, false); }

 private:
  const ArtifactInfo& info_;
  ffi::Module library_;
  mutable std::mutex mutex_;  // serialises making VMs (at Solver construction, never in predict)
};

}  // namespace

std::unique_ptr<Backend> load_vm(const VerifiedLibrary& library, const ArtifactInfo& info) {
  return std::make_unique<VmBackend>(library, info);
}

bool has_vm_backend() noexcept { return true; }

}  // namespace kd_edge
