/* Start-up for Cortex-M boards with semihosting (QEMU's MPS2/MPS3 boards, or a board under a debugger): the vector
 * table, .data and .bss set up, the FPU enabled, newlib's semihosting I/O opened, main() run and its status returned
 * to the host. The heap runs from the end of .bss to __HeapLimit (board.ld), the stack from __StackTop down. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

extern uint32_t __data_load__, __data_start__, __data_end__, __bss_start__, __bss_end__, __StackTop;
extern char end, __HeapLimit;
extern void initialise_monitor_handles(void);
extern void __libc_init_array(void);
extern int main(void);

void _init(void) {}
void _fini(void) {}
/* -nostartfiles leaves out crtbegin.o, which defines this handle for C++ static destructors (__cxa_atexit). */
void* __dso_handle = &__dso_handle;

/* The heap: newlib's malloc grows it here, never into the stack. */
void* _sbrk(ptrdiff_t incr) {
  static char* heap_end = &end;
  if (incr > &__HeapLimit - heap_end) {
    errno = ENOMEM;
    return (void*)-1;
  }
  char* previous = heap_end;
  heap_end += incr;
  return previous;
}

/* Semihosting call (the BKPT 0xAB convention of M-profile cores). */
static int semihost(int op, const void* arg) {
  register int r0 __asm__("r0") = op;
  register const void* r1 __asm__("r1") = arg;
  __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
  return r0;
}

/* A fault ends the run with a message instead of a hang. */
void Fault_Handler(void) {
  static const uint32_t stop[2] = {0x20023u /* ADP_Stopped_InternalError */, 3};
  semihost(0x04 /* SYS_WRITE0 */, "restnet: fault\n");
  semihost(0x18 /* SYS_EXIT */, (const void*)(uintptr_t)stop[0]);
  for (;;) {
  }
}

void Reset_Handler(void) {
  /* CP10 and CP11 full access: the FPU (and MVE on Armv8.1-M) before any floating-point instruction */
  *(volatile uint32_t*)0xE000ED88u |= 0xFu << 20;
  __asm__ volatile("dsb\n\tisb" ::: "memory");
  memcpy(&__data_start__, &__data_load__, (size_t)((char*)&__data_end__ - (char*)&__data_start__));
  memset(&__bss_start__, 0, (size_t)((char*)&__bss_end__ - (char*)&__bss_start__));
  initialise_monitor_handles();
  __libc_init_array();
  exit(main());
}

typedef void (*Handler)(void);
__attribute__((section(".vectors"), used)) const Handler g_vectors[16] = {
    (Handler)&__StackTop, Reset_Handler, Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler,
    Fault_Handler,        0,             0,             0,             0,             Fault_Handler,
    Fault_Handler,        0,             Fault_Handler, Fault_Handler,
};
