/* segmap.c owns the process-wide segment map: one byte per 4 MiB of the
 * 47-bit address space (32 MiB reserved with MAP_NORESERVE, touched lazily)
 * saying whether a segment is ours and what it is. It is the only way to learn
 * whether a pointer belongs to tinymalloc; it never dereferences the pointer. */
#include "internal.h"

_Atomic(uint8_t) *tm_segmap;

void tm_segmap_init(void)
{
  size_t entries = (size_t)1 << (TM_ADDRESS_BITS - TM_SEGMENT_SHIFT);
  tm_segmap = tm_os_reserve(entries);
  if (tm_segmap == NULL) {
    tm_warn("cannot reserve the segment map", "");
    __builtin_trap();
  }
}

/* Marks [base, base + size): the first segment as head_kind, the rest body_kind. */
void tm_segmap_set(uintptr_t base, size_t size, uint8_t head_kind, uint8_t body_kind)
{
  size_t first = base >> TM_SEGMENT_SHIFT;
  size_t last = (base + size - 1) >> TM_SEGMENT_SHIFT;
  for (size_t i = first; i <= last; i++)
    atomic_store_explicit(&tm_segmap[i], i == first ? head_kind : body_kind, memory_order_release);
}
