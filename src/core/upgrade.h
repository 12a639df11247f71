/* upgrade.h - the in-service upgrade coordinator (SPEC section 5, issue 5).
 *
 * Owns: the upgrade journal (what upgrade runs, its plan of steps, what each
 * step did, the error and its recovery), its replication to every node, the
 * pre-checks, the planner, and the execution of the plan by the coordinator
 * (the group 0 primary). Pure: no I/O, no clock, no globals. The driver
 * (src/main.c; tests/sim/upgsim.c) feeds events with the monotonic `now`
 * and performs the actions: send a message, store the journal durably, do a
 * node-local action (back up the configuration, fetch the image, install
 * and restart, revert), move a group, answer a command.
 *
 * FACTS. Every node sends UPG_MSG_STATE to every peer every
 * UPG_STATE_MS and at every change: its version, previous version and
 * boot confirmation, incarnation, protocol range, the journal it holds
 * (id, seq), its view of every group it is a member of, whether its links
 * are all up, config and session sync, free space and CPU load. The driver
 * gives the core this node's own facts with upg_set_local(). Every node
 * therefore knows every node's facts, so `upgrade plan` is computed on the
 * node it is asked on; `start`, `abort`, `rollback` and `finalize` go to
 * the coordinator (UPG_MSG_REQ, answered by UPG_MSG_RESP).
 *
 * JOURNAL. One small document (struct upg_journal), encoded as TLVs
 * (upg_journal_encode), at most UPG_JOURNAL_BYTES_MAX bytes. The same bytes
 * are the file STATE_DIR/upgrade.journal and the payload of UPG_MSG_JOURNAL
 * (sent in fragments of UPG_FRAG_BYTES). Journals are ordered by (id, seq):
 * a node keeps the highest it has seen, stores it durably (UPG_ACT_STORE)
 * and acks it (UPG_MSG_JACK). Every change the coordinator makes gets
 * seq + 1 and is stored locally first (one UPG_ACT_STORE per action list,
 * of the final state, ahead of every action after the first record); a
 * coordinator's first record starts its term (seq jumps to
 * (term + 1) << 24 | node << 16, above every term heard of), so records a
 * dead coordinator stored unseen never share an (id, seq) with the new
 * coordinator's. Such an unacknowledged tail may be superseded: a node
 * back with a higher seq of the coordinator's journal gets a record above
 * it (and takes it); settling, a tail held by its writer alone that
 * shares its term with another writer's acked record ranks below that
 * one. What another node stored is otherwise never taken back, and no
 * redone step changes the outcome (tests/sim/upgsim.c I1). The rule
 * "every step is recorded before it is taken": a step's UPG_ST_RUNNING
 * record is acked by every live peer (alive in the view) before the
 * step's first action is emitted. A node that was down gets the journal
 * when it is back (its STATE shows a lower seq; the coordinator sends it
 * the journal).
 *
 * COORDINATOR. The group 0 primary (upg_set_view). On becoming coordinator
 * with an active journal (RUNNING, ABORTING) it first settles: it waits
 * until it has heard STATE from every live peer since it became
 * coordinator, adopts the highest journal any of them holds (UPG_MSG_GET),
 * stores it with coordinator = self and seq + 1, and then continues the
 * step that is RUNNING. Every step is idempotent on the nodes (installing
 * the version that already runs is "done"; a move of a group to the node
 * that holds it is "done"), so a step continued by a new coordinator is
 * never done twice in effect. The coordinator hands itself over in a MOVE
 * step of group 0; the next coordinator continues from the journal.
 *
 * PLAN. upg_plan_build() turns the facts into steps:
 *   FREEZE (configuration changes refused on every node while the journal
 *   is active), BACKUP (every node saves its configuration), PREEMPT_OFF,
 *   MOVE (each group to its holder: the coordinator when it is a member,
 *   else the group's current primary), DISTRIBUTE (every node without the
 *   image fetches it from the source node, verified on arrival), UPGRADE
 *   batches of the non-holders (greedy: nodes that share no group other
 *   than 0 in one batch, in parallel; no cap: a batch that takes group
 *   0's majority away pauses the coordination until its nodes are back
 *   and group 0 has a primary again, which settles and continues the
 *   step with its own timers), MOVE (each group to an upgraded member,
 *   group 0 last: the coordinator hands over), UPGRADE batches of the
 *   holders, PREEMPT_ON, FAILBACK (each group MOVEd to its preferred node;
 *   skipped with --no-failback), UNFREEZE.
 * A rollback (on any failure, `abort`, or `upgrade rollback` before
 * finalize) is the same planner aimed at the previous version over the
 * nodes that run (or were installed with) the new one: standbys first,
 * groups moved off the remaining ones, then those.
 * --disruptive (or --force across an incompatible gap): FREEZE, BACKUP,
 * DISTRIBUTE, UPGRADE of every node at once, UNFREEZE.
 *
 * A DISTRIBUTE fetch that fails is asked again (3 attempts in all, a
 * second apart) before the step fails with the node's code (E_FETCH).
 * An UPGRADE (or REVERT) of node X: UPG_MSG_DO install (or revert) to X,
 * carrying the incarnation X ran when its begin was recorded (asked of a
 * previous life, the DO is answered done if that life did it, and a node
 * that gave the version up, revert_at_s since the start, is never asked
 * again); the groups X is primary of first go to a reachable member whose
 * sessions are in sync (again before every DO); a coordinator in its own
 * batch goes last and hands group 0 to a finished member. X installs,
 * activates, answers UPG_MSG_DONE and restarts; then X must
 * come back with the target version (a new incarnation) within
 * hold_timer_s (E_REJOIN_TIMEOUT), report its sessions in sync within
 * sync_timeout_s (E_RESYNC_TIMEOUT), and be healthy: links all up, every
 * group it is a member of in secondary or primary, its version confirmed
 * (E_HEALTH, UPG_HEALTH_MS). A node that gave the new version up by itself
 * (boot revert) fails the step with E_NODE_REVERTED.
 *
 * MESSAGES are WIRE_MSG types 48..55; sequence numbers carry
 * UPG_SEQ_SPACE (bit 61), disjoint from node.c's, ctsync's (63),
 * cfgsync's (62) and xfer's (60), so the seal nonce is never reused.
 *
 * ERROR CODES (stable, documented in the README): the E_* strings below,
 * the pre-check codes (upg_precheck), and for refused commands
 * E_NO_COORDINATOR (no answer from the group 0 primary in
 * UPG_REQ_TIMEOUT_MS), E_BUSY (this node already has a command in flight),
 * E_PLAN (the plan does not fit in UPG_STEPS_MAX), E_INVALID (a malformed
 * command); for failed steps E_MOVE, E_NODE_TIMEOUT, E_NODE_FAILED (a DONE
 * without a code), E_REJOIN_TIMEOUT, E_RESYNC_TIMEOUT, E_HEALTH,
 * E_NODE_REVERTED, and E_ABORTED for `abort`. */
