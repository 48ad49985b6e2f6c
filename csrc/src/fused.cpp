// The fused backend: calls the kernel's entries straight through the tvm-ffi C ABI (headers
// only), fills in the two hooks the library needs (its thread pool and its error handler), and
// links no TVM library.
#include <tvm/ffi/c_api.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

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

// The library's entries, looked up once at load.
struct Entries {
  TVMFFISafeCallType serial = nullptr, parallel = nullptr, small = nullptr;
};

// Reads this thread's last kernel error and clears it, so that the calls themselves never touch
// the thread-local buffer (in a shared library each access is a __tls_get_addr call: 5-10 ns of
// a one-point call). The library writes it only on a failure, which always ends here.
[[noreturn]] void kernel_failed() {
  std::string message = std::string("compiled model failed: ") + (kernel_error[0] ? kernel_error : "a parallel task failed");
  kernel_error[0] = '\0';
  throw Error(ErrorKind::kRuntime, message);
}

// A batch kernel on DLTensor views of the caller's buffers (on the stack: no copies, no objects);
// the kernel checks the shapes it is given.
void call_batch(TVMFFISafeCallType entry, const float* in, std::size_t n_points, int64_t n_in, float* out,
                int64_t n_out) {
  int64_t in_shape[2] = {static_cast<int64_t>(n_points), n_in};
  int64_t out_shape[2] = {static_cast<int64_t>(n_points), n_out};
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
  if (entry(nullptr, args, 2, &result) != 0) kernel_failed();
}

// The latency kernel takes two pointers and a count: nothing to unpack but three tags. Only
// called after the batch kernel has shown, at load, that the library has the manifest's widths.
void call_small(TVMFFISafeCallType entry, const float* in, std::size_t n_points, float* out) {
  TVMFFIAny args[3];
  std::memset(args, 0, sizeof args);
  args[0].type_index = kTVMFFIOpaquePtr;
  args[0].v_ptr = const_cast<float*>(in);
  args[1].type_index = kTVMFFIOpaquePtr;
  args[1].v_ptr = out;
  args[2].type_index = kTVMFFIInt;
  args[2].v_int64 = static_cast<int64_t>(n_points);
  TVMFFIAny result;
  std::memset(&result, 0, sizeof result);
  if (entry(nullptr, args, 3, &result) != 0) kernel_failed();
}

class FusedRunner final : public Runner {
 public:
  FusedRunner(const Entries& entries, const ArtifactInfo& info)
      : entries_(entries), parallel_min_points_(info.parallel_min_points),
        tile_(entries.small ? info.tile_points : 0), small_max_(info.small_max_points),
        n_in_(static_cast<int64_t>(info.input_names.size())), n_out_(static_cast<int64_t>(info.output_names.size())),
        pad_in_(tile_ * info.input_names.size()), pad_out_(tile_ * info.output_names.size()) {}

  // Whole tiles go to the batch kernel (the pool's entry for large batches); the rest, fewer points
  // than a tile, to the latency kernel, or, when there are more than small_max_points of them, as
  // one padded tile through the batch kernel (cheaper there than point by point).
  void run(const float* in, std::size_t n_points, float* out, bool use_pool) override {
    const auto batch = [&](std::size_t n) { return use_pool && n >= parallel_min_points_ ? entries_.parallel : entries_.serial; };
    if (tile_ == 0) return call_batch(batch(n_points), in, n_points, n_in_, out, n_out_);
    const std::size_t full = n_points < tile_ ? 0 : n_points / tile_ * tile_, rest = n_points - full;
    if (full > 0) call_batch(batch(full), in, full, n_in_, out, n_out_);
    if (rest == 0) return;
    in += full * static_cast<std::size_t>(n_in_);
    out += full * static_cast<std::size_t>(n_out_);
    if (rest <= small_max_) return call_small(entries_.small, in, rest, out);
    // The other lanes of the padded tile hold earlier points (finite, screened): their outputs are dropped.
    std::memcpy(pad_in_.data(), in, rest * static_cast<std::size_t>(n_in_) * sizeof(float));
    call_batch(entries_.serial, pad_in_.data(), tile_, n_in_, pad_out_.data(), n_out_);
    std::memcpy(out, pad_out_.data(), rest * static_cast<std::size_t>(n_out_) * sizeof(float));
  }

 private:
  Entries entries_;
  std::size_t parallel_min_points_, tile_, small_max_;
  int64_t n_in_, n_out_;
  std::vector<float> pad_in_, pad_out_;  // one tile, made at construction
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
    entries_.serial = entry(info.entry, name);
    entries_.parallel = entry(info.parallel_entry, name);
    if (!info.small_entry.empty()) entries_.small = entry(info.small_entry, name);
    auto* launch = static_cast<void**>(library_.symbol("__TVMBackendParallelLaunch"));
    if (launch != nullptr) *launch = reinterpret_cast<void*>(&kd_edge_parallel_launch);
  }

  std::unique_ptr<Runner> make_runner() const override { return std::make_unique<FusedRunner>(entries_, info_); }

  // Through the batch kernel, which checks the shapes it is called with (the latency kernel cannot).
  void probe(const float* in, float* out) const override {
    call_batch(entries_.serial, in, 1, static_cast<int64_t>(info_.input_names.size()), out,
               static_cast<int64_t>(info_.output_names.size()));
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
  Entries entries_;
};

}  // namespace

std::unique_ptr<Backend> load_fused(const VerifiedLibrary& library, const ArtifactInfo& info) {
  return std::make_unique<FusedBackend>(library, info);
}

}  // namespace kd_edge
