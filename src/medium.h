/* medium.h: medium blocks (medium.c): runs of 4 KiB pages inside an arena's
 * segments, for requests from 16 KiB to 1 MiB (and aligned requests up to
 * 1 MiB), with a per-heap cache of freed runs of up to 128 KiB. Faults are
 * returned, never reported, so the caller reports with no lock held. */
#ifndef TM_MEDIUM_H
#define TM_MEDIUM_H

#include "error.h"
#include "types.h"

/* A run for `need` bytes aligned to `alignment` (<= 1 MiB), from `heap`'s
 * cache (heap may be NULL) or the arena; *clean tells whether its pages read
 * as zero. NULL with errno = ENOMEM. */
void *tm_medium_alloc(tm_heap_t *heap, tm_arena_t *arena, size_t need, size_t alignment, bool *clean) TM_HIDDEN;
/* `p` is in an arena segment and not in a slab. A live run start gives its
 * usable size; anything else fills `fault` and gives 0. */
size_t tm_medium_usable(const void *p, tm_fault_t *fault) TM_HIDDEN;
/* Frees the run `p` starts into `heap`'s cache (heap may be NULL) or the
 * arena (fills `fault` instead when it is not a live run). */
void tm_medium_free(tm_heap_t *heap, void *p, tm_fault_t *fault) TM_HIDDEN;
/* The two halves of a free: claiming the run (its pages, or 0 with `fault`
 * filled) and giving a claimed run to the cache or the arena. */
size_t tm_medium_claim(void *p, tm_fault_t *fault) TM_HIDDEN;
void tm_medium_release(tm_heap_t *heap, void *p, size_t pages) TM_HIDDEN;
/* Grows the run over the free pages that follow it, or gives back its tail;
 * returns the new usable size, or 0 when it cannot (nothing changed). The
 * caller has validated `p` and tracked a shrink already. */
size_t tm_medium_resize(void *p, size_t need) TM_HIDDEN;
/* Fork child, no other thread, `arena` usable: runs cached or quarantined by
 * heaps other than `me` (vanished threads, possibly mid-update) go back to
 * the arena. */
void tm_medium_fork_child(tm_arena_t *arena, tm_heap_t *me) TM_HIDDEN;
/* Fork child: `heap`'s cached runs in lost arenas are given up (leaked). */
void tm_medium_cache_forget_lost(tm_heap_t *heap) TM_HIDDEN;
/* Gives every run of `heap`'s cache back to its arena (thread exit, trim). */
void tm_medium_cache_flush(tm_heap_t *heap) TM_HIDDEN;

#endif
