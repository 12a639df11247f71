/* upgcmd.h - `tandemctl upgrade ...` (SPEC sections 4 and 5; issue 5's
 * "Progress" and "Report"): the client side of {"cmd":"upgrade",...}
 * (src/api/ctl.h), answered by the upgrade coordinator (src/core/upgrade.h).
 *
 *   upgrade plan --image FILE [--force] [--disruptive] [--no-failback]
 *       the pre-checks (PASS/FAIL, code, message) and the numbered steps;
 *       changes nothing; exit 0 when every check passes, 3 otherwise
 *   upgrade start --image FILE [--force] [--disruptive] [--no-failback] [--detach]
 *       starts the upgrade, then follows it as `status --watch` does until
 *       it is no longer running or aborting: exit 0 when it completed, 1
 *       when it failed, was aborted or rolled back (the error and its
 *       recovery said); --detach returns once it started
 *   upgrade status [--watch]
 *       state, id, versions, coordinator, elapsed time, each node's state
 *       and the steps with their durations, the error and its recovery.
 *       --watch redraws every UPGCMD_WATCH_MS on a terminal; to a file or
 *       a pipe it prints only the lines that changed, one per event
 *   upgrade abort | rollback [--node NAME] | finalize
 *       the coordinator's answer (a sentence)
 *   upgrade report [--probe-log FILE]
 *       the last upgrade's timeline (offset and duration of every step,
 *       time in node restarts and resync against coordinator overhead);
 *       with the traffic probe's JSON-lines log, the longest gap, resets,
 *       connections lost and failed new connections per step, and whether
 *       the log proves "zero drops" (it must cover the whole upgrade)
 *
 * FILE is sent as an absolute path (realpath): the daemon opens it. Every
 * command takes --json. Exit codes (SPEC section 4): 0 done, 1 failed, 2
 * usage, 3 refused (a pre-check failed, an upgrade is already running). */
#ifndef TND_CLI_UPGCMD_H
#define TND_CLI_UPGCMD_H

#include <stdbool.h>

#define UPGCMD_REPLY_TIMEOUT_S 60    /* plan and start wait for the CPU check (5 s) and more */
#define UPGCMD_CMD_TIMEOUT_S 30      /* abort, rollback, finalize (forwarded to the coordinator) */
#define UPGCMD_WATCH_MS 500          /* status poll and redraw period */
#define UPGCMD_POLL_TIMEOUT_MS 5000  /* one status request while watching */
#define UPGCMD_SILENCE_MS_MAX 30000  /* watch gives up after the daemon is silent this long */
#define UPGCMD_APPEAR_MS_MAX 10000   /* start: the new upgrade must show in status within */
#define UPGCMD_ANSWER_BYTES_MAX (4 << 20)
#define UPGCMD_PROBE_LINE_BYTES_MAX 65536

/* Run `upgrade ARGS` (argv[0] is the word after "upgrade", argc may be 0)
 * against the daemon at `socket`; returns the exit code. */
int upgcmd_run(const char *socket, bool json, int argc, char **argv);
/* The usage lines of these commands. */
const char *upgcmd_usage(void);

#endif
