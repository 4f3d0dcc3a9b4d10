/* slab.c owns a slab's block bitmaps: carving a slot into blocks of one
 * class, the cross-thread free (an atomic fetch_or into the remote bitmap that
 * also detects double frees exactly) and the owner's merge of remote frees.
 * The owner's own alloc/free fast paths are inline in alloc.c. It never
 * touches block contents. */
#include "internal.h"
#include "track.h"

/* Arena lock held; the slot's pages are already taken. */
void tm_slab_carve(tm_slab_t *slab, uint8_t *start, unsigned class_index)
{
  uint32_t size = tm_class_size[class_index];
  uint32_t capacity = (uint32_t)(TM_SLAB_SIZE / size);
  slab->class_index = class_index;
  slab->capacity = capacity;
  slab->reciprocal = (uint32_t)((((uint64_t)1 << 32) + size - 1) / size);
  slab->start_offset = (uint32_t)((uintptr_t)start & TM_SEGMENT_MASK);
  slab->used = 0;
  slab->hint = 0;
  slab->in_full_list = false;
  slab->counted_empty = false;
  slab->next = slab->prev = NULL;
  atomic_store_explicit(&slab->remote_inflight, 0, memory_order_relaxed);
  atomic_store_explicit(&slab->has_remote, 0, memory_order_relaxed);
  for (uint32_t w = 0; w < TM_SLAB_WORDS; w++) {
    atomic_store_explicit(&slab->alloc_bits[w], tm_slab_padding(capacity, w), memory_order_relaxed);
    atomic_store_explicit(&slab->remote_bits[w], 0, memory_order_relaxed);
  }
  /* Publishes everything above to threads that look the slab up by address. */
  atomic_store_explicit(&slab->block_size, size, memory_order_release);
}

/* Owner (or arena lock for an abandoned slab): folds remote frees into the
 * allocation bitmap. Only bits whose block is allocated are taken: a remote
 * bit over a clear alloc bit belongs to a double free whose thread is about to
 * withdraw it. Returns the number of blocks freed. */
uint32_t tm_slab_merge_remote(tm_slab_t *slab)
{
  if (!atomic_exchange_explicit(&slab->has_remote, 0, memory_order_acq_rel)) return 0;
  uint32_t freed = 0;
  uint32_t words = (slab->capacity + 63) / 64;
  for (uint32_t w = 0; w < words; w++) {
    uint64_t remote = atomic_load_explicit(&slab->remote_bits[w], memory_order_acquire);
    if (!remote) continue;
    uint64_t alloc = atomic_load_explicit(&slab->alloc_bits[w], memory_order_relaxed);
    uint64_t valid = remote & alloc;
    if (!valid) continue;
    atomic_store_explicit(&slab->alloc_bits[w], alloc & ~valid, memory_order_relaxed);
    atomic_fetch_and_explicit(&slab->remote_bits[w], ~valid, memory_order_acq_rel);
    freed += (uint32_t)__builtin_popcountll(valid);
    if (w < slab->hint) slab->hint = w;
  }
  slab->used -= freed;
  return freed;
}

/* A free from a thread that does not own the slab. The fetch_or decides
 * exactly: a bit already set means a second remote free; a clear allocation
 * bit means the owner (or a merge) already freed it. Remote_inflight keeps the
 * slab (and its segment) from being released while this runs. */
void tm_slab_free_remote(tm_slab_t *slab, uint32_t index, void *p, const char *op)
{
  uint32_t w = index >> 6;
  uint64_t bit = 1ull << (index & 63);
  uint32_t size = atomic_load_explicit(&slab->block_size, memory_order_relaxed);
  unsigned cls = slab->class_index;
  /* The quick look keeps the tools' hooks off an already-free block; the
   * fetch_or below is what decides when two frees race. */
  if (!tm_slab_block_live(slab, index)) {
    tm_report(TINYMALLOC_ERROR_DOUBLE_FREE, op, p, NULL, size, NULL);
    return;
  }
  if (TM_OPTION(junk)) tm_junk_fill(p, size);
  tm_track_free(p, size);
  atomic_fetch_add_explicit(&slab->remote_inflight, 1, memory_order_acq_rel);
  uint64_t before = atomic_fetch_or_explicit(&slab->remote_bits[w], bit, memory_order_acq_rel);
  bool double_free = (before & bit) != 0;
  if (!double_free && !(atomic_load_explicit(&slab->alloc_bits[w], memory_order_relaxed) & bit)) {
    atomic_fetch_and_explicit(&slab->remote_bits[w], ~bit, memory_order_acq_rel);
    double_free = true;
  }
  if (double_free) {
    atomic_fetch_sub_explicit(&slab->remote_inflight, 1, memory_order_acq_rel);
    tm_report(TINYMALLOC_ERROR_DOUBLE_FREE, op, p, NULL, size, NULL);
    return;
  }
  atomic_store_explicit(&slab->has_remote, 1, memory_order_release);
  tm_heap_t *owner = atomic_load_explicit(&slab->owner, memory_order_acquire);
  /* Heaps are never unmapped, so a stale owner pointer is harmless. */
  if (owner) atomic_fetch_add_explicit(&owner->remote_pending[cls], 1, memory_order_release);
  atomic_fetch_sub_explicit(&slab->remote_inflight, 1, memory_order_release);
  tm_heap_t *me = tm_heap_get();
  tm_counter_add(&me->small_frees[cls], 1);
}
