/* The op interpreter shared by the harnesses: slots of live blocks, the
 * shadow map behind them and the allocation ops (malloc ... bulk free). The
 * same interpreter runs single-threaded (ops, misuse) and in several threads
 * at once over one locked slot table (threads). Encoding: fuzz/README.md. */
#ifndef TMF_OPS_H
#define TMF_OPS_H

#include <pthread.h>

#include "fuzz_common.h"

#define TMF_SLOTS    256
#define TMF_BULK_MAX 4608 /* a slab of the 16-byte class (4096 blocks) and then some */
/* A run's costly work is bounded, so that inputs stay fast on average:
 * medium and large requests (over 16 KiB, or aligned beyond a page; each a
 * page run or a fresh mapping) are skipped once the run asked for
 * TMF_BIG_BYTES_PER_RUN bytes of them, bulk allocations make at most
 * TMF_BULK_PER_RUN blocks per run and only the first TMF_TRIMS_PER_RUN trim
 * ops of a run trim. */
#define TMF_SMALL_LIMIT       ((size_t)16 << 10)
#define TMF_BIG_BYTES_PER_RUN ((size_t)4 << 20)
#define TMF_BULK_PER_RUN      ((size_t)2048)
/* A trim returns every free page: the ops after it fault them in again. */
#define TMF_TRIMS_PER_RUN 2
/* A block whose usable size is above this is a large block (a mapping of
 * its own): the largest medium run is 1 MiB. */
#define TMF_MEDIUM_MAX ((size_t)1 << 20)

enum tmf_opcode_e {
  TMF_OP_MALLOC = 0,
  TMF_OP_CALLOC,
  TMF_OP_REALLOC,
  TMF_OP_REALLOC_ZERO,
  TMF_OP_FREE,
  TMF_OP_MEMALIGN,
  TMF_OP_POSIX_MEMALIGN,
  TMF_OP_ALIGNED_ALLOC,
  TMF_OP_USABLE_SIZE,
  TMF_OP_CHECK,
  TMF_OP_REALLOCARRAY,
  TMF_OP_BAD_REQUEST,
  TMF_OP_TRIM,
  TMF_OP_FREE_RANGE,
  TMF_OP_BURST,
  TMF_OP_OPTION,
  TMF_OP_BULK_ALLOC,
  TMF_OP_BULK_FREE,
  TMF_OP_STATS,
  TMF_OP_COUNT /* number of ops every harness understands */
};

/* The state of one input. In concurrent mode every access to slots, bulk and
 * shadow holds `lock`; a block is in the shadow map exactly while it sits in
 * a slot (or the bulk list), and nobody writes to a block while it is there. */
typedef struct tmf_ops_s {
  tmf_shadow_t shadow;
  uintptr_t slots[TMF_SLOTS];
  uintptr_t *bulk;
  size_t bulk_count;
  bool concurrent;
  pthread_mutex_t lock;
  uint64_t next_id; /* guarded by lock */
  size_t slack;     /* blocks whose two racing frees may both have been accepted (threads) */
  size_t big_bytes; /* medium and large bytes asked for in this run (TMF_BIG_BYTES_PER_RUN) */
  size_t bulk_made; /* bulk blocks made in this run (TMF_BULK_PER_RUN) */
  unsigned trims;   /* trim ops run in this run (TMF_TRIMS_PER_RUN) */
} tmf_ops_t;

void tmf_ops_init(tmf_ops_t *ctx, bool concurrent);
/* Frees every block still held (checking each), then releases the context. */
void tmf_ops_finish(tmf_ops_t *ctx);
/* Executes op `opcode` (< TMF_OP_COUNT), reading its operands from r. */
void tmf_ops_step(tmf_ops_t *ctx, tmf_reader_t *r, unsigned opcode);
/* Quiescent: the O(1) counters must match the shadow map exactly. */
void tmf_ops_expect_stats(tmf_ops_t *ctx);
/* The name of an op, for the watchdog and failure messages. */
const char *tmf_ops_name(unsigned opcode);

/* Slot primitives, also used by the misuse harness. take() removes the block
 * from the shadow map and returns it (found = false when the slot is empty);
 * put() records a fresh block and frees whatever the slot held before. */
bool tmf_ops_take(tmf_ops_t *ctx, unsigned slot, tmf_block_t *out);
void tmf_ops_put(tmf_ops_t *ctx, unsigned slot, const tmf_block_t *b);
/* Charges `count` requests of `size` bytes (aligned to `alignment`, 0 for
 * none) to the run's budgets; false (charge nothing) when they do not fit. */
bool tmf_ops_budget(tmf_ops_t *ctx, size_t size, size_t count, size_t alignment);
/* Checks the block's contents and gives it back to tinymalloc. */
void tmf_ops_release(const tmf_block_t *b);
uint64_t tmf_ops_new_id(tmf_ops_t *ctx);

#endif
