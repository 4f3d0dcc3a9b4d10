/* tm_bug commits exactly one memory bug on tinymalloc memory, chosen by name
 * (tm_bug overflow-small-write), so that a test can assert the report of the
 * watching tool (ASan or memcheck). Before the bug it prints the address it
 * is about to touch ("tm_bug: target 0x...") so the test can check that the
 * report names that very byte. It must never commit a second bug. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tinymalloc.h"

#if defined(__has_include)
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#endif
#endif

#define SMALL_SIZE  24         /* class 32: the overflowing byte is slack */
#define MEDIUM_SIZE 40000      /* a run of 10 pages: slack again */
#define LARGE_SIZE  (3u << 20) /* its own mapping */

/* The compiler must neither drop nor reorder the faulting access. */
static volatile unsigned char sink;

static void announce(const void *target) { fprintf(stderr, "tm_bug: target %p\n", target); }

static void touch_write(unsigned char *p)
{
  announce(p);
  *(volatile unsigned char *)p = 0x5a;
}

static void touch_read(unsigned char *p)
{
  announce(p);
  sink = *(volatile unsigned char *)p;
}

/* Fills the block so that only the bug itself can be reported. */
static unsigned char *filled(unsigned char *p, size_t n)
{
  if (p == NULL) {
    fprintf(stderr, "tm_bug: allocation failed\n");
    exit(2);
  }
  memset(p, 0xab, n);
  return p;
}

static int overflow_small_write(void)
{
  unsigned char *p = filled(tinymalloc(SMALL_SIZE), SMALL_SIZE);
  touch_write(p + SMALL_SIZE);
  tinyfree(p);
  return 0;
}

/* 64 bytes is a size class of its own: only the redzone of tracked builds
 * keeps p[64] out of the next block of the slab (which is live here). */
static int overflow_exact_class_write(void)
{
  unsigned char *p = filled(tinymalloc(64), 64);
  unsigned char *next = filled(tinymalloc(64), 64);
  touch_write(p + 64);
  tinyfree(next);
  tinyfree(p);
  return 0;
}

static int overflow_small_read(void)
{
  unsigned char *p = filled(tinymalloc(SMALL_SIZE), SMALL_SIZE);
  touch_read(p + SMALL_SIZE);
  tinyfree(p);
  return 0;
}

static int overflow_medium_write(void)
{
  unsigned char *p = filled(tinymalloc(MEDIUM_SIZE), MEDIUM_SIZE);
  touch_write(p + MEDIUM_SIZE);
  tinyfree(p);
  return 0;
}

static int overflow_medium_read(void)
{
  unsigned char *p = filled(tinymalloc(MEDIUM_SIZE), MEDIUM_SIZE);
  touch_read(p + MEDIUM_SIZE);
  tinyfree(p);
  return 0;
}

static int overflow_memalign_write(void)
{
  unsigned char *p = filled(tinymemalign(256, 40), 40);
  touch_write(p + 40);
  tinyfree(p);
  return 0;
}

static int overflow_memalign_read(void)
{
  void *v = NULL;
  if (tinyposix_memalign(&v, 4096, 5000) != 0) v = NULL;
  unsigned char *p = filled(v, 5000);
  touch_read(p + 5000);
  tinyfree(p);
  return 0;
}

static int overflow_large_write(void)
{
  unsigned char *p = filled(tinymalloc(LARGE_SIZE + 1), LARGE_SIZE + 1);
  touch_write(p + LARGE_SIZE + 1);
  tinyfree(p);
  return 0;
}

static int use_after_free_small(void)
{
  unsigned char *p = filled(tinymalloc(SMALL_SIZE), SMALL_SIZE);
  tinyfree(p);
  touch_read(p);
  return 0;
}

static int use_after_free_small_write(void)
{
  unsigned char *p = filled(tinymalloc(64), 64);
  tinyfree(p);
  touch_write(p + 8);
  return 0;
}

static int use_after_free_medium(void)
{
  unsigned char *p = filled(tinymalloc(MEDIUM_SIZE), MEDIUM_SIZE);
  tinyfree(p);
  touch_read(p + 100);
  return 0;
}

static int use_after_free_large(void)
{
  unsigned char *p = filled(tinymalloc(LARGE_SIZE), LARGE_SIZE);
  tinyfree(p);
  touch_read(p + 100);
  return 0;
}

static int overflow_after_shrink(void)
{
  unsigned char *p = filled(tinymalloc(100), 100);
  unsigned char *q = tinyrealloc(p, 40);
  if (q == NULL) return 2;
  touch_write(q + 40);
  tinyfree(q);
  return 0;
}

static int overflow_after_shrink_medium(void)
{
  unsigned char *p = filled(tinymalloc(MEDIUM_SIZE), MEDIUM_SIZE);
  unsigned char *q = tinyrealloc(p, MEDIUM_SIZE - 3000);
  if (q == NULL) return 2;
  touch_read(q + MEDIUM_SIZE - 3000);
  tinyfree(q);
  return 0;
}

/* A large block grown in place: the pages it gains are its own up to the
 * new size, the byte after it is not (the growth lifts the poison only from
 * the old end on). It shrinks first, so that the pages after it are free
 * for the growth (mremap); a growth that moved would not test that path. */
