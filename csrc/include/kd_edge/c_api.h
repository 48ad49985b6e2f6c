/* kd-edge C API. No function throws or exits the process; each returns a status code.
 *
 * Ownership: kd_edge_open hands the caller a solver it must release with kd_edge_close.
 * Threads: a solver is used by one thread at a time; distinct solvers are independent.
 * Shapes: in is n_points x n_inputs, out is n_points x n_outputs, float32, row-major. */
#ifndef KD_EDGE_C_API_H_
#define KD_EDGE_C_API_H_

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kd_edge_solver kd_edge_solver;

typedef enum {
  KD_EDGE_OK = 0,
  KD_EDGE_ERR_NOT_FOUND = 1,        /* artifact directory or file missing */
  KD_EDGE_ERR_INVALID_ARTIFACT = 2, /* bad manifest, checksum mismatch, incompatible host */
  KD_EDGE_ERR_INVALID_INPUT = 3,    /* null pointer or bad argument */
  KD_EDGE_ERR_RUNTIME = 4,          /* the compiled code failed */
} kd_edge_status;

/* Opens the artifact directory; on success *out is a new solver, on failure *out is NULL
 * and kd_edge_last_error(NULL) says why. */
kd_edge_status kd_edge_open(const char* artifact_dir, kd_edge_solver** out);

/* Fills out (n_points x n_outputs) from in (n_points x n_inputs). */
kd_edge_status kd_edge_predict(kd_edge_solver* solver, const float* in, size_t n_points,
                               float* out);

size_t kd_edge_n_inputs(const kd_edge_solver* solver);
size_t kd_edge_n_outputs(const kd_edge_solver* solver);

/* Message of the last failed call on this solver, or, with NULL, of the last failed
 * kd_edge_open on this thread. Empty string if none. Valid until the next call. */
const char* kd_edge_last_error(const kd_edge_solver* solver);

/* Releases the solver; NULL is ignored. */
void kd_edge_close(kd_edge_solver* solver);

#ifdef __cplusplus
}
#endif

#endif /* KD_EDGE_C_API_H_ */
