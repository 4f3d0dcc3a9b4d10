/* lock.c owns the slow paths of tm_lock (lock.h): a short spin, then
 * sleeping in the kernel (futex) until the holder wakes a waiter. The sleep
 * is waiting for a lock, not holding one. */
#include <errno.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lock.h"

void tm_lock_wait(tm_lock_t *lock)
{
  for (int spin = 0; spin < 100; spin++) {
    uint32_t free_state = 0;
    if (atomic_load_explicit(&lock->state, memory_order_relaxed) == 0 &&
        atomic_compare_exchange_weak_explicit(&lock->state, &free_state, 1, memory_order_acquire,
                                              memory_order_relaxed))
      return;
    __builtin_ia32_pause();
  }
  /* 2: held, and somebody may be asleep on it (the unlock must wake). A free
   * keeps errno: the futex call's EAGAIN or EINTR must not leak out. */
  int saved = errno;
  while (atomic_exchange_explicit(&lock->state, 2, memory_order_acquire) != 0)
    syscall(SYS_futex, &lock->state, FUTEX_WAIT_PRIVATE, 2, NULL, NULL, 0);
  errno = saved;
}

void tm_lock_wake(tm_lock_t *lock)
{
  int saved = errno;
  syscall(SYS_futex, &lock->state, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
  errno = saved;
}