#ifndef TND_UPGRADE_H
#define TND_UPGRADE_H

#include "types.h"
#include "wire.h"
#include "../conf/conf.h"

#define UPG_SEQ_SPACE (1ULL << 61)
#define UPG_STEPS_MAX 64
#define UPG_JOURNAL_BYTES_MAX 8192
#define UPG_FRAG_BYTES 1100         /* journal bytes per UPG_MSG_JOURNAL */
#define UPG_DIGEST_LEN 32
#define UPG_MSG_LEN 200             /* error / refusal sentences incl. NUL */
#define UPG_CODE_LEN 32             /* "E_REJOIN_TIMEOUT" incl. NUL */
#define UPG_STATE_MS 1000           /* UPG_MSG_STATE period */
#define UPG_RESEND_MS 500           /* journal, DO, REQ resend period */
#define UPG_FACTS_STALE_MS 5000     /* facts older than this: node unknown */
#define UPG_MOVE_TIMEOUT_MS 30000   /* a MOVE step gives up (E_MOVE) */
#define UPG_DO_TIMEOUT_MS 120000    /* a DO without DONE (E_NODE_TIMEOUT) */
#define UPG_HEALTH_MS 60000         /* rejoined -> healthy (E_HEALTH) */
#define UPG_REQ_TIMEOUT_MS 10000    /* a forwarded request unanswered */
#define UPG_CHECKS_MAX 48

