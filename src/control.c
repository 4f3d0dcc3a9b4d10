/* control.c owns the public maintenance calls that are not statistics:
 * tinymalloc_trim and the option get/set API. They sit above the heaps and
 * arenas they drive and report faults found on the way with no lock held. */
#include <errno.h>
#include <string.h>

#include "arena.h"
#include "heap.h"
#include "init.h"
#include "options.h"


size_t tinymalloc_trim(void)
{
  tm_init();
  tm_faults_t faults;
  faults.count = 0;
  tm_heap_trim(tm_thread_heap, &faults);
  size_t returned = 0;
  uint32_t count = atomic_load_explicit(&tm_arena_count, memory_order_acquire);
  for (uint32_t i = 0; i < count; i++)
    returned += tm_arena_trim(&tm_arenas[i], &faults);
  if (faults.count) tm_report_all("free", &faults);
  return returned;
}

int tinymalloc_option_set(const char *name, long value)
{
  tm_init();
  const tm_option_t *opt = name ? tm_option_find(name, strlen(name)) : NULL;
  if (opt == NULL || value < opt->min || value > opt->max) {
    errno = EINVAL;
    return -1;
  }
  if (opt->value == &tm_options.arenas) {
    /* Checked and set under the pool lock: no heap may appear in between. */
    int busy = tm_heap_set_arena_count(tm_default_arena_count(value));
    if (busy) {
      errno = busy;
      return -1;
    }
  }
  tm_option_store(opt, value);
  return 0;
}

long tinymalloc_option_get(const char *name)
{
  tm_init();
  const tm_option_t *opt = name ? tm_option_find(name, strlen(name)) : NULL;
  if (opt == NULL) {
    errno = EINVAL;
    return -1;
  }
  return atomic_load_explicit(opt->value, memory_order_relaxed);
}
