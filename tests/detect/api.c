/* detect_api: the detection mode through tinymalloc's own API (linked with
 * libtinymalloc.a): switched on at run time with
 * tinymalloc_option_set("detect", 1), overflows reported through an error
 * handler that lets the program go on, the off-by-one NUL terminator over
 * 30,000 blocks of every size up to 3000 (each must be caught: a canary byte
 * must never be zero), and the usable size, which is the requested size in
 * this mode (a program that uses all of it is correct and gets no report).
 * The mode is switched on when TM_TEST_DETECT=1 (the control run: 0).
 * Harness and options: harness.h. */
#include <stdlib.h>
#include <string.h>
#include <tinymalloc.h>

#include "harness.h"

static void switch_on(void)
{
  const char *on = getenv("TM_TEST_DETECT");
  if (on && strcmp(on, "1") == 0 && tinymalloc_option_set("detect", 1) != 0) abort();
}

static void overflow_after_switch(size_t n, size_t k)
{
  switch_on();
  char *p = tinymalloc(n);
  say_block(p);
  flip(p, n - 1 + k);
  tinyfree(p);
}

static size_t reported;

static void count_overflows(tinymalloc_error_kind_t kind, const char *op, void *ptr, const char *message, void *arg)
{
  (void)ptr;
  (void)arg;
  if (kind == TINYMALLOC_ERROR_HEAP_OVERFLOW && strcmp(op, "free") == 0 && strstr(message, "heap overflow of block"))
    reported++;
}

static void nul_off_by_one(size_t count, size_t k)
{
  (void)k;
  switch_on();
  tinymalloc_option_set("show_errors", 0);
  tinymalloc_set_error_handler(count_overflows, NULL);
  for (size_t i = 0; i < count; i++) {
    size_t n = 1 + i % 3000;
    char *p = tinymalloc(n);
    memset(p, 'x', n);
    ((volatile char *)launder(p))[n] = '\0'; /* one past the end */
    tinyfree(p);
  }
  say("reported %zu of %zu\n", reported, count);
}

static void usable_size(size_t count, size_t k)
{
  (void)k;
  switch_on();
  static const size_t big[] = {65536, 1048568, 1048576, 2000001, 3000000};
  size_t differs = 0;
  for (size_t i = 0; i < count + sizeof big / sizeof big[0]; i++) {
    size_t n = i < count ? i : big[i - count];
    char *p = tinymalloc(n);
    size_t usable = tinymalloc_usable_size(p);
    if (usable != n) differs++;
    memset(p, 'u', usable); /* correct: every usable byte */
    tinyfree(p);
  }
  if (differs)
    say("usable != requested for %zu sizes\n", differs);
  else
    say("usable == requested for all\n");
}

static void register_cases(void)
{
  for (size_t k = 1; k <= 8; k += 7) {
    tcase_t *c = add_case(overflow_after_switch, 40, k, "switched-on-at-run-time-40-by-%zu", k);
    expect_report(c,
                  "tinymalloc: heap overflow of block @BLOCK@ \\(40 bytes requested; byte %zu overwritten, "
                  "found by free\\)",
                  39 + k);
    c->env = "TM_TEST_DETECT=1";
    c->control_env = "TM_TEST_DETECT=0";
  }
  tcase_t *c = add_case(nul_off_by_one, 30000, 0, "nul-off-by-one-30000-blocks");
  expect_output(c, "reported 30000 of 30000", "reported 0 of 30000");
  c->env = "TM_TEST_DETECT=1";
  c->control_env = "TM_TEST_DETECT=0";
  c = add_case(usable_size, 20000, 0, "usable-size-is-the-request");
  expect_output(c, "usable == requested for all", "usable != requested");
  c->env = "TM_TEST_DETECT=1";
  c->control_env = "TM_TEST_DETECT=0";
}

int main(int argc, char **argv) { return harness_main(argc, argv, register_cases); }
