/* Harness "fork": the single-threaded ops of harness "ops" plus fork() in
 * three situations: with blocks live (the child checks what it inherited,
 * allocates and frees in every strategy and passes tinymalloc_check()),
 * while other threads allocate and free and use stdio (a thread holds a FILE
 * lock while it reallocates, another flushes every stream: glibc's fork takes
 * the stdio list lock after the atfork handlers), and from a signal handler
 * that interrupts an allocation. A fork that hangs is caught by the
 * watchdog; a child that fails reports on stderr and dies. Fork is expensive
 * (a copy of the page tables of an ASan process), which is why it has a
 * harness of its own. Skipped under TSan, which can hang across fork.
 * Encoding: fuzz/README.md. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ops.h"

const char tmf_harness_name[] = "fork";

enum fork_opcode_e { FORK_PLAIN = TMF_OP_COUNT, FORK_THREADS, FORK_SIGNAL, FORK_OPCODE_COUNT };
#define FORK_CHILDREN_MAX 4 /* the most children one op waits for at once */

static tmf_ops_t ctx;

/* In a coverage build the child writes its profile before _exit. */
extern int __llvm_profile_write_file(void) __attribute__((weak));

static void child_exit(int status)
{
  if (__llvm_profile_write_file) __llvm_profile_write_file();
  _exit(status);
}

/* The child: a failure aborts with the default action (not the engine's
 * crash handler, which would save the input a second time). */
static void child_begin(void)
{
  /* A child outlives its parent only when an engine killed the parent (at
   * the end of a campaign, or on a timeout) while the child still ran: it
   * must not linger (orphans of afl_fork were seen running for minutes). */
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() == 1) _exit(1);
  signal(SIGABRT, SIG_DFL);
  signal(SIGSEGV, SIG_DFL);
  signal(SIGBUS, SIG_DFL);
}

static void child_alloc_each_strategy(void)
{
  static const size_t sizes[] = {24, 5000, 40000, (size_t)2 << 20};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    void *p = tinymalloc(sizes[i]);
    TMF_REQUIRE(p != NULL, "fork child: malloc(%zu) returned NULL", sizes[i]);
    tmf_block_t b = tmf_block_adopt(p, sizes[i], 16, 1000 + i, false);
    p = tinyrealloc(p, sizes[i] * 3);
    TMF_REQUIRE(p != NULL, "fork child: realloc to %zu returned NULL", sizes[i] * 3);
    tmf_pattern_check(p, b.usable, b.id, 0, sizes[i], "fork child: realloc (preserved prefix)");
    tinyfree(p);
  }
}

/* Waits for fork children, within most of the watchdog's bound (re-armed
 * for the wait): children that hang (a child has no watchdog: that thread
 * is gone in the fork) are all killed, and the input fails naming them.
 * Without the bound the parent's watchdog fired first and a hung child
 * outlived it, orphaned, and an engine that stops the parent (AFL++ at the
 * end of a run) recorded nothing. */
