/* medium.c owns medium blocks (see medium.h): a run starts at a page marked
 * in run_start with its length in run_pages; a freed run's first page is
 * marked in freed_start until the pages are reused, so that a stale free of a
 * medium block is told from a wild pointer. First fit over the arena's
 * segments (segment.c), a word at a time, under the arena lock; every
 * critical section that frees pages ends with tm_purge_unlock.
 *
 * The heap cache: a freed run of up to 32 pages goes to the freeing thread's
 * heap instead (still taken in the page map) and is handed out again without
 * the lock. Every free claims the run first by setting its cached bit with
 * fetch_or: a bit already set means the run was freed already (one of two
 * racing frees wins), then checks the run is still one (a run freed and
 * given back between the check and the claim is a stale free: the claim is
 * withdrawn). The locked free claims the same way, so a run is never both
 * cached and given back. */
#include <errno.h>

#include "bitmap.h"
#include "detect.h"
#include "lock.h"
#include "medium.h"
#include "options.h"
#include "purge.h"
#include "segment.h"
#include "track.h"

TM_INLINE uint64_t tm_page_bit(size_t page) { return 1ull << (page & 63); }

TM_INLINE bool tm_run_starts(tm_segment_t *seg, size_t page)
{
  return (atomic_load_explicit(&seg->run_start[page >> 6], memory_order_acquire) & tm_page_bit(page)) != 0;
}

TM_INLINE bool tm_run_cached(tm_segment_t *seg, size_t page)
{
  return (atomic_load_explicit(&seg->cached[page >> 6], memory_order_acquire) & tm_page_bit(page)) != 0;
}

TM_INLINE size_t tm_run_pages(tm_segment_t *seg, size_t page)
{
  return atomic_load_explicit(&seg->run_pages[page], memory_order_relaxed);
}

/* Claims the run at `page`: false when it was claimed (freed) already. */
TM_INLINE bool tm_run_claim(tm_segment_t *seg, size_t page)
{
  uint64_t before = atomic_fetch_or_explicit(&seg->cached[page >> 6], tm_page_bit(page), memory_order_acq_rel);
  return (before & tm_page_bit(page)) == 0;
}

TM_INLINE void tm_run_unclaim(tm_segment_t *seg, size_t page)
{
  atomic_fetch_and_explicit(&seg->cached[page >> 6], ~tm_page_bit(page), memory_order_release);
}

/* ---- The heap cache ----------------------------------------------------------- */

static void *tm_medium_cache_take(tm_heap_t *heap, size_t pages)
{
  size_t bin = pages - 1;
  if (heap->medium_cache_count[bin] == 0) return NULL;
  void *p = heap->medium_cache[bin][--heap->medium_cache_count[bin]];
  tm_segment_t *seg = tm_segment_of(p);
  tm_run_unclaim(seg, tm_page_of(seg, p));
  atomic_store_explicit(&heap->medium_cached_runs, atomic_load_explicit(&heap->medium_cached_runs, memory_order_relaxed) - 1,
                        memory_order_relaxed);
  atomic_store_explicit(&heap->medium_cached_bytes,
                        atomic_load_explicit(&heap->medium_cached_bytes, memory_order_relaxed) - (pages << TM_PAGE_SHIFT),
                        memory_order_relaxed);
  return p;
}

static bool tm_medium_cache_has_room(const tm_heap_t *heap, size_t pages)
{
  return pages <= TM_MEDIUM_CACHE_PAGES && heap->medium_cache_count[pages - 1] < TM_MEDIUM_CACHE_DEPTH &&
         atomic_load_explicit(&heap->medium_cached_bytes, memory_order_relaxed) + (pages << TM_PAGE_SHIFT) <=
             TM_MEDIUM_CACHE_BYTES;
}

static void tm_medium_cache_put(tm_heap_t *heap, void *p, size_t pages)
{
  size_t bin = pages - 1;
  heap->medium_cache[bin][heap->medium_cache_count[bin]++] = p;
  atomic_store_explicit(&heap->medium_cached_runs, atomic_load_explicit(&heap->medium_cached_runs, memory_order_relaxed) + 1,
                        memory_order_relaxed);
  atomic_store_explicit(&heap->medium_cached_bytes,
                        atomic_load_explicit(&heap->medium_cached_bytes, memory_order_relaxed) + (pages << TM_PAGE_SHIFT),
                        memory_order_relaxed);
}

