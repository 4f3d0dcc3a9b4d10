/* base.h owns what every file of src/ shares and nothing else: compiler
 * hints, visibility, and the geometry of the heap (pages, slabs, segments,
 * the size ranges of the three strategies). No structures, no functions. */
#ifndef TM_BASE_H
#define TM_BASE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tinymalloc.h"

#define TM_LIKELY(x)   __builtin_expect(!!(x), 1)
#define TM_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define TM_NOINLINE    __attribute__((noinline))
#define TM_HIDDEN      __attribute__((visibility("hidden")))
#define TM_INLINE      static inline __attribute__((always_inline))

/* ---- Geometry ------------------------------------------------------------ */
#define TM_PAGE_SHIFT      12
#define TM_PAGE_SIZE       ((size_t)1 << TM_PAGE_SHIFT)
#define TM_SEGMENT_SHIFT   22
#define TM_SEGMENT_SIZE    ((size_t)1 << TM_SEGMENT_SHIFT) /* 4 MiB, aligned to its size */
#define TM_SEGMENT_MASK    (TM_SEGMENT_SIZE - 1)
#define TM_SEGMENT_PAGES   (TM_SEGMENT_SIZE / TM_PAGE_SIZE) /* 1024 */
#define TM_PAGE_WORDS      (TM_SEGMENT_PAGES / 64)          /* words of a page bitmap */
#define TM_SLAB_SHIFT      16
#define TM_SLAB_SIZE       ((size_t)1 << TM_SLAB_SHIFT) /* 64 KiB */
#define TM_SLAB_PAGES      (TM_SLAB_SIZE / TM_PAGE_SIZE)
#define TM_SLOTS           (TM_SEGMENT_SIZE / TM_SLAB_SIZE) /* slab slots per segment */
#define TM_MIN_BLOCK       16
#define TM_SLAB_MAX_BLOCKS (TM_SLAB_SIZE / TM_MIN_BLOCK)
#define TM_SLAB_WORDS      (TM_SLAB_MAX_BLOCKS / 64)
#define TM_SMALL_MAX       ((size_t)16 << 10) /* small: size classes in slabs */
#define TM_MEDIUM_MAX      ((size_t)1 << 20)  /* medium: page runs in segments */
#define TM_MEDIUM_ALIGN_MAX ((size_t)1 << 20)
#define TM_CLASS_COUNT     36
#define TM_ADDRESS_BITS    47
#define TM_MAX_ARENAS      TINYMALLOC_MAX_ARENAS
/* Requests above this are refused before any rounding can wrap. */
#define TM_MAX_REQUEST ((size_t)PTRDIFF_MAX - 2 * TM_SEGMENT_SIZE)

_Static_assert(TINYMALLOC_MAX_CLASSES >= TM_CLASS_COUNT, "class stats array too small");

#endif
