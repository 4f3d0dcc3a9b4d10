/* alloc.c owns the public malloc family (tinymalloc ... tinymalloc_usable_size):
 * choosing the strategy by size and alignment, handing blocks out (zeroing,
 * junk, tracking), and the slow paths of free, realloc and usable_size, which
 * classify the pointer once (ptr.c) and report faults with no lock held. It
 * never reads or writes a block except to copy, zero or junk-fill it. */
#include <errno.h>
#include <string.h>

#include "alloc.h"
#include "detect.h"
#include "fork.h"
#include "init.h"
#include "large.h"
#include "medium.h"
#include "ptr.h"
#include "quarantine.h"
#include "stats.h"

/* ---- Process start and exit ------------------------------------------------ */

/* Here, in the file every program that allocates links, so that a static
 * link gets fork safety and the at-exit statistics too. */
__attribute__((constructor(101))) static void tm_at_load(void)
{
  tm_init_at_load();
  tm_fork_install();
  tm_stats_at_load();
}

/* A destructor rather than atexit (which may allocate); it runs after the
 * program's own, so the report sees the program's final frees. In detection
 * mode the exiting thread's quarantine is checked first. */
__attribute__((destructor)) static void tm_at_exit(void)
{
  if (TM_FEATURES() & TM_FEATURE_DETECT) {
    tm_faults_t faults;
    faults.count = 0;
    tm_heap_t *heap = tm_thread_heap;
    tm_detect_check_at_exit(heap == &tm_dead_heap ? NULL : heap, &faults);
    if (faults.count) tm_report_all("exit", &faults);
  }
  tm_stats_at_exit();
}

/* ---- Handing out -------------------------------------------------------- */

typedef enum { TM_OUT_SMALL, TM_OUT_MEDIUM, TM_OUT_LARGE } tm_out_kind_t;

static TM_NOINLINE void *tm_handed_out_slow(void *p, size_t requested, size_t usable, bool zero, bool clean,
                                            tm_out_kind_t kind)
{
  uint32_t features = TM_FEATURES();
  if (TM_UNLIKELY(features & TM_FEATURE_DETECT)) {
    tm_faults_t faults;
    faults.count = 0;
    if (kind == TM_OUT_SMALL)
      tm_detect_small_out(p, requested, usable, &faults);
    else if (kind == TM_OUT_MEDIUM)
      tm_detect_medium_out(p, requested, usable, &faults);
    else
      tm_detect_large_out(p, requested, usable);
    if (faults.count) tm_report_all("malloc", &faults);
    features &= ~(uint32_t)TM_FEATURE_JUNK; /* the canary and fill are the junk now */
  }
  tm_track_malloc(p, requested, usable, zero && clean);
  if (zero && !clean)
    memset(p, 0, requested);
  else if (!zero && TM_UNLIKELY(features & TM_FEATURE_JUNK))
    memset(p, TM_JUNK_ALLOC_BYTE, requested);
  return p;
}

/* A block leaves the allocator: the tools' hooks, the detection mode's
 * checks, calloc's zeroing and junk filling, none of which a plain malloc
 * in a plain build needs. */
TM_INLINE void *tm_handed_out(void *p, size_t requested, size_t usable, bool zero, bool clean, tm_out_kind_t kind)
{
  if (TM_LIKELY(!TM_TRACKING && !zero && TM_FEATURES() == 0)) return p;
  return tm_handed_out_slow(p, requested, usable, zero, clean, kind);
}

/* Every request that is not "small, default alignment, current slab has a
 * block". `need` is what the block must hold: the request plus, in tracked
 * builds, the redzone, in detection mode the canary's slack. */
