/* The op interpreter: decodes one op, calls tinymalloc, and checks the
 * result against the shadow map (alignment, usable size, zeroing, overlap,
 * contents, preserved realloc prefix, errno on refused requests). It owns
 * the slot table and the bulk list; it never looks inside the allocator. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ops.h"

static void ops_lock(tmf_ops_t *ctx)
{
  if (ctx->concurrent) pthread_mutex_lock(&ctx->lock);
}

static void ops_unlock(tmf_ops_t *ctx)
{
  if (ctx->concurrent) pthread_mutex_unlock(&ctx->lock);
}

void tmf_ops_init(tmf_ops_t *ctx, bool concurrent)
{
  memset(ctx, 0, sizeof *ctx);
  tmf_shadow_init(&ctx->shadow);
  ctx->concurrent = concurrent;
  pthread_mutex_init(&ctx->lock, NULL);
  ctx->bulk = malloc(TMF_BULK_MAX * sizeof *ctx->bulk);
  TMF_REQUIRE(ctx->bulk != NULL, "out of memory for the bulk list");
}

uint64_t tmf_ops_new_id(tmf_ops_t *ctx)
{
  ops_lock(ctx);
  uint64_t id = ++ctx->next_id;
  ops_unlock(ctx);
  return id;
}

void tmf_ops_release(const tmf_block_t *b)
{
  void *p = (void *)b->addr;
  tmf_pattern_check(p, b->usable, b->id, 0, b->usable, "free");
#if !TMF_TRACKED_CORE
  /* In a tracked core (ASan backend) usable_size walks the block's shadow
   * memory: too slow to repeat on every free; check and usable_size ops
   * still compare it there. */
  size_t usable = tinymalloc_usable_size(p);
  TMF_REQUIRE(usable == b->usable, "usable size of %p changed from %zu to %zu while live", p, b->usable, usable);
#endif
  errno = 4242;
  tinyfree(p);
  TMF_REQUIRE(errno == 4242, "free changed errno to %d", errno);
}

bool tmf_ops_take(tmf_ops_t *ctx, unsigned slot, tmf_block_t *out)
{
  slot %= TMF_SLOTS;
  ops_lock(ctx);
  uintptr_t addr = ctx->slots[slot];
  if (addr != 0) {
    ctx->slots[slot] = 0;
    *out = tmf_shadow_remove(&ctx->shadow, addr);
  }
  ops_unlock(ctx);
  return addr != 0;
}

void tmf_ops_put(tmf_ops_t *ctx, unsigned slot, const tmf_block_t *b)
{
  slot %= TMF_SLOTS;
  tmf_block_t old;
  ops_lock(ctx);
  tmf_shadow_insert(&ctx->shadow, b);
  uintptr_t old_addr = ctx->slots[slot];
  ctx->slots[slot] = b->addr;
  if (old_addr != 0) old = tmf_shadow_remove(&ctx->shadow, old_addr);
  ops_unlock(ctx);
  if (old_addr != 0) tmf_ops_release(&old);
}

bool tmf_ops_budget(tmf_ops_t *ctx, size_t size, size_t count, size_t alignment)
{
  size_t total;
  if (__builtin_mul_overflow(size, count, &total)) return false;
  size_t big = 0;
  if (size > TMF_SMALL_LIMIT || alignment > TMF_CANARY_PAGE)
    big = total + (alignment > TMF_CANARY_PAGE ? alignment : 0);
  ops_lock(ctx);
  bool ok = total <= TMF_MAX_LIVE_BYTES && ctx->shadow.requested_bytes + total <= TMF_MAX_LIVE_BYTES &&
            (big == 0 || (big <= TMF_BIG_BYTES_PER_RUN && ctx->big_bytes + big <= TMF_BIG_BYTES_PER_RUN));
  if (ok) ctx->big_bytes += big;
  ops_unlock(ctx);
  return ok;
}

static bool within_budget(tmf_ops_t *ctx, size_t size) { return tmf_ops_budget(ctx, size, 1, 0); }

static void adopt_and_put(tmf_ops_t *ctx, unsigned slot, void *p, size_t requested, size_t alignment, bool zeroed,
                          const char *what)
{
  TMF_REQUIRE(p != NULL, "%s(%zu, alignment %zu) returned NULL (errno %d)", what, requested, alignment, errno);
  tmf_block_t b = tmf_block_adopt(p, requested, alignment, tmf_ops_new_id(ctx), zeroed);
  tmf_ops_put(ctx, slot, &b);
}

