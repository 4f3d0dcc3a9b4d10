/* large.c owns large blocks (see large.h): mapping, finding and validating a
 * pointer, freeing into the arena's cache of mappings (bounded, aged by the
 * purge ticks of purge.c), reusing a cached mapping, and resizing: in place,
 * or by moving the pages with mremap (no copy). Mappings change only with no
 * lock held; the segment map is marked before memory goes back to the kernel.
 * It never reads the block. */
#include <errno.h>

#include "detect.h"
#include "large.h"
#include "lock.h"
#include "options.h"
#include "os.h"
#include "segmap.h"
#include "track.h"

#define TM_LARGE_CACHE_COUNT 8
#define TM_LARGE_CACHE_BYTES ((size_t)128 << 20)

static void tm_large_link(tm_large_t **head, tm_large_t *large)
{
  large->prev = NULL;
  large->next = *head;
  if (*head) (*head)->prev = large;
  *head = large;
}

static void tm_large_unlink(tm_large_t **head, tm_large_t *large)
{
  if (large->prev)
    large->prev->next = large->next;
  else
    *head = large->next;
  if (large->next) large->next->prev = large->prev;
  large->next = large->prev = NULL;
}

/* Lock held: the cached mapping to serve `map_size` bytes whose block starts
 * `offset` bytes in, aligned as asked: the smallest one that is large enough,
 * else the largest one (it will grow). Its pages are resident already: a
 * reused mapping costs no page faults where a fresh one faults every page.
 * `guarded` (detection mode): only mappings of freed guarded blocks, which
 * stay inaccessible in the cache but for the header page, so any of them
 * that is large enough serves (the block's pages are opened again and the
 * page after them, still inaccessible, is its guard); never a smaller one. */
static tm_large_t *tm_large_cache_take(tm_arena_t *arena, size_t map_size, size_t offset, size_t map_align,
                                       bool guarded)
{
  tm_large_t *fit = NULL, *largest = NULL;
  for (tm_large_t *c = arena->large_cache; c; c = c->next) {
    if (c->guarded != guarded) continue;
    if (!guarded && (((uintptr_t)c & (map_align - 1)) != 0 || c->user_offset != offset)) continue;
    if (c->map_size >= map_size && (fit == NULL || c->map_size < fit->map_size)) fit = c;
    if (c->map_size < map_size && (largest == NULL || c->map_size > largest->map_size)) largest = c;
  }
  tm_large_t *c = fit || guarded ? fit : largest;
  if (c) {
    tm_large_unlink(&arena->large_cache, c);
    arena->large_cached_bytes -= c->map_size;
    arena->large_cached_count--;
  }
  return c;
}

/* No lock, `c` taken from the cache (still marked freed in the segment map):
 * cut its tail or grow it to `map_size` bytes. NULL when it could not grow
 * (then it is gone: the caller maps afresh). */
static tm_large_t *tm_large_refit(tm_large_t *c, size_t map_size, size_t map_align)
{
  if (c->map_size >= map_size) {
    /* The excess stays with the block (resident, reused when it is freed
     * again) unless it dwarfs it: cutting and regrowing costs page faults. */
    size_t excess = c->map_size - map_size;
    if (excess > 4 * map_size && excess > ((size_t)32 << 20)) {
      tm_os_unmap((uint8_t *)c + map_size, excess);
      c->map_size = map_size;
    }
    return c;
  }
  if (tm_os_grow_in_place(c, c->map_size, map_size)) {
    c->map_size = map_size;
    return c;
  }
  /* Tracked builds cannot move: the tools' records stay at the old address. */
  tm_large_t *moved = TM_TRACKING ? NULL : tm_os_move(c, c->map_size, map_size, map_align);
  if (moved) {
    moved->map_size = map_size;
    return moved;
  }
  tm_os_unmap(c, c->map_size);
  return NULL;
}

/* A block's mapping is ready (extent, usable size, guarded set): it goes
 * live on the arena's list and, last, into the segment map (until then a
 * free of this address was a stale free). */