enum upg_msg {
	UPG_MSG_STATE = 48,   /* facts of the sender, periodic */
	UPG_MSG_JOURNAL = 49, /* a fragment of a journal (id, seq, frag/total) */
	UPG_MSG_JACK = 50,    /* journal (id, seq) stored */
	UPG_MSG_GET = 51,     /* please send your journal */
	UPG_MSG_DO = 52,      /* coordinator -> node: do action for step */
	UPG_MSG_DONE = 53,    /* node -> coordinator: action result */
	UPG_MSG_REQ = 54,     /* node -> coordinator: start/abort/rollback/finalize */
	UPG_MSG_RESP = 55,    /* coordinator -> node: answer to a REQ */
};

enum upg_state {
	UPG_IDLE = 0,     /* no upgrade ever, or the last one finalized */
	UPG_RUNNING,      /* forward plan in progress */
	UPG_ABORTING,     /* rollback plan in progress (failure, abort, rollback) */
	UPG_COMPLETED,    /* every node on the new version; not yet finalized */
	UPG_ABORTED,      /* stopped by `abort`, rolled back */
	UPG_ROLLED_BACK,  /* `rollback` after completion done */
	UPG_FAILED,       /* a step failed; rolled back (error says what) */
};
const char *upg_state_name(enum upg_state s);

enum upg_step_kind {
	UPG_K_FREEZE = 1,
	UPG_K_BACKUP,
	UPG_K_PREEMPT_OFF,
	UPG_K_MOVE,       /* group -> node */
	UPG_K_DISTRIBUTE, /* nodes (mask) fetch the image from `node` */
	UPG_K_UPGRADE,    /* nodes (mask) to the target version, in parallel */
	UPG_K_REVERT,     /* nodes (mask) back to the previous version */
	UPG_K_PREEMPT_ON,
	UPG_K_FAILBACK,   /* group -> its preferred node, manual flag cleared */
	UPG_K_RELEASE,    /* manual flag of group cleared (no failback) */
	UPG_K_UNFREEZE,
};
const char *upg_kind_name(enum upg_step_kind k);

enum upg_step_status { UPG_ST_PENDING = 0, UPG_ST_RUNNING, UPG_ST_DONE, UPG_ST_FAILED, UPG_ST_SKIPPED };
const char *upg_step_status_name(enum upg_step_status s);

struct upg_step {
	uint8_t kind;       /* enum upg_step_kind */
	uint8_t status;     /* enum upg_step_status */
	uint8_t group;      /* MOVE, FAILBACK, RELEASE: group id */
	int8_t node;        /* MOVE: target; DISTRIBUTE: source; else -1 */
	uint32_t nodes;     /* DISTRIBUTE, UPGRADE, REVERT: node index mask */
	bool rollback;      /* part of the rollback plan */
	uint32_t t_start_ms, t_end_ms; /* since the journal's start, 0 = not yet */
	int64_t wall_start_ms, wall_end_ms; /* wall clock (report), 0 = not yet */
};

enum upg_node_state {
	UPG_N_PENDING = 0, /* not touched yet */
	UPG_N_FETCHING, UPG_N_INSTALLING, UPG_N_RESTARTING, UPG_N_RESYNCING,
	UPG_N_UPGRADED,    /* on the target version and healthy */
	UPG_N_REVERTING,
	UPG_N_REVERTED,    /* back on the previous version */
	UPG_N_FAILED,
};
const char *upg_node_state_name(enum upg_node_state s);

struct upg_error {
	char code[UPG_CODE_LEN];      /* "" = none */
	char message[UPG_MSG_LEN];
	char recovery[UPG_MSG_LEN];   /* what was / will be done about it */
	int16_t step;                 /* index of the failed step, -1 none */
};

