/* tests/detect/harness.h: the harness of the detection-mode tests (issue 12).
 * Each test program registers cases (a function, a size, a count) and what
 * must come of each; run without arguments it runs every case in a child of
 * its own (fork, then exec of itself with `--case NAME`, so that the options
 * are read from the environment at start, exactly as a user's program reads
 * them) and judges the child's end, its stderr and its stdout:
 *
 *   EXPECT_REPORT  killed by SIGABRT, exactly one line on stderr starting
 *                  with "tinymalloc: ", equal to the case's pattern (a POSIX
 *                  extended regex of the whole line) where @BLOCK@ stands for
 *                  the address the child printed ("block 0x...") before the bug;
 *   EXPECT_FAULT   killed by SIGSEGV after it printed "touching" (the fault
 *                  is the access itself) and before it printed "survived";
 *   EXPECT_OUTPUT  exit status 0, no "tinymalloc: " line, stdout has the text.
 *
 * `--control` runs every case with its control environment (the mode or the
 * option off) and requires the bug to pass unnoticed: exit status 0, no
 * "tinymalloc: " line, "survived" and the case's control text on stdout. So
 * each test is shown to depend on the mode: a control run that catches the
 * bug fails, and `--broken` (the positive expectations in the control
 * environment) must fail on every case.
 *
 * Options: --preload LIB (the children run with LD_PRELOAD=LIB), --only TEXT
 * (cases whose name contains TEXT), --list, --survey (what another allocator
 * makes of each bug: CAUGHT when the child died or failed, else MISSED). Every TINYMALLOC_ variable and
 * LD_PRELOAD of the caller's environment is dropped: a case sees only its own.
 * Plain C, no test framework; the parent never uses tinymalloc unless the
 * program is linked with it. */
#ifndef TM_DETECT_HARNESS_H
#define TM_DETECT_HARNESS_H

#include <errno.h>
#include <poll.h>
#include <regex.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef enum { EXPECT_REPORT, EXPECT_FAULT, EXPECT_OUTPUT } expect_t;

typedef struct {
  char name[80];
  void (*run)(size_t n, size_t k);
  size_t n, k;
  const char *env;         /* positive run: space-separated VAR=VALUE */
  const char *control_env; /* control run */
  expect_t expect;
  char pattern[320];       /* EXPECT_REPORT: the whole report line */
  int signal;              /* EXPECT_FAULT: the signal (SIGSEGV) */
  const char *out;         /* EXPECT_OUTPUT: stdout must contain it */
  const char *control_out; /* control run: stdout must contain it too (NULL: only "survived") */
} tcase_t;

#define TM_MAX_CASES 256
static tcase_t tm_cases[TM_MAX_CASES];
static int tm_case_count;

/* Registers a case; the caller fills in the expectation. `fmt` names it. */
__attribute__((format(printf, 4, 5))) static inline tcase_t *add_case(void (*run)(size_t, size_t), size_t n, size_t k,
                                                                      const char *fmt, ...)
{
  if (tm_case_count == TM_MAX_CASES) {
    fprintf(stderr, "harness: too many cases\n");
    exit(2);
  }
  tcase_t *c = &tm_cases[tm_case_count++];
  memset(c, 0, sizeof *c);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->name, sizeof c->name, fmt, ap);
  va_end(ap);
  c->run = run;
  c->n = n;
  c->k = k;
  c->env = "TINYMALLOC_DETECT=1";
  c->control_env = "TINYMALLOC_DETECT=0";
  return c;
}

__attribute__((format(printf, 2, 3))) static inline void expect_report(tcase_t *c, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->pattern, sizeof c->pattern, fmt, ap);
  va_end(ap);
  c->expect = EXPECT_REPORT;
}

static inline void expect_fault(tcase_t *c)
{
  c->expect = EXPECT_FAULT;
  c->signal = SIGSEGV;
}

static inline void expect_output(tcase_t *c, const char *out, const char *control_out)
{
  c->expect = EXPECT_OUTPUT;
  c->out = out;
  c->control_out = control_out;
}

