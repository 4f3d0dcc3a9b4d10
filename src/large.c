/* large.c owns large blocks (over 1 MiB, or aligned beyond what a segment
 * can offer): each is its own mapping, aligned to max(segment, alignment),
 * with an out-of-band header in its first page and the block at
 * base + max(page, alignment). Registered in the segment map, listed in the
 * arena (under its lock), unmapped on free. Never reads the block. */
#include <errno.h>

#include "internal.h"
#include "track.h"

void *tm_large_alloc(size_t size, size_t alignment)
{
  if (size > TM_MAX_REQUEST || alignment > TM_MAX_REQUEST) {
    errno = ENOMEM;
    return NULL;
  }
  size_t offset = alignment > TM_PAGE_SIZE ? alignment : TM_PAGE_SIZE;
  size_t usable = (size + TM_PAGE_SIZE - 1) & ~(TM_PAGE_SIZE - 1);
  if (usable > TM_MAX_REQUEST - offset) {
    errno = ENOMEM;
    return NULL;
  }
  size_t map_size = offset + usable;
  size_t map_align = alignment > TM_SEGMENT_SIZE ? alignment : TM_SEGMENT_SIZE;
  uint8_t *base = tm_os_map_aligned(map_size, map_align);
  if (base == NULL) return NULL;
  tm_large_t *large = (tm_large_t *)(void *)base; /* page-aligned */
  large->magic = TM_LARGE_MAGIC;
  large->base = base;
  large->map_size = map_size;
  large->user_offset = offset;
  large->usable = usable;
  atomic_store_explicit(&large->live, 1, memory_order_relaxed);
  tm_arena_t *arena = tm_heap_get() ? tm_thread_heap->arena : &tm_arenas[0];
  large->arena = arena;
  pthread_mutex_lock(&arena->lock);
  large->prev = NULL;
  large->next = arena->large;
  if (arena->large) arena->large->prev = large;
  arena->large = large;
  arena->large_live++;
  pthread_mutex_unlock(&arena->lock);
  tm_segmap_set((uintptr_t)base, map_size, TM_SEG_LARGE_HEAD, TM_SEG_LARGE_BODY);
  tm_track_os_map(base + offset, usable); /* not the header page */
  return base + offset;
}

/* The header of the large block `p` starts, or NULL after reporting why `p`
 * is not one. The segment map is consulted before any header is read. */
tm_large_t *tm_large_find(const void *p, const char *op)
{
  uintptr_t seg = (uintptr_t)p & ~(uintptr_t)TM_SEGMENT_MASK;
  /* A body segment: walk back to the head (only blocks aligned to a segment
   * or more start outside their head segment). */
  while (tm_segmap_kind(seg) == TM_SEG_LARGE_BODY)
    seg -= TM_SEGMENT_SIZE;
  if (tm_segmap_kind(seg) != TM_SEG_LARGE_HEAD) {
    tm_report(TINYMALLOC_ERROR_INVALID_FREE, op, p, "not allocated by tinymalloc", 0, NULL);
    return NULL;
  }
  tm_large_t *large = (tm_large_t *)seg;
  uint8_t *user = tm_large_user(large);
  if (user != p) {
    if ((const uint8_t *)p >= user && (const uint8_t *)p < user + large->usable)
      tm_report(TINYMALLOC_ERROR_INTERIOR, op, p, NULL, large->usable, user);
    else
      tm_report(TINYMALLOC_ERROR_INVALID_FREE, op, p, "points into tinymalloc metadata", 0, NULL);
    return NULL;
  }
  return large;
}

void tm_large_free(void *p, const char *op)
{
  tm_large_t *large = tm_large_find(p, op);
  if (large == NULL) return;
  /* Two threads freeing the same block: exactly one wins the claim. */
  if (atomic_exchange_explicit(&large->live, 0, memory_order_acq_rel) == 0) {
    tm_report(TINYMALLOC_ERROR_DOUBLE_FREE, op, p, NULL, large->usable, NULL);
    return;
  }
  size_t usable = large->usable;
  if (TM_OPTION(junk)) tm_junk_fill(p, usable);
  tm_track_free(p, usable);
  tm_arena_t *arena = large->arena;
  pthread_mutex_lock(&arena->lock);
  if (large->prev)
    large->prev->next = large->next;
  else
    arena->large = large->next;
  if (large->next) large->next->prev = large->prev;
  arena->large_live--;
  pthread_mutex_unlock(&arena->lock);
  tm_segmap_set((uintptr_t)large->base, large->map_size, TM_SEG_FREED_LARGE, TM_SEG_FREED_LARGE);
  tm_os_unmap(large->base, large->map_size);
  tm_heap_t *heap = tm_heap_get();
  if (heap) {
    tm_counter_add(&heap->big_frees[1], 1);
    tm_counter_add(&heap->big_free_bytes[1], usable);
  }
}

/* Shrinks by unmapping the tail, grows with mremap without moving. */
bool tm_large_resize_in_place(tm_large_t *large, size_t new_size)
{
  size_t usable = (new_size + TM_PAGE_SIZE - 1) & ~(TM_PAGE_SIZE - 1);
  size_t offset = large->user_offset;
  size_t new_map = offset + usable;
  if (usable == large->usable) return true;
  if (usable < large->usable) {
    uint8_t *tail = large->base + new_map;
    size_t tail_size = large->map_size - new_map;
    tm_os_unmap(tail, tail_size);
    /* Segments wholly past the new end are no longer ours. */
    uintptr_t keep_end = ((uintptr_t)tail + TM_SEGMENT_MASK) & ~(uintptr_t)TM_SEGMENT_MASK;
    uintptr_t old_end = (uintptr_t)large->base + large->map_size;
    if (old_end > keep_end) tm_segmap_set(keep_end, old_end - keep_end, TM_SEG_FREED_LARGE, TM_SEG_FREED_LARGE);
  } else {
    if (usable > TM_MAX_REQUEST - offset) return false;
    if (!tm_os_grow_in_place(large->base, large->map_size, new_map)) return false;
    tm_segmap_set((uintptr_t)large->base, new_map, TM_SEG_LARGE_HEAD, TM_SEG_LARGE_BODY);
  }
  tm_heap_t *heap = tm_heap_get();
  if (heap) {
    tm_counter_add(&heap->big_free_bytes[1], large->usable);
    tm_counter_add(&heap->big_alloc_bytes[1], usable);
  }
  large->map_size = new_map;
  large->usable = usable;
  return true;
}
