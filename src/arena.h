/* arena.h: the per-CPU arenas (arena.c): which arena a new thread uses, and
 * the supply of slabs to thread heaps (carving, adopting slabs abandoned by
 * exited threads, taking back empty ones). */
#ifndef TM_ARENA_H
#define TM_ARENA_H

#include "error.h"
#include "types.h"

extern tm_arena_t tm_arenas[TM_MAX_ARENAS] TM_HIDDEN;
extern _Atomic uint32_t tm_arena_count TM_HIDDEN; /* 0 until decided */

/* The number of arenas in use (decided from the options on first use). */
uint32_t tm_arena_count_slow(void) TM_HIDDEN;
TM_INLINE uint32_t tm_arenas_in_use(void)
{
  uint32_t count = atomic_load_explicit(&tm_arena_count, memory_order_acquire);
  return TM_LIKELY(count != 0) ? count : tm_arena_count_slow();
}
TM_INLINE uint32_t tm_arena_index(const tm_arena_t *arena) { return (uint32_t)(arena - tm_arenas); }
/* The arena for a new thread heap (by CPU), never a lost one. */
tm_arena_t *tm_arena_pick(void) TM_HIDDEN;
/* A slab of class `cls` with a free block, owned by `heap` from now on:
 * adopted from the arena's abandoned slabs or freshly carved. NULL when no
 * memory can be mapped. Faults found merging are added to `faults`. */
tm_slab_t *tm_arena_get_slab(tm_arena_t *arena, tm_heap_t *heap, unsigned cls, tm_faults_t *faults) TM_HIDDEN;
/* An empty slab (no live block, remote frees merged) goes back to the arena
 * of its segment. Takes the lock; false (slab kept) when that arena is lost. */
bool tm_arena_release_slab(tm_slab_t *slab, tm_faults_t *faults) TM_HIDDEN;
/* Thread exit: the slab (remote frees merged, owner already TM_OWNER_ARENA)
 * goes to its arena, released when empty, abandoned otherwise. */
void tm_arena_take_over(tm_slab_t *slab, tm_faults_t *faults) TM_HIDDEN;
/* Takes the lock, merges and releases abandoned slabs that became empty and
 * gives back every free page, empty segment and cached mapping. */
size_t tm_arena_trim(tm_arena_t *arena, tm_faults_t *faults) TM_HIDDEN;
/* Lock held: the abandoned slabs that were full when last merged. */
tm_slab_t *tm_arena_abandoned_full(const tm_arena_t *arena) TM_HIDDEN;
/* Fork child, no other thread: slabs of the heaps in `dead` (not alive) are
 * recounted from their bitmaps and abandoned to their arenas. */
void tm_arena_adopt_orphans(tm_arena_t *arena) TM_HIDDEN;

#endif
