/* test_node.c - unit tests of the protocol core (src/core/node.c).
 *
 * A small deterministic harness drives two or three cores in one process:
 * a manual clock, a queue of the ACT_SEND packets (delivered with zero
 * latency when the test says so, or dropped per (from, to, link) to model
 * cut links), and a log of every other action with the time it was
 * emitted. Unlike tests/sim it has no randomness of its own: each test
 * builds one situation and checks the states through node_status() and
 * the ACT_VIPS / ACT_HOOK / ACT_EVENT actions, so a failure names the
 * behaviour that broke (SPEC section 1; node.c's header comment).
 *
 * After every step the harness checks that node_next_wake() is not in the
 * past (a daemon would otherwise spin) and that the core reported no
 * broken invariant (LVL_ERROR) or dropped action. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/node.h"
#include "core/wire.h"

#define A 0
#define B 1
#define C 2
#define G0 0 /* group index 0: group id 0 */
#define G1 1 /* group index 1: group id 1 */
#define HB_MS 100
#define DEAD_MS (3 * HB_MS)
#define OBSERVE_MS (DEAD_MS + HB_MS) /* node.c: observe one dead interval + 1 hb */
#define MS(x) MS_TO_MONO(x)

#define NODES 3
#define Q_MAX 1024
#define LOG_MAX 8192

struct pkt {
	int from, to, link;
	size_t len;
	uint8_t b[WIRE_MTU];
};

struct logent {
	long seq;
	mono_t at;
	int node;
	enum act_type type;
	int group;
	bool add;
	enum gstate state;
	int target; /* ACT_BARRIER */
	char name[48];
	char kv[ACT_EVENT_LEN];
};

struct h {
	struct tnd_conf conf;
	int n;
	struct node *node[NODES];
	uint64_t inc[NODES];
	bool paused[NODES];
	mono_t now;
	bool cut[NODES][NODES][TND_LINKS_MAX];
	mono_t last_rx[NODES][NODES]; /* last delivery from -> to */
	uint64_t max_seq[NODES][NODES]; /* newest seq accepted from -> to */
	struct pkt q[Q_MAX];
	int nq;
	struct actions acts;
	struct logent log[LOG_MAX];
	int nlog;
	long seq;
	long steps;
	bool sync_gate; /* node_params.sync_gate for nodes started from now */
	/* Each node runs on its own heap copy of the configuration, freed as
	 * soon as it is replaced (node_reconfigure), so that ASan catches a
	 * pointer the core kept into an old one. */
	struct tnd_conf *nconf[NODES];
	int watch_id; /* group id checked for two primaries after every step, or -1 */
};

/* --- configuration ------------------------------------------------------- */

static void conf_build(struct tnd_conf *c, int n_nodes)
{
	static const uint8_t prio[NODES] = { 200, 100, 50 };
	memset(c, 0, sizeof(*c));
	snprintf(c->cluster_name, sizeof(c->cluster_name), "unit");
	c->cluster_id = 7;
	c->port = 7400;
	c->heartbeat_ms = HB_MS;
	c->dead_after = 3;
	c->n_nodes = n_nodes;
	for (int i = 0; i < n_nodes; i++) {
		snprintf(c->nodes[i].name, sizeof(c->nodes[i].name), "%c",
			 'a' + i);
		c->nodes[i].n_links = 2;
		for (int l = 0; l < 2; l++) {
			c->nodes[i].links[l].family = 2; /* AF_INET */
			c->nodes[i].links[l].bytes[0] = l ? 198 : 203;
			c->nodes[i].links[l].bytes[1] = l ? 51 : 0;
			c->nodes[i].links[l].bytes[2] = l ? 100 : 113;
			c->nodes[i].links[l].bytes[3] = (uint8_t)(i + 1);
		}
	}
	c->n_groups = 2;
	for (int gi = 0; gi < 2; gi++) {
		struct tnd_group_conf *g = &c->groups[gi];
		g->id = (uint8_t)gi;
		for (int i = 0; i < n_nodes; i++)
			g->priority[i] = prio[i];
	}
	struct tnd_group_conf *g1 = &c->groups[1];
	g1->n_vips = 1;
	g1->vips[0].addr.family = 2;
	g1->vips[0].addr.bytes[0] = 192;
	g1->vips[0].addr.bytes[2] = 2;
	g1->vips[0].addr.bytes[3] = 1;
	g1->vips[0].prefix_len = 24;
	snprintf(g1->vips[0].ifname, sizeof(g1->vips[0].ifname), "lan0");
	g1->n_monitors = 1;
	snprintf(g1->monitors[0], sizeof(g1->monitors[0]), "lan0");
}

/* --- harness ----------------------------------------------------------- */

static int h_setup2(void **state)
{
	struct h *h = calloc(1, sizeof(*h));
	if (!h)
		return -1;
	h->n = 2;
	h->watch_id = -1;
	conf_build(&h->conf, 2);
	*state = h;
	return 0;
}

static int h_setup3(void **state)
{
	int rc = h_setup2(state);
	if (rc == 0) {
		struct h *h = *state;
		h->n = 3;
		conf_build(&h->conf, 3);
	}
	return rc;
}

static int h_teardown(void **state)
{
	struct h *h = *state;
	for (int i = 0; i < NODES; i++) {
		node_free(h->node[i]);
		free(h->nconf[i]);
	}
	free(h);
	return 0;
}

static void h_take_actions(struct h *h, int i)
{
	struct actions *out = &h->acts;
	if (out->n_dropped)
		fail_msg("node %d dropped %d actions", i, out->n_dropped);
	for (int k = 0; k < out->n; k++) {
		const struct act *a = &out->a[k];
		if (a->type == ACT_SEND) {
			if (h->nq >= Q_MAX)
				fail_msg("packet queue full");
			assert_int_not_equal(a->u.send.to, i);
			assert_in_range(a->u.send.to, 0, h->n - 1);
			assert_in_range(a->u.send.link, 0, 1);
			struct pkt *p = &h->q[h->nq++];
			p->from = i;
			p->to = a->u.send.to;
			p->link = a->u.send.link;
			p->len = a->u.send.len;
			memcpy(p->b, a->u.send.pkt, p->len);
			continue;
		}
		if (h->nlog >= LOG_MAX)
			fail_msg("action log full");
		struct logent *e = &h->log[h->nlog++];
		memset(e, 0, sizeof(*e));
		e->seq = h->seq++;
		e->at = h->now;
		e->node = i;
		e->type = a->type;
		e->group = -1;
		if (a->type == ACT_VIPS) {
			e->group = a->u.vips.group_id;
			e->add = a->u.vips.add;
		} else if (a->type == ACT_HOOK) {
			e->group = a->u.hook.group_id;
			e->state = a->u.hook.state;
		} else if (a->type == ACT_BARRIER) {
			e->group = a->u.barrier.group_id;
			e->target = a->u.barrier.target;
		} else {
			snprintf(e->name, sizeof(e->name), "%s", a->u.event.name);
			snprintf(e->kv, sizeof(e->kv), "%s", a->u.event.kv);
			if (a->u.event.level == LVL_ERROR)
				fail_msg("node %d: %s %s", i, e->name, e->kv);
		}
	}
	actions_reset(out);
}

/* A daemon sleeps until node_next_wake(): a time in the past would make it
 * spin. */
static void h_check_wake(struct h *h, int i)
{
	mono_t w = node_next_wake(h->node[i]);
	if (w < h->now)
		fail_msg("node %d: next wake %lld ns is before now %lld ns", i,
			 (long long)w, (long long)h->now);
}

static void h_check_watch(struct h *h);

static int h_step(struct h *h, int i, const struct ev *ev)
{
	assert_non_null(h->node[i]);
	int rc = node_step(h->node[i], ev, h->now, &h->acts);
	h->steps++;
	h_take_actions(h, i);
	h_check_wake(h, i);
	h_check_watch(h);
	return rc;
}

static void h_tick(struct h *h, int i)
{
	struct ev ev = { .type = EV_TICK };
	assert_int_equal(h_step(h, i, &ev), 0);
}

static void h_iface(struct h *h, int i, const char *name, bool up)
{
	struct ev ev = { .type = EV_IFACE };
	ev.u.iface.ifname = name;
	ev.u.iface.up = up;
	assert_int_equal(h_step(h, i, &ev), 0);
}

/* Start (or restart with a newer incarnation) node i at the current time;
 * its monitored interface lan0 is reported up. */
static struct tnd_conf *h_conf_dup(const struct tnd_conf *c)
{
	struct tnd_conf *copy = malloc(sizeof(*copy));
	assert_non_null(copy);
	*copy = *c;
	return copy;
}

/* A restarted node comes up with the configuration it last ran (the
 * committed one), h->conf before any reconfiguration. */
static void h_start(struct h *h, int i)
{
	struct tnd_conf *c = h_conf_dup(h->nconf[i] ? h->nconf[i] : &h->conf);
	struct node_params p = {
		.conf = c, .self = i, .incarnation = ++h->inc[i],
		.seed = 0x1234 + (uint64_t)i, .version = "test-1",
		.proto_min = 1, .proto_max = 1, .sync_gate = h->sync_gate,
		.sync_group_id = 1,
	};
	node_free(h->node[i]);
	free(h->nconf[i]);
	h->nconf[i] = c;
	h->node[i] = node_new(&p, h->now);
	assert_non_null(h->node[i]);
	h->paused[i] = false;
	h_iface(h, i, "lan0", true);
}

static int h_admin(struct h *h, int i, const struct admin_req *req, char *why,
		   size_t len)
{
	int rc = node_admin(h->node[i], req, h->now, &h->acts, why, len);
	h_take_actions(h, i);
	h_check_wake(h, i);
	return rc;
}

/* Feed one packet as it is to node `to`; returns node_step's result. */
static int h_recv_hdr(struct h *h, int to, int link, const struct wire_hdr *hdr,
		      const uint8_t *body, size_t body_len)
{
	struct ev ev = { .type = EV_RECV };
	ev.u.recv.link = link;
	ev.u.recv.hdr = hdr;
	ev.u.recv.body = body;
	ev.u.recv.body_len = body_len;
	return h_step(h, to, &ev);
}

static int h_recv(struct h *h, const struct pkt *p)
{
	struct wire_hdr hdr;
	assert_int_equal(wire_hdr_decode(p->b, p->len, &hdr), 0);
	int rc = h_recv_hdr(h, p->to, p->link, &hdr, p->b + WIRE_HDR_LEN,
			    hdr.body_len);
	if (rc == 0) {
		h->last_rx[p->from][p->to] = h->now;
		if (hdr.seq > h->max_seq[p->from][p->to])
			h->max_seq[p->from][p->to] = hdr.seq;
	}
	return rc;
}

static void h_dequeue(struct h *h, int k, struct pkt *out)
{
	*out = h->q[k];
	memmove(&h->q[k], &h->q[k + 1], (size_t)(h->nq - k - 1) * sizeof(h->q[0]));
	h->nq--;
}

/* Deliver queued packets in order, now, with zero latency. `limit`
 * packets at most (those queued before the call when limit = h->nq), or
 * until the queue is quiet (limit < 0). Packets to a paused node stay
 * queued; to a stopped node or over a cut link they are dropped. Every
 * packet a healthy peer sent must be accepted. */
static void h_deliver_n(struct h *h, int limit)
{
	int done = 0, k = 0;
	static struct pkt p;
	while (k < h->nq && (limit < 0 || done < limit)) {
		if (h->paused[h->q[k].to]) {
			k++;
			continue;
		}
		h_dequeue(h, k, &p);
		done++;
		if (done > 20000)
			fail_msg("packets never stop flowing");
		if (!h->node[p.to] || h->cut[p.from][p.to][p.link])
			continue;
		int rc = h_recv(h, &p);
		if (rc != 0)
			fail_msg("node %d refused a packet from %d: %s", p.to,
				 p.from, tnd_strerror(rc));
	}
}

static void h_deliver_all(struct h *h)
{
	h_deliver_n(h, -1);
}

/* Only the packets queued now, not the ones they cause. */
static void h_deliver_pending(struct h *h)
{
	h_deliver_n(h, h->nq);
}

/* Advance the clock to `until` (absolute, ns), waking each running node
 * when it asked to and delivering everything at once. */
static void h_run_to(struct h *h, mono_t until)
{
	int same = 0;
	for (;;) {
		mono_t t = MONO_NEVER;
		for (int i = 0; i < h->n; i++)
			if (h->node[i] && !h->paused[i]) {
				mono_t w = node_next_wake(h->node[i]);
				if (w < t)
					t = w;
			}
		if (t > until)
			break;
		if (t > h->now) {
			h->now = t;
			same = 0;
		} else if (++same > 1000) {
			fail_msg("no progress at t=%lld ms", (long long)MONO_TO_MS(h->now));
		}
		for (int i = 0; i < h->n; i++)
			if (h->node[i] && !h->paused[i] &&
			    node_next_wake(h->node[i]) <= h->now)
				h_tick(h, i);
		h_deliver_all(h);
	}
	if (until > h->now)
		h->now = until;
}

static void h_run_ms(struct h *h, int ms)
{
	h_run_to(h, h->now + MS(ms));
}

static void h_cut(struct h *h, int x, int y, int link, bool cut)
{
	h->cut[x][y][link] = h->cut[y][x][link] = cut;
}

