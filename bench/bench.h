/* bench.h: helpers shared by the benchmark workloads (a deterministic PRNG,
 * block stamping and checking, failure exits). Header-only; every workload is
 * one C file that includes it. A workload that finds a wrong result calls
 * bench_fail() and exits with status 1; the runner records that as a failure. */
#ifndef TM_BENCH_H
#define TM_BENCH_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* splitmix64: small, fast and good enough to pick sizes and slots. */
static inline uint64_t rng_next(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/* Uniform in [lo, hi]. */
static inline size_t rng_range(uint64_t *s, size_t lo, size_t hi) {
  return lo + (size_t)(rng_next(s) % (uint64_t)(hi - lo + 1));
}

/* Log-uniform in [lo, hi]: as many blocks between 16 and 32 KiB as between
 * 512 KiB and 1 MiB. */
static inline size_t rng_logsize(uint64_t *s, size_t lo, size_t hi) {
  unsigned lb = 63u - (unsigned)__builtin_clzll((unsigned long long)lo);
  unsigned hb = 63u - (unsigned)__builtin_clzll((unsigned long long)hi);
  unsigned b = lb + (unsigned)(rng_next(s) % (hb - lb + 1));
  size_t base = (size_t)1 << b;
  size_t n = base + (size_t)(rng_next(s) % base);
  return n < lo ? lo : n > hi ? hi : n;
}

__attribute__((noreturn, format(printf, 1, 2))) static inline void bench_fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("bench: FAILED: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(1);
}

static inline void *xmalloc(size_t n) {
  void *p = malloc(n);
  if (p == NULL)
    bench_fail("malloc(%zu) returned NULL", n);
  return p;
}

/* A stamp is a 64-bit tag at the start of a block and, past it, a last byte
 * derived from it: an allocator that hands out overlapping blocks, loses
 * contents on realloc or gives back a wrong pointer breaks a stamp. Blocks
 * are at least 8 bytes. */
static inline void stamp(void *p, size_t n, uint64_t tag) {
  memcpy(p, &tag, sizeof tag);
  if (n > sizeof tag)
    ((unsigned char *)p)[n - 1] = (unsigned char)(tag ^ (tag >> 29));
}

static inline void check_stamp(const void *p, size_t n, uint64_t tag, const char *what) {
  uint64_t got;
  memcpy(&got, p, sizeof got);
  if (got != tag || (n > sizeof tag && ((const unsigned char *)p)[n - 1] != (unsigned char)(tag ^ (tag >> 29))))
    bench_fail("%s: block %p of %zu bytes lost its contents", what, p, n);
}

/* Writes one byte in every 4 KiB page of [p, p+n) and the last byte (so that
 * the pages are really touched, as a program using the block would);
 * check_pages() verifies them. */
static inline void touch_pages(void *p, size_t n, unsigned char v) {
  unsigned char *c = p;
  for (size_t i = 0; i < n; i += 4096)
    c[i] = (unsigned char)(v + (i >> 12));
  c[n - 1] = v;
}

static inline void check_pages(const void *p, size_t n, unsigned char v, const char *what) {
  const unsigned char *c = p;
  for (size_t i = 0; i < n - 1; i += 4096)
    if (c[i] != (unsigned char)(v + (i >> 12)))
      bench_fail("%s: page %zu of block %p (%zu bytes) changed", what, i >> 12, (const void *)p, n);
  if (c[n - 1] != v)
    bench_fail("%s: last byte of block %p (%zu bytes) changed", what, (const void *)p, n);
}

#endif
