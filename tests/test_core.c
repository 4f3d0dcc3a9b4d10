/* Unit and death tests of the tinymalloc API (Check framework). Each test
 * name states the behaviour it specifies. Death tests run the misuse in a
 * child and assert both the abort and the exact report line. */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_support.h"
#include "tinymalloc.h"

/* Tracked builds (ASan / Valgrind backends) take every block this much
 * larger than asked: the redzone of src/track.h. */
#ifdef TM_TRACKED_BUILD
#define REDZONE ((size_t)16)
#else
#define REDZONE ((size_t)0)
#endif

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)

static const size_t strategy_sizes[] = {1,         8,       16,   17,      100,          128,
                                        129,       1000,    4096, 10000,   16 * KiB,     16 * KiB + 1,
                                        100 * KiB, MiB - 1, MiB,  MiB + 1, 3 * MiB + 123};
#define NSIZES (sizeof strategy_sizes / sizeof strategy_sizes[0])

static size_t live_blocks(void)
{
  tinymalloc_stats_t st;
  tinymalloc_stats(&st);
  return st.live_blocks;
}

/* ---- Allocation ---------------------------------------------------------- */

START_TEST(malloc_returns_aligned_writable_blocks_of_every_size)
{
  for (size_t size = 0; size <= 20000; size += size < 300 ? 1 : 97) {
    unsigned char *p = tinymalloc(size);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq((uintptr_t)p % 16, 0);
    ck_assert_uint_ge(tinymalloc_usable_size(p), size);
    fill_pattern(p, tinymalloc_usable_size(p), (unsigned)size);
    ck_assert(check_pattern(p, tinymalloc_usable_size(p), (unsigned)size));
    tinyfree(p);
  }
  for (size_t i = 0; i < NSIZES; i++) {
    unsigned char *p = tinymalloc(strategy_sizes[i]);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq((uintptr_t)p % 16, 0);
    memset(p, 0xab, strategy_sizes[i]);
    tinyfree(p);
  }
  ck_assert_int_eq(tinymalloc_check(), 0);
}
END_TEST

START_TEST(live_blocks_never_overlap)
{
  enum { N = 3000 };
  static unsigned char *blocks[N];
  static size_t sizes[N];
  for (int i = 0; i < N; i++) {
    sizes[i] = strategy_sizes[(size_t)i % NSIZES] % (200 * KiB) + (size_t)i % 7;
    blocks[i] = tinymalloc(sizes[i]);
    ck_assert_ptr_nonnull(blocks[i]);
    fill_pattern(blocks[i], sizes[i], (unsigned)i);
  }
  for (int i = 0; i < N; i++)
    ck_assert_msg(check_pattern(blocks[i], sizes[i], (unsigned)i), "block %d clobbered", i);
  ck_assert_int_eq(tinymalloc_check(), 0);
  for (int i = 0; i < N; i += 2)
    tinyfree(blocks[i]);
  for (int i = 1; i < N; i += 2)
    ck_assert(check_pattern(blocks[i], sizes[i], (unsigned)i));
  for (int i = 1; i < N; i += 2)
    tinyfree(blocks[i]);
  ck_assert_int_eq(tinymalloc_check(), 0);
}
END_TEST

START_TEST(malloc_zero_returns_unique_pointers_that_can_be_freed)
{
  void *a = tinymalloc(0), *b = tinymalloc(0);
  ck_assert_ptr_nonnull(a);
  ck_assert_ptr_nonnull(b);
  ck_assert_ptr_ne(a, b);
  tinyfree(a);
  tinyfree(b);
  ck_assert_int_eq(tinymalloc_check(), 0);
}
END_TEST

START_TEST(free_null_does_nothing_and_free_keeps_errno)
{
  errno = 1234;
  tinyfree(NULL);
  ck_assert_int_eq(errno, 1234);
  for (size_t i = 0; i < NSIZES; i++) {
    void *p = tinymalloc(strategy_sizes[i]);
    errno = 4321;
    tinyfree(p);
    ck_assert_int_eq(errno, 4321);
  }
}
END_TEST

