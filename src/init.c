/* init.c owns one-time start-up: reading the options from the environment.
 * Everything else starts in a valid state (static initialisers) or sets
 * itself up on first use. Nothing here allocates; it runs from the first call
 * or the load-time constructor (alloc.c), whichever comes first. */
#include <sched.h>
#include <unistd.h>

#include "error.h"
#include "init.h"
#include "lock.h"
#include "options.h"

_Atomic int tm_init_state;
static tm_lock_t tm_init_lock = TM_LOCK_INIT;

uint32_t tm_default_arena_count(long option)
{
  if (option > 0) return (uint32_t)option;
  cpu_set_t set;
  long n = 0;
  if (sched_getaffinity(0, sizeof set, &set) == 0) n = CPU_COUNT(&set);
  long online = sysconf(_SC_NPROCESSORS_ONLN);
  if (online > n) n = online;
  if (n < 1) n = 1;
  return n > TM_MAX_ARENAS ? TM_MAX_ARENAS : (uint32_t)n;
}

static void tm_print_config(void)
{
  char buf[24];
  size_t n = tm_fmt_dec(buf, tm_default_arena_count(TM_OPTION(arenas)));
  buf[n] = '\0';
  tm_warn("verbose: arenas ", buf);
  long delay = TM_OPTION(purge_delay_ms);
  n = tm_fmt_dec(buf, delay < 0 ? 0 : (uint64_t)delay);
  buf[n] = '\0';
  tm_warn("verbose: purge_delay_ms ", delay < 0 ? "-1" : buf);
  tm_warn("verbose: junk ", TM_OPTION(junk) ? "on" : "off");
}

static bool tm_options_pending; /* under tm_init_lock: the first load found no environment */

void tm_init_slow(void)
{
  tm_lock(&tm_init_lock);
  if (atomic_load_explicit(&tm_init_state, memory_order_relaxed) == 0) {
    atomic_store_explicit(&tm_init_state, 1, memory_order_relaxed);
    tm_options_pending = !tm_options_load(tm_warn);
    atomic_store_explicit(&tm_init_state, 2, memory_order_release);
    if (TM_OPTION(verbose)) tm_print_config();
  }
  tm_unlock(&tm_init_lock);
}

/* Called by the load-time constructor: the environment is set up by then.
 * A first call that came earlier (a sanitizer runtime's preinit code under
 * libFuzzer allocates before libc has set `environ`) read nothing; the
 * options are read now, as if set through the API at this point. */
void tm_init_at_load(void)
{
  tm_init();
  tm_lock(&tm_init_lock);
  if (tm_options_pending && tm_options_load(tm_warn)) {
    tm_options_pending = false;
    if (TM_OPTION(verbose)) tm_print_config();
  }
  tm_unlock(&tm_init_lock);
}
