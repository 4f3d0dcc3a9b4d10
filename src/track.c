/* track.c owns the one piece of tracking state a tool cannot keep for us: in
 * ASan builds, the user-data regions registered with LeakSanitizer as root
 * regions. LSan dies when asked to unregister a region it was not given
 * exactly, so the exact registrations are remembered here. It never
 * allocates (the table is static); without the ASan backend it is empty. */
#include "track.h"

#if defined(TM_TRACK_ASAN)
#include <sanitizer/lsan_interface.h>
#include <stdatomic.h>

/* One entry per live segment or large block, so the table stays short and a
 * linear scan under a spin lock is cheap next to the mmap it accompanies.
 * A region that finds the table full is registered anyway and simply stays
 * registered (LSan skips the unmapped parts of a root region). */
#define TM_ROOTS_CAPACITY 16384

typedef struct tm_root_s {
  uintptr_t start, end;
} tm_root_t;

static tm_root_t tm_roots[TM_ROOTS_CAPACITY];
static size_t tm_roots_count;
static atomic_flag tm_roots_lock = ATOMIC_FLAG_INIT;

static void tm_roots_acquire(void)
{
  while (atomic_flag_test_and_set_explicit(&tm_roots_lock, memory_order_acquire)) {
  }
}

static void tm_roots_release(void) { atomic_flag_clear_explicit(&tm_roots_lock, memory_order_release); }

void tm_track_fork_child(void) { tm_roots_release(); }

static void tm_root_register(const tm_root_t *r) { __lsan_register_root_region((void *)r->start, r->end - r->start); }

static void tm_root_unregister(const tm_root_t *r)
{
  __lsan_unregister_root_region((void *)r->start, r->end - r->start);
}

/* Pages that extend a region (a large block grown in place by mremap) widen
 * its registration; anything else is a new region. */
void tm_track_roots_add(void *p, size_t size)
{
  uintptr_t start = (uintptr_t)p, end = start + size;
  if (size == 0) return;
  tm_roots_acquire();
  size_t i = 0;
  while (i < tm_roots_count && tm_roots[i].end != start)
    i++;
  if (i < tm_roots_count) {
    tm_root_unregister(&tm_roots[i]);
    tm_roots[i].end = end;
    tm_root_register(&tm_roots[i]);
  } else {
    tm_root_t region = {start, end};
    if (tm_roots_count < TM_ROOTS_CAPACITY) tm_roots[tm_roots_count++] = region;
    tm_root_register(&region);
  }
  tm_roots_release();
}

/* [p, p+size) is about to be unmapped: regions inside it are withdrawn, a
 * region that loses its head or tail is registered again without it. A hole
 * in the middle of a region changes nothing: LSan skips unmapped pages. */
void tm_track_roots_remove(void *p, size_t size)
{
  uintptr_t start = (uintptr_t)p, end = start + size;
  tm_roots_acquire();
  for (size_t i = tm_roots_count; i-- > 0;) {
    tm_root_t *r = &tm_roots[i];
    if (r->end <= start || end <= r->start) continue;
    bool keeps_head = r->start < start, keeps_tail = end < r->end;
    if (keeps_head && keeps_tail) continue;
    tm_root_unregister(r);
    if (keeps_head) {
      r->end = start;
    } else if (keeps_tail) {
      r->start = end;
    } else {
      *r = tm_roots[--tm_roots_count];
      continue;
    }
    tm_root_register(r);
  }
  tm_roots_release();
}
#else
/* ISO C wants at least one declaration in a translation unit. */
typedef int tm_track_unused_t;
#endif
