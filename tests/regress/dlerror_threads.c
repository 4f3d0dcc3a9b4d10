/* Issue 8, item 3: frees must not create thread heaps, and exited threads
 * must not leak them. A plain program, run with
 * LD_PRELOAD=libtinymalloc-override.so.
 *
 * 1000 threads (10 rounds of 100, one at a time) each allocate a little and
 * fail a dlopen. glibc keeps the dlerror state of a thread in a malloc'd
 * block and frees it after the thread's TSD destructors have run, that is
 * after tinymalloc handed the thread's heap back: on the current core that
 * free creates a new heap (tm_heap_get on the free path) that is never
 * returned, so every such thread leaves one heap attached to its arena and
 * the metadata grows with the number of threads.
 *
 * Checked through tinymalloc_stats (found with dlsym): after the threads are
 * joined, the threads attached to the arenas (sum of arenas[].threads) are
 * as many as before they started (the main thread's), and metadata_bytes
 * grows by at most 256 KiB from round 2 to round 10 (800 threads: the
 * current core grows by about 1.7 KiB a thread; one-time growth, such as a
 * second arena's first segment, is allowed). Without tinymalloc preloaded
 * (glibc) it only runs the scenario. */
#include <dlfcn.h>
#include <pthread.h>

#include "regress.h"
#include "tinymalloc.h"

/* Only the type: the function is looked up with dlsym, the program links
 * no tinymalloc library. */
typedef tinymalloc_stats_t stats_t;

static int (*get_stats)(stats_t *);

static void *thread_body(void *arg)
{
  (void)arg;
  char *p = malloc(100);
  REQUIRE(p != NULL, "malloc");
  memset(p, 1, 100);
  free(p);
  /* Fails: glibc allocates the error state of this thread and keeps it
   * until the thread exits. dlerror() is deliberately not called. */
  void *h = dlopen("libregress-no-such-library.so.0", RTLD_NOW);
  REQUIRE(h == NULL, "dlopen of a missing library succeeded");
  return NULL;
}

static size_t attached_threads(stats_t *st)
{
  size_t sum = 0;
  for (size_t i = 0; i < st->arena_count && i < TINYMALLOC_MAX_ARENAS; i++)
    sum += st->arenas[i].threads;
  return sum;
}

int main(void)
{
  get_stats = (int (*)(stats_t *))dlsym(RTLD_DEFAULT, "tinymalloc_stats");
  printf("%s: 1000 threads that each fail a dlopen\n",
         get_stats ? "tinymalloc (preloaded)" : "glibc (no tinymalloc_stats)");
  static stats_t st;
  size_t before = 0, meta_round2 = 0;
  if (get_stats) {
    free(malloc(1)); /* the main thread surely has its heap */
    get_stats(&st);
    before = attached_threads(&st);
    printf("before: %zu thread(s) attached, metadata %zu bytes\n", before, st.metadata_bytes);
  }
  for (int round = 1; round <= 10; round++) {
    for (int i = 0; i < 100; i++) {
      pthread_t t;
      REQUIRE(pthread_create(&t, NULL, thread_body, NULL) == 0, "pthread_create");
      REQUIRE(pthread_join(t, NULL) == 0, "pthread_join");
    }
    if (get_stats) {
      get_stats(&st);
      printf("after %d threads: %zu thread(s) attached, metadata %zu bytes\n", round * 100, attached_threads(&st),
             st.metadata_bytes);
      if (round == 2) meta_round2 = st.metadata_bytes;
    }
  }
  if (!get_stats) {
    printf("PASS: scenario ran (nothing to measure without tinymalloc)\n");
    return 0;
  }
  size_t after = attached_threads(&st);
  REQUIRE(after == before,
          "%zu thread heap(s) attached after all threads exited, expected %zu: each exited thread left %s heap behind",
          after, before, after - before >= 1000 ? "one" : "a");
  REQUIRE(st.metadata_bytes <= meta_round2 + (256 << 10),
          "metadata grew from %zu to %zu bytes between thread 200 and thread 1000", meta_round2, st.metadata_bytes);
  printf("PASS\n");
  return 0;
}
