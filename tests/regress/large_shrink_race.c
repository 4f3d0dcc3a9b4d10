/* Issue 8, item 5: a large block that shrinks in place must not mark, in the
 * segment map, address space that another thread has mapped meanwhile.
 *
 * Shrinking threads allocate large blocks (12 to 40 MiB) and shrink them in
 * place with realloc (down to 1.5 to 4 MiB: the tail goes back to the OS),
 * then free them. Mapping threads meanwhile create and drop arena segments
 * (medium blocks, small blocks) and large blocks of the sizes the shrinks
 * give back, so the kernel hands the freed tails out again at once. Every
 * block is stamped and registered in the "never handed out twice" set, and
 * checked before it is freed; an error handler counts misuse reports.
 *
 * The bug: tm_large_resize_in_place unmaps the tail first and marks its
 * segment-map entries "freed" after, so a segment mapped there in between is
 * then marked freed: the free of a block in it is reported as an invalid or
 * double free (or the check finds the map wrong).
 *
 * Passes when, after REGRESS_DURATION seconds (default 8), there was no
 * report, every block was intact and tinymalloc_check() is 0. */
#include <pthread.h>

#include "liveset.h"
#include "regress.h"

#define SHRINKERS 2
#define MAPPERS   3
#define MIB       ((size_t)1 << 20)

static liveset_t live;
static _Atomic int stop;
static _Atomic unsigned long shrinks, moved_shrinks, maps, reports, next_id;
static char first_report[256];

#if REGRESS_TINY
static void on_report(tinymalloc_error_kind_t kind, const char *op, void *ptr, const char *message, void *arg)
{
  (void)kind, (void)op, (void)ptr, (void)arg;
  if (atomic_fetch_add(&reports, 1) == 0) snprintf(first_report, sizeof first_report, "%s", message);
  atomic_store(&stop, 1);
}
#endif

static void *hold(size_t size, size_t stamped)
{
  unsigned char *p = R_MALLOC(size);
  if (p == NULL) return NULL;
  liveset_add(&live, p, stamped, atomic_fetch_add(&next_id, 1));
  if (size > stamped) p[size - 1] = 1; /* the last page is ours too */
  return p;
}

static void release(void *p)
{
  if (p == NULL) return;
  if (liveset_take(&live, p)) atomic_store(&stop, 1);
  R_FREE(p);
}

static void *shrinker(void *arg)
{
  uint64_t rng = (uintptr_t)arg * 0x9E3779B97F4A7C15ull + 3;
  while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
    size_t big = (12 + regress_rng(&rng) % 29) * MIB;
    size_t small = (3 + regress_rng(&rng) % 6) * MIB / 2;
    unsigned char *p = R_MALLOC(big);
    if (p == NULL) continue;
    memset(p, 0x3c, 4096);
    p[small - 1] = 0x3d;
    unsigned char *q = R_REALLOC(p, small);
    if (q == NULL) {
      R_FREE(p);
      continue;
    }
    atomic_fetch_add_explicit(q == p ? &shrinks : &moved_shrinks, 1, memory_order_relaxed);
    if (q[0] != 0x3c || q[4095] != 0x3c || q[small - 1] != 0x3d) {
      regress_say("shrunk block lost its contents\n");
      atomic_store(&stop, 1);
    }
    R_FREE(q);
  }
  return NULL;
}

static void *mapper(void *arg)
{
  uint64_t rng = (uintptr_t)arg * 0xD1B54A32D192ED03ull + 5;
  void *held[24] = {0};
  while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
    unsigned i = (unsigned)(regress_rng(&rng) % 24);
    release(held[i]);
    held[i] = NULL;
    uint64_t pick = regress_rng(&rng) % 10;
    size_t size = pick < 4   ? (size_t)(256 + regress_rng(&rng) % 768) << 10 /* medium: new segments */
                  : pick < 7 ? (size_t)(16 + regress_rng(&rng) % 4000)       /* small */
                             : (2 + regress_rng(&rng) % 30) * MIB;           /* large: the freed tails */
    /* Large blocks are stamped only in their first page: touching every
     * page would make the mappers too slow to race the shrinks. */
    held[i] = hold(size, size > MIB ? 4096 : size);
    atomic_fetch_add_explicit(&maps, 1, memory_order_relaxed);
  }
  for (int i = 0; i < 24; i++)
    release(held[i]);
  return NULL;
}

static void scenario(void *arg)
{
  double seconds = *(double *)arg;
  liveset_init(&live, 1 << 12);
#if REGRESS_TINY
  tinymalloc_set_error_handler(on_report, NULL);
#endif
  pthread_t s[SHRINKERS], m[MAPPERS];
  for (uintptr_t i = 0; i < SHRINKERS; i++)
    REQUIRE(pthread_create(&s[i], NULL, shrinker, (void *)(i + 1)) == 0, "pthread_create");
  for (uintptr_t i = 0; i < MAPPERS; i++)
    REQUIRE(pthread_create(&m[i], NULL, mapper, (void *)(i + 1)) == 0, "pthread_create");
  double end = regress_now() + seconds;
  while (!atomic_load(&stop) && regress_now() < end) {
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  atomic_store(&stop, 1);
  for (int i = 0; i < SHRINKERS; i++)
    pthread_join(s[i], NULL);
  for (int i = 0; i < MAPPERS; i++)
    pthread_join(m[i], NULL);
  fprintf(stderr, "in-place shrinks %lu, moved shrinks %lu, blocks mapped by the others %lu\n", (unsigned long)shrinks,
          (unsigned long)moved_shrinks, (unsigned long)maps);
  REQUIRE(reports == 0, "%lu misuse report(s) for correct frees; the first: %s", (unsigned long)reports, first_report);
  REQUIRE(live.violations == 0, "%lu violation(s) of the live-block set; the first: %s", live.violations, live.first);
#if REGRESS_TINY
  REQUIRE(tinymalloc_check() == 0, "tinymalloc_check() found violations (listed above)");
#endif
  REQUIRE(shrinks > 0, "no realloc shrank a large block in place: the scenario did not happen");
  fprintf(stderr, "ok\n");
}

int main(void)
{
  double seconds = regress_duration(8.0);
  printf("large blocks shrinking in place while other threads map, %s, %.0f s\n", REGRESS_ALLOCATOR, seconds);
  regress_result_t r;
  regress_run(scenario, &seconds, seconds + 60, &r);
  char how[128];
  regress_outcome(&r, how, sizeof how);
  regress_dump(&r);
  printf("%s: %s\n", r.exited && r.code == 0 ? "PASS" : "FAIL", how);
  return r.exited && r.code == 0 ? 0 : 1;
}
