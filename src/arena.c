/* arena.c owns the per-CPU arenas: their segments, handing slabs to thread
 * heaps (carving fresh ones, adopting abandoned ones), medium blocks (page
 * runs, first fit), and giving memory back (delayed purge, unmapping empty
 * segments). Everything here runs under the arena's own lock; there is no
 * process-wide lock. */
#include <errno.h>
#include <sched.h>
#include <string.h>

#include "internal.h"
#include "track.h"

tm_arena_t tm_arenas[TM_MAX_ARENAS];
uint32_t tm_arena_count = 1;

tm_arena_t *tm_arena_for_thread(void)
{
  static _Atomic uint32_t round_robin;
  int cpu = sched_getcpu();
  uint32_t n = cpu >= 0 ? (uint32_t)cpu : atomic_fetch_add_explicit(&round_robin, 1, memory_order_relaxed);
  return &tm_arenas[n % tm_arena_count];
}

/* Finds `pages` free pages aligned to `align_pages` in the arena's segments,
 * mapping a new segment when none has room. */
static tm_segment_t *tm_arena_find_pages(tm_arena_t *arena, size_t pages, size_t align_pages, size_t *first)
{
  for (tm_segment_t *seg = arena->segments; seg; seg = seg->next) {
    size_t at = tm_segment_find_run(seg, pages, align_pages);
    if (at != SIZE_MAX) {
      *first = at;
      return seg;
    }
  }
  tm_segment_t *seg = tm_segment_create(arena);
  if (seg == NULL) return NULL;
  *first = tm_segment_find_run(seg, pages, align_pages);
  return *first == SIZE_MAX ? NULL : seg;
}

static void tm_arena_maybe_drop_segment(tm_arena_t *arena, tm_segment_t *seg, size_t keep)
{
  if (seg->used_pages != seg->meta_pages) return;
  size_t empty = 0;
  for (tm_segment_t *s = arena->segments; s; s = s->next)
    empty += s->used_pages == s->meta_pages;
  if (empty > keep) tm_segment_destroy(seg);
}

/* Adopts an abandoned slab of the class that has a free block (releasing
 * the empty ones met on the way), or carves a new one. */
tm_slab_t *tm_arena_get_slab(tm_arena_t *arena, tm_heap_t *heap, unsigned cls)
{
  pthread_mutex_lock(&arena->lock);
  tm_slab_t *found = NULL;
  for (tm_slab_t *slab = arena->abandoned[cls], *next; slab && !found; slab = next) {
    next = slab->next;
    tm_slab_merge_remote(slab);
    if (slab->used == slab->capacity) continue;
    if (slab->prev)
      slab->prev->next = slab->next;
    else
      arena->abandoned[cls] = slab->next;
    if (slab->next) slab->next->prev = slab->prev;
    slab->next = slab->prev = NULL;
    found = slab;
  }
  if (found == NULL) {
    size_t first;
    tm_segment_t *seg = tm_arena_find_pages(arena, TM_SLAB_PAGES, TM_SLAB_PAGES, &first);
    if (seg == NULL) {
      pthread_mutex_unlock(&arena->lock);
      return NULL;
    }
    tm_segment_take_pages(seg, first, TM_SLAB_PAGES, NULL);
    seg->slab_count++;
    found = &seg->slabs[first / TM_SLAB_PAGES];
    tm_slab_carve(found, (uint8_t *)seg + first * TM_PAGE_SIZE, cls);
  }
  atomic_store_explicit(&found->owner, heap, memory_order_release);
  pthread_mutex_unlock(&arena->lock);
  return found;
}

/* Lock held. The slab has no live block: its slot becomes free pages. */
void tm_arena_release_slab(tm_arena_t *arena, tm_slab_t *slab)
{
  tm_segment_t *seg = tm_segment_of(tm_slab_start(slab));
  slab->last_block_size = atomic_load_explicit(&slab->block_size, memory_order_relaxed);
  atomic_store_explicit(&slab->owner, NULL, memory_order_relaxed);
  atomic_store_explicit(&slab->block_size, 0, memory_order_release);
  seg->slab_count--;
  tm_segment_give_pages(seg, tm_page_of(seg, tm_slab_start(slab)), TM_SLAB_PAGES);
  tm_arena_maybe_drop_segment(arena, seg, TM_ARENA_EMPTY_KEEP);
}

/* Lock held. The owner thread exited; the arena keeps the slab until
 * another thread of the arena adopts it. */
void tm_arena_abandon_slab(tm_arena_t *arena, tm_slab_t *slab)
{
  atomic_store_explicit(&slab->owner, NULL, memory_order_release);
  slab->prev = NULL;
  slab->next = arena->abandoned[slab->class_index];
  if (slab->next) slab->next->prev = slab;
  arena->abandoned[slab->class_index] = slab;
}

/* Lock held, fork child only: slabs of heaps that the fork retired (their
 * threads do not exist here and may have stopped mid-update) are recounted
 * from their bitmaps and abandoned to the arena, where threads adopt them. */
