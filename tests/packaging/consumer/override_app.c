/* A program linked with tinymalloc's malloc replacement (tests/packaging):
 * passes only if malloc and free are tinymalloc's, seen in its counters. */
#include <stdio.h>
#include <stdlib.h>
#include <tinymalloc.h>

void *volatile sink;

int main(void)
{
  tinymalloc_counters_t before, during, after;
  tinymalloc_counters(&before);
  sink = malloc(1000);
  tinymalloc_counters(&during);
  free(sink);
  tinymalloc_counters(&after);
  if (sink == NULL || during.live_blocks != before.live_blocks + 1 || after.live_blocks != before.live_blocks) {
    fprintf(stderr, "override_app: malloc/free are not tinymalloc's (live blocks %zu, %zu, %zu)\n", before.live_blocks,
            during.live_blocks, after.live_blocks);
    return 1;
  }
  printf("override_app: malloc and free are tinymalloc's\n");
  return 0;
}
