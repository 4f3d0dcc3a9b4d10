/* A library the edge program depends on (DT_NEEDED): its constructor runs
 * before main and, under LD_PRELOAD, possibly before tinymalloc's own
 * constructor, and goes through libc paths that allocate (stdio, strdup,
 * qsort's buffer, getline). The blocks are freed later by the program. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *edge_init_blocks[4];

__attribute__((visibility("default"))) char **edge_init_lib_blocks(void);
char **edge_init_lib_blocks(void) { return edge_init_blocks; }

__attribute__((constructor(101))) static void edge_init_lib_constructor(void)
{
  edge_init_blocks[0] = malloc(40);
  edge_init_blocks[1] = strdup("allocated in a library constructor");
  edge_init_blocks[2] = calloc(1000, 8);
  FILE *devnull = fopen("/dev/null", "w"); /* stdio allocates its buffer */
  if (devnull != NULL) {
    fprintf(devnull, "%s %d\n", edge_init_blocks[1], 42);
    fclose(devnull);
  }
  FILE *self = fopen("/proc/self/maps", "r");
  char *line = NULL;
  size_t capacity = 0;
  if (self != NULL) {
    if (getline(&line, &capacity, self) < 0) {
      free(line);
      line = NULL;
    }
    fclose(self);
  }
  edge_init_blocks[3] = line; /* allocated by libc's getline */
}
