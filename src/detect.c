/* detect.c owns the data of the detection mode (see detect.h): the process
 * secret the patterns derive from (16 random bytes the kernel passes every
 * process, AT_RANDOM: no system call, no allocation), the canary and fill
 * patterns and their checks, the side tables of requested sizes (metadata
 * pages, out of band) and the quarantine rings. It never reads a block that
 * the caller has not validated. */
#include <string.h>
#include <sys/auxv.h>

#include "detect.h"
#include "options.h"
#include "os.h"
#include "segment.h"

uint64_t tm_secret[2];
_Atomic int tm_secret_ready;

void tm_secret_init_slow(void)
{
  const uint8_t *random = (const uint8_t *)getauxval(AT_RANDOM);
  uint64_t s[2] = {0x9e3779b97f4a7c15ull, 0xc2b2ae3d27d4eb4full};
  if (random) memcpy(s, random, sizeof s);
  /* Never zero: a zeroed block must not look like its own canary. */
  tm_secret[0] = s[0] | 0x0101010101010101ull;
  tm_secret[1] = (s[1] | 0x0101010101010101ull) & 0x7f7f7f7f7f7f7f7full;
  atomic_store_explicit(&tm_secret_ready, 1, memory_order_release);
}

/* A canary byte: depends on the secret and on its address, so a byte copied
 * from another block's canary does not pass. Always 0x80 or more: a string's
 * '\0' written one past the end is the commonest overflow, and a zero canary
 * byte let it through in 1 of 256 blocks; every ASCII byte is caught now. */
static inline uint8_t tm_canary_byte(uintptr_t a)
{
  return (uint8_t)((tm_secret[0] >> ((a & 7) * 8)) ^ (a >> 3) ^ (a >> 11)) | 0x80;
}

/* The 8 canary bytes of an 8-aligned word at `a`, as one word: within it
 * (a + i) >> 3 and (a + i) >> 11 do not change, so the bytes of
 * tm_canary_byte(a + i) are the secret's bytes xor one byte, all with the top
 * bit set. Byte for byte the same canary, 8 bytes per step. */
static inline uint64_t tm_canary_word(uintptr_t a)
{
  uint64_t mix = (uint8_t)((a >> 3) ^ (a >> 11));
  uint64_t w = (tm_secret[0] ^ (mix * 0x0101010101010101ull)) | 0x8080808080808080ull;
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  w = __builtin_bswap64(w); /* byte i of the secret is the i-th byte in memory */
#endif
  return w;
}

/* The offset in a word (as loaded from memory) of its first nonzero byte. */
static inline size_t tm_first_byte(uint64_t diff)
{
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  return (size_t)__builtin_clzll(diff) / 8;
#else
  return (size_t)__builtin_ctzll(diff) / 8;
#endif
}

/* Canary bytes [requested, usable) of p, a word at a time: the word that
 * holds both the request's last bytes and the canary's first is merged
 * (`keep`: the request's bytes in it). Blocks are 16-aligned and their usable
 * sizes multiples of 16, so every word is whole and inside the block; the
 * byte loops are for anything else, and for big-endian machines. */
static inline bool tm_canary_by_words(const uint8_t *p, size_t usable)
{
  return __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ && (((uintptr_t)p | usable) & 7) == 0;
}

static inline uint64_t tm_canary_keep(size_t requested)
{
  size_t k = requested & 7; /* bytes of the request in the first word */
  return k ? ((uint64_t)1 << (8 * k)) - 1 : 0;
}

/* The canary ends where the fill of the freed block will (at most 64 bytes
 * past the request rounded up to 16: still whole words). */
static inline size_t tm_canary_end(size_t requested, size_t usable) { return tm_detect_fill_length(requested, usable); }

void tm_detect_canary_write(uint8_t *p, size_t requested, size_t usable)
{
  tm_secret_init();
  if (requested < usable) usable = tm_canary_end(requested, usable);
  if (requested >= usable) return;
  if (!tm_canary_by_words(p, usable)) {
    for (size_t i = requested; i < usable; i++)
      p[i] = tm_canary_byte((uintptr_t)p + i);
    return;
  }
  size_t i = requested & ~(size_t)7;
  uint64_t keep = tm_canary_keep(requested), w;
  memcpy(&w, p + i, 8);
  w = (w & keep) | (tm_canary_word((uintptr_t)p + i) & ~keep);
  memcpy(p + i, &w, 8);
  for (i += 8; i < usable; i += 8) {
    w = tm_canary_word((uintptr_t)p + i);
    memcpy(p + i, &w, 8);
  }
}

size_t tm_detect_canary_check(const uint8_t *p, size_t requested, size_t usable)
{
  tm_secret_init();
  if (requested < usable) usable = tm_canary_end(requested, usable);
  if (requested >= usable) return SIZE_MAX;
  if (!tm_canary_by_words(p, usable)) {
    for (size_t i = requested; i < usable; i++)
      if (p[i] != tm_canary_byte((uintptr_t)p + i)) return i;
    return SIZE_MAX;
  }
  size_t i = requested & ~(size_t)7;
  uint64_t w, diff;
  memcpy(&w, p + i, 8);
  diff = (w ^ tm_canary_word((uintptr_t)p + i)) & ~tm_canary_keep(requested);
  for (;;) {
    if (diff != 0) return i + tm_first_byte(diff);
    i += 8;
    if (i >= usable) return SIZE_MAX;
    memcpy(&w, p + i, 8);
    diff = w ^ tm_canary_word((uintptr_t)p + i);
  }
}

