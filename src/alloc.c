/* alloc.c owns the public malloc family: the small fast paths (a thread's own
 * slab, no lock, no atomic read-modify-write), the choice of strategy by size
 * and alignment, and the O(1) pointer validation that precedes every free,
 * realloc and usable_size (segment map first, then out-of-band metadata).
 * It never reads or writes a block except to copy, zero or junk-fill it. */
#include <errno.h>
#include <string.h>

#include "internal.h"
#include "track.h"

/* ---- Handing out -------------------------------------------------------- */

static inline void *tm_handed_out(void *p, size_t requested, size_t usable, bool zero, bool clean)
{
  tm_track_malloc(p, requested, usable, zero && clean);
  if (zero && !clean)
    memset(p, 0, requested);
  else if (!zero && TM_UNLIKELY(TM_OPTION(junk)))
    memset(p, TM_JUNK_ALLOC_BYTE, requested);
  return p;
}

static inline void *tm_small_alloc(tm_heap_t *heap, unsigned cls)
{
  tm_slab_t *slab = heap->avail[cls];
  if (TM_UNLIKELY(slab == NULL)) return tm_heap_alloc_small_slow(heap, cls);
  if (TM_UNLIKELY(slab->counted_empty)) tm_heap_slab_refilled(heap, slab);
  void *p = tm_slab_take_block(slab);
  if (TM_UNLIKELY(slab->used == slab->capacity)) tm_heap_slab_filled(heap, slab);
  return p;
}

/* Every request that is not "small, default alignment, thread has a heap".
 * `need` is what the block must hold: the request plus, in tracked builds,
 * the redzone. */
void *tm_alloc_aligned(size_t size, size_t alignment, bool zero)
{
  if (TM_UNLIKELY(size > TM_MAX_REQUEST)) {
    errno = ENOMEM;
    return NULL;
  }
  tm_heap_t *heap = tm_heap_get();
  if (heap == NULL) return NULL;
  size_t need = size + TM_TRACK_REDZONE;
  if (alignment < TM_MIN_BLOCK) alignment = TM_MIN_BLOCK;
  unsigned cls = TM_CLASS_COUNT;
  if (need <= TM_SMALL_MAX && alignment <= TM_PAGE_SIZE)
    cls = alignment == TM_MIN_BLOCK ? tm_size_class(need) : tm_aligned_class(need, alignment);
  if (cls < TM_CLASS_COUNT) {
    void *p = tm_small_alloc(heap, cls);
    if (p == NULL) return NULL;
    tm_counter_add(&heap->small_allocs[cls], 1);
    return tm_handed_out(p, size, tm_class_size[cls], zero, false);
  }
  if (need == 0) need = 1; /* a page run or mapping of zero pages would not be unique */
  int strategy = need <= TM_MEDIUM_MAX && alignment <= TM_MEDIUM_ALIGN_MAX ? 0 : 1;
  void *p =
      strategy == 0 ? tm_arena_alloc_medium(heap->arena, size, need, alignment, zero) : tm_large_alloc(need, alignment);
  if (p == NULL) return NULL;
  size_t usable = (need + TM_PAGE_SIZE - 1) & ~(TM_PAGE_SIZE - 1);
  if (strategy == 1) {
    tm_handed_out(p, size, usable, zero, true); /* fresh mapping: already zero */
  } else if (!zero && TM_UNLIKELY(TM_OPTION(junk))) {
    memset(p, TM_JUNK_ALLOC_BYTE, size);
  }
  tm_counter_add(&heap->big_allocs[strategy], 1);
  tm_counter_add(&heap->big_alloc_bytes[strategy], usable);
  return p;
}

void *tinymalloc(size_t size)
{
  tm_heap_t *heap = tm_thread_heap;
  if (TM_LIKELY(heap != NULL && size <= TM_SMALL_MAX - TM_TRACK_REDZONE)) {
    unsigned cls = tm_size_class(size + TM_TRACK_REDZONE);
    void *p = tm_small_alloc(heap, cls);
    if (TM_LIKELY(p != NULL)) {
      tm_counter_add(&heap->small_allocs[cls], 1);
      return tm_handed_out(p, size, tm_class_size[cls], false, false);
    }
  }
  return tm_alloc_aligned(size, 0, false);
}

void *tinycalloc(size_t n, size_t size)
{
  size_t total;
  if (__builtin_mul_overflow(n, size, &total)) {
    errno = ENOMEM;
    return NULL;
  }
  return tm_alloc_aligned(total, 0, true);
}

static bool tm_alignment_ok(size_t alignment)
{
  return alignment != 0 && (alignment & (alignment - 1)) == 0 && alignment <= TM_MAX_REQUEST / 2;
}

void *tinymemalign(size_t alignment, size_t size)
{
  if (!tm_alignment_ok(alignment)) {
    errno = EINVAL;
    return NULL;
  }
  return tm_alloc_aligned(size, alignment, false);
}

void *tinyaligned_alloc(size_t alignment, size_t size) { return tinymemalign(alignment, size); }

