/* Harness "threads": the input is split into op streams run by 2 to 4
 * threads at once, in one or two waves, over one shared slot table, so that
 * blocks are freed and reallocated by threads that did not allocate them and
 * outlive the thread that did. The shared shadow map is updated under a lock:
 * a block is inserted after the allocator returns it and removed before it
 * is given back. Encoding: fuzz/README.md. */
#include <pthread.h>
#include <sched.h>
#include <string.h>

#include "ops.h"

const char tmf_harness_name[] = "threads";

/* Streams are separated by this marker (also in fuzz/threads.dict). */
static const uint8_t stream_marker[4] = {0xff, 0xfe, 'T', 'M'};
#define TMF_MAX_THREADS 4
#define TMF_MAX_WAVES   2
#define TMF_MAX_CHUNKS  16

/* Ops beyond the shared set that only make sense with threads. */
enum thread_opcode_e { THREAD_YIELD = TMF_OP_COUNT, THREAD_SPIN, THREAD_EXIT, THREAD_OPCODE_COUNT };

typedef struct chunk_s {
  const uint8_t *data;
  size_t size;
} chunk_t;

typedef struct worker_s {
  tmf_ops_t *ctx;
  chunk_t chunks[TMF_MAX_CHUNKS];
  unsigned chunk_count;
  pthread_barrier_t *start;
} worker_t;

static void *worker_main(void *arg)
{
  worker_t *w = arg;
  pthread_barrier_wait(w->start);
  for (unsigned c = 0; c < w->chunk_count; c++) {
    tmf_reader_t r;
    tmf_reader_init(&r, w->chunks[c].data, w->chunks[c].size);
    while (!tmf_reader_done(&r)) {
      unsigned opcode = tmf_read_u8(&r) % THREAD_OPCODE_COUNT;
      if (opcode < TMF_OP_COUNT) {
        tmf_ops_step(w->ctx, &r, opcode);
      } else if (opcode == THREAD_YIELD) {
        sched_yield();
      } else if (opcode == THREAD_SPIN) {
        unsigned spins = 64u * tmf_read_u8(&r);
        for (volatile unsigned i = 0; i < spins; i++) {
        }
      } else {
        return NULL; /* leave early: the thread's slabs outlive it */
      }
    }
  }
  return NULL;
}

/* Splits data at every marker into at most TMF_MAX_CHUNKS chunks. */
static unsigned split_chunks(const uint8_t *data, size_t size, chunk_t *chunks)
{
  unsigned n = 0;
  size_t start = 0;
  for (size_t i = 0; i + sizeof stream_marker <= size && n < TMF_MAX_CHUNKS - 1; i++) {
    if (memcmp(data + i, stream_marker, sizeof stream_marker) == 0) {
      chunks[n++] = (chunk_t){data + start, i - start};
      start = i + sizeof stream_marker;
      i = start - 1;
    }
  }
  chunks[n++] = (chunk_t){data + start, size - start};
  return n;
}

int tmf_harness_run(const uint8_t *data, size_t size)
{
  static tmf_ops_t ctx;
  tmf_install_strict_handler(); /* idempotent: one atomic store */
  tmf_begin_input();
  if (size == 0) return 0;
  unsigned threads = 2 + data[0] % 3;
  unsigned waves = 1 + (data[0] / 3) % TMF_MAX_WAVES;
  chunk_t chunks[TMF_MAX_CHUNKS];
  unsigned chunk_count = split_chunks(data + 1, size - 1, chunks);

  tmf_ops_init(&ctx, true);
  for (unsigned wave = 0; wave < waves; wave++) {
    worker_t workers[TMF_MAX_THREADS];
    pthread_t ids[TMF_MAX_THREADS];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, threads);
    memset(workers, 0, sizeof workers);
    for (unsigned c = 0; c < chunk_count; c++) {
      if ((c / threads) % waves != wave) continue;
      worker_t *w = &workers[c % threads];
      w->chunks[w->chunk_count++] = chunks[c];
    }
    for (unsigned t = 0; t < threads; t++) {
      workers[t].ctx = &ctx;
      workers[t].start = &start;
      TMF_REQUIRE(pthread_create(&ids[t], NULL, worker_main, &workers[t]) == 0, "pthread_create failed");
    }
    for (unsigned t = 0; t < threads; t++)
      pthread_join(ids[t], NULL);
    pthread_barrier_destroy(&start);
    /* All workers are gone: the counters must be exact again. */
    tmf_ops_expect_stats(&ctx);
    int violations = tinymalloc_check();
    TMF_REQUIRE(violations == 0, "tinymalloc_check found %d violations after wave %u", violations, wave);
  }
  /* The main thread frees what the workers left: remote frees into slabs
   * whose owners have exited. */
  tmf_ops_finish(&ctx);
  tmf_end_of_input();
  return 0;
}
