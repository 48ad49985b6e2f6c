/* Test firmware: the model on the points of points.h, each output printed as its float's bits;
   then the stack the call used (painted stack), and the SysTick ticks of REPEAT calls against a
   loop of known length (with qemu -icount, ticks count instructions). MODEL and MODEL_HEADER
   come from the command line. */
#include <stddef.h>
#include <stdint.h>

#include "semihost.h"
#include MODEL_HEADER
#include "points.h" /* N_POINTS, N_INPUTS, N_OUTPUTS, points[] */

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define PREDICT CAT(MODEL, _predict)
#ifndef REPEAT
#define REPEAT 20
#endif

static float out[N_POINTS * N_OUTPUTS];
extern uint32_t __stack_low;

#define SYST_CSR (*(volatile uint32_t*)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t*)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t*)0xE000E018u)

static uint32_t ticks_since(uint32_t start) { return (start - SYST_CVR) & 0xFFFFFFu; }

__attribute__((noinline)) static void known_loop(uint32_t n) { /* 2 instructions per turn */
  __asm__ volatile("1: subs %0, %0, #1\n\tbne 1b" : "+r"(n));
}

int main(void) {
  uint32_t* sp;
  uint32_t *p, start, calibration, model;
  int status, r;
  size_t i;
  __asm__ volatile("mov %0, sp" : "=r"(sp));
  for (p = &__stack_low; p < sp - 16; ++p) *p = 0xDEADBEEFu; /* paint the free stack */
  status = PREDICT(points, N_POINTS, out);
  for (p = &__stack_low; *p == 0xDEADBEEFu; ++p) {
  }
  put("status ");
  put_int(status);
  put("\nstack ");
  put_int((int32_t)((uintptr_t)sp - (uintptr_t)p));
  put("\n");
  for (i = 0; i < N_POINTS * N_OUTPUTS; ++i) {
    union { float f; uint32_t u; } bits;
    bits.f = out[i];
    put("out ");
    put_hex(bits.u);
    put("\n");
  }
  SYST_RVR = 0xFFFFFFu;
  SYST_CVR = 0u;
  SYST_CSR = 5u; /* on, processor clock */
  start = SYST_CVR;
  known_loop(100000u);
  calibration = ticks_since(start);
  start = SYST_CVR;
  for (r = 0; r < REPEAT; ++r) PREDICT(points, N_POINTS, out);
  model = ticks_since(start);
  put("ticks ");
  put_int((int32_t)calibration);
  put(" 200000 ");
  put_int((int32_t)model);
  put(" ");
  put_int(REPEAT * N_POINTS);
  put("\n");
  return 0;
}
