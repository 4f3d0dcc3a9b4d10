/* tm_clean is a correct program that uses tinymalloc the way real programs
 * do: every size class, medium and large blocks, every usable byte, calloc,
 * realloc in place and moving, aligned allocation, trim and reuse of purged
 * pages, cross-thread frees, and a system-malloc pointer kept only inside a
 * tinymalloc block. Under ASan, TSan or memcheck it must produce no report. */
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tinymalloc.h"

/* Whether usable_size reports the requested size (docs/sanitizers.md). */
#if defined(TM_TRACKED_BUILD) && TM_TRACKED_BUILD == 2
#include <valgrind/valgrind.h>
#define USABLE_IS_REQUESTED (RUNNING_ON_VALGRIND != 0)
#elif defined(TM_TRACKED_BUILD)
#define USABLE_IS_REQUESTED 1
#else
#define USABLE_IS_REQUESTED 0
#endif

#define CHECK(cond)                                                                                                    \
  do {                                                                                                                 \
    if (!(cond)) {                                                                                                     \
      fprintf(stderr, "tm_clean: %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);                               \
      exit(1);                                                                                                         \
    }                                                                                                                  \
  } while (0)

static const size_t sizes[] = {
    0,       1,    7,     8,     15,    16,    17,     24,    100,    128,      129,
    1000,    4096, 16384, 16385, 20000, 40000, 100000, 65536, 500000, 1u << 20, (1u << 20) + 1,
    3u << 20};

static void check_bytes(const unsigned char *p, size_t n, unsigned char value)
{
  for (size_t i = 0; i < n; i++)
    CHECK(p[i] == value);
}

/* Every requested byte and every byte usable_size promises may be used. */
static void use_whole_blocks(void)
{
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t n = sizes[i];
    unsigned char *p = tinymalloc(n);
    CHECK(p != NULL);
    memset(p, 0x11, n);
    size_t usable = tinymalloc_usable_size(p);
    CHECK(usable >= n);
    if (USABLE_IS_REQUESTED) CHECK(usable == n);
    memset(p, 0x22, usable);
    check_bytes(p, usable, 0x22);
    tinyfree(p);
  }
}

static void calloc_reads_zero(void)
{
  for (int round = 0; round < 2; round++) { /* second round reuses dirty blocks */
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
      size_t n = sizes[i];
      unsigned char *p = tinycalloc(1, n);
      CHECK(p != NULL);
      check_bytes(p, n, 0);
      memset(p, 0x33, n);
      tinyfree(p);
    }
  }
}

static void realloc_keeps_contents(void)
{
  unsigned char *p = tinymalloc(1);
  CHECK(p != NULL);
  p[0] = 0;
  size_t n = 1;
  while (n < (4u << 20)) { /* grows through small, medium and large */
    size_t next = n * 3 + 5;
    unsigned char *q = tinyrealloc(p, next);
    CHECK(q != NULL);
    for (size_t i = 0; i < n; i++)
      CHECK(q[i] == (unsigned char)i);
    for (size_t i = n; i < next; i++)
      q[i] = (unsigned char)i;
    p = q;
    n = next;
  }
  while (n > 1) { /* and shrinks back, in place or not */
    size_t next = n / 3;
    unsigned char *q = tinyrealloc(p, next);
    CHECK(q != NULL);
    for (size_t i = 0; i < next; i++)
      CHECK(q[i] == (unsigned char)i);
    p = q;
    n = next;
  }
  tinyfree(p);
  CHECK(tinyrealloc(tinymalloc(10), 0) == NULL);
}

static void aligned_blocks(void)
{
  for (size_t align = 16; align <= (1u << 22); align <<= 1) {
    size_t n = align / 2 + 3;
    unsigned char *p = tinymemalign(align, n);
    CHECK(p != NULL && ((uintptr_t)p & (align - 1)) == 0);
    memset(p, 0x44, n);
    tinyfree(p);
    void *v = NULL;
    CHECK(tinyposix_memalign(&v, align, n + 100) == 0);
    CHECK(((uintptr_t)v & (align - 1)) == 0);
    memset(v, 0x45, n + 100);
    tinyfree(v);
    p = tinyaligned_alloc(align, align * 2);
    CHECK(p != NULL && ((uintptr_t)p & (align - 1)) == 0);
    memset(p, 0x46, tinymalloc_usable_size(p));
    tinyfree(p);
  }
}

/* Frees enough to give pages back, trims, then uses the same memory again. */
static void trim_and_reuse(void)
{
  enum { COUNT = 2000 };
  static void *blocks[COUNT];
  for (int round = 0; round < 2; round++) {
    for (int i = 0; i < COUNT; i++) {
      size_t n = (size_t)(i % 7 == 0 ? 30000 : 16 + (i * 37) % 2000);
      blocks[i] = tinymalloc(n);
      CHECK(blocks[i] != NULL);
      memset(blocks[i], 0x55, n);
    }
    for (int i = 0; i < COUNT; i++)
      tinyfree(blocks[i]);
    (void)tinymalloc_trim();
  }
}

/* Blocks allocated by one thread and freed by another. */
enum { HANDOFF = 4000 };
static void *handoff[HANDOFF];
static pthread_mutex_t handoff_lock = PTHREAD_MUTEX_INITIALIZER;

static void *producer(void *arg)
{
  (void)arg;
  for (int i = 0; i < HANDOFF; i++) {
    size_t n = (size_t)(8 + (i * 13) % 300);
    unsigned char *p = tinymalloc(n);
    CHECK(p != NULL);
    memset(p, 0x66, n);
    pthread_mutex_lock(&handoff_lock);
    handoff[i] = p;
    pthread_mutex_unlock(&handoff_lock);
  }
  return NULL;
}

static void *consumer(void *arg)
{
  (void)arg;
  for (int i = 0; i < HANDOFF; i++) {
    void *p = NULL;
    while (p == NULL) {
      pthread_mutex_lock(&handoff_lock);
      p = handoff[i];
      pthread_mutex_unlock(&handoff_lock);
      if (p == NULL) sched_yield();
    }
    CHECK(((unsigned char *)p)[0] == 0x66);
    tinyfree(p);
  }
  return NULL;
}

static void cross_thread_frees(void)
{
  pthread_t threads[2];
  CHECK(pthread_create(&threads[0], NULL, producer, NULL) == 0);
  CHECK(pthread_create(&threads[1], NULL, consumer, NULL) == 0);
  CHECK(pthread_join(threads[0], NULL) == 0);
  CHECK(pthread_join(threads[1], NULL) == 0);
}

/* The only reference to a system-malloc block lives in a tinymalloc block
 * that is still live at exit: LeakSanitizer must find it (root regions), and
 * memcheck counts it reachable. */
static void **volatile holder; /* volatile: the stores must stay */
static unsigned char *volatile grown_holder;

static __attribute__((noinline)) void hold_system_block(void)
{
  holder = tinymalloc(64);
  CHECK(holder != NULL);
  void *volatile system_block = malloc(100);
  CHECK(system_block != NULL);
  memset(system_block, 0x77, 100);
  holder[0] = system_block;
  system_block = NULL;
  /* The same in the pages a large block gains when it grows in place:
   * mappings go top-down, so freeing the one above makes room. */
  void *above = tinymalloc(16u << 20);
  grown_holder = tinymalloc(2u << 20);
  CHECK(above != NULL && grown_holder != NULL);
  tinyfree(above);
  grown_holder = tinyrealloc(grown_holder, 6u << 20);
  CHECK(grown_holder != NULL);
  void *second_block = malloc(200);
  CHECK(second_block != NULL);
  memset(second_block, 0x78, 200);
  memcpy(grown_holder + (5u << 20), &second_block, sizeof second_block);
}

int main(void)
{
  use_whole_blocks();
  calloc_reads_zero();
  realloc_keeps_contents();
  aligned_blocks();
  trim_and_reuse();
  cross_thread_frees();
  hold_system_block();
  CHECK(tinymalloc_check() == 0);
  CHECK(((unsigned char *)holder[0])[99] == 0x77);
  unsigned char *second;
  memcpy(&second, grown_holder + (5u << 20), sizeof second);
  CHECK(second[199] == 0x78);
  printf("tm_clean: ok\n");
  return 0;
}
