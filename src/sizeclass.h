/* sizeclass.h: the small size classes (tables in sizeclass.c): 16-byte steps
 * up to 128, then four classes per power of two up to 16 KiB. Rounding up
 * wastes at most 15 bytes up to 128; above, under 25% of the request (129 ->
 * 160 is the worst) and about 12.5% on average (tests/test_internals.c checks
 * the bound). The map from a size to its class is inline: a table up to
 * 1 KiB, count-leading-zeros above. */
#ifndef TM_SIZECLASS_H
#define TM_SIZECLASS_H

#include "base.h"

extern const uint32_t tm_class_size[TM_CLASS_COUNT] TM_HIDDEN;
extern const uint8_t tm_class_of_small[65] TM_HIDDEN; /* class of (size + 15) / 16, size <= 1024 */

/* The smallest class whose blocks hold `size` bytes (1 <= size <= TM_SMALL_MAX;
 * 0 maps to the first class). */
TM_INLINE unsigned tm_size_class(size_t size)
{
  if (TM_LIKELY(size <= 1024)) return tm_class_of_small[(size + 15) >> 4];
  unsigned p = 63u - (unsigned)__builtin_clzll(size - 1); /* size in (2^p, 2^(p+1)] */
  return 8u + (p - 7u) * 4u + (unsigned)(((size - 1) >> (p - 2)) & 3u);
}

/* Smallest class holding `size` whose block size is a multiple of `alignment`
 * (slabs are 64 KiB aligned, so every block is aligned); TM_CLASS_COUNT if none. */
unsigned tm_aligned_class(size_t size, size_t alignment) TM_HIDDEN;

#endif
