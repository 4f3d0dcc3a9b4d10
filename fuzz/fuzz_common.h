/* Shared pieces of the tinymalloc fuzz harnesses: the input reader and the
 * operand decoders (sizes, alignments, slots), the sparse block canaries, the
 * shadow map of live blocks, the run modes (warm fuzzing with a periodic deep
 * check, or a deep check after every input when replaying), the watchdog and
 * the end-of-input checks. Harnesses use only the public API
 * (include/tinymalloc.h); the op encoding is documented in fuzz/README.md and
 * must stay in step with the decoders here and with fuzz/grammar.c. */
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

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TMF_UNDER_TSAN 1
#endif
#if __has_feature(address_sanitizer)
#define TMF_UNDER_ASAN 1
#endif
#endif
#ifndef TMF_UNDER_TSAN
#define TMF_UNDER_TSAN 0
#endif
#ifndef TMF_UNDER_ASAN
#define TMF_UNDER_ASAN 0
#endif

/* ---- Failure reporting ---------------------------------------------------- */

/* Prints "tinymalloc-fuzz: <message>" on stderr and aborts, so that libFuzzer,
 * AFL++ and the replay driver all record the input as a crash. In warm mode
 * it first saves the inputs run since the last deep check (see tmf_run). */
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

/* A request size: 3 bytes (selector, 16-bit value), weighted toward small
 * requests with a bounded share of medium and large ones (fuzz/README.md). */
size_t tmf_read_size(tmf_reader_t *r);
size_t tmf_decode_size(uint8_t selector, uint16_t v);
/* An alignment: 1 byte. A power of two from 1 to 4 MiB, or (selector >= 248)
 * an invalid alignment (not a power of two, or 0). */
size_t tmf_read_alignment(tmf_reader_t *r);

/* The cap on the sum of the requested bytes of all live blocks, so that
 * inputs cannot run out of RAM. */
#define TMF_MAX_LIVE_BYTES ((size_t)192 << 20)

/* ---- Block contents: sparse canaries ---------------------------------------- */

/* Every live block carries a pattern derived from its id and the byte offset
 * (a byte copied to the wrong offset or into the wrong block shows), written
 * at its canary positions only: the whole block up to TMF_CANARY_WHOLE bytes,
 * otherwise its first and last TMF_CANARY_EDGE bytes and one 8-byte word in
 * every 4 KiB page (at an offset that depends on the id). Blocks above
 * TMF_CANARY_SPARSE_ABOVE (most of a medium or large block's pages are
 * fresh: a page fault each on first touch) keep a word in every page of
 * their first and last TMF_CANARY_DENSE_EDGE bytes and in every
 * TMF_CANARY_SPARSE_STRIDE-th page between, a stride that doubles for
 * blocks over TMF_CANARY_SPARSE_PAGES strides until they have at most that
 * many such pages (a large block is one mapping: what can go wrong in its
 * middle goes wrong by the page run, at the edges by the byte). */
#define TMF_CANARY_WHOLE         ((size_t)256)
#define TMF_CANARY_EDGE          ((size_t)64)
#define TMF_CANARY_PAGE          ((size_t)4096)
#define TMF_CANARY_SPARSE_ABOVE  ((size_t)64 << 10)
#define TMF_CANARY_DENSE_EDGE    ((size_t)32 << 10)
#define TMF_CANARY_SPARSE_STRIDE ((size_t)64 << 10)
#define TMF_CANARY_SPARSE_PAGES  16

/* Writes the pattern of block `id` at its canary positions within [from, to). */
void tmf_pattern_fill(unsigned char *p, size_t usable, uint64_t id, size_t from, size_t to);
/* Checks the canary positions within [from, to); fails naming `what`. */
void tmf_pattern_check(const unsigned char *p, size_t usable, uint64_t id, size_t from, size_t to, const char *what);
/* Writes / checks the pattern of block `id` over every byte of [from, to)
 * (the bytes around a realloc's preserved-prefix boundary). */
void tmf_pattern_fill_dense(unsigned char *p, uint64_t id, size_t from, size_t to);
void tmf_pattern_check_dense(const unsigned char *p, uint64_t id, size_t from, size_t to, const char *what);
/* Fails unless the block's canary positions within [0, n) and its first
 * 4 KiB are zero (calloc). */
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
 * overlaps neither neighbour, so no two live blocks ever overlap (a block
 * handed out twice fails here). Not thread-safe by itself. */
