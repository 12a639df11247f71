/* node.h - one cluster member's protocol core: failure detection and
 * redundancy-group election, composed.
 *
 * Owns: the per-node state machines. It performs no I/O and reads no clock:
 * a driver (src/main.c, or the simulator in tests/sim) hands it events with
 * the current monotonic time, and performs the actions it emits (send these
 * bytes, add the VIPs of group G, run a hook, log an event). The driver
 * calls node_next_wake() to learn when to call node_step() with EV_TICK. */
#ifndef TND_NODE_H
#define TND_NODE_H

#include "types.h"
#include "wire.h"
#include "../conf/conf.h"

enum gstate {
	G_INIT = 0,       /* just started: observing before acting */
	G_SECONDARY,
	G_PRIMARY,
	G_INELIGIBLE,     /* secondary that may not become primary now */
};
const char *gstate_name(enum gstate s);

enum ev_type {
	EV_TICK,     /* time passed; act on due timers */
	EV_RECV,     /* an authenticated message arrived */
	EV_IFACE,    /* a local interface changed state */
	EV_SHUTDOWN, /* clean stop: hand every group over first */
	EV_SYNC,     /* this node's session table is (not) in sync */
	EV_BARRIER,  /* a sync barrier asked by ACT_BARRIER completed */
};

struct ev {
	enum ev_type type;
	union {
		struct {
			int link;                /* local link index it came in on */
			const struct wire_hdr *hdr;
			const uint8_t *body;     /* decrypted TLVs */
			size_t body_len;
		} recv;
		struct {
			const char *ifname;
			bool up;
		} iface;
		struct {
			bool synced;
		} sync;
		struct {
			uint8_t group_id;
			bool ok; /* false: the target cannot confirm (lost) */
		} barrier;
	} u;
};

enum act_type {
	ACT_SEND,   /* seal and send `pkt` (plaintext header+TLVs) */
	ACT_VIPS,   /* add (and announce) or remove group's VIPs */
	ACT_HOOK,   /* run the group's hook for `state` */
	ACT_EVENT,  /* log and record an event line */
	ACT_BARRIER, /* wait until `target` has acknowledged every session
		      * update made so far, then answer with EV_BARRIER */
};

enum ev_level { LVL_DEBUG, LVL_INFO, LVL_WARN, LVL_ERROR };

#define ACT_EVENT_LEN 320

struct act {
	enum act_type type;
	union {
		struct {
			int to;   /* node index */
			int link; /* link index: send from our link L to its link L */
			size_t len;
			uint8_t pkt[WIRE_MTU];
		} send;
		struct {
			uint8_t group_id;
			bool add;
		} vips;
		struct {
			uint8_t group_id;
			enum gstate state;
		} hook;
		struct {
			uint8_t group_id;
			int target;
		} barrier;
		struct {
			enum ev_level level;
			char name[48];            /* e.g. "group.state" */
			char kv[ACT_EVENT_LEN];   /* "group=1 from=secondary to=primary ..." */
		} event;
	} u;
};

#define ACTIONS_MAX 256
struct actions {
	int n;
	int n_dropped; /* actions that did not fit (a broken bound: logged) */
	struct act a[ACTIONS_MAX];
};
void actions_reset(struct actions *out);

struct node_params {
	const struct tnd_conf *conf;
	int self;                 /* index in conf->nodes */
	uint64_t incarnation;     /* strictly greater at every start */
	uint64_t seed;            /* for timer jitter */
	const char *version;      /* software version string */
	uint8_t proto_min, proto_max;
	/* Session sync gates the election of the session group (SPEC
	 * section 1, takeover order): a secondary is only a last-resort
	 * candidate until EV_SYNC says its session table is in sync (the
	 * primary is the source, so in sync by definition), and a planned
	 * handoff of that group holds its grant
	 * until the target has acknowledged every session update (a sync
	 * barrier: ACT_BARRIER / EV_BARRIER), or barrier_timeout_ms passed. */
	bool sync_gate;
	uint8_t sync_group_id;       /* the group gated: the session group */
	uint32_t barrier_timeout_ms; /* 0: 1000 */
};

struct node;

/* Allocate and initialise. Returns NULL on bad parameters (no I/O). */
struct node *node_new(const struct node_params *p, mono_t now);
void node_free(struct node *n);

/* Feed one event. Appends actions to `out`. Returns 0 or a negative
 * tnd_err for a message that was dropped (it is also counted). */
int node_step(struct node *n, const struct ev *ev, mono_t now,
	      struct actions *out);
/* Earliest time at which node_step(EV_TICK) has something to do. */
mono_t node_next_wake(const struct node *n);