static void h_cut_all(struct h *h, int x, int y, bool cut)
{
	for (int l = 0; l < TND_LINKS_MAX; l++)
		h_cut(h, x, y, l, cut);
}

static struct node_status *h_status(struct h *h, int i)
{
	static struct node_status st[NODES];
	node_status(h->node[i], h->now, &st[i]);
	return &st[i];
}

static enum gstate h_state(struct h *h, int i, int gi)
{
	return h_status(h, i)->groups[gi].state;
}

/* Group `id` in node i's status (its index changes when groups are
 * added or removed), or NULL when node i does not have it. */
static const struct node_group_status *h_gs(struct h *h, int i, int id)
{
	struct node_status *st = h_status(h, i);
	for (int k = 0; k < st->n_groups; k++)
		if (st->groups[k].id == id)
			return &st->groups[k];
	return NULL;
}

static enum gstate h_state_id(struct h *h, int i, int id)
{
	const struct node_group_status *g = h_gs(h, i, id);
	if (!g)
		fail_msg("node %d has no group %d", i, id);
	return g->state;
}

static int h_primaries_id(struct h *h, int id)
{
	int c = 0;
	for (int i = 0; i < h->n; i++) {
		if (!h->node[i])
			continue;
		const struct node_group_status *g = h_gs(h, i, id);
		if (g && g->state == G_PRIMARY)
			c++;
	}
	return c;
}

static void h_check_watch(struct h *h)
{
	if (h->watch_id >= 0 && h_primaries_id(h, h->watch_id) > 1)
		fail_msg("two primaries of group %d at t=%lld ms", h->watch_id,
			 (long long)MONO_TO_MS(h->now));
}

static int h_primaries(struct h *h, int gi)
{
	int c = 0;
	for (int i = 0; i < h->n; i++)
		if (h->node[i] && h_state(h, i, gi) == G_PRIMARY)
			c++;
	return c;
}

static void h_log_clear(struct h *h)
{
	h->nlog = 0;
}

/* Log queries; node -1 = any node. */
static int h_count_vips(struct h *h, int node, int group, bool add)
{
	int c = 0;
	for (int k = 0; k < h->nlog; k++) {
		const struct logent *e = &h->log[k];
		if (e->type == ACT_VIPS && (node < 0 || e->node == node) &&
		    e->group == group && e->add == add)
			c++;
	}
	return c;
}

static const struct logent *h_find_vips(struct h *h, int node, int group, bool add)
{
	for (int k = 0; k < h->nlog; k++) {
		const struct logent *e = &h->log[k];
		if (e->type == ACT_VIPS && e->node == node && e->group == group &&
		    e->add == add)
			return e;
	}
	return NULL;
}

static int h_count_type(struct h *h, int node, enum act_type t)
{
	int c = 0;
	for (int k = 0; k < h->nlog; k++)
		if (h->log[k].type == t && (node < 0 || h->log[k].node == node))
			c++;
	return c;
}

/* First event `name` on `node` whose kv contains every word of `words`
 * (space-separated), or NULL. */
static const struct logent *h_find_event(struct h *h, int node, const char *name,
					 const char *words)
{
	for (int k = 0; k < h->nlog; k++) {
		const struct logent *e = &h->log[k];
		if (e->type != ACT_EVENT || (node >= 0 && e->node != node) ||
		    strcmp(e->name, name) != 0)
			continue;
		char buf[128];
		snprintf(buf, sizeof(buf), "%s", words);
		bool all = true;
		for (char *sp, *w = strtok_r(buf, " ", &sp); w;
		     w = strtok_r(NULL, " ", &sp))
			if (!strstr(e->kv, w))
				all = false;
		if (all)
			return e;
	}
	return NULL;
}

/* Print the action log (call it from a failing test while debugging). */
static void __attribute__((unused)) h_dump(struct h *h)
{
	for (int k = 0; k < h->nlog; k++) {
		const struct logent *e = &h->log[k];
		if (e->type == ACT_EVENT)
			printf("%8.3f %c %s %s\n", (double)e->at / 1e9, 'a' + e->node, e->name, e->kv);
		else if (e->type == ACT_VIPS)
			printf("%8.3f %c VIPS group=%d add=%d\n", (double)e->at / 1e9, 'a' + e->node, e->group, e->add);
	}
}

static bool has_alarm(const struct node_status *st, const char *needle)
{
	for (int i = 0; i < st->n_alarms; i++)
		if (strstr(st->alarms[i], needle))
			return true;
	return false;
}

/* Start both (or all three) nodes at t=0 and let a win every group. */
static void h_start_settled(struct h *h)
{
	for (int i = 0; i < h->n; i++)
		h_start(h, i);
	h_run_ms(h, 1000);
	for (int gi = 0; gi < 2; gi++) {
		assert_int_equal(h_state(h, A, gi), G_PRIMARY);
		for (int i = 1; i < h->n; i++)
			assert_int_equal(h_state(h, i, gi), G_SECONDARY);
	}
}

/* Take the last queued packet from -> to on `link` out of the queue. */
static void h_take(struct h *h, int from, int to, int link, struct pkt *out)
{
	for (int k = h->nq - 1; k >= 0; k--)
		if (h->q[k].from == from && h->q[k].to == to &&
		    h->q[k].link == link) {
			h_dequeue(h, k, out);
			return;
		}
	fail_msg("no packet %d -> %d on link %d queued", from, to, link);
}

static uint64_t pkt_seq(const struct pkt *p)
{
	struct wire_hdr hdr;
	assert_int_equal(wire_hdr_decode(p->b, p->len, &hdr), 0);
	return hdr.seq;
}

/* Run until node `from` sends its next round of heartbeats, and leave that
 * round queued (not delivered). */
static void h_hb(struct h *h, int from)
{
	for (int tries = 0; tries < 20; tries++) {
		mono_t w = node_next_wake(h->node[from]);
		if (w - 1 > h->now)
			h_run_to(h, w - 1);
		w = node_next_wake(h->node[from]);
		if (w > h->now)
			h->now = w;
		int nq = h->nq;
		h_tick(h, from);
		for (int k = nq; k < h->nq; k++)
			if (h->q[k].from == from)
				return;
	}
	fail_msg("node %d sends no heartbeats", from);
}

/* --- tests ----------------------------------------------------------------- */

static void test_initial_election(void **state)
{
	struct h *h = *state;
	h_start(h, A);
	h_start(h, B);

	/* Observing: nobody acts before a dead interval plus a heartbeat. */
	h_run_to(h, MS(OBSERVE_MS) - 1);
	assert_int_equal(h_count_type(h, -1, ACT_VIPS), 0);
	for (int gi = 0; gi < 2; gi++) {
		assert_int_equal(h_state(h, A, gi), G_INIT);
		assert_int_equal(h_state(h, B, gi), G_INIT);
	}
	assert_true(h_status(h, A)->peers[B].alive);
	assert_true(h_status(h, B)->peers[A].alive);

	h_run_to(h, MS(1500));
	struct node_status sa = *h_status(h, A), sb = *h_status(h, B);
	for (int gi = 0; gi < 2; gi++) {
		assert_int_equal(sa.groups[gi].state, G_PRIMARY);
		assert_int_equal(sb.groups[gi].state, G_SECONDARY);
		assert_true(sa.groups[gi].eligible);
		assert_true(sb.groups[gi].eligible);
		assert_int_equal(sa.groups[gi].primary, A);
		assert_int_equal(sb.groups[gi].primary, A);
		assert_true(sa.groups[gi].epoch != 0);
		assert_true(sa.groups[gi].epoch == sb.groups[gi].epoch);
		/* Epoch stamps the claimant: (counter << 8) | (node + 1). */
		assert_int_equal(sa.groups[gi].epoch & 0xff, A + 1);
		assert_true(sa.groups[gi].since >= MS(OBSERVE_MS));
		/* The election happened within a few ms of the observe period. */
		assert_true(sa.groups[gi].since <= MS(OBSERVE_MS + 15));
	}
	assert_int_equal(h_count_vips(h, A, 1, true), 1);
	assert_int_equal(h_count_vips(h, -1, 1, false), 0);
	assert_int_equal(h_count_vips(h, B, 1, true), 0);
	/* Group 0 is the control plane; it has no VIPs in this config but
	 * the core still says "primary" with one ACT_VIPS add. */
	assert_int_equal(h_count_vips(h, A, 0, true), 1);
	assert_non_null(h_find_event(h, A, "group.state",
				     "group=1 to=primary reason=elected"));
	/* The primary hook ran once for group 1 on a, secondary on b. */
	int hooks_a = 0, hooks_b = 0;
	for (int k = 0; k < h->nlog; k++) {
		const struct logent *e = &h->log[k];
		if (e->type != ACT_HOOK || e->group != 1)
			continue;
		if (e->node == A && e->state == G_PRIMARY)
			hooks_a++;
		if (e->node == B && e->state == G_PRIMARY)
			fail_msg("b ran the primary hook");
		if (e->node == B && e->state == G_SECONDARY)
			hooks_b++;
	}
	assert_int_equal(hooks_a, 1);
	assert_int_equal(hooks_b, 1);
	assert_int_equal(sa.n_alarms, 0);
	assert_int_equal(sb.n_alarms, 0);
	assert_true(sa.peers[B].links[0].up && sa.peers[B].links[1].up);
	assert_string_equal(sb.peers[A].version, "test-1");
	assert_int_equal(sa.cluster_proto, 1);
}

/* b runs alone for 2 s, then a (higher priority) arrives. */
static void start_b_then_a(struct h *h)
{
	h_start(h, B);
	h_run_to(h, MS(2000));
	assert_int_equal(h_state(h, B, G0), G_PRIMARY);
	assert_int_equal(h_state(h, B, G1), G_PRIMARY);
	/* Alone, b claimed after observing, without waiting for a's rank
	 * delay (a was never seen). */
	assert_true(h_status(h, B)->groups[G1].since <= MS(OBSERVE_MS + 15));
	h_log_clear(h);
	h_start(h, A);
}

static void test_no_preempt_keeps_primary(void **state)
{
	struct h *h = *state;
	start_b_then_a(h);
	h_run_to(h, MS(6000));
	for (int gi = 0; gi < 2; gi++) {
		assert_int_equal(h_state(h, B, gi), G_PRIMARY);
		assert_int_equal(h_state(h, A, gi), G_SECONDARY);
		assert_int_equal(h_status(h, A)->groups[gi].primary, B);
	}
	assert_int_equal(h_count_vips(h, -1, 1, true), 0);
	assert_int_equal(h_count_vips(h, -1, 1, false), 0);
}

static void test_preempt_takes_over_by_handoff(void **state)
{
	struct h *h = *state;
	h->conf.groups[G1].preempt = true;
	h->conf.groups[G1].preempt_delay_s = 0;
	start_b_then_a(h);
	mono_t t_a = h->now;
	h_run_to(h, MS(4000));

	/* Group 1 moved to a; group 0 (no preempt) stayed with b. */
	assert_int_equal(h_state(h, A, G1), G_PRIMARY);
	assert_int_equal(h_state(h, B, G1), G_SECONDARY);
	assert_int_equal(h_state(h, B, G0), G_PRIMARY);
	assert_int_equal(h_state(h, A, G0), G_SECONDARY);
	assert_int_equal(h_status(h, B)->groups[G1].primary, A);
	assert_true(h_status(h, A)->groups[G1].epoch ==
		    h_status(h, B)->groups[G1].epoch);

	/* Planned: b released and granted, a took the grant. */
	assert_non_null(h_find_event(h, B, "group.handoff", "group=1 to=a reason=preempt"));
	assert_non_null(h_find_event(h, A, "group.state", "group=1 to=primary reason=handoff"));
	const struct logent *rm = h_find_vips(h, B, 1, false);
	const struct logent *add = h_find_vips(h, A, 1, true);
	assert_non_null(rm);
	assert_non_null(add);
	assert_true(rm->seq < add->seq);
	/* a was not taken before it had observed the cluster. */
	assert_true(add->at >= t_a + MS(OBSERVE_MS));
	/* A planned move costs one packet latency, not an outage: with zero
	 * latency in this harness the VIPs move in the same instant. */
	if (add->at != rm->at)
		fail_msg("group 1 had no primary for %lld ms during the preempt "
			 "(b released at %lld ms, a took over at %lld ms)",
			 (long long)MONO_TO_MS(add->at - rm->at),
			 (long long)MONO_TO_MS(rm->at),
			 (long long)MONO_TO_MS(add->at));
	assert_int_equal(h_count_vips(h, A, 1, true), 1);
	assert_int_equal(h_count_vips(h, B, 1, false), 1);
}

static void test_preempt_delay(void **state)
{
	struct h *h = *state;
	h->conf.groups[G1].preempt = true;
	h->conf.groups[G1].preempt_delay_s = 2;
	start_b_then_a(h);
	mono_t t_a = h->now;

	/* Not before a has been around for 2 s. */
	h_run_to(h, t_a + MS(2000) - 1);
	assert_int_equal(h_state(h, B, G1), G_PRIMARY);
	assert_int_equal(h_state(h, A, G1), G_SECONDARY);
	assert_int_equal(h_count_vips(h, -1, 1, false), 0);

	h_run_to(h, t_a + MS(2600));
	assert_int_equal(h_state(h, A, G1), G_PRIMARY);
	assert_int_equal(h_state(h, B, G1), G_SECONDARY);
	assert_int_equal(h_state(h, B, G0), G_PRIMARY);
	const struct logent *rm = h_find_vips(h, B, 1, false);
	const struct logent *add = h_find_vips(h, A, 1, true);
	assert_non_null(rm);
	assert_non_null(add);
	assert_true(rm->at >= t_a + MS(2000));
	assert_true(rm->seq < add->seq);
	assert_non_null(h_find_event(h, A, "group.state", "group=1 to=primary reason=handoff"));
}

