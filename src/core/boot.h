/* boot.h - which software version a node starts, and when it gives one up
 * (SPEC section 2: "the node runs the software version that is active in
 * D"; section 5: A/B versions, self-revert; issue 4).
 *
 * Owns: the boot record, STATE_DIR/boot.json, and every decision taken on
 * it: adopting the first version, activating a new one, counting the
 * starts of a version on trial, confirming it, and reverting to the
 * previous one. Pure: jansson only, no I/O, no clock (wall-clock seconds
 * are passed in, for the operator's history only). The files of each
 * version and the atomic write of boot.json are src/io/slots.h; the
 * process that acts on the decisions is src/io/supervise.h.
 *
 * The scheme is the one A/B updaters for devices use (U-Boot's bootcount
 * and "upgrade_available", RAUC and Mender's "commit"): a newly activated
 * version is on trial (confirmed = false); every start of it is counted
 * durably *before* it happens (tries), so a crash at any point, even one
 * that takes the machine down, still counts; the running version itself
 * marks the record confirmed once it has shown it is healthy; a version
 * that used up BOOT_TRIES_MAX starts, or that was not confirmed within its
 * hold timer, is given up and the previous version becomes active again,
 * with the reason recorded. Only a confirmed version may be replaced by an
 * activation, so the version a revert returns to is always one that was
 * confirmed healthy on this node.
 *
 * The JSON ("tandem-boot/1"):
 *
 *   {"format":"tandem-boot/1","active":"1.1.0","previous":"1.0.0",
 *    "confirmed":false,"tries":1,"hold_timer_s":900,
 *    "expect_peers":["gw1"],"activated_at":1700000000,"confirmed_at":0,
 *    "waiting_for":"peer gw1 alive","last_failure":"",
 *    "last_revert":{"from":"1.2.0","to":"1.1.0","at":1700000100,
 *                   "reason":"..."}}          (or null)
 *
 *   previous       "" when there is none (a node's first version)
 *   hold_timer_s   upgrade.hold_timer_s of the configuration running when
 *                  `active` was activated: how long one start of it may
 *                  run unconfirmed
 *   expect_peers   the peers alive when `active` was activated: the new
 *                  version must see them alive again to be confirmed (a
 *                  node that was alone is not held to a peer it never had)
 *   waiting_for    what the unconfirmed version still waits for (written
 *                  by it when that changes), so a revert can say why
 *   last_failure   how the last unconfirmed start ended ("exited with
 *                  status 1", "killed by signal SEGV")
 */
#ifndef TND_BOOT_H
#define TND_BOOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "types.h"

#define BOOT_FORMAT "tandem-boot/1"
#define BOOT_TRIES_MAX 3            /* starts of an unconfirmed version before it is given up */
#define BOOT_BACKOFF_MS_FIRST 500   /* wait before a repeated start, doubled each time */
#define BOOT_BACKOFF_MS_MAX 4000
#define BOOT_REASON_LEN 256         /* bytes incl. NUL */
#define BOOT_PEERS_MAX TND_NODES_MAX
#define BOOT_JSON_BYTES_MAX (16 * 1024)
/* The worker's exit status that asks its supervisor to start the active
 * version again (sysexits.h EX_TEMPFAIL: "try again later"). */
#define BOOT_EXIT_RESTART 75

struct boot_revert {
	char from[TND_VERSION_MAX];
	char to[TND_VERSION_MAX];
	char reason[BOOT_REASON_LEN];
	int64_t at_s;
};

struct boot_state {
	char active[TND_VERSION_MAX];
	char previous[TND_VERSION_MAX]; /* "" = none */
	bool confirmed;
	uint32_t tries;                 /* starts of `active` while unconfirmed */
	uint32_t hold_timer_s;          /* one unconfirmed start may run this long */
	int64_t activated_at_s, confirmed_at_s; /* wall clock, 0 = never */
	int n_peers;
	char peers[BOOT_PEERS_MAX][TND_NAME_MAX]; /* expect_peers */
	char waiting_for[BOOT_REASON_LEN];
	char last_failure[BOOT_REASON_LEN];
	bool reverted;                  /* last_revert is set */
	struct boot_revert last_revert;
};