static void *tm_large_publish(tm_arena_t *arena, tm_large_t *large, size_t *usable_out)
{
  large->requested = 0;
  large->arena = arena;
  atomic_store_explicit(&large->live, 1, memory_order_relaxed);
  tm_lock(&arena->lock);
  tm_large_link(&arena->large, large);
  arena->large_live++;
  arena->large_bytes += large->usable;
  arena->large_allocs++;
  tm_unlock(&arena->lock);
  *usable_out = large->usable;
  tm_segmap_set((uintptr_t)large, large->map_size, TM_SEG_LARGE_HEAD, TM_SEG_LARGE_BODY);
  return tm_large_user(large);
}

/* No lock: a cached guarded mapping for `data` bytes of block pages, its
 * pages resident (no fault, unlike a fresh mapping); NULL when it could not
 * be opened (then it is gone). An excess that dwarfs the block is cut, as
 * in tm_large_refit; a smaller one stays inaccessible after the guard. */
static tm_large_t *tm_large_reopen_guarded(tm_large_t *c, size_t map_size, size_t data)
{
  size_t excess = c->map_size - map_size;
  if (excess > 4 * map_size && excess > ((size_t)32 << 20)) {
    tm_os_unmap((uint8_t *)c + map_size, excess);
    c->map_size = map_size;
  }
  if (!tm_os_protect((uint8_t *)c + TM_PAGE_SIZE, data, true)) {
    tm_os_unmap(c, c->map_size);
    return NULL;
  }
  return c;
}

/* A cached mapping that fits (none once the arena is lost), under its lock. */
static tm_large_t *tm_large_cache_get(tm_arena_t *arena, size_t map_size, size_t offset, size_t align, bool guarded)
{
  tm_lock(&arena->lock);
  tm_large_t *large = arena->lost ? NULL : tm_large_cache_take(arena, map_size, offset, align, guarded);
  tm_unlock(&arena->lock);
  return large;
}

/* A fresh mapping with its header; the tools are told of its `data` bytes
 * from `offset` (not the header page): as the block itself when they are
 * exactly the block about to be handed out (`is_block`: its malloc hook
 * sets every byte), as fresh pages otherwise. */
static tm_large_t *tm_large_map(size_t map_size, size_t align, size_t offset, size_t data, bool is_block)
{
  tm_large_t *large = tm_os_map_aligned(map_size, align);
  if (large == NULL) return NULL;
  large->magic = TM_LARGE_MAGIC;
  large->map_size = map_size;
  if (is_block)
    tm_track_os_map_block((uint8_t *)large + offset, data);
  else
    tm_track_os_map((uint8_t *)large + offset, data);
  return large;
}

/* Detection mode: the block ends (to within 16 bytes) against a page that is
 * never accessible, after its header page and its data pages. */
static void *tm_large_alloc_guarded(tm_arena_t *arena, size_t need, bool *clean, size_t *usable_out)
{
  size_t data = (need + TM_PAGE_SIZE - 1) & ~(TM_PAGE_SIZE - 1);
  if (data > TM_MAX_REQUEST - 2 * TM_PAGE_SIZE) {
    errno = ENOMEM;
    return NULL;
  }
  size_t map_size = TM_PAGE_SIZE + data + TM_PAGE_SIZE, block = (need + 15) & ~(size_t)15;
  tm_large_t *large = tm_large_cache_get(arena, map_size, TM_PAGE_SIZE, TM_SEGMENT_SIZE, true);
  if (large) large = tm_large_reopen_guarded(large, map_size, data);
  *clean = large == NULL;
  if (large == NULL) {
    large = tm_large_map(map_size, TM_SEGMENT_SIZE, TM_PAGE_SIZE, data, false);
    if (large == NULL) return NULL;
    tm_os_protect((uint8_t *)large + TM_PAGE_SIZE + data, TM_PAGE_SIZE, false);
  }
  large->user_offset = TM_PAGE_SIZE + data - block;
  large->usable = block;
  large->guarded = true;
  return tm_large_publish(arena, large, usable_out);
}