static void test_one_link_cut(void **state)
{
	struct h *h = *state;
	h_start_settled(h);
	struct node_status before_a = *h_status(h, A);
	h_log_clear(h);

	h_cut(h, A, B, 1, true);
	mono_t t_cut = h->now;
	h_run_ms(h, 5000);

	/* An alarm, never a takeover. */
	assert_int_equal(h_count_type(h, -1, ACT_VIPS), 0);
	assert_int_equal(h_count_type(h, -1, ACT_HOOK), 0);
	assert_null(h_find_event(h, -1, "group.state", ""));
	assert_null(h_find_event(h, -1, "peer.state", ""));
	for (int i = 0; i < 2; i++) {
		struct node_status *st = h_status(h, i);
		int peer = i == A ? B : A;
		assert_true(st->peers[peer].alive);
		assert_true(st->peers[peer].links[0].up);
		assert_false(st->peers[peer].links[1].up);
		/* The link went down a dead interval after the cut. */
		assert_true(st->peers[peer].links[1].last_rx <= t_cut);
		char want[32];
		snprintf(want, sizeof(want), "link 1 to %c down", 'a' + peer);
		if (!has_alarm(st, want))
			fail_msg("node %d: no alarm \"%s\" (%d alarms)", i, want,
				 st->n_alarms);
		assert_non_null(h_find_event(h, i, "link.state", "link=1 to=down"));
		for (int gi = 0; gi < 2; gi++) {
			assert_int_equal(st->groups[gi].state,
					 i == A ? G_PRIMARY : G_SECONDARY);
			assert_true(st->groups[gi].epoch == before_a.groups[gi].epoch);
		}
	}

	h_cut(h, A, B, 1, false);
	h_run_ms(h, HB_MS + 1);
	for (int i = 0; i < 2; i++) {
		struct node_status *st = h_status(h, i);
		int peer = i == A ? B : A;
		assert_true(st->peers[peer].links[1].up);
		assert_int_equal(st->n_alarms, 0);
		assert_non_null(h_find_event(h, i, "link.state", "link=1 to=up"));
	}
	/* Heartbeat loss: the cut link missed about 5 s worth of
	 * heartbeats, the other none. */
	struct node_status *sa = h_status(h, A);
	uint64_t lost1 = sa->peers[B].links[1].missed - before_a.peers[B].links[1].missed;
	assert_in_range(lost1, 5000 / HB_MS - 2, 5000 / HB_MS + 2);
	assert_int_equal(sa->peers[B].links[0].missed, before_a.peers[B].links[0].missed);
	assert_int_equal(h_count_type(h, -1, ACT_VIPS), 0);
}

static void test_all_links_cut(void **state)
{
	struct h *h = *state;
	h_start_settled(h);
	uint64_t epoch_a = h_status(h, A)->groups[G1].epoch;
	h_log_clear(h);

	h_cut_all(h, A, B, true);
	h_run_ms(h, 1000);

	/* b took both groups, promptly. */
	mono_t last = h->last_rx[A][B];
	assert_true(last > 0);
	const struct logent *add = h_find_vips(h, B, 1, true);
	assert_non_null(add);
	mono_t bound = last + MS(DEAD_MS) + MS(10);
	if (add->at > bound)
		fail_msg("b took over %lld ms after a's last heartbeat (bound %d ms)",
			 (long long)MONO_TO_MS(add->at - last), DEAD_MS + 10);
	/* ... and not before a's heartbeats had stopped for a dead interval. */
	assert_true(add->at >= last + MS(DEAD_MS));
	struct node_status *sb = h_status(h, B);
	assert_false(sb->peers[A].alive);
	assert_true(has_alarm(sb, "peer a lost"));
	assert_non_null(h_find_event(h, B, "peer.state", "peer=a to=lost reason=silent_on_all_links"));
	for (int gi = 0; gi < 2; gi++)
		assert_int_equal(sb->groups[gi].state, G_PRIMARY);
	assert_true(sb->groups[G1].epoch > epoch_a);
	assert_int_equal(sb->groups[G1].epoch & 0xff, B + 1);
	/* a cannot tell a dead peer from a cut: it keeps serving. */
	assert_int_equal(h_state(h, A, G1), G_PRIMARY);
	assert_int_equal(h_primaries(h, G1), 2);

	/* Heal: the older claim is fenced within one heartbeat interval. */
	h_log_clear(h);
	h_cut_all(h, A, B, false);
	h_run_ms(h, HB_MS);
	for (int gi = 0; gi < 2; gi++) {
		assert_int_equal(h_primaries(h, gi), 1);
		assert_int_equal(h_state(h, B, gi), G_PRIMARY);
		assert_int_equal(h_state(h, A, gi), G_SECONDARY);
		assert_int_equal(h_status(h, A)->groups[gi].primary, B);
		assert_true(h_status(h, A)->groups[gi].epoch ==
			    h_status(h, B)->groups[gi].epoch);
	}
	assert_non_null(h_find_event(h, A, "group.state",
				     "group=1 from=primary reason=fenced_by_higher_epoch"));
	assert_int_equal(h_count_vips(h, A, 1, false), 1);
	assert_int_equal(h_count_vips(h, B, 1, false), 0);
	h_run_ms(h, 2000);
	assert_int_equal(h_primaries(h, G0), 1);
	assert_int_equal(h_primaries(h, G1), 1);
}

static void test_manual_failover(void **state)
{
	struct h *h = *state;
	h_start_settled(h);
	uint64_t e0 = h_status(h, A)->groups[G1].epoch;
	h_log_clear(h);
	char why[128] = "";

	/* Issued on b, which is not the primary. */
	struct admin_req req = { .op = ADM_FAILOVER, .group_id = 1, .target = B };
	assert_int_equal(h_admin(h, B, &req, why, sizeof(why)), 0);
	/* Nothing moves before a hears of it. */
	assert_int_equal(h_state(h, A, G1), G_PRIMARY);
	assert_int_equal(h_state(h, B, G1), G_SECONDARY);
	h_deliver_all(h);

	const struct logent *rm = h_find_vips(h, A, 1, false);
	const struct logent *add = h_find_vips(h, B, 1, true);
	assert_non_null(rm);
	assert_non_null(add);
	assert_true(rm->seq < add->seq);
	assert_int_equal(h_state(h, B, G1), G_PRIMARY);
	assert_int_equal(h_state(h, A, G1), G_SECONDARY);
	assert_int_equal(h_state(h, A, G0), G_PRIMARY); /* only group 1 */
	assert_int_equal(h_count_vips(h, -1, 0, false), 0);
	assert_true(h_status(h, B)->groups[G1].epoch > e0);
	assert_non_null(h_find_event(h, A, "group.handoff", "group=1 to=b reason=manual_failover"));
	for (int i = 0; i < 2; i++) {
		struct node_status *st = h_status(h, i);
		assert_true(st->groups[G1].manual);
		assert_int_equal(st->groups[G1].manual_target, B);
		assert_false(st->groups[G0].manual);
		assert_int_equal(st->groups[G1].primary, B);
	}
	/* The order holds: a, though preferred, does not take it back. */
	h_run_ms(h, 2000);
	assert_int_equal(h_state(h, B, G1), G_PRIMARY);

	/* Reset, on a this time: the flag clears everywhere. */
	req = (struct admin_req){ .op = ADM_FAILOVER_RESET, .group_id = 1,
				  .target = TND_NO_NODE };
	assert_int_equal(h_admin(h, A, &req, why, sizeof(why)), 0);
	h_run_ms(h, 200);
	for (int i = 0; i < 2; i++) {
		assert_false(h_status(h, i)->groups[G1].manual);
		assert_int_equal(h_status(h, i)->groups[G1].manual_target, TND_NO_NODE);
	}
	assert_int_equal(h_primaries(h, G1), 1);

	/* Refusals change nothing. */
	h_log_clear(h);
	int nq = h->nq;
	req = (struct admin_req){ .op = ADM_FAILOVER, .group_id = 9, .target = B };
	why[0] = 0;
	assert_int_equal(h_admin(h, A, &req, why, sizeof(why)), TND_ENOENT);
	assert_true(why[0] != 0);
	req = (struct admin_req){ .op = ADM_FAILOVER, .group_id = 1, .target = 7 };
	assert_int_equal(h_admin(h, A, &req, why, sizeof(why)), TND_ENOENT);
	assert_int_equal(h->nq, nq);
	assert_int_equal(h->nlog, 0);

	/* Into maintenance: a gives its groups up; failover to a refused. */
	req = (struct admin_req){ .op = ADM_MAINT, .target = A, .on = true };
	assert_int_equal(h_admin(h, B, &req, why, sizeof(why)), 0);
	h_run_ms(h, 200);
	assert_true(h_status(h, A)->maint);
	req = (struct admin_req){ .op = ADM_FAILOVER, .group_id = 0, .target = A };
	why[0] = 0;
	h_log_clear(h);
	assert_int_equal(h_admin(h, B, &req, why, sizeof(why)), TND_EREFUSED);
	if (!strstr(why, "maintenance"))
		fail_msg("refusal does not mention maintenance: \"%s\"", why);
	assert_null(h_find_event(h, -1, "order.manual", ""));
	assert_false(h_status(h, B)->groups[G0].manual);

	/* To a dead node. */
	req = (struct admin_req){ .op = ADM_MAINT, .target = A, .on = false };
	assert_int_equal(h_admin(h, B, &req, why, sizeof(why)), 0);
	h_run_ms(h, 200);
	h_cut_all(h, A, B, true);
	h_run_ms(h, 1000);
	assert_false(h_status(h, B)->peers[A].alive);
	req = (struct admin_req){ .op = ADM_FAILOVER, .group_id = 1, .target = A };
	why[0] = 0;
	assert_int_equal(h_admin(h, B, &req, why, sizeof(why)), TND_EREFUSED);
	if (!strstr(why, "alive"))
		fail_msg("refusal does not say a is not alive: \"%s\"", why);
	/* "Best other node" with nobody else alive. */
	req = (struct admin_req){ .op = ADM_FAILOVER, .group_id = 1,
				  .target = TND_NO_NODE };
	assert_int_equal(h_admin(h, B, &req, why, sizeof(why)), TND_EREFUSED);
	assert_false(h_status(h, B)->groups[G1].manual);
}

static void test_monitored_interface(void **state)
{
	struct h *h = *state;
	h->conf.groups[G1].preempt = true;
	h_start_settled(h);
	h_log_clear(h);

	h_iface(h, A, "lan0", false);
	/* The same step released group 1 with a grant to b. */
	assert_int_equal(h_state(h, A, G1), G_INELIGIBLE);
	assert_int_equal(h_count_vips(h, A, 1, false), 1);
	assert_non_null(h_find_event(h, A, "group.handoff", "group=1 to=b"));
	h_deliver_pending(h);
	assert_int_equal(h_state(h, B, G1), G_PRIMARY);
	assert_non_null(h_find_event(h, B, "group.state", "group=1 to=primary reason=handoff"));
	h_run_ms(h, 1000);

	struct node_status *sa = h_status(h, A);
	assert_int_equal(sa->groups[G1].state, G_INELIGIBLE);
	assert_false(sa->groups[G1].eligible);
	if (!strstr(sa->groups[G1].why_ineligible, "lan0"))
		fail_msg("why_ineligible does not name lan0: \"%s\"",
			 sa->groups[G1].why_ineligible);
	/* Group 0 does not monitor lan0. */
	assert_int_equal(sa->groups[G0].state, G_PRIMARY);
	assert_true(sa->groups[G0].eligible);
	assert_int_equal(h_state(h, B, G1), G_PRIMARY);
	assert_int_equal(h_primaries(h, G1), 1);
	/* Preempt must not hand it back while lan0 is down. */
	assert_int_equal(h_count_vips(h, A, 1, true), 0);

	/* Up again: eligible, and with preempt a takes it back. */
	h_log_clear(h);
	h_iface(h, A, "lan0", true);
	h_run_ms(h, 500);
	sa = h_status(h, A);
	assert_true(sa->groups[G1].eligible);
	assert_string_equal(sa->groups[G1].why_ineligible, "");
	assert_int_equal(sa->groups[G1].state, G_PRIMARY);
	assert_int_equal(h_state(h, B, G1), G_SECONDARY);
	assert_non_null(h_find_event(h, A, "group.state", "group=1 to=primary reason=handoff"));
	assert_int_equal(h_count_vips(h, A, 0, false), 0);
}

static void test_monitored_interface_never_reported(void **state)
{
	struct h *h = *state;
	/* A monitored interface the driver never reported does not exist:
	 * the node is a last resort for the group, not its preferred owner. */
	snprintf(h->conf.groups[G1].monitors[0], TND_IFNAME_MAX, "wan9");
	h_start(h, A);
	h_start(h, B);
	h_run_ms(h, 1000);
	struct node_status *sa = h_status(h, A);
	assert_false(sa->groups[G1].eligible);
	assert_non_null(strstr(sa->groups[G1].why_ineligible, "wan9"));
	assert_int_equal(sa->groups[G0].state, G_PRIMARY);
	/* Both are last resorts for group 1; priority still decides. */
	assert_int_equal(h_primaries(h, G1), 1);
}

