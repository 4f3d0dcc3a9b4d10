/* segment.c owns 4 MiB segments: creating one (mapped, registered in the
 * segment map, header initialised), its page map (which pages are metadata,
 * slabs or medium runs), purging its free dirty pages, and destroying it.
 * Every function here runs under the owning arena's lock; none touches the
 * contents of a user page. */
#include <string.h>

#include "internal.h"
#include "track.h"

tm_segment_t *tm_segment_create(tm_arena_t *arena)
{
  tm_segment_t *seg = tm_os_map_aligned(TM_SEGMENT_SIZE, TM_SEGMENT_SIZE);
  if (seg == NULL) return NULL;
  /* Fresh anonymous memory is zero: only the non-zero fields are written. */
  seg->arena = arena;
  seg->meta_pages = (uint32_t)TM_META_PAGES;
  seg->used_pages = seg->meta_pages;
  tm_bits_set(seg->page_used, 0, seg->meta_pages);
  tm_bits_set(seg->page_dirty, 0, seg->meta_pages);
  seg->next = arena->segments;
  seg->prev = NULL;
  if (arena->segments) arena->segments->prev = seg;
  arena->segments = seg;
  arena->segment_count++;
  tm_segmap_set((uintptr_t)seg, TM_SEGMENT_SIZE, TM_SEG_ARENA, TM_SEG_ARENA);
  /* The data pages only: the header pages are never poisoned. */
  tm_track_os_map((uint8_t *)seg + TM_META_PAGES * TM_PAGE_SIZE, TM_SEGMENT_SIZE - TM_META_PAGES * TM_PAGE_SIZE);
  return seg;
}

void tm_segment_destroy(tm_segment_t *seg)
{
  tm_arena_t *arena = seg->arena;
  if (seg->prev)
    seg->prev->next = seg->next;
  else
    arena->segments = seg->next;
  if (seg->next) seg->next->prev = seg->prev;
  arena->segment_count--;
  size_t dirty = 0;
  for (size_t w = 0; w < TM_PAGE_WORDS; w++)
    dirty += (size_t)__builtin_popcountll(seg->page_dirty[w] & ~seg->page_used[w]);
  arena->dirty_pages -= dirty;
  /* FREED, not NONE: a later free of a pointer into it is named a double free. */
  tm_segmap_set((uintptr_t)seg, TM_SEGMENT_SIZE, TM_SEG_FREED, TM_SEG_FREED);
  tm_os_unmap(seg, TM_SEGMENT_SIZE);
}

size_t tm_segment_find_run(tm_segment_t *seg, size_t pages, size_t align_pages)
{
  if (TM_SEGMENT_PAGES - seg->used_pages < pages) return SIZE_MAX;
  return tm_bits_find_clear_run(seg->page_used, TM_SEGMENT_PAGES, pages, align_pages);
}

/* Marks pages in use; *was_clean tells whether they all read as zero. */
void tm_segment_take_pages(tm_segment_t *seg, size_t first, size_t pages, bool *was_clean)
{
  size_t dirty = 0;
  for (size_t i = first; i < first + pages; i++)
    dirty += tm_bit_get(seg->page_dirty, i);
  if (was_clean) *was_clean = dirty == 0;
  seg->arena->dirty_pages -= dirty;
  tm_bits_set(seg->page_used, first, pages);
  tm_bits_set(seg->page_dirty, first, pages);
  tm_bits_clear(seg->freed_start, first, pages);
  seg->used_pages += (uint32_t)pages;
}

void tm_segment_give_pages(tm_segment_t *seg, size_t first, size_t pages)
{
  tm_bits_clear(seg->page_used, first, pages);
  seg->used_pages -= (uint32_t)pages;
  seg->arena->dirty_pages += pages;
}

/* Returns every free dirty page to the OS; returns the bytes purged. */
size_t tm_segment_purge(tm_segment_t *seg)
{
  uint64_t candidates[TM_PAGE_WORDS];
  bool any = false;
  for (size_t w = 0; w < TM_PAGE_WORDS; w++) {
    candidates[w] = seg->page_dirty[w] & ~seg->page_used[w];
    any |= candidates[w] != 0;
  }
  if (!any) return 0;
  size_t purged = 0;
  size_t i = 0;
  while (i < TM_SEGMENT_PAGES) {
    if (!tm_bit_get(candidates, i)) {
      i++;
      continue;
    }
    size_t j = i;
    while (j < TM_SEGMENT_PAGES && tm_bit_get(candidates, j))
      j++;
    tm_os_purge((uint8_t *)seg + i * TM_PAGE_SIZE, (j - i) * TM_PAGE_SIZE);
    tm_bits_clear(seg->page_dirty, i, j - i);
    purged += j - i;
    i = j;
  }
  seg->arena->dirty_pages -= purged;
  return purged * TM_PAGE_SIZE;
}
