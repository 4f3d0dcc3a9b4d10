/* os.h: the only door to the kernel for memory (os.c). */
#ifndef TM_OS_H
#define TM_OS_H

#include "base.h"

/* Maps `size` bytes aligned to `alignment` (a power of two >= page size);
 * NULL with errno = ENOMEM. Counted as mapped. */
void *tm_os_map_aligned(size_t size, size_t alignment) TM_HIDDEN;
/* Metadata pages (the heap pool); counted as metadata, never handed out. */
void *tm_os_map_meta(size_t size) TM_HIDDEN;
void tm_os_unmap(void *p, size_t size) TM_HIDDEN;
void tm_os_unmap_meta(void *p, size_t size) TM_HIDDEN;
/* Makes pages inaccessible (guard pages, quarantined large blocks) or accessible again. */
bool tm_os_protect(void *p, size_t size, bool accessible) TM_HIDDEN;
/* The pages stay mapped and read back as zero; the kernel may free them. */
void tm_os_purge(void *p, size_t size) TM_HIDDEN;
/* Extends a mapping without moving it (false when the next pages are taken).
 * The gained pages are part of a large block: the caller tracks them. */
bool tm_os_grow_in_place(void *base, size_t old_size, size_t new_size) TM_HIDDEN;
/* Moves a mapping to a fresh place aligned to `alignment`, `new_size` long,
 * without copying (mremap); NULL when the kernel refuses (nothing changed). */
void *tm_os_move(void *base, size_t old_size, size_t new_size, size_t alignment) TM_HIDDEN;
uint64_t tm_os_now_ns(void) TM_HIDDEN;
size_t tm_os_resident(const void *p, size_t size) TM_HIDDEN;

extern _Atomic size_t tm_os_mapped, tm_os_mapped_peak, tm_os_meta_mapped, tm_os_purged, tm_os_unmapped TM_HIDDEN;

#endif
