/* options.h: the runtime options (options.c). Read once at initialisation
 * from TINYMALLOC_<NAME> environment variables, settable later from any thread
 * (relaxed atomics, read with TM_OPTION). Options that slow the fast paths
 * down also set a bit of tm_features, so that the fast paths test one word. */
#ifndef TM_OPTIONS_H
#define TM_OPTIONS_H

#include "base.h"

typedef struct tm_options_s {
  _Atomic long verbose;
  _Atomic long show_stats;
  _Atomic long show_errors;
  _Atomic long junk;
  _Atomic long purge_delay_ms;
  _Atomic long arenas;
  _Atomic long detect;
  _Atomic long quarantine_count;
  _Atomic long quarantine_bytes;
  _Atomic long zero_on_free;
  _Atomic long fill_all;
} tm_options_t;

extern tm_options_t tm_options TM_HIDDEN;
#define TM_OPTION(name) atomic_load_explicit(&tm_options.name, memory_order_relaxed)

enum { TM_FEATURE_JUNK = 1, TM_FEATURE_DETECT = 2, TM_FEATURE_ZERO = 4 };
extern _Atomic uint32_t tm_features TM_HIDDEN;
#define TM_FEATURES() atomic_load_explicit(&tm_features, memory_order_relaxed)

#define TM_JUNK_ALLOC_BYTE 0xa5 /* TINYMALLOC_JUNK: fresh blocks */
#define TM_JUNK_FREE_BYTE  0x5a /* TINYMALLOC_JUNK: freed blocks */

/* Reads TINYMALLOC_<NAME> from environ (no getenv, no allocation); a bad
 * entry is passed to `warn` and ignored. */
/* False (nothing read) when the C library has not set up the environment
 * yet: a call from another library's preinit code (sanitizer runtimes
 * allocate there) comes before libc's own initialisation. */
bool tm_options_load(void (*warn)(const char *what, const char *entry)) TM_HIDDEN;
/* The option's storage and range, or NULL for an unknown name. */
typedef struct tm_option_s {
  const char *name;
  _Atomic long *value;
  long min, max;
} tm_option_t;
const tm_option_t *tm_option_find(const char *name, size_t len) TM_HIDDEN;
/* Stores a value already checked against the range. */
void tm_option_store(const tm_option_t *opt, long value) TM_HIDDEN;

#endif
