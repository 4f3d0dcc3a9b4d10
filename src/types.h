/* types.h owns the allocator's structures and the invariants of each, written
 * above it. Every structure lives in metadata memory (segment headers, the heap
 * pool, large-block header pages, static storage), never inside a user block.
 * Functions live in the module headers; this file declares no function. */
#ifndef TM_TYPES_H
#define TM_TYPES_H

#include <pthread.h>

#include "base.h"

struct tm_heap_s;
struct tm_arena_s;

/* ---- Lock ------------------------------------------------------------------
 * A futex lock that remembers its holder (the thread's id), so that a fork
 * child can tell a lock held by a thread that does not exist there (its data
 * may be torn) from one held by the forking thread itself (a fork from a
 * signal handler: the interrupted code finishes after the handler). holder is
 * set right after locking and cleared right before unlocking. */
typedef struct tm_lock_s {
  _Atomic uint32_t state; /* 0 free, 1 held, 2 held and maybe waited for */
  _Atomic uintptr_t holder;
} tm_lock_t;

/* ---- Slab ------------------------------------------------------------------
 * A 64 KiB slot of a segment carved into blocks of one size class.
 * Geometry (block_size, reciprocal, capacity, words, class_index, slot) is
 * written under the arena lock before block_size is stored with release;
 * block_size == 0 (and capacity == 0) iff the slot is not a slab.
 *
 * Who writes what:
 * - bits[w].alloc: the owner only, with plain load + store (no read-modify-
 *   write). Bit i set iff block i is handed out, or i >= capacity (padding).
 * - used, free_words, high, flags, next/prev: the owner only.
 * - bits[w].remote: any thread's free of a block it does not own, with
 *   fetch_or; the owner takes bits away with exchange when it merges.
 * - notify, pending_next: see the notification protocol in slab.c.
 * "The owner" is the heap in `owner`; for an abandoned slab (owner ==
 * TM_OWNER_ARENA) it is whoever holds the arena lock.
 *
 * Invariants (checked by check.c when threads are quiescent):
 * - used == popcount(alloc bits) - padding;
 * - free_words bit w set iff alloc word w has a clear bit;
 * - a block is live iff its alloc bit is set and its remote bit is clear;
 * - a remote bit over a clear alloc bit exists only after two frees of one
 *   block raced; it is reported when found (merge or take), never merged;
 * - notify == TM_NOTIFY_QUEUED iff the slab is on exactly one heap's pending
 *   list, or is about to be pushed there by the thread that queued it.
 * The owner line is read by every free; the remote line is written by other
 * threads and kept off the owner's. */
enum { TM_NOTIFY_IDLE = 0, TM_NOTIFY_WANT = 1, TM_NOTIFY_QUEUED = 2 };
#define TM_SLAB_DESC_SHIFT 11
#define TM_SLAB_DESC_SIZE  ((size_t)1 << TM_SLAB_DESC_SHIFT)
enum { TM_SLAB_FULL = 1, TM_SLAB_EMPTY_KEPT = 2 };

typedef struct tm_slab_s {
  /* owner line */
  _Atomic uint32_t block_size;
  uint32_t reciprocal; /* ceil(2^32 / block_size): index = offset * reciprocal >> 32 */
  uint32_t capacity;
  uint32_t used;
  uint64_t free_words; /* bit w set iff word w has a clear alloc bit: ctz finds the lowest */
  uint32_t block0;     /* first block minus this descriptor's address: derivable from slot,
                          kept so that the allocation fast path needs one load (an offset,
                          not a pointer, so no tool scanning metadata mistakes it for one) */
  uint8_t class_index;
  uint8_t slot;  /* position in the segment: the slab starts at segment + slot * 64 KiB */
  uint8_t flags; /* TM_SLAB_FULL, TM_SLAB_EMPTY_KEPT */
  uint8_t words; /* bitmap words in use: ceil(capacity / 64) */
  _Atomic(struct tm_heap_s *) owner;
  struct tm_slab_s *next, *prev; /* the owner's partial/full list, or the arena's abandoned list */
  _Atomic uint32_t high;         /* words ever allocated from: blocks are taken lowest first, so a block
                                    in a word at or past this was never handed out (reports) */
  /* remote line */
  _Atomic uint32_t notify __attribute__((aligned(64)));
  uint32_t last_block_size; /* block size before the slot was released (reports) */
  _Atomic(struct tm_slab_s *) pending_next;
  /* Word w of both bitmaps side by side: the owner's take and free, and a
   * remote free, each touch one cache line for them. */
  struct tm_slab_bits_s {
    _Atomic uint64_t alloc;
    _Atomic uint64_t remote;
  } bits[TM_SLAB_WORDS] __attribute__((aligned(64)));
  /* Detection mode: bit i set while block i waits in a thread's quarantine
   * (still allocated in the alloc bits; set by the free that claims it with
   * fetch_or, cleared when it leaves the quarantine). */
  _Atomic uint64_t quarantine_bits[TM_SLAB_WORDS];
  /* Pads the descriptor to a power of two: a free finds it with a shift and a mask. */
  uint8_t unused[TM_SLAB_DESC_SIZE - 128 - 24 * TM_SLAB_WORDS];
} tm_slab_t;

