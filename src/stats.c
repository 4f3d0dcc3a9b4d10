/* stats.c owns tinymalloc_stats and tinymalloc_counters. Live blocks are
 * counted from the bitmaps, page maps and arena lists (the truth), not from
 * counters; the only counters are cumulative allocations (per heap and class,
 * per arena for medium and large). Frees are allocations minus live blocks.
 * Walks each arena under its lock, reads slabs other threads own with relaxed
 * loads (exact when they are quiescent), asks mincore only for the full
 * statistics. Never allocates; nothing in the core calls it. */
#include <string.h>

#include "arena.h"
#include "grace.h"
#include "heap.h"
#include "init.h"
#include "large.h"
#include "lock.h"
#include "os.h"
#include "sizeclass.h"
#include "slab.h"

typedef struct tm_census_s {
  size_t class_live[TM_CLASS_COUNT], class_slabs[TM_CLASS_COUNT];
  size_t medium_live, medium_bytes, large_live, large_bytes, medium_allocs, large_allocs;
} tm_census_t;

/* One arena's figures, lock held. */
static void tm_census_arena(tm_arena_t *arena, tm_census_t *census, tinymalloc_arena_stats_t *as, size_t *resident,
                            size_t *segment_meta)
{
  for (tm_segment_t *seg = arena->segments; seg; seg = seg->next) {
    if (as) as->mapped_bytes += TM_SEGMENT_SIZE;
    if (resident) *resident += tm_os_resident(seg, TM_SEGMENT_SIZE);
    if (segment_meta) *segment_meta += (size_t)seg->meta_pages * TM_PAGE_SIZE;
    for (size_t slot = TM_FIRST_SLAB_SLOT; slot < TM_SLOTS; slot++) {
      tm_slab_t *slab = &seg->slabs[slot];
      if (atomic_load_explicit(&slab->block_size, memory_order_acquire) == 0) continue;
      census->class_live[slab->class_index] += tm_slab_live_count(slab);
      census->class_slabs[slab->class_index]++;
    }
  }
  for (int list = 0; list < 2; list++) {
    for (tm_large_t *large = list ? arena->large_cache : arena->large; large; large = large->next) {
      if (as) as->mapped_bytes += large->map_size;
      if (resident) *resident += tm_os_resident(large, large->map_size);
    }
  }
  census->medium_live += arena->medium_live;
  census->medium_bytes += arena->medium_bytes;
  census->large_live += arena->large_live;
  census->large_bytes += arena->large_bytes;
  census->medium_allocs += arena->medium_allocs;
  census->large_allocs += arena->large_allocs;
  if (as) {
    as->segments = atomic_load_explicit(&arena->segment_count, memory_order_relaxed);
    as->medium_blocks = arena->medium_live;
    as->large_blocks = arena->large_live;
    as->threads = arena->threads;
  }
}

/* Medium runs sitting free in heaps' caches, and medium and large blocks in
 * quarantines, are counted live by the arenas: they are taken off here. */
static void tm_census_uncache(tm_census_t *census)
{
  for (tm_heap_t *heap = tm_heaps_first(); heap; heap = heap->next_all) {
    census->medium_live -= atomic_load_explicit(&heap->medium_cached_runs, memory_order_relaxed);
    census->medium_bytes -= atomic_load_explicit(&heap->medium_cached_bytes, memory_order_relaxed);
    census->medium_allocs += atomic_load_explicit(&heap->medium_reuses, memory_order_relaxed);
    census->medium_live -= atomic_load_explicit(&heap->quarantined[0], memory_order_relaxed);
    census->medium_bytes -= atomic_load_explicit(&heap->quarantined_bytes[0], memory_order_relaxed);
    census->large_live -= atomic_load_explicit(&heap->quarantined[1], memory_order_relaxed);
    census->large_bytes -= atomic_load_explicit(&heap->quarantined_bytes[1], memory_order_relaxed);
  }
}

