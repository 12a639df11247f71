/* sim.c - deterministic simulator for the node core (STYLE, tests layer 3).
 *
 * Runs several node cores in one process over a simulated network with
 * loss, duplication, reordering (random delays), partitions per link,
 * clock skew, crashes and restarts, interface failures and random
 * administrative orders, all drawn from one seed. After every step it
 * checks the safety properties:
 *
 *   P1  at most one node is ever primary of a group in a given epoch;
 *   P2  two nodes are never primary of a group at the same time when the
 *       network between them has been clean (no loss, no partition, no
 *       crash) for longer than the detection bound;
 *   P3  a node never takes a running peer for lost when the network
 *       between them has been clean for twice the detection bound (a false
 *       loss is a needless failover: the flap a heartbeat_ms change could
 *       cause while the nodes switch to it a few moments apart);
 *
 * then heals everything and checks that the cluster converges: exactly one
 * primary per group, every node agreeing on it, and it is the preferred
 * node where preempt is on. A failure prints the seed; `sim --seed N -v`
 * replays it with a trace.
 *
 * Live reconfiguration (node_reconfigure, configuration sync): now and then
 * the chaos draws a new configuration - priorities, preempt, groups added
 * and removed (so the others change position), monitored interfaces,
 * heartbeat_ms, dead_after, session sync on or off - and every node applies
 * it at its own random moment within 1.5 s, in random order, under the
 * same loss and partitions (a node that is down then starts with it). Each
 * node runs on its own heap copy of its configuration, freed as soon as it
 * is replaced, so ASan catches a pointer kept into it. The properties
 * above are checked by group id, and a node must never emit ACT_VIPS or
 * ACT_HOOK for a group its configuration does not have. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <getopt.h>
#include "core/node.h"
#include "core/seal.h"
#include "core/rng.h"

#define SIM_MSGS_MAX 65536
#define NO_TIME INT64_MAX
#define SIM_IDS 8 /* group ids used: 0..SIM_IDS-1 */
#define SIM_GROUPS_MAX 5

struct msg {
	mono_t at; /* global delivery time */
	int from, to, link;
	size_t len;
	uint8_t pkt[WIRE_MTU];
};

#define BARRIERS_MAX 256
struct barrier {
	mono_t at;
	int node;
	uint8_t group_id;
	bool ok;
};

struct simnode {
	struct node *core;
	bool up;
	mono_t down_until;
	uint64_t incarnation;
	double skew;   /* local = global * (1 + skew) + offset */
	mono_t offset;
	bool iface_up;
	enum gstate last[SIM_IDS];      /* by group id */
	uint64_t last_epoch[SIM_IDS];
	struct tnd_conf *conf; /* what it runs (or starts with): its own copy */
	bool sync_gate;
	int gen;               /* configuration generation it runs */
	mono_t apply_at;       /* when it applies s->conf, or NO_TIME */
	uint32_t prev_hb_ms;   /* heartbeat_ms before its last change */
	mono_t hb_switched_at; /* when it changed configuration */
};

struct sim {
	uint64_t rng;
	int verbose;
	struct tnd_conf conf; /* the cluster's latest configuration */
	int gen, n_reconf;
	int n;
	struct simnode nodes[TND_NODES_MAX];
	struct msg *q;
	int nq;
	mono_t now;
	/* network faults */
	double loss, dup;
	bool cut[TND_NODES_MAX][TND_NODES_MAX][TND_LINKS_MAX];
	mono_t disturbed[TND_NODES_MAX][TND_NODES_MAX];
	mono_t both_since[SIM_IDS][TND_NODES_MAX][TND_NODES_MAX];
	/* P1 history: the node primary at each (group id, epoch) */
	int n_hist;
	struct { int id; uint64_t epoch; int node; } hist[8192];
	struct actions *acts;
	bool sync_gate; /* of the latest configuration */
	bool reconf;    /* the chaos reconfigures the cluster */
	int n_barriers;
	struct barrier barriers[BARRIERS_MAX];
	const char *corpus; /* write fuzz seeds here */
	int corpus_n;
	/* statistics */
	long steps, delivered, dropped, elections, failures, same_time_steps;
};

static uint64_t rnd(struct sim *s)
{
	return rng_next(&s->rng);
}

static double rndf(struct sim *s)
{
	return (double)(rnd(s) >> 11) / (double)(1ULL << 53);
}

static int rndi(struct sim *s, int n)
{
	return (int)(rnd(s) % (uint64_t)n);
}

static mono_t local_time(const struct simnode *sn, mono_t global)
{
	return (mono_t)((double)global * (1.0 + sn->skew)) + sn->offset;
}

static mono_t global_time(const struct simnode *sn, mono_t local)
{
	if (local == MONO_NEVER)
		return NO_TIME;
	return (mono_t)((double)(local - sn->offset) / (1.0 + sn->skew)) + 1;
}

