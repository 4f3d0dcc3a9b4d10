/* stats.c owns tinymalloc_stats: it sums the per-thread counters (relaxed
 * loads, no stopping the world), walks each arena under its lock for
 * segment, slab and mapping figures, and asks the OS (mincore) what is
 * resident. Exact when other threads are quiescent. Never allocates. */
#include <string.h>

#include "internal.h"

static size_t tm_load(_Atomic size_t *c) { return atomic_load_explicit(c, memory_order_relaxed); }

/* allocs - frees, read from counters that other threads may be bumping. */
static size_t tm_live(size_t allocs, size_t frees) { return allocs > frees ? allocs - frees : 0; }

/* The per-thread counters summed over every heap that ever existed. */
typedef struct {
  size_t small_allocs[TM_CLASS_COUNT], small_frees[TM_CLASS_COUNT];
  size_t big_allocs[2], big_frees[2], big_alloc_bytes[2], big_free_bytes[2];
} tm_sums_t;

static void tm_sum_counters(tm_sums_t *sum)
{
  memset(sum, 0, sizeof *sum);
  tm_heap_pool_lock();
  for (tm_heap_t *heap = tm_heap_registry(); heap; heap = heap->next_all) {
    for (unsigned c = 0; c < TM_CLASS_COUNT; c++) {
      sum->small_allocs[c] += tm_load(&heap->small_allocs[c]);
      sum->small_frees[c] += tm_load(&heap->small_frees[c]);
    }
    for (int k = 0; k < 2; k++) {
      sum->big_allocs[k] += tm_load(&heap->big_allocs[k]);
      sum->big_frees[k] += tm_load(&heap->big_frees[k]);
      sum->big_alloc_bytes[k] += tm_load(&heap->big_alloc_bytes[k]);
      sum->big_free_bytes[k] += tm_load(&heap->big_free_bytes[k]);
    }
  }
  tm_heap_pool_unlock();
}

/* Moves one heap's `allocs`/`frees` so that the sums satisfy
 * sum_allocs - sum_frees == truth (the sums may even be "negative"). */
static void tm_counter_settle(_Atomic size_t *allocs, _Atomic size_t *frees, size_t sum_allocs, size_t sum_frees,
                              size_t truth)
{
  size_t missing = truth - (sum_allocs - sum_frees); /* modulo 2^64 */
  if ((ptrdiff_t)missing > 0)
    tm_counter_add(allocs, missing);
  else if ((ptrdiff_t)missing < 0)
    tm_counter_add(frees, (size_t)0 - missing);
}

/* In a fork child, threads of the parent may have stopped between changing a
 * bitmap and counting it: the bitmaps are the truth, so the calling thread's
 * counters absorb the difference. Only while no other thread allocates. */
void tm_stats_rebuild(void)
{
  tm_heap_t *me = tm_heap_get();
  if (me == NULL) return;
  tm_census_t truth;
  tm_sums_t sum;
  tm_census(&truth);
  tm_sum_counters(&sum);
  for (unsigned c = 0; c < TM_CLASS_COUNT; c++)
    tm_counter_settle(&me->small_allocs[c], &me->small_frees[c], sum.small_allocs[c], sum.small_frees[c],
                      truth.small_live[c]);
  size_t live[2] = {truth.medium_live, truth.large_live}, bytes[2] = {truth.medium_bytes, truth.large_bytes};
  for (int k = 0; k < 2; k++) {
    tm_counter_settle(&me->big_allocs[k], &me->big_frees[k], sum.big_allocs[k], sum.big_frees[k], live[k]);
    tm_counter_settle(&me->big_alloc_bytes[k], &me->big_free_bytes[k], sum.big_alloc_bytes[k], sum.big_free_bytes[k],
                      bytes[k]);
  }
}

