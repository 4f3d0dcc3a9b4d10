/* detect.h: the detection mode (detect.c), TINYMALLOC_DETECT: canaries after
 * every block, freed blocks filled with a pattern and held in a per-thread
 * quarantine, requested sizes in out-of-band side tables. The pieces here are
 * data and checks; alloc.c decides when they run. Off by default; once on,
 * the fast paths stay off for the rest of the process (blocks may sit in a
 * quarantine). A no-op in tracked builds (ASan, memcheck do it better). */
#ifndef TM_DETECT_H
#define TM_DETECT_H

#include "error.h"
#include "options.h"
#include "types.h"

/* Slack every block gets in detection mode, so that an overflow by up to
 * this many bytes lands in the canary even when the request fills its class. */
#define TM_DETECT_SLACK ((size_t)8)

/* Side-table marks: a live block's requested size plus one (0: handed out
 * before the mode was on: no checks), or a free block's: the FREE bit, the
 * ZERO bit when its fill is zeros, and the bytes its fill covers in units of
 * 16 (tm_detect_fill_length). Small entries have 16 bits (requests up to
 * 16 KiB, fills up to 16 KiB / 16), medium ones 32. */
#define TM_DETECT_UNKNOWN 0u
#define TM_DETECT_FREE16  0x8000u
#define TM_DETECT_ZERO16  0x4000u
#define TM_DETECT_FREE32  0x80000000u
#define TM_DETECT_ZERO32  0x40000000u

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
    size_t size; /* the block's usable bytes; bit 0 set when the fill was zeros */
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
/* Fills a freed block (the pattern, or zeros with zero_on_free): all of it
 * up to 64 KiB, the first and last 32 KiB of a bigger one. */
void tm_detect_fill(uint8_t *p, size_t size, bool zero) TM_HIDDEN;
/* The offset of the first byte of a filled block that changed, or SIZE_MAX. */
size_t tm_detect_fill_check(const uint8_t *p, size_t size, bool zero) TM_HIDDEN;

/* The same for a small block (16-aligned, a multiple of 16 bytes), in one
 * call each, 16 bytes per step. tm_detect_small_fill_check: the offset of
 * the first byte of [0, size) that differs from the fill, or SIZE_MAX.
 * tm_detect_small_hand_out: the block is handed out for `requested` bytes:
 * its fill (`fill` bytes, 0: none) is checked (the first changed byte, or
 * SIZE_MAX) and the canary written. tm_detect_small_retire: a freed block's
 * canary is checked (the first changed byte, or SIZE_MAX; `requested` may be
 * SIZE_MAX: unknown, no canary), then `fill` bytes filled. */
size_t tm_detect_small_fill_check(const uint8_t *p, size_t size, bool zero) TM_HIDDEN;
size_t tm_detect_small_hand_out(uint8_t *p, size_t fill, bool zero, size_t requested, size_t usable) TM_HIDDEN;
size_t tm_detect_small_retire(uint8_t *p, size_t requested, size_t usable, size_t fill, bool zero) TM_HIDDEN;

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