/* ---- Helpers for the cases (they run in the child) ----------------------- */

/* Printed at once: the child may die on the next line. */
__attribute__((format(printf, 1, 2))) static inline void say(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  fflush(stdout);
}

/* The address the report must name. */
static inline void say_block(const void *p) { say("block %p\n", p); }

/* Hides a pointer from the compiler: no use-after-free warning, no store
 * elimination before free, no assumption about the object's size. */
static inline void *launder(void *p)
{
  void *volatile v = p;
  return v;
}

/* Changes byte i of p (to a value it certainly does not hold). */
static inline void flip(void *p, size_t i)
{
  volatile unsigned char *b = (volatile unsigned char *)launder(p);
  b[i] = (unsigned char)(b[i] ^ 0xff);
}

static inline unsigned char peek(const void *p, size_t i)
{
  const volatile unsigned char *b = (const volatile unsigned char *)launder((void *)(uintptr_t)p);
  return b[i];
}

/* ---- The parent ---------------------------------------------------------- */

static inline char *tm_strdup(const char *s)
{
  char *copy = malloc(strlen(s) + 1);
  if (copy == NULL) exit(2);
  return strcpy(copy, s);
}

/* Child side of a run: a clean environment, then exec of this program. */
static inline void tm_exec_case(const char *self, const char *name, const char *vars, const char *preload)
{
  extern char **environ;
  for (char **e = environ; *e;) { /* drop inherited options and preloads */
    if (strncmp(*e, "TINYMALLOC_", 11) == 0 || strncmp(*e, "LD_PRELOAD=", 11) == 0) {
      char var[128];
      size_t eq = strcspn(*e, "=");
      snprintf(var, sizeof var, "%.*s", (int)eq, *e);
      unsetenv(var);
      e = environ;
    } else {
      e++;
    }
  }
  char *copy = tm_strdup(vars ? vars : "");
  for (char *tok = strtok(copy, " "); tok; tok = strtok(NULL, " ")) {
    char *eq = strchr(tok, '=');
    if (eq == NULL) continue;
    *eq = '\0';
    setenv(tok, eq + 1, 1);
  }
  if (preload) setenv("LD_PRELOAD", preload, 1);
  execl(self, self, "--case", name, (char *)NULL);
  perror("exec");
  _exit(127);
}

typedef struct {
  char *text;
  size_t len;
} tm_buf_t;

static inline void tm_buf_add(tm_buf_t *b, const char *data, size_t n)
{
  char *grown = realloc(b->text, b->len + n + 1);
  if (grown == NULL) exit(2);
  b->text = grown;
  memcpy(b->text + b->len, data, n);
  b->len += n;
  b->text[b->len] = '\0';
}

/* Runs one case in a child; fills its stdout, stderr and wait status. */
static inline int tm_run_child(const char *self, const tcase_t *c, const char *vars, const char *preload, tm_buf_t *out,
                               tm_buf_t *err)
{
  int po[2], pe[2];
  if (pipe(po) != 0 || pipe(pe) != 0) {
    perror("pipe");
    exit(2);
  }
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) {
    perror("fork");
    exit(2);
  }
  if (pid == 0) {
    dup2(po[1], 1);
    dup2(pe[1], 2);
    close(po[0]);
    close(po[1]);
    close(pe[0]);
    close(pe[1]);
    tm_exec_case(self, c->name, vars, preload);
  }
  close(po[1]);
  close(pe[1]);
  tm_buf_add(out, "", 0);
  tm_buf_add(err, "", 0);
  struct pollfd fds[2] = {{po[0], POLLIN, 0}, {pe[0], POLLIN, 0}};
  int open_fds = 2;
  while (open_fds > 0) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      perror("poll");
      exit(2);
    }
    for (int i = 0; i < 2; i++) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      char chunk[4096];
      ssize_t got = read(fds[i].fd, chunk, sizeof chunk);
      if (got > 0) {
        tm_buf_add(i == 0 ? out : err, chunk, (size_t)got);
      } else if (got == 0 || errno != EINTR) {
        close(fds[i].fd);
        fds[i].fd = -1;
        open_fds--;
      }
    }
  }
  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) {
      perror("waitpid");
      exit(2);
    }
  return status;
}

