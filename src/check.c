/* check.c owns tinymalloc_check: a full walk of the metadata that verifies
 * every invariant written above the structs in internal.h, and that the
 * statistics agree with the bitmaps (the bitmaps are the truth). It reports
 * each violation on stderr and never changes anything. */
#include <unistd.h>

#include "internal.h"

typedef struct {
  int violations;
  bool quiet; /* census only: count, do not print */
  tm_census_t live;
} tm_check_t;

static void tm_violation(tm_check_t *chk, const char *what, const void *where, uint64_t number)
{
  chk->violations++;
  if (chk->quiet) return;
  char buf[320];
  size_t n = 0;
  static const char head[] = "tinymalloc: check: ";
  for (const char *s = head; *s; s++)
    buf[n++] = *s;
  for (const char *s = what; *s && n < 260; s++)
    buf[n++] = *s;
  buf[n++] = ' ';
  n += tm_fmt_hex(buf + n, (uintptr_t)where);
  buf[n++] = ' ';
  n += tm_fmt_dec(buf + n, number);
  buf[n++] = '\n';
  ssize_t ignored = write(STDERR_FILENO, buf, n);
  (void)ignored;
}

static void tm_check_slab(tm_check_t *chk, tm_segment_t *seg, size_t slot, tm_slab_t *slab)
{
  uint32_t size = atomic_load_explicit(&slab->block_size, memory_order_relaxed);
  if (slab->class_index >= TM_CLASS_COUNT || tm_class_size[slab->class_index] != size)
    return tm_violation(chk, "slab with a block size that is not its class", tm_slab_start(slab), size);
  if (slab->capacity != TM_SLAB_SIZE / size)
    tm_violation(chk, "slab capacity wrong", tm_slab_start(slab), slab->capacity);
  if (tm_slab_start(slab) != (uint8_t *)seg + slot * TM_SLAB_SIZE)
    tm_violation(chk, "slab start wrong", tm_slab_start(slab), slot);
  for (size_t p = slot * TM_SLAB_PAGES; p < (slot + 1) * TM_SLAB_PAGES; p++)
    if (!tm_bit_get(seg->page_used, p) || tm_bit_get(seg->run_start, p))
      tm_violation(chk, "slab page not marked as a slab page", tm_slab_start(slab), p);
  uint32_t allocated = 0, live = 0;
  for (uint32_t w = 0; w < TM_SLAB_WORDS; w++) {
    uint64_t alloc = atomic_load_explicit(&slab->alloc_bits[w], memory_order_relaxed);
    uint64_t remote = atomic_load_explicit(&slab->remote_bits[w], memory_order_relaxed);
    uint64_t padding = tm_slab_padding(slab->capacity, w);
    if ((alloc & padding) != padding) tm_violation(chk, "slab padding bit clear", tm_slab_start(slab), w);
    if (remote & ~alloc) tm_violation(chk, "remote-free bit over a free block", tm_slab_start(slab), w);
    if (remote & padding) tm_violation(chk, "remote-free bit over padding", tm_slab_start(slab), w);
    if (w < slab->hint && (alloc | padding) != ~0ull)
      tm_violation(chk, "free block below the slab hint", tm_slab_start(slab), w);
    allocated += (uint32_t)__builtin_popcountll(alloc & ~padding);
    live += (uint32_t)__builtin_popcountll(alloc & ~padding & ~remote);
  }
  if (allocated != slab->used)
    tm_violation(chk, "slab used count differs from its bitmap", tm_slab_start(slab), slab->used);
  chk->live.small_live[slab->class_index] += live;
}

static void tm_check_segment(tm_check_t *chk, tm_arena_t *arena, tm_segment_t *seg)
{
  if (tm_segmap_kind((uintptr_t)seg) != TM_SEG_ARENA) tm_violation(chk, "segment not in the segment map", seg, 0);
  if (seg->arena != arena) tm_violation(chk, "segment in the wrong arena", seg, arena->index);
  if (seg->meta_pages != TM_META_PAGES) tm_violation(chk, "segment metadata size wrong", seg, seg->meta_pages);
  uint64_t covered[TM_PAGE_WORDS] = {0};
  tm_bits_set(covered, 0, seg->meta_pages);
  uint32_t slabs = 0, runs = 0, used = 0;
  for (size_t slot = 0; slot < TM_SLOTS; slot++) {
    tm_slab_t *slab = &seg->slabs[slot];
    if (atomic_load_explicit(&slab->block_size, memory_order_relaxed) == 0) continue;
    slabs++;
    if (tm_bits_any(covered, slot * TM_SLAB_PAGES, TM_SLAB_PAGES))
      tm_violation(chk, "slab overlaps", tm_slab_start(slab), slot);
    tm_bits_set(covered, slot * TM_SLAB_PAGES, TM_SLAB_PAGES);
    tm_check_slab(chk, seg, slot, slab);
  }
  for (size_t page = 0; page < TM_SEGMENT_PAGES; page++) {
    used += tm_bit_get(seg->page_used, page);
    if (!tm_bit_get(seg->run_start, page)) continue;
    runs++;
    size_t pages = seg->run_pages[page];
    uint8_t *start = (uint8_t *)seg + page * TM_PAGE_SIZE;
    if (pages == 0 || page + pages > TM_SEGMENT_PAGES) {
      tm_violation(chk, "medium run with a bad length", start, pages);
      continue;
    }
    if (tm_bits_any(covered, page, pages)) tm_violation(chk, "medium run overlaps", start, pages);
    tm_bits_set(covered, page, pages);
    chk->live.medium_live++;
    chk->live.medium_bytes += pages * TM_PAGE_SIZE;
  }
  for (size_t w = 0; w < TM_PAGE_WORDS; w++) {
    if (covered[w] != seg->page_used[w]) tm_violation(chk, "page map disagrees with slabs and runs", seg, w);
  }
  if (used != seg->used_pages) tm_violation(chk, "segment used-page count wrong", seg, seg->used_pages);
  if (slabs != seg->slab_count) tm_violation(chk, "segment slab count wrong", seg, seg->slab_count);
  if (runs != seg->medium_count) tm_violation(chk, "segment run count wrong", seg, seg->medium_count);
}

