/* quarantine.c owns the detection mode's paths (see quarantine.h and
 * detect.h). A checked free: the block is claimed as freed (small: its
 * quarantine bit with fetch_or; medium: its run's cached bit; large: its live
 * flag), so a second free is a double free however long the block waits;
 * the canary is checked (heap overflow); the block is filled (large: made
 * inaccessible instead) and waits in the freeing thread's quarantine. When
 * it leaves, the fill is checked (write after free) and the block is freed
 * for real: a small one through the remote path (whoever owns its slab
 * merges it; not the owner's local path, which would make this file and
 * heap.c call each other, for a gain within the noise), a medium one to the
 * cache or the arena, a large one unmapped.
 * A small or medium block handed out again is checked once more. */
#include "quarantine.h"
#include "detect.h"
#include "large.h"
#include "medium.h"
#include "options.h"
#include "os.h"
#include "segmap.h"
#include "segment.h"
#include "slab.h"
#include "track.h"

static void tm_waf_fault(tm_faults_t *faults, const void *p, size_t size, size_t offset, const char *when)
{
  tm_faults_add(faults, TINYMALLOC_ERROR_WRITE_AFTER_FREE, p, when, size);
  if (faults->count <= TM_FAULTS_MAX) faults->fault[faults->count - 1].offset = offset;
}

static void tm_count(_Atomic size_t *c, size_t delta, bool add)
{
  size_t v = atomic_load_explicit(c, memory_order_relaxed);
  atomic_store_explicit(c, add ? v + delta : v - delta, memory_order_relaxed);
}

/* Medium [0] and large [1] blocks in a quarantine are claimed but still
 * counted live by their arena: the statistics take them off. */
static void tm_quarantine_count(tm_heap_t *heap, int kind, size_t bytes, bool add)
{
  tm_count(&heap->quarantined[kind], 1, add);
  tm_count(&heap->quarantined_bytes[kind], bytes, add);
}

static void tm_overflow_fault(tm_fault_t *fault, const void *p, size_t requested, size_t offset)
{
  tm_fault_set(fault, TINYMALLOC_ERROR_HEAP_OVERFLOW, p, NULL, requested, NULL);
  fault->offset = offset;
}

/* ---- Small blocks: the 16-byte tests of detect.h inline; detect.c's
 * byte-exact search only when a chunk differs (and on machines the chunks do
 * not serve, tm_chunks_usable). The caller has set the secret up
 * (tm_secret_init: once per malloc or free, these are its hot path). ------ */

/* Whether small block b's fill [0, fill) may have changed (true: find the
 * byte with tm_detect_fill_check). */
TM_INLINE bool tm_small_fill_differs(const uint8_t *b, size_t fill, bool zero)
{
  return fill && (!tm_chunks_usable() || tm_chunks_differ(b, fill, tm_v16_splat(tm_fill_byte(zero))));
}

TM_INLINE void tm_small_fill(uint8_t *b, size_t fill, bool zero)
{
  if (!tm_chunks_usable()) {
    tm_detect_fill(b, fill, zero ? TM_FILL_ZERO : 0);
    return;
  }
  tm_fill_chunks(b, fill, tm_fill_byte(zero));
}

/* Whether a canary byte of small block b, [requested, end) (end:
 * tm_detect_fill_length), may have changed (true: find it with
 * tm_detect_canary_check). */
TM_INLINE bool tm_small_canary_differs(const uint8_t *b, size_t requested, size_t end)
{
  return requested < end && (!tm_chunks_usable() || tm_canary_chunks_differ(b, requested, end));
}

TM_INLINE void tm_small_canary_write(uint8_t *b, size_t requested, size_t usable)
{
  if (!tm_chunks_usable()) {
    tm_detect_canary_write(b, requested, usable);
    return;
  }
  size_t end = tm_detect_fill_length(requested, usable);
  if (requested < end) tm_canary_chunks_write(b, requested, end);
}

/* ---- Handing out ------------------------------------------------------------------ */

