/* A fork child must not wait for a lock its own interrupted code holds
 * (found by the AFL++ smoke of afl_fork: four fork children hung in a futex
 * wait, orphaned).
 *
 * A signal handler forks while the thread is inside a medium malloc, which
 * holds its arena's lock. The child keeps that arena (the lock is its own
 * thread's: the interrupted malloc will finish and release it once the
 * handler returns). Its repair then settles the thread's full slabs: one
 * that other threads emptied while it was full is empty now, and when the
 * heap already keeps its quota of empty slabs it goes back to the arena,
 * which takes the arena's lock: held by this very thread, so the child
 * waited forever.
 *
 * White-box and deterministic: the thread takes its arena's lock itself
 * (as the interrupted malloc had) and forks; the child lets it go (as the
 * malloc would) and allocates. Without the fix the child hangs in the fork;
 * the parent kills it after 10 s and fails. */
#include <pthread.h>

#include "heap.h"
#include "lock.h"
#include "regress.h"
#include "segment.h"
#include "types.h"

enum { KEPT_SIZE = 2048, KEPT_BLOCKS = 16 * 32, FULL_SIZE = 512, FULL_BLOCKS = 3 * 128 };

static void *kept[KEPT_BLOCKS], *full[FULL_BLOCKS], *emptied[FULL_BLOCKS];
static size_t emptied_count;

static void *free_them(void *arg)
{
  (void)arg;
  for (size_t i = 0; i < emptied_count; i++)
    tinyfree(emptied[i]);
  return NULL;
}

static void scenario(void *arg)
{
  (void)arg;
  /* The heap's quota of empty slabs: 16 slabs of 2048-byte blocks emptied
   * by this thread (the heap keeps a few and gives the rest back). */
  for (size_t i = 0; i < KEPT_BLOCKS; i++)
    REQUIRE((kept[i] = tinymalloc(KEPT_SIZE)) != NULL, "malloc(%d)", KEPT_SIZE);
  for (size_t i = 0; i < KEPT_BLOCKS; i++)
    tinyfree(kept[i]);
  tm_heap_t *heap = tm_thread_heap;
  REQUIRE(heap != NULL && heap->empty_kept > 0, "the heap keeps no empty slab");
  /* A full slab of 512-byte blocks, which another thread then empties: its
   * frees are remote and wait, unmerged, until the slab is settled. */
  for (size_t i = 0; i < FULL_BLOCKS; i++)
    REQUIRE((full[i] = tinymalloc(FULL_SIZE)) != NULL, "malloc(%d)", FULL_SIZE);
  tm_slab_t *slab = tm_slab_of((uintptr_t)full[0]);
  REQUIRE(slab->flags & TM_SLAB_FULL, "the first slab of 512-byte blocks is not on the full list");
  for (size_t i = 0; i < FULL_BLOCKS; i++)
    if (tm_slab_of((uintptr_t)full[i]) == slab) emptied[emptied_count++] = full[i];
  pthread_t t;
  REQUIRE(pthread_create(&t, NULL, free_them, NULL) == 0, "pthread_create");
  pthread_join(t, NULL);
  /* The arena's lock held by this thread, as a malloc that a signal
   * interrupted holds it, and a fork (from the handler). */
  tm_lock_t *lock = &tm_segment_of(slab)->arena->lock;
  tm_lock(lock);
  pid_t pid = fork();
  if (pid == 0) {
    tm_unlock(lock); /* the interrupted malloc finishes */
    void *p = tinymalloc(FULL_SIZE);
    tinyfree(p);
    _exit(p != NULL ? 0 : 3);
  }
  tm_unlock(lock);
  REQUIRE(pid > 0, "fork: %s", strerror(errno));
  int status = 0;
  double deadline = regress_now() + 10 * regress_scale();
  pid_t waited;
  while ((waited = waitpid(pid, &status, WNOHANG)) == 0 && regress_now() < deadline)
    usleep(10000);
  if (waited == 0) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    REQUIRE(0, "the fork child hung in its repair (a lock its own thread held)");
  }
  REQUIRE(waited == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0, "the fork child failed (status %#x)", status);
  for (size_t i = 0; i < FULL_BLOCKS; i++)
    if (tm_slab_of((uintptr_t)full[i]) != slab) tinyfree(full[i]);
  fprintf(stderr, "ok: %zu blocks of a full slab freed by another thread, the child settled it\n", emptied_count);
}

int main(void)
{
  printf("fork with the arena lock held by the forking thread, a full slab emptied by another thread\n");
  regress_result_t r;
  regress_run(scenario, NULL, 60, &r);
  char how[128];
  regress_outcome(&r, how, sizeof how);
  regress_dump(&r);
  if (r.exited && r.code == 0) {
    printf("PASS: %s\n", how);
    return 0;
  }
  printf("FAIL: %s\n", how);
  return 1;
}
