/* Harness "misuse": the ops of harness "ops" plus deliberate double frees,
 * interior, near-miss, wild and foreign frees, and invalid realloc and
 * usable_size calls, double frees where one of the two frees comes from
 * another thread, and misuse by a thread with a pending cancellation, with
 * an error handler installed that allocates and frees small, medium and
 * large blocks while it handles the report (reentrancy). Every misuse must
 * be reported exactly once, change nothing, and leave tinymalloc_check()
 * clean; a handler that deadlocks is caught by the watchdog. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ops.h"

const char tmf_harness_name[] = "misuse";

enum misuse_opcode_e {
  MISUSE_DOUBLE_FREE = TMF_OP_COUNT,
  MISUSE_INTERIOR_FREE,
  MISUSE_FOREIGN_FREE,
  MISUSE_BAD_REALLOC,
  MISUSE_BAD_USABLE_SIZE,
  MISUSE_REMOTE_DOUBLE_FREE,
  MISUSE_HANDLER,
  MISUSE_CANCEL,
  MISUSE_OPCODE_COUNT
};

/* What the handler allocates while it handles a report (MISUSE_HANDLER). */
enum {
  REENTER_SMALL = 1,
  REENTER_MEDIUM = 2,
  REENTER_LARGE = 4,
  REENTER_REALLOC = 8, /* one block grown small -> medium -> large, then shrunk */
  REENTER_ALIGNED = 16 /* calloc and memalign */
};
#define REENTER_DEFAULT (REENTER_SMALL | REENTER_MEDIUM | REENTER_LARGE)

typedef struct report_log_s {
  unsigned count;
  tinymalloc_error_kind_t kind;
  void *ptr;
  const char *op;
  char message[320]; /* the report line */
} report_log_t;

static report_log_t reports;
static unsigned reenter_mask = REENTER_DEFAULT;
static _Thread_local bool in_handler;

/* A block the handler allocates: usable, aligned, its edges writable and
 * kept, then freed. No per-page canaries: the handler runs for every
 * report, and a large block's pages would all fault. */
static void *reenter_check(void *p, size_t n, size_t alignment, const char *what)
{
  TMF_REQUIRE(p != NULL, "handler: %s(%zu) returned NULL during a report", what, n);
  TMF_REQUIRE((uintptr_t)p % alignment == 0, "handler: %s(%zu) = %p not aligned to %zu", what, n, p, alignment);
  size_t usable = tinymalloc_usable_size(p);
  TMF_REQUIRE(usable >= n, "handler: %s(%zu): usable size %zu", what, n, usable);
  if (n >= 8) {
    unsigned char *b = p;
    b[0] = 0x5c;
    b[n - 1] = 0xc5;
  }
  return p;
}

static void reenter_free(void *p, size_t n)
{
  if (n >= 8) {
    const unsigned char *b = p;
    TMF_REQUIRE(b[0] == 0x5c && b[n - 1] == 0xc5, "handler: block %p of %zu bytes changed", p, n);
  }
  tinyfree(p);
}

/* Allocates and frees while a report is being handled: a core that reports
 * while it holds a lock deadlocks here (the watchdog names the op). */
static void reenter(unsigned mask)
{
  static const size_t sizes[3] = {40, 40000, ((size_t)3 << 19) + 5};
  for (int i = 0; i < 3; i++) {
    if (!(mask & (1u << i))) continue;
    void *p = reenter_check(tinymalloc(sizes[i]), sizes[i], 16, "malloc");
    reenter_free(p, sizes[i]);
  }
  if (mask & REENTER_REALLOC) {
    void *p = reenter_check(tinymalloc(100), 100, 16, "malloc");
    for (size_t i = 0; i < 4; i++) {
      static const size_t steps[4] = {30000, (size_t)5 << 20, 3000, 64};
      unsigned char *q = tinyrealloc(p, steps[i]);
      TMF_REQUIRE(q != NULL && q[0] == 0x5c, "handler: realloc to %zu lost the block", steps[i]);
      p = reenter_check(q, steps[i], 16, "realloc");
    }
    reenter_free(p, 64);
  }
  if (mask & REENTER_ALIGNED) {
    unsigned char *z = tinycalloc(3, 7000);
    TMF_REQUIRE(z != NULL && z[0] == 0 && z[20999] == 0, "handler: calloc(3, 7000) not zeroed");
    reenter_free(reenter_check(z, 21000, 16, "calloc"), 21000);
    reenter_free(reenter_check(tinymemalign(8192, 5000), 5000, 8192, "memalign"), 5000);
  }
}

