/* sizeclass.c owns the size-class tables (see sizeclass.h) and the choice
 * of a class for an aligned request. The tables are constant: nothing to
 * initialise, valid before the first constructor runs. */
#include "sizeclass.h"

const uint32_t tm_class_size[TM_CLASS_COUNT] = {
    16, 32, 48, 64, 80, 96, 112, 128, 160, 192, 224, 256,
    320, 384, 448, 512, 640, 768, 896, 1024, 1280, 1536, 1792, 2048,
    2560, 3072, 3584, 4096, 5120, 6144, 7168, 8192, 10240, 12288, 14336, 16384};

const uint8_t tm_class_of_small[65] = {
    0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 8, 9, 9, 10, 10, 11,
    11, 12, 12, 12, 12, 13, 13, 13, 13, 14, 14, 14, 14, 15, 15, 15,
    15, 16, 16, 16, 16, 16, 16, 16, 16, 17, 17, 17, 17, 17, 17, 17,
    17, 18, 18, 18, 18, 18, 18, 18, 18, 19, 19, 19, 19, 19, 19, 19,
    19};

unsigned tm_aligned_class(size_t size, size_t alignment)
{
  if (size < alignment) size = alignment;
  if (size > TM_SMALL_MAX) return TM_CLASS_COUNT;
  for (unsigned c = tm_size_class(size); c < TM_CLASS_COUNT; c++)
    if (tm_class_size[c] % alignment == 0) return c;
  return TM_CLASS_COUNT;
}