/* ---- Allocation --------------------------------------------------------------- */

/* The arena's page runs, under its lock (out of line: the cached case above
 * saves no registers for it). */
static TM_NOINLINE void *tm_medium_alloc_pages(tm_arena_t *arena, size_t pages, size_t align_pages, bool *clean)
{
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
  atomic_store_explicit(&seg->run_pages[first], (uint16_t)pages, memory_order_relaxed);
  atomic_fetch_or_explicit(&seg->run_start[first >> 6], tm_page_bit(first), memory_order_release);
  seg->medium_count++;
  arena->medium_live++;
  arena->medium_bytes += pages << TM_PAGE_SHIFT;
  arena->medium_allocs++;
  tm_unlock(&arena->lock);
  return tm_page_addr(seg, first);
}

void *tm_medium_alloc(tm_heap_t *heap, tm_arena_t *arena, size_t need, size_t alignment, bool *clean)
{
  size_t pages = (need + TM_PAGE_SIZE - 1) >> TM_PAGE_SHIFT;
  size_t align_pages = alignment > TM_PAGE_SIZE ? alignment >> TM_PAGE_SHIFT : 1;
  if (heap && align_pages == 1 && pages <= TM_MEDIUM_CACHE_PAGES) {
    void *p = tm_medium_cache_take(heap, pages);
    if (p) {
      atomic_store_explicit(&heap->medium_reuses, atomic_load_explicit(&heap->medium_reuses, memory_order_relaxed) + 1,
                            memory_order_relaxed);
      *clean = false;
      return p;
    }
  }
  return tm_medium_alloc_pages(arena, pages, align_pages, clean);
}

/* ---- Validation ------------------------------------------------------------------ */

/* Lock held: what `p` is when it is not a live run start (the fault). */
static void tm_medium_explain(tm_segment_t *seg, const void *p, tm_fault_t *fault)
{
  size_t page = tm_page_of(seg, p);
  bool aligned = ((uintptr_t)p & (TM_PAGE_SIZE - 1)) == 0;
  if (page < seg->meta_pages) {
    tm_fault_set(fault, TINYMALLOC_ERROR_INVALID_FREE, p, "points into tinymalloc metadata", 0, NULL);
    return;
  }
  if (aligned && tm_run_starts(seg, page)) { /* a run that is free in a heap's cache */
    tm_fault_set(fault, TINYMALLOC_ERROR_DOUBLE_FREE, p, NULL, tm_run_pages(seg, page) << TM_PAGE_SHIFT, NULL);
    return;
  }
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
    return;
  }
  /* An interior pointer: the closest run start at or below. */
  size_t start = page;
  while (start > seg->meta_pages && !tm_run_starts(seg, start))
    start--;
  if (tm_run_starts(seg, start) && start + tm_run_pages(seg, start) > page)
    tm_fault_set(fault, TINYMALLOC_ERROR_INTERIOR, p, NULL, tm_run_pages(seg, start) << TM_PAGE_SHIFT,
                 tm_page_addr(seg, start));
  else
    tm_fault_set(fault, TINYMALLOC_ERROR_INVALID_FREE, p, "not the start of a block", 0, NULL);
}

/* The pages of the live run `p` starts, or 0 (no lock needed: a live run
 * changes only by its owner's hand). */
static size_t tm_medium_live_pages(tm_segment_t *seg, const void *p)
{
  size_t page = tm_page_of(seg, p);
  if (((uintptr_t)p & (TM_PAGE_SIZE - 1)) != 0 || page < seg->meta_pages || !tm_run_starts(seg, page) ||
      tm_run_cached(seg, page))
    return 0;
  return tm_run_pages(seg, page);
}

static void tm_medium_fault(tm_segment_t *seg, const void *p, tm_fault_t *fault)
{
  tm_arena_t *arena = seg->arena;
  tm_lock(&arena->lock);
  tm_medium_explain(seg, p, fault);
  tm_unlock(&arena->lock);
}

