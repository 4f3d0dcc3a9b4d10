/* segment.c owns 4 MiB segments: mapping one (header initialised, registered
 * in the segment map), attaching it to an arena, its page map (which pages are
 * metadata, slabs, medium runs or free, and which free pages may hold data),
 * first-fit search for page runs, and unmapping an empty one after the grace
 * period. It never touches user data and never runs a system call while the
 * arena lock is held. */
#include <string.h>

#include "bitmap.h"
#include "detect.h"
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
  tm_detect_table_release(seg);
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
}

tm_segment_t *tm_segment_find_pages(tm_arena_t *arena, size_t pages, size_t align_pages, size_t *first)
{
  for (tm_segment_t *seg = arena->segments; seg; seg = seg->next) {
    if (TM_SEGMENT_PAGES - seg->used_pages < pages) continue;
    size_t hint = seg->free_hint;
    /* The common case: the run fits right at the first free page. */
    if (align_pages == 1 && pages < 64 && hint + pages <= TM_SEGMENT_PAGES && (hint & 63) + pages <= 64 &&
        ((seg->page_used[hint >> 6] >> (hint & 63)) & ((1ull << pages) - 1)) == 0) {
      *first = hint;
      return seg;
    }
    size_t from = hint & ~(align_pages - 1);
    size_t at = tm_bits_find_clear_run(seg->page_used, TM_SEGMENT_PAGES, from, pages, align_pages);
    if (at != SIZE_MAX) {
      *first = at;
      return seg;
    }
  }
  return NULL;
}

/* The bits [first, first + n) that fall in word w. */
static inline uint64_t tm_page_mask(size_t w, size_t first, size_t n)
{
  size_t lo = w * 64 > first ? 0 : first - w * 64;
  size_t end = first + n, hi = end >= w * 64 + 64 ? 64 : end - w * 64;
  return (hi == 64 ? ~0ull : (1ull << hi) - 1) & (~0ull << lo);
}

static inline void tm_take_word(tm_segment_t *seg, size_t w, uint64_t m, uint64_t *dirty)
{
  *dirty |= seg->dirty[w] & m;
  seg->page_used[w] |= m;
  seg->dirty[w] |= m;
  seg->dirty_old[w] &= ~m;
  seg->freed_start[w] &= ~m;
}

/* One pass over the words of the run updates every page bitmap; a run
 * inside one word (most medium blocks, every slab) takes one step. */
void tm_segment_take_pages(tm_segment_t *seg, size_t first, size_t pages, bool *was_clean)
{
  uint64_t dirty = 0;
  size_t w0 = first >> 6, w1 = (first + pages - 1) >> 6;
  if (w0 == w1 && pages < 64) {
    tm_take_word(seg, w0, ((1ull << pages) - 1) << (first & 63), &dirty);
  } else {
    for (size_t w = w0; w <= w1; w++)
      tm_take_word(seg, w, tm_page_mask(w, first, pages), &dirty);
  }
  if (was_clean) *was_clean = dirty == 0;
  seg->used_pages += (uint32_t)pages;
  seg->empty_ticks = 0;
  if (first == seg->free_hint) seg->free_hint = (uint32_t)tm_bits_next(seg->page_used, TM_SEGMENT_PAGES, first, false);
}

void tm_segment_give_pages(tm_segment_t *seg, size_t first, size_t pages)
{
  size_t w0 = first >> 6, w1 = (first + pages - 1) >> 6;
  if (w0 == w1 && pages < 64)
    seg->page_used[w0] &= ~(((1ull << pages) - 1) << (first & 63));
  else
    for (size_t w = w0; w <= w1; w++)
      seg->page_used[w] &= ~tm_page_mask(w, first, pages);
  seg->used_pages -= (uint32_t)pages;
  if (first < seg->free_hint) seg->free_hint = (uint32_t)first;
}
