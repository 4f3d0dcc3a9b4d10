/* arena.c owns the per-CPU arenas: choosing one for a thread, handing slabs
 * to thread heaps (adopting abandoned ones first, carving fresh ones), taking
 * back empty and abandoned slabs, and the arena side of trim. Everything runs
 * under the arena's own lock (no process-wide lock); segments are mapped with
 * the lock dropped, and every path that frees pages ends in tm_purge_unlock.
 * Abandoned slabs that were still full are kept apart and looked at again
 * only at purge ticks, so that adopting never rescans them. */
#include <errno.h>
#include <sched.h>

#include "arena.h"
#include "bitmap.h"
#include "init.h"
#include "lock.h"
#include "options.h"
#include "purge.h"
#include "segment.h"
#include "slab.h"

/* Valid before any initialisation: a call from the first constructor works. */
tm_arena_t tm_arenas[TM_MAX_ARENAS] = {[0 ... TM_MAX_ARENAS - 1] = {.lock = TM_LOCK_INIT}};
_Atomic uint32_t tm_arena_count;

/* Abandoned slabs that had no free block when last merged: index
 * TM_CLASS_COUNT of no list; kept on abandoned_full (one list per arena). */
static tm_slab_t *tm_abandoned_full[TM_MAX_ARENAS];

uint32_t tm_arena_count_slow(void)
{
  tm_init();
  uint32_t unset = 0, count = tm_default_arena_count(TM_OPTION(arenas));
  if (!atomic_compare_exchange_strong_explicit(&tm_arena_count, &unset, count, memory_order_acq_rel,
                                               memory_order_acquire))
    count = unset;
  return count;
}

tm_arena_t *tm_arena_pick(void)
{
  static _Atomic uint32_t round_robin;
  uint32_t count = tm_arenas_in_use();
  int cpu = sched_getcpu();
  uint32_t n = cpu >= 0 ? (uint32_t)cpu : atomic_fetch_add_explicit(&round_robin, 1, memory_order_relaxed);
  for (uint32_t i = 0; i < count; i++) {
    tm_arena_t *arena = &tm_arenas[(n + i) % count];
    if (!arena->lost) return arena;
  }
  return &tm_arenas[0]; /* unreachable: the fork child keeps one arena usable */
}

static void tm_slab_list_push(tm_slab_t **head, tm_slab_t *slab)
{
  slab->prev = NULL;
  slab->next = *head;
  if (*head) (*head)->prev = slab;
  *head = slab;
}

static void tm_slab_list_remove(tm_slab_t **head, tm_slab_t *slab)
{
  if (slab->prev)
    slab->prev->next = slab->next;
  else
    *head = slab->next;
  if (slab->next) slab->next->prev = slab->prev;
  slab->next = slab->prev = NULL;
}

/* Lock held: the slot becomes free pages. */
static void tm_arena_release_locked(tm_slab_t *slab)
{
  tm_segment_t *seg = tm_segment_of(slab);
  tm_slab_uncarve(slab);
  seg->slab_count--;
  tm_segment_give_pages(seg, (size_t)slab->slot * TM_SLAB_PAGES, TM_SLAB_PAGES);
}

/* Lock held: abandoned slabs on the full list are merged again; those with
 * room go back to their class list, empty ones are released. */
static void tm_arena_revisit_full(tm_arena_t *arena, tm_faults_t *faults)
{
  tm_slab_t **full = &tm_abandoned_full[tm_arena_index(arena)];
  for (tm_slab_t *slab = *full, *next; slab; slab = next) {
    next = slab->next;
    tm_slab_merge(slab, faults);
    if (slab->used == slab->capacity) continue;
    tm_slab_list_remove(full, slab);
    if (slab->used == 0)
      tm_arena_release_locked(slab);
    else
      tm_slab_list_push(&arena->abandoned[slab->class_index], slab);
  }
}

/* Lock held: every abandoned slab of the class is merged; empty ones are released. */
static size_t tm_arena_release_abandoned_empty(tm_arena_t *arena, tm_faults_t *faults)
{
  size_t released = 0;
  tm_arena_revisit_full(arena, faults);
  for (unsigned c = 0; c < TM_CLASS_COUNT; c++) {
    for (tm_slab_t *slab = arena->abandoned[c], *next; slab; slab = next) {
      next = slab->next;
      tm_slab_merge(slab, faults);
      if (slab->used != 0) continue;
      tm_slab_list_remove(&arena->abandoned[c], slab);
      tm_arena_release_locked(slab);
      released++;
    }
  }
  return released;
}

