/* Harness "misuse": the ops of harness "ops" plus deliberate double frees,
 * interior, near-miss, wild and foreign frees, and invalid realloc and
 * usable_size calls, and double frees where one of the two frees comes from
 * another thread, with an error handler installed. Every misuse must be
 * reported exactly once, change nothing, and leave tinymalloc_check() clean. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "ops.h"

const char tmf_harness_name[] = "misuse";

enum misuse_opcode_e {
  MISUSE_DOUBLE_FREE = TMF_OP_COUNT,
  MISUSE_INTERIOR_FREE,
  MISUSE_FOREIGN_FREE,
  MISUSE_BAD_REALLOC,
  MISUSE_BAD_USABLE_SIZE,
  MISUSE_REMOTE_DOUBLE_FREE,
  MISUSE_OPCODE_COUNT
};

typedef struct report_log_s {
  unsigned count;
  tinymalloc_error_kind_t kind;
  void *ptr;
  const char *op;
} report_log_t;

static report_log_t reports;

static void counting_handler(tinymalloc_error_kind_t kind, const char *op, void *ptr, const char *message, void *arg)
{
  (void)message;
  (void)arg;
  reports.count++;
  reports.kind = kind;
  reports.ptr = ptr;
  reports.op = op;
}

/* A misuse is about to happen: forget earlier reports. */
static void expect_begin(void) { reports.count = 0; }

/* Exactly one report, about ptr, of an acceptable kind. */
static void expect_reported(void *ptr, const char *what, bool may_be_double)
{
  TMF_REQUIRE(reports.count == 1, "%s of %p: reported %u times, expected once", what, ptr, reports.count);
  TMF_REQUIRE(reports.ptr == ptr, "%s of %p: report names %p", what, ptr, reports.ptr);
  TMF_REQUIRE(reports.kind != TINYMALLOC_ERROR_CORRUPTION, "%s of %p: reported as corruption", what, ptr);
  if (!may_be_double)
    TMF_REQUIRE(reports.kind != TINYMALLOC_ERROR_DOUBLE_FREE, "%s of %p: reported as a double free", what, ptr);
}

static void expect_heap_clean(tmf_ops_t *ctx)
{
  int violations = tinymalloc_check();
  TMF_REQUIRE(violations == 0, "tinymalloc_check found %d violations after a misuse", violations);
  tmf_ops_expect_stats(ctx);
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
  default:
    return;
  }
  expect_heap_clean(ctx);
}

int tmf_harness_run(const uint8_t *data, size_t size)
{
  static tmf_ops_t ctx;
  char stack_bytes[64];
  void *system_block = malloc(64);
  TMF_REQUIRE(system_block != NULL, "system malloc failed");
  tinymalloc_set_error_handler(counting_handler, NULL);
  last_freed = 0;
  tmf_begin_input();
  tmf_reader_t r;
  tmf_reader_init(&r, data, size);
  tmf_ops_init(&ctx, false);
  while (!tmf_reader_done(&r)) {
    unsigned opcode = tmf_read_u8(&r) % MISUSE_OPCODE_COUNT;
    expect_begin();
    if (opcode < TMF_OP_COUNT)
      tmf_ops_step(&ctx, &r, opcode);
    else
      misuse_step(&ctx, &r, opcode, stack_bytes, system_block);
    if (opcode < TMF_OP_COUNT)
      TMF_REQUIRE(reports.count == 0, "op %u: unexpected misuse report about %p", opcode, reports.ptr);
    tmf_ops_expect_stats(&ctx);
  }
  expect_begin();
  tmf_ops_finish(&ctx);
  TMF_REQUIRE(reports.count == 0, "unexpected misuse report about %p while freeing", reports.ptr);
  tmf_end_of_input();
  free(system_block);
  return 0;
}
