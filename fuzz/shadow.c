/* The shadow map: the harness's own record of every live block, a treap
 * ordered by address so that a new block is checked against its two
 * neighbours in O(log n) and no two live usable extents can ever overlap.
 * Its memory comes from the system malloc, never from tinymalloc. */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"

void tmf_shadow_init(tmf_shadow_t *s) { memset(s, 0, sizeof *s); }

void tmf_shadow_destroy(tmf_shadow_t *s)
{
  free(s->nodes);
  memset(s, 0, sizeof *s);
}

/* A zero-byte block still owns its address. */
static uintptr_t extent_end(const tmf_block_t *b) { return b->addr + (b->usable ? b->usable : 1); }

#define N(i) (s->nodes[i])

/* The treap's own code is the harness's bookkeeping, not the system under
 * test: under ASan it runs uninstrumented (it was a third of an input's
 * time). The code that touches blocks (canaries) stays instrumented. */
#if defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 8)
#define TMF_BOOKKEEPING __attribute__((no_sanitize("address", "undefined")))
#else
#define TMF_BOOKKEEPING
#endif

/* Splits t into keys < addr (*l) and keys >= addr (*r). */
TMF_BOOKKEEPING static void split(tmf_shadow_t *s, uint32_t t, uintptr_t addr, uint32_t *l, uint32_t *r)
{
  if (t == 0) {
    *l = *r = 0;
  } else if (N(t).block.addr < addr) {
    split(s, N(t).right, addr, &N(t).right, r);
    *l = t;
  } else {
    split(s, N(t).left, addr, l, &N(t).left);
    *r = t;
  }
}

/* Joins l and r, every key of l below every key of r. */
TMF_BOOKKEEPING static uint32_t merge(tmf_shadow_t *s, uint32_t l, uint32_t r)
{
  if (l == 0 || r == 0) return l ? l : r;
  if (N(l).priority > N(r).priority) {
    N(l).right = merge(s, N(l).right, r);
    return l;
  }
  N(r).left = merge(s, l, N(r).left);
  return r;
}

/* The block with the largest address <= addr, or NULL. */
TMF_BOOKKEEPING static const tmf_block_t *floor_block(const tmf_shadow_t *s, uintptr_t addr)
{
  const tmf_block_t *best = NULL;
  for (uint32_t t = s->root; t;) {
    if (N(t).block.addr <= addr) {
      best = &N(t).block;
      t = N(t).right;
    } else {
      t = N(t).left;
    }
  }
  return best;
}

/* The block with the smallest address > addr, or NULL. */
TMF_BOOKKEEPING static const tmf_block_t *above_block(const tmf_shadow_t *s, uintptr_t addr)
{
  const tmf_block_t *best = NULL;
  for (uint32_t t = s->root; t;) {
    if (N(t).block.addr > addr) {
      best = &N(t).block;
      t = N(t).left;
    } else {
      t = N(t).right;
    }
  }
  return best;
}

static uint32_t node_alloc(tmf_shadow_t *s)
{
  if (s->free_list) {
    uint32_t i = s->free_list;
    s->free_list = N(i).left;
    return i;
  }
  if (s->used + 1 >= s->capacity) {
    uint32_t cap = s->capacity ? s->capacity * 2 : 1024;
    tmf_shadow_node_t *grown = realloc(s->nodes, (size_t)cap * sizeof *grown);
    TMF_REQUIRE(grown != NULL, "shadow map: out of memory");
    s->nodes = grown;
    s->capacity = cap;
  }
  return ++s->used;
}

