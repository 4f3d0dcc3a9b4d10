/* A program that uses the tiny* API of an installed or embedded tinymalloc
 * (tests/packaging): allocates, grows, checks the heap, and prints the
 * version it was compiled against, which must be TM_EXPECT_VERSION. */
#include <stdio.h>
#include <string.h>
#include <tinymalloc.h>

#if !defined(TINYMALLOC_VERSION_MAJOR) || !defined(TINYMALLOC_VERSION_MINOR) || !defined(TINYMALLOC_VERSION_PATCH)
#error "tinymalloc.h has no version macros"
#endif
#if TINYMALLOC_VERSION != TINYMALLOC_VERSION_MAJOR * 10000 + TINYMALLOC_VERSION_MINOR * 100 + TINYMALLOC_VERSION_PATCH
#error "TINYMALLOC_VERSION does not combine the three parts"
#endif

int main(void)
{
  char *p = tinymalloc(100);
  if (p == NULL) return 1;
  memset(p, 'a', 100);
  char *q = tinyrealloc(p, 200000);
  if (q == NULL || q[99] != 'a') return 2;
  tinyfree(q);
  if (tinymalloc_check() != 0) return 3;
  char parts[32];
  snprintf(parts, sizeof parts, "%d.%d.%d", TINYMALLOC_VERSION_MAJOR, TINYMALLOC_VERSION_MINOR,
           TINYMALLOC_VERSION_PATCH);
  if (strcmp(parts, TINYMALLOC_VERSION_STRING) != 0) return 4;
#ifdef TM_EXPECT_VERSION
  if (strcmp(TINYMALLOC_VERSION_STRING, TM_EXPECT_VERSION) != 0) {
    fprintf(stderr, "app: header says %s, the package %s\n", TINYMALLOC_VERSION_STRING, TM_EXPECT_VERSION);
    return 5;
  }
#endif
  printf("app: tinymalloc %s ok\n", TINYMALLOC_VERSION_STRING);
  return 0;
}
