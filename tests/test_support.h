/* Helpers shared by the core tests: death tests that capture the child's
 * stderr, so the misuse message itself is asserted, and a pattern filler. */
#ifndef TM_TEST_SUPPORT_H
#define TM_TEST_SUPPORT_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Runs fn(arg) in a child whose stderr goes to a pipe. Returns the signal
 * that killed the child (0 if it exited) and copies its stderr into out. */
static inline int run_captured(void (*fn)(void *), void *arg, char *out, size_t out_size)
{
  int fds[2];
  if (pipe(fds) != 0) return -1;
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    dup2(fds[1], STDERR_FILENO);
    fn(arg);
    _exit(0);
  }
  close(fds[1]);
  size_t len = 0;
  ssize_t n;
  while (len + 1 < out_size && (n = read(fds[0], out + len, out_size - 1 - len)) > 0)
    len += (size_t)n;
  out[len] = '\0';
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFSIGNALED(status) ? WTERMSIG(status) : 0;
}

static inline void fill_pattern(void *p, size_t n, unsigned seed)
{
  unsigned char *b = p;
  for (size_t i = 0; i < n; i++)
    b[i] = (unsigned char)(seed * 131u + i * 7u + (i >> 8));
}

static inline int check_pattern(const void *p, size_t n, unsigned seed)
{
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++)
    if (b[i] != (unsigned char)(seed * 131u + i * 7u + (i >> 8))) return 0;
  return 1;
}

#endif
