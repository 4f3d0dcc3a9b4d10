/* Internal types, constants and small inline helpers shared by the files of src/.
 * Every structure here lives in metadata pages (segment headers, heap pool,
 * large-block header pages), never inside or next to a user block. Each struct
 * states who may write which fields; the invariants are checked by check.c. */
#ifndef TM_INTERNAL_H
#define TM_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tinymalloc.h"

#define TM_LIKELY(x)   __builtin_expect(!!(x), 1)
#define TM_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define TM_NOINLINE    __attribute__((noinline))
#define TM_COLD        __attribute__((cold, noinline))
#define TM_HIDDEN      __attribute__((visibility("hidden")))

/* ---- Geometry ------------------------------------------------------------ */
#define TM_PAGE_SHIFT       12
#define TM_PAGE_SIZE        ((size_t)1 << TM_PAGE_SHIFT)
#define TM_SEGMENT_SHIFT    22
#define TM_SEGMENT_SIZE     ((size_t)1 << TM_SEGMENT_SHIFT) /* 4 MiB, aligned to its size */
#define TM_SEGMENT_MASK     (TM_SEGMENT_SIZE - 1)
#define TM_SEGMENT_PAGES    (TM_SEGMENT_SIZE / TM_PAGE_SIZE) /* 1024 */
#define TM_PAGE_WORDS       (TM_SEGMENT_PAGES / 64)          /* 16 */
#define TM_SLAB_SHIFT       16
#define TM_SLAB_SIZE        ((size_t)1 << TM_SLAB_SHIFT) /* 64 KiB */
#define TM_SLAB_PAGES       (TM_SLAB_SIZE / TM_PAGE_SIZE)
#define TM_SLOTS            (TM_SEGMENT_SIZE / TM_SLAB_SIZE) /* 64 slab slots per segment */
#define TM_MIN_BLOCK        16
#define TM_SLAB_MAX_BLOCKS  (TM_SLAB_SIZE / TM_MIN_BLOCK)
#define TM_SLAB_WORDS       (TM_SLAB_MAX_BLOCKS / 64)
#define TM_SMALL_MAX        ((size_t)16 << 10) /* small: size classes in slabs */
#define TM_MEDIUM_MAX       ((size_t)1 << 20)  /* medium: page runs in segments */
#define TM_MEDIUM_ALIGN_MAX ((size_t)1 << 20)
#define TM_CLASS_COUNT      36
#define TM_ADDRESS_BITS     47
#define TM_MAX_ARENAS       TINYMALLOC_MAX_ARENAS
#define TM_HEAP_EMPTY_KEEP  4 /* empty slabs a thread keeps before returning one */
#define TM_ARENA_EMPTY_KEEP 1 /* empty segments an arena keeps mapped */
/* Requests above this are refused before any rounding can wrap. */
#define TM_MAX_REQUEST ((size_t)PTRDIFF_MAX - 2 * TM_SEGMENT_SIZE)

_Static_assert(TINYMALLOC_MAX_CLASSES >= TM_CLASS_COUNT, "class stats array too small");

struct tm_heap_s;
struct tm_arena_s;

/* ---- Slab ---------------------------------------------------------------
 * A 64 KiB slot of a segment carved into blocks of one size class.
 * - block_size != 0 iff the slot is a slab; it is written (release) under the
 *   arena lock after every other immutable field, so a reader that loads it
 *   with acquire sees start/capacity/reciprocal/class_index.
 * - alloc_bits: bit i set iff block i is handed out (or is a padding bit past
 *   capacity, always set). Written only by the owner (plain load + store,
 *   never a read-modify-write), read by anyone.
 * - remote_bits: bit i set by another thread's free of block i (fetch_or);
 *   the owner clears bits it has merged into alloc_bits.
 * - A block is live iff its alloc bit is set and its remote bit is clear.
 * - used = popcount(alloc_bits) - padding, owner-only.
 * - Owner is a heap, or NULL when the slab is abandoned to its arena (then the
 *   arena lock stands in for the owner). */
typedef struct tm_slab_s {
  _Atomic uint32_t block_size;
  uint32_t class_index;
  uint32_t capacity;
  uint32_t reciprocal;      /* ceil(2^32 / block_size): index = offset * reciprocal >> 32 */
  uint32_t start_offset;    /* of the first block in the segment (an offset, not a pointer:
                               a tool scanning metadata for pointers must not see one) */
  uint32_t last_block_size; /* block size before the slab was released (for reports) */
  /* owner-only */
  uint32_t used;
  uint32_t hint; /* no clear alloc bit in words below hint */
  bool in_full_list;
  bool counted_empty; /* counted in heap->empty_slabs */
  struct tm_slab_s *next, *prev;
  /* shared */
  _Atomic(struct tm_heap_s *) owner;
  _Atomic uint32_t remote_inflight; /* remote frees between their first and last touch */
  _Atomic uint32_t has_remote;      /* set after a remote bit was published */
  _Atomic uint64_t alloc_bits[TM_SLAB_WORDS];
  _Atomic uint64_t remote_bits[TM_SLAB_WORDS];
} tm_slab_t;

