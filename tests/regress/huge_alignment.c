/* Issue 8, item 9: memalign, aligned_alloc and posix_memalign with an
 * alignment of 2^62 or 2^63 (valid powers of two that no allocation can
 * honour) must fail with ENOMEM, as glibc does (its tst-malloc-too-large),
 * not with EINVAL.
 *
 * Built against libtinymalloc.a it checks tinymemalign, tinyaligned_alloc and
 * tinyposix_memalign; built with -DREGRESS_LIBC it checks the standard names,
 * on glibc (the control) and under LD_PRELOAD of the override library.
 * Controls in the same run: posix_memalign with an alignment that is not a
 * power of two (24) is EINVAL, and an alignment of 2^20 works. */
#include "regress.h"

static int failures;

static void expect_null_errno(const char *call, void *p, int err, int want)
{
  int ok = p == NULL && err == want;
  printf("%s: %s -> %s, errno %s (expected NULL, %s)\n", ok ? "PASS" : "FAIL", call, p ? "a block" : "NULL",
         strerrorname_np(err) ? strerrorname_np(err) : "?", strerrorname_np(want));
  if (!ok) failures++;
  if (p) R_FREE(p);
}

static void expect_ret(const char *call, int ret, void *out, void *sentinel, int want)
{
  int ok = ret == want && out == sentinel;
  printf("%s: %s -> %s%s (expected %s, *out untouched)\n", ok ? "PASS" : "FAIL", call,
         ret == 0               ? "0"
         : strerrorname_np(ret) ? strerrorname_np(ret)
                                : "?",
         out == sentinel ? "" : ", *out written", want == 0 ? "0" : strerrorname_np(want));
  if (!ok) failures++;
}

int main(void)
{
  printf("huge power-of-two alignments, %s%s%s\n", REGRESS_ALLOCATOR, getenv("LD_PRELOAD") ? ", LD_PRELOAD=" : "",
         getenv("LD_PRELOAD") ? getenv("LD_PRELOAD") : "");
  static const int shifts[] = {62, 63};
  for (int i = 0; i < 2; i++) {
    size_t align = (size_t)1 << shifts[i];
    char call[96];
    for (size_t size = 1; size <= 4096; size += 4095) {
      errno = 0;
      void *p = R_MEMALIGN(align, size);
      snprintf(call, sizeof call, "memalign(2^%d, %zu)", shifts[i], size);
      expect_null_errno(call, p, errno, ENOMEM);

      errno = 0;
      p = R_ALIGNED(align, size);
      snprintf(call, sizeof call, "aligned_alloc(2^%d, %zu)", shifts[i], size);
      expect_null_errno(call, p, errno, ENOMEM);

      void *sentinel = (void *)&failures, *out = sentinel;
      int ret = R_POSIX(&out, align, size);
      snprintf(call, sizeof call, "posix_memalign(&p, 2^%d, %zu)", shifts[i], size);
      expect_ret(call, ret, out, sentinel, ENOMEM);
    }
  }
  void *sentinel = (void *)&failures, *out = sentinel;
  expect_ret("posix_memalign(&p, 24, 100)", R_POSIX(&out, 24, 100), out, sentinel, EINVAL);
  void *p = R_MEMALIGN((size_t)1 << 20, 100);
  int ok = p != NULL && ((uintptr_t)p & ((1u << 20) - 1)) == 0;
  printf("%s: memalign(2^20, 100) -> %p\n", ok ? "PASS" : "FAIL", p);
  if (!ok) failures++;
  R_FREE(p);
  printf("%s: %d check(s) failed\n", failures ? "FAIL" : "PASS", failures);
  return failures ? 1 : 0;
}
