/* Issue 8, "Realloc of large blocks": one block grown from 2 MiB to 160 MiB
 * in 1 MiB steps with realloc, each new MiB written, every step checking the
 * first and last word of every MiB so far and, at the end, every byte.
 * A correctness test only: the time is printed, never asserted (the issue's
 * target is within 3x of glibc; the current core copies the whole block
 * whenever mremap cannot grow it in place: about 15 s against glibc's 0.05 s
 * on the machine the issue was measured on).
 *
 *   realloc_growth [FINAL_MIB]   (default 160; the memcheck build uses less)
 *
 * Built with -DREGRESS_LIBC it is the glibc reference (same output). */
#include "regress.h"

#define MIB ((size_t)1 << 20)

static uint64_t word_at(size_t index) { return index * 0x9E3779B97F4A7C15ull ^ 0xabcdef; }

static void fill_mib(unsigned char *block, size_t mib)
{
  uint64_t *w = (uint64_t *)(void *)(block + mib * MIB);
  for (size_t i = 0; i < MIB / 8; i++)
    w[i] = word_at(mib * (MIB / 8) + i);
}

/* Grows one block to final_mib; with `neighbours`, a 2 MiB block is
 * allocated after every step and kept, so the address space next to the
 * growing block keeps being taken and it cannot simply grow into it. */
static void grow(size_t final_mib, int neighbours)
{
  static void *kept[1024];
  size_t kept_count = 0;
  double start = regress_now();
  unsigned char *block = R_MALLOC(2 * MIB);
  REQUIRE(block != NULL, "malloc(2 MiB)");
  fill_mib(block, 0);
  fill_mib(block, 1);
  unsigned long moves = 0;
  for (size_t mib = 3; mib <= final_mib; mib++) {
    unsigned char *grown = R_REALLOC(block, mib * MIB);
    REQUIRE(grown != NULL, "realloc to %zu MiB: %s", mib, strerror(errno));
    moves += grown != block;
    block = grown;
    for (size_t k = 0; k + 1 < mib; k++) {
      const uint64_t *w = (const uint64_t *)(const void *)(block + k * MIB);
      REQUIRE(w[0] == word_at(k * (MIB / 8)) && w[MIB / 8 - 1] == word_at(k * (MIB / 8) + MIB / 8 - 1),
              "after growing to %zu MiB, MiB %zu lost its contents", mib, k);
    }
    fill_mib(block, mib - 1);
    if (neighbours && kept_count < 1024) {
      unsigned char *n = R_MALLOC(2 * MIB);
      REQUIRE(n != NULL, "malloc(2 MiB) neighbour");
      n[0] = (unsigned char)mib;
      kept[kept_count++] = n;
    }
  }
  double grown_at = regress_now();
  const uint64_t *w = (const uint64_t *)(const void *)block;
  for (size_t i = 0; i < final_mib * MIB / 8; i++)
    REQUIRE(w[i] == word_at(i), "byte %zu of the grown block differs", i * 8);
  R_FREE(block);
  for (size_t i = 0; i < kept_count; i++) {
    REQUIRE(((unsigned char *)kept[i])[0] == (unsigned char)(i + 3), "neighbour block %zu overwritten", i);
    R_FREE(kept[i]);
  }
  printf("PASS: %s: %zu MiB reached, %lu of %zu reallocs moved the block; growth took %.3f s (not asserted)\n",
         neighbours ? "with a 2 MiB neighbour allocated after each step" : "alone", final_mib, moves, final_mib - 2,
         grown_at - start);
}

int main(int argc, char **argv)
{
  size_t final_mib = argc > 1 ? (size_t)atol(argv[1]) : 160;
  REQUIRE(final_mib >= 3, "final size %zu MiB too small", final_mib);
  printf("realloc growth 2 MiB -> %zu MiB in 1 MiB steps, %s\n", final_mib, REGRESS_ALLOCATOR);
  grow(final_mib, 0);
  grow(final_mib, 1);
  return 0;
}