int tinyposix_memalign(void **out, size_t alignment, size_t size)
{
  if (!tm_alignment_ok(alignment) || alignment % sizeof(void *) != 0) return EINVAL;
  int saved = errno;
  void *p = tm_alloc_aligned(size, alignment, false);
  errno = saved;
  if (p == NULL) return ENOMEM;
  *out = p;
  return 0;
}

/* ---- Taking back ---------------------------------------------------------- */

/* The owner's free of block `index`: a clear alloc bit or a pending remote
 * bit means it is already free. Plain load + store on the bitmap. */
static inline void tm_slab_free_local(tm_heap_t *heap, tm_slab_t *slab, uint32_t index, void *p, const char *op)
{
  uint32_t w = index >> 6;
  uint64_t bit = 1ull << (index & 63);
  uint32_t size = atomic_load_explicit(&slab->block_size, memory_order_relaxed);
  uint64_t bits = atomic_load_explicit(&slab->alloc_bits[w], memory_order_relaxed);
  if (TM_UNLIKELY(!(bits & bit) || (atomic_load_explicit(&slab->remote_bits[w], memory_order_acquire) & bit))) {
    tm_report(TINYMALLOC_ERROR_DOUBLE_FREE, op, p, NULL, size, NULL);
    return;
  }
  if (TM_UNLIKELY(TM_OPTION(junk))) tm_junk_fill(p, size);
  tm_track_free(p, size);
  atomic_store_explicit(&slab->alloc_bits[w], bits & ~bit, memory_order_relaxed);
  if (w < slab->hint) slab->hint = w;
  slab->used--;
  tm_counter_add(&heap->small_frees[slab->class_index], 1);
  if (TM_UNLIKELY(slab->in_full_list)) tm_heap_slab_unfull(heap, slab);
  if (TM_UNLIKELY(slab->used == 0)) tm_heap_slab_emptied(heap, slab);
}

void tinyfree(void *p)
{
  uintptr_t a = (uintptr_t)p;
  if (TM_LIKELY(tm_segmap_kind(a) == TM_SEG_ARENA)) {
    uint32_t size;
    tm_slab_t *slab = tm_slab_at(p, &size);
    tm_heap_t *heap = tm_thread_heap;
    if (TM_LIKELY(size != 0 && heap != NULL && atomic_load_explicit(&slab->owner, memory_order_relaxed) == heap)) {
      size_t in_slab = a & (TM_SLAB_SIZE - 1);
      uint32_t index = tm_slab_index(slab, in_slab);
      if (TM_LIKELY((size_t)index * size == in_slab && index < slab->capacity)) {
        tm_slab_free_local(heap, slab, index, p, "free");
        return;
      }
    }
  }
  if (p != NULL) tm_free_slow(p, "free");
}

/* Where `p` points inside a slab, once the slab is known to be carved:
 * reports and returns false unless it is the start of a block. */
static bool tm_slab_locate(tm_slab_t *slab, uint32_t size, const void *p, const char *op, uint32_t *index)
{
  size_t in_slab = ((uintptr_t)p - (uintptr_t)tm_slab_start(slab));
  uint32_t i = tm_slab_index(slab, in_slab);
  if (i >= slab->capacity) {
    tm_report(TINYMALLOC_ERROR_INVALID_FREE, op, p, "past the last block of a slab", 0, NULL);
    return false;
  }
  if ((size_t)i * size != in_slab) {
    tm_report(TINYMALLOC_ERROR_INTERIOR, op, p, NULL, size, tm_slab_start(slab) + (size_t)i * size);
    return false;
  }
  *index = i;
  return true;
}

static void tm_report_freed_region(uint8_t kind, const void *p, const char *op)
{
  if (kind == TM_SEG_FREED_LARGE && ((uintptr_t)p & (TM_PAGE_SIZE - 1)) == 0)
    tm_report(TINYMALLOC_ERROR_DOUBLE_FREE, op, p, "large block already unmapped", 0, NULL);
  else if (kind == TM_SEG_FREED_LARGE || kind == TM_SEG_FREED)
    tm_report(TINYMALLOC_ERROR_INVALID_FREE, op, p, "points into memory tinymalloc already returned to the OS", 0,
              NULL);
  else
    tm_report(TINYMALLOC_ERROR_INVALID_FREE, op, p, "not allocated by tinymalloc", 0, NULL);
}

TM_NOINLINE void tm_free_slow(void *p, const char *op)
{
  int saved = errno;
  uintptr_t a = (uintptr_t)p;
  uint8_t kind = tm_segmap_kind(a);
  if (kind == TM_SEG_ARENA) {
    uint32_t size, index;
    tm_slab_t *slab = tm_slab_at(p, &size);
    if (size == 0) {
      tm_medium_free(p, op);
    } else if (tm_slab_locate(slab, size, p, op, &index)) {
      tm_heap_t *heap = tm_heap_get();
      if (heap != NULL && atomic_load_explicit(&slab->owner, memory_order_relaxed) == heap)
        tm_slab_free_local(heap, slab, index, p, op);
      else
        tm_slab_free_remote(slab, index, p, op);
    }
  } else if (kind == TM_SEG_LARGE_HEAD || kind == TM_SEG_LARGE_BODY) {
    tm_large_free(p, op);
  } else {
    tm_report_freed_region(kind, p, op);
  }
  errno = saved;
}

