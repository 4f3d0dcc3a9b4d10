/* heap.c owns thread heaps: the per-thread slab lists of each size class,
 * creating a heap for a thread (from a pool that is never unmapped), the slow
 * path of small allocation (merge remote frees, ask the arena for a slab),
 * keeping a few empty slabs, and handing everything back at thread exit.
 * Only the owning thread touches a heap's lists; it takes no lock on them. */
#include <errno.h>
#include <string.h>

#include "internal.h"

__thread tm_heap_t *tm_thread_heap __attribute__((tls_model("initial-exec")));

static pthread_mutex_t tm_pool_lock = PTHREAD_MUTEX_INITIALIZER;
static tm_heap_t *tm_pool_free; /* heaps of exited threads */
static tm_heap_t *tm_heap_all;  /* every heap ever made */
static uint8_t *tm_pool_chunk;
static size_t tm_pool_chunk_left;
static pthread_key_t tm_heap_key;

#define TM_POOL_CHUNK ((size_t)256 << 10)

static void tm_heap_thread_exit(void *arg);

void tm_heap_key_init(void)
{
  if (pthread_key_create(&tm_heap_key, tm_heap_thread_exit) != 0) tm_warn("pthread_key_create failed", "");
}

void tm_heap_pool_lock(void) { pthread_mutex_lock(&tm_pool_lock); }
void tm_heap_pool_unlock(void) { pthread_mutex_unlock(&tm_pool_lock); }
void tm_heap_pool_reinit(void) { pthread_mutex_init(&tm_pool_lock, NULL); }

tm_heap_t *tm_heap_registry(void) { return tm_heap_all; }

static tm_heap_t *tm_heap_from_pool(void)
{
  pthread_mutex_lock(&tm_pool_lock);
  tm_heap_t *heap = tm_pool_free;
  if (heap) {
    tm_pool_free = heap->next_free;
  } else {
    size_t size = (sizeof(tm_heap_t) + 63) & ~(size_t)63;
    if (tm_pool_chunk_left < size) {
      tm_pool_chunk = tm_os_map(TM_POOL_CHUNK);
      tm_pool_chunk_left = tm_pool_chunk ? TM_POOL_CHUNK : 0;
    }
    if (tm_pool_chunk_left >= size) {
      heap = (tm_heap_t *)(void *)tm_pool_chunk; /* 64-aligned: clang -Wcast-align */
      tm_pool_chunk += size;
      tm_pool_chunk_left -= size;
      heap->next_all = tm_heap_all;
      tm_heap_all = heap;
    }
  }
  pthread_mutex_unlock(&tm_pool_lock);
  return heap;
}

/* First call of a thread: give it a heap and an arena. NULL (errno ENOMEM)
 * only when no memory can be mapped at all. */
tm_heap_t *tm_heap_get_slow(void)
{
  tm_init();
  tm_heap_t *heap = tm_heap_from_pool();
  if (heap == NULL) {
    errno = ENOMEM;
    return NULL;
  }
  memset(heap->avail, 0, sizeof heap->avail);
  memset(heap->full, 0, sizeof heap->full);
  heap->empty_slabs = 0;
  for (unsigned c = 0; c < TM_CLASS_COUNT; c++)
    heap->remote_seen[c] = atomic_load_explicit(&heap->remote_pending[c], memory_order_relaxed);
  heap->arena = tm_arena_for_thread();
  heap->alive = true;
  pthread_mutex_lock(&heap->arena->lock);
  heap->arena->threads++;
  pthread_mutex_unlock(&heap->arena->lock);
  /* Set before pthread_setspecific, which may itself allocate. */
  tm_thread_heap = heap;
  pthread_setspecific(tm_heap_key, heap);
  return heap;
}

/* ---- Slab lists (owner only) ---- */
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

/* The fast path just made `slab` full: park it on the full list. */
void tm_heap_slab_filled(tm_heap_t *heap, tm_slab_t *slab)
{
  tm_list_remove(&heap->avail[slab->class_index], slab);
  tm_list_push(&heap->full[slab->class_index], slab);
  slab->in_full_list = true;
}

/* A full slab got a block back: make it the current slab of its class. */
void tm_heap_slab_unfull(tm_heap_t *heap, tm_slab_t *slab)
{
  tm_list_remove(&heap->full[slab->class_index], slab);
  tm_list_push(&heap->avail[slab->class_index], slab);
  slab->in_full_list = false;
}

/* An empty slab (counted in empty_slabs) got a block again. */
void tm_heap_slab_refilled(tm_heap_t *heap, tm_slab_t *slab)
{
  slab->counted_empty = false;
  heap->empty_slabs--;
}

