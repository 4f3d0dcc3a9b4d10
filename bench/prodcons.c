/* prodcons: producer/consumer pairs; every block is allocated on one thread
 * and freed on another. PAIRS producers allocate blocks of 16-512 bytes (some
 * up to 4 KiB), stamp them and hand them over in batches of BATCH pointers
 * through a bounded queue to their consumer, which checks and frees them.
 * The totals of blocks and bytes received must equal those sent. */
#include "bench.h"

#include <pthread.h>

enum { PAIRS = 2, BATCH = 256, QUEUE = 16, BATCHES = 12000 };

typedef struct {
  void *ptr[BATCH];
  uint32_t len[BATCH];
} batch_t;

typedef struct {
  pthread_mutex_t lock;
  pthread_cond_t nonempty, nonfull;
  batch_t *q[QUEUE];
  unsigned head, tail; /* head - tail = batches in the queue */
  uint64_t seed;
  uint64_t sent_blocks, sent_bytes, got_blocks, got_bytes;
} pair_t;

static uint64_t tag_of(const void *p, size_t n) { return (uint64_t)(uintptr_t)p * 31u + n; }

static void *producer(void *arg) {
  pair_t *pr = arg;
  uint64_t rng = pr->seed;
  for (int b = 0; b < BATCHES; b++) {
    batch_t *bt = xmalloc(sizeof *bt);
    for (int i = 0; i < BATCH; i++) {
      size_t n = (rng_next(&rng) % 16) == 0 ? rng_range(&rng, 513, 4096) : rng_range(&rng, 16, 512);
      void *p = xmalloc(n);
      stamp(p, n, tag_of(p, n));
      bt->ptr[i] = p;
      bt->len[i] = (uint32_t)n;
      pr->sent_bytes += n;
    }
    pr->sent_blocks += BATCH;
    pthread_mutex_lock(&pr->lock);
    while (pr->head - pr->tail == QUEUE)
      pthread_cond_wait(&pr->nonfull, &pr->lock);
    pr->q[pr->head++ % QUEUE] = bt;
    pthread_cond_signal(&pr->nonempty);
    pthread_mutex_unlock(&pr->lock);
  }
  pthread_mutex_lock(&pr->lock);
  while (pr->head - pr->tail == QUEUE)
    pthread_cond_wait(&pr->nonfull, &pr->lock);
  pr->q[pr->head++ % QUEUE] = NULL; /* end of stream */
  pthread_cond_signal(&pr->nonempty);
  pthread_mutex_unlock(&pr->lock);
  return NULL;
}

static void *consumer(void *arg) {
  pair_t *pr = arg;
  for (;;) {
    pthread_mutex_lock(&pr->lock);
    while (pr->head == pr->tail)
      pthread_cond_wait(&pr->nonempty, &pr->lock);
    batch_t *bt = pr->q[pr->tail++ % QUEUE];
    pthread_cond_signal(&pr->nonfull);
    pthread_mutex_unlock(&pr->lock);
    if (bt == NULL)
      return NULL;
    for (int i = 0; i < BATCH; i++) {
      check_stamp(bt->ptr[i], bt->len[i], tag_of(bt->ptr[i], bt->len[i]), "prodcons");
      pr->got_bytes += bt->len[i];
      free(bt->ptr[i]);
    }
    pr->got_blocks += BATCH;
    free(bt);
  }
}

int main(void) {
  static pair_t pairs[PAIRS];
  pthread_t th[2 * PAIRS];
  for (int i = 0; i < PAIRS; i++) {
    pthread_mutex_init(&pairs[i].lock, NULL);
    pthread_cond_init(&pairs[i].nonempty, NULL);
    pthread_cond_init(&pairs[i].nonfull, NULL);
    pairs[i].seed = 1000 + (uint64_t)i;
    if (pthread_create(&th[2 * i], NULL, producer, &pairs[i]) != 0 ||
        pthread_create(&th[2 * i + 1], NULL, consumer, &pairs[i]) != 0)
      bench_fail("pthread_create");
  }
  uint64_t blocks = 0;
  for (int i = 0; i < 2 * PAIRS; i++)
    pthread_join(th[i], NULL);
  for (int i = 0; i < PAIRS; i++) {
    if (pairs[i].got_blocks != pairs[i].sent_blocks || pairs[i].got_bytes != pairs[i].sent_bytes)
      bench_fail("pair %d: sent %llu blocks, %llu bytes; received %llu, %llu", i,
                 (unsigned long long)pairs[i].sent_blocks, (unsigned long long)pairs[i].sent_bytes,
                 (unsigned long long)pairs[i].got_blocks, (unsigned long long)pairs[i].got_bytes);
    blocks += pairs[i].got_blocks;
  }
  printf("prodcons: %d pairs, %llu blocks freed by another thread\n", PAIRS, (unsigned long long)blocks);
  return 0;
}