static void fail(struct sim *s, const char *fmt, const char *a, int b, int c,
		 long long d)
{
	printf("sim: SAFETY VIOLATION at t=%.3fs: ", (double)s->now / 1e9);
	printf(fmt, a, b, c, d);
	printf("\n");
	s->failures++;
}

static void disturb(struct sim *s, int a, int b)
{
	s->disturbed[a][b] = s->disturbed[b][a] = s->now;
}

static void send_msg(struct sim *s, int from, const struct act *a)
{
	int to = a->u.send.to, link = a->u.send.link;
	if (!s->nodes[to].up || s->cut[from][to][link] || rndf(s) < s->loss) {
		s->dropped++;
		disturb(s, from, to);
		return;
	}
	int copies = rndf(s) < s->dup ? 2 : 1;
	for (int c = 0; c < copies; c++) {
		if (s->nq >= SIM_MSGS_MAX) {
			s->dropped++;
			disturb(s, from, to);
			return;
		}
		struct msg *m = &s->q[s->nq++];
		/* 0.1..3 ms, sometimes up to 30 ms: reorders freely. */
		mono_t d = 100000 + (mono_t)rndi(s, 2900000);
		if (rndf(s) < 0.02)
			d += (mono_t)rndi(s, 27000000);
		m->at = s->now + d;
		m->from = from;
		m->to = to;
		m->link = link;
		m->len = a->u.send.len;
		memcpy(m->pkt, a->u.send.pkt, a->u.send.len);
	}
}

/* Seed inputs for tests/fuzz/fuzz_wire.c: a mode byte (2: authenticated
 * heartbeat body; 1: sealed packet) then the bytes. */
static void write_corpus(struct sim *s, const struct msg *m,
			 const struct wire_hdr *h)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/hb-%02d", s->corpus, s->corpus_n);
	FILE *f = fopen(path, "wb");
	if (f) {
		fputc(2 | (m->link << 2), f);
		fwrite(m->pkt + WIRE_HDR_LEN, 1, h->body_len, f);
		fclose(f);
	}
	struct seal_key key;
	uint8_t secret[32] = { 1, 2, 3 }, sealed[WIRE_MTU + WIRE_TAG_LEN];
	size_t len = 0;
	seal_key_derive(&key, secret, sizeof(secret));
	snprintf(path, sizeof(path), "%s/pkt-%02d", s->corpus, s->corpus_n);
	if (seal_packet(&key, m->pkt, m->len, sealed, sizeof(sealed), &len) == 0 &&
	    (f = fopen(path, "wb"))) {
		fputc(1, f);
		fwrite(sealed, 1, len, f);
		fclose(f);
	}
	s->corpus_n++;
}

/* P3, on node i's event "peer.state peer=X to=lost reason=...". */
static void check_loss(struct sim *s, int i, const char *kv)
{
	if (!strstr(kv, "reason=silent_on_all_links"))
		return;
	const char *p = strstr(kv, "peer=");
	int x = -1;
	for (int k = 0; p && k < s->n; k++) {
		size_t len = strlen(s->conf.nodes[k].name);
		if (strncmp(p + 5, s->conf.nodes[k].name, len) == 0 && p[5 + len] == ' ')
			x = k;
	}
	if (x < 0 || !s->nodes[x].up)
		return;
	const struct simnode *si = &s->nodes[i], *sx = &s->nodes[x];
	uint32_t hb_ms = si->conf->heartbeat_ms;
	if (sx->conf->heartbeat_ms > hb_ms)
		hb_ms = sx->conf->heartbeat_ms;
	if (sx->prev_hb_ms > hb_ms)
		hb_ms = sx->prev_hb_ms;
	mono_t bound = 2 * MS_TO_MONO(hb_ms) * (mono_t)si->conf->dead_after +
		       MS_TO_MONO(31);
	if (s->now - s->disturbed[i][x] > bound) {
		printf("sim: SAFETY VIOLATION at t=%.3fs: P3: %s took %s for lost after %lld ms of clean network\n",
		       (double)s->now / 1e9, s->conf.nodes[i].name,
		       s->conf.nodes[x].name,
		       (long long)MONO_TO_MS(s->now - s->disturbed[i][x]));
		s->failures++;
	}
}

