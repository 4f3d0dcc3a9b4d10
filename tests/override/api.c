/* Specification of the exported malloc family of libtinymalloc-override: each
 * symbol resolves to the override library and behaves as glibc's does where
 * programs rely on it (errno, zero sizes, alignment rules, overflow), and the
 * introspection calls report tinymalloc's own figures. Linked against the
 * override library; prints "api: all N checks passed". */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "tinymalloc.h"

void cfree(void *ptr);
void *__libc_malloc(size_t size);
void __libc_free(void *ptr);
void *__libc_calloc(size_t n, size_t size);
void *__libc_realloc(void *ptr, size_t size);
void *__libc_memalign(size_t alignment, size_t size);
void *__libc_valloc(size_t size);
void *__libc_pvalloc(size_t size);

static size_t live_blocks(void)
{
  tinymalloc_stats_t stats;
  CHECK(tinymalloc_stats(&stats) == 0);
  return stats.live_blocks;
}

/* Sizes hidden from the compiler, which would otherwise reject the requests
 * that the tests make on purpose (-Walloc-size-larger-than). */
static volatile size_t size_max = SIZE_MAX;
/* Alignments that clang would reject at compile time (they are the point). */
static volatile size_t align_24 = 24, align_0 = 0;

static int is_aligned(const void *p, size_t alignment) { return ((uintptr_t)p & (alignment - 1)) == 0; }

static void every_symbol_resolves_to_the_override_library(void)
{
  static const char *const names[] = {
      "malloc",         "free",        "calloc",        "realloc",        "reallocarray",       "aligned_alloc",
      "posix_memalign", "memalign",    "valloc",        "pvalloc",        "malloc_usable_size", "cfree",
      "__libc_malloc",  "__libc_free", "__libc_calloc", "__libc_realloc", "__libc_memalign",    "__libc_valloc",
      "__libc_pvalloc", "mallopt",     "malloc_trim",   "mallinfo",       "mallinfo2",          "malloc_stats",
      "malloc_info"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    void *symbol = dlsym(RTLD_DEFAULT, names[i]);
    Dl_info info;
    if (symbol == NULL || dladdr(symbol, &info) == 0 || info.dli_fname == NULL ||
        strstr(info.dli_fname, "libtinymalloc-override") == NULL) {
      fprintf(stderr, "%s resolves to %s\n", names[i], symbol && dladdr(symbol, &info) ? info.dli_fname : "nothing");
      CHECK(!"symbol served by the override library");
    }
    check_count++;
  }
}

static void malloc_is_served_by_tinymalloc(void)
{
  size_t before = live_blocks();
  char *p = malloc(100);
  CHECK(p != NULL);
  CHECK(live_blocks() == before + 1);
  CHECK(tinymalloc_usable_size(p) >= 100);
  CHECK(malloc_usable_size(p) == tinymalloc_usable_size(p));
  free(p);
  CHECK(live_blocks() == before);
  /* libc's own allocations (strdup, getline, stdio) come from tinymalloc too. */
  char *copy = strdup("interposed");
  CHECK(copy != NULL && tinymalloc_usable_size(copy) >= sizeof "interposed");
  free(copy);
  CHECK(malloc_usable_size(NULL) == 0);
}

static void malloc_zero_returns_unique_pointers(void)
{
  void *a = malloc(0), *b = malloc(0);
  CHECK(a != NULL && b != NULL && a != b);
  free(a);
  free(b);
  CHECK(malloc(size_max) == NULL);
  CHECK(errno == ENOMEM);
}

static void free_keeps_errno(void)
{
  void *small = malloc(24), *medium = malloc(200000), *large = malloc(3 << 20);
  CHECK(small && medium && large);
  errno = 4242;
  free(small);
  CHECK(errno == 4242);
  free(medium);
  CHECK(errno == 4242);
  free(large);
  CHECK(errno == 4242);
  free(NULL);
  CHECK(errno == 4242);
}

static void calloc_zeroes_reused_memory_and_checks_overflow(void)
{
  for (size_t size = 8; size <= (size_t)4 << 20; size *= 4) {
    unsigned char *dirty = malloc(size);
    CHECK(dirty != NULL);
    memset(dirty, 0xff, size);
    free(dirty);
    unsigned char *zero = calloc(size / 8, 8);
    CHECK(zero != NULL);
    for (size_t i = 0; i < size; i++)
      if (zero[i] != 0) CHECK(!"calloc returned non-zero bytes");
    free(zero);
  }
  errno = 0;
  CHECK(calloc(size_max / 2, 4) == NULL);
  CHECK(errno == ENOMEM);
}