void tm_detect_small_out(void *p, size_t requested, size_t usable, tm_faults_t *faults)
{
  uint8_t *b = p;
  tm_slab_t *slab = tm_slab_of((uintptr_t)p);
  uint32_t index = tm_slab_index(slab, (uintptr_t)p & (TM_SLAB_SIZE - 1));
  _Atomic uint16_t *entry = tm_detect_small_entry(tm_segment_of(p), slab->slot, index);
  if (entry == NULL) return;
  uint16_t mark = atomic_load_explicit(entry, memory_order_relaxed);
  bool zero = (mark & TM_DETECT_ZERO16) != 0;
  size_t fill = 0;
  if (mark & TM_DETECT_FREE16) {
    fill = (size_t)(mark & (TM_DETECT_ZERO16 - 1)) << 4;
    if (fill > usable) fill = usable;
  }
  tm_secret_init();
  if (tm_small_fill_differs(b, fill, zero)) {
    size_t at = tm_detect_fill_check(b, fill, zero ? TM_FILL_ZERO : 0); /* the first changed byte */
    if (at != SIZE_MAX) tm_waf_fault(faults, p, usable, at, "was handed out again");
  }
  tm_small_canary_write(b, requested, usable);
  atomic_store_explicit(entry, (uint16_t)(requested + 1), memory_order_relaxed);
}

void tm_detect_medium_out(void *p, size_t requested, size_t usable, tm_faults_t *faults)
{
  tm_segment_t *seg = tm_segment_of(p);
  _Atomic uint32_t *entry = tm_detect_medium_entry(seg, tm_page_of(seg, p));
  if (entry == NULL) return;
  uint32_t mark = atomic_load_explicit(entry, memory_order_relaxed);
  if (mark & TM_DETECT_FREE32) {
    size_t fill = (size_t)(mark & (TM_DETECT_WHOLE32 - 1)) << 4;
    unsigned how = (mark & TM_DETECT_ZERO32 ? TM_FILL_ZERO : 0) | (mark & TM_DETECT_WHOLE32 ? TM_FILL_WHOLE : 0);
    size_t at = tm_detect_fill_check(p, fill < usable ? fill : usable, how);
    if (at != SIZE_MAX) tm_waf_fault(faults, p, usable, at, "was handed out again");
  }
  tm_detect_canary_write(p, requested, usable);
  atomic_store_explicit(entry, (uint32_t)(requested + 1), memory_order_relaxed);
}

void tm_detect_large_out(void *p, size_t requested, size_t usable)
{
  tm_fault_t ignored;
  tm_large_t *large = tm_large_find(p, &ignored);
  if (large == NULL) return;
  large->requested = requested + 1;
  tm_detect_canary_write(p, requested, usable);
}

size_t tm_detect_requested(const void *p, const tm_ptr_t *ptr)
{
  size_t stored = 0;
  if (ptr->kind == TM_PTR_SMALL) {
    _Atomic uint16_t *entry = tm_detect_small_entry(tm_segment_of(p), ptr->slab->slot, ptr->index);
    stored = entry ? atomic_load_explicit(entry, memory_order_relaxed) : 0;
    if (stored & TM_DETECT_FREE16) stored = 0;
  } else if (ptr->kind == TM_PTR_MEDIUM) {
    tm_segment_t *seg = tm_segment_of(p);
    _Atomic uint32_t *entry = tm_detect_medium_entry(seg, tm_page_of(seg, p));
    stored = entry ? atomic_load_explicit(entry, memory_order_relaxed) : 0;
    if (stored & TM_DETECT_FREE32) stored = 0;
  } else if (ptr->kind == TM_PTR_LARGE) {
    stored = ptr->large->requested;
  }
  return stored ? stored - 1 : SIZE_MAX;
}

/* ---- Resizing in place ------------------------------------------------------------ */

