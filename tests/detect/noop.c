/* detect_noop: `tinymalloc_option_set("detect", 1)` is accepted in every
 * build, and the mode is a no-op where a tool tracks every byte (ASan and
 * memcheck builds, TINYMALLOC_ASAN / TINYMALLOC_VALGRIND): there a freed
 * block is handed out again at once, as without the mode. In a plain build
 * (argument "plain") the same program asserts the opposite: the block waits
 * in the quarantine. Linked with libtinymalloc.a; no fork, no report. */
#include <stdio.h>
#include <string.h>
#include <tinymalloc.h>

int main(int argc, char **argv)
{
  int tracked = argc > 1 && strcmp(argv[1], "tracked") == 0;
  if (argc != 2 || (!tracked && strcmp(argv[1], "plain") != 0)) {
    fprintf(stderr, "usage: detect_noop tracked|plain\n");
    return 2;
  }
  if (tinymalloc_option_set("detect", 1) != 0 || tinymalloc_option_get("detect") != 1) {
    printf("FAIL: the detect option is not accepted\n");
    return 1;
  }
  int reused = 0;
  for (int round = 0; round < 100; round++) {
    void *p = tinymalloc(100);
    tinyfree(p);
    void *q = tinymalloc(100);
    reused += p == q;
    tinyfree(q);
  }
  printf("a freed block was handed out again at once in %d of 100 rounds\n", reused);
  if (tracked ? reused != 100 : reused != 0) {
    printf("FAIL: expected %s\n",
           tracked ? "all (the mode is a no-op in a tracked build)" : "none (freed blocks wait in the quarantine)");
    return 1;
  }
  printf("PASS: the mode is %s\n", tracked ? "a no-op" : "on");
  return 0;
}
