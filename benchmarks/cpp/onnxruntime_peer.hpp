// ONNX Runtime through its C API, as a C++ control loop would call it: one session, one intra-op
// and one inter-op thread, every graph optimisation, the caller's buffers wrapped as tensors
// (no copy) on each call. The library is opened at run time (the onnxruntime wheel's
// libonnxruntime.so), so the benchmark needs only ONNX Runtime's C header at build time.
#pragma once

#include <dlfcn.h>
#include <onnxruntime_c_api.h>

#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace peer {

class OnnxRuntime {
 public:
  OnnxRuntime(const std::string& library, const std::string& model) {
    try {
      open(library, model);
    } catch (...) {
      close();
      throw;
    }
  }
  OnnxRuntime(const OnnxRuntime&) = delete;
  OnnxRuntime& operator=(const OnnxRuntime&) = delete;
  ~OnnxRuntime() { close(); }

  const std::string& version() const { return version_; }

  // y = model(x) for n points of n_in inputs and n_out outputs; aborts on a runtime error (a
  // benchmark has no answer to give then).
  void predict(const float* in, std::size_t n, std::size_t n_in, float* out, std::size_t n_out) const {
    const int64_t in_shape[2] = {static_cast<int64_t>(n), static_cast<int64_t>(n_in)};
    const int64_t out_shape[2] = {static_cast<int64_t>(n), static_cast<int64_t>(n_out)};
    OrtValue *x = nullptr, *y = nullptr;
    const char* in_names[] = {"x"};
    const char* out_names[] = {"y"};
    bool ok = succeeded(api_->CreateTensorWithDataAsOrtValue(memory_, const_cast<float*>(in), n * n_in * sizeof(float),
                                                       in_shape, 2, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, &x)) &&
              succeeded(api_->CreateTensorWithDataAsOrtValue(memory_, out, n * n_out * sizeof(float), out_shape, 2,
                                                       ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, &y)) &&
              succeeded(api_->Run(session_, nullptr, in_names, &x, 1, out_names, 1, &y));
    if (x) api_->ReleaseValue(x);
    if (y) api_->ReleaseValue(y);
    if (!ok) std::abort();
  }

 private:
  void open(const std::string& library, const std::string& model) {
    handle_ = dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle_ == nullptr) throw std::runtime_error("cannot open " + library + ": " + dlerror());
    using GetApiBase = const OrtApiBase* (*)();
    auto base = reinterpret_cast<GetApiBase>(dlsym(handle_, "OrtGetApiBase"));
    if (base == nullptr) throw std::runtime_error(library + " has no OrtGetApiBase: not ONNX Runtime");
    api_ = base()->GetApi(ORT_API_VERSION);
    if (api_ == nullptr)
      throw std::runtime_error(library + " (ONNX Runtime " + base()->GetVersionString() +
                               ") does not offer C API version " + std::to_string(ORT_API_VERSION) + " of the header");
    version_ = base()->GetVersionString();
    check(api_->CreateEnv(ORT_LOGGING_LEVEL_ERROR, "kd-edge-point-bench", &env_));
    OrtSessionOptions* options = nullptr;
    check(api_->CreateSessionOptions(&options));
    struct Release {
      const OrtApi* api;
      OrtSessionOptions* o;
      ~Release() { api->ReleaseSessionOptions(o); }
    } release{api_, options};
    check(api_->SetIntraOpNumThreads(options, 1));
    check(api_->SetInterOpNumThreads(options, 1));
    check(api_->SetSessionGraphOptimizationLevel(options, ORT_ENABLE_ALL));
    check(api_->SetSessionExecutionMode(options, ORT_SEQUENTIAL));
    check(api_->CreateSession(env_, model.c_str(), options, &session_));
    check(api_->CreateCpuMemoryInfo(OrtArenaAllocator, OrtMemTypeDefault, &memory_));
  }

  void close() {
    if (api_ != nullptr) {
      if (memory_) api_->ReleaseMemoryInfo(memory_);
      if (session_) api_->ReleaseSession(session_);
      if (env_) api_->ReleaseEnv(env_);
    }
    if (handle_ != nullptr) dlclose(handle_);
    memory_ = nullptr, session_ = nullptr, env_ = nullptr, handle_ = nullptr, api_ = nullptr;
  }

  void check(OrtStatus* status) const {
    if (status == nullptr) return;
    std::string message = api_->GetErrorMessage(status);
    api_->ReleaseStatus(status);
    throw std::runtime_error("ONNX Runtime: " + message);
  }
  bool succeeded(OrtStatus* status) const {
    if (status == nullptr) return true;
    api_->ReleaseStatus(status);
    return false;
  }

  void* handle_ = nullptr;
  const OrtApi* api_ = nullptr;
  OrtEnv* env_ = nullptr;
  OrtSession* session_ = nullptr;
  OrtMemoryInfo* memory_ = nullptr;
  std::string version_;
};

}  // namespace peer