void *tm_detect_resize(void *p, const tm_ptr_t *ptr, size_t usable, size_t size)
{
  size_t requested = tm_detect_requested(p, ptr);
  if (requested == SIZE_MAX) return NULL;
  size_t need = size + TM_DETECT_SLACK;
  if (ptr->kind == TM_PTR_SMALL) {
    if (need > usable || (need < usable / 2 && usable > TM_MIN_BLOCK)) return NULL;
    if (tm_detect_canary_check(p, requested, usable) != SIZE_MAX) return NULL;
    _Atomic uint16_t *entry = tm_detect_small_entry(tm_segment_of(p), ptr->slab->slot, ptr->index);
    if (entry == NULL) return NULL;
    tm_detect_canary_write(p, size, usable);
    atomic_store_explicit(entry, (uint16_t)(size + 1), memory_order_relaxed);
    return p;
  }
  if (ptr->kind == TM_PTR_MEDIUM) {
    if (need <= TM_SMALL_MAX || need > TM_MEDIUM_MAX + TM_PAGE_SIZE) return NULL;
    if (tm_detect_canary_check(p, requested, usable) != SIZE_MAX) return NULL;
    tm_segment_t *seg = tm_segment_of(p);
    _Atomic uint32_t *entry = tm_detect_medium_entry(seg, tm_page_of(seg, p));
    if (entry == NULL) return NULL;
    size_t new_usable = tm_medium_resize(p, need);
    if (new_usable == 0) return NULL;
    tm_detect_canary_write(p, size, new_usable);
    atomic_store_explicit(entry, (uint32_t)(size + 1), memory_order_relaxed);
    return p;
  }
  /* Large: only a guarded block (a plainly aligned one), and only while it
   * stays large; it needs no slack, its pages end against the guard. */
  tm_large_t *large = ptr->large;
  if (!large->guarded || need <= TM_MEDIUM_MAX + TM_PAGE_SIZE) return NULL;
  if (tm_detect_canary_check(p, requested, usable) != SIZE_MAX) return NULL;
  size_t offset = large->user_offset, new_usable;
  uint8_t *q = tm_large_resize_guarded(large, size, &new_usable);
  if (q == NULL) return NULL;
  large = (tm_large_t *)(void *)(q - offset); /* it may have moved (the header is its mapping's first page) */
  tm_detect_canary_write(q, size, new_usable);
  large->requested = size + 1;
  return q;
}

/* ---- Release ------------------------------------------------------------------------ */

/* A block leaves the quarantine: its fill is checked, then it is freed. A
 * small block's check covers the first `check` bytes of its fill: all of
 * them at thread exit and trim (SIZE_MAX), else TM_DETECT_EXIT_CHECK (where
 * a stale pointer's writes land most: the object's header; it is checked
 * whole when it is handed out again, and a third pass over every freed
 * block cost more than any other part of the mode), or none when there is
 * no quarantine and the fill was written just now (nothing ran since; the
 * hand-out check covers it as before). A medium run is checked whole: the
 * arena may take it back and forget its fill. The small path is inline
 * (every free in the mode takes it); the two rare kinds are not. */
static TM_NOINLINE void tm_detect_release_large(tm_heap_t *heap, void *p, size_t size)
{
  tm_fault_t ignored;
  tm_large_t *large = tm_large_find(p, &ignored);
  if (heap) tm_quarantine_count(heap, 1, size, false);
  if (large) tm_large_release(large);
}

static TM_NOINLINE void tm_detect_release_medium(tm_heap_t *heap, void *p, size_t size, size_t fill, unsigned how,
                                                 tm_faults_t *faults)
{
  size_t at = tm_detect_fill_check(p, fill, how);
  if (at != SIZE_MAX) {
    tm_waf_fault(faults, p, size, at, "left the quarantine");
    tm_segment_t *seg = tm_segment_of(p);
    tm_detect_medium_forget(seg, tm_page_of(seg, p)); /* reported once, not again when handed out */
  }
  if (heap) tm_quarantine_count(heap, 0, size, false);
  tm_medium_release(heap, p, size >> TM_PAGE_SHIFT);
}

/* A block whose write after free was reported as it left the quarantine
 * goes back unknown (before it can be handed out): the hand-out check would
 * report the same damage again to a program whose error handler returned. */
static TM_NOINLINE void tm_detect_small_forget(tm_slab_t *slab, void *p)
{
  uint32_t index = tm_slab_index(slab, (uintptr_t)p & (TM_SLAB_SIZE - 1));
  _Atomic uint16_t *entry = tm_detect_small_entry(tm_segment_of(p), slab->slot, index);
  if (entry) atomic_store_explicit(entry, TM_DETECT_UNKNOWN, memory_order_relaxed);
}

TM_INLINE void tm_detect_release(tm_heap_t *heap, void *p, size_t size, size_t fill, size_t check, tm_faults_t *faults)
{
  uintptr_t a = (uintptr_t)p;
  unsigned how = (unsigned)(size & TM_FILL_BITS);
  bool zero = (how & TM_FILL_ZERO) != 0;
  size &= ~(size_t)TM_FILL_BITS;
  if (tm_segmap_kind(a) != TM_SEG_ARENA) {
    tm_detect_release_large(heap, p, size);
    return;
  }
  tm_slab_t *slab = tm_slab_of(a);
  if (atomic_load_explicit(&slab->block_size, memory_order_relaxed) == 0) {
    tm_detect_release_medium(heap, p, size, fill, how, faults);
    return;
  }
  tm_secret_init();
  if (fill > check) fill = check;
  if (tm_small_fill_differs(p, fill, zero)) {
    size_t at = tm_detect_fill_check(p, fill, zero);
    if (at != SIZE_MAX) {
      tm_waf_fault(faults, p, size, at, "left the quarantine");
      tm_detect_small_forget(slab, p); /* reported once, not again when handed out */
    }
  }
  uint32_t index = tm_slab_index(slab, a & (TM_SLAB_SIZE - 1));
  uint64_t bit = 1ull << (index & 63);
  atomic_fetch_and_explicit(&slab->quarantine_bits[index >> 6], ~bit, memory_order_acq_rel);
  tm_slab_free_remote(slab, index, p, heap);
}