static inline void tm_describe_status(int status, char *buf, size_t size)
{
  if (WIFSIGNALED(status))
    snprintf(buf, size, "killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
  else
    snprintf(buf, size, "exit status %d", WEXITSTATUS(status));
}

/* The lines of `err` that start with "tinymalloc: " (count, and the first). */
static inline int tm_report_lines(const char *err, char *first, size_t size)
{
  int count = 0;
  first[0] = '\0';
  for (const char *line = err; *line;) {
    size_t n = strcspn(line, "\n");
    if (strncmp(line, "tinymalloc: ", 12) == 0) {
      if (count == 0) snprintf(first, size, "%.*s", (int)n, line);
      count++;
    }
    line += n;
    if (*line == '\n') line++;
  }
  return count;
}

/* The pattern with @BLOCK@ replaced by the address the child printed. */
static inline int tm_match_report(const char *pattern, const char *line, const char *out, char *why, size_t size)
{
  char block[64] = "0x[0-9a-f]+";
  const char *at = strstr(out, "block 0x");
  if (at) snprintf(block, sizeof block, "%.*s", (int)strspn(at + 6, "0123456789abcdefx"), at + 6);
  char full[1024];
  size_t used = 0;
  full[used++] = '^';
  for (const char *p = pattern; *p && used < sizeof full - 80;) {
    if (strncmp(p, "@BLOCK@", 7) == 0) {
      used += (size_t)snprintf(full + used, sizeof full - used, "%s", block);
      p += 7;
    } else {
      full[used++] = *p++;
    }
  }
  full[used++] = '$';
  full[used] = '\0';
  regex_t re;
  if (regcomp(&re, full, REG_EXTENDED | REG_NOSUB) != 0) {
    snprintf(why, size, "bad pattern %s", full);
    return 0;
  }
  int ok = regexec(&re, line, 0, NULL, 0) == 0;
  regfree(&re);
  if (!ok) snprintf(why, size, "report line does not match /%s/", full);
  return ok;
}

/* Judges one run; returns 1 when it is what `control` asks for. */
static inline int tm_judge(const tcase_t *c, int control, int status, const tm_buf_t *out, const tm_buf_t *err,
                           char *why, size_t size)
{
  char st[96], line[512];
  tm_describe_status(status, st, sizeof st);
  int lines = tm_report_lines(err->text, line, sizeof line);
  if (control) {
    if (lines > 0) return snprintf(why, size, "the bug was reported in the control run: %s", line), 0;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return snprintf(why, size, "control run: %s", st), 0;
    if (!strstr(out->text, "survived")) return snprintf(why, size, "control run did not finish"), 0;
    if (c->control_out && !strstr(out->text, c->control_out))
      return snprintf(why, size, "control run: stdout lacks \"%s\"", c->control_out), 0;
    snprintf(why, size, "passed unnoticed (%s)", st);
    return 1;
  }
  switch (c->expect) {
  case EXPECT_REPORT:
    if (lines != 1) return snprintf(why, size, "%d report lines (expected 1), %s", lines, st), 0;
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT)
      return snprintf(why, size, "%s, expected SIGABRT after the report", st), 0;
    if (!tm_match_report(c->pattern, line, out->text, why, size)) return 0;
    snprintf(why, size, "%s", line);
    return 1;
  case EXPECT_FAULT:
    if (lines != 0) return snprintf(why, size, "a report instead of a fault: %s", line), 0;
    if (!strstr(out->text, "touching")) return snprintf(why, size, "%s before the access", st), 0;
    if (strstr(out->text, "survived")) return snprintf(why, size, "the access did not fault (%s)", st), 0;
    if (!WIFSIGNALED(status) || WTERMSIG(status) != c->signal)
      return snprintf(why, size, "%s, expected signal %d", st, c->signal), 0;
    snprintf(why, size, "faulted at the access (%s)", st);
    return 1;
  case EXPECT_OUTPUT:
    if (lines != 0) return snprintf(why, size, "unexpected report: %s", line), 0;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return snprintf(why, size, "%s", st), 0;
    if (!strstr(out->text, c->out)) return snprintf(why, size, "stdout lacks \"%s\"", c->out), 0;
    snprintf(why, size, "%s", c->out);
    return 1;
  }
  return 0;
}

