/* supervise.h - the process an operator starts: it runs the version that
 * is active in the state directory, and gives up a version that does not
 * come up healthy (SPEC section 2, issue 4).
 *
 * Owns: the supervisor process and its worker. `tandemd --config F --node
 * N --state-dir D` (the start command of SPEC section 2, unchanged) is the
 * supervisor; it never touches the network or the kernel's state. It
 *
 *  1 takes the state directory's lock (state.h) and reads boot.json
 *    (slots_boot: on the first start the started binary becomes the active
 *    version);
 *  2 if the active version is another one, confirmed, it execs that
 *    version's tandemd with the same arguments (same PID, so systemd and
 *    the operator's scripts see one process throughout): the same start
 *    command comes up in the active version. An unconfirmed version is
 *    never exec'd as supervisor: the supervisor that judges a version on
 *    trial must not be that version;
 *  3 runs the worker: STATE_DIR/versions/<active>/bin/tandemd with the
 *    same arguments plus `--worker FD`, FD being the inherited lock (one
 *    lock for the pair: no second daemon can start on D while either
 *    lives). The worker dies with its supervisor (PR_SET_PDEATHSIG
 *    SIGKILL, set before exec), so killing the supervisor kills the node;
 *  4 forwards SIGTERM, SIGINT and SIGHUP to the worker and, once it has
 *    ended, exits with its status (128 + signal when it was killed), the
 *    way a shell reports a child: a confirmed version's crash is
 *    systemd's to restart (Restart=on-failure), as before there was a
 *    supervisor;
 *  5 applies core/boot.h: a worker exiting BOOT_EXIT_RESTART (75) is
 *    started again in whatever version boot.json now names; an
 *    unconfirmed version's starts are counted durably before they happen,
 *    a failed start is retried after a bounded backoff, and after
 *    BOOT_TRIES_MAX starts, or after running its hold timer without the
 *    worker confirming it (SIGUSR1 tells the supervisor boot.json
 *    changed; it also re-reads it every second while on trial), the
 *    version is given up: the worker is stopped (SIGTERM, then SIGKILL
 *    after SUPERVISE_STOP_WAIT_MS), the previous version becomes active,
 *    the reason is recorded in boot.json and events.log, and the previous
 *    version is started.
 *
 * systemd: Type=notify needs NotifyAccess=all, since READY=1 comes from
 * the worker, not the main PID. */
#ifndef TND_SUPERVISE_H
#define TND_SUPERVISE_H

#define SUPERVISE_LOCK_WAIT_MS 3000 /* a killed supervisor's worker may still be exiting */
#define SUPERVISE_STOP_WAIT_MS 5000 /* SIGTERM to SIGKILL, when the supervisor stops a worker */
#define SUPERVISE_POLL_MS 1000      /* re-read boot.json while a version is on trial */
#define SUPERVISE_WORKER_OPT "--worker"
/* Set across the exec of step 2, so a binary that does not turn out to be
 * the version it was exec'd as cannot make the exec loop. */
#define SUPERVISE_EXEC_ENV "TANDEMD_EXEC_FROM"

struct supervise_args {
	const char *state_dir;
	const char *node; /* node= of the log lines, or NULL */
	int argc;         /* the command line as started, handed on as it is */
	char **argv;
};

/* Run the supervisor; returns the process's exit status. */
int supervise_main(const struct supervise_args *a);

/* Worker side: take over the lock inherited as `fd` (it must be an open,
 * locked DIR/lock: flock on that same open file succeeds, and it is the
 * same file as DIR/lock). 0, or TND_EINVAL with errno. Sets FD_CLOEXEC,
 * so hooks and helpers do not hold the lock after the daemon's end. */
int supervise_worker_lock(const char *state_dir, int fd);

/* Worker side: boot.json changed (confirmed, activated); the supervisor
 * re-reads it now rather than at its next poll. */
void supervise_notify(void);

#endif