/* Validates `p` as a live block and gives its usable size; reports (as `op`)
 * and returns false otherwise. */
bool tm_block_usable(const void *p, const char *op, size_t *usable)
{
  uintptr_t a = (uintptr_t)p;
  uint8_t kind = tm_segmap_kind(a);
  if (kind == TM_SEG_ARENA) {
    uint32_t size, index;
    tm_slab_t *slab = tm_slab_at(p, &size);
    if (size == 0) return tm_medium_lookup(p, op, usable);
    if (!tm_slab_locate(slab, size, p, op, &index)) return false;
    if (!tm_slab_block_live(slab, index)) {
      tm_report(TINYMALLOC_ERROR_DOUBLE_FREE, op, p, NULL, size, NULL);
      return false;
    }
    *usable = size;
    return true;
  }
  if (kind == TM_SEG_LARGE_HEAD || kind == TM_SEG_LARGE_BODY) {
    tm_large_t *large = tm_large_find(p, op);
    if (large == NULL) return false;
    if (!atomic_load_explicit(&large->live, memory_order_acquire)) {
      tm_report(TINYMALLOC_ERROR_DOUBLE_FREE, op, p, NULL, large->usable, NULL);
      return false;
    }
    *usable = large->usable;
    return true;
  }
  tm_report_freed_region(kind, p, op);
  return false;
}

size_t tinymalloc_usable_size(const void *p)
{
  size_t usable;
  if (p == NULL || !tm_block_usable(p, "usable_size", &usable)) return 0;
  return tm_track_usable_size(p, usable);
}

/* ---- Resizing --------------------------------------------------------------- */

/* Tries to keep the block where it is; returns false when it must move. */
static bool tm_realloc_in_place(void *p, size_t usable, size_t size)
{
  uint8_t kind = tm_segmap_kind((uintptr_t)p);
  size_t old = tm_track_usable_size(p, usable);
  size_t new_usable = usable;
  size_t need = size + TM_TRACK_REDZONE;
  /* A run or mapping that shrinks gives its tail back at once, and another
   * thread may take those pages before we return: such a shrink is tracked
   * before it happens (a shrink in place never fails). */
  bool shrink_tracked = false;
  if (kind == TM_SEG_ARENA && usable <= TM_SMALL_MAX) {
    /* Same slab block while it stays at least half used. */
    if (need > usable || (need < usable / 2 && usable > TM_MIN_BLOCK)) return false;
  } else if (kind == TM_SEG_ARENA) {
    /* A page run grows over free pages or gives back its tail; sizes that
     * leave the medium range move to their own strategy. */
    if (need <= TM_SMALL_MAX || need > TM_MEDIUM_MAX) return false;
    if (size < old) {
      tm_track_resize(p, old, size, usable);
      shrink_tracked = true;
    }
    if (!tm_medium_resize_in_place(p, need, &new_usable)) return false;
  } else {
    tm_large_t *large = (tm_large_t *)((uintptr_t)p & ~(uintptr_t)TM_SEGMENT_MASK);
    if (tm_segmap_kind((uintptr_t)large) != TM_SEG_LARGE_HEAD || tm_large_user(large) != p) return false;
    if (need <= TM_MEDIUM_MAX) return false;
    if (size < old) {
      tm_track_resize(p, old, size, usable);
      shrink_tracked = true;
    }
    if (!tm_large_resize_in_place(large, need)) return false;
    new_usable = large->usable;
  }
  if (!shrink_tracked) tm_track_resize(p, old, size, new_usable);
  return true;
}

void *tinyrealloc(void *p, size_t size)
{
  if (p == NULL) return tinymalloc(size);
  size_t usable;
  if (!tm_block_usable(p, "realloc", &usable)) {
    errno = EINVAL;
    return NULL;
  }
  if (size == 0) {
    tinyfree(p);
    return NULL;
  }
  if (size > TM_MAX_REQUEST) {
    errno = ENOMEM;
    return NULL;
  }
  if (tm_realloc_in_place(p, usable, size)) return p;
  void *q = tm_alloc_aligned(size, 0, false);
  if (q == NULL) return NULL; /* errno is ENOMEM; p is untouched */
  size_t old = tm_track_usable_size(p, usable);
  memcpy(q, p, old < size ? old : size);
  tinyfree(p);
  return q;
}

void *tinyreallocarray(void *p, size_t n, size_t size)
{
  size_t total;
  if (__builtin_mul_overflow(n, size, &total)) {
    errno = ENOMEM;
    return NULL;
  }
  return tinyrealloc(p, total);
}
