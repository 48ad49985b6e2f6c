/* Output and exit through Arm semihosting (qemu -semihosting-config enable=on): no UART driver,
   no libc. */
#ifndef KD_EDGE_SEMIHOST_H_
#define KD_EDGE_SEMIHOST_H_
#include <stdint.h>

static inline int semihost_call(int op, const void* arg) {
  register int r0 __asm__("r0") = op;
  register const void* r1 __asm__("r1") = arg;
  __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
  return r0;
}

static inline void put(const char* s) { semihost_call(0x04, s); } /* SYS_WRITE0 */

static inline void put_hex(uint32_t v) {
  char s[9];
  int i;
  for (i = 7; i >= 0; --i, v >>= 4) s[i] = "0123456789abcdef"[v & 15u];
  s[8] = 0;
  put(s);
}

static inline void put_int(int32_t v) {
  char s[12];
  int i = 11;
  uint32_t u = v < 0 ? 0u - (uint32_t)v : (uint32_t)v;
  s[i] = 0;
  do s[--i] = (char)('0' + u % 10u); while ((u /= 10u) != 0u);
  if (v < 0) s[--i] = '-';
  put(s + i);
}

/* SYS_EXIT: qemu exits with 0 for ADP_Stopped_ApplicationExit, 1 for anything else */
static inline void semihost_exit(int status) {
  semihost_call(0x18, (const void*)(uintptr_t)(status == 0 ? 0x20026 : 0x20024));
  for (;;) {
  }
}
#endif
