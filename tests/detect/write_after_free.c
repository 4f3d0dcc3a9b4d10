/* detect_write_after_free: a byte of a freed small or medium block changes
 * while the block is free (tinymalloc preloaded, TINYMALLOC_DETECT=1). It is
 * reported when the block leaves the freeing thread's quarantine (also at
 * thread exit, which empties it: there whole, else a small block's first 64
 * bytes), when the program exits while it is still there (the exiting
 * thread's quarantine is checked), or, once it has left, when the block is
 * handed out again (whole);
 * against the fill or, with zero_on_free, against zeros; the fill covers
 * the request and the canary after it, for blocks over 64 KiB its first and
 * last 32 KiB (with fill_all all of it; the control run shows a write in
 * the middle passing without it). A large
 * block faults instead (use_after_free.c). Harness and options: harness.h. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

/* The quarantine holds 4 blocks (TINYMALLOC_QUARANTINE_COUNT=4): the fourth
 * free after p's pushes p out, and its fill is checked. */
static void left_quarantine(size_t n, size_t offset)
{
  char *other[4];
  for (int i = 0; i < 4; i++)
    other[i] = malloc(n);
  char *p = malloc(n);
  memset(launder(p), 'a', n);
  say_block(p);
  free(p);
  flip(p, offset);
  for (int i = 0; i < 4; i++)
    free(other[i]);
}

/* The default quarantine (1024 blocks, 4 MiB): 2000 frees later. */
static void left_default_quarantine(size_t n, size_t offset)
{
  char *p = malloc(n);
  say_block(p);
  free(p);
  flip(p, offset);
  for (int i = 0; i < 2000; i++)
    free(malloc(n));
}

/* p leaves the quarantine unharmed (TINYMALLOC_QUARANTINE_COUNT=1: q's free
 * pushes it out), then changes; it is checked when it is handed out again. */
static void handed_out_again(size_t n, size_t offset)
{
  char *p = malloc(n), *q = malloc(n);
  say_block(p);
  free(p);
  free(q);
  flip(p, offset);
  for (int i = 0; i < 200000; i++) {
    if (malloc(n) == p) { /* the others stay allocated */
      say("reused after %d allocations\n", i + 1);
      return;
    }
  }
  say("never handed out again\n");
}

/* p waits in the quarantine when the program exits (no later free pushed it
 * out): the exit checks the quarantine of the exiting thread. */
static void still_quarantined_at_exit(size_t n, size_t offset)
{
  char *p = malloc(n);
  memset(launder(p), 'a', n);
  say_block(p);
  free(p);
  flip(p, offset);
}

static char *thread_block;
static size_t thread_offset;

static void *free_and_write(void *arg)
{
  (void)arg;
  free(malloc(16)); /* a thread that never allocated has no heap, so no quarantine */
  free(thread_block);
  flip(thread_block, thread_offset);
  return NULL; /* thread exit empties this thread's quarantine */
}

static void freed_by_exiting_thread(size_t n, size_t offset)
{
  thread_block = malloc(n);
  thread_offset = offset;
  say_block(thread_block);
  pthread_t t;
  if (pthread_create(&t, NULL, free_and_write, NULL) != 0) abort();
  pthread_join(t, NULL);
}

#define WAF_LINE                                                                                                       \
  "tinymalloc: write after free of block @BLOCK@ \\(block of %zu bytes; byte %zu changed while it was free, found "    \
  "when it %s\\)"

static tcase_t *waf_case(void (*fn)(size_t, size_t), size_t n, size_t offset, size_t block, const char *when,
                         const char *name, const char *env)
{
  tcase_t *c = add_case(fn, n, offset, "%s-%zu-at-%zu", name, n, offset);
  expect_report(c, WAF_LINE, block, offset, when);
  c->env = env;
  return c;
}

