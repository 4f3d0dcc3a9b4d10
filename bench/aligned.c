/* aligned: aligned allocation. A window of WINDOW live blocks; each step
 * frees a random one and allocates a new one with posix_memalign,
 * aligned_alloc or memalign, an alignment of 16 bytes to 64 KiB (smaller
 * ones more often) and a size of 8 bytes to 32 KiB. The alignment is checked
 * and the block stamped; the stamp is checked before the free. */
#include "bench.h"

#include <malloc.h>

enum { WINDOW = 1000, STEPS = 1500000 };

int main(void) {
  static void *ptr[WINDOW];
  static size_t len[WINDOW];
  uint64_t rng = 77, steps = 0;
  for (uint64_t step = 0; step < STEPS + WINDOW; step++) {
    size_t i = step < WINDOW ? (size_t)step : (size_t)(rng_next(&rng) % WINDOW);
    if (step >= WINDOW) {
      check_stamp(ptr[i], len[i], (uint64_t)(uintptr_t)ptr[i] ^ len[i], "aligned");
      free(ptr[i]);
      steps++;
    }
    /* log2(alignment) 4..16, weighted towards small: 4 + min of two draws. */
    unsigned a1 = (unsigned)(rng_next(&rng) % 13), a2 = (unsigned)(rng_next(&rng) % 13);
    size_t align = (size_t)1 << (4 + (a1 < a2 ? a1 : a2));
    size_t n = rng_logsize(&rng, 8, 32768);
    void *p = NULL;
    switch (rng_next(&rng) % 3) {
    case 0:
      if (posix_memalign(&p, align, n) != 0)
        p = NULL;
      break;
    case 1:
      n = (n + align - 1) & ~(align - 1); /* C11: a multiple of the alignment */
      p = aligned_alloc(align, n);
      break;
    default:
      p = memalign(align, n);
      break;
    }
    if (p == NULL)
      bench_fail("aligned allocation of %zu bytes at %zu returned NULL", n, align);
    if (((uintptr_t)p & (align - 1)) != 0)
      bench_fail("block %p is not aligned to %zu", p, align);
    ptr[i] = p;
    len[i] = n;
    stamp(p, n, (uint64_t)(uintptr_t)p ^ n);
  }
  for (size_t i = 0; i < WINDOW; i++) {
    check_stamp(ptr[i], len[i], (uint64_t)(uintptr_t)ptr[i] ^ len[i], "aligned end");
    free(ptr[i]);
  }
  printf("aligned: %llu aligned blocks replaced\n", (unsigned long long)steps);
  return 0;
}
