// Artifact: validated load of a library. Solver: input policy, then the artifact's backend.
#include "kd_edge/solver.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>

#include "aligned_buffer.hpp"
#include "backend.hpp"
#include "library.hpp"

namespace kd_edge {
namespace {

std::string point_value(float v) {
  char text[32];
  std::snprintf(text, sizeof text, "%.9g", static_cast<double>(v));
  return text;
}

// Floats in `points` rows of `width`, refusing sizes whose bytes do not fit a size_t.
std::size_t floats_for(std::size_t points, std::size_t width, const char* what) {
  constexpr std::size_t kMax = std::numeric_limits<std::size_t>::max() / sizeof(float);
  if (width != 0 && points > kMax / width)
    throw Error(ErrorKind::kInvalidInput, std::string(what) + " of " + std::to_string(points) +
                                              " points is larger than memory can hold");
  return points * width;
}

}  // namespace

// Everything here is set at load and only read afterwards, so Solvers on many threads share it.
struct Artifact::Impl {
  ArtifactInfo info;
  VerifiedLibrary library;
  std::unique_ptr<Backend> backend;

  explicit Impl(const std::string& artifact_dir)
      : info(read_manifest(artifact_dir)),
        library((std::filesystem::path(artifact_dir) / info.library).string(), info.library_sha256),
        backend(info.runtime == RuntimeKind::kFused ? load_fused(library, info) : load_vm(library, info)) {
    check_shapes();
  }

