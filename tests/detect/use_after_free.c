/* detect_use_after_free: reads and writes of a freed large block fault at
 * once (tinymalloc preloaded, TINYMALLOC_DETECT=1): the block's pages are
 * inaccessible while it waits in the quarantine, and unmapped after. Also
 * after realloc, which moves every block in this mode, the old address
 * faults. Harness and options: harness.h. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static void read_after_free(size_t n, size_t offset)
{
  char *p = malloc(n);
  memset(launder(p), 'a', n);
  free(p);
  say("touching\n");
  say("read %d\n", peek(p, offset));
}

static void write_after_free(size_t n, size_t offset)
{
  char *p = malloc(n);
  free(p);
  say("touching\n");
  flip(p, offset);
}

static void read_after_free_aligned(size_t n, size_t align)
{
  void *p = NULL;
  if (posix_memalign(&p, align, n) != 0) abort();
  memset(p, 'a', n);
  free(p);
  say("touching\n");
  say("read %d\n", peek(p, 0));
}

/* A shrinking realloc: in place without the mode, a move with it. */
static void read_after_realloc(size_t n, size_t offset)
{
  char *p = malloc(n);
  memset(launder(p), 'a', n);
  char *q = realloc(p, n / 2);
  say("touching\n");
  say("read %d\n", peek(p, offset));
  free(q);
}

static void register_cases(void)
{
  expect_fault(add_case(read_after_free, 2000000, 0, "large-read-after-free-first-byte"));
  expect_fault(add_case(read_after_free, 2000000, 1999999, "large-read-after-free-last-byte"));
  expect_fault(add_case(read_after_free, 1048576 + 4096, 4096, "large-1MiB-and-a-page-read-after-free"));
  expect_fault(add_case(read_after_free, 40000000, 20000000, "large-40MB-read-after-free-middle"));
  expect_fault(add_case(write_after_free, 2000000, 100, "large-write-after-free"));
  expect_fault(add_case(read_after_free_aligned, 3000000, 4096, "large-memalign-read-after-free"));
  expect_fault(add_case(read_after_realloc, 3000000, 0, "large-read-after-realloc"));
}

int main(int argc, char **argv) { return harness_main(argc, argv, register_cases); }