static void tm_check_arena(tm_check_t *chk, tm_arena_t *arena)
{
  size_t segments = 0, dirty = 0;
  for (tm_segment_t *seg = arena->segments; seg; seg = seg->next) {
    segments++;
    tm_check_segment(chk, arena, seg);
    for (size_t w = 0; w < TM_PAGE_WORDS; w++)
      dirty += (size_t)__builtin_popcountll(seg->page_dirty[w] & ~seg->page_used[w]);
  }
  if (segments != arena->segment_count) tm_violation(chk, "arena segment count wrong", arena, arena->segment_count);
  if (dirty != arena->dirty_pages) tm_violation(chk, "arena dirty-page count wrong", arena, arena->dirty_pages);
  for (unsigned c = 0; c < TM_CLASS_COUNT; c++) {
    for (tm_slab_t *slab = arena->abandoned[c]; slab; slab = slab->next) {
      if (atomic_load_explicit(&slab->owner, memory_order_relaxed) != NULL)
        tm_violation(chk, "abandoned slab has an owner", tm_slab_start(slab), c);
      if (slab->class_index != c) tm_violation(chk, "abandoned slab on the wrong class list", tm_slab_start(slab), c);
    }
  }
  size_t large = 0;
  for (tm_large_t *l = arena->large; l; l = l->next) {
    large++;
    if (tm_segmap_kind((uintptr_t)l) != TM_SEG_LARGE_HEAD)
      tm_violation(chk, "large block not in the segment map", l, 0);
    if (l->magic != TM_LARGE_MAGIC || l->base != (uint8_t *)l || l->arena != arena)
      tm_violation(chk, "large block header corrupt", l, 0);
    if (tm_large_user(l) + l->usable != l->base + l->map_size)
      tm_violation(chk, "large block extent wrong", tm_large_user(l), l->usable);
    chk->live.large_live++;
    chk->live.large_bytes += l->usable;
  }
  if (large != arena->large_live) tm_violation(chk, "arena large count wrong", arena, arena->large_live);
}

/* Owner-side invariants of every live heap's lists. */
static void tm_check_heaps(tm_check_t *chk)
{
  for (tm_heap_t *heap = tm_heap_registry(); heap; heap = heap->next_all) {
    if (!heap->alive) continue;
    uint32_t empty = 0;
    for (unsigned c = 0; c < TM_CLASS_COUNT; c++) {
      for (int full = 0; full < 2; full++) {
        for (tm_slab_t *slab = full ? heap->full[c] : heap->avail[c]; slab; slab = slab->next) {
          if (atomic_load_explicit(&slab->owner, memory_order_relaxed) != heap)
            tm_violation(chk, "slab on a heap list it is not owned by", tm_slab_start(slab), c);
          if (slab->class_index != c) tm_violation(chk, "slab on the wrong class list", tm_slab_start(slab), c);
          if (slab->in_full_list != (full == 1)) tm_violation(chk, "slab full flag wrong", tm_slab_start(slab), c);
          if (!full && slab->used == slab->capacity)
            tm_violation(chk, "full slab on the available list", tm_slab_start(slab), c);
          empty += slab->counted_empty;
          if (slab->counted_empty && slab->used != 0)
            tm_violation(chk, "slab counted empty is not", tm_slab_start(slab), c);
        }
      }
    }
    if (empty != heap->empty_slabs) tm_violation(chk, "heap empty-slab count wrong", heap, heap->empty_slabs);
  }
}

static void tm_check_arenas(tm_check_t *chk)
{
  for (uint32_t i = 0; i < tm_arena_count; i++) {
    pthread_mutex_lock(&tm_arenas[i].lock);
    tm_check_arena(chk, &tm_arenas[i]);
    pthread_mutex_unlock(&tm_arenas[i].lock);
  }
}

void tm_census(tm_census_t *out)
{
  tm_check_t chk = {.quiet = true};
  tm_check_arenas(&chk);
  *out = chk.live;
}

int tinymalloc_check(void)
{
  tm_init();
  tm_check_t chk = {0};
  tm_heap_pool_lock();
  tm_check_heaps(&chk);
  tm_heap_pool_unlock();
  tm_check_arenas(&chk);
  /* The counters are derived: they must agree with the bitmaps. */
  tinymalloc_stats_t st;
  tinymalloc_stats(&st);
  for (unsigned c = 0; c < TM_CLASS_COUNT; c++)
    if (st.classes[c].live_blocks != chk.live.small_live[c])
      tm_violation(&chk, "live-block counter differs from the bitmaps for class", NULL, c);
  if (st.medium_blocks != chk.live.medium_live)
    tm_violation(&chk, "medium live counter differs from the page maps", NULL, chk.live.medium_live);
  if (st.large_blocks != chk.live.large_live)
    tm_violation(&chk, "large live counter differs from the mappings", NULL, chk.live.large_live);
  size_t small_bytes = 0;
  for (unsigned c = 0; c < TM_CLASS_COUNT; c++)
    small_bytes += chk.live.small_live[c] * tm_class_size[c];
  if (st.live_bytes != small_bytes + chk.live.medium_bytes + chk.live.large_bytes)
    tm_violation(&chk, "live-byte counter differs from the bitmaps, page maps and mappings", NULL, st.live_bytes);
  return chk.violations;
}
