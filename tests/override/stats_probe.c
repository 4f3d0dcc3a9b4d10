/* Builds a known heap (1000 small blocks of 100 bytes, 10 medium, 2 large),
 * then writes on stdout: its own tinymalloc_stats() figures as "expect"
 * lines, the JSON report, a separator, and the human report, all from the
 * same quiescent state, for stats_check.py to compare. Linked against the
 * core library (no override): the printer is part of the core. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "tinymalloc.h"

int main(void)
{
  static void *small[1000], *medium[10], *large[2];
  for (int i = 0; i < 1000; i++)
    CHECK((small[i] = tinymalloc(100)) != NULL);
  for (int i = 0; i < 10; i++)
    CHECK((medium[i] = tinymalloc(100000)) != NULL);
  for (int i = 0; i < 2; i++) {
    CHECK((large[i] = tinymalloc(3 << 20)) != NULL);
    memset(large[i], 1, 3 << 20);
  }
  tinymalloc_stats_t stats;
  CHECK(tinymalloc_stats(&stats) == 0);
  printf("expect live_blocks %zu\nexpect live_bytes %zu\nexpect total_allocs %zu\nexpect total_frees %zu\n"
         "expect small_blocks %zu\nexpect medium_blocks %zu\nexpect large_blocks %zu\nexpect segments %zu\n"
         "expect class_count %zu\nexpect arena_count %zu\n",
         stats.live_blocks, stats.live_bytes, stats.total_allocs, stats.total_frees, stats.small_blocks,
         stats.medium_blocks, stats.large_blocks, stats.segments, stats.class_count, stats.arena_count);
  fflush(stdout);
  tinymalloc_stats_print(STDOUT_FILENO, 1);
  printf("----\n");
  fflush(stdout);
  tinymalloc_stats_print(STDOUT_FILENO, 0);
  for (int i = 0; i < 1000; i++)
    tinyfree(small[i]);
  for (int i = 0; i < 10; i++)
    tinyfree(medium[i]);
  for (int i = 0; i < 2; i++)
    tinyfree(large[i]);
  return 0;
}
