/* detect_api: the detection mode through tinymalloc's own API (linked with
 * libtinymalloc.a): switched on at run time with
 * tinymalloc_option_set("detect", 1), overflows reported through an error
 * handler that lets the program go on, the off-by-one NUL terminator over
 * 30,000 blocks of every size up to 3000 (each must be caught: a canary byte
 * must never be zero), and the usable size, which is the requested size in
 * this mode (a program that uses all of it is correct and gets no report).
 * A write after free found when the block leaves the quarantine is reported
 * once: not again when the block is handed out again (the handler returned,
 * the program went on). A block is checked as it was filled, whatever
 * fill_all says by the time it leaves the quarantine.
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

static size_t waf_reports;

static void count_waf(tinymalloc_error_kind_t kind, const char *op, void *ptr, const char *message, void *arg)
{
  (void)op;
  (void)ptr;
  (void)message;
  (void)arg;
  if (kind == TINYMALLOC_ERROR_WRITE_AFTER_FREE) waf_reports++;
}

/* p waits in a quarantine of one block, changes, and leaves it when q is
 * freed (the report); then it is handed out again: no second report. */
static void waf_reported_once(size_t n, size_t offset)
{
  switch_on();
  tinymalloc_option_set("show_errors", 0);
  tinymalloc_option_set("quarantine_count", 1);
  tinymalloc_set_error_handler(count_waf, NULL);
  char *p = tinymalloc(n), *q = tinymalloc(n);
  tinyfree(p);
  flip(p, offset);
  tinyfree(q);
  size_t left = waf_reports;
  const char *reused = "no";
  for (int i = 0; i < 200000; i++) { /* the others stay allocated */
    if (tinymalloc(n) == p) {
      reused = "yes";
      break;
    }
  }
  say("write-after-free reports: %zu when it left the quarantine, %zu in all (handed out again: %s)\n", left,
      waf_reports, reused);
}

/* fill_all switched while blocks wait in the quarantine: each is checked as
 * it was filled. p, freed without fill_all (its middle keeps the program's
 * bytes), leaves with fill_all on: no report; q, freed with fill_all and
 * switched off again, changes in the middle: reported when it leaves. */
static void fill_all_switched(size_t n, size_t offset)
{
  switch_on();
  tinymalloc_option_set("show_errors", 0);
  tinymalloc_option_set("quarantine_count", 1);
  tinymalloc_set_error_handler(count_waf, NULL);
  char *p = tinymalloc(n), *q = tinymalloc(n), *r = tinymalloc(n);
  memset(launder(p), 'a', n);
  memset(launder(q), 'a', n);
  tinyfree(p);
  tinymalloc_option_set("fill_all", 1);
  tinyfree(q); /* p leaves */
  size_t for_p = waf_reports;
  tinymalloc_option_set("fill_all", 0);
  flip(q, offset);
  tinyfree(r); /* q leaves */
  say("write-after-free reports: %zu for the block freed before fill_all, %zu in all\n", for_p, waf_reports);
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
  static const size_t once[][2] = {{80, 8}, {20000, 8}, {100000, 99992}};
  for (size_t i = 0; i < sizeof once / sizeof once[0]; i++) {
    c = add_case(waf_reported_once, once[i][0], once[i][1], "write-after-free-reported-once-%zu-at-%zu", once[i][0],
                 once[i][1]);
    expect_output(c, "reports: 1 when it left the quarantine, 1 in all (handed out again: yes)", "reports: 0");
    c->env = "TM_TEST_DETECT=1";
    c->control_env = "TM_TEST_DETECT=0";
  }
  c = add_case(fill_all_switched, 200000, 100000, "fill-all-switched-while-blocks-wait");
  expect_output(c, "reports: 0 for the block freed before fill_all, 1 in all",
                "reports: 0 for the block freed before fill_all, 0 in all");
  c->env = "TM_TEST_DETECT=1";
  c->control_env = "TM_TEST_DETECT=0";
  c = add_case(usable_size, 20000, 0, "usable-size-is-the-request");
  expect_output(c, "usable == requested for all", "usable != requested");
  c->env = "TM_TEST_DETECT=1";
  c->control_env = "TM_TEST_DETECT=0";
}

int main(int argc, char **argv) { return harness_main(argc, argv, register_cases); }
