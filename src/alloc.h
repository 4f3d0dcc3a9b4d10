/* alloc.h: the fast paths of malloc and free, inline so that both the tiny*
 * API (alloc.c) and the exported malloc/free of the override library
 * (override.c) are one call deep. Common case first, and short: a small
 * request of a thread that has a heap, or a free of a block of the thread's
 * own slab; everything else tail-calls a slow path in alloc.c. */
#ifndef TM_ALLOC_H
#define TM_ALLOC_H

#include "heap.h"
#include "options.h"
#include "segmap.h"
#include "sizeclass.h"
#include "slab.h"
#include "track.h"

void *tm_malloc_slow(size_t size) TM_HIDDEN;
void tm_free_slow(void *p) TM_HIDDEN;
void tm_free_owner_slow(tm_heap_t *heap, tm_slab_t *slab) TM_HIDDEN;
void tm_free_small_slow(tm_slab_t *slab, uint32_t index, void *p) TM_HIDDEN;

TM_INLINE void *tm_malloc_inline(size_t size)
{
  tm_heap_t *heap = tm_thread_heap;
  if (TM_LIKELY(heap != NULL && size <= TM_SMALL_MAX - TM_TRACK_REDZONE && TM_FEATURES() == 0)) {
    size_t cls = tm_size_class(size + TM_TRACK_REDZONE);
    tm_slab_t *slab = heap->current[cls];
    void *p;
    if (TM_LIKELY(slab != NULL) && TM_LIKELY(tm_slab_take_fast(slab, &p))) {
      tm_heap_count(heap, cls);
      tm_track_malloc(p, size, tm_class_size[cls], false);
      return p;
    }
  }
  return tm_malloc_slow(size);
}

TM_INLINE void tm_free_inline(void *p)
{
  uintptr_t a = (uintptr_t)p;
  if (TM_LIKELY(tm_segmap_kind(a) == TM_SEG_ARENA)) {
    tm_slab_t *slab = tm_slab_of(a);
    uint32_t offset = (uint32_t)(a & (TM_SLAB_SIZE - 1));
    uint32_t index = tm_slab_index(slab, offset);
    uint32_t size = atomic_load_explicit(&slab->block_size, memory_order_relaxed);
    /* A block start of a carved slab (a released slot has no capacity). */
    if (TM_LIKELY(index * size == offset && index < slab->capacity)) {
      tm_heap_t *heap = tm_thread_heap;
      if (TM_LIKELY(atomic_load_explicit(&slab->owner, memory_order_relaxed) == heap && TM_FEATURES() == 0 &&
                    tm_slab_free_local(slab, index))) {
        tm_track_free(p, size);
        /* The current slab may go empty and stay: only a full one, or an
         * empty one that is not current, needs the slow path. */
        if (TM_UNLIKELY(slab->flags != 0) || (TM_UNLIKELY(slab->used == 0) && slab != heap->current[slab->class_index]))
          tm_free_owner_slow(heap, slab);
        return;
      }
      tm_free_small_slow(slab, index, p);
      return;
    }
  }
  tm_free_slow(p);
}

#endif
