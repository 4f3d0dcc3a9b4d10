/* A library the edge program loads with dlopen: it allocates in its
 * constructor and hands blocks across the library boundary in both
 * directions, and frees its own blocks in its destructor at dlclose. */
#include <stdlib.h>
#include <string.h>

#define EDGE_DL_API __attribute__((visibility("default")))
EDGE_DL_API void *edge_dl_make(size_t size);
EDGE_DL_API void edge_dl_release(void *p);
EDGE_DL_API int edge_dl_constructor_ran(void);

static char *constructor_block;

__attribute__((constructor)) static void edge_dl_constructor(void) { constructor_block = strdup("edge_dl loaded"); }
__attribute__((destructor)) static void edge_dl_destructor(void) { free(constructor_block); }

void *edge_dl_make(size_t size)
{
  void *p = malloc(size);
  if (p != NULL) memset(p, 0x3c, size);
  return p;
}

void edge_dl_release(void *p) { free(p); }

int edge_dl_constructor_ran(void)
{
  return constructor_block != NULL && strcmp(constructor_block, "edge_dl loaded") == 0;
}
