/* ptr.c owns the classification of a pointer handed back by the program (see
 * ptr.h): segment map first, then the slab slot's geometry or the large
 * header, and the fault that explains a pointer that is none of ours. */
#include "ptr.h"
#include "large.h"
#include "segmap.h"
#include "segment.h"
#include "slab.h"

static void tm_classify_freed(uint8_t kind, const void *p, tm_fault_t *fault)
{
  if (kind == TM_SEG_FREED_LARGE && tm_large_freed_start(p))
    tm_fault_set(fault, TINYMALLOC_ERROR_DOUBLE_FREE, p, "large block already freed", 0, NULL);
  else if (kind == TM_SEG_FREED_LARGE || kind == TM_SEG_FREED)
    tm_fault_set(fault, TINYMALLOC_ERROR_INVALID_FREE, p, "points into memory tinymalloc already returned to the OS", 0,
                 NULL);
  else
    tm_fault_set(fault, TINYMALLOC_ERROR_INVALID_FREE, p, "not allocated by tinymalloc", 0, NULL);
}

void tm_classify(const void *p, tm_ptr_t *out)
{
  uintptr_t a = (uintptr_t)p;
  uint8_t kind = tm_segmap_kind(a);
  out->kind = TM_PTR_INVALID;
  if (kind == TM_SEG_ARENA) {
    tm_slab_t *slab = tm_slab_of(a);
    uint32_t size = atomic_load_explicit(&slab->block_size, memory_order_acquire);
    if (size == 0) {
      out->kind = TM_PTR_MEDIUM;
      return;
    }
    size_t in_slab = a & (TM_SLAB_SIZE - 1);
    uint32_t index = tm_slab_index(slab, in_slab);
    if (index >= slab->capacity) {
      tm_fault_set(&out->fault, TINYMALLOC_ERROR_INVALID_FREE, p, "past the last block of a slab", 0, NULL);
    } else if ((size_t)index * size != in_slab) {
      tm_fault_set(&out->fault, TINYMALLOC_ERROR_INTERIOR, p, NULL, size, tm_slab_block(slab, index, size));
    } else {
      out->kind = TM_PTR_SMALL;
      out->slab = slab;
      out->index = index;
      out->block_size = size;
    }
  } else if (kind == TM_SEG_LARGE_HEAD || kind == TM_SEG_LARGE_BODY) {
    out->large = tm_large_find(p, &out->fault);
    if (out->large) out->kind = TM_PTR_LARGE;
  } else {
    tm_classify_freed(kind, p, &out->fault);
  }
}
