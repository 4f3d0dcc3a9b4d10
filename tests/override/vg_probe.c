/* Run under Valgrind memcheck with LD_PRELOAD=libtinymalloc-override.so:
 * reports on stdout whether malloc was served by tinymalloc (its live-block
 * count moves) or replaced by Valgrind, and with the argument
 * "use-after-free" reads a freed block, which memcheck reports only when
 * tinymalloc was built with its Valgrind client requests. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "tinymalloc.h"

int main(int argc, char **argv)
{
  int (*get_stats)(tinymalloc_stats_t *) = (int (*)(tinymalloc_stats_t *))dlsym(RTLD_DEFAULT, "tinymalloc_stats");
  if (get_stats == NULL) {
    fprintf(stderr, "vg_probe: tinymalloc is not loaded (run with LD_PRELOAD)\n");
    return 1;
  }
  tinymalloc_stats_t before, after;
  CHECK(get_stats(&before) == 0);
  char *blocks[100];
  for (int i = 0; i < 100; i++) {
    blocks[i] = malloc((size_t)i * 40 + 1);
    CHECK(blocks[i] != NULL);
    memset(blocks[i], i, (size_t)i * 40 + 1);
  }
  CHECK(get_stats(&after) == 0);
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
