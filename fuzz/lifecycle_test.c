/* lifecycle_test: what a fuzz harness cannot drive, as separate cases, each
 * in a fresh process (re-executing this program) with a 10 s alarm (60 s for
 * fork-signal, whose timer counts CPU time, and fork-stdio, whose forks are
 * slow on a loaded machine):
 *   pre-init      every entry point called from .preinit_array, before any
 *                 constructor (the allocator's own included) has run
 *   init-race     threads started before the constructors make their first
 *                 calls at once, while the allocator initialises
 *   fork-signal   a single-threaded program forks from a signal handler that
 *                 interrupts medium allocations (glibc's tst-mallocfork2)
 *   fork-stdio    fork while one thread holds a FILE lock and reallocates and
 *                 another flushes every stream (glibc's tst-malloc-fork-deadlock)
 *   env-options   options read from the environment at initialisation: good
 *                 values taken, malformed and out-of-range ones ignored
 *   cancel        a thread with a pending cancellation double-frees a medium
 *                 block (report handler installed) and prints the statistics:
 *                 neither may be a cancellation point, nothing may hang
 * Usage: lifecycle_test [CASE...] (no argument: every case). Exit status 0
 * when every case passed. A case runs as `lifecycle_test --case NAME`.
 * Uses only the public API. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tinymalloc.h"

#define FAIL(...)                                                                                                      \
  do {                                                                                                                 \
    fprintf(stderr, "lifecycle_test: " __VA_ARGS__);                                                                   \
    fputc('\n', stderr);                                                                                               \
    _exit(1);                                                                                                          \
  } while (0)
#define REQUIRE(c, ...)                                                                                                \
  do {                                                                                                                 \
    if (!(c)) FAIL(__VA_ARGS__);                                                                                       \
  } while (0)

static const char *the_case = "";

/* Allocates, checks and frees one block of each strategy. */
static void use_each_strategy(const char *where)
{
  static const size_t sizes[] = {0, 24, 5000, 40000, (size_t)3 << 20};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    unsigned char *p = tinymalloc(sizes[i]);
    REQUIRE(p != NULL, "%s: malloc(%zu) returned NULL", where, sizes[i]);
    REQUIRE(tinymalloc_usable_size(p) >= sizes[i], "%s: usable size of %zu", where, sizes[i]);
    if (sizes[i]) p[0] = p[sizes[i] - 1] = 7;
    unsigned char *q = tinyrealloc(p, sizes[i] * 2 + 1);
    REQUIRE(q != NULL && (sizes[i] == 0 || q[0] == 7), "%s: realloc of %zu", where, sizes[i]);
    tinyfree(q);
  }
  unsigned char *z = tinycalloc(10, 1000);
  REQUIRE(z != NULL && z[0] == 0 && z[9999] == 0, "%s: calloc", where);
  tinyfree(z);
  void *a = tinymemalign(4096, 100);
  REQUIRE(a != NULL && (uintptr_t)a % 4096 == 0, "%s: memalign", where);
  tinyfree(a);
}

/* ---- pre-init and init-race: run from .preinit_array ---------------------- */

static int preinit_errors;
static size_t preinit_usable_null = 99;
static long preinit_junk = -5;

#define RACERS 4
static pthread_t racers[RACERS];
static atomic_int racers_go;
static atomic_int racers_failed;

static void *racer_main(void *arg)
{
  (void)arg;
  while (!atomic_load(&racers_go)) {
  }
  for (int n = 0; n < 200; n++) {
    size_t size = (size_t)(n * 37 % 3000) + (n % 17 == 0 ? 60000 : 0);
    unsigned char *p = tinymalloc(size);
    if (p == NULL || tinymalloc_usable_size(p) < size) atomic_store(&racers_failed, 1);
    if (p && size) p[size - 1] = 1;
    tinyfree(p);
  }
  return NULL;
}

static void early(int argc, char **argv, char **envp)
{
  (void)envp;
  if (argc != 3 || strcmp(argv[1], "--case") != 0) return;
  the_case = argv[2];
  alarm(10);
  if (strcmp(the_case, "pre-init") == 0) {
    errno = 0;
    tinyfree(NULL);
    preinit_errors += errno != 0;
    preinit_usable_null = tinymalloc_usable_size(NULL);
    preinit_junk = tinymalloc_option_get("junk");
    tinymalloc_counters_t c;
    tinymalloc_counters(&c);
    preinit_errors += c.live_blocks != 0;
    tinymalloc_set_error_handler(NULL, NULL);
    use_each_strategy("pre-init");
  } else if (strcmp(the_case, "init-race") == 0) {
    for (int i = 0; i < RACERS; i++)
      if (pthread_create(&racers[i], NULL, racer_main, NULL) != 0) preinit_errors++;
    atomic_store(&racers_go, 1);
    tinyfree(tinymalloc(100)); /* the main thread races them too */
  }
}

