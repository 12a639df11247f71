/* hooks.h - run the operator's transition scripts (SPEC section 3,
 * groups[].hooks). A hook runs asynchronously in its own process with
 * TANDEM_GROUP, TANDEM_STATE, TANDEM_NODE and TANDEM_CLUSTER in its
 * environment; the daemon never waits for it (a slow hook must not delay a
 * takeover) and reaps it from its SIGCHLD handling. */
#ifndef TND_HOOKS_H
#define TND_HOOKS_H

#include <sys/types.h>

/* Start `path` with the environment above. Returns the child pid or <0. */
pid_t hook_run(const char *path, int group_id, const char *state,
	       const char *node, const char *cluster);

#endif
