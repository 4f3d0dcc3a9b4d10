/* ptr.h: the one pointer classification (ptr.c). Every free, realloc and
 * usable_size classifies its pointer once, in O(1), from the segment map and
 * out-of-band metadata, and passes the result down. Nothing is read through
 * the pointer. A medium classification is provisional: the medium code
 * confirms it under the arena lock. */
#ifndef TM_PTR_H
#define TM_PTR_H

#include "error.h"
#include "types.h"

typedef enum { TM_PTR_INVALID = 0, TM_PTR_SMALL, TM_PTR_MEDIUM, TM_PTR_LARGE } tm_ptr_kind_t;

typedef struct tm_ptr_s {
  tm_ptr_kind_t kind;
  tm_slab_t *slab; /* small: the slab, the block's index and size */
  uint32_t index;
  uint32_t block_size;
  tm_large_t *large; /* large: the header */
  tm_fault_t fault;  /* invalid: why */
} tm_ptr_t;

void tm_classify(const void *p, tm_ptr_t *out) TM_HIDDEN;

#endif