static bool is_power_of_two(size_t x) { return x != 0 && (x & (x - 1)) == 0; }

static void op_realloc(tmf_ops_t *ctx, unsigned slot, size_t size, size_t nmemb, bool array)
{
  tmf_block_t old;
  bool had = tmf_ops_take(ctx, slot, &old);
  size_t total = array ? nmemb * size : size;
  if (!within_budget(ctx, total)) {
    if (had) tmf_ops_put(ctx, slot, &old);
    return;
  }
  /* The bytes just below the end of what realloc must preserve get the
   * pattern too, so that a copy that stops short shows at its end. */
  size_t kept = had ? (old.usable < total ? old.usable : total) : 0;
  size_t boundary = kept > TMF_CANARY_EDGE ? kept - TMF_CANARY_EDGE : 0;
  if (had) {
    tmf_pattern_check((const unsigned char *)old.addr, old.usable, old.id, 0, old.usable, "realloc (before)");
    tmf_pattern_fill_dense((unsigned char *)old.addr, old.id, boundary, kept);
  }
  void *oldp = had ? (void *)old.addr : NULL;
  void *p = array ? tinyreallocarray(oldp, nmemb, size) : tinyrealloc(oldp, size);
  if (total == 0 && had) {
    TMF_REQUIRE(p == NULL, "realloc(%p, 0) returned %p, expected NULL (block freed)", oldp, p);
    return;
  }
  TMF_REQUIRE(p != NULL, "realloc(%p, %zu) returned NULL (errno %d)", oldp, total, errno);
  tmf_block_t b;
  if (had) {
    b.addr = (uintptr_t)p;
    b.requested = total;
    b.alignment = 16;
    b.id = old.id;
    b.usable = tinymalloc_usable_size(p);
    TMF_REQUIRE(b.usable >= total, "realloc: usable size %zu < requested %zu", b.usable, total);
    TMF_REQUIRE(b.addr % 16 == 0, "realloc returned %p, not 16-aligned", p);
    /* The old block's canaries below `kept`, and its last bytes. */
    tmf_pattern_check(p, old.usable, old.id, 0, kept, "realloc (preserved prefix)");
    tmf_pattern_check_dense(p, old.id, boundary, kept, "realloc (end of the preserved prefix)");
    tmf_pattern_fill(p, b.usable, b.id, 0, b.usable);
  } else {
    b = tmf_block_adopt(p, total, 16, tmf_ops_new_id(ctx), false);
  }
  tmf_ops_put(ctx, slot, &b);
}

static void op_aligned(tmf_ops_t *ctx, unsigned opcode, unsigned slot, size_t alignment, size_t size)
{
  if (!tmf_ops_budget(ctx, size, 1, alignment)) return;
  bool valid = is_power_of_two(alignment);
  if (opcode == TMF_OP_POSIX_MEMALIGN) {
    void *out = (void *)&out; /* must stay untouched on failure */
    void *sentinel = out;
    int rc = tinyposix_memalign(&out, alignment, size);
    if (!valid || alignment % sizeof(void *) != 0) {
      TMF_REQUIRE(rc == EINVAL && out == sentinel, "posix_memalign(%zu, %zu) = %d, expected EINVAL", alignment, size,
                  rc);
      return;
    }
    TMF_REQUIRE(rc == 0, "posix_memalign(%zu, %zu) = %d", alignment, size, rc);
    adopt_and_put(ctx, slot, out, size, alignment, false, "posix_memalign");
    return;
  }
  errno = 0;
  void *p = opcode == TMF_OP_MEMALIGN ? tinymemalign(alignment, size) : tinyaligned_alloc(alignment, size);
  const char *what = opcode == TMF_OP_MEMALIGN ? "memalign" : "aligned_alloc";
  if (!valid) {
    TMF_REQUIRE(p == NULL && errno == EINVAL, "%s(%zu, %zu) = %p errno %d, expected NULL/EINVAL", what, alignment, size,
                p, errno);
    return;
  }
  adopt_and_put(ctx, slot, p, size, alignment, false, what);
}

