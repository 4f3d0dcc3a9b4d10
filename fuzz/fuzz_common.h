/* Shared pieces of the tinymalloc fuzz harnesses: the input reader and the
 * operand decoders (sizes, alignments, slots), the block content pattern, the
 * shadow map of live blocks and the end-of-input reset check. Harnesses use
 * only the public API (include/tinymalloc.h); the op encoding is documented in
 * fuzz/README.md and must stay in step with the decoders here. */
#ifndef TMF_FUZZ_COMMON_H
#define TMF_FUZZ_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tinymalloc.h"

/* 1 when the core was built with a tracking backend (usable size = requested
 * size, computed from the tool's shadow state). */
#ifndef TMF_TRACKED_CORE
#define TMF_TRACKED_CORE 0
#endif

/* ---- Failure reporting ---------------------------------------------------- */

/* Prints "tinymalloc-fuzz: <message>" on stderr and aborts, so that libFuzzer,
 * AFL++ and the replay driver all record the input as a crash. */
__attribute__((noreturn, format(printf, 1, 2))) void tmf_fail(const char *fmt, ...);

#define TMF_REQUIRE(cond, ...)                                                                                         \
  do {                                                                                                                 \
    if (!(cond)) tmf_fail(__VA_ARGS__);                                                                                \
  } while (0)

/* ---- Input reader ----------------------------------------------------------- */

/* Reads operands from the input. Past the end every read yields 0 and
 * `exhausted` is set, so a truncated op still decodes deterministically. */
typedef struct tmf_reader_s {
  const uint8_t *data;
  size_t size;
  size_t pos;
  bool exhausted;
} tmf_reader_t;

void tmf_reader_init(tmf_reader_t *r, const uint8_t *data, size_t size);
bool tmf_reader_done(const tmf_reader_t *r);
uint8_t tmf_read_u8(tmf_reader_t *r);
uint16_t tmf_read_u16(tmf_reader_t *r);
uint64_t tmf_read_u64(tmf_reader_t *r);

/* A request size: 3 bytes (selector, 16-bit value). Reaches tiny, small,
 * medium and large requests and the boundaries between them. */
size_t tmf_read_size(tmf_reader_t *r);
/* An alignment: 1 byte. A power of two from 1 to 4 MiB, or (selector >= 248)
 * an invalid alignment (not a power of two, or 0). */
size_t tmf_read_alignment(tmf_reader_t *r);

/* Largest size a single request may ask for, and the cap on the sum of the
 * requested bytes of all live blocks, so that inputs cannot run out of RAM. */
#define TMF_MAX_LIVE_BYTES ((size_t)192 << 20)

/* ---- Block contents ------------------------------------------------------- */

/* Every live block carries a pattern derived from its id and the byte offset,
 * so that a byte copied to the wrong offset or into the wrong block shows.
 * Blocks up to TMF_FULL_PATTERN_BYTES are covered whole; larger ones on their
 * first and last TMF_EDGE_PATTERN_BYTES (the middle of a multi-MiB block
 * would cost more than it finds). */
#define TMF_FULL_PATTERN_BYTES ((size_t)64 << 10)
#define TMF_EDGE_PATTERN_BYTES ((size_t)16 << 10)

/* Writes the pattern of block `id` into [from, to) of a block of `usable`
 * bytes (only the covered parts). */
void tmf_pattern_fill(unsigned char *p, size_t usable, uint64_t id, size_t from, size_t to);
/* Checks the pattern over [from, to); fails naming `what` on a mismatch. */
void tmf_pattern_check(const unsigned char *p, size_t usable, uint64_t id, size_t from, size_t to, const char *what);
/* Fails unless bytes [0, n) are zero. */
void tmf_check_zero(const unsigned char *p, size_t n, const char *what);

/* ---- Shadow map -------------------------------------------------------------- */

