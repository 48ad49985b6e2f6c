// Solver: validated load of an artifact, then calls into its fused kernel or its Relax VM.
#include "kd_edge/solver.hpp"

#include <tvm/ffi/container/array.h>
#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/extra/module.h>
#include <tvm/ffi/function.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>

namespace kd_edge {
namespace {

namespace ffi = tvm::ffi;

constexpr DLDataType kFloat32{kDLFloat, 32, 1};
constexpr DLDevice kCpu{kDLCPU, 0};
constexpr int kPooledAllocator = 2;  // tvm::runtime::memory::AllocatorType::kPooled
// Kernels of TVM's generic (VM) path assume their buffers are this aligned (aligned vector
// loads): a caller's pointer that is not gets copied into an aligned staging buffer first.
// The fused kernel is built for any 4-byte alignment.
constexpr std::size_t kTvmAlignment = 64;

// Growable float buffer aligned to kTvmAlignment.
class AlignedBuffer {
 public:
  float* reserve(std::size_t n_floats) {
    if (n_floats > capacity_) {
      const std::size_t bytes = (n_floats * sizeof(float) + kTvmAlignment - 1) / kTvmAlignment * kTvmAlignment;
      float* p = static_cast<float*>(std::aligned_alloc(kTvmAlignment, bytes));
      if (p == nullptr) throw std::bad_alloc();
      data_.reset(p);
      capacity_ = bytes / sizeof(float);
    }
    return data_.get();
  }

 private:
  struct Free {
    void operator()(float* p) const { std::free(p); }
  };
  std::unique_ptr<float, Free> data_;
  std::size_t capacity_ = 0;
};

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

// Loads and verifies the library; members are built in order, so a throw leaves nothing half-made.
ffi::Module load_library(const std::string& artifact_dir, const ArtifactInfo& info) {
  const std::string library = (std::filesystem::path(artifact_dir) / info.library).string();
  if (!std::filesystem::is_regular_file(library))
    throw Error(ErrorKind::kNotFound, "library named in manifest.json is missing: " + library);
  // Verify before dlopen: loading runs the library's initialisers.
  const std::string digest = sha256_file(library);
  if (digest != info.library_sha256)
    throw Error(ErrorKind::kInvalidArtifact, library + " has sha256 " + digest + " but manifest.json expects " +
                                                 info.library_sha256 + ": the library was changed or damaged");
  try {
    return ffi::Module::LoadFromFile(ffi::String(library));
  } catch (const ffi::Error& e) {
    throw Error(ErrorKind::kInvalidArtifact, "cannot load " + library + ": " + e.what());
  }
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

// TVM sizes its pool once, from TVM_NUM_THREADS, and otherwise picks 1 on some machines.
void default_pool_size() {
  static const bool done = [] {
    const unsigned cpus = std::thread::hardware_concurrency();
    if (cpus > 0) setenv("TVM_NUM_THREADS", std::to_string(cpus).c_str(), /*overwrite=*/0);
    return true;
  }();
  (void)done;
}

}  // namespace

struct Solver::Impl {
  int threads;
  ArtifactInfo info;
  ffi::Module library;
  // fused: the kernels, called directly; vm: the Relax VM and its entry function
  ffi::Function entry;
  ffi::Function parallel_entry;
  ffi::Optional<ffi::Module> vm;
  AlignedBuffer staging;  // vm: an aligned copy of misaligned input

  Impl(const std::string& artifact_dir, int threads_)
      : threads(threads_), info(read_manifest(artifact_dir)), library(load_library(artifact_dir, info)) {
    if (info.runtime == RuntimeKind::kFused) {
      entry = require_function(library, info.entry.c_str(), info.library);
      parallel_entry = require_function(library, info.parallel_entry.c_str(), info.library);
    } else {
      vm = start_vm(library, info.library);
      entry = require_function(*vm, info.entry.c_str(), info.library);
    }
  }

  void predict_fused(const float* in, std::size_t n_points, float* out);
  void predict_vm(const float* in, std::size_t n_points, float* out);
};

Solver::Solver(const std::string& artifact_dir, int threads) {
  if (threads < 0) throw Error(ErrorKind::kInvalidInput, "threads must be 0 (pool) or more, got " + std::to_string(threads));
  default_pool_size();
  impl_ = std::make_unique<Impl>(artifact_dir, threads);
}

Solver::~Solver() = default;
Solver::Solver(Solver&&) noexcept = default;
Solver& Solver::operator=(Solver&&) noexcept = default;

int Solver::threads() const noexcept { return impl_->threads; }
std::size_t Solver::n_inputs() const noexcept { return impl_->info.input_names.size(); }
std::size_t Solver::n_outputs() const noexcept { return impl_->info.output_names.size(); }
const ArtifactInfo& Solver::info() const noexcept { return impl_->info; }

void Solver::predict(const float* in, std::size_t n_points, float* out) {
  if (n_points == 0) return;
  if (in == nullptr || out == nullptr) throw Error(ErrorKind::kInvalidInput, "predict: input or output pointer is null");
  // A NaN or Inf input gives NaN outputs that look like answers: refuse it, naming where it is.
  const std::size_t width = n_inputs();
  for (std::size_t i = 0; i < n_points * width; ++i) {
    if (!std::isfinite(in[i]))
      throw Error(ErrorKind::kInvalidInput, "input point " + std::to_string(i / width) + " has a non-finite value in column " +
                                                std::to_string(i % width) + " (" + impl_->info.input_names[i % width] + ")");
  }
  if (impl_->info.runtime == RuntimeKind::kFused) {
    impl_->predict_fused(in, n_points, out);
  } else {
    impl_->predict_vm(in, n_points, out);
  }
}

// The kernel reads the caller's input and writes the caller's output in place: DLTensor
// views on the stack, no copies and no tensor objects.
void Solver::Impl::predict_fused(const float* in, std::size_t n_points, float* out) {
  int64_t in_shape[2] = {static_cast<int64_t>(n_points), static_cast<int64_t>(info.input_names.size())};
  int64_t out_shape[2] = {static_cast<int64_t>(n_points), static_cast<int64_t>(info.output_names.size())};
  DLTensor x{const_cast<float*>(in), kCpu, 2, kFloat32, in_shape, nullptr, 0};
  DLTensor y{out, kCpu, 2, kFloat32, out_shape, nullptr, 0};
  const bool pool = threads != 1 && n_points >= info.parallel_min_points;
  const ffi::Function& kernel = pool ? parallel_entry : entry;
  try {
    kernel(&x, &y);
  } catch (const ffi::Error& e) {
    throw Error(ErrorKind::kRuntime, std::string("compiled model failed: ") + e.what());
  }
}

void Solver::Impl::predict_vm(const float* in, std::size_t n_points, float* out) {
  const std::size_t n_outputs = info.output_names.size();
  const int64_t rows = static_cast<int64_t>(n_points);
  const int64_t shape[2] = {rows, static_cast<int64_t>(info.input_names.size())};
  const std::size_t n_in_floats = n_points * info.input_names.size();
  if (reinterpret_cast<std::uintptr_t>(in) % kTvmAlignment != 0) {
    float* aligned = staging.reserve(n_in_floats);
    std::memcpy(aligned, in, n_in_floats * sizeof(float));
    in = aligned;
  }
  ffi::Tensor result;
  try {
    ffi::Tensor x = ffi::Tensor::FromNDAlloc(BorrowedData{const_cast<float*>(in)}, ffi::ShapeView(shape, 2),
                                             kFloat32, kCpu);
    ffi::Any returned = entry(x);
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

}  // namespace kd_edge