_Static_assert(sizeof(tm_slab_t) == TM_SLAB_DESC_SIZE, "slab descriptor size");
_Static_assert(offsetof(tm_slab_t, notify) == 64, "the owner line is one cache line");

/* The owner of an abandoned slab: the arena (its lock holder). Never a heap
 * any thread has, so a free never takes the owner's path for it. */
extern struct tm_heap_s tm_owner_arena TM_HIDDEN;
#define TM_OWNER_ARENA (&tm_owner_arena)

/* ---- Segment ---------------------------------------------------------------
 * 4 MiB aligned to its size, owned by one arena. Everything but slabs[] is
 * protected by the arena lock. Pages [0, meta_pages) hold this header.
 * - page_used: metadata, slab, medium-run or purge-reserved page;
 * - run_start: first page of a medium run, run_pages its length; written
 *   under the lock, read without it (atomics);
 * - cached: first page of a run that is free but sits in a heap's medium
 *   cache (still taken in the page map). A run is live iff run_start is set
 *   and cached is clear. Every free of a run claims it by setting its cached
 *   bit with fetch_or (a bit already set: freed already); the cache or the
 *   lock holder clears it again;
 * - freed_start: first page of a freed medium run not reused since (tells a
 *   stale free of a medium block from a wild pointer);
 * - dirty: free page that may hold data (set when taken, cleared by purge);
 * - dirty_old: free since before the last purge tick (purged at the next);
 * - purging: taken by a purge that runs with the lock dropped.
 * used_pages == popcount(page_used); dirty and dirty_old are subsets of the
 * free pages. */
typedef struct tm_segment_s {
  struct tm_arena_s *arena;
  struct tm_segment_s *next, *prev;
  uint32_t meta_pages;
  uint32_t used_pages;
  uint32_t slab_count;
  uint32_t medium_count;
  uint32_t free_hint;   /* no free page below it */
  uint32_t empty_ticks; /* purge ticks seen while empty */
  uint64_t page_used[TM_PAGE_WORDS];
  _Atomic uint64_t run_start[TM_PAGE_WORDS];
  _Atomic uint64_t cached[TM_PAGE_WORDS];
  uint64_t freed_start[TM_PAGE_WORDS];
  uint64_t dirty[TM_PAGE_WORDS];
  uint64_t dirty_old[TM_PAGE_WORDS];
  uint64_t purging[TM_PAGE_WORDS];
  _Atomic uint16_t run_pages[TM_SEGMENT_PAGES];
  struct tm_detect_table_s *_Atomic detect; /* detection mode: requested sizes (detect.c) */
  tm_slab_t slabs[TM_SLOTS] __attribute__((aligned(TM_SLAB_DESC_SIZE)));
} tm_segment_t;

#define TM_META_PAGES   ((sizeof(tm_segment_t) + TM_PAGE_SIZE - 1) / TM_PAGE_SIZE)
#define TM_SLABS_OFFSET ((uintptr_t)offsetof(tm_segment_t, slabs))
/* The first slot whose pages are all past the header. */
#define TM_FIRST_SLAB_SLOT ((TM_META_PAGES + TM_SLAB_PAGES - 1) / TM_SLAB_PAGES)

/* ---- Large block -------------------------------------------------------------
 * A mapping of its own, aligned to max(segment, alignment). This header is the
 * mapping's first page; the block starts user_offset bytes in (a page, or the
 * alignment), so the header page sits right before the block: an underflow
 * of a large block reaches it (no slab or medium block has that exposure).
 * - live: 1 while handed out; the free that exchanges it to 0 owns the block.
 * - next/prev, cached_tick: the arena's list of live blocks or of cached
 *   mappings (freed, kept for reuse), under the arena lock.
 * - map_size and usable change only under the arena lock. */
