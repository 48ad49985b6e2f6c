// kd-edge runtime: load a compiled artifact directory and evaluate it.
//
// Shapes: inputs are n_points x n_inputs and outputs n_points x n_outputs,
// float32, row-major, contiguous. No TVM type appears in this header.
//
// Loading an artifact runs native code from its shared library: load only artifacts you
// trust. The manifest and the library's sha256 are checked first, which catches damage
// and mismatches, not an attacker who rewrites both.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace kd_edge {

// Why a call failed; the C API and the Python bindings map these to codes and exception types.
enum class ErrorKind {
  kNotFound = 1,         // artifact directory or a file inside it is missing
  kInvalidArtifact = 2,  // manifest unreadable, wrong format, checksum mismatch, incompatible host
  kInvalidInput = 3,     // a caller argument breaks the shape, pointer or domain contract
  kRuntime = 4,          // the compiled code failed or produced a non-finite output
  kBusy = 5,             // another thread is inside a call on the same Solver (use one per thread)
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

// What to do with a point outside the training domain (the box in the manifest).
enum class DomainPolicy {
  kFlag,    // compute it and count it in PredictReport
  kClamp,   // move it to the nearest point of the box, compute, and count it
  kReject,  // refuse the whole call (kInvalidInput), naming the first such point
};

// What to do with a point whose PDE residual (an artifact compiled with residual=True) is larger
// than the threshold its manifest records.
enum class ResidualPolicy {
  kOff,     // nothing: the residual columns are outputs like the others
  kFlag,    // count such points in PredictReport
  kReject,  // refuse the call (kRuntime), naming the first such point; the outputs are not to be used
};

// What manifest.json says about the artifact, after validation.
struct ArtifactInfo {
  RuntimeKind runtime = RuntimeKind::kVm;
  std::string entry;                        // function to call
  std::string parallel_entry;               // fused: the multi-threaded variant
  std::size_t parallel_min_points = 0;      // fused: batches from this size use parallel_entry
  std::string small_entry;                  // fused: the latency kernel (empty in older artifacts)
  std::size_t tile_points = 0;              // fused: points per tile of the batch kernels
  std::size_t small_max_points = 0;         // fused: a remainder of up to this many points uses small_entry
  int format = 0;                           // manifest format version
  std::string library;                      // file name of the shared library inside the artifact
  std::string library_sha256;               // hex digest the library was checked against
  std::vector<std::string> input_names;     // size n_inputs
  std::vector<std::string> output_names;    // size n_outputs
  std::vector<float> lower, upper;          // training domain per input; empty if not recorded
  std::vector<std::size_t> residual_columns;  // output columns holding a PDE residual (residual=True)
  std::vector<float> residual_threshold;    // per residual column: |residual| above it is suspect
  DomainPolicy default_domain_policy = DomainPolicy::kFlag;
  bool default_check_outputs = true;
  std::string tvm_version;                  // TVM release that compiled the library
  std::string target_name;                  // the compile target, e.g. "host", "cortex-a72"
  std::string target_arch;                  // "x86_64", "aarch64", "armv7", "riscv64"
  std::string target_triple;                // LLVM triple, e.g. "aarch64-linux-gnu"
  std::string target_cpu;                   // LLVM CPU name, e.g. "emeraldrapids"
  std::vector<std::string> target_features; // ISA features the code may use, e.g. "avx2", "asimd"
};

// Manifest format version this runtime reads.
constexpr int kManifestFormat = 3;

// A validated, loaded artifact library. Immutable once loaded, so one Artifact can back any
// number of Solvers on any threads: load once, then make a Solver per thread from it.
class Artifact {
 public:
  // Validates the manifest and the library checksum, then loads the library; throws kd_edge::Error.
  static std::shared_ptr<const Artifact> load(const std::string& artifact_dir);
  ~Artifact();
  const ArtifactInfo& info() const noexcept;

  struct Impl;
  const Impl& impl() const noexcept { return *impl_; }

 private:
  explicit Artifact(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

struct SolverOptions {
  // 1: every call runs on the calling thread. 0: batches of at least the artifact's
  // parallel_min_points run on a process-wide pool, sized by KD_EDGE_NUM_THREADS (else
  // TVM_NUM_THREADS, else the number of CPUs). Other values are refused.
  int threads = 0;
  // Largest batch to prepare scratch memory for at construction. Calls up to this size never
  // allocate; a larger call grows the scratch once (0: grow to the largest batch used).
  std::size_t max_batch = 0;
  std::optional<DomainPolicy> domain_policy;  // unset: the manifest's default
  std::optional<bool> check_outputs;          // unset: the manifest's default
  ResidualPolicy residual_policy = ResidualPolicy::kOff;  // needs an artifact with residual columns
};

// What one predict call saw.
struct PredictReport {
  std::size_t out_of_domain = 0;        // points outside the training domain (flagged or clamped)
  std::size_t first_out_of_domain = 0;  // index of the first one, when out_of_domain > 0
  std::size_t residual_exceeded = 0;    // points whose residual is over the threshold (policy kFlag)
  std::size_t first_residual_exceeded = 0;  // index of the first one, when residual_exceeded > 0
};

// A loaded artifact ready to predict. Construction throws kd_edge::Error on any failure.
// Not thread-safe: use one Solver per thread (Solvers sharing one Artifact are independent).
// A predict that starts while another thread is inside predict on the same Solver is refused
// with kBusy (it computes nothing and changes nothing) instead of racing on its scratch.
// After construction, predict on batches up to max_batch allocates nothing and takes no lock
// (fused artifacts; TVM's VM path allocates inside TVM). `in` and `out` must not overlap.
class Solver {
 public:
  explicit Solver(const std::string& artifact_dir, const SolverOptions& options = {});
  explicit Solver(std::shared_ptr<const Artifact> artifact, const SolverOptions& options = {});
  ~Solver();
  Solver(Solver&&) noexcept;
  Solver& operator=(Solver&&) noexcept;
  Solver(const Solver&) = delete;
  Solver& operator=(const Solver&) = delete;

  // in: n_points x n_inputs, out: n_points x n_outputs (both row-major float32).
  // n_points == 0 is a no-op. Throws kd_edge::Error: kInvalidInput on a null pointer, overlapping
  // input and output buffers, a NaN/Inf
  // input (naming the first bad point) or, under kReject, a point outside the domain; kRuntime if
  // the compiled code fails or, with check_outputs, writes a non-finite output; kBusy if another
  // thread is inside predict on this Solver.
  PredictReport predict(const float* in, std::size_t n_points, float* out);

  int threads() const noexcept;
  std::size_t n_inputs() const noexcept;
  std::size_t n_outputs() const noexcept;
  std::size_t max_batch() const noexcept;  // batches up to this size run without allocating
  DomainPolicy domain_policy() const noexcept;
  bool check_outputs() const noexcept;
  const ArtifactInfo& info() const noexcept;
  const std::shared_ptr<const Artifact>& artifact() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Reads and validates <artifact_dir>/manifest.json without loading the library.
ArtifactInfo read_manifest(const std::string& artifact_dir);

// Parses manifest text (as read_manifest does, `where` naming it in errors) without host checks.
ArtifactInfo parse_manifest(const std::string& text, const std::string& where);

// Lower-case hex SHA-256 of a file's bytes.
std::string sha256_file(const std::string& path);

// Name used in manifests and messages: "flag", "clamp", "reject".
const char* domain_policy_name(DomainPolicy policy) noexcept;

// The policy of that name; false if there is none.
bool domain_policy_from_name(const std::string& name, DomainPolicy* policy) noexcept;

}  // namespace kd_edge
