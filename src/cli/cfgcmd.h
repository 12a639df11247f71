/* cfgcmd.h - `tandemctl config ...` (SPEC section 4): the cluster
 * configuration and its sync report.
 *
 * Owns the client side of {"cmd":"config",...} (src/api/ctl.h):
 *
 *   status            {"op":"status"}: generation, coordinator, per node
 *                     committed/applied/pending generation, digest, error
 *   show [--generation N]  {"op":"show"[,"generation":N]}: the YAML as
 *                     written, then the ruleset under a comment line
 *   diff FILE         show, then a unified line diff (linediff.h) of the
 *                     cluster's YAML and ruleset against FILE's
 *   apply FILE [--force]   {"op":"apply","yaml","ruleset","source","force"}
 *   backup FILE [--force]  show, then a backup file (cfgbackup.h)
 *   restore FILE [--force] a backup's texts sent as apply
 *
 * FILE and its ruleset are read with confdoc_read(), the reader tandemd
 * uses, so a file that tandemd would reject is rejected here with the same
 * FILE:LINE:COL diagnostics and nothing is sent. An apply waits for the
 * cluster's decision (CFGCMD_APPLY_TIMEOUT_S) and prints nothing
 * meanwhile. --force is handed to the cluster: the coordinator proposes
 * even though it has not heard any peer since it started (cfgsync.h); for
 * backup it replaces an existing FILE. */
#ifndef TND_CFGCMD_H
#define TND_CFGCMD_H

#include <stdbool.h>

#define CFGCMD_APPLY_TIMEOUT_S 90

enum cfgcmd_op {
	CFGCMD_STATUS,
	CFGCMD_SHOW,
	CFGCMD_DIFF,
	CFGCMD_APPLY,
	CFGCMD_BACKUP,
	CFGCMD_RESTORE,
};

struct cfgcmd_args {
	enum cfgcmd_op op;
	const char *socket;
	const char *file;  /* diff, apply, backup, restore */
	long generation;   /* show: -1 = current */
	bool force;
	bool json;
};

/* Parse the words after "config" into a (socket and json left as they
 * are). 0, or -1 with the problem said on stderr (a usage error). */
int cfgcmd_parse(int argc, char **argv, struct cfgcmd_args *a);
/* Run it; returns the exit code. */
int cfgcmd_run(const struct cfgcmd_args *a);

#endif