START_TEST(huge_requests_return_null_with_enomem)
{
  const size_t sizes[] = {SIZE_MAX, SIZE_MAX - 4096, SIZE_MAX / 2, (size_t)PTRDIFF_MAX, (size_t)1 << 47};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    errno = 0;
    ck_assert_ptr_null(tinymalloc(sizes[i]));
    ck_assert_int_eq(errno, ENOMEM);
    errno = 0;
    ck_assert_ptr_null(tinymemalign(64, sizes[i]));
    ck_assert_int_eq(errno, ENOMEM);
  }
}
END_TEST

START_TEST(usable_size_covers_request_and_null_is_zero)
{
  ck_assert_uint_eq(tinymalloc_usable_size(NULL), 0);
  for (size_t i = 0; i < NSIZES; i++) {
    void *p = tinymalloc(strategy_sizes[i]);
    size_t usable = tinymalloc_usable_size(p);
    ck_assert_uint_ge(usable, strategy_sizes[i]);
    /* Size classes waste at most a quarter; page runs and mappings a page. */
    size_t need = strategy_sizes[i] + REDZONE;
    ck_assert_uint_le(usable, need <= 16 ? 16 : need + need / 4 + 4096);
    memset(p, 1, usable);
    tinyfree(p);
  }
}
END_TEST

/* ---- calloc --------------------------------------------------------------- */

START_TEST(calloc_zeroes_reused_memory)
{
  for (size_t i = 0; i < NSIZES; i++) {
    size_t size = strategy_sizes[i];
    for (int round = 0; round < 3; round++) {
      unsigned char *dirty = tinymalloc(size);
      memset(dirty, 0xff, tinymalloc_usable_size(dirty));
      tinyfree(dirty);
      unsigned char *p = tinycalloc(1, size);
      ck_assert_ptr_nonnull(p);
      size_t j = 0;
      while (j < size && p[j] == 0)
        j++;
      ck_assert_msg(j == size, "byte %zu of calloc(%zu) is %d", j, size, j < size ? p[j] : 0);
      tinyfree(p);
    }
  }
  unsigned char *arr = tinycalloc(1000, 24);
  size_t nonzero = 0;
  for (size_t j = 0; j < 24000; j++)
    nonzero += arr[j] != 0;
  ck_assert_uint_eq(nonzero, 0);
  tinyfree(arr);
}
END_TEST

START_TEST(calloc_overflow_returns_null_with_enomem)
{
  errno = 0;
  ck_assert_ptr_null(tinycalloc(SIZE_MAX / 2 + 1, 2));
  ck_assert_int_eq(errno, ENOMEM);
  errno = 0;
  ck_assert_ptr_null(tinycalloc((size_t)1 << 33, (size_t)1 << 33));
  ck_assert_int_eq(errno, ENOMEM);
  void *zero = tinycalloc(0, 100);
  ck_assert_ptr_nonnull(zero);
  tinyfree(zero);
}
END_TEST

/* ---- realloc -------------------------------------------------------------- */

START_TEST(realloc_preserves_contents_across_all_strategies)
{
  for (size_t from = 0; from < NSIZES; from++) {
    for (size_t to = 0; to < NSIZES; to++) {
      size_t a = strategy_sizes[from], b = strategy_sizes[to];
      unsigned char *p = tinymalloc(a);
      fill_pattern(p, a, (unsigned)(from * 31 + to));
      unsigned char *q = tinyrealloc(p, b);
      ck_assert_ptr_nonnull(q);
      ck_assert_uint_ge(tinymalloc_usable_size(q), b);
      ck_assert_msg(check_pattern(q, a < b ? a : b, (unsigned)(from * 31 + to)), "realloc %zu -> %zu lost data", a, b);
      memset(q, 0x5c, b);
      tinyfree(q);
    }
  }
  ck_assert_int_eq(tinymalloc_check(), 0);
}
END_TEST