static void *tm_alloc(size_t size, size_t alignment, bool zero)
{
  if (TM_UNLIKELY(size > TM_MAX_REQUEST)) {
    errno = ENOMEM;
    return NULL;
  }
  tm_heap_t *heap = tm_heap_get();
  if (heap == NULL) return NULL;
  bool detect = (TM_FEATURES() & TM_FEATURE_DETECT) != 0;
  size_t need = size + TM_TRACK_REDZONE + (detect ? TM_DETECT_SLACK : 0);
  if (alignment < TM_MIN_BLOCK) alignment = TM_MIN_BLOCK;
  unsigned cls = TM_CLASS_COUNT;
  if (need <= TM_SMALL_MAX && alignment <= TM_PAGE_SIZE)
    cls = alignment == TM_MIN_BLOCK ? tm_size_class(need) : tm_aligned_class(need, alignment);
  if (cls < TM_CLASS_COUNT) {
    tm_faults_t faults;
    faults.count = 0;
    void *p = tm_heap_alloc_slow(heap, cls, &faults);
    if (TM_UNLIKELY(faults.count)) tm_report_all("free", &faults);
    if (p == NULL) return NULL;
    return tm_handed_out(p, size, tm_class_size[cls], zero, false, TM_OUT_SMALL);
  }
  if (need == 0) need = 1; /* a page run or mapping of zero pages would not be unique */
  tm_arena_t *arena = tm_heap_arena(heap);
  bool clean = false;
  void *p;
  size_t usable;
  /* Detection mode: a request of exactly the medium limit (1 MiB, common)
   * plus the canary's slack stays a page run rather than a guarded mapping
   * (three system calls and a fresh fault per page, each time). */
  if (need <= TM_MEDIUM_MAX + (detect ? TM_PAGE_SIZE : 0) && alignment <= TM_MEDIUM_ALIGN_MAX) {
    p = tm_medium_alloc(heap == &tm_dead_heap ? NULL : heap, arena, need, alignment, &clean);
    usable = (need + TM_PAGE_SIZE - 1) & ~(TM_PAGE_SIZE - 1);
    if (p == NULL) return NULL;
    return tm_handed_out(p, size, usable, zero, clean, TM_OUT_MEDIUM);
  }
  /* Detection mode: a plainly aligned block ends against a guard page (no
   * slack: an overflow past the request faults, to within 16 bytes). */
  bool guard = detect && alignment == TM_MIN_BLOCK;
  p = tm_large_alloc(arena, guard ? size + TM_TRACK_REDZONE : need, guard ? 0 : alignment, &clean, &usable);
  if (p == NULL) return NULL;
  return tm_handed_out(p, size, usable, zero, clean, TM_OUT_LARGE);
}

/* Detection mode's common malloc: a small request the thread's current slab
 * has a block for (a quarantined block is still live there: never taken). */
static TM_NOINLINE void *tm_malloc_detect(size_t size)
{
  tm_heap_t *heap = tm_thread_heap;
  if (heap != NULL && heap != &tm_dead_heap && size <= TM_SMALL_MAX - TM_DETECT_SLACK) {
    unsigned cls = tm_size_class(size + TM_DETECT_SLACK);
    tm_slab_t *slab = heap->current[cls];
    void *p;
    if (slab != NULL && tm_slab_take_fast(slab, &p)) {
      tm_heap_count(heap, cls);
      /* No tool, junk or zeroing here (tm_malloc_slow checked): the mode's
       * checks are all tm_handed_out_slow would do. */
      tm_faults_t faults;
      faults.count = 0;
      tm_detect_small_out(p, size, tm_class_size[cls], &faults);
      if (TM_UNLIKELY(faults.count)) tm_report_all("malloc", &faults);
      return p;
    }
  }
  return tm_alloc(size, 0, false);
}

TM_NOINLINE void *tm_malloc_slow(size_t size)
{
  if (!TM_TRACKING && TM_FEATURES() == TM_FEATURE_DETECT) return tm_malloc_detect(size);
  return tm_alloc(size, 0, false);
}

void *tinymalloc(size_t size) { return tm_malloc_inline(size); }

void *tinycalloc(size_t n, size_t size)
{
  size_t total;
  if (__builtin_mul_overflow(n, size, &total)) {
    errno = ENOMEM;
    return NULL;
  }
  return tm_alloc(total, 0, true);
}