/* Requests that must be refused without touching anything. */
static void op_bad_request(tmf_ops_t *ctx, tmf_reader_t *r)
{
  uint8_t variant = tmf_read_u8(r);
  size_t k = tmf_read_u8(r);
  void *p;
  errno = 0;
  switch (variant % 9) {
  case 0:
    p = tinymalloc(SIZE_MAX - k);
    TMF_REQUIRE(p == NULL && errno == ENOMEM, "malloc(SIZE_MAX - %zu) = %p errno %d", k, p, errno);
    break;
  case 1:
    p = tinymalloc(((size_t)1 << 47) + (k << 12));
    TMF_REQUIRE(p == NULL && errno == ENOMEM, "malloc(128 TiB) = %p errno %d", p, errno);
    break;
  case 2:
    p = tinycalloc(SIZE_MAX / (k + 2) + 1, k + 2);
    TMF_REQUIRE(p == NULL && errno == ENOMEM, "calloc overflow = %p errno %d", p, errno);
    break;
  case 3:
    p = tinyreallocarray(NULL, ((size_t)1 << 33) + k, (size_t)1 << 31);
    TMF_REQUIRE(p == NULL && errno == ENOMEM, "reallocarray overflow = %p errno %d", p, errno);
    break;
  case 4: {
    tmf_block_t b;
    unsigned slot = (unsigned)k;
    if (!tmf_ops_take(ctx, slot, &b)) break;
    errno = 0;
    p = tinyrealloc((void *)b.addr, SIZE_MAX - 4096 * k);
    TMF_REQUIRE(p == NULL && errno == ENOMEM, "realloc(%p, huge) = %p errno %d", (void *)b.addr, p, errno);
    tmf_pattern_check((const unsigned char *)b.addr, b.usable, b.id, 0, b.usable, "failed realloc");
    tmf_ops_put(ctx, slot, &b);
    break;
  }
  case 5:
    p = tinymemalign(((size_t)1 << 20) * 3 + k, 64);
    TMF_REQUIRE(p == NULL && errno == EINVAL, "memalign(not a power of two) = %p errno %d", p, errno);
    break;
  case 6:
    p = tinymalloc(((size_t)1 << 46) * 3 + k);
    TMF_REQUIRE(p == NULL && errno == ENOMEM, "malloc(192 TiB) = %p errno %d", p, errno);
    break;
  case 8: {
    /* A power-of-two alignment far beyond what can be mapped (up to 2^63):
     * valid, so the failure is ENOMEM, never EINVAL, from every entry point;
     * if the mapping can be made, it must still be a good block. */
    unsigned shift = 40 + (unsigned)(k % 24);
    size_t alignment = (size_t)1 << shift;
    switch (k / 24 % 3) {
    case 0:
      p = tinymemalign(alignment, 16);
      break;
    case 1:
      p = tinyaligned_alloc(alignment, 16);
      break;
    default: {
      void *out = NULL;
      int rc = tinyposix_memalign(&out, alignment, 16);
      TMF_REQUIRE(rc == 0 || rc == ENOMEM, "posix_memalign(2^%u, 16) = %d, expected 0 or ENOMEM", shift, rc);
      p = rc == 0 ? out : NULL;
      errno = rc ? rc : errno;
      break;
    }
    }
    if (p == NULL) {
      TMF_REQUIRE(errno == ENOMEM, "aligned allocation (2^%u, 16) = NULL errno %d, expected ENOMEM", shift, errno);
    } else {
      tmf_block_t b = tmf_block_adopt(p, 16, alignment, tmf_ops_new_id(ctx), false);
      tmf_ops_release(&b);
    }
    break;
  }
  default:
    errno = 77;
    tinyfree(NULL);
    TMF_REQUIRE(errno == 77, "free(NULL) changed errno");
    TMF_REQUIRE(tinymalloc_usable_size(NULL) == 0, "usable_size(NULL) != 0");
    break;
  }
}

static void op_burst(tmf_ops_t *ctx, tmf_reader_t *r)
{
  unsigned slot = tmf_read_u8(r);
  uint8_t shape = tmf_read_u8(r);
  size_t size = tmf_read_size(r);
  unsigned count = 1 + (shape & 63);
  if (!tmf_ops_budget(ctx, size, count, 0)) return;
  for (unsigned i = 0; i < count; i++)
    adopt_and_put(ctx, slot + i, tinymalloc(size), size, 16, false, "malloc");
  if (shape & 64) { /* then free every other one: a slab with holes */
    for (unsigned i = 0; i < count; i += 2) {
      tmf_block_t b;
      if (tmf_ops_take(ctx, slot + i, &b)) tmf_ops_release(&b);
    }
  } else if (shape & 128) { /* or all of them, last first */
    for (unsigned i = count; i-- > 0;) {
      tmf_block_t b;
      if (tmf_ops_take(ctx, slot + i, &b)) tmf_ops_release(&b);
    }
  }
}

