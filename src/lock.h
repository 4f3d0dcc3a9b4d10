/* lock.h: the one lock primitive of the core (lock.c has its slow paths): a
 * futex lock (0 free, 1 held, 2 held with waiters) that records its holder
 * for the fork child (see tm_lock_t in types.h). Uncontended, locking and
 * unlocking are one atomic instruction each. Nothing user-visible may happen
 * while one is held: no report, handler call, abort, and no system call that
 * can block (mmap, munmap, madvise, write). */
#ifndef TM_LOCK_H
#define TM_LOCK_H

#include "types.h"

/* Who holds a lock: the thread's id, the same in a fork child for the
 * forking thread. */
TM_INLINE uintptr_t tm_self(void) { return (uintptr_t)pthread_self(); }

/* clang-format off */
#define TM_LOCK_INIT {0, 0}
/* clang-format on */

void tm_lock_wait(tm_lock_t *lock) TM_HIDDEN;
void tm_lock_wake(tm_lock_t *lock) TM_HIDDEN;

TM_INLINE void tm_lock(tm_lock_t *lock)
{
  uint32_t free_state = 0;
  if (TM_UNLIKELY(!atomic_compare_exchange_strong_explicit(&lock->state, &free_state, 1, memory_order_acquire,
                                                           memory_order_relaxed)))
    tm_lock_wait(lock);
  atomic_store_explicit(&lock->holder, tm_self(), memory_order_relaxed);
}

TM_INLINE void tm_unlock(tm_lock_t *lock)
{
  atomic_store_explicit(&lock->holder, 0, memory_order_relaxed);
  if (TM_UNLIKELY(atomic_exchange_explicit(&lock->state, 0, memory_order_release) == 2)) tm_lock_wake(lock);
}

/* Whether the calling thread holds the lock. Yes only in a fork child's
 * repair after a fork from a signal handler: the code the signal
 * interrupted holds it, and lets it go once the handler returns. */
TM_INLINE bool tm_lock_mine(const tm_lock_t *lock)
{
  return atomic_load_explicit(&lock->holder, memory_order_relaxed) == tm_self();
}

/* Fork child only: whether the lock's data may be torn (held by a thread
 * that does not exist in the child). A lock held by nobody or by the forking
 * thread is consistent; a lock held by a vanished thread is freed. */
TM_INLINE bool tm_lock_repair_in_child(tm_lock_t *lock)
{
  uintptr_t holder = atomic_load_explicit(&lock->holder, memory_order_relaxed);
  if (holder == tm_self()) return false;
  /* Held with no holder recorded yet (or any more): nothing was changed
   * yet (or any more), the data is consistent. */
  atomic_store_explicit(&lock->holder, 0, memory_order_relaxed);
  atomic_store_explicit(&lock->state, 0, memory_order_relaxed);
  return holder != 0;
}

#endif
