/* RSS return: build a 1 GiB peak of mixed small, medium and large blocks
 * (every page touched), free everything, trim, and require the process RSS
 * (VmRSS from /proc/self/status) to come back under 64 MiB. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tinymalloc.h"

static long vm_kib(const char *field)
{
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long value = -1;
  size_t n = strlen(field);
  while (f && fgets(line, sizeof line, f))
    if (strncmp(line, field, n) == 0) value = atol(line + n + 1);
  if (f) fclose(f);
  return value;
}

#define GiB ((size_t)1 << 30)

int main(void)
{
  static void *blocks[1 << 20];
  size_t count = 0, bytes = 0, by_strategy[3] = {0};
  unsigned seed = 12345;
  while (bytes < GiB) {
    seed = seed * 1103515245u + 12345u;
    /* Keep the three strategies at about a third of the bytes each. */
    unsigned kind = by_strategy[0] <= by_strategy[1] && by_strategy[0] <= by_strategy[2] ? 0
                    : by_strategy[1] <= by_strategy[2]                                   ? 1
                                                                                         : 2;
    size_t size = kind == 0   ? 16 + (seed >> 8) % 8000
                  : kind == 1 ? (20 << 10) + (seed >> 4) % (900 << 10)
                              : (2 << 20) + (seed >> 4) % (6 << 20);
    void *p = tinymalloc(size);
    if (p == NULL) {
      printf("allocation failed at %zu bytes\n", bytes);
      return 1;
    }
    memset(p, 0x3c, size);
    blocks[count++] = p;
    bytes += size;
    by_strategy[kind] += size;
  }
  long peak = vm_kib("VmRSS:");
  for (size_t i = 0; i < count; i++)
    tinyfree(blocks[i]);
  long after_free = vm_kib("VmRSS:");
  size_t returned = tinymalloc_trim();
  long after_trim = vm_kib("VmRSS:");
  tinymalloc_stats_t st;
  tinymalloc_stats(&st);
  printf("rss: %zu blocks, %zu MiB live at peak (small %zu, medium %zu, large %zu MiB)\n", count, bytes >> 20,
         by_strategy[0] >> 20, by_strategy[1] >> 20, by_strategy[2] >> 20);
  printf("rss: VmRSS peak %ld MiB, after free %ld MiB, after trim %ld MiB (trim returned %zu MiB), VmHWM %ld MiB\n",
         peak >> 10, after_free >> 10, after_trim >> 10, returned >> 20, vm_kib("VmHWM:") >> 10);
  printf("rss: allocator resident %zu bytes, segments %zu, check %d\n", st.resident_bytes, st.segments,
         tinymalloc_check());
  int ok = peak >= (long)(GiB >> 10) && after_trim < 64 * 1024 && st.live_blocks == 0;
  printf("%s\n", ok ? "1 passed, 0 failed" : "0 passed, 1 failed");
  return ok ? 0 : 1;
}
