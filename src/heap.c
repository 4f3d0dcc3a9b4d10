/* heap.c owns thread heaps: creating one for a thread (from a pool that is
 * never unmapped), the slow paths of small allocation and free (slab lists,
 * the pending list other threads' frees fill, keeping a few empty slabs),
 * handing everything to the arenas at thread exit, and the shared heap that
 * serves threads whose heap is gone. Only the owning thread touches a heap's
 * lists; the shared heap is used under its lock. */
#include <errno.h>
#include <string.h>

#include "arena.h"
#include "detect.h"
#include "grace.h"
#include "heap.h"
#include "init.h"
#include "medium.h"
#include "os.h"
#include "quarantine.h"
#include "slab.h"

__thread tm_heap_t *tm_thread_heap __attribute__((tls_model("initial-exec")));
tm_heap_t tm_dead_heap = {.arena = &tm_arenas[0]};
static tm_heap_t tm_orphan_heap = {.arena = &tm_arenas[0], .alive = true}; /* under tm_orphan_lock */
static tm_lock_t tm_orphan_lock = TM_LOCK_INIT;
static tm_lock_t tm_pool_lock = TM_LOCK_INIT;
static tm_heap_t *tm_pool_free; /* heaps of exited threads */
static uint8_t *tm_pool_chunk;
static size_t tm_pool_chunk_left;
static bool tm_heap_created;      /* pool lock: a thread has had a heap */
static pthread_key_t tm_heap_key; /* created with the first heap */

#define TM_HEAP_EMPTY_KEEP 4 /* empty slabs a heap keeps before returning one */
#define TM_POOL_CHUNK      ((size_t)256 << 10)
#define TM_HEAP_SIZE       ((sizeof(tm_heap_t) + 63) & ~(size_t)63)

static void tm_heap_thread_exit(void *arg);

void tm_heap_pool_lock(void) { tm_lock(&tm_pool_lock); }
void tm_heap_pool_unlock(void) { tm_unlock(&tm_pool_lock); }

/* Who the grace period must wait for while `heap`'s code forwards a slab. */
static tm_heap_t *tm_grace_self(tm_heap_t *heap) { return heap == &tm_orphan_heap ? NULL : heap; }

/* ---- Slab lists (owner only) ---------------------------------------------- */

static void tm_list_push(tm_slab_t **head, tm_slab_t *slab)
{
  slab->prev = NULL;
  slab->next = *head;
  if (*head) (*head)->prev = slab;
  *head = slab;
}

static void tm_list_remove(tm_slab_t **head, tm_slab_t *slab)
{
  if (slab->prev)
    slab->prev->next = slab->next;
  else
    *head = slab->next;
  if (slab->next) slab->next->prev = slab->prev;
  slab->next = slab->prev = NULL;
}

/* A full slab goes back to the partial list only with this many free blocks:
 * a slab hovering at full must not move between lists on every free. */
static bool tm_slab_has_room(const tm_slab_t *slab)
{
  uint32_t threshold = slab->capacity >= 16 ? slab->capacity / 8 : 1;
  return slab->capacity - slab->used >= threshold;
}

static void tm_heap_unfull(tm_heap_t *heap, tm_slab_t *slab)
{
  tm_list_remove(&heap->full[slab->class_index], slab);
  slab->flags &= (uint8_t)~TM_SLAB_FULL;
  tm_slab_unwatch(slab);
  tm_list_push(&heap->partial[slab->class_index], slab);
}

/* An exhausted slab is parked on the full list and watched; a merge on the
 * way may give it room again. */
static void tm_heap_make_full(tm_heap_t *heap, tm_slab_t *slab, tm_faults_t *faults)
{
  slab->flags |= TM_SLAB_FULL;
  tm_list_push(&heap->full[slab->class_index], slab);
  if (tm_slab_watch(slab, faults) > 0 && tm_slab_has_room(slab)) tm_heap_unfull(heap, slab);
}

/* `slab` (on no list) has no live block: back to the arena, or kept on the
 * partial list when its arena is lost (fork child). */
static void tm_heap_release(tm_heap_t *heap, tm_slab_t *slab, tm_faults_t *faults)
{
  tm_slab_merge(slab, faults); /* reports remote marks left by racing frees */
  if (!tm_arena_release_slab(slab, faults)) tm_list_push(&heap->partial[slab->class_index], slab);
}

