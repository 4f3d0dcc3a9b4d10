/* check.c owns tinymalloc_check: a full walk of the metadata that verifies
 * every invariant written above the structures in types.h (slab bitmaps,
 * page maps, runs, lists, counters, the segment map). It reports each
 * violation on stderr and changes nothing. It must run while no other
 * thread is inside tinymalloc; nothing in the core calls it. */
#include <unistd.h>

#include "arena.h"
#include "bitmap.h"
#include "error.h"
#include "grace.h"
#include "heap.h"
#include "init.h"
#include "large.h"
#include "lock.h"
#include "segmap.h"
#include "sizeclass.h"
#include "slab.h"

typedef struct {
  int violations;
  size_t held_large;       /* listed large blocks freed into a quarantine */
  size_t held_large_heaps; /* the quarantines' count of them */
} tm_check_t;

static void tm_violation(tm_check_t *chk, const char *what, const void *where, uint64_t number)
{
  chk->violations++;
  char buf[320];
  size_t n = 0;
  static const char head[] = "tinymalloc: check: ";
  for (const char *s = head; *s; s++)
    buf[n++] = *s;
  for (const char *s = what; *s && n < 260; s++)
    buf[n++] = *s;
  buf[n++] = ' ';
  n += tm_fmt_hex(buf + n, (uintptr_t)where);
  buf[n++] = ' ';
  n += tm_fmt_dec(buf + n, number);
  buf[n++] = '\n';
  ssize_t ignored = write(STDERR_FILENO, buf, n);
  (void)ignored;
}

static bool tm_owner_valid(tm_heap_t *owner)
{
  if (owner == TM_OWNER_ARENA) return true;
  for (tm_heap_t *heap = tm_heaps_first(); heap; heap = heap->next_all)
    if (heap == owner) return heap->alive && heap != &tm_dead_heap;
  return false;
}

static void tm_check_slab(tm_check_t *chk, tm_segment_t *seg, size_t slot, tm_slab_t *slab)
{
  uint8_t *start = tm_slab_start(slab);
  uint32_t size = atomic_load_explicit(&slab->block_size, memory_order_relaxed);
  if (slab->class_index >= TM_CLASS_COUNT || tm_class_size[slab->class_index] != size)
    return tm_violation(chk, "slab with a block size that is not its class", start, size);
  if (slab->capacity != TM_SLAB_SIZE / size || slab->words != (slab->capacity + 63) / 64)
    tm_violation(chk, "slab capacity wrong", start, slab->capacity);
  if (slab->reciprocal != (uint32_t)((((uint64_t)1 << 32) + size - 1) / size))
    tm_violation(chk, "slab reciprocal wrong", start, slab->reciprocal);
  if (slab->slot != slot || slot < TM_FIRST_SLAB_SLOT) tm_violation(chk, "slab slot wrong", start, slot);
  if (!tm_owner_valid(atomic_load_explicit(&slab->owner, memory_order_relaxed)))
    tm_violation(chk, "slab owned by no live heap and not abandoned", start, slot);
  uint32_t notify = atomic_load_explicit(&slab->notify, memory_order_relaxed);
  if (notify > TM_NOTIFY_QUEUED) tm_violation(chk, "slab notify state invalid", start, notify);
  if (tm_bits_count(seg->page_used, slot * TM_SLAB_PAGES, TM_SLAB_PAGES) != TM_SLAB_PAGES)
    tm_violation(chk, "slab pages not marked as slab pages", start, slot);
  uint32_t allocated = 0;
  for (uint32_t w = 0; w < TM_SLAB_WORDS; w++) {
    uint64_t alloc = atomic_load_explicit(&slab->bits[w].alloc, memory_order_relaxed);
    uint64_t remote = atomic_load_explicit(&slab->bits[w].remote, memory_order_relaxed);
    uint64_t padding = tm_slab_padding(slab->capacity, w);
    if ((alloc & padding) != padding) tm_violation(chk, "slab padding bit clear", start, w);
    if (remote & ~alloc) tm_violation(chk, "remote-free bit over a free block", start, w);
    if (remote & padding) tm_violation(chk, "remote-free bit over padding", start, w);
    if ((((slab->free_words >> w) & 1) != 0) != ((alloc | padding) != ~0ull) && w < slab->words)
      tm_violation(chk, "slab free-word summary disagrees with its bitmap", start, w);
    allocated += (uint32_t)__builtin_popcountll(alloc & ~padding);
  }
  if (allocated != slab->used) tm_violation(chk, "slab used count differs from its bitmap", start, slab->used);
}