void tm_arena_adopt_orphans(tm_arena_t *arena)
{
  for (tm_segment_t *seg = arena->segments; seg; seg = seg->next) {
    for (size_t slot = 0; slot < TM_SLOTS; slot++) {
      tm_slab_t *slab = &seg->slabs[slot];
      tm_heap_t *owner = atomic_load_explicit(&slab->owner, memory_order_relaxed);
      if (atomic_load_explicit(&slab->block_size, memory_order_relaxed) == 0 || owner == NULL || owner->alive) continue;
      uint32_t allocated = 0;
      for (uint32_t w = 0; w < TM_SLAB_WORDS; w++)
        allocated += (uint32_t)__builtin_popcountll(atomic_load_explicit(&slab->alloc_bits[w], memory_order_relaxed));
      slab->used = allocated - (TM_SLAB_WORDS * 64 - slab->capacity);
      slab->hint = 0;
      slab->in_full_list = false;
      slab->counted_empty = false;
      tm_arena_abandon_slab(arena, slab);
    }
  }
}

/* A run for `need` bytes, of which `size` are handed to the program. */
void *tm_arena_alloc_medium(tm_arena_t *arena, size_t size, size_t need, size_t alignment, bool zero)
{
  size_t pages = (need + TM_PAGE_SIZE - 1) >> TM_PAGE_SHIFT;
  size_t align_pages = alignment > TM_PAGE_SIZE ? alignment >> TM_PAGE_SHIFT : 1;
  size_t first;
  bool clean;
  pthread_mutex_lock(&arena->lock);
  tm_segment_t *seg = tm_arena_find_pages(arena, pages, align_pages, &first);
  if (seg == NULL) {
    pthread_mutex_unlock(&arena->lock);
    errno = ENOMEM;
    return NULL;
  }
  tm_segment_take_pages(seg, first, pages, &clean);
  seg->run_start[first >> 6] |= 1ull << (first & 63);
  seg->run_pages[first] = (uint16_t)pages;
  seg->medium_count++;
  arena->medium_live++;
  pthread_mutex_unlock(&arena->lock);
  void *p = (uint8_t *)seg + first * TM_PAGE_SIZE;
  tm_track_malloc(p, size, pages * TM_PAGE_SIZE, zero && clean); /* clean but unasked: undefined */
  if (zero && !clean) memset(p, 0, size);
  return p;
}

/* Lock held: decides what `p` is inside an arena segment that is not a slab
 * block; reports and returns false unless it is a live run start. */
static bool tm_medium_check(tm_segment_t *seg, const void *p, const char *op)
{
  size_t page = tm_page_of(seg, p);
  bool aligned = ((uintptr_t)p & (TM_PAGE_SIZE - 1)) == 0;
  if (page < seg->meta_pages) {
    tm_report(TINYMALLOC_ERROR_INVALID_FREE, op, p, "points into tinymalloc metadata", 0, NULL);
    return false;
  }
  if (aligned && tm_bit_get(seg->run_start, page)) return true;
  if (!tm_bit_get(seg->page_used, page)) {
    tm_slab_t *slot = &seg->slabs[page / TM_SLAB_PAGES];
    size_t in_slot = ((uintptr_t)p - (uintptr_t)seg) & (TM_SLAB_SIZE - 1);
    if (aligned && tm_bit_get(seg->freed_start, page))
      tm_report(TINYMALLOC_ERROR_DOUBLE_FREE, op, p, "its pages were already given back", 0, NULL);
    else if (slot->last_block_size && in_slot % slot->last_block_size == 0)
      tm_report(TINYMALLOC_ERROR_DOUBLE_FREE, op, p, NULL, slot->last_block_size, NULL);
    else
      tm_report(TINYMALLOC_ERROR_INVALID_FREE, op, p, "points into free memory", 0, NULL);
    return false;
  }
  size_t start = page;
  while (start > seg->meta_pages && !tm_bit_get(seg->run_start, start))
    start--;
  if (tm_bit_get(seg->run_start, start) && start + seg->run_pages[start] > page) {
    uint8_t *block = (uint8_t *)seg + start * TM_PAGE_SIZE;
    tm_report(TINYMALLOC_ERROR_INTERIOR, op, p, NULL, (size_t)seg->run_pages[start] * TM_PAGE_SIZE, block);
  } else {
    tm_report(TINYMALLOC_ERROR_INVALID_FREE, op, p, "not the start of a block", 0, NULL);
  }
  return false;
}