void *tm_large_alloc(tm_arena_t *arena, size_t need, size_t alignment, bool *clean, size_t *usable_out)
{
  if (TM_UNLIKELY(alignment == 0)) return tm_large_alloc_guarded(arena, need, clean, usable_out);
  size_t offset = alignment > TM_PAGE_SIZE ? alignment : TM_PAGE_SIZE;
  if (need > TM_MAX_REQUEST - offset) {
    errno = ENOMEM;
    return NULL;
  }
  size_t usable = (need + TM_PAGE_SIZE - 1) & ~(TM_PAGE_SIZE - 1);
  if (usable > TM_MAX_REQUEST - offset) {
    errno = ENOMEM;
    return NULL;
  }
  size_t map_size = offset + usable;
  size_t map_align = alignment > TM_SEGMENT_SIZE ? alignment : TM_SEGMENT_SIZE;
  tm_large_t *large = tm_large_cache_get(arena, map_size, offset, map_align, false);
  if (large) large = tm_large_refit(large, map_size, map_align);
  *clean = large == NULL;
  if (large == NULL) {
    large = tm_large_map(map_size, map_align, offset, map_size - offset, true);
    if (large == NULL) return NULL;
    large->user_offset = offset;
  }
  large->usable = large->map_size - offset;
  large->guarded = false;
  return tm_large_publish(arena, large, usable_out);
}

tm_large_t *tm_large_find(const void *p, tm_fault_t *fault)
{
  uintptr_t seg = (uintptr_t)p & ~(uintptr_t)TM_SEGMENT_MASK;
  /* A body segment: walk back to the head (only blocks aligned to a segment
   * or more start outside their head segment). */
  uint8_t kind;
  while ((kind = tm_segmap_kind(seg)) == TM_SEG_LARGE_BODY)
    seg -= TM_SEGMENT_SIZE;
  if (kind != TM_SEG_LARGE_HEAD) {
    /* The caller saw a live large block here a moment ago: another thread's
     * free of it (a racing double free) may have given it back since. */
    if (kind == TM_SEG_FREED_LARGE && tm_large_freed_start(p))
      tm_fault_set(fault, TINYMALLOC_ERROR_DOUBLE_FREE, p, "large block already freed", 0, NULL);
    else if (kind == TM_SEG_FREED_LARGE)
      tm_fault_set(fault, TINYMALLOC_ERROR_INVALID_FREE, p, "points into memory tinymalloc already returned to the OS",
                   0, NULL);
    else
      tm_fault_set(fault, TINYMALLOC_ERROR_INVALID_FREE, p, "not allocated by tinymalloc", 0, NULL);
    return NULL;
  }
  tm_large_t *large = (tm_large_t *)seg;
  uint8_t *user = tm_large_user(large);
  if (user != p) {
    if ((const uint8_t *)p > user && (const uint8_t *)p < user + large->usable)
      tm_fault_set(fault, TINYMALLOC_ERROR_INTERIOR, p, NULL, large->usable, user);
    else
      tm_fault_set(fault, TINYMALLOC_ERROR_INVALID_FREE, p, "points into tinymalloc metadata", 0, NULL);
    return NULL;
  }
  return large;
}

bool tm_large_claim(tm_large_t *large, tm_fault_t *fault)
{
  /* Two threads freeing the same block: exactly one wins the claim. */
  if (atomic_exchange_explicit(&large->live, 0, memory_order_acq_rel) == 0) {
    tm_fault_set(fault, TINYMALLOC_ERROR_DOUBLE_FREE, tm_large_user(large), NULL, large->usable, NULL);
    return false;
  }
  return true;
}

/* The segment map is marked first, the tools told second: a fork child that
 * finds the mark finishes the release of a vanished thread without telling
 * the tools again (tm_large_fork_child). */
static void tm_large_release_marked(tm_large_t *large);

void tm_large_release(tm_large_t *large)
{
  tm_segmap_set((uintptr_t)large, large->map_size, TM_SEG_FREED_LARGE, TM_SEG_FREED_LARGE);
  tm_track_free(tm_large_user(large), large->usable);
  tm_large_release_marked(large);
}

