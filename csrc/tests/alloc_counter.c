/* Counts heap allocations process-wide and mutex locks per thread, for the "steady state allocates
 * nothing and takes no lock" tests. Linked into test_no_alloc, and LD_PRELOADed under Python.
 * malloc and friends forward to glibc's own entry points; pthread_mutex_lock to the next
 * definition. Not for sanitizer builds (they interpose malloc themselves). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

extern void* __libc_malloc(size_t);
extern void* __libc_calloc(size_t, size_t);
extern void* __libc_realloc(void*, size_t);
extern void* __libc_memalign(size_t, size_t);
extern void __libc_free(void*);

static atomic_size_t allocations;
static atomic_size_t locks;
/* Locks taken by the calling thread: an idle TVM pool worker going to sleep locks a mutex on
 * its own schedule, which says nothing about the caller's predict. */
static _Thread_local size_t thread_locks;

size_t kd_edge_test_allocations(void) { return atomic_load(&allocations); }
size_t kd_edge_test_locks(void) { return atomic_load(&locks); }
size_t kd_edge_test_thread_locks(void) { return thread_locks; }

static void* counted(void* p) {
  atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
  return p;
}

void* malloc(size_t n) { return counted(__libc_malloc(n)); }
void* calloc(size_t count, size_t n) { return counted(__libc_calloc(count, n)); }
void* realloc(void* p, size_t n) { return counted(__libc_realloc(p, n)); }
void* memalign(size_t alignment, size_t n) { return counted(__libc_memalign(alignment, n)); }
void* aligned_alloc(size_t alignment, size_t n) { return counted(__libc_memalign(alignment, n)); }
void* valloc(size_t n) { return counted(__libc_memalign(4096, n)); }
void free(void* p) { __libc_free(p); }

int posix_memalign(void** out, size_t alignment, size_t n) {
  void* p = counted(__libc_memalign(alignment, n));
  if (p == NULL) return ENOMEM;
  *out = p;
  return 0;
}

int pthread_mutex_lock(pthread_mutex_t* mutex) {
  static int (*next)(pthread_mutex_t*);
  if (next == NULL) next = (int (*)(pthread_mutex_t*))dlsym(RTLD_NEXT, "pthread_mutex_lock");
  atomic_fetch_add_explicit(&locks, 1, memory_order_relaxed);
  ++thread_locks;
  return next(mutex);
}
