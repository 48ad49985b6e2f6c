// The fused backend: calls the kernel's entries straight through the tvm-ffi C ABI (headers
// only), fills in the two hooks the library needs (its thread pool and its error handler), and
// links no TVM library.
#include <tvm/ffi/c_api.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "backend.hpp"
#include "library.hpp"
#include "thread_pool.hpp"

namespace kd_edge {
namespace {

constexpr DLDataType kFloat32{kDLFloat, 32, 1};
constexpr DLDevice kCpu{kDLCPU, 0};

// The last kernel error on this thread: the library's error handler writes it here, so a failing
// kernel costs no allocation until the runtime turns it into an Error.
thread_local char kernel_error[512];

extern "C" void kd_edge_kernel_error(const char* kind, const char** parts, int32_t n_parts) {
  std::size_t used = 0;
  auto put = [&](const char* text) {
    const std::size_t room = sizeof kernel_error - 1 - used;
    const std::size_t n = std::min(room, text ? std::strlen(text) : 0);
    if (n) std::memcpy(kernel_error + used, text, n);
    used += n;
  };
  put(kind);
  put(": ");
  for (int32_t i = 0; i < n_parts; ++i) put(parts[i]);
  kernel_error[used] = '\0';
}

using ErrorHandler = void (*)(const char*, const char**, int32_t);

class FusedBackend;

class FusedRunner final : public Runner {
 public:
  FusedRunner(TVMFFISafeCallType serial, TVMFFISafeCallType parallel, std::size_t parallel_min_points,
              std::size_t n_inputs, std::size_t n_outputs)
      : serial_(serial), parallel_(parallel), parallel_min_points_(parallel_min_points),
        n_inputs_(static_cast<int64_t>(n_inputs)), n_outputs_(static_cast<int64_t>(n_outputs)) {}

  // DLTensor views of the caller's buffers on the stack: no copies, no objects.
  void run(const float* in, std::size_t n_points, float* out, bool use_pool) override {
    int64_t in_shape[2] = {static_cast<int64_t>(n_points), n_inputs_};
    int64_t out_shape[2] = {static_cast<int64_t>(n_points), n_outputs_};
    DLTensor x{const_cast<float*>(in), kCpu, 2, kFloat32, in_shape, nullptr, 0};
    DLTensor y{out, kCpu, 2, kFloat32, out_shape, nullptr, 0};
    TVMFFIAny args[2];
    std::memset(args, 0, sizeof args);
    args[0].type_index = kTVMFFIDLTensorPtr;
    args[0].v_ptr = &x;
    args[1].type_index = kTVMFFIDLTensorPtr;
    args[1].v_ptr = &y;
    TVMFFIAny result;
    std::memset(&result, 0, sizeof result);
    const bool pool = use_pool && n_points >= parallel_min_points_;
    kernel_error[0] = '\0';
    if ((pool ? parallel_ : serial_)(nullptr, args, 2, &result) != 0)
      throw Error(ErrorKind::kRuntime, std::string("compiled model failed: ") +
                                           (kernel_error[0] ? kernel_error : "a parallel task failed"));
  }

 private:
  TVMFFISafeCallType serial_, parallel_;
  std::size_t parallel_min_points_;
  int64_t n_inputs_, n_outputs_;
};

class FusedBackend final : public Backend {
 public:
  FusedBackend(const VerifiedLibrary& verified, const ArtifactInfo& info) : library_(verified), info_(info) {
    const std::string name = verified.origin();
    // The library resolves its one external call, TVM's error function, to a hook of its own
    // (kd_edge/compiler/kernel_abi.cc) that forwards here; without it, not our library.
    auto* handler = static_cast<ErrorHandler*>(library_.symbol("kd_edge_error_handler"));
    if (handler == nullptr)
      throw Error(ErrorKind::kInvalidArtifact, name + " has no kd_edge_error_handler: not a fused kd-edge library "
                                                      "of this version (recompile the artifact)");
    *handler = &kd_edge_kernel_error;
    serial_ = entry(info.entry, name);
    parallel_ = entry(info.parallel_entry, name);
    auto* launch = static_cast<void**>(library_.symbol("__TVMBackendParallelLaunch"));
    if (launch != nullptr) *launch = reinterpret_cast<void*>(&kd_edge_parallel_launch);
  }

  std::unique_ptr<Runner> make_runner() const override {
    return std::make_unique<FusedRunner>(serial_, parallel_, info_.parallel_min_points, info_.input_names.size(),
                                         info_.output_names.size());
  }

 private:
  TVMFFISafeCallType entry(const std::string& function, const std::string& name) const {
    const std::string symbol = "__tvm_ffi_" + function;
    auto f = reinterpret_cast<TVMFFISafeCallType>(library_.symbol(symbol.c_str()));
    if (f == nullptr)
      throw Error(ErrorKind::kInvalidArtifact, name + " has no function \"" + function +
                                                   "\": not a kd-edge artifact library");
    return f;
  }

  LoadedLibrary library_;
  const ArtifactInfo& info_;
  TVMFFISafeCallType serial_ = nullptr, parallel_ = nullptr;
};

}  // namespace

std::unique_ptr<Backend> load_fused(const VerifiedLibrary& library, const ArtifactInfo& info) {
  return std::make_unique<FusedBackend>(library, info);
}

}  // namespace kd_edge
