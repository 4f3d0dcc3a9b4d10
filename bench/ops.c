/* ops: N allocator operations of one kind, for counting instructions per
 * operation with callgrind (bench/run.py --callgrind runs it with N and 2N
 * and divides the difference by N, so that start-up, warm-up and the loop
 * around the calls cancel out).
 *
 *   ops small   N   malloc(32) + free
 *   ops xthread N   malloc(32) on the main thread, free on a second thread,
 *                   handed over in batches of 1000 (a semaphore post and
 *                   wait each way per batch: about 0.2 instruction per pair
 *                   on top, measured with mimalloc)
 *   ops medium  N   malloc(40960) + free
 *   ops calloc  N   calloc(16, 8) + free
 *   ops realloc N   malloc(32), realloc to 100, realloc to 1000, free
 *
 * Before anything is measured, BALLAST blocks of each size used here stay
 * allocated until the end, as a program's other objects would: without
 * them a single block malloc'd and freed again and again empties its page
 * on every free, and some allocators (mimalloc) then take their page-retire
 * path every time. WARMUP operations of the same kind run next. Each block's
 * first byte is written so that nothing can be optimised away. */
#define _GNU_SOURCE
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { WARMUP = 20000, BATCH = 1000, BALLAST = 64 };

static void *volatile sink;

static void fail(const char *what) {
  fprintf(stderr, "ops: FAILED: %s\n", what);
  exit(1);
}

static void *use(void *p) {
  if (p == NULL)
    fail("allocation returned NULL");
  *(volatile char *)p = 1;
  sink = p;
  return p;
}

static void small(long n) {
  for (long i = 0; i < n; i++)
    free(use(malloc(32)));
}

static void medium(long n) {
  for (long i = 0; i < n; i++)
    free(use(malloc(40960)));
}

static void zeroed(long n) {
  for (long i = 0; i < n; i++) {
    char *p = calloc(16, 8);
    if (p == NULL || p[0] != 0 || p[127] != 0)
      fail("calloc returned NULL or dirty memory");
    free(use(p));
  }
}

static void resize(long n) {
  for (long i = 0; i < n; i++) {
    char *p = use(malloc(32));
    p = use(realloc(p, 100));
    p = use(realloc(p, 1000));
    free(p);
  }
}

static void *batch[BATCH];
static sem_t full, empty;
static volatile int done;

static void *freer(void *arg) {
  (void)arg;
  for (;;) {
    sem_wait(&full);
    if (done)
      return NULL;
    for (int i = 0; i < BATCH; i++)
      free(batch[i]);
    sem_post(&empty);
  }
}

static void xthread_run(long n) {
  for (long done_ops = 0; done_ops < n; done_ops += BATCH) {
    sem_wait(&empty);
    for (int i = 0; i < BATCH; i++)
      batch[i] = use(malloc(32));
    sem_post(&full);
  }
}

int main(int argc, char **argv) {
  if (argc != 3)
    fail("usage: ops small|xthread|medium|calloc|realloc N");
  long n = strtol(argv[2], NULL, 10);
  if (n <= 0 || n % BATCH != 0)
    fail("N must be a positive multiple of 1000");
  const char *k = argv[1];
  static const size_t sizes[] = {32, 100, 128, 1000, 40960};
  static void *ballast[sizeof sizes / sizeof sizes[0]][BALLAST];
  for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
    for (int i = 0; i < BALLAST; i++)
      ballast[s][i] = use(malloc(sizes[s]));
  if (strcmp(k, "small") == 0) {
    small(WARMUP);
    small(n);
  } else if (strcmp(k, "medium") == 0) {
    medium(WARMUP);
    medium(n);
  } else if (strcmp(k, "calloc") == 0) {
    zeroed(WARMUP);
    zeroed(n);
  } else if (strcmp(k, "realloc") == 0) {
    resize(WARMUP);
    resize(n);
  } else if (strcmp(k, "xthread") == 0) {
    pthread_t th;
    sem_init(&full, 0, 0);
    sem_init(&empty, 0, 1);
    if (pthread_create(&th, NULL, freer, NULL) != 0)
      fail("pthread_create");
    xthread_run(WARMUP);
    xthread_run(n);
    sem_wait(&empty);
    done = 1;
    sem_post(&full);
    pthread_join(th, NULL);
  } else {
    fail("unknown kind");
  }
  for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
    for (int i = 0; i < BALLAST; i++)
      free(ballast[s][i]);
  return 0;
}
