/* segmap.h: the process-wide segment map (segmap.c), the only way to learn
 * whether an address belongs to tinymalloc. One byte per 4 MiB of the 47-bit
 * address space, in static zero-filled storage: valid before any
 * initialisation (a free from the first constructor reads NONE), touched
 * lazily by the kernel, never dereferencing the address it is asked about. */
#ifndef TM_SEGMAP_H
#define TM_SEGMAP_H

#include "base.h"

enum {
  TM_SEG_NONE = 0,
  TM_SEG_ARENA = 1,       /* an arena segment */
  TM_SEG_LARGE_HEAD = 2,  /* first segment of a large mapping (header page) */
  TM_SEG_LARGE_BODY = 3,  /* further segments of a large mapping */
  TM_SEG_FREED_LARGE = 4, /* was a large mapping; unmapped or cached for reuse */
  TM_SEG_FREED = 5        /* was an arena segment, now unmapped */
};

#define TM_SEGMAP_ENTRIES ((size_t)1 << (TM_ADDRESS_BITS - TM_SEGMENT_SHIFT))
extern _Atomic uint8_t tm_segmap[TM_SEGMAP_ENTRIES] TM_HIDDEN;

TM_INLINE uint8_t tm_segmap_kind(uintptr_t addr)
{
  if (TM_UNLIKELY(addr >> TM_ADDRESS_BITS)) return TM_SEG_NONE;
  return atomic_load_explicit(&tm_segmap[addr >> TM_SEGMENT_SHIFT], memory_order_acquire);
}

/* Marks [base, base + size): the first segment head_kind, the rest body_kind. */
void tm_segmap_set(uintptr_t base, size_t size, uint8_t head_kind, uint8_t body_kind) TM_HIDDEN;

#endif