/* Detection mode (plain builds: in a sanitizer build the mode is off and the
 * write would be the sanitizer's finding): a medium block of more than
 * 64 KiB, whose fill is checked at its edges, is freed into a quarantine of
 * one block; a word in its last 32 KiB is changed; the next free pushes it
 * out: exactly one write-after-free report, naming it. */
static void write_after_free_probe(void)
{
#if !TMF_TRACKED_CORE
  long detect = tinymalloc_option_get("detect"), count = tinymalloc_option_get("quarantine_count");
  if (tinymalloc_option_set("detect", 1) != 0) return; /* a core without detection mode */
  tmf_note_detect_used();
  TMF_REQUIRE(tinymalloc_option_set("quarantine_count", 1) == 0, "quarantine_count 1 refused");
  size_t size = 100000;
  reports.count = 0;
  unsigned char *p = tinymalloc(size), *q = tinymalloc(64);
  TMF_REQUIRE(p != NULL && q != NULL, "write-after-free probe: malloc failed");
  tinyfree(p); /* p may be an earlier probe's block: its damage was reported then, never again */
  TMF_REQUIRE(reports.count == 0, "write-after-free probe: a report about %p before the write", reports.ptr);
  p[size - 8] ^= 0x5a; /* the program's bug: a write after free */
  tinyfree(q);         /* the quarantine holds one block: p leaves it, checked */
  TMF_REQUIRE(reports.count == 1 && reports.kind == TINYMALLOC_ERROR_WRITE_AFTER_FREE && reports.ptr == p,
              "write after free of %p (100000 bytes, byte 99992): %u reports, kind %d about %p, expected one of "
              "kind %d about it",
              (void *)p, reports.count, (int)reports.kind, reports.ptr, (int)TINYMALLOC_ERROR_WRITE_AFTER_FREE);
  tinymalloc_option_set("quarantine_count", count);
  tinymalloc_option_set("detect", detect);
#endif
}

static void counting_handler(tinymalloc_error_kind_t kind, const char *op, void *ptr, const char *message, void *arg)
{
  (void)arg;
  TMF_REQUIRE(!in_handler, "misuse report about %p while the handler was handling another (%s)", ptr, message);
  /* The documented line: "tinymalloc: <what> <pointer> (<detail>)". */
  char hex[32];
  snprintf(hex, sizeof hex, "%p", ptr);
  size_t len = strlen(message);
  TMF_REQUIRE(strncmp(message, "tinymalloc: ", 12) == 0 && strstr(message, hex) != NULL && len > 0 &&
                  message[len - 1] == ')' && strchr(message, '(') != NULL,
              "misuse report about %p is not one line 'tinymalloc: ... %s (...)': '%s'", ptr, hex, message);
  reports.count++;
  reports.kind = kind;
  reports.ptr = ptr;
  reports.op = op;
  snprintf(reports.message, sizeof reports.message, "%s", message);
  in_handler = true;
  reenter(reenter_mask);
  in_handler = false;
}

/* A misuse is about to happen: forget earlier reports. */
static void expect_begin(void) { reports.count = 0; }

/* Exactly one report, about ptr, of an acceptable kind. */
static void expect_reported(void *ptr, const char *what, bool may_be_double)
{
  TMF_REQUIRE(reports.count == 1, "%s of %p: reported %u times, expected once", what, ptr, reports.count);
  TMF_REQUIRE(reports.ptr == ptr, "%s of %p: report names %p", what, ptr, reports.ptr);
  if (!may_be_double)
    TMF_REQUIRE(reports.kind != TINYMALLOC_ERROR_DOUBLE_FREE, "%s of %p: reported as a double free", what, ptr);
}

/* After a misuse: the counters must not have moved, and the metadata must be
 * consistent (tinymalloc_check walks all of it: every misuse op when
 * replaying, every few when fuzzing warm). */