/* `slab` on the partial list just became empty. */
static void tm_heap_emptied(tm_heap_t *heap, tm_slab_t *slab, tm_faults_t *faults)
{
  if (slab->flags & TM_SLAB_EMPTY_KEPT) return;
  if (heap->empty_kept < TM_HEAP_EMPTY_KEEP) {
    slab->flags |= TM_SLAB_EMPTY_KEPT;
    heap->empty_kept++;
    return;
  }
  tm_list_remove(&heap->partial[slab->class_index], slab);
  tm_heap_release(heap, slab, faults);
}

/* After a merge of one of the heap's slabs: a full one with room becomes
 * partial (still full: watched again), an empty partial one is kept or released. */
static void tm_heap_settle(tm_heap_t *heap, tm_slab_t *slab, tm_faults_t *faults)
{
  if (slab->flags & TM_SLAB_FULL) {
    if (!tm_slab_has_room(slab) && (tm_slab_watch(slab, faults) == 0 || !tm_slab_has_room(slab))) return;
    tm_heap_unfull(heap, slab);
  }
  if (slab->used == 0 && slab != heap->current[slab->class_index]) tm_heap_emptied(heap, slab, faults);
}

/* A slab on this heap's pending list that another heap owns now: queued for
 * its owner (still QUEUED), or idle when nobody owns it. Inside a grace
 * section, so that an owner that is exiting waits for the push. */
static void tm_heap_forward(tm_heap_t *heap, tm_slab_t *slab)
{
  tm_heap_t *me = tm_grace_self(heap);
  tm_grace_enter(me);
  atomic_thread_fence(memory_order_seq_cst);
  tm_heap_t *owner = atomic_load_explicit(&slab->owner, memory_order_acquire);
  if (owner == NULL || owner == TM_OWNER_ARENA || owner == heap) {
    atomic_store_explicit(&slab->notify, TM_NOTIFY_IDLE, memory_order_seq_cst);
  } else {
    tm_slab_t *head = atomic_load_explicit(&owner->pending, memory_order_relaxed);
    do {
      atomic_store_explicit(&slab->pending_next, head, memory_order_relaxed);
    } while (!atomic_compare_exchange_weak_explicit(&owner->pending, &head, slab, memory_order_release,
                                                    memory_order_relaxed));
  }
  tm_grace_exit(me);
}

/* Takes the pending list whole: the heap's own slabs are merged and settled. */
static void tm_heap_drain(tm_heap_t *heap, tm_faults_t *faults)
{
  tm_slab_t *slab = atomic_exchange_explicit(&heap->pending, NULL, memory_order_acquire);
  while (slab) {
    tm_slab_t *next = atomic_load_explicit(&slab->pending_next, memory_order_relaxed);
    if (atomic_load_explicit(&slab->owner, memory_order_acquire) == heap) {
      atomic_store_explicit(&slab->notify, TM_NOTIFY_IDLE, memory_order_seq_cst);
      tm_slab_merge(slab, faults);
      tm_heap_settle(heap, slab, faults);
    } else {
      tm_heap_forward(heap, slab);
    }
    slab = next;
  }
}

/* ---- Allocation and free slow paths ---------------------------------------- */

static void *tm_heap_alloc_from(tm_heap_t *heap, unsigned cls, tm_faults_t *faults)
{
  tm_slab_t *slab = heap->current[cls];
  void *p;
  if (slab) {
    if ((p = tm_slab_take(slab, faults)) != NULL) return p;
    if (tm_slab_merge(slab, faults) > 0 && (p = tm_slab_take(slab, faults)) != NULL) return p;
    heap->current[cls] = NULL;
    tm_heap_make_full(heap, slab, faults);
  }
  for (int round = 0; round < 2; round++) {
    while ((slab = heap->partial[cls]) != NULL) {
      tm_list_remove(&heap->partial[cls], slab);
      if (slab->flags & TM_SLAB_EMPTY_KEPT) {
        slab->flags &= (uint8_t)~TM_SLAB_EMPTY_KEPT;
        heap->empty_kept--;
      }
      tm_slab_merge(slab, faults);
      if ((p = tm_slab_take(slab, faults)) != NULL) {
        heap->current[cls] = slab;
        return p;
      }
      tm_heap_make_full(heap, slab, faults);
    }
    if (round == 0) tm_heap_drain(heap, faults);
  }
  slab = tm_arena_get_slab(heap->arena, heap, cls, faults);
  if (slab == NULL) return NULL;
  heap->current[cls] = slab;
  return tm_slab_take(slab, faults);
}

