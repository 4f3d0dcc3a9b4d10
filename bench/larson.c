/* larson: a server-like workload after the description of Larson and
 * Krishnan's benchmark (written from scratch here). THREADS threads each own
 * an array of SLOTS blocks and replace a random block with one of a random
 * size, again and again. After each round the threads exit and a new
 * generation of threads takes over the arrays, each thread the array of
 * another: blocks allocated by a thread that has exited are freed by another
 * one (cross-thread frees of an abandoned heap). Blocks are stamped with
 * their slot and generation and checked before they are freed. */
#include "bench.h"

#include <pthread.h>

enum { THREADS = 4, SLOTS = 2000, ROUNDS = 10, STEPS = 250000 };

typedef struct {
  void *ptr[SLOTS];
  size_t len[SLOTS];
  uint64_t tag[SLOTS];
} slots_t;

typedef struct {
  slots_t *s;
  uint64_t seed;
  uint64_t ops;
} work_t;

static size_t larson_size(uint64_t *rng) {
  /* 16-2048 bytes: five eighths up to 128, two eighths up to 1 KiB. */
  uint64_t r = rng_next(rng) % 8;
  if (r < 5)
    return rng_range(rng, 16, 128);
  if (r < 7)
    return rng_range(rng, 129, 1024);
  return rng_range(rng, 1025, 2048);
}

static void *worker(void *arg) {
  work_t *w = arg;
  uint64_t rng = w->seed;
  slots_t *s = w->s;
  for (int step = 0; step < STEPS; step++) {
    size_t i = (size_t)(rng_next(&rng) % SLOTS);
    check_stamp(s->ptr[i], s->len[i], s->tag[i], "larson");
    free(s->ptr[i]);
    s->len[i] = larson_size(&rng);
    s->ptr[i] = malloc(s->len[i]);
    if (s->ptr[i] == NULL)
      bench_fail("malloc(%zu) returned NULL", s->len[i]);
    s->tag[i] = rng_next(&rng) | 1;
    stamp(s->ptr[i], s->len[i], s->tag[i]);
    w->ops++;
  }
  return NULL;
}

int main(void) {
  static slots_t arrays[THREADS];
  uint64_t rng = 7, ops = 0;
  for (int t = 0; t < THREADS; t++)
    for (size_t i = 0; i < SLOTS; i++) {
      arrays[t].len[i] = larson_size(&rng);
      arrays[t].ptr[i] = xmalloc(arrays[t].len[i]);
      arrays[t].tag[i] = rng_next(&rng) | 1;
      stamp(arrays[t].ptr[i], arrays[t].len[i], arrays[t].tag[i]);
    }
  for (int round = 0; round < ROUNDS; round++) {
    pthread_t th[THREADS];
    work_t w[THREADS];
    for (int t = 0; t < THREADS; t++) {
      /* Generation `round` of thread t takes the array that thread t-round
       * used: every block it frees first was allocated by another thread. */
      w[t].s = &arrays[(t + round) % THREADS];
      w[t].seed = rng_next(&rng);
      w[t].ops = 0;
      if (pthread_create(&th[t], NULL, worker, &w[t]) != 0)
        bench_fail("pthread_create");
    }
    for (int t = 0; t < THREADS; t++) {
      pthread_join(th[t], NULL);
      ops += w[t].ops;
    }
  }
  for (int t = 0; t < THREADS; t++)
    for (size_t i = 0; i < SLOTS; i++) {
      check_stamp(arrays[t].ptr[i], arrays[t].len[i], arrays[t].tag[i], "larson end");
      free(arrays[t].ptr[i]);
    }
  if (ops != (uint64_t)THREADS * ROUNDS * STEPS)
    bench_fail("larson: %llu operations, expected %llu", (unsigned long long)ops,
               (unsigned long long)THREADS * ROUNDS * STEPS);
  printf("larson: %d threads, %llu replacements\n", THREADS, (unsigned long long)ops);
  return 0;
}