void tm_medium_free(void *p, const char *op)
{
  tm_segment_t *seg = tm_segment_of(p);
  tm_arena_t *arena = seg->arena;
  pthread_mutex_lock(&arena->lock);
  if (!tm_medium_check(seg, p, op)) {
    pthread_mutex_unlock(&arena->lock);
    return;
  }
  size_t page = tm_page_of(seg, p);
  size_t pages = seg->run_pages[page];
  if (TM_OPTION(junk)) tm_junk_fill(p, pages * TM_PAGE_SIZE);
  tm_track_free(p, pages * TM_PAGE_SIZE);
  seg->run_start[page >> 6] &= ~(1ull << (page & 63));
  seg->run_pages[page] = 0;
  tm_segment_give_pages(seg, page, pages);
  seg->freed_start[page >> 6] |= 1ull << (page & 63);
  seg->medium_count--;
  arena->medium_live--;
  tm_arena_maybe_drop_segment(arena, seg, TM_ARENA_EMPTY_KEEP);
  tm_arena_after_free(arena);
  pthread_mutex_unlock(&arena->lock);
  tm_heap_t *heap = tm_heap_get();
  if (heap) {
    tm_counter_add(&heap->big_frees[0], 1);
    tm_counter_add(&heap->big_free_bytes[0], pages * TM_PAGE_SIZE);
  }
}

bool tm_medium_lookup(const void *p, const char *op, size_t *usable)
{
  tm_segment_t *seg = tm_segment_of(p);
  pthread_mutex_lock(&seg->arena->lock);
  bool ok = tm_medium_check(seg, p, op);
  if (ok) *usable = (size_t)seg->run_pages[tm_page_of(seg, p)] * TM_PAGE_SIZE;
  pthread_mutex_unlock(&seg->arena->lock);
  return ok;
}

/* Grows a run over the free pages that follow it, or gives back its tail.
 * Returns false (nothing changed) when it cannot. */
bool tm_medium_resize_in_place(void *p, size_t new_size, size_t *usable)
{
  tm_segment_t *seg = tm_segment_of(p);
  tm_arena_t *arena = seg->arena;
  size_t page = tm_page_of(seg, p);
  size_t want = (new_size + TM_PAGE_SIZE - 1) >> TM_PAGE_SHIFT;
  bool ok = false;
  tm_heap_t *heap = tm_heap_get(); /* may be this thread's first call */
  pthread_mutex_lock(&arena->lock);
  size_t have = seg->run_pages[page];
  if (want <= have) {
    if (want < have) tm_segment_give_pages(seg, page + want, have - want);
    ok = true;
  } else if (page + want <= TM_SEGMENT_PAGES && !tm_bits_any(seg->page_used, page + have, want - have)) {
    tm_segment_take_pages(seg, page + have, want - have, NULL);
    ok = true;
  }
  if (ok) {
    seg->run_pages[page] = (uint16_t)want;
    *usable = want * TM_PAGE_SIZE;
    if (heap && want != have) { /* keep live bytes exact: count the resize as free + alloc */
      tm_counter_add(&heap->big_free_bytes[0], have * TM_PAGE_SIZE);
      tm_counter_add(&heap->big_alloc_bytes[0], want * TM_PAGE_SIZE);
    }
    if (want < have) tm_arena_after_free(arena);
  }
  pthread_mutex_unlock(&arena->lock);
  return ok;
}

/* Lock held: abandoned slabs that remote frees have emptied become free pages. */
static void tm_arena_release_abandoned_empty(tm_arena_t *arena)
{
  for (unsigned c = 0; c < TM_CLASS_COUNT; c++) {
    for (tm_slab_t *slab = arena->abandoned[c], *next; slab; slab = next) {
      next = slab->next;
      tm_slab_merge_remote(slab);
      if (slab->used != 0 || atomic_load_explicit(&slab->remote_inflight, memory_order_acquire) != 0) continue;
      if (slab->prev)
        slab->prev->next = slab->next;
      else
        arena->abandoned[c] = slab->next;
      if (slab->next) slab->next->prev = slab->prev;
      slab->next = slab->prev = NULL;
      tm_arena_release_slab(arena, slab);
    }
  }
}

/* Lock held: purge free pages once the delay has passed since the last purge,
 * and release abandoned slabs that remote frees have emptied. */
void tm_arena_after_free(tm_arena_t *arena)
{
  long delay = TM_OPTION(purge_delay_ms);
  if (delay < 0) return;
  uint64_t now = tm_os_now_ns();
  if (delay > 0 && now - arena->last_purge_ns < (uint64_t)delay * 1000000u) return;
  arena->last_purge_ns = now;
  tm_arena_release_abandoned_empty(arena);
  for (tm_segment_t *seg = arena->segments; seg; seg = seg->next)
    tm_segment_purge(seg);
}

/* Takes the lock. Releases emptied abandoned slabs, purges every free page
 * and unmaps every empty segment; returns the bytes given back. */
size_t tm_arena_trim(tm_arena_t *arena)
{
  size_t returned = 0;
  pthread_mutex_lock(&arena->lock);
  tm_arena_release_abandoned_empty(arena);
  for (tm_segment_t *seg = arena->segments, *next; seg; seg = next) {
    next = seg->next;
    if (seg->used_pages == seg->meta_pages) {
      returned += TM_SEGMENT_SIZE;
      tm_segment_destroy(seg);
    } else {
      returned += tm_segment_purge(seg);
    }
  }
  arena->last_purge_ns = tm_os_now_ns();
  pthread_mutex_unlock(&arena->lock);
  return returned;
}
