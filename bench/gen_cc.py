#!/usr/bin/env python3
"""gen_cc.py: writes the fixed C source that the `gcc` workload compiles.

The source is a function of FUNCS alone (no randomness, no dates), so every
run and every allocator compiles exactly the same file; the runner checks that
each allocator's object file is byte-identical to the one gcc produced under
glibc. The code is ordinary C: structs, loops, switches, recursion and string
formatting, so that cc1's optimisers have work to do at -O2.
"""
import sys

FUNCS = 36

HEADER = """\
#include <stdint.h>
#include <stdio.h>
#include <string.h>

struct item { uint32_t key; int32_t weight; double score; char label[24]; };
struct table { struct item items[64]; int count; uint64_t hash; };

static uint32_t mix(uint32_t x) { x ^= x >> 16; x *= 0x7feb352dU; x ^= x >> 15; x *= 0x846ca68bU; return x ^ (x >> 16); }
"""

BODY = """\
static int cmp_{i}(const struct item *a, const struct item *b) {{
  if (a->weight != b->weight) return a->weight < b->weight ? -1 : 1;
  return (a->key > b->key) - (a->key < b->key);
}}

static void fill_{i}(struct table *t, uint32_t seed) {{
  t->count = {n};
  for (int k = 0; k < t->count; k++) {{
    struct item *it = &t->items[k];
    it->key = mix(seed + (uint32_t)k * {m}U);
    it->weight = (int32_t)(it->key % {w}) - {h};
    it->score = (double)it->weight * {f} + k;
    snprintf(it->label, sizeof it->label, "i{i}-%d-%u", k, it->key % 1000U);
  }}
}}

static void sort_{i}(struct table *t) {{
  for (int a = 1; a < t->count; a++) {{
    struct item x = t->items[a];
    int b = a - 1;
    while (b >= 0 && cmp_{i}(&t->items[b], &x) > 0) {{ t->items[b + 1] = t->items[b]; b--; }}
    t->items[b + 1] = x;
  }}
}}

static uint64_t walk_{i}(const struct table *t, int depth) {{
  uint64_t h = {i}U;
  for (int k = 0; k < t->count; k++) {{
    switch ((t->items[k].key + (uint32_t)depth) % 7U) {{
    case 0: h = h * 31U + t->items[k].key; break;
    case 1: h ^= (uint64_t)t->items[k].weight << (k % 13); break;
    case 2: h += (uint64_t)(t->items[k].score * {f}); break;
    case 3: h = (h << 7) | (h >> 57); break;
    case 4: for (const char *c = t->items[k].label; *c; c++) h = h * 131U + (unsigned char)*c; break;
    case 5: h -= (uint64_t)strlen(t->items[k].label) * {m}U; break;
    default: h ^= mix((uint32_t)h) + (uint32_t)k; break;
    }}
  }}
  return depth > 0 ? h + walk_{i}(t, depth - 1) : h;
}}

uint64_t run_{i}(uint32_t seed) {{
  struct table t;
  memset(&t, 0, sizeof t);
  fill_{i}(&t, seed);
  sort_{i}(&t);
  for (int k = 1; k < t.count; k++)
    if (cmp_{i}(&t.items[k - 1], &t.items[k]) > 0) return 0;
  t.hash = walk_{i}(&t, {d});
  return t.hash;
}}
"""


def main():
    out = sys.stdout
    if len(sys.argv) > 1:
        out = open(sys.argv[1], "w")
    out.write(HEADER)
    for i in range(FUNCS):
        out.write(BODY.format(i=i, n=16 + i % 48, m=2654435761 % (1000 + i), w=97 + i % 31, h=40 + i % 9,
                              f="%d.%d" % (1 + i % 5, i % 10), d=1 + i % 4))
    out.write("\nint main(void) {\n  uint64_t h = 0;\n")
    for i in range(FUNCS):
        out.write("  h += run_%d(%dU);\n" % (i, i * 7919))
    out.write('  printf("%llu\\n", (unsigned long long)h);\n  return 0;\n}\n')
    if out is not sys.stdout:
        out.close()


if __name__ == "__main__":
    main()
