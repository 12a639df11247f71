/* node.c - one cluster member's protocol core: failure detector (per peer,
 * per link), redundancy-group election, and the administrative orders that
 * steer it. Pure: no system calls, no clock, no globals (STYLE).
 *
 * Failure detection. Every node sends a heartbeat to every peer on every
 * link each heartbeat_ms. A link to a peer is down when nothing came over
 * it for dead_after intervals; the peer is lost only when every link is
 * down. One dead link is an alarm, never a takeover (SPEC section 1).
 *
 * Election. Each group has an epoch: (counter << 8) | (node + 1), so two
 * nodes never claim the same epoch, and a stale primary is fenced as soon
 * as it hears a claim with a higher one. A secondary claims a vacant group
 * (no live node is primary or handing over) when it is the best candidate
 * by (eligibility class, manual flag, priority, lower index), after a small
 * jitter; a node ranked k waits k * 2 heartbeats more, so a best candidate
 * that cannot act is replaced (Redis Cluster's rank delay). A primary that
 * should give a group up (manual failover, preempt, ineligible, shutdown)
 * releases it first and then grants it: its heartbeats carry
 * handoff_to/handoff_epoch and the target claims the epoch on receipt, so a
 * planned move costs one packet latency.
 *
 * Orders (manual failover per group, maintenance per node) are
 * last-writer-wins registers versioned with a Lamport clock
 * ((counter << 8) | (origin + 1)), gossiped in every heartbeat, so a
 * command given on any node reaches every node.
 *
 * Replay protection follows the sliding window of RFC 4303 section 3.4.3,
 * per sender and incarnation. A message that is older than the newest one
 * applied from that sender refreshes liveness but not state.
 *
 * After a stall (the driver did not run us for half a dead interval) we
 * observe again before acting, as Redis Sentinel's TILT mode does.
 *
 * Reconfiguration (node_reconfigure, for configuration sync) happens in
 * place: per-group state lives in arrays indexed like conf->groups, so a
 * new configuration remaps every one of them by group id; a group that is
 * new observes as at start-up. The nodes of a cluster apply a committed
 * configuration a few moments apart, so for a while peers run the previous
 * one: records for groups we do not have are ignored, a peer's view of a
 * group it no longer advertises is kept (so it cannot look vacant for the
 * instant before we drop it too), and each heartbeat carries the sender's
 * heartbeat interval so that a peer that slowed down first is not taken for
 * lost by a node still expecting the faster rate. */
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <stdarg.h>
#include "node.h"
#include "rng.h"

/* TLV types of a heartbeat body. Group states and orders travel as
 * arrays of fixed-size records (one TLV each) rather than nested TLVs: at
 * TND_GROUPS_MAX groups and every possible order the heartbeat must still
 * fit one datagram (checked below at compile time). Records may grow at
 * their end in later protocol levels; a receiver reads the record size
 * from the first byte of the value. */
enum {
	HB_VERSION = 1,  /* str: software version */
	HB_PROTO = 2,    /* 2 bytes: min, max protocol level */
	HB_FLAGS = 3,    /* u8: HBF_* */
	HB_LINK = 6,     /* u8: link index the sender used */
	HB_GROUPS = 7,   /* u8 record size, then GREC_LEN-byte records */
	HB_ORDERS = 8,   /* u8 record size, then OREC_LEN-byte records */
	HB_TIMING = 9,   /* u32: the sender's heartbeat_ms */
};
/* The largest heartbeat interval a peer may announce; conf.c allows
 * 10..10000 ms. A larger value is a malformed message. */
#define HB_PEER_MS_MAX 60000u
enum { HBF_SHUTDOWN = 1 };
/* Group record: id, state, class, epoch (8), primary, handoff_to, flags
 * (GRF_*). The granted epoch is not sent: it is next_epoch(epoch,
 * handoff_to). A 13-byte record (no flags) is still accepted. */
#define GREC_LEN 14
#define GREC_LEN_MIN 13
enum { GRF_HELD = 1 }; /* handoff announced, grant held for a barrier */
/* Order record: kind, key, value, version (8). */
#define OREC_LEN 11
enum { ORDER_MANUAL = 1, ORDER_MAINT = 2 };
#define WIRE_NONE 0xff
/* Fixed part: version (4+TND_VERSION_MAX), proto (4+2), flags (4+1),
 * link (4+1), timing (4+4), the two record arrays' TLV headers and size
 * bytes (2*5). */
#define HB_FIXED_MAX (4 + TND_VERSION_MAX + 6 + 5 + 5 + 8 + 10)
_Static_assert(HB_FIXED_MAX + TND_GROUPS_MAX * GREC_LEN +
		       (TND_GROUPS_MAX + TND_NODES_MAX) * OREC_LEN <=
		       WIRE_BODY_MAX,
	       "a heartbeat at the configured maxima must fit one datagram");
/* Order versions are Lamport counters shifted by 8; refuse absurd ones so
 * a peer cannot push the counter to overflow. */
#define ORDER_COUNTER_MAX (1ULL << 40)

/* Eligibility classes, best last. */
enum { CLASS_NEVER = 0, CLASS_LAST_RESORT = 1, CLASS_OK = 2 };

#define REPLAY_WINDOW 64
#define IFACES_MAX 64

struct pgroup { /* a peer's advertised view of one group */
	uint8_t state, klass;
	uint64_t epoch;
	int primary;
	int handoff_to;
	uint64_t handoff_epoch;
	bool handoff_held;
};

struct peer {
	bool alive, ever;
	mono_t since;
	mono_t link_rx[TND_LINKS_MAX];
	uint64_t link_rx_n[TND_LINKS_MAX];
	uint64_t link_missed[TND_LINKS_MAX];
	bool link_up[TND_LINKS_MAX];
	/* replay window */
	uint64_t incarnation, seq_max, window;
	uint64_t gone_incarnation; /* it announced a clean stop */
	/* advertised */
	char version[TND_VERSION_MAX];
	uint8_t proto_min, proto_max;
	bool shutdown;
	uint32_t hb_ms; /* its heartbeat interval; 0 = not announced */
	struct pgroup g[TND_GROUPS_MAX]; /* indexed like conf->groups */
};

struct order {
	int value; /* manual: node or TND_NO_NODE; maint: 0/1 */
	uint64_t ver;
};

struct group {
	const struct tnd_group_conf *gc;
	enum gstate state;
	mono_t since;
	mono_t observe_until; /* G_INIT lasts until then (start or added) */
	/* Monitors newly named by a reconfiguration (bit i: gc->monitors[i]):
	 * until reported, or until node.iface_grace_until, they do not count
	 * against eligibility. */
	uint32_t fresh_monitors;
	uint64_t epoch;
	int primary;
	mono_t vacant_since; /* MONO_NEVER when not vacant */
	mono_t elect_at;
	int handoff_to;
	uint64_t handoff_epoch;
	mono_t handoff_until;
	bool grant_held;       /* waiting for the sync barrier */
	mono_t grant_hold_until;
	int better; /* preempt candidate, or TND_NO_NODE */
	mono_t better_since;
	bool preempt_suspended;
	char why[64];
};

struct iface {
	char name[TND_IFNAME_MAX];
	bool up;
};

/* Decoded heartbeat, applied only when every TLV was well formed. */
struct hb_msg {
	char version[TND_VERSION_MAX];
	uint8_t proto_min, proto_max;
	uint8_t flags;
	uint32_t hb_ms; /* 0: not sent (an older sender) */
	int n_groups;
	struct {
		uint8_t id;
		int gi; /* index in our conf, or -1 for a group we do not know */
		struct pgroup v;
	} g[TND_GROUPS_MAX];
	int n_orders;
	struct {
		uint8_t kind, key, value;
		uint64_t ver;
	} o[TND_GROUPS_MAX + TND_NODES_MAX];
};

