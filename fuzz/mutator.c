/* The structure-aware mutator shared by the libFuzzer and AFL++ glue: an
 * input is parsed into runs (split at the run marker), streams (threads:
 * a header byte, then streams split at the stream marker) and ops (an opcode
 * byte and the operands its layout names, see grammar.h); a mutation edits
 * that structure, so that a mutated input stays a meaningful op sequence:
 * insert a fresh op, delete, duplicate or swap ops, tweak one operand in a
 * way its type suggests (a nearby slot, a size in another class, a boundary
 * size, another alignment), move an op, add or drop a stream or run marker,
 * change a run's thread header. Now and then it hands over to the engine's
 * byte-level mutator. No allocator code here; memory from the system. */
#include <stdlib.h>
#include <string.h>

#include "grammar.h"

static const uint8_t run_marker[4] = {0xff, 0xfe, 'R', 'S'};

typedef struct rng_s {
  uint64_t s;
} rng_t;

static uint64_t next(rng_t *r)
{
  uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static size_t below(rng_t *r, size_t n) { return n ? (size_t)(next(r) % n) : 0; }
static bool chance(rng_t *r, unsigned percent) { return below(r, 100) < percent; }

/* ---- Tokens ---------------------------------------------------------------- */

enum { T_OP, T_HEADER, T_STREAM, T_RUN };

typedef struct token_s {
  uint8_t type;
  bool fresh;   /* bytes in the pool, not in the input */
  uint32_t off; /* into the input or the pool */
  uint32_t len;
} token_t;

typedef struct seq_s {
  token_t *t;
  size_t n, cap;
  const uint8_t *src;
  uint8_t *pool;
  size_t pool_len, pool_cap;
} seq_t;

static bool push(seq_t *q, token_t tok)
{
  if (q->n == q->cap) {
    size_t cap = q->cap ? 2 * q->cap : 256;
    token_t *grown = realloc(q->t, cap * sizeof *grown);
    if (!grown) return false;
    q->t = grown;
    q->cap = cap;
  }
  q->t[q->n++] = tok;
  return true;
}

static bool insert_at(seq_t *q, size_t at, token_t tok)
{
  if (!push(q, tok)) return false;
  memmove(&q->t[at + 1], &q->t[at], (q->n - 1 - at) * sizeof tok);
  q->t[at] = tok;
  return true;
}

static void erase(seq_t *q, size_t at, size_t count)
{
  memmove(&q->t[at], &q->t[at + count], (q->n - at - count) * sizeof(token_t));
  q->n -= count;
}

static const uint8_t *bytes(const seq_t *q, const token_t *t) { return (t->fresh ? q->pool : q->src) + t->off; }

/* Fresh bytes for a token; returns its offset in the pool. */
static bool pool_add(seq_t *q, const uint8_t *b, size_t len, uint32_t *off)
{
  if (q->pool_len + len > q->pool_cap) {
    size_t cap = (q->pool_cap + len) * 2 + 256;
    uint8_t *grown = realloc(q->pool, cap);
    if (!grown) return false;
    q->pool = grown;
    q->pool_cap = cap;
  }
  memcpy(q->pool + q->pool_len, b, len);
  *off = (uint32_t)q->pool_len;
  q->pool_len += len;
  return true;
}

static size_t find(const uint8_t *d, size_t from, size_t to, const uint8_t marker[4])
{
  for (size_t i = from; i + 4 <= to; i++)
    if (memcmp(d + i, marker, 4) == 0) return i;
  return to;
}

static void parse_ops(const tmf_grammar_t *g, seq_t *q, const uint8_t *d, size_t from, size_t to)
{
  for (size_t i = from; i < to;) {
    size_t len = 1 + tmf_grammar_operand_len(g, d[i] % g->opcodes, d + i + 1, to - i - 1);
    if (i + len > to) len = to - i;
    push(q, (token_t){T_OP, false, (uint32_t)i, (uint32_t)len});
    i += len;
  }
}

/* Splits as the harnesses do: runs first, then (threads) header and
 * streams, then ops. */
static void parse(const tmf_grammar_t *g, seq_t *q, const uint8_t *d, size_t size)
{
  q->src = d;
  size_t start = 0;
  for (;;) {
    size_t end = find(d, start, size, run_marker);
    if (g->streams && start < end) {
      push(q, (token_t){T_HEADER, false, (uint32_t)start, 1});
      size_t s = start + 1;
      /* The harness takes at most 16 streams: later markers stay in the last one. */
      for (unsigned streams = 1;; streams++) {
        size_t e = streams < 16 ? find(d, s, end, tmf_stream_marker) : end;
        parse_ops(g, q, d, s, e);
        if (e == end) break;
        push(q, (token_t){T_STREAM, false, (uint32_t)e, 4});
        s = e + 4;
      }
    } else {
      parse_ops(g, q, d, start, end);
    }
    if (end == size) break;
    push(q, (token_t){T_RUN, false, (uint32_t)end, 4});
    start = end + 4;
  }
}

static size_t emit(const seq_t *q, uint8_t *out, size_t max)
{
  size_t n = 0;
  for (size_t i = 0; i < q->n; i++) {
    if (n + q->t[i].len > max) break;
    memcpy(out + n, bytes(q, &q->t[i]), q->t[i].len);
    n += q->t[i].len;
  }
  return n;
}

/* ---- Operands ------------------------------------------------------------------ */

static uint8_t gen_slot(rng_t *r)
{
  if (chance(r, 70)) return (uint8_t)below(r, 16);
  if (chance(r, 66)) return (uint8_t)below(r, 64);
  return (uint8_t)next(r);
}

/* A size selector of a class (fuzz/common.c: tmf_decode_size), weighted
 * like the decoder toward tiny and small requests. */
static void gen_size(rng_t *r, uint8_t out[3])
{
  static const uint8_t first[] = {0, 12, 20, 22, 23, 30, 31};
  static const uint8_t span[] = {12, 8, 2, 1, 7, 1, 1};
  static const uint8_t weight[] = {40, 25, 8, 3, 18, 3, 3};
  size_t pick = below(r, 100), c = 0;
  for (unsigned acc = weight[0]; pick >= acc && c + 1 < sizeof weight; acc += weight[++c]) {
  }
  out[0] = (uint8_t)(first[c] + below(r, span[c]) + 32 * below(r, 8));
  uint16_t v = (uint16_t)next(r);
  if (c == 0 && chance(r, 50)) v = (uint16_t)below(r, 300); /* the densest classes */
  if (c == 4) v = (uint16_t)(below(r, 48) + 256 * below(r, 5) * (chance(r, 50) ? 1 : 0) + 512 * below(r, 3));
  if (c == 5 && chance(r, 50)) {
    /* An exact size at a step of a geometric class table (four steps per
     * doubling, 256 B to 16 KiB), or 16 bytes below one: what a class
     * boundary is in a build whose blocks carry a 16-byte redzone (the
     * sanitizer builds), which the boundary table does not hit. */
    unsigned p = 8 + (unsigned)below(r, 7), j = (unsigned)below(r, 4);
    unsigned edge = (1u << p) + j * (1u << (p - 2));
    static const int delta[] = {0, -1, 1, -16, -15, -17};
    v = (uint16_t)((int)edge + delta[below(r, 6)]);
  }
  out[1] = (uint8_t)v;
  out[2] = (uint8_t)(v >> 8);
}

static uint8_t gen_align(rng_t *r)
{
  if (chance(r, 60)) return (uint8_t)(4 + below(r, 9));
  if (chance(r, 75)) return (uint8_t)below(r, 23);
  return (uint8_t)(248 + below(r, 8));
}

static uint8_t gen_byte(rng_t *r) { return chance(r, 30) ? (uint8_t)below(r, 16) : (uint8_t)next(r); }

static size_t gen_operand(rng_t *r, char type, uint8_t *out)
{
  switch (type) {
  case 's':
    out[0] = gen_slot(r);
    return 1;
  case 'Z':
    gen_size(r, out);
    return 3;
  case 'a':
    out[0] = gen_align(r);
    return 1;
  case 'w': {
    uint16_t v = chance(r, 50) ? (uint16_t)below(r, 256) : (uint16_t)next(r);
    out[0] = (uint8_t)v;
    out[1] = (uint8_t)(v >> 8);
    return 2;
  }
  case 'B': {
    out[0] = (uint8_t)next(r);
    out[1] = (uint8_t)next(r);
    out[2] = (uint8_t)next(r);
    if (out[0] % 7 != 4) return 3;
    uint64_t a = next(r) & 0x7ffffffffff0ull;
    for (int i = 0; i < 8; i++)
      out[3 + i] = (uint8_t)(a >> (8 * i));
    return 11;
  }
  default:
    out[0] = gen_byte(r);
    return 1;
  }
}

static unsigned pick_opcode(const tmf_grammar_t *g, rng_t *r)
{
  unsigned total = 0;
  for (unsigned i = 0; i < g->opcodes; i++)
    total += g->weights[i];
  size_t pick = below(r, total);
  for (unsigned i = 0; i < g->opcodes; i++) {
    if (pick < g->weights[i]) return i;
    pick -= g->weights[i];
  }
  return 0;
}

/* threads' contend op (harness_threads.c): opcode, shape, size, rounds;
 * race_free: opcode, slot, mode. */
#define THREADS_CONTEND   22
#define THREADS_RACE_FREE 23

static size_t gen_op(const tmf_grammar_t *g, rng_t *r, uint8_t *out)
{
  unsigned opcode = pick_opcode(g, r);
  size_t n = 0;
  out[n++] = (uint8_t)opcode;
  for (const char *t = g->layouts[opcode]; *t; t++)
    n += gen_operand(r, *t, out + n);
  if (g->streams && opcode == THREADS_CONTEND && chance(r, 50)) {
    /* The owner merges other threads' frees when its slab runs out: with 4
     * to 16 KiB blocks (4 to 16 per slab) it merges every few allocations,
     * while several consumers free remotely for many rounds. */
    out[1] = (uint8_t)(out[1] | 0x0e);
    uint16_t v = (uint16_t)(4096 + below(r, 12289));
    out[2] = (uint8_t)(12 + below(r, 8));
    out[3] = (uint8_t)v;
    out[4] = (uint8_t)(v >> 8);
    out[5] = (uint8_t)(16 + below(r, 16));
  }
  return n;
}

/* Changes one operand of an op in place (same length) or regenerates it. */
static size_t tweak_op(const tmf_grammar_t *g, rng_t *r, const uint8_t *op, size_t len, uint8_t *out)
{
  memcpy(out, op, len);
  const char *layout = g->layouts[op[0] % g->opcodes];
  size_t count = strlen(layout);
  if (count == 0 || chance(r, 10)) return gen_op(g, r, out);
  size_t which = below(r, count), at = 1;
  for (size_t i = 0; i < which; i++)
    at += layout[i] == 'Z' ? 3 : layout[i] == 'w' ? 2 : layout[i] == 'B' ? ((at < len && op[at] % 7 == 4) ? 11 : 3) : 1;
  if (at >= len) return len; /* a truncated op: leave it */
  uint8_t *p = out + at;
  switch (layout[which]) {
  case 's':
    p[0] = chance(r, 60) ? (uint8_t)(p[0] + (chance(r, 50) ? 1 : 255)) : gen_slot(r);
    break;
  case 'Z':
    if (at + 3 > len) break;
    if (chance(r, 40)) {
      gen_size(r, p);
    } else if (chance(r, 50)) { /* the same class, a nearby value */
      uint16_t v = (uint16_t)(p[1] | p[2] << 8);
      static const int16_t steps[] = {1, -1, 16, -16, 256, -256, 4096};
      v = (uint16_t)(v + steps[below(r, sizeof steps / sizeof steps[0])]);
      p[1] = (uint8_t)v;
      p[2] = (uint8_t)(v >> 8);
    } else { /* the same value, another class */
      uint8_t tmp[3];
      gen_size(r, tmp);
      p[0] = tmp[0];
    }
    break;
  case 'a':
    p[0] = gen_align(r);
    break;
  case 'w':
    if (at + 2 > len) break;
    if (chance(r, 50)) {
      uint16_t v = (uint16_t)((p[0] | p[1] << 8) + (chance(r, 50) ? 1 : 0xffff));
      p[0] = (uint8_t)v;
      p[1] = (uint8_t)(v >> 8);
    } else {
      p[below(r, 2)] ^= (uint8_t)(1u << below(r, 8));
    }
    break;
  case 'B':
    return gen_op(g, r, out); /* the kind decides the length: a new op */
  default:
    if (chance(r, 50))
      p[0] ^= (uint8_t)(1u << below(r, 8));
    else
      p[0] = chance(r, 50) ? (uint8_t)(p[0] + 1) : gen_byte(r);
    break;
  }
  return len;
}

/* ---- Mutations ------------------------------------------------------------------- */

static size_t count_type(const seq_t *q, uint8_t type)
{
  size_t n = 0;
  for (size_t i = 0; i < q->n; i++)
    n += q->t[i].type == type;
  return n;
}

/* Index of the k-th token of a type. */
static size_t nth_of(const seq_t *q, uint8_t type, size_t k)
{
  for (size_t i = 0; i < q->n; i++)
    if (q->t[i].type == type && k-- == 0) return i;
  return q->n;
}

/* A position where an op may go: anywhere except before a run's header. */
static size_t op_position(const seq_t *q, rng_t *r)
{
  for (int tries = 0; tries < 8; tries++) {
    size_t at = below(r, q->n + 1);
    if (at < q->n && q->t[at].type == T_HEADER) continue;
    return at;
  }
  return q->n;
}

static bool add_fresh(seq_t *q, size_t at, uint8_t type, const uint8_t *b, size_t len)
{
  token_t tok = {type, true, 0, (uint32_t)len};
  return pool_add(q, b, len, &tok.off) && insert_at(q, at, tok);
}

static bool mutate_once(const tmf_grammar_t *g, seq_t *q, rng_t *r)
{
  size_t ops = count_type(q, T_OP);
  uint8_t buf[64];
  switch (below(r, 10)) {
  case 0:
  case 1: { /* insert a fresh op */
    size_t len = gen_op(g, r, buf);
    size_t at = op_position(q, r);
    bool race = g->streams && buf[0] == THREADS_RACE_FREE && chance(r, 50);
    if (race) buf[2] = (uint8_t)(buf[2] | 0xfc); /* raced again and again on fresh blocks (mode bit 2) */
    if (!add_fresh(q, at, T_OP, buf, len)) return false;
    if (race) {
      /* A race needs a block in its slot: a malloc of it first (half of
       * them large, whose claim is a single exchange). */
      uint8_t op[5] = {0, buf[1], 0, 0, 0}; /* malloc slot size */
      gen_size(r, op + 2);
      if (chance(r, 50)) op[2] = 22; /* large: 1 MiB + 1 + 48 v */
      return add_fresh(q, at, T_OP, op, sizeof op);
    }
    return true;
  }
  case 2: { /* delete one to four ops */
    if (ops == 0) return false;
    size_t at = nth_of(q, T_OP, below(r, ops));
    size_t count = 1 + below(r, 4);
    while (count > 1 && (at + count > q->n || q->t[at + count - 1].type != T_OP))
      count--;
    erase(q, at, count);
    return true;
  }
  case 3: { /* duplicate one to eight ops, right after them or elsewhere */
    if (ops == 0) return false;
    size_t at = nth_of(q, T_OP, below(r, ops));
    size_t count = 1 + below(r, 8);
    while (count > 1 && (at + count > q->n || q->t[at + count - 1].type != T_OP))
      count--;
    size_t to = chance(r, 50) ? at + count : op_position(q, r);
    token_t copy[8];
    memcpy(copy, &q->t[at], count * sizeof copy[0]);
    for (size_t i = 0; i < count; i++)
      if (!insert_at(q, to + i, copy[i])) return false;
    return true;
  }
  case 4: { /* swap two ops (often neighbours) */
    if (ops < 2) return false;
    size_t a = nth_of(q, T_OP, below(r, ops));
    size_t b = chance(r, 50) && a + 1 < q->n && q->t[a + 1].type == T_OP ? a + 1 : nth_of(q, T_OP, below(r, ops));
    token_t tmp = q->t[a];
    q->t[a] = q->t[b];
    q->t[b] = tmp;
    return a != b;
  }
  case 5:
  case 6:
  case 7: { /* tweak one operand */
    if (ops == 0) return false;
    size_t at = nth_of(q, T_OP, below(r, ops));
    const token_t *t = &q->t[at];
    size_t len = tweak_op(g, r, bytes(q, t), t->len, buf);
    token_t tok = {T_OP, true, 0, (uint32_t)len};
    if (!pool_add(q, buf, len, &tok.off)) return false;
    q->t[at] = tok;
    return true;
  }
  case 8: { /* move an op elsewhere (another stream, another run) */
    if (ops == 0) return false;
    size_t at = nth_of(q, T_OP, below(r, ops));
    token_t tok = q->t[at];
    erase(q, at, 1);
    return insert_at(q, op_position(q, r), tok);
  }
  default: { /* streams and runs */
    if (g->streams && chance(r, 70)) {
      size_t headers = count_type(q, T_HEADER), streams = count_type(q, T_STREAM);
      if (headers && chance(r, 30)) { /* threads and waves of a run */
        size_t at = nth_of(q, T_HEADER, below(r, headers));
        buf[0] = (uint8_t)below(r, 6);
        token_t tok = {T_HEADER, true, 0, 1};
        if (!pool_add(q, buf, 1, &tok.off)) return false;
        q->t[at] = tok;
        return true;
      }
      if (streams && chance(r, 40)) {
        erase(q, nth_of(q, T_STREAM, below(r, streams)), 1);
        return true;
      }
      if (q->n == 0) {
        buf[0] = (uint8_t)below(r, 6);
        return add_fresh(q, 0, T_HEADER, buf, 1);
      }
      return add_fresh(q, op_position(q, r), T_STREAM, tmf_stream_marker, 4);
    }
    size_t runs = count_type(q, T_RUN);
    if (runs && chance(r, 50)) {
      erase(q, nth_of(q, T_RUN, below(r, runs)), 1);
      return true;
    }
    if (g->streams) return false; /* a run boundary would need a header after it */
    return add_fresh(q, op_position(q, r), T_RUN, run_marker, 4);
  }
  }
}

static void seq_free(seq_t *q)
{
  free(q->t);
  free(q->pool);
}

size_t tmf_mutate(const tmf_grammar_t *g, uint8_t *data, size_t size, size_t max_size, uint64_t seed,
                  size_t (*fallback)(uint8_t *data, size_t size, size_t max_size))
{
  rng_t r = {seed * 0x2545f4914f6cdd1dull + 1};
  if (fallback && chance(&r, 20)) return fallback(data, size, max_size);
  seq_t q;
  memset(&q, 0, sizeof q);
  parse(g, &q, data, size);
  unsigned rounds = 1 + (unsigned)below(&r, 3), done = 0;
  for (unsigned tries = 0; done < rounds && tries < 16; tries++)
    done += mutate_once(g, &q, &r);
  uint8_t *out = malloc(max_size ? max_size : 1);
  size_t n = size;
  if (out != NULL && done > 0) {
    n = emit(&q, out, max_size);
    memcpy(data, out, n);
  }
  free(out);
  seq_free(&q);
  if (done == 0 && fallback) return fallback(data, size, max_size);
  return n;
}

size_t tmf_crossover(const tmf_grammar_t *g, const uint8_t *a, size_t a_size, const uint8_t *b, size_t b_size,
                     uint8_t *out, size_t max_out, uint64_t seed)
{
  rng_t r = {seed * 0x9e3779b97f4a7c15ull + 7};
  seq_t qa, qb;
  memset(&qa, 0, sizeof qa);
  memset(&qb, 0, sizeof qb);
  parse(g, &qa, a, a_size);
  parse(g, &qb, b, b_size);
  size_t n = 0;
  /* a[0, cut) + a slice of b's ops + a[cut, end) (or without the rest of a). */
  size_t cut = op_position(&qa, &r);
  size_t from = below(&r, qb.n + 1), to = from + below(&r, qb.n - from + 1);
  bool keep_tail = chance(&r, 50);
  for (size_t i = 0; i < cut && n + qa.t[i].len <= max_out; i++) {
    memcpy(out + n, bytes(&qa, &qa.t[i]), qa.t[i].len);
    n += qa.t[i].len;
  }
  for (size_t i = from; i < to; i++) {
    if (qb.t[i].type == T_HEADER) continue;
    if (n + qb.t[i].len > max_out) break;
    memcpy(out + n, bytes(&qb, &qb.t[i]), qb.t[i].len);
    n += qb.t[i].len;
  }
  for (size_t i = cut; keep_tail && i < qa.n && n + qa.t[i].len <= max_out; i++) {
    memcpy(out + n, bytes(&qa, &qa.t[i]), qa.t[i].len);
    n += qa.t[i].len;
  }
  seq_free(&qa);
  seq_free(&qb);
  return n;
}
