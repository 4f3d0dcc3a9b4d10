/* Issue 8, item 1: false double free under cross-thread frees.
 *
 * One producer allocates 16-byte blocks and puts each into one of 1024 shared
 * slots (atomic exchange); when the slot held a block, the producer frees the
 * old one itself (an owner free). Eight consumers empty random slots and free
 * what they find (remote frees of the producer's slab). Every block carries a
 * stamp that the freeing thread checks first. Every free here is correct and
 * happens exactly once.
 *
 * The bug: the remote free sets its bit with fetch_or and then re-reads the
 * allocation bit; the producer's merge can consume that very bit in between,
 * and the consumer then withdraws it and reports a double free of a block
 * freed once. On the current core this aborts (or, here, calls the handler)
 * within seconds.
 *
 * The producer never gets more than 4096 owner frees ahead of the consumers'
 * remote frees (it yields until they catch up), so the race is exercised at
 * the same rate on an idle machine and on a loaded one where the consumers
 * get little CPU. Runs REGRESS_DURATION seconds (default 10), and on until
 * the consumers have made 2 million remote frees, at most 6 times as long;
 * in a child with an alarm. Passes when no report arrived, every stamp was
 * intact, tinymalloc_check() is 0 and no block is left live. Built with -DREGRESS_LIBC it runs the same
 * scenario on malloc/free (the glibc control). */
#include <pthread.h>

#include "regress.h"

#define CONSUMERS  8
#define SLOTS      1024
#define BLOCK_SIZE 16

static _Atomic(uint64_t *) slots[SLOTS];
static _Atomic int stop;
static _Atomic unsigned long produced, consumed, producer_frees, bad_stamps, reports;
static char first_report[256];

static void stamp(uint64_t *b, uint64_t v)
{
  b[0] = v;
  b[1] = ~v;
}

static int stamp_ok(const uint64_t *b) { return b[1] == ~b[0]; }

#if REGRESS_TINY
static void on_report(tinymalloc_error_kind_t kind, const char *op, void *ptr, const char *message, void *arg)
{
  (void)kind, (void)op, (void)ptr, (void)arg;
  if (atomic_fetch_add(&reports, 1) == 0) {
    snprintf(first_report, sizeof first_report, "%s", message);
  }
  atomic_store(&stop, 1);
}
#endif

static void *producer(void *arg)
{
  uint64_t rng = (uintptr_t)arg * 0x9E3779B97F4A7C15ull + 1;
  uint64_t serial = 0;
  while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
    uint64_t *b = R_MALLOC(BLOCK_SIZE);
    if (b == NULL) {
      regress_say("producer: out of memory\n");
      atomic_store(&stop, 1);
      break;
    }
    stamp(b, ++serial);
    atomic_fetch_add_explicit(&produced, 1, memory_order_relaxed);
    uint64_t *old = atomic_exchange_explicit(&slots[regress_rng(&rng) % SLOTS], b, memory_order_acq_rel);
    if (old != NULL) {
      if (!stamp_ok(old)) atomic_fetch_add(&bad_stamps, 1);
      R_FREE(old);
      atomic_fetch_add_explicit(&producer_frees, 1, memory_order_relaxed);
    }
    /* Keep the consumers' remote frees in step with the owner's frees. */
    while (atomic_load_explicit(&producer_frees, memory_order_relaxed) >
               atomic_load_explicit(&consumed, memory_order_relaxed) + 4096 &&
           !atomic_load_explicit(&stop, memory_order_relaxed))
      sched_yield();
  }
  return NULL;
}

static void *consumer(void *arg)
{
  uint64_t rng = (uintptr_t)arg * 0xD1B54A32D192ED03ull + 7;
  while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
    uint64_t *b = atomic_exchange_explicit(&slots[regress_rng(&rng) % SLOTS], NULL, memory_order_acq_rel);
    if (b == NULL) continue;
    if (!stamp_ok(b)) atomic_fetch_add(&bad_stamps, 1);
    R_FREE(b);
    atomic_fetch_add_explicit(&consumed, 1, memory_order_relaxed);
  }
  return NULL;
}

static void scenario(void *arg)
{
  double seconds = *(double *)arg;
#if REGRESS_TINY
  tinymalloc_set_error_handler(on_report, NULL);
#endif
  pthread_t p, c[CONSUMERS];
  REQUIRE(pthread_create(&p, NULL, producer, (void *)1) == 0, "pthread_create");
  for (uintptr_t i = 0; i < CONSUMERS; i++)
    REQUIRE(pthread_create(&c[i], NULL, consumer, (void *)(i + 2)) == 0, "pthread_create");
  double start = regress_now(), end = start + seconds;
  while (!atomic_load(&stop) && (regress_now() < end || (consumed < 2000000 && regress_now() < start + 6 * seconds))) {
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  atomic_store(&stop, 1);
  pthread_join(p, NULL);
  for (int i = 0; i < CONSUMERS; i++)
    pthread_join(c[i], NULL);
  for (int i = 0; i < SLOTS; i++) {
    uint64_t *b = atomic_exchange(&slots[i], NULL);
    if (b) {
      if (!stamp_ok(b)) atomic_fetch_add(&bad_stamps, 1);
      R_FREE(b);
    }
  }
  fprintf(stderr, "blocks produced %lu, freed by consumers %lu (remote), by the producer %lu (owner)\n",
          (unsigned long)produced, (unsigned long)consumed, (unsigned long)producer_frees);
  REQUIRE(reports == 0, "%lu misuse report(s) for correct frees, the first after %lu blocks: %s",
          (unsigned long)reports, (unsigned long)produced, first_report);
  REQUIRE(bad_stamps == 0, "%lu block(s) found overwritten before their free", (unsigned long)bad_stamps);
#if REGRESS_TINY
  REQUIRE(tinymalloc_check() == 0, "tinymalloc_check() found violations (listed above)");
  tinymalloc_stats_t st;
  tinymalloc_stats(&st);
  REQUIRE(st.live_blocks == 0, "%zu block(s) still live after every block was freed", st.live_blocks);
#endif
  fprintf(stderr, "ok\n");
}

int main(void)
{
  double seconds = regress_duration(10.0);
  printf("remote frees racing the owner's merges, %s, %.0f s: 1 producer, %d consumers, %d-byte blocks\n",
         REGRESS_ALLOCATOR, seconds, CONSUMERS, BLOCK_SIZE);
  regress_result_t r;
  regress_run(scenario, &seconds, 6 * seconds + 60, &r);
  char how[128];
  regress_outcome(&r, how, sizeof how);
  regress_dump(&r);
  if (r.exited && r.code == 0) {
    printf("PASS: %s\n", how);
    return 0;
  }
  int false_reports = regress_count_lines(r.err, "double free");
  printf("FAIL: %s%s\n", how,
         false_reports ? "; the allocator reported a double free of a block that was freed exactly once" : "");
  return 1;
}