/* One live block as the harness believes it to be. */
typedef struct tmf_block_s {
  uintptr_t addr;   /* what the allocator returned */
  size_t usable;    /* tinymalloc_usable_size at allocation time */
  size_t requested; /* what was asked for */
  size_t alignment; /* what was asked for (16 for plain malloc) */
  uint64_t id;      /* pattern seed */
} tmf_block_t;

/* Live blocks ordered by address: a treap (binary search tree with
 * pseudo-random priorities, expected O(log n) per operation) over a node pool
 * indexed from 1. Inserting checks that the new block's usable extent
 * overlaps neither neighbour, so no two live blocks ever overlap. Not
 * thread-safe by itself: the threaded harness holds a lock. */
typedef struct tmf_shadow_node_s {
  tmf_block_t block;
  uint32_t left, right; /* 0 = none; also the free-list link */
  uint32_t priority;
  uint32_t subtree; /* nodes in this subtree, for tmf_shadow_nth */
} tmf_shadow_node_t;

typedef struct tmf_shadow_s {
  tmf_shadow_node_t *nodes; /* nodes[0] is unused */
  uint32_t capacity;
  uint32_t free_list;
  uint32_t used; /* nodes ever taken from the pool */
  uint32_t root;
  size_t count;
  size_t requested_bytes; /* sum of `requested` over live blocks */
  size_t usable_bytes;    /* sum of `usable` over live blocks */
} tmf_shadow_t;

void tmf_shadow_init(tmf_shadow_t *s);
void tmf_shadow_destroy(tmf_shadow_t *s);
/* Validates a fresh block (alignment, usable size, no overlap) and records it. */
void tmf_shadow_insert(tmf_shadow_t *s, const tmf_block_t *b);
/* Removes the block that starts at addr; fails if there is none. */
tmf_block_t tmf_shadow_remove(tmf_shadow_t *s, uintptr_t addr);
/* The live block whose usable extent contains addr, or NULL. */
const tmf_block_t *tmf_shadow_find_containing(const tmf_shadow_t *s, uintptr_t addr);
/* The live block with the i-th lowest address (i < count). */
const tmf_block_t *tmf_shadow_nth(const tmf_shadow_t *s, size_t i);
/* Checks ordering, non-overlap and the contents of every live block. */
void tmf_shadow_verify_all(const tmf_shadow_t *s);

/* Allocates fresh block bookkeeping for a pointer the allocator just returned:
 * reads usable_size, checks alignment and usable >= requested and fills the
 * pattern (after checking zero for calloc). Does not insert. */
tmf_block_t tmf_block_adopt(void *p, size_t requested, size_t alignment, uint64_t id, bool zeroed);

/* ---- Allocator state ---------------------------------------------------------- */

/* Fails unless tinymalloc's statistics count exactly `blocks` live blocks and
 * at least `usable_bytes` live bytes (call only when other threads are quiet). */
void tmf_expect_live(size_t blocks, size_t usable_bytes);
/* The start of every input: the first call warms the allocator up and
 * records the mapped-bytes baseline (metadata only). */
void tmf_begin_input(void);
/* The end of every input: nothing may be live, trim must release every
 * segment and large mapping, mapped memory must fall back to the baseline
 * and tinymalloc_check() must pass. Afterwards the allocator
 * is in the state the next input expects. */
void tmf_end_of_input(void);
/* Installs the handler that turns any misuse report into a failure (for
 * harnesses that never misuse the API). */
void tmf_install_strict_handler(void);
/* Restores the options a harness may change (junk, purge delay). */
void tmf_restore_options(void);
/* Applies an option-change op: 1 byte selector, 1 byte value. */
void tmf_apply_option_op(tmf_reader_t *r);

/* ---- Harness entry points (one harness per binary) ----------------------- */

/* Runs one input; returns 0 (failures abort). */
int tmf_harness_run(const uint8_t *data, size_t size);
/* The harness name ("ops", "threads", "misuse"). */
extern const char tmf_harness_name[];

#endif
