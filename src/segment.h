/* segment.h: 4 MiB segments and their page maps (segment.c). Mapping and
 * unmapping run without any lock; everything else here runs under the owning
 * arena's lock. None of it touches the contents of a user page. */
#ifndef TM_SEGMENT_H
#define TM_SEGMENT_H

#include "types.h"

TM_INLINE tm_segment_t *tm_segment_of(const void *p)
{
  return (tm_segment_t *)((uintptr_t)p & ~(uintptr_t)TM_SEGMENT_MASK);
}
TM_INLINE size_t tm_page_of(const tm_segment_t *seg, const void *p)
{
  return ((uintptr_t)p - (uintptr_t)seg) >> TM_PAGE_SHIFT;
}
TM_INLINE uint8_t *tm_page_addr(tm_segment_t *seg, size_t page) { return (uint8_t *)seg + (page << TM_PAGE_SHIFT); }
TM_INLINE uint8_t *tm_slab_start(const tm_slab_t *slab) { return (uint8_t *)slab + slab->block0; }
/* The slot descriptor of any address inside an arena segment. */
TM_INLINE tm_slab_t *tm_slab_of(uintptr_t a)
{
  return (tm_slab_t *)((a & ~(uintptr_t)TM_SEGMENT_MASK) + TM_SLABS_OFFSET +
                       ((a >> (TM_SLAB_SHIFT - TM_SLAB_DESC_SHIFT)) & ((TM_SLOTS - 1) << TM_SLAB_DESC_SHIFT)));
}
TM_INLINE bool tm_segment_empty(const tm_segment_t *seg) { return seg->used_pages == seg->meta_pages; }

/* No lock: a fresh segment (header initialised, registered in the segment map,
 * data pages handed to the tracking layer), or NULL with errno = ENOMEM. */
tm_segment_t *tm_segment_map(tm_arena_t *arena) TM_HIDDEN;
/* No lock, the segment already detached: waits for frees in flight (grace),
 * marks it freed in the segment map, unmaps it. */
void tm_segment_unmap(tm_segment_t *seg) TM_HIDDEN;

/* Arena lock held. */
void tm_segment_attach(tm_arena_t *arena, tm_segment_t *seg) TM_HIDDEN;
void tm_segment_detach(tm_segment_t *seg) TM_HIDDEN;
/* Finds `pages` free pages aligned to `align_pages` in the arena's segments. */
tm_segment_t *tm_segment_find_pages(tm_arena_t *arena, size_t pages, size_t align_pages, size_t *first) TM_HIDDEN;
/* Marks pages in use; *was_clean (if asked) tells whether they all read as zero. */
void tm_segment_take_pages(tm_segment_t *seg, size_t first, size_t pages, bool *was_clean) TM_HIDDEN;
void tm_segment_give_pages(tm_segment_t *seg, size_t first, size_t pages) TM_HIDDEN;

#endif