START_TEST(realloc_grows_step_by_step_keeping_contents)
{
  unsigned char *p = NULL;
  size_t size = 0;
  for (size_t next = 1; next < 6 * MiB; next = next * 3 / 2 + 1) {
    p = tinyrealloc(p, next);
    ck_assert_ptr_nonnull(p);
    ck_assert(check_pattern(p, size, 7));
    fill_pattern(p, next, 7);
    size = next;
  }
  while (size > 1) {
    size /= 3;
    p = tinyrealloc(p, size + 1);
    ck_assert(check_pattern(p, size + 1, 7));
  }
  tinyfree(p);
  ck_assert_int_eq(tinymalloc_check(), 0);
}
END_TEST

START_TEST(realloc_null_allocates_and_realloc_to_zero_frees)
{
  void *p = tinyrealloc(NULL, 100);
  ck_assert_ptr_nonnull(p);
  size_t before = live_blocks();
  ck_assert_ptr_null(tinyrealloc(p, 0));
  ck_assert_uint_eq(live_blocks(), before - 1);
}
END_TEST

START_TEST(failed_realloc_returns_enomem_and_keeps_the_block)
{
  for (size_t i = 0; i < NSIZES; i++) {
    size_t size = strategy_sizes[i];
    unsigned char *p = tinymalloc(size);
    fill_pattern(p, size, 99);
    errno = 0;
    ck_assert_ptr_null(tinyrealloc(p, SIZE_MAX / 2));
    ck_assert_int_eq(errno, ENOMEM);
    errno = 0;
    ck_assert_ptr_null(tinyreallocarray(p, SIZE_MAX / 2, 4));
    ck_assert_int_eq(errno, ENOMEM);
    ck_assert(check_pattern(p, size, 99));
    ck_assert_uint_ge(tinymalloc_usable_size(p), size);
    tinyfree(p);
  }
  ck_assert_int_eq(tinymalloc_check(), 0);
}
END_TEST

/* ---- aligned allocation ---------------------------------------------------- */

START_TEST(memalign_honours_every_alignment_up_to_64_mib)
{
  const size_t sizes[] = {0, 1, 24, 100, 4000, 5000, 16 * KiB, 20000, 200 * KiB, MiB, 2 * MiB + 5};
  for (size_t align = 1; align <= 64 * MiB; align <<= 1) {
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
      if (align >= 8 * MiB && sizes[i] > 100) continue; /* keep the test quick */
      unsigned char *p = tinymemalign(align, sizes[i]);
      ck_assert_msg(p != NULL, "memalign(%zu, %zu)", align, sizes[i]);
      ck_assert_msg((uintptr_t)p % align == 0, "memalign(%zu, %zu) = %p", align, sizes[i], (void *)p);
      ck_assert_uint_ge(tinymalloc_usable_size(p), sizes[i]);
      memset(p, 0x11, sizes[i]);
      void *q = NULL;
      ck_assert_int_eq(tinyposix_memalign(&q, align < sizeof(void *) ? sizeof(void *) : align, sizes[i]), 0);
      ck_assert_uint_eq((uintptr_t)q % align, 0);
      void *r = tinyaligned_alloc(align, sizes[i]);
      ck_assert_uint_eq((uintptr_t)r % align, 0);
      tinyfree(p);
      tinyfree(q);
      tinyfree(r);
    }
  }
  ck_assert_int_eq(tinymalloc_check(), 0);
}
END_TEST

START_TEST(bad_alignments_are_rejected_with_einval)
{
  void *out = (void *)0x1;
  ck_assert_int_eq(tinyposix_memalign(&out, 24, 100), EINVAL);
  ck_assert_int_eq(tinyposix_memalign(&out, 0, 100), EINVAL);
  ck_assert_int_eq(tinyposix_memalign(&out, 4, 100), EINVAL); /* not a multiple of sizeof(void *) */
  ck_assert_ptr_eq(out, (void *)0x1);
  errno = 0;
  ck_assert_ptr_null(tinymemalign(48, 10));
  ck_assert_int_eq(errno, EINVAL);
  errno = 0;
  ck_assert_ptr_null(tinyaligned_alloc(3, 10));
  ck_assert_int_eq(errno, EINVAL);
  ck_assert_int_eq(tinyposix_memalign(&out, 64, SIZE_MAX / 2), ENOMEM);
  ck_assert_ptr_eq(out, (void *)0x1);
}
END_TEST

