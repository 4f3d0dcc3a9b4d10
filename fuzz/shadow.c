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

static uint32_t subtree(const tmf_shadow_t *s, uint32_t t) { return t ? N(t).subtree : 0; }

static void update(tmf_shadow_t *s, uint32_t t) { N(t).subtree = 1 + subtree(s, N(t).left) + subtree(s, N(t).right); }

/* Splits t into keys < addr (*l) and keys >= addr (*r). */
static void split(tmf_shadow_t *s, uint32_t t, uintptr_t addr, uint32_t *l, uint32_t *r)
{
  if (t == 0) {
    *l = *r = 0;
  } else if (N(t).block.addr < addr) {
    split(s, N(t).right, addr, &N(t).right, r);
    *l = t;
    update(s, t);
  } else {
    split(s, N(t).left, addr, l, &N(t).left);
    *r = t;
    update(s, t);
  }
}

/* Joins l and r, every key of l below every key of r. */
static uint32_t merge(tmf_shadow_t *s, uint32_t l, uint32_t r)
{
  if (l == 0 || r == 0) return l ? l : r;
  if (N(l).priority > N(r).priority) {
    N(l).right = merge(s, N(l).right, r);
    update(s, l);
    return l;
  }
  N(r).left = merge(s, l, N(r).left);
  update(s, r);
  return r;
}

/* The block with the largest address <= addr, or NULL. */
static const tmf_block_t *floor_block(const tmf_shadow_t *s, uintptr_t addr)
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
static const tmf_block_t *above_block(const tmf_shadow_t *s, uintptr_t addr)
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
  N(i).subtree = 1;
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

const tmf_block_t *tmf_shadow_nth(const tmf_shadow_t *s, size_t i)
{
  uint32_t t = s->root;
  while (t) {
    size_t left = subtree(s, N(t).left);
    if (i < left) {
      t = N(t).left;
    } else if (i == left) {
      return &N(t).block;
    } else {
      i -= left + 1;
      t = N(t).right;
    }
  }
  tmf_fail("shadow map: no block #%zu of %zu", i, s->count);
}

void tmf_shadow_verify_all(const tmf_shadow_t *s)
{
  const tmf_block_t *prev = NULL;
  for (size_t i = 0; i < s->count; i++) {
    const tmf_block_t *b = tmf_shadow_nth(s, i);
    if (prev) TMF_REQUIRE(extent_end(prev) <= b->addr, "shadow map: overlap at %p", (void *)b->addr);
    size_t usable = tinymalloc_usable_size((void *)b->addr);
    TMF_REQUIRE(usable == b->usable, "usable size of %p changed from %zu to %zu", (void *)b->addr, b->usable, usable);
    tmf_pattern_check((const unsigned char *)b->addr, b->usable, b->id, 0, b->usable, "live block");
    prev = b;
  }
}
