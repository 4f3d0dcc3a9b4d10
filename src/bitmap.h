/* bitmap.h: bit-range operations on arrays of 64-bit words (bitmap.c), a
 * word at a time, for the page maps. Pure functions: the caller holds
 * whatever lock protects the words. Slab block bitmaps use the inline
 * single-bit search of slab.h instead. */
#ifndef TM_BITMAP_H
#define TM_BITMAP_H

#include "base.h"

TM_INLINE bool tm_bit_get(const uint64_t *words, size_t i) { return (words[i >> 6] >> (i & 63)) & 1; }
TM_INLINE void tm_bit_set(uint64_t *words, size_t i) { words[i >> 6] |= 1ull << (i & 63); }
TM_INLINE void tm_bit_clear(uint64_t *words, size_t i) { words[i >> 6] &= ~(1ull << (i & 63)); }

void tm_bits_set(uint64_t *words, size_t first, size_t n) TM_HIDDEN;
void tm_bits_clear(uint64_t *words, size_t first, size_t n) TM_HIDDEN;
bool tm_bits_any(const uint64_t *words, size_t first, size_t n) TM_HIDDEN;
size_t tm_bits_count(const uint64_t *words, size_t first, size_t n) TM_HIDDEN;
/* First index in [from, nbits) whose bit equals `value`, or nbits. */
size_t tm_bits_next(const uint64_t *words, size_t nbits, size_t from, bool value) TM_HIDDEN;
/* Lowest i >= from, a multiple of align (a power of two), with bits [i, i+n)
 * all clear and i + n <= nbits; SIZE_MAX if none. */
size_t tm_bits_find_clear_run(const uint64_t *words, size_t nbits, size_t from, size_t n, size_t align) TM_HIDDEN;

#endif