static void test_maintenance(void **state)
{
	struct h *h = *state;
	h_start_settled(h);
	h_log_clear(h);
	char why[128];

	struct admin_req req = { .op = ADM_MAINT, .target = TND_NO_NODE, .on = true };
	assert_int_equal(h_admin(h, A, &req, why, sizeof(why)), 0);
	/* a gave every group up at once, with grants. */
	for (int gi = 0; gi < 2; gi++)
		assert_int_not_equal(h_state(h, A, gi), G_PRIMARY);
	assert_int_equal(h_count_vips(h, A, 1, false), 1);
	h_run_ms(h, 500);
	struct node_status *sa = h_status(h, A);
	assert_true(sa->maint);
	for (int gi = 0; gi < 2; gi++) {
		assert_int_equal(sa->groups[gi].state, G_INELIGIBLE);
		assert_false(sa->groups[gi].eligible);
		assert_non_null(strstr(sa->groups[gi].why_ineligible, "maintenance"));
		assert_int_equal(h_state(h, B, gi), G_PRIMARY);
		assert_non_null(h_find_event(h, B, "group.state", gi ? "group=1 to=primary reason=handoff"
								 : "group=0 to=primary reason=handoff"));
	}
	assert_true(h_status(h, B)->peers[A].maint);

	/* Off: eligible again, no preempt so b keeps the groups. */
	req.on = false;
	assert_int_equal(h_admin(h, A, &req, why, sizeof(why)), 0);
	h_run_ms(h, 500);
	sa = h_status(h, A);
	assert_false(sa->maint);
	assert_false(h_status(h, B)->peers[A].maint);
	for (int gi = 0; gi < 2; gi++) {
		assert_int_equal(sa->groups[gi].state, G_SECONDARY);
		assert_true(sa->groups[gi].eligible);
		assert_int_equal(h_state(h, B, gi), G_PRIMARY);
	}
}

static void test_shutdown_hands_over(void **state)
{
	struct h *h = *state;
	h_start_settled(h);
	h_log_clear(h);

	struct ev ev = { .type = EV_SHUTDOWN };
	assert_int_equal(h_step(h, A, &ev), 0);
	/* Same step: every group released, each with a grant to b. */
	for (int gi = 0; gi < 2; gi++) {
		assert_int_not_equal(h_state(h, A, gi), G_PRIMARY);
		char w[32];
		snprintf(w, sizeof(w), "group=%d to=b", gi);
		assert_non_null(h_find_event(h, A, "group.handoff", w));
	}
	assert_int_equal(h_count_vips(h, A, 1, false), 1);
	assert_true(h->nq > 0);
	/* b takes over on the very next delivery, without detection. */
	h_deliver_pending(h);
	for (int gi = 0; gi < 2; gi++)
		assert_int_equal(h_state(h, B, gi), G_PRIMARY);
	const struct logent *add = h_find_vips(h, B, 1, true);
	assert_non_null(add);
	assert_true(add->at == h->now);
	/* A clean stop is a loss known at once, after its grants were taken. */
	const struct logent *lost = h_find_event(h, B, "peer.state",
						 "peer=a to=lost reason=peer_shutdown");
	assert_non_null(lost);
	assert_true(add->seq < lost->seq);
	assert_false(h_status(h, B)->peers[A].alive);
	/* a stays out: it does not claim again while shutting down. */
	h_run_ms(h, 1000);
	for (int gi = 0; gi < 2; gi++) {
		assert_int_equal(h_state(h, B, gi), G_PRIMARY);
		assert_int_not_equal(h_state(h, A, gi), G_PRIMARY);
	}
	assert_int_equal(h_count_vips(h, A, 1, true), 0);
	assert_false(h_status(h, B)->peers[A].alive);

	/* Its next incarnation is a new peer, heard again at once. */
	h_start(h, A);
	h_run_ms(h, 1000);
	assert_true(h_status(h, B)->peers[A].alive);
	for (int gi = 0; gi < 2; gi++) {
		assert_int_equal(h_state(h, A, gi), G_SECONDARY);
		assert_int_equal(h_state(h, B, gi), G_PRIMARY);
	}
}

static void test_replay(void **state)
{
	struct h *h = *state;
	h->conf.groups[G1].preempt = true;
	h_start_settled(h);
	static struct pkt p, p_old, p_new;

	/* The same packet twice. */
	h_hb(h, A);
	h_take(h, A, B, 0, &p);
	h_deliver_all(h);
	uint64_t rep = h_status(h, B)->ctr.rx_replayed;
	uint64_t ok = h_status(h, B)->ctr.rx_ok;
	assert_int_equal(h_recv(h, &p), 0);
	assert_int_equal(h_recv(h, &p), TND_EREPLAY);
	assert_true(h_status(h, B)->ctr.rx_replayed == rep + 1);
	assert_true(h_status(h, B)->ctr.rx_ok == ok + 1);
	/* Also on the other link: the window is per sender, not per link. */
	p.link = 1;
	assert_int_equal(h_recv(h, &p), TND_EREPLAY);
	assert_true(h_status(h, B)->ctr.rx_replayed == rep + 2);

	/* Out of order within the window: accepted once, for liveness. */
	h_hb(h, A);
	h_take(h, A, B, 0, &p_old);
	h_take(h, A, B, 1, &p_new);
	assert_true(pkt_seq(&p_new) > pkt_seq(&p_old));
	assert_int_equal(h_recv(h, &p_new), 0);
	h->now += MS(5);
	ok = h_status(h, B)->ctr.rx_ok;
	assert_int_equal(h_recv(h, &p_old), 0);
	assert_true(h_status(h, B)->ctr.rx_ok == ok + 1);
	assert_true(h_status(h, B)->peers[A].links[0].last_rx == h->now);
	assert_int_equal(h_recv(h, &p_old), TND_EREPLAY);
	h_deliver_all(h);

	/* An older packet refreshes liveness but its state is not applied
	 * over newer state. a's heartbeat from before lan0 went down says
	 * "primary of group 1, fully eligible"; applied after the newer
	 * "ineligible, granted to b", it would make b (preempt on) hand
	 * group 1 back to a, whose lan0 is down. */
	h_hb(h, A);
	h_take(h, A, B, 0, &p_old);
	h_deliver_all(h);
	h_iface(h, A, "lan0", false);
	h_deliver_all(h);
	assert_int_equal(h_state(h, B, G1), G_PRIMARY);
	h_log_clear(h);
	h->now += MS(1);
	assert_int_equal(h_recv(h, &p_old), 0);
	assert_true(h_status(h, B)->peers[A].links[0].last_rx == h->now);
	assert_int_equal(h_state(h, B, G1), G_PRIMARY);
	assert_int_equal(h_count_vips(h, B, 1, false), 0);
	assert_null(h_find_event(h, B, "group.handoff", ""));
	h_deliver_all(h);
	h_run_ms(h, 300);
	assert_int_equal(h_state(h, B, G1), G_PRIMARY);
	assert_int_equal(h_state(h, A, G1), G_INELIGIBLE);

	/* A packet from an older incarnation after a newer one. */
	h_hb(h, A);
	h_take(h, A, B, 0, &p_old);
	h_start(h, A); /* restart: incarnation 2 */
	h_deliver_all(h);
	assert_non_null(h_find_event(h, B, "peer.restart", "peer=a incarnation=2"));
	rep = h_status(h, B)->ctr.rx_replayed;
	assert_int_equal(h_recv(h, &p_old), TND_EREPLAY);
	assert_true(h_status(h, B)->ctr.rx_replayed == rep + 1);
	/* Even with a sequence number far ahead of the new incarnation's. */
	wire_put64(p_old.b + 16, 1000000);
	assert_int_equal(h_recv(h, &p_old), TND_EREPLAY);
	/* Sequence 0 is never sent. */
	h_hb(h, A);
	h_take(h, A, B, 0, &p);
	wire_put64(p.b + 16, 0);
	assert_int_equal(h_recv(h, &p), TND_EREPLAY);
}

static void test_replay_window_edges(void **state)
{
	struct h *h = *state;
	h_start_settled(h);
	static struct pkt held[80];

	/* Hold back a's link-0 packets to b for 80 heartbeats (link 1 keeps
	 * b's view of a alive and moves the window on). */
	for (int k = 0; k < 80; k++) {
		h_hb(h, A);
		h_take(h, A, B, 0, &held[k]);
		h_deliver_all(h);
	}
	uint64_t top = h->max_seq[A][B];
	assert_true(top > pkt_seq(&held[79]));
	assert_true(top - pkt_seq(&held[0]) > 64);
	/* Newest first: inside the 64-packet window (RFC 4303 3.4.3) each is
	 * accepted once; beyond it, refused. */
	int accepted = 0;
	for (int k = 79; k >= 0; k--) {
		uint64_t back = top - pkt_seq(&held[k]);
		int want = back < 64 ? 0 : TND_EREPLAY;
		int rc = h_recv(h, &held[k]);
		if (rc != want)
			fail_msg("seq %llu (%llu behind): got %d, want %d",
				 (unsigned long long)pkt_seq(&held[k]),
				 (unsigned long long)back, rc, want);
		accepted += rc == 0;
	}
	assert_true(accepted >= 30);
	for (int k = 0; k < 80; k++)
		assert_int_equal(h_recv(h, &held[k]), TND_EREPLAY);
}

/* Copy body to out with the group-state record array made inconsistent:
 * its declared record size (the value's first byte) no longer divides the
 * array's length, so the last record would run past its container. Every
 * other TLV is intact, so a decoder must not accept what it read so far.
 * Returns false when body has no such array (TLV type 7). */
static bool corrupt_records(const uint8_t *body, size_t len, uint8_t *out)
{
	struct tlvr r;
	struct tlv t;
	memcpy(out, body, len);
	tlvr_init(&r, body, len);
	while (tlvr_next(&r, &t) == 1) {
		if (t.type != 7 || t.len < 2)
			continue;
		size_t off = (size_t)(t.val - body);
		uint8_t rl = (uint8_t)(t.val[0] + 1);
		while ((t.len - 1u) % rl == 0)
			rl++;
		out[off] = rl;
		return true;
	}
	return false;
}

static void status_sans_counters(struct h *h, int i, struct node_status *st)
{
	node_status(h->node[i], h->now, st);
	memset(&st->ctr, 0, sizeof(st->ctr));
}

static void test_malformed(void **state)
{
	struct h *h = *state;
	h_start_settled(h);
	static struct pkt p;
	static struct node_status before, after;
	static uint8_t body[WIRE_MTU];
	struct wire_hdr hdr;

	h_hb(h, A);
	h_take(h, A, B, 0, &p);
	h_run_to(h, h->now); /* everything due now has run */
	assert_int_equal(wire_hdr_decode(p.b, p.len, &hdr), 0);
	const uint8_t *pb = p.b + WIRE_HDR_LEN;
	struct node_counters c0 = h_status(h, B)->ctr;
	status_sans_counters(h, B, &before);
	int nlog = h->nlog, nq = h->nq;

	/* Truncated last TLV. */
	for (size_t cut = 1; cut <= 3; cut++)
		assert_int_equal(h_recv_hdr(h, B, 0, &hdr, pb, hdr.body_len - cut),
				 TND_EINVAL);
	/* A record array whose last record runs past its container. */
	assert_true(corrupt_records(pb, hdr.body_len, body));
	assert_int_equal(h_recv_hdr(h, B, 0, &hdr, body, hdr.body_len), TND_EINVAL);

	struct node_counters c1 = h_status(h, B)->ctr;
	assert_true(c1.rx_malformed == c0.rx_malformed + 4);
	assert_true(c1.rx_ok == c0.rx_ok);
	assert_true(c1.rx_replayed == c0.rx_replayed);
	status_sans_counters(h, B, &after);
	assert_memory_equal(&before, &after, sizeof(before));
	assert_int_equal(h->nlog, nlog);
	assert_int_equal(h->nq, nq);

	/* Header fields the core checks. */
	struct wire_hdr bad = hdr;
	bad.sender = 5;
	assert_int_equal(h_recv_hdr(h, B, 0, &bad, pb, hdr.body_len), TND_EINVAL);
	bad.sender = 0xff;
	assert_int_equal(h_recv_hdr(h, B, 0, &bad, pb, hdr.body_len), TND_EINVAL);
	bad.sender = B; /* from itself */
	assert_int_equal(h_recv_hdr(h, B, 0, &bad, pb, hdr.body_len), TND_EINVAL);
	assert_int_equal(h_recv_hdr(h, B, 2, &hdr, pb, hdr.body_len), TND_EINVAL);
	assert_int_equal(h_recv_hdr(h, B, -1, &hdr, pb, hdr.body_len), TND_EINVAL);
	bad = hdr;
	bad.cluster_id = 8;
	assert_int_equal(h_recv_hdr(h, B, 0, &bad, pb, hdr.body_len), TND_EINVAL);
	c1 = h_status(h, B)->ctr;
	assert_true(c1.rx_malformed == c0.rx_malformed + 10);
	assert_true(c1.rx_unknown_type == c0.rx_unknown_type);

	/* A message type this level does not know: dropped and counted. */
	bad = hdr;
	bad.type = 99;
	assert_int_not_equal(h_recv_hdr(h, B, 0, &bad, pb, hdr.body_len), 0);
	c1 = h_status(h, B)->ctr;
	assert_true(c1.rx_unknown_type == c0.rx_unknown_type + 1);
	assert_true(c1.rx_malformed == c0.rx_malformed + 10);
	assert_true(c1.rx_ok == c0.rx_ok);

	status_sans_counters(h, B, &after);
	assert_memory_equal(&before, &after, sizeof(before));
	assert_int_equal(h->nlog, nlog);
	assert_int_equal(h->nq, nq);

	/* None of that used up the sequence number: the intact packet is
	 * still accepted. */
	assert_int_equal(h_recv(h, &p), 0);

	/* A TLV type from a newer protocol level, appended: skipped. */
	h_hb(h, A);
	h_take(h, A, B, 0, &p);
	assert_int_equal(wire_hdr_decode(p.b, p.len, &hdr), 0);
	size_t bl = hdr.body_len;
	assert_true(bl + 12 <= sizeof(body));
	memcpy(body, p.b + WIRE_HDR_LEN, bl);
	uint8_t unk[12] = { 0x7f, 0x00, 0x00, 0x08, 1, 2, 3, 4, 5, 6, 7, 8 };
	memcpy(body + bl, unk, sizeof(unk));
	hdr.body_len = (uint16_t)(bl + sizeof(unk));
	assert_int_equal(h_recv_hdr(h, B, 0, &hdr, body, bl + sizeof(unk)), 0);
	h_deliver_all(h);
	h_run_ms(h, 500);
	assert_int_equal(h_state(h, A, G1), G_PRIMARY);
	assert_int_equal(h_state(h, B, G1), G_SECONDARY);
}

