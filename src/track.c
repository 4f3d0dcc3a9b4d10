/* track.c owns the one piece of tracking state a tool cannot keep for us: in
 * ASan builds, the set of user-data regions registered with LeakSanitizer as
 * root regions. LSan dies when asked to unregister a region it was not given
 * exactly, so only exact registrations are withdrawn. It never allocates (the
 * table is static) and without the ASan backend it compiles to nothing. */
#include "track.h"

#if defined(TM_TRACK_ASAN)
#include <sanitizer/lsan_interface.h>
#include <stdatomic.h>

/* Open addressing with linear probing and backward-shift deletion, keyed by
 * region start. 16384 regions of at least one 4 MiB segment each cover 64 GiB
 * of live mappings; a region that finds the table full is registered anyway
 * and simply stays registered (LSan skips unmapped parts of a root region). */
#define TM_ROOTS_BITS 14
#define TM_ROOTS_CAPACITY (1u << TM_ROOTS_BITS)

typedef struct tm_root_s {
  uintptr_t start; /* 0: empty slot */
  size_t size;
} tm_root_t;

static tm_root_t tm_roots[TM_ROOTS_CAPACITY];
static atomic_flag tm_roots_lock = ATOMIC_FLAG_INIT;

static size_t tm_roots_home(uintptr_t start)
{
  return (size_t)(((uint64_t)(start >> 12) * 0x9E3779B97F4A7C15ull) >> (64 - TM_ROOTS_BITS));
}

static void tm_roots_acquire(void)
{
  while (atomic_flag_test_and_set_explicit(&tm_roots_lock, memory_order_acquire)) {
  }
}

static void tm_roots_release(void) { atomic_flag_clear_explicit(&tm_roots_lock, memory_order_release); }

void tm_track_roots_add(void *p, size_t size)
{
  if (size == 0) return;
  uintptr_t start = (uintptr_t)p;
  tm_roots_acquire();
  size_t mask = TM_ROOTS_CAPACITY - 1;
  for (size_t probe = 0, i = tm_roots_home(start); probe < TM_ROOTS_CAPACITY; probe++, i = (i + 1) & mask) {
    if (tm_roots[i].start == 0) {
      tm_roots[i].start = start;
      tm_roots[i].size = size;
      __lsan_register_root_region(p, size);
      break;
    }
    if (tm_roots[i].start == start) break; /* already registered: keep the first */
  }
  tm_roots_release();
}

void tm_track_roots_remove(void *p, size_t size)
{
  uintptr_t start = (uintptr_t)p;
  size_t mask = TM_ROOTS_CAPACITY - 1;
  tm_roots_acquire();
  size_t i = tm_roots_home(start);
  for (size_t probe = 0; probe < TM_ROOTS_CAPACITY && tm_roots[i].start != 0; probe++, i = (i + 1) & mask) {
    if (tm_roots[i].start != start) continue;
    if (tm_roots[i].size == size) {
      __lsan_unregister_root_region(p, size);
      /* Backward shift: pull later entries of the probe chain into the hole. */
      size_t hole = i;
      for (size_t j = (hole + 1) & mask; tm_roots[j].start != 0; j = (j + 1) & mask) {
        size_t home = tm_roots_home(tm_roots[j].start);
        if (((j - home) & mask) >= ((j - hole) & mask)) {
          tm_roots[hole] = tm_roots[j];
          hole = j;
        }
      }
      tm_roots[hole].start = 0;
      tm_roots[hole].size = 0;
    }
    break;
  }
  tm_roots_release();
}
#else
/* ISO C wants at least one declaration in a translation unit. */
typedef int tm_track_unused_t;
#endif
