/* medium: blocks of 16 KiB to 1 MiB (log-uniform: as many below 32 KiB as
 * above 512 KiB). A window of WINDOW live blocks; each step frees a random
 * one and allocates a new one in its place. Every page of a new block is
 * written once (one byte per 4 KiB) and checked before the block is freed. */
#include "bench.h"

enum { WINDOW = 100, STEPS = 100000 };

int main(void) {
  void *ptr[WINDOW];
  size_t len[WINDOW];
  unsigned char val[WINDOW];
  uint64_t rng = 99;
  for (int i = 0; i < WINDOW; i++) {
    len[i] = rng_logsize(&rng, 16 << 10, 1 << 20);
    ptr[i] = xmalloc(len[i]);
    val[i] = (unsigned char)i;
    touch_pages(ptr[i], len[i], val[i]);
  }
  for (int step = 0; step < STEPS; step++) {
    size_t i = (size_t)(rng_next(&rng) % WINDOW);
    check_pages(ptr[i], len[i], val[i], "medium");
    free(ptr[i]);
    len[i] = rng_logsize(&rng, 16 << 10, 1 << 20);
    ptr[i] = xmalloc(len[i]);
    val[i] = (unsigned char)rng_next(&rng);
    touch_pages(ptr[i], len[i], val[i]);
  }
  for (int i = 0; i < WINDOW; i++) {
    check_pages(ptr[i], len[i], val[i], "medium end");
    free(ptr[i]);
  }
  printf("medium: %d blocks of 16 KiB-1 MiB replaced\n", STEPS);
  return 0;
}