struct upg_journal {
	uint64_t id;                  /* 0 = there is no journal */
	uint64_t seq;                 /* every change + 1 */
	uint8_t state;                /* enum upg_state */
	int8_t coordinator;           /* node index of the last writer */
	bool force, disruptive, no_failback;
	bool finalized;
	char from[TND_VERSION_MAX], to[TND_VERSION_MAX];
	uint8_t from_proto, to_proto; /* protocol level before / after */
	uint8_t digest[UPG_DIGEST_LEN];
	uint64_t image_bytes;
	int8_t source;                /* node that holds the image */
	int64_t wall_start_ms;        /* wall clock at start (report) */
	uint32_t elapsed_ms;          /* at the last record */
	int16_t cursor;               /* step being run or next to run */
	int n_steps;
	struct upg_step steps[UPG_STEPS_MAX];
	int n_nodes;
	uint8_t node_state[TND_NODES_MAX];  /* enum upg_node_state */
	/* The incarnation each node ran when it was asked to install (or
	 * revert), so that any coordinator, also one that took over or
	 * restarted, knows whether the node has restarted since; 0: no
	 * restart expected (it already ran the target version). */
	uint64_t node_inc[TND_NODES_MAX];
	struct upg_error error;
};

/* The journal as TLVs (the file and the wire payload). encode:
 * TND_ENOSPC when it does not fit. decode: TND_EINVAL on anything
 * malformed, out of range or inconsistent (n_steps, cursor, node
 * indexes); never reads past len; unknown TLVs are skipped. */
int upg_journal_encode(const struct upg_journal *j, uint8_t *buf, size_t cap, size_t *len);
int upg_journal_decode(const uint8_t *buf, size_t len, struct upg_journal *j);

/* ---- facts ---- */

enum upg_gstate { UPG_G_OTHER = 0, UPG_G_SECONDARY, UPG_G_PRIMARY };

struct upg_facts {
	bool known;                 /* heard (or self) */
	mono_t heard;               /* when (for staleness) */
	uint64_t incarnation;
	char version[TND_VERSION_MAX];
	char previous[TND_VERSION_MAX]; /* "" none */
	bool confirmed;             /* boot record confirmed */
	char revert_reason[UPG_MSG_LEN]; /* last self-revert, "" none */
	char revert_from[TND_VERSION_MAX];
	/* wall clock (s) of that revert (boot.json last_revert.at), 0
	 * unknown: a node that gave the target up during this upgrade is
	 * never asked to install it again (its verdict stands) */
	int64_t revert_at_s;
	uint8_t proto_min, proto_max;
	uint64_t journal_id, journal_seq;
	bool links_all_up;          /* every link to every peer alive */
	bool maint;
	bool config_in_sync;
	uint64_t config_gen;
	bool sessions_in_sync;      /* true when session sync is off */
	uint64_t free_bytes;        /* state directory */
	uint8_t cpu_percent;        /* over the last 5 s; 255 unknown */
	bool has_image;             /* holds the image of its journal */
	int n_groups;
	struct { uint8_t id; uint8_t state; /* enum upg_gstate */ } groups[TND_GROUPS_MAX];
};

/* The election view the driver gives every turn (from node_status). */
struct upg_view {
	int coordinator;                    /* group 0 primary, or TND_NO_NODE */
	bool alive[TND_NODES_MAX];          /* peer alive (self: true) */
	bool links_up[TND_NODES_MAX];       /* every link to it alive */
	int primary[TND_GROUPS_MAX];        /* by conf group index: node or TND_NO_NODE */
	int64_t wall_ms;                    /* wall clock now (report only) */
};

/* ---- pre-checks and plan ---- */

/* The image as the node that has the file checked it (the driver: image
 * verify against trusted keys, manifest, the new version's --check-config
 * of the running configuration). */
