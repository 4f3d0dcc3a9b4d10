/* slab.c owns a slab's block bitmaps beyond the owner's inline fast paths:
 * carving and uncarving a slot, the owner's slow take and merge, and the free
 * from another thread with its notification of the owner. It never touches
 * block contents except through the tracking and junk hooks of a free.
 *
 * Deciding "was this block live" (a remote free): the freeing thread first
 * reads the alloc bit (clear: already free, report), then sets the remote bit
 * with one fetch_or (already set: freed by another thread and not merged yet,
 * report). It never looks at the alloc bit again: the owner may merge the
 * bit the moment it is set, so a second read would see the owner's work, not
 * a double free. A correct free therefore always finds alloc = 1 and remote
 * = 0. The merge takes remote words with exchange and frees only blocks whose
 * alloc bit is set; a remote bit over a clear alloc bit can only come from two
 * frees of one block racing (one of them passed its alloc check just before
 * the other's free completed), and is reported when the merge or the owner's
 * take meets it. The take checks the remote bit of the block it hands out, so
 * such a block is never handed out while a stale free of it is pending.
 *
 * Notification: the owner only looks at remote bits of the slabs it
 * allocates from. A full slab is "watched": its notify is WANT, and the first
 * remote free into an empty remote word moves it to QUEUED (one CAS) and
 * pushes the slab on the owner's pending list. The owner takes the list whole,
 * sets notify IDLE and merges. Both sides use seq_cst: the owner stores WANT
 * then reads the remote words; a freer sets a remote bit then reads notify;
 * one of them sees the other, so no free is missed. */
#include "slab.h"
#include "detect.h"
#include "grace.h"
#include "options.h"
#include "sizeclass.h"
#include "track.h"

tm_heap_t tm_owner_arena;

void tm_slab_carve(tm_slab_t *slab, unsigned cls, tm_heap_t *owner)
{
  uint32_t size = tm_class_size[cls];
  uint32_t capacity = (uint32_t)(TM_SLAB_SIZE / size);
  slab->class_index = (uint8_t)cls;
  slab->capacity = capacity;
  slab->words = (uint8_t)((capacity + 63) / 64);
  slab->reciprocal = (uint32_t)((((uint64_t)1 << 32) + size - 1) / size);
  slab->used = 0;
  slab->free_words = slab->words == 64 ? ~0ull : (1ull << slab->words) - 1;
  slab->flags = 0;
  slab->next = slab->prev = NULL;
  atomic_store_explicit(&slab->high, 0, memory_order_relaxed);
  for (uint32_t w = 0; w < TM_SLAB_WORDS; w++) {
    atomic_store_explicit(&slab->bits[w].alloc, tm_slab_padding(capacity, w), memory_order_relaxed);
    atomic_store_explicit(&slab->bits[w].remote, 0, memory_order_relaxed);
    atomic_store_explicit(&slab->quarantine_bits[w], 0, memory_order_relaxed);
  }
  tm_detect_slab_carved(tm_segment_of(slab), slab->slot, capacity);
  atomic_store_explicit(&slab->owner, owner, memory_order_release);
  /* Publishes everything above to threads that look the slab up by address. */
  atomic_store_explicit(&slab->block_size, size, memory_order_release);
}

void tm_slab_uncarve(tm_slab_t *slab)
{
  slab->last_block_size = atomic_load_explicit(&slab->block_size, memory_order_relaxed);
  atomic_store_explicit(&slab->block_size, 0, memory_order_release);
  slab->capacity = 0;
  slab->reciprocal = 0;
  slab->flags = 0;
  slab->next = slab->prev = NULL;
  atomic_store_explicit(&slab->owner, NULL, memory_order_release);
  uint32_t want = TM_NOTIFY_WANT;
  atomic_compare_exchange_strong_explicit(&slab->notify, &want, TM_NOTIFY_IDLE, memory_order_seq_cst,
                                          memory_order_seq_cst);
}

static const char tm_raced_detail[] = "two frees of this block raced";

void *tm_slab_take(tm_slab_t *slab, tm_faults_t *faults)
{
  uint32_t size = atomic_load_explicit(&slab->block_size, memory_order_relaxed);
  uint64_t words = slab->free_words;
  if (words == 0) return NULL;
  uint32_t w = (uint32_t)__builtin_ctzll(words);
  uint64_t bits = atomic_load_explicit(&slab->bits[w].alloc, memory_order_relaxed);
  uint64_t bit = ~bits & (bits + 1);
  uint8_t *p = tm_slab_block(slab, w * 64 + (uint32_t)__builtin_ctzll(bit), size);
  if (atomic_load_explicit(&slab->bits[w].remote, memory_order_seq_cst) & bit) {
    /* A stale free of a free block: take the mark back, then the block. */
    if (atomic_fetch_and_explicit(&slab->bits[w].remote, ~bit, memory_order_seq_cst) & bit)
      tm_faults_add(faults, TINYMALLOC_ERROR_DOUBLE_FREE, p, tm_raced_detail, size);
  }
  atomic_store_explicit(&slab->bits[w].alloc, bits | bit, memory_order_relaxed);
  if ((bits | bit) == ~0ull) slab->free_words = words & ~(1ull << w);
  if (w >= atomic_load_explicit(&slab->high, memory_order_relaxed))
    atomic_store_explicit(&slab->high, w + 1, memory_order_relaxed);
  slab->used++;
  return p;
}

