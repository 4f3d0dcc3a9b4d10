/* The one hook layer between tinymalloc and the tools that watch memory
 * (docs/architecture.md): every place that hands out, takes back, resizes in
 * place, maps from, purges or returns to the OS calls exactly one of these.
 * Backends: none (every hook compiles to nothing), ASan (TM_TRACK_ASAN) and
 * Valgrind memcheck (TM_TRACK_VALGRIND). A hook must never allocate. */
#ifndef TM_TRACK_H
#define TM_TRACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Contract shared by every backend (docs/sanitizers.md):
 * - tm_track_os_map and tm_track_os_purge get user-data pages only, never
 *   metadata: the allocator reads and writes its headers freely, so they
 *   must never be poisoned. tm_track_os_unmap may get a whole mapping,
 *   header included (lifting poison that is not there is harmless).
 * - Between tm_track_malloc and tm_track_free exactly the requested bytes of a
 *   block are accessible; the slack up to the usable size, free blocks and
 *   fresh pages are not. The tool's own shadow state is therefore the record
 *   of each block's requested size: no side table, nothing inside the block.
 * - In a tracked build tm_track_usable_size returns that requested size (what
 *   ASan's and memcheck's own malloc_usable_size return), so a program that
 *   uses every "usable" byte stays correct and p[n] is still caught. The core
 *   copies this many bytes when realloc moves a block.
 * - tm_track_resize must get as old_requested what tm_track_usable_size
 *   returned before the block changed (memcheck rejects any other old size
 *   with "Invalid free()"); ASan does not need it. */

#if defined(TM_TRACK_ASAN) && defined(TM_TRACK_VALGRIND)
#error "tinymalloc: choose one tracking backend (TM_TRACK_ASAN or TM_TRACK_VALGRIND)"
#endif

#if defined(TM_TRACK_ASAN)
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TM_TRACK_ASAN_COMPILED 1
#endif
#endif
#if !defined(TM_TRACK_ASAN_COMPILED) && !defined(__SANITIZE_ADDRESS__)
#error "tinymalloc: TM_TRACK_ASAN needs the core compiled with -fsanitize=address"
#endif
#include <sanitizer/asan_interface.h>
#define TM_TRACKING 1
#elif defined(TM_TRACK_VALGRIND)
#include <valgrind/memcheck.h>
#include <valgrind/valgrind.h>
#define TM_TRACKING 1
#else
#define TM_TRACKING 0
#endif

/* Tracked builds leave at least this many inaccessible bytes after every
 * block (the block is taken this much larger than asked): an overflow of a
 * block whose size equals its size class lands in poison, not in the next
 * block. Untracked builds pay nothing. */
#define TM_TRACK_REDZONE ((size_t)(TM_TRACKING ? 16 : 0))

#if defined(TM_TRACK_ASAN)
/* track.c: LeakSanitizer root regions, so that system-malloc pointers stored
 * only in tinymalloc blocks are not reported as leaks. */
void tm_track_roots_add(void *p, size_t size) __attribute__((visibility("hidden")));
void tm_track_roots_remove(void *p, size_t size) __attribute__((visibility("hidden")));
/* Fork child: the registry's spin lock may be held by a vanished thread. */
void tm_track_fork_child(void) __attribute__((visibility("hidden")));
#else
static inline void tm_track_fork_child(void) {}
#endif

#if TM_TRACKING
/* Whether the program may touch this byte, asked without a report: ASan's
 * shadow, or memcheck's GET_VBITS, which answers 3 for "not addressable". */
static inline bool tm_track_byte_accessible(const unsigned char *b)
{
#if defined(TM_TRACK_ASAN)
  return !__asan_address_is_poisoned(b);
#else
  unsigned char vbits;
  return VALGRIND_GET_VBITS(b, &vbits, 1) == 1;
#endif
}

/* The requested size of a live block: the length of its accessible prefix.
 * Blocks are accessible exactly on [p, p + requested), so a binary search is
 * exact; O(log usable) probes, even for a large block. */
static inline size_t tm_track_requested_size(const void *p, size_t usable)
{
  const unsigned char *b = (const unsigned char *)p;
  if (usable == 0 || tm_track_byte_accessible(b + usable - 1)) return usable;
  size_t lo = 0, hi = usable - 1; /* b[hi] is not accessible: the answer is in [lo, hi] */
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (tm_track_byte_accessible(b + mid))
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}
#endif

/* Fresh pages from the OS handed out at once as a large block, or as the
 * pages it gains by growing in place: the block's tm_track_malloc or
 * tm_track_resize sets the state of every byte of them right after, so
 * only LSan is told here. (Poisoning them first wrote an eighth of their
 * size in shadow, 1.6 MiB for 13 MiB, that the next call wrote again.) */
static inline void tm_track_os_map_block(void *p, size_t size)
{
#if defined(TM_TRACK_ASAN)
  tm_track_roots_add(p, size);
#elif defined(TM_TRACK_VALGRIND)
  VALGRIND_MAKE_MEM_NOACCESS(p, size);
#else
  (void)p;
  (void)size;
#endif
}

