/* purge.h: giving memory back to the OS by age (purge.c). A free page goes
 * back (madvise) once it has stayed free for a whole purge period; an empty
 * segment beyond the one kept per arena is unmapped after a period; a cached
 * large mapping is unmapped after a period. The clock ticks when the arena is
 * next used after the delay; system calls run with the lock dropped. */
#ifndef TM_PURGE_H
#define TM_PURGE_H

#include "types.h"

/* Arena lock held: whether a purge tick is due (then tm_purge_tick_unlock). */
bool tm_purge_due(tm_arena_t *arena) TM_HIDDEN;
/* Arena lock held on entry, released on return: a purge tick now. */
void tm_purge_tick_unlock(tm_arena_t *arena) TM_HIDDEN;
/* Arena lock held on entry, released on return: runs a purge tick first when
 * one is due. Every path that frees pages ends its critical section here. */
void tm_purge_unlock(tm_arena_t *arena) TM_HIDDEN;
/* Arena lock held on entry, released on return: purges every free page,
 * unmaps every empty segment and every cached large mapping now. Returns the
 * bytes given back. */
size_t tm_purge_all_unlock(tm_arena_t *arena) TM_HIDDEN;

#endif
