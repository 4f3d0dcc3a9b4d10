/* The fuzz harnesses' common ground: failure reporting, operand decoding
 * (sizes, alignments), the per-block content pattern and the end-of-input
 * check that every input leaves tinymalloc as it found it. Uses only the
 * public API; never relies on allocator internals. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_common.h"

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
  ssize_t ignored = write(2, prefix, sizeof prefix - 1);
  ignored = write(2, line, (size_t)n + 1);
  (void)ignored;
  abort();
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

size_t tmf_read_size(tmf_reader_t *r)
{
  uint8_t selector = tmf_read_u8(r);
  size_t v = tmf_read_u16(r);
  switch (selector % 16) {
  case 0:
  case 1:
  case 2:
    return v % 1025; /* tiny: 0..1 KiB, the densest classes */
  case 3:
  case 4:
  case 5:
    return v % 16385; /* anywhere in the small range */
  case 6:
  case 7:
  case 8:
    return 16385 + ((v << 4) % ((1u << 20) - 16384)); /* medium */
  case 9:
    return ((size_t)1 << 20) + 1 + v * 48; /* large: 1 MiB .. 4 MiB */
  case 10:
  case 11:
  case 12:
  case 13: {
    size_t base = boundary_sizes[v % TMF_BOUNDARY_COUNT];
    size_t delta = (v >> 8) % 5;
    if (base + delta < 2) return 0;
    return base + delta - 2;
  }
  case 14:
    return v;
  default:
    return 0;
  }
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

/* ---- Pattern ---------------------------------------------------------------- */

/* Word access to block bytes without memcpy: under ASan, memcpy is
 * intercepted and checked as a region, which made the pattern walk the
 * harness's most expensive part. */
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

/* Calls fn on the parts of [from, to) that the pattern covers. */
typedef void (*range_fn)(unsigned char *p, uint64_t seed, size_t from, size_t to, const void *ctx);

static void for_covered(unsigned char *p, size_t usable, uint64_t seed, size_t from, size_t to, range_fn fn,
                        const void *ctx)
{
  if (to > usable) to = usable;
  if (from >= to) return;
  if (usable <= TMF_FULL_PATTERN_BYTES) {
    fn(p, seed, from, to, ctx);
    return;
  }
  size_t head_end = TMF_EDGE_PATTERN_BYTES;
  size_t tail_start = usable - TMF_EDGE_PATTERN_BYTES;
  if (from < head_end) fn(p, seed, from, to < head_end ? to : head_end, ctx);
  if (to > tail_start) fn(p, seed, from > tail_start ? from : tail_start, to, ctx);
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
} check_ctx_t;

static void check_range(unsigned char *p, uint64_t seed, size_t from, size_t to, const void *ctx)
{
  const check_ctx_t *c = ctx;
  size_t i = from;
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
  tmf_fail("%s: block #%llu at %p (usable %zu) corrupted at offset %zu: byte 0x%02x, expected 0x%02x", c->what,
           (unsigned long long)c->id, (void *)p, c->usable, i, p[i], pattern_byte(seed, i));
}

void tmf_pattern_fill(unsigned char *p, size_t usable, uint64_t id, size_t from, size_t to)
{
  for_covered(p, usable, mix64(id), from, to, fill_range, NULL);
}

void tmf_pattern_check(const unsigned char *p, size_t usable, uint64_t id, size_t from, size_t to, const char *what)
{
  check_ctx_t ctx = {what, id, usable};
  /* check_range never writes; the cast only shares the range walker. */
  for_covered((unsigned char *)(uintptr_t)p, usable, mix64(id), from, to, check_range, &ctx);
}