/* Fresh user-data pages from the OS that are not handed out yet (a
 * segment's data pages, a guarded large mapping's): user accesses to them
 * are errors. */
static inline void tm_track_os_map(void *p, size_t size)
{
#if defined(TM_TRACK_ASAN)
  __asan_poison_memory_region(p, size);
#endif
  tm_track_os_map_block(p, size);
}

/* Pages about to be unmapped: poison would outlive the mapping and fall on
 * whatever is mapped there next, so it is lifted first. */
static inline void tm_track_os_unmap(void *p, size_t size)
{
#if defined(TM_TRACK_ASAN)
  tm_track_roots_remove(p, size);
  __asan_unpoison_memory_region(p, size);
#elif defined(TM_TRACK_VALGRIND)
  VALGRIND_MAKE_MEM_NOACCESS(p, size);
#else
  (void)p;
  (void)size;
#endif
}

/* Free user-data pages about to be purged (madvise DONTNEED): they stay
 * mapped and ours, so they stay inaccessible to the program. */
static inline void tm_track_os_purge(void *p, size_t size)
{
#if defined(TM_TRACK_ASAN)
  __asan_poison_memory_region(p, size);
#elif defined(TM_TRACK_VALGRIND)
  VALGRIND_MAKE_MEM_NOACCESS(p, size);
#else
  (void)p;
  (void)size;
#endif
}

/* A block handed out: `requested` bytes may be used, `usable` is the block's
 * size; `zeroed` when the block's bytes are known to be zero (calloc). The
 * tail is poisoned before the head is unpoisoned so that the granule holding
 * p[requested] ends up partially addressable, byte-exact. */
static inline void tm_track_malloc(void *p, size_t requested, size_t usable, bool zeroed)
{
#if defined(TM_TRACK_ASAN)
  (void)zeroed;
  __asan_poison_memory_region((char *)p + requested, usable - requested);
  __asan_unpoison_memory_region(p, requested);
#elif defined(TM_TRACK_VALGRIND)
  VALGRIND_MAKE_MEM_NOACCESS((char *)p + requested, usable - requested);
  VALGRIND_MALLOCLIKE_BLOCK(p, requested, 0, zeroed ? 1 : 0);
#else
  (void)p;
  (void)requested;
  (void)usable;
  (void)zeroed;
#endif
}

/* A block taken back (before the allocator can reuse it). */
static inline void tm_track_free(void *p, size_t usable)
{
#if defined(TM_TRACK_ASAN)
  __asan_poison_memory_region(p, usable);
#elif defined(TM_TRACK_VALGRIND)
  VALGRIND_FREELIKE_BLOCK(p, 0);
  VALGRIND_MAKE_MEM_NOACCESS(p, usable);
#else
  (void)p;
  (void)usable;
#endif
}

/* A block resized in place to new_requested bytes (see the contract above
 * for old_requested). */
static inline void tm_track_resize(void *p, size_t old_requested, size_t new_requested, size_t usable)
{
#if defined(TM_TRACK_ASAN)
  /* [p, p + old_requested) is accessible already: a growth lifts the poison
   * from the granule that held the old end on (not from p: a large block's
   * head is megabytes of shadow), after the tail is poisoned as always. */
  __asan_poison_memory_region((char *)p + new_requested, usable - new_requested);
  if (new_requested > old_requested) {
    size_t from = old_requested & ~(size_t)7;
    __asan_unpoison_memory_region((char *)p + from, new_requested - from);
  }
#elif defined(TM_TRACK_VALGRIND)
  if (RUNNING_ON_VALGRIND) {
    /* No probe here: a large block's pages may already have been unmapped
     * or gained (mremap), so only old_requested can say the old size. */
    VALGRIND_RESIZEINPLACE_BLOCK(p, old_requested, new_requested, 0);
    /* A large block grown by mremap gets fresh, accessible pages. */
    VALGRIND_MAKE_MEM_NOACCESS((char *)p + new_requested, usable - new_requested);
  }
#else
  (void)p;
  (void)old_requested;
  (void)new_requested;
  (void)usable;
#endif
}

/* What usable_size reports for a live block of `usable` bytes: in tracked
 * builds the requested size (see the contract above), else `usable`. */
static inline size_t tm_track_usable_size(const void *p, size_t usable)
{
#if defined(TM_TRACK_ASAN)
  return tm_track_requested_size(p, usable);
#elif defined(TM_TRACK_VALGRIND)
  return RUNNING_ON_VALGRIND ? tm_track_requested_size(p, usable) : usable;
#else
  (void)p;
  return usable;
#endif
}

/* TINYMALLOC_JUNK: fills a block with `byte` (only the requested bytes in
 * tracked builds, the rest is the tool's). */
static inline void tm_junk_fill(void *p, size_t usable, int byte) { memset(p, byte, tm_track_usable_size(p, usable)); }

#endif