/* Makes room in `heap`'s quarantine for a block of `size` bytes: the oldest
 * blocks leave. Called before the new block is filled: a block leaving takes
 * atomic read-modify-writes, which would wait for the fill's stores. Returns
 * the quarantine, or NULL when there is none. */
static tm_quarantine_t *tm_detect_make_room(tm_heap_t *heap, size_t size, tm_faults_t *faults)
{
  tm_quarantine_t *q = heap ? tm_quarantine_of(heap) : NULL;
  if (q == NULL) return NULL;
  struct tm_quarantine_entry_s old;
  while (tm_quarantine_needs_room(q, size) && tm_quarantine_pop(q, &old))
    tm_detect_release(heap, old.p, old.size, old.fill, TM_DETECT_EXIT_CHECK, faults);
  return q;
}

static TM_NOINLINE void tm_detect_release_now(tm_heap_t *heap, void *p, size_t size, size_t fill, unsigned how,
                                              tm_faults_t *faults)
{
  tm_detect_release(heap, p, size | how, fill, 0, faults);
}

/* Holds a claimed, checked, filled block: in the quarantine `q` (room made
 * by tm_detect_make_room), or (no quarantine) freed at once. `how`: how it
 * was filled (TM_FILL_*). */
TM_INLINE void tm_detect_hold(tm_heap_t *heap, tm_quarantine_t *q, void *p, size_t size, size_t fill, unsigned how,
                              tm_faults_t *faults)
{
  if (TM_LIKELY(q != NULL))
    tm_quarantine_push(q, p, size | how, fill);
  else
    tm_detect_release_now(heap, p, size, fill, how, faults);
}

void tm_detect_flush(tm_heap_t *heap, tm_faults_t *faults)
{
  if (heap == NULL || heap->quarantine == NULL) return;
  struct tm_quarantine_entry_s old;
  while (tm_quarantine_pop(heap->quarantine, &old))
    tm_detect_release(heap, old.p, old.size, old.fill, SIZE_MAX, faults);
  tm_quarantine_release(heap);
}

void tm_detect_check_at_exit(tm_heap_t *heap, tm_faults_t *faults)
{
  tm_quarantine_t *q = heap ? heap->quarantine : NULL;
  if (q == NULL) return;
  for (size_t i = 0; i < q->count; i++) {
    const struct tm_quarantine_entry_s *e = &q->entry[(q->head + i) % q->capacity];
    if (tm_segmap_kind((uintptr_t)e->p) != TM_SEG_ARENA) continue; /* large: inaccessible, it faulted */
    unsigned how = (unsigned)(e->size & TM_FILL_BITS);
    size_t at = tm_detect_fill_check(e->p, e->fill, how);
    if (at != SIZE_MAX)
      tm_waf_fault(faults, e->p, e->size & ~(size_t)TM_FILL_BITS, at, "was still in the quarantine at exit");
  }
}

/* ---- The checked free ------------------------------------------------------------------ */