static void tm_check_segment(tm_check_t *chk, tm_arena_t *arena, tm_segment_t *seg, size_t *runs_bytes, size_t *runs,
                             size_t *cached_runs)
{
  uint64_t run_start[TM_PAGE_WORDS], cached[TM_PAGE_WORDS];
  for (size_t w = 0; w < TM_PAGE_WORDS; w++) {
    run_start[w] = atomic_load_explicit(&seg->run_start[w], memory_order_relaxed);
    cached[w] = atomic_load_explicit(&seg->cached[w], memory_order_relaxed);
    if (cached[w] & ~run_start[w]) tm_violation(chk, "cached mark on a page that starts no run", seg, w);
    *cached_runs += (size_t)__builtin_popcountll(cached[w]);
  }
  if (tm_segmap_kind((uintptr_t)seg) != TM_SEG_ARENA) tm_violation(chk, "segment not in the segment map", seg, 0);
  if (seg->arena != arena) tm_violation(chk, "segment in the wrong arena", seg, tm_arena_index(arena));
  if (seg->meta_pages != TM_META_PAGES) tm_violation(chk, "segment metadata size wrong", seg, seg->meta_pages);
  uint64_t covered[TM_PAGE_WORDS] = {0};
  tm_bits_set(covered, 0, seg->meta_pages);
  uint32_t slabs = 0, medium = 0;
  for (size_t slot = 0; slot < TM_SLOTS; slot++) {
    tm_slab_t *slab = &seg->slabs[slot];
    if (atomic_load_explicit(&slab->block_size, memory_order_relaxed) == 0) continue;
    slabs++;
    if (tm_bits_any(covered, slot * TM_SLAB_PAGES, TM_SLAB_PAGES))
      tm_violation(chk, "slab overlaps", tm_slab_start(slab), slot);
    tm_bits_set(covered, slot * TM_SLAB_PAGES, TM_SLAB_PAGES);
    tm_check_slab(chk, seg, slot, slab);
  }
  for (size_t page = 0; page < TM_SEGMENT_PAGES; page++) {
    if (!tm_bit_get(run_start, page)) continue;
    medium++;
    size_t pages = atomic_load_explicit(&seg->run_pages[page], memory_order_relaxed);
    uint8_t *start = tm_page_addr(seg, page);
    if (pages == 0 || page + pages > TM_SEGMENT_PAGES) {
      tm_violation(chk, "medium run with a bad length", start, pages);
      continue;
    }
    if (tm_bits_any(covered, page, pages) || tm_bits_any(run_start, page + 1, pages - 1))
      tm_violation(chk, "medium run overlaps", start, pages);
    tm_bits_set(covered, page, pages);
    *runs += 1;
    *runs_bytes += pages << TM_PAGE_SHIFT;
  }
  for (size_t w = 0; w < TM_PAGE_WORDS; w++) {
    if (covered[w] & seg->purging[w]) tm_violation(chk, "page both in use and being purged", seg, w);
    if ((covered[w] | seg->purging[w]) != seg->page_used[w])
      tm_violation(chk, "page map disagrees with slabs and runs", seg, w);
    if (seg->dirty_old[w] & ~seg->dirty[w]) tm_violation(chk, "aged page that is not dirty", seg, w);
    if ((seg->page_used[w] & ~seg->dirty[w]) & ~seg->purging[w])
      tm_violation(chk, "page in use not marked dirty", seg, w);
    if (seg->freed_start[w] & seg->page_used[w] & ~seg->purging[w])
      tm_violation(chk, "freed-run mark on a page in use", seg, w);
  }
  if (tm_bits_count(seg->page_used, 0, TM_SEGMENT_PAGES) != seg->used_pages)
    tm_violation(chk, "segment used-page count wrong", seg, seg->used_pages);
  if (tm_bits_next(seg->page_used, TM_SEGMENT_PAGES, 0, false) < seg->free_hint)
    tm_violation(chk, "free page below the segment's free hint", seg, seg->free_hint);
  if (slabs != seg->slab_count) tm_violation(chk, "segment slab count wrong", seg, seg->slab_count);
  if (medium != seg->medium_count) tm_violation(chk, "segment run count wrong", seg, seg->medium_count);
}