__attribute__((section(".preinit_array"), used)) static void (*const early_entry)(int, char **, char **) = early;

static void case_pre_init(void)
{
  REQUIRE(preinit_errors == 0, "pre-init: free(NULL) set errno or the counters were not zero");
  REQUIRE(preinit_usable_null == 0, "pre-init: usable_size(NULL) = %zu", preinit_usable_null);
  REQUIRE(preinit_junk == 0, "pre-init: option junk = %ld", preinit_junk);
  use_each_strategy("after pre-init");
  REQUIRE(tinymalloc_check() == 0, "pre-init: tinymalloc_check failed");
}

static void case_init_race(void)
{
  REQUIRE(preinit_errors == 0, "init-race: pthread_create failed before main");
  for (int i = 0; i < RACERS; i++)
    pthread_join(racers[i], NULL);
  REQUIRE(!atomic_load(&racers_failed), "init-race: an allocation during initialisation failed");
  tinymalloc_counters_t c;
  tinymalloc_counters(&c);
  REQUIRE(c.live_blocks == 0, "init-race: %zu blocks live after the racers freed everything", c.live_blocks);
  REQUIRE(tinymalloc_check() == 0, "init-race: tinymalloc_check failed");
}

/* ---- fork-signal --------------------------------------------------------------- */

static volatile sig_atomic_t forks, signals, fork_errno;
static pid_t children[8];

static void on_alarm_fork(int sig)
{
  (void)sig;
  signals++;
  if (forks >= 8) return;
  int saved = errno;
  pid_t pid = fork();
  if (pid == 0) _exit(0);
  if (pid > 0)
    children[forks++] = pid;
  else
    fork_errno = errno;
  errno = saved;
}