static bool tm_heap_release_slab(tm_heap_t *heap, tm_slab_t *slab)
{
  if (atomic_load_explicit(&slab->remote_inflight, memory_order_acquire) != 0) return false;
  tm_list_remove(&heap->avail[slab->class_index], slab);
  if (slab->counted_empty) {
    slab->counted_empty = false;
    heap->empty_slabs--;
  }
  pthread_mutex_lock(&heap->arena->lock);
  tm_arena_release_slab(heap->arena, slab);
  tm_arena_after_free(heap->arena);
  pthread_mutex_unlock(&heap->arena->lock);
  return true;
}

/* `slab` (on the avail list) has no block in use: keep a few such slabs
 * for reuse, give the rest back to the arena. */
void tm_heap_slab_emptied(tm_heap_t *heap, tm_slab_t *slab)
{
  if (slab->counted_empty) return;
  if (heap->empty_slabs < TM_HEAP_EMPTY_KEEP || !tm_heap_release_slab(heap, slab)) {
    slab->counted_empty = true;
    heap->empty_slabs++;
  }
}

/* Gives every empty slab of the heap back to its arena (trim). */
size_t tm_heap_release_empty(tm_heap_t *heap)
{
  size_t released = 0;
  for (unsigned c = 0; c < TM_CLASS_COUNT; c++) {
    for (tm_slab_t *slab = heap->full[c], *next; slab; slab = next) {
      next = slab->next;
      if (tm_slab_merge_remote(slab)) tm_heap_slab_unfull(heap, slab);
    }
    for (tm_slab_t *slab = heap->avail[c], *next; slab; slab = next) {
      next = slab->next;
      tm_slab_merge_remote(slab);
      if (slab->used == 0 && tm_heap_release_slab(heap, slab)) released++;
    }
  }
  return released * TM_SLAB_SIZE;
}

/* Merges remote frees into the full slabs of a class when remote frees have
 * arrived since the last look. */
static void tm_heap_collect_remote(tm_heap_t *heap, unsigned cls)
{
  uint32_t pending = atomic_load_explicit(&heap->remote_pending[cls], memory_order_acquire);
  if (pending == heap->remote_seen[cls]) return;
  heap->remote_seen[cls] = pending;
  for (tm_slab_t *slab = heap->full[cls], *next; slab; slab = next) {
    next = slab->next;
    if (tm_slab_merge_remote(slab) > 0) tm_heap_slab_unfull(heap, slab);
  }
}

void *tm_heap_alloc_small_slow(tm_heap_t *heap, unsigned cls)
{
  if (heap->avail[cls] == NULL) tm_heap_collect_remote(heap, cls);
  tm_slab_t *slab = heap->avail[cls];
  if (slab == NULL) {
    slab = tm_arena_get_slab(heap->arena, heap, cls); /* never a full one */
    if (slab == NULL) {
      errno = ENOMEM;
      return NULL;
    }
    tm_list_push(&heap->avail[cls], slab);
  }
  if (slab->counted_empty) tm_heap_slab_refilled(heap, slab);
  void *p = tm_slab_take_block(slab);
  if (slab->used == slab->capacity) tm_heap_slab_filled(heap, slab);
  return p;
}

/* Thread exit: empty slabs go back to the arena, the others are abandoned
 * to it (frees from other threads keep arriving as remote frees and the
 * arena adopts them out to other threads). The heap returns to the pool. */
static void tm_heap_thread_exit(void *arg)
{
  tm_heap_t *heap = arg;
  tm_arena_t *arena = heap->arena;
  pthread_mutex_lock(&arena->lock);
  for (unsigned c = 0; c < TM_CLASS_COUNT; c++) {
    tm_slab_t *lists[2] = {heap->avail[c], heap->full[c]};
    for (int l = 0; l < 2; l++) {
      for (tm_slab_t *slab = lists[l], *next; slab; slab = next) {
        next = slab->next;
        slab->next = slab->prev = NULL;
        slab->in_full_list = false;
        slab->counted_empty = false;
        tm_slab_merge_remote(slab);
        if (slab->used == 0 && atomic_load_explicit(&slab->remote_inflight, memory_order_acquire) == 0)
          tm_arena_release_slab(arena, slab);
        else
          tm_arena_abandon_slab(arena, slab);
      }
    }
    heap->avail[c] = heap->full[c] = NULL;
  }
  heap->empty_slabs = 0;
  arena->threads--;
  tm_arena_after_free(arena);
  pthread_mutex_unlock(&arena->lock);

  tm_thread_heap = NULL;
  pthread_mutex_lock(&tm_pool_lock);
  heap->alive = false;
  heap->next_free = tm_pool_free;
  tm_pool_free = heap;
  pthread_mutex_unlock(&tm_pool_lock);
}