/* The fill: one byte, repeated (tm_fill_byte). It comes from the secret and
 * has its top bit set (so no ASCII byte a stale pointer writes, '\0'
 * included, passes for it); zeros with zero_on_free. A constant byte makes the
 * fill a memset and its check a compare of 64 bytes per step against one
 * vector: blocks are 16-aligned and their sizes (and the edges below)
 * multiples of 16. */
static size_t tm_fill_range_check(const uint8_t *p, size_t from, size_t to, uint8_t byte)
{
  tm_v16 want = tm_v16_splat(byte);
  size_t i = from;
  for (; i + 64 <= to; i += 64) {
    tm_v16 diff = (tm_v16_load(p + i) ^ want) | (tm_v16_load(p + i + 16) ^ want) | (tm_v16_load(p + i + 32) ^ want) |
                  (tm_v16_load(p + i + 48) ^ want);
    if (tm_v16_any(diff)) break;
  }
  for (; i + 16 <= to; i += 16) /* the rest (small blocks: all of it), 16 bytes per step */
    if (tm_v16_any(tm_v16_load(p + i) ^ want)) break;
  for (; i < to; i++) /* the 16 bytes that differ: the first changed one */
    if (p[i] != byte) return i;
  return SIZE_MAX;
}

#define TM_FILL_EDGE ((size_t)32 << 10)

void tm_detect_fill(uint8_t *p, size_t size, unsigned how)
{
  tm_secret_init();
  uint8_t byte = tm_fill_byte(how & TM_FILL_ZERO);
  if (how || size <= 2 * TM_FILL_EDGE) { /* zeros: all of it, a read after free must see zeros */
    memset(p, byte, size);
  } else {
    memset(p, byte, TM_FILL_EDGE);
    memset(p + size - TM_FILL_EDGE, byte, TM_FILL_EDGE);
  }
}

size_t tm_detect_fill_check(const uint8_t *p, size_t size, unsigned how)
{
  tm_secret_init();
  uint8_t byte = tm_fill_byte(how & TM_FILL_ZERO);
  if ((how & TM_FILL_WHOLE) || size <= 2 * TM_FILL_EDGE) return tm_fill_range_check(p, 0, size, byte);
  size_t at = tm_fill_range_check(p, 0, TM_FILL_EDGE, byte);
  return at != SIZE_MAX ? at : tm_fill_range_check(p, size - TM_FILL_EDGE, size, byte);
}

/* ---- Side tables ---------------------------------------------------------------- */

tm_detect_table_t *tm_detect_table_map(tm_segment_t *seg)
{
  tm_detect_table_t *table = NULL;
  size_t size = (sizeof(tm_detect_table_t) + TM_PAGE_SIZE - 1) & ~(TM_PAGE_SIZE - 1);
  tm_detect_table_t *fresh = tm_os_map_meta(size); /* zero: every entry unknown */
  if (fresh == NULL) return NULL;
  if (!atomic_compare_exchange_strong_explicit(&seg->detect, &table, fresh, memory_order_acq_rel,
                                               memory_order_acquire)) {
    tm_os_unmap_meta(fresh, size); /* another thread was first */
    return table;
  }
  return fresh;
}

void tm_detect_table_release(tm_segment_t *seg)
{
  tm_detect_table_t *table = atomic_exchange_explicit(&seg->detect, NULL, memory_order_acq_rel);
  if (table) tm_os_unmap_meta(table, (sizeof(tm_detect_table_t) + TM_PAGE_SIZE - 1) & ~(TM_PAGE_SIZE - 1));
}

void tm_detect_medium_forget(tm_segment_t *seg, size_t page)
{
  tm_detect_table_t *table = atomic_load_explicit(&seg->detect, memory_order_acquire);
  if (table) atomic_store_explicit(&table->medium[page], TM_DETECT_UNKNOWN, memory_order_relaxed);
}

void tm_detect_slab_carved(tm_segment_t *seg, size_t slot, uint32_t capacity)
{
  tm_detect_table_t *table = atomic_load_explicit(&seg->detect, memory_order_acquire);
  if (table == NULL) return;
  for (size_t i = 0; i < capacity; i++) /* the entries of blocks this slab can have */
    atomic_store_explicit(&table->small[slot][i], TM_DETECT_UNKNOWN, memory_order_relaxed);
}

/* ---- Quarantine ------------------------------------------------------------------- */

tm_quarantine_t *tm_quarantine_map(tm_heap_t *heap)
{
  long count = TM_OPTION(quarantine_count);
  if (count <= 0) return NULL;
  size_t size = sizeof(tm_quarantine_t) + (size_t)count * sizeof(struct tm_quarantine_entry_s);
  size = (size + TM_PAGE_SIZE - 1) & ~(TM_PAGE_SIZE - 1);
  tm_quarantine_t *q = tm_os_map_meta(size);
  if (q == NULL) return NULL;
  q->capacity = (size_t)count;
  heap->quarantine = q;
  return q;
}

void tm_quarantine_release(tm_heap_t *heap)
{
  tm_quarantine_t *q = heap->quarantine;
  if (q == NULL || q->count != 0) return;
  heap->quarantine = NULL;
  size_t size = sizeof(tm_quarantine_t) + q->capacity * sizeof(struct tm_quarantine_entry_s);
  tm_os_unmap_meta(q, (size + TM_PAGE_SIZE - 1) & ~(TM_PAGE_SIZE - 1));
}
