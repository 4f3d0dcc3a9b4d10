/* The fuzz harnesses' common ground: failure reporting, operand decoding
 * (sizes, alignments), the sparse block canaries, the run modes (warm
 * fuzzing, deep checks when replaying), the window of runs a warm-mode
 * failure saves, the watchdog and the end-of-input checks. Uses only the
 * public API; never relies on allocator internals. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "grammar.h"

#if TMF_UNDER_ASAN
#include <sanitizer/asan_interface.h>
#endif

/* ---- Window of runs since the last deep check ------------------------------- */

const uint8_t tmf_run_marker[TMF_RUN_MARKER_LEN] = {0xff, 0xfe, 'R', 'S'};
tmf_mode_t tmf_mode = {1, "./"};

#define TMF_WINDOW_MAX ((size_t)1 << 20)
static uint8_t *window;   /* runs joined by the marker (system malloc) */
static size_t window_len; /* bytes used */
static unsigned window_runs;
static bool window_overflow; /* the next end of input must be deep */

static void window_reset(void)
{
  window_len = 0;
  window_runs = 0;
  window_overflow = false;
}

static void window_append(const uint8_t *data, size_t size)
{
  if (tmf_mode.deep_every <= 1) return;
  if (window == NULL) {
    window = malloc(TMF_WINDOW_MAX);
    if (window == NULL) return;
  }
  size_t need = size + (window_runs ? TMF_RUN_MARKER_LEN : 0);
  if (window_len + need > TMF_WINDOW_MAX) {
    window_overflow = true; /* keep what fits; the deep check comes at the end of this input */
    window_runs = 0;        /* and the window is no longer a faithful record */
    return;
  }
  if (window_runs) {
    memcpy(window + window_len, tmf_run_marker, TMF_RUN_MARKER_LEN);
    window_len += TMF_RUN_MARKER_LEN;
  }
  memcpy(window + window_len, data, size);
  window_len += size;
  window_runs++;
}

static void write_all(int fd, const void *buf, size_t len)
{
  const char *p = buf;
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n <= 0) return;
    p += n;
    len -= (size_t)n;
  }
}

/* In warm mode, a failure may depend on the runs before it (state they left
 * behind, a leak that only the periodic deep check sees): save them all, as
 * one input that replays them the same way. Async-signal-safe enough to be
 * called from the ASan report callback and the watchdog thread. */
static atomic_int window_saved;

/* `always`: also a window of one run (a hang: the engine's own crash handler
 * may hang too, so this file may be the only record). */
