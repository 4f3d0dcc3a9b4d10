/* Shared helpers of the regression tests (tests/regress): plain C, no Check.
 *
 * - REQUIRE(cond, fmt, ...): prints the failed claim and exits 1.
 * - The allocation API under test: the tiny* functions (linked with
 *   libtinymalloc.a), or, built with -DREGRESS_LIBC, the standard names (so
 *   the same scenario runs on glibc's malloc as a control, and on the
 *   override library under LD_PRELOAD). REGRESS_TINY says which.
 * - regress_run(): runs a scenario in a forked child (its own process group,
 *   stderr captured, alarm() armed) and tells how it ended: exit status,
 *   signal, or HANG when the alarm or the parent's deadline killed it. A hang
 *   or an abort is the failure of most of these tests, so the parent must
 *   survive it and say which.
 * - regress_scale(): REGRESS_TIME_SCALE from the environment (the CMake file
 *   sets it for the sanitizer and memcheck builds); every alarm and deadline
 *   is multiplied by it, run durations are not.
 * - A small xorshift generator, a spin barrier and a monotonic clock. */
#ifndef REGRESS_H
#define REGRESS_H

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifdef REGRESS_LIBC
#include <malloc.h>
#define REGRESS_TINY      0
#define R_MALLOC(n)       malloc(n)
#define R_FREE(p)         free(p)
#define R_CALLOC(n, s)    calloc(n, s)
#define R_REALLOC(p, n)   realloc(p, n)
#define R_MEMALIGN(a, n)  memalign(a, n)
#define R_ALIGNED(a, n)   aligned_alloc(a, n)
#define R_POSIX(o, a, n)  posix_memalign(o, a, n)
#define R_USABLE(p)       malloc_usable_size(p)
#define REGRESS_ALLOCATOR "malloc (glibc, or whatever LD_PRELOAD puts there)"
#else
#include "tinymalloc.h"
#define REGRESS_TINY      1
#define R_MALLOC(n)       tinymalloc(n)
#define R_FREE(p)         tinyfree(p)
#define R_CALLOC(n, s)    tinycalloc(n, s)
#define R_REALLOC(p, n)   tinyrealloc(p, n)
#define R_MEMALIGN(a, n)  tinymemalign(a, n)
#define R_ALIGNED(a, n)   tinyaligned_alloc(a, n)
#define R_POSIX(o, a, n)  tinyposix_memalign(o, a, n)
#define R_USABLE(p)       tinymalloc_usable_size(p)
#define REGRESS_ALLOCATOR "tinymalloc (libtinymalloc.a)"
#endif

