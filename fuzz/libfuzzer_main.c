/* libFuzzer entry point shared by every harness (the harness is chosen at
 * link time): warms tinymalloc up once so that lazy initialisation does not
 * count as a difference between inputs, then runs one input per call. */
#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  (void)argc;
  (void)argv;
  tinyfree(tinymalloc(1));
  tinymalloc_trim();
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return tmf_harness_run(data, size); }
