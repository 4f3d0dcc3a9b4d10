/* The shadow map: the harness's own record of every live block, kept sorted
 * by address so that a new block is checked against its two neighbours in
 * O(log n) and no two live usable extents can ever overlap. Its memory comes
 * from the system malloc, never from tinymalloc. */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"

void tmf_shadow_init(tmf_shadow_t *s) { memset(s, 0, sizeof *s); }

void tmf_shadow_destroy(tmf_shadow_t *s)
{
  free(s->blocks);
  memset(s, 0, sizeof *s);
}

/* Index of the first block whose address is >= addr. */
static size_t lower_bound(const tmf_shadow_t *s, uintptr_t addr)
{
  size_t lo = 0, hi = s->count;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (s->blocks[mid].addr < addr)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* A zero-byte block still owns its address. */
static uintptr_t extent_end(const tmf_block_t *b) { return b->addr + (b->usable ? b->usable : 1); }

void tmf_shadow_insert(tmf_shadow_t *s, const tmf_block_t *b)
{
  size_t at = lower_bound(s, b->addr);
  if (at > 0) {
    const tmf_block_t *prev = &s->blocks[at - 1];
    TMF_REQUIRE(extent_end(prev) <= b->addr,
                "overlap: new block %p (usable %zu, #%llu) starts inside live block %p (usable %zu, #%llu)",
                (void *)b->addr, b->usable, (unsigned long long)b->id, (void *)prev->addr, prev->usable,
                (unsigned long long)prev->id);
  }
  if (at < s->count) {
    const tmf_block_t *next = &s->blocks[at];
    TMF_REQUIRE(extent_end(b) <= next->addr,
                "overlap: new block %p (usable %zu, #%llu) runs into live block %p (usable %zu, #%llu)",
                (void *)b->addr, b->usable, (unsigned long long)b->id, (void *)next->addr, next->usable,
                (unsigned long long)next->id);
  }
  if (s->count == s->capacity) {
    size_t cap = s->capacity ? s->capacity * 2 : 256;
    tmf_block_t *grown = realloc(s->blocks, cap * sizeof *grown);
    TMF_REQUIRE(grown != NULL, "shadow map: out of memory");
    s->blocks = grown;
    s->capacity = cap;
  }
  memmove(&s->blocks[at + 1], &s->blocks[at], (s->count - at) * sizeof *s->blocks);
  s->blocks[at] = *b;
  s->count++;
  s->requested_bytes += b->requested;
  s->usable_bytes += b->usable;
}

tmf_block_t tmf_shadow_remove(tmf_shadow_t *s, uintptr_t addr)
{
  size_t at = lower_bound(s, addr);
  TMF_REQUIRE(at < s->count && s->blocks[at].addr == addr, "shadow map: no live block at %p",
              (void *)addr);
  tmf_block_t b = s->blocks[at];
  memmove(&s->blocks[at], &s->blocks[at + 1], (s->count - at - 1) * sizeof *s->blocks);
  s->count--;
  s->requested_bytes -= b.requested;
  s->usable_bytes -= b.usable;
  return b;
}

const tmf_block_t *tmf_shadow_find_containing(const tmf_shadow_t *s, uintptr_t addr)
{
  size_t at = lower_bound(s, addr + 1); /* first block starting after addr */
  if (at == 0)
    return NULL;
  const tmf_block_t *b = &s->blocks[at - 1];
  return addr < extent_end(b) ? b : NULL;
}

void tmf_shadow_verify_all(const tmf_shadow_t *s)
{
  for (size_t i = 0; i < s->count; i++) {
    const tmf_block_t *b = &s->blocks[i];
    if (i > 0)
      TMF_REQUIRE(extent_end(&s->blocks[i - 1]) <= b->addr, "shadow map: overlap at %p", (void *)b->addr);
    size_t usable = tinymalloc_usable_size((void *)b->addr);
    TMF_REQUIRE(usable == b->usable, "usable size of %p changed from %zu to %zu", (void *)b->addr,
                b->usable, usable);
    tmf_pattern_check((const unsigned char *)b->addr, b->usable, b->id, 0, b->usable, "live block");
  }
}