/* Any power of two; one too large to honour is ENOMEM, like glibc. */
static int tm_alignment_check(size_t alignment)
{
  if (alignment == 0 || (alignment & (alignment - 1)) != 0) return EINVAL;
  return alignment > TM_MAX_REQUEST / 2 ? ENOMEM : 0;
}

void *tinymemalign(size_t alignment, size_t size)
{
  int bad = tm_alignment_check(alignment);
  if (bad) {
    errno = bad;
    return NULL;
  }
  return tm_alloc(size, alignment, false);
}

void *tinyaligned_alloc(size_t alignment, size_t size) { return tinymemalign(alignment, size); }

/* errno is kept on success; a failure leaves ENOMEM there, as glibc does
 * (programs written against glibc read it). */
int tinyposix_memalign(void **out, size_t alignment, size_t size)
{
  if (alignment % sizeof(void *) != 0) return EINVAL;
  int bad = tm_alignment_check(alignment);
  if (bad) return bad;
  int saved = errno;
  void *p = tm_alloc(size, alignment, false);
  if (p == NULL) return ENOMEM;
  errno = saved;
  *out = p;
  return 0;
}

/* ---- Taking back ---------------------------------------------------------- */

/* A free of block `index` of a carved slab that is not the fast path's: a
 * block of another thread's (or an abandoned) slab while an option is on, a
 * double free, or any free in detection mode or with junk or zero filling. */
TM_INLINE void tm_free_small(tm_slab_t *slab, uint32_t index, void *p, tm_fault_t *fault, tm_faults_t *faults)
{
  tm_heap_t *heap = tm_thread_heap;
  uint32_t size = atomic_load_explicit(&slab->block_size, memory_order_relaxed);
  uint32_t features = TM_FEATURES();
  if (features & TM_FEATURE_DETECT) { /* checks the block itself, claiming it */
    tm_detect_free_small(slab, index, size, p, heap == &tm_dead_heap ? NULL : heap, fault, faults);
    return;
  }
  if (!tm_slab_block_live(slab, index) || tm_slab_block_held(slab, index)) {
    tm_slab_fault(slab, index, p, fault);
    return;
  }
  /* Filled while still ours: after the free another thread may take it. */
  if (features & TM_FEATURE_ZERO)
    tm_junk_fill(p, size, 0);
  else if (features & TM_FEATURE_JUNK)
    tm_junk_fill(p, size, TM_JUNK_FREE_BYTE);
  if (heap == NULL || atomic_load_explicit(&slab->owner, memory_order_relaxed) != heap) {
    if (!tm_slab_free_remote(slab, index, p, heap == &tm_dead_heap ? NULL : heap)) tm_slab_fault(slab, index, p, fault);
    return;
  }
  if (!tm_slab_free_local(slab, index)) {
    tm_slab_fault(slab, index, p, fault);
    return;
  }
  tm_track_free(p, size);
  if (slab->used == 0 || slab->flags != 0) tm_heap_free_slow(heap, slab, faults);
}

/* Reports what a free found, keeping errno. */
static TM_NOINLINE void tm_free_report(const tm_fault_t *fault, tm_faults_t *faults)
{
  int saved = errno;
  if (fault->kind) tm_report("free", fault);
  if (faults->count) tm_report_all("free", faults);
  errno = saved;
}

/* Everything but a correct free of another thread's block. */
static TM_NOINLINE void tm_free_small_rare(tm_slab_t *slab, uint32_t index, void *p)
{
  tm_fault_t fault;
  tm_faults_t faults;
  fault.kind = 0;
  faults.count = 0;
  tm_free_small(slab, index, p, &fault, &faults);
  if (fault.kind | faults.count) tm_free_report(&fault, &faults);
}

/* The common case first: a live block of another thread's slab (or of an
 * abandoned one: its owner is the arena, never a thread's heap). */
