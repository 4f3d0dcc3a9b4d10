/* AFL++ persistent-mode driver for one harness (build with afl-clang-fast):
 * the test case arrives in shared memory and up to 10000 inputs run in one
 * process with the allocator kept warm (the deep end-of-input check every
 * few inputs; a failure saves the runs since the last one under
 * $TMF_ARTIFACT_PREFIX). Run by hand (no afl-fuzz), it reads one input from
 * stdin and checks it deeply, as the replay driver does. */
#include <stdlib.h>
#include <unistd.h>

#include "fuzz_common.h"

__AFL_FUZZ_INIT();

int main(void)
{
  if (getenv("__AFL_SHM_ID") != NULL) tmf_set_fuzzing_mode(getenv("TMF_ARTIFACT_PREFIX"));
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
    tmf_run(buf, len);
  }
  return 0;
}
