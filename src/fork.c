/* fork.c owns fork safety and the load-time constructor that registers it.
 * No tinymalloc lock is held across fork(): holding them deadlocks against
 * glibc's own fork locks (a thread in fflush waits for a FILE lock whose
 * owner waits in realloc for an arena lock), and a fork from a signal
 * handler would wait for the lock the interrupted code holds. Instead the
 * child repairs: a lock held by a thread that does not exist there marks its
 * arena lost (never used again: its blocks leak in the child), the vanished
 * threads' heaps are retired and their slabs adopted, and the forking
 * thread's own state, consistent or about to be finished by the code the
 * signal interrupted, is kept. */
#include <pthread.h>

#include "arena.h"
#include "error.h"
#include "fork.h"
#include "heap.h"
#include "large.h"
#include "lock.h"
#include "medium.h"
#include "track.h"

static void tm_fork_child(void)
{
  uint32_t count = tm_arenas_in_use();
  bool mine[TM_MAX_ARENAS];
  for (uint32_t i = 0; i < TM_MAX_ARENAS; i++) {
    tm_arena_t *arena = &tm_arenas[i];
    mine[i] = tm_lock_mine(&arena->lock);
    if (tm_lock_repair_in_child(&arena->lock)) arena->lost = true;
  }
  tm_heap_fork_child();
  tm_heap_t *me = tm_thread_heap == &tm_dead_heap ? NULL : tm_thread_heap;
  if (me) tm_medium_cache_forget_lost(me);
  for (uint32_t i = 0; i < count; i++) {
    if (tm_arenas[i].lost || mine[i]) continue;
    tm_arena_adopt_orphans(&tm_arenas[i]);
    tm_medium_fork_child(&tm_arenas[i], me);
    tm_large_fork_child(&tm_arenas[i], me);
  }
  bool usable = false;
  for (uint32_t i = 0; i < count; i++)
    usable |= !tm_arenas[i].lost;
  if (!usable && count < TM_MAX_ARENAS) atomic_store_explicit(&tm_arena_count, count + 1, memory_order_relaxed);
  tm_heap_fork_child_finish();
  tm_track_fork_child();
}

void tm_fork_install(void)
{
  if (pthread_atfork(NULL, NULL, tm_fork_child) != 0)
    tm_warn("pthread_atfork failed: a fork child of a threaded program may deadlock", "");
}