void *tm_heap_alloc_slow(tm_heap_t *heap, unsigned cls, tm_faults_t *faults)
{
  void *p;
  if (TM_UNLIKELY(heap == &tm_dead_heap)) {
    tm_lock(&tm_orphan_lock);
    p = tm_heap_alloc_from(&tm_orphan_heap, cls, faults);
    if (p) tm_heap_count(&tm_orphan_heap, cls);
    tm_unlock(&tm_orphan_lock);
    return p;
  }
  p = tm_heap_alloc_from(heap, cls, faults);
  if (p) tm_heap_count(heap, cls);
  return p;
}

void tm_heap_free_slow(tm_heap_t *heap, tm_slab_t *slab, tm_faults_t *faults)
{
  if (slab->flags & TM_SLAB_FULL) {
    if (!tm_slab_has_room(slab)) return;
    tm_heap_unfull(heap, slab);
  }
  if (slab->used == 0 && slab != heap->current[slab->class_index]) tm_heap_emptied(heap, slab, faults);
}

static void tm_heap_trim_one(tm_heap_t *heap, tm_faults_t *faults)
{
  tm_detect_flush(heap, faults);
  tm_medium_cache_flush(heap);
  tm_heap_drain(heap, faults);
  for (unsigned c = 0; c < TM_CLASS_COUNT; c++) {
    for (tm_slab_t *slab = heap->full[c], *next; slab; slab = next) {
      next = slab->next;
      tm_slab_merge(slab, faults);
      tm_heap_settle(heap, slab, faults);
    }
    tm_slab_t *current = heap->current[c];
    if (current) {
      tm_slab_merge(current, faults);
      if (current->used == 0) {
        heap->current[c] = NULL;
        tm_heap_release(heap, current, faults);
      }
    }
    for (tm_slab_t *slab = heap->partial[c], *next; slab; slab = next) {
      next = slab->next;
      tm_slab_merge(slab, faults);
      if (slab->used != 0) continue;
      if (slab->flags & TM_SLAB_EMPTY_KEPT) heap->empty_kept--;
      slab->flags = 0;
      tm_list_remove(&heap->partial[c], slab);
      tm_heap_release(heap, slab, faults);
    }
  }
}

void tm_heap_trim(tm_heap_t *heap, tm_faults_t *faults)
{
  if (heap != NULL && heap != &tm_dead_heap) tm_heap_trim_one(heap, faults);
  /* The shared heap of exited threads has no thread of its own to trim it. */
  tm_lock(&tm_orphan_lock);
  tm_heap_trim_one(&tm_orphan_heap, faults);
  tm_unlock(&tm_orphan_lock);
}

/* ---- Creation and exit -------------------------------------------------------- */

static tm_heap_t *tm_heap_from_pool(void)
{
  tm_lock(&tm_pool_lock);
  tm_heap_t *heap = tm_pool_free;
  if (heap) {
    tm_pool_free = heap->next_free;
  } else {
    while (tm_pool_chunk_left < TM_HEAP_SIZE) {
      tm_unlock(&tm_pool_lock); /* no mmap under a lock */
      uint8_t *chunk = tm_os_map_meta(TM_POOL_CHUNK);
      tm_lock(&tm_pool_lock);
      if (chunk == NULL) break;
      if (tm_pool_chunk_left < TM_HEAP_SIZE) { /* the rest of an older chunk is dropped */
        tm_pool_chunk = chunk;
        tm_pool_chunk_left = TM_POOL_CHUNK;
      }
    }
    if (tm_pool_chunk_left >= TM_HEAP_SIZE) {
      heap = (tm_heap_t *)(void *)tm_pool_chunk; /* 64-aligned: clang -Wcast-align */
      tm_pool_chunk += TM_HEAP_SIZE;
      tm_pool_chunk_left -= TM_HEAP_SIZE;
      tm_grace_register(heap);
    }
  }
  if (heap && !tm_heap_created) {
    tm_heap_created = true;
    /* Without the key, thread exit cannot hand slabs back: they stay owned. */
    pthread_key_create(&tm_heap_key, tm_heap_thread_exit);
    tm_grace_register(&tm_orphan_heap);
    tm_grace_register(&tm_dead_heap);
  }
  tm_unlock(&tm_pool_lock);
  return heap;
}