struct upg_image {
	bool present, intact, signed_ok, trusted;
	char check_code[UPG_CODE_LEN];  /* "" when all four hold */
	char check_message[UPG_MSG_LEN];
	char version[TND_VERSION_MAX];
	char min_upgrade_from[TND_VERSION_MAX];
	uint8_t proto_min, proto_max;
	uint8_t digest[UPG_DIGEST_LEN];
	uint64_t bytes;
	bool config_ok;                 /* new version accepts the running conf */
	char config_message[UPG_MSG_LEN];
};

struct upg_opts {
	bool force, disruptive, no_failback;
};

struct upg_check {
	char code[UPG_CODE_LEN];        /* E_* */
	bool ok;
	char message[UPG_MSG_LEN];      /* what was checked / what failed */
};
struct upg_checks {
	int n;
	struct upg_check c[UPG_CHECKS_MAX];
	bool all_ok;
	bool disruptive;                /* --force across a gap makes it so */
};

/* ---- the machine ---- */

struct upg_params {
	const struct tnd_conf *conf;
	int self;
	uint64_t incarnation;
	uint64_t seed;
	uint8_t cluster_id;
	uint8_t proto;                  /* header version of messages sent */
	/* The journal read from STATE_DIR/upgrade.journal at start (copied),
	 * or NULL. */
	const struct upg_journal *journal;
};

enum upg_act_type {
	UPG_ACT_SEND,     /* seal and send pkt to node `to` */
	UPG_ACT_STORE,    /* write `journal` durably (before the next action) */
	UPG_ACT_DO,       /* a local node action: do, then upg_step(UPG_EV_DONE) */
	UPG_ACT_FAILOVER, /* node_admin ADM_FAILOVER group -> node */
	UPG_ACT_RESET,    /* node_admin ADM_FAILOVER_RESET group */
	UPG_ACT_REPLY,    /* answer the command `token` */
	UPG_ACT_EVENT,    /* log and record */
};

enum upg_do {
	UPG_DO_BACKUP = 1,  /* save the configuration (pre-upgrade-<id>) */
	UPG_DO_FETCH,       /* get image digest/bytes from node `node` */
	UPG_DO_INSTALL,     /* install + activate `version` (image digest), restart */
	UPG_DO_REVERT,      /* activate `version` (the previous), restart */
};

enum upg_level { UPG_LVL_DEBUG, UPG_LVL_INFO, UPG_LVL_WARN, UPG_LVL_ERROR };

struct upg_act {
	enum upg_act_type type;
	/* SEND */
	int to;
	size_t len;
	uint8_t pkt[WIRE_MTU];
	/* STORE: points into the core, valid until the next call */
	const struct upg_journal *journal;
	/* DO */
	enum upg_do op;
	uint64_t id;
	int step;
	char version[TND_VERSION_MAX];
	uint8_t digest[UPG_DIGEST_LEN];
	uint64_t bytes;
	int node;                       /* DO FETCH source; FAILOVER target */
	/* FAILOVER / RESET */
	uint8_t group;
	/* REPLY */
	uint32_t token;
	int rc;                         /* 0 or a tnd_err */
	char code[UPG_CODE_LEN];
	char message[UPG_MSG_LEN];
	/* EVENT */
	enum upg_level level;
	char name[32];
	char kv[320];
};

#define UPG_ACTIONS_MAX 128
struct upg_actions {
	int n, n_dropped;
	struct upg_act a[UPG_ACTIONS_MAX];
};
void upg_actions_reset(struct upg_actions *out);

enum upg_cmd_op { UPG_CMD_START = 1, UPG_CMD_ABORT, UPG_CMD_ROLLBACK, UPG_CMD_FINALIZE };

enum upg_ev_type {
	UPG_EV_TICK,
	UPG_EV_RECV,   /* an authenticated UPG_MSG_* */
	UPG_EV_CMD,    /* a local command (tandemctl / API) */
	UPG_EV_DONE,   /* a UPG_ACT_DO finished */
};

