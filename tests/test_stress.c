/* Threaded stress: THREADS threads allocate random sizes of all three
 * strategies, fill each block with a pattern derived from its id, hand a
 * share of them to other threads through a locked exchange, and every block
 * is verified before it is freed (by whichever thread frees it). At the end
 * tinymalloc_check() must pass and the live-byte statistic be back to zero. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "test_support.h"
#include "tinymalloc.h"

#define THREADS        6
#define OPS_PER_THREAD 200000
#define SLOTS          512
#define EXCHANGE       1024

typedef struct {
  unsigned char *p;
  size_t size;
  unsigned id;
} block_t;

static block_t exchange[EXCHANGE];
static int exchange_count;
static pthread_mutex_t exchange_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic unsigned long failures, cross_frees, reallocs, total_ops;
static _Atomic unsigned next_id;

static uint64_t rng_next(uint64_t *s)
{
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

static size_t random_size(uint64_t *rng)
{
  uint64_t r = rng_next(rng) % 1000;
  if (r < 900) return rng_next(rng) % 512;                    /* small, hot classes */
  if (r < 980) return rng_next(rng) % (16 << 10);             /* all small classes */
  if (r < 998) return (16 << 10) + rng_next(rng) % (1 << 20); /* medium */
  return (1 << 20) + rng_next(rng) % (3 << 20);               /* large */
}

static void verify_and_free(block_t *b)
{
  if (!check_pattern(b->p, b->size < 4096 ? b->size : 4096, b->id)) {
    fprintf(stderr, "block %u (%zu bytes at %p) corrupted\n", b->id, b->size, (void *)b->p);
    failures++;
  }
  tinyfree(b->p);
  b->p = NULL;
}

static void make_block(block_t *b, uint64_t *rng)
{
  b->size = random_size(rng);
  b->id = next_id++;
  b->p = tinymalloc(b->size);
  if (b->p == NULL) {
    failures++;
    return;
  }
  fill_pattern(b->p, b->size < 4096 ? b->size : 4096, b->id);
}

static void *worker(void *arg)
{
  uint64_t rng = 0x9e3779b97f4a7c15ull * ((uintptr_t)arg + 1);
  block_t own[SLOTS] = {{0}};
  for (int op = 0; op < OPS_PER_THREAD; op++) {
    block_t *b = &own[rng_next(&rng) % SLOTS];
    uint64_t action = rng_next(&rng) % 100;
    if (b->p == NULL) {
      make_block(b, &rng);
    } else if (action < 60) {
      verify_and_free(b);
    } else if (action < 75) {
      /* Hand the block to whichever thread takes from the exchange next. */
      pthread_mutex_lock(&exchange_lock);
      if (exchange_count < EXCHANGE) {
        exchange[exchange_count++] = *b;
        b->p = NULL;
      }
      pthread_mutex_unlock(&exchange_lock);
    } else if (action < 90) {
      block_t taken = {0};
      pthread_mutex_lock(&exchange_lock);
      if (exchange_count > 0) taken = exchange[--exchange_count];
      pthread_mutex_unlock(&exchange_lock);
      if (taken.p) {
        verify_and_free(&taken);
        cross_frees++;
      }
    } else {
      size_t new_size = random_size(&rng);
      unsigned char *q = tinyrealloc(b->p, new_size);
      if (q == NULL && new_size != 0) {
        failures++;
        continue;
      }
      size_t kept = b->size < new_size ? b->size : new_size;
      if (!check_pattern(q, kept < 4096 ? kept : 4096, b->id)) {
        fprintf(stderr, "realloc of block %u lost its contents\n", b->id);
        failures++;
      }
      b->p = q;
      b->size = new_size;
      fill_pattern(q, new_size < 4096 ? new_size : 4096, b->id);
      if (q == NULL) b->p = NULL;
      reallocs++;
    }
    total_ops++;
  }
  for (int i = 0; i < SLOTS; i++)
    if (own[i].p) verify_and_free(&own[i]);
  return NULL;
}

int main(void)
{
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  pthread_t threads[THREADS];
  for (uintptr_t i = 0; i < THREADS; i++)
    pthread_create(&threads[i], NULL, worker, (void *)i);
  for (int i = 0; i < THREADS; i++)
    pthread_join(threads[i], NULL);
  for (int i = 0; i < exchange_count; i++)
    verify_and_free(&exchange[i]);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;

  int violations = tinymalloc_check();
  tinymalloc_stats_t st;
  tinymalloc_stats(&st);
  printf("stress: %d threads, %lu ops in %.2f s (%.0f ops/s), %lu cross-thread frees, %lu reallocs\n", THREADS,
         (unsigned long)total_ops, seconds, (double)total_ops / seconds, (unsigned long)cross_frees,
         (unsigned long)reallocs);
  printf("stress: check violations %d, live blocks %zu, live bytes %zu, peak mapped %zu MiB, failures %lu\n",
         violations, st.live_blocks, st.live_bytes, st.peak_mapped_bytes >> 20, (unsigned long)failures);
  tinymalloc_trim();
  tinymalloc_stats(&st);
  printf("stress: after trim: segments %zu, resident %zu bytes\n", st.segments, st.resident_bytes);
  int ok = failures == 0 && violations == 0 && st.live_blocks == 0 && st.live_bytes == 0 && st.segments == 0 &&
           cross_frees > 1000;
  printf("%s\n", ok ? "1 passed, 0 failed" : "0 passed, 1 failed");
  return ok ? 0 : 1;
}
