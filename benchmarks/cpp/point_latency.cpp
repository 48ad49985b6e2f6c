// kd-edge-point-bench: per-call latency of a few points, side by side in one process, pinned to
// one core. Rows: the latency kernel called straight through its entry (kernel), Solver::predict
// without and with the output check, the C API, and, given --eigen, a fixed-size Eigen MLP of the
// same network (the RTNeural approach; benchmarks/cpp/eigen_mlp.hpp), and, given --onnx, ONNX
// Runtime's C API on the same network (benchmarks/cpp/onnxruntime_peer.hpp).
//   kd-edge-point-bench --artifact DIR [--eigen WEIGHTS] [--onnx MODEL --onnxruntime LIBRARY]
//                       [--batches 1,4,16,64] [--calls 20000] [--cpu K] [--json]
// Each call is timed alone (steady_clock; the cost of reading the clock, measured here, is
// subtracted), then the same number of calls again as a chain, each input waiting for the last
// output (the mean per call over the block: latency at 1 ns resolution); backends take turns in
// rounds so that drift hits them alike.
#include <dlfcn.h>
#include <sched.h>
#include <tvm/ffi/c_api.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "kd_edge/c_api.h"
#include "kd_edge/solver.hpp"

#ifdef KD_EDGE_WITH_EIGEN
#include "eigen_mlp.hpp"
#endif
#ifdef KD_EDGE_WITH_ONNXRUNTIME
#include "onnxruntime_peer.hpp"
#endif

namespace {

using Clock = std::chrono::steady_clock;
using Predict = std::function<void(const float*, std::size_t, float*)>;

int usage(const std::string& why) {
  std::fprintf(stderr,
               "kd-edge-point-bench: %s\nusage: kd-edge-point-bench --artifact DIR [--eigen WEIGHTS] "
               "[--onnx MODEL --onnxruntime LIBRARY] [--batches 1,4,16,64] [--calls N] [--cpu K] [--json]\n",
               why.c_str());
  return 2;
}

#ifdef KD_EDGE_WITH_EIGEN
// The shapes of the reference MLP and the shipped students; another shape is reported as skipped.
template <int... W>
std::unique_ptr<peer::Model> make(std::istream& s) {
  auto m = std::make_unique<peer::FixedModel<W...>>();
  if (!m->read(s)) return nullptr;
  return m;
}

std::unique_ptr<peer::Model> load_eigen(const std::string& path, std::string* why) {
  std::ifstream file(path);
  std::string word;
  std::vector<int> widths;
  std::string line;
  if (!std::getline(file, line)) { *why = "cannot read " + path; return nullptr; }
  std::istringstream head(line);
  head >> word;
  for (int w; head >> w;) widths.push_back(w);
  static const std::map<std::vector<int>, std::unique_ptr<peer::Model> (*)(std::istream&)> shapes = {
      {{2, 20, 20, 20, 20, 1}, &make<2, 20, 20, 20, 20, 1>}, {{2, 20, 20, 20, 1}, &make<2, 20, 20, 20, 1>},
      {{3, 20, 20, 20, 1}, &make<3, 20, 20, 20, 1>},         {{2, 24, 24, 24, 3}, &make<2, 24, 24, 24, 3>},
      {{2, 27, 27, 27, 3}, &make<2, 27, 27, 27, 3>},
      {{2, 5, 24, 24, 24, 1}, &make<2, 5, 24, 24, 24, 1>},   {{3, 9, 24, 24, 24, 3}, &make<3, 9, 24, 24, 24, 3>},
  };
  auto it = shapes.find(widths);
  if (word != "widths" || it == shapes.end()) { *why = "no Eigen instantiation for the widths in " + path; return nullptr; }
  auto model = it->second(file);
  if (!model) *why = "malformed weights in " + path;
  return model;
}
#endif

// The latency kernel's entry, called as the runtime calls it, from the library loaded directly.
Predict kernel_entry(const std::string& artifact, const kd_edge::ArtifactInfo& info, std::string* why) {
  void* library = dlopen((artifact + "/" + info.library).c_str(), RTLD_NOW | RTLD_LOCAL);
  if (library == nullptr || info.small_entry.empty()) {
    *why = library ? "the artifact has no latency kernel (recompile it)" : dlerror();
    return nullptr;
  }
  auto entry = reinterpret_cast<TVMFFISafeCallType>(dlsym(library, ("__tvm_ffi_" + info.small_entry).c_str()));
  return [entry](const float* in, std::size_t n, float* out) {
    TVMFFIAny args[3], result;
    std::memset(args, 0, sizeof args);
    args[0].type_index = kTVMFFIOpaquePtr;
    args[0].v_ptr = const_cast<float*>(in);
    args[1].type_index = kTVMFFIOpaquePtr;
    args[1].v_ptr = out;
    args[2].type_index = kTVMFFIInt;
    args[2].v_int64 = static_cast<int64_t>(n);
    if (entry(nullptr, args, 3, &result) != 0) std::abort();
  };
}

double percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(q * static_cast<double>(v.size())))];
}

