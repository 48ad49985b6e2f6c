// Artifact: validated load of a library. Solver: input policy, then its fused kernel or its Relax VM.
#include "kd_edge/solver.hpp"

#include <tvm/ffi/container/array.h>
#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/extra/module.h>
#include <tvm/ffi/function.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <mutex>
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
  float* data() const { return data_.get(); }
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

std::string point_value(float v) {
  char text[32];
  std::snprintf(text, sizeof text, "%.9g", static_cast<double>(v));
  return text;
}

}  // namespace

// Everything here is set at load and only read afterwards, so Solvers on many threads share it.
struct Artifact::Impl {
  ArtifactInfo info;
  ffi::Module library;
  ffi::Function entry;           // fused: the serial kernel
  ffi::Function parallel_entry;  // fused: the pooled kernel
  mutable std::mutex vm_mutex;   // serialises making VMs (at Solver construction, never in predict)

  explicit Impl(const std::string& artifact_dir)
      : info(read_manifest(artifact_dir)), library(load_library(artifact_dir, info)) {
    if (info.runtime == RuntimeKind::kFused) {
      entry = require_function(library, info.entry.c_str(), info.library);
      parallel_entry = require_function(library, info.parallel_entry.c_str(), info.library);
    } else {
      std::lock_guard<std::mutex> lock(vm_mutex);
      start_vm(library, info.library);  // fail at load, not at the first Solver
    }
  }

  // A VM holds per-call state, so each Solver gets its own.
  ffi::Module new_vm() const {
    std::lock_guard<std::mutex> lock(vm_mutex);
    return start_vm(library, info.library);
  }
};