/* ---- statistics, trim, options -------------------------------------------- */

START_TEST(statistics_count_live_blocks_and_bytes_of_each_strategy)
{
  tinymalloc_stats_t before, during, after;
  tinymalloc_stats(&before);
  void *s = tinymalloc(100), *m = tinymalloc(100 * KiB), *l = tinymalloc(5 * MiB);
  tinymalloc_stats(&during);
  ck_assert_uint_eq(during.live_blocks, before.live_blocks + 3);
  ck_assert_uint_eq(during.small_blocks, before.small_blocks + 1);
  ck_assert_uint_eq(during.medium_blocks, before.medium_blocks + 1);
  ck_assert_uint_eq(during.large_blocks, before.large_blocks + 1);
#ifdef TM_TRACKED_BUILD /* usable_size is the requested size there (docs/sanitizers.md) */
  ck_assert_uint_ge(during.live_bytes, before.live_bytes + tinymalloc_usable_size(s) + tinymalloc_usable_size(m) +
                                           tinymalloc_usable_size(l));
#else
  ck_assert_uint_eq(during.live_bytes, before.live_bytes + tinymalloc_usable_size(s) + tinymalloc_usable_size(m) +
                                           tinymalloc_usable_size(l));
#endif
  ck_assert_uint_ge(during.mapped_bytes, before.mapped_bytes + 5 * MiB);
  ck_assert_uint_gt(during.resident_bytes, 0);
  ck_assert_uint_eq(during.classes[6].block_size, 112);
  tinyfree(s);
  tinyfree(m);
  tinyfree(l);
  tinymalloc_stats(&after);
  ck_assert_uint_eq(after.live_blocks, before.live_blocks);
  ck_assert_uint_eq(after.live_bytes, before.live_bytes);
  ck_assert_uint_eq(after.total_frees, before.total_frees + 3);
}
END_TEST

START_TEST(trim_returns_every_empty_segment_to_the_os)
{
  void *blocks[500];
  for (int i = 0; i < 500; i++)
    blocks[i] = tinymalloc((size_t)(i % 50) * 997 + 30000 * (size_t)(i % 3));
  for (int i = 0; i < 500; i++)
    tinyfree(blocks[i]);
  tinymalloc_trim();
  tinymalloc_stats_t st;
  tinymalloc_stats(&st);
  ck_assert_uint_eq(st.live_blocks, 0);
  ck_assert_uint_eq(st.segments, 0);
  ck_assert_uint_eq(st.resident_bytes, 0);
  ck_assert_int_eq(tinymalloc_check(), 0);
}
END_TEST

START_TEST(options_can_be_read_and_set)
{
  ck_assert_int_eq(tinymalloc_option_get("show_errors"), 1);
  ck_assert_int_eq(tinymalloc_option_set("purge_delay_ms", 0), 0);
  ck_assert_int_eq(tinymalloc_option_get("PURGE_DELAY_MS"), 0);
  errno = 0;
  ck_assert_int_eq(tinymalloc_option_set("no_such_option", 1), -1);
  ck_assert_int_eq(errno, EINVAL);
  ck_assert_int_eq(tinymalloc_option_set("junk", 7), -1);
  ck_assert_int_eq(tinymalloc_option_get("no_such_option"), -1);
  ck_assert_int_eq(tinymalloc_option_set("junk", 1), 0);
  unsigned char *p = tinymalloc(64);
  ck_assert_uint_eq(p[0], 0xa5);
  ck_assert_uint_eq(p[63], 0xa5);
  tinyfree(p);
  tinymalloc_option_set("junk", 0);
}
END_TEST

/* ---- threads ---------------------------------------------------------------- */

typedef struct {
  void **blocks;
  int count;
} batch_t;

