/* AFL++ persistent-mode driver for one harness (build with afl-clang-fast):
 * the test case arrives in shared memory and up to 10000 inputs run in one
 * process, which is sound because every input ends with tinymalloc reset to
 * its initial state. Run by hand, it reads one input from stdin. */
#include <unistd.h>

#include "fuzz_common.h"

__AFL_FUZZ_INIT();

int main(void)
{
  /* Initialise the allocator before the fork server starts, so that lazy
   * initialisation does not make the first input of every child differ. */
  tinyfree(tinymalloc(1));
  tinymalloc_trim();
#ifdef __AFL_HAVE_MANUAL_CONTROL
  __AFL_INIT();
#endif
  unsigned char *buf = __AFL_FUZZ_TESTCASE_BUF;
  while (__AFL_LOOP(10000)) {
    size_t len = (size_t)__AFL_FUZZ_TESTCASE_LEN;
    tmf_harness_run(buf, len);
  }
  return 0;
}