static void register_cases(void)
{
  const char *q4 = "TINYMALLOC_DETECT=1 TINYMALLOC_QUARANTINE_COUNT=4";
  const char *q1 = "TINYMALLOC_DETECT=1 TINYMALLOC_QUARANTINE_COUNT=1";
  const char *left = "left the quarantine", *again = "was handed out again";
  /* small: 80 bytes plus the slack is the class of 96 */
  waf_case(left_quarantine, 80, 8, 96, left, "small-left-quarantine", q4);
  waf_case(left_quarantine, 24, 0, 32, left, "small-left-quarantine", q4);
  waf_case(left_default_quarantine, 80, 8, 96, left, "small-left-default-quarantine", "TINYMALLOC_DETECT=1");
  waf_case(left_quarantine, 80, 8, 96, left, "small-zero-fill-left-quarantine",
           "TINYMALLOC_DETECT=1 TINYMALLOC_QUARANTINE_COUNT=4 TINYMALLOC_ZERO_ON_FREE=1");
  waf_case(freed_by_exiting_thread, 80, 8, 96, left, "small-thread-exit", "TINYMALLOC_DETECT=1");
  const char *at_exit = "was still in the quarantine at exit";
  waf_case(still_quarantined_at_exit, 80, 8, 96, at_exit, "small-quarantined-at-exit", "TINYMALLOC_DETECT=1");
  waf_case(still_quarantined_at_exit, 80, 95, 96, at_exit, "small-quarantined-at-exit", "TINYMALLOC_DETECT=1");
  waf_case(still_quarantined_at_exit, 20000, 19999, 20480, at_exit, "medium-quarantined-at-exit",
           "TINYMALLOC_DETECT=1");
  /* past the first 64 bytes (a small block leaving the quarantine is
   * checked that far): found at thread exit, or when handed out again */
  waf_case(freed_by_exiting_thread, 80, 95, 96, left, "small-thread-exit", "TINYMALLOC_DETECT=1");
  tcase_t *c = waf_case(handed_out_again, 80, 8, 96, again, "small-handed-out-again", q1);
  c->control_out = "reused after";
  c = waf_case(handed_out_again, 80, 95, 96, again, "small-handed-out-again", q1); /* the canary's bytes too */
  c->control_out = "reused after";
  c = waf_case(handed_out_again, 1000, 900, 1024, again, "small-handed-out-again", q1);
  c->control_out = "reused after";
  /* medium: 20000 bytes plus the slack is 5 pages */
  waf_case(left_quarantine, 20000, 8, 20480, left, "medium-left-quarantine", q4);
  waf_case(left_quarantine, 20000, 19999, 20480, left, "medium-left-quarantine", q4);
  waf_case(left_default_quarantine, 20000, 8, 20480, left, "medium-left-default-quarantine", "TINYMALLOC_DETECT=1");
  c = waf_case(handed_out_again, 20000, 8, 20480, again, "medium-handed-out-again", q1);
  c->control_out = "reused after";
  /* over 64 KiB: the first and the last 32 KiB carry the fill */
  waf_case(left_quarantine, 200000, 8, 200704, left, "medium-big-head-left-quarantine", q4);
  waf_case(left_quarantine, 200000, 199999, 200704, left, "medium-big-tail-left-quarantine", q4);
  /* ... and with fill_all every byte: a write in the middle is found, which
   * the default lets pass (the control run, the mode on without fill_all) */
  const char *q4_all = "TINYMALLOC_DETECT=1 TINYMALLOC_QUARANTINE_COUNT=4 TINYMALLOC_FILL_ALL=1";
  static const size_t middle[] = {32768, 100000, 167231};
  for (size_t i = 0; i < sizeof middle / sizeof middle[0]; i++) {
    c = waf_case(left_quarantine, 200000, middle[i], 200704, left, "medium-big-middle-fill-all-left-quarantine",
                 q4_all);
    c->control_env = q4;
  }
  c = waf_case(handed_out_again, 100000, 50000, 102400, again, "medium-big-middle-fill-all-handed-out-again",
               "TINYMALLOC_DETECT=1 TINYMALLOC_QUARANTINE_COUNT=1 TINYMALLOC_FILL_ALL=1");
  c->control_env = q1;
  c->control_out = "reused after";
}

int main(int argc, char **argv) { return harness_main(argc, argv, register_cases); }