static void *allocate_batch_and_exit(void *arg)
{
  batch_t *b = arg;
  for (int i = 0; i < b->count; i++) {
    b->blocks[i] = tinymalloc((size_t)(i % 40) * 50 + 1 + (i % 97 == 0 ? 50000 : 0));
    fill_pattern(b->blocks[i], 1, (unsigned)i);
  }
  return NULL;
}

START_TEST(blocks_of_an_exited_thread_can_be_freed_and_reused)
{
  static void *blocks[5000];
  batch_t b = {blocks, 5000};
  pthread_t t;
  pthread_create(&t, NULL, allocate_batch_and_exit, &b);
  pthread_join(t, NULL);
  ck_assert_int_eq(tinymalloc_check(), 0);
  for (int i = 0; i < 5000; i += 2)
    tinyfree(blocks[i]);
  /* New allocations adopt the abandoned slabs. */
  for (int i = 0; i < 5000; i += 2)
    blocks[i] = tinymalloc((size_t)(i % 40) * 50 + 1);
  for (int i = 0; i < 5000; i++)
    tinyfree(blocks[i]);
  ck_assert_int_eq(tinymalloc_check(), 0);
  tinymalloc_trim();
  tinymalloc_stats_t st;
  tinymalloc_stats(&st);
  ck_assert_uint_eq(st.live_blocks, 0);
  ck_assert_uint_eq(st.segments, 0);
}
END_TEST

static void *free_one(void *p)
{
  tinyfree(p);
  return NULL;
}

START_TEST(blocks_freed_by_another_thread_are_reused_by_the_owner)
{
  void *p = tinymalloc(48);
  pthread_t t;
  pthread_create(&t, NULL, free_one, p);
  pthread_join(t, NULL);
  ck_assert_uint_eq(live_blocks(), 0);
  ck_assert_int_eq(tinymalloc_check(), 0);
  /* Fill the slab: the remote free must be merged back eventually. */
  int reused = 0;
  void *blocks[2000];
  for (int i = 0; i < 2000; i++) {
    blocks[i] = tinymalloc(48);
    reused |= blocks[i] == p;
  }
  ck_assert(reused);
  for (int i = 0; i < 2000; i++)
    tinyfree(blocks[i]);
  ck_assert_int_eq(tinymalloc_check(), 0);
}
END_TEST

static atomic_int churn_stop;
/* Global, not on the churning threads' stacks: in a forked child those
 * threads are gone, and memcheck would call their blocks definitely lost. */
static void *churn_held[3][64];

static void *churn(void *arg)
{
  void **held = churn_held[(intptr_t)arg];
  memset(held, 0, sizeof churn_held[0]);
  for (unsigned i = 0; !churn_stop; i++) {
    unsigned k = (i * 2654435761u) >> 26;
    tinyfree(held[k]);
    held[k] = tinymalloc(i % 5 == 0 ? 20000 + i % 30000 : 16 + i % 2000);
  }
  for (int k = 0; k < 64; k++)
    tinyfree(held[k]);
  return NULL;
}