static void tm_large_release_marked(tm_large_t *large)
{
  tm_arena_t *arena = large->arena;
  tm_large_t *evicted = NULL;
  tm_lock(&arena->lock);
  if (!arena->lost) {
    tm_large_unlink(&arena->large, large);
    arena->large_live--;
    arena->large_bytes -= large->usable;
  }
  if (!arena->lost && large->map_size <= TM_LARGE_CACHE_BYTES / 2) {
    large->cached_tick = arena->tick;
    tm_large_link(&arena->large_cache, large);
    arena->large_cached_bytes += large->map_size;
    arena->large_cached_count++;
    /* Over the bound: the oldest go now. */
    while (arena->large_cached_count > TM_LARGE_CACHE_COUNT || arena->large_cached_bytes > TM_LARGE_CACHE_BYTES) {
      tm_large_t *oldest = arena->large_cache;
      while (oldest->next)
        oldest = oldest->next;
      tm_large_unlink(&arena->large_cache, oldest);
      arena->large_cached_bytes -= oldest->map_size;
      arena->large_cached_count--;
      oldest->next = evicted;
      evicted = oldest;
    }
  } else {
    large->next = NULL;
    evicted = large;
  }
  tm_unlock(&arena->lock);
  tm_large_unmap_list(evicted);
}

/* The large block this thread is freeing, from before its claim to the end
 * of its release: a fork from a signal handler that interrupted the free
 * leaves it to this thread, which finishes the release in the child when
 * the handler returns (tm_large_fork_child). */
static __thread tm_large_t *_Atomic tm_large_in_flight __attribute__((tls_model("initial-exec")));

void tm_large_free(tm_large_t *large, tm_fault_t *fault)
{
  atomic_store_explicit(&tm_large_in_flight, large, memory_order_relaxed);
  atomic_signal_fence(memory_order_seq_cst);
  if (tm_large_claim(large, fault)) {
    /* TINYMALLOC_ZERO_ON_FREE: a cached mapping must not keep the old data. */
    if (TM_UNLIKELY(TM_FEATURES() & TM_FEATURE_ZERO)) tm_os_purge(tm_large_user(large), large->usable);
    tm_large_release(large);
  }
  atomic_signal_fence(memory_order_seq_cst);
  atomic_store_explicit(&tm_large_in_flight, NULL, memory_order_relaxed);
}

void tm_large_fork_child(tm_arena_t *arena, const tm_heap_t *me)
{
  const tm_quarantine_t *q = me ? me->quarantine : NULL;
  for (tm_large_t *large = arena->large, *next; large; large = next) {
    next = large->next;
    if (atomic_load_explicit(&large->live, memory_order_relaxed)) {
      /* A thread was between linking a new block and marking the segment
       * map (tm_large_publish) when the fork came: marked now. A vanished
       * thread's block stays live (nobody's: a leak in the child, like
       * every block it held); this thread's, interrupted by a handler that
       * forked, is marked again (the same marks) when it goes on. */
      if (tm_segmap_kind((uintptr_t)large) != TM_SEG_LARGE_HEAD)
        tm_segmap_set((uintptr_t)large, large->map_size, TM_SEG_LARGE_HEAD, TM_SEG_LARGE_BODY);
      continue;
    }
    bool mine = false;
    for (size_t i = 0; q && i < q->count && !mine; i++)
      mine = q->entry[(q->head + i) % q->capacity].p == tm_large_user(large);
    if (mine || large == atomic_load_explicit(&tm_large_in_flight, memory_order_relaxed)) continue;
    /* A vanished thread claimed it. Past the segment-map mark it may have
     * told the tools already (Valgrind would call a second free invalid);
     * at worst, in the instant between the two, the tools keep it live. */
    if (tm_segmap_kind((uintptr_t)large) == TM_SEG_FREED_LARGE)
      tm_large_release_marked(large);
    else
      tm_large_release(large);
  }
}

tm_large_t *tm_large_cache_expire(tm_arena_t *arena, uint32_t tick, bool all)
{
  tm_large_t *expired = NULL;
  for (tm_large_t *c = arena->large_cache, *next; c; c = next) {
    next = c->next;
    if (!all && tick - c->cached_tick < 2) continue;
    tm_large_unlink(&arena->large_cache, c);
    arena->large_cached_bytes -= c->map_size;
    arena->large_cached_count--;
    c->next = expired;
    expired = c;
  }
  return expired;
}

