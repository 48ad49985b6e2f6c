/* kd-edge-predict: evaluate an artifact on points from a file, through the C API.
 *   kd-edge-predict ARTIFACT_DIR INPUT.f32 OUTPUT.f32
 * INPUT.f32 holds n_points x n_inputs raw float32 (row-major, the host's byte order);
 * OUTPUT.f32 gets n_points x n_outputs. Exit status 0, or 1 with the runtime's message. */
#include <stdio.h>
#include <stdlib.h>

#include "kd_edge/c_api.h"

static int fail(const char* what, const char* why) {
  fprintf(stderr, "kd-edge-predict: %s%s%s\n", what, why ? ": " : "", why ? why : "");
  return 1;
}

int main(int argc, char** argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: kd-edge-predict ARTIFACT_DIR INPUT.f32 OUTPUT.f32\n");
    return 2;
  }
  kd_edge_solver* solver = NULL;
  if (kd_edge_open(argv[1], &solver) != KD_EDGE_OK) return fail("cannot open the artifact", kd_edge_last_error(NULL));
  const size_t n_in = kd_edge_n_inputs(solver), n_out = kd_edge_n_outputs(solver);

  FILE* f = fopen(argv[2], "rb");
  if (f == NULL) return fail("cannot open the input file", argv[2]);
  fseek(f, 0, SEEK_END);
  const long bytes = ftell(f);
  fseek(f, 0, SEEK_SET);
  if (bytes < 0 || bytes % (long)(n_in * sizeof(float)) != 0) return fail("input size is not a whole number of points", argv[2]);
  const size_t n_points = (size_t)bytes / (n_in * sizeof(float));
  float* in = malloc(n_points * n_in * sizeof(float) + 1);
  float* out = malloc(n_points * n_out * sizeof(float) + 1);
  if (in == NULL || out == NULL) return fail("out of memory", NULL);
  if (fread(in, sizeof(float), n_points * n_in, f) != n_points * n_in) return fail("cannot read", argv[2]);
  fclose(f);

  if (kd_edge_predict(solver, in, n_points, out) != KD_EDGE_OK) return fail("predict failed", kd_edge_last_error(solver));
  f = fopen(argv[3], "wb");
  if (f == NULL || fwrite(out, sizeof(float), n_points * n_out, f) != n_points * n_out) return fail("cannot write", argv[3]);
  fclose(f);
  printf("%zu points, %zu inputs -> %zu outputs\n", n_points, n_in, n_out);
  free(in);
  free(out);
  kd_edge_close(solver);
  return 0;
}
