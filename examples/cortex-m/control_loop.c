/* The Burgers student in a bare-metal control loop (Cortex-M4F), as in the README:
   kd-edge bundle burgers --target cortex-m4f --out m4 && make -C m4/firmware run */
#include "burgers_student.h"
#include "semihost.h" /* the demo's output; a board would drive an actuator instead */

int main(void) {
  kd_edge_static_report report;
  float in[BURGERS_STUDENT_INPUTS], u;
  for (int tick = 0; tick <= 100; tick += 25) { /* a timer interrupt on a real board */
    in[0] = 0.5f;                               /* x: where the sensor sits */
    in[1] = tick * 0.01f;                       /* t: seconds since the start */
    int outside = burgers_student_predict_ex(in, 1, &u, KD_EDGE_STATIC_CLAMP, 1, &report);
    if (outside < 0) return 1; /* NaN/Inf in or out: keep the last command, raise an alarm */
    union { float f; unsigned bits; } v = {u};
    put("u ");
    put_hex(v.bits);
    put(outside ? " (clamped)\n" : "\n");
  }
  return 0;
}
