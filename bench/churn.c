/* churn: small-block churn on one thread.
 *   churn lifo  batches of 1000 blocks of 16-512 bytes, freed in reverse order
 *   churn fifo  a ring of 20000 live blocks; each step frees the oldest and
 *               allocates a new one in its place (blocks outlive many others)
 * Every block is stamped when allocated and checked before it is freed. */
#include "bench.h"

/* Mostly tiny blocks, as programs allocate them: half 16-64, a third up to
 * 256, the rest up to 512 bytes. */
static size_t small_size(uint64_t *rng) {
  uint64_t r = rng_next(rng) % 6;
  if (r < 3)
    return rng_range(rng, 16, 64);
  if (r < 5)
    return rng_range(rng, 65, 256);
  return rng_range(rng, 257, 512);
}

enum { BATCH = 1000, LIFO_ROUNDS = 12000, RING = 20000, FIFO_STEPS = 12000000 };

int main(int argc, char **argv) {
  if (argc != 2 || (strcmp(argv[1], "lifo") != 0 && strcmp(argv[1], "fifo") != 0)) {
    fprintf(stderr, "usage: churn lifo|fifo\n");
    return 2;
  }
  uint64_t rng = 42, ops = 0;
  if (strcmp(argv[1], "lifo") == 0) {
    static void *ptr[BATCH];
    static size_t len[BATCH];
    for (int round = 0; round < LIFO_ROUNDS; round++) {
      for (int i = 0; i < BATCH; i++) {
        len[i] = small_size(&rng);
        ptr[i] = xmalloc(len[i]);
        stamp(ptr[i], len[i], (uint64_t)round * BATCH + (uint64_t)i);
      }
      for (int i = BATCH - 1; i >= 0; i--) {
        check_stamp(ptr[i], len[i], (uint64_t)round * BATCH + (uint64_t)i, "lifo");
        free(ptr[i]);
        ops++;
      }
    }
  } else {
    void **ptr = xmalloc(RING * sizeof *ptr);
    size_t *len = xmalloc(RING * sizeof *len);
    uint64_t *tag = xmalloc(RING * sizeof *tag);
    for (size_t i = 0; i < RING; i++) {
      len[i] = small_size(&rng);
      ptr[i] = xmalloc(len[i]);
      tag[i] = i;
      stamp(ptr[i], len[i], tag[i]);
    }
    for (uint64_t step = 0; step < FIFO_STEPS; step++) {
      size_t i = (size_t)(step % RING);
      check_stamp(ptr[i], len[i], tag[i], "fifo");
      free(ptr[i]);
      len[i] = small_size(&rng);
      ptr[i] = xmalloc(len[i]);
      tag[i] = step + RING;
      stamp(ptr[i], len[i], tag[i]);
      ops++;
    }
    for (size_t i = 0; i < RING; i++) {
      check_stamp(ptr[i], len[i], tag[i], "fifo end");
      free(ptr[i]);
    }
    free(ptr);
    free(len);
    free(tag);
  }
  printf("churn %s: %llu malloc/free pairs\n", argv[1], (unsigned long long)ops);
  return 0;
}