static void wait_children(const pid_t *pids, int n, const char *what)
{
  int status[FORK_CHILDREN_MAX];
  bool done[FORK_CHILDREN_MAX] = {false};
  int left = n;
  tmf_watchdog_note(what);
  struct timespec start, now, pause = {0, 50 * 1000};
  clock_gettime(CLOCK_MONOTONIC, &start);
  int64_t bound_ms = tmf_watchdog_bound_ms() * 4 / 5, ms = 0;
  while (left > 0) {
    for (int k = 0; k < n; k++) {
      if (done[k]) continue;
      pid_t waited = waitpid(pids[k], &status[k], WNOHANG);
      /* libFuzzer's timers (SIGALRM for -timeout) interrupt the wait: retry. */
      if (waited == 0 || (waited < 0 && errno == EINTR)) continue;
      TMF_REQUIRE(waited == pids[k], "%s: waitpid failed (errno %d)", what, errno);
      done[k] = true;
      left--;
    }
    if (left == 0) break;
    clock_gettime(CLOCK_MONOTONIC, &now);
    ms = (int64_t)(now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
    if (ms > bound_ms) break;
    nanosleep(&pause, NULL); /* 50 us, doubling up to about 10 ms */
    if (pause.tv_nsec < 10 * 1000 * 1000) pause.tv_nsec *= 2;
  }
  for (int k = 0; k < n; k++) {
    if (done[k]) continue;
    kill(pids[k], SIGKILL);
    while (waitpid(pids[k], &status[k], 0) < 0 && errno == EINTR) {
    }
  }
  TMF_REQUIRE(left == 0, "%s: %d of %d children hung (killed after %.1f s)", what, left, n, (double)ms / 1000);
  for (int k = 0; k < n; k++)
    TMF_REQUIRE(WIFEXITED(status[k]) && WEXITSTATUS(status[k]) == 0, "%s: child %s %d (its message is above)", what,
                WIFEXITED(status[k]) ? "exited with" : "died of signal",
                WIFEXITED(status[k]) ? WEXITSTATUS(status[k]) : WTERMSIG(status[k]));
}

static void wait_child(pid_t pid, const char *what) { wait_children(&pid, 1, what); }

/* ---- fork with blocks live (the process is single-threaded) -------------- */

static void op_fork_plain(tmf_reader_t *r)
{
  unsigned slot = tmf_read_u8(r) % TMF_SLOTS;
  uint8_t mode = tmf_read_u8(r);
  if (TMF_UNDER_TSAN) return;
  pid_t pid = fork();
  TMF_REQUIRE(pid >= 0, "fork failed (errno %d)", errno);
  if (pid == 0) {
    child_begin();
    /* Everything the parent held is still there and still live. */
    tmf_expect_live(ctx.shadow.count, ctx.shadow.usable_bytes, 0);
    if (mode & 1) tmf_shadow_verify_all(&ctx.shadow);
    child_alloc_each_strategy();
    tmf_block_t b;
    if (tmf_ops_take(&ctx, slot, &b)) tmf_ops_release(&b); /* an inherited block */
    if ((mode & 2) && tmf_ops_take(&ctx, slot + 1, &b)) {  /* and one moved by realloc */
      void *p = tinyrealloc((void *)b.addr, b.requested + 70000);
      TMF_REQUIRE(p != NULL, "fork child: realloc of an inherited block returned NULL");
      tmf_pattern_check(p, b.usable, b.id, 0, b.requested, "fork child: realloc of an inherited block");
      tinyfree(p);
    }
    tmf_expect_live(ctx.shadow.count, ctx.shadow.usable_bytes, 0);
    int violations = tinymalloc_check();
    TMF_REQUIRE(violations == 0, "fork child: tinymalloc_check found %d violations", violations);
    if (mode & 4) tmf_ops_finish(&ctx); /* everything inherited can be freed */
    child_exit(0);
  }
  wait_child(pid, "fork");
}

/* ---- fork while other threads allocate and use stdio ----------------------- */

/* What the threads hold lives here, on the forking thread's stack: a fork
 * child cannot free the blocks of threads that do not exist in it, but they
 * stay reachable (memcheck must not call them lost). */
typedef struct churn_s {
  atomic_int stop;
  atomic_uint next;
  uint8_t shape;
  size_t size;
  FILE *stream; /* the FILE whose lock a thread holds while it reallocates */
  void *held[4][8];
  void *line;
} churn_t;

static void *churn_main(void *arg)
{
  churn_t *c = arg;
  void **held = c->held[atomic_fetch_add(&c->next, 1) % 4];
  for (unsigned n = 0; !atomic_load_explicit(&c->stop, memory_order_acquire); n++) {
    size_t size = c->size ? c->size : 1; /* realloc(p, 0) would free */
    if ((c->shape & 4) && (n & 7) == 3) size = 40000 + 4096 * (n & 15);
    if ((c->shape & 8) && (n & 63) == 5) size = ((size_t)1 << 20) + 4096 * (n & 7);
    unsigned i = n & 7;
    if (held[i] && (c->shape & 16) && (n & 1)) {
      void *q = tinyrealloc(held[i], size);
      TMF_REQUIRE(q != NULL, "churn: realloc returned NULL");
      held[i] = q;
      continue;
    }
    tinyfree(held[i]);
    held[i] = tinymalloc(size);
    TMF_REQUIRE(held[i] != NULL, "churn: malloc(%zu) returned NULL", size);
    if (size > 0) memset(held[i], (int)n, size < 64 ? size : 64);
  }
  for (unsigned i = 0; i < 8; i++) {
    tinyfree(held[i]);
    held[i] = NULL;
  }
  return NULL;
}

/* Holds the FILE lock while it reallocates, as getline does when malloc is
 * tinymalloc. */
static void *locked_realloc_main(void *arg)
{
  churn_t *c = arg;
  for (unsigned n = 0; !atomic_load_explicit(&c->stop, memory_order_acquire); n++) {
    flockfile(c->stream);
    size_t size = 120 + ((size_t)(n % 64) << 10);
    if (n % 64 == 63) size = 40000 + (n & 4095);
    void *q = tinyrealloc(c->line, size);
    TMF_REQUIRE(q != NULL, "locked realloc returned NULL");
    c->line = q;
    funlockfile(c->stream);
  }
  tinyfree(c->line);
  c->line = NULL;
  return NULL;
}

static void *flusher_main(void *arg)
{
  churn_t *c = arg;
  while (!atomic_load_explicit(&c->stop, memory_order_acquire)) {
    fflush(NULL); /* the stdio list lock, then every FILE's lock */
    sched_yield();
  }
  return NULL;
}

/* In the child of a fork with threads: new threads must get heaps of their
 * own (the heaps of the threads that vanished, and those free already, are
 * reused: none may go to two threads; more threads than the process ever
 * had heaps, so that every pooled heap is handed out). Twelve threads
 * allocate at once,
 * blocks of the size the vanished threads used, the child's first thread
 * checks that no two blocks overlap, then each thread frees another's
 * blocks and checks its own were left alone. */
#define TEAM_THREADS 12
#define TEAM_BLOCKS  32

typedef struct team_s {
  pthread_barrier_t step;
  size_t size;
  atomic_uint next;
  unsigned char *blocks[TEAM_THREADS][TEAM_BLOCKS];
} team_t;

static uint64_t team_tag(unsigned t, unsigned i) { return 0x7465616d00000000ull | (uint64_t)t << 16 | i; }

static void *team_main(void *arg)
{
  team_t *team = arg;
  unsigned me = atomic_fetch_add(&team->next, 1);
  pthread_barrier_wait(&team->step);
  for (unsigned i = 0; i < TEAM_BLOCKS; i++) {
    unsigned char *p = tinymalloc(team->size);
    TMF_REQUIRE(p != NULL, "fork child thread: malloc(%zu) returned NULL", team->size);
    uint64_t tag = team_tag(me, i);
    memcpy(p, &tag, sizeof tag);
    memcpy(p + team->size - sizeof tag, &tag, sizeof tag);
    team->blocks[me][i] = p;
  }
  pthread_barrier_wait(&team->step); /* all allocated: the overlap check */
  pthread_barrier_wait(&team->step);
  for (unsigned i = 0; i < TEAM_BLOCKS; i++) { /* its own blocks, untouched by the others */
    uint64_t head, tail, tag = team_tag(me, i);
    memcpy(&head, team->blocks[me][i], sizeof head);
    memcpy(&tail, team->blocks[me][i] + team->size - sizeof tail, sizeof tail);
    TMF_REQUIRE(head == tag && tail == tag, "fork child thread %u: block %p (%zu bytes) changed by another thread", me,
                (void *)team->blocks[me][i], team->size);
  }
  pthread_barrier_wait(&team->step);
  for (unsigned i = 0; i < TEAM_BLOCKS; i++) /* a remote free of another thread's block */
    tinyfree(team->blocks[(me + 1) % TEAM_THREADS][i]);
  return NULL;
}

static int compare_addresses(const void *a, const void *b)
{
  uintptr_t x = (uintptr_t) * (unsigned char *const *)a, y = (uintptr_t) * (unsigned char *const *)b;
  return x < y ? -1 : x > y;
}

static void child_thread_team(size_t size)
{
  static team_t team; /* the child's own copy */
  memset(&team, 0, sizeof team);
  team.size = size < 16 ? 16 : size;
  atomic_init(&team.next, 0);
  tinymalloc_counters_t before, after;
  tinymalloc_counters(&before);
  pthread_barrier_init(&team.step, NULL, TEAM_THREADS + 1);
  pthread_t t[TEAM_THREADS];
  for (unsigned k = 0; k < TEAM_THREADS; k++)
    TMF_REQUIRE(pthread_create(&t[k], NULL, team_main, &team) == 0, "fork child: pthread_create failed");
  pthread_barrier_wait(&team.step);
  pthread_barrier_wait(&team.step);
  unsigned char *all[TEAM_THREADS * TEAM_BLOCKS];
  memcpy(all, team.blocks, sizeof all);
  qsort(all, TEAM_THREADS * TEAM_BLOCKS, sizeof all[0], compare_addresses);
  for (unsigned i = 1; i < TEAM_THREADS * TEAM_BLOCKS; i++)
    TMF_REQUIRE(all[i - 1] + team.size <= all[i], "fork child: blocks %p and %p of %zu bytes (two threads) overlap",
                (void *)all[i - 1], (void *)all[i], team.size);
  pthread_barrier_wait(&team.step);
  pthread_barrier_wait(&team.step);
  for (unsigned k = 0; k < TEAM_THREADS; k++)
    pthread_join(t[k], NULL);
  pthread_barrier_destroy(&team.step);
  tinymalloc_counters(&after);
  TMF_REQUIRE(after.live_blocks == before.live_blocks,
              "fork child: %zu blocks live after its threads freed theirs, %zu before", after.live_blocks,
              before.live_blocks);
  /* A fork taken while another thread was publishing a large block left
   * it out of the child's segment map until the core's fork handler marked
   * such blocks (found by this check; fuzz/findings/README.md). */
  int violations = tinymalloc_check();
  TMF_REQUIRE(violations == 0, "fork child: tinymalloc_check found %d violations after its threads ran", violations);
}

static void op_fork_threads(tmf_reader_t *r)
{
  uint8_t shape = tmf_read_u8(r);
  size_t size = tmf_read_size(r);
  if (TMF_UNDER_TSAN) return;
  static FILE *stream;
  if (stream == NULL) stream = fopen("/dev/null", "w");
  TMF_REQUIRE(stream != NULL, "fopen(/dev/null) failed");
  churn_t c;
  memset(&c, 0, sizeof c);
  atomic_init(&c.stop, 0);
  atomic_init(&c.next, 0);
  c.shape = shape;
  c.size = size % 16385;
  c.stream = stream;
  pthread_t threads[5];
  unsigned n = 0, churners = 1 + shape % 3;
  for (; n < churners; n++)
    TMF_REQUIRE(pthread_create(&threads[n], NULL, churn_main, &c) == 0, "pthread_create failed");
  if (shape & 32) {
    TMF_REQUIRE(pthread_create(&threads[n++], NULL, locked_realloc_main, &c) == 0, "pthread_create failed");
    TMF_REQUIRE(pthread_create(&threads[n++], NULL, flusher_main, &c) == 0, "pthread_create failed");
  }
  unsigned forks = 1 + (shape >> 6);
  /* The child's fflush(NULL) below would write out again what the engine's
   * driver left buffered in stdout (AFL++'s "Reading N bytes" lines: a seed
   * replay then counts its inputs several times). */
  fflush(stdout);
  for (unsigned k = 0; k < forks; k++) {
    sched_yield(); /* let the others get into the allocator */
    pid_t pid = fork();
    TMF_REQUIRE(pid >= 0, "fork failed (errno %d)", errno);
    if (pid == 0) {
      /* Only this thread exists here; the others stopped wherever they were. */
      child_begin();
      child_alloc_each_strategy();
      /* Not under ASan: its runtime's own allocator may be locked by a
       * thread that vanished in the fork, and starting a thread allocates
       * from it (the child hangs in calloc under pthread_create). */
      if (!TMF_UNDER_ASAN) child_thread_team(c.size);
      fprintf(stream, "child %u\n", k);
      fflush(NULL);
      child_exit(0);
    }
    wait_child(pid, "fork while other threads allocate");
  }
  atomic_store_explicit(&c.stop, 1, memory_order_release);
  for (unsigned k = 0; k < n; k++)
    pthread_join(threads[k], NULL);
}

/* ---- fork from a signal handler that interrupts an allocation ------------- */

#define FORK_SIGNAL_MAX FORK_CHILDREN_MAX
static volatile sig_atomic_t signal_forks, signal_fork_limit;
static pid_t signal_pids[FORK_SIGNAL_MAX];

static void on_fork_signal(int sig)
{
  (void)sig;
  if (signal_forks >= signal_fork_limit) return;
  int saved = errno;
  pid_t pid = fork();
  if (pid == 0) _exit(0);
  if (pid > 0) signal_pids[signal_forks++] = pid;
  errno = saved;
}

static void op_fork_signal(tmf_reader_t *r)
{
  uint8_t shape = tmf_read_u8(r);
  size_t size = tmf_read_size(r);
  if (TMF_UNDER_TSAN) return;
  if (shape & 64) size = 16385 + size % 200000; /* a medium allocation holds its arena's lock */
  if (size > ((size_t)2 << 20)) size = (size_t)2 << 20;
  int signo = SIGRTMIN + 4;
  struct sigaction sa, old_sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_fork_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(signo, &sa, &old_sa);
  signal_forks = 0;
  signal_fork_limit = 1 + (shape >> 7) * (FORK_SIGNAL_MAX - 1);
  struct sigevent sev;
  memset(&sev, 0, sizeof sev);
  sev.sigev_notify = SIGEV_THREAD_ID; /* this thread, not the watchdog */
  sev.sigev_signo = signo;
  sev._sigev_un._tid = (pid_t)syscall(SYS_gettid);
  timer_t timer;
  TMF_REQUIRE(timer_create(CLOCK_MONOTONIC, &sev, &timer) == 0, "timer_create failed (errno %d)", errno);
  long period_ns = (10L << (shape & 7)) * 1000L; /* 10 us .. 1.3 ms */
  struct itimerspec its = {{0, period_ns}, {0, period_ns}};
  timer_settime(timer, 0, &its, NULL);
  unsigned rounds = 256u * (1 + ((shape >> 3) & 7));
  void *keep = NULL;
  for (unsigned n = 0; n < rounds && signal_forks < signal_fork_limit; n++) {
    unsigned char *p = tinymalloc(size);
    TMF_REQUIRE(p != NULL, "malloc(%zu) returned NULL", size);
    if (size > 0) p[0] = (unsigned char)n;
    if ((shape & 32) && (n & 3) == 1) {
      void *q = tinyrealloc(keep, size + 64);
      TMF_REQUIRE(q != NULL, "realloc returned NULL");
      keep = q;
    }
    tinyfree(p);
  }
  timer_delete(timer);
  sigaction(signo, &old_sa, NULL);
  tinyfree(keep);
  wait_children(signal_pids, signal_forks, "fork from a signal handler");
}

/* ---- The harness ---------------------------------------------------------------- */

static const char *fork_op_name(unsigned opcode)
{
  static const char *const names[] = {"op fork", "op fork_threads", "op fork_signal"};
  return opcode < TMF_OP_COUNT ? tmf_ops_name(opcode) : names[opcode - TMF_OP_COUNT];
}

size_t tmf_harness_run_one(const uint8_t *data, size_t size)
{
  tmf_install_strict_handler();
  tmf_reader_t r;
  tmf_reader_init(&r, data, size);
  tmf_ops_init(&ctx, false);
  while (!tmf_reader_done(&r)) {
    size_t op_start = r.pos;
    unsigned opcode = tmf_read_u8(&r) % FORK_OPCODE_COUNT;
    tmf_watchdog_note(fork_op_name(opcode));
    if (tmf_disabled(fork_op_name(opcode))) {
      tmf_skip_operands(&r, opcode);
      continue;
    }
    switch (opcode) {
    case FORK_PLAIN:
      op_fork_plain(&r);
      break;
    case FORK_THREADS:
      op_fork_threads(&r);
      break;
    case FORK_SIGNAL:
      op_fork_signal(&r);
      break;
    default:
      tmf_ops_step(&ctx, &r, opcode);
      break;
    }
    tmf_check_decoded(&r, op_start, opcode);
    if (opcode >= TMF_OP_COUNT || opcode == TMF_OP_CHECK) tmf_ops_expect_stats(&ctx);
  }
  tmf_ops_expect_stats(&ctx);
  tmf_ops_finish(&ctx);
  return 0;
}