static void run_actions(struct sim *s, int i)
{
	struct actions *out = s->acts;
	if (out->n_dropped) {
		printf("sim: node %d dropped %d actions (bound too small)\n", i,
		       out->n_dropped);
		s->failures++;
	}
	for (int k = 0; k < out->n; k++) {
		const struct act *a = &out->a[k];
		switch (a->type) {
		case ACT_SEND:
			send_msg(s, i, a);
			break;
		case ACT_EVENT:
			if (s->verbose || a->u.event.level == LVL_ERROR)
				printf("%10.4f %s %s %s\n", (double)s->now / 1e9,
				       s->conf.nodes[i].name, a->u.event.name,
				       a->u.event.kv);
			if (a->u.event.level == LVL_ERROR)
				s->failures++;
			if (strcmp(a->u.event.name, "peer.state") == 0)
				check_loss(s, i, a->u.event.kv);
			break;
		case ACT_BARRIER:
			/* The session-sync driver answers after a round trip,
			 * fails when the target is down, or (rarely) never
			 * answers, which the core's timeout must cover. */
			if (rndi(s, 20) != 0 && s->n_barriers < BARRIERS_MAX) {
				struct barrier *b = &s->barriers[s->n_barriers++];
				b->at = s->now + 100000 + (mono_t)rndi(s, 5000000);
				b->node = i;
				b->group_id = a->u.barrier.group_id;
				b->ok = s->nodes[a->u.barrier.target].up;
			}
			break;
		case ACT_VIPS:
		case ACT_HOOK: {
			int id = a->type == ACT_VIPS ? a->u.vips.group_id
						     : a->u.hook.group_id;
			if (conf_group_index(s->nodes[i].conf, id) < 0) {
				printf("sim: %s emitted %s for group %d, which its configuration does not have\n",
				       s->conf.nodes[i].name,
				       a->type == ACT_VIPS ? "ACT_VIPS" : "ACT_HOOK", id);
				s->failures++;
			}
			break;
		}
		}
	}
	actions_reset(out);
}

/* Node i's state of group `id` in its status, G_INIT when it does not
 * have the group (its configuration differs during a reconfiguration). */
static const struct node_group_status *status_group(const struct node_status *st,
						    int id)
{
	for (int k = 0; k < st->n_groups; k++)
		if (st->groups[k].id == id)
			return &st->groups[k];
	return NULL;
}

static void record_states(struct sim *s)
{
	static struct node_status st[TND_NODES_MAX];
	for (int i = 0; i < s->n; i++) {
		if (s->nodes[i].up)
			node_status(s->nodes[i].core, local_time(&s->nodes[i], s->now), &st[i]);
	}
	for (int id = 0; id < SIM_IDS; id++) {
		for (int i = 0; i < s->n; i++) {
			struct simnode *sn = &s->nodes[i];
			const struct node_group_status *g =
				sn->up ? status_group(&st[i], id) : NULL;
			enum gstate now_st = g ? g->state : G_INIT;
			if (now_st == G_PRIMARY &&
			    (sn->last[id] != G_PRIMARY ||
			     g->epoch != sn->last_epoch[id])) {
				uint64_t e = g->epoch;
				sn->last_epoch[id] = e;
				s->elections++;
				for (int h = 0; h < s->n_hist; h++)
					if (s->hist[h].id == id && s->hist[h].epoch == e &&
					    s->hist[h].node != i)
						fail(s, "P1: %s and node %d both primary of group %d in epoch %lld",
						     s->conf.nodes[i].name, s->hist[h].node, id,
						     (long long)e);
				if (s->n_hist < (int)(sizeof(s->hist) / sizeof(s->hist[0]))) {
					s->hist[s->n_hist].id = id;
					s->hist[s->n_hist].epoch = e;
					s->hist[s->n_hist].node = i;
					s->n_hist++;
				}
			}
			sn->last[id] = now_st;
		}
		/* P2. Two nodes that hear each other resolve a double claim
		 * with their next heartbeat: one interval plus the longest
		 * delay. The interval is the longer of the two nodes', and of
		 * the one a node ran before a change within the window (the
		 * heartbeat after the last lost one was due on that one). */
		for (int i = 0; i < s->n; i++)
			for (int j = i + 1; j < s->n; j++) {
				if (s->nodes[i].last[id] != G_PRIMARY ||
				    s->nodes[j].last[id] != G_PRIMARY) {
					s->both_since[id][i][j] = NO_TIME;
					continue;
				}
				mono_t from = s->both_since[id][i][j];
				if (from == NO_TIME)
					from = s->both_since[id][i][j] = s->now;
				if (s->disturbed[i][j] > from)
					from = s->disturbed[i][j];
				uint32_t hb_ms = 0;
				for (int k = 0; k < 2; k++) {
					const struct simnode *sk = &s->nodes[k ? j : i];
					if (sk->conf->heartbeat_ms > hb_ms)
						hb_ms = sk->conf->heartbeat_ms;
					if (from <= sk->hb_switched_at && sk->prev_hb_ms > hb_ms)
						hb_ms = sk->prev_hb_ms;
				}
				mono_t overlap_max = MS_TO_MONO(hb_ms) + MS_TO_MONO(31);
				if (s->now - from > overlap_max)
					fail(s, "P2: %s and node %d both primary of group %d for %lld ms on a clean network",
					     s->conf.nodes[i].name, j, id,
					     (long long)MONO_TO_MS(s->now - from));
			}
	}
}

/* The driver reports every monitored interface after a start or a
 * reconfiguration: lan0 as the chaos left it, wan0 always up. */