size_t tm_large_unmap_list(tm_large_t *list)
{
  size_t bytes = 0;
  for (tm_large_t *c = list, *next; c; c = next) {
    next = c->next;
    bytes += c->map_size;
    tm_os_unmap(c, c->map_size);
  }
  return bytes;
}

/* Lock held: new extent of a live block (the statistics read it under the lock). */
static void tm_large_set_extent(tm_large_t *large, size_t map_size)
{
  tm_arena_t *arena = large->arena;
  size_t usable = map_size - large->user_offset;
  if (!arena->lost) arena->large_bytes = arena->large_bytes - large->usable + usable;
  large->map_size = map_size;
  large->usable = usable;
}

void *tm_large_resize(tm_large_t *large, size_t need, bool may_move, size_t *usable_out)
{
  size_t usable = (need + TM_PAGE_SIZE - 1) & ~(TM_PAGE_SIZE - 1);
  size_t offset = large->user_offset;
  if (usable > TM_MAX_REQUEST - offset) return NULL;
  size_t new_map = offset + usable, old_map = large->map_size;
  tm_arena_t *arena = large->arena;
  *usable_out = usable;
  if (new_map == old_map) return tm_large_user(large);
  if (new_map < old_map) {
    /* Segments wholly past the new end stop being ours before the kernel
     * gets them back: another thread may map them the moment they are. */
    uintptr_t keep_end = ((uintptr_t)large + new_map + TM_SEGMENT_MASK) & ~(uintptr_t)TM_SEGMENT_MASK;
    uintptr_t old_end = (uintptr_t)large + old_map;
    tm_lock(&arena->lock);
    tm_large_set_extent(large, new_map);
    tm_unlock(&arena->lock);
    if (old_end > keep_end) tm_segmap_set(keep_end, old_end - keep_end, TM_SEG_FREED_LARGE, TM_SEG_FREED_LARGE);
    tm_os_unmap((uint8_t *)large + new_map, old_map - new_map);
    return tm_large_user(large);
  }
  if (tm_os_grow_in_place(large, old_map, new_map)) {
    tm_segmap_set((uintptr_t)large, new_map, TM_SEG_LARGE_HEAD, TM_SEG_LARGE_BODY);
    tm_lock(&arena->lock);
    tm_large_set_extent(large, new_map);
    tm_unlock(&arena->lock);
    return tm_large_user(large);
  }
  if (!may_move) return NULL;
  size_t align = offset > TM_PAGE_SIZE ? offset : TM_SEGMENT_SIZE;
  if (align < TM_SEGMENT_SIZE) align = TM_SEGMENT_SIZE;
  /* The statistics walk the arena's list under the lock while the pages
   * move: the block leaves the list for the move. The old addresses are
   * given up by it: they are marked first. */
  tm_lock(&arena->lock);
  if (!arena->lost) tm_large_unlink(&arena->large, large);
  tm_unlock(&arena->lock);
  tm_segmap_set((uintptr_t)large, old_map, TM_SEG_FREED_LARGE, TM_SEG_FREED_LARGE);
  tm_large_t *moved = tm_os_move(large, old_map, new_map, align);
  if (moved == NULL) {
    tm_segmap_set((uintptr_t)large, old_map, TM_SEG_LARGE_HEAD, TM_SEG_LARGE_BODY);
    moved = large;
  }
  tm_lock(&arena->lock);
  if (!arena->lost) tm_large_link(&arena->large, moved);
  if (moved != large) tm_large_set_extent(moved, new_map);
  tm_unlock(&arena->lock);
  if (moved == large) return NULL;
  tm_segmap_set((uintptr_t)moved, new_map, TM_SEG_LARGE_HEAD, TM_SEG_LARGE_BODY);
  return tm_large_user(moved);
}

/* Lock held: a guarded block's new extent. */
static void tm_large_set_guarded_extent(tm_large_t *large, size_t map_size, size_t usable)
{
  tm_arena_t *arena = large->arena;
  if (!arena->lost) arena->large_bytes = arena->large_bytes - large->usable + usable;
  large->map_size = map_size;
  large->usable = usable;
}

