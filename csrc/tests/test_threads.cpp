// Four threads, each with its own Solver made from one shared Artifact, hammer predict; every
// result must equal the single-threaded one bit for bit. Then the misuse: four threads on ONE
// Solver (and on one C API handle) must see kBusy / KD_EDGE_ERR_BUSY for the overlapping calls
// and right answers from the others. Run under ThreadSanitizer too.
//   test_threads GOLDEN_DIR
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "kd_edge/c_api.h"
#include "kd_edge/solver.hpp"

// Four threads call predict on one Solver and on one C handle until each has seen an overlap
// refused (or a bound on calls is reached): returns the number of failures.
int shared_solver_is_refused(const std::string& dir, std::shared_ptr<const kd_edge::Artifact> artifact,
                             const std::vector<float>& in, const std::vector<float>& expected) {
  const std::size_t n = expected.size() / artifact->info().output_names.size();
  kd_edge::Solver solver(artifact);
  kd_edge_solver* handle = nullptr;
  if (kd_edge_open(dir.c_str(), &handle) != KD_EDGE_OK) {
    std::fprintf(stderr, "FAIL: kd_edge_open: %s\n", kd_edge_last_error(nullptr));
    return 1;
  }
  std::atomic<int> wrong{0}, other_error{0}, busy_cpp{0}, busy_c{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < 4; ++t) {
    workers.emplace_back([&] {
      std::vector<float> out(expected.size());
      for (int r = 0; r < 200000 && (busy_cpp.load() == 0 || busy_c.load() == 0); ++r) {
        try {
          solver.predict(in.data(), n, out.data());
          if (out != expected) ++wrong;
        } catch (const kd_edge::Error& e) {
          ++(e.kind() == kd_edge::ErrorKind::kBusy ? busy_cpp : other_error);
        }
        const kd_edge_status status = kd_edge_predict(handle, in.data(), n, out.data());
        if (status == KD_EDGE_ERR_BUSY) ++busy_c;
        else if (status != KD_EDGE_OK) ++other_error;
        else if (out != expected) ++wrong;
      }
    });
  }
  for (auto& w : workers) w.join();
  kd_edge_close(handle);
  const int failed = wrong + other_error + (busy_cpp == 0) + (busy_c == 0);
  if (failed)
    std::fprintf(stderr, "FAIL: one Solver on 4 threads: %d wrong, %d other errors, %d + %d refused as busy\n",
                 wrong.load(), other_error.load(), busy_cpp.load(), busy_c.load());
  return failed;
}

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: test_threads GOLDEN_DIR\n");
    return 2;
  }
  const std::string dir = (std::filesystem::path(argv[1]) / "mlp_5_3_tanh").string();
  constexpr std::size_t kPoints = 257, kThreads = 4, kRounds = 300;
  auto artifact = kd_edge::Artifact::load(dir);
  const std::size_t n_in = artifact->info().input_names.size(), n_out = artifact->info().output_names.size();
  std::vector<float> in(kPoints * n_in);
  for (std::size_t i = 0; i < in.size(); ++i) in[i] = -1.0f + 2.0f * static_cast<float>(i % 89) / 88.0f;

  kd_edge::SolverOptions serial;
  serial.threads = 1;
  // expected[k]: the single-threaded result for a batch of kPoints - k points
  std::vector<std::vector<float>> expected(7);
  kd_edge::Solver reference(artifact, serial);
  for (std::size_t k = 0; k < expected.size(); ++k) {
    expected[k].resize((kPoints - k) * n_out);
    reference.predict(in.data(), kPoints - k, expected[k].data());
  }

  std::vector<int> mismatches(kThreads, 0);
  std::vector<std::thread> workers;
  for (std::size_t t = 0; t < kThreads; ++t) {
    workers.emplace_back([&, t] {
      kd_edge::Solver solver(artifact, serial);  // made on this thread, from the shared artifact
      std::vector<float> out(kPoints * n_out);
      for (std::size_t r = 0; r < kRounds; ++r) {
        std::fill(out.begin(), out.end(), -1.0f);
        // Each thread varies its batch so calls of different sizes overlap.
        const std::size_t k = (r + t) % expected.size(), n = kPoints - k;
        solver.predict(in.data(), n, out.data());
        if (std::memcmp(out.data(), expected[k].data(), n * n_out * sizeof(float)) != 0) ++mismatches[t];
      }
    });
  }
  for (auto& w : workers) w.join();

  // The pool: batches above parallel_min_points from 4 threads at once, so calls meet the pool
  // busy with another thread's call (that one then runs its tasks itself): same results.
  const std::size_t big = artifact->info().parallel_min_points + 3;
  std::vector<float> big_in(big * n_in), big_expected(big * n_out);
  for (std::size_t i = 0; i < big_in.size(); ++i) big_in[i] = -1.0f + 2.0f * static_cast<float>(i % 97) / 96.0f;
  reference.predict(big_in.data(), big, big_expected.data());
  std::vector<int> pool_mismatches(kThreads, 0);
  workers.clear();
  for (std::size_t t = 0; t < kThreads; ++t) {
    workers.emplace_back([&, t] {
      kd_edge::Solver solver(artifact);  // threads 0: the pool
      std::vector<float> out(big * n_out);
      for (std::size_t r = 0; r < 20; ++r) {
        std::fill(out.begin(), out.end(), -1.0f);
        solver.predict(big_in.data(), big, out.data());
        if (std::memcmp(out.data(), big_expected.data(), out.size() * sizeof(float)) != 0) ++pool_mismatches[t];
      }
    });
  }
  for (auto& w : workers) w.join();
  for (std::size_t t = 0; t < kThreads; ++t) mismatches[t] += pool_mismatches[t];
  int failed = shared_solver_is_refused(dir, artifact, in, expected[0]);
  for (std::size_t t = 0; t < kThreads; ++t) {
    if (mismatches[t]) std::fprintf(stderr, "FAIL: thread %zu: %d of %zu calls differ\n", t, mismatches[t], kRounds);
    failed += mismatches[t];
  }
  std::printf("%s\n", failed ? "FAILED" : "4 threads x 300 calls, and 4 x 20 pooled calls, match the single-threaded result bit for bit; "
                                   "overlapping calls on one shared Solver or C handle are refused as busy");
  return failed ? 1 : 0;
}
