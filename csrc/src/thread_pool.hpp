// The process-wide pool that runs the fused kernel's parallel entry: the kernel calls
// parallel_launch (through the __TVMBackendParallelLaunch pointer the loader fills in).
#pragma once

#include <cstdint>

namespace kd_edge {

// TVM's C ABI for a parallel region (tvm/runtime/c_backend_api.h).
struct ParallelGroupEnv {
  void* sync_handle;
  int32_t num_task;
};
using ParallelLambda = int (*)(int task_id, ParallelGroupEnv* env, void* cdata);

// Runs flambda(task, env, cdata) for every task of the pool (its size: KD_EDGE_NUM_THREADS, else
// TVM_NUM_THREADS, else the number of CPUs), the caller taking task 0. No allocation and no lock
// per call; a caller that finds the pool busy with another thread's call runs every task itself.
// Returns 0, or -1 if a task failed (its error already reported through the kernel's handler).
extern "C" int kd_edge_parallel_launch(ParallelLambda flambda, void* cdata, int num_task);

// Threads the pool runs a parallel call on, the caller included.
int pool_size();

}  // namespace kd_edge