void *tm_large_resize_guarded(tm_large_t *large, size_t size, size_t *usable_out)
{
  size_t start = large->user_offset, old_map = large->map_size;
  if (size > TM_MAX_REQUEST - start - 3 * TM_PAGE_SIZE) return NULL;
  size_t data_end = (start + large->usable + TM_PAGE_SIZE - 1) & ~(TM_PAGE_SIZE - 1);
  size_t new_end = (start + size + TM_PAGE_SIZE - 1) & ~(TM_PAGE_SIZE - 1);
  size_t new_map = new_end + TM_PAGE_SIZE;
  uint8_t *base = (uint8_t *)large;
  tm_arena_t *arena = large->arena;
  *usable_out = new_end - start;
  if (new_end < data_end) {
    /* Shrinks: the page after the new end becomes the guard, the rest of
     * the mapping goes (segments wholly past the new end are marked first,
     * as in tm_large_resize). */
    if (!tm_os_protect(base + new_end, TM_PAGE_SIZE, false)) return NULL;
    uintptr_t keep_end = ((uintptr_t)base + new_map + TM_SEGMENT_MASK) & ~(uintptr_t)TM_SEGMENT_MASK;
    uintptr_t old_end = (uintptr_t)base + old_map;
    tm_lock(&arena->lock);
    tm_large_set_guarded_extent(large, new_map, new_end - start);
    tm_unlock(&arena->lock);
    if (old_end > keep_end) tm_segmap_set(keep_end, old_end - keep_end, TM_SEG_FREED_LARGE, TM_SEG_FREED_LARGE);
    tm_os_unmap(base + new_map, old_map - new_map);
    return tm_large_user(large);
  }
  if (new_map <= old_map) { /* grows into pages the mapping has (kept, inaccessible, after a guard) */
    if (new_end > data_end && !tm_os_protect(base + data_end, new_end - data_end, true)) return NULL;
    tm_lock(&arena->lock);
    tm_large_set_guarded_extent(large, old_map, new_end - start);
    tm_unlock(&arena->lock);
    return tm_large_user(large);
  }
  /* Grows past the mapping: one accessible range (mremap takes one), grown
   * in place or moved without a copy (as in tm_large_resize), then the guard
   * again. */
  if (!tm_os_protect(base + data_end, old_map - data_end, true)) return NULL;
  if (tm_os_grow_in_place(large, old_map, new_map)) {
    tm_os_protect(base + new_end, TM_PAGE_SIZE, false);
    tm_segmap_set((uintptr_t)large, new_map, TM_SEG_LARGE_HEAD, TM_SEG_LARGE_BODY);
    tm_lock(&arena->lock);
    tm_large_set_guarded_extent(large, new_map, new_end - start);
    tm_unlock(&arena->lock);
    return tm_large_user(large);
  }
  tm_lock(&arena->lock);
  if (!arena->lost) tm_large_unlink(&arena->large, large);
  tm_unlock(&arena->lock);
  tm_segmap_set((uintptr_t)large, old_map, TM_SEG_FREED_LARGE, TM_SEG_FREED_LARGE);
  tm_large_t *moved = tm_os_move(large, old_map, new_map, TM_SEGMENT_SIZE);
  if (moved == NULL) {
    tm_os_protect(base + data_end, old_map - data_end, false);
    tm_segmap_set((uintptr_t)large, old_map, TM_SEG_LARGE_HEAD, TM_SEG_LARGE_BODY);
    tm_lock(&arena->lock);
    if (!arena->lost) tm_large_link(&arena->large, large);
    tm_unlock(&arena->lock);
    return NULL;
  }
  tm_os_protect((uint8_t *)moved + new_end, TM_PAGE_SIZE, false);
  tm_lock(&arena->lock);
  if (!arena->lost) tm_large_link(&arena->large, moved);
  tm_large_set_guarded_extent(moved, new_map, new_end - start);
  tm_unlock(&arena->lock);
  tm_segmap_set((uintptr_t)moved, new_map, TM_SEG_LARGE_HEAD, TM_SEG_LARGE_BODY);
  return tm_large_user(moved);
}