static unsigned check_due;

static void expect_heap_clean(tmf_ops_t *ctx)
{
  tmf_ops_expect_stats(ctx);
  if (!tmf_due(&check_due, 8)) return;
  tmf_watchdog_note("tinymalloc_check after a misuse");
  int violations = tinymalloc_check();
  TMF_REQUIRE(violations == 0, "tinymalloc_check found %d violations after a misuse", violations);
}

/* A pointer the harness must not own: picked from the input among stack,
 * global, system-heap, near-miss and wild addresses. Returns NULL when the
 * pick lands on a live block (that would not be a misuse). */
static char global_bytes[64];
/* The block most recently given back by a misuse op: a stale pointer. */
static uintptr_t last_freed;

static void *pick_bad_pointer(tmf_ops_t *ctx, tmf_reader_t *r, char *stack_bytes, void *system_block)
{
  uint8_t kind = tmf_read_u8(r);
  uint16_t delta = tmf_read_u16(r);
  uintptr_t addr;
  switch (kind % 7) {
  case 0:
    addr = (uintptr_t)(stack_bytes + (delta % 48));
    break;
  case 1:
    addr = (uintptr_t)(global_bytes + (delta % 48));
    break;
  case 2:
    addr = (uintptr_t)system_block;
    break;
  case 3: { /* just before or after a live block, or between blocks */
    uintptr_t base = ctx->slots[kind % TMF_SLOTS];
    if (base == 0)
      base = ctx->shadow.count ? tmf_shadow_nth(&ctx->shadow, delta % ctx->shadow.count)->addr : (uintptr_t)stack_bytes;
    addr = (kind & 0x80) ? base - 1 - (delta % 65536) : base + (delta % 65536) * 16;
    break;
  }
  case 4: /* 16-aligned, anywhere in the low 47-bit address space */
    addr = (uintptr_t)(tmf_read_u64(r) & 0x7ffffffffff0ull);
    break;
  case 6: /* a block freed earlier: double free, stale realloc, stale usable_size */
    addr = last_freed ? last_freed : (uintptr_t)global_bytes;
    break;
  default: /* within 8 MiB of a segment boundary near a live block */
    addr = ctx->shadow.count ? tmf_shadow_nth(&ctx->shadow, delta % ctx->shadow.count)->addr : (uintptr_t)stack_bytes;
    addr = (addr & ~(uintptr_t)0x3fffff) + ((uintptr_t)(kind >> 3) << 19) - ((uintptr_t)1 << 23) + (delta & 0xfff0);
    break;
  }
  if (addr == 0 || tmf_shadow_find_containing(&ctx->shadow, addr) != NULL) return NULL;
  return (void *)addr;
}

static void *free_in_thread(void *p)
{
  tinyfree(p);
  return NULL;
}

/* A thread with a pending deferred cancellation misuses the API (or prints
 * the statistics): nothing in tinymalloc may be a cancellation point, so the
 * report must reach the handler and the thread must come back to its own
 * pthread_testcancel(). */
typedef struct cancel_arg_s {
  void *ptr;
  unsigned mode;
  int devnull; /* opened before: open() is a cancellation point */
  atomic_int go;
  atomic_int reached;
} cancel_arg_t;

static void *cancel_main(void *arg)
{
  cancel_arg_t *a = arg;
  while (!atomic_load(&a->go)) {
  } /* no cancellation point while the cancellation arrives */
  if (a->mode == 2) {
    tinymalloc_stats_print(a->devnull, 0);
  } else {
    tinyfree(a->ptr);
  }
  atomic_store(&a->reached, 1);
  pthread_testcancel();
  return NULL;
}

static void run_cancelled(void *ptr, unsigned mode)
{
  cancel_arg_t a;
  static int devnull = -1;
  if (devnull < 0) devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
  a.ptr = ptr;
  a.mode = mode;
  a.devnull = devnull;
  atomic_init(&a.go, 0);
  atomic_init(&a.reached, 0);
  pthread_t t;
  TMF_REQUIRE(pthread_create(&t, NULL, cancel_main, &a) == 0, "pthread_create failed");
  TMF_REQUIRE(pthread_cancel(t) == 0, "pthread_cancel failed");
  atomic_store(&a.go, 1);
  void *ret = NULL;
  pthread_join(t, &ret);
  static const char *const what[3] = {"a double free", "an interior free", "tinymalloc_stats_print"};
  TMF_REQUIRE(atomic_load(&a.reached), "a thread with a pending cancellation was cancelled inside %s of %p", what[mode],
              ptr);
  TMF_REQUIRE(ret == PTHREAD_CANCELED, "the cancellation was lost (thread returned %p)", ret);
}