/* ---- Segment ------------------------------------------------------------
 * 4 MiB, aligned to its size, owned by one arena; everything below is
 * protected by that arena's lock except slabs[] (see tm_slab_t).
 * Pages [0, meta_pages) hold this header. page_used: metadata, slab or
 * medium-run page. run_start: first page of a live medium run, run_pages
 * its length. freed_start: first page of a freed run not reused since (tells
 * a double free from a wild pointer). page_dirty: page may hold non-zero
 * data (set when handed out, cleared by purge). */
typedef struct tm_segment_s {
  struct tm_arena_s *arena;
  struct tm_segment_s *next, *prev;
  uint32_t meta_pages;
  uint32_t used_pages;
  uint32_t slab_count;
  uint32_t medium_count;
  uint64_t page_used[TM_PAGE_WORDS];
  uint64_t run_start[TM_PAGE_WORDS];
  uint64_t freed_start[TM_PAGE_WORDS];
  uint64_t page_dirty[TM_PAGE_WORDS];
  uint16_t run_pages[TM_SEGMENT_PAGES];
  tm_slab_t slabs[TM_SLOTS];
} tm_segment_t;

/* The padding bits of bitmap word w: blocks past `capacity`, always set. */
static inline uint64_t tm_slab_padding(uint32_t capacity, uint32_t w)
{
  if (w * 64 + 64 <= capacity) return 0;
  if (w * 64 >= capacity) return ~0ull;
  return ~0ull << (capacity - w * 64);
}

static inline uint8_t *tm_slab_start(const tm_slab_t *slab)
{
  return (uint8_t *)((uintptr_t)slab & ~(uintptr_t)TM_SEGMENT_MASK) + slab->start_offset;
}

#define TM_META_PAGES ((sizeof(tm_segment_t) + TM_PAGE_SIZE - 1) / TM_PAGE_SIZE)

/* ---- Large block ----------------------------------------------------------
 * Its own mapping, aligned to max(segment, alignment). This header sits in
 * the first page; the user block starts at base + max(page, alignment). */
typedef struct tm_large_s {
  uint64_t magic;
  uint8_t *base;
  size_t map_size;
  size_t user_offset; /* the block is at base + user_offset (no pointer to it here, so
                         that memcheck's leak scan of this page does not find one) */
  size_t usable;
  _Atomic uint32_t live; /* 1 until the first free claims it */
  struct tm_arena_s *arena;
  struct tm_large_s *next, *prev; /* arena list, arena lock */
} tm_large_t;

static inline uint8_t *tm_large_user(const tm_large_t *large) { return large->base + large->user_offset; }

#define TM_LARGE_MAGIC 0x746d6c617267656bULL

/* ---- Thread heap ----------------------------------------------------------
 * Owned by one thread (the fields above "shared" are touched by it alone).
 * Counters are written by the owner with relaxed load+store (no RMW) and
 * summed by tinymalloc_stats. Heaps are never unmapped: a dead heap returns
 * to the pool with its counters, so totals survive thread exit. */
typedef struct tm_heap_s {
  struct tm_arena_s *arena;
  tm_slab_t *avail[TM_CLASS_COUNT]; /* slabs with a free block, current first */
  tm_slab_t *full[TM_CLASS_COUNT];
  uint32_t remote_seen[TM_CLASS_COUNT];
  uint32_t empty_slabs;
  bool alive;
  struct tm_heap_s *next_all;  /* registry of every heap (pool lock) */
  struct tm_heap_s *next_free; /* pool free list (pool lock) */
  /* shared */
  _Atomic uint32_t remote_pending[TM_CLASS_COUNT]; /* bumped by remote frees */
  _Atomic size_t small_allocs[TM_CLASS_COUNT];
  _Atomic size_t small_frees[TM_CLASS_COUNT];
  _Atomic size_t big_allocs[2], big_frees[2]; /* [0] medium, [1] large */
  _Atomic size_t big_alloc_bytes[2], big_free_bytes[2];
} tm_heap_t;

