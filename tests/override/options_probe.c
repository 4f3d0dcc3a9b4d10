/* Makes the effect of each TINYMALLOC_<NAME> option visible on stdout, one
 * "key=value" line per mode, for tests/override/options.sh to compare across
 * environments: junk (bytes seen in fresh and freed blocks), purge (bytes
 * purged by frees alone), arenas (arenas in use and where the threads went)
 * and set (options changed at run time through the API). */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "tinymalloc.h"

/* "zero", "uniform-0xNN" or "mixed". */
static const char *describe_bytes(const unsigned char *p, size_t n)
{
  static char text[32];
  for (size_t i = 1; i < n; i++)
    if (p[i] != p[0]) return "mixed";
  if (p[0] == 0) return "zero";
  snprintf(text, sizeof text, "uniform-0x%02x", p[0]);
  return text;
}

/* Reads a freed block: undefined behaviour for a program, but a small
 * block's slab stays mapped and tinymalloc keeps no metadata in it, so the
 * bytes are whatever the allocator left there. */
static void junk_mode(void)
{
  enum { SIZE = 256 };
  unsigned char *p = malloc(SIZE);
  CHECK(p != NULL);
  printf("fresh=%s\n", describe_bytes(p, SIZE));
  memset(p, 0x11, SIZE);
  unsigned char *seen = launder(p);
  free(p);
  unsigned char copy[SIZE];
  memcpy(copy, seen, SIZE);
  printf("freed=%s\n", describe_bytes(copy, SIZE));
}

static void purge_mode(void)
{
  enum { COUNT = 64, SIZE = 64 << 10 };
  void *blocks[COUNT];
  for (int i = 0; i < COUNT; i++) {
    blocks[i] = malloc(SIZE);
    CHECK(blocks[i] != NULL);
    memset(blocks[i], 0x77, SIZE);
  }
  tinymalloc_stats_t before, after;
  CHECK(tinymalloc_stats(&before) == 0);
  for (int i = 0; i < COUNT; i++) {
    free(blocks[i]);
    usleep(1000);
  }
  CHECK(tinymalloc_stats(&after) == 0);
  printf("purged_by_free=%zu\n", after.purged_bytes - before.purged_bytes);
  size_t trimmed = tinymalloc_trim();
  printf("trim_returned_something=%d\n", trimmed > 0);
}

enum { ARENA_THREADS = 6 };
static pthread_barrier_t all_alive, may_exit;

static void *arena_thread(void *arg)
{
  (void)arg;
  free(malloc(100)); /* attaches a heap to an arena */
  pthread_barrier_wait(&all_alive);
  pthread_barrier_wait(&may_exit);
  return NULL;
}

static void arenas_mode(void)
{
  free(malloc(100));
  pthread_barrier_init(&all_alive, NULL, ARENA_THREADS + 1);
  pthread_barrier_init(&may_exit, NULL, ARENA_THREADS + 1);
  pthread_t threads[ARENA_THREADS];
  for (int i = 0; i < ARENA_THREADS; i++)
    CHECK(pthread_create(&threads[i], NULL, arena_thread, NULL) == 0);
  pthread_barrier_wait(&all_alive);
  tinymalloc_stats_t stats;
  CHECK(tinymalloc_stats(&stats) == 0);
  size_t attached = 0, busiest = 0, used = 0;
  for (size_t a = 0; a < stats.arena_count; a++) {
    attached += stats.arenas[a].threads;
    busiest = stats.arenas[a].threads > busiest ? stats.arenas[a].threads : busiest;
    used += stats.arenas[a].threads > 0;
  }
  pthread_barrier_wait(&may_exit);
  for (int i = 0; i < ARENA_THREADS; i++)
    CHECK(pthread_join(threads[i], NULL) == 0);
  printf("arena_count=%zu\nthreads=%zu\nbusiest=%zu\narenas_used=%zu\n", stats.arena_count, attached, busiest, used);
  printf("option_arenas=%ld\n", tinymalloc_option_get("arenas"));
}

/* Options changed through the API take effect at once. */
static void set_mode(void)
{
  CHECK(tinymalloc_option_set("junk", 1) == 0);
  unsigned char *p = malloc(512);
  CHECK(p != NULL);
  printf("junk_after_set=%s\n", describe_bytes(p, 512));
  free(p);
  CHECK(tinymalloc_option_set("JUNK", 0) == 0);
  p = malloc(100000);
  CHECK(p != NULL);
  printf("junk_after_unset=%s\n", describe_bytes(p, 100000));
  free(p);
  printf("set_unknown=%d\n", tinymalloc_option_set("no_such_option", 1));
  printf("set_out_of_range=%d\n", tinymalloc_option_set("junk", 7));
  printf("set_arenas_late=%d\n", tinymalloc_option_set("arenas", 1));
  printf("purge_delay_ms=%ld\n", tinymalloc_option_get("purge_delay_ms"));
  printf("show_errors=%ld\n", tinymalloc_option_get("show_errors"));
}

int main(int argc, char **argv)
{
  const char *mode = argc > 1 ? argv[1] : "";
  if (strcmp(mode, "junk") == 0)
    junk_mode();
  else if (strcmp(mode, "purge") == 0)
    purge_mode();
  else if (strcmp(mode, "arenas") == 0)
    arenas_mode();
  else if (strcmp(mode, "set") == 0)
    set_mode();
  else if (strcmp(mode, "nothing") == 0)
    free(launder(malloc(10)));
  else {
    fprintf(stderr, "usage: options_probe junk|purge|arenas|set|nothing\n");
    return 2;
  }
  return 0;
}