void tm_detect_free_small(tm_slab_t *slab, uint32_t index, uint32_t size, void *p, tm_heap_t *heap, tm_fault_t *fault,
                          tm_faults_t *faults)
{
  uint64_t bit = 1ull << (index & 63);
  if (!tm_slab_block_live(slab, index) ||
      (atomic_fetch_or_explicit(&slab->quarantine_bits[index >> 6], bit, memory_order_acq_rel) & bit)) {
    tm_slab_fault(slab, index, p, fault);
    return;
  }
  _Atomic uint16_t *entry = tm_detect_small_entry(tm_segment_of(p), slab->slot, index);
  uint16_t stored = entry ? atomic_load_explicit(entry, memory_order_relaxed) : TM_DETECT_UNKNOWN;
  size_t requested = SIZE_MAX;
  if (stored != TM_DETECT_UNKNOWN && !(stored & TM_DETECT_FREE16)) requested = stored - 1u;
  bool zero = TM_OPTION(zero_on_free) != 0;
  tm_quarantine_t *q = tm_detect_make_room(heap, size | zero, faults);
  size_t fill = tm_detect_fill_length(requested, size); /* where the canary ends, too */
  uint8_t *b = p;
  tm_secret_init();
  if (tm_small_canary_differs(b, requested, fill)) {
    size_t at = tm_detect_canary_check(b, requested, size); /* the first changed byte */
    if (at != SIZE_MAX) tm_overflow_fault(fault, p, requested, at);
  }
  tm_small_fill(b, fill, zero);
  if (entry)
    atomic_store_explicit(entry, (uint16_t)(TM_DETECT_FREE16 | (zero ? TM_DETECT_ZERO16 : 0) | (fill >> 4)),
                          memory_order_relaxed);
  tm_detect_hold(heap, q, p, size, fill, zero ? TM_FILL_ZERO : 0, faults);
}

static void tm_detect_free_medium(void *p, tm_heap_t *heap, tm_fault_t *fault, tm_faults_t *faults)
{
  size_t pages = tm_medium_claim(p, fault);
  if (pages == 0) return;
  size_t usable = pages << TM_PAGE_SHIFT;
  tm_segment_t *seg = tm_segment_of(p);
  _Atomic uint32_t *entry = tm_detect_medium_entry(seg, tm_page_of(seg, p));
  uint32_t stored = entry ? atomic_load_explicit(entry, memory_order_relaxed) : TM_DETECT_UNKNOWN;
  size_t requested = SIZE_MAX;
  if (stored != TM_DETECT_UNKNOWN && !(stored & TM_DETECT_FREE32)) {
    requested = stored - 1u;
    size_t at = tm_detect_canary_check(p, requested, usable);
    if (at != SIZE_MAX) tm_overflow_fault(fault, p, requested, at);
  }
  unsigned how = (TM_OPTION(zero_on_free) ? TM_FILL_ZERO : 0) | (TM_OPTION(fill_all) ? TM_FILL_WHOLE : 0);
  size_t fill = tm_detect_fill_length(requested, usable);
  tm_detect_fill(p, fill, how);
  if (entry)
    atomic_store_explicit(entry,
                          TM_DETECT_FREE32 | (how & TM_FILL_ZERO ? TM_DETECT_ZERO32 : 0) |
                              (how & TM_FILL_WHOLE ? TM_DETECT_WHOLE32 : 0) | (uint32_t)(fill >> 4),
                          memory_order_relaxed);
  if (heap) tm_quarantine_count(heap, 0, usable, true);
  tm_detect_hold(heap, tm_detect_make_room(heap, usable | how, faults), p, usable, fill, how, faults);
}

static void tm_detect_free_large(tm_large_t *large, tm_heap_t *heap, tm_fault_t *fault, tm_faults_t *faults)
{
  if (!tm_large_claim(large, fault)) return;
  uint8_t *p = tm_large_user(large);
  if (large->requested) {
    size_t at = tm_detect_canary_check(p, large->requested - 1, large->usable);
    if (at != SIZE_MAX) tm_overflow_fault(fault, p, large->requested - 1, at);
  }
  /* Inaccessible while it waits: a read or write after free faults. Never
   * cached afterwards. */
  large->guarded = true;
  tm_os_protect((uint8_t *)large + TM_PAGE_SIZE, large->map_size - TM_PAGE_SIZE, false);
  if (heap) tm_quarantine_count(heap, 1, large->usable, true);
  tm_detect_hold(heap, tm_detect_make_room(heap, large->usable, faults), p, large->usable, 0, 0, faults);
}

void tm_detect_free(void *p, const tm_ptr_t *ptr, tm_heap_t *heap, tm_fault_t *fault, tm_faults_t *faults)
{
  if (ptr->kind == TM_PTR_SMALL)
    tm_detect_free_small(ptr->slab, ptr->index, ptr->block_size, p, heap, fault, faults);
  else if (ptr->kind == TM_PTR_MEDIUM)
    tm_detect_free_medium(p, heap, fault, faults);
  else if (ptr->kind == TM_PTR_LARGE)
    tm_detect_free_large(ptr->large, heap, fault, faults);
  else
    *fault = ptr->fault;
}
