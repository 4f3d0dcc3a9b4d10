/* The "never handed out twice" checker: a set of the blocks a test holds
 * live, each stamped with a pattern derived from an id.
 *
 *   liveset_add(set, p, size, id)  p was just handed out: it must not start at
 *                                  the address of a block already live (that
 *                                  is a block handed out twice); stamps it.
 *   liveset_take(set, p)           p is about to be freed: it must be live and
 *                                  its stamp intact; forgets it.
 *   liveset_verify(set)            every live block: no two overlap (sorted by
 *                                  address), every stamp intact.
 *   liveset_contains(set, p)       whether p is live in the set.
 *
 * Each returns the number of violations found (0 = good) and records the
 * first one in set->first (a line of text); set->violations counts them all.
 * Thread-safe (one mutex). Its own storage is mmap'd, so it never goes
 * through the allocator under test. The stamp covers every byte of blocks up
 * to 4 KiB and, for bigger ones, the first and last 512 bytes plus the first
 * word of every page: enough to see a block that two owners write. Only the
 * `size` bytes given are touched (tracked builds make the slack
 * inaccessible). */
#ifndef REGRESS_LIVESET_H
#define REGRESS_LIVESET_H

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

typedef struct {
  uintptr_t p; /* 0: empty slot */
  size_t size;
  uint64_t id;
} liveset_entry_t;

typedef struct {
  pthread_mutex_t lock;
  liveset_entry_t *slots; /* open addressing, linear probing, backward-shift deletion */
  size_t capacity;        /* power of two, at least twice the most blocks held */
  size_t count;
  unsigned long violations;
  char first[512];
} liveset_t;

static inline uint64_t liveset_word(uint64_t id, size_t word_index)
{
  uint64_t x = id * 0x9E3779B97F4A7C15ull + word_index * 0xD1B54A32D192ED03ull + 0x5bd1e995;
  x ^= x >> 29;
  return x * 0xBF58476D1CE4E5B9ull;
}

/* Calls fn(offset, length) over the stamped ranges of a block. */
#define LIVESET_FOR_RANGES(size, BODY)                                                                                 \
  do {                                                                                                                 \
    size_t ls_size_ = (size);                                                                                          \
    if (ls_size_ <= 4096) {                                                                                            \
      size_t off = 0, len = ls_size_;                                                                                  \
      BODY;                                                                                                            \
    } else {                                                                                                           \
      {                                                                                                                \
        size_t off = 0, len = 512;                                                                                     \
        BODY;                                                                                                          \
      }                                                                                                                \
      for (size_t pg_ = 4096; pg_ + 8 <= ls_size_ - 512; pg_ += 4096) {                                                \
        size_t off = pg_, len = 8;                                                                                     \
        BODY;                                                                                                          \
      }                                                                                                                \
      {                                                                                                                \
        size_t off = ls_size_ - 512, len = 512;                                                                        \
        BODY;                                                                                                          \
      }                                                                                                                \
    }                                                                                                                  \
  } while (0)

static inline void liveset_stamp(void *p, size_t size, uint64_t id)
{
  unsigned char *b = p;
  LIVESET_FOR_RANGES(size, {
    for (size_t i = 0; i < len; i++) {
      size_t at = off + i;
      b[at] = (unsigned char)(liveset_word(id, at / 8) >> (8 * (at % 8)));
    }
  });
}

/* Offset of the first byte that differs from the stamp, or SIZE_MAX. */
static inline size_t liveset_check_stamp(const void *p, size_t size, uint64_t id)
{
  const unsigned char *b = p;
  size_t bad = SIZE_MAX;
  LIVESET_FOR_RANGES(size, {
    for (size_t i = 0; i < len && bad == SIZE_MAX; i++) {
      size_t at = off + i;
      if (b[at] != (unsigned char)(liveset_word(id, at / 8) >> (8 * (at % 8)))) bad = at;
    }
  });
  return bad;
}

static inline void liveset_init(liveset_t *set, size_t max_blocks)
{
  size_t cap = 1024;
  while (cap < 2 * max_blocks)
    cap <<= 1;
  void *mem = mmap(NULL, cap * sizeof(liveset_entry_t), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) {
    perror("liveset_init: mmap");
    exit(1);
  }
  pthread_mutex_init(&set->lock, NULL);
  set->slots = mem;
  set->capacity = cap;
  set->count = 0;
  set->violations = 0;
  set->first[0] = '\0';
}

static inline void liveset_destroy(liveset_t *set)
{
  munmap(set->slots, set->capacity * sizeof(liveset_entry_t));
  set->slots = NULL;
}

static inline size_t liveset_hash(const liveset_t *set, uintptr_t p)
{
  uint64_t x = (uint64_t)p * 0x9E3779B97F4A7C15ull;
  return (size_t)(x >> 20) & (set->capacity - 1);
}

