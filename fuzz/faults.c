/* Fault injection for the harnesses' own tests: linked into the replay
 * drivers replay_<h>_faults with -Wl,--wrap for the public calls below, it
 * lets ci/fuzz-tests.sh show that a check fires and that a warm-mode
 * failure saves a window that fails alone. Chosen with TMF_FAULT:
 *   hidden-leak     tinymalloc(12345) also maps a 5 MiB block it never
 *                   frees, and the counters and statistics leave it out:
 *                   only the deep check (trim, mapped baseline) can see it
 *   double-handout  every 200th small tinymalloc hands out again a block
 *                   that is still live (the shadow map, contend's check)
 *   scribble        every 300th tinymalloc writes a byte into the block the
 *                   call before returned (a live block's contents change)
 *   lying-counters  the counters say one block fewer once blocks are live
 * Without TMF_FAULT the wrappers only forward. Uses only the public API. */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "tinymalloc.h"

void *__real_tinymalloc(size_t size);
void *__wrap_tinymalloc(size_t size);
void __real_tinymalloc_counters(tinymalloc_counters_t *out);
void __wrap_tinymalloc_counters(tinymalloc_counters_t *out);
int __real_tinymalloc_stats(tinymalloc_stats_t *out);
int __wrap_tinymalloc_stats(tinymalloc_stats_t *out);
void __real_tinyfree(void *p);
void __wrap_tinyfree(void *p);

enum { FAULT_NONE, FAULT_HIDDEN_LEAK, FAULT_DOUBLE_HANDOUT, FAULT_SCRIBBLE, FAULT_LYING_COUNTERS };

static int fault(void)
{
  static int mode = -1;
  if (mode < 0) {
    const char *f = getenv("TMF_FAULT");
    mode = !f                                 ? FAULT_NONE
           : strcmp(f, "hidden-leak") == 0    ? FAULT_HIDDEN_LEAK
           : strcmp(f, "double-handout") == 0 ? FAULT_DOUBLE_HANDOUT
           : strcmp(f, "scribble") == 0       ? FAULT_SCRIBBLE
           : strcmp(f, "lying-counters") == 0 ? FAULT_LYING_COUNTERS
                                              : FAULT_NONE;
  }
  return mode;
}

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static size_t hidden_blocks, hidden_bytes, calls;
static void *previous;
static size_t previous_size;

void *__wrap_tinymalloc(size_t size)
{
  int mode = fault();
  if (mode == FAULT_NONE) return __real_tinymalloc(size);
  void *p = __real_tinymalloc(size);
  pthread_mutex_lock(&lock);
  calls++;
  if (mode == FAULT_HIDDEN_LEAK && size == 12345) {
    void *leak = __real_tinymalloc((size_t)5 << 20);
    if (leak) {
      hidden_blocks++;
      hidden_bytes += tinymalloc_usable_size(leak);
    }
  } else if (mode == FAULT_DOUBLE_HANDOUT && size <= 256 && calls % 200 == 0 && previous && previous_size >= size) {
    /* Hand the previous block out again (it may still be live: the
     * harness keeps most blocks for a while); the new one stays ours. */
    void *again = previous;
    pthread_mutex_unlock(&lock);
    __real_tinyfree(p);
    return again;
  } else if (mode == FAULT_SCRIBBLE && calls % 300 == 0 && previous && previous_size > 0) {
    ((unsigned char *)previous)[previous_size - 1] ^= 0x40;
  }
  previous = p;
  previous_size = p ? size : 0;
  pthread_mutex_unlock(&lock);
  return p;
}

void __wrap_tinyfree(void *p)
{
  if (fault() != FAULT_NONE) {
    pthread_mutex_lock(&lock);
    if (p == previous) previous = NULL;
    pthread_mutex_unlock(&lock);
  }
  __real_tinyfree(p);
}

void __wrap_tinymalloc_counters(tinymalloc_counters_t *out)
{
  __real_tinymalloc_counters(out);
  pthread_mutex_lock(&lock);
  if (fault() == FAULT_HIDDEN_LEAK) {
    out->live_blocks -= hidden_blocks;
    out->live_bytes -= hidden_bytes;
  } else if (fault() == FAULT_LYING_COUNTERS && out->live_blocks > 0) {
    out->live_blocks--;
  }
  pthread_mutex_unlock(&lock);
}

int __wrap_tinymalloc_stats(tinymalloc_stats_t *out)
{
  int rc = __real_tinymalloc_stats(out);
  pthread_mutex_lock(&lock);
  if (fault() == FAULT_HIDDEN_LEAK) {
    out->live_blocks -= hidden_blocks;
    out->live_bytes -= hidden_bytes;
    out->large_blocks -= hidden_blocks;
    out->total_allocs -= hidden_blocks;
    for (size_t i = 0; i < out->arena_count && i < TINYMALLOC_MAX_ARENAS; i++) {
      size_t n = hidden_blocks < out->arenas[i].large_blocks ? hidden_blocks : out->arenas[i].large_blocks;
      out->arenas[i].large_blocks -= n;
    }
  } else if (fault() == FAULT_LYING_COUNTERS && out->live_blocks > 0) {
    out->live_blocks--;
    out->small_blocks -= out->small_blocks > 0;
  }
  pthread_mutex_unlock(&lock);
  return rc;
}