static void tm_check_abandoned_list(tm_check_t *chk, tm_slab_t *list, unsigned cls)
{
  for (tm_slab_t *slab = list; slab; slab = slab->next) {
    if (atomic_load_explicit(&slab->owner, memory_order_relaxed) != TM_OWNER_ARENA)
      tm_violation(chk, "abandoned slab has an owner", tm_slab_start(slab), cls);
    if (cls < TM_CLASS_COUNT && slab->class_index != cls)
      tm_violation(chk, "abandoned slab on the wrong class list", tm_slab_start(slab), cls);
    if (atomic_load_explicit(&slab->block_size, memory_order_relaxed) == 0)
      tm_violation(chk, "released slot on an abandoned list", tm_slab_start(slab), cls);
  }
}

static void tm_check_arena(tm_check_t *chk, tm_arena_t *arena, size_t *cached_runs)
{
  size_t segments = 0, runs = 0, runs_bytes = 0;
  for (tm_segment_t *seg = arena->segments; seg; seg = seg->next) {
    segments++;
    tm_check_segment(chk, arena, seg, &runs_bytes, &runs, cached_runs);
  }
  if (segments != atomic_load_explicit(&arena->segment_count, memory_order_relaxed))
    tm_violation(chk, "arena segment count wrong", arena, segments);
  if (runs != arena->medium_live || runs_bytes != arena->medium_bytes)
    tm_violation(chk, "arena medium counters differ from the page maps", arena, arena->medium_live);
  for (unsigned c = 0; c < TM_CLASS_COUNT; c++)
    tm_check_abandoned_list(chk, arena->abandoned[c], c);
  tm_check_abandoned_list(chk, tm_arena_abandoned_full(arena), TM_CLASS_COUNT);
  size_t large = 0, large_bytes = 0, cached = 0, cached_bytes = 0;
  for (tm_large_t *l = arena->large; l; l = l->next) {
    large++;
    large_bytes += l->usable;
    if (tm_segmap_kind((uintptr_t)l) != TM_SEG_LARGE_HEAD)
      tm_violation(chk, "large block not in the segment map", l, 0);
    if (l->magic != TM_LARGE_MAGIC || l->arena != arena) tm_violation(chk, "large block header corrupt", l, 0);
    /* Freed but still listed: it waits in a quarantine (detection mode). */
    if (!atomic_load_explicit(&l->live, memory_order_relaxed)) {
      chk->held_large++;
      if (!l->guarded) tm_violation(chk, "freed large block still listed and not quarantined", l, 0);
    }
    size_t extent = l->user_offset + l->usable; /* a guard page may follow (detection mode) */
    if (extent != l->map_size && !(l->guarded && extent + TM_PAGE_SIZE <= l->map_size))
      tm_violation(chk, "large block extent wrong", l, l->usable);
  }
  for (tm_large_t *l = arena->large_cache; l; l = l->next) {
    cached++;
    cached_bytes += l->map_size;
    if (tm_segmap_kind((uintptr_t)l) != TM_SEG_FREED_LARGE)
      tm_violation(chk, "cached large mapping not marked freed", l, 0);
    if (l->magic != TM_LARGE_MAGIC || atomic_load_explicit(&l->live, memory_order_relaxed))
      tm_violation(chk, "cached large mapping header corrupt", l, 0);
  }
  if (large != arena->large_live || large_bytes != arena->large_bytes)
    tm_violation(chk, "arena large counters differ from its list", arena, arena->large_live);
  if (cached != arena->large_cached_count || cached_bytes != arena->large_cached_bytes)
    tm_violation(chk, "arena large cache counters differ from its list", arena, cached);
}

/* Every heap's medium cache (a heap retired by a fork keeps its cache for
 * the thread that reuses it). */