static void realloc_keeps_contents_and_frees_on_zero(void)
{
  size_t sizes[] = {10, 100, 5000, 40000, 300000, 3 << 20, 600, 7};
  unsigned char *p = realloc(NULL, 1);
  CHECK(p != NULL);
  p[0] = 1;
  size_t old = 1;
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t size = sizes[i];
    unsigned char *q = realloc(p, size);
    CHECK(q != NULL);
    size_t keep = old < size ? old : size;
    for (size_t j = 0; j < keep; j++)
      if (q[j] != (unsigned char)(j * 7 + 1)) CHECK(!"realloc lost contents");
    for (size_t j = 0; j < size; j++)
      q[j] = (unsigned char)(j * 7 + 1);
    p = q;
    old = size;
  }
  size_t before = live_blocks();
  CHECK(realloc(p, 0) == NULL);
  CHECK(live_blocks() == before - 1);

  void *q = malloc(64);
  errno = 0;
  CHECK(reallocarray(q, size_max / 2, 3) == NULL);
  CHECK(errno == ENOMEM);
  q = reallocarray(q, 100, 10); /* the block survived the failure */
  CHECK(q != NULL && malloc_usable_size(q) >= 1000);
  free(q);
}

static void alignment_rules_match_glibc(void)
{
  void *p = aligned_alloc(64, 100);
  CHECK(p != NULL && is_aligned(p, 64));
  free(p);
  p = aligned_alloc(4096, 10);
  CHECK(p != NULL && is_aligned(p, 4096));
  free(p);
  errno = 0;
  CHECK(aligned_alloc(align_24, 100) == NULL && errno == EINVAL);

  void *out = &out;
  CHECK(posix_memalign(&out, 12, 10) == EINVAL && out == &out);
  CHECK(posix_memalign(&out, 4, 10) == EINVAL && out == &out);
  CHECK(posix_memalign(&out, 1 << 16, 10) == 0 && is_aligned(out, 1 << 16));
  free(out);

  /* memalign rounds a non-power-of-two up and treats small ones as malloc. */
  p = memalign(align_24, 10);
  CHECK(p != NULL && is_aligned(p, 32));
  free(p);
  p = memalign(align_0, 10);
  CHECK(p != NULL && is_aligned(p, 16));
  free(p);
  p = memalign(1 << 20, 100);
  CHECK(p != NULL && is_aligned(p, 1 << 20));
  free(p);
  errno = 0;
  CHECK(memalign(size_max, 1) == NULL && errno == EINVAL);

  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  p = valloc(10);
  CHECK(p != NULL && is_aligned(p, page));
  free(p);
  p = pvalloc(1);
  CHECK(p != NULL && is_aligned(p, page) && malloc_usable_size(p) >= page);
  free(p);
  p = pvalloc(0);
  CHECK(p != NULL && malloc_usable_size(p) >= page);
  free(p);
  errno = 0;
  CHECK(pvalloc(size_max - 10) == NULL && errno == ENOMEM);
}

static void libc_aliases_and_cfree_work(void)
{
  size_t before = live_blocks();
  char *a = __libc_malloc(10);
  char *b = __libc_calloc(4, 4);
  char *c = __libc_memalign(256, 10);
  char *d = __libc_valloc(10);
  char *e = __libc_pvalloc(10);
  CHECK(a && b && c && d && e && is_aligned(c, 256) && b[15] == 0);
  CHECK(live_blocks() == before + 5);
  a = __libc_realloc(a, 5000);
  CHECK(a != NULL);
  __libc_free(a);
  __libc_free(b);
  cfree(c);
  cfree(d);
  free(e);
  CHECK(live_blocks() == before);
}

static void trim_returns_freed_memory(void)
{
  enum { COUNT = 64 };
  void *blocks[COUNT];
  for (int i = 0; i < COUNT; i++) {
    blocks[i] = malloc(100000);
    CHECK(blocks[i] != NULL);
    memset(blocks[i], i, 100000);
  }
  for (int i = 0; i < COUNT; i++)
    free(blocks[i]);
  tinymalloc_stats_t before, after;
  CHECK(tinymalloc_stats(&before) == 0);
  CHECK(malloc_trim(0) == 1);
  CHECK(tinymalloc_stats(&after) == 0);
  CHECK(after.purged_bytes + after.unmapped_bytes > before.purged_bytes + before.unmapped_bytes);
  CHECK(malloc_trim(0) == 0); /* nothing left to give back */
}

