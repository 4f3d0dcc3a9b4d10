/* detect_zero_on_free: with TINYMALLOC_ZERO_ON_FREE=1 a read after free
 * sees zeros, never the old data, in the detection mode and without it; the
 * control run turns the option off and must see old data or the fill
 * pattern. (A large block in the detection mode faults instead:
 * use_after_free.c.) Harness and options: harness.h. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static void read_freed(size_t n, size_t k)
{
  (void)k;
  unsigned char *p = malloc(n);
  memset(launder(p), 0xab, n);
  free(p);
  for (size_t i = 0; i < n; i++) {
    if (peek(p, i) != 0) {
      say("not zero at byte %zu of %zu (0x%02x)\n", i, n, peek(p, i));
      return;
    }
  }
  say("all %zu bytes zero\n", n);
}

static void zero_case(size_t n, int detect)
{
  tcase_t *c = add_case(read_freed, n, 0, "%s-%zu", detect ? "detect" : "plain", n);
  expect_output(c, "bytes zero", "not zero at");
  c->env = detect ? "TINYMALLOC_DETECT=1 TINYMALLOC_ZERO_ON_FREE=1" : "TINYMALLOC_ZERO_ON_FREE=1";
  c->control_env = detect ? "TINYMALLOC_DETECT=1 TINYMALLOC_ZERO_ON_FREE=0" : "TINYMALLOC_ZERO_ON_FREE=0";
}

static void register_cases(void)
{
  static const size_t sizes[] = {100, 16384, 20000, 65536, 200000, 1000000};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    zero_case(sizes[i], 1);
    zero_case(sizes[i], 0);
  }
  zero_case(3000000, 0);
}

int main(int argc, char **argv) { return harness_main(argc, argv, register_cases); }