/* ---- Arena ----------------------------------------------------------------
 * One per CPU. Its lock protects its segments' page maps, its lists and
 * everything a slab owner is not allowed to touch. */
typedef struct tm_arena_s {
  pthread_mutex_t lock;
  uint32_t index;
  tm_segment_t *segments;
  size_t segment_count;
  tm_slab_t *abandoned[TM_CLASS_COUNT]; /* slabs of exited threads */
  tm_large_t *large;
  size_t medium_live, large_live;
  size_t threads;
  uint64_t last_purge_ns;
  size_t dirty_pages;
} __attribute__((aligned(64))) tm_arena_t;

/* ---- Options -------------------------------------------------------------- */
/* Settable at any time from any thread: relaxed atomics, read with TM_OPTION. */
typedef struct tm_options_s {
  _Atomic long verbose;
  _Atomic long show_stats;
  _Atomic long show_errors;
  _Atomic long junk;
  _Atomic long purge_delay_ms;
  _Atomic long arenas;
} tm_options_t;
#define TM_OPTION(name) atomic_load_explicit(&tm_options.name, memory_order_relaxed)

/* ---- Segment map ------------------------------------------------------------ */
enum {
  TM_SEG_NONE = 0,
  TM_SEG_ARENA = 1,       /* an arena segment */
  TM_SEG_LARGE_HEAD = 2,  /* first segment of a large mapping (header page) */
  TM_SEG_LARGE_BODY = 3,  /* further segments of a large mapping */
  TM_SEG_FREED_LARGE = 4, /* was a large mapping, now unmapped */
  TM_SEG_FREED = 5        /* was an arena segment, now unmapped */
};

/* ---- Globals (init.c, heap.c, options.c) ------------------------------------ */
extern tm_options_t tm_options TM_HIDDEN;
extern tm_arena_t tm_arenas[TM_MAX_ARENAS] TM_HIDDEN;
extern uint32_t tm_arena_count TM_HIDDEN;
extern _Atomic(uint8_t) *tm_segmap TM_HIDDEN;
extern _Atomic int tm_init_state TM_HIDDEN;
extern __thread tm_heap_t *tm_thread_heap __attribute__((tls_model("initial-exec"))) TM_HIDDEN;
extern uint32_t tm_class_size[TM_CLASS_COUNT] TM_HIDDEN;

/* ---- Functions by file ------------------------------------------------------ */
/* init.c */
void tm_init_slow(void) TM_HIDDEN;
static inline void tm_init(void)
{
  if (TM_UNLIKELY(atomic_load_explicit(&tm_init_state, memory_order_acquire) != 2)) tm_init_slow();
}
uint32_t tm_cpu_count(void) TM_HIDDEN; /* capped at TM_MAX_ARENAS */
void tm_fork_prepare(void) TM_HIDDEN;
void tm_fork_parent(void) TM_HIDDEN;
void tm_fork_child(void) TM_HIDDEN;

/* os.c: the only door to the OS for memory */
void *tm_os_map_aligned(size_t size, size_t alignment) TM_HIDDEN;
void *tm_os_map(size_t size) TM_HIDDEN;     /* page-aligned metadata memory */
void *tm_os_reserve(size_t size) TM_HIDDEN; /* address space, not counted as mapped */
void tm_os_unmap(void *p, size_t size) TM_HIDDEN;
void tm_os_purge(void *p, size_t size) TM_HIDDEN;
bool tm_os_grow_in_place(void *base, size_t old_size, size_t new_size) TM_HIDDEN;
uint64_t tm_os_now_ns(void) TM_HIDDEN;
size_t tm_os_resident(const void *p, size_t size) TM_HIDDEN;
extern _Atomic size_t tm_os_mapped, tm_os_mapped_peak, tm_os_meta_mapped, tm_os_purged, tm_os_unmapped TM_HIDDEN;

/* segmap.c */
void tm_segmap_init(void) TM_HIDDEN;
void tm_segmap_set(uintptr_t base, size_t size, uint8_t head_kind, uint8_t body_kind) TM_HIDDEN;
static inline uint8_t tm_segmap_kind(uintptr_t addr)
{
  if (TM_UNLIKELY(addr >> TM_ADDRESS_BITS)) return TM_SEG_NONE;
  return atomic_load_explicit(&tm_segmap[addr >> TM_SEGMENT_SHIFT], memory_order_acquire);
}

