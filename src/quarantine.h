/* quarantine.h: the detection mode's paths (quarantine.c): checks when a
 * block is handed out, the checked free that fills a block and holds it in
 * the freeing thread's quarantine, and its release. Called by alloc.c when
 * TM_FEATURE_DETECT is on, and by heap.c at thread exit. */
#ifndef TM_QUARANTINE_H
#define TM_QUARANTINE_H

#include "error.h"
#include "ptr.h"
#include "types.h"

/* A block of each kind was just handed out for `requested` bytes: a write
 * after free since it was filled is a fault; the canary is written. */
void tm_detect_small_out(void *p, size_t requested, size_t usable, tm_faults_t *faults) TM_HIDDEN;
void tm_detect_medium_out(void *p, size_t requested, size_t usable, tm_faults_t *faults) TM_HIDDEN;
void tm_detect_large_out(void *p, size_t requested, size_t usable) TM_HIDDEN;
/* A checked free of block `index` (of `size` bytes) of a carved slab,
 * tm_detect_free's for small blocks. */
void tm_detect_free_small(tm_slab_t *slab, uint32_t index, uint32_t size, void *p, tm_heap_t *heap, tm_fault_t *fault,
                          tm_faults_t *faults) TM_HIDDEN;
/* A checked free of a classified block (`heap` may be NULL: no quarantine). */
void tm_detect_free(void *p, const tm_ptr_t *ptr, tm_heap_t *heap, tm_fault_t *fault, tm_faults_t *faults) TM_HIDDEN;
/* Releases every block of `heap`'s quarantine (thread exit, trim). */
void tm_detect_flush(tm_heap_t *heap, tm_faults_t *faults) TM_HIDDEN;
/* realloc of a live classified block of `usable` bytes to `size` in place
 * (or, large, by moving its pages): its canary is checked (a damaged one is
 * left for the moving path's free to report: NULL), the block resized, the
 * canary written after `size`. NULL when it must move. */
void *tm_detect_resize(void *p, const tm_ptr_t *ptr, size_t usable, size_t size) TM_HIDDEN;
/* Process exit: the fills of the blocks in `heap`'s quarantine are checked
 * (nothing is freed): a short run, a fuzz target's, reports a write after
 * free even when its quarantine never filled up. */
void tm_detect_check_at_exit(tm_heap_t *heap, tm_faults_t *faults) TM_HIDDEN;
/* The requested size of a live classified block, or SIZE_MAX when unknown. */
size_t tm_detect_requested(const void *p, const tm_ptr_t *ptr) TM_HIDDEN;

#endif