tm_slab_t *tm_arena_get_slab(tm_arena_t *arena, tm_heap_t *heap, unsigned cls, tm_faults_t *faults)
{
  tm_lock(&arena->lock);
  tm_slab_t *found = NULL;
  while ((found = arena->abandoned[cls]) != NULL) {
    tm_slab_list_remove(&arena->abandoned[cls], found);
    tm_slab_merge(found, faults);
    if (found->used < found->capacity) break;
    tm_slab_list_push(&tm_abandoned_full[tm_arena_index(arena)], found);
  }
  if (found != NULL) {
    found->flags = 0;
    atomic_store_explicit(&found->owner, heap, memory_order_release);
    tm_unlock(&arena->lock);
    return found;
  }
  size_t first = 0;
  tm_segment_t *seg = tm_segment_find_pages(arena, TM_SLAB_PAGES, TM_SLAB_PAGES, &first);
  while (seg == NULL) {
    tm_unlock(&arena->lock);
    tm_segment_t *fresh = tm_segment_map(arena);
    if (fresh == NULL) {
      errno = ENOMEM;
      return NULL;
    }
    tm_lock(&arena->lock);
    tm_segment_attach(arena, fresh);
    seg = tm_segment_find_pages(arena, TM_SLAB_PAGES, TM_SLAB_PAGES, &first);
  }
  tm_segment_take_pages(seg, first, TM_SLAB_PAGES, NULL);
  seg->slab_count++;
  found = &seg->slabs[first / TM_SLAB_PAGES];
  tm_slab_carve(found, cls, heap);
  tm_unlock(&arena->lock);
  return found;
}

/* Lock held, released on return: a purge tick, when one is due, also
 * looks at the abandoned slabs again. */
static void tm_arena_unlock_after_free(tm_arena_t *arena, tm_faults_t *faults)
{
  if (!tm_purge_due(arena)) {
    tm_unlock(&arena->lock);
    return;
  }
  tm_arena_release_abandoned_empty(arena, faults);
  tm_purge_tick_unlock(arena);
}

bool tm_arena_release_slab(tm_slab_t *slab, tm_faults_t *faults)
{
  tm_arena_t *arena = tm_segment_of(slab)->arena;
  /* A fork child settling its thread's slabs (tm_heap_fork_child_finish)
   * while the code a signal interrupted holds this lock: waiting would
   * never end. The slab stays with the heap, as with a lost arena. */
  if (TM_UNLIKELY(tm_lock_mine(&arena->lock))) return false;
  tm_lock(&arena->lock);
  if (arena->lost) {
    tm_unlock(&arena->lock);
    return false;
  }
  tm_arena_release_locked(slab);
  tm_arena_unlock_after_free(arena, faults);
  return true;
}

void tm_arena_take_over(tm_slab_t *slab, tm_faults_t *faults)
{
  tm_arena_t *arena = tm_segment_of(slab)->arena;
  tm_lock(&arena->lock);
  if (arena->lost) {
    tm_unlock(&arena->lock);
    return;
  }
  tm_slab_merge(slab, faults);
  slab->flags = 0;
  if (slab->used == 0)
    tm_arena_release_locked(slab);
  else if (slab->used == slab->capacity)
    tm_slab_list_push(&tm_abandoned_full[tm_arena_index(arena)], slab);
  else
    tm_slab_list_push(&arena->abandoned[slab->class_index], slab);
  tm_arena_unlock_after_free(arena, faults);
}

size_t tm_arena_trim(tm_arena_t *arena, tm_faults_t *faults)
{
  tm_lock(&arena->lock);
  if (arena->lost) {
    tm_unlock(&arena->lock);
    return 0;
  }
  tm_arena_release_abandoned_empty(arena, faults);
  return tm_purge_all_unlock(arena);
}

tm_slab_t *tm_arena_abandoned_full(const tm_arena_t *arena) { return tm_abandoned_full[tm_arena_index(arena)]; }

void tm_arena_adopt_orphans(tm_arena_t *arena)
{
  /* The abandoned lists are rebuilt: slabs of vanished heaps join them. */
  for (tm_segment_t *seg = arena->segments; seg; seg = seg->next) {
    for (size_t slot = 0; slot < TM_SLOTS; slot++) {
      tm_slab_t *slab = &seg->slabs[slot];
      tm_heap_t *owner = atomic_load_explicit(&slab->owner, memory_order_relaxed);
      /* Written only when it changes: every write of the child copies a page. */
      if (atomic_load_explicit(&slab->notify, memory_order_relaxed) != TM_NOTIFY_IDLE)
        atomic_store_explicit(&slab->notify, TM_NOTIFY_IDLE, memory_order_relaxed);
      if (atomic_load_explicit(&slab->block_size, memory_order_relaxed) == 0 || owner == NULL ||
          owner == TM_OWNER_ARENA || owner->alive)
        continue;
      uint32_t allocated = 0;
      uint64_t free_words = 0;
      for (uint32_t w = 0; w < slab->words; w++) {
        uint64_t alloc = atomic_load_explicit(&slab->bits[w].alloc, memory_order_relaxed);
        allocated += (uint32_t)__builtin_popcountll(alloc & ~tm_slab_padding(slab->capacity, w));
        if (alloc != ~0ull) free_words |= 1ull << w;
      }
      slab->used = allocated;
      slab->free_words = free_words;
      slab->flags = 0;
      atomic_store_explicit(&slab->owner, TM_OWNER_ARENA, memory_order_relaxed);
      tm_slab_list_push(&arena->abandoned[slab->class_index], slab);
    }
  }
}
