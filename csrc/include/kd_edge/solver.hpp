// kd-edge runtime: load a compiled artifact directory and evaluate it.
//
// Shapes: inputs are n_points x n_inputs and outputs n_points x n_outputs,
// float32, row-major, contiguous. No TVM type appears in this header.
#pragma once

#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace kd_edge {

// Why a call failed; the C API and the Python bindings map these to codes and exception types.
enum class ErrorKind {
  kNotFound = 1,         // artifact directory or a file inside it is missing
  kInvalidArtifact = 2,  // manifest unreadable, wrong format, checksum mismatch, incompatible host
  kInvalidInput = 3,     // a caller argument breaks the shape or pointer contract
  kRuntime = 4,          // the compiled code itself failed
};

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  ErrorKind kind() const noexcept { return kind_; }

 private:
  ErrorKind kind_;
};

// How the library is called: one fused kernel for a dense chain, or TVM's Relax VM.
enum class RuntimeKind { kFused, kVm };

// What manifest.json says about the artifact, after validation.
struct ArtifactInfo {
  RuntimeKind runtime = RuntimeKind::kVm;
  std::string entry;                        // function to call
  std::string parallel_entry;               // fused: the multi-threaded variant
  std::size_t parallel_min_points = 0;      // fused: batches from this size use parallel_entry
  int format = 0;                           // manifest format version
  std::string library;                      // file name of the shared library inside the artifact
  std::string library_sha256;               // hex digest the library was checked against
  std::vector<std::string> input_names;     // size n_inputs
  std::vector<std::string> output_names;    // size n_outputs
  std::string tvm_version;                  // TVM release that compiled the library
  std::string target_arch;                  // e.g. "x86_64"
  std::string target_cpu;                   // LLVM CPU name, e.g. "emeraldrapids"
  std::vector<std::string> target_features; // ISA features the code may use, e.g. "avx2"
};

// Manifest format version this runtime reads.
constexpr int kManifestFormat = 1;

// A loaded artifact. Construction validates the manifest and the library checksum,
// then loads the library; it throws kd_edge::Error on any failure. Not thread-safe:
// use one Solver per thread.
//
// Threads: with threads == 1 every call runs on the calling thread. With threads == 0 (the
// default) batches of at least the artifact's parallel_min_points run on TVM's process-wide
// thread pool, whose size is TVM_NUM_THREADS; if that is unset when the first Solver is made,
// it is set to the number of CPUs.
class Solver {
 public:
  explicit Solver(const std::string& artifact_dir, int threads = 0);
  ~Solver();
  Solver(Solver&&) noexcept;
  Solver& operator=(Solver&&) noexcept;
  Solver(const Solver&) = delete;
  Solver& operator=(const Solver&) = delete;

  // in: n_points x n_inputs, out: n_points x n_outputs (both row-major float32).
  // n_points == 0 is a no-op. Throws kd_edge::Error (kInvalidInput) on a null pointer or a NaN/Inf
  // input, naming the first bad point, and (kRuntime) if the compiled code fails.
  void predict(const float* in, std::size_t n_points, float* out);

  int threads() const noexcept;
  std::size_t n_inputs() const noexcept;
  std::size_t n_outputs() const noexcept;
  const ArtifactInfo& info() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Reads and validates <artifact_dir>/manifest.json without loading the library.
ArtifactInfo read_manifest(const std::string& artifact_dir);

// Lower-case hex SHA-256 of a file's bytes.
std::string sha256_file(const std::string& path);

}  // namespace kd_edge
