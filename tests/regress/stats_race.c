/* Issue 8, item 10: the smaller races, for ThreadSanitizer (san-tsan preset:
 * ci/sanitizers.sh tsan). In other builds it is a functional smoke test that
 * passes on the current core; under TSan the current core reports data races.
 *
 * Phase 1, before any thread allocated: one thread sets the "arenas" option
 * (1, 2, 1, ... until it is refused with EBUSY) while another calls
 * tinymalloc_stats() in a loop and a third makes its first allocations. The
 * option check ("has any thread allocated?") and the write of the arena
 * count are done without a lock: TSan sees the write race with the readers,
 * and the check race with the first allocation's registration (TOCTOU).
 * Afterwards the option must be refused (EBUSY), and every thread that holds
 * a heap must be counted in an arena below arena_count.
 *
 * Phase 2: two threads grow and shrink large blocks with realloc (in place
 * when they can) while another calls tinymalloc_stats() in a loop: the
 * statistics read a large block's map_size under the arena lock, and the
 * in-place resize writes it without it.
 *
 * Passes when the run ends, tinymalloc_check() is 0 and no block is left;
 * under TSan (halt_on_error=1) a race report ends it with a failure.
 *
 *   stats_race [option,resize]   the phases to run (default both; the CMake
 *                                file registers one test per phase, so that
 *                                TSan's first report does not hide the other) */
#include <pthread.h>

#include "regress.h"

static _Atomic int stop, option_done, first_alloc_done;
static _Atomic unsigned long stats_calls, resizes, option_sets;
static int option_errno;

static void *stats_reader(void *arg)
{
  (void)arg;
  static tinymalloc_stats_t buffer; /* one reader thread */
  tinymalloc_stats_t *st = &buffer;
  while (!atomic_load(&stop)) {
    tinymalloc_stats(st);
    tinymalloc_counters_t c;
    tinymalloc_counters(&c);
    atomic_fetch_add(&stats_calls, 1);
  }
  return NULL;
}

static void *option_setter(void *arg)
{
  (void)arg;
  for (long v = 1;; v = v == 1 ? 2 : 1) {
    if (tinymalloc_option_set("arenas", v) != 0) {
      option_errno = errno;
      break;
    }
    atomic_fetch_add(&option_sets, 1);
    if (atomic_load(&first_alloc_done) && option_sets > 1000000) break;
  }
  atomic_store(&option_done, 1);
  return NULL;
}

static void *first_allocator(void *arg)
{
  (void)arg;
  struct timespec ts = {0, 2 * 1000 * 1000};
  nanosleep(&ts, NULL); /* let the setter and the reader run first */
  void *p = tinymalloc(64);
  REQUIRE(p != NULL, "tinymalloc");
  atomic_store(&first_alloc_done, 1);
  while (!atomic_load(&option_done))
    sched_yield();
  /* Still alive, holding its heap: it must be counted in a visible arena. */
  tinymalloc_stats_t *st = calloc(1, sizeof *st);
  tinymalloc_stats(st);
  size_t counted = 0;
  for (size_t i = 0; i < st->arena_count; i++)
    counted += st->arenas[i].threads;
  REQUIRE(counted >= 1, "this thread holds a heap but no arena below arena_count (%zu) counts it", st->arena_count);
  free(st);
  tinyfree(p);
  return NULL;
}

static void *resizer(void *arg)
{
  uint64_t rng = (uintptr_t)arg + 99;
  double end = regress_now() + 3.0;
  while (regress_now() < end) {
    size_t size = (size_t)(2 + regress_rng(&rng) % 6) << 20;
    unsigned char *p = tinymalloc(size);
    REQUIRE(p != NULL, "tinymalloc");
    p[0] = 0x5e;
    for (int k = 0; k < 8; k++) {
      size = (size_t)(2 + regress_rng(&rng) % 14) << 20;
      p = tinyrealloc(p, size);
      REQUIRE(p != NULL && p[0] == 0x5e, "tinyrealloc to %zu", size);
      atomic_fetch_add(&resizes, 1);
    }
    tinyfree(p);
  }
  return NULL;
}

int main(int argc, char **argv)
{
  const char *phases = argc > 1 ? argv[1] : "option,resize";
  printf("statistics and the arenas option racing allocation and large resizes (%s)\n", phases);
  pthread_t reader;
  REQUIRE(pthread_create(&reader, NULL, stats_reader, NULL) == 0, "pthread_create");
  if (strstr(phases, "option")) {
    /* Phase 1: nothing has allocated yet. */
    pthread_t setter, allocator;
    REQUIRE(pthread_create(&setter, NULL, option_setter, NULL) == 0, "pthread_create");
    REQUIRE(pthread_create(&allocator, NULL, first_allocator, NULL) == 0, "pthread_create");
    pthread_join(setter, NULL);
    pthread_join(allocator, NULL);
    printf("phase 1: option set %lu times, then refused with %s\n", (unsigned long)option_sets,
           option_errno ? strerrorname_np(option_errno) : "nothing");
    REQUIRE(option_errno == EBUSY, "the arenas option was not refused after the first allocation");
    REQUIRE(tinymalloc_option_set("arenas", 1) != 0 && errno == EBUSY, "arenas option accepted after allocation");
  }
  if (!strstr(phases, "resize")) {
    atomic_store(&stop, 1);
    pthread_join(reader, NULL);
    REQUIRE(tinymalloc_check() == 0, "tinymalloc_check() found violations");
    printf("PASS\n");
    return 0;
  }

  /* Phase 2: large blocks resized in place while statistics are read. */
  pthread_t r1, r2;
  REQUIRE(pthread_create(&r1, NULL, resizer, (void *)1) == 0, "pthread_create");
  REQUIRE(pthread_create(&r2, NULL, resizer, (void *)2) == 0, "pthread_create");
  pthread_join(r1, NULL);
  pthread_join(r2, NULL);
  atomic_store(&stop, 1);
  pthread_join(reader, NULL);
  printf("phase 2: %lu large resizes, %lu statistics snapshots\n", (unsigned long)resizes, (unsigned long)stats_calls);
  REQUIRE(tinymalloc_check() == 0, "tinymalloc_check() found violations");
  tinymalloc_stats_t *st = calloc(1, sizeof *st);
  tinymalloc_stats(st);
  REQUIRE(st->live_blocks == 0, "%zu block(s) left live", st->live_blocks);
  free(st);
  printf("PASS\n");
  return 0;
}
