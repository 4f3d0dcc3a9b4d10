/* slab.h: slabs and their block bitmaps (slab.c), with the owner's inline
 * fast paths. The owner sets and clears alloc bits with plain loads and
 * stores; other threads only fetch_or remote bits (tm_slab_free_remote). */
#ifndef TM_SLAB_H
#define TM_SLAB_H

#include "error.h"
#include "grace.h"
#include "options.h"
#include "segment.h"
#include "track.h"
#include "types.h"

/* The padding bits of bitmap word w: blocks past `capacity`, always set. */
TM_INLINE uint64_t tm_slab_padding(uint32_t capacity, uint32_t w)
{
  if (w * 64 + 64 <= capacity) return 0;
  if (w * 64 >= capacity) return ~0ull;
  return ~0ull << (capacity - w * 64);
}

/* Block index of `offset` bytes into the slab (exact for block starts). */
TM_INLINE uint32_t tm_slab_index(const tm_slab_t *slab, size_t offset)
{
  return (uint32_t)(((uint64_t)offset * slab->reciprocal) >> 32);
}

TM_INLINE uint8_t *tm_slab_block(const tm_slab_t *slab, uint32_t index, uint32_t block_size)
{
  return tm_slab_start(slab) + (size_t)index * block_size;
}

/* Detection mode: the block waits in a quarantine (freed, still allocated). */
TM_INLINE bool tm_slab_block_held(tm_slab_t *slab, uint32_t index)
{
  return (atomic_load_explicit(&slab->quarantine_bits[index >> 6], memory_order_acquire) >> (index & 63)) & 1;
}

TM_INLINE bool tm_slab_block_live(tm_slab_t *slab, uint32_t index)
{
  uint64_t bit = 1ull << (index & 63);
  return (atomic_load_explicit(&slab->bits[index >> 6].alloc, memory_order_acquire) & bit) &&
         !(atomic_load_explicit(&slab->bits[index >> 6].remote, memory_order_seq_cst) & bit);
}

/* Owner only: the lowest free block, or false when the slab has none or
 * that block carries a remote bit (two frees raced on it): the slow path
 * (tm_slab_take) handles both. */
TM_INLINE bool tm_slab_take_fast(tm_slab_t *slab, void **out)
{
  uint64_t words = slab->free_words;
  if (TM_UNLIKELY(words == 0)) return false;
  size_t w = (size_t)__builtin_ctzll(words);
  uint64_t bits = atomic_load_explicit(&slab->bits[w].alloc, memory_order_relaxed);
  uint64_t bit = ~bits & (bits + 1); /* the lowest clear bit */
  if (TM_UNLIKELY(atomic_load_explicit(&slab->bits[w].remote, memory_order_seq_cst) & bit)) return false;
  atomic_store_explicit(&slab->bits[w].alloc, bits | bit, memory_order_relaxed);
  if ((bits | bit) == ~0ull) slab->free_words = words & ~(1ull << w);
  if (TM_UNLIKELY(w >= atomic_load_explicit(&slab->high, memory_order_relaxed)))
    atomic_store_explicit(&slab->high, (uint32_t)w + 1, memory_order_relaxed);
  slab->used++;
  size_t index = w * 64 + (size_t)__builtin_ctzll(bit);
  *out = (uint8_t *)slab + slab->block0 + (size_t)index * atomic_load_explicit(&slab->block_size, memory_order_relaxed);
  return true;
}

/* Owner only: frees block `index`. Returns false (nothing changed) when the
 * block is not live: its alloc bit is clear, or another thread's free of it
 * is pending. */
TM_INLINE bool tm_slab_free_local(tm_slab_t *slab, uint32_t index)
{
  size_t w = index >> 6;
  uint64_t bit = 1ull << (index & 63);
  uint64_t bits = atomic_load_explicit(&slab->bits[w].alloc, memory_order_relaxed);
  if (TM_UNLIKELY(!(bits & bit) || (atomic_load_explicit(&slab->bits[w].remote, memory_order_seq_cst) & bit)))
    return false;
  atomic_store_explicit(&slab->bits[w].alloc, bits & ~bit, memory_order_relaxed);
  slab->free_words |= 1ull << w;
  slab->used--;
  return true;
}

/* Arena lock held: carve a free slot into blocks of class `cls`, owned by `owner`. */
void tm_slab_carve(tm_slab_t *slab, unsigned cls, tm_heap_t *owner) TM_HIDDEN;
/* Arena lock held: the slab has no live block; its slot stops being a slab. */
void tm_slab_uncarve(tm_slab_t *slab) TM_HIDDEN;
/* Owner: the lowest free block, or NULL when none is left. A remote bit left
 * over a free block by two racing frees is reported into `faults` and cleared. */
void *tm_slab_take(tm_slab_t *slab, tm_faults_t *faults) TM_HIDDEN;
/* Owner: folds other threads' frees into the alloc bits; returns how many. */
uint32_t tm_slab_merge(tm_slab_t *slab, tm_faults_t *faults) TM_HIDDEN;
/* Owner: the slab just became full; ask other threads' frees to queue it on
 * the owner's pending list. Returns the blocks a final merge freed. */
uint32_t tm_slab_watch(tm_slab_t *slab, tm_faults_t *faults) TM_HIDDEN;
/* Owner: the slab is no longer full; stop asking (a slab already queued
 * stays queued). */
void tm_slab_unwatch(tm_slab_t *slab) TM_HIDDEN;
/* A remote bit was set in an empty word: queue the slab if its owner asked. */
void tm_slab_notify(tm_slab_t *slab) TM_HIDDEN;

/* A free of block `index` by a thread that does not own the slab (see
 * slab.c for why this decides exactly). `me` is the caller's heap or NULL.
 * False (nothing changed) when the block is not live: a double free. */
TM_INLINE bool tm_slab_free_remote(tm_slab_t *slab, uint32_t index, void *p, tm_heap_t *me)
{
  uint32_t w = index >> 6;
  uint64_t bit = 1ull << (index & 63);
  /* Already free, or freed by another thread and not merged yet: the tools'
   * hooks must not see a second free of it. */
  if (TM_UNLIKELY(!tm_slab_block_live(slab, index))) return false;
  tm_track_free(p, atomic_load_explicit(&slab->block_size, memory_order_relaxed));
  tm_grace_enter(me);
  uint64_t before = atomic_fetch_or_explicit(&slab->bits[w].remote, bit, memory_order_seq_cst);
  if (before == 0) tm_slab_notify(slab);
  tm_grace_exit(me);
  return (before & bit) == 0;
}
/* The fault of a free of block `index` that is not live: a double free, or
 * an invalid free of a block never handed out. */
void tm_slab_fault(tm_slab_t *slab, uint32_t index, const void *p, tm_fault_t *fault) TM_HIDDEN;
/* Live blocks per the bitmaps (readers other than the owner: exact when quiescent). */
uint32_t tm_slab_live_count(tm_slab_t *slab) TM_HIDDEN;

#endif
