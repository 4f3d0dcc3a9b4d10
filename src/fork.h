/* fork.h: fork safety (fork.c). */
#ifndef TM_FORK_H
#define TM_FORK_H

#include "base.h"

/* Registers the fork child handler. Called once at load time, early
 * (priority 101, before the program's own handlers register, so that ours
 * runs first in the child); never from inside malloc, since
 * pthread_atfork may allocate. */
void tm_fork_install(void) TM_HIDDEN;

#endif