static void feed_ifaces(struct sim *s, int i, mono_t lt)
{
	struct simnode *sn = &s->nodes[i];
	struct ev ev = { .type = EV_IFACE };
	ev.u.iface.ifname = "lan0";
	ev.u.iface.up = sn->iface_up;
	node_step(sn->core, &ev, lt, s->acts);
	run_actions(s, i);
	ev.u.iface.ifname = "wan0";
	ev.u.iface.up = true;
	node_step(sn->core, &ev, lt, s->acts);
	run_actions(s, i);
}

static void node_boot(struct sim *s, int i)
{
	struct simnode *sn = &s->nodes[i];
	struct node_params p = {
		.conf = sn->conf, .self = i, .incarnation = ++sn->incarnation,
		.seed = rnd(s), .version = "sim", .proto_min = 1, .proto_max = 1,
		.sync_gate = sn->sync_gate, .sync_group_id = 1, .barrier_timeout_ms = 200,
	};
	mono_t lt = local_time(sn, s->now);
	sn->core = node_new(&p, lt);
	sn->up = true;
	for (int a = 0; a < s->n; a++)
		disturb(s, i, a);
	feed_ifaces(s, i, lt);
	if (sn->sync_gate && rndi(s, 2)) {
		struct ev se = { .type = EV_SYNC };
		se.u.sync.synced = true;
		node_step(sn->core, &se, lt, s->acts);
		run_actions(s, i);
	}
}

static void node_crash(struct sim *s, int i, mono_t for_ns)
{
	struct simnode *sn = &s->nodes[i];
	if (!sn->up)
		return;
	if (s->verbose)
		printf("%10.4f %s CRASH for %lld ms\n", (double)s->now / 1e9,
		       s->conf.nodes[i].name, (long long)MONO_TO_MS(for_ns));
	node_free(sn->core);
	sn->core = NULL;
	sn->up = false;
	sn->down_until = s->now + for_ns;
	for (int a = 0; a < s->n; a++)
		disturb(s, i, a);
}

static void step_node(struct sim *s, int i, const struct ev *ev)
{
	struct simnode *sn = &s->nodes[i];
	int rc = node_step(sn->core, ev, local_time(sn, s->now), s->acts);
	if (rc < 0 && s->verbose > 1)
		printf("%10.4f %s dropped a message: %s\n", (double)s->now / 1e9,
		       s->conf.nodes[i].name, tnd_strerror(rc));
	s->steps++;
	run_actions(s, i);
}

static void build_conf(struct sim *s)
{
	struct tnd_conf *c = &s->conf;
	memset(c, 0, sizeof(*c));
	snprintf(c->cluster_name, sizeof(c->cluster_name), "sim");
	c->cluster_id = 7;
	c->port = 7400;
	c->heartbeat_ms = rndi(s, 2) ? 100 : 20;
	c->dead_after = 3 + (uint32_t)rndi(s, 2);
	c->n_nodes = s->n;
	int links = 1 + rndi(s, 2);
	for (int i = 0; i < s->n; i++) {
		snprintf(c->nodes[i].name, sizeof(c->nodes[i].name), "n%d", i);
		c->nodes[i].n_links = links;
		for (int l = 0; l < links; l++) {
			c->nodes[i].links[l].family = 2;
			c->nodes[i].links[l].bytes[0] = 203;
			c->nodes[i].links[l].bytes[3] = (uint8_t)(l * 50 + i + 1);
		}
	}
	c->n_groups = 1 + 1 + rndi(s, 3);
	for (int gi = 0; gi < c->n_groups; gi++) {
		struct tnd_group_conf *g = &c->groups[gi];
		g->id = (uint8_t)gi;
		g->preempt = gi > 0 && rndi(s, 2);
		g->preempt_delay_s = (uint32_t)rndi(s, 2);
		for (int i = 0; i < s->n; i++)
			g->priority[i] = (uint8_t)(rndi(s, 5) == 0 ? 0 : 10 + rndi(s, 240));
		g->priority[rndi(s, s->n)] = 250; /* at least one candidate */
		if (gi > 0) {
			g->n_monitors = 1;
			snprintf(g->monitors[0], sizeof(g->monitors[0]), "lan0");
		}
	}
}

/* --- live reconfiguration ------------------------------------------------ */

static void sim_group(struct sim *s, struct tnd_group_conf *g, bool prio)
{
	if (prio) {
		for (int i = 0; i < s->n; i++)
			g->priority[i] = (uint8_t)(rndi(s, 5) == 0 ? 0 : 10 + rndi(s, 240));
		g->priority[rndi(s, s->n)] = 250; /* at least one candidate */
	}
	if (g->id > 0) {
		g->n_monitors = 1 + rndi(s, 2);
		snprintf(g->monitors[0], sizeof(g->monitors[0]), "lan0");
		snprintf(g->monitors[1], sizeof(g->monitors[1]), "wan0");
	}
}

