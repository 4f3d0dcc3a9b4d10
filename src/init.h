/* init.h: one-time initialisation (init.c): options, arenas, the thread-exit
 * key. Nothing in it allocates; a call from the first constructor works. */
#ifndef TM_INIT_H
#define TM_INIT_H

#include "base.h"

extern _Atomic int tm_init_state TM_HIDDEN; /* 0 not started, 1 running, 2 done */
void tm_init_slow(void) TM_HIDDEN;
/* The load-time constructor's initialisation: reads the options if the
 * first call came before the C library had set up the environment. */
void tm_init_at_load(void) TM_HIDDEN;
/* The arena count for the "arenas" option value (0: one per CPU). */
uint32_t tm_default_arena_count(long option) TM_HIDDEN;
TM_INLINE void tm_init(void)
{
  if (TM_UNLIKELY(atomic_load_explicit(&tm_init_state, memory_order_acquire) != 2)) tm_init_slow();
}

#endif