typedef struct tmf_shadow_node_s {
  tmf_block_t block;
  uint32_t left, right; /* 0 = none; also the free-list link */
  uint32_t priority;
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
/* Checks ordering, non-overlap, usable sizes and the canaries of every live
 * block (in-order walk, O(n)). */
void tmf_shadow_verify_all(const tmf_shadow_t *s);

/* Fresh block bookkeeping for a pointer the allocator just returned: reads
 * usable_size, checks alignment and usable >= requested and fills the
 * canaries (after checking zero for calloc). Does not insert. */
tmf_block_t tmf_block_adopt(void *p, size_t requested, size_t alignment, uint64_t id, bool zeroed);

/* ---- Run modes and the end of an input ------------------------------------------ */

/* How inputs are run. Fuzzing (libFuzzer over a corpus, AFL++ under
 * afl-fuzz) keeps the allocator warm: the end of each input compares O(1)
 * counters, and the deep reset (trim to zero, baseline, tinymalloc_check)
 * runs every `deep_every` inputs. Replaying and reproducing (the replay
 * driver, an engine binary run on files, an AFL++ binary run by hand) run
 * the deep reset after every input, so that a saved finding fails alone. */
typedef struct tmf_mode_s {
  unsigned deep_every;   /* 1 = after every input */
  const char *artifacts; /* where a warm-mode failure saves its window (prefix) */
} tmf_mode_t;
extern tmf_mode_t tmf_mode;
/* Sets the mode for fuzzing: deep reset every TMF_DEEP_EVERY inputs (the
 * environment may override it), window files under `artifact_prefix`. */
void tmf_set_fuzzing_mode(const char *artifact_prefix);
#define TMF_DEEP_EVERY_DEFAULT 32

/* Whole-heap checks after single ops (the counters, tinymalloc_check after
 * a misuse) run after every op when replaying or reproducing, and every
 * `every`-th time when fuzzing warm: their properties are the same, only a
 * warm fuzzing process samples them (a finding fails earlier, never later,
 * when replayed). Counts calls in *counter. */
bool tmf_due(unsigned *counter, unsigned every);

/* Inputs may hold several runs separated by this marker: each run is one
 * input of a warm fuzzing process (cheap end-of-input checks between them),
 * the deep check follows the last one. A warm-mode failure saves the runs
 * since the last deep check joined by it ("window-*" next to the crash). */
#define TMF_RUN_MARKER_LEN 4
extern const uint8_t tmf_run_marker[TMF_RUN_MARKER_LEN];

/* The one entry point of the drivers: runs an input (all its runs) with the
 * end-of-input checks the mode asks for. Returns 0; failures abort. */
int tmf_run(const uint8_t *data, size_t size);

/* Fails unless the cheap counters count exactly `blocks` live blocks and at
 * least `usable_bytes` live bytes (exactly, in an untracked core). Call only
 * when other threads are quiet. `slack` blocks may be missing (blocks whose
 * two racing frees the allocator may both have accepted). */
void tmf_expect_live(size_t blocks, size_t usable_bytes, size_t slack);
/* Full statistics: consistent with the counters and with themselves. */
void tmf_expect_stats_consistent(size_t blocks, size_t usable_bytes, size_t slack);
/* Sum over arenas of the thread heaps attached (tinymalloc_stats). */
size_t tmf_attached_heaps(void);
/* Installs the handler that turns any misuse report into a failure (for
 * harnesses that never misuse the API). */
void tmf_install_strict_handler(void);
/* Restores the options a harness may change (junk, purge delay, show_errors). */
void tmf_restore_options(void);
/* Applies an option-change op: 1 byte selector, 1 byte value. */
void tmf_apply_option_op(tmf_reader_t *r);

/* ---- Measuring one bug class at a time --------------------------------------------- */

/* TMF_DISABLE=name,name... (op names as in fuzz/README.md, and "reenter"
 * for the misuse handler's allocations): those ops are decoded but not run.
 * For measuring how fast a harness finds one bug on a core that has several
 * (docs/fuzzing.md); never set in CI. */
bool tmf_disabled(const char *name);
/* Skips the operands of op `opcode` of the harness's grammar. */
void tmf_skip_operands(tmf_reader_t *r, unsigned opcode);
/* TMF_CHECK_GRAMMAR=1: fails unless the op that started at `op_start` read
 * exactly the operands fuzz/grammar.c gives it (the mutators rely on it). */
void tmf_check_decoded(const tmf_reader_t *r, size_t op_start, unsigned opcode);

/* ---- Watchdog -------------------------------------------------------------------- */

/* A background thread that fails the input when one run takes longer than
 * 5 s (TMF_WATCHDOG_SECONDS in the environment overrides it): a deadlock
 * in the allocator (a report under a lock, fork holding locks) fails the
 * input as "hang: <what>". Each note re-arms it: harnesses name the op they
 * start (a static string, read from the watchdog thread). */
void tmf_watchdog_note(const char *what);
/* How long an op may take now, in milliseconds (the load stretches it). */
int64_t tmf_watchdog_bound_ms(void);

/* ---- Harness entry points (one harness per binary) ----------------------- */

/* Runs one run of an input (no end-of-input checks: tmf_run does them) and
 * frees everything it allocated. Returns the number of blocks of two-thread
 * double-free races whose frees may both have been accepted (slack for the
 * live-count checks); 0 for most harnesses. */
size_t tmf_harness_run_one(const uint8_t *data, size_t size);
/* The harness name ("ops", "threads", "misuse", "fork"). */
extern const char tmf_harness_name[];

/* The process turned detection mode on (usable sizes are requested sizes
 * from then on): the exact live-byte checks stop. */
void tmf_note_detect_used(void);
/* Detection mode is on or was on in this process. */
bool tmf_detect_ever_used(void);

#endif
