// A fixed-rate control loop that queries a kd-edge solver every tick.
//   control_loop ARTIFACT_DIR [--rate HZ] [--seconds S] [--batch N] [--realtime 1]
// --realtime 1 locks memory (mlockall), pins the loop to CPU 0 and asks for SCHED_FIFO priority
// 80; each step that the system refuses (it needs CAP_SYS_NICE / a memlock limit) is reported
// and the loop runs anyway. Each tick sleeps until its absolute deadline (clock_nanosleep), evaluates the surrogate on a
// batch of points sweeping the training domain, and records how long predict took. At the end
// it prints predict latency percentiles and the ticks whose work ended after the next deadline.
#include <sched.h>
#include <sys/mman.h>
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "kd_edge/solver.hpp"

namespace {

long long now_ns() {
  timespec t{};
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1000000000LL + t.tv_nsec;
}

void sleep_until(long long deadline_ns) {
  timespec t{static_cast<time_t>(deadline_ns / 1000000000LL), static_cast<long>(deadline_ns % 1000000000LL)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, nullptr) != 0) {
  }
}

// Real-time setup for the calling thread; prints what the system refused.
void go_realtime() {
  if (mlockall(MCL_CURRENT | MCL_FUTURE) != 0) std::perror("control_loop: mlockall");
  cpu_set_t cpus;
  CPU_ZERO(&cpus);
  CPU_SET(0, &cpus);
  if (sched_setaffinity(0, sizeof cpus, &cpus) != 0) std::perror("control_loop: sched_setaffinity");
  sched_param param{};
  param.sched_priority = 80;
  if (sched_setscheduler(0, SCHED_FIFO, &param) != 0) std::perror("control_loop: SCHED_FIFO");
}

double percentile(const std::vector<long long>& sorted, double p) {
  return static_cast<double>(sorted[static_cast<std::size_t>(p * static_cast<double>(sorted.size() - 1) + 0.5)]);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: control_loop ARTIFACT_DIR [--rate HZ] [--seconds S] [--batch N] [--realtime 1]\n");
    return 2;
  }
  double rate = 1000, seconds = 5;
  std::size_t batch = 1;
  bool realtime = false;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string key = argv[i];
    const double value = std::atof(argv[i + 1]);
    if (key == "--rate" && value > 0) rate = value;
    else if (key == "--seconds" && value > 0) seconds = value;
    else if (key == "--batch" && value >= 1) batch = static_cast<std::size_t>(value);
    else if (key == "--realtime") realtime = value != 0;
    else {
      std::fprintf(stderr, "control_loop: bad option %s %s\n", argv[i], argv[i + 1]);
      return 2;
    }
  }
  try {
    kd_edge::SolverOptions options;
    options.threads = 1;        // a control loop keeps its work on its own thread
    options.max_batch = batch;  // everything the loop needs is allocated here, before the first tick
    kd_edge::Solver solver(argv[1], options);
    const auto& info = solver.info();
    const std::size_t n_in = solver.n_inputs();
    std::vector<float> in(batch * n_in), out(batch * solver.n_outputs());
    const long long period = static_cast<long long>(1e9 / rate);
    const std::size_t ticks = static_cast<std::size_t>(seconds * rate);
    std::vector<long long> latency(ticks);
    std::size_t misses = 0, flagged = 0;
    if (realtime) go_realtime();

    long long deadline = now_ns() + period;
    for (std::size_t tick = 0; tick < ticks; ++tick) {
      sleep_until(deadline);
      // The state sweeps the domain (or [-1, 1]) so that every tick asks a new question.
      for (std::size_t p = 0; p < batch; ++p) {
        for (std::size_t c = 0; c < n_in; ++c) {
          const double phase = static_cast<double>((tick * 7 + p * 13 + c * 29) % 1000) / 999.0;
          const double lo = info.lower.empty() ? -1.0 : info.lower[c], hi = info.upper.empty() ? 1.0 : info.upper[c];
          in[p * n_in + c] = static_cast<float>(lo + phase * (hi - lo));
        }
      }
      const long long start = now_ns();
      flagged += solver.predict(in.data(), batch, out.data()).out_of_domain;
      const long long end = now_ns();
      latency[tick] = end - start;
      deadline += period;
      if (end > deadline) ++misses;
    }
    std::sort(latency.begin(), latency.end());
    std::printf("control loop: %s, %zu ticks at %.0f Hz, batch %zu%s\n", argv[1], ticks, rate, batch,
                realtime ? ", real-time setup requested" : "");
    std::printf("predict latency: p50 %.2f us, p99 %.2f us, p99.9 %.2f us, max %.2f us\n",
                percentile(latency, 0.50) / 1e3, percentile(latency, 0.99) / 1e3, percentile(latency, 0.999) / 1e3,
                static_cast<double>(latency.back()) / 1e3);
    std::printf("deadline misses: %zu of %zu ticks; points outside the domain: %zu\n", misses, ticks, flagged);
  } catch (const kd_edge::Error& e) {
    std::fprintf(stderr, "control_loop: %s\n", e.what());
    return 1;
  }
  return 0;
}