/* The program's main: `register_cases` adds the cases. */
static inline int harness_main(int argc, char **argv, void (*register_cases)(void))
{
  register_cases();
  const char *preload = NULL, *only = NULL;
  int control = 0, broken = 0, survey = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--case") == 0 && i + 1 < argc) {
      for (int j = 0; j < tm_case_count; j++) {
        if (strcmp(tm_cases[j].name, argv[i + 1]) == 0) {
          alarm(60); /* a case that hangs dies of SIGALRM: a failure */
          tm_cases[j].run(tm_cases[j].n, tm_cases[j].k);
          say("survived\n");
          return 0;
        }
      }
      fprintf(stderr, "no case %s\n", argv[i + 1]);
      return 2;
    } else if (strcmp(argv[i], "--preload") == 0 && i + 1 < argc) {
      preload = argv[++i];
    } else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
      only = argv[++i];
    } else if (strcmp(argv[i], "--control") == 0) {
      control = 1;
    } else if (strcmp(argv[i], "--broken") == 0) {
      broken = 1;
    } else if (strcmp(argv[i], "--survey") == 0) {
      survey = 1;
    } else if (strcmp(argv[i], "--list") == 0) {
      for (int j = 0; j < tm_case_count; j++)
        printf("%s\n", tm_cases[j].name);
      return 0;
    } else {
      fprintf(stderr, "usage: %s [--preload LIB] [--control | --broken | --survey] [--only TEXT] [--list]\n", argv[0]);
      return 2;
    }
  }
  if (preload && access(preload, R_OK) != 0) {
    fprintf(stderr, "FAIL: %s does not exist\n", preload);
    return 1;
  }
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) {
    perror("readlink /proc/self/exe");
    return 2;
  }
  self[n] = '\0';
  int ran = 0, failed = 0;
  for (int j = 0; j < tm_case_count; j++) {
    const tcase_t *c = &tm_cases[j];
    if (only && !strstr(c->name, only)) continue;
    tm_buf_t out = {NULL, 0}, err = {NULL, 0};
    const char *vars = control || broken ? c->control_env : c->env;
    int status = tm_run_child(self, c, vars, preload, &out, &err);
    if (survey) { /* another allocator: what became of the bug */
      char st[96];
      tm_describe_status(status, st, sizeof st);
      int caught = !WIFEXITED(status) || WEXITSTATUS(status) != 0;
      if (c->expect == EXPECT_OUTPUT) caught = strstr(out.text, c->out) != NULL;
      printf("%s %-44s %s: %.*s\n", caught ? "CAUGHT" : "MISSED", c->name, st, (int)strcspn(err.text, "\n"), err.text);
      ran++;
      failed += !caught;
      free(out.text);
      free(err.text);
      continue;
    }
    char why[1024];
    int ok = tm_judge(c, control, status, &out, &err, why, sizeof why);
    ran++;
    printf("%s %-44s [%s] %s\n", ok ? "PASS" : "FAIL", c->name, vars, why);
    if (!ok) {
      failed++;
      printf("  stdout: %s  stderr: %s\n", out.text, err.text);
    }
    free(out.text);
    free(err.text);
  }
  if (survey) {
    printf("%d of %d bugs caught (the process died or failed)\n", ran - failed, ran);
    return 0;
  }
  printf("%d of %d cases %s%s\n", ran - failed, ran, control ? "passed unnoticed in the control run" : "passed",
         failed ? "" : ": all");
  if (ran == 0) {
    printf("FAIL: no case selected\n");
    return 1;
  }
  return failed ? 1 : 0;
}

#endif
