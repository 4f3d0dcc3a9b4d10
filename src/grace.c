/* grace.c owns the heap registry and the grace period (see grace.h). Why it
 * is enough: a remote free marks its heap's epoch odd before its fetch_or (a
 * full barrier), and touches the slab after the fetch_or only while odd. A
 * segment is unmapped only after every block in it was freed, i.e. after
 * every such fetch_or; whoever unmaps then sees every epoch that was odd at
 * that fetch_or and waits until it moves on. Frees of pointers into a
 * segment that is already empty are program bugs racing with the unmap; they
 * are not covered (see the README's limits). */
#include <errno.h>
#include <sched.h>

#include "grace.h"

_Atomic(tm_heap_t *) tm_heaps;
_Atomic size_t tm_grace_heapless;

void tm_grace_register(tm_heap_t *heap)
{
  heap->next_all = atomic_load_explicit(&tm_heaps, memory_order_relaxed);
  atomic_store_explicit(&tm_heaps, heap, memory_order_release);
}

void tm_grace_wait(void)
{
  int saved = errno;
  atomic_thread_fence(memory_order_seq_cst);
  for (tm_heap_t *heap = tm_heaps_first(); heap; heap = heap->next_all) {
    uint32_t e = atomic_load_explicit(&heap->remote_epoch, memory_order_acquire);
    if (e & 1) {
      while (atomic_load_explicit(&heap->remote_epoch, memory_order_acquire) == e)
        sched_yield();
    }
  }
  while (atomic_load_explicit(&tm_grace_heapless, memory_order_acquire) != 0)
    sched_yield();
  errno = saved;
}