size_t tm_medium_usable(const void *p, tm_fault_t *fault)
{
  tm_segment_t *seg = tm_segment_of(p);
  size_t pages = tm_medium_live_pages(seg, p);
  if (pages == 0) tm_medium_fault(seg, p, fault);
  return pages << TM_PAGE_SHIFT;
}

/* ---- Free -------------------------------------------------------------------------- */

/* Lock held, the run claimed: its pages go back to the segment. */
static void tm_medium_give_back(tm_arena_t *arena, tm_segment_t *seg, size_t page, size_t pages)
{
  tm_detect_medium_forget(seg, page);
  atomic_fetch_and_explicit(&seg->run_start[page >> 6], ~tm_page_bit(page), memory_order_release);
  atomic_store_explicit(&seg->run_pages[page], 0, memory_order_relaxed);
  tm_segment_give_pages(seg, page, pages);
  tm_bit_set(seg->freed_start, page);
  seg->medium_count--;
  arena->medium_live--;
  arena->medium_bytes -= pages << TM_PAGE_SHIFT;
  /* Last: a stale free that claims from now on finds no run and withdraws. */
  tm_run_unclaim(seg, page);
}

size_t tm_medium_claim(void *p, tm_fault_t *fault)
{
  tm_segment_t *seg = tm_segment_of(p);
  size_t page = tm_page_of(seg, p);
  size_t pages = tm_medium_live_pages(seg, p);
  if (pages == 0 || !tm_run_claim(seg, page)) {
    tm_medium_fault(seg, p, fault);
    return 0;
  }
  if (!tm_run_starts(seg, page) || tm_run_pages(seg, page) != pages) {
    /* Given back (and maybe retaken) between the check and the claim. */
    tm_run_unclaim(seg, page);
    tm_fault_set(fault, TINYMALLOC_ERROR_DOUBLE_FREE, p, "its pages were already given back", 0, NULL);
    return 0;
  }
  return pages;
}

static TM_NOINLINE void tm_medium_release_pages(tm_arena_t *arena, tm_segment_t *seg, size_t page, size_t pages)
{
  tm_lock(&arena->lock);
  if (arena->lost) { /* a fork child's arena torn by a vanished thread: leak */
    tm_unlock(&arena->lock);
    return;
  }
  tm_medium_give_back(arena, seg, page, pages);
  tm_purge_unlock(arena);
}

void tm_medium_release(tm_heap_t *heap, void *p, size_t pages)
{
  tm_segment_t *seg = tm_segment_of(p);
  tm_arena_t *arena = seg->arena;
  if (heap && !arena->lost && tm_medium_cache_has_room(heap, pages)) {
    tm_medium_cache_put(heap, p, pages);
    return;
  }
  tm_medium_release_pages(arena, seg, tm_page_of(seg, p), pages);
}

void tm_medium_free(tm_heap_t *heap, void *p, tm_fault_t *fault)
{
  size_t pages = tm_medium_claim(p, fault);
  if (pages == 0) return;
  /* Before the pages are free: another thread may take them the moment they are. */
  uint32_t features = TM_FEATURES();
  if (TM_UNLIKELY(features & TM_FEATURE_ZERO))
    tm_junk_fill(p, pages << TM_PAGE_SHIFT, 0);
  else if (TM_UNLIKELY(features & TM_FEATURE_JUNK))
    tm_junk_fill(p, pages << TM_PAGE_SHIFT, TM_JUNK_FREE_BYTE);
  tm_track_free(p, pages << TM_PAGE_SHIFT);
  tm_medium_release(heap, p, pages);
}

void tm_medium_cache_flush(tm_heap_t *heap)
{
  for (size_t bin = 0; bin < TM_MEDIUM_CACHE_PAGES; bin++) {
    while (heap->medium_cache_count[bin] > 0) {
      void *p = heap->medium_cache[bin][--heap->medium_cache_count[bin]];
      tm_segment_t *seg = tm_segment_of(p);
      tm_arena_t *arena = seg->arena;
      tm_lock(&arena->lock);
      if (!arena->lost) tm_medium_give_back(arena, seg, tm_page_of(seg, p), bin + 1);
      tm_purge_unlock(arena);
    }
  }
  atomic_store_explicit(&heap->medium_cached_runs, 0, memory_order_relaxed);
  atomic_store_explicit(&heap->medium_cached_bytes, 0, memory_order_relaxed);
}