struct node {
	const struct tnd_conf *conf;
	int self, n_nodes, n_links;
	uint64_t incarnation, seq, rng, lamport;
	char version[TND_VERSION_MAX];
	uint8_t proto_min, proto_max;
	mono_t hb, dead, started, last_step, hb_next;
	mono_t iface_grace_until; /* see group.fresh_monitors */
	bool hb_now, shutdown, tilt;
	bool sync_gate, synced;
	bool preempt_all_suspended; /* node_suspend_preempt(): groups added later too */
	uint8_t sync_group_id;
	mono_t barrier_timeout;
	mono_t tilt_until;
	struct peer peers[TND_NODES_MAX];
	struct group groups[TND_GROUPS_MAX];
	struct order manual[TND_GROUPS_MAX];
	struct order maint[TND_NODES_MAX];
	int n_ifaces;
	struct iface ifaces[IFACES_MAX];
	struct node_counters ctr;
	struct hb_msg rx; /* decode scratch: no allocation per packet */
};

/* --- small helpers ------------------------------------------------------ */

const char *gstate_name(enum gstate s)
{
	static const char *const names[] = {
		[G_INIT] = "init", [G_SECONDARY] = "secondary",
		[G_PRIMARY] = "primary", [G_INELIGIBLE] = "ineligible",
	};
	return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "?";
}

void actions_reset(struct actions *out)
{
	out->n = 0;
	out->n_dropped = 0;
}

static struct act *act_add(struct actions *out, enum act_type t)
{
	if (out->n >= ACTIONS_MAX) {
		out->n_dropped++;
		return NULL;
	}
	struct act *a = &out->a[out->n++];
	a->type = t;
	return a;
}

