/* The places where malloc replacements usually break, for a plain program run
 * with LD_PRELOAD=libtinymalloc-override.so: allocation before main (the
 * program's and a dependency's constructors), libc paths that allocate,
 * dlopen'ed libraries, blocks crossing thread and library boundaries, frees
 * from TLS destructors that run after tinymalloc's own thread cleanup, and
 * frees of blocks whose thread has exited. Ends with a full heap check. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

char **edge_init_lib_blocks(void);

static int (*heap_check)(void);
static size_t (*usable_size)(const void *);

static char *early_blocks[3];

__attribute__((constructor(101))) static void edge_program_constructor(void)
{
  early_blocks[0] = malloc(1);
  early_blocks[1] = realloc(malloc(10), 100000);
  early_blocks[2] = aligned_alloc(4096, 4096);
}

/* ---- threads ---------------------------------------------------------------- */

static pthread_key_t late_key;
static void *handed_over[8];

/* Runs at thread exit after tinymalloc's heap key destructor (created before
 * this key): it frees, allocates again and frees that too. */
static void late_destructor(void *value)
{
  free(value);
  void *again = malloc(300);
  if (again != NULL) memset(again, 1, 300);
  free(again);
}

static void *thread_body(void *arg)
{
  uintptr_t index = (uintptr_t)arg;
  CHECK(pthread_setspecific(late_key, malloc(64 + index)) == 0);
  /* Blocks this thread allocates and main frees after the thread has exited. */
  handed_over[index] = malloc(index % 2 ? 50000 : 48);
  CHECK(handed_over[index] != NULL);
  for (int i = 0; i < 10000; i++) {
    char *p = malloc((size_t)(i % 500) + 1);
    CHECK(p != NULL);
    p[0] = (char)i;
    free(p);
  }
  return NULL;
}

static void thread_exit_paths(void)
{
  CHECK(pthread_key_create(&late_key, late_destructor) == 0);
  for (int round = 0; round < 4; round++) {
    pthread_t threads[8];
    for (uintptr_t i = 0; i < 8; i++)
      CHECK(pthread_create(&threads[i], NULL, thread_body, (void *)i) == 0);
    for (int i = 0; i < 8; i++)
      CHECK(pthread_join(threads[i], NULL) == 0);
    for (int i = 0; i < 8; i++) {
      CHECK(usable_size(handed_over[i]) >= 48);
      free(handed_over[i]);
    }
  }
}

/* ---- dlopen ------------------------------------------------------------------- */

static void dlopen_paths(const char *library)
{
  for (int round = 0; round < 3; round++) {
    void *handle = dlopen(library, RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL) fprintf(stderr, "dlopen: %s\n", dlerror());
    CHECK(handle != NULL);
    int (*constructor_ran)(void) = (int (*)(void))dlsym(handle, "edge_dl_constructor_ran");
    void *(*make)(size_t) = (void *(*)(size_t))dlsym(handle, "edge_dl_make");
    void (*release)(void *) = (void (*)(void *))dlsym(handle, "edge_dl_release");
    CHECK(constructor_ran && make && release && constructor_ran());
    unsigned char *from_library = make(5000);
    CHECK(from_library != NULL && from_library[4999] == 0x3c);
    free(from_library);   /* allocated there, freed here */
    release(malloc(777)); /* allocated here, freed there */
    CHECK(dlclose(handle) == 0);
  }
}

int main(int argc, char **argv)
{
  CHECK(argc == 2); /* the path of the library to dlopen */
  heap_check = (int (*)(void))dlsym(RTLD_DEFAULT, "tinymalloc_check");
  usable_size = (size_t(*)(const void *))dlsym(RTLD_DEFAULT, "tinymalloc_usable_size");
  if (heap_check == NULL || usable_size == NULL) {
    fprintf(stderr, "edge: tinymalloc is not loaded (run with LD_PRELOAD)\n");
    return 1;
  }
  /* Blocks from before main are tinymalloc's and are freed normally. */
  CHECK(early_blocks[0] && early_blocks[1] && early_blocks[2]);
  CHECK(usable_size(early_blocks[1]) >= 100000 && ((uintptr_t)early_blocks[2] & 4095) == 0);
  for (int i = 0; i < 3; i++)
    free(early_blocks[i]);
  char **library_blocks = edge_init_lib_blocks();
  CHECK(library_blocks[0] && library_blocks[1] && library_blocks[2] && library_blocks[3]);
  CHECK(strcmp(library_blocks[1], "allocated in a library constructor") == 0);
  for (int i = 0; i < 4; i++) {
    CHECK(usable_size(library_blocks[i]) > 0);
    free(library_blocks[i]);
  }

  thread_exit_paths();
  dlopen_paths(argv[1]);
  CHECK(heap_check() == 0);
  printf("edge: all %lu checks passed\n", check_count);
  return 0;
}
