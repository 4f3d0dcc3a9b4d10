/* tinymalloc: a bitmap allocator with out-of-band metadata, per-CPU arenas,
 * thread-owned slabs and exact, always-on double-free / invalid-free detection.
 *
 * Every entry point here is thread-safe. Nothing in this header is named
 * malloc/free: the drop-in replacement is a separate library
 * (libtinymalloc-override) built on top of these functions. */
#ifndef TINYMALLOC_H
#define TINYMALLOC_H

/* ---- Version -------------------------------------------------------------
 * The release this header belongs to. CMakeLists.txt refuses to configure
 * when these differ from its project(VERSION), so the header, the shared
 * library's version, the CMake package version and the pkg-config Version
 * always agree. TINYMALLOC_VERSION is one comparable number:
 *   #if TINYMALLOC_VERSION >= 100 (0.1.0 or later) */
#define TINYMALLOC_VERSION_MAJOR  0
#define TINYMALLOC_VERSION_MINOR  1
#define TINYMALLOC_VERSION_PATCH  0
#define TINYMALLOC_VERSION_STRING "0.1.0"
#define TINYMALLOC_VERSION                                                                                             \
  (TINYMALLOC_VERSION_MAJOR * 10000 + TINYMALLOC_VERSION_MINOR * 100 + TINYMALLOC_VERSION_PATCH)

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define TINYMALLOC_API         __attribute__((visibility("default")))
#define TINYMALLOC_MALLOC_ATTR __attribute__((malloc, warn_unused_result))
#else
#define TINYMALLOC_API
#define TINYMALLOC_MALLOC_ATTR
#endif

/* ---- The malloc family ------------------------------------------------- */

/* Returns a block of at least `size` bytes aligned to 16, or NULL with
 * errno = ENOMEM. tinymalloc(0) returns a unique pointer that must be freed. */
TINYMALLOC_API TINYMALLOC_MALLOC_ATTR void *tinymalloc(size_t size);

/* Gives a block back. tinyfree(NULL) does nothing; errno is preserved.
 * A pointer that tinymalloc did not hand out, an interior pointer or a block
 * that is already free is reported through the error function (one line on
 * stderr, then abort unless a handler is installed) and otherwise ignored. */
TINYMALLOC_API void tinyfree(void *ptr);

/* Zeroed array of n elements of `size` bytes. n * size overflow returns NULL
 * with errno = ENOMEM. */
TINYMALLOC_API TINYMALLOC_MALLOC_ATTR void *tinycalloc(size_t n, size_t size);

/* Resizes a block, preserving min(old, new) bytes of its contents.
 * tinyrealloc(NULL, n) is tinymalloc(n); tinyrealloc(p, 0) frees p and
 * returns NULL (as glibc does). On failure returns NULL with errno = ENOMEM
 * and the old block is untouched and still live. */
TINYMALLOC_API void *tinyrealloc(void *ptr, size_t size);

/* tinyrealloc(ptr, n * size) with overflow checking (ENOMEM on overflow). */
TINYMALLOC_API void *tinyreallocarray(void *ptr, size_t n, size_t size);

/* A block of `size` bytes aligned to `alignment`, which must be a power of
 * two (any power of two up to 1 GiB works). Returns NULL with errno = EINVAL
 * for a bad alignment and ENOMEM when out of memory. */
TINYMALLOC_API TINYMALLOC_MALLOC_ATTR void *tinymemalign(size_t alignment, size_t size);

/* POSIX: alignment must be a power of two and a multiple of sizeof(void *).
 * Returns 0, EINVAL or ENOMEM; *out is written only on success. */
TINYMALLOC_API int tinyposix_memalign(void **out, size_t alignment, size_t size);

/* C11 aligned_alloc: like tinymemalign (size need not be a multiple). */
TINYMALLOC_API TINYMALLOC_MALLOC_ATTR void *tinyaligned_alloc(size_t alignment, size_t size);

/* The number of bytes usable in the block (>= the size requested). The whole
 * usable size may be used by the program. Returns 0 for NULL; an invalid
 * pointer is reported like an invalid free. */
TINYMALLOC_API size_t tinymalloc_usable_size(const void *ptr);

/* ---- Maintenance --------------------------------------------------------- */

/* Walks all metadata and verifies every invariant (bitmaps vs counters, page
 * maps, run starts, segment map, statistics). Returns 0 when everything
 * holds, otherwise the number of violations (each is described on stderr).
 * Call it when no other thread is inside tinymalloc: it reads structures
 * that their owners change without locks. */
TINYMALLOC_API int tinymalloc_check(void);

/* Returns free memory to the OS now: releases the calling thread's empty
 * slabs, adopts and releases empty slabs of exited threads, purges every
 * free page (madvise) and unmaps every empty segment. Returns the number of
 * bytes unmapped or purged. */
TINYMALLOC_API size_t tinymalloc_trim(void);

/* ---- Statistics ---------------------------------------------------------- */

#define TINYMALLOC_MAX_CLASSES 48
#define TINYMALLOC_MAX_ARENAS  64

typedef struct tinymalloc_class_stats_s {
  size_t block_size;  /* usable bytes of a block of this class */
  size_t live_blocks; /* blocks of this class handed out and not freed */
  size_t allocs;      /* cumulative allocations of this class */
  size_t slabs;       /* slabs of this class currently carved */
} tinymalloc_class_stats_t;

