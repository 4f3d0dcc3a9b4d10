/* large.h: large blocks (large.c): over 1 MiB, or aligned beyond what a
 * segment offers. Each is a mapping of its own, aligned to max(segment,
 * alignment), header in its first page, registered in the segment map and
 * listed in its arena. Freed mappings wait in a small per-arena cache. */
#ifndef TM_LARGE_H
#define TM_LARGE_H

#include "error.h"
#include "types.h"

TM_INLINE uint8_t *tm_large_user(const tm_large_t *large) { return (uint8_t *)large + large->user_offset; }

/* A block of `need` bytes (page-rounded) aligned to `alignment`, from the
 * arena's cache or a fresh mapping; *clean tells whether it reads as zero.
 * Alignment 0 (detection mode): a fresh mapping whose block ends against a
 * guard page, 16-byte aligned. */
void *tm_large_alloc(tm_arena_t *arena, size_t need, size_t alignment, bool *clean, size_t *usable) TM_HIDDEN;
/* Whether p may be where a large block started, in a segment marked freed:
 * a page boundary (a plain block, or one aligned to more), or a 16-byte
 * boundary in the page after its segment's first, the header's (detection
 * mode's guarded blocks end against their guard page). A free there is a
 * double free of a block already given back; anywhere else in such memory,
 * an invalid free. */
TM_INLINE bool tm_large_freed_start(const void *p)
{
  uintptr_t a = (uintptr_t)p, in_seg = a & TM_SEGMENT_MASK;
  return (a & (TM_PAGE_SIZE - 1)) == 0 || ((a & 15) == 0 && in_seg > TM_PAGE_SIZE && in_seg < 2 * TM_PAGE_SIZE);
}

/* The header of the large block `p` starts, or NULL with `fault` filled.
 * The segment map is consulted before any header is read. */
tm_large_t *tm_large_find(const void *p, tm_fault_t *fault) TM_HIDDEN;
/* Frees a block found by tm_large_find (fills `fault` on a second free). */
void tm_large_free(tm_large_t *large, tm_fault_t *fault) TM_HIDDEN;
/* The two halves of a free: claiming the block (false with `fault` filled
 * when it was freed already) and giving a claimed block back. */
bool tm_large_claim(tm_large_t *large, tm_fault_t *fault) TM_HIDDEN;
void tm_large_release(tm_large_t *large) TM_HIDDEN;
/* Resizes in place (shrink, or grow over the following pages) or, when
 * `may_move`, moves the mapping without copying. Returns the block's new
 * address and usable size, or NULL (nothing changed). */
void *tm_large_resize(tm_large_t *large, size_t need, bool may_move, size_t *usable) TM_HIDDEN;
/* Detection mode: resizes a guarded block to hold `size` bytes, in place or
 * by moving its pages (no copy); the block keeps its offset in the mapping,
 * its pages end at the first page boundary at or past `size` and the page
 * after them is the guard. Returns its address and, in *usable, the bytes up
 * to the guard (the caller writes the canary after `size`); NULL when it
 * cannot (then nothing changed). */
void *tm_large_resize_guarded(tm_large_t *large, size_t size, size_t *usable) TM_HIDDEN;

/* Fork child, no other thread: freed large blocks still listed that wait in
 * no quarantine of `me` (vanished threads' quarantines) are released; live
 * ones a thread had not yet marked in the segment map are marked. */
void tm_large_fork_child(tm_arena_t *arena, const tm_heap_t *me) TM_HIDDEN;
/* Arena lock held: unlinks the cached mappings older than `tick` - 1 (all of
 * them when `all`), returns them as a list for tm_large_unmap_list. */
tm_large_t *tm_large_cache_expire(tm_arena_t *arena, uint32_t tick, bool all) TM_HIDDEN;
/* No lock: unmaps every mapping of the list. Returns the bytes. */
size_t tm_large_unmap_list(tm_large_t *list) TM_HIDDEN;

#endif
