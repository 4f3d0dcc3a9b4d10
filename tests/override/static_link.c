/* Linked with libtinymalloc-override.a, once against the shared glibc and
 * once fully static: the link itself must not pull glibc's malloc.o (that
 * would be duplicate symbols), so this program calls every member of the
 * family that glibc's malloc.o defines, and checks that malloc, libc's own
 * internal allocations and the introspection calls are tinymalloc's. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "tinymalloc.h"

int main(void)
{
  tinymalloc_stats_t before, after;
  CHECK(tinymalloc_stats(&before) == 0);
  char *p = malloc(1000);
  char *copy = strdup("libc's strdup calls malloc"); /* inside libc */
  void *aligned = memalign(64, 10);
  void *page = valloc(10);
  void *pages = pvalloc(10);
  void *c11 = aligned_alloc(128, 128);
  void *posix = NULL;
  CHECK(posix_memalign(&posix, 256, 10) == 0);
  CHECK(p && copy && aligned && page && pages && c11 && posix);
  CHECK(tinymalloc_stats(&after) == 0);
  CHECK(after.live_blocks == before.live_blocks + 7);
  CHECK(tinymalloc_usable_size(copy) >= sizeof "libc's strdup calls malloc");
  CHECK(malloc_usable_size(p) >= 1000);
  p = realloc(p, 100000);
  CHECK(p != NULL);
  char *zeroed = calloc(10, 10);
  CHECK(zeroed != NULL && zeroed[99] == 0);
  free(zeroed);
  free(p);
  free(copy);
  free(aligned);
  free(page);
  free(pages);
  free(c11);
  free(posix);
  CHECK(mallopt(M_MXFAST, 0) == 1);
  tinymalloc_stats_t now;
  CHECK(tinymalloc_stats(&now) == 0);
  CHECK(mallinfo2().uordblks == now.live_bytes);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  CHECK(mallinfo().arena > 0);
#pragma GCC diagnostic pop
  (void)malloc_trim(0);
  FILE *sink = fopen("/dev/null", "w");
  CHECK(sink != NULL && malloc_info(0, sink) == 0);
  /* malloc_stats writes to stderr: send it to /dev/null for the call. */
  int saved = dup(STDERR_FILENO);
  CHECK(saved >= 0 && dup2(fileno(sink), STDERR_FILENO) == STDERR_FILENO);
  malloc_stats();
  CHECK(dup2(saved, STDERR_FILENO) == STDERR_FILENO);
  close(saved);
  fclose(sink);
  CHECK(tinymalloc_check() == 0);
  printf("static_link: all %lu checks passed\n", check_count);
  return 0;
}