void tmf_shadow_insert(tmf_shadow_t *s, const tmf_block_t *b)
{
  const tmf_block_t *prev = floor_block(s, b->addr);
  if (prev) {
    TMF_REQUIRE(extent_end(prev) <= b->addr,
                "overlap: new block %p (usable %zu, #%llu) starts inside live block %p (usable %zu, #%llu)",
                (void *)b->addr, b->usable, (unsigned long long)b->id, (void *)prev->addr, prev->usable,
                (unsigned long long)prev->id);
  }
  const tmf_block_t *next = above_block(s, b->addr);
  if (next) {
    TMF_REQUIRE(extent_end(b) <= next->addr,
                "overlap: new block %p (usable %zu, #%llu) runs into live block %p (usable %zu, #%llu)",
                (void *)b->addr, b->usable, (unsigned long long)b->id, (void *)next->addr, next->usable,
                (unsigned long long)next->id);
  }
  uint32_t i = node_alloc(s);
  N(i).block = *b;
  N(i).left = N(i).right = 0;
  /* Priorities from a hash of the address: deterministic for a given run. */
  uint64_t h = (uint64_t)b->addr * 0x9e3779b97f4a7c15ull;
  N(i).priority = (uint32_t)(h >> 32);
  uint32_t l, r;
  split(s, s->root, b->addr, &l, &r);
  s->root = merge(s, merge(s, l, i), r);
  s->count++;
  s->requested_bytes += b->requested;
  s->usable_bytes += b->usable;
}

tmf_block_t tmf_shadow_remove(tmf_shadow_t *s, uintptr_t addr)
{
  uint32_t l, m, r;
  split(s, s->root, addr, &l, &m);
  split(s, m, addr + 1, &m, &r);
  if (m == 0) {
    s->root = merge(s, l, r);
    tmf_fail("shadow map: no live block at %p", (void *)addr);
  }
  tmf_block_t b = N(m).block;
  N(m).left = s->free_list;
  s->free_list = m;
  s->root = merge(s, l, r);
  s->count--;
  s->requested_bytes -= b.requested;
  s->usable_bytes -= b.usable;
  return b;
}

const tmf_block_t *tmf_shadow_find_containing(const tmf_shadow_t *s, uintptr_t addr)
{
  const tmf_block_t *b = floor_block(s, addr);
  return b && addr < extent_end(b) ? b : NULL;
}

/* In-order walk to the i-th block: O(i), for the rare ops that pick a live
 * block by rank (misuse's bad pointers). */
const tmf_block_t *tmf_shadow_nth(const tmf_shadow_t *s, size_t i)
{
  TMF_REQUIRE(i < s->count, "shadow map: no block #%zu of %zu", i, s->count);
  uint32_t *stack = malloc((s->count + 1) * sizeof *stack); /* depth <= count */
  TMF_REQUIRE(stack != NULL, "shadow map: out of memory");
  size_t depth = 0;
  const tmf_block_t *found = NULL;
  uint32_t t = s->root;
  while ((t || depth) && found == NULL) {
    while (t) {
      stack[depth++] = t;
      t = N(t).left;
    }
    t = stack[--depth];
    if (i-- == 0) found = &N(t).block;
    t = N(t).right;
  }
  free(stack);
  TMF_REQUIRE(found != NULL, "shadow map: the tree holds fewer than %zu blocks", s->count);
  return found;
}

void tmf_shadow_verify_all(const tmf_shadow_t *s)
{
  /* In-order walk with an explicit stack: treap depth is O(log n) expected,
   * but the stack grows when it must. */
  uint32_t local[128];
  uint32_t *stack = local;
  size_t cap = sizeof local / sizeof local[0], depth = 0, seen = 0;
  const tmf_block_t *prev = NULL;
  uint32_t t = s->root;
  while (t || depth) {
    while (t) {
      if (depth == cap) {
        uint32_t *grown = malloc(2 * cap * sizeof *grown);
        TMF_REQUIRE(grown != NULL, "shadow map: out of memory");
        memcpy(grown, stack, depth * sizeof *grown);
        if (stack != local) free(stack);
        stack = grown;
        cap *= 2;
      }
      stack[depth++] = t;
      t = N(t).left;
    }
    t = stack[--depth];
    const tmf_block_t *b = &N(t).block;
    if (prev) TMF_REQUIRE(extent_end(prev) <= b->addr, "shadow map: overlap at %p", (void *)b->addr);
    size_t usable = tinymalloc_usable_size((void *)b->addr);
    TMF_REQUIRE(usable == b->usable, "usable size of %p changed from %zu to %zu", (void *)b->addr, b->usable, usable);
    tmf_pattern_check((const unsigned char *)b->addr, b->usable, b->id, 0, b->usable, "live block");
    prev = b;
    seen++;
    t = N(t).right;
  }
  if (stack != local) free(stack);
  TMF_REQUIRE(seen == s->count, "shadow map: %zu blocks in the tree, %zu counted", seen, s->count);
}