static void misuse_step(tmf_ops_t *ctx, tmf_reader_t *r, unsigned opcode, char *stack_bytes, void *system_block)
{
  tmf_block_t b;
  switch (opcode) {
  case MISUSE_DOUBLE_FREE: {
    if (!tmf_ops_take(ctx, tmf_read_u8(r), &b)) return;
    tmf_ops_release(&b);
    last_freed = b.addr;
    expect_begin();
    tinyfree((void *)b.addr);
    expect_reported((void *)b.addr, "double free", true);
    /* A block that was handed out is not "never handed out": a double free,
     * unless its memory already went back to the OS (then nothing tells). */
    TMF_REQUIRE(reports.kind == TINYMALLOC_ERROR_DOUBLE_FREE || strstr(reports.message, "returned to the OS") != NULL,
                "double free of %p reported as kind %d: %s", (void *)b.addr, (int)reports.kind, reports.message);
    break;
  }
  case MISUSE_REMOTE_DOUBLE_FREE: {
    /* Both orders: freed here then again by another thread, or freed by
     * another thread (a remote free) then again here. */
    uint8_t slot = tmf_read_u8(r);
    bool remote_first = slot & 1;
    if (!tmf_ops_take(ctx, slot, &b)) return;
    tmf_pattern_check((const unsigned char *)b.addr, b.usable, b.id, 0, b.usable, "free");
    pthread_t thread;
    if (remote_first) {
      expect_begin();
      TMF_REQUIRE(pthread_create(&thread, NULL, free_in_thread, (void *)b.addr) == 0, "pthread_create failed");
      pthread_join(thread, NULL);
      TMF_REQUIRE(reports.count == 0, "remote free of live block %p reported", (void *)b.addr);
      tinyfree((void *)b.addr);
    } else {
      tinyfree((void *)b.addr);
      expect_begin();
      TMF_REQUIRE(pthread_create(&thread, NULL, free_in_thread, (void *)b.addr) == 0, "pthread_create failed");
      pthread_join(thread, NULL);
    }
    last_freed = b.addr;
    expect_reported((void *)b.addr, "double free across threads", true);
    break;
  }
  case MISUSE_INTERIOR_FREE: {
    unsigned slot = tmf_read_u8(r);
    uint16_t offset = tmf_read_u16(r);
    if (!tmf_ops_take(ctx, slot, &b)) return;
    if (b.usable > 1) {
      void *inside = (void *)(b.addr + 1 + offset % (b.usable - 1));
      expect_begin();
      tinyfree(inside);
      expect_reported(inside, "interior free", false);
    }
    tmf_pattern_check((const unsigned char *)b.addr, b.usable, b.id, 0, b.usable, "after interior free");
    tmf_ops_put(ctx, slot, &b);
    break;
  }
  case MISUSE_FOREIGN_FREE: {
    void *bad = pick_bad_pointer(ctx, r, stack_bytes, system_block);
    if (bad == NULL) return;
    expect_begin();
    tinyfree(bad);
    expect_reported(bad, "foreign free", true);
    break;
  }
  case MISUSE_BAD_REALLOC: {
    void *bad = pick_bad_pointer(ctx, r, stack_bytes, system_block);
    size_t size = tmf_read_size(r);
    if (bad == NULL) return;
    expect_begin();
    errno = 0;
    void *p = tinyrealloc(bad, size);
    expect_reported(bad, "realloc", true);
    TMF_REQUIRE(p == NULL && errno == EINVAL, "realloc(%p) of a bad pointer = %p errno %d", bad, p, errno);
    break;
  }
  case MISUSE_BAD_USABLE_SIZE: {
    void *bad = pick_bad_pointer(ctx, r, stack_bytes, system_block);
    if (bad == NULL) return;
    expect_begin();
    size_t usable = tinymalloc_usable_size(bad);
    expect_reported(bad, "usable_size", true);
    TMF_REQUIRE(usable == 0, "usable_size(%p) of a bad pointer = %zu", bad, usable);
    break;
  }
  case MISUSE_HANDLER: {
    uint8_t mask = tmf_read_u8(r);
    reenter_mask = mask & 31;
    if (tmf_disabled("reenter")) reenter_mask = 0;
    if ((mask & 0x20) && !tmf_disabled("write_after_free")) write_after_free_probe();
    return;
  }
  case MISUSE_CANCEL: {
    unsigned slot = tmf_read_u8(r);
    unsigned mode = tmf_read_u8(r) % 3;
    if (TMF_UNDER_TSAN) return; /* TSan (clang 14) reports its own races in cancellation */
    if (mode == 2) {
      run_cancelled(NULL, 2);
      TMF_REQUIRE(reports.count == 0, "stats_print: unexpected misuse report about %p", reports.ptr);
      break;
    }
    if (!tmf_ops_take(ctx, slot, &b)) return;
    if (mode == 0) {
      tmf_ops_release(&b);
      last_freed = b.addr;
      expect_begin();
      run_cancelled((void *)b.addr, 0);
      expect_reported((void *)b.addr, "double free by a thread being cancelled", true);
    } else {
      if (b.usable <= 1) {
        tmf_ops_put(ctx, slot, &b);
        return;
      }
      void *inside = (void *)(b.addr + 1 + (b.id % (b.usable - 1)));
      expect_begin();
      run_cancelled(inside, 1);
      expect_reported(inside, "interior free by a thread being cancelled", false);
      tmf_pattern_check((const unsigned char *)b.addr, b.usable, b.id, 0, b.usable, "after interior free");
      tmf_ops_put(ctx, slot, &b);
    }
    break;
  }
  default:
    return;
  }
  expect_heap_clean(ctx);
}

