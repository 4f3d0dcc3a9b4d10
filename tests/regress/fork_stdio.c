/* Issue 8, item 7a: fork() while other threads use stdio must not deadlock.
 * A plain program (malloc comes from libc's stdio itself), run with
 * LD_PRELOAD=libtinymalloc-override.so, and without it as the glibc control.
 *
 * Eight threads read a file whose one line is 50000 bytes long with
 * getline() (each on its own FILE, so getline's realloc of a medium buffer
 * runs under that FILE's lock), one thread calls fflush(NULL) in a loop (it
 * takes the stdio list lock, then each FILE's lock), and four threads fork
 * and reap a child that exits at once. The scenario is the one of glibc's
 * tst-malloc-fork-deadlock, written anew.
 *
 * The bug: tinymalloc's pthread_atfork prepare handler takes every arena
 * lock, then glibc's fork() waits for the stdio list lock, held by the
 * fflush(NULL) thread, which waits for a FILE lock whose owner is in
 * getline -> realloc waiting for an arena lock: a lock-order cycle.
 *
 * Runs REGRESS_DURATION seconds (default 5) in a child with an alarm: a hang
 * is the failure. */
#include <pthread.h>

#include "regress.h"

#define READERS  8
#define FORKERS  4
#define LINE_LEN 50000

static char path[64];
static _Atomic int stop;
static _Atomic unsigned long forks, lines, flushes;

static void *forker(void *arg)
{
  (void)arg;
  while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
    pid_t pid = fork();
    if (pid < 0) {
      regress_say("fork failed\n");
      abort();
    }
    if (pid == 0) _exit(17);
    int status;
    while (waitpid(pid, &status, 0) < 0) {
      if (errno != EINTR) {
        regress_say("waitpid failed\n");
        abort();
      }
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 17) {
      regress_say("fork child did not exit with 17\n");
      abort();
    }
    atomic_fetch_add_explicit(&forks, 1, memory_order_relaxed);
  }
  return NULL;
}

static void *reader(void *arg)
{
  (void)arg;
  FILE *f = fopen(path, "r");
  REQUIRE(f != NULL, "fopen %s: %s", path, strerror(errno));
  while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
    rewind(f);
    char *line = NULL;
    size_t allocated = 0;
    ssize_t n = getline(&line, &allocated, f);
    REQUIRE(n == LINE_LEN + 1, "getline returned %zd", n);
    free(line);
    atomic_fetch_add_explicit(&lines, 1, memory_order_relaxed);
  }
  fclose(f);
  return NULL;
}

static void *flusher(void *arg)
{
  (void)arg;
  while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
    REQUIRE(fflush(NULL) == 0, "fflush(NULL): %s", strerror(errno));
    atomic_fetch_add_explicit(&flushes, 1, memory_order_relaxed);
  }
  return NULL;
}

static void scenario(void *arg)
{
  double seconds = *(double *)arg;
  pthread_t f[FORKERS], r[READERS], fl;
  for (int i = 0; i < READERS; i++)
    REQUIRE(pthread_create(&r[i], NULL, reader, NULL) == 0, "pthread_create");
  REQUIRE(pthread_create(&fl, NULL, flusher, NULL) == 0, "pthread_create");
  for (int i = 0; i < FORKERS; i++)
    REQUIRE(pthread_create(&f[i], NULL, forker, NULL) == 0, "pthread_create");
  struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
  nanosleep(&ts, NULL);
  atomic_store(&stop, 1);
  pthread_join(fl, NULL);
  for (int i = 0; i < READERS; i++)
    pthread_join(r[i], NULL);
  for (int i = 0; i < FORKERS; i++)
    pthread_join(f[i], NULL);
  fprintf(stderr, "forks %lu, lines read %lu, fflush(NULL) calls %lu\n", (unsigned long)forks, (unsigned long)lines,
          (unsigned long)flushes);
  REQUIRE(forks > 0 && lines > 0 && flushes > 0, "a thread made no progress");
  fprintf(stderr, "ok\n");
}

int main(void)
{
  const char *preload = getenv("LD_PRELOAD");
  double seconds = regress_duration(5.0);
  printf("fork while threads use stdio (getline + realloc, fflush(NULL)), %s, %.0f s\n",
         preload && *preload ? preload : "glibc malloc", seconds);
  snprintf(path, sizeof path, "/tmp/regress-fork-stdio.XXXXXX");
  int fd = mkstemp(path);
  REQUIRE(fd >= 0, "mkstemp: %s", strerror(errno));
  static char text[LINE_LEN + 1];
  memset(text, 'x', LINE_LEN);
  text[LINE_LEN] = '\n';
  REQUIRE(write(fd, text, sizeof text) == (ssize_t)sizeof text, "write %s", path);
  close(fd);
  regress_result_t r;
  regress_run(scenario, &seconds, seconds + 30, &r);
  unlink(path);
  char how[128];
  regress_outcome(&r, how, sizeof how);
  regress_dump(&r);
  if (r.exited && r.code == 0) {
    printf("PASS: %s\n", how);
    return 0;
  }
  printf("FAIL: %s%s\n", how, r.hung ? " (deadlock between fork's atfork handlers, stdio locks and malloc)" : "");
  return 1;
}
