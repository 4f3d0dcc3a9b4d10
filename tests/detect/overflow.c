/* detect_overflow: heap overflows of 1 to 8 bytes past small, medium and
 * large blocks (tinymalloc preloaded, TINYMALLOC_DETECT=1), including
 * requests that fill their size class or their pages exactly, aligned
 * blocks, calloc and realloc'd blocks. Each is reported in one line when the
 * block is freed (the canary), except past a large block whose request is a
 * multiple of 16: there the write itself faults on the guard page.
 * Harness and options: harness.h. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"

/* malloc(n), then byte n-1+k (the k-th past the end) changes. */
static void overflow(size_t n, size_t k)
{
  char *p = malloc(n);
  say_block(p);
  memset(launder(p), 'a', n);
  say("touching\n");
  flip(p, n - 1 + k);
  free(p);
}

static void overflow_aligned(size_t n, size_t align)
{
  void *p = NULL;
  if (posix_memalign(&p, align, n) != 0) abort();
  say_block(p);
  say("touching\n");
  flip(p, n);
  free(p);
}

static void overflow_calloc(size_t n, size_t k)
{
  char *p = calloc(n, 1);
  say_block(p);
  flip(p, n - 1 + k);
  free(p);
}

/* The block shrinks by realloc (100 to 10 bytes: below half its class, so
 * it moves to a smaller one): the canary follows the new size. */
static void overflow_after_shrink(size_t n, size_t k)
{
  char *p = realloc(malloc(100), n);
  say_block(p);
  flip(p, n - 1 + k);
  free(p);
}

/* The block is resized in place by realloc (or, large, its pages moved):
 * the canary moves to the new end. */
static void overflow_after_resize(size_t from, size_t n, size_t k)
{
  char *p = malloc(from);
  memset(launder(p), 'a', from);
  char *q = realloc(p, n);
  if (q == NULL) abort();
  say_block(q);
  say(q == p ? "in place\n" : "moved\n");
  flip(q, n - 1 + k);
  free(q);
}

#define RESIZE_FROM(from)                                                                                              \
  static void overflow_after_resize_from_##from(size_t n, size_t k) { overflow_after_resize(from, n, k); }
RESIZE_FROM(100)
RESIZE_FROM(20000)
RESIZE_FROM(2000000)
RESIZE_FROM(3000000)

/* The overflowed block is passed to realloc, which checks it too. */
static void overflow_then_realloc(size_t n, size_t k)
{
  char *p = malloc(n);
  say_block(p);
  flip(p, n - 1 + k);
  p = realloc(p, 10 * n);
  free(p);
}

/* The classic: room for the characters, none for the terminating NUL. */
static void strcpy_off_by_one(size_t n, size_t k)
{
  (void)k;
  char text[64];
  memset(text, 'x', n);
  text[n] = '\0';
  char *p = malloc(strlen(text));
  say_block(p);
  strcpy(launder(p), text);
  free(p);
}

#define OVERFLOW_LINE                                                                                                  \
  "tinymalloc: heap overflow of block @BLOCK@ \\(%zu bytes requested; byte %zu overwritten, found by %s\\)"

static void resize_case(void (*run)(size_t, size_t), size_t from, size_t to, size_t k, const char *name)
{
  tcase_t *c = add_case(run, to, k, "realloc-%s-%zu-to-%zu-by-%zu", name, from, to, k);
  expect_report(c, OVERFLOW_LINE, to, to - 1 + k, "free");
}

static void report_case(void (*fn)(size_t, size_t), size_t n, size_t k, const char *kind)
{
  tcase_t *c = add_case(fn, n, k, "%s-%zu-by-%zu", kind, n, k);
  expect_report(c, OVERFLOW_LINE, n, n - 1 + k, "free");
}

static void register_cases(void)
{
  for (size_t k = 1; k <= 8; k++) {
    report_case(overflow, 24, k, "small");
    report_case(overflow, 64, k, "small-exact-class"); /* 64 fills its class (slack forced) */
    report_case(overflow, 20000, k, "medium");
    report_case(overflow, 2000001, k, "large"); /* canary up to the 16-byte boundary */
  }
  for (size_t k = 1; k <= 8; k += 7) {
    report_case(overflow, 1, k, "small");
    report_case(overflow, 16384, k, "small-largest-class"); /* exactly the largest small class */
    report_case(overflow, 65536, k, "medium-exact-pages");
    report_case(overflow, 1048568, k, "medium-largest"); /* plus the slack: exactly 1 MiB */
    tcase_t *c = add_case(overflow, 2000000, k, "large-exact-16-by-%zu", k);
    expect_fault(c); /* ends flush against the guard page */
    /* Exactly the medium limit stays a page run with the mode's slack (one
     * page more than normally): reported at free, like every medium block. */
    c = add_case(overflow, 1048576, k, "medium-1MiB-by-%zu", k);
    expect_report(c, OVERFLOW_LINE, (size_t)1048576, (size_t)1048575 + k, "free");
    c = add_case(overflow, 1048576 + 4096 + 16, k, "large-1MiB-a-page-and-16-by-%zu", k);
    expect_fault(c);
  }
  tcase_t *c = add_case(overflow, 0, 1, "small-malloc0-by-1");
  expect_report(c, OVERFLOW_LINE, (size_t)0, (size_t)0, "free");
  c = add_case(overflow_aligned, 100, 64, "memalign-small-64-100-by-1");
  expect_report(c, OVERFLOW_LINE, (size_t)100, (size_t)100, "free");
  c = add_case(overflow_aligned, 50000, 4096, "memalign-medium-4096-50000-by-1");
  expect_report(c, OVERFLOW_LINE, (size_t)50000, (size_t)50000, "free");
  c = add_case(overflow_aligned, 3000000, 64, "memalign-large-64-3000000-by-1");
  expect_report(c, OVERFLOW_LINE, (size_t)3000000, (size_t)3000000, "free");
  c = add_case(overflow_calloc, 100, 1, "calloc-100-by-1");
  expect_report(c, OVERFLOW_LINE, (size_t)100, (size_t)100, "free");
  c = add_case(overflow_after_shrink, 10, 1, "realloc-shrunk-to-10-by-1");
  expect_report(c, OVERFLOW_LINE, (size_t)10, (size_t)10, "free");
  /* Moved: the free of the old block finds it, and the report names realloc. */
  c = add_case(overflow_then_realloc, 24, 1, "realloc-of-overflowed-24-by-1");
  expect_report(c, OVERFLOW_LINE, (size_t)24, (size_t)24, "realloc");
  for (size_t k = 1; k <= 8; k += 7) {
    resize_case(overflow_after_resize_from_100, 100, 90, k, "small-in-place");
    resize_case(overflow_after_resize_from_20000, 20000, 30000, k, "medium-grown");
    resize_case(overflow_after_resize_from_2000000, 2000000, 3000008, k, "large-grown");
    resize_case(overflow_after_resize_from_3000000, 3000000, 1500000, k, "large-shrunk");
  }
  for (size_t n = 5; n <= 45; n += 20) {
    c = add_case(strcpy_off_by_one, n, 1, "strcpy-nul-off-by-one-%zu", n);
    expect_report(c, OVERFLOW_LINE, n, n, "free");
  }
}

int main(int argc, char **argv) { return harness_main(argc, argv, register_cases); }