TM_NOINLINE void tm_free_small_slow(tm_slab_t *slab, uint32_t index, void *p)
{
  tm_heap_t *heap = tm_thread_heap;
  if (TM_LIKELY(atomic_load_explicit(&slab->owner, memory_order_relaxed) != heap && TM_FEATURES() == 0) &&
      TM_LIKELY(tm_slab_free_remote(slab, index, p, heap == &tm_dead_heap ? NULL : heap)))
    return;
  tm_free_small_rare(slab, index, p);
}

/* Frees a classified pointer; a fault is left in `fault`, faults found on the
 * way in `faults`. */
static void tm_free_classified(void *p, const tm_ptr_t *ptr, tm_fault_t *fault, tm_faults_t *faults)
{
  if (TM_UNLIKELY(TM_FEATURES() & TM_FEATURE_DETECT) && ptr->kind != TM_PTR_SMALL) {
    tm_heap_t *heap = tm_thread_heap;
    tm_detect_free(p, ptr, heap == &tm_dead_heap ? NULL : heap, fault, faults);
  } else if (ptr->kind == TM_PTR_SMALL) {
    tm_free_small(ptr->slab, ptr->index, p, fault, faults);
  } else if (ptr->kind == TM_PTR_MEDIUM) {
    tm_heap_t *heap = tm_thread_heap;
    tm_medium_free(heap == &tm_dead_heap ? NULL : heap, p, fault);
  } else if (ptr->kind == TM_PTR_LARGE) {
    tm_large_free(ptr->large, fault);
  } else {
    *fault = ptr->fault;
  }
}

TM_NOINLINE void tm_free_slow(void *p)
{
  if (p == NULL) return;
  tm_ptr_t ptr;
  tm_classify(p, &ptr);
  tm_fault_t fault;
  tm_faults_t faults;
  fault.kind = 0;
  faults.count = 0;
  tm_free_classified(p, &ptr, &fault, &faults);
  if (TM_UNLIKELY(fault.kind | faults.count)) tm_free_report(&fault, &faults);
}

TM_NOINLINE void tm_free_owner_slow(tm_heap_t *heap, tm_slab_t *slab)
{
  tm_faults_t faults;
  faults.count = 0;
  int saved = errno;
  tm_heap_free_slow(heap, slab, &faults);
  if (faults.count) tm_report_all("free", &faults);
  errno = saved;
}

void tinyfree(void *p) { tm_free_inline(p); }

/* The usable size of a live classified block, or 0 with `fault` filled. */
static size_t tm_usable_classified(const void *p, const tm_ptr_t *ptr, tm_fault_t *fault)
{
  if (ptr->kind == TM_PTR_SMALL) {
    if (tm_slab_block_live(ptr->slab, ptr->index) && !tm_slab_block_held(ptr->slab, ptr->index)) return ptr->block_size;
    tm_slab_fault(ptr->slab, ptr->index, p, fault);
    return 0;
  }
  if (ptr->kind == TM_PTR_MEDIUM) return tm_medium_usable(p, fault);
  if (ptr->kind == TM_PTR_LARGE) {
    if (atomic_load_explicit(&ptr->large->live, memory_order_acquire)) return ptr->large->usable;
    tm_fault_set(fault, TINYMALLOC_ERROR_DOUBLE_FREE, p, NULL, ptr->large->usable, NULL);
    return 0;
  }
  *fault = ptr->fault;
  return 0;
}

/* What the program may use of a live block: the requested size where the
 * tools or the detection mode guard the rest, else all of it. */
static size_t tm_program_size(const void *p, const tm_ptr_t *ptr, size_t usable)
{
  if (TM_UNLIKELY(TM_FEATURES() & TM_FEATURE_DETECT)) {
    size_t requested = tm_detect_requested(p, ptr);
    if (requested != SIZE_MAX) return requested;
  }
  return tm_track_usable_size(p, usable);
}