static void tm_check_medium_cache(tm_check_t *chk, tm_heap_t *heap, size_t *cached_runs)
{
  size_t runs = 0, bytes = 0;
  for (size_t bin = 0; bin < TM_MEDIUM_CACHE_PAGES; bin++) {
    for (size_t i = 0; i < heap->medium_cache_count[bin]; i++) {
      void *p = heap->medium_cache[bin][i];
      tm_segment_t *seg = tm_segment_of(p);
      size_t page = tm_page_of(seg, p);
      uint64_t bit = 1ull << (page & 63);
      if (tm_segmap_kind((uintptr_t)p) != TM_SEG_ARENA ||
          !(atomic_load_explicit(&seg->cached[page >> 6], memory_order_relaxed) & bit) ||
          atomic_load_explicit(&seg->run_pages[page], memory_order_relaxed) != bin + 1)
        tm_violation(chk, "medium cache entry is not a cached run of its size", p, bin + 1);
      runs++;
      bytes += (bin + 1) << TM_PAGE_SHIFT;
    }
  }
  if (runs != atomic_load_explicit(&heap->medium_cached_runs, memory_order_relaxed) ||
      bytes != atomic_load_explicit(&heap->medium_cached_bytes, memory_order_relaxed))
    tm_violation(chk, "heap medium cache counters wrong", heap, runs);
  /* Medium runs in a quarantine are claimed (cached bit) too. */
  *cached_runs += runs + atomic_load_explicit(&heap->quarantined[0], memory_order_relaxed);
  chk->held_large_heaps += atomic_load_explicit(&heap->quarantined[1], memory_order_relaxed);
}

/* Owner-side invariants of a live heap's lists. */
static void tm_check_heap(tm_check_t *chk, tm_heap_t *heap)
{
  uint32_t empty = 0;
  for (unsigned c = 0; c < TM_CLASS_COUNT; c++) {
    tm_slab_t *current = heap->current[c];
    if (current && (atomic_load_explicit(&current->owner, memory_order_relaxed) != heap || current->class_index != c ||
                    current->flags != 0))
      tm_violation(chk, "current slab not owned, of another class or flagged", tm_slab_start(current), c);
    for (int full = 0; full < 2; full++) {
      for (tm_slab_t *slab = full ? heap->full[c] : heap->partial[c]; slab; slab = slab->next) {
        uint8_t *start = tm_slab_start(slab);
        if (slab == current) tm_violation(chk, "current slab also on a list", start, c);
        if (atomic_load_explicit(&slab->owner, memory_order_relaxed) != heap)
          tm_violation(chk, "slab on a heap list it is not owned by", start, c);
        if (slab->class_index != c) tm_violation(chk, "slab on the wrong class list", start, c);
        if (((slab->flags & TM_SLAB_FULL) != 0) != (full == 1)) tm_violation(chk, "slab full flag wrong", start, c);
        if (full && atomic_load_explicit(&slab->notify, memory_order_relaxed) == TM_NOTIFY_IDLE)
          tm_violation(chk, "full slab not watched", start, c);
        if (slab->flags & TM_SLAB_EMPTY_KEPT) {
          empty++;
          if (slab->used != 0) tm_violation(chk, "slab kept as empty is not", start, c);
        }
      }
    }
  }
  if (empty != heap->empty_kept) tm_violation(chk, "heap empty-slab count wrong", heap, heap->empty_kept);
}

int tinymalloc_check(void)
{
  tm_init();
  tm_check_t chk = {0};
  size_t heap_cached = 0, marked_cached = 0;
  tm_heap_pool_lock();
  for (tm_heap_t *heap = tm_heaps_first(); heap; heap = heap->next_all) {
    tm_check_medium_cache(&chk, heap, &heap_cached);
    if (heap->alive) tm_check_heap(&chk, heap);
  }
  tm_heap_pool_unlock();
  uint32_t count = tm_arenas_in_use();
  bool any_lost = false;
  for (uint32_t i = 0; i < count; i++) {
    tm_arena_t *arena = &tm_arenas[i];
    tm_lock(&arena->lock);
    any_lost |= arena->lost;
    if (!arena->lost) tm_check_arena(&chk, arena, &marked_cached);
    tm_unlock(&arena->lock);
  }
  if (!any_lost && heap_cached != marked_cached)
    tm_violation(&chk, "cached medium runs differ from the heaps' caches", NULL, marked_cached);
  if (!any_lost && chk.held_large != chk.held_large_heaps)
    tm_violation(&chk, "quarantined large blocks differ from the quarantines' count", NULL, chk.held_large);
  return chk.violations;
}
