/* bitmap.c owns the range operations on bitmaps declared in bitmap.h: set,
 * clear, test and count a range, find the next set or clear bit, and find a
 * run of clear bits (first fit), each a word at a time with masks and
 * count-trailing-zeros. */
#include "bitmap.h"

/* The bits [first, first + n) that fall in word w, as a mask. */
static inline uint64_t tm_range_mask(size_t w, size_t first, size_t n)
{
  size_t lo = w * 64 > first ? 0 : first - w * 64;
  size_t end = first + n, hi = end >= w * 64 + 64 ? 64 : end - w * 64;
  uint64_t upto = hi == 64 ? ~0ull : (1ull << hi) - 1;
  return upto & (~0ull << lo);
}

void tm_bits_set(uint64_t *words, size_t first, size_t n)
{
  if (n == 0) return;
  for (size_t w = first >> 6; w <= (first + n - 1) >> 6; w++)
    words[w] |= tm_range_mask(w, first, n);
}

void tm_bits_clear(uint64_t *words, size_t first, size_t n)
{
  if (n == 0) return;
  for (size_t w = first >> 6; w <= (first + n - 1) >> 6; w++)
    words[w] &= ~tm_range_mask(w, first, n);
}

bool tm_bits_any(const uint64_t *words, size_t first, size_t n)
{
  if (n == 0) return false;
  for (size_t w = first >> 6; w <= (first + n - 1) >> 6; w++)
    if (words[w] & tm_range_mask(w, first, n)) return true;
  return false;
}

size_t tm_bits_count(const uint64_t *words, size_t first, size_t n)
{
  size_t count = 0;
  if (n == 0) return 0;
  for (size_t w = first >> 6; w <= (first + n - 1) >> 6; w++)
    count += (size_t)__builtin_popcountll(words[w] & tm_range_mask(w, first, n));
  return count;
}

size_t tm_bits_next(const uint64_t *words, size_t nbits, size_t from, bool value)
{
  while (from < nbits) {
    uint64_t w = words[from >> 6];
    if (!value) w = ~w;
    w &= ~0ull << (from & 63);
    if (w) {
      size_t i = (from & ~(size_t)63) + (size_t)__builtin_ctzll(w);
      return i < nbits ? i : nbits;
    }
    from = (from & ~(size_t)63) + 64;
  }
  return nbits;
}

size_t tm_bits_find_clear_run(const uint64_t *words, size_t nbits, size_t from, size_t n, size_t align)
{
  size_t i = from;
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