uint32_t tm_slab_merge(tm_slab_t *slab, tm_faults_t *faults)
{
  uint32_t freed = 0;
  for (uint32_t w = 0; w < slab->words; w++) {
    if (atomic_load_explicit(&slab->bits[w].remote, memory_order_relaxed) == 0) continue;
    uint64_t remote = atomic_exchange_explicit(&slab->bits[w].remote, 0, memory_order_seq_cst);
    uint64_t alloc = atomic_load_explicit(&slab->bits[w].alloc, memory_order_relaxed);
    uint64_t valid = remote & alloc, stale = remote & ~alloc;
    if (valid) {
      atomic_store_explicit(&slab->bits[w].alloc, alloc & ~valid, memory_order_relaxed);
      freed += (uint32_t)__builtin_popcountll(valid);
      slab->free_words |= 1ull << w;
    }
    for (; stale; stale &= stale - 1) {
      uint32_t size = atomic_load_explicit(&slab->block_size, memory_order_relaxed);
      tm_faults_add(faults, TINYMALLOC_ERROR_DOUBLE_FREE,
                    tm_slab_block(slab, w * 64 + (uint32_t)__builtin_ctzll(stale), size), tm_raced_detail, size);
    }
  }
  slab->used -= freed;
  return freed;
}

uint32_t tm_slab_watch(tm_slab_t *slab, tm_faults_t *faults)
{
  uint32_t idle = TM_NOTIFY_IDLE;
  /* QUEUED (from an earlier round, not taken yet) stays: the owner will meet
   * the slab on its pending list and watch it again. */
  atomic_compare_exchange_strong_explicit(&slab->notify, &idle, TM_NOTIFY_WANT, memory_order_seq_cst,
                                          memory_order_seq_cst);
  for (uint32_t w = 0; w < slab->words; w++)
    if (atomic_load_explicit(&slab->bits[w].remote, memory_order_seq_cst) != 0) return tm_slab_merge(slab, faults);
  return 0;
}

void tm_slab_unwatch(tm_slab_t *slab)
{
  uint32_t want = TM_NOTIFY_WANT;
  atomic_compare_exchange_strong_explicit(&slab->notify, &want, TM_NOTIFY_IDLE, memory_order_seq_cst,
                                          memory_order_seq_cst);
}

/* The first remote bit of a word of a watched slab queues it for its owner. */
void tm_slab_notify(tm_slab_t *slab)
{
  if (atomic_load_explicit(&slab->notify, memory_order_seq_cst) != TM_NOTIFY_WANT) return;
  uint32_t want = TM_NOTIFY_WANT;
  if (!atomic_compare_exchange_strong_explicit(&slab->notify, &want, TM_NOTIFY_QUEUED, memory_order_seq_cst,
                                               memory_order_relaxed))
    return;
  tm_heap_t *owner = atomic_load_explicit(&slab->owner, memory_order_acquire);
  if (owner == NULL || owner == TM_OWNER_ARENA) {
    /* Abandoned or released meanwhile: whoever takes it over merges it. */
    atomic_store_explicit(&slab->notify, TM_NOTIFY_IDLE, memory_order_release);
    return;
  }
  tm_slab_t *head = atomic_load_explicit(&owner->pending, memory_order_relaxed);
  do {
    atomic_store_explicit(&slab->pending_next, head, memory_order_relaxed);
  } while (
      !atomic_compare_exchange_weak_explicit(&owner->pending, &head, slab, memory_order_release, memory_order_relaxed));
}

void tm_slab_fault(tm_slab_t *slab, uint32_t index, const void *p, tm_fault_t *fault)
{
  uint32_t size = atomic_load_explicit(&slab->block_size, memory_order_relaxed);
  if ((index >> 6) >= atomic_load_explicit(&slab->high, memory_order_relaxed))
    tm_fault_set(fault, TINYMALLOC_ERROR_INVALID_FREE, p, "a block of this slab never handed out", size, NULL);
  else
    tm_fault_set(fault, TINYMALLOC_ERROR_DOUBLE_FREE, p, NULL, size, NULL);
}

uint32_t tm_slab_live_count(tm_slab_t *slab)
{
  uint32_t live = 0;
  for (uint32_t w = 0; w < slab->words; w++) {
    uint64_t alloc = atomic_load_explicit(&slab->bits[w].alloc, memory_order_relaxed);
    uint64_t remote = atomic_load_explicit(&slab->bits[w].remote, memory_order_relaxed);
    uint64_t held = atomic_load_explicit(&slab->quarantine_bits[w], memory_order_relaxed);
    live += (uint32_t)__builtin_popcountll(alloc & ~remote & ~held & ~tm_slab_padding(slab->capacity, w));
  }
  return live;
}
