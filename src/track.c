/* track.c owns the one piece of tracking state a tool cannot keep for us: in
 * ASan builds, the set of user-data regions registered with LeakSanitizer as
 * root regions. LSan dies when asked to unregister a region it was not given
 * exactly, so the exact registrations are remembered here. It never
 * allocates (the table is static); without the ASan backend it is empty. */
#include "track.h"

#if defined(TM_TRACK_ASAN)
#include <sanitizer/lsan_interface.h>
#include <stdatomic.h>

/* Open addressing with linear probing and backward-shift deletion, keyed by
 * region start: room for 16383 live regions (segments, large blocks). A region
 * that finds the table full is registered anyway and simply stays registered
 * (LSan skips the unmapped parts of a root region). */
#define TM_ROOTS_BITS 14
#define TM_ROOTS_CAPACITY (1u << TM_ROOTS_BITS)

typedef struct tm_root_s {
  uintptr_t start; /* 0: empty slot */
  size_t size;
} tm_root_t;

static tm_root_t tm_roots[TM_ROOTS_CAPACITY];
static size_t tm_roots_count;
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
  size_t mask = TM_ROOTS_CAPACITY - 1;
  tm_roots_acquire();
  size_t i = tm_roots_home(start);
  while (tm_roots[i].start != 0 && tm_roots[i].start != start) i = (i + 1) & mask;
  if (tm_roots[i].start == start) { /* mapped again with another size */
    __lsan_unregister_root_region(p, tm_roots[i].size);
    tm_roots[i].size = size;
  } else if (tm_roots_count < TM_ROOTS_CAPACITY - 1) { /* one slot stays empty: probes end */
    tm_roots[i].start = start;
    tm_roots[i].size = size;
    tm_roots_count++;
  }
  __lsan_register_root_region(p, size);
  tm_roots_release();
}

/* Withdraws the region that starts at p, whatever its registered size (a
 * large block may have changed size in place). Unmapping the tail of a
 * region withdraws nothing: LSan skips the unmapped part by itself. */
void tm_track_roots_remove(void *p)
{
  uintptr_t start = (uintptr_t)p;
  size_t mask = TM_ROOTS_CAPACITY - 1;
  tm_roots_acquire();
  size_t hole = tm_roots_home(start);
  while (tm_roots[hole].start != 0 && tm_roots[hole].start != start) hole = (hole + 1) & mask;
  if (tm_roots[hole].start == start) {
    __lsan_unregister_root_region(p, tm_roots[hole].size);
    /* Backward shift: pull later entries of the probe chain into the hole. */
    for (size_t j = (hole + 1) & mask; tm_roots[j].start != 0; j = (j + 1) & mask) {
      size_t home = tm_roots_home(tm_roots[j].start);
      if (((j - home) & mask) >= ((j - hole) & mask)) {
        tm_roots[hole] = tm_roots[j];
        hole = j;
      }
    }
    tm_roots[hole].start = 0;
    tm_roots[hole].size = 0;
    tm_roots_count--;
  }
  tm_roots_release();
}
#else
/* ISO C wants at least one declaration in a translation unit. */
typedef int tm_track_unused_t;
#endif
