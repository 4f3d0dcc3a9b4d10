/* Run under Valgrind memcheck: reports on stdout whether malloc was served by
 * tinymalloc (its live-block count moves) or replaced by Valgrind, and with
 * the argument "use-after-free" reads a freed block, which memcheck reports
 * only when tinymalloc was built with its Valgrind client requests. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "tinymalloc.h"

int main(int argc, char **argv)
{
  tinymalloc_stats_t before, after;
  CHECK(tinymalloc_stats(&before) == 0);
  char *blocks[100];
  for (int i = 0; i < 100; i++) {
    blocks[i] = malloc((size_t)i * 40 + 1);
    CHECK(blocks[i] != NULL);
    memset(blocks[i], i, (size_t)i * 40 + 1);
  }
  CHECK(tinymalloc_stats(&after) == 0);
  printf("malloc served by %s\n", after.live_blocks >= before.live_blocks + 100 ? "tinymalloc" : "another allocator");
  int sum = 0;
  for (int i = 0; i < 100; i++) {
    sum += blocks[i][i * 40];
    free(blocks[i]);
  }
  char *p = realloc(calloc(10, 10), 20000);
  CHECK(p != NULL && p[99] == 0);
  if (argc > 1 && strcmp(argv[1], "use-after-free") == 0) {
    char *alias = launder(p);
    free(p);
    sum += alias[10]; /* deliberate: memcheck must flag this read */
  } else {
    free(p);
  }
  printf("sum %d\n", sum);
  return 0;
}