size_t tinymalloc_usable_size(const void *p)
{
  if (p == NULL) return 0;
  tm_ptr_t ptr;
  tm_classify(p, &ptr);
  tm_fault_t fault;
  fault.kind = 0;
  size_t usable = tm_usable_classified(p, &ptr, &fault);
  if (fault.kind) {
    tm_report("usable_size", &fault);
    return 0;
  }
  return tm_program_size(p, &ptr, usable);
}

/* ---- Resizing --------------------------------------------------------------- */

/* Keeps the block where it is, or moves a large one without copying; returns
 * its address, or NULL when it must be copied. A run or mapping that shrinks
 * gives its tail back at once, and another thread may take those pages before
 * we return: such a shrink is tracked before it happens. */
static void *tm_realloc_in_place(void *p, const tm_ptr_t *ptr, size_t usable, size_t size)
{
  /* Detection mode: checked, and the canary moves to the new end. */
  if (TM_UNLIKELY(TM_FEATURES() & TM_FEATURE_DETECT)) return tm_detect_resize(p, ptr, usable, size);
  size_t old = tm_track_usable_size(p, usable);
  size_t need = size + TM_TRACK_REDZONE;
  if (ptr->kind == TM_PTR_SMALL) {
    /* Same block while it stays at least half used. */
    if (need > usable || (need < usable / 2 && usable > TM_MIN_BLOCK)) return NULL;
    tm_track_resize(p, old, size, usable);
    return p;
  }
  if (ptr->kind == TM_PTR_MEDIUM ? need <= TM_SMALL_MAX || need > TM_MEDIUM_MAX : need <= TM_MEDIUM_MAX) return NULL;
  bool shrink_tracked = size < old;
  /* A large block's tail past its new last page is unmapped, and its
   * shadow reset by that (tm_track_os_unmap): poisoned only up to there. */
  size_t kept = ptr->kind == TM_PTR_LARGE ? (need + TM_PAGE_SIZE - 1) & ~(TM_PAGE_SIZE - 1) : usable;
  if (shrink_tracked) tm_track_resize(p, old, size, kept < usable ? kept : usable);
  void *q = p;
  size_t new_usable = 0;
  if (ptr->kind == TM_PTR_MEDIUM) {
    new_usable = tm_medium_resize(p, need);
    if (new_usable == 0) q = NULL;
  } else {
    /* Tracked builds copy instead: the tools' records do not move with mremap. */
    q = tm_large_resize(ptr->large, need, !TM_TRACKING, &new_usable);
  }
  if (q != NULL && !shrink_tracked) tm_track_resize(q, old, size, new_usable);
  return q;
}

void *tinyrealloc(void *p, size_t size)
{
  if (p == NULL) return tinymalloc(size);
  tm_ptr_t ptr;
  tm_classify(p, &ptr);
  tm_fault_t fault;
  fault.kind = 0;
  size_t usable = tm_usable_classified(p, &ptr, &fault);
  if (fault.kind) {
    tm_report("realloc", &fault);
    errno = EINVAL;
    return NULL;
  }
  if (size == 0) {
    tm_faults_t faults;
    faults.count = 0;
    tm_free_classified(p, &ptr, &fault, &faults);
    if (fault.kind) tm_report("realloc", &fault); /* the program's call, named in the report */
    if (faults.count) tm_report_all("realloc", &faults);
    return NULL;
  }
  if (size > TM_MAX_REQUEST) {
    errno = ENOMEM;
    return NULL;
  }
  size_t old = tm_program_size(p, &ptr, usable);
  void *q = tm_realloc_in_place(p, &ptr, usable, size);
  if (q) return q;
  q = tm_alloc(size, 0, false);
  if (q == NULL) return NULL; /* errno is ENOMEM; p is untouched */
  memcpy(q, p, old < size ? old : size);
  tm_faults_t faults;
  faults.count = 0;
  tm_free_classified(p, &ptr, &fault, &faults);
  if (fault.kind) tm_report("realloc", &fault);
  if (faults.count) tm_report_all("realloc", &faults);
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