/* sizeclass.c */
void tm_sizeclass_init(void) TM_HIDDEN;
static inline unsigned tm_size_class(size_t size)
{
  if (size <= 128) return size <= 16 ? 0 : (unsigned)((size + 15) >> 4) - 1;
  unsigned p = 63u - (unsigned)__builtin_clzll(size - 1); /* size in (2^p, 2^(p+1)] */
  return 8u + (p - 7u) * 4u + (unsigned)(((size - 1) >> (p - 2)) & 3u);
}
unsigned tm_aligned_class(size_t size, size_t alignment) TM_HIDDEN;

/* segment.c (arena lock held unless said otherwise) */
tm_segment_t *tm_segment_create(tm_arena_t *arena) TM_HIDDEN;
void tm_segment_destroy(tm_segment_t *seg) TM_HIDDEN;
size_t tm_segment_find_run(tm_segment_t *seg, size_t pages, size_t align_pages) TM_HIDDEN;
void tm_segment_take_pages(tm_segment_t *seg, size_t first, size_t pages, bool *was_clean) TM_HIDDEN;
void tm_segment_give_pages(tm_segment_t *seg, size_t first, size_t pages) TM_HIDDEN;
size_t tm_segment_purge(tm_segment_t *seg) TM_HIDDEN;
static inline tm_segment_t *tm_segment_of(const void *p)
{
  return (tm_segment_t *)((uintptr_t)p & ~(uintptr_t)TM_SEGMENT_MASK);
}
static inline size_t tm_page_of(const tm_segment_t *seg, const void *p)
{
  return ((uintptr_t)p - (uintptr_t)seg) >> TM_PAGE_SHIFT;
}
/* The slab slot holding `p` (in an arena segment) and its block size, 0 when
 * the slot is not a carved slab (metadata, medium pages or free pages). */
static inline tm_slab_t *tm_slab_at(const void *p, uint32_t *block_size)
{
  tm_segment_t *seg = tm_segment_of(p);
  tm_slab_t *slab = &seg->slabs[((uintptr_t)p - (uintptr_t)seg) >> TM_SLAB_SHIFT];
  *block_size = atomic_load_explicit(&slab->block_size, memory_order_acquire);
  return slab;
}
static inline bool tm_bit_get(const uint64_t *words, size_t i) { return (words[i >> 6] >> (i & 63)) & 1; }

/* bitmap helpers (bitmap.c) */
void tm_bits_set(uint64_t *words, size_t first, size_t n) TM_HIDDEN;
void tm_bits_clear(uint64_t *words, size_t first, size_t n) TM_HIDDEN;
bool tm_bits_any(const uint64_t *words, size_t first, size_t n) TM_HIDDEN;
size_t tm_bits_find_clear_run(const uint64_t *words, size_t nbits, size_t n, size_t align) TM_HIDDEN;

/* slab.c */
void tm_slab_carve(tm_slab_t *slab, uint8_t *start, unsigned class_index) TM_HIDDEN;
uint32_t tm_slab_merge_remote(tm_slab_t *slab) TM_HIDDEN;
void tm_slab_free_remote(tm_slab_t *slab, uint32_t index, void *p, const char *op) TM_HIDDEN;
static inline uint32_t tm_slab_index(const tm_slab_t *slab, size_t offset)
{
  return (uint32_t)(((uint64_t)offset * slab->reciprocal) >> 32);
}
static inline bool tm_slab_block_live(const tm_slab_t *slab, uint32_t index)
{
  uint64_t bit = 1ull << (index & 63);
  return (atomic_load_explicit(&slab->alloc_bits[index >> 6], memory_order_relaxed) & bit) &&
         !(atomic_load_explicit(&slab->remote_bits[index >> 6], memory_order_acquire) & bit);
}

/* Owner only: the lowest free block of a slab that has one (used < capacity). */
static inline void *tm_slab_take_block(tm_slab_t *slab)
{
  uint32_t w = slab->hint;
  uint64_t bits;
  while ((bits = atomic_load_explicit(&slab->alloc_bits[w], memory_order_relaxed)) == ~0ull)
    w++;
  unsigned b = (unsigned)__builtin_ctzll(~bits);
  atomic_store_explicit(&slab->alloc_bits[w], bits | (1ull << b), memory_order_relaxed);
  slab->hint = w;
  slab->used++;
  return tm_slab_start(slab) + ((size_t)w * 64 + b) * atomic_load_explicit(&slab->block_size, memory_order_relaxed);
}