static void tm_census_all(tm_census_t *census, tinymalloc_stats_t *out, size_t *resident, size_t *segment_meta)
{
  memset(census, 0, sizeof *census);
  uint32_t count = tm_arenas_in_use();
  for (uint32_t i = 0; i < count; i++) {
    tm_arena_t *arena = &tm_arenas[i];
    tm_lock(&arena->lock);
    if (!arena->lost) tm_census_arena(arena, census, out ? &out->arenas[i] : NULL, resident, segment_meta);
    tm_unlock(&arena->lock);
  }
  tm_census_uncache(census);
}

static void tm_sum_allocs(size_t allocs[TM_CLASS_COUNT])
{
  memset(allocs, 0, sizeof(size_t) * TM_CLASS_COUNT);
  for (tm_heap_t *heap = tm_heaps_first(); heap; heap = heap->next_all)
    for (unsigned c = 0; c < TM_CLASS_COUNT; c++)
      allocs[c] += atomic_load_explicit(&heap->allocs[c], memory_order_relaxed);
}


static size_t tm_mapped_now(void)
{
  return atomic_load_explicit(&tm_os_mapped, memory_order_relaxed) +
         atomic_load_explicit(&tm_os_meta_mapped, memory_order_relaxed);
}

int tinymalloc_stats(tinymalloc_stats_t *out)
{
  tm_init();
  memset(out, 0, sizeof *out);
  tm_census_t census;
  size_t resident = 0, segment_meta = 0, allocs[TM_CLASS_COUNT];
  tm_census_all(&census, out, &resident, &segment_meta);
  tm_sum_allocs(allocs);
  out->class_count = TM_CLASS_COUNT;
  for (unsigned c = 0; c < TM_CLASS_COUNT; c++) {
    tinymalloc_class_stats_t *cs = &out->classes[c];
    cs->block_size = tm_class_size[c];
    cs->live_blocks = census.class_live[c];
    cs->allocs = allocs[c] > cs->live_blocks ? allocs[c] : cs->live_blocks;
    cs->slabs = census.class_slabs[c];
    out->small_blocks += cs->live_blocks;
    out->live_bytes += cs->live_blocks * cs->block_size;
    out->total_allocs += cs->allocs;
  }
  out->medium_blocks = census.medium_live;
  out->large_blocks = census.large_live;
  out->live_bytes += census.medium_bytes + census.large_bytes;
  out->live_blocks = out->small_blocks + out->medium_blocks + out->large_blocks;
  out->total_allocs += census.medium_allocs + census.large_allocs;
  out->total_frees = out->total_allocs - out->live_blocks;
  out->arena_count = tm_arenas_in_use();
  for (size_t i = 0; i < out->arena_count; i++)
    out->segments += out->arenas[i].segments;
  size_t meta = atomic_load_explicit(&tm_os_meta_mapped, memory_order_relaxed);
  out->mapped_bytes = tm_mapped_now();
  out->peak_mapped_bytes = atomic_load_explicit(&tm_os_mapped_peak, memory_order_relaxed) + meta;
  out->resident_bytes = resident;
  out->metadata_bytes = meta + segment_meta;
  out->purged_bytes = atomic_load_explicit(&tm_os_purged, memory_order_relaxed);
  out->unmapped_bytes = atomic_load_explicit(&tm_os_unmapped, memory_order_relaxed);
  return 0;
}

void tinymalloc_counters(tinymalloc_counters_t *out)
{
  tm_init();
  tm_census_t census;
  tm_census_all(&census, NULL, NULL, NULL);
  memset(out, 0, sizeof *out);
  for (unsigned c = 0; c < TM_CLASS_COUNT; c++) {
    out->live_blocks += census.class_live[c];
    out->live_bytes += census.class_live[c] * tm_class_size[c];
  }
  out->live_blocks += census.medium_live + census.large_live;
  out->live_bytes += census.medium_bytes + census.large_bytes;
  uint32_t count = tm_arenas_in_use();
  for (uint32_t i = 0; i < count; i++)
    out->segments += atomic_load_explicit(&tm_arenas[i].segment_count, memory_order_relaxed);
  out->mapped_bytes = tm_mapped_now();
}
