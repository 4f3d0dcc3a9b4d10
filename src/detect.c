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

static uint64_t tm_secret[2];
static _Atomic int tm_secret_ready;

static void tm_secret_init(void)
{
  if (atomic_load_explicit(&tm_secret_ready, memory_order_acquire)) return;
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

/* A fill word at an 8-aligned address. */
static inline uint64_t tm_fill_word(uintptr_t a, bool zero) { return zero ? 0 : tm_secret[1] ^ (a >> 3); }

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

void tm_detect_canary_write(uint8_t *p, size_t requested, size_t usable)
{
  tm_secret_init();
  size_t i = requested;
  for (; i < usable && (((uintptr_t)p + i) & 7) != 0; i++)
    p[i] = tm_canary_byte((uintptr_t)p + i);
  for (; i + 8 <= usable; i += 8) {
    uint64_t w = tm_canary_word((uintptr_t)p + i);
    memcpy(p + i, &w, 8);
  }
  for (; i < usable; i++)
    p[i] = tm_canary_byte((uintptr_t)p + i);
}

size_t tm_detect_canary_check(const uint8_t *p, size_t requested, size_t usable)
{
  tm_secret_init();
  size_t i = requested;
  for (; i < usable && (((uintptr_t)p + i) & 7) != 0; i++)
    if (p[i] != tm_canary_byte((uintptr_t)p + i)) return i;
  for (; i + 8 <= usable; i += 8) {
    uint64_t w, want = tm_canary_word((uintptr_t)p + i);
    memcpy(&w, p + i, 8);
    if (w != want) return i + tm_first_byte(w ^ want);
  }
  for (; i < usable; i++)
    if (p[i] != tm_canary_byte((uintptr_t)p + i)) return i;
  return SIZE_MAX;
}

/* Blocks are 16-aligned and their sizes multiples of 16: whole words. */
static void tm_fill_range(uint8_t *p, size_t from, size_t to, bool zero)
{
  for (size_t i = from; i + 8 <= to; i += 8) {
    uint64_t w = tm_fill_word((uintptr_t)p + i, zero);
    memcpy(p + i, &w, 8);
  }
}

static size_t tm_fill_range_check(const uint8_t *p, size_t from, size_t to, bool zero)
{
  /* The fill word at address a is (secret ^ (a >> 3)) & mask: no branch on
   * `zero` inside the loops. 64 bytes per step with no branch per word; the
   * word loop below finds the first changed byte, if any. */
  uint64_t mask = zero ? 0 : ~(uint64_t)0, secret = tm_secret[1] & mask;
  size_t i = from;
  for (; i + 64 <= to; i += 64) {
    uint64_t diff = 0, q = ((uintptr_t)p + i) >> 3;
    for (size_t j = 0; j < 8; j++) {
      uint64_t w;
      memcpy(&w, p + i + 8 * j, 8);
      diff |= w ^ (secret ^ ((q + j) & mask));
    }
    if (diff != 0) break;
  }
  for (; i + 8 <= to; i += 8) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    uint64_t want = tm_fill_word((uintptr_t)p + i, zero);
    if (w != want) return i + tm_first_byte(w ^ want);
  }
  return SIZE_MAX;
}

#define TM_FILL_EDGE ((size_t)32 << 10)

void tm_detect_fill(uint8_t *p, size_t size, bool zero)
{
  tm_secret_init();
  if (zero) { /* all of it: a read after free must see zeros */
    memset(p, 0, size);
    return;
  }
  if (size <= 2 * TM_FILL_EDGE) {
    tm_fill_range(p, 0, size, false);
  } else {
    tm_fill_range(p, 0, TM_FILL_EDGE, false);
    tm_fill_range(p, size - TM_FILL_EDGE, size, false);
  }
}

size_t tm_detect_fill_check(const uint8_t *p, size_t size, bool zero)
{
  tm_secret_init();
  if (size <= 2 * TM_FILL_EDGE) return tm_fill_range_check(p, 0, size, zero);
  size_t at = tm_fill_range_check(p, 0, TM_FILL_EDGE, zero);
  return at != SIZE_MAX ? at : tm_fill_range_check(p, size - TM_FILL_EDGE, size, zero);
}

/* ---- Side tables ---------------------------------------------------------------- */

static tm_detect_table_t *tm_detect_table(tm_segment_t *seg)
{
  tm_detect_table_t *table = atomic_load_explicit(&seg->detect, memory_order_acquire);
  if (table) return table;
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

_Atomic uint16_t *tm_detect_small_entry(tm_segment_t *seg, size_t slot, uint32_t index)
{
  tm_detect_table_t *table = tm_detect_table(seg);
  return table ? &table->small[slot][index] : NULL;
}

_Atomic uint32_t *tm_detect_medium_entry(tm_segment_t *seg, size_t page)
{
  tm_detect_table_t *table = tm_detect_table(seg);
  return table ? &table->medium[page] : NULL;
}

void tm_detect_medium_forget(tm_segment_t *seg, size_t page)
{
  tm_detect_table_t *table = atomic_load_explicit(&seg->detect, memory_order_acquire);
  if (table) atomic_store_explicit(&table->medium[page], TM_DETECT_UNKNOWN, memory_order_relaxed);
}

void tm_detect_slab_carved(tm_segment_t *seg, size_t slot)
{
  tm_detect_table_t *table = atomic_load_explicit(&seg->detect, memory_order_acquire);
  if (table == NULL) return;
  for (size_t i = 0; i < TM_SLAB_MAX_BLOCKS; i++)
    atomic_store_explicit(&table->small[slot][i], TM_DETECT_UNKNOWN, memory_order_relaxed);
}

/* ---- Quarantine ------------------------------------------------------------------- */

tm_quarantine_t *tm_quarantine_of(tm_heap_t *heap)
{
  if (heap->quarantine) return heap->quarantine;
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

bool tm_quarantine_needs_room(const tm_quarantine_t *q, size_t size)
{
  size_t limit = (size_t)TM_OPTION(quarantine_count), bytes = (size_t)TM_OPTION(quarantine_bytes);
  if (limit > q->capacity) limit = q->capacity;
  return q->count > 0 && (q->count >= limit || q->bytes + size > bytes);
}

void tm_quarantine_push(tm_quarantine_t *q, void *p, size_t size)
{
  q->entry[(q->head + q->count) % q->capacity] = (struct tm_quarantine_entry_s){p, size};
  q->count++;
  q->bytes += size;
}

void tm_quarantine_release(tm_heap_t *heap)
{
  tm_quarantine_t *q = heap->quarantine;
  if (q == NULL || q->count != 0) return;
  heap->quarantine = NULL;
  size_t size = sizeof(tm_quarantine_t) + q->capacity * sizeof(struct tm_quarantine_entry_s);
  tm_os_unmap_meta(q, (size + TM_PAGE_SIZE - 1) & ~(TM_PAGE_SIZE - 1));
}

bool tm_quarantine_pop(tm_quarantine_t *q, struct tm_quarantine_entry_s *out)
{
  if (q->count == 0) return false;
  *out = q->entry[q->head];
  q->head = (q->head + 1) % q->capacity;
  q->count--;
  q->bytes -= out->size;
  return true;
}