typedef struct tinymalloc_arena_stats_s {
  size_t segments;      /* segments owned by the arena */
  size_t mapped_bytes;  /* bytes of those segments and large blocks */
  size_t medium_blocks; /* live medium (page run) blocks */
  size_t large_blocks;  /* live large (own mapping) blocks */
  size_t threads;       /* thread heaps attached to the arena */
} tinymalloc_arena_stats_t;

typedef struct tinymalloc_stats_s {
  size_t live_blocks;       /* blocks handed out and not yet freed */
  size_t live_bytes;        /* usable bytes of those blocks */
  size_t mapped_bytes;      /* bytes currently mapped from the OS (data + metadata; not the
                               segment map's 32 MiB MAP_NORESERVE address-space reservation) */
  size_t peak_mapped_bytes; /* highest mapped_bytes since the process started */
  size_t resident_bytes;    /* bytes of those mappings resident in RAM (mincore) */
  size_t metadata_bytes;    /* bytes mapped for metadata (segment headers, heaps, maps) */
  size_t total_allocs;      /* cumulative successful allocations */
  size_t total_frees;       /* cumulative frees */
  size_t small_blocks;      /* live blocks by strategy */
  size_t medium_blocks;
  size_t large_blocks;
  size_t segments;       /* 4 MiB segments currently mapped */
  size_t purged_bytes;   /* cumulative bytes returned with madvise */
  size_t unmapped_bytes; /* cumulative bytes returned with munmap */
  size_t class_count;    /* entries used in classes[] */
  size_t arena_count;    /* entries used in arenas[] */
  tinymalloc_class_stats_t classes[TINYMALLOC_MAX_CLASSES];
  tinymalloc_arena_stats_t arenas[TINYMALLOC_MAX_ARENAS];
} tinymalloc_stats_t;

/* Fills *out (returns 0) with a snapshot. Counters are summed from per-thread
 * counters without stopping other threads: exact when they are quiescent. */
TINYMALLOC_API int tinymalloc_stats(tinymalloc_stats_t *out);

/* The cheap subset of the statistics, for callers that ask often (a fuzz
 * harness after every input, a test after every step): no system call and
 * no mincore; it counts live blocks from the slab bitmaps (a few
 * microseconds per hundred slabs). Exact when other threads are quiescent. */
typedef struct tinymalloc_counters_s {
  size_t live_blocks;  /* as in tinymalloc_stats_t */
  size_t live_bytes;   /* as in tinymalloc_stats_t */
  size_t mapped_bytes; /* as in tinymalloc_stats_t */
  size_t segments;     /* as in tinymalloc_stats_t */
} tinymalloc_counters_t;

/* Fills *out with the counters above. */
TINYMALLOC_API void tinymalloc_counters(tinymalloc_counters_t *out);

/* Writes the statistics to the file descriptor (no stdio, no allocation):
 * human-readable when json == 0, one JSON object otherwise. */
TINYMALLOC_API void tinymalloc_stats_print(int fd, int json);

/* ---- Errors -------------------------------------------------------------- */

typedef enum tinymalloc_error_kind_e {
  TINYMALLOC_ERROR_DOUBLE_FREE = 1,  /* the block is already free */
  TINYMALLOC_ERROR_INVALID_FREE = 2, /* not a pointer tinymalloc handed out */
  TINYMALLOC_ERROR_INTERIOR = 3,     /* points inside a block, not at its start */
  /* 4 is retired: it named a "heap corruption" kind that was never raised (two
     racing frees of one block are reported as a double free). */
  TINYMALLOC_ERROR_HEAP_OVERFLOW = 5,   /* detection mode: bytes past the request were written */
  TINYMALLOC_ERROR_WRITE_AFTER_FREE = 6 /* detection mode: a freed block was written */
} tinymalloc_error_kind_t;

/* Called instead of abort() after the one-line report was written (when
 * TINYMALLOC_SHOW_ERRORS is on, the default). `op` is "free", "realloc" or
 * "usable_size" (and "malloc" for a write after free found when a block is
 * handed out again in detection mode); `message` is the report line without
 * the newline. If the handler returns, the offending operation does nothing
 * (free ignores the pointer, realloc returns NULL with errno = EINVAL,
 * usable_size returns 0); a heap overflow or a write after free is reported
 * and the operation goes on. The handler runs with no tinymalloc lock held:
 * it may allocate and free. */
typedef void (*tinymalloc_error_handler_t)(tinymalloc_error_kind_t kind, const char *op, void *ptr, const char *message,
                                           void *arg);

/* Installs a handler (NULL restores the default: report and abort). Returns
 * the previous handler. */
TINYMALLOC_API tinymalloc_error_handler_t tinymalloc_set_error_handler(tinymalloc_error_handler_t handler, void *arg);

/* ---- Options ------------------------------------------------------------- */

/* Options are read once at initialisation from TINYMALLOC_<NAME> environment
 * variables (TINYMALLOC_PURGE_DELAY_MS=50) and can be changed later here.
 * Names are case-insensitive: "verbose", "show_stats", "show_errors", "junk",
 * "purge_delay_ms", "arenas", "detect", "quarantine_count",
 * "quarantine_bytes", "zero_on_free", "fill_all" (the README's table says
 * what each does). Setting returns 0, or -1 with errno = EINVAL for an
 * unknown name or a value out of range, or EBUSY for "arenas" once any
 * thread has allocated (the arena count is fixed from then on). */
TINYMALLOC_API int tinymalloc_option_set(const char *name, long value);
/* Returns the value, or -1 with errno = EINVAL for an unknown name. */
TINYMALLOC_API long tinymalloc_option_get(const char *name);

#ifdef __cplusplus
}
#endif
#endif /* TINYMALLOC_H */
