// Steady state allocates nothing and takes no lock: malloc (any thread) and pthread_mutex_lock
// (the calling thread) are counted (alloc_counter.c) across 10,000 predict calls, from C++ and
// through the C API.
//   test_no_alloc GOLDEN_DIR
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "kd_edge/c_api.h"
#include "kd_edge/solver.hpp"

extern "C" size_t kd_edge_test_allocations(void);
extern "C" size_t kd_edge_test_thread_locks(void);

namespace {

int failures = 0;
// KD_EDGE_TEST_CALLS lowers it under an emulator (qemu-user runs the cross builds 20-50x slower).
const int kCalls = [] {
  const char* text = std::getenv("KD_EDGE_TEST_CALLS");
  return text && std::atoi(text) > 0 ? std::atoi(text) : 10000;
}();

struct Counts {
  std::size_t allocations, locks;
};

// Allocations anywhere in the process; mutex locks by this (the calling) thread.
Counts now() { return {kd_edge_test_allocations(), kd_edge_test_thread_locks()}; }

template <typename F>
void expect_quiet(const std::string& label, F&& call) {
  call();  // warm-up: lazily built state (TVM's pool on its first parallel call) is not steady state
  const Counts before = now();
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kCalls; ++i) call();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const Counts after = now();
  const std::size_t allocations = after.allocations - before.allocations, locks = after.locks - before.locks;
  std::printf("%-36s %d calls: %zu allocations, %zu mutex locks (%.2f s)\n", label.c_str(), kCalls, allocations, locks,
              seconds);
  if (allocations != 0 || locks != 0) ++failures;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: test_no_alloc GOLDEN_DIR\n");
    return 2;
  }
  const std::string dir = (std::filesystem::path(argv[1]) / "mlp_2_1_tanh").string();
  {  // the counter must see allocations, or a 0 below proves nothing
    const Counts before = now();
    std::vector<float> probe(1000);
    if (now().allocations == before.allocations) {
      std::fprintf(stderr, "FAIL: the allocation counter is not interposed\n");
      return 1;
    }
  }
  const std::size_t max_batch = 4096;  // the parallel threshold: with threads 0 the pooled kernel runs
  std::vector<float> in(max_batch * 2), out(max_batch);
  for (std::size_t i = 0; i < in.size(); ++i) in[i] = -2.0f + 4.0f * static_cast<float>(i % 101) / 100.0f;

  for (const char* policy : {"flag", "clamp"}) {
    for (int threads : {1, 0}) {
      if (std::string(policy) == "clamp" && threads == 0) continue;  // clamping happens before the kernel
      kd_edge::SolverOptions options;
      options.threads = threads;
      options.max_batch = max_batch;
      options.domain_policy = std::string(policy) == "flag" ? kd_edge::DomainPolicy::kFlag : kd_edge::DomainPolicy::kClamp;
      kd_edge::Solver solver(dir, options);
      // 1: the latency kernel; 13 and 21: a remainder after whole tiles, padded into one more
      // tile or sent to the latency kernel (which, depends on the SIMD width); 4096: tiles only.
      for (std::size_t n : {std::size_t{1}, std::size_t{13}, std::size_t{21}, max_batch}) {
        expect_quiet("Solver " + std::string(policy) + ", threads " + std::to_string(threads) + ", N " + std::to_string(n),
                     [&] { solver.predict(in.data(), n, out.data()); });
      }
    }
  }

  kd_edge_options options = kd_edge_default_options();
  options.threads = 1;
  options.max_batch = max_batch;
  kd_edge_solver* solver = nullptr;
  if (kd_edge_open_with(dir.c_str(), &options, &solver) != KD_EDGE_OK) {
    std::fprintf(stderr, "FAIL: %s\n", kd_edge_last_error(nullptr));
    return 1;
  }
  for (std::size_t n : {std::size_t{1}, std::size_t{13}, max_batch}) {
    expect_quiet("C API, N " + std::to_string(n), [&] {
      if (kd_edge_predict(solver, in.data(), n, out.data()) != KD_EDGE_OK) ++failures;
    });
  }
  kd_edge_close(solver);
  std::printf("%s\n", failures ? "FAILED" : "no allocation and no lock in steady state");
  return failures ? 1 : 0;
}
