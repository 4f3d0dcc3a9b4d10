/* detect.h: the detection mode (detect.c), TINYMALLOC_DETECT: canaries after
 * every block, freed blocks filled with a pattern and held in a per-thread
 * quarantine, requested sizes in out-of-band side tables. The pieces here are
 * data and checks; alloc.c decides when they run. Off by default; once on,
 * the fast paths stay off for the rest of the process (blocks may sit in a
 * quarantine). A no-op in tracked builds (ASan, memcheck do it better). */
#ifndef TM_DETECT_H
#define TM_DETECT_H

#include <string.h>

#include "error.h"
#include "options.h"
#include "types.h"

/* Slack every block gets in detection mode, so that an overflow by up to
 * this many bytes lands in the canary even when the request fills its class. */
#define TM_DETECT_SLACK ((size_t)8)

/* Side-table marks: a live block's requested size plus one (0: handed out
 * before the mode was on: no checks), or a free block's: the FREE bit, the
 * ZERO bit when its fill is zeros, (medium) the WHOLE bit when it covers
 * every byte (fill_all), and the bytes its fill covers in units of 16
 * (tm_detect_fill_length). Small entries have 16 bits (requests up to 16 KiB,
 * fills up to 16 KiB / 16), medium ones 32. */
#define TM_DETECT_UNKNOWN 0u
#define TM_DETECT_FREE16  0x8000u
#define TM_DETECT_ZERO16  0x4000u
#define TM_DETECT_FREE32  0x80000000u
#define TM_DETECT_ZERO32  0x40000000u
#define TM_DETECT_WHOLE32 0x20000000u

/* How a freed block was filled, kept with it (a quarantine entry's low size
 * bits, a medium mark's ZERO and WHOLE bits) so that its check reads what
 * its fill wrote, whatever the options are by then. */
#define TM_FILL_ZERO  1u /* zeros (zero_on_free), not the pattern */
#define TM_FILL_WHOLE 2u /* every byte (fill_all), not only the edges of a block over 64 KiB */
#define TM_FILL_BITS  (TM_FILL_ZERO | TM_FILL_WHOLE)

/* Canary bytes after a request: up to the block's end, but no more than to
 * 64 bytes past the request rounded up to 16 (every linear overflow of up
 * to 64 bytes starts inside them). */
#define TM_DETECT_CANARY_MAX ((size_t)64)

/* The bytes of a small block's fill checked when it leaves a quarantine
 * (all of them when it is handed out again). */
#define TM_DETECT_EXIT_CHECK ((size_t)64)

/* The bytes of a freed block the fill covers: what the program asked for
 * and the canary after it (more a correct program never touched), or the
 * whole block when the request is unknown. A multiple of 16. */
TM_INLINE size_t tm_detect_fill_length(size_t requested, size_t usable)
{
  if (requested == SIZE_MAX) return usable;
  size_t end = ((requested + 15) & ~(size_t)15) + TM_DETECT_CANARY_MAX;
  return end < usable ? end : usable;
}

/* The process secret the canary and the fill derive from (detect.c), set
 * up by the first check or fill. */
extern uint64_t tm_secret[2] TM_HIDDEN;
extern _Atomic int tm_secret_ready TM_HIDDEN;
void tm_secret_init_slow(void) TM_HIDDEN;

TM_INLINE void tm_secret_init(void)
{
  if (TM_UNLIKELY(!atomic_load_explicit(&tm_secret_ready, memory_order_acquire))) tm_secret_init_slow();
}

/* The fill's byte: from the secret, top bit set; zeros with zero_on_free. */
TM_INLINE uint8_t tm_fill_byte(bool zero) { return zero ? 0 : (uint8_t)(tm_secret[1] | 0x80); }

/* ---- Small blocks, 16 bytes per step ---------------------------------------------
 * A small block is 16-aligned and its size, its fill and the end of its
 * canary are multiples of 16: the common paths (quarantine.c) check and
 * write them in whole 16-byte chunks, inline, without memset or byte loops;
 * only when a chunk differs do the byte-exact checks of detect.c find the
 * offset. Little-endian machines only (tm_chunks_usable): the canary's bytes
 * are laid out as tm_canary_word's. */
typedef uint8_t tm_v16 __attribute__((vector_size(16)));
typedef int8_t tm_s16 __attribute__((vector_size(16)));
typedef uint64_t tm_v2x64 __attribute__((vector_size(16)));

TM_INLINE bool tm_chunks_usable(void) { return __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__; }

TM_INLINE tm_v16 tm_v16_load(const uint8_t *p)
{
  tm_v16 v;
  memcpy(&v, p, sizeof v);
  return v;
}

TM_INLINE void tm_v16_store(uint8_t *p, tm_v16 v) { memcpy(p, &v, sizeof v); }

TM_INLINE bool tm_v16_any(tm_v16 v)
{
  tm_v2x64 w = (tm_v2x64)v;
  return (w[0] | w[1]) != 0;
}

