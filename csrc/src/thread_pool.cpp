#include "thread_pool.hpp"

#include <atomic>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace kd_edge {
namespace {

// Workers wait on a generation counter: spinning briefly (a control loop's next batch is often
// microseconds away), then sleeping in the kernel (futex) so an idle pool costs no CPU.
void futex_wait(std::atomic<uint32_t>* word, uint32_t seen) {
#if defined(__linux__)
  ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT_PRIVATE, seen, nullptr, nullptr, 0);
#else
  std::this_thread::yield();
#endif
}

void futex_wake_all(std::atomic<uint32_t>* word) {
#if defined(__linux__)
  ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE_PRIVATE, INT32_MAX, nullptr, nullptr, 0);
#endif
}

inline void cpu_relax() {
#if defined(__x86_64__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

int configured_size() {
  for (const char* name : {"KD_EDGE_NUM_THREADS", "TVM_NUM_THREADS"}) {
    const char* text = std::getenv(name);
    if (text != nullptr && *text) {
      const int n = std::atoi(text);
      if (n >= 1) return n < 256 ? n : 256;
    }
  }
  const unsigned cpus = std::thread::hardware_concurrency();
  return cpus >= 1 ? static_cast<int>(cpus) : 1;
}

class Pool {
 public:
  explicit Pool(int size) : size_(size) {
    for (int id = 1; id < size_; ++id) workers_.emplace_back([this, id] { work(id); });
  }
  ~Pool() {
    stop_.store(true, std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
    futex_wake_all(&generation_);
    for (auto& t : workers_) t.join();
  }
  int size() const { return size_; }

  int launch(ParallelLambda flambda, void* cdata) {
    uint32_t idle = 0;
    if (size_ == 1 || !busy_.compare_exchange_strong(idle, 1, std::memory_order_acquire)) {
      ParallelGroupEnv env{nullptr, size_};  // pool busy (or no workers): every task here, in turn
      int rc = 0;
      for (int task = 0; task < size_; ++task) rc |= flambda(task, &env, cdata);
      return rc == 0 ? 0 : -1;
    }
    flambda_ = flambda;
    cdata_ = cdata;
    env_ = ParallelGroupEnv{nullptr, size_};
    failed_.store(false, std::memory_order_relaxed);
    pending_.store(size_ - 1, std::memory_order_relaxed);
    // seq_cst on both sides (generation_ then sleepers_ here, sleepers_ then generation_ in a
    // worker): either the worker sees the new generation or this call sees it asleep.
    generation_.fetch_add(1);
    if (sleepers_.load() > 0) futex_wake_all(&generation_);
    if (flambda(0, &env_, cdata) != 0) failed_.store(true, std::memory_order_relaxed);
    while (pending_.load(std::memory_order_acquire) != 0) cpu_relax();
    const bool failed = failed_.load(std::memory_order_relaxed);
    busy_.store(0, std::memory_order_release);
    return failed ? -1 : 0;
  }

 private:
  void work(int id) {
    uint32_t seen = 0;  // the generation at construction: a call made before this thread starts still counts
    for (;;) {
      uint32_t now = seen;
      for (int spin = 0; spin < (1 << 14) && (now = generation_.load(std::memory_order_acquire)) == seen; ++spin)
        cpu_relax();
      while (now == seen) {
        sleepers_.fetch_add(1);
        if ((now = generation_.load()) == seen) futex_wait(&generation_, seen);
        sleepers_.fetch_sub(1);
        now = generation_.load(std::memory_order_acquire);
      }
      seen = now;
      if (stop_.load(std::memory_order_relaxed)) return;
      if (flambda_(id, &env_, cdata_) != 0) failed_.store(true, std::memory_order_relaxed);
      pending_.fetch_sub(1, std::memory_order_acq_rel);
    }
  }

  const int size_;
  std::vector<std::thread> workers_;
  std::atomic<uint32_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<int> sleepers_{0};
  std::atomic<uint32_t> busy_{0};  // word-sized: RISC-V has no one-byte compare-and-swap without libatomic
  std::atomic<bool> failed_{false}, stop_{false};
  // The current call; written before generation_'s release increment, read after its acquire.
  ParallelLambda flambda_ = nullptr;
  void* cdata_ = nullptr;
  ParallelGroupEnv env_{nullptr, 1};
};

Pool& pool() {
  static Pool instance(configured_size());
  return instance;
}

}  // namespace

extern "C" int kd_edge_parallel_launch(ParallelLambda flambda, void* cdata, int /*num_task: the pool decides*/) {
  return pool().launch(flambda, cdata);
}

int pool_size() { return pool().size(); }

}  // namespace kd_edge