static void op_bulk_alloc(tmf_ops_t *ctx, tmf_reader_t *r)
{
  /* Low 13 bits: the count (taken modulo the list size); top 3 bits: how
   * far to scale it down (1 in 8 bulk ops may fill the whole list, most make
   * a few hundred blocks). */
  uint16_t v = tmf_read_u16(r);
  size_t count = 1 + (((size_t)(v & 8191) >> (2 * (v >> 13))) % TMF_BULK_MAX);
  size_t size = tmf_read_size(r) % 2049; /* many blocks: keep them small */
  bool zeroed = size & 1;
  if (!tmf_ops_budget(ctx, size, count, 0)) return;
  ops_lock(ctx);
  if (count > TMF_BULK_PER_RUN - ctx->bulk_made) count = TMF_BULK_PER_RUN - ctx->bulk_made;
  ctx->bulk_made += count;
  ops_unlock(ctx);
  for (size_t i = 0; i < count; i++) {
    void *p = zeroed ? tinycalloc(1, size) : tinymalloc(size);
    TMF_REQUIRE(p != NULL, "bulk: malloc(%zu) returned NULL", size);
    tmf_block_t b = tmf_block_adopt(p, size, 16, tmf_ops_new_id(ctx), zeroed);
    /* One lock per block: the room is checked where the block goes in (a
     * full list, rare, costs one block allocated and freed for nothing). */
    ops_lock(ctx);
    bool room = ctx->bulk_count < TMF_BULK_MAX;
    if (room) {
      tmf_shadow_insert(&ctx->shadow, &b);
      ctx->bulk[ctx->bulk_count++] = b.addr;
    }
    ops_unlock(ctx);
    if (!room) {
      tmf_ops_release(&b);
      return;
    }
  }
}

/* Frees part of the bulk list: every `stride`-th block from `start`, in the
 * order allocated or reversed, so that slabs empty in many patterns. */
static void op_bulk_free(tmf_ops_t *ctx, tmf_reader_t *r)
{
  uint8_t shape = tmf_read_u8(r);
  size_t stride = 1 + (shape & 7);
  size_t start = (shape >> 3) & 7;
  bool reverse = shape & 64;
  size_t k = start;
  for (;;) {
    tmf_block_t b;
    bool found = false;
    ops_lock(ctx);
    size_t n = ctx->bulk_count;
    for (; k < n; k += stride) {
      size_t i = reverse ? n - 1 - k : k;
      if (ctx->bulk[i] != 0) {
        b = tmf_shadow_remove(&ctx->shadow, ctx->bulk[i]);
        ctx->bulk[i] = 0;
        found = true;
        k += stride;
        break;
      }
    }
    if (!found) { /* compact the list once the walk is done */
      size_t kept = 0;
      for (size_t i = 0; i < n; i++)
        if (ctx->bulk[i] != 0) ctx->bulk[kept++] = ctx->bulk[i];
      ctx->bulk_count = kept;
    }
    ops_unlock(ctx);
    if (!found) return;
    tmf_ops_release(&b);
  }
}

void tmf_ops_expect_stats(tmf_ops_t *ctx) { tmf_expect_live(ctx->shadow.count, ctx->shadow.usable_bytes, ctx->slack); }

const char *tmf_ops_name(unsigned opcode)
{
  static const char *const names[TMF_OP_COUNT] = {
      "op malloc",       "op calloc",         "op realloc",       "op realloc0",    "op free",
      "op memalign",     "op posix_memalign", "op aligned_alloc", "op usable_size", "op check",
      "op reallocarray", "op bad_request",    "op trim",          "op free_range",  "op burst",
      "op option",       "op bulk_alloc",     "op bulk_free",     "op stats"};
  return opcode < TMF_OP_COUNT ? names[opcode] : "op";
}

