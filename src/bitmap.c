/* bitmap.c owns the one bitmap search used for page maps: runs of clear bits,
 * first fit, a word at a time with count-trailing-zeros. Slab block bitmaps
 * use the inline single-bit search in slab.c/alloc.c; this file is for
 * runs. Callers hold the lock that protects the words. */
#include "internal.h"

void tm_bits_set(uint64_t *words, size_t first, size_t n)
{
  for (size_t i = first; i < first + n; i++)
    words[i >> 6] |= 1ull << (i & 63);
}

void tm_bits_clear(uint64_t *words, size_t first, size_t n)
{
  for (size_t i = first; i < first + n; i++)
    words[i >> 6] &= ~(1ull << (i & 63));
}

bool tm_bits_any(const uint64_t *words, size_t first, size_t n)
{
  for (size_t i = first; i < first + n; i++)
    if (tm_bit_get(words, i)) return true;
  return false;
}

/* First index >= from whose bit equals `want`, or nbits. */
static size_t tm_bits_next(const uint64_t *words, size_t nbits, size_t from, bool want)
{
  while (from < nbits) {
    uint64_t w = words[from >> 6];
    if (!want) w = ~w;
    w &= ~0ull << (from & 63);
    if (w) {
      size_t i = (from & ~(size_t)63) + (size_t)__builtin_ctzll(w);
      return i < nbits ? i : nbits;
    }
    from = (from & ~(size_t)63) + 64;
  }
  return nbits;
}

/* Lowest index i, a multiple of align, with bits [i, i+n) all clear; SIZE_MAX if none. */
size_t tm_bits_find_clear_run(const uint64_t *words, size_t nbits, size_t n, size_t align)
{
  size_t i = 0;
  while (i + n <= nbits) {
    i = tm_bits_next(words, nbits, i, false);
    i = (i + align - 1) & ~(align - 1);
    if (i + n > nbits) break;
    size_t set = tm_bits_next(words, i + n, i, true);
    if (set >= i + n) return i;
    i = set + 1;
  }
  return SIZE_MAX;
}
