/* error.h: faults and their reports (error.c). Code that finds misuse while
 * holding a lock fills a tm_fault_t (a verdict) and returns; whoever holds no
 * lock any more reports it. tm_report is the one way a misuse reaches the
 * program: one line on stderr, then the program's handler or abort(). */
#ifndef TM_ERROR_H
#define TM_ERROR_H

#include "base.h"

typedef struct tm_fault_s {
  tinymalloc_error_kind_t kind; /* 0: no fault */
  const void *p;                /* the pointer the program passed */
  const char *detail;           /* what was wrong, or NULL */
  size_t block_size;            /* the block concerned (0: none); requested bytes for an overflow */
  const void *block_start;      /* interior pointer: the block it points into */
  size_t offset;                /* overflow, write after free: the first byte found changed */
} tm_fault_t;

/* Faults found on the way (two racing frees found when merging); a few are
 * kept, reported when no lock is held. */
#define TM_FAULTS_MAX 8
typedef struct tm_faults_s {
  unsigned count;
  tm_fault_t fault[TM_FAULTS_MAX];
} tm_faults_t;

TM_INLINE void tm_fault_set(tm_fault_t *f, tinymalloc_error_kind_t kind, const void *p, const char *detail,
                            size_t block_size, const void *block_start)
{
  f->kind = kind;
  f->p = p;
  f->detail = detail;
  f->block_size = block_size;
  f->block_start = block_start;
  f->offset = 0;
}

TM_INLINE void tm_faults_add(tm_faults_t *faults, tinymalloc_error_kind_t kind, const void *p, const char *detail,
                             size_t block_size)
{
  if (faults->count < TM_FAULTS_MAX) tm_fault_set(&faults->fault[faults->count], kind, p, detail, block_size, NULL);
  faults->count++;
}

/* No tinymalloc lock may be held. `op` is "free", "realloc" or "usable_size". */
void tm_report(const char *op, const tm_fault_t *fault) TM_HIDDEN;
void tm_report_all(const char *op, tm_faults_t *faults) TM_HIDDEN;
/* A warning line (configuration problems), never a misuse. */
void tm_warn(const char *a, const char *b) TM_HIDDEN;
/* Formats a number into buf (returns characters written, no terminator). */
size_t tm_fmt_hex(char *buf, uintptr_t v) TM_HIDDEN;
size_t tm_fmt_dec(char *buf, uint64_t v) TM_HIDDEN;

#endif