static inline void liveset_violation(liveset_t *set, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline void liveset_violation(liveset_t *set, const char *fmt, ...)
{
  if (set->violations++ == 0) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(set->first, sizeof set->first, fmt, ap);
    va_end(ap);
  }
}

/* Lock held: the slot of p, or the empty slot where it would go. */
static inline size_t liveset_find(const liveset_t *set, uintptr_t p)
{
  size_t i = liveset_hash(set, p);
  while (set->slots[i].p != 0 && set->slots[i].p != p)
    i = (i + 1) & (set->capacity - 1);
  return i;
}

static inline int liveset_add(liveset_t *set, void *p, size_t size, uint64_t id)
{
  int bad = 0;
  pthread_mutex_lock(&set->lock);
  size_t i = liveset_find(set, (uintptr_t)p);
  if (set->slots[i].p == (uintptr_t)p) {
    liveset_violation(set, "block %p (%zu bytes) handed out twice: already live as block #%llu of %zu bytes", p, size,
                      (unsigned long long)set->slots[i].id, set->slots[i].size);
    bad = 1;
  } else if (set->count + 1 > set->capacity / 2) {
    liveset_violation(set, "liveset full (%zu blocks)", set->count);
    bad = 1;
  } else {
    set->slots[i].p = (uintptr_t)p;
    set->slots[i].size = size;
    set->slots[i].id = id;
    set->count++;
  }
  pthread_mutex_unlock(&set->lock);
  if (!bad) liveset_stamp(p, size, id);
  return bad;
}

/* Whether p is live in the set now. */
static inline int liveset_contains(liveset_t *set, const void *p)
{
  pthread_mutex_lock(&set->lock);
  int found = set->slots[liveset_find(set, (uintptr_t)p)].p == (uintptr_t)p;
  pthread_mutex_unlock(&set->lock);
  return found;
}

static inline int liveset_take(liveset_t *set, void *p)
{
  int bad = 0;
  pthread_mutex_lock(&set->lock);
  size_t i = liveset_find(set, (uintptr_t)p);
  if (set->slots[i].p != (uintptr_t)p) {
    liveset_violation(set, "block %p taken back but not live", p);
    pthread_mutex_unlock(&set->lock);
    return 1;
  }
  liveset_entry_t e = set->slots[i];
  size_t at = liveset_check_stamp(p, e.size, e.id);
  if (at != SIZE_MAX) {
    liveset_violation(set, "block %p (#%llu, %zu bytes) overwritten at offset %zu while live: another owner wrote it",
                      p, (unsigned long long)e.id, e.size, at);
    bad = 1;
  }
  /* Backward-shift deletion keeps every probe chain unbroken. */
  size_t hole = i, j = i;
  for (;;) {
    j = (j + 1) & (set->capacity - 1);
    if (set->slots[j].p == 0) break;
    size_t home = liveset_hash(set, set->slots[j].p);
    /* Move j into the hole when its home is not in (hole, j] cyclically. */
    int in_between = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
    if (!in_between) {
      set->slots[hole] = set->slots[j];
      hole = j;
    }
  }
  set->slots[hole].p = 0;
  set->count--;
  pthread_mutex_unlock(&set->lock);
  return bad;
}

static inline int liveset_cmp(const void *a, const void *b)
{
  uintptr_t x = ((const liveset_entry_t *)a)->p, y = ((const liveset_entry_t *)b)->p;
  return x < y ? -1 : x > y;
}

/* Every live block: no overlap with its neighbour in address order, stamp intact. */
static inline int liveset_verify(liveset_t *set)
{
  int bad = 0;
  pthread_mutex_lock(&set->lock);
  size_t n = set->count;
  liveset_entry_t *all = mmap(NULL, (n + 1) * sizeof *all, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (all == MAP_FAILED) {
    pthread_mutex_unlock(&set->lock);
    perror("liveset_verify: mmap");
    exit(1);
  }
  size_t k = 0;
  for (size_t i = 0; i < set->capacity; i++)
    if (set->slots[i].p) all[k++] = set->slots[i];
  qsort(all, k, sizeof *all, liveset_cmp);
  for (size_t i = 0; i < k; i++) {
    if (i + 1 < k && all[i].p + all[i].size > all[i + 1].p) {
      liveset_violation(set, "live blocks overlap: %p (%zu bytes, #%llu) and %p (%zu bytes, #%llu)", (void *)all[i].p,
                        all[i].size, (unsigned long long)all[i].id, (void *)all[i + 1].p, all[i + 1].size,
                        (unsigned long long)all[i + 1].id);
      bad++;
    }
    size_t at = liveset_check_stamp((const void *)all[i].p, all[i].size, all[i].id);
    if (at != SIZE_MAX) {
      liveset_violation(set, "live block %p (#%llu, %zu bytes) overwritten at offset %zu", (void *)all[i].p,
                        (unsigned long long)all[i].id, all[i].size, at);
      bad++;
    }
  }
  munmap(all, (n + 1) * sizeof *all);
  pthread_mutex_unlock(&set->lock);
  return bad;
}

#endif