/* A new configuration of the same cluster: what configuration sync may
 * change in place. Groups stay sorted by id (as conf_parse leaves them),
 * so adding or removing one moves the others. */
static void mutate_conf(struct sim *s, struct tnd_conf *c)
{
	for (int gi = 0; gi < c->n_groups; gi++) {
		struct tnd_group_conf *g = &c->groups[gi];
		if (rndi(s, 3) == 0)
			sim_group(s, g, rndi(s, 2));
		if (g->id > 0 && rndi(s, 4) == 0)
			g->preempt = !g->preempt;
		if (rndi(s, 4) == 0)
			g->preempt_delay_s = (uint32_t)rndi(s, 2);
	}
	if (c->n_groups > 2 && rndi(s, 3) == 0) {
		int k = 1 + rndi(s, c->n_groups - 1);
		memmove(&c->groups[k], &c->groups[k + 1],
			(size_t)(c->n_groups - k - 1) * sizeof(c->groups[0]));
		c->n_groups--;
	}
	if (c->n_groups < SIM_GROUPS_MAX && rndi(s, 3) == 0) {
		int id;
		do
			id = 1 + rndi(s, SIM_IDS - 1);
		while (conf_group_index(c, id) >= 0);
		int k = c->n_groups;
		while (k > 0 && c->groups[k - 1].id > id)
			k--;
		memmove(&c->groups[k + 1], &c->groups[k],
			(size_t)(c->n_groups - k) * sizeof(c->groups[0]));
		c->n_groups++;
		struct tnd_group_conf *g = &c->groups[k];
		memset(g, 0, sizeof(*g));
		g->id = (uint8_t)id;
		g->preempt = rndi(s, 2);
		g->preempt_delay_s = (uint32_t)rndi(s, 2);
		sim_group(s, g, true);
	}
	if (rndi(s, 4) == 0) {
		static const uint32_t hbs[] = { 20, 50, 100 };
		c->heartbeat_ms = hbs[rndi(s, 3)];
	}
	if (rndi(s, 4) == 0)
		c->dead_after = 3 + (uint32_t)rndi(s, 2);
}

static bool reconf_pending(const struct sim *s)
{
	for (int i = 0; i < s->n; i++)
		if (s->nodes[i].apply_at != NO_TIME)
			return true;
	return false;
}

/* A committed configuration reaches the nodes at different moments. */
static void reconf_start(struct sim *s)
{
	mutate_conf(s, &s->conf);
	if (rndi(s, 4) == 0)
		s->sync_gate = !s->sync_gate;
	s->gen++;
	s->n_reconf++;
	for (int i = 0; i < s->n; i++)
		s->nodes[i].apply_at = s->now + MS_TO_MONO(rndi(s, 1500));
	if (s->verbose)
		printf("%10.4f RECONFIGURE gen=%d groups=%d hb=%u x %u sync_gate=%d\n",
		       (double)s->now / 1e9, s->gen, s->conf.n_groups,
		       s->conf.heartbeat_ms, s->conf.dead_after, s->sync_gate);
}

/* Node i applies the latest configuration (a node that is down starts
 * with it), then its driver reports the monitored interfaces. */
static void reconf_apply(struct sim *s, int i)
{
	struct simnode *sn = &s->nodes[i];
	sn->apply_at = NO_TIME;
	struct tnd_conf *c = malloc(sizeof(*c));
	if (!c) {
		s->failures++;
		return;
	}
	*c = s->conf;
	mono_t lt = local_time(sn, s->now);
	if (sn->up) {
		int rc = node_reconfigure(sn->core, c, s->sync_gate, 1, lt, s->acts);
		if (rc != 0) {
			printf("sim: %s refused generation %d: %s\n",
			       s->conf.nodes[i].name, s->gen, tnd_strerror(rc));
			s->failures++;
			free(c);
			return;
		}
	}
	sn->prev_hb_ms = sn->conf->heartbeat_ms;
	sn->hb_switched_at = s->now;
	memset(sn->conf, 0x5a, sizeof(*sn->conf)); /* no one may still read it */
	free(sn->conf);
	sn->conf = c;
	sn->sync_gate = s->sync_gate;
	sn->gen = s->gen;
	if (s->verbose)
		printf("%10.4f %s applies gen=%d%s\n", (double)s->now / 1e9,
		       s->conf.nodes[i].name, s->gen, sn->up ? "" : " (down)");
	if (sn->up) {
		run_actions(s, i);
		feed_ifaces(s, i, lt);
	}
}

