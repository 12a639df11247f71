/* hooks.c - run the operator's transition scripts (SPEC section 3,
 * groups[].hooks).
 *
 * Owns nothing after it returns: the hook runs in its own process, the
 * caller reaps it on SIGCHLD. The hook gets a clean start, because the
 * daemon's state must not leak into it: argv {path, state, group}, an
 * environment of exactly TANDEM_GROUP, TANDEM_STATE, TANDEM_NODE,
 * TANDEM_CLUSTER and a fixed PATH, stdin from /dev/null, no inherited file
 * descriptors beyond stdout and stderr (which go to the daemon's log),
 * every signal at its default disposition and unblocked (the daemon blocks
 * signals for its signalfd, and a hook inheriting that mask could not be
 * stopped with SIGTERM), and a process group of its own so the daemon can
 * signal a stuck hook and its children together with kill(-pid, ...). */
#include "hooks.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>

#include "../core/types.h"

#define HOOK_PATH_ENV "PATH=/usr/sbin:/usr/bin:/sbin:/bin"
#define HOOK_STATE_MAX 32 /* bytes incl. NUL: "primary", "secondary", ... */

/* Format "NAME=value" into buf; false if it does not fit. */
static bool hook_env(char *buf, size_t len, const char *name, const char *value)
{
	int n = snprintf(buf, len, "%s=%s", name, value);
	return n >= 0 && (size_t)n < len;
}

pid_t hook_run(const char *path, int group_id, const char *state,
	       const char *node, const char *cluster)
{
	/* Absolute paths only: the daemon's working directory is not the
	 * operator's business, and PATH must not pick the program. */
	if (!path || path[0] != '/' || strnlen(path, TND_PATH_MAX) >= TND_PATH_MAX ||
	    !state || !state[0] || !node || !cluster || group_id < 0) {
		errno = EINVAL;
		return TND_EINVAL;
	}

	char group[16], e_group[32], e_state[16 + HOOK_STATE_MAX];
	char e_node[16 + TND_NAME_MAX], e_cluster[16 + TND_NAME_MAX];
	snprintf(group, sizeof group, "%d", group_id);
	if (!hook_env(e_group, sizeof e_group, "TANDEM_GROUP", group) ||
	    !hook_env(e_state, sizeof e_state, "TANDEM_STATE", state) ||
	    !hook_env(e_node, sizeof e_node, "TANDEM_NODE", node) ||
	    !hook_env(e_cluster, sizeof e_cluster, "TANDEM_CLUSTER", cluster)) {
		errno = ENAMETOOLONG;
		return TND_EINVAL;
	}
	char *const argv[] = {(char *)path, (char *)state, group, NULL};
	char *const envp[] = {e_group, e_state, e_node, e_cluster, (char *)HOOK_PATH_ENV, NULL};

	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, all;
	int rc;
	sigemptyset(&none);
	sigfillset(&all);
	if ((rc = posix_spawn_file_actions_init(&fa)) != 0) {
		errno = rc;
		return TND_ESYS;
	}
	if ((rc = posix_spawnattr_init(&at)) != 0) {
		posix_spawn_file_actions_destroy(&fa);
		errno = rc;
		return TND_ESYS;
	}
	if (!(rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0)) &&
	    !(rc = posix_spawn_file_actions_addclosefrom_np(&fa, 3)) &&
	    !(rc = posix_spawnattr_setsigmask(&at, &none)) &&
	    !(rc = posix_spawnattr_setsigdefault(&at, &all)) &&
	    !(rc = posix_spawnattr_setpgroup(&at, 0)))
		rc = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
						       POSIX_SPAWN_SETPGROUP);

	/* glibc's posix_spawn waits only until exec() (CLONE_VFORK), never
	 * for the hook itself, and reports a failed exec as its result. */
	pid_t pid = -1;
	if (rc == 0)
		rc = posix_spawn(&pid, path, &fa, &at, argv, envp);
	posix_spawnattr_destroy(&at);
	posix_spawn_file_actions_destroy(&fa);
	if (rc != 0) {
		errno = rc;
		return rc == ENOENT ? TND_ENOENT : TND_ESYS;
	}
	return pid;
}