// What reading the clock twice costs, subtracted from every sample.
double clock_overhead_ns() {
  std::vector<double> v(20000);
  for (auto& x : v) {
    auto t0 = Clock::now();
    auto t1 = Clock::now();
    x = std::chrono::duration<double, std::nano>(t1 - t0).count();
  }
  return percentile(v, 0.5);
}

}  // namespace

int main(int argc, char** argv) {
  std::string artifact, eigen_path, onnx_path, onnxruntime_library;
  std::vector<std::size_t> batches = {1, 4, 16, 64};
  std::size_t calls = 20000;
  int cpu = -1;
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const bool more = i + 1 < argc;
    if (arg == "--json") json = true;
    else if (arg == "--artifact" && more) artifact = argv[++i];
    else if (arg == "--eigen" && more) eigen_path = argv[++i];
    else if (arg == "--onnx" && more) onnx_path = argv[++i];
    else if (arg == "--onnxruntime" && more) onnxruntime_library = argv[++i];
    else if (arg == "--calls" && more) calls = std::strtoul(argv[++i], nullptr, 10);
    else if (arg == "--cpu" && more) cpu = std::atoi(argv[++i]);
    else if (arg == "--batches" && more) {
      batches.clear();
      std::istringstream list(argv[++i]);
      for (std::string item; std::getline(list, item, ',');) batches.push_back(std::strtoul(item.c_str(), nullptr, 10));
    } else return usage("unknown or incomplete argument: " + arg);
  }
  if (artifact.empty()) return usage("--artifact is required");
  if (onnx_path.empty() != onnxruntime_library.empty()) return usage("--onnx and --onnxruntime go together");
  if (calls < 100 || batches.empty() || std::count(batches.begin(), batches.end(), 0u) > 0)
    return usage("--calls must be at least 100 and batches positive");
  if (cpu >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) return usage("cannot pin to cpu " + std::to_string(cpu));
  }

  try {
    kd_edge::SolverOptions plain;
    plain.threads = 1;
    plain.max_batch = *std::max_element(batches.begin(), batches.end());
    kd_edge::SolverOptions unchecked = plain;
    unchecked.check_outputs = false;
    kd_edge::Solver solver(artifact, plain), solver_unchecked(artifact, unchecked);
    const kd_edge::ArtifactInfo& info = solver.info();
    kd_edge_options c_options = kd_edge_default_options();
    c_options.threads = 1;
    c_options.max_batch = plain.max_batch;
    kd_edge_solver* c_solver = nullptr;
    if (kd_edge_open_with(artifact.c_str(), &c_options, &c_solver) != KD_EDGE_OK)
      throw kd_edge::Error(kd_edge::ErrorKind::kRuntime, kd_edge_last_error(nullptr));
    std::unique_ptr<kd_edge_solver, void (*)(kd_edge_solver*)> c_owner(c_solver, &kd_edge_close);

    std::vector<std::pair<std::string, Predict>> backends;
    std::string why;
    if (Predict kernel = kernel_entry(artifact, info, &why)) backends.emplace_back("kernel", kernel);
    else std::fprintf(stderr, "kernel row skipped: %s\n", why.c_str());
    backends.emplace_back("solver_unchecked", [&](const float* in, std::size_t n, float* out) { solver_unchecked.predict(in, n, out); });
    backends.emplace_back("solver", [&](const float* in, std::size_t n, float* out) { solver.predict(in, n, out); });
    backends.emplace_back("c_api", [&](const float* in, std::size_t n, float* out) {
      if (kd_edge_predict(c_solver, in, n, out) != KD_EDGE_OK) std::abort();
    });
    std::string eigen_note = "not requested (--eigen)";
#ifdef KD_EDGE_WITH_EIGEN
    std::unique_ptr<peer::Model> eigen;
    if (!eigen_path.empty()) {
      eigen = load_eigen(eigen_path, &eigen_note);
      if (eigen) {
        backends.emplace_back("eigen", [&](const float* in, std::size_t n, float* out) { eigen->predict(in, n, out); });
        eigen_note = "";
      }
    }
#else
    if (!eigen_path.empty()) eigen_note = "built without Eigen (apt-get install libeigen3-dev, then rebuild)";
#endif
    if (!eigen_note.empty() && !eigen_path.empty()) std::fprintf(stderr, "eigen row skipped: %s\n", eigen_note.c_str());
#ifdef KD_EDGE_WITH_ONNXRUNTIME
    std::unique_ptr<peer::OnnxRuntime> onnxruntime;
    if (!onnx_path.empty()) {
      try {
        onnxruntime = std::make_unique<peer::OnnxRuntime>(onnxruntime_library, onnx_path);
        const std::size_t n_in = info.input_names.size(), n_out = info.output_names.size();
        backends.emplace_back("onnxruntime", [&onnxruntime, n_in, n_out](const float* in, std::size_t n, float* out) {
          onnxruntime->predict(in, n, n_in, out, n_out);
        });
        std::fprintf(stderr, "onnxruntime row: ONNX Runtime %s\n", onnxruntime->version().c_str());
      } catch (const std::exception& e) {
        std::fprintf(stderr, "onnxruntime row skipped: %s\n", e.what());
      }
    }
#else
    if (!onnx_path.empty())
      std::fprintf(stderr, "onnxruntime row skipped: built without ONNX Runtime's C header "
                           "(benchmarks/cpp/onnxruntime_headers.sh, then rebuild)\n");
#endif

    // A pool of points inside the training domain; call i takes the next n of them.
    const std::size_t width = info.input_names.size(), n_out = info.output_names.size(), pool = 4096;
    std::vector<float> points(pool * width);
    for (std::size_t i = 0; i < points.size(); ++i) {
      const float f = static_cast<float>((i * 7919) % 1000) / 999.0f;
      const std::size_t c = i % width;
      points[i] = info.lower.empty() ? -1.0f + 2.0f * f : info.lower[c] + (info.upper[c] - info.lower[c]) * f;
    }
    const double overhead = clock_overhead_ns();

    // Agreement of every backend with the solver on the first 64 points (a fast wrong answer is no result).
    std::vector<float> reference(64 * n_out), other(64 * n_out);
    solver.predict(points.data(), 64, reference.data());
    std::map<std::string, double> max_diff;
    for (auto& [name, f] : backends) {
      f(points.data(), 64, other.data());
      double d = 0;
      for (std::size_t i = 0; i < other.size(); ++i) d = std::max(d, std::fabs(double(other[i]) - reference[i]));
      max_diff[name] = d;
    }

    if (json) std::printf("{\"clock_overhead_ns\": %.1f, \"rows\": [\n", overhead);
    bool first = true;
    for (std::size_t n : batches) {
      std::vector<float> out(n * n_out);
      std::vector<std::vector<double>> samples(backends.size()), chained(backends.size());
      const std::size_t rounds = 20, per_round = std::max<std::size_t>(1, calls / rounds);
      std::size_t at = 0;
      std::vector<float> chain_in(points.begin(), points.begin() + static_cast<std::ptrdiff_t>(n * width));
      for (std::size_t r = 0; r < rounds; ++r) {
        for (std::size_t b = 0; b < backends.size(); ++b) {
          for (std::size_t w = 0; w < 50; ++w) backends[b].second(points.data(), n, out.data());  // warm
          for (std::size_t c = 0; c < per_round; ++c) {
            at = at + n > pool ? 0 : at;
            const float* in = points.data() + at * width;
            at += n;
            auto t0 = Clock::now();
            backends[b].second(in, n, out.data());
            auto t1 = Clock::now();
            samples[b].push_back(std::max(0.0, std::chrono::duration<double, std::nano>(t1 - t0).count() - overhead));
          }
          // The same calls chained: each input waits for the previous output (a term too small to
          // change it), so calls cannot overlap; one clock pair per block gives 1 ns resolution
          // where the clock steps 10 ns.
          const float x0 = chain_in[0];
          auto t0 = Clock::now();
          for (std::size_t c = 0; c < per_round; ++c) {
            chain_in[0] = x0 + out[0] * 1e-30f;
            backends[b].second(chain_in.data(), n, out.data());
          }
          auto t1 = Clock::now();
          chained[b].push_back(std::chrono::duration<double, std::nano>(t1 - t0).count() / static_cast<double>(per_round));
          chain_in[0] = x0;
        }
      }
      for (std::size_t b = 0; b < backends.size(); ++b) {
        double mean = 0;
        for (double s : samples[b]) mean += s;
        mean /= static_cast<double>(samples[b].size());
        const double p50 = percentile(samples[b], 0.5), p99 = percentile(samples[b], 0.99);
        const double chain = percentile(chained[b], 0.5);  // median over the rounds
        const std::string& name = backends[b].first;
        if (json)
          std::printf("%s  {\"backend\": \"%s\", \"n\": %zu, \"p50_ns\": %.1f, \"p99_ns\": %.1f, \"mean_ns\": %.1f, "
                      "\"chained_ns\": %.1f, \"max_abs_vs_solver\": %.3g}",
                      first ? "" : ",\n", name.c_str(), n, p50, p99, mean, chain, max_diff[name]);
        else
          std::printf("N=%-4zu %-17s p50 %8.1f ns  p99 %8.1f ns  mean %8.1f ns  chained %8.1f ns  max|y - solver| %.2g\n",
                      n, name.c_str(), p50, p99, mean, chain, max_diff[name]);
        first = false;
      }
    }
    if (json) std::printf("\n]}\n");
  } catch (const kd_edge::Error& e) {
    std::fprintf(stderr, "kd-edge-point-bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
