/* A tiny assertion layer for the override tests: CHECK counts what held and
 * stops the program at the first claim that did not, naming it; launder()
 * hides a pointer from the compiler so deliberate misuse is not optimised
 * away or diagnosed at compile time. */
#ifndef TM_OVERRIDE_CHECK_H
#define TM_OVERRIDE_CHECK_H

#include <stdio.h>
#include <stdlib.h>

/* Atomic: threads of the stress programs check too. */
static _Atomic unsigned long check_count;

#define CHECK(cond)                                                                                                    \
  do {                                                                                                                 \
    if (!(cond)) {                                                                                                     \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);                                         \
      exit(1);                                                                                                         \
    }                                                                                                                  \
    check_count++;                                                                                                     \
  } while (0)

static inline void *launder(void *p)
{
  void *volatile hidden = p;
  return hidden;
}

#endif
