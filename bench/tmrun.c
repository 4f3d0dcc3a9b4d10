/* tmrun: runs one command and reports its wall time and peak resident size.
 *
 *   tmrun RESULT_FILE TIMEOUT_S command args...
 *
 * Forks, puts the child in its own process group, sets LD_PRELOAD in the
 * child only (from TMRUN_PRELOAD, when set and not empty), execs the command
 * and waits for it with wait4(). ru_maxrss of a child is the larger of its own
 * peak and that of the descendants it waited for (gcc's cc1 and as), and it
 * includes the peak of the process image it replaced with exec: this program
 * is small (and linked statically when it can be), so that floor is well under
 * a megabyte rather than the runner's interpreter. Writes one line to
 * RESULT_FILE:
 *   exit=N signal=N timeout=0|1 wall=S user=S sys=S maxrss_kb=N minflt=N majflt=N
 * After TIMEOUT_S seconds the child's process group is killed (timeout=1).
 * tmrun exits 0 when it could run the command, whatever the command did. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t timed_out;
static volatile pid_t child;

static void on_alarm(int sig) {
  (void)sig;
  timed_out = 1;
  if (child > 0)
    kill(-child, SIGKILL);
}

static double seconds(struct timeval tv) { return (double)tv.tv_sec + (double)tv.tv_usec / 1e6; }

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: tmrun RESULT_FILE TIMEOUT_S command args...\n");
    return 2;
  }
  FILE *out = fopen(argv[1], "w");
  if (out == NULL) {
    perror(argv[1]);
    return 2;
  }
  unsigned timeout = (unsigned)strtoul(argv[2], NULL, 10);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  pid_t pid = fork();
  if (pid < 0) {
    perror("fork");
    return 2;
  }
  if (pid == 0) {
    setpgid(0, 0);
    const char *pre = getenv("TMRUN_PRELOAD");
    if (pre != NULL && pre[0] != '\0')
      setenv("LD_PRELOAD", pre, 1);
    unsetenv("TMRUN_PRELOAD");
    execvp(argv[3], argv + 3);
    perror(argv[3]);
    _exit(127);
  }
  child = pid;
  setpgid(pid, pid); /* also here, so that the kill cannot miss it */
  struct sigaction sa = {0};
  sa.sa_handler = on_alarm;
  sigaction(SIGALRM, &sa, NULL);
  if (timeout > 0)
    alarm(timeout);
  int status = 0;
  struct rusage ru;
  while (wait4(pid, &status, 0, &ru) < 0) {
    if (errno != EINTR) {
      perror("wait4");
      return 2;
    }
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  alarm(0);
  double wall = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  fprintf(out, "exit=%d signal=%d timeout=%d wall=%.6f user=%.6f sys=%.6f maxrss_kb=%ld minflt=%ld majflt=%ld\n",
          WIFEXITED(status) ? WEXITSTATUS(status) : -1, WIFSIGNALED(status) ? WTERMSIG(status) : 0, (int)timed_out,
          wall, seconds(ru.ru_utime), seconds(ru.ru_stime), ru.ru_maxrss, ru.ru_minflt, ru.ru_majflt);
  fclose(out);
  return 0;
}