tm_heap_t *tm_heap_get_slow(void)
{
  tm_heap_t *heap = tm_thread_heap;
  if (heap) return heap;
  tm_init();
  heap = tm_heap_from_pool();
  if (heap == NULL) {
    errno = ENOMEM;
    return NULL;
  }
  memset(heap->current, 0, sizeof heap->current);
  memset(heap->partial, 0, sizeof heap->partial);
  memset(heap->full, 0, sizeof heap->full);
  heap->empty_kept = 0;
  tm_faults_t faults;
  faults.count = 0;
  tm_heap_drain(heap, &faults); /* leftovers of the heap's previous thread: all forwarded */
  heap->arena = tm_arena_pick();
  tm_lock(&heap->arena->lock);
  heap->arena->threads++;
  tm_unlock(&heap->arena->lock);
  heap->alive = true;
  /* Set before pthread_setspecific, which may itself allocate. */
  tm_thread_heap = heap;
  pthread_setspecific(tm_heap_key, heap);
  return heap;
}

int tm_heap_set_arena_count(uint32_t count)
{
  int result = 0;
  tm_lock(&tm_pool_lock);
  if (tm_heap_created)
    result = EBUSY;
  else
    atomic_store_explicit(&tm_arena_count, count, memory_order_release);
  tm_unlock(&tm_pool_lock);
  return result;
}

/* Moves every slab of one list onto the singly linked `all` (through next). */
static void tm_gather(tm_slab_t **all, tm_slab_t *list)
{
  for (tm_slab_t *slab = list, *next; slab; slab = next) {
    next = slab->next;
    slab->prev = NULL;
    slab->next = *all;
    *all = slab;
  }
}

/* Thread exit. Frees from other threads keep arriving for the heap's slabs;
 * once the slabs name the arena as owner, a grace period lets the frees that
 * still saw this heap finish queueing, the last drain forwards those, and the
 * arena takes every slab (released when empty, abandoned otherwise, adopted
 * later by other threads). The heap returns to the pool. */
static void tm_heap_thread_exit(void *arg)
{
  tm_heap_t *heap = arg;
  if (heap == NULL || heap == &tm_dead_heap) return;
  tm_faults_t faults;
  faults.count = 0;
  tm_detect_flush(heap, &faults);
  tm_medium_cache_flush(heap);
  tm_heap_drain(heap, &faults);
  tm_slab_t *all = NULL;
  for (unsigned c = 0; c < TM_CLASS_COUNT; c++) {
    if (heap->current[c]) {
      heap->current[c]->next = NULL;
      tm_gather(&all, heap->current[c]);
    }
    tm_gather(&all, heap->partial[c]);
    tm_gather(&all, heap->full[c]);
    heap->current[c] = heap->partial[c] = heap->full[c] = NULL;
  }
  for (tm_slab_t *slab = all; slab; slab = slab->next)
    atomic_store_explicit(&slab->owner, TM_OWNER_ARENA, memory_order_seq_cst);
  tm_grace_wait();
  tm_heap_drain(heap, &faults);
  tm_thread_heap = &tm_dead_heap;
  for (tm_slab_t *slab = all, *next; slab; slab = next) {
    next = slab->next;
    slab->next = NULL;
    tm_slab_unwatch(slab);
    tm_arena_take_over(slab, &faults);
  }
  heap->empty_kept = 0;
  tm_arena_t *arena = heap->arena;
  tm_lock(&arena->lock);
  arena->threads--;
  tm_unlock(&arena->lock);
  tm_lock(&tm_pool_lock);
  heap->alive = false;
  heap->next_free = tm_pool_free;
  tm_pool_free = heap;
  tm_unlock(&tm_pool_lock);
  tm_report_all("free", &faults);
}

/* ---- Fork child -------------------------------------------------------------- */