static void chaos(struct sim *s)
{
	int a = rndi(s, s->n), b = rndi(s, s->n);
	int r = rndi(s, 100);
	struct admin_req req = { .target = TND_NO_NODE };
	char why[128];
	if (s->verbose > 1)
		printf("%10.4f chaos r=%d a=n%d b=n%d\n", (double)s->now / 1e9, r, a, b);
	if (r < 15) { /* partition a link between a and b (one way or both) */
		int l = rndi(s, s->conf.nodes[0].n_links);
		s->cut[a][b][l] = true;
		if (rndi(s, 2))
			s->cut[b][a][l] = true;
		disturb(s, a, b);
	} else if (r < 30) { /* heal some link */
		for (int l = 0; l < TND_LINKS_MAX; l++)
			s->cut[a][b][l] = s->cut[b][a][l] = false;
	} else if (r < 36) { /* isolate a node completely */
		for (int x = 0; x < s->n; x++)
			for (int l = 0; l < TND_LINKS_MAX; l++)
				s->cut[a][x][l] = s->cut[x][a][l] = true;
		for (int x = 0; x < s->n; x++)
			disturb(s, a, x);
	} else if (r < 44) { /* crash, or a clean stop half the time */
		if (s->nodes[a].up && rndi(s, 2)) {
			struct ev ev = { .type = EV_SHUTDOWN };
			step_node(s, a, &ev);
		}
		node_crash(s, a, MS_TO_MONO(50 + rndi(s, 3000)));
	} else if (r < 52) { /* monitored interface flips */
		if (s->nodes[a].up) {
			s->nodes[a].iface_up = !s->nodes[a].iface_up;
			struct ev ev = { .type = EV_IFACE };
			ev.u.iface.ifname = "lan0";
			ev.u.iface.up = s->nodes[a].iface_up;
			step_node(s, a, &ev);
		}
	} else if (r < 72 && s->nodes[a].up) { /* administrative orders */
		int k = rndi(s, 6);
		req.group_id = s->conf.groups[rndi(s, s->conf.n_groups)].id;
		if (k == 0) {
			req.op = ADM_FAILOVER;
			req.target = rndi(s, 2) ? b : TND_NO_NODE;
		} else if (k == 1) {
			req.op = ADM_FAILOVER_RESET;
		} else if (k == 2) {
			req.op = ADM_MAINT;
			req.target = b;
			req.on = rndi(s, 3) == 0;
		} else if (k == 3) {
			req.op = ADM_ACTIVATE;
		} else if (k == 4) {
			req.op = ADM_DEACTIVATE;
		} else {
			req.op = ADM_MAINT;
			req.target = b;
			req.on = false;
		}
		node_admin(s->nodes[a].core, &req,
			   local_time(&s->nodes[a], s->now), s->acts, why,
			   sizeof(why));
		run_actions(s, a);
	} else if (r < 80) {
		s->loss = rndi(s, 3) == 0 ? rndf(s) * 0.3 : 0;
		s->dup = rndf(s) * 0.05;
	} else if (r < 86) {
		if (s->sync_gate && s->nodes[a].up) {
			struct ev ev = { .type = EV_SYNC };
			ev.u.sync.synced = rndi(s, 3) != 0;
			step_node(s, a, &ev);
		}
	} else if (r < 92 && s->reconf && !reconf_pending(s)) {
		reconf_start(s);
	}
}

/* Run until global time `until`, with chaos events every `chaos_ms` on
 * average (0 = none). */
static void run(struct sim *s, mono_t until, int chaos_ms)
{
	mono_t next_chaos = chaos_ms ? s->now + MS_TO_MONO(rndi(s, 2 * chaos_ms)) : NO_TIME;
	while (s->now < until) {
		mono_t t = until;
		int who = -1, mi = -1;
		for (int i = 0; i < s->n; i++) {
			struct simnode *sn = &s->nodes[i];
			mono_t w = sn->up ? global_time(sn, node_next_wake(sn->core))
					  : sn->down_until;
			if (w < t) {
				t = w;
				who = i;
			}
		}
		for (int k = 0; k < s->nq; k++)
			if (s->q[k].at < t) {
				t = s->q[k].at;
				mi = k;
				who = -1;
			}
		int bi = -1;
		for (int k = 0; k < s->n_barriers; k++)
			if (s->barriers[k].at < t) {
				t = s->barriers[k].at;
				bi = k;
				mi = -1;
				who = -1;
			}
		int ai = -1;
		for (int i = 0; i < s->n; i++)
			if (s->nodes[i].apply_at < t) {
				t = s->nodes[i].apply_at;
				ai = i;
				bi = -1;
				mi = -1;
				who = -1;
			}
		if (next_chaos < t) {
			t = next_chaos;
			who = -1;
			mi = -1;
			bi = -1;
			ai = -1;
		}
		if (t > s->now) {
			s->now = t;
			s->same_time_steps = 0;
		} else if (++s->same_time_steps > 10000) {
			printf("sim: LIVELOCK at t=%.6fs: no progress in 10000 steps\n",
			       (double)s->now / 1e9);
			s->failures++;
			return;
		}
		if (ai >= 0) {
			reconf_apply(s, ai);
		} else if (bi >= 0) {
			struct barrier b = s->barriers[bi];
			s->barriers[bi] = s->barriers[--s->n_barriers];
			if (s->nodes[b.node].up) {
				struct ev ev = { .type = EV_BARRIER };
				ev.u.barrier.group_id = b.group_id;
				ev.u.barrier.ok = b.ok;
				step_node(s, b.node, &ev);
			}
		} else if (mi >= 0) {
			struct msg m = s->q[mi];
			s->q[mi] = s->q[--s->nq];
			struct simnode *sn = &s->nodes[m.to];
			if (!sn->up) {
				s->dropped++;
				continue;
			}
			struct wire_hdr h;
			if (wire_hdr_decode(m.pkt, m.len, &h) != 0) {
				printf("sim: undecodable packet\n");
				s->failures++;
				continue;
			}
			struct ev ev = { .type = EV_RECV };
			ev.u.recv.link = m.link;
			ev.u.recv.hdr = &h;
			ev.u.recv.body = m.pkt + WIRE_HDR_LEN;
			ev.u.recv.body_len = h.body_len;
			s->delivered++;
			if (s->corpus && s->delivered % 97 == 1 && s->corpus_n < 24)
				write_corpus(s, &m, &h);
			step_node(s, m.to, &ev);
		} else if (who >= 0) {
			struct simnode *sn = &s->nodes[who];
			if (!sn->up)
				node_boot(s, who);
			else {
				struct ev ev = { .type = EV_TICK };
				step_node(s, who, &ev);
			}
		} else if (t == next_chaos) {
			chaos(s);
			next_chaos = s->now + MS_TO_MONO(1 + rndi(s, 2 * chaos_ms));
		} else {
			s->now = until;
		}
		record_states(s);
		if (s->failures)
			return;
	}
}

