/* Issue 8, item 8: a pending deferred cancellation must not swallow a misuse
 * report or the statistics output.
 *
 * A thread is released from a barrier (not a cancellation point) with a
 * cancellation request already pending, then:
 *   medium double free  frees a 40000-byte block a second time: the report
 *                       line must be written and the process must abort;
 *   small double free   the same with a 64-byte block;
 *   stats print         calls tinymalloc_stats_print(fd, 0) into a pipe, then
 *                       write(2)s a marker: the whole report must arrive and
 *                       the thread must be cancelled at the marker, not
 *                       before (glibc's tst-malloc-stats-cancellation, for
 *                       malloc_stats(); the peer suite runs that one on the
 *                       override library).
 *
 * The bug: write(2) is a cancellation point. The thread is cancelled inside
 * the report (for a medium block with the arena lock held): nothing is
 * printed, nothing aborts, and the next medium allocation of the process
 * hangs; the statistics printer is cancelled at its first write.
 *
 * One arena (TINYMALLOC_ARENAS=1: the program re-executes itself with it)
 * so that the main thread's allocation after the join meets the lock the
 * cancelled thread left behind. Every case runs in its own child with an
 * alarm. (The option cannot be set in a fork child: the current core's fork
 * handler gives the child a heap, and then the option is refused.) */
#include <pthread.h>
#include <stdbool.h>

#include "regress.h"

static pthread_barrier_t gate;
static size_t block_size;
static int stats_fd;

static void *double_free_thread(void *arg)
{
  (void)arg;
  char *p = tinymalloc(block_size);
  REQUIRE(p != NULL, "tinymalloc");
  tinyfree(p);
  pthread_barrier_wait(&gate); /* the cancellation is pending from here on */
  tinyfree(regress_launder(p));
  regress_say("double free returned: no abort\n");
  return NULL;
}

static void double_free_case(void *arg)
{
  block_size = *(size_t *)arg;
  REQUIRE(tinymalloc_option_get("arenas") == 1, "TINYMALLOC_ARENAS=1 was not applied");
  pthread_barrier_init(&gate, NULL, 2);
  pthread_t t;
  REQUIRE(pthread_create(&t, NULL, double_free_thread, NULL) == 0, "pthread_create");
  REQUIRE(pthread_cancel(t) == 0, "pthread_cancel");
  pthread_barrier_wait(&gate);
  void *rv = NULL;
  pthread_join(t, &rv);
  regress_say(rv == PTHREAD_CANCELED ? "the thread was cancelled inside the report: no line, no abort\n"
                                     : "the thread returned\n");
  regress_say("main: allocating a medium block after the join\n");
  void *q = tinymalloc(40000);
  tinyfree(q);
  regress_say("main: allocated\n");
  _exit(3);
}

static void *stats_thread(void *arg)
{
  (void)arg;
  pthread_barrier_wait(&gate);
  tinymalloc_stats_print(stats_fd, 0);
  ssize_t ignored = write(stats_fd, "MARKER-AFTER-STATS\n", 19); /* the cancellation point */
  (void)ignored;
  return NULL;
}

static void stats_case(void *arg)
{
  (void)arg;
  void *warm = tinymalloc(100);
  int fds[2];
  REQUIRE(pipe(fds) == 0, "pipe");
  stats_fd = fds[1];
  pthread_barrier_init(&gate, NULL, 2);
  pthread_t t;
  REQUIRE(pthread_create(&t, NULL, stats_thread, NULL) == 0, "pthread_create");
  REQUIRE(pthread_cancel(t) == 0, "pthread_cancel");
  pthread_barrier_wait(&gate);
  void *rv = NULL;
  pthread_join(t, &rv);
  close(fds[1]);
  static char text[65536];
  size_t len = 0;
  ssize_t n;
  while (len < sizeof text - 1 && (n = read(fds[0], text + len, sizeof text - 1 - len)) > 0)
    len += (size_t)n;
  text[len] = '\0';
  tinyfree(warm);
  fprintf(stderr, "the thread %s; %zu bytes of statistics arrived\n",
          rv == PTHREAD_CANCELED ? "was cancelled" : "was not cancelled", len);
  REQUIRE(strstr(text, "tinymalloc statistics") != NULL, "the report's first line is missing");
  REQUIRE(strstr(text, "    arena  segments") != NULL, "the report is cut short (no arena table)");
  REQUIRE(strstr(text, "MARKER-AFTER-STATS") == NULL, "the marker write after the report was not cancelled");
  REQUIRE(rv == PTHREAD_CANCELED, "the thread was never cancelled");
  fprintf(stderr, "ok\n");
}

int main(int argc, char **argv)
{
  (void)argc;
  const char *arenas = getenv("TINYMALLOC_ARENAS");
  if (arenas == NULL || strcmp(arenas, "1") != 0) {
    static char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    REQUIRE(n > 0, "readlink /proc/self/exe: %s", strerror(errno));
    self[n] = '\0';
    setenv("TINYMALLOC_ARENAS", "1", 1);
    execv(self, argv);
    REQUIRE(0, "exec %s: %s", self, strerror(errno));
  }
  static size_t medium = 40000, small = 64;
  int failures = 0;
  for (int c = 0; c < 3; c++) {
    const char *name = c == 0   ? "medium double free with a pending cancellation"
                       : c == 1 ? "small double free with a pending cancellation"
                                : "tinymalloc_stats_print with a pending cancellation";
    regress_result_t r;
    if (c < 2)
      regress_run(double_free_case, c == 0 ? &medium : &small, 5, &r);
    else
      regress_run(stats_case, NULL, 5, &r);
    char how[128];
    regress_outcome(&r, how, sizeof how);
    const char *why = NULL;
    if (c < 2) {
      int lines = regress_count_lines(r.err, "tinymalloc: double free of 0x");
      if (r.hung)
        why = "hang: the cancelled report left the arena lock held";
      else if (r.exited && r.code == 3)
        why = "the thread was cancelled silently: no report, no abort";
      else if (!(r.signaled && r.sig == SIGABRT))
        why = "did not abort";
      else if (lines != 1)
        why = "aborted without exactly one report line";
    } else if (!(r.exited && r.code == 0)) {
      why = r.hung ? "hang" : "the statistics did not all arrive before the cancellation";
    }
    printf("%s: %s -> %s\n", why ? "FAIL" : "PASS", name, how);
    if (why) {
      printf("    why: %s\n", why);
      regress_dump(&r);
      failures++;
    }
  }
  printf("%s: %d case(s) failed\n", failures ? "FAIL" : "PASS", failures);
  return failures ? 1 : 0;
}
