/* heap.h: thread heaps (heap.c). A thread allocates small blocks from its own
 * heap without locks; its first allocation creates the heap, its exit hands
 * the heap's slabs to the arenas. A free never creates a heap. */
#ifndef TM_HEAP_H
#define TM_HEAP_H

#include "error.h"
#include "lock.h"
#include "types.h"

/* The calling thread's heap (NULL until its first allocation). The only
 * initial-exec TLS of the library: one pointer, so that a late dlopen works. */
extern __thread tm_heap_t *tm_thread_heap __attribute__((tls_model("initial-exec"))) TM_HIDDEN;

/* A thread whose heap was torn down (its TSD destructor ran) points here: no
 * slab is ever owned by it, so its frees take the remote path, and its
 * allocations are served from a shared heap under a lock. */
extern tm_heap_t tm_dead_heap TM_HIDDEN;

/* The calling thread's heap, created on first use: NULL with errno = ENOMEM
 * when no memory can be mapped. May return &tm_dead_heap. */
tm_heap_t *tm_heap_get_slow(void) TM_HIDDEN;
TM_INLINE tm_heap_t *tm_heap_get(void)
{
  tm_heap_t *heap = tm_thread_heap;
  return TM_LIKELY(heap != NULL) ? heap : tm_heap_get_slow();
}
/* The arena for a heap's medium and large blocks (the dead-thread sentinel
 * carries the shared heap's: heap.c keeps the two equal). */
TM_INLINE tm_arena_t *tm_heap_arena(tm_heap_t *heap) { return heap->arena; }

/* Owner only: one more allocation of class `cls` (the statistics' allocs). */
TM_INLINE void tm_heap_count(tm_heap_t *heap, size_t cls)
{
  _Atomic size_t *c = &heap->allocs[cls];
  atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1, memory_order_relaxed);
}

/* A block of class `cls` when the current slab had none (or
 * there is no current slab); NULL with errno = ENOMEM. Faults found on the
 * way (racing frees) are added to `faults`, to report with no lock held. */
void *tm_heap_alloc_slow(tm_heap_t *heap, unsigned cls, tm_faults_t *faults) TM_HIDDEN;
/* Owner, after a local free left the slab empty or found it full. */
void tm_heap_free_slow(tm_heap_t *heap, tm_slab_t *slab, tm_faults_t *faults) TM_HIDDEN;
/* Gives every empty slab of the heap back to the arenas (trim). */
void tm_heap_trim(tm_heap_t *heap, tm_faults_t *faults) TM_HIDDEN;
/* The "arenas" option: settable until the first heap exists. */
int tm_heap_set_arena_count(uint32_t count) TM_HIDDEN;
/* Fork child, before the arenas adopt orphaned slabs: heaps of vanished
 * threads are retired, the pool and the shared heap are made usable. */
void tm_heap_fork_child(void) TM_HIDDEN;
/* Fork child, after: the caller's heap watches its full slabs again and
 * leaves a lost arena. */
void tm_heap_fork_child_finish(void) TM_HIDDEN;
/* The pool lock (statistics walk the registry under it). */
void tm_heap_pool_lock(void) TM_HIDDEN;
void tm_heap_pool_unlock(void) TM_HIDDEN;

#endif