TM_INLINE tm_v16 tm_v16_splat(uint8_t byte)
{
  tm_v16 v = {0};
  return v + byte;
}

/* Lanes below k set: the request's bytes in the chunk its canary starts in. */
TM_INLINE tm_v16 tm_v16_below(size_t k)
{
  const tm_s16 lane = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
  tm_s16 limit = {0};
  limit += (int8_t)k;
  return (tm_v16)(lane < limit);
}

/* The canary of the 16 bytes at a 16-aligned address a, byte for byte
 * detect.c's tm_canary_byte: byte i is (secret byte | 0x80) ^ (mix & 0x7f),
 * and the second word's mix ((a + 8) >> 3 ^ (a + 8) >> 11) is the first's ^ 1
 * (bit 3 of a is clear: a + 8 carries nowhere). `base`: tm_canary_base(). */
TM_INLINE tm_v16 tm_canary_base(void)
{
  uint64_t s = tm_secret[0] | 0x8080808080808080ull;
  tm_v2x64 base = {s, s ^ 0x0101010101010101ull};
  return (tm_v16)base;
}

TM_INLINE tm_v16 tm_canary_chunk(tm_v16 base, uintptr_t a)
{
  return base ^ tm_v16_splat((uint8_t)(((a >> 3) ^ (a >> 11)) & 0x7f));
}

/* Whether [0, size) of p differs from `want` anywhere (size a multiple of
 * 16, at least 16). Every chunk is read, no early exit: a difference is rare,
 * and an exit at an unpredictable point costs more than the loads it saves.
 * Up to 64 bytes: four loads that overlap as needed; above: 64 bytes per
 * step, and the last 64 bytes once more. */
TM_INLINE bool tm_chunks_differ(const uint8_t *p, size_t size, tm_v16 want)
{
  tm_v16 acc;
  if (size <= 64) {
    size_t last = size - 16, mid1 = last < 16 ? last : 16, mid2 = last < 32 ? last : 32;
    acc = (tm_v16_load(p) ^ want) | (tm_v16_load(p + mid1) ^ want) | (tm_v16_load(p + mid2) ^ want) |
          (tm_v16_load(p + last) ^ want);
    return tm_v16_any(acc);
  }
  acc = (tm_v16_load(p + size - 64) ^ want) | (tm_v16_load(p + size - 48) ^ want) |
        (tm_v16_load(p + size - 32) ^ want) | (tm_v16_load(p + size - 16) ^ want);
  for (size_t i = 0; i + 64 <= size; i += 64)
    acc |= (tm_v16_load(p + i) ^ want) | (tm_v16_load(p + i + 16) ^ want) | (tm_v16_load(p + i + 32) ^ want) |
           (tm_v16_load(p + i + 48) ^ want);
  return tm_v16_any(acc);
}

/* Canary chunks over [requested, end) (end a multiple of 16, past
 * requested): the first keeps the request's bytes. */
TM_INLINE void tm_canary_chunks_write(uint8_t *p, size_t requested, size_t end)
{
  tm_v16 base = tm_canary_base();
  size_t i = requested & ~(size_t)15;
  tm_v16 keep = tm_v16_below(requested & 15);
  tm_v16_store(p + i, (tm_v16_load(p + i) & keep) | (tm_canary_chunk(base, (uintptr_t)p + i) & ~keep));
  for (i += 16; i < end; i += 16)
    tm_v16_store(p + i, tm_canary_chunk(base, (uintptr_t)p + i));
}

/* Whether a canary byte of [requested, end) changed. */
TM_INLINE bool tm_canary_chunks_differ(const uint8_t *p, size_t requested, size_t end)
{
  tm_v16 base = tm_canary_base();
  size_t i = requested & ~(size_t)15;
  tm_v16 diff = (tm_v16_load(p + i) ^ tm_canary_chunk(base, (uintptr_t)p + i)) & ~tm_v16_below(requested & 15);
  for (i += 16; i < end; i += 16)
    diff |= tm_v16_load(p + i) ^ tm_canary_chunk(base, (uintptr_t)p + i);
  return tm_v16_any(diff);
}

/* Fills [0, size) with `byte` (size a multiple of 16); memset beyond 256
 * bytes, where its wider stores pay for the call. */
TM_INLINE void tm_fill_chunks(uint8_t *p, size_t size, uint8_t byte)
{
  if (size > 256) {
    memset(p, byte, size);
    return;
  }
  tm_v16 v = tm_v16_splat(byte);
  for (size_t i = 0; i < size; i += 16)
    tm_v16_store(p + i, v);
}

/* The per-segment side table, mapped on first use. */
typedef struct tm_detect_table_s {
  _Atomic uint16_t small[TM_SLOTS][TM_SLAB_MAX_BLOCKS];
  _Atomic uint32_t medium[TM_SEGMENT_PAGES];
} tm_detect_table_t;