int tinymalloc_stats(tinymalloc_stats_t *out)
{
  tm_init();
  memset(out, 0, sizeof *out);
  tm_sums_t sum;
  tm_sum_counters(&sum);
  size_t *small_allocs = sum.small_allocs, *small_frees = sum.small_frees;
  size_t *big_allocs = sum.big_allocs, *big_frees = sum.big_frees;
  size_t *big_alloc_bytes = sum.big_alloc_bytes, *big_free_bytes = sum.big_free_bytes;

  out->class_count = TM_CLASS_COUNT;
  for (unsigned c = 0; c < TM_CLASS_COUNT; c++) {
    tinymalloc_class_stats_t *cs = &out->classes[c];
    cs->block_size = tm_class_size[c];
    cs->allocs = small_allocs[c];
    cs->live_blocks = tm_live(small_allocs[c], small_frees[c]);
    out->small_blocks += cs->live_blocks;
    out->live_bytes += cs->live_blocks * cs->block_size;
    out->total_allocs += small_allocs[c];
    out->total_frees += small_frees[c];
  }
  out->medium_blocks = tm_live(big_allocs[0], big_frees[0]);
  out->large_blocks = tm_live(big_allocs[1], big_frees[1]);
  for (int k = 0; k < 2; k++) {
    out->live_bytes += tm_live(big_alloc_bytes[k], big_free_bytes[k]);
    out->total_allocs += big_allocs[k];
    out->total_frees += big_frees[k];
  }
  out->live_blocks = out->small_blocks + out->medium_blocks + out->large_blocks;

  out->arena_count = tm_arena_count;
  size_t segment_meta = 0;
  for (uint32_t i = 0; i < tm_arena_count; i++) {
    tm_arena_t *arena = &tm_arenas[i];
    tinymalloc_arena_stats_t *as = &out->arenas[i];
    pthread_mutex_lock(&arena->lock);
    as->segments = arena->segment_count;
    as->medium_blocks = arena->medium_live;
    as->large_blocks = arena->large_live;
    as->threads = arena->threads;
    for (tm_segment_t *seg = arena->segments; seg; seg = seg->next) {
      as->mapped_bytes += TM_SEGMENT_SIZE;
      out->resident_bytes += tm_os_resident(seg, TM_SEGMENT_SIZE);
      segment_meta += (size_t)seg->meta_pages * TM_PAGE_SIZE;
      for (size_t s = 0; s < TM_SLOTS; s++) {
        uint32_t size = atomic_load_explicit(&seg->slabs[s].block_size, memory_order_relaxed);
        if (size) out->classes[seg->slabs[s].class_index].slabs++;
      }
    }
    for (tm_large_t *large = arena->large; large; large = large->next) {
      as->mapped_bytes += large->map_size;
      out->resident_bytes += tm_os_resident(large->base, large->map_size);
    }
    pthread_mutex_unlock(&arena->lock);
    out->segments += as->segments;
  }
  size_t meta = atomic_load_explicit(&tm_os_meta_mapped, memory_order_relaxed);
  out->mapped_bytes = atomic_load_explicit(&tm_os_mapped, memory_order_relaxed) + meta;
  out->peak_mapped_bytes = atomic_load_explicit(&tm_os_mapped_peak, memory_order_relaxed) + meta;
  out->metadata_bytes = meta + segment_meta;
  out->purged_bytes = atomic_load_explicit(&tm_os_purged, memory_order_relaxed);
  out->unmapped_bytes = atomic_load_explicit(&tm_os_unmapped, memory_order_relaxed);
  return 0;
}

void tinymalloc_counters(tinymalloc_counters_t *out)
{
  tm_init();
  tm_sums_t sum;
  tm_sum_counters(&sum);
  memset(out, 0, sizeof *out);
  for (unsigned c = 0; c < TM_CLASS_COUNT; c++) {
    size_t live = tm_live(sum.small_allocs[c], sum.small_frees[c]);
    out->live_blocks += live;
    out->live_bytes += live * tm_class_size[c];
  }
  for (int k = 0; k < 2; k++) {
    out->live_blocks += tm_live(sum.big_allocs[k], sum.big_frees[k]);
    out->live_bytes += tm_live(sum.big_alloc_bytes[k], sum.big_free_bytes[k]);
  }
  for (uint32_t i = 0; i < tm_arena_count; i++)
    out->segments += atomic_load_explicit((_Atomic size_t *)&tm_arenas[i].segment_count, memory_order_relaxed);
  out->mapped_bytes = atomic_load_explicit(&tm_os_mapped, memory_order_relaxed) +
                      atomic_load_explicit(&tm_os_meta_mapped, memory_order_relaxed);
}