void tmf_ops_step(tmf_ops_t *ctx, tmf_reader_t *r, unsigned opcode)
{
  tmf_block_t b;
  switch (opcode) {
  case TMF_OP_MALLOC: {
    unsigned slot = tmf_read_u8(r);
    size_t size = tmf_read_size(r);
    if (within_budget(ctx, size)) adopt_and_put(ctx, slot, tinymalloc(size), size, 16, false, "malloc");
    break;
  }
  case TMF_OP_CALLOC: {
    unsigned slot = tmf_read_u8(r);
    size_t nmemb = 1 + tmf_read_u8(r) % 8;
    size_t each = tmf_read_size(r) / nmemb;
    if (within_budget(ctx, nmemb * each))
      adopt_and_put(ctx, slot, tinycalloc(nmemb, each), nmemb * each, 16, true, "calloc");
    break;
  }
  case TMF_OP_REALLOC: {
    unsigned slot = tmf_read_u8(r);
    op_realloc(ctx, slot, tmf_read_size(r), 1, false);
    break;
  }
  case TMF_OP_REALLOC_ZERO:
    op_realloc(ctx, tmf_read_u8(r), 0, 1, false);
    break;
  case TMF_OP_FREE:
    if (tmf_ops_take(ctx, tmf_read_u8(r), &b)) tmf_ops_release(&b);
    break;
  case TMF_OP_MEMALIGN:
  case TMF_OP_POSIX_MEMALIGN:
  case TMF_OP_ALIGNED_ALLOC: {
    unsigned slot = tmf_read_u8(r);
    size_t alignment = tmf_read_alignment(r);
    op_aligned(ctx, opcode, slot, alignment, tmf_read_size(r));
    break;
  }
  case TMF_OP_USABLE_SIZE: {
    unsigned slot = tmf_read_u8(r) % TMF_SLOTS;
    ops_lock(ctx);
    uintptr_t addr = ctx->slots[slot];
    if (addr != 0) {
      const tmf_block_t *live = tmf_shadow_find_containing(&ctx->shadow, addr);
      size_t usable = tinymalloc_usable_size((void *)addr);
      TMF_REQUIRE(live && live->addr == addr && usable == live->usable, "usable_size(%p) = %zu, recorded %zu",
                  (void *)addr, usable, live ? live->usable : 0);
    }
    ops_unlock(ctx);
    break;
  }
  case TMF_OP_CHECK:
    ops_lock(ctx);
    tmf_shadow_verify_all(&ctx->shadow);
    ops_unlock(ctx);
    if (!ctx->concurrent) {
      int violations = tinymalloc_check();
      TMF_REQUIRE(violations == 0, "tinymalloc_check found %d violations", violations);
    }
    break;
  case TMF_OP_REALLOCARRAY: {
    unsigned slot = tmf_read_u8(r);
    size_t nmemb = 1 + tmf_read_u8(r) % 8;
    op_realloc(ctx, slot, tmf_read_size(r) / nmemb, nmemb, true);
    break;
  }
  case TMF_OP_BAD_REQUEST:
    op_bad_request(ctx, r);
    break;
  case TMF_OP_TRIM: {
    /* Trimming with blocks live must not touch them (verified on free). */
    ops_lock(ctx);
    bool due = ctx->trims++ < TMF_TRIMS_PER_RUN;
    ops_unlock(ctx);
    if (due) tinymalloc_trim();
    break;
  }
  case TMF_OP_FREE_RANGE: {
    unsigned first = tmf_read_u8(r);
    unsigned count = tmf_read_u8(r);
    for (unsigned i = 0; i < count; i++)
      if (tmf_ops_take(ctx, first + i, &b)) tmf_ops_release(&b);
    break;
  }
  case TMF_OP_BURST:
    op_burst(ctx, r);
    break;
  case TMF_OP_OPTION:
    tmf_apply_option_op(r);
    break;
  case TMF_OP_BULK_ALLOC:
    op_bulk_alloc(ctx, r);
    break;
  case TMF_OP_BULK_FREE:
    op_bulk_free(ctx, r);
    break;
  case TMF_OP_STATS:
    /* The full statistics (a walk of every mapping, mincore) against the
     * shadow map and the cheap counters; only when the others are quiet. */
    if (!ctx->concurrent) {
      tmf_expect_stats_consistent(ctx->shadow.count, ctx->shadow.usable_bytes, ctx->slack);
    } else {
      tinymalloc_stats_t st;
      TMF_REQUIRE(tinymalloc_stats(&st) == 0, "tinymalloc_stats failed");
    }
    break;
  default:
    break;
  }
}

void tmf_ops_finish(tmf_ops_t *ctx)
{
  tmf_block_t b;
  for (unsigned slot = 0; slot < TMF_SLOTS; slot++)
    if (tmf_ops_take(ctx, slot, &b)) tmf_ops_release(&b);
  for (size_t i = ctx->bulk_count; i-- > 0;) {
    if (ctx->bulk[i] == 0) continue;
    b = tmf_shadow_remove(&ctx->shadow, ctx->bulk[i]);
    tmf_ops_release(&b);
  }
  TMF_REQUIRE(ctx->shadow.count == 0, "shadow map still holds %zu blocks", ctx->shadow.count);
  free(ctx->bulk);
  tmf_shadow_destroy(&ctx->shadow);
  pthread_mutex_destroy(&ctx->lock);
}
