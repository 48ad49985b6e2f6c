/* Minimal Cortex-M start-up: vector table, .data/.bss set-up, FPU on, main(), exit through
   semihosting with main's status. */
#include <stdint.h>

#include "semihost.h"

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;
int main(void);

/* no loop-to-memcpy/memset rewriting: there is no C library to call */
__attribute__((optimize("no-tree-loop-distribute-patterns"))) void reset_handler(void) {
  uint32_t *src = &_sidata, *dst = &_sdata;
  while (dst < &_edata) *dst++ = *src++;
  for (dst = &_sbss; dst < &_ebss; ++dst) *dst = 0;
  *(volatile uint32_t*)0xE000ED88u |= 0xFu << 20; /* CPACR: full access to CP10 and CP11 (the FPU) */
  __asm__ volatile("dsb\n\tisb" ::: "memory");
  semihost_exit(main());
}

static void fault_handler(void) {
  put("fault\n");
  semihost_exit(1);
}

__attribute__((section(".vectors"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void))(&_estack), reset_handler, fault_handler, fault_handler, fault_handler, fault_handler,
    fault_handler, 0, 0, 0, 0, fault_handler, fault_handler, 0, fault_handler, fault_handler,
};