static void test_quorum(void **state)
{
	struct h *h = *state; /* three nodes */
	h_start_settled(h);
	h_log_clear(h);

	/* Isolate a, the group 0 primary. */
	h_cut_all(h, A, B, true);
	h_cut_all(h, A, C, true);
	h_run_ms(h, 1500);

	struct node_status *sa = h_status(h, A);
	assert_false(sa->peers[B].alive);
	assert_false(sa->peers[C].alive);
	assert_int_equal(sa->groups[G0].state, G_INELIGIBLE);
	assert_false(sa->groups[G0].eligible);
	if (!strstr(sa->groups[G0].why_ineligible, "majority"))
		fail_msg("why_ineligible: \"%s\"", sa->groups[G0].why_ineligible);
	assert_non_null(h_find_event(h, A, "group.state", "group=0 from=primary"));
	/* The majority side elected a new group 0 primary: b, by priority. */
	assert_int_equal(h_state(h, B, G0), G_PRIMARY);
	assert_int_equal(h_state(h, C, G0), G_SECONDARY);
	assert_int_equal(h_status(h, C)->groups[G0].primary, B);
	assert_int_equal(h_primaries(h, G0), 1);
	/* Group 1 has no quorum rule: the majority serves it, and the
	 * isolated node may too. */
	assert_int_equal(h_state(h, B, G1), G_PRIMARY);
	assert_int_equal(h_state(h, C, G1), G_SECONDARY);
	assert_true(h_primaries(h, G1) >= 1 && h_primaries(h, G1) <= 2);
	/* The lone node does not count itself a majority. */
	assert_true(h_status(h, B)->groups[G0].eligible);
	assert_true(h_status(h, C)->groups[G0].eligible);

	/* Heal: one primary per group, everyone agrees. */
	h_cut_all(h, A, B, false);
	h_cut_all(h, A, C, false);
	h_run_ms(h, 2 * HB_MS);
	for (int gi = 0; gi < 2; gi++) {
		assert_int_equal(h_primaries(h, gi), 1);
		int p = h_status(h, B)->groups[gi].primary;
		assert_true(p >= 0);
		for (int i = 0; i < 3; i++)
			assert_int_equal(h_status(h, i)->groups[gi].primary, p);
	}
	assert_true(h_status(h, A)->groups[G0].eligible);
	h_run_ms(h, 2000);
	assert_int_equal(h_primaries(h, G0), 1);
	assert_int_equal(h_primaries(h, G1), 1);
}

static void test_quorum_lost_one_peer_ok(void **state)
{
	struct h *h = *state; /* three nodes */
	h_start_settled(h);
	h_log_clear(h);
	/* c stops; a and b are still a majority: nothing moves. */
	node_free(h->node[C]);
	h->node[C] = NULL;
	h_run_ms(h, 1500);
	assert_false(h_status(h, A)->peers[C].alive);
	for (int gi = 0; gi < 2; gi++) {
		assert_int_equal(h_state(h, A, gi), G_PRIMARY);
		assert_int_equal(h_state(h, B, gi), G_SECONDARY);
	}
	assert_int_equal(h_count_type(h, -1, ACT_VIPS), 0);
}

static void test_tilt(void **state)
{
	struct h *h = *state;
	h_start_settled(h);
	h_log_clear(h);

	/* b is not run for 2 s (a stall); what a sends meanwhile waits in
	 * b's socket. */
	h->paused[B] = true;
	h_run_ms(h, 2000);
	h->paused[B] = false;

	/* b's timer fires first, before it reads its socket. */
	h_tick(h, B);
	struct node_status *sb = h_status(h, B);
	assert_true(sb->tilt);
	assert_true(has_alarm(sb, "tilt"));
	assert_true(sb->peers[A].alive);
	for (int l = 0; l < 2; l++)
		assert_true(sb->peers[A].links[l].up);
	for (int gi = 0; gi < 2; gi++)
		assert_int_equal(sb->groups[gi].state, G_SECONDARY);
	assert_non_null(h_find_event(h, B, "core.tilt", "state=on"));
	assert_null(h_find_event(h, B, "peer.state", "to=lost"));

	/* Then it reads what queued up meanwhile, and carries on. */
	h_deliver_all(h);
	h_run_ms(h, 1000);
	assert_false(h_status(h, B)->tilt);
	assert_non_null(h_find_event(h, B, "core.tilt", "state=off"));
	for (int gi = 0; gi < 2; gi++) {
		assert_int_equal(h_state(h, A, gi), G_PRIMARY);
		assert_int_equal(h_state(h, B, gi), G_SECONDARY);
	}
	assert_int_equal(h_count_vips(h, B, 1, true), 0);
	assert_null(h_find_event(h, B, "peer.state", "to=lost"));
	assert_false(has_alarm(h_status(h, B), "tilt"));
	/* a, which was run all along, did see b go silent. */
	assert_non_null(h_find_event(h, A, "peer.state", "peer=b to=lost"));
	assert_true(h_status(h, A)->peers[B].alive);
}

static void test_tilt_then_real_loss(void **state)
{
	struct h *h = *state;
	h_start_settled(h);
	/* A stall, and a really is gone when b resumes: b still takes over,
	 * after observing for a dead interval. */
	h->paused[B] = true;
	h_run_ms(h, 2000);
	node_free(h->node[A]);
	h->node[A] = NULL;
	h->nq = 0;
	h->paused[B] = false;
	h_log_clear(h);
	mono_t t_resume = h->now;
	h_tick(h, B);
	assert_true(h_status(h, B)->tilt);
	h_run_ms(h, 1000);
	const struct logent *add = h_find_vips(h, B, 1, true);
	assert_non_null(add);
	assert_true(add->at >= t_resume + MS(DEAD_MS));
	assert_true(add->at <= t_resume + MS(DEAD_MS) + MS(20));
}

/* After every step the harness checks next_wake >= now; here a busy
 * scenario adds the admin path and checks every wake is strictly ahead. */
static void test_next_wake_never_past(void **state)
{
	struct h *h = *state;
	h->conf.groups[G1].preempt = true;
	h->conf.groups[G1].preempt_delay_s = 1;
	h_start_settled(h);
	char why[128];
	long steps0 = h->steps;

	for (int round = 0; round < 3; round++) {
		h_cut(h, A, B, round % 2, true);
		h_run_ms(h, 450);
		h_cut_all(h, A, B, true);
		h_run_ms(h, 700);
		h_cut_all(h, A, B, false);
		h_run_ms(h, 150);
		h_iface(h, A, "lan0", false);
		h_run_ms(h, 333);
		h_iface(h, A, "lan0", true);
		h_run_ms(h, 1200);
		struct admin_req req = { .op = ADM_FAILOVER, .group_id = 0,
					 .target = TND_NO_NODE };
		h_admin(h, round % 2 ? A : B, &req, why, sizeof(why));
		h_run_ms(h, 250);
		/* An admin call just before a node's next wake. */
		h->now = node_next_wake(h->node[A]) - 1;
		req = (struct admin_req){ .op = ADM_FAILOVER_RESET, .group_id = 0,
					  .target = TND_NO_NODE };
		h_admin(h, A, &req, why, sizeof(why));
		h_run_ms(h, 500);
		for (int i = 0; i < 2; i++)
			assert_true(node_next_wake(h->node[i]) > h->now);
	}
	assert_true(h->steps - steps0 > 200);
	/* It converged, too. */
	assert_int_equal(h_primaries(h, G0), 1);
	assert_int_equal(h_primaries(h, G1), 1);
	/* A node that is idle still wakes at least every heartbeat. */
	for (int i = 0; i < 2; i++)
		assert_true(node_next_wake(h->node[i]) <= h->now + MS(HB_MS));
}

/* Cut every link one way only (a -> b): b loses a and takes over; a hears
 * b's higher claim and steps down. One primary, and no flapping. */
static void test_one_way_total_cut(void **state)
{
	struct h *h = *state;
	h_start_settled(h);
	for (int l = 0; l < 2; l++)
		h->cut[A][B][l] = true;
	h_run_ms(h, 1000);
	for (int gi = 0; gi < 2; gi++) {
		assert_int_equal(h_state(h, B, gi), G_PRIMARY);
		assert_int_not_equal(h_state(h, A, gi), G_PRIMARY);
		assert_int_equal(h_status(h, A)->groups[gi].primary, B);
	}
	assert_true(h_status(h, A)->peers[B].alive);
	assert_false(h_status(h, B)->peers[A].alive);
	h_log_clear(h);
	h_run_ms(h, 3000);
	assert_null(h_find_event(h, -1, "group.state", ""));
	assert_int_equal(h_count_type(h, -1, ACT_VIPS), 0);
}

/* One link cut in one direction only: the receiver's side of that link
 * is down, the peer stays alive, and the alarm is raised where the
 * silence is seen. */
static void test_one_link_one_way(void **state)
{
	struct h *h = *state;
	h_start_settled(h);
	h_log_clear(h);
	h->cut[A][B][0] = true; /* link 0 carries sync: still only an alarm */
	h_run_ms(h, 2000);
	struct node_status *sb = h_status(h, B);
	assert_true(sb->peers[A].alive);
	assert_false(sb->peers[A].links[0].up);
	assert_true(sb->peers[A].links[1].up);
	assert_true(has_alarm(sb, "link 0 to a down"));
	struct node_status *sa = h_status(h, A);
	assert_true(sa->peers[B].links[0].up);
	assert_int_equal(sa->n_alarms, 0);
	assert_int_equal(h_count_type(h, -1, ACT_VIPS), 0);
	assert_null(h_find_event(h, -1, "group.state", ""));
}

/* A secondary whose monitored interface is down is still a last resort:
 * when the primary is lost, the group is served. */
static void test_last_resort_takeover(void **state)
{
	struct h *h = *state;
	h_start_settled(h);
	h_iface(h, B, "lan0", false);
	h_run_ms(h, 300);
	assert_int_equal(h_state(h, B, G1), G_INELIGIBLE);
	assert_int_equal(h_state(h, A, G1), G_PRIMARY);
	h_log_clear(h);
	node_free(h->node[A]); /* a crashes */
	h->node[A] = NULL;
	h_run_ms(h, 1000);
	struct node_status *sb = h_status(h, B);
	assert_int_equal(sb->groups[G1].state, G_PRIMARY);
	assert_false(sb->groups[G1].eligible);
	assert_int_equal(sb->groups[G0].state, G_PRIMARY);
	assert_int_equal(h_count_vips(h, B, 1, true), 1);
}

/* Two operators give opposite orders at the same moment on two nodes:
 * last writer wins by (Lamport counter, node), on both nodes alike. */
static void test_concurrent_orders_converge(void **state)
{
	struct h *h = *state;
	h_start_settled(h);
	char why[128];
	struct admin_req to_b = { .op = ADM_FAILOVER, .group_id = 1, .target = B };
	struct admin_req to_a = { .op = ADM_FAILOVER, .group_id = 1, .target = A };
	assert_int_equal(h_admin(h, A, &to_b, why, sizeof(why)), 0);
	assert_int_equal(h_admin(h, B, &to_a, why, sizeof(why)), 0);
	h_run_ms(h, 1000);
	struct node_status sa = *h_status(h, A), sb = *h_status(h, B);
	assert_true(sa.groups[G1].manual && sb.groups[G1].manual);
	assert_int_equal(sa.groups[G1].manual_target, sb.groups[G1].manual_target);
	int target = sa.groups[G1].manual_target;
	/* Equal counters: the higher node index (b's order, "to a") wins. */
	assert_int_equal(target, A);
	assert_int_equal(h_primaries(h, G1), 1);
	assert_int_equal(h_state(h, target, G1), G_PRIMARY);
	/* A later order, given on the node that lost, wins over both. */
	assert_int_equal(h_admin(h, A, &to_b, why, sizeof(why)), 0);
	h_run_ms(h, 500);
	assert_int_equal(h_status(h, A)->groups[G1].manual_target, B);
	assert_int_equal(h_status(h, B)->groups[G1].manual_target, B);
	assert_int_equal(h_state(h, B, G1), G_PRIMARY);
	assert_int_equal(h_primaries(h, G1), 1);
}