START_TEST(fork_child_sees_consistent_heap_while_threads_allocate)
{
  pthread_t threads[3];
  churn_stop = 0;
  for (int i = 0; i < 3; i++)
    pthread_create(&threads[i], NULL, churn, (void *)(intptr_t)i);
  int bad_children = 0;
  for (int round = 0; round < 40; round++) {
    pid_t pid = fork();
    if (pid == 0) {
      /* The parent's threads are gone here, frozen wherever fork caught them. */
      void *p = tinymalloc(100), *q = tinymalloc(50000);
      int violations = tinymalloc_check();
      tinyfree(p);
      tinyfree(q);
      _exit(violations == 0 && tinymalloc_check() == 0 ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    bad_children += !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  churn_stop = 1;
  for (int i = 0; i < 3; i++)
    pthread_join(threads[i], NULL);
  ck_assert_int_eq(bad_children, 0);
  ck_assert_int_eq(tinymalloc_check(), 0);
}
END_TEST

static void *realloc_in_new_thread(void *p)
{
  return tinyrealloc(p, 40000); /* this thread's first call: shrinks in place */
}

START_TEST(resizing_in_a_thread_that_never_allocated_keeps_live_bytes_exact)
{
  void *p = tinymalloc(100000);
  pthread_t t;
  void *q;
  pthread_create(&t, NULL, realloc_in_new_thread, p);
  pthread_join(t, &q);
  ck_assert_ptr_eq(p, q);
  tinymalloc_stats_t st;
  tinymalloc_stats(&st);
#ifdef TM_TRACKED_BUILD /* usable_size is the requested size there (docs/sanitizers.md) */
  ck_assert_uint_eq(st.live_bytes, (tinymalloc_usable_size(q) + 4095) & ~(size_t)4095);
#else
  /* The run shrank to 10 pages (usable_size may say 40000 in tracked builds). */
  ck_assert_uint_eq(st.live_bytes, 10 * 4096);
#endif
  ck_assert_int_eq(tinymalloc_check(), 0);
  tinyfree(q);
}
END_TEST

/* ---- misuse with a handler --------------------------------------------------- */

static int handler_calls;
static tinymalloc_error_kind_t handler_kind;
static void *handler_ptr;
static char handler_message[256];

static void record_error(tinymalloc_error_kind_t kind, const char *op, void *ptr, const char *message, void *arg)
{
  (void)op;
  (void)arg;
  handler_calls++;
  handler_kind = kind;
  handler_ptr = ptr;
  snprintf(handler_message, sizeof handler_message, "%s", message);
}

START_TEST(handler_sees_each_misuse_once_and_heap_stays_consistent)
{
  tinymalloc_option_set("show_errors", 0);
  tinymalloc_set_error_handler(record_error, NULL);
  for (size_t i = 0; i < NSIZES; i++) {
    char *p = tinymalloc(strategy_sizes[i]);
    tinyfree(p);
    handler_calls = 0;
    tinyfree(p);
    ck_assert_int_eq(handler_calls, 1);
    ck_assert_int_eq(handler_kind, TINYMALLOC_ERROR_DOUBLE_FREE);
    ck_assert_ptr_eq(handler_ptr, p);
    ck_assert_msg(strstr(handler_message, "double free of 0x") != NULL, "%s", handler_message);
    char *q = tinymalloc(strategy_sizes[i] + 64);
    handler_calls = 0;
    tinyfree(q + 16);
    ck_assert_int_eq(handler_calls, 1);
    ck_assert_msg(handler_kind == TINYMALLOC_ERROR_INTERIOR, "%s", handler_message);
    handler_calls = 0;
    errno = 0;
    ck_assert_ptr_null(tinyrealloc(q + 32, 10));
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_int_eq(handler_calls, 1);
    ck_assert_uint_eq(tinymalloc_usable_size(q + 48), 0);
    ck_assert_int_eq(handler_calls, 2);
    tinyfree(q);
  }
  int local = 0;
  handler_calls = 0;
  tinyfree(&local);
  ck_assert_int_eq(handler_calls, 1);
  ck_assert_int_eq(handler_kind, TINYMALLOC_ERROR_INVALID_FREE);
  void *foreign = malloc(32);
  tinyfree(foreign);
  ck_assert_int_eq(handler_calls, 2);
  free(foreign);
  ck_assert_int_eq(tinymalloc_check(), 0);
  ck_assert_uint_eq(live_blocks(), 0);
  tinymalloc_set_error_handler(NULL, NULL);
  tinymalloc_option_set("show_errors", 1);
}
END_TEST

/* ---- death tests: the default report, then abort -------------------------- */

static void expect_abort_with(void (*fn)(void *), void *arg, const char *expected)
{
  char out[1024];
  int sig = run_captured(fn, arg, out, sizeof out);
  ck_assert_msg(sig == SIGABRT, "expected SIGABRT, got signal %d; stderr: %s", sig, out);
  ck_assert_msg(strstr(out, expected) != NULL, "expected \"%s\" in: %s", expected, out);
  ck_assert_msg(strchr(out, '\n') == strrchr(out, '\n'), "more than one line: %s", out);
}

static char expected_line[256];

static void double_free_of_size(void *arg)
{
  size_t size = *(size_t *)arg;
  void *p = tinymalloc(size);
  snprintf(expected_line, sizeof expected_line, "tinymalloc: double free of %p (", p);
  tinyfree(p);
  tinyfree(p);
}

START_TEST(double_free_of_small_medium_and_large_blocks_aborts_with_report)
{
  const size_t sizes[] = {24, 16 * KiB, 64 * KiB, MiB, 8 * MiB};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t size = sizes[i];
    /* The child's pointer is not known here; the line must name the op and kind. */
    expect_abort_with(double_free_of_size, &size, "tinymalloc: double free of 0x");
  }
}
END_TEST

static void double_free_names_pointer_and_size(void *arg)
{
  (void)arg;
  void *p = tinymalloc(64 - REDZONE); /* the report names the block: 64 bytes */
  char line[128];
  int n = snprintf(line, sizeof line, "expect %p\n", p);
  ssize_t w = write(STDERR_FILENO, line, (size_t)n);
  (void)w;
  tinyfree(p);
  tinyfree(p);
}

START_TEST(double_free_report_names_the_pointer_and_block_size)
{
  char out[1024];
  int sig = run_captured(double_free_names_pointer_and_size, NULL, out, sizeof out);
  ck_assert_int_eq(sig, SIGABRT);
  void *p = NULL;
  ck_assert_int_eq(sscanf(out, "expect %p", &p), 1);
  char expected[128];
  snprintf(expected, sizeof expected, "tinymalloc: double free of %p (block of 64 bytes)\n", p);
  ck_assert_msg(strstr(out, expected) != NULL, "expected \"%s\" in: %s", expected, out);
}
END_TEST

static void free_in_thread_then_here(void *arg)
{
  size_t size = *(size_t *)arg;
  void *p = tinymalloc(size);
  pthread_t t;
  pthread_create(&t, NULL, free_one, p);
  pthread_join(t, NULL);
  tinyfree(p);
}

static void *double_free_in_thread(void *p)
{
  tinyfree(p);
  return NULL;
}

static void free_here_then_in_thread(void *arg)
{
  size_t size = *(size_t *)arg;
  void *p = tinymalloc(size);
  tinyfree(p);
  pthread_t t;
  pthread_create(&t, NULL, double_free_in_thread, p);
  pthread_join(t, NULL);
}

static void free_in_two_threads(void *arg)
{
  size_t size = *(size_t *)arg;
  void *p = tinymalloc(size);
  void *keep = tinymalloc(size); /* keeps the slab alive */
  pthread_t t;
  pthread_create(&t, NULL, free_one, p);
  pthread_join(t, NULL);
  pthread_create(&t, NULL, double_free_in_thread, p);
  pthread_join(t, NULL);
  tinyfree(keep);
}

START_TEST(double_free_across_threads_aborts_with_report)
{
  const size_t sizes[] = {40, 100 * KiB, 2 * MiB};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t size = sizes[i];
    expect_abort_with(free_in_thread_then_here, &size, "tinymalloc: double free of 0x");
    expect_abort_with(free_here_then_in_thread, &size, "tinymalloc: double free of 0x");
    expect_abort_with(free_in_two_threads, &size, "tinymalloc: double free of 0x");
  }
}
END_TEST

static void free_interior(void *arg)
{
  size_t size = *(size_t *)arg;
  char *p = tinymalloc(size);
  tinyfree(p + 8);
}

START_TEST(interior_pointer_free_aborts_with_report)
{
  const size_t sizes[] = {64, 100 * KiB, 4 * MiB};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t size = sizes[i];
    expect_abort_with(free_interior, &size, "tinymalloc: invalid free of 0x");
    expect_abort_with(free_interior, &size, "(interior pointer: 8 bytes into the block of ");
  }
}
END_TEST

