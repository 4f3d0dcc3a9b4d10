/* init.c owns start-up (options, size classes, segment map, arenas, the
 * thread-exit key: nothing that allocates), the fork handlers that hold every
 * allocator lock across fork(), and tinymalloc_trim. Initialisation runs once,
 * from a constructor or from the first call, whichever comes first. */
#include <sched.h>
#include <unistd.h>

#include "internal.h"

_Atomic int tm_init_state; /* 0 not started, 1 running, 2 done */
static pthread_mutex_t tm_init_lock = PTHREAD_MUTEX_INITIALIZER;

uint32_t tm_cpu_count(void)
{
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
  size_t n = tm_fmt_dec(buf, tm_arena_count);
  buf[n] = '\0';
  tm_warn("verbose: arenas ", buf);
  n = tm_fmt_dec(buf, (uint64_t)TM_OPTION(purge_delay_ms));
  buf[n] = '\0';
  tm_warn("verbose: purge_delay_ms ", TM_OPTION(purge_delay_ms) < 0 ? "-1" : buf);
  tm_warn("verbose: junk ", TM_OPTION(junk) ? "on" : "off");
}

void tm_init_slow(void)
{
  pthread_mutex_lock(&tm_init_lock);
  if (atomic_load_explicit(&tm_init_state, memory_order_relaxed) == 0) {
    atomic_store_explicit(&tm_init_state, 1, memory_order_relaxed);
    tm_options_init();
    tm_sizeclass_init();
    tm_segmap_init();
    tm_arena_count = TM_OPTION(arenas) > 0 ? (uint32_t)TM_OPTION(arenas) : tm_cpu_count();
    for (uint32_t i = 0; i < TM_MAX_ARENAS; i++) {
      pthread_mutex_init(&tm_arenas[i].lock, NULL);
      tm_arenas[i].index = i;
    }
    tm_heap_key_init();
    atomic_store_explicit(&tm_init_state, 2, memory_order_release);
    if (TM_OPTION(verbose)) tm_print_config();
  }
  pthread_mutex_unlock(&tm_init_lock);
}

/* Fork handlers are registered here, never from inside malloc: pthread_atfork
 * may allocate. Registered early (priority 101), the prepare handler runs
 * after the handlers the program registers later (they may allocate), and the
 * child handler before theirs, so the allocator is unlocked when they run. */
__attribute__((constructor(101))) static void tm_init_at_load(void)
{
  tm_init();
  if (pthread_atfork(tm_fork_prepare, tm_fork_parent, tm_fork_child) != 0)
    tm_warn("pthread_atfork failed: fork() in a threaded program is unsafe", "");
  tm_stats_keep_stderr();
}

__attribute__((destructor)) static void tm_fini_at_exit(void) { tm_stats_print_at_exit(); }

/* Only the arenas in use are locked (TSan also refuses to track 65 held locks). */
static uint32_t tm_fork_locked_arenas;

void tm_fork_prepare(void)
{
  tm_init();
  tm_heap_pool_lock();
  tm_fork_locked_arenas = tm_arena_count;
  for (uint32_t i = 0; i < tm_fork_locked_arenas; i++)
    pthread_mutex_lock(&tm_arenas[i].lock);
}

void tm_fork_parent(void)
{
  for (uint32_t i = 0; i < tm_fork_locked_arenas; i++)
    pthread_mutex_unlock(&tm_arenas[i].lock);
  tm_heap_pool_unlock();
}

/* Only the forking thread exists in the child, holding every lock. The other
 * threads' heaps are retired (their lists may have been frozen mid-update)
 * and their slabs recounted and abandoned to the arenas, so the child can
 * reuse them. Those threads may also have stopped between a bitmap change and
 * the counter update after it: the counters are rebuilt from the bitmaps. */
void tm_fork_child(void)
{
  for (tm_heap_t *heap = tm_heap_registry(); heap; heap = heap->next_all)
    if (heap != tm_thread_heap) heap->alive = false;
  for (uint32_t i = 0; i < tm_fork_locked_arenas; i++)
    tm_arena_adopt_orphans(&tm_arenas[i]);
  tm_fork_parent();
  tm_stats_rebuild();
}

size_t tinymalloc_trim(void)
{
  tm_init();
  size_t returned = 0;
  tm_heap_t *heap = tm_thread_heap;
  if (heap) tm_heap_release_empty(heap);
  for (uint32_t i = 0; i < tm_arena_count; i++)
    returned += tm_arena_trim(&tm_arenas[i]);
  return returned;
}