static double seconds_of(clockid_t clock)
{
  struct timespec t;
  clock_gettime(clock, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* The timer counts the process's CPU time, so how long it takes to fire
 * depends on how much CPU the machine gives this process, not on the wall
 * clock: the loop runs until 8 forks, or until the process has used 2 s of
 * CPU time (the timer fires every 50 us of it: a timer that has not fired by
 * then never will), or after 3 s of wall clock once at least one fork
 * happened. The hang alarm is raised to 60 s for this case, so that a loaded
 * machine slows it down without failing it; a fork that hangs still fails
 * (the alarm, then the parent's "hung"). */
static void case_fork_signal(void)
{
  alarm(60);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm_fork;
  sa.sa_flags = SA_RESTART;
  sigaction(SIGPROF, &sa, NULL);
  struct itimerval it = {{0, 50}, {0, 50}}; /* CPU time: fires inside the allocator */
  setitimer(ITIMER_PROF, &it, NULL);
  double wall0 = seconds_of(CLOCK_MONOTONIC), cpu0 = seconds_of(CLOCK_PROCESS_CPUTIME_ID);
  for (int n = 0; forks < 8; n++) {
    void *p = tinymalloc(40000 + (size_t)(n % 7) * 4096);
    REQUIRE(p != NULL, "fork-signal: malloc failed");
    tinyfree(p);
    if ((n & 255) == 0) {
      if (seconds_of(CLOCK_PROCESS_CPUTIME_ID) - cpu0 >= 2.0) break;
      if (forks > 0 && seconds_of(CLOCK_MONOTONIC) - wall0 >= 3.0) break;
    }
  }
  struct itimerval off = {{0, 0}, {0, 0}};
  setitimer(ITIMER_PROF, &off, NULL);
  for (int i = 0; i < forks; i++) {
    int status;
    while (waitpid(children[i], &status, 0) < 0 && errno == EINTR) {
    }
    REQUIRE(WIFEXITED(status) && WEXITSTATUS(status) == 0, "fork-signal: child failed");
  }
  REQUIRE(signals > 0, "fork-signal: the timer never fired in 2 s of CPU time");
  REQUIRE(forks > 0, "fork-signal: %d signals, fork failed in every handler (errno %d)", (int)signals, (int)fork_errno);
  use_each_strategy("fork-signal parent");
}

/* ---- fork-stdio ------------------------------------------------------------------ */

static atomic_int stop;
static FILE *stream;

static void *locked_realloc(void *arg)
{
  (void)arg;
  void *line = NULL;
  for (unsigned n = 0; !atomic_load(&stop); n++) {
    flockfile(stream);
    void *q = tinyrealloc(line, 100 + (n % 64) * 1024 + (n % 64 == 63 ? 40000 : 0));
    if (q) line = q;
    funlockfile(stream);
  }
  tinyfree(line);
  return NULL;
}

static void *flusher(void *arg)
{
  (void)arg;
  while (!atomic_load(&stop))
    fflush(NULL);
  return NULL;
}

/* Up to 300 forks, at least 20, for at most 3 s of wall clock after the
 * 20th (a loaded machine makes each fork slow, not wrong); the hang alarm
 * is 60 s, so a fork that deadlocks still fails the case. */
static void case_fork_stdio(void)
{
  alarm(60);
  struct timespec t0, now;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  stream = fopen("/dev/null", "w");
  REQUIRE(stream != NULL, "fork-stdio: fopen failed");
  pthread_t t[2];
  pthread_create(&t[0], NULL, locked_realloc, NULL);
  pthread_create(&t[1], NULL, flusher, NULL);
  for (int k = 0; k < 300; k++) {
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (k >= 20 && now.tv_sec - t0.tv_sec >= 3) break;
    pid_t pid = fork();
    REQUIRE(pid >= 0, "fork-stdio: fork failed");
    if (pid == 0) {
      use_each_strategy("fork-stdio child");
      fprintf(stream, "child\n");
      _exit(0);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    REQUIRE(WIFEXITED(status) && WEXITSTATUS(status) == 0, "fork-stdio: child failed");
  }
  atomic_store(&stop, 1);
  pthread_join(t[0], NULL);
  pthread_join(t[1], NULL);
}

/* ---- cancel ---------------------------------------------------------------------- */

static atomic_int reports, reached, go;

static void count_report(tinymalloc_error_kind_t kind, const char *op, void *ptr, const char *message, void *arg)
{
  (void)kind, (void)op, (void)ptr, (void)message, (void)arg;
  atomic_fetch_add(&reports, 1);
}

static void *cancelled(void *arg)
{
  int *fds = arg;
  while (!atomic_load(&go)) {
  }
  tinymalloc_stats_print(fds[1], 0);
  atomic_store(&reached, 1);
  pthread_testcancel();
  return NULL;
}

static void *cancelled_double_free(void *arg)
{
  while (!atomic_load(&go)) {
  }
  tinyfree(arg); /* a double free: reported (handler), not a cancellation point */
  atomic_store(&reached, 1);
  pthread_testcancel();
  return NULL;
}

static void case_cancel(void)
{
  tinymalloc_set_error_handler(count_report, NULL);
  void *medium = tinymalloc(40000);
  tinyfree(medium);
  pthread_t t;
  pthread_create(&t, NULL, cancelled_double_free, medium);
  pthread_cancel(t);
  atomic_store(&go, 1);
  void *ret;
  pthread_join(t, &ret);
  REQUIRE(atomic_load(&reached), "cancel: the thread was cancelled inside the double-free report");
  REQUIRE(atomic_load(&reports) == 1, "cancel: %d reports of the double free", atomic_load(&reports));
  use_each_strategy("cancel, after the report"); /* hangs if a lock was left held */

  int fds[2];
  REQUIRE(pipe(fds) == 0, "cancel: pipe failed");
  fcntl(fds[0], F_SETFL, O_NONBLOCK);
  fcntl(fds[1], F_SETFL, O_NONBLOCK); /* a full pipe must not block the report */
  atomic_store(&go, 0);
  atomic_store(&reached, 0);
  pthread_create(&t, NULL, cancelled, fds);
  pthread_cancel(t);
  atomic_store(&go, 1);
  pthread_join(t, &ret);
  REQUIRE(atomic_load(&reached), "cancel: the thread was cancelled inside tinymalloc_stats_print");
  char buf[256];
  REQUIRE(read(fds[0], buf, sizeof buf) > 0, "cancel: tinymalloc_stats_print printed nothing");
  use_each_strategy("cancel, after the statistics");
}

/* ---- env-options ------------------------------------------------------------------ */

/* The environment this case runs with (set by the driver). */
static char *const env_options[] = {"TINYMALLOC_JUNK=on",                      /* a word */
                                    "TINYMALLOC_ARENAS=3",                     /* a number */
                                    "TINYMALLOC_PURGE_DELAY_MS=12x",           /* malformed: the default stays */
                                    "TINYMALLOC_QUARANTINE_COUNT=99999999999", /* too large: the default stays */
                                    "TINYMALLOC_ZERO_ON_FREE=2",               /* out of range: the default stays */
                                    "TINYMALLOC_NO_SUCH_OPTION=1",             /* unknown: ignored */
                                    "NOT_TINYMALLOC_SHOW_ERRORS=0",            /* not ours */
                                    NULL};

static void case_env_options(void)
{
  REQUIRE(tinymalloc_option_get("junk") == 1, "env-options: junk = %ld, TINYMALLOC_JUNK=on",
          tinymalloc_option_get("junk"));
  REQUIRE(tinymalloc_option_get("arenas") == 3, "env-options: arenas = %ld, TINYMALLOC_ARENAS=3",
          tinymalloc_option_get("arenas"));
  REQUIRE(tinymalloc_option_get("purge_delay_ms") == 30, "env-options: purge_delay_ms = %ld after a malformed value",
          tinymalloc_option_get("purge_delay_ms"));
  REQUIRE(tinymalloc_option_get("quarantine_count") == 1024,
          "env-options: quarantine_count = %ld after a value too large", tinymalloc_option_get("quarantine_count"));
  REQUIRE(tinymalloc_option_get("zero_on_free") == 0, "env-options: zero_on_free = %ld after a value out of range",
          tinymalloc_option_get("zero_on_free"));
  REQUIRE(tinymalloc_option_get("show_errors") == 1, "env-options: show_errors = %ld (another variable's value)",
          tinymalloc_option_get("show_errors"));
  unsigned char *p = tinymalloc(100);
  REQUIRE(p != NULL && p[0] == 0xa5 && p[99] == 0xa5, "env-options: junk is on but a new block is not filled");
  tinyfree(p);
}

/* ---- driver ---------------------------------------------------------------------- */

/* ThreadSanitizer cannot run the fork cases: its fork interceptor allocates
 * (a "signal-unsafe call" report when fork runs in a signal handler) and a
 * fork while other threads run can hang inside its runtime. They run in
 * every other build. */
#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif
#ifndef UNDER_TSAN
#define UNDER_TSAN 0
#endif

static const struct {
  const char *name;
  void (*run)(void);
} cases[] = {{"pre-init", case_pre_init},     {"init-race", case_init_race},     {"fork-signal", case_fork_signal},
             {"fork-stdio", case_fork_stdio}, {"env-options", case_env_options}, {"cancel", case_cancel}};
#define NCASES (sizeof cases / sizeof cases[0])

int main(int argc, char **argv)
{
  if (the_case[0] != '\0') { /* a child: run one case */
    for (size_t i = 0; i < NCASES; i++) {
      if (strcmp(cases[i].name, the_case) == 0) {
        cases[i].run();
        return 0;
      }
    }
    FAIL("unknown case %s", the_case);
  }
  int failed = 0;
  for (size_t i = 0; i < NCASES; i++) {
    bool wanted = argc < 2;
    for (int a = 1; a < argc; a++)
      wanted |= strcmp(argv[a], cases[i].name) == 0;
    if (!wanted) continue;
    if (UNDER_TSAN && strncmp(cases[i].name, "fork-", 5) == 0) {
      printf("lifecycle_test: %-12s skipped under ThreadSanitizer (its fork interceptor)\n", cases[i].name);
      continue;
    }
    /* Our own path, not /proc/self/exe: under Valgrind that is the tool. */
    const char *self = strchr(argv[0], '/') ? argv[0] : "/proc/self/exe";
    pid_t pid = fork();
    if (pid == 0) {
      if (cases[i].run == case_env_options)
        execle(self, argv[0], "--case", cases[i].name, (char *)NULL, env_options);
      else
        execl(self, argv[0], "--case", cases[i].name, (char *)NULL);
      _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (!ok) failed++;
    if (ok)
      printf("lifecycle_test: %-12s ok\n", cases[i].name);
    else if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
      printf("lifecycle_test: %-12s FAILED: hung (killed by its alarm: 10 s, fork-signal and fork-stdio 60 s)\n",
             cases[i].name);
    else if (WIFSIGNALED(status))
      printf("lifecycle_test: %-12s FAILED: signal %d\n", cases[i].name, WTERMSIG(status));
    else
      printf("lifecycle_test: %-12s FAILED: exit %d\n", cases[i].name, WEXITSTATUS(status));
    fflush(stdout);
  }
  return failed ? 1 : 0;
}
