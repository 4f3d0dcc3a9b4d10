/* realloc: growth by realloc.
 * 1. BUILDERS string builders live at once; each appends 1-64 bytes at a
 *    time, growing its buffer by realloc to the exact new length, until it
 *    reaches a random length of up to 16 KiB; then its contents are checked
 *    (every byte is a function of its position and the builder's seed), it is
 *    shrunk to a quarter, checked again, freed and started over.
 * 2. One block grown from 2 MiB to 160 MiB in 1 MiB steps: each new MiB is
 *    written, one word of every MiB is checked after each step, and the
 *    whole contents at the end. */
#include "bench.h"

enum { BUILDERS = 500, REFILLS = 8000 };

typedef struct {
  unsigned char *buf;
  size_t len, goal;
  uint64_t seed;
} builder_t;

static unsigned char byte_at(uint64_t seed, size_t i) { return (unsigned char)((seed >> (i % 5 * 8)) + i * 7); }

static void check_builder(const builder_t *b, size_t n, const char *what) {
  for (size_t i = 0; i < n; i++)
    if (b->buf[i] != byte_at(b->seed, i))
      bench_fail("%s: byte %zu of %zu changed", what, i, n);
}

static uint64_t mib_word(size_t m) { return 0x5bd1e995ULL * (m + 1); }

int main(void) {
  uint64_t rng = 11, reallocs = 0, done = 0;
  static builder_t b[BUILDERS];
  for (int i = 0; i < BUILDERS; i++) {
    b[i].goal = rng_range(&rng, 64, 16384);
    b[i].seed = rng_next(&rng);
  }
  while (done < REFILLS) {
    builder_t *x = &b[rng_next(&rng) % BUILDERS];
    size_t add = rng_range(&rng, 1, 64);
    unsigned char *q = realloc(x->buf, x->len + add);
    if (q == NULL)
      bench_fail("realloc(%zu) returned NULL", x->len + add);
    reallocs++;
    x->buf = q;
    for (size_t i = 0; i < add; i++)
      q[x->len + i] = byte_at(x->seed, x->len + i);
    x->len += add;
    if (x->len >= x->goal) {
      check_builder(x, x->len, "builder");
      size_t quarter = x->len / 4 + 1;
      q = realloc(x->buf, quarter);
      if (q == NULL)
        bench_fail("shrinking realloc returned NULL");
      x->buf = q;
      check_builder(x, quarter, "shrunk builder");
      free(x->buf);
      x->buf = NULL;
      x->len = 0;
      x->goal = rng_range(&rng, 64, 16384);
      x->seed = rng_next(&rng);
      done++;
    }
  }
  for (int i = 0; i < BUILDERS; i++) {
    check_builder(&b[i], b[i].len, "builder end");
    free(b[i].buf);
  }

  const size_t mib = (size_t)1 << 20;
  size_t n = 2 * mib;
  unsigned char *big = xmalloc(n);
  for (size_t m = 0; m < 2; m++) {
    memset(big + m * mib, (int)(m & 0xff), mib);
    memcpy(big + m * mib, &(uint64_t){mib_word(m)}, 8);
  }
  while (n < 160 * mib) {
    unsigned char *q = realloc(big, n + mib);
    if (q == NULL)
      bench_fail("realloc to %zu MiB returned NULL", (n + mib) >> 20);
    big = q;
    memset(big + n, (int)((n / mib) & 0xff), mib);
    memcpy(big + n, &(uint64_t){mib_word(n / mib)}, 8);
    n += mib;
    for (size_t m = 0; m < n / mib; m++) {
      uint64_t w;
      memcpy(&w, big + m * mib, 8);
      if (w != mib_word(m) || big[m * mib + mib - 1] != (unsigned char)(m & 0xff))
        bench_fail("big block: MiB %zu changed after growing to %zu MiB", m, n / mib);
    }
  }
  for (size_t m = 0; m < n / mib; m++)
    for (size_t i = 8; i < mib; i++)
      if (big[m * mib + i] != (unsigned char)(m & 0xff))
        bench_fail("big block: byte %zu of MiB %zu changed", i, m);
  free(big);
  printf("realloc: %llu growing reallocs, one block grown to %zu MiB\n", (unsigned long long)reallocs, n >> 20);
  return 0;
}