struct upg_ev {
	enum upg_ev_type type;
	/* RECV */
	const struct wire_hdr *hdr;
	const uint8_t *body;
	size_t body_len;
	/* CMD */
	enum upg_cmd_op op;
	uint32_t token;
	const struct upg_image *image;  /* START */
	struct upg_opts opts;           /* START */
	int node;                       /* ROLLBACK: one node, or TND_NO_NODE */
	/* DONE: answers the UPG_ACT_DO (id, step, op) */
	uint64_t id;
	int step;
	enum upg_do done_op;
	int rc;
	char code[UPG_CODE_LEN];
	char message[UPG_MSG_LEN];
};

struct upg;
/* NULL when p->journal is inconsistent (what upg_journal_decode refuses)
 * or was written for another number of nodes, or out of memory. */
struct upg *upg_new(const struct upg_params *p, mono_t now);
void upg_free(struct upg *u);
/* The configuration changed in place (the node list is the same). */
void upg_reconfigure(struct upg *u, const struct tnd_conf *conf);

/* This node's own facts and the election view, before every step. */
void upg_set_local(struct upg *u, const struct upg_facts *f, mono_t now);
void upg_set_view(struct upg *u, const struct upg_view *v, mono_t now);

/* 0, or: TND_EINVAL a malformed message (dropped, nothing changed) or
 * command (answered at once with UPG_ACT_REPLY code E_INVALID);
 * TND_EREPLAY a STATE older than the last taken from its sender;
 * TND_EREFUSED a command while this node has one in flight (answered
 * E_BUSY); TND_ENOENT a DONE for no UPG_ACT_DO in flight. Every command
 * gets exactly one UPG_ACT_REPLY, possibly in a later call.
 * UPG_ACT_FAILOVER / UPG_ACT_RESET carry the group's id (not its index
 * in conf->groups, which is how upg_view.primary is indexed). */
int upg_step(struct upg *u, const struct upg_ev *ev, mono_t now, struct upg_actions *out);
mono_t upg_next_wake(const struct upg *u);

/* Read-only. */
const struct upg_journal *upg_journal_get(const struct upg *u);
const struct upg_facts *upg_facts_of(const struct upg *u, int node);
bool upg_is_coordinator(const struct upg *u);
/* Configuration changes are refused while an upgrade is active: true with
 * the reason ("upgrade 12 running (step 5 upgrade gw2)"). */
bool upg_frozen(const struct upg *u, char *why, size_t why_len);
/* Preemption is suspended on every node while a journal is active. */
bool upg_preempt_suspended(const struct upg *u);
/* The protocol level the cluster speaks: the lowest proto_max of the
 * nodes, capped at the journal's from_proto until it is finalized. */
uint8_t upg_cluster_proto(const struct upg *u);
/* Per-node sub-progress of the running step (for status), "" if none. */
const char *upg_node_detail(const struct upg *u, int node);

/* Pre-checks (all of them, SPEC section 5 step 1) against the facts this
 * node holds, and the plan they lead to. Changes nothing. */
void upg_precheck(const struct upg *u, const struct upg_image *img, const struct upg_opts *o,
		  mono_t now, struct upg_checks *out);
/* Fill j->steps (and n_steps) with the plan for img/opts from the current
 * facts and view; j's other fields are left alone. TND_ENOSPC when the
 * plan does not fit in UPG_STEPS_MAX. */
int upg_plan_build(const struct upg *u, const struct upg_opts *o, bool disruptive,
		   struct upg_journal *j);
/* The rollback plan of j (aimed at j->from) replaces the steps after
 * j->cursor: the nodes that run j->to or were asked to install it (only
 * `node` unless TND_NO_NODE), standbys first, the groups they hold moved
 * to a node on j->from (group 0 last), then the rest; PREEMPT_ON,
 * FAILBACK (RELEASE with no_failback), UNFREEZE; preceded by FREEZE and
 * PREEMPT_OFF when j is COMPLETED. Every step has rollback = true.
 * TND_ENOSPC when it does not fit (j unchanged). */
int upg_plan_rollback(const struct upg *u, int node, struct upg_journal *j);

#endif