#define REQUIRE(cond, ...)                                                                                             \
  do {                                                                                                                 \
    if (!(cond)) {                                                                                                     \
      fflush(stdout);                                                                                                  \
      fprintf(stderr, "%s:%d: FAILED: %s: ", __FILE__, __LINE__, #cond);                                               \
      fprintf(stderr, __VA_ARGS__);                                                                                    \
      fputc('\n', stderr);                                                                                             \
      fflush(stderr);                                                                                                  \
      exit(1);                                                                                                         \
    }                                                                                                                  \
  } while (0)

/* Keeps the compiler from folding a deliberate allocation or misuse away. */
static inline void *regress_launder(void *p)
{
  void *volatile hidden = p;
  return hidden;
}

static inline double regress_now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline double regress_scale(void)
{
  const char *s = getenv("REGRESS_TIME_SCALE");
  double v = s ? atof(s) : 1.0;
  return v >= 1.0 ? v : 1.0;
}

/* Seconds a time-bounded run lasts: the default, or REGRESS_DURATION. */
static inline double regress_duration(double default_seconds)
{
  const char *s = getenv("REGRESS_DURATION");
  double v = s ? atof(s) : 0.0;
  return v > 0.0 ? v : default_seconds;
}

static inline uint64_t regress_rng(uint64_t *s)
{
  uint64_t x = *s;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return *s = x;
}

/* A writer to stderr that neither allocates nor uses stdio (usable from a
 * signal handler, an error handler or a child that must not touch locks). */
static inline void regress_say(const char *s)
{
  size_t n = strlen(s);
  while (n > 0) {
    ssize_t w = write(STDERR_FILENO, s, n);
    if (w <= 0) {
      if (w < 0 && errno == EINTR) continue;
      return;
    }
    s += w;
    n -= (size_t)w;
  }
}

/* ---- Spin barrier (threads released within a few hundred nanoseconds) ---- */

typedef struct {
  _Atomic unsigned arrived;
  _Atomic unsigned generation;
  unsigned parties;
} regress_spin_barrier_t;

static inline void regress_spin_barrier_init(regress_spin_barrier_t *b, unsigned parties)
{
  atomic_store(&b->arrived, 0);
  atomic_store(&b->generation, 0);
  b->parties = parties;
}

/* Returns false when *stop became true while waiting. */
static inline int regress_spin_barrier_wait(regress_spin_barrier_t *b, _Atomic int *stop)
{
  unsigned gen = atomic_load_explicit(&b->generation, memory_order_acquire);
  if (atomic_fetch_add_explicit(&b->arrived, 1, memory_order_acq_rel) + 1 == b->parties) {
    atomic_store_explicit(&b->arrived, 0, memory_order_relaxed);
    atomic_fetch_add_explicit(&b->generation, 1, memory_order_acq_rel);
    return 1;
  }
  unsigned spins = 0;
  while (atomic_load_explicit(&b->generation, memory_order_acquire) == gen) {
    if (stop && atomic_load_explicit(stop, memory_order_relaxed)) return 0;
    if (++spins > 2000) sched_yield(); /* two cores shared with others: do not starve the peer */
  }
  return 1;
}

/* ---- Running a scenario in a child ---------------------------------------- */

typedef struct {
  int exited, code;  /* exit status, when it exited */
  int signaled, sig; /* signal, when one ended it */
  int hung;          /* the parent's deadline passed: killed with SIGKILL */
  double seconds;    /* wall time of the child */
  char err[32768];   /* its stderr (truncated) */
  size_t err_len;
} regress_result_t;

/* Runs fn(arg) in a forked child with alarm(timeout) (scaled). The child's
 * stderr is captured; stdout is shared. The child's process group is killed
 * when it is done, so grandchildren it left behind do not outlive the test.
 * The parent gives up `grace` seconds after the alarm should have fired. */
static inline void regress_run(void (*fn)(void *), void *arg, double timeout, regress_result_t *r)
{
  memset(r, 0, sizeof *r);
  double scaled = timeout * regress_scale();
  int fds[2];
  REQUIRE(pipe(fds) == 0, "pipe: %s", strerror(errno));
  fflush(NULL);
  double start = regress_now();
  pid_t pid = fork();
  REQUIRE(pid >= 0, "fork: %s", strerror(errno));
  if (pid == 0) {
    setpgid(0, 0);
    close(fds[0]);
    dup2(fds[1], STDERR_FILENO);
    close(fds[1]);
    signal(SIGALRM, SIG_DFL);
    alarm((unsigned)(scaled + 0.999));
    fn(arg);
    fflush(NULL);
    _exit(0);
  }
  setpgid(pid, pid); /* either side may win; both ask for the same */
  close(fds[1]);
  fcntl(fds[0], F_SETFL, O_NONBLOCK);
  double deadline = start + scaled + 10.0;
  int status = 0, reaped = 0, eof = 0;
  double reaped_at = 0;
  for (;;) {
    if (!reaped) {
      pid_t w = waitpid(pid, &status, WNOHANG);
      if (w == pid) {
        reaped = 1;
        reaped_at = regress_now();
        r->seconds = reaped_at - start;
      }
    }
    /* Grandchildren may hold the pipe open: read for at most 1 s more. */
    if (reaped && (eof || regress_now() - reaped_at > 1.0)) break;
    if (!reaped && regress_now() > deadline) {
      kill(-pid, SIGKILL);
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      r->hung = 1;
      reaped = 1;
      reaped_at = regress_now();
      r->seconds = reaped_at - start;
      continue;
    }
    struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
    if (!eof && poll(&pfd, 1, 20) > 0) {
      char buf[4096];
      ssize_t n = read(fds[0], buf, sizeof buf);
      if (n == 0) eof = 1;
      if (n > 0) {
        size_t room = sizeof r->err - 1 - r->err_len;
        size_t take = (size_t)n < room ? (size_t)n : room;
        memcpy(r->err + r->err_len, buf, take);
        r->err_len += take;
      }
    } else if (eof) {
      struct timespec ts = {0, 20 * 1000 * 1000};
      nanosleep(&ts, NULL);
    }
  }
  close(fds[0]);
  kill(-pid, SIGKILL); /* leftovers of the child's process group, if any */
  r->err[r->err_len] = '\0';
  if (!r->hung) {
    if (WIFEXITED(status)) {
      r->exited = 1;
      r->code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
      r->signaled = 1;
      r->sig = WTERMSIG(status);
      if (r->sig == SIGALRM) r->hung = 1; /* our alarm: the child did not finish */
    }
  }
}

/* "exited 0", "killed by SIGABRT", "HANG (...)". */
static inline const char *regress_outcome(const regress_result_t *r, char *buf, size_t size)
{
  if (r->hung && r->signaled)
    snprintf(buf, size, "HANG: killed by its alarm (SIGALRM) after %.1f s", r->seconds);
  else if (r->hung)
    snprintf(buf, size, "HANG: killed with SIGKILL after %.1f s", r->seconds);
  else if (r->signaled)
    snprintf(buf, size, "killed by signal %d (%s) after %.1f s", r->sig, strsignal(r->sig), r->seconds);
  else
    snprintf(buf, size, "exited with status %d after %.1f s", r->code, r->seconds);
  return buf;
}

/* Prints the child's stderr, indented, for the log of a failing test. */
static inline void regress_dump(const regress_result_t *r)
{
  if (r->err_len == 0) {
    printf("    (child wrote nothing on stderr)\n");
    return;
  }
  const char *s = r->err;
  int lines = 0;
  while (*s && lines < 40) {
    const char *e = strchr(s, '\n');
    int len = e ? (int)(e - s) : (int)strlen(s);
    printf("    | %.*s\n", len, s);
    lines++;
    s += len + (e ? 1 : 0);
  }
  if (*s) printf("    | ...\n");
}

/* Number of lines of `text` that contain `needle`. */
static inline int regress_count_lines(const char *text, const char *needle)
{
  int count = 0;
  const char *s = text;
  while (*s) {
    const char *e = strchr(s, '\n');
    size_t len = e ? (size_t)(e - s) : strlen(s);
    for (size_t i = 0; i + strlen(needle) <= len; i++) {
      if (memcmp(s + i, needle, strlen(needle)) == 0) {
        count++;
        break;
      }
    }
    s += len + (e ? 1 : 0);
  }
  return count;
}

#endif