  // The library checks the shapes it is called with: one call on a point of zeros at load shows
  // that it takes the manifest's widths, before any caller's data reaches it.
  void check_shapes() const {
    std::vector<float> in(info.input_names.size()), out(info.output_names.size());
    try {
      backend->probe(in.data(), out.data());
    } catch (const Error& e) {
      throw Error(ErrorKind::kInvalidArtifact, library.origin() + " does not take the " +
                                                   std::to_string(in.size()) + " inputs and " +
                                                   std::to_string(out.size()) + " outputs manifest.json names: " +
                                                   e.what());
    }
  }
};

Artifact::Artifact(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Artifact::~Artifact() = default;
const ArtifactInfo& Artifact::info() const noexcept { return impl_->info; }

std::shared_ptr<const Artifact> Artifact::load(const std::string& artifact_dir) {
  return std::shared_ptr<const Artifact>(new Artifact(std::make_unique<Impl>(artifact_dir)));
}

struct Solver::Impl {
  std::shared_ptr<const Artifact> artifact;
  const ArtifactInfo& info;
  int threads;
  std::size_t max_batch;
  DomainPolicy policy;
  bool check_outputs;
  ResidualPolicy residual_policy;
  std::unique_ptr<Runner> runner;
  AlignedBuffer scratch;  // the clamped input
  // 1 while a thread is inside predict (an int: lock-free on every target; a bool needs libatomic on RISC-V)
  std::atomic<int> busy{0};
  std::size_t max_points;         // batches larger than this have more bytes than a size_t counts
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
        check_outputs(options.check_outputs.value_or(info.default_check_outputs)),
        residual_policy(options.residual_policy),
        max_points(std::numeric_limits<std::size_t>::max() / sizeof(float) /
                   std::max(info.input_names.size(), info.output_names.size())) {
    if (threads != 0 && threads != 1)
      throw Error(ErrorKind::kInvalidInput, "threads must be 0 (the pool) or 1 (the calling thread), got " +
                                                std::to_string(threads));
    if (policy != DomainPolicy::kFlag && info.lower.empty())
      throw Error(ErrorKind::kInvalidInput, std::string("domain policy \"") + domain_policy_name(policy) +
                                                "\" needs the training domain, which this artifact does not record "
                                                "(compile with input_bounds)");
    if (residual_policy != ResidualPolicy::kOff && info.residual_columns.empty())
      throw Error(ErrorKind::kInvalidInput, "a residual policy screens the PDE residual, which this artifact does "
                                            "not compute (compile with residual=True)");
    runner = artifact->impl().backend->make_runner();
    if (needs_scratch()) scratch.reserve(floats_for(max_batch, info.input_names.size(), "max_batch"));
    const std::size_t width = info.input_names.size();
    const bool boxed = !info.lower.empty();
    for (std::size_t i = 0; i < width * kScreenPoints; ++i) {
      screen_lower.push_back(boxed ? info.lower[i % width] : std::numeric_limits<float>::lowest());
      screen_upper.push_back(boxed ? info.upper[i % width] : std::numeric_limits<float>::max());
    }
  }

  bool needs_scratch() const { return policy == DomainPolicy::kClamp; }

  // The screens every call runs, defined here so that predict inlines them (a call into each
  // cost a one-point predict about 10 ns); the slow paths with their messages below run only
  // when a screen finds something.
  // Whether every input value is finite and inside the box: one branch-free pass that the
  // compiler vectorises (the per-point loop of check_input, with its early exits, cost 11% of a
  // 25,600-point Burgers call). NaN fails both comparisons; +-Inf fails one even without a box.
  bool input_is_clean(const float* in, std::size_t n_points) const noexcept {
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
  bool outputs_are_finite(const float* out, std::size_t n_points) const noexcept {
    constexpr float kMax = std::numeric_limits<float>::max();
    int bad = 0;
    for (std::size_t i = 0; i < n_points * info.output_names.size(); ++i)
      bad |= static_cast<int>(!(out[i] >= -kMax)) | static_cast<int>(!(out[i] <= kMax));
    return bad == 0;
  }
  PredictReport check_input(const float* in, std::size_t n_points) const;
  void check_output(const float* out, std::size_t n_points) const;
  void screen_residual(const float* out, std::size_t n_points, PredictReport& report) const;
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

// Refuse NaN/Inf (they give NaN outputs that look like answers) and count points outside the
// domain, naming the first offender; only run when the screening pass found something.
PredictReport Solver::Impl::check_input(const float* in, std::size_t n_points) const {
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

// Names the first non-finite output; only run when outputs_are_finite found one.
void Solver::Impl::check_output(const float* out, std::size_t n_points) const {
  const std::size_t width = info.output_names.size();
  for (std::size_t i = 0; i < n_points * width; ++i) {
    if (!std::isfinite(out[i]))
      throw Error(ErrorKind::kRuntime, "output point " + std::to_string(i / width) + " is non-finite in column " +
                                           std::to_string(i % width) + " (" + info.output_names[i % width] +
                                           ") although its input is finite");
  }
}

// A point's residual over its threshold: counted (kFlag) or the call refused (kReject). A NaN
// residual counts as over (it is not below the threshold).
void Solver::Impl::screen_residual(const float* out, std::size_t n_points, PredictReport& report) const {
  const std::size_t width = info.output_names.size();
  for (std::size_t p = 0; p < n_points; ++p) {
    for (std::size_t k = 0; k < info.residual_columns.size(); ++k) {
      const float r = out[p * width + info.residual_columns[k]];
      if (std::fabs(r) <= info.residual_threshold[k]) continue;
      if (residual_policy == ResidualPolicy::kReject)
        throw Error(ErrorKind::kRuntime, "point " + std::to_string(p) + ": " +
                                             info.output_names[info.residual_columns[k]] + " = " + point_value(r) +
                                             ", over the threshold " + point_value(info.residual_threshold[k]) +
                                             " (residual policy \"reject\"): the answer does not satisfy its PDE");
      if (report.residual_exceeded++ == 0) report.first_residual_exceeded = p;
      break;
    }
  }
}

PredictReport Solver::predict(const float* in, std::size_t n_points, float* out) {
  if (n_points == 0) return {};
  if (in == nullptr || out == nullptr) throw Error(ErrorKind::kInvalidInput, "predict: input or output pointer is null");
  Impl& s = *impl_;
  // One locked exchange (a few ns): a second thread gets an error, not a share of the scratch
  // and the runner's state.
  if (s.busy.exchange(1, std::memory_order_acquire) != 0)
    throw Error(ErrorKind::kBusy, "predict: this Solver is in use by another thread; make one Solver per thread "
                                  "(they can share one Artifact)");
  struct Release {
    std::atomic<int>& flag;
    ~Release() { flag.store(0, std::memory_order_release); }
  } release{s.busy};
  const std::size_t n_in = s.info.input_names.size(), n_out = s.info.output_names.size();
  if (n_points > s.max_points) floats_for(n_points, std::max(n_in, n_out), "a batch");  // throws
  // The kernel reads inputs after it has written earlier outputs (and the pool's threads overlap
  // both): overlapping buffers give wrong values, so they are refused.
  const auto in_begin = reinterpret_cast<std::uintptr_t>(in), out_begin = reinterpret_cast<std::uintptr_t>(out);
  if (in_begin < out_begin + n_points * n_out * sizeof(float) && out_begin < in_begin + n_points * n_in * sizeof(float))
    throw Error(ErrorKind::kInvalidInput, "predict: the input and output buffers overlap; pass separate memory");
  PredictReport report = s.input_is_clean(in, n_points) ? PredictReport{} : s.check_input(in, n_points);
  if (n_points > s.max_batch) {
    if (s.needs_scratch()) s.scratch.reserve(n_points * n_in);
    s.max_batch = n_points;  // only once the scratch holds it
  }
  if (report.out_of_domain > 0 && s.policy == DomainPolicy::kClamp) {
    float* clamped = s.scratch.data();
    for (std::size_t i = 0; i < n_points * n_in; ++i)
      clamped[i] = std::min(std::max(in[i], s.info.lower[i % n_in]), s.info.upper[i % n_in]);
    in = clamped;
  }
  s.runner->run(in, n_points, out, s.threads != 1);
  if (s.check_outputs && !s.outputs_are_finite(out, n_points)) s.check_output(out, n_points);
  if (s.residual_policy != ResidualPolicy::kOff) s.screen_residual(out, n_points, report);
  return report;
}

}  // namespace kd_edge