/* Switch to configuration `conf` in place, without a restart (SPEC section
 * 1, configuration sync). The caller has checked (cfgsync_check_change()
 * in src/core/cfgsync.h) that the cluster identity and the node list
 * (names, order, link addresses) are unchanged, and conf_parse() validated
 * it. `conf` becomes the node's configuration: it must stay valid until the
 * next node_reconfigure() or node_free(); the previous one is still valid
 * during this call and may be freed after it returns (no pointer into it
 * is kept). `sync_gate` / `sync_group_id` replace the node_params values:
 * session sync may be switched on or off, or move to another group.
 *
 * Groups are matched by id, so they may be added, removed or renumbered
 * in position: a kept group keeps its state, epoch, orders (manual
 * failover), timers, handoff and grant, and every peer's view of it.
 *  - A new group starts as at start-up: G_INIT, observing for a dead
 *    interval and a heartbeat, so it cannot elect a second primary before
 *    it has heard what the cluster says about it.
 *  - A removed group is dropped at once, with an ACT_EVENT "group.removed"
 *    (group=ID was_primary=true|false) and no ACT_VIPS nor ACT_HOOK:
 *    those name a group of the current configuration, and it is gone.
 *  - VIPs. The core emits no ACT_VIPS for a configuration change: not for
 *    a removed group, and not when a kept group's VIP list changed. The
 *    driver owns that reconciliation: it removes the VIPs of a group it
 *    served that is gone, and for a group it is primary of, adds the new
 *    and removes the old VIPs by diffing the two lists. ACT_VIPS keeps
 *    meaning "this group's state changed" only.
 *  - Priorities, preempt, preempt_delay_s (counted from when the better
 *    node appeared), monitored interfaces, hook paths, heartbeat_ms and
 *    dead_after take effect at once. Eligibility, preemption and
 *    vacancies are re-evaluated at the next node_step(), and
 *    node_next_wake() is due at once (call it after this, as after
 *    node_step): that step also sends heartbeats, and the period is the
 *    new heartbeat_ms from then on. A primary that may no longer serve
 *    (priority 0) hands the group over by the planned path.
 *  - Monitored interfaces: the driver feeds EV_IFACE for every monitored
 *    interface right after this call, one by one. An interface newly named
 *    for a kept group counts against eligibility only once reported (or
 *    after a dead interval, when it is judged as at start: never reported
 *    = it does not exist), so a half-reported set does not move a group.
 *  - Failure detection uses the new dead_after x heartbeat_ms at once, but
 *    never less than dead_after of the interval a peer announces in its
 *    heartbeats: the peers switch a few moments apart, and one that slowed
 *    down first must not be taken for lost.
 *  - While peers still run the previous configuration, their records for
 *    groups this node does not have are ignored; a peer that never
 *    advertised a group is no candidate for it and does not make it look
 *    served; a peer that stopped advertising one (it removed it first)
 *    keeps its last view until it is lost, so the group does not look
 *    vacant, and get elected here, for the moment before this node
 *    applies the same change.
 * Returns 0, or TND_EINVAL with nothing changed when `conf` is NULL,
 * invalid as node_new() judges it, or its node list differs from the
 * current one (count, names, links per node). */
int node_reconfigure(struct node *n, const struct tnd_conf *conf,
		     bool sync_gate, uint8_t sync_group_id,
		     mono_t now, struct actions *out);

/* Administrative requests (tandemctl). They are validated here; a refusal
 * returns TND_EREFUSED / TND_ENOENT with a sentence in `why`. */
enum admin_op {
	ADM_FAILOVER,       /* group, target (TND_NO_NODE = best other node) */
	ADM_FAILOVER_RESET, /* group */
	ADM_MAINT,          /* target node, on */
	ADM_ACTIVATE,       /* this node takes every group it can */
	ADM_DEACTIVATE,     /* this node gives every group up */
};
struct admin_req {
	enum admin_op op;
	int group_id;
	int target; /* node index or TND_NO_NODE */
	bool on;
};
int node_admin(struct node *n, const struct admin_req *req, mono_t now,
	       struct actions *out, char *why, size_t why_len);

/* Suspend (or restore) preemption in every group: while an in-service
 * upgrade runs, groups stay where the upgrade puts them (SPEC section 5
 * step 2). Idempotent. A group that becomes vacant is still elected. */
void node_suspend_preempt(struct node *n, bool on);

/* Read-only view for status output and the simulator's checks. */
struct node_group_status {
	uint8_t id;
	enum gstate state;
	uint8_t priority;      /* configured priority of this node */
	bool eligible;         /* could become primary now */
	char why_ineligible[64];
	bool manual;           /* manual failover flag set */
	int manual_target;     /* node index or TND_NO_NODE */
	mono_t since;          /* time of the last state change */
	uint64_t epoch;        /* highest epoch known for the group */
	int primary;           /* node believed primary, or TND_NO_NODE */
	bool preempt_suspended;
	bool grant_held;       /* released, waiting for the sync barrier */
};
struct node_link_status {
	bool up;
	mono_t last_rx; /* MONO_NEVER-like 0 when never heard */
	uint64_t rx;
	uint64_t missed; /* heartbeats that did not arrive (from the gaps between those that did) */
};
struct node_peer_status {
	bool alive;
	bool ever_seen;
	mono_t since; /* last alive/lost change */
	char version[TND_VERSION_MAX];
	uint8_t proto_min, proto_max;
	bool maint;
	struct node_link_status links[TND_LINKS_MAX];
};
struct node_counters {
	uint64_t rx_ok, rx_malformed, rx_replayed, rx_unknown_type, tx;
};
struct node_status {
	int self;
	uint64_t incarnation;
	bool maint;
	bool tilt;              /* observing after a stall */
	uint8_t cluster_proto;  /* protocol level the cluster speaks */
	int n_alarms;
	char alarms[8][96];
	int n_groups;
	struct node_group_status groups[TND_GROUPS_MAX];
	struct node_peer_status peers[TND_NODES_MAX]; /* indexed by node; self's entry unused */
	struct node_counters ctr;
};
void node_status(const struct node *n, mono_t now, struct node_status *out);

#endif