static const char *misuse_name(unsigned opcode)
{
  static const char *const names[] = {"op double_free", "op interior_free",   "op foreign_free",
                                      "op bad_realloc", "op bad_usable_size", "op remote_double_free",
                                      "op handler",     "op cancel"};
  return opcode < TMF_OP_COUNT ? tmf_ops_name(opcode) : names[opcode - TMF_OP_COUNT];
}

size_t tmf_harness_run_one(const uint8_t *data, size_t size)
{
  static tmf_ops_t ctx;
  char stack_bytes[64];
  void *system_block = malloc(64);
  TMF_REQUIRE(system_block != NULL, "system malloc failed");
  tinymalloc_set_error_handler(counting_handler, NULL);
  last_freed = 0;
  reenter_mask = tmf_disabled("reenter") ? 0 : REENTER_DEFAULT;
  tmf_reader_t r;
  tmf_reader_init(&r, data, size);
  tmf_ops_init(&ctx, false);
  unsigned due = 0;
  while (!tmf_reader_done(&r)) {
    size_t op_start = r.pos;
    unsigned opcode = tmf_read_u8(&r) % MISUSE_OPCODE_COUNT;
    tmf_watchdog_note(misuse_name(opcode));
    if (tmf_disabled(misuse_name(opcode))) {
      tmf_skip_operands(&r, opcode);
      continue;
    }
    expect_begin();
    if (opcode < TMF_OP_COUNT) {
      tmf_ops_step(&ctx, &r, opcode);
      TMF_REQUIRE(reports.count == 0, "%s: unexpected misuse report about %p", misuse_name(opcode), reports.ptr);
      if (tmf_due(&due, 8) || opcode == TMF_OP_CHECK) tmf_ops_expect_stats(&ctx);
    } else {
      misuse_step(&ctx, &r, opcode, stack_bytes, system_block); /* checks the counters itself */
    }
    tmf_check_decoded(&r, op_start, opcode);
  }
  tmf_ops_expect_stats(&ctx);
  expect_begin();
  tmf_ops_finish(&ctx);
  TMF_REQUIRE(reports.count == 0, "unexpected misuse report about %p while freeing", reports.ptr);
  free(system_block);
  return 0;
}