static void emit(struct node *n, struct actions *out, enum ev_level lvl,
		 const char *name, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
static void emit(struct node *n, struct actions *out, enum ev_level lvl,
		 const char *name, const char *fmt, ...)
{
	(void)n;
	struct act *a = act_add(out, ACT_EVENT);
	if (!a)
		return;
	a->u.event.level = lvl;
	va_list ap;
	va_start(ap, fmt);
	tnd_event_vfmt(a->u.event.name, sizeof(a->u.event.name), name,
		       a->u.event.kv, sizeof(a->u.event.kv), fmt, ap);
	va_end(ap);
}

static const char *node_name(const struct node *n, int idx)
{
	if (idx < 0 || idx >= n->n_nodes)
		return "none";
	return n->conf->nodes[idx].name;
}

static mono_t jitter(struct node *n, mono_t max)
{
	if (max <= 0)
		return 0;
	return (mono_t)(rng_next(&n->rng) % (uint64_t)max);
}

static mono_t mono_min(mono_t a, mono_t b)
{
	return a < b ? a : b;
}

/* Silence after which a link to peer x is down: dead_after of our
 * intervals, or of the peer's when it announced a longer one (during a
 * reconfiguration the peers switch intervals a few moments apart, and one
 * that slowed down first is not lost). */
static mono_t peer_dead(const struct node *n, int x)
{
	mono_t d = MS_TO_MONO(n->peers[x].hb_ms) * (mono_t)n->conf->dead_after;
	return d > n->dead ? d : n->dead;
}

/* --- eligibility and ranking -------------------------------------------- */

/* 1 up, 0 down, -1 never reported. */
static int iface_state(const struct node *n, const char *name)
{
	for (int i = 0; i < n->n_ifaces; i++)
		if (strcmp(n->ifaces[i].name, name) == 0)
			return n->ifaces[i].up;
	return -1;
}

static int alive_count(const struct node *n)
{
	int c = 1;
	for (int i = 0; i < n->n_nodes; i++)
		if (i != n->self && n->peers[i].alive)
			c++;
	return c;
}

/* Clusters of three or more nodes elect the group 0 primary only with a
 * majority of nodes reachable (SPEC section 1). */
static bool quorum_ok(const struct node *n, const struct group *g)
{
	if (g->gc->id != 0 || n->n_nodes < 3)
		return true;
	return alive_count(n) * 2 > n->n_nodes;
}

/* This node's eligibility class for a group; `why` (may be NULL) gets the
 * reason when it is not CLASS_OK. */
static int self_class_why(const struct node *n, const struct group *g,
			  char *why, size_t len)
{
	const struct tnd_group_conf *gc = g->gc;
	char dummy[64];
	if (!why) {
		why = dummy;
		len = sizeof(dummy);
	}
	why[0] = 0;
	if (gc->priority[n->self] == 0) {
		snprintf(why, len, "priority 0");
		return CLASS_NEVER;
	}
	if (n->shutdown) {
		snprintf(why, len, "shutting down");
		return CLASS_NEVER;
	}
	if (n->maint[n->self].value) {
		snprintf(why, len, "maintenance");
		return CLASS_NEVER;
	}
	if (!quorum_ok(n, g)) {
		snprintf(why, len, "no majority of nodes reachable");
		return CLASS_NEVER;
	}
	for (int i = 0; i < gc->n_monitors; i++) {
		int up = iface_state(n, gc->monitors[i]);
		/* A monitor that a reconfiguration just named is judged once the
		 * driver has reported it: the driver reports them one by one,
		 * and judging the group before the last one is in would move it
		 * for nothing. Never reported after that: it does not exist. */
		if (up < 0 && ((g->fresh_monitors >> i) & 1) &&
		    n->last_step < n->iface_grace_until)
			continue;
		if (up <= 0) {
			snprintf(why, len, "monitored interface %s down",
				 gc->monitors[i]);
			return CLASS_LAST_RESORT;
		}
	}
	if (n->sync_gate && gc->id == n->sync_group_id && !n->synced &&
	    g->state != G_PRIMARY) {
		snprintf(why, len, "sessions not in sync");
		return CLASS_LAST_RESORT;
	}
	return CLASS_OK;
}

static int self_class(struct node *n, struct group *g)
{
	return self_class_why(n, g, g->why, sizeof(g->why));
}

static int class_of(const struct node *n, int gi, int x)
{
	if (x == n->self)
		return self_class_why(n, &n->groups[gi], NULL, 0);
	const struct peer *p = &n->peers[x];
	if (!p->alive || p->shutdown)
		return CLASS_NEVER;
	return p->g[gi].klass;
}

static uint32_t cand_key(const struct node *n, int gi, int x)
{
	int k = class_of(n, gi, x);
	if (k == CLASS_NEVER)
		return 0;
	const struct order *m = &n->manual[gi];
	bool manual = m->ver && m->value == x;
	return ((uint32_t)k << 24) | ((uint32_t)manual << 16) |
	       ((uint32_t)n->groups[gi].gc->priority[x] << 8) |
	       (uint32_t)(255 - x);
}

/* A node still observing after its start cannot take a grant yet. */
static bool ready(const struct node *n, int gi, int x)
{
	if (x == n->self)
		return n->groups[gi].state != G_INIT;
	return n->peers[x].alive && n->peers[x].g[gi].state != G_INIT;
}

/* Best candidate other than `exclude` (TND_NO_NODE for none); with
 * `ready_only`, only among nodes that can take a grant now. Ranking for a
 * vacancy counts starting nodes too, so a cold start does not elect a
 * lesser node that the better one would then preempt. */
static int best_candidate(const struct node *n, int gi, int exclude,
			  bool ready_only)
{
	int best = TND_NO_NODE;
	uint32_t bk = 0;
	for (int x = 0; x < n->n_nodes; x++) {
		if (x == exclude || (ready_only && !ready(n, gi, x)))
			continue;
		uint32_t k = cand_key(n, gi, x);
		if (k > bk) {
			bk = k;
			best = x;
		}
	}
	return best;
}

static int rank_of_self(const struct node *n, int gi)
{
	uint32_t mine = cand_key(n, gi, n->self);
	int r = 0;
	for (int x = 0; x < n->n_nodes; x++)
		if (x != n->self && cand_key(n, gi, x) > mine)
			r++;
	return r;
}

static uint64_t next_epoch(uint64_t epoch, int who)
{
	return (((epoch >> 8) + 1) << 8) | (uint64_t)(who + 1);
}

/* --- state changes -------------------------------------------------------- */

/* The one place a group changes state: records, logs, and emits the kernel
 * actions in takeover order (VIPs, then announcements, done by the driver
 * as one ACT_VIPS) or release order. */
static void group_set_state(struct node *n, struct actions *out, int gi,
			    enum gstate to, const char *reason)
{
	struct group *g = &n->groups[gi];
	enum gstate from = g->state;
	if (from == to)
		return;
	/* Transitions that must never happen. */
	if (to == G_INIT || (from == G_INIT && to == G_PRIMARY)) {
		emit(n, out, LVL_ERROR, "core.invariant",
		     "group=%u from=%s to=%s", g->gc->id, gstate_name(from),
		     gstate_name(to));
		return;
	}
	g->state = to;
	g->since = n->last_step;
	if (to == G_PRIMARY)
		g->primary = n->self;
	else if (g->primary == n->self)
		g->primary = TND_NO_NODE;
	emit(n, out, to == G_PRIMARY || from == G_PRIMARY ? LVL_INFO : LVL_DEBUG,
	     "group.state", "group=%u from=%s to=%s epoch=%llu reason=%s",
	     g->gc->id, gstate_name(from), gstate_name(to),
	     (unsigned long long)g->epoch, reason);
	struct act *a;
	if (to == G_PRIMARY) {
		if ((a = act_add(out, ACT_VIPS))) {
			a->u.vips.group_id = g->gc->id;
			a->u.vips.add = true;
		}
	} else if (from == G_PRIMARY) {
		if ((a = act_add(out, ACT_VIPS))) {
			a->u.vips.group_id = g->gc->id;
			a->u.vips.add = false;
		}
	}
	bool hook = to == G_PRIMARY || from == G_PRIMARY || from == G_INIT;
	if (hook && (a = act_add(out, ACT_HOOK))) {
		a->u.hook.group_id = g->gc->id;
		a->u.hook.state = to;
	}
	n->hb_now = true;
}

static void become_primary(struct node *n, struct actions *out, int gi,
			   uint64_t epoch, const char *reason)
{
	struct group *g = &n->groups[gi];
	g->epoch = epoch;
	g->elect_at = MONO_NEVER;
	g->vacant_since = MONO_NEVER;
	g->handoff_to = TND_NO_NODE;
	g->grant_held = false;
	g->better = TND_NO_NODE;
	group_set_state(n, out, gi, G_PRIMARY, reason);
}

static enum gstate secondary_state(struct node *n, int gi)
{
	return self_class(n, &n->groups[gi]) == CLASS_OK ? G_SECONDARY
							  : G_INELIGIBLE;
}

/* Give the group up and grant it to `to` (TND_NO_NODE: nobody can take it
 * now; the others elect when they see the vacancy). */
static void release(struct node *n, struct actions *out, int gi, int to,
		    const char *reason)
{
	struct group *g = &n->groups[gi];
	g->better = TND_NO_NODE;
	if (to != TND_NO_NODE) {
		g->handoff_to = to;
		g->handoff_epoch = next_epoch(g->epoch, to);
		g->handoff_until = n->last_step + n->dead;
		g->grant_held = n->sync_gate && g->gc->id == n->sync_group_id;
		if (g->grant_held) {
			/* VIPs go first (below), so no new session starts here;
			 * the grant waits until the target has every update. */
			g->grant_hold_until = n->last_step + n->barrier_timeout;
			g->handoff_until = g->grant_hold_until + n->dead;
			struct act *b = act_add(out, ACT_BARRIER);
			if (b) {
				b->u.barrier.group_id = g->gc->id;
				b->u.barrier.target = to;
			}
		}
		emit(n, out, LVL_INFO, "group.handoff",
		     "group=%u to=%s epoch=%llu reason=%s", g->gc->id,
		     node_name(n, to), (unsigned long long)g->handoff_epoch,
		     reason);
	}
	group_set_state(n, out, gi, secondary_state(n, gi), reason);
}

/* --- peers ------------------------------------------------------------------ */

static void peer_set_alive(struct node *n, struct actions *out, int x,
			   bool alive, const char *reason)
{
	struct peer *p = &n->peers[x];
	if (p->alive == alive)
		return;
	p->alive = alive;
	p->since = n->last_step;
	emit(n, out, alive ? LVL_INFO : LVL_WARN, "peer.state",
	     "peer=%s to=%s reason=%s", node_name(n, x),
	     alive ? "alive" : "lost", reason);
	n->hb_now = true; /* tell the others what we see at once */
	if (!alive) {
		/* What a lost peer claimed no longer holds. */
		for (int gi = 0; gi < n->conf->n_groups; gi++) {
			p->g[gi].state = G_INIT;
			p->g[gi].handoff_to = TND_NO_NODE;
			if (n->groups[gi].primary == x)
				n->groups[gi].primary = TND_NO_NODE;
		}
	}
}

static void check_links(struct node *n, struct actions *out, mono_t now)
{
	for (int x = 0; x < n->n_nodes; x++) {
		if (x == n->self)
			continue;
		struct peer *p = &n->peers[x];
		bool any = false;
		for (int l = 0; l < n->n_links; l++) {
			bool up = p->link_rx_n[l] && now - p->link_rx[l] < peer_dead(n, x);
			if (up != p->link_up[l] && p->ever) {
				emit(n, out, up ? LVL_INFO : LVL_WARN, "link.state",
				     "peer=%s link=%d to=%s", node_name(n, x), l,
				     up ? "up" : "down");
			}
			p->link_up[l] = up;
			any |= up;
		}
		if (!any && p->alive)
			peer_set_alive(n, out, x, false, "silent_on_all_links");
	}
}

/* --- heartbeats --------------------------------------------------------------- */

static void hdr_fill(struct node *n, struct wire_hdr *h, uint8_t type)
{
	memset(h, 0, sizeof(*h));
	h->version = n->proto_max;
	h->cluster_id = n->conf->cluster_id;
	h->sender = (uint8_t)n->self;
	h->type = type;
	h->incarnation = n->incarnation;
	h->seq = ++n->seq;
}

static uint8_t wire_node(int x)
{
	return x < 0 ? WIRE_NONE : (uint8_t)x;
}

static uint8_t *put_order(uint8_t *p, int kind, int key, int value,
			  uint64_t ver)
{
	p[0] = (uint8_t)kind;
	p[1] = (uint8_t)key;
	p[2] = wire_node(value);
	wire_put64(p + 3, ver);
	return p + OREC_LEN;
}

static void send_heartbeat(struct node *n, struct actions *out, int to,
			   int link)
{
	struct act *a = act_add(out, ACT_SEND);
	if (!a)
		return;
	struct wire_hdr h;
	struct tlvw w;
	uint8_t proto[2] = { n->proto_min, n->proto_max };

	hdr_fill(n, &h, WIRE_MSG_HEARTBEAT);
	tlvw_init(&w, a->u.send.pkt + WIRE_HDR_LEN,
		  sizeof(a->u.send.pkt) - WIRE_HDR_LEN - WIRE_TAG_LEN);
	tlvw_str(&w, HB_VERSION, n->version);
	tlvw_put(&w, HB_PROTO, proto, 2);
	tlvw_u8(&w, HB_FLAGS, n->shutdown ? HBF_SHUTDOWN : 0);
	tlvw_u8(&w, HB_LINK, (uint8_t)link);
	tlvw_u32(&w, HB_TIMING, n->conf->heartbeat_ms);
	uint8_t rec[1 + (TND_GROUPS_MAX + TND_NODES_MAX) * OREC_LEN], *p;
	p = rec;
	*p++ = GREC_LEN;
	for (int gi = 0; gi < n->conf->n_groups; gi++) {
		struct group *g = &n->groups[gi];
		p[0] = g->gc->id;
		p[1] = (uint8_t)g->state;
		p[2] = (uint8_t)self_class(n, g);
		wire_put64(p + 3, g->epoch);
		p[11] = wire_node(g->primary);
		p[12] = wire_node(g->handoff_to);
		p[13] = g->handoff_to != TND_NO_NODE && g->grant_held ? GRF_HELD : 0;
		/* Receivers derive the granted epoch from what we send now. */
		if (g->handoff_to != TND_NO_NODE)
			g->handoff_epoch = next_epoch(g->epoch, g->handoff_to);
		p += GREC_LEN;
	}
	tlvw_put(&w, HB_GROUPS, rec, (uint16_t)(p - rec));
	p = rec;
	*p++ = OREC_LEN;
	for (int gi = 0; gi < n->conf->n_groups; gi++)
		if (n->manual[gi].ver)
			p = put_order(p, ORDER_MANUAL, n->groups[gi].gc->id,
				      n->manual[gi].value, n->manual[gi].ver);
	for (int x = 0; x < n->n_nodes; x++)
		if (n->maint[x].ver)
			p = put_order(p, ORDER_MAINT, x, n->maint[x].value,
				      n->maint[x].ver);
	if (p - rec > 1)
		tlvw_put(&w, HB_ORDERS, rec, (uint16_t)(p - rec));
	size_t body = 0;
	if (tlvw_finish(&w, &body) != 0) {
		out->n--; /* a broken bound: the config limits make this unreachable */
		emit(n, out, LVL_ERROR, "core.invariant", "heartbeat_too_large=1");
		return;
	}
	h.body_len = (uint16_t)body;
	wire_hdr_encode(&h, a->u.send.pkt);
	a->u.send.len = WIRE_HDR_LEN + body;
	a->u.send.to = to;
	a->u.send.link = link;
	n->ctr.tx++;
}

static void send_heartbeats(struct node *n, struct actions *out, mono_t now)
{
	for (int x = 0; x < n->n_nodes; x++)
		if (x != n->self)
			for (int l = 0; l < n->n_links; l++)
				send_heartbeat(n, out, x, l);
	n->hb_now = false;
	n->hb_next = now + n->hb;
}

static int node_ref(const struct node *n, uint8_t v, int *out)
{
	if (v == WIRE_NONE) {
		*out = TND_NO_NODE;
		return 0;
	}
	if (v >= n->n_nodes)
		return TND_EINVAL;
	*out = v;
	return 0;
}

static int decode_groups(const struct node *n, const struct tlv *t,
			 struct hb_msg *m)
{
	if (t->len < 1 || t->val[0] < GREC_LEN_MIN)
		return TND_EINVAL;
	size_t rl = t->val[0], cnt = (t->len - 1u) / rl;
	if ((t->len - 1u) % rl || cnt > TND_GROUPS_MAX || m->n_groups)
		return TND_EINVAL;
	for (size_t i = 0; i < cnt; i++) {
		const uint8_t *r = t->val + 1 + i * rl;
		if (r[1] > G_INELIGIBLE || r[2] > CLASS_OK)
			return TND_EINVAL;
		for (int k = 0; k < m->n_groups; k++)
			if (m->g[k].id == r[0])
				return TND_EINVAL; /* a group twice */
		typeof(m->g[0]) *e = &m->g[m->n_groups++];
		e->id = r[0];
		e->gi = conf_group_index(n->conf, r[0]);
		e->v.state = r[1];
		e->v.klass = r[2];
		e->v.epoch = wire_get64(r + 3);
		if (node_ref(n, r[11], &e->v.primary) ||
		    node_ref(n, r[12], &e->v.handoff_to))
			return TND_EINVAL;
		e->v.handoff_epoch = e->v.handoff_to == TND_NO_NODE ? 0 :
			next_epoch(e->v.epoch, e->v.handoff_to);
		e->v.handoff_held = rl > 13 && (r[13] & GRF_HELD);
	}
	return 0;
}

static int decode_orders(const struct tlv *t, struct hb_msg *m)
{
	if (t->len < 1 || t->val[0] < OREC_LEN)
		return TND_EINVAL;
	size_t rl = t->val[0], cnt = (t->len - 1u) / rl;
	if ((t->len - 1u) % rl || m->n_orders ||
	    cnt > sizeof(m->o) / sizeof(m->o[0]))
		return TND_EINVAL;
	for (size_t i = 0; i < cnt; i++) {
		const uint8_t *r = t->val + 1 + i * rl;
		uint64_t ver = wire_get64(r + 3);
		if (ver == 0 || (ver >> 8) >= ORDER_COUNTER_MAX)
			return TND_EINVAL;
		if (r[0] != ORDER_MANUAL && r[0] != ORDER_MAINT)
			continue; /* a kind from a newer level: skip */
		m->o[m->n_orders].kind = r[0];
		m->o[m->n_orders].key = r[1];
		m->o[m->n_orders].value = r[2];
		m->o[m->n_orders].ver = ver;
		m->n_orders++;
	}
	return 0;
}

static int decode_heartbeat(const struct node *n, const uint8_t *body,
			    size_t len, struct hb_msg *m)
{
	struct tlvr r;
	struct tlv t;
	int rc;

	memset(m, 0, sizeof(*m));
	tlvr_init(&r, body, len);
	while ((rc = tlvr_next(&r, &t)) == 1) {
		switch (t.type) {
		case HB_VERSION:
			rc = tlv_str(&t, m->version, sizeof(m->version));
			break;
		case HB_PROTO:
			if (t.len != 2)
				return TND_EINVAL;
			m->proto_min = t.val[0];
			m->proto_max = t.val[1];
			break;
		case HB_FLAGS: rc = tlv_u8(&t, &m->flags); break;
		case HB_TIMING:
			rc = tlv_u32(&t, &m->hb_ms);
			if (rc == 0 && (m->hb_ms == 0 || m->hb_ms > HB_PEER_MS_MAX))
				return TND_EINVAL;
			break;
		case HB_GROUPS: rc = decode_groups(n, &t, m); break;
		case HB_ORDERS: rc = decode_orders(&t, m); break;
		default: rc = 0; break;
		}
		if (rc < 0)
			return TND_EINVAL;
	}
	return rc < 0 ? TND_EINVAL : 0;
}

/* RFC 4303 section 3.4.3 anti-replay window. Returns 1 when `seq` is the
 * newest so far, 0 when it is older but not seen, TND_EREPLAY otherwise. */
static int replay_check(struct peer *p, uint64_t inc, uint64_t seq)
{
	if (seq == 0)
		return TND_EREPLAY;
	if (inc < p->incarnation)
		return TND_EREPLAY;
	if (inc > p->incarnation) {
		p->incarnation = inc;
		p->seq_max = seq;
		p->window = 1;
		return 1;
	}
	if (seq > p->seq_max) {
		uint64_t shift = seq - p->seq_max;
		p->window = shift >= REPLAY_WINDOW ? 1 : (p->window << shift) | 1;
		p->seq_max = seq;
		return 1;
	}
	uint64_t back = p->seq_max - seq;
	if (back >= REPLAY_WINDOW || (p->window >> back) & 1)
		return TND_EREPLAY;
	p->window |= 1ULL << back;
	return 0;
}

static void adopt_order(struct node *n, struct actions *out, int kind,
			int key, int value, uint64_t ver, const char *via)
{
	struct order *o;
	if (kind == ORDER_MANUAL) {
		int gi = conf_group_index(n->conf, key);
		if (gi < 0)
			return;
		o = &n->manual[gi];
	} else {
		if (key >= n->n_nodes)
			return;
		o = &n->maint[key];
		value = value ? 1 : 0;
	}
	if ((ver >> 8) > n->lamport)
		n->lamport = ver >> 8;
	if (ver <= o->ver)
		return;
	o->ver = ver;
	o->value = value;
	n->hb_now = true;
	if (kind == ORDER_MANUAL)
		emit(n, out, LVL_INFO, "order.manual", "group=%d target=%s via=%s",
		     key, value == TND_NO_NODE ? "none" : node_name(n, value), via);
	else
		emit(n, out, LVL_INFO, "order.maintenance", "node=%s on=%d via=%s",
		     node_name(n, key), value, via);
}

static void apply_heartbeat(struct node *n, struct actions *out, int x,
			    const struct hb_msg *m)
{
	struct peer *p = &n->peers[x];
	if (strcmp(p->version, m->version) != 0 && p->version[0])
		emit(n, out, LVL_INFO, "peer.version", "peer=%s from=%s to=%s",
		     node_name(n, x), p->version, m->version);
	snprintf(p->version, sizeof(p->version), "%s", m->version);
	p->proto_min = m->proto_min;
	p->proto_max = m->proto_max;
	p->shutdown = m->flags & HBF_SHUTDOWN;
	if (m->hb_ms)
		p->hb_ms = m->hb_ms;

	for (int i = 0; i < m->n_orders; i++) {
		int v = m->o[i].value == WIRE_NONE ? TND_NO_NODE : m->o[i].value;
		if (m->o[i].kind == ORDER_MANUAL && v != TND_NO_NODE &&
		    v >= n->n_nodes)
			continue;
		adopt_order(n, out, m->o[i].kind, m->o[i].key, v, m->o[i].ver,
			    node_name(n, x));
	}

	for (int i = 0; i < m->n_groups; i++) {
		int gi = m->g[i].gi;
		if (gi < 0)
			continue;
		const struct pgroup *v = &m->g[i].v;
		struct group *g = &n->groups[gi];
		p->g[gi] = *v;
		if (v->state == G_PRIMARY) {
			if (g->state == G_PRIMARY && v->epoch > g->epoch) {
				/* A claim with a higher epoch fences us. */
				g->epoch = v->epoch;
				group_set_state(n, out, gi, secondary_state(n, gi),
						"fenced_by_higher_epoch");
			}
			if (v->epoch >= g->epoch) {
				g->epoch = v->epoch;
				g->primary = x;
			}
			if (g->handoff_to == x && v->epoch >= g->handoff_epoch)
				g->handoff_to = TND_NO_NODE; /* grant taken */
		} else {
			if (g->primary == x)
				g->primary = TND_NO_NODE;
			if (g->state == G_PRIMARY && v->epoch > g->epoch &&
			    (v->primary == TND_NO_NODE || v->primary == n->self)) {
				/* A peer knows a later epoch than ours but follows
				 * nobody: we claimed while cut off, or restarted
				 * and forgot. Re-stamp our claim past it, or no
				 * node would follow us. When the peer follows a
				 * rival we must not bid: two primaries that cannot
				 * hear each other would out-bid each other through
				 * every node that hears both. */
				g->epoch = next_epoch(v->epoch, n->self);
				emit(n, out, LVL_INFO, "group.epoch",
				     "group=%u epoch=%llu reason=restamp_past_peer",
				     g->gc->id, (unsigned long long)g->epoch);
				n->hb_now = true;
			}
		}
		/* Take a grant only from the primary we followed (or when we
		 * followed none): a node with a partial view must not start a
		 * second primary beside one we can hear. */
		if (v->handoff_to == n->self && !v->handoff_held &&
		    v->handoff_epoch > g->epoch &&
		    (g->primary == TND_NO_NODE || g->primary == x) &&
		    g->state != G_PRIMARY && g->state != G_INIT &&
		    self_class(n, g) != CLASS_NEVER) {
			become_primary(n, out, gi, v->handoff_epoch, "handoff");
		}
	}
}

static int on_recv(struct node *n, const struct ev *ev, mono_t now,
		   struct actions *out)
{
	const struct wire_hdr *h = ev->u.recv.hdr;
	int link = ev->u.recv.link;
	if (h->sender >= n->n_nodes || h->sender == n->self || link < 0 ||
	    link >= n->n_links || h->cluster_id != n->conf->cluster_id) {
		n->ctr.rx_malformed++;
		return TND_EINVAL;
	}
	if (h->type != WIRE_MSG_HEARTBEAT) {
		n->ctr.rx_unknown_type++;
		return TND_EINVAL;
	}
	struct hb_msg *m = &n->rx;
	int rc = decode_heartbeat(n, ev->u.recv.body, ev->u.recv.body_len, m);
	if (rc < 0) {
		n->ctr.rx_malformed++;
		return rc;
	}
	struct peer *p = &n->peers[h->sender];
	struct peer saved = *p;
	int newest = replay_check(p, h->incarnation, h->seq);
	if (newest < 0) {
		n->ctr.rx_replayed++;
		return newest;
	}
	n->ctr.rx_ok++;
	if (p->gone_incarnation == h->incarnation)
		return 0; /* the rest of a stopped peer's last burst */
	if (h->incarnation != saved.incarnation && saved.ever)
		emit(n, out, LVL_INFO, "peer.restart", "peer=%s incarnation=%llu",
		     node_name(n, h->sender), (unsigned long long)h->incarnation);
	/* Heartbeats come every n->hb on every link (and some sooner, on
	 * changes): a gap of k intervals means k - 1 did not arrive. Half an
	 * interval of jitter is not a loss. */
	if (p->link_rx_n[link] && now - p->link_rx[link] > n->hb + n->hb / 2)
		p->link_missed[link] += (uint64_t)((now - p->link_rx[link] + n->hb / 2) / n->hb) - 1;
	p->link_rx[link] = now;
	p->link_rx_n[link]++;
	p->ever = true;
	if (!p->link_up[link]) {
		p->link_up[link] = true;
		if (saved.ever)
			emit(n, out, LVL_INFO, "link.state", "peer=%s link=%d to=up",
			     node_name(n, h->sender), link);
	}
	peer_set_alive(n, out, h->sender, true, "heartbeat");
	if (newest)
		apply_heartbeat(n, out, h->sender, m);
	bool holding = false;
	for (int i = 0; i < m->n_groups; i++)
		holding |= m->g[i].v.handoff_held;
	if (newest && (m->flags & HBF_SHUTDOWN) && !holding) {
		/* A clean stop: its grants were applied above; waiting for
		 * silence would only delay the takeover of what it could not
		 * hand over. While a grant is still held for a sync barrier
		 * it is not gone yet: its next heartbeat will grant. */
		p->gone_incarnation = h->incarnation;
		for (int l = 0; l < n->n_links; l++)
			p->link_up[l] = false;
		peer_set_alive(n, out, h->sender, false, "peer_shutdown");
	}
	return 0;
}

/* --- evaluation: what each group should do now ---------------------------- */

static bool group_vacant(const struct node *n, int gi)
{
	for (int x = 0; x < n->n_nodes; x++) {
		if (x == n->self || !n->peers[x].alive)
			continue;
		const struct pgroup *v = &n->peers[x].g[gi];
		if (v->state == G_PRIMARY || v->handoff_to != TND_NO_NODE)
			return false;
		/* A peer that follows a primary we cannot hear is evidence
		 * that the group is served (a partial partition). */
		if (v->primary != TND_NO_NODE && v->primary != n->self)
			return false;
	}
	return true;
}

/* A held grant becomes a grant: the target may now claim the group. */
static void grant_release(struct node *n, struct actions *out, int gi,
			  const char *reason)
{
	struct group *g = &n->groups[gi];
	if (!g->grant_held)
		return;
	g->grant_held = false;
	g->handoff_until = n->last_step + n->dead;
	n->hb_now = true;
	emit(n, out, strcmp(reason, "barrier_ok") ? LVL_WARN : LVL_INFO,
	     "group.grant", "group=%u to=%s epoch=%llu reason=%s", g->gc->id,
	     node_name(n, g->handoff_to), (unsigned long long)g->handoff_epoch,
	     reason);
}

static void eval_primary(struct node *n, struct actions *out, int gi,
			 mono_t now)
{
	struct group *g = &n->groups[gi];
	int mine = self_class(n, g);
	int best = best_candidate(n, gi, n->self, true);
	uint32_t kb = best < 0 ? 0 : cand_key(n, gi, best);
	uint32_t km = cand_key(n, gi, n->self);

	if (mine == CLASS_NEVER) {
		release(n, out, gi, best, g->why);
		return;
	}
	if (best < 0 || kb <= km) {
		g->better = TND_NO_NODE;
		return;
	}
	/* Someone ranks above us. */
	int kbest = (int)(kb >> 24);
	bool manual = (kb >> 16) & 1;
	if (kbest > mine) {
		release(n, out, gi, best, g->why);
		return;
	}
	if (manual) {
		release(n, out, gi, best, "manual_failover");
		return;
	}
	if (!g->gc->preempt || g->preempt_suspended || n->preempt_all_suspended ||
	    (n->manual[gi].ver && n->manual[gi].value != TND_NO_NODE)) {
		g->better = TND_NO_NODE;
		return;
	}
	if (g->better != best) {
		g->better = best;
		g->better_since = now;
	}
	if (now - g->better_since >= MS_TO_MONO(g->gc->preempt_delay_s * 1000LL))
		release(n, out, gi, best, "preempt");
}

static void eval_secondary(struct node *n, struct actions *out, int gi,
			   mono_t now)
{
	struct group *g = &n->groups[gi];
	enum gstate to = secondary_state(n, gi);
	group_set_state(n, out, gi, to, to == G_SECONDARY ? "eligible" : g->why);
	if (g->grant_held && g->handoff_to != TND_NO_NODE &&
	    now >= g->grant_hold_until)
		grant_release(n, out, gi, "barrier_timeout");
	if (g->handoff_to != TND_NO_NODE &&
	    (now >= g->handoff_until || !n->peers[g->handoff_to].alive)) {
		g->handoff_to = TND_NO_NODE; /* the grant was not taken */
		g->grant_held = false;
	}
	if (!group_vacant(n, gi) || g->handoff_to != TND_NO_NODE ||
	    self_class(n, g) == CLASS_NEVER || n->tilt) {
		g->vacant_since = MONO_NEVER;
		g->elect_at = MONO_NEVER;
		return;
	}
	if (g->vacant_since == MONO_NEVER) {
		g->vacant_since = now;
		g->elect_at = MONO_NEVER;
	}
	int rank = rank_of_self(n, gi);
	mono_t at = g->vacant_since + (mono_t)rank * 2 * n->hb;
	if (g->elect_at == MONO_NEVER || g->elect_at < at) {
		/* Jitter only breaks ties between inconsistent views; it is
		 * paid on every unplanned failover, so keep it small. */
		mono_t j = mono_min(n->hb / 8, MS_TO_MONO(5));
		g->elect_at = at + jitter(n, j);
	}
	if (now >= g->elect_at) {
		/* Claim past every epoch we have heard of. */
		uint64_t e = g->epoch;
		for (int x = 0; x < n->n_nodes; x++)
			if (x != n->self && n->peers[x].g[gi].epoch > e)
				e = n->peers[x].g[gi].epoch;
		become_primary(n, out, gi, next_epoch(e, n->self),
			       rank == 0 ? "elected" : "elected_after_rank_delay");
	}
}

static void evaluate(struct node *n, struct actions *out, mono_t now)
{
	if (n->tilt && now >= n->tilt_until) {
		n->tilt = false;
		emit(n, out, LVL_INFO, "core.tilt", "state=off");
	}
	for (int gi = 0; gi < n->conf->n_groups; gi++) {
		struct group *g = &n->groups[gi];
		if (g->state == G_INIT) {
			if (now < g->observe_until)
				continue;
			group_set_state(n, out, gi, secondary_state(n, gi),
					"observed");
		}
		if (g->state == G_PRIMARY)
			eval_primary(n, out, gi, now);
		else
			eval_secondary(n, out, gi, now);
	}
}

/* --- public ------------------------------------------------------------------ */

/* Group slot gi as at start-up: observing until a dead interval and a
 * heartbeat have passed, no order, and every peer's view "not heard yet"
 * (following nobody, so a peer that never advertises the group - it runs a
 * configuration without it - does not make it look served). */
static void group_init(struct node *n, int gi, const struct tnd_group_conf *gc,
		       mono_t now)
{
	struct group *g = &n->groups[gi];
	memset(g, 0, sizeof(*g));
	g->gc = gc;
	g->state = G_INIT;
	g->since = now;
	g->observe_until = now + n->dead + n->hb;
	g->primary = TND_NO_NODE;
	g->vacant_since = MONO_NEVER;
	g->elect_at = MONO_NEVER;
	g->handoff_to = TND_NO_NODE;
	g->better = TND_NO_NODE;
	n->manual[gi].value = TND_NO_NODE;
	n->manual[gi].ver = 0;
	for (int x = 0; x < n->n_nodes; x++) {
		struct pgroup *v = &n->peers[x].g[gi];
		memset(v, 0, sizeof(*v));
		v->state = G_INIT;
		v->klass = CLASS_NEVER;
		v->primary = TND_NO_NODE;
		v->handoff_to = TND_NO_NODE;
	}
}

struct node *node_new(const struct node_params *p, mono_t now)
{
	const struct tnd_conf *c = p->conf;
	if (!c || p->self < 0 || p->self >= c->n_nodes || c->n_nodes < 2 ||
	    c->n_nodes > TND_NODES_MAX || c->n_groups < 1 ||
	    c->n_groups > TND_GROUPS_MAX || c->heartbeat_ms == 0 ||
	    c->dead_after == 0 || p->incarnation == 0)
		return NULL;
	struct node *n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	n->conf = c;
	n->self = p->self;
	n->n_nodes = c->n_nodes;
	n->n_links = c->nodes[p->self].n_links;
	n->incarnation = p->incarnation;
	n->rng = p->seed ? p->seed : 0x9e3779b97f4a7c15ULL;
	snprintf(n->version, sizeof(n->version), "%s", p->version ? p->version : "?");
	n->proto_min = p->proto_min;
	n->proto_max = p->proto_max;
	n->hb = MS_TO_MONO(c->heartbeat_ms);
	n->dead = n->hb * (mono_t)c->dead_after;
	n->started = now;
	n->last_step = now;
	n->hb_next = now;
	n->sync_gate = p->sync_gate;
	n->sync_group_id = p->sync_group_id;
	n->barrier_timeout = MS_TO_MONO(p->barrier_timeout_ms ? p->barrier_timeout_ms : 1000);
	for (int gi = 0; gi < c->n_groups; gi++)
		group_init(n, gi, &c->groups[gi], now);
	return n;
}

void node_free(struct node *n)
{
	free(n);
}

static void tilt_check(struct node *n, struct actions *out, mono_t now)
{
	mono_t gap = now - n->last_step;
	if (gap <= n->dead / 2)
		return;
	/* We were not run for a while: what we did not hear says nothing about
	 * the peers. Pretend we heard every live peer's links just now, and
	 * hold elections until we have observed for a dead interval. */
	for (int x = 0; x < n->n_nodes; x++)
		for (int l = 0; l < n->n_links; l++)
			if (n->peers[x].link_up[l])
				n->peers[x].link_rx[l] = now;
	n->tilt = true;
	n->tilt_until = now + n->dead;
	emit(n, out, LVL_WARN, "core.tilt", "state=on stall_ms=%lld",
	     (long long)MONO_TO_MS(gap));
}

int node_step(struct node *n, const struct ev *ev, mono_t now,
	      struct actions *out)
{
	int rc = 0;
	if (now < n->last_step)
		now = n->last_step; /* monotonic by contract; be defensive */
	tilt_check(n, out, now);
	n->last_step = now;

	switch (ev->type) {
	case EV_TICK:
		break;
	case EV_RECV:
		rc = on_recv(n, ev, now, out);
		break;
	case EV_IFACE: {
		const char *name = ev->u.iface.ifname;
		int i;
		for (i = 0; i < n->n_ifaces; i++)
			if (strcmp(n->ifaces[i].name, name) == 0)
				break;
		if (i == n->n_ifaces) {
			if (n->n_ifaces >= IFACES_MAX)
				break; /* only monitored ones matter; table bounded */
			n->n_ifaces++;
			snprintf(n->ifaces[i].name, sizeof(n->ifaces[i].name), "%s", name);
			n->ifaces[i].up = !ev->u.iface.up; /* force an event below */
		}
		if (n->ifaces[i].up != ev->u.iface.up) {
			n->ifaces[i].up = ev->u.iface.up;
			emit(n, out, LVL_INFO, "iface.state", "iface=%s to=%s",
			     name, ev->u.iface.up ? "up" : "down");
		}
		break;
	}
	case EV_SYNC:
		if (n->synced != ev->u.sync.synced) {
			n->synced = ev->u.sync.synced;
			n->hb_now = true;
			emit(n, out, LVL_INFO, "sessions.sync", "in_sync=%d",
			     n->synced);
		}
		break;
	case EV_BARRIER: {
		int gi = conf_group_index(n->conf, ev->u.barrier.group_id);
		if (gi >= 0 && n->groups[gi].grant_held)
			grant_release(n, out, gi, ev->u.barrier.ok ? "barrier_ok"
								    : "barrier_failed");
		break;
	}
	case EV_SHUTDOWN:
		n->shutdown = true;
		emit(n, out, LVL_INFO, "node.shutdown", "reason=requested");
		n->hb_now = true;
		break;
	}
	check_links(n, out, now);
	evaluate(n, out, now);
	if (n->hb_now || now >= n->hb_next)
		send_heartbeats(n, out, now);
	return rc;
}

mono_t node_next_wake(const struct node *n)
{
	mono_t t = n->hb_next;
	if (n->hb_now)
		t = n->last_step; /* reconfigured: evaluate and announce at once */
	if (n->iface_grace_until > n->last_step)
		t = mono_min(t, n->iface_grace_until);
	if (n->tilt)
		t = mono_min(t, n->tilt_until);
	for (int x = 0; x < n->n_nodes; x++) {
		if (x == n->self)
			continue;
		for (int l = 0; l < n->n_links; l++)
			if (n->peers[x].link_up[l])
				t = mono_min(t, n->peers[x].link_rx[l] + peer_dead(n, x));
	}
	for (int gi = 0; gi < n->conf->n_groups; gi++) {
		const struct group *g = &n->groups[gi];
		if (g->state == G_INIT && g->observe_until > n->last_step)
			t = mono_min(t, g->observe_until);
		t = mono_min(t, g->elect_at);
		if (g->handoff_to != TND_NO_NODE)
			t = mono_min(t, g->grant_held ? g->grant_hold_until
						      : g->handoff_until);
		if (g->state == G_PRIMARY && g->better != TND_NO_NODE)
			t = mono_min(t, g->better_since +
					    MS_TO_MONO(g->gc->preempt_delay_s * 1000LL));
	}
	return t;
}

/* The node list as far as this core depends on it: count, names, order,
 * links per node (arrays are indexed by node and link). */
static bool same_nodes(const struct node *n, const struct tnd_conf *c)
{
	if (c->n_nodes != n->n_nodes)
		return false;
	for (int i = 0; i < c->n_nodes; i++)
		if (strcmp(c->nodes[i].name, n->conf->nodes[i].name) != 0 ||
		    c->nodes[i].n_links != n->conf->nodes[i].n_links)
			return false;
	return true;
}

static int monitor_index(const struct tnd_group_conf *gc, const char *name)
{
	for (int i = 0; i < gc->n_monitors; i++)
		if (strcmp(gc->monitors[i], name) == 0)
			return i;
	return -1;
}

int node_reconfigure(struct node *n, const struct tnd_conf *conf,
		     bool sync_gate, uint8_t sync_group_id, mono_t now,
		     struct actions *out)
{
	if (!n || !conf || !same_nodes(n, conf) || conf->n_groups < 1 ||
	    conf->n_groups > TND_GROUPS_MAX || conf->heartbeat_ms == 0 ||
	    conf->dead_after == 0)
		return TND_EINVAL;
	for (int i = 0; i < conf->n_groups; i++)
		for (int k = 0; k < i; k++)
			if (conf->groups[k].id == conf->groups[i].id)
				return TND_EINVAL; /* groups are matched by id */
	if (now < n->last_step)
		now = n->last_step;
	tilt_check(n, out, now); /* judged with the old intervals */
	n->last_step = now;

	/* Where each new group's state comes from (old index, or -1: new),
	 * read while n->conf is still the old configuration. */
	const struct tnd_conf *old = n->conf;
	int from[TND_GROUPS_MAX];
	bool kept[TND_GROUPS_MAX] = { false };
	int added = 0, removed = 0;
	for (int gi = 0; gi < conf->n_groups; gi++) {
		from[gi] = conf_group_index(old, conf->groups[gi].id);
		if (from[gi] >= 0)
			kept[from[gi]] = true;
		else
			added++;
	}
	/* A dropped group's VIPs are the driver's to reconcile: an ACT_VIPS
	 * names a group of the current configuration, and this one is gone. */
	for (int oi = 0; oi < old->n_groups; oi++) {
		if (kept[oi])
			continue;
		removed++;
		bool was = n->groups[oi].state == G_PRIMARY;
		emit(n, out, was ? LVL_WARN : LVL_INFO, "group.removed",
		     "group=%u was_primary=%s", old->groups[oi].id,
		     was ? "true" : "false");
	}

	bool fresh_any = false;
	bool grace = now < n->iface_grace_until;
	static const struct group zero_group;
	struct group og[TND_GROUPS_MAX];
	struct order om[TND_GROUPS_MAX];
	memcpy(og, n->groups, sizeof(og));
	memcpy(om, n->manual, sizeof(om));
	for (int gi = 0; gi < TND_GROUPS_MAX; gi++) {
		n->groups[gi] = zero_group; /* no pointer into the old conf */
		n->manual[gi] = (struct order){ .value = TND_NO_NODE };
	}
	for (int x = 0; x < n->n_nodes; x++) {
		struct pgroup opg[TND_GROUPS_MAX];
		memcpy(opg, n->peers[x].g, sizeof(opg));
		memset(n->peers[x].g, 0, sizeof(n->peers[x].g));
		for (int gi = 0; gi < conf->n_groups; gi++)
			if (from[gi] >= 0)
				n->peers[x].g[gi] = opg[from[gi]];
	}
	for (int gi = 0; gi < conf->n_groups; gi++) {
		if (from[gi] < 0)
			continue;
		const struct tnd_group_conf *ngc = &conf->groups[gi];
		const struct group *o = &og[from[gi]];
		struct group *g = &n->groups[gi];
		*g = *o;
		g->gc = ngc;
		g->fresh_monitors = 0;
		for (int i = 0; i < ngc->n_monitors; i++) {
			int j = monitor_index(o->gc, ngc->monitors[i]);
			if (j < 0)
				fresh_any = true;
			if (j < 0 || (grace && ((o->fresh_monitors >> j) & 1)))
				g->fresh_monitors |= 1u << i;
		}
		/* Rank and interval may have changed: the next evaluation
		 * schedules the claim again from vacant_since. */
		g->elect_at = MONO_NEVER;
		n->manual[gi] = om[from[gi]];
	}

	n->conf = conf;
	n->hb = MS_TO_MONO(conf->heartbeat_ms);
	n->dead = n->hb * (mono_t)conf->dead_after;
	if (fresh_any && n->iface_grace_until < now + n->dead)
		n->iface_grace_until = now + n->dead;
	for (int gi = 0; gi < conf->n_groups; gi++) {
		if (from[gi] >= 0)
			continue;
		group_init(n, gi, &conf->groups[gi], now);
		emit(n, out, LVL_INFO, "group.added", "group=%u",
		     conf->groups[gi].id);
	}

	n->sync_gate = sync_gate;
	n->sync_group_id = sync_group_id;
	for (int gi = 0; gi < conf->n_groups; gi++) {
		const struct group *g = &n->groups[gi];
		/* A grant held for a sync barrier that no longer applies. */
		if (g->grant_held && g->handoff_to != TND_NO_NODE &&
		    !(sync_gate && g->gc->id == sync_group_id))
			grant_release(n, out, gi, "sync_gate_off");
	}
	emit(n, out, LVL_INFO, "node.reconfigured",
	     "groups=%d added=%d removed=%d heartbeat_ms=%u dead_after=%u sync_gate=%d sync_group=%u",
	     conf->n_groups, added, removed, conf->heartbeat_ms,
	     conf->dead_after, sync_gate, sync_group_id);
	/* Evaluated (eligibility, preemption, vacancies) and announced at the
	 * next step, which node_next_wake() makes due now. */
	n->hb_now = true;
	return 0;
}

static uint64_t new_version(struct node *n)
{
	n->lamport++;
	return (n->lamport << 8) | (uint64_t)(n->self + 1);
}


/* Why node x cannot take group gi, or NULL. */
static const char *cannot_take(const struct node *n, int gi, int x, char *buf,
			       size_t len)
{
	if (n->groups[gi].gc->priority[x] == 0)
		return "its priority for the group is 0";
	if (x != n->self && !n->peers[x].alive)
		return "it is not alive";
	if (!ready(n, gi, x))
		return "it is still starting (observing the cluster)";
	if (n->maint[x].value)
		return "it is in maintenance";
	int k = class_of(n, gi, x);
	if (k != CLASS_OK) {
		if (x == n->self) {
			self_class_why(n, &n->groups[gi], buf, len);
			return buf;
		}
		return "it is not eligible (monitored interface down or shutting down)";
	}
	return NULL;
}

void node_suspend_preempt(struct node *n, bool on)
{
	n->preempt_all_suspended = on;
	for (int gi = 0; gi < n->conf->n_groups; gi++)
		n->groups[gi].preempt_suspended = on;
}

int node_admin(struct node *n, const struct admin_req *req, mono_t now,
	       struct actions *out, char *why, size_t why_len)
{
	char buf[96];
	int gi = -1;
	if (now < n->last_step)
		now = n->last_step;
	tilt_check(n, out, now); /* a stall may end with an admin request */
	n->last_step = now;
	if (req->op == ADM_FAILOVER || req->op == ADM_FAILOVER_RESET) {
		gi = conf_group_index(n->conf, req->group_id);
		if (gi < 0)
			return tnd_refuse(why, why_len, TND_ENOENT,
				      "no redundancy group %d", req->group_id);
	}
	if (req->target != TND_NO_NODE &&
	    (req->target < 0 || req->target >= n->n_nodes))
		return tnd_refuse(why, why_len, TND_ENOENT, "no such node");

	switch (req->op) {
	case ADM_FAILOVER: {
		int cur = n->groups[gi].primary;
		int to = req->target;
		if (to == TND_NO_NODE) {
			to = best_candidate(n, gi, cur, true);
			if (to < 0 || class_of(n, gi, to) != CLASS_OK)
				return tnd_refuse(why, why_len, TND_EREFUSED,
					      "group %d: no other node is eligible",
					      req->group_id);
		}
		const char *no = cannot_take(n, gi, to, buf, sizeof(buf));
		if (no)
			return tnd_refuse(why, why_len, TND_EREFUSED,
				      "group %d cannot move to %s: %s",
				      req->group_id, node_name(n, to), no);
		adopt_order(n, out, ORDER_MANUAL, req->group_id, to,
			    new_version(n), "admin");
		break;
	}
	case ADM_FAILOVER_RESET:
		adopt_order(n, out, ORDER_MANUAL, req->group_id, TND_NO_NODE,
			    new_version(n), "admin");
		break;
	case ADM_MAINT: {
		int x = req->target == TND_NO_NODE ? n->self : req->target;
		adopt_order(n, out, ORDER_MAINT, x, req->on ? 1 : 0,
			    new_version(n), "admin");
		break;
	}
	case ADM_ACTIVATE: {
		int moved = 0;
		for (int i = 0; i < n->conf->n_groups; i++) {
			if (cannot_take(n, i, n->self, buf, sizeof(buf)))
				continue;
			adopt_order(n, out, ORDER_MANUAL, n->groups[i].gc->id,
				    n->self, new_version(n), "admin_activate");
			moved++;
		}
		if (!moved)
			return tnd_refuse(why, why_len, TND_EREFUSED,
				      "this node is not eligible for any group");
		break;
	}
	case ADM_DEACTIVATE: {
		int stuck = 0, moved = 0;
		for (int i = 0; i < n->conf->n_groups; i++) {
			if (n->groups[i].state != G_PRIMARY)
				continue;
			int to = best_candidate(n, i, n->self, true);
			if (to < 0 || class_of(n, i, to) != CLASS_OK) {
				stuck++;
				continue;
			}
			adopt_order(n, out, ORDER_MANUAL, n->groups[i].gc->id, to,
				    new_version(n), "admin_deactivate");
			moved++;
		}
		if (stuck && !moved)
			return tnd_refuse(why, why_len, TND_EREFUSED,
				      "no other node is eligible to take this node's groups");
		break;
	}
	}
	evaluate(n, out, now);
	send_heartbeats(n, out, now);
	return 0;
}

void node_status(const struct node *n, mono_t now, struct node_status *out)
{
	memset(out, 0, sizeof(*out));
	out->self = n->self;
	out->incarnation = n->incarnation;
	out->maint = n->maint[n->self].value;
	out->tilt = n->tilt;
	out->ctr = n->ctr;
	/* The cluster speaks the highest level every live node supports. */
	uint8_t level = n->proto_max;
	for (int x = 0; x < n->n_nodes; x++) {
		const struct peer *p = &n->peers[x];
		if (x == n->self)
			continue;
		struct node_peer_status *ps = &out->peers[x];
		ps->alive = p->alive;
		ps->ever_seen = p->ever;
		ps->since = p->since;
		snprintf(ps->version, sizeof(ps->version), "%s", p->version);
		ps->proto_min = p->proto_min;
		ps->proto_max = p->proto_max;
		ps->maint = n->maint[x].value;
		for (int l = 0; l < n->n_links; l++) {
			ps->links[l].up = p->link_up[l] && now - p->link_rx[l] < peer_dead(n, x);
			ps->links[l].last_rx = p->link_rx_n[l] ? p->link_rx[l] : 0;
			ps->links[l].rx = p->link_rx_n[l];
			ps->links[l].missed = p->link_missed[l];
			if (p->alive && !ps->links[l].up && out->n_alarms < 8)
				snprintf(out->alarms[out->n_alarms++],
					 sizeof(out->alarms[0]),
					 "link %d to %s down", l, node_name(n, x));
		}
		if (p->alive && p->proto_max && p->proto_max < level)
			level = p->proto_max;
		if (!p->alive && p->ever && out->n_alarms < 8)
			snprintf(out->alarms[out->n_alarms++], sizeof(out->alarms[0]),
				 "peer %s lost", node_name(n, x));
	}
	out->cluster_proto = level;
	out->n_groups = n->conf->n_groups;
	for (int gi = 0; gi < n->conf->n_groups; gi++) {
		const struct group *g = &n->groups[gi];
		struct node_group_status *gs = &out->groups[gi];
		gs->id = g->gc->id;
		gs->state = g->state;
		gs->priority = g->gc->priority[n->self];
		gs->eligible = self_class_why(n, g, gs->why_ineligible,
					      sizeof(gs->why_ineligible)) == CLASS_OK;
		gs->manual = n->manual[gi].ver && n->manual[gi].value != TND_NO_NODE;
		gs->manual_target = gs->manual ? n->manual[gi].value : TND_NO_NODE;
		gs->since = g->since;
		gs->epoch = g->epoch;
		gs->primary = g->state == G_PRIMARY ? n->self : g->primary;
		gs->preempt_suspended = g->preempt_suspended || n->preempt_all_suspended;
		gs->grant_held = g->grant_held && g->handoff_to != TND_NO_NODE;
	}
	if (n->tilt && out->n_alarms < 8)
		snprintf(out->alarms[out->n_alarms++], sizeof(out->alarms[0]),
			 "observing after a stall (tilt)");
}
