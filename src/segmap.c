/* segmap.c owns the segment map's storage and its writes (see segmap.h).
 * Writers are whoever maps or unmaps: the segment's arena, a large block's
 * owner. An entry is written before the memory is handed out and before it
 * goes back to the kernel, so a reader never meets memory the map calls ours
 * that another mapping took over. */
#include "segmap.h"

_Atomic uint8_t tm_segmap[TM_SEGMAP_ENTRIES];

void tm_segmap_set(uintptr_t base, size_t size, uint8_t head_kind, uint8_t body_kind)
{
  size_t first = base >> TM_SEGMENT_SHIFT;
  size_t last = (base + size - 1) >> TM_SEGMENT_SHIFT;
  for (size_t i = first; i <= last; i++)
    atomic_store_explicit(&tm_segmap[i], i == first ? head_kind : body_kind, memory_order_seq_cst);
}