/* heap.c */
tm_heap_t *tm_heap_get_slow(void) TM_HIDDEN;
static inline tm_heap_t *tm_heap_get(void)
{
  tm_heap_t *heap = tm_thread_heap;
  return TM_LIKELY(heap != NULL) ? heap : tm_heap_get_slow();
}
void *tm_heap_alloc_small_slow(tm_heap_t *heap, unsigned cls) TM_HIDDEN;
void tm_heap_slab_emptied(tm_heap_t *heap, tm_slab_t *slab) TM_HIDDEN;
void tm_heap_slab_unfull(tm_heap_t *heap, tm_slab_t *slab) TM_HIDDEN;
void tm_heap_slab_filled(tm_heap_t *heap, tm_slab_t *slab) TM_HIDDEN;
void tm_heap_slab_refilled(tm_heap_t *heap, tm_slab_t *slab) TM_HIDDEN;
size_t tm_heap_release_empty(tm_heap_t *heap) TM_HIDDEN;
void tm_heap_pool_lock(void) TM_HIDDEN;
void tm_heap_pool_unlock(void) TM_HIDDEN;
void tm_heap_pool_reinit(void) TM_HIDDEN;
tm_heap_t *tm_heap_registry(void) TM_HIDDEN;
void tm_heap_key_init(void) TM_HIDDEN;
static inline void tm_counter_add(_Atomic size_t *c, size_t n)
{
  atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n, memory_order_relaxed);
}

/* arena.c */
tm_arena_t *tm_arena_for_thread(void) TM_HIDDEN;
tm_slab_t *tm_arena_get_slab(tm_arena_t *arena, tm_heap_t *heap, unsigned cls) TM_HIDDEN;
void tm_arena_release_slab(tm_arena_t *arena, tm_slab_t *slab) TM_HIDDEN; /* lock held */
void tm_arena_abandon_slab(tm_arena_t *arena, tm_slab_t *slab) TM_HIDDEN; /* lock held */
void tm_arena_adopt_orphans(tm_arena_t *arena) TM_HIDDEN;                 /* lock held, fork child */
void *tm_arena_alloc_medium(tm_arena_t *arena, size_t size, size_t need, size_t alignment, bool zero) TM_HIDDEN;
void tm_medium_free(void *p, const char *op) TM_HIDDEN;
bool tm_medium_lookup(const void *p, const char *op, size_t *usable) TM_HIDDEN;
bool tm_medium_resize_in_place(void *p, size_t new_size, size_t *usable) TM_HIDDEN;
void tm_arena_after_free(tm_arena_t *arena) TM_HIDDEN; /* lock held: purge when due */
size_t tm_arena_trim(tm_arena_t *arena) TM_HIDDEN;

/* large.c */
void *tm_large_alloc(size_t size, size_t alignment) TM_HIDDEN;
tm_large_t *tm_large_find(const void *p, const char *op) TM_HIDDEN;
void tm_large_free(void *p, const char *op) TM_HIDDEN;
bool tm_large_resize_in_place(tm_large_t *large, size_t new_size) TM_HIDDEN;

/* alloc.c */
void *tm_alloc_aligned(size_t size, size_t alignment, bool zero) TM_HIDDEN;
void tm_free_slow(void *p, const char *op) TM_HIDDEN;
bool tm_block_usable(const void *p, const char *op, size_t *usable) TM_HIDDEN;

/* error.c */
void tm_report(tinymalloc_error_kind_t kind, const char *op, const void *p, const char *detail, size_t block_size,
               const void *block_start) TM_HIDDEN;
void tm_warn(const char *a, const char *b) TM_HIDDEN;
/* Formats an unsigned number into buf (returns characters written). */
size_t tm_fmt_hex(char *buf, uintptr_t v) TM_HIDDEN;
size_t tm_fmt_dec(char *buf, uint64_t v) TM_HIDDEN;

/* check.c: what the bitmaps, page maps and large lists say is live (the
 * truth the counters must agree with); takes every arena lock in turn. */
typedef struct tm_census_s {
  size_t small_live[TM_CLASS_COUNT];
  size_t medium_live, medium_bytes, large_live, large_bytes;
} tm_census_t;
void tm_census(tm_census_t *out) TM_HIDDEN;

/* stats.c, stats_print.c */
void tm_stats_rebuild(void) TM_HIDDEN; /* fork child: counters from the bitmaps */
void tm_stats_keep_stderr(void) TM_HIDDEN;
void tm_stats_print_at_exit(void) TM_HIDDEN;

/* options.c */
void tm_options_init(void) TM_HIDDEN;
#define TM_JUNK_ALLOC_BYTE 0xa5                    /* TINYMALLOC_JUNK: fresh blocks */
#define TM_JUNK_FREE_BYTE  0x5a                    /* TINYMALLOC_JUNK: freed blocks */
void tm_junk_fill(void *p, size_t size) TM_HIDDEN; /* fills with TM_JUNK_FREE_BYTE */

#endif