static void free_stack(void *arg)
{
  (void)arg;
  char local[16];
  tinyfree(local);
}

static void free_wild(void *arg)
{
  (void)arg;
  tinyfree((void *)(uintptr_t)0x123456789a0);
}

static void free_foreign(void *arg)
{
  (void)arg;
  tinyfree(malloc(64));
}

static void realloc_freed(void *arg)
{
  (void)arg;
  void *p = tinymalloc(32);
  tinyfree(p);
  void *q = tinyrealloc(p, 64);
  (void)q;
}

START_TEST(free_of_stack_wild_or_foreign_pointer_aborts_with_report)
{
  expect_abort_with(free_stack, NULL, "tinymalloc: invalid free of 0x");
  expect_abort_with(free_stack, NULL, "(not allocated by tinymalloc)");
  expect_abort_with(free_wild, NULL, "tinymalloc: invalid free of 0x123456789a0 (not allocated by tinymalloc)");
  expect_abort_with(free_foreign, NULL, "tinymalloc: invalid free of 0x");
  expect_abort_with(realloc_freed, NULL, "tinymalloc: realloc of freed block 0x");
}
END_TEST

static Suite *core_suite(void)
{
  Suite *s = suite_create("tinymalloc");
  TCase *api = tcase_create("api");
  tcase_set_timeout(api, 120);
  tcase_add_test(api, malloc_returns_aligned_writable_blocks_of_every_size);
  tcase_add_test(api, live_blocks_never_overlap);
  tcase_add_test(api, malloc_zero_returns_unique_pointers_that_can_be_freed);
  tcase_add_test(api, free_null_does_nothing_and_free_keeps_errno);
  tcase_add_test(api, huge_requests_return_null_with_enomem);
  tcase_add_test(api, usable_size_covers_request_and_null_is_zero);
  tcase_add_test(api, calloc_zeroes_reused_memory);
  tcase_add_test(api, calloc_overflow_returns_null_with_enomem);
  tcase_add_test(api, realloc_preserves_contents_across_all_strategies);
  tcase_add_test(api, realloc_grows_step_by_step_keeping_contents);
  tcase_add_test(api, realloc_null_allocates_and_realloc_to_zero_frees);
  tcase_add_test(api, failed_realloc_returns_enomem_and_keeps_the_block);
  tcase_add_test(api, memalign_honours_every_alignment_up_to_64_mib);
  tcase_add_test(api, bad_alignments_are_rejected_with_einval);
  tcase_add_test(api, statistics_count_live_blocks_and_bytes_of_each_strategy);
  tcase_add_test(api, trim_returns_every_empty_segment_to_the_os);
  tcase_add_test(api, options_can_be_read_and_set);
  tcase_add_test(api, blocks_of_an_exited_thread_can_be_freed_and_reused);
  tcase_add_test(api, blocks_freed_by_another_thread_are_reused_by_the_owner);
  tcase_add_test(api, handler_sees_each_misuse_once_and_heap_stays_consistent);
  tcase_add_test(api, fork_child_sees_consistent_heap_while_threads_allocate);
  tcase_add_test(api, resizing_in_a_thread_that_never_allocated_keeps_live_bytes_exact);
  suite_add_tcase(s, api);

  TCase *death = tcase_create("misuse");
  tcase_set_timeout(death, 120);
  tcase_add_test(death, double_free_of_small_medium_and_large_blocks_aborts_with_report);
  tcase_add_test(death, double_free_report_names_the_pointer_and_block_size);
  tcase_add_test(death, double_free_across_threads_aborts_with_report);
  tcase_add_test(death, interior_pointer_free_aborts_with_report);
  tcase_add_test(death, free_of_stack_wild_or_foreign_pointer_aborts_with_report);
  suite_add_tcase(s, death);
  return s;
}

int main(void)
{
  SRunner *runner = srunner_create(core_suite());
  srunner_run_all(runner, CK_NORMAL);
  int failed = srunner_ntests_failed(runner);
  srunner_free(runner);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
