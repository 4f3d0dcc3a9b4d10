/* detect_use_after_free: reads and writes of a freed large block fault at
 * once (tinymalloc preloaded, TINYMALLOC_DETECT=1): the block's pages are
 * inaccessible while it waits in the quarantine and, after it, in the
 * cache of mappings. (realloc resizes a large block in place or moves its
 * pages, as without the mode; overflow.c checks its canary.) Harness and
 * options: harness.h. */
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

/* The block leaves the quarantine (TINYMALLOC_QUARANTINE_COUNT=1: the next
 * free pushes it out); its mapping waits in the cache, still inaccessible. */
static void read_after_free_cached(size_t n, size_t offset)
{
  char *p = malloc(n), *q = malloc(n);
  memset(launder(p), 'a', n);
  free(p);
  free(q);
  say("touching\n");
  say("read %d\n", peek(p, offset));
}

/* A mapping from the cache serves a new block (its pages made accessible
 * again), which ends against a guard page like a fresh one. */
static void overflow_of_reused(size_t n, size_t first)
{
  char *p = malloc(first);
  memset(launder(p), 'a', first);
  free(p);
  char *q = malloc(n);
  say(q ? "got a block\n" : "no block\n");
  memset(launder(q), 'b', n);
  say("touching\n");
  flip(q, n);
}

static void register_cases(void)
{
  expect_fault(add_case(read_after_free, 2000000, 0, "large-read-after-free-first-byte"));
  expect_fault(add_case(read_after_free, 2000000, 1999999, "large-read-after-free-last-byte"));
  expect_fault(add_case(read_after_free, 1048576 + 4096, 4096, "large-1MiB-and-a-page-read-after-free"));
  expect_fault(add_case(read_after_free, 40000000, 20000000, "large-40MB-read-after-free-middle"));
  expect_fault(add_case(write_after_free, 2000000, 100, "large-write-after-free"));
  expect_fault(add_case(read_after_free_aligned, 3000000, 4096, "large-memalign-read-after-free"));
  tcase_t *c = add_case(read_after_free_cached, 2000000, 1000000, "large-read-after-free-cached");
  c->env = "TINYMALLOC_DETECT=1 TINYMALLOC_QUARANTINE_COUNT=1";
  expect_fault(c);
  /* 0: no quarantine, the mapping goes to the cache at once */
  c = add_case(overflow_of_reused, 2000000, 2000000, "large-overflow-of-reused-mapping");
  c->env = "TINYMALLOC_DETECT=1 TINYMALLOC_QUARANTINE_COUNT=0";
  expect_fault(c);
  c = add_case(overflow_of_reused, 2000000, 3000000, "large-overflow-of-reused-bigger-mapping");
  c->env = "TINYMALLOC_DETECT=1 TINYMALLOC_QUARANTINE_COUNT=0";
  expect_fault(c);
}

int main(int argc, char **argv) { return harness_main(argc, argv, register_cases); }
