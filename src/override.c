/* The drop-in replacement: the exported malloc family (malloc, free, the
 * __libc_* aliases, mallinfo2, malloc_trim, ...) as thin layers over the tiny*
 * API (the pthread_atfork registration is init.c's). It holds no allocator state and
 * must never call the malloc family itself, except malloc_info, which runs
 * outside the allocator and writes through stdio as glibc's does. */
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "alloc.h"

#define TM_EXPORT __attribute__((visibility("default")))

/* glibc exports these without declaring them in any header. */
TM_EXPORT void cfree(void *ptr);
TM_EXPORT void *__libc_malloc(size_t size);
TM_EXPORT void __libc_free(void *ptr);
TM_EXPORT void *__libc_calloc(size_t n, size_t size);
TM_EXPORT void *__libc_realloc(void *ptr, size_t size);
TM_EXPORT void *__libc_memalign(size_t alignment, size_t size);
TM_EXPORT void *__libc_valloc(size_t size);
TM_EXPORT void *__libc_pvalloc(size_t size);

/* glibc's malloc guarantees 16-byte alignment on x86-64; so does tinymalloc,
 * which lets memalign treat every smaller alignment as plain malloc. */
#define TM_MALLOC_MIN_ALIGN 16u

/* ---- The ISO C / POSIX entry points -------------------------------------- */

/* The fast paths are inlined here too: malloc and free are one call deep. */
TM_EXPORT void *malloc(size_t size) { return tm_malloc_inline(size); }

TM_EXPORT void free(void *ptr) { tm_free_inline(ptr); }

TM_EXPORT void *calloc(size_t n, size_t size) { return tinycalloc(n, size); }

TM_EXPORT void *realloc(void *ptr, size_t size) { return tinyrealloc(ptr, size); }

TM_EXPORT void *reallocarray(void *ptr, size_t n, size_t size) { return tinyreallocarray(ptr, n, size); }

TM_EXPORT int posix_memalign(void **out, size_t alignment, size_t size)
{
  return tinyposix_memalign(out, alignment, size);
}

/* C11 leaves a bad alignment undefined; like glibc 2.38 and later, we fail it
 * with EINVAL (tinyaligned_alloc does) instead of rounding it. */
TM_EXPORT void *aligned_alloc(size_t alignment, size_t size) { return tinyaligned_alloc(alignment, size); }

TM_EXPORT size_t malloc_usable_size(void *ptr) { return tinymalloc_usable_size(ptr); }

/* ---- The obsolete BSD / SVID allocation functions ------------------------ */

/* glibc's memalign accepts any alignment: small ones mean malloc, one that is
 * not a power of two is rounded up to the next, and only one too large to
 * round is EINVAL. Old programs rely on that, so we match it. */
TM_EXPORT void *memalign(size_t alignment, size_t size)
{
  if (alignment <= TM_MALLOC_MIN_ALIGN) return tinymalloc(size);
  if ((alignment & (alignment - 1)) != 0) {
    if (alignment > SIZE_MAX / 2 + 1) {
      errno = EINVAL;
      return NULL;
    }
    size_t rounded = TM_MALLOC_MIN_ALIGN;
    while (rounded < alignment)
      rounded <<= 1;
    alignment = rounded;
  }
  return tinymemalign(alignment, size);
}

static size_t override_page_size(void)
{
  long page = sysconf(_SC_PAGESIZE);
  return page > 0 ? (size_t)page : 4096u;
}

TM_EXPORT void *valloc(size_t size) { return tinymemalign(override_page_size(), size); }

/* pvalloc rounds the size up to whole pages, and pvalloc(0) is one page. */
TM_EXPORT void *pvalloc(size_t size)
{
  size_t page = override_page_size();
  if (size > SIZE_MAX - (page - 1)) {
    errno = ENOMEM;
    return NULL;
  }
  size_t rounded = size == 0 ? page : (size + page - 1) & ~(page - 1);
  return tinymemalign(page, rounded);
}

TM_EXPORT void cfree(void *ptr) { tinyfree(ptr); }

/* ---- The __libc_* names (used by some debuggers, tracers and old code) ---- */

TM_EXPORT void *__libc_malloc(size_t size) { return tm_malloc_inline(size); }
TM_EXPORT void __libc_free(void *ptr) { tm_free_inline(ptr); }
TM_EXPORT void *__libc_calloc(size_t n, size_t size) { return tinycalloc(n, size); }
TM_EXPORT void *__libc_realloc(void *ptr, size_t size) { return tinyrealloc(ptr, size); }
TM_EXPORT void *__libc_memalign(size_t alignment, size_t size) { return memalign(alignment, size); }
TM_EXPORT void *__libc_valloc(size_t size) { return valloc(size); }
TM_EXPORT void *__libc_pvalloc(size_t size) { return pvalloc(size); }

/* ---- glibc's tuning and introspection calls ------------------------------ */

/* Returns 1 when something was handed back to the OS, as glibc does. The pad
 * is ignored: tinymalloc keeps no top chunk to leave padding in. */
TM_EXPORT int malloc_trim(size_t pad)
{
  (void)pad;
  return tinymalloc_trim() > 0 ? 1 : 0;
}

/* The parameters with a tinymalloc counterpart are forwarded to the option;
 * the ones that only tune glibc's own heap (fastbins, top pad, mmap
 * threshold, trim threshold, check action, arena test) are accepted and
 * ignored, which is what a program that calls mallopt expects; an unknown
 * parameter fails with 0 as in glibc. */
