// kd-edge-run: time Solver::predict on an artifact.
//   kd-edge-run --artifact DIR [--batch N] [--iters K] [--warmup W] [--json]
// Prints p50, p99 and max latency of one predict call of N points. --threads 1 keeps every
// call on this thread; otherwise large batches use TVM's pool (TVM_NUM_THREADS threads).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "kd_edge/solver.hpp"

namespace {

struct Options {
  std::string artifact;
  std::size_t batch = 1;
  std::size_t iters = 10000;
  std::size_t warmup = 100;
  std::size_t threads = 0;
  bool json = false;
};

int usage(const char* why) {
  std::fprintf(stderr, "kd-edge-run: %s\nusage: kd-edge-run --artifact DIR [--batch N] [--iters K] [--warmup W] [--threads 1] [--json]\n", why);
  return 2;
}

bool parse_count(const char* text, std::size_t* out) {
  char* end = nullptr;
  long long v = std::strtoll(text, &end, 10);
  if (end == text || *end != '\0' || v <= 0) return false;
  *out = static_cast<std::size_t>(v);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--json") opt.json = true;
    else if (arg == "--artifact" && has_value) opt.artifact = argv[++i];
    else if (arg == "--batch" && has_value) { if (!parse_count(argv[++i], &opt.batch)) return usage("--batch must be a positive integer"); }
    else if (arg == "--iters" && has_value) { if (!parse_count(argv[++i], &opt.iters)) return usage("--iters must be a positive integer"); }
    else if (arg == "--warmup" && has_value) { if (!parse_count(argv[++i], &opt.warmup)) return usage("--warmup must be a positive integer"); }
    else if (arg == "--threads" && has_value) { if (!parse_count(argv[++i], &opt.threads)) return usage("--threads must be a positive integer"); }
    else return usage(("unknown or incomplete argument: " + arg).c_str());
  }
  if (opt.artifact.empty()) return usage("--artifact is required");

  try {
    kd_edge::SolverOptions options;
    options.threads = opt.threads == 1 ? 1 : 0;
    options.max_batch = opt.batch;
    kd_edge::Solver solver(opt.artifact, options);
    // Points spread over the training domain (over [-1, 1] without one). The kernel's time does
    // not depend on the values, but the runtime's checks do: points outside the domain are
    // counted one by one, which is not the case worth timing.
    const std::vector<float>& lower = solver.info().lower;
    const std::vector<float>& upper = solver.info().upper;
    const std::size_t width = solver.n_inputs();
    std::vector<float> in(opt.batch * width);
    for (std::size_t i = 0; i < in.size(); ++i) {
      const float fraction = static_cast<float>(i % 997) / 996.0f;
      const std::size_t c = i % width;
      in[i] = lower.empty() ? -1.0f + 2.0f * fraction : lower[c] + (upper[c] - lower[c]) * fraction;
    }
    std::vector<float> out(opt.batch * solver.n_outputs());
    std::vector<double> ns(opt.iters);

    for (std::size_t i = 0; i < opt.warmup; ++i) solver.predict(in.data(), opt.batch, out.data());
    for (std::size_t i = 0; i < opt.iters; ++i) {
      auto t0 = std::chrono::steady_clock::now();
      solver.predict(in.data(), opt.batch, out.data());
      auto t1 = std::chrono::steady_clock::now();
      ns[i] = std::chrono::duration<double, std::nano>(t1 - t0).count();
    }
    std::sort(ns.begin(), ns.end());
    auto pct = [&](double p) { return ns[std::min(ns.size() - 1, static_cast<std::size_t>(p * (ns.size() - 1) + 0.5))]; };
    const double p50 = pct(0.50) / 1e3, p99 = pct(0.99) / 1e3, max = ns.back() / 1e3;
    if (opt.json) {
      std::printf("{\"batch\": %zu, \"iters\": %zu, \"p50_us\": %.3f, \"p99_us\": %.3f, \"max_us\": %.3f}\n",
                  opt.batch, opt.iters, p50, p99, max);
    } else {
      std::printf("%s: batch %zu, %zu calls: p50 %.2f us, p99 %.2f us, max %.2f us per call\n",
                  opt.artifact.c_str(), opt.batch, opt.iters, p50, p99, max);
    }
  } catch (const kd_edge::Error& e) {
    std::fprintf(stderr, "kd-edge-run: %s\n", e.what());
    return 1;
  }
  return 0;
}
