/* medium.c owns medium blocks (see medium.h): a run starts at a page marked
 * in run_start with its length in run_pages; a freed run's first page is
 * marked in freed_start until the pages are reused, so that a stale free of a
 * medium block is told from a wild pointer. First fit over the arena's
 * segments (segment.c), a word at a time. Every critical section ends with
 * tm_purge_unlock, which gives back pages that stayed free long enough. */
#include <errno.h>

#include "bitmap.h"
#include "lock.h"
#include "medium.h"
#include "options.h"
#include "purge.h"
#include "segment.h"
#include "track.h"

void *tm_medium_alloc(tm_arena_t *arena, size_t need, size_t alignment, bool *clean)
{
  size_t pages = (need + TM_PAGE_SIZE - 1) >> TM_PAGE_SHIFT;
  size_t align_pages = alignment > TM_PAGE_SIZE ? alignment >> TM_PAGE_SHIFT : 1;
  size_t first = 0;
  tm_lock(&arena->lock);
  tm_segment_t *seg = tm_segment_find_pages(arena, pages, align_pages, &first);
  while (seg == NULL) {
    tm_unlock(&arena->lock);
    tm_segment_t *fresh = tm_segment_map(arena);
    if (fresh == NULL) {
      errno = ENOMEM;
      return NULL;
    }
    tm_lock(&arena->lock);
    tm_segment_attach(arena, fresh);
    seg = tm_segment_find_pages(arena, pages, align_pages, &first);
  }
  tm_segment_take_pages(seg, first, pages, clean);
  tm_bit_set(seg->run_start, first);
  seg->run_pages[first] = (uint16_t)pages;
  seg->medium_count++;
  arena->medium_live++;
  arena->medium_bytes += pages << TM_PAGE_SHIFT;
  arena->medium_allocs++;
  tm_unlock(&arena->lock);
  return tm_page_addr(seg, first);
}

/* Lock held: decides what `p` is inside an arena segment that is not a slab
 * block. Returns the run's page count, or 0 with `fault` filled. */
static size_t tm_medium_check(tm_segment_t *seg, const void *p, tm_fault_t *fault)
{
  size_t page = tm_page_of(seg, p);
  bool aligned = ((uintptr_t)p & (TM_PAGE_SIZE - 1)) == 0;
  if (page < seg->meta_pages) {
    tm_fault_set(fault, TINYMALLOC_ERROR_INVALID_FREE, p, "points into tinymalloc metadata", 0, NULL);
    return 0;
  }
  if (aligned && tm_bit_get(seg->run_start, page)) return seg->run_pages[page];
  if (!tm_bit_get(seg->page_used, page) || tm_bit_get(seg->purging, page)) {
    tm_slab_t *slot = &seg->slabs[page / TM_SLAB_PAGES];
    size_t in_slot = ((uintptr_t)p - (uintptr_t)seg) & (TM_SLAB_SIZE - 1);
    if (aligned && tm_bit_get(seg->freed_start, page))
      tm_fault_set(fault, TINYMALLOC_ERROR_DOUBLE_FREE, p, "its pages were already given back", 0, NULL);
    else if (slot->last_block_size && in_slot % slot->last_block_size == 0)
      tm_fault_set(fault, TINYMALLOC_ERROR_DOUBLE_FREE, p, "its slab was already given back", slot->last_block_size,
                   NULL);
    else
      tm_fault_set(fault, TINYMALLOC_ERROR_INVALID_FREE, p, "points into free memory", 0, NULL);
    return 0;
  }
  /* An interior pointer: the closest run start at or below. */
  size_t start = page;
  while (start > seg->meta_pages && !tm_bit_get(seg->run_start, start))
    start--;
  if (tm_bit_get(seg->run_start, start) && start + seg->run_pages[start] > page)
    tm_fault_set(fault, TINYMALLOC_ERROR_INTERIOR, p, NULL, (size_t)seg->run_pages[start] << TM_PAGE_SHIFT,
                 tm_page_addr(seg, start));
  else
    tm_fault_set(fault, TINYMALLOC_ERROR_INVALID_FREE, p, "not the start of a block", 0, NULL);
  return 0;
}

size_t tm_medium_usable(const void *p, tm_fault_t *fault)
{
  tm_segment_t *seg = tm_segment_of(p);
  tm_arena_t *arena = seg->arena;
  tm_lock(&arena->lock);
  size_t pages = tm_medium_check(seg, p, fault);
  tm_unlock(&arena->lock);
  return pages << TM_PAGE_SHIFT;
}

void tm_medium_free(void *p, tm_fault_t *fault)
{
  tm_segment_t *seg = tm_segment_of(p);
  tm_arena_t *arena = seg->arena;
  tm_lock(&arena->lock);
  if (arena->lost) { /* a fork child's arena torn by a vanished thread: leak */
    tm_unlock(&arena->lock);
    return;
  }
  size_t pages = tm_medium_check(seg, p, fault);
  if (pages == 0) {
    tm_unlock(&arena->lock);
    return;
  }
  size_t page = tm_page_of(seg, p), bytes = pages << TM_PAGE_SHIFT;
  /* Before the pages are free: another thread may take them the moment they are. */
  if (TM_UNLIKELY(TM_FEATURES() & TM_FEATURE_JUNK)) tm_junk_fill(p, bytes, TM_JUNK_FREE_BYTE);
  tm_track_free(p, bytes);
  tm_bit_clear(seg->run_start, page);
  seg->run_pages[page] = 0;
  tm_segment_give_pages(seg, page, pages);
  tm_bit_set(seg->freed_start, page);
  seg->medium_count--;
  arena->medium_live--;
  arena->medium_bytes -= bytes;
  tm_purge_unlock(arena);
}

size_t tm_medium_resize(void *p, size_t need)
{
  tm_segment_t *seg = tm_segment_of(p);
  tm_arena_t *arena = seg->arena;
  size_t page = tm_page_of(seg, p);
  size_t want = (need + TM_PAGE_SIZE - 1) >> TM_PAGE_SHIFT;
  tm_lock(&arena->lock);
  size_t have = tm_bit_get(seg->run_start, page) ? seg->run_pages[page] : 0;
  bool ok = have != 0 && !arena->lost;
  if (ok && want < have) {
    tm_segment_give_pages(seg, page + want, have - want);
  } else if (ok && want > have) {
    ok = page + want <= TM_SEGMENT_PAGES && !tm_bits_any(seg->page_used, page + have, want - have);
    if (ok) tm_segment_take_pages(seg, page + have, want - have, NULL);
  }
  if (!ok) {
    tm_unlock(&arena->lock);
    return 0;
  }
  seg->run_pages[page] = (uint16_t)want;
  arena->medium_bytes = arena->medium_bytes - (have << TM_PAGE_SHIFT) + (want << TM_PAGE_SHIFT);
  if (want < have)
    tm_purge_unlock(arena);
  else
    tm_unlock(&arena->lock);
  return want << TM_PAGE_SHIFT;
}