Artifact::Artifact(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Artifact::~Artifact() = default;
const ArtifactInfo& Artifact::info() const noexcept { return impl_->info; }

std::shared_ptr<const Artifact> Artifact::load(const std::string& artifact_dir) {
  default_pool_size();
  return std::shared_ptr<const Artifact>(new Artifact(std::make_unique<Impl>(artifact_dir)));
}

struct Solver::Impl {
  std::shared_ptr<const Artifact> artifact;
  const ArtifactInfo& info;
  int threads;
  std::size_t max_batch;
  DomainPolicy policy;
  bool check_outputs;
  ffi::Optional<ffi::Module> vm;  // vm runtime: this solver's own VM
  ffi::Function vm_entry;
  AlignedBuffer scratch;  // clamped input, or an aligned copy for the VM
  // The box (or +-FLT_MAX without one) repeated for kScreenPoints points, so that the screening
  // pass over the input is one flat, vectorisable loop.
  std::vector<float> screen_lower, screen_upper;
  static constexpr std::size_t kScreenPoints = 16;

  Impl(std::shared_ptr<const Artifact> artifact_, const SolverOptions& options)
      : artifact(std::move(artifact_)),
        info(artifact->info()),
        threads(options.threads),
        max_batch(options.max_batch),
        policy(options.domain_policy.value_or(info.default_domain_policy)),
        check_outputs(options.check_outputs.value_or(info.default_check_outputs)) {
    if (threads < 0)
      throw Error(ErrorKind::kInvalidInput, "threads must be 0 (pool) or more, got " + std::to_string(threads));
    if (policy != DomainPolicy::kFlag && info.lower.empty())
      throw Error(ErrorKind::kInvalidInput, std::string("domain policy \"") + domain_policy_name(policy) +
                                                "\" needs the training domain, which this artifact does not record "
                                                "(compile with input_bounds)");
    if (info.runtime == RuntimeKind::kVm) {
      vm = artifact->impl().new_vm();
      vm_entry = require_function(*vm, info.entry.c_str(), info.library);
    }
    if (needs_scratch()) scratch.reserve(max_batch * info.input_names.size());
    const std::size_t width = info.input_names.size();
    const bool boxed = !info.lower.empty();
    for (std::size_t i = 0; i < width * kScreenPoints; ++i) {
      screen_lower.push_back(boxed ? info.lower[i % width] : std::numeric_limits<float>::lowest());
      screen_upper.push_back(boxed ? info.upper[i % width] : std::numeric_limits<float>::max());
    }
  }

  bool needs_scratch() const { return policy == DomainPolicy::kClamp || info.runtime == RuntimeKind::kVm; }
  bool input_is_clean(const float* in, std::size_t n_points) const noexcept;
  PredictReport check_input(const float* in, std::size_t n_points) const;
  void check_output(const float* out, std::size_t n_points) const;
  void run_fused(const float* in, std::size_t n_points, float* out);
  void run_vm(const float* in, std::size_t n_points, float* out);
};

Solver::Solver(const std::string& artifact_dir, const SolverOptions& options)
    : Solver(Artifact::load(artifact_dir), options) {}

Solver::Solver(std::shared_ptr<const Artifact> artifact, const SolverOptions& options) {
  if (!artifact) throw Error(ErrorKind::kInvalidInput, "Solver: artifact is null");
  impl_ = std::make_unique<Impl>(std::move(artifact), options);
}

Solver::~Solver() = default;
Solver::Solver(Solver&&) noexcept = default;
Solver& Solver::operator=(Solver&&) noexcept = default;

int Solver::threads() const noexcept { return impl_->threads; }
std::size_t Solver::n_inputs() const noexcept { return impl_->info.input_names.size(); }
std::size_t Solver::n_outputs() const noexcept { return impl_->info.output_names.size(); }
std::size_t Solver::max_batch() const noexcept { return impl_->max_batch; }
DomainPolicy Solver::domain_policy() const noexcept { return impl_->policy; }
bool Solver::check_outputs() const noexcept { return impl_->check_outputs; }
const ArtifactInfo& Solver::info() const noexcept { return impl_->info; }
const std::shared_ptr<const Artifact>& Solver::artifact() const noexcept { return impl_->artifact; }

// Whether every input value is finite and inside the box: one branch-free pass that the
// compiler vectorises (the per-point loop below, with its early exits, cost 11% of a
// 25,600-point Burgers call). NaN fails both comparisons; +-Inf fails one even without a box.
bool Solver::Impl::input_is_clean(const float* in, std::size_t n_points) const noexcept {
  const std::size_t period = screen_lower.size();
  const std::size_t total = n_points * info.input_names.size();
  const float* lo = screen_lower.data();
  const float* hi = screen_upper.data();
  int bad = 0;
  for (std::size_t start = 0; start < total; start += period) {
    const float* v = in + start;
    const std::size_t len = std::min(period, total - start);
    for (std::size_t j = 0; j < len; ++j) bad |= static_cast<int>(!(v[j] >= lo[j])) | static_cast<int>(!(v[j] <= hi[j]));
  }
  return bad == 0;
}

// Refuse NaN/Inf (they give NaN outputs that look like answers) and count points outside the
// domain, naming the first offender; only run when the screening pass found something.
PredictReport Solver::Impl::check_input(const float* in, std::size_t n_points) const {
  if (input_is_clean(in, n_points)) return {};
  const std::size_t width = info.input_names.size();
  const bool boxed = !info.lower.empty();
  PredictReport report;
  for (std::size_t p = 0; p < n_points; ++p) {
    bool outside = false;
    for (std::size_t c = 0; c < width; ++c) {
      const float v = in[p * width + c];
      if (!std::isfinite(v))
        throw Error(ErrorKind::kInvalidInput, "input point " + std::to_string(p) + " has a non-finite value in column " +
                                                  std::to_string(c) + " (" + info.input_names[c] + ")");
      if (boxed && (v < info.lower[c] || v > info.upper[c])) {
        if (policy == DomainPolicy::kReject)
          throw Error(ErrorKind::kInvalidInput,
                      "input point " + std::to_string(p) + " is outside the training domain: " + info.input_names[c] +
                          " = " + point_value(v) + " not in [" + point_value(info.lower[c]) + ", " +
                          point_value(info.upper[c]) + "] (out_of_domain policy \"reject\")");
        outside = true;
      }
    }
    if (outside && report.out_of_domain++ == 0) report.first_out_of_domain = p;
  }
  return report;
}

void Solver::Impl::check_output(const float* out, std::size_t n_points) const {
  const std::size_t width = info.output_names.size();
  constexpr float kMax = std::numeric_limits<float>::max();
  int bad = 0;  // branch-free screening first, as for the input
  for (std::size_t i = 0; i < n_points * width; ++i)
    bad |= static_cast<int>(!(out[i] >= -kMax)) | static_cast<int>(!(out[i] <= kMax));
  if (bad == 0) return;
  for (std::size_t i = 0; i < n_points * width; ++i) {
    if (!std::isfinite(out[i]))
      throw Error(ErrorKind::kRuntime, "output point " + std::to_string(i / width) + " is non-finite in column " +
                                           std::to_string(i % width) + " (" + info.output_names[i % width] +
                                           ") although its input is finite");
  }
}

PredictReport Solver::predict(const float* in, std::size_t n_points, float* out) {
  if (n_points == 0) return {};
  if (in == nullptr || out == nullptr) throw Error(ErrorKind::kInvalidInput, "predict: input or output pointer is null");
  Impl& s = *impl_;
  PredictReport report = s.check_input(in, n_points);
  if (n_points > s.max_batch) {
    s.max_batch = n_points;
    if (s.needs_scratch()) s.scratch.reserve(n_points * n_inputs());
  }
  if (report.out_of_domain > 0 && s.policy == DomainPolicy::kClamp) {
    const std::size_t width = n_inputs();
    float* clamped = s.scratch.data();
    for (std::size_t i = 0; i < n_points * width; ++i)
      clamped[i] = std::min(std::max(in[i], s.info.lower[i % width]), s.info.upper[i % width]);
    in = clamped;
  }
  if (s.info.runtime == RuntimeKind::kFused) {
    s.run_fused(in, n_points, out);
  } else {
    s.run_vm(in, n_points, out);
  }
  if (s.check_outputs) s.check_output(out, n_points);
  return report;
}

// The kernel reads the input and writes the caller's output in place: DLTensor views on the
// stack, no copies and no tensor objects.
void Solver::Impl::run_fused(const float* in, std::size_t n_points, float* out) {
  int64_t in_shape[2] = {static_cast<int64_t>(n_points), static_cast<int64_t>(info.input_names.size())};
  int64_t out_shape[2] = {static_cast<int64_t>(n_points), static_cast<int64_t>(info.output_names.size())};
  DLTensor x{const_cast<float*>(in), kCpu, 2, kFloat32, in_shape, nullptr, 0};
  DLTensor y{out, kCpu, 2, kFloat32, out_shape, nullptr, 0};
  const Artifact::Impl& a = artifact->impl();
  const bool pool = threads != 1 && n_points >= info.parallel_min_points;
  const ffi::Function& kernel = pool ? a.parallel_entry : a.entry;
  try {
    kernel(&x, &y);
  } catch (const ffi::Error& e) {
    throw Error(ErrorKind::kRuntime, std::string("compiled model failed: ") + e.what());
  }
}

void Solver::Impl::run_vm(const float* in, std::size_t n_points, float* out) {
  const std::size_t n_outputs = info.output_names.size();
  const int64_t rows = static_cast<int64_t>(n_points);
  const int64_t shape[2] = {rows, static_cast<int64_t>(info.input_names.size())};
  const std::size_t n_in_floats = n_points * info.input_names.size();
  if (reinterpret_cast<std::uintptr_t>(in) % kTvmAlignment != 0) {
    float* aligned = scratch.data();
    std::memcpy(aligned, in, n_in_floats * sizeof(float));
    in = aligned;
  }
  ffi::Tensor result;
  try {
    ffi::Tensor x = ffi::Tensor::FromNDAlloc(BorrowedData{const_cast<float*>(in)}, ffi::ShapeView(shape, 2),
                                             kFloat32, kCpu);
    ffi::Any returned = vm_entry(x);
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