static void save_window_if(bool always)
{
  if (tmf_mode.deep_every <= 1 || window_runs < (always ? 1u : 2u) || atomic_exchange(&window_saved, 1)) return;
  uint64_t h = 1469598103934665603ull; /* FNV-1a of the window: the file name */
  for (size_t i = 0; i < window_len; i++)
    h = (h ^ window[i]) * 1099511628211ull;
  char path[4096];
  int n = snprintf(path, sizeof path, "%swindow-%016llx", tmf_mode.artifacts, (unsigned long long)h);
  if (n <= 0 || (size_t)n >= sizeof path) return;
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return;
  write_all(fd, window, window_len);
  close(fd);
  char line[4200];
  n = snprintf(line, sizeof line,
               "tinymalloc-fuzz: warm mode: the %u runs since the last deep check are saved in %s "
               "(replay that file alone to reproduce)\n",
               window_runs, path);
  if (n > 0) write_all(2, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

static void save_window(void) { save_window_if(false); }

void tmf_fail(const char *fmt, ...)
{
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line - 1, fmt, ap);
  va_end(ap);
  if (n < 0) n = 0;
  if ((size_t)n > sizeof line - 2) n = (int)(sizeof line - 2);
  line[n] = '\n';
  static const char prefix[] = "tinymalloc-fuzz: ";
  write_all(2, prefix, sizeof prefix - 1);
  write_all(2, line, (size_t)n + 1);
  save_window();
  abort();
}

#if TMF_UNDER_ASAN
static void on_asan_report(const char *report)
{
  (void)report;
  save_window();
}
#endif

bool tmf_due(unsigned *counter, unsigned every)
{
  if (tmf_mode.deep_every <= 1) return true;
  return ++*counter % every == 0;
}

void tmf_set_fuzzing_mode(const char *artifact_prefix)
{
  unsigned every = TMF_DEEP_EVERY_DEFAULT;
  const char *env = getenv("TMF_DEEP_EVERY");
  if (env && atoi(env) > 0) every = (unsigned)atoi(env);
  tmf_mode.deep_every = every;
  if (artifact_prefix && *artifact_prefix) tmf_mode.artifacts = artifact_prefix;
#if TMF_UNDER_ASAN
  __asan_set_error_report_callback(on_asan_report);
#endif
}

/* ---- Watchdog ------------------------------------------------------------------ */

#define TMF_UNLIKELY_PROFILE(x) __builtin_expect((x) != 0, 0)

/* Seconds an op may take before the run counts as hung: long enough for the
 * slowest op on a machine of our own (a bulk allocation, a fork of a big ASan
 * process), short enough to find a deadlock within seconds.
 * TMF_WATCHDOG_SECONDS overrides it (Valgrind runs everything 50 times
 * slower). On a shared machine the harness's threads may wait seconds for a
 * core: the bound is stretched by the load (the 1-minute load average per
 * online CPU, when above 1), so that a loaded machine is never reported as a
 * deadlock; a real deadlock stays a deadlock, only found later. */
#define TMF_WATCHDOG_OP_SECONDS 5
static int watchdog_seconds = TMF_WATCHDOG_OP_SECONDS;

static _Atomic(const char *) watchdog_what;
static _Atomic int64_t watchdog_noted_ms; /* when the last op began; 0 = disarmed */

/* The bound in milliseconds under the current load. */
static int64_t watchdog_bound_ms(void)
{
  double load = 0;
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  double factor = 1;
  if (getloadavg(&load, 1) == 1 && cpus > 0 && load / (double)cpus > 1) factor = load / (double)cpus;
  if (factor > 20) factor = 20;
  return (int64_t)((double)watchdog_seconds * 1000 * factor);
}
static pthread_once_t watchdog_once = PTHREAD_ONCE_INIT;

int64_t tmf_watchdog_bound_ms(void) { return watchdog_bound_ms(); }

static int64_t now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *watchdog_main(void *arg)
{
  (void)arg;
  for (;;) {
    struct timespec pause = {0, 200 * 1000 * 1000};
    nanosleep(&pause, NULL);
    int64_t noted = atomic_load(&watchdog_noted_ms);
    if (noted == 0 || now_ms() - noted <= watchdog_seconds * 1000) continue;
    int64_t bound = watchdog_bound_ms();
    if (now_ms() - noted > bound && atomic_load(&watchdog_noted_ms) == noted) {
      const char *what = atomic_load(&watchdog_what);
      char line[256];
      int n = snprintf(line, sizeof line,
                       "tinymalloc-fuzz: hang: %s did not finish within %.0f s (a deadlock in the allocator?)\n",
                       what ? what : "an op", (double)bound / 1000);
      if (n > 0) write_all(2, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
      save_window_if(true);
      /* Not the engine's crash handler: it may fork (a symbolizer) and hang
       * in the very allocator lock that hangs here. The saved window (or the
       * input file when replaying) is the reproducer. */
      signal(SIGABRT, SIG_DFL);
      abort();
    }
  }
  return NULL;
}

static void watchdog_start(void)
{
  const char *env = getenv("TMF_WATCHDOG_SECONDS");
  if (env && atoi(env) > 0) watchdog_seconds = atoi(env);
  /* Every signal blocked: a process-directed signal (a timer of the fork
   * harness) must reach the thread that runs the input. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_t t;
  if (pthread_create(&t, NULL, watchdog_main, NULL) == 0) pthread_detach(t);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* TMF_PROFILE=1: the CPU time of the thread between two notes is charged to
 * the first (per op name), and the table is printed at exit: where an
 * input's time goes, by op (fuzz/speed.sh --profile). */
#define TMF_PROFILE_SLOTS 64
static struct {
  const char *what;
  double ns;
  unsigned long count;
} profile[TMF_PROFILE_SLOTS];
static pthread_mutex_t profile_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_int profile_on = -1;
static _Thread_local const char *profile_what;
static _Thread_local double profile_since;

static double thread_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void profile_print(void)
{
  double total = 0;
  for (int i = 0; i < TMF_PROFILE_SLOTS; i++)
    total += profile[i].ns;
  for (int i = 0; i < TMF_PROFILE_SLOTS; i++) {
    if (!profile[i].what) continue;
    fprintf(stderr, "tinymalloc-fuzz profile: %-36s %9lu  %9.1f us each  %8.1f ms  %5.1f%%\n", profile[i].what,
            profile[i].count, profile[i].ns / (double)profile[i].count / 1e3, profile[i].ns / 1e6,
            total > 0 ? 100 * profile[i].ns / total : 0);
  }
}

static void profile_charge(const char *next)
{
  double now = thread_ns();
  if (profile_what) {
    pthread_mutex_lock(&profile_lock);
    for (int i = 0; i < TMF_PROFILE_SLOTS; i++) {
      if (profile[i].what == NULL) profile[i].what = profile_what;
      if (profile[i].what == profile_what) {
        profile[i].ns += now - profile_since;
        profile[i].count++;
        break;
      }
    }
    pthread_mutex_unlock(&profile_lock);
  }
  profile_what = next;
  profile_since = now;
}

void tmf_watchdog_note(const char *what)
{
  int on = atomic_load_explicit(&profile_on, memory_order_relaxed);
  if (TMF_UNLIKELY_PROFILE(on)) {
    if (on < 0) {
      pthread_mutex_lock(&profile_lock);
      if (atomic_load(&profile_on) < 0) {
        atomic_store(&profile_on, getenv("TMF_PROFILE") != NULL);
        if (atomic_load(&profile_on)) atexit(profile_print);
      }
      pthread_mutex_unlock(&profile_lock);
      on = atomic_load(&profile_on);
    }
    if (on > 0) profile_charge(what);
  }
  atomic_store_explicit(&watchdog_what, what, memory_order_relaxed);
  atomic_store_explicit(&watchdog_noted_ms, now_ms(), memory_order_relaxed);
}

static void watchdog_disarm(void)
{
  if (atomic_load_explicit(&profile_on, memory_order_relaxed) > 0) profile_charge(NULL);
  atomic_store_explicit(&watchdog_noted_ms, 0, memory_order_relaxed);
}

/* ---- Disabled ops ------------------------------------------------------------- */

static const char *disabled_list;
static int check_grammar;
static pthread_once_t env_once = PTHREAD_ONCE_INIT;

static void read_env(void)
{
  disabled_list = getenv("TMF_DISABLE");
  check_grammar = getenv("TMF_CHECK_GRAMMAR") != NULL;
}

bool tmf_disabled(const char *name)
{
  pthread_once(&env_once, read_env);
  const char *list = disabled_list;
  if (list == NULL || *list == '\0') return false;
  if (strncmp(name, "op ", 3) == 0) name += 3;
  size_t n = strlen(name);
  for (const char *p = list; *p;) {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    if (len == n && strncmp(p, name, n) == 0) return true;
    p += len + (end != NULL);
  }
  return false;
}

void tmf_skip_operands(tmf_reader_t *r, unsigned opcode)
{
  const tmf_grammar_t *g = tmf_grammar_find(tmf_harness_name);
  if (g == NULL) return;
  size_t avail = r->size > r->pos ? r->size - r->pos : 0;
  size_t n = tmf_grammar_operand_len(g, opcode, r->data + r->pos, avail);
  for (size_t i = 0; i < n; i++)
    (void)tmf_read_u8(r);
}

void tmf_check_decoded(const tmf_reader_t *r, size_t op_start, unsigned opcode)
{
  pthread_once(&env_once, read_env);
  if (!check_grammar || r->exhausted) return;
  const tmf_grammar_t *g = tmf_grammar_find(tmf_harness_name);
  TMF_REQUIRE(g != NULL, "no grammar for harness %s", tmf_harness_name);
  size_t want = 1 + tmf_grammar_operand_len(g, opcode, r->data + op_start + 1, r->size - op_start - 1);
  TMF_REQUIRE(r->pos - op_start == want, "grammar: op %u at offset %zu read %zu bytes, fuzz/grammar.c says %zu", opcode,
              op_start, r->pos - op_start, want);
}

/* ---- Reader ----------------------------------------------------------------- */

void tmf_reader_init(tmf_reader_t *r, const uint8_t *data, size_t size)
{
  r->data = data;
  r->size = size;
  r->pos = 0;
  r->exhausted = false;
}

bool tmf_reader_done(const tmf_reader_t *r) { return r->pos >= r->size; }

uint8_t tmf_read_u8(tmf_reader_t *r)
{
  if (r->pos >= r->size) {
    r->exhausted = true;
    return 0;
  }
  return r->data[r->pos++];
}

uint16_t tmf_read_u16(tmf_reader_t *r)
{
  uint16_t lo = tmf_read_u8(r);
  uint16_t hi = tmf_read_u8(r);
  return (uint16_t)(lo | (uint16_t)(hi << 8));
}

uint64_t tmf_read_u64(tmf_reader_t *r)
{
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v |= (uint64_t)tmf_read_u8(r) << (8 * i);
  return v;
}

/* Sizes where the allocator changes behaviour: class steps, the small /
 * medium / large limits, page and segment sizes. A selector picks one and a
 * delta of -2..+2 lands on either side. */
static const size_t boundary_sizes[] = {
    0,     1,     8,      15,     16,     17,      32,      48,      64,      96,      112,     128,
    129,   160,   192,    224,    256,    320,     384,     448,     512,     640,     768,     1024,
    1280,  2048,  3072,   4096,   6144,   8192,    12288,   14336,   16384,   16400,   20480,   24576,
    32768, 65536, 131072, 262144, 524288, 1044480, 1048576, 1052672, 2097152, 4190208, 4194304, 4198400};
#define TMF_BOUNDARY_COUNT (sizeof boundary_sizes / sizeof boundary_sizes[0])

/* Selector % 32: 12/32 tiny, 8/32 small, 2/32 medium, 1/32 large, 7/32 a
 * boundary (about a quarter of them medium or large), 1/32 any 16-bit size,
 * 1/32 zero. Medium and large requests cost a page run or a fresh mapping
 * each and stay at about a sixth of all requests. */
size_t tmf_decode_size(uint8_t selector, uint16_t value)
{
  size_t v = value;
  unsigned s = selector % 32;
  if (s < 12) return v % 1025;                                  /* tiny: 0..1 KiB, the densest classes */
  if (s < 20) return v % 16385;                                 /* anywhere in the small range */
  if (s < 22) return 16385 + ((v << 4) % ((1u << 20) - 16384)); /* medium */
  if (s == 22) return ((size_t)1 << 20) + 1 + v * 48;           /* large: 1 MiB .. 4 MiB */
  if (s < 30) {
    size_t base = boundary_sizes[v % TMF_BOUNDARY_COUNT];
    size_t delta = (v >> 8) % 5;
    if (base + delta < 2) return 0;
    return base + delta - 2;
  }
  if (s == 30) return v;
  return 0;
}

size_t tmf_read_size(tmf_reader_t *r)
{
  uint8_t selector = tmf_read_u8(r);
  uint16_t v = tmf_read_u16(r);
  return tmf_decode_size(selector, v);
}

size_t tmf_read_alignment(tmf_reader_t *r)
{
  uint8_t selector = tmf_read_u8(r);
  if (selector >= 248) {
    static const size_t invalid[] = {0, 3, 24, 48, 96, 4097, 12288, (size_t)3 << 20};
    return invalid[selector - 248];
  }
  return (size_t)1 << (selector % 23);
}

/* ---- Canaries ------------------------------------------------------------------- */

/* Word access to block bytes without memcpy: under ASan, memcpy is
 * intercepted and checked as a region. */
typedef uint64_t __attribute__((may_alias, aligned(1))) tmf_unaligned_u64;

static inline uint64_t load_word(const unsigned char *p) { return *(const tmf_unaligned_u64 *)(const void *)p; }
static inline void store_word(unsigned char *p, uint64_t w) { *(tmf_unaligned_u64 *)(void *)p = w; }

static uint64_t mix64(uint64_t x)
{
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

static inline uint64_t pattern_word(uint64_t seed, size_t word)
{
  return seed ^ ((uint64_t)word * 0x9e3779b97f4a7c15ull);
}

static inline unsigned char pattern_byte(uint64_t seed, size_t offset)
{
  return (unsigned char)(pattern_word(seed, offset >> 3) >> ((offset & 7) * 8));
}

/* Calls fn on the canary ranges of a block that fall within [from, to). */
typedef void (*range_fn)(unsigned char *p, uint64_t seed, size_t from, size_t to, const void *ctx);

static void clip_call(unsigned char *p, uint64_t seed, size_t a, size_t b, size_t from, size_t to, range_fn fn,
                      const void *ctx)
{
  if (a < from) a = from;
  if (b > to) b = to;
  if (a < b) fn(p, seed, a, b, ctx);
}

/* The per-page word of a block: 8 bytes at this offset within each page,
 * away from the edges; it differs between blocks. */
static size_t page_word_offset(uint64_t seed)
{
  return TMF_CANARY_EDGE + ((seed >> 7) % ((TMF_CANARY_PAGE - 2 * TMF_CANARY_EDGE) / 8)) * 8;
}

static void for_canaries(unsigned char *p, size_t usable, uint64_t seed, size_t from, size_t to, range_fn fn,
                         const void *ctx)
{
  if (to > usable) to = usable;
  if (from >= to) return;
  if (usable <= TMF_CANARY_WHOLE) {
    fn(p, seed, from, to, ctx);
    return;
  }
  size_t tail = usable - TMF_CANARY_EDGE;
  clip_call(p, seed, 0, TMF_CANARY_EDGE, from, to, fn, ctx);
  size_t off = page_word_offset(seed);
  size_t first_page = from / TMF_CANARY_PAGE;
  bool sparse = usable > TMF_CANARY_SPARSE_ABOVE;
  size_t stride = TMF_CANARY_SPARSE_STRIDE;
  while (usable / stride > TMF_CANARY_SPARSE_PAGES)
    stride *= 2;
  for (size_t page = first_page * TMF_CANARY_PAGE; page < to && page < tail; page += TMF_CANARY_PAGE) {
    if (sparse && page >= TMF_CANARY_DENSE_EDGE && page + TMF_CANARY_DENSE_EDGE < usable && page % stride != 0)
      continue;
    size_t w = page + off;
    if (w >= TMF_CANARY_EDGE && w + 8 <= tail) clip_call(p, seed, w, w + 8, from, to, fn, ctx);
  }
  clip_call(p, seed, tail, usable, from, to, fn, ctx);
}

static void fill_range(unsigned char *p, uint64_t seed, size_t from, size_t to, const void *ctx)
{
  (void)ctx;
  size_t i = from;
  while (i < to && (i & 7) != 0) {
    p[i] = pattern_byte(seed, i);
    i++;
  }
  for (; i + 8 <= to; i += 8)
    store_word(p + i, pattern_word(seed, i >> 3));
  for (; i < to; i++)
    p[i] = pattern_byte(seed, i);
}

typedef struct check_ctx_s {
  const char *what;
  uint64_t id;
  size_t usable;
  bool zero; /* expect zero bytes instead of the pattern */
} check_ctx_t;

static void check_range(unsigned char *p, uint64_t seed, size_t from, size_t to, const void *ctx)
{
  const check_ctx_t *c = ctx;
  size_t i = from;
  if (c->zero) {
    for (; i < to && (i & 7) != 0; i++)
      if (p[i] != 0) goto mismatch;
    for (; i + 8 <= to; i += 8)
      if (load_word(p + i) != 0) break;
    for (; i < to; i++)
      if (p[i] != 0) goto mismatch;
    return;
  }
  while (i < to && (i & 7) != 0) {
    if (p[i] != pattern_byte(seed, i)) goto mismatch;
    i++;
  }
  for (; i + 8 <= to; i += 8)
    if (load_word(p + i) != pattern_word(seed, i >> 3)) break;
  for (; i < to; i++)
    if (p[i] != pattern_byte(seed, i)) goto mismatch;
  return;
mismatch:
  if (c->zero) tmf_fail("%s: byte %zu of %zu at %p is 0x%02x, expected zero", c->what, i, c->usable, (void *)p, p[i]);
  tmf_fail("%s: block #%llu at %p (usable %zu) corrupted at offset %zu: byte 0x%02x, expected 0x%02x", c->what,
           (unsigned long long)c->id, (void *)p, c->usable, i, p[i], pattern_byte(seed, i));
}

void tmf_pattern_fill(unsigned char *p, size_t usable, uint64_t id, size_t from, size_t to)
{
  for_canaries(p, usable, mix64(id), from, to, fill_range, NULL);
}

void tmf_pattern_check(const unsigned char *p, size_t usable, uint64_t id, size_t from, size_t to, const char *what)
{
  check_ctx_t ctx = {what, id, usable, false};
  /* check_range never writes; the cast only shares the range walker. */
  for_canaries((unsigned char *)(uintptr_t)p, usable, mix64(id), from, to, check_range, &ctx);
}

void tmf_pattern_fill_dense(unsigned char *p, uint64_t id, size_t from, size_t to)
{
  if (from < to) fill_range(p, mix64(id), from, to, NULL);
}

void tmf_pattern_check_dense(const unsigned char *p, uint64_t id, size_t from, size_t to, const char *what)
{
  check_ctx_t ctx = {what, id, to, false};
  if (from < to) check_range((unsigned char *)(uintptr_t)p, mix64(id), from, to, &ctx);
}

void tmf_check_zero(const unsigned char *p, size_t n, const char *what)
{
  check_ctx_t ctx = {what, 0, n, true};
  unsigned char *q = (unsigned char *)(uintptr_t)p;
  size_t head = n < TMF_CANARY_PAGE ? n : TMF_CANARY_PAGE;
  check_range(q, 0, 0, head, &ctx);
  if (n > head) for_canaries(q, n, 0, head, n, check_range, &ctx);
}

tmf_block_t tmf_block_adopt(void *p, size_t requested, size_t alignment, uint64_t id, bool zeroed)
{
  tmf_block_t b;
  b.addr = (uintptr_t)p;
  b.requested = requested;
  b.alignment = alignment < 16 ? 16 : alignment;
  b.id = id;
  b.usable = tinymalloc_usable_size(p);
  TMF_REQUIRE(b.usable >= requested, "block %p: usable size %zu < requested %zu", p, b.usable, requested);
  TMF_REQUIRE(b.addr % b.alignment == 0, "block %p (size %zu) not aligned to %zu", p, requested, b.alignment);
  if (zeroed) tmf_check_zero(p, requested, "calloc");
  tmf_pattern_fill(p, b.usable, id, 0, b.usable);
  return b;
}

/* ---- Allocator state ------------------------------------------------------ */

/* True when usable_size is the block's size: the counters then count the
 * usable bytes exactly. Not in a tracked core, nor once this process has
 * used detection mode (both report requested sizes, the latter even for
 * blocks allocated after it was turned off again). */
static atomic_bool detect_used;

void tmf_note_detect_used(void) { atomic_store(&detect_used, true); }

bool tmf_detect_ever_used(void)
{
  if (atomic_load_explicit(&detect_used, memory_order_relaxed)) return true;
  if (tinymalloc_option_get("detect") > 0) {
    atomic_store(&detect_used, true);
    return true;
  }
  return false;
}

static bool usable_is_block_size(void) { return !TMF_TRACKED_CORE && !tmf_detect_ever_used(); }

/* Metadata mapped with no segment (after a trim): the segment map, heap
 * records. Until this process uses detection mode (whose tables and
 * quarantines are unmapped again) that never shrinks, and every segment
 * adds its header (at least a page) on top of it. 0: not taken yet. */
static size_t metadata_floor;

static void note_metadata_floor(const tinymalloc_stats_t *st)
{
  if (st->segments == 0 && !tmf_detect_ever_used()) metadata_floor = st->metadata_bytes;
}

void tmf_expect_live(size_t blocks, size_t usable_bytes, size_t slack)
{
  tinymalloc_counters_t c;
  tinymalloc_counters(&c);
  TMF_REQUIRE(c.live_blocks <= blocks && c.live_blocks + slack >= blocks,
              "counters: %zu live blocks, harness holds %zu (slack %zu)", c.live_blocks, blocks, slack);
  if (slack == 0) {
    /* An untracked core counts exactly the usable bytes it reports. */
    TMF_REQUIRE(usable_is_block_size() ? c.live_bytes == usable_bytes : c.live_bytes >= usable_bytes,
                "counters: %zu live bytes, harness holds %zu usable bytes", c.live_bytes, usable_bytes);
  }
}

void tmf_expect_stats_consistent(size_t blocks, size_t usable_bytes, size_t slack)
{
  tinymalloc_stats_t st;
  tinymalloc_counters_t c;
  TMF_REQUIRE(tinymalloc_stats(&st) == 0, "tinymalloc_stats failed");
  tinymalloc_counters(&c);
  TMF_REQUIRE(st.live_blocks == c.live_blocks && st.live_bytes == c.live_bytes && st.segments == c.segments,
              "stats (%zu blocks, %zu bytes, %zu segments) disagree with counters (%zu, %zu, %zu)", st.live_blocks,
              st.live_bytes, st.segments, c.live_blocks, c.live_bytes, c.segments);
  TMF_REQUIRE(st.live_blocks <= blocks && st.live_blocks + slack >= blocks,
              "stats: %zu live blocks, harness holds %zu (slack %zu)", st.live_blocks, blocks, slack);
  if (slack == 0)
    TMF_REQUIRE(usable_is_block_size() ? st.live_bytes == usable_bytes : st.live_bytes >= usable_bytes,
                "stats: %zu live bytes, harness holds %zu usable bytes", st.live_bytes, usable_bytes);
  TMF_REQUIRE(st.small_blocks + st.medium_blocks + st.large_blocks == st.live_blocks,
              "stats: %zu small + %zu medium + %zu large != %zu live", st.small_blocks, st.medium_blocks,
              st.large_blocks, st.live_blocks);
  size_t class_live = 0, arena_segments = 0;
  for (size_t i = 0; i < st.class_count && i < TINYMALLOC_MAX_CLASSES; i++)
    class_live += st.classes[i].live_blocks;
  for (size_t i = 0; i < st.arena_count && i < TINYMALLOC_MAX_ARENAS; i++)
    arena_segments += st.arenas[i].segments;
  TMF_REQUIRE(class_live == st.small_blocks, "stats: classes count %zu live, small_blocks %zu", class_live,
              st.small_blocks);
  TMF_REQUIRE(arena_segments == st.segments, "stats: arenas hold %zu segments, total %zu", arena_segments, st.segments);
  TMF_REQUIRE(st.mapped_bytes <= st.peak_mapped_bytes, "stats: mapped %zu above peak %zu", st.mapped_bytes,
              st.peak_mapped_bytes);
  TMF_REQUIRE(st.metadata_bytes <= st.mapped_bytes, "stats: metadata %zu above mapped %zu", st.metadata_bytes,
              st.mapped_bytes);
  /* Every segment has a header of at least a page. */
  TMF_REQUIRE(st.metadata_bytes >= st.segments * 4096, "stats: metadata %zu for %zu segments", st.metadata_bytes,
              st.segments);
  if (metadata_floor != 0 && !tmf_detect_ever_used())
    TMF_REQUIRE(st.metadata_bytes >= metadata_floor + st.segments * 4096,
                "stats: metadata %zu for %zu segments, %zu with none mapped", st.metadata_bytes, st.segments,
                metadata_floor);
  if (slack == 0)
    TMF_REQUIRE(st.total_allocs >= st.total_frees && st.total_allocs - st.total_frees == st.live_blocks,
                "stats: %zu allocations - %zu frees != %zu live", st.total_allocs, st.total_frees, st.live_blocks);
  /* The cumulative count never goes back. (This core derives the frees from
   * the allocations and the live count, so the check above holds whatever
   * the allocation counters say: this one catches a counter that runs
   * backwards. Called with every thread joined: no allocation half counted.) */
  static size_t last_total_allocs;
  TMF_REQUIRE(st.total_allocs >= last_total_allocs, "stats: %zu allocations in all, %zu at the previous call",
              st.total_allocs, last_total_allocs);
  last_total_allocs = st.total_allocs;
}

size_t tmf_attached_heaps(void)
{
  tinymalloc_stats_t st;
  TMF_REQUIRE(tinymalloc_stats(&st) == 0, "tinymalloc_stats failed");
  size_t n = 0;
  for (size_t i = 0; i < st.arena_count && i < TINYMALLOC_MAX_ARENAS; i++)
    n += st.arenas[i].threads;
  return n;
}

/* Mapped bytes of a warmed-up allocator with nothing live: metadata only.
 * Taken before the first input runs (so that a leak in the very first input
 * shows too); later deep checks may exceed it by at most TMF_METADATA_SLACK
 * (heap records for new threads), never by a segment or a large mapping. */
#define TMF_METADATA_SLACK ((size_t)512 << 10)
static size_t baseline_mapped;
static bool have_baseline;

static void begin_first_input(void)
{
  if (have_baseline) return;
  tmf_restore_options();
  /* Metadata a core makes once, on first use, belongs to the baseline. */
  static const size_t sizes[] = {1, 5000, 40000, (size_t)2 << 20};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
    tinyfree(tinymalloc(sizes[i]));
  tinymalloc_trim();
  tinymalloc_counters_t c;
  tinymalloc_counters(&c);
  baseline_mapped = c.mapped_bytes;
  tinymalloc_stats_t st;
  TMF_REQUIRE(tinymalloc_stats(&st) == 0, "tinymalloc_stats failed");
  note_metadata_floor(&st);
  have_baseline = true;
}

/* Every run: nothing may be live once the harness freed everything. */
static void end_of_run_cheap(void)
{
  tinymalloc_counters_t c;
  tinymalloc_counters(&c);
  TMF_REQUIRE(c.live_blocks == 0 && c.live_bytes == 0, "leak: %zu blocks / %zu bytes live after everything was freed",
              c.live_blocks, c.live_bytes);
}

/* Every deep_every inputs, and after every input when replaying: trim must
 * release every segment and large mapping, mapped memory must fall back to
 * the baseline, the full statistics must agree and tinymalloc_check() must
 * pass. Afterwards the allocator is as cold as at the start. */
/* A cached large mapping far larger than the request that reuses it is cut
 * to size (an excess over 32 MiB and 4 times the block); the cut mapping,
 * freed and cached again, must then serve a request as large as the first
 * one with every page there. Beyond what a run's budget lets an input ask
 * for, so the deep check asks, with the cache empty (after a trim). */
static void large_cache_cut_probe(void)
{
  static const size_t sizes[] = {(size_t)40 << 20, ((size_t)1 << 20) + 4096, (size_t)40 << 20};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    unsigned char *p = tinymalloc(sizes[i]);
    TMF_REQUIRE(p != NULL, "large cache probe: malloc(%zu) returned NULL", sizes[i]);
    tmf_block_t b = tmf_block_adopt(p, sizes[i], 16, UINT64_MAX - i, false);
    tmf_pattern_check(p, b.usable, b.id, 0, b.usable, "large cache probe");
    tinyfree(p);
  }
}

static void end_of_input_deep(void)
{
  tmf_expect_stats_consistent(0, 0, 0);
  tinymalloc_trim();
  large_cache_cut_probe();
  tinymalloc_trim();
  tinymalloc_stats_t st;
  TMF_REQUIRE(tinymalloc_stats(&st) == 0, "tinymalloc_stats failed");
  note_metadata_floor(&st);
  TMF_REQUIRE(st.segments == 0, "leak: %zu segments still mapped after trim with nothing live", st.segments);
  TMF_REQUIRE(st.large_blocks == 0 && st.medium_blocks == 0 && st.small_blocks == 0,
              "stats: %zu small / %zu medium / %zu large blocks live with nothing live", st.small_blocks,
              st.medium_blocks, st.large_blocks);
  TMF_REQUIRE(st.mapped_bytes <= baseline_mapped + TMF_METADATA_SLACK,
              "leak: %zu bytes mapped after trim, baseline %zu", st.mapped_bytes, baseline_mapped);
  int violations = tinymalloc_check();
  TMF_REQUIRE(violations == 0, "tinymalloc_check found %d violations at end of input", violations);
}

__attribute__((weak)) void tmf_harness_after_deep(void);

static unsigned inputs_since_deep;

int tmf_run(const uint8_t *data, size_t size)
{
  pthread_once(&watchdog_once, watchdog_start);
  begin_first_input();
  size_t start = 0;
  for (;;) {
    size_t end = size;
    for (size_t i = start; i + TMF_RUN_MARKER_LEN <= size; i++) {
      if (memcmp(data + i, tmf_run_marker, TMF_RUN_MARKER_LEN) == 0) {
        end = i;
        break;
      }
    }
    window_append(data + start, end - start);
    tmf_watchdog_note("the start of a run");
    size_t slack = tmf_harness_run_one(data + start, end - start);
    tmf_watchdog_note("the end-of-run check");
    (void)slack; /* nothing is held any more: the count must be exact */
    end_of_run_cheap();
    tmf_restore_options();
    if (end == size) break;
    start = end + TMF_RUN_MARKER_LEN;
  }
  if (++inputs_since_deep >= tmf_mode.deep_every || window_overflow) {
    tmf_watchdog_note("the deep end-of-input check");
    end_of_input_deep();
    inputs_since_deep = 0;
    window_reset();
    if (tmf_harness_after_deep) tmf_harness_after_deep();
  }
  watchdog_disarm();
  return 0;
}

static void strict_handler(tinymalloc_error_kind_t kind, const char *op, void *ptr, const char *message, void *arg)
{
  (void)arg;
  tmf_fail("unexpected misuse report (kind %d, %s of %p): %s", (int)kind, op, ptr, message);
}

void tmf_install_strict_handler(void) { tinymalloc_set_error_handler(strict_handler, NULL); }

/* ---- Options ---------------------------------------------------------------- */

static long default_junk = -2, default_purge = -2, default_show_errors = -2;
/* Options of detection mode (cores that have them; -1 when unknown). */
static const char *const detect_options[] = {"detect", "zero_on_free", "quarantine_count", "quarantine_bytes",
                                             "fill_all"};
#define TMF_DETECT_OPTIONS (sizeof detect_options / sizeof detect_options[0])
static long default_detect[TMF_DETECT_OPTIONS] = {-2, -2, -2, -2, -2};

/* The purge delay the runs start with, unless TINYMALLOC_PURGE_DELAY_MS
 * says otherwise: long enough that free pages stay mapped between ops and
 * between inputs (a purged page faults again on reuse), so that purges
 * happen where an input asks for them (option and trim ops, the deep check). */
#define TMF_PURGE_DELAY_MS 1000

static void remember_defaults(void)
{
  if (default_junk != -2) return;
  default_junk = tinymalloc_option_get("junk");
  default_purge = getenv("TINYMALLOC_PURGE_DELAY_MS") ? tinymalloc_option_get("purge_delay_ms") : TMF_PURGE_DELAY_MS;
  default_show_errors = tinymalloc_option_get("show_errors");
  for (size_t i = 0; i < TMF_DETECT_OPTIONS; i++)
    default_detect[i] = tinymalloc_option_get(detect_options[i]);
}

void tmf_restore_options(void)
{
  remember_defaults();
  if (default_junk >= 0 && tinymalloc_option_get("junk") != default_junk) tinymalloc_option_set("junk", default_junk);
  if (default_purge >= -1 && tinymalloc_option_get("purge_delay_ms") != default_purge)
    tinymalloc_option_set("purge_delay_ms", default_purge);
  if (default_show_errors >= 0 && tinymalloc_option_get("show_errors") != default_show_errors)
    tinymalloc_option_set("show_errors", default_show_errors);
  for (size_t i = 0; i < TMF_DETECT_OPTIONS; i++)
    if (default_detect[i] >= 0 && tinymalloc_option_get(detect_options[i]) != default_detect[i])
      tinymalloc_option_set(detect_options[i], default_detect[i]);
}

void tmf_apply_option_op(tmf_reader_t *r)
{
  remember_defaults();
  uint8_t selector = tmf_read_u8(r);
  uint8_t value = tmf_read_u8(r);
  switch (selector % 8) {
  case 0:
    tinymalloc_option_set("junk", value & 1);
    break;
  case 1:
    tinymalloc_option_set("purge_delay_ms", (long)value * 4);
    break;
  case 2: {
    /* Unknown names must be refused with EINVAL, case must not matter. */
    errno = 0;
    TMF_REQUIRE(tinymalloc_option_get("no_such_option") == -1 && errno == EINVAL,
                "option_get(unknown) did not fail with EINVAL");
    errno = 0;
    TMF_REQUIRE(tinymalloc_option_set("no_such_option", 1) == -1 && errno == EINVAL,
                "option_set(unknown) did not fail with EINVAL");
    long a = tinymalloc_option_get("JUNK"), b = tinymalloc_option_get("junk");
    TMF_REQUIRE(a == b, "option names are case-sensitive (JUNK %ld, junk %ld)", a, b);
    break;
  }
  case 3: {
    /* Printed into a memory file and read back: the JSON form must list
     * every class and every arena in use, the text form must have its
     * arena table. */
    static pthread_mutex_t print_lock = PTHREAD_MUTEX_INITIALIZER; /* threads: one at a time */
    static int out = -1;
    pthread_mutex_lock(&print_lock);
    if (out < 0) out = memfd_create("tmf-stats", MFD_CLOEXEC);
    if (out < 0) {
      pthread_mutex_unlock(&print_lock);
      break;
    }
    TMF_REQUIRE(ftruncate(out, 0) == 0 && lseek(out, 0, SEEK_SET) == 0, "stats: memory file reset failed");
    tinymalloc_stats_print(out, value & 1);
    static char text[65536];
    ssize_t n = pread(out, text, sizeof text - 1, 0);
    TMF_REQUIRE(n > 0, "tinymalloc_stats_print printed nothing");
    text[n] = '\0';
    tinymalloc_stats_t st;
    TMF_REQUIRE(tinymalloc_stats(&st) == 0, "tinymalloc_stats failed");
    if (value & 1) {
      size_t classes = 0, arenas = 0;
      for (const char *q = text; (q = strstr(q, "\"block_size\":")) != NULL; q++)
        classes++;
      for (const char *q = text; (q = strstr(q, "\"threads\":")) != NULL; q++)
        arenas++;
      TMF_REQUIRE(text[0] == '{' && text[n - 1] == '\n' && text[n - 2] == '}', "stats JSON is not one object: %.80s",
                  text);
      TMF_REQUIRE(classes == st.class_count && arenas == st.arena_count,
                  "stats JSON lists %zu classes and %zu arenas, tinymalloc_stats %zu and %zu", classes, arenas,
                  st.class_count, st.arena_count);
    } else {
      /* The arena table: a header line, then one line per arena of six
       * numbers, the first the arena's index. */
      const char *t = strstr(text, "arenas\n");
      TMF_REQUIRE(t != NULL, "stats text has no arena table");
      t = strchr(t + 7, '\n');
      TMF_REQUIRE(t != NULL, "stats text: the arena table has no header");
      for (size_t a = 0; a < st.arena_count; a++) {
        const char *line = t + 1, *end = strchr(line, '\n');
        TMF_REQUIRE(end != NULL, "stats text lists %zu arenas, tinymalloc_stats %zu", a, st.arena_count);
        unsigned long long first = ~0ull;
        unsigned fields = 0;
        for (const char *c = line; c < end;) {
          while (c < end && *c == ' ')
            c++;
          if (c == end) break;
          TMF_REQUIRE(*c >= '0' && *c <= '9', "stats text: arena line '%.*s' is not numbers", (int)(end - line), line);
          if (fields++ == 0) first = strtoull(c, NULL, 10);
          while (c < end && *c >= '0' && *c <= '9')
            c++;
        }
        TMF_REQUIRE(fields == 6 && first == a, "stats text: arena line '%.*s' (%u numbers, arena %zu)",
                    (int)(end - line), line, fields, a);
        t = end;
      }
    }
    pthread_mutex_unlock(&print_lock);
    break;
  }
  case 4:
    tinymalloc_option_set("show_errors", value & 1);
    break;
  case 6: /* detection mode on or off, and fill_all (cores without them refuse the names): blocks
           * waiting in a quarantine were filled under the setting before */
    if (tinymalloc_option_set("detect", value & 1) == 0 && (value & 1)) atomic_store(&detect_used, true);
    (void)tinymalloc_option_set("fill_all", (value >> 1) & 1);
    break;
  case 7: /* zero_on_free, or a quarantine of value blocks / 4 KiB * value */
    (void)tinymalloc_option_set(detect_options[1 + value % 3],
                                value % 3 == 0 ? (value >> 2) & 1 : (long)value * (value % 3 == 2 ? 4096 : 1));
    break;
  default: {
    /* Out-of-range and after-init settings must not break anything. */
    (void)tinymalloc_option_set("arenas", (long)value - 8);
    (void)tinymalloc_option_set("purge_delay_ms", -1 - (long)value);
    break;
  }
  }
}
