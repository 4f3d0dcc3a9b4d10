/* Issue 8, item 2: a misuse handler that allocates must not deadlock.
 *
 *   handler_allocates handler   an error handler (tinymalloc_set_error_handler)
 *                               that allocates and frees a small, a medium
 *                               (40000) and a large (2 MiB) block while the
 *                               report of each misuse is being made: double
 *                               free, interior pointer, realloc and
 *                               usable_size of a freed block, for small,
 *                               medium and large blocks, and a stack pointer.
 *                               Each report must arrive exactly once (one
 *                               handler call, one line on stderr), the
 *                               misused call must return, and the heap must
 *                               pass tinymalloc_check() afterwards.
 *   handler_allocates sigabrt   no handler installed (report, then abort()),
 *                               and a SIGABRT handler that allocates the same
 *                               three blocks: the process must die of SIGABRT
 *                               after the report line and the handler's line,
 *                               for medium (and small, large) misuse.
 *
 * The bug: medium misuse is reported while the arena mutex is held
 * (tm_medium_check under the lock), so an allocation from the handler, or
 * from a SIGABRT handler after abort(), waits forever for that mutex. Every
 * case runs in its own child with an alarm: a hang is reported as HANG. */
#include <stdbool.h>

#include "regress.h"

typedef enum { SMALL = 64, MEDIUM = 40000, LARGE = 2 << 20 } block_kind_t;

typedef struct {
  const char *name;
  const char *misuse;           /* double-free, interior, realloc-freed, usable-freed, stack */
  size_t size;                  /* block size (0 for stack) */
  tinymalloc_error_kind_t kind; /* expected */
  const char *line;             /* expected in the report line */
} misuse_case_t;

static const misuse_case_t cases[] = {
    {"small double free", "double-free", SMALL, TINYMALLOC_ERROR_DOUBLE_FREE, "double free of 0x"},
    {"medium double free", "double-free", MEDIUM, TINYMALLOC_ERROR_DOUBLE_FREE, "double free of 0x"},
    {"large double free", "double-free", LARGE, TINYMALLOC_ERROR_DOUBLE_FREE, "double free of 0x"},
    {"small interior pointer", "interior", SMALL, TINYMALLOC_ERROR_INTERIOR, "interior pointer: 16 bytes into"},
    {"medium interior pointer", "interior", MEDIUM, TINYMALLOC_ERROR_INTERIOR, "interior pointer: 16 bytes into"},
    {"large interior pointer", "interior", LARGE, TINYMALLOC_ERROR_INTERIOR, "interior pointer: 16 bytes into"},
    {"medium realloc of a freed block", "realloc-freed", MEDIUM, TINYMALLOC_ERROR_DOUBLE_FREE,
     "realloc of freed block"},
    {"medium usable_size of a freed block", "usable-freed", MEDIUM, TINYMALLOC_ERROR_DOUBLE_FREE,
     "usable_size of freed block"},
    {"stack pointer", "stack", 0, TINYMALLOC_ERROR_INVALID_FREE, "invalid free of 0x"},
};
#define CASE_COUNT (sizeof cases / sizeof cases[0])

static _Atomic int handler_calls, handler_allocs_ok, handler_in_progress;
static tinymalloc_error_kind_t seen_kind;

/* Allocates, writes and frees a block of each strategy; returns how many worked. */
static int allocate_each_kind(void)
{
  static const size_t sizes[] = {32, MEDIUM, LARGE};
  int ok = 0;
  for (int i = 0; i < 3; i++) {
    unsigned char *p = tinymalloc(sizes[i]);
    if (p == NULL) continue;
    p[0] = 1;
    p[sizes[i] - 1] = 2;
    tinyfree(p);
    ok++;
  }
  return ok;
}

static void allocating_handler(tinymalloc_error_kind_t kind, const char *op, void *ptr, const char *message, void *arg)
{
  (void)op, (void)ptr, (void)message, (void)arg;
  if (atomic_fetch_add(&handler_in_progress, 1) != 0) regress_say("handler re-entered\n");
  atomic_fetch_add(&handler_calls, 1);
  seen_kind = kind;
  regress_say("handler: allocating small, medium and large blocks\n");
  atomic_fetch_add(&handler_allocs_ok, allocate_each_kind());
  regress_say("handler: done\n");
  atomic_fetch_sub(&handler_in_progress, 1);
}

static void sigabrt_handler(int sig)
{
  (void)sig;
  regress_say("SIGABRT handler: allocating small, medium and large blocks\n");
  int ok = allocate_each_kind();
  regress_say(ok == 3 ? "SIGABRT handler: allocated all three\n" : "SIGABRT handler: an allocation failed\n");
  /* Returning lets abort() finish: the process dies of SIGABRT. */
}