static int overflow_after_grow_large(void)
{
  unsigned char *p = filled(tinymalloc(2 * LARGE_SIZE + 5), 2 * LARGE_SIZE + 5);
  unsigned char *q = tinyrealloc(p, LARGE_SIZE + 3);
  if (q != p) return 2;
  q = tinyrealloc(p, 2 * LARGE_SIZE + 5);
  if (q != p) return 3;
  filled(q, 2 * LARGE_SIZE + 5);
  touch_write(q + 2 * LARGE_SIZE + 5);
  tinyfree(q);
  return 0;
}

/* The run gives its tail pages back: they must be inaccessible at once. */
static int read_released_tail_after_shrink(void)
{
  unsigned char *p = filled(tinymalloc(MEDIUM_SIZE), MEDIUM_SIZE);
  unsigned char *q = tinyrealloc(p, MEDIUM_SIZE / 2);
  if (q == NULL) return 2;
  touch_read(q + MEDIUM_SIZE - 10000);
  tinyfree(q);
  return 0;
}

static int calloc_overflow_read(void)
{
  unsigned char *p = tinycalloc(10, 3);
  if (p == NULL) return 2;
  touch_read(p + 30);
  tinyfree(p);
  return 0;
}

static int uninitialised_read(void)
{
  unsigned char *p = tinymalloc(SMALL_SIZE);
  if (p == NULL) return 2;
  announce(p + 5);
  /* A branch on a never-written byte: memcheck's "uninitialised value". */
  if (((volatile unsigned char *)p)[5] == 0x42)
    sink = 1;
  else
    sink = 2;
  tinyfree(p);
  return 0;
}

/* Dead stack slots and caller-saved registers may still hold a pointer into
 * the leaked block (the end of the memset, a stdio call's arguments), and
 * memcheck, which scans both at exit, then calls the leak "possibly lost",
 * in about 1 run in 10 (more under ctest: the environment moves the stack).
 * Wiped before the scan. */
static __attribute__((noinline)) void scrub(void)
{
  volatile uintptr_t dead[2048];
  for (size_t i = 0; i < sizeof dead / sizeof dead[0]; i++)
    dead[i] = 0;
#if defined(__x86_64__)
  __asm__ volatile("xor %%eax, %%eax\n\txor %%ecx, %%ecx\n\txor %%edx, %%edx\n\txor %%esi, %%esi\n\t"
                   "xor %%edi, %%edi\n\txor %%r8d, %%r8d\n\txor %%r9d, %%r9d\n\txor %%r10d, %%r10d\n\t"
                   "xor %%r11d, %%r11d"
                   :
                   :
                   : "rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "memory");
#endif
}

/* Kept out of main so that no register or stack slot of main holds it. */
static __attribute__((noinline)) void leak_one_block(size_t size)
{
  /* Only the head is written: a memset of megabytes can leave pointers into
   * the block in registers and stack slots, and memcheck would then call
   * the leak "possibly lost". */
  unsigned char *volatile p = filled(tinymalloc(size), 64);
  announce((void *)p);
  p = NULL;
  scrub();
#ifdef VALGRIND_DO_LEAK_CHECK
  /* The leak check at once, from this known state: the one at exit comes
   * after the C library's and tinymalloc's exit code ran, whose dead stack
   * slots and registers memcheck scans too (the leak was still "possibly
   * lost" in 1 of 70 tests of a clean-clone run with the scrub above). A
   * definite leak found here is an error for --error-exitcode as well. */
  VALGRIND_DO_LEAK_CHECK;
#endif
}

/* The first block of a fresh slab (176 bytes: class 192, used by nothing else
 * here): tinymalloc's metadata keeps offsets, never a pointer that would
 * make memcheck call the block reachable. */
static int leaked_block(void)
{
  leak_one_block(176);
  return 0;
}

static int leaked_large_block(void)
{
  leak_one_block((size_t)5 << 20);
  return 0;
}

typedef struct bug_case_s {
  const char *name;
  int (*run)(void);
} bug_case_t;

static const bug_case_t cases[] = {
    {"overflow-exact-class-write", overflow_exact_class_write},
    {"overflow-small-write", overflow_small_write},
    {"overflow-small-read", overflow_small_read},
    {"overflow-medium-write", overflow_medium_write},
    {"overflow-medium-read", overflow_medium_read},
    {"overflow-memalign-write", overflow_memalign_write},
    {"overflow-memalign-read", overflow_memalign_read},
    {"overflow-large-write", overflow_large_write},
    {"use-after-free-small", use_after_free_small},
    {"use-after-free-small-write", use_after_free_small_write},
    {"use-after-free-medium", use_after_free_medium},
    {"use-after-free-large", use_after_free_large},
    {"overflow-after-shrink", overflow_after_shrink},
    {"overflow-after-shrink-medium", overflow_after_shrink_medium},
    {"overflow-after-grow-large", overflow_after_grow_large},
    {"read-released-tail-after-shrink", read_released_tail_after_shrink},
    {"calloc-overflow-read", calloc_overflow_read},
    {"uninitialised-read", uninitialised_read},
    {"leaked-block", leaked_block},
    {"leaked-large-block", leaked_large_block},
};

int main(int argc, char **argv)
{
  if (argc != 2) {
    fprintf(stderr, "usage: tm_bug CASE\n");
    return 2;
  }
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    if (strcmp(argv[1], cases[i].name) == 0) return cases[i].run();
  fprintf(stderr, "tm_bug: unknown case %s\n", argv[1]);
  return 2;
}
