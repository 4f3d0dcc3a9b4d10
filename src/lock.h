/* lock.h owns the one lock primitive of the core: a mutex that records its
 * holder for the fork child (see tm_lock_t in types.h). Nothing user-visible
 * may happen while one is held: no report, handler call, abort, and no
 * system call that can block (mmap, munmap, madvise, write). */
#ifndef TM_LOCK_H
#define TM_LOCK_H

#include "types.h"

/* A per-thread address, identical in a fork child for the forking thread. */
extern __thread tm_heap_t *tm_thread_heap __attribute__((tls_model("initial-exec"))) TM_HIDDEN;
TM_INLINE uintptr_t tm_self(void) { return (uintptr_t)&tm_thread_heap; }

#define TM_LOCK_INIT {PTHREAD_MUTEX_INITIALIZER, 0}

TM_INLINE void tm_lock(tm_lock_t *lock)
{
  pthread_mutex_lock(&lock->mutex);
  atomic_store_explicit(&lock->holder, tm_self(), memory_order_relaxed);
}

TM_INLINE void tm_unlock(tm_lock_t *lock)
{
  atomic_store_explicit(&lock->holder, 0, memory_order_relaxed);
  pthread_mutex_unlock(&lock->mutex);
}

TM_INLINE void tm_lock_init(tm_lock_t *lock)
{
  pthread_mutex_init(&lock->mutex, NULL);
  atomic_store_explicit(&lock->holder, 0, memory_order_relaxed);
}

/* Fork child only: whether the lock's data may be torn (held by a thread
 * that does not exist in the child). A lock held by nobody or by the forking
 * thread is consistent; a held one is made usable again. */
TM_INLINE bool tm_lock_repair_in_child(tm_lock_t *lock)
{
  uintptr_t holder = atomic_load_explicit(&lock->holder, memory_order_relaxed);
  if (holder == tm_self()) return false;
  if (holder != 0) {
    tm_lock_init(lock);
    return true;
  }
  /* Locked but not yet (or no longer) claimed: the holder was between the
   * mutex and the holder store, so nothing was changed yet (or any more). */
  if (pthread_mutex_trylock(&lock->mutex) == 0)
    pthread_mutex_unlock(&lock->mutex);
  else
    tm_lock_init(lock);
  return false;
}

#endif