/* ---- Fork child ---------------------------------------------------------------------- */

static bool tm_medium_in_cache(const tm_heap_t *heap, const void *p, size_t pages)
{
  if (heap == NULL || pages == 0 || pages > TM_MEDIUM_CACHE_PAGES) return false;
  for (size_t i = 0; i < heap->medium_cache_count[pages - 1]; i++)
    if (heap->medium_cache[pages - 1][i] == p) return true;
  return false;
}

void tm_medium_cache_forget_lost(tm_heap_t *heap)
{
  for (size_t bin = 0; bin < TM_MEDIUM_CACHE_PAGES; bin++) {
    for (size_t i = 0; i < heap->medium_cache_count[bin];) {
      void *p = heap->medium_cache[bin][i];
      if (!tm_segment_of(p)->arena->lost) {
        i++;
        continue;
      }
      heap->medium_cache[bin][i] = heap->medium_cache[bin][--heap->medium_cache_count[bin]];
      atomic_store_explicit(&heap->medium_cached_runs,
                            atomic_load_explicit(&heap->medium_cached_runs, memory_order_relaxed) - 1,
                            memory_order_relaxed);
      atomic_store_explicit(&heap->medium_cached_bytes,
                            atomic_load_explicit(&heap->medium_cached_bytes, memory_order_relaxed) -
                                ((bin + 1) << TM_PAGE_SHIFT),
                            memory_order_relaxed);
    }
  }
}

/* Detection mode: the run waits in the heap's quarantine (claimed too). */
static bool tm_medium_in_quarantine(const tm_heap_t *heap, const void *p)
{
  const tm_quarantine_t *q = heap ? heap->quarantine : NULL;
  for (size_t i = 0; q && i < q->count; i++)
    if (q->entry[(q->head + i) % q->capacity].p == p) return true;
  return false;
}

void tm_medium_fork_child(tm_arena_t *arena, tm_heap_t *me)
{
  for (tm_segment_t *seg = arena->segments; seg; seg = seg->next) {
    for (size_t w = 0; w < TM_PAGE_WORDS; w++) {
      uint64_t cached = atomic_load_explicit(&seg->cached[w], memory_order_relaxed);
      for (; cached; cached &= cached - 1) {
        size_t page = w * 64 + (size_t)__builtin_ctzll(cached);
        size_t pages = tm_run_pages(seg, page);
        if (!tm_run_starts(seg, page)) {
          tm_run_unclaim(seg, page); /* a stale claim that was about to be withdrawn */
        } else if (!tm_medium_in_cache(me, tm_page_addr(seg, page), pages) &&
                   !tm_medium_in_quarantine(me, tm_page_addr(seg, page))) {
          tm_medium_give_back(arena, seg, page, pages);
        }
      }
    }
  }
}

/* ---- Resize ------------------------------------------------------------------------- */

size_t tm_medium_resize(void *p, size_t need)
{
  tm_segment_t *seg = tm_segment_of(p);
  tm_arena_t *arena = seg->arena;
  size_t page = tm_page_of(seg, p);
  size_t want = (need + TM_PAGE_SIZE - 1) >> TM_PAGE_SHIFT;
  tm_lock(&arena->lock);
  size_t have = tm_run_starts(seg, page) && !tm_run_cached(seg, page) ? tm_run_pages(seg, page) : 0;
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
  atomic_store_explicit(&seg->run_pages[page], (uint16_t)want, memory_order_relaxed);
  arena->medium_bytes = arena->medium_bytes - (have << TM_PAGE_SHIFT) + (want << TM_PAGE_SHIFT);
  if (want < have)
    tm_purge_unlock(arena);
  else
    tm_unlock(&arena->lock);
  return want << TM_PAGE_SHIFT;
}