static void mallopt_forwards_or_accepts(void)
{
  CHECK(mallopt(M_MXFAST, 64) == 1);
  CHECK(mallopt(M_MMAP_THRESHOLD, 1 << 20) == 1);
  CHECK(mallopt(M_TRIM_THRESHOLD, 1 << 20) == 1);
  CHECK(mallopt(12345, 1) == 0);
  long junk = tinymalloc_option_get("junk");
  CHECK(mallopt(M_PERTURB, 0x55) == 1);
  CHECK(tinymalloc_option_get("junk") == 1);
  CHECK(mallopt(M_PERTURB, 0) == 1);
  CHECK(tinymalloc_option_get("junk") == 0);
  CHECK(tinymalloc_option_set("junk", junk) == 0);
}

static void mallinfo_reports_tinymalloc_figures(void)
{
  struct mallinfo2 before = mallinfo2();
  void *big = malloc(8 << 20);
  CHECK(big != NULL);
  struct mallinfo2 during = mallinfo2();
  tinymalloc_stats_t stats;
  CHECK(tinymalloc_stats(&stats) == 0);
  CHECK(during.uordblks == stats.live_bytes);
  CHECK(during.uordblks >= before.uordblks + (8 << 20));
  CHECK(during.hblks == before.hblks + 1);
  CHECK(during.hblkhd >= before.hblkhd + (8 << 20));
  CHECK(during.arena == stats.mapped_bytes && during.arena >= during.uordblks);
  CHECK(during.ordblks == stats.live_blocks);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  struct mallinfo narrow = mallinfo();
#pragma GCC diagnostic pop
  CHECK(narrow.hblks == (int)during.hblks);
  CHECK(narrow.uordblks >= 8 << 20);
  free(big);
  CHECK(mallinfo2().uordblks < during.uordblks);
}

/* Runs `print` with stderr or the FILE redirected into a pipe-backed file and
 * returns what it wrote (static buffer). */
static const char *capture_stderr(void (*print)(void))
{
  static char text[65536];
  char path[] = "/tmp/tm-api-XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  unlink(path);
  int saved = dup(STDERR_FILENO);
  CHECK(dup2(fd, STDERR_FILENO) == STDERR_FILENO);
  print();
  CHECK(dup2(saved, STDERR_FILENO) == STDERR_FILENO);
  close(saved);
  ssize_t n = pread(fd, text, sizeof text - 1, 0);
  CHECK(n > 0);
  text[n] = 0;
  close(fd);
  return text;
}

static void malloc_stats_and_malloc_info_print_tinymalloc_figures(void)
{
  const char *text = capture_stderr(malloc_stats);
  CHECK(strstr(text, "tinymalloc statistics") != NULL);
  CHECK(strstr(text, "live blocks") != NULL);

  FILE *out = tmpfile();
  CHECK(out != NULL);
  CHECK(malloc_info(0, out) == 0);
  static char xml[65536];
  rewind(out);
  size_t n = fread(xml, 1, sizeof xml - 1, out);
  xml[n] = 0;
  CHECK(strncmp(xml, "<malloc version=\"tinymalloc-1\">", 31) == 0);
  CHECK(strstr(xml, "<total type=\"live\" count=\"") != NULL);
  CHECK(strstr(xml, "</malloc>\n") != NULL);
  errno = 0;
  CHECK(malloc_info(1, out) == -1 && errno == EINVAL);
  fclose(out);

  /* A closed descriptor: nothing written, no crash, errno unchanged. */
  errno = 77;
  tinymalloc_stats_print(-1, 0);
  tinymalloc_stats_print(-1, 1);
  CHECK(errno == 77);
}

int main(void)
{
  every_symbol_resolves_to_the_override_library();
  malloc_is_served_by_tinymalloc();
  malloc_zero_returns_unique_pointers();
  free_keeps_errno();
  calloc_zeroes_reused_memory_and_checks_overflow();
  realloc_keeps_contents_and_frees_on_zero();
  alignment_rules_match_glibc();
  libc_aliases_and_cfree_work();
  trim_returns_freed_memory();
  mallopt_forwards_or_accepts();
  mallinfo_reports_tinymalloc_figures();
  malloc_stats_and_malloc_info_print_tinymalloc_figures();
  CHECK(tinymalloc_check() == 0);
  printf("api: all %lu checks passed\n", check_count);
  return 0;
}
