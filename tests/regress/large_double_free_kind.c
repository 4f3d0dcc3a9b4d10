/* A second free of a large block that was already given back (its mapping
 * cached or unmapped, its segments marked freed) is a double free, and must
 * be reported as one, in the normal mode and in the detection mode.
 *
 * The bug: the detection mode's large blocks end against a guard page, so
 * they start 16 bytes to a page past their header page, not on a page. A
 * free that found their segments marked freed took only a page-aligned
 * address for the start of a freed block and called everything else an
 * invalid free ("points into memory tinymalloc already returned to the
 * OS"): a racing or stale double free of such a block got the wrong kind.
 * fuzz_threads' race_free found it under AFL++ (its libFuzzer build is the
 * ASan build, where the mode is a no-op).
 *
 * Each size is allocated, freed, pushed out of the quarantine (trim empties
 * the calling thread's), and freed again: exactly one report, a double free
 * of that address. Sizes whose block does or does not fill its last page
 * (the guarded block then starts at a page, or 16 to 4080 bytes past one).
 * Run with "detect" as argument for the mode, without for the normal one. */
#include "regress.h"

static _Atomic int reports;
static tinymalloc_error_kind_t last_kind;
static void *last_ptr;

static void count_report(tinymalloc_error_kind_t kind, const char *op, void *ptr, const char *message, void *arg)
{
  (void)op;
  (void)arg;
  (void)message;
  last_kind = kind;
  last_ptr = ptr;
  reports++;
}

int main(int argc, char **argv)
{
  int detect = argc > 1 && strcmp(argv[1], "detect") == 0;
  if (detect) REQUIRE(tinymalloc_option_set("detect", 1) == 0, "the detection mode could not be switched on");
  tinymalloc_option_set("show_errors", 0);
  tinymalloc_set_error_handler(count_report, NULL);
  static const size_t sizes[] = {(size_t)2 << 20, ((size_t)2 << 20) + 1000, ((size_t)3 << 20) + 8,
                                 ((size_t)5 << 20) - 4088, (size_t)13 << 20};
  int failures = 0;
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    char *p = tinymalloc(sizes[i]);
    REQUIRE(p != NULL, "malloc(%zu) returned NULL", sizes[i]);
    memset(p, 1, sizes[i]);
    tinyfree(p);
    tinymalloc_trim(); /* out of the quarantine: given back for real */
    REQUIRE(reports == 0, "a report before the second free of %p", (void *)p);
    tinyfree(p);
    int ok = reports == 1 && last_kind == TINYMALLOC_ERROR_DOUBLE_FREE && last_ptr == p;
    printf("%s: %s mode, %zu bytes at %p (page offset %zu): %d report(s), kind %d (double free: %d)\n",
           ok ? "PASS" : "FAIL", detect ? "detection" : "normal", sizes[i], (void *)p, (size_t)((uintptr_t)p & 4095),
           (int)reports, (int)last_kind, (int)TINYMALLOC_ERROR_DOUBLE_FREE);
    failures += !ok;
    reports = 0;
  }
  return failures ? 1 : 0;
}
