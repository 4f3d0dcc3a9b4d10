/* sizeclass.c owns the small size classes: 16-byte steps up to 128, then four
 * classes per power of two up to 16 KiB (at most 25% rounding up at the
 * first step of a doubling, 12.5% on average), and the choice of a class for
 * an aligned request. The size -> class map itself is inline (internal.h). */
#include "internal.h"

uint32_t tm_class_size[TM_CLASS_COUNT];

void tm_sizeclass_init(void)
{
  for (unsigned c = 0; c < TM_CLASS_COUNT; c++) {
    if (c < 8) {
      tm_class_size[c] = (c + 1) * 16;
    } else {
      unsigned p = 7 + (c - 8) / 4, quarter = (c - 8) % 4;
      tm_class_size[c] = (1u << p) + (quarter + 1) * (1u << (p - 2));
    }
  }
}

/* Smallest class holding `size` whose blocks all start at a multiple of
 * `alignment` (slabs are 64 KiB aligned, so a block size that is a multiple
 * of the alignment aligns every block). TM_CLASS_COUNT if none. */
unsigned tm_aligned_class(size_t size, size_t alignment)
{
  if (size < alignment) size = alignment;
  if (size > TM_SMALL_MAX) return TM_CLASS_COUNT;
  for (unsigned c = tm_size_class(size); c < TM_CLASS_COUNT; c++)
    if (tm_class_size[c] % alignment == 0) return c;
  return TM_CLASS_COUNT;
}
