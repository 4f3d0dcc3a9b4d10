/* segment.c owns 4 MiB segments: mapping one (header initialised, registered
 * in the segment map), attaching it to an arena, its page map (which pages are
 * metadata, slabs, medium runs or free, and which free pages may hold data),
 * first-fit search for page runs, and unmapping an empty one after the grace
 * period. It never touches user data and never runs a system call while the
 * arena lock is held. */
#include <string.h>

#include "bitmap.h"
#include "grace.h"
#include "os.h"
#include "segment.h"
#include "segmap.h"
#include "track.h"

_Static_assert(TM_META_PAGES < 3 * TM_SLAB_PAGES, "segment header larger than three slab slots");

tm_segment_t *tm_segment_map(tm_arena_t *arena)
{
  tm_segment_t *seg = tm_os_map_aligned(TM_SEGMENT_SIZE, TM_SEGMENT_SIZE);
  if (seg == NULL) return NULL;
  /* Fresh anonymous memory is zero: only the non-zero fields are written. */
  seg->arena = arena;
  seg->meta_pages = (uint32_t)TM_META_PAGES;
  seg->used_pages = seg->meta_pages;
  seg->free_hint = seg->meta_pages;
  tm_bits_set(seg->page_used, 0, seg->meta_pages);
  tm_bits_set(seg->dirty, 0, seg->meta_pages);
  for (size_t slot = 0; slot < TM_SLOTS; slot++) {
    seg->slabs[slot].slot = (uint8_t)slot;
    seg->slabs[slot].block0 = (uint32_t)((slot << TM_SLAB_SHIFT) - TM_SLABS_OFFSET - slot * TM_SLAB_DESC_SIZE);
  }
  /* The data pages only: the header pages are never poisoned. */
  tm_track_os_map(tm_page_addr(seg, TM_META_PAGES), TM_SEGMENT_SIZE - TM_META_PAGES * TM_PAGE_SIZE);
  tm_segmap_set((uintptr_t)seg, TM_SEGMENT_SIZE, TM_SEG_ARENA, TM_SEG_ARENA);
  return seg;
}

void tm_segment_unmap(tm_segment_t *seg)
{
  /* FREED, not NONE: a later free of a pointer into it is named a stale free. */
  tm_segmap_set((uintptr_t)seg, TM_SEGMENT_SIZE, TM_SEG_FREED, TM_SEG_FREED);
  tm_grace_wait();
  tm_os_unmap(seg, TM_SEGMENT_SIZE);
}

void tm_segment_attach(tm_arena_t *arena, tm_segment_t *seg)
{
  seg->arena = arena;
  seg->prev = NULL;
  seg->next = arena->segments;
  if (arena->segments) arena->segments->prev = seg;
  arena->segments = seg;
  atomic_fetch_add_explicit(&arena->segment_count, 1, memory_order_relaxed);
  arena->dirty_pages += tm_bits_count(seg->dirty, 0, TM_SEGMENT_PAGES) - seg->used_pages;
}

void tm_segment_detach(tm_segment_t *seg)
{
  tm_arena_t *arena = seg->arena;
  if (seg->prev)
    seg->prev->next = seg->next;
  else
    arena->segments = seg->next;
  if (seg->next) seg->next->prev = seg->prev;
  seg->next = seg->prev = NULL;
  atomic_fetch_sub_explicit(&arena->segment_count, 1, memory_order_relaxed);
  size_t dirty_free = 0;
  for (size_t w = 0; w < TM_PAGE_WORDS; w++)
    dirty_free += (size_t)__builtin_popcountll(seg->dirty[w] & ~seg->page_used[w]);
  arena->dirty_pages -= dirty_free;
}

tm_segment_t *tm_segment_find_pages(tm_arena_t *arena, size_t pages, size_t align_pages, size_t *first)
{
  for (tm_segment_t *seg = arena->segments; seg; seg = seg->next) {
    if (TM_SEGMENT_PAGES - seg->used_pages < pages) continue;
    size_t from = seg->free_hint & ~(align_pages - 1);
    size_t at = tm_bits_find_clear_run(seg->page_used, TM_SEGMENT_PAGES, from, pages, align_pages);
    if (at != SIZE_MAX) {
      *first = at;
      return seg;
    }
  }
  return NULL;
}

void tm_segment_take_pages(tm_segment_t *seg, size_t first, size_t pages, bool *was_clean)
{
  size_t dirty = tm_bits_count(seg->dirty, first, pages);
  if (was_clean) *was_clean = dirty == 0;
  seg->arena->dirty_pages -= dirty;
  tm_bits_set(seg->page_used, first, pages);
  tm_bits_set(seg->dirty, first, pages);
  tm_bits_clear(seg->dirty_old, first, pages);
  tm_bits_clear(seg->freed_start, first, pages);
  seg->used_pages += (uint32_t)pages;
  seg->empty_ticks = 0;
  if (first == seg->free_hint) seg->free_hint = (uint32_t)tm_bits_next(seg->page_used, TM_SEGMENT_PAGES, first, false);
}

void tm_segment_give_pages(tm_segment_t *seg, size_t first, size_t pages)
{
  tm_bits_clear(seg->page_used, first, pages);
  seg->used_pages -= (uint32_t)pages;
  seg->arena->dirty_pages += pages;
  if (first < seg->free_hint) seg->free_hint = (uint32_t)first;
}
