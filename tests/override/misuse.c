/* Misuse through libc's own free, for a plain program that knows nothing of
 * tinymalloc: run with LD_PRELOAD=libtinymalloc-override.so, each mode must
 * be caught and reported by tinymalloc (proof that the program's and libc's
 * calls are interposed). The expected report is checked by the test runner. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "check.h"

static void *free_in_thread(void *p)
{
  free(p);
  return NULL;
}

int main(int argc, char **argv)
{
  if (argc != 2) {
    fprintf(stderr, "usage: misuse double-free|thread-double-free|stack|interior|foreign|realloc-freed\n");
    return 2;
  }
  const char *mode = argv[1];
  if (strcmp(mode, "double-free") == 0) {
    char *p = strdup("allocated by libc's strdup"); /* libc's internal malloc */
    char *alias = launder(p);
    free(p);
    free(alias);
  } else if (strcmp(mode, "thread-double-free") == 0) {
    char *p = malloc(48);
    char *alias = launder(p);
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, free_in_thread, p) == 0);
    CHECK(pthread_join(thread, NULL) == 0);
    free(alias);
  } else if (strcmp(mode, "stack") == 0) {
    char on_stack[32];
    free(launder(on_stack));
  } else if (strcmp(mode, "interior") == 0) {
    char *p = malloc(64);
    free((char *)launder(p) + 16);
  } else if (strcmp(mode, "foreign") == 0) {
    void *mapped = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(mapped != MAP_FAILED);
    free(launder(mapped));
  } else if (strcmp(mode, "realloc-freed") == 0) {
    char *p = malloc(200000);
    char *alias = launder(p);
    free(p);
    alias = realloc(alias, 10);
    (void)alias;
  } else {
    fprintf(stderr, "misuse: unknown mode %s\n", mode);
    return 2;
  }
  /* Reached only if the misuse went unnoticed. */
  printf("misuse: %s was not detected\n", mode);
  return 0;
}