static int converge_check(struct sim *s)
{
	static struct node_status st[TND_NODES_MAX];
	int bad = 0;
	for (int i = 0; i < s->n; i++)
		node_status(s->nodes[i].core, local_time(&s->nodes[i], s->now), &st[i]);
	for (int gi = 0; gi < s->conf.n_groups; gi++) {
		const struct tnd_group_conf *g = &s->conf.groups[gi];
		const struct node_group_status *ng[TND_NODES_MAX];
		int prim = -1, count = 0, best = -1;
		for (int i = 0; i < s->n; i++) {
			ng[i] = status_group(&st[i], g->id);
			if (!ng[i]) {
				printf("sim: n%d does not have group %d after healing\n", i, g->id);
				return bad + 1;
			}
			if (st[i].n_groups != s->conf.n_groups) {
				printf("sim: n%d has %d groups, not %d\n", i, st[i].n_groups,
				       s->conf.n_groups);
				return bad + 1;
			}
		}
		for (int i = 0; i < s->n; i++) {
			if (ng[i]->state == G_PRIMARY) {
				prim = i;
				count++;
			}
			if (g->priority[i] && (best < 0 || g->priority[i] > g->priority[best]))
				best = i;
		}
		if (count != 1) {
			printf("sim: group %d has %d primaries after healing\n", g->id, count);
			bad++;
			continue;
		}
		for (int i = 0; i < s->n; i++)
			if (ng[i]->primary != prim) {
				printf("sim: node %d believes group %d primary is %d, not %d\n",
				       i, g->id, ng[i]->primary, prim);
				bad++;
			}
		if (g->priority[prim] == 0) {
			printf("sim: group %d primary n%d has priority 0\n", g->id, prim);
			bad++;
		}
		if (g->preempt && g->priority[prim] != g->priority[best]) {
			printf("sim: group %d (preempt) primary n%d prio %d, best n%d prio %d\n",
			       g->id, prim, g->priority[prim], best, g->priority[best]);
			bad++;
		}
	}
	return bad;
}

static const char *corpus_dir;

static bool reconf_on = true;
static long total_reconf;

