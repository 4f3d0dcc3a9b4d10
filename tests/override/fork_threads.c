/* fork() while other threads allocate, for a plain program run with
 * LD_PRELOAD=libtinymalloc-override.so: three threads allocate, free and hand
 * blocks to each other without pause while the main thread forks again and
 * again; each child allocates (also from a new thread), checks its blocks
 * and the statistics, and exits. A child that deadlocks is killed by its alarm and fails the test. */
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "tinymalloc.h"

enum { WORKERS = 3, RING = 256 };

static atomic_int stop_workers;
static _Atomic(unsigned char *) exchange_slot;
static atomic_ulong worker_ops;
static int (*check_heap)(void);
static int (*get_stats)(tinymalloc_stats_t *);

static uint32_t next_random(uint32_t *state)
{
  *state = *state * 1664525u + 1013904223u;
  return *state >> 8;
}

/* Sizes across small, medium and (rarely) large blocks. */
static size_t random_size(uint32_t *state)
{
  uint32_t r = next_random(state);
  if (r % 1000 == 0) return (size_t)(2 << 20) + r % 4096;
  if (r % 50 == 0) return 16384 + r % 200000;
  return 1 + r % 2048;
}

/* Every block starts with its size and is filled with a byte derived from
 * it, so a block handed out twice or corrupted is noticed at free. */
static unsigned char *make_block(uint32_t *state)
{
  size_t size = random_size(state);
  if (size < sizeof(size_t) + 1) size = sizeof(size_t) + 1;
  unsigned char *p = malloc(size);
  CHECK(p != NULL);
  memcpy(p, &size, sizeof size);
  memset(p + sizeof size, (int)(size & 0xff), size - sizeof size);
  return p;
}

static void drop_block(unsigned char *p)
{
  if (p == NULL) return;
  size_t size;
  memcpy(&size, p, sizeof size);
  CHECK(p[size - 1] == (unsigned char)(size & 0xff));
  free(p);
}

static void *worker(void *arg)
{
  uint32_t state = (uint32_t)(uintptr_t)arg * 7919u + 1u;
  unsigned char *ring[RING] = {0};
  unsigned long ops = 0;
  while (!atomic_load(&stop_workers)) {
    size_t slot = next_random(&state) % RING;
    drop_block(ring[slot]);
    ring[slot] = make_block(&state);
    if (ops % 16 == 0) /* cross-thread frees */
      drop_block(atomic_exchange(&exchange_slot, make_block(&state)));
    ops++;
  }
  for (size_t i = 0; i < RING; i++)
    drop_block(ring[i]);
  atomic_fetch_add(&worker_ops, ops);
  return NULL;
}

static void *child_thread(void *arg)
{
  uint32_t state = (uint32_t)(uintptr_t)arg;
  for (int i = 0; i < 2000; i++)
    drop_block(make_block(&state));
  return NULL;
}

static void run_child(unsigned round)
{
  alarm(20); /* a deadlock in the child ends it by SIGALRM */
  uint32_t state = round + 17u;
  tinymalloc_stats_t before, during, after;
  CHECK(get_stats(&before) == 0);
  unsigned char *kept[512];
  for (int i = 0; i < 512; i++)
    kept[i] = make_block(&state);
  pthread_t thread;
  if (pthread_create(&thread, NULL, child_thread, (void *)(uintptr_t)round) != 0) _exit(3);
  pthread_join(thread, NULL);
  /* Only this thread runs in the child, so the counters are exact for what
   * it did. (tinymalloc_check would also compare the counters of the
   * parent's threads, which fork froze in the middle of their operations.) */
  CHECK(get_stats(&during) == 0);
  CHECK(during.live_blocks == before.live_blocks + 512);
  for (int i = 0; i < 512; i++)
    drop_block(kept[i]);
  CHECK(get_stats(&after) == 0);
  CHECK(after.live_blocks == before.live_blocks);
  CHECK(after.total_allocs >= before.total_allocs + 512 + 2000);
  exit(0);
}

int main(int argc, char **argv)
{
  unsigned rounds = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 200;
  check_heap = (int (*)(void))dlsym(RTLD_DEFAULT, "tinymalloc_check");
  get_stats = (int (*)(tinymalloc_stats_t *))dlsym(RTLD_DEFAULT, "tinymalloc_stats");
  if (check_heap == NULL || get_stats == NULL) {
    fprintf(stderr, "fork_threads: tinymalloc is not loaded (run with LD_PRELOAD)\n");
    return 1;
  }
  alarm(240);
  pthread_t threads[WORKERS];
  for (uintptr_t i = 0; i < WORKERS; i++)
    CHECK(pthread_create(&threads[i], NULL, worker, (void *)i) == 0);

  unsigned ok = 0;
  for (unsigned round = 0; round < rounds; round++) {
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) run_child(round);
    /* The parent keeps allocating between forks too. */
    uint32_t state = round;
    drop_block(make_block(&state));
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      fprintf(stderr, "fork_threads: child %u %s %d\n", round, WIFSIGNALED(status) ? "killed by signal" : "exited with",
              WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
      return 1;
    }
    ok++;
  }
  atomic_store(&stop_workers, 1);
  for (int i = 0; i < WORKERS; i++)
    CHECK(pthread_join(threads[i], NULL) == 0);
  drop_block(atomic_exchange(&exchange_slot, NULL));
  CHECK(check_heap() == 0);
  CHECK(atomic_load(&worker_ops) > 0);
  printf("fork_threads: %u forks ok, %lu worker operations\n", ok, atomic_load(&worker_ops));
  return 0;
}