typedef struct tm_large_s {
  uint64_t magic;
  size_t map_size;
  size_t user_offset;
  size_t usable;
  size_t requested; /* detection mode: the request plus one (0: unknown) */
  bool guarded;     /* detection mode: a guard page follows, or the pages were made
                       inaccessible (cached so, reused only for guarded blocks) */
  _Atomic uint32_t live;
  uint32_t cached_tick;
  struct tm_arena_s *arena;
  struct tm_large_s *next, *prev;
} tm_large_t;

#define TM_LARGE_MAGIC 0x746d6c617267656bULL

/* ---- Thread heap ------------------------------------------------------------
 * Owned by one thread: current, partial, full, empty_kept and the slab fields
 * that belong to the owner are touched by it alone, without locks.
 * - current[c]: the slab allocations of class c come from (not on a list);
 * - partial[c]: other slabs with free blocks (or remote frees to merge);
 * - full[c]: slabs that had no free block left; their notify is WANT or QUEUED;
 * - allocs[c]: cumulative allocations, written by the owner (relaxed
 *   load + store), summed by the statistics; live counts come from bitmaps;
 * - pending: slabs queued by other threads' frees (a lock-free stack; pushed
 *   by anyone, taken whole by the owner with exchange);
 * - remote_epoch: odd while this thread is inside a free of another thread's
 *   block (a segment is unmapped only after every odd epoch has moved on);
 * - medium_cache: see medium.c.
 * Heaps are never unmapped: a dead heap returns to the pool, counters intact. */
#define TM_MEDIUM_CACHE_PAGES 32 /* medium runs up to 128 KiB are cached */
#define TM_MEDIUM_CACHE_DEPTH 2
#define TM_MEDIUM_CACHE_BYTES ((size_t)1 << 20)

typedef struct tm_heap_s {
  tm_slab_t *current[TM_CLASS_COUNT];
  _Atomic size_t allocs[TM_CLASS_COUNT];
  tm_slab_t *partial[TM_CLASS_COUNT];
  tm_slab_t *full[TM_CLASS_COUNT];
  /* Freed medium runs of 1..32 pages (by page count), reused without the
   * arena lock; their cached bits are set. Bounded by TM_MEDIUM_CACHE_BYTES. */
  void *medium_cache[TM_MEDIUM_CACHE_PAGES][TM_MEDIUM_CACHE_DEPTH];
  uint8_t medium_cache_count[TM_MEDIUM_CACHE_PAGES];
  _Atomic size_t medium_cached_runs, medium_cached_bytes; /* owner-written, read by statistics */
  _Atomic size_t medium_reuses;                           /* allocations served by the cache */
  struct tm_arena_s *arena;
  uint32_t empty_kept;
  bool alive;
  struct tm_heap_s *next_all;                          /* registry of every heap (pool lock) */
  struct tm_heap_s *next_free;                         /* pool free list (pool lock) */
  struct tm_quarantine_s *quarantine;                  /* detection mode: blocks freed by this thread, waiting */
  _Atomic size_t quarantined[2], quarantined_bytes[2]; /* medium [0] and large [1] ones among them */
  _Atomic(tm_slab_t *) pending __attribute__((aligned(64)));
  _Atomic uint32_t remote_epoch;
} tm_heap_t;

/* ---- Arena -------------------------------------------------------------------
 * One per CPU. Its lock protects its segments' page maps, its lists, its
 * counters and every abandoned slab. lost: in a fork child, the lock was
 * held by a thread that does not exist there; the arena is never used again
 * (its blocks leak in the child). */
typedef struct tm_arena_s {
  tm_lock_t lock;
  bool lost;
  tm_segment_t *segments;
  _Atomic size_t segment_count;
  tm_slab_t *abandoned[TM_CLASS_COUNT];
  tm_large_t *large;       /* live large blocks */
  tm_large_t *large_cache; /* freed mappings kept for reuse, newest first */
  size_t large_cached_bytes, large_cached_count;
  size_t medium_live, medium_bytes, large_live, large_bytes;
  size_t medium_allocs, large_allocs;
  size_t threads;
  uint64_t tick_ns;    /* time of the last purge tick */
  uint32_t tick;       /* purge ticks so far */
  uint32_t clock_skip; /* calls since the clock was last read */
} __attribute__((aligned(64))) tm_arena_t;

#endif
