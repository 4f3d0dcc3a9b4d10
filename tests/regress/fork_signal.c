/* Issue 8, item 7b: fork() from a signal handler that interrupted a medium
 * allocation, in a single-threaded program, must not deadlock (glibc makes
 * fork async-signal-safe there: its tst-mallocfork2; this is written anew).
 *
 * The program (no threads) replaces random blocks of 16 KiB to 256 KiB (medium
 * blocks, which take the arena lock) in a loop, while a POSIX timer sends it
 * SIGUSR1; the handler forks a child that exits at once, reaps it, and re-arms
 * the one-shot timer for a random 0.1 to 1 ms later (so that a slow fork can
 * never keep the program inside its handler). Most signals land inside malloc
 * or free.
 *
 * The bug: tinymalloc's atfork prepare handler takes every arena lock, and
 * the interrupted allocation already holds one: the handler waits for it
 * forever.
 *
 * Runs REGRESS_DURATION seconds (default 4) in a child with an alarm.
 * Built with -DREGRESS_LIBC it is the glibc control. */
#include <stdbool.h>

#include "regress.h"

#define SLOTS 256

static volatile sig_atomic_t in_allocator, handler_forks, forks_in_allocator, handler_errors;
static timer_t timer;
static uint64_t timer_rng = 777;

static void arm_timer(void)
{
  long ns = 100 * 1000 + (long)(regress_rng(&timer_rng) % (900 * 1000));
  struct itimerspec its = {{0, 0}, {0, ns}};
  timer_settime(timer, 0, &its, NULL);
}

static void on_sigusr1(int sig)
{
  (void)sig;
  int saved = errno;
  if (in_allocator) forks_in_allocator++;
  pid_t pid = fork();
  if (pid == 0) _exit(0);
  if (pid < 0) {
    handler_errors++;
  } else {
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) handler_errors++;
    handler_forks++;
  }
  arm_timer();
  errno = saved;
}

static void scenario(void *arg)
{
  double seconds = *(double *)arg;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigusr1;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  REQUIRE(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction");
  struct sigevent sev;
  memset(&sev, 0, sizeof sev);
  sev.sigev_notify = SIGEV_SIGNAL; /* no helper thread: the process stays single-threaded */
  sev.sigev_signo = SIGUSR1;
  REQUIRE(timer_create(CLOCK_MONOTONIC, &sev, &timer) == 0, "timer_create: %s", strerror(errno));
  arm_timer();

  static void *slots[SLOTS];
  uint64_t rng = 12345;
  unsigned long iterations = 0;
  double end = regress_now() + seconds;
  while (regress_now() < end) {
    for (int k = 0; k < 64; k++) {
      unsigned i = (unsigned)(regress_rng(&rng) % SLOTS);
      size_t size = (16 << 10) + (size_t)(regress_rng(&rng) % (240 << 10));
      in_allocator = 1;
      R_FREE(slots[i]);
      slots[i] = R_MALLOC(size);
      in_allocator = 0;
      REQUIRE(slots[i] != NULL, "malloc(%zu)", size);
      ((char *)slots[i])[0] = 1;
      iterations++;
    }
  }
  struct itimerspec off = {{0, 0}, {0, 0}};
  timer_settime(timer, 0, &off, NULL);
  timer_delete(timer);
  for (int i = 0; i < SLOTS; i++)
    R_FREE(slots[i]);
  fprintf(stderr, "%lu allocations; %d forks from the signal handler, %d of them interrupting malloc or free\n",
          iterations, (int)handler_forks, (int)forks_in_allocator);
  REQUIRE(handler_errors == 0, "fork or its child failed in the handler (%d times)", (int)handler_errors);
  REQUIRE(forks_in_allocator > 0, "no signal interrupted the allocator: the scenario did not happen");
#if REGRESS_TINY
  REQUIRE(tinymalloc_check() == 0, "tinymalloc_check() found violations");
#endif
  fprintf(stderr, "ok\n");
}

int main(void)
{
  double seconds = regress_duration(4.0);
  printf("fork() from a SIGUSR1 handler interrupting medium malloc/free (single-threaded), %s, %.0f s\n",
         REGRESS_ALLOCATOR, seconds);
  regress_result_t r;
  regress_run(scenario, &seconds, seconds + 20, &r);
  char how[128];
  regress_outcome(&r, how, sizeof how);
  regress_dump(&r);
  if (r.exited && r.code == 0) {
    printf("PASS: %s\n", how);
    return 0;
  }
  printf("FAIL: %s%s\n", how,
         r.hung ? " (no progress: a lock the interrupted malloc or free holds is awaited in fork)" : "");
  return 1;
}