void tm_heap_fork_child(void)
{
  tm_heap_t *me = tm_thread_heap;
  bool pool_torn = tm_lock_repair_in_child(&tm_pool_lock);
  if (pool_torn) tm_pool_free = NULL; /* possibly torn: the heaps on it stay unused */
  if (tm_lock_repair_in_child(&tm_orphan_lock)) {
    /* The shared heap's lists may be torn: its slabs are adopted like the
     * slabs of vanished threads, and it starts empty. */
    tm_orphan_heap.alive = false;
  }
  for (tm_heap_t *heap = tm_heaps_first(); heap; heap = heap->next_all) {
    atomic_store_explicit(&heap->pending, NULL, memory_order_relaxed);
    if (heap == me) continue;
    uint32_t e = atomic_load_explicit(&heap->remote_epoch, memory_order_relaxed);
    atomic_store_explicit(&heap->remote_epoch, e + (e & 1), memory_order_relaxed);
    /* Its medium cache and quarantine may be torn: the arenas take their
     * medium runs and large blocks back (fork.c); its quarantined small
     * blocks stay allocated and leak. */
    memset(heap->medium_cache_count, 0, sizeof heap->medium_cache_count);
    atomic_store_explicit(&heap->medium_cached_runs, 0, memory_order_relaxed);
    atomic_store_explicit(&heap->medium_cached_bytes, 0, memory_order_relaxed);
    if (heap->quarantine) heap->quarantine->count = heap->quarantine->bytes = 0;
    for (int k = 0; k < 2; k++) {
      atomic_store_explicit(&heap->quarantined[k], 0, memory_order_relaxed);
      atomic_store_explicit(&heap->quarantined_bytes[k], 0, memory_order_relaxed);
    }
    if (heap == &tm_orphan_heap || heap == &tm_dead_heap || !heap->alive) continue;
    heap->alive = false;
    if (!pool_torn) { /* its slabs are adopted by the arenas; the heap is reused */
      memset(heap->current, 0, sizeof heap->current);
      memset(heap->partial, 0, sizeof heap->partial);
      memset(heap->full, 0, sizeof heap->full);
      heap->next_free = tm_pool_free;
      tm_pool_free = heap;
    }
  }
  atomic_store_explicit(&tm_grace_heapless, 0, memory_order_relaxed);
}

/* After the arenas adopted the vanished heaps' slabs: the shared heap starts
 * again, the caller's heap watches its full slabs again and moves off a lost
 * arena. */
void tm_heap_fork_child_finish(void)
{
  tm_heap_t *me = tm_thread_heap;
  if (!tm_orphan_heap.alive) {
    memset(tm_orphan_heap.current, 0, sizeof tm_orphan_heap.current);
    memset(tm_orphan_heap.partial, 0, sizeof tm_orphan_heap.partial);
    memset(tm_orphan_heap.full, 0, sizeof tm_orphan_heap.full);
    tm_orphan_heap.empty_kept = 0;
    tm_orphan_heap.alive = true;
  }
  if (tm_orphan_heap.arena->lost) tm_orphan_heap.arena = tm_arena_pick();
  tm_dead_heap.arena = tm_orphan_heap.arena;
  for (uint32_t i = 0; i < TM_MAX_ARENAS; i++)
    tm_arenas[i].threads = 0;
  if (me == NULL || me == &tm_dead_heap) return;
  if (me->arena->lost) me->arena = tm_arena_pick();
  me->arena->threads = 1;
  tm_faults_t faults;
  faults.count = 0;
  for (unsigned c = 0; c < TM_CLASS_COUNT; c++) {
    /* Slabs in a lost arena are given up: their blocks can still be freed
     * (as remote frees nobody merges), nothing new comes from them. */
    tm_slab_t *current = me->current[c];
    if (current && tm_segment_of(current)->arena->lost) {
      atomic_store_explicit(&current->owner, TM_OWNER_ARENA, memory_order_relaxed);
      me->current[c] = NULL;
    }
    for (int full = 0; full < 2; full++) {
      tm_slab_t **list = full ? &me->full[c] : &me->partial[c];
      for (tm_slab_t *slab = *list, *next; slab; slab = next) {
        next = slab->next;
        if (tm_segment_of(slab)->arena->lost) {
          if (slab->flags & TM_SLAB_EMPTY_KEPT) me->empty_kept--;
          tm_list_remove(list, slab);
          slab->flags = 0;
          atomic_store_explicit(&slab->owner, TM_OWNER_ARENA, memory_order_relaxed);
        } else if (full) {
          tm_heap_settle(me, slab, &faults);
        }
      }
    }
  }
}
