/* stats.h: the at-load and at-exit hooks of the statistics report
 * (stats_print.c), called by alloc.c's constructor and destructor. The
 * statistics themselves are public (tinymalloc_stats, stats.c). */
#ifndef TM_STATS_H
#define TM_STATS_H

#include "base.h"

void tm_stats_at_load(void) TM_HIDDEN;
void tm_stats_at_exit(void) TM_HIDDEN;

#endif
