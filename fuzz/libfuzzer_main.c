/* libFuzzer entry point shared by every harness (the harness is chosen at
 * link time). Fuzzing a corpus keeps the allocator warm between inputs (the
 * deep end-of-input check every few inputs); run on files (reproducing a
 * crash, minimizing one) every input gets the deep check, as in the replay
 * driver, so that a finding fails alone. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  bool on_files = false;
  const char *artifacts = NULL;
  for (int i = 1; i < *argc; i++) {
    const char *arg = (*argv)[i];
    if (strncmp(arg, "-artifact_prefix=", 17) == 0) artifacts = arg + 17;
    if (arg[0] == '-') continue;
    struct stat st;
    if (stat(arg, &st) == 0 && !S_ISDIR(st.st_mode)) on_files = true;
  }
  /* TMF_DEEP_EVERY=1 forces the deep check after every input; N > 1 the warm
   * mode even on files (to time an input: `fuzz_ops -runs=1000 FILE`). */
  const char *env = getenv("TMF_DEEP_EVERY");
  int every = env ? atoi(env) : 0;
  if (every > 1 || (!on_files && every != 1)) tmf_set_fuzzing_mode(artifacts);
  tinyfree(tinymalloc(1));
  tinymalloc_trim();
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return tmf_run(data, size); }