static void test_activate_deactivate(void **state)
{
	struct h *h = *state;
	h_start_settled(h);
	char why[128] = "";
	h_log_clear(h);

	struct admin_req req = { .op = ADM_DEACTIVATE, .target = TND_NO_NODE };
	assert_int_equal(h_admin(h, A, &req, why, sizeof(why)), 0);
	h_run_ms(h, 300);
	for (int gi = 0; gi < 2; gi++) {
		assert_int_equal(h_state(h, B, gi), G_PRIMARY);
		assert_int_equal(h_state(h, A, gi), G_SECONDARY);
		assert_int_equal(h_status(h, A)->groups[gi].manual_target, B);
	}
	const struct logent *rm = h_find_vips(h, A, 1, false);
	const struct logent *add = h_find_vips(h, B, 1, true);
	assert_non_null(rm);
	assert_non_null(add);
	assert_true(rm->seq < add->seq);

	req.op = ADM_ACTIVATE;
	assert_int_equal(h_admin(h, A, &req, why, sizeof(why)), 0);
	h_run_ms(h, 300);
	for (int gi = 0; gi < 2; gi++) {
		assert_int_equal(h_state(h, A, gi), G_PRIMARY);
		assert_int_equal(h_status(h, B)->groups[gi].manual_target, A);
	}
	assert_int_equal(h_primaries(h, G0), 1);
	assert_int_equal(h_primaries(h, G1), 1);

	/* Deactivating the only live node has nowhere to go. */
	h_cut_all(h, A, B, true);
	h_run_ms(h, 1000);
	req.op = ADM_DEACTIVATE;
	why[0] = 0;
	assert_int_equal(h_admin(h, A, &req, why, sizeof(why)), TND_EREFUSED);
	assert_true(why[0] != 0);
	assert_int_equal(h_state(h, A, G1), G_PRIMARY);
}

/* A node still observing after its start cannot take a group: an order
 * to move a group to it is refused, not accepted and left hanging. */
static void test_failover_to_starting_node_refused(void **state)
{
	struct h *h = *state;
	h_start(h, B);
	h_run_ms(h, 1000);
	h_start(h, A);
	h_run_ms(h, 100);
	assert_int_equal(h_state(h, A, G1), G_INIT);
	assert_true(h_status(h, B)->peers[A].alive);
	char why[128] = "";
	struct admin_req req = { .op = ADM_FAILOVER, .group_id = 1, .target = A };
	assert_int_equal(h_admin(h, B, &req, why, sizeof(why)), TND_EREFUSED);
	assert_true(why[0] != 0);
	assert_false(h_status(h, B)->groups[G1].manual);
	/* Once it has observed, the same order goes through. */
	h_run_ms(h, OBSERVE_MS);
	assert_int_equal(h_admin(h, B, &req, why, sizeof(why)), 0);
	h_run_ms(h, 100);
	assert_int_equal(h_state(h, A, G1), G_PRIMARY);
	assert_int_equal(h_state(h, B, G1), G_SECONDARY);
}

/* The largest configuration SPEC section 3 allows: 32 groups. Every
 * heartbeat carries every group's state and every order, in one datagram
 * of at most WIRE_MTU bytes; it must still fit when every group is being
 * handed over at once (a clean shutdown) and when each group has a manual
 * order. A heartbeat that does not fit is not sent at all (node.c reports
 * core.invariant heartbeat_too_large, which this harness fails on). */
static void conf_many_groups(struct tnd_conf *c)
{
	c->n_groups = TND_GROUPS_MAX;
	for (int gi = 2; gi < TND_GROUPS_MAX; gi++) {
		c->groups[gi] = c->groups[1];
		c->groups[gi].id = (uint8_t)gi;
	}
}

static void test_max_groups_shutdown(void **state)
{
	struct h *h = *state;
	conf_many_groups(&h->conf);
	h_start_settled(h);
	for (int gi = 0; gi < TND_GROUPS_MAX; gi++)
		assert_int_equal(h_state(h, A, gi), G_PRIMARY);
	struct ev ev = { .type = EV_SHUTDOWN };
	assert_int_equal(h_step(h, A, &ev), 0);
	h_deliver_pending(h);
	for (int gi = 0; gi < TND_GROUPS_MAX; gi++)
		assert_int_equal(h_state(h, B, gi), G_PRIMARY);
}

/* One `tandemctl deactivate` on the node that serves every group: one
 * manual order per group, every group handed over at once, and the orders
 * stay in every heartbeat from then on. */
static void test_max_groups_deactivate(void **state)
{
	struct h *h = *state;
	conf_many_groups(&h->conf);
	h_start_settled(h);
	char why[128];
	struct admin_req req = { .op = ADM_DEACTIVATE, .target = TND_NO_NODE };
	assert_int_equal(h_admin(h, A, &req, why, sizeof(why)), 0);
	h_run_ms(h, 500);
	for (int gi = 0; gi < TND_GROUPS_MAX; gi++) {
		assert_int_equal(h_state(h, B, gi), G_PRIMARY);
		assert_int_equal(h_status(h, A)->groups[gi].manual_target, B);
	}
	h_run_ms(h, 2000);
	assert_true(h_status(h, B)->peers[A].alive);
	assert_true(h_status(h, A)->peers[B].alive);
	assert_int_equal(h_primaries(h, G1), 1);
}

/* An administrative request can be the first thing a stalled daemon
 * handles when it runs again (its socket and its timer are both ready).
 * That must not hide the stall from the tilt check: the peers' silence
 * during the stall says nothing about them. */
static void test_tilt_admin_first(void **state)
{
	struct h *h = *state;
	h_start_settled(h);
	h->paused[B] = true;
	h_run_ms(h, 2000);
	h->paused[B] = false;
	h_log_clear(h);
	char why[128];
	struct admin_req req = { .op = ADM_FAILOVER_RESET, .group_id = 1,
				 .target = TND_NO_NODE };
	assert_int_equal(h_admin(h, B, &req, why, sizeof(why)), 0);
	h_tick(h, B);
	struct node_status *sb = h_status(h, B);
	assert_true(sb->tilt);
	assert_true(sb->peers[A].alive);
	h_deliver_all(h);
	h_run_ms(h, 1000);
	assert_null(h_find_event(h, B, "peer.state", "to=lost"));
	assert_int_equal(h_count_vips(h, B, 1, true), 0);
	assert_int_equal(h_state(h, A, G1), G_PRIMARY);
}

static void test_node_new_refuses_bad_params(void **state)
{
	struct h *h = *state;
	struct node_params p = { .conf = &h->conf, .self = 0, .incarnation = 1,
				 .version = "x", .proto_min = 1, .proto_max = 1 };
	struct node *n = node_new(&p, 0);
	assert_non_null(n);
	node_free(n);
	p.self = 2; /* only 2 nodes */
	assert_null(node_new(&p, 0));
	p.self = -1;
	assert_null(node_new(&p, 0));
	p.self = 0;
	p.incarnation = 0;
	assert_null(node_new(&p, 0));
	p.incarnation = 1;
	p.conf = NULL;
	assert_null(node_new(&p, 0));
}

/* --- session-sync gate ------------------------------------------------- */

static void h_sync(struct h *h, int i, bool synced)
{
	struct ev ev = { .type = EV_SYNC };
	ev.u.sync.synced = synced;
	assert_int_equal(h_step(h, i, &ev), 0);
}

static void h_barrier(struct h *h, int i, int group_id, bool ok)
{
	struct ev ev = { .type = EV_BARRIER };
	ev.u.barrier.group_id = (uint8_t)group_id;
	ev.u.barrier.ok = ok;
	assert_int_equal(h_step(h, i, &ev), 0);
}

static void h_start_gated(struct h *h)
{
	h->sync_gate = true;
	for (int i = 0; i < h->n; i++) {
		h_start(h, i);
		h_sync(h, i, true);
	}
	h_run_ms(h, 1000);
	assert_int_equal(h_state(h, A, 1), G_PRIMARY);
	assert_int_equal(h_state(h, B, 1), G_SECONDARY);
}

/* A node whose sessions are not in sync is a last resort: shown
 * ineligible with the reason, yet elected when nobody else can serve. */
static void test_sync_gate_eligibility(void **state)
{
	struct h *h = *state;
	h->sync_gate = true;
	h_start(h, A);
	h_start(h, B);
	h_run_ms(h, 1000);
	/* Nobody in sync: still exactly one primary (last resort). */
	assert_int_equal(h_primaries(h, 1), 1);
	assert_int_equal(h_state(h, B, 1), G_INELIGIBLE);
	assert_false(h_status(h, B)->groups[1].eligible);
	assert_string_equal(h_status(h, B)->groups[1].why_ineligible,
			    "sessions not in sync");
	h_sync(h, A, true);
	h_sync(h, B, true);
	h_run_ms(h, 300);
	assert_int_equal(h_state(h, A, 1), G_PRIMARY);
	assert_int_equal(h_state(h, B, 1), G_SECONDARY);
	assert_true(h_status(h, B)->groups[1].eligible);
	/* b out of sync again: failover to it is refused with the reason. */
	h_sync(h, B, false);
	h_run_ms(h, 300);
	struct admin_req req = { .op = ADM_FAILOVER, .group_id = 1, .target = B };
	char why[128] = "";
	assert_int_equal(h_admin(h, A, &req, why, sizeof(why)), TND_EREFUSED);
	assert_non_null(strstr(why, "not eligible"));
}

/* A planned move releases first (VIPs gone, barrier asked for the
 * target), then grants only when the barrier completes. */
static void test_barrier_holds_grant(void **state)
{
	struct h *h = *state;
	h_start_gated(h);
	h_log_clear(h);
	struct admin_req req = { .op = ADM_FAILOVER, .group_id = 1, .target = B };
	char why[128] = "";
	assert_int_equal(h_admin(h, B, &req, why, sizeof(why)), 0);
	h_run_ms(h, 50);
	assert_non_null(h_find_vips(h, A, 1, false));
	assert_int_equal(h_count_type(h, A, ACT_BARRIER), 1);
	for (int k = 0; k < h->nlog; k++)
		if (h->log[k].type == ACT_BARRIER) {
			assert_int_equal(h->log[k].group, 1);
			assert_int_equal(h->log[k].target, B);
		}
	/* Held: nobody primary, nobody else claims the vacancy. */
	assert_int_equal(h_primaries(h, 1), 0);
	assert_true(h_status(h, A)->groups[1].grant_held);
	h_run_ms(h, 500);
	assert_int_equal(h_primaries(h, 1), 0);
	assert_int_equal(h_count_vips(h, B, 1, true), 0);
	/* Barrier done: b takes the group on the next delivery. */
	h_barrier(h, A, 1, true);
	h_deliver_all(h);
	assert_int_equal(h_state(h, B, 1), G_PRIMARY);
	assert_int_equal(h_state(h, A, 1), G_SECONDARY);
	assert_false(h_status(h, A)->groups[1].grant_held);
	assert_non_null(h_find_event(h, A, "group.grant", "to=b reason=barrier_ok"));
	/* Release strictly before the take-over. */
	assert_true(h_find_vips(h, A, 1, false)->seq < h_find_vips(h, B, 1, true)->seq);
}

/* A barrier that never completes does not strand the group: the grant is
 * released after barrier_timeout_ms (default 1 s), with a warning. */
static void test_barrier_timeout(void **state)
{
	struct h *h = *state;
	h_start_gated(h);
	h_log_clear(h);
	struct admin_req req = { .op = ADM_FAILOVER, .group_id = 1, .target = B };
	char why[128] = "";
	assert_int_equal(h_admin(h, A, &req, why, sizeof(why)), 0);
	h_run_ms(h, 900);
	assert_int_equal(h_primaries(h, 1), 0);
	h_run_ms(h, 200);
	assert_int_equal(h_state(h, B, 1), G_PRIMARY);
	assert_non_null(h_find_event(h, A, "group.grant", "reason=barrier_timeout"));
	/* A late answer changes nothing. */
	h_barrier(h, A, 1, true);
	h_deliver_all(h);
	assert_int_equal(h_state(h, B, 1), G_PRIMARY);
	assert_int_equal(h_primaries(h, 1), 1);
}

/* --- live reconfiguration (node_reconfigure) ------------------------------ */

/* Reconfigure node i with a private heap copy of `c`; the configuration it
 * ran before is scribbled over and freed at once, as the daemon may do. */
