/* detect_double_free: a stale double free after other allocations of the
 * same size (tinymalloc preloaded, TINYMALLOC_DETECT=1). Without the mode the
 * freed block is handed out again at once and the second free frees the new
 * owner's block without a word (the control run shows both: "reused", no
 * report); with it the block waits in the quarantine, so the second free is
 * still a double free. Small, medium and large blocks, a first free on
 * another thread that is still alive (a thread's quarantine is emptied when
 * it exits), and realloc of the stale pointer. Harness: harness.h. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

/* `count` allocations of n bytes after p's free; says whether one is p. */
static void reuse(char *p, size_t n, int count)
{
  for (int i = 0; i < count; i++) {
    if (malloc(n) == p) { /* all stay allocated */
      say("reused after %d allocations\n", i + 1);
      return;
    }
  }
  say("not reused in %d allocations\n", count);
}

static void stale_free(size_t n, size_t count)
{
  char *p = malloc(n);
  say_block(p);
  free(p);
  reuse(p, n, (int)count);
  free(p);
}

static void stale_realloc(size_t n, size_t count)
{
  char *p = malloc(n);
  say_block(p);
  free(p);
  reuse(p, n, (int)count);
  free(realloc(p, 2 * n));
}

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int freed;

/* Frees p, then stays alive (its quarantine is emptied when it exits). */
static void *free_it(void *p)
{
  free(malloc(16)); /* a heap, hence a quarantine, for this thread */
  free(p);
  pthread_mutex_lock(&lock);
  freed = 1;
  pthread_cond_broadcast(&cond);
  for (;;)
    pthread_cond_wait(&cond, &lock);
  return NULL;
}

/* The first free on a thread that is still alive, the second on main. */
static void stale_free_other_thread(size_t n, size_t count)
{
  char *p = malloc(n);
  say_block(p);
  pthread_t t;
  if (pthread_create(&t, NULL, free_it, p) != 0) abort();
  pthread_mutex_lock(&lock);
  while (!freed)
    pthread_cond_wait(&cond, &lock);
  pthread_mutex_unlock(&lock);
  reuse(p, n, (int)count);
  free(p);
}

#define DOUBLE_LINE "tinymalloc: %s @BLOCK@ \\(block of %zu bytes\\)"

static void stale_case(void (*fn)(size_t, size_t), size_t n, size_t count, size_t block, const char *what,
                       const char *name)
{
  tcase_t *c = add_case(fn, n, count, "%s-%zu", name, n);
  expect_report(c, DOUBLE_LINE, what, block);
  c->control_out = "reused after";
}

static void register_cases(void)
{
  stale_case(stale_free, 48, 100, 64, "double free of", "small-stale-free-after-reuse");
  stale_case(stale_free, 20000, 100, 20480, "double free of", "medium-stale-free-after-reuse");
  stale_case(stale_free, 2000000, 4, 2000000, "double free of", "large-stale-free-after-reuse");
  stale_case(stale_realloc, 48, 100, 64, "realloc of freed block", "small-stale-realloc-after-reuse");
  stale_case(stale_realloc, 20000, 100, 20480, "realloc of freed block", "medium-stale-realloc-after-reuse");
  stale_case(stale_free_other_thread, 48, 5000, 64, "double free of", "small-freed-on-thread-stale-free");
}

int main(int argc, char **argv) { return harness_main(argc, argv, register_cases); }