/* Performs the misuse of case c. */
static void misuse(const misuse_case_t *c)
{
  if (strcmp(c->misuse, "stack") == 0) {
    long on_stack[4] = {0};
    tinyfree(regress_launder(&on_stack[1]));
    return;
  }
  unsigned char *p = tinymalloc(c->size);
  REQUIRE(p != NULL, "tinymalloc(%zu)", c->size);
  p[0] = 1;
  if (strcmp(c->misuse, "interior") == 0) {
    tinyfree(regress_launder(p + 16));
    tinyfree(p); /* the block itself is still live */
    return;
  }
  tinyfree(p);
  if (strcmp(c->misuse, "double-free") == 0)
    tinyfree(regress_launder(p));
  else if (strcmp(c->misuse, "realloc-freed") == 0)
    REQUIRE(tinyrealloc(regress_launder(p), 100) == NULL, "realloc of a freed block returned a block");
  else
    REQUIRE(tinymalloc_usable_size(regress_launder(p)) == 0, "usable_size of a freed block was not 0");
}

static void handler_child(void *arg)
{
  const misuse_case_t *c = arg;
  /* Blocks of every kind exist before the misuse: the arena has segments. */
  void *warm[3] = {tinymalloc(100), tinymalloc(MEDIUM), tinymalloc(LARGE)};
  tinymalloc_set_error_handler(allocating_handler, NULL);
  misuse(c);
  regress_say("misused call returned\n");
  REQUIRE(handler_calls == 1, "the handler was called %d times for one misuse", (int)handler_calls);
  REQUIRE(seen_kind == c->kind, "the handler got kind %d, expected %d", (int)seen_kind, (int)c->kind);
  REQUIRE(handler_allocs_ok == 3, "only %d of the handler's 3 allocations worked", (int)handler_allocs_ok);
  REQUIRE(allocate_each_kind() == 3, "allocation after the report failed");
  for (int i = 0; i < 3; i++)
    tinyfree(warm[i]);
  REQUIRE(tinymalloc_check() == 0, "tinymalloc_check() found violations after the report");
}

static void sigabrt_child(void *arg)
{
  const misuse_case_t *c = arg;
  void *warm[3] = {tinymalloc(100), tinymalloc(MEDIUM), tinymalloc(LARGE)};
  (void)warm;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = sigabrt_handler;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGABRT, &sa, NULL);
  misuse(c);
  regress_say("misused call returned without aborting\n");
  _exit(3);
}

int main(int argc, char **argv)
{
  bool sigabrt = argc > 1 && strcmp(argv[1], "sigabrt") == 0;
  REQUIRE(argc > 1 && (sigabrt || strcmp(argv[1], "handler") == 0), "usage: %s handler|sigabrt", argv[0]);
  int failures = 0;
  for (size_t i = 0; i < CASE_COUNT; i++) {
    const misuse_case_t *c = &cases[i];
    if (sigabrt && strcmp(c->misuse, "double-free") != 0 && strcmp(c->misuse, "interior") != 0) continue;
    regress_result_t r;
    regress_run(sigabrt ? sigabrt_child : handler_child, (void *)c, 5, &r);
    char how[128];
    regress_outcome(&r, how, sizeof how);
    int lines = regress_count_lines(r.err, c->line);
    int all_reports = regress_count_lines(r.err, "tinymalloc: ");
    const char *why = NULL;
    if (r.hung)
      why = "hang: the allocation waits for a lock the report holds";
    else if (sigabrt && !(r.signaled && r.sig == SIGABRT))
      why = "did not die of SIGABRT";
    else if (!sigabrt && !(r.exited && r.code == 0))
      why = "the child failed";
    else if (lines != 1 || all_reports != 1)
      why = "the report line did not appear exactly once";
    else if (sigabrt && regress_count_lines(r.err, "SIGABRT handler: allocated all three") != 1)
      why = "the SIGABRT handler's allocations did not all work";
    printf("%s: %s (%s) -> %s; report lines %d\n", why ? "FAIL" : "PASS", c->name,
           sigabrt ? "default report + abort, allocating SIGABRT handler" : "allocating error handler", how, lines);
    if (why) {
      printf("    why: %s\n", why);
      regress_dump(&r);
      failures++;
    }
  }
  printf("%s: %d case(s) failed\n", failures ? "FAIL" : "PASS", failures);
  return failures ? 1 : 0;
}