static int h_reconf_gate(struct h *h, int i, const struct tnd_conf *c, bool gate)
{
	struct tnd_conf *copy = h_conf_dup(c);
	int rc = node_reconfigure(h->node[i], copy, gate, 1, h->now, &h->acts);
	h_take_actions(h, i);
	if (rc != 0) {
		free(copy);
		return rc;
	}
	memset(h->nconf[i], 0x5a, sizeof(*h->nconf[i]));
	free(h->nconf[i]);
	h->nconf[i] = copy;
	/* Evaluation and heartbeats are due at once. */
	assert_int_equal(node_next_wake(h->node[i]), h->now);
	h_check_wake(h, i);
	h_check_watch(h);
	return 0;
}

static void h_reconf(struct h *h, int i, const struct tnd_conf *c)
{
	assert_int_equal(h_reconf_gate(h, i, c, h->sync_gate), 0);
}

static int h_count_type_group(struct h *h, int node, enum act_type t, int group)
{
	int c = 0;
	for (int k = 0; k < h->nlog; k++)
		if (h->log[k].type == t && h->log[k].group == group &&
		    (node < 0 || h->log[k].node == node))
			c++;
	return c;
}

/* This node's priority in a group drops to 0 while it is primary: it hands
 * the group to the best other node by the planned path (release, then the
 * grant; never two primaries), even while the others still run the
 * previous configuration. */
static void test_reconf_priority_zero_hands_over(void **state)
{
	struct h *h = *state;
	h_start_settled(h);
	h->watch_id = 1;
	h_log_clear(h);
	struct tnd_conf *c = h_conf_dup(&h->conf);
	c->groups[G1].priority[A] = 0;
	h_reconf(h, A, c);
	assert_non_null(h_find_event(h, A, "node.reconfigured", "groups=2 added=0 removed=0"));
	/* Nothing moves before the next step. */
	assert_int_equal(h_state(h, A, G1), G_PRIMARY);
	assert_int_equal(h_count_type(h, -1, ACT_VIPS), 0);
	h_tick(h, A);
	h_deliver_all(h);
	assert_int_equal(h_state(h, A, G1), G_INELIGIBLE);
	assert_string_equal(h_status(h, A)->groups[G1].why_ineligible, "priority 0");
	assert_int_equal(h_status(h, A)->groups[G1].priority, 0);
	assert_int_equal(h_state(h, B, G1), G_PRIMARY);
	assert_int_equal(h_state(h, C, G1), G_SECONDARY);
	assert_int_equal(h_status(h, C)->groups[G1].primary, B);
	assert_non_null(h_find_event(h, A, "group.handoff", "group=1 to=b reason=priority"));
	assert_non_null(h_find_event(h, B, "group.state", "group=1 to=primary reason=handoff"));
	const struct logent *rm = h_find_vips(h, A, 1, false);
	const struct logent *add = h_find_vips(h, B, 1, true);
	assert_non_null(rm);
	assert_non_null(add);
	assert_true(rm->seq < add->seq);
	assert_true(rm->at == add->at); /* one packet latency: zero here */
	/* Group 0 is untouched. */
	assert_int_equal(h_state(h, A, G0), G_PRIMARY);

	/* The others follow; nothing moves again. */
	h_run_ms(h, 50);
	h_reconf(h, C, c);
	h_run_ms(h, 50);
	h_reconf(h, B, c);
	h_run_ms(h, 3000);
	assert_int_equal(h_state(h, B, G1), G_PRIMARY);
	assert_int_equal(h_state(h, A, G1), G_INELIGIBLE);
	assert_int_equal(h_count_vips(h, -1, 1, true), 1);
	assert_int_equal(h_count_vips(h, -1, 1, false), 1);
	assert_int_equal(h_count_type_group(h, -1, ACT_VIPS, 0), 0);
	free(c);
}

/* A secondary's priority is raised above the primary's with preempt on:
 * the group moves after preempt_delay_s, counted from the change. */
static void test_reconf_raise_priority_preempts(void **state)
{
	struct h *h = *state;
	h_start_settled(h);
	h->watch_id = 1;
	h_log_clear(h);
	struct tnd_conf *c = h_conf_dup(&h->conf);
	c->groups[G1].priority[B] = 250;
	c->groups[G1].preempt = true;
	c->groups[G1].preempt_delay_s = 1;
	mono_t t0 = h->now;
	h_reconf(h, A, c);
	h_reconf(h, B, c);
	h_run_to(h, t0 + MS(1000) - 1);
	assert_int_equal(h_state(h, A, G1), G_PRIMARY);
	assert_int_equal(h_state(h, B, G1), G_SECONDARY);
	assert_int_equal(h_count_type(h, -1, ACT_VIPS), 0);
	h_run_to(h, t0 + MS(1500));
	assert_int_equal(h_state(h, B, G1), G_PRIMARY);
	assert_int_equal(h_state(h, A, G1), G_SECONDARY);
	assert_int_equal(h_state(h, A, G0), G_PRIMARY); /* no preempt there */
	const struct logent *rm = h_find_vips(h, A, 1, false);
	assert_non_null(rm);
	assert_true(rm->at >= t0 + MS(1000));
	assert_true(rm->at <= t0 + MS(1000 + HB_MS));
	assert_non_null(h_find_event(h, A, "group.handoff", "group=1 to=b reason=preempt"));
	assert_true(rm->seq < h_find_vips(h, B, 1, true)->seq);
	free(c);
}

static void conf_add_group(struct tnd_conf *c, int id, uint8_t vip_last)
{
	struct tnd_group_conf *g = &c->groups[c->n_groups++];
	*g = c->groups[1];
	g->id = (uint8_t)id;
	g->vips[0].addr.bytes[3] = vip_last;
}

/* A new group with VIPs, applied by the nodes a few moments apart (the
 * best node first): it observes as at start-up, then gets exactly one
 * primary; the groups that were there do not move. While a peer runs the
 * previous configuration it ignores the records of the new group. */
