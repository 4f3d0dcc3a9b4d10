/* options.c owns the runtime options: their table (name, default, range,
 * meaning), reading TINYMALLOC_<NAME> from environ at initialisation (no
 * getenv, no allocation; bad values warn and keep the default), and the
 * feature bits the fast paths test. The public get/set calls are control.c's. */
#include <string.h>

#include "options.h"
#include "track.h"

tm_options_t tm_options = {
    .verbose = 0,
    .show_stats = 0,
    .show_errors = 1,
    .junk = 0,
    .purge_delay_ms = 30,
    .arenas = 0,
    .detect = 0,
    .quarantine_count = 1024,
    .quarantine_bytes = (long)4 << 20,
    .zero_on_free = 0,
    .fill_all = 0,
};
_Atomic uint32_t tm_features;

/* verbose:        print the configuration at start (0/1)
 * show_stats:     print statistics at exit (0 off, 1 text, 2 JSON)
 * show_errors:    write the misuse report line to stderr (0/1)
 * junk:           fill new blocks with 0xa5 and freed ones with 0x5a (0/1)
 * purge_delay_ms: a free page goes back to the OS once it has stayed free
 *                 for at least this long (and at most twice as long, when
 *                 the allocator is called); 0: at every free; -1: never
 *                 (only tinymalloc_trim). Empty segments and cached large
 *                 mappings age by the same clock.
 * arenas:         number of arenas; 0 = one per CPU (fixed once a thread
 *                 has allocated)
 * detect:         detection mode (docs/detect.md): canaries after every
 *                 block (heap overflow), freed blocks filled and checked
 *                 (write after free), a quarantine before reuse, guard pages
 *                 after large blocks (0/1; ignored in ASan and memcheck
 *                 builds; once on, the fast paths stay off)
 * quarantine_count, quarantine_bytes: how many freed blocks, and how many
 *                 bytes of them, each thread holds back in detection mode
 * zero_on_free:   freed blocks are zeroed (in detection mode: zero is the
 *                 fill that a write after free is checked against) (0/1)
 * fill_all:       detection mode: a freed block over 64 KiB is filled and
 *                 checked whole, not only in its first and last 32 KiB (0/1) */
static const tm_option_t tm_option_table[] = {
    {"verbose", &tm_options.verbose, 0, 1},
    {"show_stats", &tm_options.show_stats, 0, 2},
    {"show_errors", &tm_options.show_errors, 0, 1},
    {"junk", &tm_options.junk, 0, 1},
    {"purge_delay_ms", &tm_options.purge_delay_ms, -1, 3600000},
    {"arenas", &tm_options.arenas, 0, TM_MAX_ARENAS},
    {"detect", &tm_options.detect, 0, 1},
    {"quarantine_count", &tm_options.quarantine_count, 0, 65536},
    {"quarantine_bytes", &tm_options.quarantine_bytes, 0, (long)1 << 30},
    {"zero_on_free", &tm_options.zero_on_free, 0, 1},
    {"fill_all", &tm_options.fill_all, 0, 1},
};
#define TM_OPTION_COUNT (sizeof tm_option_table / sizeof tm_option_table[0])

static bool tm_name_equal(const char *a, const char *b, size_t b_len)
{
  for (size_t i = 0; i < b_len; i++) {
    char c = b[i];
    if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
    if (a[i] != c) return false;
  }
  return a[b_len] == '\0';
}

const tm_option_t *tm_option_find(const char *name, size_t len)
{
  for (size_t i = 0; i < TM_OPTION_COUNT; i++)
    if (tm_name_equal(tm_option_table[i].name, name, len)) return &tm_option_table[i];
  return NULL;
}

void tm_option_store(const tm_option_t *opt, long value)
{
  atomic_store_explicit(opt->value, value, memory_order_relaxed);
  uint32_t features = atomic_load_explicit(&tm_features, memory_order_relaxed) & TM_FEATURE_DETECT;
  if (TM_OPTION(junk)) features |= TM_FEATURE_JUNK;
  if (TM_OPTION(zero_on_free)) features |= TM_FEATURE_ZERO;
  /* Sticky: blocks may wait in quarantines after the mode is switched off.
   * Tools that track every byte (ASan, memcheck) do better: a no-op there. */
  if (TM_OPTION(detect) && !TM_TRACKING) features |= TM_FEATURE_DETECT;
  atomic_store_explicit(&tm_features, features, memory_order_relaxed);
}

/* Decimal, optionally negative, or on/off, true/false, yes/no. */
static bool tm_parse_value(const char *s, long *out)
{
  static const char *const words[] = {"off", "false", "no", "on", "true", "yes"};
  for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
    if (tm_name_equal(words[i], s, strlen(s))) {
      *out = i >= 3;
      return true;
    }
  }
  bool negative = *s == '-';
  if (negative) s++;
  if (*s == '\0') return false;
  long v = 0;
  for (; *s; s++) {
    if (*s < '0' || *s > '9' || v > 100000000) return false;
    v = v * 10 + (*s - '0');
  }
  *out = negative ? -v : v;
  return true;
}

/* The environment is read with loops of our own: this may run before any
 * constructor (from a sanitizer runtime's preinit code), and a fuzzing
 * engine replaces some string functions of the program with its hooks. */
static bool tm_has_prefix(const char *s, const char *prefix)
{
  for (; *prefix; s++, prefix++)
    if (*s != *prefix) return false;
  return true;
}

bool tm_options_load(void (*warn)(const char *what, const char *entry))
{
  extern char **environ;
  static const char prefix[] = "TINYMALLOC_";
  if (environ == NULL) return false;
  for (char **env = environ; *env; env++) {
    const char *entry = *env;
    if (!tm_has_prefix(entry, prefix)) continue;
    const char *name = entry + sizeof prefix - 1;
    const char *eq = name;
    while (*eq && *eq != '=')
      eq++;
    if (*eq != '=') continue;
    const tm_option_t *opt = tm_option_find(name, (size_t)(eq - name));
    long v;
    if (opt == NULL) {
      warn("unknown option ignored: ", entry);
    } else if (!tm_parse_value(eq + 1, &v) || v < opt->min || v > opt->max) {
      warn("bad value ignored, keeping the default: ", entry);
    } else {
      tm_option_store(opt, v);
    }
  }
  return true;
}