/* A quarantine: freed blocks wait here before they can be reused. */
typedef struct tm_quarantine_s {
  size_t capacity, head, count, bytes;
  struct tm_quarantine_entry_s {
    void *p;
    size_t size; /* the block's usable bytes, or'ed with how it was filled (TM_FILL_*) */
    size_t fill; /* bytes the fill covers */
  } entry[];
} tm_quarantine_t;

/* Maps a segment's side table (the first thread to get there installs it);
 * NULL when it cannot be mapped. */
tm_detect_table_t *tm_detect_table_map(tm_segment_t *seg) TM_HIDDEN;

TM_INLINE tm_detect_table_t *tm_detect_table(tm_segment_t *seg)
{
  tm_detect_table_t *table = atomic_load_explicit(&seg->detect, memory_order_acquire);
  return table ? table : tm_detect_table_map(seg);
}

/* The side-table entry of a small block or a medium run; NULL when the table
 * cannot be mapped (then the block goes unchecked). */
TM_INLINE _Atomic uint16_t *tm_detect_small_entry(tm_segment_t *seg, size_t slot, uint32_t index)
{
  tm_detect_table_t *table = tm_detect_table(seg);
  return table ? &table->small[slot][index] : NULL;
}

TM_INLINE _Atomic uint32_t *tm_detect_medium_entry(tm_segment_t *seg, size_t page)
{
  tm_detect_table_t *table = tm_detect_table(seg);
  return table ? &table->medium[page] : NULL;
}
/* The segment is being unmapped: so is its side table. */
void tm_detect_table_release(tm_segment_t *seg) TM_HIDDEN;
/* A run's pages went back to the arena (they may be purged): unknown. */
void tm_detect_medium_forget(tm_segment_t *seg, size_t page) TM_HIDDEN;
/* A slab of `capacity` blocks was carved: their entries start unknown. */
void tm_detect_slab_carved(tm_segment_t *seg, size_t slot, uint32_t capacity) TM_HIDDEN;

/* Canary bytes over [requested, usable) of block p, at most
 * TM_DETECT_CANARY_MAX of them. */
void tm_detect_canary_write(uint8_t *p, size_t requested, size_t usable) TM_HIDDEN;
/* The offset of the first canary byte that changed, or SIZE_MAX. */
size_t tm_detect_canary_check(const uint8_t *p, size_t requested, size_t usable) TM_HIDDEN;
/* Fills a freed block `how` says (TM_FILL_*: the pattern, or zeros): all of
 * it up to 64 KiB (or with either bit), the first and last 32 KiB of a
 * bigger one. */
void tm_detect_fill(uint8_t *p, size_t size, unsigned how) TM_HIDDEN;
/* The offset of the first byte of a block filled `how` that changed, or
 * SIZE_MAX: all of it up to 64 KiB or with TM_FILL_WHOLE, else its first
 * and last 32 KiB. */
size_t tm_detect_fill_check(const uint8_t *p, size_t size, unsigned how) TM_HIDDEN;

/* Maps the calling heap's quarantine; NULL when none (quarantine_count 0). */
tm_quarantine_t *tm_quarantine_map(tm_heap_t *heap) TM_HIDDEN;

/* The calling heap's quarantine (mapped on first use), NULL when none. */
TM_INLINE tm_quarantine_t *tm_quarantine_of(tm_heap_t *heap)
{
  return heap->quarantine ? heap->quarantine : tm_quarantine_map(heap);
}
/* Unmaps an empty quarantine (trim, thread exit); the next free maps one again. */
void tm_quarantine_release(tm_heap_t *heap) TM_HIDDEN;

/* The ring's three steps, inline: every free in the mode takes them. */

/* Whether the oldest entry must leave before a block of `size` bytes comes
 * in (by the quarantine_count and quarantine_bytes options). */
TM_INLINE bool tm_quarantine_needs_room(const tm_quarantine_t *q, size_t size)
{
  size_t limit = (size_t)TM_OPTION(quarantine_count), bytes = (size_t)TM_OPTION(quarantine_bytes);
  if (limit > q->capacity) limit = q->capacity;
  return q->count > 0 && (q->count >= limit || q->bytes + size > bytes);
}

/* Adds a block (the caller made room). */
TM_INLINE void tm_quarantine_push(tm_quarantine_t *q, void *p, size_t size, size_t fill)
{
  size_t at = q->head + q->count; /* count <= capacity: no division needed */
  if (at >= q->capacity) at -= q->capacity;
  q->entry[at] = (struct tm_quarantine_entry_s){p, size, fill};
  q->count++;
  q->bytes += size;
}

/* Takes the oldest entry; false when empty. */
TM_INLINE bool tm_quarantine_pop(tm_quarantine_t *q, struct tm_quarantine_entry_s *out)
{
  if (q->count == 0) return false;
  *out = q->entry[q->head];
  q->head = q->head + 1 == q->capacity ? 0 : q->head + 1;
  q->count--;
  q->bytes -= out->size;
  return true;
}

#endif
