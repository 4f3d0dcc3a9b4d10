/* grace.h: the registry of every heap ever made, and the grace period that
 * lets a segment be unmapped while other threads may still be inside a free
 * of a block that was in it (grace.c). A thread marks itself inside such a
 * free before the read-modify-write that publishes it (its own heap's epoch
 * turns odd), and clears the mark when it will not touch the slab again. */
#ifndef TM_GRACE_H
#define TM_GRACE_H

#include "types.h"

extern _Atomic(tm_heap_t *) tm_heaps TM_HIDDEN;         /* newest first, linked by next_all */
extern _Atomic size_t tm_grace_heapless TM_HIDDEN;      /* frees in flight from threads without a heap */

/* Adds a new heap to the registry (the caller serialises calls). */
void tm_grace_register(tm_heap_t *heap) TM_HIDDEN;
/* Returns once every free that was in flight when it was called has left. */
void tm_grace_wait(void) TM_HIDDEN;

/* `me` is the caller's own heap, or NULL for a thread without one. */
TM_INLINE void tm_grace_enter(tm_heap_t *me)
{
  if (me) {
    uint32_t e = atomic_load_explicit(&me->remote_epoch, memory_order_relaxed);
    atomic_store_explicit(&me->remote_epoch, e + 1, memory_order_relaxed);
  } else {
    atomic_fetch_add_explicit(&tm_grace_heapless, 1, memory_order_seq_cst);
  }
}

TM_INLINE void tm_grace_exit(tm_heap_t *me)
{
  if (me) {
    uint32_t e = atomic_load_explicit(&me->remote_epoch, memory_order_relaxed);
    atomic_store_explicit(&me->remote_epoch, e + 1, memory_order_release);
  } else {
    atomic_fetch_sub_explicit(&tm_grace_heapless, 1, memory_order_release);
  }
}

TM_INLINE tm_heap_t *tm_heaps_first(void) { return atomic_load_explicit(&tm_heaps, memory_order_acquire); }

#endif