/* A version string usable as a directory name: 1..TND_VERSION_MAX-1 bytes
 * of A-Z a-z 0-9 . + - _, not starting with '.' or '-'. (The image
 * manifest is stricter; a build from source may say "1.2.0-rc1".) */
bool boot_version_ok(const char *v);

/* Parse boot.json strictly (unknown keys are refused: a newer format's
 * field could matter for safety). TND_EINVAL with a sentence in why. */
int boot_parse(const char *json, size_t len, struct boot_state *b, char *why, size_t why_len);
/* The JSON of b (malloc'd, free()), newline-terminated. */
int boot_emit(const struct boot_state *b, char **json, size_t *len);

/* A node's first start: `version` is active and confirmed, nothing else. */
void boot_init(struct boot_state *b, const char *version, int64_t now_s);

/* Make `version` active at the next start, on trial: previous = active,
 * confirmed = false, tries = 0, with the hold timer and the peers the new
 * version must see again. Refused (TND_EREFUSED, why) when `version` is
 * already active, or when the active version is itself on trial and has
 * been started (a revert must have a confirmed version to return to). An
 * activation that was never started is replaced (previous stays), and
 * activating its previous version cancels it (confirmed again). */
int boot_activate(struct boot_state *b, const char *version, uint32_t hold_timer_s,
		  const char *const *peers, int n_peers, int64_t now_s, char *why, size_t why_len);

/* The running `version` declares itself healthy. 0 when b changed,
 * TND_ENOENT when it already was confirmed, TND_EREFUSED when `version`
 * is not the active one (an older process must never confirm a newer
 * version it is not). */
int boot_confirm(struct boot_state *b, const char *version, int64_t now_s);

/* Record what an unconfirmed version still waits for. true when changed. */
bool boot_set_waiting(struct boot_state *b, const char *what);

enum boot_next {
	BOOT_START,  /* start the active version (after delay_ms) */
	BOOT_REVERT, /* give the active version up (boot_revert with why), then start */
	BOOT_EXIT,   /* the supervisor ends, with the worker's status */
};

/* Before every start. A confirmed version just starts. An unconfirmed one
 * has its start counted (tries + 1: the caller writes b durably before it
 * starts anything) or, after BOOT_TRIES_MAX starts, BOOT_REVERT with the
 * reason in why. */
enum boot_next boot_before_start(struct boot_state *b, char *why, size_t why_len);

struct boot_exit {
	bool signaled; /* killed by signal `code`, else exited with status `code` */
	int code;
};
/* The worker ended. `stopping`: its supervisor was asked to stop. Asked to
 * restart (BOOT_EXIT_RESTART): start at once. A confirmed version's end
 * (or any end while stopping, or a clean exit) ends the supervisor too,
 * whose own supervisor (systemd) then decides. An unconfirmed version's
 * abnormal end is recorded in last_failure and answered with BOOT_START
 * after a bounded backoff; boot_before_start then decides whether it was
 * the last try. */
enum boot_next boot_after_exit(struct boot_state *b, const struct boot_exit *e, bool stopping,
			       uint32_t *delay_ms);

/* The supervisor's exit status for a worker's end: its status, or
 * 128 + signal as a shell reports it. */
int boot_exit_status(const struct boot_exit *e);

/* An unconfirmed start that has run `run_ms` without being confirmed is
 * over its hold timer: true, with the revert reason in why. */
bool boot_hold_expired(const struct boot_state *b, int64_t run_ms, char *why, size_t why_len);

/* Give the active version up: active = previous, previous = the failed
 * version (its files stay for inspection), confirmed (the previous one
 * was: see boot_activate), tries = 0, last_revert recorded. TND_ENOENT
 * (why) when there is no previous version to return to. */
int boot_revert(struct boot_state *b, const char *reason, int64_t now_s, char *why, size_t why_len);

/* The name a version has in `image list`: "active", "previous" or
 * "installed" (neither: ready to be activated). */
const char *boot_role(const struct boot_state *b, const char *version);

#endif
