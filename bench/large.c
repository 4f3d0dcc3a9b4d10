/* large: blocks of 1 to 32 MiB (log-uniform). A window of WINDOW live blocks;
 * each step frees a random one and allocates a new one in its place, then
 * writes every 4 KiB page of it once. Pages are checked before each free. */
#include "bench.h"

enum { WINDOW = 4, STEPS = 300 };

int main(void) {
  void *ptr[WINDOW];
  size_t len[WINDOW];
  unsigned char val[WINDOW];
  uint64_t rng = 5;
  for (int i = 0; i < WINDOW; i++) {
    len[i] = rng_logsize(&rng, 1 << 20, 32 << 20);
    ptr[i] = xmalloc(len[i]);
    val[i] = (unsigned char)i;
    touch_pages(ptr[i], len[i], val[i]);
  }
  for (int step = 0; step < STEPS; step++) {
    size_t i = (size_t)(rng_next(&rng) % WINDOW);
    check_pages(ptr[i], len[i], val[i], "large");
    free(ptr[i]);
    len[i] = rng_logsize(&rng, 1 << 20, 32 << 20);
    ptr[i] = xmalloc(len[i]);
    val[i] = (unsigned char)rng_next(&rng);
    touch_pages(ptr[i], len[i], val[i]);
  }
  for (int i = 0; i < WINDOW; i++) {
    check_pages(ptr[i], len[i], val[i], "large end");
    free(ptr[i]);
  }
  printf("large: %d blocks of 1-32 MiB replaced\n", STEPS);
  return 0;
}