static int run_seed(uint64_t seed, int verbose, double chaos_s)
{
	struct sim *s = calloc(1, sizeof(*s));
	s->q = calloc(SIM_MSGS_MAX, sizeof(struct msg));
	s->acts = calloc(1, sizeof(struct actions));
	s->rng = seed * 0x9E3779B97F4A7C15ULL + 1;
	s->verbose = verbose;
	s->corpus = corpus_dir;
	for (int g = 0; g < SIM_IDS; g++)
		for (int i = 0; i < TND_NODES_MAX; i++)
			for (int j = 0; j < TND_NODES_MAX; j++)
				s->both_since[g][i][j] = NO_TIME;
	s->n = 2 + rndi(s, 4);
	build_conf(s);
	s->sync_gate = rndi(s, 2);
	s->reconf = reconf_on;
	for (int i = 0; i < s->n; i++) {
		struct simnode *sn = &s->nodes[i];
		sn->conf = malloc(sizeof(*sn->conf));
		if (!sn->conf)
			return 1;
		*sn->conf = s->conf;
		sn->sync_gate = s->sync_gate;
		sn->apply_at = NO_TIME;
		sn->skew = (rndf(s) - 0.5) * 0.004; /* +-2000 ppm */
		sn->offset = MS_TO_MONO(rndi(s, 1000000));
		sn->iface_up = true;
		sn->down_until = MS_TO_MONO(rndi(s, 300)); /* staggered boot */
	}
	/* Chaos phase. */
	run(s, (mono_t)(chaos_s * 1e9), 150);
	/* Heal: network clean, everyone up with interfaces up, orders cleared. */
	if (!s->failures) {
		s->loss = s->dup = 0;
		memset(s->cut, 0, sizeof(s->cut));
		for (int i = 0; i < s->n; i++)
			if (s->nodes[i].apply_at != NO_TIME)
				reconf_apply(s, i);
		for (int i = 0; i < s->n; i++) {
			if (!s->nodes[i].up)
				node_boot(s, i);
			if (s->sync_gate) {
				struct ev se = { .type = EV_SYNC };
				se.u.sync.synced = true;
				step_node(s, i, &se);
			}
			if (!s->nodes[i].iface_up) {
				s->nodes[i].iface_up = true;
				struct ev ev = { .type = EV_IFACE };
				ev.u.iface.ifname = "lan0";
				ev.u.iface.up = true;
				step_node(s, i, &ev);
			}
		}
		run(s, s->now + MS_TO_MONO(2000), 0);
		char why[128];
		for (int x = 0; x < s->n; x++) {
			struct admin_req req = { .op = ADM_MAINT, .target = x, .on = false };
			node_admin(s->nodes[0].core, &req, local_time(&s->nodes[0], s->now),
				   s->acts, why, sizeof(why));
			run_actions(s, 0);
		}
		for (int gi = 0; gi < s->conf.n_groups; gi++) {
			struct admin_req req = { .op = ADM_FAILOVER_RESET,
						 .group_id = s->conf.groups[gi].id,
						 .target = TND_NO_NODE };
			node_admin(s->nodes[0].core, &req, local_time(&s->nodes[0], s->now),
				   s->acts, why, sizeof(why));
			run_actions(s, 0);
		}
		run(s, s->now + MS_TO_MONO(4000), 0);
	}
	int bad = s->failures ? (int)s->failures : converge_check(s);
	if (bad)
		printf("sim: seed %llu FAILED (%d nodes, %d groups, hb %u ms x %u, %d reconfigurations); replay: sim --seed %llu -v\n",
		       (unsigned long long)seed, s->n, s->conf.n_groups,
		       s->conf.heartbeat_ms, s->conf.dead_after, s->n_reconf,
		       (unsigned long long)seed);
	else if (verbose)
		printf("sim: seed %llu ok: %ld steps, %ld delivered, %ld dropped, %ld elections, %d reconfigurations\n",
		       (unsigned long long)seed, s->steps, s->delivered, s->dropped,
		       s->elections, s->n_reconf);
	total_reconf += s->n_reconf;
	for (int i = 0; i < s->n; i++) {
		node_free(s->nodes[i].core);
		free(s->nodes[i].conf);
	}
	free(s->q);
	free(s->acts);
	free(s);
	return bad ? 1 : 0;
}

int main(int argc, char **argv)
{
	long seeds = 100;
	long long one = -1;
	unsigned long long first = 1;
	int verbose = 0;
	double chaos_s = 20;
	static const struct option opts[] = {
		{ "seeds", required_argument, 0, 'n' },
		{ "seed", required_argument, 0, 's' },
		{ "first", required_argument, 0, 'f' },
		{ "chaos-s", required_argument, 0, 'c' },
		{ "verbose", no_argument, 0, 'v' },
		{ "corpus", required_argument, 0, 'C' },
		{ "no-reconf", no_argument, 0, 'R' },
		{ 0, 0, 0, 0 },
	};
	int c;
	while ((c = getopt_long(argc, argv, "n:s:f:c:vC:R", opts, NULL)) != -1) {
		switch (c) {
		case 'n': seeds = atol(optarg); break;
		case 's': one = atoll(optarg); break;
		case 'f': first = strtoull(optarg, NULL, 10); break;
		case 'c': chaos_s = atof(optarg); break;
		case 'v': verbose++; break;
		case 'C': corpus_dir = optarg; break;
		case 'R': reconf_on = false; break;
		default:
			fprintf(stderr, "usage: sim [--seeds N] [--first S] [--seed S] [--chaos-s SEC] [-v] [--corpus DIR] [--no-reconf]\n");
			return 2;
		}
	}
	if (one >= 0)
		return run_seed((uint64_t)one, verbose, chaos_s);
	int failed = 0;
	for (long i = 0; i < seeds; i++)
		failed += run_seed(first + (uint64_t)i, verbose, chaos_s);
	printf("sim: %ld seeds, %d failed, %ld live reconfigurations\n", seeds,
	       failed, total_reconf);
	return failed ? 1 : 0;
}