static void test_reconf_new_group_one_primary(void **state)
{
	struct h *h = *state;
	h_start_settled(h);
	h->watch_id = 2;
	h_log_clear(h);
	struct tnd_conf *c = h_conf_dup(&h->conf);
	conf_add_group(c, 2, 2);
	mono_t t0 = h->now;
	h_reconf(h, A, c);
	assert_non_null(h_find_event(h, A, "group.added", "group=2"));
	assert_int_equal(h_state_id(h, A, 2), G_INIT);
	h_run_ms(h, 30);
	assert_null(h_gs(h, B, 2));
	assert_int_equal(h_status(h, B)->n_groups, 2);
	assert_int_equal(h_status(h, B)->ctr.rx_malformed, 0);
	h_reconf(h, C, c);
	h_run_ms(h, 30);
	h_reconf(h, B, c);
	h_run_to(h, t0 + MS(OBSERVE_MS) - 1);
	assert_int_equal(h_count_type_group(h, -1, ACT_VIPS, 2), 0);
	assert_int_equal(h_state_id(h, A, 2), G_INIT);
	h_run_to(h, t0 + MS(3000));
	assert_int_equal(h_primaries_id(h, 2), 1);
	assert_int_equal(h_state_id(h, A, 2), G_PRIMARY);
	for (int i = 0; i < 3; i++)
		assert_int_equal(h_gs(h, i, 2)->primary, A);
	assert_int_equal(h_count_vips(h, -1, 2, true), 1);
	assert_int_equal(h_count_vips(h, -1, 2, false), 0);
	assert_non_null(h_find_event(h, A, "group.state", "group=2 to=primary reason=elected"));
	assert_int_equal(h_count_type_group(h, -1, ACT_VIPS, 0), 0);
	assert_int_equal(h_count_type_group(h, -1, ACT_VIPS, 1), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(h_status(h, i)->ctr.rx_malformed, 0);
	free(c);
}

/* The same, with the best node applying last, after the others have
 * observed and elected: it joins as a secondary (no preempt), so the
 * group still has one primary and its VIPs were added once. */
static void test_reconf_new_group_best_node_late(void **state)
{
	struct h *h = *state;
	h_start_settled(h);
	h->watch_id = 2;
	h_log_clear(h);
	struct tnd_conf *c = h_conf_dup(&h->conf);
	conf_add_group(c, 2, 2);
	h_reconf(h, B, c);
	h_reconf(h, C, c);
	h_run_ms(h, 1000);
	assert_int_equal(h_state_id(h, B, 2), G_PRIMARY);
	h_reconf(h, A, c);
	h_run_ms(h, 2000);
	assert_int_equal(h_state_id(h, B, 2), G_PRIMARY);
	assert_int_equal(h_state_id(h, A, 2), G_SECONDARY);
	assert_int_equal(h_gs(h, A, 2)->primary, B);
	assert_int_equal(h_count_vips(h, -1, 2, true), 1);
	assert_int_equal(h_count_vips(h, -1, 2, false), 0);
	free(c);
}

/* Groups 0, 1, 2 become 0, 2: group 1 (served here) is dropped with an
 * event and no kernel action; group 2 moves from index 2 to 1 and keeps
 * its state, epoch, primary and manual order on both nodes. While b still
 * runs the previous configuration it neither elects itself for group 1
 * (a's last view of it stands) nor trips over a's records. */
static void test_reconf_remove_group(void **state)
{
	struct h *h = *state;
	conf_add_group(&h->conf, 2, 2);
	h_start_settled(h);
	char why[128] = "";
	struct admin_req req = { .op = ADM_FAILOVER, .group_id = 2, .target = B };
	assert_int_equal(h_admin(h, A, &req, why, sizeof(why)), 0);
	h_run_ms(h, 500);
	assert_int_equal(h_state_id(h, B, 2), G_PRIMARY);
	uint64_t e2 = h_gs(h, B, 2)->epoch;
	assert_int_equal(h_state_id(h, A, 1), G_PRIMARY);

	h->watch_id = 2;
	h_log_clear(h);
	struct tnd_conf *c = h_conf_dup(&h->conf);
	c->groups[1] = c->groups[2];
	c->n_groups = 2;
	h_reconf(h, A, c);
	assert_non_null(h_find_event(h, A, "group.removed", "group=1 was_primary=true"));
	assert_non_null(h_find_event(h, A, "node.reconfigured", "groups=2 added=0 removed=1"));
	assert_int_equal(h_count_type_group(h, -1, ACT_VIPS, 1), 0);
	assert_int_equal(h_count_type_group(h, -1, ACT_HOOK, 1), 0);
	struct node_status *sa = h_status(h, A);
	assert_int_equal(sa->n_groups, 2);
	assert_int_equal(sa->groups[0].id, 0);
	assert_int_equal(sa->groups[1].id, 2);
	assert_null(h_gs(h, A, 1));
	const struct node_group_status *g2 = h_gs(h, A, 2);
	assert_int_equal(g2->state, G_SECONDARY);
	assert_int_equal(g2->primary, B);
	assert_true(g2->epoch == e2);
	assert_true(g2->manual);
	assert_int_equal(g2->manual_target, B);

	/* a's view of b's groups moved with them: with b's heartbeats lost
	 * for most of a dead interval, a still sees b serve group 2 (a view
	 * left at the old index would show it vacant, and a would claim). */
	for (int l = 0; l < TND_LINKS_MAX; l++)
		h->cut[B][A][l] = true;
	h_run_ms(h, DEAD_MS - 50);
	h_cut_all(h, A, B, false);
	assert_int_equal(h_state_id(h, A, 2), G_SECONDARY);
	assert_true(h_status(h, A)->peers[B].alive);

	h_run_ms(h, 1000); /* b lags */
	assert_int_equal(h_state_id(h, B, 1), G_SECONDARY);
	assert_int_equal(h_gs(h, B, 1)->primary, A);
	assert_int_equal(h_count_vips(h, B, 1, true), 0);
	h_reconf(h, B, c);
	assert_non_null(h_find_event(h, B, "group.removed", "group=1 was_primary=false"));
	h_run_ms(h, 2000);
	assert_null(h_gs(h, B, 1));
	assert_int_equal(h_state_id(h, B, 2), G_PRIMARY);
	assert_true(h_gs(h, A, 2)->epoch == e2);
	assert_true(h_gs(h, B, 2)->epoch == e2);
	assert_int_equal(h_gs(h, B, 2)->manual_target, B);
	assert_null(h_find_event(h, -1, "group.state", "group=2"));
	assert_int_equal(h_count_type(h, -1, ACT_VIPS), 0);
	assert_int_equal(h_count_type(h, -1, ACT_HOOK), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(h_status(h, i)->ctr.rx_malformed, 0);
	/* Dropped for good: an order or a barrier answer for it is ignored. */
	struct admin_req r1 = { .op = ADM_FAILOVER, .group_id = 1, .target = B };
	assert_int_equal(h_admin(h, A, &r1, why, sizeof(why)), TND_ENOENT);
	h_barrier(h, A, 1, true);
	assert_null(h_gs(h, A, 1));
	assert_int_equal(h_count_type(h, -1, ACT_VIPS), 0);
	free(c);
}

/* heartbeat_ms and dead_after apply at once: the heartbeat period (seen
 * on ACT_SEND) and the failure detector's silence bound. */
static void test_reconf_heartbeat_period(void **state)
{
	struct h *h = *state;
	h_start_settled(h);
	struct tnd_conf *c = h_conf_dup(&h->conf);
	c->heartbeat_ms = 50;
	c->dead_after = 5;
	mono_t t0 = h->now;
	h_reconf(h, A, c);
	h_reconf(h, B, c);
	h_hb(h, A);
	mono_t t1 = h->now;
	assert_true(t1 == t0);
	h_hb(h, A);
	mono_t t2 = h->now;
	h_hb(h, A);
	assert_true(t2 - t1 == MS(50));
	assert_true(h->now - t2 == MS(50));
	h_run_ms(h, 500);
	h_log_clear(h);
	h_cut_all(h, A, B, true);
	h_run_ms(h, 1000);
	const struct logent *lost = h_find_event(h, B, "peer.state", "peer=a to=lost");
	assert_non_null(lost);
	assert_true(lost->at - h->last_rx[A][B] == MS(5 * 50));
	free(c);
}

/* One node slows its heartbeat down before the other has applied the
 * change: the other must not take it for lost on the old (shorter) bound,
 * which would make a second primary. Its heartbeats say their interval. */
static void test_reconf_slower_heartbeat_no_flap(void **state)
{
	struct h *h = *state;
	h_start_settled(h);
	h->watch_id = 1;
	h_log_clear(h);
	struct tnd_conf *c = h_conf_dup(&h->conf);
	c->heartbeat_ms = 400;
	h_reconf(h, A, c);
	h_hb(h, A);
	mono_t t1 = h->now;
	h_hb(h, A);
	assert_true(h->now - t1 == MS(400));
	h_run_ms(h, 3000); /* b still expects 100 ms x 3 */
	assert_null(h_find_event(h, B, "peer.state", "to=lost"));
	assert_null(h_find_event(h, B, "link.state", "to=down"));
	assert_int_equal(h_count_type(h, -1, ACT_VIPS), 0);
	assert_true(h_status(h, B)->peers[A].alive);
	assert_int_equal(h_status(h, B)->n_alarms, 0);
	h_reconf(h, B, c);
	h_run_ms(h, 1000);
	h->watch_id = -1; /* a total cut makes two primaries: by design */
	h_cut_all(h, A, B, true);
	h_run_ms(h, 3000);
	const struct logent *lost = h_find_event(h, B, "peer.state", "peer=a to=lost");
	assert_non_null(lost);
	assert_true(lost->at - h->last_rx[A][B] == MS(3 * 400));
	free(c);
}

/* Bad input changes nothing: no action, the same state, and the node goes
 * on with the configuration it had. */
static void test_reconf_refuses_bad(void **state)
{
	struct h *h = *state;
	h_start_settled(h);
	h_log_clear(h);
	mono_t wake = node_next_wake(h->node[A]);
	assert_int_equal(node_reconfigure(h->node[A], NULL, false, 1, h->now, &h->acts),
			 TND_EINVAL);
	struct tnd_conf *c = h_conf_dup(&h->conf);
	struct tnd_conf *bad = h_conf_dup(&h->conf);
	bad->n_nodes = 3;
	snprintf(bad->nodes[2].name, sizeof(bad->nodes[2].name), "c");
	bad->nodes[2].n_links = 2;
	assert_int_equal(h_reconf_gate(h, A, bad, false), TND_EINVAL);
	*bad = *c;
	snprintf(bad->nodes[B].name, sizeof(bad->nodes[B].name), "x");
	assert_int_equal(h_reconf_gate(h, A, bad, false), TND_EINVAL);
	*bad = *c;
	bad->nodes[B].n_links = 1;
	assert_int_equal(h_reconf_gate(h, A, bad, false), TND_EINVAL);
	*bad = *c;
	bad->groups[1].id = 0; /* two groups 0 */
	assert_int_equal(h_reconf_gate(h, A, bad, false), TND_EINVAL);
	*bad = *c;
	bad->heartbeat_ms = 0;
	assert_int_equal(h_reconf_gate(h, A, bad, false), TND_EINVAL);
	*bad = *c;
	bad->n_groups = 0;
	assert_int_equal(h_reconf_gate(h, A, bad, false), TND_EINVAL);
	assert_int_equal(h->nlog, 0);
	assert_true(node_next_wake(h->node[A]) == wake);
	struct node_status *sa = h_status(h, A);
	assert_int_equal(sa->n_groups, 2);
	assert_int_equal(sa->groups[G1].state, G_PRIMARY);
	h_run_ms(h, 1000);
	assert_int_equal(h_state(h, A, G1), G_PRIMARY);
	assert_int_equal(h_count_type(h, -1, ACT_VIPS), 0);
	free(bad);
	free(c);
}

static struct tnd_conf *conf_more_monitors(const struct tnd_conf *base)
{
	struct tnd_conf *c = h_conf_dup(base);
	struct tnd_group_conf *g = &c->groups[G1];
	g->n_monitors = 3;
	snprintf(g->monitors[1], TND_IFNAME_MAX, "wan0");
	snprintf(g->monitors[2], TND_IFNAME_MAX, "dmz0");
	return c;
}

/* Newly monitored interfaces, reported one by one after the change: a
 * group does not move while the set is half reported; a reported down one
 * then moves it. */
static void test_reconf_new_monitor_reported(void **state)
{
	struct h *h = *state;
	h_start_settled(h);
	h->watch_id = 1;
	h_log_clear(h);
	struct tnd_conf *c = conf_more_monitors(&h->conf);
	h_reconf(h, B, c);
	h_iface(h, B, "wan0", true);
	h_iface(h, B, "dmz0", true);
	h_reconf(h, A, c);
	h_iface(h, A, "wan0", true);
	assert_int_equal(h_state(h, A, G1), G_PRIMARY);
	assert_true(h_status(h, A)->groups[G1].eligible);
	h_run_ms(h, 100);
	assert_int_equal(h_state(h, A, G1), G_PRIMARY);
	assert_int_equal(h_count_type(h, -1, ACT_VIPS), 0);
	h_iface(h, A, "dmz0", false);
	h_deliver_all(h);
	assert_int_equal(h_state(h, B, G1), G_PRIMARY);
	assert_int_equal(h_state(h, A, G1), G_INELIGIBLE);
	assert_string_equal(h_status(h, A)->groups[G1].why_ineligible,
			    "monitored interface dmz0 down");
	assert_non_null(h_find_event(h, A, "group.handoff", "group=1 to=b"));
	free(c);
}

/* A newly monitored interface that is never reported is judged as at
 * start once a dead interval has passed: it does not exist. */
static void test_reconf_new_monitor_never_reported(void **state)
{
	struct h *h = *state;
	h_start_settled(h);
	h->watch_id = 1;
	struct tnd_conf *c = conf_more_monitors(&h->conf);
	h_reconf(h, B, c);
	h_iface(h, B, "wan0", true);
	h_iface(h, B, "dmz0", true);
	mono_t t0 = h->now;
	h_reconf(h, A, c);
	h_iface(h, A, "wan0", true);
	h_run_to(h, t0 + MS(DEAD_MS) - 1);
	assert_int_equal(h_state(h, A, G1), G_PRIMARY);
	h_run_to(h, t0 + MS(DEAD_MS));
	h_deliver_all(h);
	assert_int_equal(h_state(h, B, G1), G_PRIMARY);
	assert_int_equal(h_state(h, A, G1), G_INELIGIBLE);
	assert_string_equal(h_status(h, A)->groups[G1].why_ineligible,
			    "monitored interface dmz0 down");
	free(c);
}

/* Session sync switched on in place: a secondary that is not in sync
 * becomes ineligible for the session group (the primary, the source, does
 * not move); switched off, a grant held for a sync barrier is released. */
static void test_reconf_sync_gate(void **state)
{
	struct h *h = *state;
	h_start_settled(h);
	h->watch_id = 1;
	h_log_clear(h);
	struct tnd_conf *c = h_conf_dup(&h->conf);
	assert_int_equal(h_reconf_gate(h, B, c, true), 0);
	assert_int_equal(h_reconf_gate(h, A, c, true), 0);
	h_run_ms(h, 500);
	assert_int_equal(h_state(h, A, G1), G_PRIMARY);
	assert_int_equal(h_state(h, B, G1), G_INELIGIBLE);
	assert_string_equal(h_status(h, B)->groups[G1].why_ineligible,
			    "sessions not in sync");
	assert_int_equal(h_state(h, B, G0), G_SECONDARY); /* not gated */
	assert_int_equal(h_count_type(h, -1, ACT_VIPS), 0);
	h_sync(h, B, true);
	h_run_ms(h, 100);
	assert_int_equal(h_state(h, B, G1), G_SECONDARY);

	struct admin_req req = { .op = ADM_FAILOVER, .group_id = 1, .target = B };
	char why[128] = "";
	assert_int_equal(h_admin(h, A, &req, why, sizeof(why)), 0);
	h_run_ms(h, 50);
	assert_int_equal(h_primaries(h, G1), 0);
	assert_true(h_status(h, A)->groups[G1].grant_held);
	assert_int_equal(h_reconf_gate(h, A, c, false), 0);
	assert_non_null(h_find_event(h, A, "group.grant", "to=b reason=sync_gate_off"));
	assert_false(h_status(h, A)->groups[G1].grant_held);
	h_run_ms(h, 1);
	assert_int_equal(h_state(h, B, G1), G_PRIMARY);
	free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_initial_election, h_setup2, h_teardown),
		cmocka_unit_test_setup_teardown(test_no_preempt_keeps_primary, h_setup2, h_teardown),
		cmocka_unit_test_setup_teardown(test_preempt_takes_over_by_handoff, h_setup2, h_teardown),
		cmocka_unit_test_setup_teardown(test_preempt_delay, h_setup2, h_teardown),
		cmocka_unit_test_setup_teardown(test_one_link_cut, h_setup2, h_teardown),
		cmocka_unit_test_setup_teardown(test_all_links_cut, h_setup2, h_teardown),
		cmocka_unit_test_setup_teardown(test_manual_failover, h_setup2, h_teardown),
		cmocka_unit_test_setup_teardown(test_monitored_interface, h_setup2, h_teardown),
		cmocka_unit_test_setup_teardown(test_monitored_interface_never_reported, h_setup2, h_teardown),
		cmocka_unit_test_setup_teardown(test_maintenance, h_setup2, h_teardown),
		cmocka_unit_test_setup_teardown(test_shutdown_hands_over, h_setup2, h_teardown),
		cmocka_unit_test_setup_teardown(test_replay, h_setup2, h_teardown),
		cmocka_unit_test_setup_teardown(test_replay_window_edges, h_setup2, h_teardown),
		cmocka_unit_test_setup_teardown(test_malformed, h_setup2, h_teardown),
		cmocka_unit_test_setup_teardown(test_quorum, h_setup3, h_teardown),
		cmocka_unit_test_setup_teardown(test_quorum_lost_one_peer_ok, h_setup3, h_teardown),
		cmocka_unit_test_setup_teardown(test_tilt, h_setup2, h_teardown),
		cmocka_unit_test_setup_teardown(test_tilt_then_real_loss, h_setup2, h_teardown),
		cmocka_unit_test_setup_teardown(test_next_wake_never_past, h_setup2, h_teardown),
		cmocka_unit_test_setup_teardown(test_one_way_total_cut, h_setup2, h_teardown),
		cmocka_unit_test_setup_teardown(test_one_link_one_way, h_setup2, h_teardown),
		cmocka_unit_test_setup_teardown(test_last_resort_takeover, h_setup2, h_teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_orders_converge, h_setup2, h_teardown),
		cmocka_unit_test_setup_teardown(test_activate_deactivate, h_setup2, h_teardown),
		cmocka_unit_test_setup_teardown(test_failover_to_starting_node_refused, h_setup2, h_teardown),
		cmocka_unit_test_setup_teardown(test_max_groups_shutdown, h_setup2, h_teardown),
		cmocka_unit_test_setup_teardown(test_max_groups_deactivate, h_setup2, h_teardown),
		cmocka_unit_test_setup_teardown(test_tilt_admin_first, h_setup2, h_teardown),
		cmocka_unit_test_setup_teardown(test_node_new_refuses_bad_params, h_setup2, h_teardown),
		cmocka_unit_test_setup_teardown(test_sync_gate_eligibility, h_setup2, h_teardown),
		cmocka_unit_test_setup_teardown(test_barrier_holds_grant, h_setup2, h_teardown),
		cmocka_unit_test_setup_teardown(test_barrier_timeout, h_setup2, h_teardown),
		cmocka_unit_test_setup_teardown(test_reconf_priority_zero_hands_over, h_setup3, h_teardown),
		cmocka_unit_test_setup_teardown(test_reconf_raise_priority_preempts, h_setup2, h_teardown),
		cmocka_unit_test_setup_teardown(test_reconf_new_group_one_primary, h_setup3, h_teardown),
		cmocka_unit_test_setup_teardown(test_reconf_new_group_best_node_late, h_setup3, h_teardown),
		cmocka_unit_test_setup_teardown(test_reconf_remove_group, h_setup2, h_teardown),
		cmocka_unit_test_setup_teardown(test_reconf_heartbeat_period, h_setup2, h_teardown),
		cmocka_unit_test_setup_teardown(test_reconf_slower_heartbeat_no_flap, h_setup2, h_teardown),
		cmocka_unit_test_setup_teardown(test_reconf_refuses_bad, h_setup2, h_teardown),
		cmocka_unit_test_setup_teardown(test_reconf_new_monitor_reported, h_setup2, h_teardown),
		cmocka_unit_test_setup_teardown(test_reconf_new_monitor_never_reported, h_setup2, h_teardown),
		cmocka_unit_test_setup_teardown(test_reconf_sync_gate, h_setup2, h_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