TM_EXPORT int mallopt(int param, int value)
{
  switch (param) {
  case M_ARENA_MAX: /* glibc accepts any count: more than tinymalloc has means all of them */
    return tinymalloc_option_set("arenas", value > TINYMALLOC_MAX_ARENAS ? TINYMALLOC_MAX_ARENAS : value) == 0 ? 1 : 0;
  case M_PERTURB:
    return tinymalloc_option_set("junk", value != 0 ? 1 : 0) == 0 ? 1 : 0;
  case M_MXFAST:
  case M_TRIM_THRESHOLD:
  case M_TOP_PAD:
  case M_MMAP_THRESHOLD:
  case M_MMAP_MAX:
  case M_CHECK_ACTION:
  case M_ARENA_TEST:
    return 1;
  default:
    return 0;
  }
}

/* Bytes of the large blocks' own mappings: an arena's mapped bytes are its
 * segments plus its large mappings. */
static size_t override_large_bytes(const tinymalloc_stats_t *stats)
{
  size_t arena_bytes = 0;
  for (size_t a = 0; a < stats->arena_count && a < TINYMALLOC_MAX_ARENAS; a++)
    arena_bytes += stats->arenas[a].mapped_bytes;
  size_t segment_bytes = stats->segments * TM_SEGMENT_SIZE;
  return arena_bytes > segment_bytes ? arena_bytes - segment_bytes : 0;
}

/* glibc's fields mapped onto tinymalloc's figures: `arena` is everything
 * mapped, `hblks`/`hblkhd` the large blocks (own mappings) and the bytes of
 * those mappings, `usmblks` the peak of mapped bytes, `uordblks` the live
 * bytes, `ordblks` the live blocks, `fordblks` mapped bytes that hold neither
 * live blocks nor metadata; `keepcost` (what a trim could give back) is
 * unknown without trimming, so 0. */
static struct mallinfo2 override_mallinfo2(void)
{
  tinymalloc_stats_t stats;
  struct mallinfo2 info = {0};
  if (tinymalloc_stats(&stats) != 0) return info;
  info.arena = stats.mapped_bytes;
  info.ordblks = stats.live_blocks;
  info.hblks = stats.large_blocks;
  info.hblkhd = override_large_bytes(&stats);
  info.usmblks = stats.peak_mapped_bytes;
  info.uordblks = stats.live_bytes;
  size_t used = stats.live_bytes + stats.metadata_bytes;
  info.fordblks = stats.mapped_bytes > used ? stats.mapped_bytes - used : 0;
  info.keepcost = 0;
  return info;
}

TM_EXPORT struct mallinfo2 mallinfo2(void) { return override_mallinfo2(); }

static int clamp_to_int(size_t value) { return value > INT_MAX ? INT_MAX : (int)value; }

TM_EXPORT struct mallinfo mallinfo(void)
{
  struct mallinfo2 wide = override_mallinfo2();
  struct mallinfo info;
  info.arena = clamp_to_int(wide.arena);
  info.ordblks = clamp_to_int(wide.ordblks);
  info.smblks = clamp_to_int(wide.smblks);
  info.hblks = clamp_to_int(wide.hblks);
  info.hblkhd = clamp_to_int(wide.hblkhd);
  info.usmblks = clamp_to_int(wide.usmblks);
  info.fsmblks = clamp_to_int(wide.fsmblks);
  info.uordblks = clamp_to_int(wide.uordblks);
  info.fordblks = clamp_to_int(wide.fordblks);
  info.keepcost = clamp_to_int(wide.keepcost);
  return info;
}

/* glibc prints its arena summary on stderr; we print ours. */
TM_EXPORT void malloc_stats(void) { tinymalloc_stats_print(STDERR_FILENO, 0); }

/* glibc's XML shape (a <malloc> element with <total> and per-heap entries),
 * filled with tinymalloc's figures. Options must be 0, as in glibc. */
TM_EXPORT int malloc_info(int options, FILE *out)
{
  if (options != 0) {
    errno = EINVAL;
    return -1;
  }
  tinymalloc_stats_t stats;
  if (tinymalloc_stats(&stats) != 0) return -1;
  fprintf(out, "<malloc version=\"tinymalloc-1\">\n");
  for (size_t a = 0; a < stats.arena_count && a < TINYMALLOC_MAX_ARENAS; a++) {
    const tinymalloc_arena_stats_t *arena = &stats.arenas[a];
    fprintf(out,
            "<heap nr=\"%zu\">\n<system type=\"current\" size=\"%zu\"/>\n"
            "<total type=\"segments\" count=\"%zu\"/>\n<total type=\"medium\" count=\"%zu\"/>\n"
            "<total type=\"large\" count=\"%zu\"/>\n<total type=\"threads\" count=\"%zu\"/>\n</heap>\n",
            a, arena->mapped_bytes, arena->segments, arena->medium_blocks, arena->large_blocks, arena->threads);
  }
  fprintf(out,
          "<total type=\"live\" count=\"%zu\" size=\"%zu\"/>\n"
          "<total type=\"mmap\" count=\"%zu\" size=\"%zu\"/>\n"
          "<system type=\"current\" size=\"%zu\"/>\n<system type=\"max\" size=\"%zu\"/>\n"
          "<system type=\"resident\" size=\"%zu\"/>\n<system type=\"metadata\" size=\"%zu\"/>\n"
          "</malloc>\n",
          stats.live_blocks, stats.live_bytes, stats.large_blocks, override_large_bytes(&stats), stats.mapped_bytes,
          stats.peak_mapped_bytes, stats.resident_bytes, stats.metadata_bytes);
  return ferror(out) ? -1 : 0;
}
