/* frag: fragmentation. Many live objects of mixed sizes (16 bytes to 1 MiB,
 * mostly small), filled to about TARGET live bytes; then, CYCLES times:
 * three quarters of the objects freed at random (the survivors pin the
 * pages around them), regrowth to TARGET with a size mix shifted towards
 * larger objects (the holes left by small objects do not fit them), a
 * quarter of the objects reallocated to between half and twice their size,
 * and half of them freed. Every byte of every object is written (as a program
 * would), so that resident memory can be compared with live memory: the
 * workload prints "peak_live_bytes N", the largest sum of requested sizes
 * alive at once, and the runner reports peak RSS / peak live. Contents are
 * checked (tag, a middle byte, the last byte) before every free and after
 * every realloc. */
#include "bench.h"

enum { CAP = 1 << 20, CYCLES = 4 };
#define TARGET ((uint64_t)160 << 20)

static void **ptr;
static size_t *len;
static uint64_t *tag;
static size_t count;
static uint64_t live, peak;
static uint64_t rng = 2024;

/* Size mix `shift` = 0: 60% 16-128 B, 30% up to 1 KiB, 9% up to 8 KiB,
 * 0.9% up to 64 KiB, 0.1% up to 1 MiB; each shift multiplies sizes by 2. */
static size_t frag_size(int shift) {
  uint64_t r = rng_next(&rng) % 1000;
  size_t n;
  if (r < 600)
    n = rng_range(&rng, 16, 128);
  else if (r < 900)
    n = rng_range(&rng, 129, 1024);
  else if (r < 990)
    n = rng_range(&rng, 1025, 8192);
  else if (r < 999)
    n = rng_range(&rng, 8193, 65536);
  else
    n = rng_logsize(&rng, 65537, 1 << 20);
  return n << shift;
}

static unsigned char fill_byte(uint64_t t) { return (unsigned char)(t >> 17); }

static void fill(unsigned char *p, size_t from, size_t n, uint64_t t) {
  if (from < sizeof t) {
    memcpy(p, &t, sizeof t);
    from = sizeof t;
  }
  if (n > from)
    memset(p + from, fill_byte(t), n - from);
}

static void check(size_t i, const char *what) {
  const unsigned char *p = ptr[i];
  uint64_t got;
  memcpy(&got, p, sizeof got);
  unsigned char b = fill_byte(tag[i]);
  if (got != tag[i] || p[len[i] / 2 + 4] != b || p[len[i] - 1] != b)
    bench_fail("%s: object %zu (%p, %zu bytes) lost its contents", what, i, (const void *)p, len[i]);
}

static void add(size_t n) {
  if (count == CAP)
    bench_fail("object table full");
  ptr[count] = xmalloc(n);
  len[count] = n;
  tag[count] = rng_next(&rng);
  fill(ptr[count], 0, n, tag[count]);
  count++;
  live += n;
  if (live > peak)
    peak = live;
}

static void remove_at(size_t i) {
  check(i, "free");
  free(ptr[i]);
  live -= len[i];
  count--;
  ptr[i] = ptr[count];
  len[i] = len[count];
  tag[i] = tag[count];
}

/* Frees each object with probability num/den. */
static void thin(unsigned num, unsigned den) {
  for (size_t i = 0; i < count;) {
    if (rng_next(&rng) % den < num)
      remove_at(i); /* the last object moved into slot i: look at it next */
    else
      i++;
  }
}

int main(void) {
  ptr = xmalloc(CAP * sizeof *ptr);
  len = xmalloc(CAP * sizeof *len);
  tag = xmalloc(CAP * sizeof *tag);
  uint64_t reallocs = 0, allocs = 0;
  while (live < TARGET) {
    add(frag_size(0));
    allocs++;
  }
  for (int cycle = 0; cycle < CYCLES; cycle++) {
    thin(3, 4);
    while (live < TARGET) {
      add(frag_size(1 + cycle % 2));
      allocs++;
    }
    for (size_t i = 0; i < count; i++) {
      if (rng_next(&rng) % 4 != 0)
        continue;
      size_t old = len[i];
      size_t n = old / 2 + (size_t)(rng_next(&rng) % (old + old / 2 + 1));
      if (n < 16)
        n = 16;
      check(i, "realloc");
      void *q = realloc(ptr[i], n);
      if (q == NULL)
        bench_fail("realloc(%zu) returned NULL", n);
      ptr[i] = q;
      len[i] = n;
      /* The first min(old, n) bytes moved with the block; refill the rest. */
      fill(q, old < n ? old : n, n, tag[i]);
      check(i, "after realloc");
      live = live - old + n;
      if (live > peak)
        peak = live;
      reallocs++;
    }
    thin(1, 2);
  }
  while (count > 0)
    remove_at(count - 1);
  if (live != 0)
    bench_fail("live bytes %llu after freeing everything", (unsigned long long)live);
  free(ptr);
  free(len);
  free(tag);
  printf("frag: %llu allocations, %llu reallocs\n", (unsigned long long)allocs, (unsigned long long)reallocs);
  printf("peak_live_bytes %llu\n", (unsigned long long)peak);
  return 0;
}
