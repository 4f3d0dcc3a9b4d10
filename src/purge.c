/* purge.c owns the policy of giving memory back (see purge.h): the purge
 * clock of each arena, which free pages are old enough, which empty segments
 * and cached large mappings go, and doing it with the lock dropped. Pages
 * being purged are marked used and `purging` meanwhile, so nobody takes them
 * and their segment cannot be destroyed under the madvise. */
#include "bitmap.h"
#include "large.h"
#include "lock.h"
#include "options.h"
#include "os.h"
#include "purge.h"
#include "segment.h"

#define TM_ARENA_EMPTY_KEEP 1 /* empty segments an arena keeps mapped */
#define TM_PURGE_RANGES     64

typedef struct tm_purge_work_s {
  struct {
    tm_segment_t *seg;
    uint32_t first, pages;
  } range[TM_PURGE_RANGES];
  size_t ranges;
  tm_segment_t *doomed; /* detached empty segments, linked by next */
  tm_large_t *expired;  /* cached large mappings to unmap */
  bool more;            /* ranges left over for another round */
} tm_purge_work_t;

/* Lock held: reserves the pages of `cand` (free, dirty) for the purge. */
static void tm_purge_collect(tm_purge_work_t *work, tm_segment_t *seg, const uint64_t *cand)
{
  size_t i = 0;
  while ((i = tm_bits_next(cand, TM_SEGMENT_PAGES, i, true)) < TM_SEGMENT_PAGES) {
    size_t end = tm_bits_next(cand, TM_SEGMENT_PAGES, i, false);
    if (work->ranges == TM_PURGE_RANGES) {
      work->more = true;
      return;
    }
    work->range[work->ranges].seg = seg;
    work->range[work->ranges].first = (uint32_t)i;
    work->range[work->ranges].pages = (uint32_t)(end - i);
    work->ranges++;
    tm_bits_set(seg->page_used, i, end - i);
    tm_bits_set(seg->purging, i, end - i);
    seg->used_pages += (uint32_t)(end - i);
    i = end;
  }
}

/* Lock held: what this tick gives back. `all`: every free page and cached
 * mapping now, keeping `keep` empty segments (the rest go at once). */
static void tm_purge_plan(tm_arena_t *arena, tm_purge_work_t *work, bool all, size_t keep)
{
  size_t empty = 0;
  for (tm_segment_t *seg = arena->segments, *next; seg; seg = next) {
    next = seg->next;
    if (tm_segment_empty(seg)) {
      if (empty >= keep && (all || seg->empty_ticks >= 1)) {
        tm_segment_detach(seg);
        seg->next = work->doomed;
        work->doomed = seg;
        continue;
      }
      seg->empty_ticks++;
      empty++;
    }
    uint64_t cand[TM_PAGE_WORDS];
    for (size_t w = 0; w < TM_PAGE_WORDS; w++) {
      uint64_t free_dirty = seg->dirty[w] & ~seg->page_used[w];
      cand[w] = all ? free_dirty : seg->dirty_old[w] & free_dirty;
    }
    tm_purge_collect(work, seg, cand);
    /* Free now and not purged now: purged next tick if still free then. */
    for (size_t w = 0; w < TM_PAGE_WORDS; w++)
      seg->dirty_old[w] = seg->dirty[w] & ~seg->page_used[w];
  }
  work->expired = tm_large_cache_expire(arena, arena->tick, all);
}

/* No lock: the system calls. Returns the bytes given back. */
static size_t tm_purge_execute(tm_purge_work_t *work)
{
  size_t bytes = 0;
  for (size_t r = 0; r < work->ranges; r++) {
    size_t size = (size_t)work->range[r].pages << TM_PAGE_SHIFT;
    tm_os_purge(tm_page_addr(work->range[r].seg, work->range[r].first), size);
    bytes += size;
  }
  for (tm_segment_t *seg = work->doomed, *next; seg; seg = next) {
    next = seg->next;
    tm_segment_unmap(seg);
    bytes += TM_SEGMENT_SIZE;
  }
  return bytes + tm_large_unmap_list(work->expired);
}

/* Lock held: the purged pages are free and clean again. (A fork child whose
 * parent forked during the madvise keeps them reserved: a small leak.) */
static void tm_purge_finish(tm_purge_work_t *work)
{
  for (size_t r = 0; r < work->ranges; r++) {
    tm_segment_t *seg = work->range[r].seg;
    size_t first = work->range[r].first, pages = work->range[r].pages;
    tm_bits_clear(seg->purging, first, pages);
    tm_bits_clear(seg->dirty, first, pages);
    tm_bits_clear(seg->dirty_old, first, pages);
    tm_bits_clear(seg->page_used, first, pages);
    seg->used_pages -= (uint32_t)pages;
    if (first < seg->free_hint) seg->free_hint = (uint32_t)first;
  }
}

static size_t tm_purge_run_unlock(tm_arena_t *arena, bool all, size_t keep)
{
  size_t bytes = 0;
  for (;;) {
    tm_purge_work_t work = {.ranges = 0, .doomed = NULL, .expired = NULL, .more = false};
    tm_purge_plan(arena, &work, all, keep);
    if (work.ranges == 0 && work.doomed == NULL && work.expired == NULL) break;
    tm_unlock(&arena->lock);
    bytes += tm_purge_execute(&work);
    tm_lock(&arena->lock);
    tm_purge_finish(&work);
    if (!work.more) break;
  }
  tm_unlock(&arena->lock);
  return bytes;
}

bool tm_purge_due(tm_arena_t *arena)
{
  long delay = TM_OPTION(purge_delay_ms);
  if (delay < 0 || arena->lost) return false;
  if (delay == 0) return true;
  /* The clock is read at every fourth call: a purge may come a few frees late. */
  if ((++arena->clock_skip & 3) != 0) return false;
  return tm_os_now_ns() - arena->tick_ns >= (uint64_t)delay * 1000000u;
}

void tm_purge_tick_unlock(tm_arena_t *arena)
{
  long delay = TM_OPTION(purge_delay_ms);
  arena->tick_ns = tm_os_now_ns();
  arena->tick++;
  tm_purge_run_unlock(arena, delay == 0, TM_ARENA_EMPTY_KEEP);
}

void tm_purge_unlock(tm_arena_t *arena)
{
  if (tm_purge_due(arena))
    tm_purge_tick_unlock(arena);
  else
    tm_unlock(&arena->lock);
}

size_t tm_purge_all_unlock(tm_arena_t *arena)
{
  if (arena->lost) {
    tm_unlock(&arena->lock);
    return 0;
  }
  arena->tick_ns = tm_os_now_ns();
  return tm_purge_run_unlock(arena, true, 0);
}
