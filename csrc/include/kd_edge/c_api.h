/* kd-edge C API. No function throws, aborts or exits the process; each returns a status code.
 *
 * Ownership: kd_edge_open / kd_edge_open_artifact hand the caller a solver it must release
 * with kd_edge_close; kd_edge_artifact_load hands an artifact released by
 * kd_edge_artifact_close. A solver keeps its artifact alive, so an artifact may be closed
 * while solvers made from it are still in use.
 * Threads: a solver is used by one thread at a time; distinct solvers are independent and
 * may run concurrently, including solvers made from one shared artifact (load once, then
 * one solver per thread). An artifact may be shared by any number of threads. A
 * kd_edge_predict that overlaps another thread's call on the same solver returns
 * KD_EDGE_ERR_BUSY and does nothing (detected, not waited for).
 * Memory: after kd_edge_open*, kd_edge_predict on batches up to max_batch points allocates
 * nothing and takes no lock (fused artifacts, the kind every dense-chain model compiles to).
 * Shapes: in is n_points x n_inputs, out is n_points x n_outputs, float32, row-major.
 * Trust: loading an artifact runs native code from its library; load only artifacts you trust. */
#ifndef KD_EDGE_C_API_H_
#define KD_EDGE_C_API_H_

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kd_edge_solver kd_edge_solver;
typedef struct kd_edge_artifact kd_edge_artifact;

typedef enum {
  KD_EDGE_OK = 0,
  KD_EDGE_ERR_NOT_FOUND = 1,        /* artifact directory or file missing */
  KD_EDGE_ERR_INVALID_ARTIFACT = 2, /* bad manifest, checksum mismatch, incompatible host */
  KD_EDGE_ERR_INVALID_INPUT = 3,    /* null pointer, bad argument, NaN/Inf input, point outside
                                       the domain under KD_EDGE_DOMAIN_REJECT */
  KD_EDGE_ERR_RUNTIME = 4,          /* the compiled code failed or wrote a non-finite output */
  KD_EDGE_ERR_BUSY = 5,             /* another thread is inside a call on this solver: the call did
                                       nothing and left the solver's last error and report as they
                                       were (use one solver per thread) */
} kd_edge_status;

/* Points outside the training domain: computed and counted, clamped into it and counted,
 * or refused. KD_EDGE_DOMAIN_DEFAULT takes the artifact's manifest default. */
typedef enum {
  KD_EDGE_DOMAIN_DEFAULT = -1,
  KD_EDGE_DOMAIN_FLAG = 0,
  KD_EDGE_DOMAIN_CLAMP = 1,
  KD_EDGE_DOMAIN_REJECT = 2,
} kd_edge_domain_policy;

/* A point whose PDE residual (an artifact compiled with residual=True) is over the threshold its
 * manifest records: not screened, counted, or the call refused (KD_EDGE_ERR_RUNTIME). */
typedef enum {
  KD_EDGE_RESIDUAL_OFF = 0,
  KD_EDGE_RESIDUAL_FLAG = 1,
  KD_EDGE_RESIDUAL_REJECT = 2,
} kd_edge_residual_policy;

typedef struct {
  int threads;           /* 1: calling thread only; 0: the pool for large batches */
  size_t max_batch;      /* scratch prepared for this many points; 0: grow on first use */
  int domain_policy;     /* a kd_edge_domain_policy */
  int check_outputs;     /* 1: refuse non-finite outputs; 0: don't check; -1: manifest default */
  int residual_policy;   /* a kd_edge_residual_policy */
} kd_edge_options;

/* Options equal to the defaults: threads 0, max_batch 0, manifest defaults. */
kd_edge_options kd_edge_default_options(void);

/* Opens the artifact directory with default options; on success *out is a new solver, on
 * failure *out is NULL and kd_edge_last_error(NULL) says why. */
kd_edge_status kd_edge_open(const char* artifact_dir, kd_edge_solver** out);

/* As kd_edge_open, with options (NULL: defaults). */
kd_edge_status kd_edge_open_with(const char* artifact_dir, const kd_edge_options* options,
                                 kd_edge_solver** out);

/* Loads an artifact once to make many solvers from it; errors as kd_edge_open. */
kd_edge_status kd_edge_artifact_load(const char* artifact_dir, kd_edge_artifact** out);
kd_edge_status kd_edge_open_artifact(const kd_edge_artifact* artifact, const kd_edge_options* options,
                                     kd_edge_solver** out);
/* Releases the caller's reference; NULL is ignored. */
void kd_edge_artifact_close(kd_edge_artifact* artifact);

/* Fills out (n_points x n_outputs) from in (n_points x n_inputs). On an error, out may be
 * partly written. */
kd_edge_status kd_edge_predict(kd_edge_solver* solver, const float* in, size_t n_points,
                               float* out);

/* Points of the last successful kd_edge_predict that lay outside the training domain
 * (flagged or clamped); if first is not NULL and the count is not 0, *first is the index
 * of the first one. 0 for a NULL solver. */
size_t kd_edge_out_of_domain(const kd_edge_solver* solver, size_t* first);

/* Points of the last successful kd_edge_predict whose residual was over the threshold
 * (KD_EDGE_RESIDUAL_FLAG); *first as for kd_edge_out_of_domain. 0 for a NULL solver. */
size_t kd_edge_residual_exceeded(const kd_edge_solver* solver, size_t* first);

size_t kd_edge_n_inputs(const kd_edge_solver* solver);
size_t kd_edge_n_outputs(const kd_edge_solver* solver);

/* Message of the last failed call on this solver, or, with NULL, of the last failed call on this
 * thread that had no solver to hold it (kd_edge_open*, kd_edge_artifact_load, kd_edge_predict
 * with a NULL solver). Empty string if none. Valid until the next call on the same solver (or thread). */
const char* kd_edge_last_error(const kd_edge_solver* solver);

/* Releases the solver; NULL is ignored. */
void kd_edge_close(kd_edge_solver* solver);

#ifdef __cplusplus
}
#endif

#endif /* KD_EDGE_C_API_H_ */