void tmf_check_zero(const unsigned char *p, size_t n, const char *what)
{
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    if (load_word(p + i) != 0) break;
  for (; i < n; i++)
    if (p[i] != 0) tmf_fail("%s: byte %zu of %zu at %p is 0x%02x, expected zero", what, i, n, (const void *)p, p[i]);
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

void tmf_expect_live(size_t blocks, size_t usable_bytes)
{
  tinymalloc_stats_t st;
  TMF_REQUIRE(tinymalloc_stats(&st) == 0, "tinymalloc_stats failed");
  TMF_REQUIRE(st.live_blocks == blocks, "stats: %zu live blocks, harness holds %zu", st.live_blocks, blocks);
  TMF_REQUIRE(st.live_bytes >= usable_bytes, "stats: %zu live bytes, harness holds %zu usable bytes", st.live_bytes,
              usable_bytes);
}

/* Mapped bytes of a warmed-up allocator with nothing live: metadata only.
 * Taken before the first input runs (so that a leak in the very first input
 * shows too); later resets may exceed it by at most TMF_METADATA_SLACK (heap
 * records for new threads), never by a segment or a large mapping. */
#define TMF_METADATA_SLACK ((size_t)512 << 10)
static size_t baseline_mapped;
static bool have_baseline;

void tmf_begin_input(void)
{
  if (have_baseline) return;
  tinyfree(tinymalloc(1));
  tinymalloc_trim();
  tinymalloc_stats_t st;
  TMF_REQUIRE(tinymalloc_stats(&st) == 0, "tinymalloc_stats failed");
  baseline_mapped = st.mapped_bytes;
  have_baseline = true;
}

void tmf_end_of_input(void)
{
  tinymalloc_stats_t st;
  TMF_REQUIRE(tinymalloc_stats(&st) == 0, "tinymalloc_stats failed");
  TMF_REQUIRE(st.live_blocks == 0 && st.live_bytes == 0, "leak: %zu blocks / %zu bytes live after everything was freed",
              st.live_blocks, st.live_bytes);
  tinymalloc_trim();
  TMF_REQUIRE(tinymalloc_stats(&st) == 0, "tinymalloc_stats failed");
  TMF_REQUIRE(st.segments == 0, "leak: %zu segments still mapped after trim with nothing live", st.segments);
  TMF_REQUIRE(st.large_blocks == 0 && st.medium_blocks == 0 && st.small_blocks == 0,
              "stats: %zu small / %zu medium / %zu large blocks live with nothing live", st.small_blocks,
              st.medium_blocks, st.large_blocks);
  TMF_REQUIRE(have_baseline, "tmf_begin_input was not called");
  TMF_REQUIRE(st.mapped_bytes <= baseline_mapped + TMF_METADATA_SLACK,
              "leak: %zu bytes mapped after trim, baseline %zu", st.mapped_bytes, baseline_mapped);
  int violations = tinymalloc_check();
  TMF_REQUIRE(violations == 0, "tinymalloc_check found %d violations at end of input", violations);
  tmf_restore_options();
}

static void strict_handler(tinymalloc_error_kind_t kind, const char *op, void *ptr, const char *message, void *arg)
{
  (void)arg;
  tmf_fail("unexpected misuse report (kind %d, %s of %p): %s", (int)kind, op, ptr, message);
}

void tmf_install_strict_handler(void) { tinymalloc_set_error_handler(strict_handler, NULL); }

/* ---- Options ---------------------------------------------------------------- */

static long default_junk = -2, default_purge = -2, default_show_errors = -2;

static void remember_defaults(void)
{
  if (default_junk != -2) return;
  default_junk = tinymalloc_option_get("junk");
  default_purge = tinymalloc_option_get("purge_delay_ms");
  default_show_errors = tinymalloc_option_get("show_errors");
}

void tmf_restore_options(void)
{
  remember_defaults();
  if (default_junk >= 0) tinymalloc_option_set("junk", default_junk);
  if (default_purge >= 0) tinymalloc_option_set("purge_delay_ms", default_purge);
  if (default_show_errors >= 0) tinymalloc_option_set("show_errors", default_show_errors);
}

void tmf_apply_option_op(tmf_reader_t *r)
{
  remember_defaults();
  uint8_t selector = tmf_read_u8(r);
  uint8_t value = tmf_read_u8(r);
  switch (selector % 6) {
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
    static int devnull = -1;
    if (devnull < 0) devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    tinymalloc_stats_print(devnull, value & 1);
    break;
  }
  case 4:
    tinymalloc_option_set("show_errors", value & 1);
    break;
  default: {
    /* Out-of-range and after-init settings must not break anything. */
    (void)tinymalloc_option_set("arenas", (long)value - 8);
    (void)tinymalloc_option_set("purge_delay_ms", -1 - (long)value);
    break;
  }
  }
}
