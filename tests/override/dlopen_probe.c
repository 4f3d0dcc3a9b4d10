/* libtinymalloc-override.so loaded late with dlopen (RTLD_LOCAL) into a
 * program that runs on glibc's malloc: the load must succeed (it fails when
 * a library needs more initial-exec TLS than glibc keeps spare, so the
 * library's PT_TLS must stay one pointer), and the tiny* API must work from
 * several threads. Argument: the library path. */
#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "check.h"

static void *(*tm_malloc)(size_t);
static void (*tm_free)(void *);
static size_t tls_bytes;
static int library_seen;

static int find_tls(struct dl_phdr_info *info, size_t size, void *data)
{
  (void)size;
  (void)data;
  if (info->dlpi_name == NULL || strstr(info->dlpi_name, "libtinymalloc-override") == NULL) return 0;
  library_seen = 1;
  for (int i = 0; i < info->dlpi_phnum; i++)
    if (info->dlpi_phdr[i].p_type == PT_TLS) tls_bytes += info->dlpi_phdr[i].p_memsz;
  return 1;
}

static void *thread_body(void *arg)
{
  (void)arg;
  for (int i = 0; i < 20000; i++) {
    char *p = tm_malloc((size_t)(i % 3000) + 1);
    CHECK(p != NULL);
    p[i % 3000] = 1;
    tm_free(p);
  }
  return NULL;
}

int main(int argc, char **argv)
{
  CHECK(argc == 2);
  void *handle = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (handle == NULL) fprintf(stderr, "dlopen: %s\n", dlerror());
  CHECK(handle != NULL);
  CHECK(dl_iterate_phdr(find_tls, NULL) == 1 && library_seen);
  CHECK(tls_bytes <= 16);
  tm_malloc = (void *(*)(size_t))dlsym(handle, "tinymalloc");
  tm_free = (void (*)(void *))dlsym(handle, "tinyfree");
  int (*tm_check)(void) = (int (*)(void))dlsym(handle, "tinymalloc_check");
  CHECK(tm_malloc && tm_free && tm_check);
  pthread_t threads[4];
  for (int i = 0; i < 4; i++)
    CHECK(pthread_create(&threads[i], NULL, thread_body, NULL) == 0);
  for (int i = 0; i < 4; i++)
    CHECK(pthread_join(threads[i], NULL) == 0);
  CHECK(tm_check() == 0);
  CHECK(dlclose(handle) == 0);
  printf("dlopen: all %lu checks passed (library TLS %zu bytes)\n", check_count, tls_bytes);
  return 0;
}
