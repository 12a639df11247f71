/* test_upgrade.c - unit tests of the in-service upgrade coordinator core
 * (src/core/upgrade.c, design in upgrade.h; SPEC section 5).
 *
 * A deterministic harness of two to four upg instances in one process: a
 * manual clock in 100 ms turns, a FIFO of the UPG_ACT_SEND packets
 * (plaintext header + TLVs, as the core emits them before the driver seals
 * them), and a "driver" per node that keeps the stored journal bytes (its
 * disk), answers UPG_ACT_DO after a delay (backup, fetch, install with a
 * restart into the new version under a new incarnation, revert), plays the
 * election (a FAILOVER moves the group after a delay; a dead node's groups
 * go to the best live member; no preemption) and gives every core its
 * facts and view each turn. Tests assert on the journal, the stored bytes,
 * the replies and the events: the journal codec and every refusal, each
 * pre-check code, the plans, and whole runs: success with failback, an
 * install failure (rolled back), abort, a coordinator killed after every
 * step, finalize and rollback after completion. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "core/upgrade.h"

#define MS(x) MS_TO_MONO(x)
#define NMAX 8
#define Q_MAX 4096
#define DOQ_MAX 16
#define REP_MAX 16

static bool verbose;

/* The journal TLV numbers (the file format; pinned here). */
enum {
	J_ID = 1, J_SEQ, J_STATE, J_COORD, J_FLAGS, J_FROM, J_TO, J_FROM_PROTO,
	J_TO_PROTO, J_DIGEST, J_BYTES, J_SOURCE, J_WALL, J_ELAPSED, J_CURSOR,
	J_NNODES, J_NSTATE, J_NINC, J_STEP, J_ECODE, J_EMSG, J_ERECOV, J_ESTEP,
};

struct pdo {
	bool on;
	uint64_t id;
	int step;
	enum upg_do op;
	char version[TND_VERSION_MAX];
	mono_t due;
};

struct tnode {
	bool up;
	struct upg *u;
	uint64_t inc;
	char version[TND_VERSION_MAX], previous[TND_VERSION_MAX];
	char revert_reason[UPG_MSG_LEN], revert_from[TND_VERSION_MAX];
	bool confirmed;
	uint8_t disk[UPG_JOURNAL_BYTES_MAX];
	size_t disk_len;
	int stores;
	bool has_image;
	/* fault knobs */
	bool fail_install, no_answer, self_revert, dead_forever;
	int fetch_fails;      /* the next fetches that fail (E_FETCH) */
	mono_t sync_at;       /* sessions in sync again then (0: no change) */
	int cpu;
	uint64_t free_b, cgen;
	bool maint, cfg_sync, sess_sync, links;
	int gstate_override; /* -1 none, else every group's state */
	struct pdo dos[DOQ_MAX];
	int n_do;
	mono_t down_at, boot_at;  /* scheduled restart */
	char boot_version[TND_VERSION_MAX];
	int n_rep;
	struct { uint32_t token; int rc; char code[UPG_CODE_LEN]; char msg[UPG_MSG_LEN]; } rep[REP_MAX];
	int resets;
};

struct pkt {
	int from, to;
	size_t len;
	uint8_t b[WIRE_MTU];
};

struct cl {
	struct tnd_conf conf;
	int n;
	struct tnode nd[NMAX];
	int primary[TND_GROUPS_MAX];
	struct { bool on; int target; mono_t due; } fo[TND_GROUPS_MAX];
	mono_t now;
	uint64_t inc_ctr;
	struct pkt *q;
	int qh, qt;
	int events_takeover, events_failed_steps, dropped;
	bool link_cut;
	/* kill the coordinator right after it stored a journal whose cursor
	 * passed kill_cursor (the messages of that batch are lost) */
	int kill_cursor, killed;
	bool cut[NMAX][NMAX];     /* packets from -> to dropped */
	int adopted[NMAX][NMAX];  /* upgrade.journal events: on x from y */
	int n_do_acts[NMAX];      /* UPG_ACT_DO emitted per node */
	int n_fetch_acts[NMAX], n_install_acts[NMAX];
	/* group 0 needs a majority of the nodes up (node.c quorum_ok);
	 * after it is back, group 0 stays vacant g0_pause_ms more (a slow
	 * election), then goes to g0_next (or its best live member) */
	bool quorum0;
	int g0_pause_ms, g0_next, g0_losses;
	int sync_delay_ms;        /* after a restart, sessions resync this long */
	mono_t g0_back;
	bool g0_lost;
};

static struct cl *C;

/* --- configuration ------------------------------------------------------------ */

static void mkconf(struct tnd_conf *c, int n, int ngroups, const uint8_t prio[][NMAX])
{
	memset(c, 0, sizeof(*c));
	snprintf(c->cluster_name, sizeof(c->cluster_name), "t");
	c->cluster_id = 1;
	c->n_nodes = n;
	for (int x = 0; x < n; x++) {
		snprintf(c->nodes[x].name, sizeof(c->nodes[x].name), "gw%d", x + 1);
		c->nodes[x].n_links = 1;
	}
	c->n_groups = ngroups;
	for (int g = 0; g < ngroups; g++) {
		c->groups[g].id = (uint8_t)g;
		for (int x = 0; x < n; x++)
			c->groups[g].priority[x] = prio[g][x];
	}
	c->upgrade_hold_timer_s = 900;
	c->upgrade_sync_timeout_s = 300;
	c->upgrade_cpu_max_percent = 80;
	c->upgrade_failback = true;
	c->sessions_sync = true;
}

/* --- the harness ---------------------------------------------------------------- */

static struct upg_actions *acts_new(void)
{
	struct upg_actions *a = malloc(sizeof(*a));
	assert_non_null(a);
	upg_actions_reset(a);
	return a;
}

static void boot(struct cl *c, int x)
{
	struct tnode *t = &c->nd[x];
	struct upg_journal *j = NULL, jb;
	if (t->disk_len) {
		assert_int_equal(upg_journal_decode(t->disk, t->disk_len, &jb), 0);
		j = &jb;
	}
	t->inc = ++c->inc_ctr;
	struct upg_params p = {
		.conf = &c->conf, .self = x, .incarnation = t->inc, .seed = 77 + (uint64_t)x,
		.cluster_id = 1, .proto = 1, .journal = j,
	};
	t->u = upg_new(&p, c->now);
	assert_non_null(t->u);
	t->up = true;
	t->n_do = 0;
	memset(t->dos, 0, sizeof(t->dos));
	/* a group without a primary is taken by a member that comes up */
	for (int g = 0; g < c->conf.n_groups; g++)
		if (c->primary[g] == TND_NO_NODE && c->conf.groups[g].priority[x] > 0)
			c->primary[g] = x;
}

static int best_live(struct cl *c, int g, int not)
{
	int best = TND_NO_NODE, bp = 0;
	for (int x = 0; x < c->n; x++)
		if (x != not && c->nd[x].up && c->conf.groups[g].priority[x] > bp) {
			bp = c->conf.groups[g].priority[x];
			best = x;
		}
	return best;
}

static void go_down(struct cl *c, int x)
{
	struct tnode *t = &c->nd[x];
	if (!t->up)
		return;
	upg_free(t->u);
	t->u = NULL;
	t->up = false;
	for (int g = 0; g < c->conf.n_groups; g++)
		if (c->primary[g] == x)
			c->primary[g] = best_live(c, g, x);
}

static struct cl *cl_new(int n, int ngroups, const uint8_t prio[][NMAX])
{
	struct cl *c = calloc(1, sizeof(*c));
	assert_non_null(c);
	c->q = calloc(Q_MAX, sizeof(struct pkt));
	assert_non_null(c->q);
	mkconf(&c->conf, n, ngroups, prio);
	c->n = n;
	c->now = MS(1000);
	c->kill_cursor = c->killed = -1;
	for (int g = 0; g < TND_GROUPS_MAX; g++)
		c->primary[g] = TND_NO_NODE;
	for (int x = 0; x < n; x++) {
		struct tnode *t = &c->nd[x];
		snprintf(t->version, sizeof(t->version), "1.0.0");
		t->confirmed = true;
		t->cpu = 10;
		t->free_b = 1000000000ULL;
		t->cgen = 5;
		t->cfg_sync = t->sess_sync = t->links = true;
		t->gstate_override = -1;
	}
	/* every group starts on its preferred node */
	for (int g = 0; g < ngroups; g++) {
		int best = TND_NO_NODE, bp = 0;
		for (int x = 0; x < n; x++)
			if (prio[g][x] > bp) {
				bp = prio[g][x];
				best = x;
			}
		c->primary[g] = best;
	}
	for (int x = 0; x < n; x++)
		boot(c, x);
	return c;
}

static void cl_free(struct cl *c)
{
	for (int x = 0; x < c->n; x++)
		if (c->nd[x].u)
			upg_free(c->nd[x].u);
	free(c->q);
	free(c);
}

static void facts_of(struct cl *c, int x, struct upg_facts *f)
{
	struct tnode *t = &c->nd[x];
	memset(f, 0, sizeof(*f));
	snprintf(f->version, sizeof(f->version), "%s", t->version);
	snprintf(f->previous, sizeof(f->previous), "%s", t->previous);
	snprintf(f->revert_reason, sizeof(f->revert_reason), "%s", t->revert_reason);
	snprintf(f->revert_from, sizeof(f->revert_from), "%s", t->revert_from);
	f->confirmed = t->confirmed;
	f->proto_min = 1;
	f->proto_max = strcmp(t->version, "1.0.0") == 0 ? 1 : 2;
	f->links_all_up = t->links;
	f->maint = t->maint;
	f->config_in_sync = t->cfg_sync;
	f->config_gen = t->cgen;
	f->sessions_in_sync = t->sess_sync;
	f->free_bytes = t->free_b;
	f->cpu_percent = (uint8_t)t->cpu;
	f->has_image = t->has_image;
	for (int g = 0; g < c->conf.n_groups; g++) {
		if (c->conf.groups[g].priority[x] == 0)
			continue;
		f->groups[f->n_groups].id = c->conf.groups[g].id;
		f->groups[f->n_groups].state = (uint8_t)(t->gstate_override >= 0 ? t->gstate_override
						: c->primary[g] == x ? UPG_G_PRIMARY : UPG_G_SECONDARY);
		f->n_groups++;
	}
}

static void view_of(struct cl *c, int x, struct upg_view *v)
{
	memset(v, 0, sizeof(*v));
	v->coordinator = c->primary[0];
	for (int y = 0; y < c->n; y++) {
		v->alive[y] = c->nd[y].up;
		v->links_up[y] = c->nd[y].up && !(c->link_cut && y != x);
	}
	for (int g = 0; g < TND_GROUPS_MAX; g++)
		v->primary[g] = g < c->conf.n_groups ? c->primary[g] : TND_NO_NODE;
	v->wall_ms = 1700000000000LL + MONO_TO_MS(c->now);
}

static void perform(struct cl *c, int x, struct upg_actions *a)
{
	struct tnode *t = &c->nd[x];
	int n_store = 0;
	assert_int_equal(a->n_dropped, 0);
	for (int i = 0; i < a->n; i++)
		n_store += a->a[i].type == UPG_ACT_STORE;
	/* one write of the final state per action list */
	assert_true(n_store <= 1);
	for (int i = 0; i < a->n; i++) {
		struct upg_act *p = &a->a[i];
		switch (p->type) {
		case UPG_ACT_SEND: {
			assert_true(p->len >= WIRE_HDR_LEN && p->len <= WIRE_MTU - WIRE_TAG_LEN);
			assert_true(p->to >= 0 && p->to < c->n && p->to != x);
			if (c->qt - c->qh >= Q_MAX) {
				c->dropped++;
				break;
			}
			struct pkt *k = &c->q[c->qt++ % Q_MAX];
			k->from = x;
			k->to = p->to;
			k->len = p->len;
			memcpy(k->b, p->pkt, p->len);
			break;
		}
		case UPG_ACT_STORE:
			assert_int_equal(upg_journal_encode(p->journal, t->disk, sizeof(t->disk),
							    &t->disk_len), 0);
			t->stores++;
			if (c->kill_cursor >= 0 && c->killed < 0 && x == c->primary[0] &&
			    p->journal->cursor > c->kill_cursor)
				c->killed = x;
			break;
		case UPG_ACT_DO: {
			c->n_do_acts[x]++;
			c->n_fetch_acts[x] += p->op == UPG_DO_FETCH;
			c->n_install_acts[x] += p->op == UPG_DO_INSTALL;
			assert_true(t->n_do < DOQ_MAX);
			struct pdo *d = &t->dos[t->n_do++];
			d->on = true;
			d->id = p->id;
			d->step = p->step;
			d->op = p->op;
			snprintf(d->version, sizeof(d->version), "%s", p->version);
			d->due = c->now + MS(200);
			break;
		}
		case UPG_ACT_FAILOVER: {
			int g = p->group; /* ids equal indexes in these configurations */
			c->fo[g].on = true;
			c->fo[g].target = p->node;
			c->fo[g].due = c->now + MS(200);
			break;
		}
		case UPG_ACT_RESET:
			t->resets++;
			break;
		case UPG_ACT_REPLY:
			assert_true(t->n_rep < REP_MAX);
			t->rep[t->n_rep].token = p->token;
			t->rep[t->n_rep].rc = p->rc;
			snprintf(t->rep[t->n_rep].code, UPG_CODE_LEN, "%s", p->code);
			snprintf(t->rep[t->n_rep].msg, UPG_MSG_LEN, "%s", p->message);
			t->n_rep++;
			break;
		case UPG_ACT_EVENT:
			if (verbose)
				printf("  t=%lld %s %s %s\n", (long long)MONO_TO_MS(c->now),
				       c->conf.nodes[x].name, p->name, p->kv);
			if (strcmp(p->name, "upgrade.takeover") == 0)
				c->events_takeover++;
			if (strcmp(p->name, "upgrade.journal") == 0)
				for (int y = 0; y < c->n; y++) {
					char k[32];
					snprintf(k, sizeof(k), "from=%s ", c->conf.nodes[y].name);
					if (strstr(p->kv, k))
						c->adopted[x][y]++;
				}
			if (strcmp(p->name, "upgrade.step") == 0 && strstr(p->kv, "status=failed"))
				c->events_failed_steps++;
			break;
		}
	}
}

static int ev(struct cl *c, int x, const struct upg_ev *e)
{
	struct upg_actions *a = acts_new();
	int rc = upg_step(c->nd[x].u, e, c->now, a);
	perform(c, x, a);
	free(a);
	if (c->killed == x && c->nd[x].up) {
		if (verbose)
			printf("killing %s at step %d\n", c->conf.nodes[x].name, upg_journal_get(c->nd[x].u)->cursor);
		c->nd[x].down_at = c->nd[x].boot_at = 0;
		go_down(c, x);
	}
	return rc;
}

static void drain(struct cl *c)
{
	for (int guard = 0; c->qh < c->qt && guard < 100000; guard++) {
		struct pkt *k = &c->q[c->qh++ % Q_MAX];
		if (!c->nd[k->to].up || !c->nd[k->from].up || c->cut[k->from][k->to])
			continue;
		struct wire_hdr h;
		assert_int_equal(wire_hdr_decode(k->b, k->len, &h), 0);
		assert_true(h.seq & UPG_SEQ_SPACE);
		assert_int_equal(h.body_len, k->len - WIRE_HDR_LEN);
		struct upg_ev e = { .type = UPG_EV_RECV, .hdr = &h, .body = k->b + WIRE_HDR_LEN,
				    .body_len = h.body_len };
		int rc = ev(c, k->to, &e);
		assert_int_equal(rc, 0);
	}
}

/* The node-local actions, as a driver performs them. */
static void answer_dos(struct cl *c, int x)
{
	struct tnode *t = &c->nd[x];
	for (int i = 0; i < t->n_do && t->up; i++) {
		struct pdo d = t->dos[i];
		if (!d.on || c->now < d.due)
			continue;
		t->dos[i].on = false;
		if (t->no_answer)
			continue;
		struct upg_ev e = { .type = UPG_EV_DONE, .id = d.id, .step = d.step, .done_op = d.op };
		bool restart = false;
		switch (d.op) {
		case UPG_DO_BACKUP:
			break;
		case UPG_DO_FETCH:
			if (t->fetch_fails > 0) {
				t->fetch_fails--;
				e.rc = TND_EIO;
				snprintf(e.code, sizeof(e.code), "E_FETCH");
				snprintf(e.message, sizeof(e.message), "the transfer broke off");
				break;
			}
			t->has_image = true;
			break;
		case UPG_DO_INSTALL:
			if (t->fail_install) {
				e.rc = TND_EIO;
				snprintf(e.code, sizeof(e.code), "E_INSTALL");
				snprintf(e.message, sizeof(e.message), "no space to unpack");
			} else {
				restart = strcmp(t->version, d.version) != 0;
			}
			break;
		case UPG_DO_REVERT:
			restart = strcmp(t->version, d.version) != 0;
			break;
		}
		ev(c, x, &e);
		if (restart && t->up) {
			t->down_at = c->now + MS(100);
			t->boot_at = c->now + MS(800);
			snprintf(t->boot_version, sizeof(t->boot_version), "%s", d.version);
		}
	}
}

static void restarts(struct cl *c, int x)
{
	struct tnode *t = &c->nd[x];
	if (t->down_at && c->now >= t->down_at) {
		t->down_at = 0;
		go_down(c, x);
	}
	if (t->boot_at && c->now >= t->boot_at && !t->up) {
		t->boot_at = 0;
		if (t->dead_forever)
			return;
		if (t->self_revert && strcmp(t->boot_version, "1.0.0") != 0) {
			/* the new version never confirmed: the boot record
			 * took the node back by itself */
			snprintf(t->revert_reason, sizeof(t->revert_reason), "not confirmed in time");
			memcpy(t->revert_from, t->boot_version, sizeof(t->revert_from));
		} else if (strcmp(t->version, t->boot_version) != 0) {
			memcpy(t->previous, t->version, sizeof(t->previous));
			memcpy(t->version, t->boot_version, sizeof(t->version));
		}
		if (c->sync_delay_ms) {
			t->sess_sync = false;
			t->sync_at = c->now + MS(c->sync_delay_ms);
		}
		boot(c, x);
	}
	if (t->sync_at && c->now >= t->sync_at) {
		t->sync_at = 0;
		t->sess_sync = true;
	}
}

/* One 100 ms turn. */
static void turn(struct cl *c)
{
	c->now += MS(100);
	for (int g = 0; g < c->conf.n_groups; g++)
		if (c->fo[g].on && c->now >= c->fo[g].due) {
			c->fo[g].on = false;
			int to = c->fo[g].target;
			if (to >= 0 && c->nd[to].up && c->conf.groups[g].priority[to] > 0)
				c->primary[g] = to;
		}
	for (int x = 0; x < c->n; x++)
		restarts(c, x);
	if (c->quorum0) {
		int nup = 0;
		for (int x = 0; x < c->n; x++)
			nup += c->nd[x].up;
		if (nup * 2 <= c->n) {
			if (!c->g0_lost)
				c->g0_losses++;
			c->g0_lost = true;
			c->primary[0] = TND_NO_NODE;
		} else if (c->g0_lost) {
			c->g0_lost = false;
			c->g0_back = c->now;
		}
		if (!c->g0_lost && c->g0_back && c->now < c->g0_back + MS(c->g0_pause_ms))
			c->primary[0] = TND_NO_NODE;
		else if (!c->g0_lost && c->primary[0] == TND_NO_NODE)
			c->primary[0] = c->g0_next >= 0 && c->nd[c->g0_next].up ? c->g0_next
					: best_live(c, 0, TND_NO_NODE);
	}
	for (int x = 0; x < c->n; x++) {
		if (!c->nd[x].up)
			continue;
		struct upg_facts f;
		struct upg_view v;
		facts_of(c, x, &f);
		view_of(c, x, &v);
		upg_set_local(c->nd[x].u, &f, c->now);
		upg_set_view(c->nd[x].u, &v, c->now);
		struct upg_ev e = { .type = UPG_EV_TICK };
		assert_int_equal(ev(c, x, &e), 0);
		if (c->nd[x].up) {
			/* the wake-up asked for is soon enough for the
			 * resends (UPG_RESEND_MS) and the STATE period */
			mono_t w = upg_next_wake(c->nd[x].u);
			assert_true(w <= c->now + MS(UPG_STATE_MS + UPG_STATE_MS / 8));
		}
		drain(c);
		answer_dos(c, x);
		drain(c);
	}
}

static void run_ms(struct cl *c, int ms)
{
	for (int i = 0; i < ms / 100; i++)
		turn(c);
}

static const struct upg_journal *J(struct cl *c, int x)
{
	return upg_journal_get(c->nd[x].u);
}

/* Run until the journal on every live node is in state `st` (or time
 * runs out). */
static bool run_until(struct cl *c, int st, int max_ms)
{
	for (int i = 0; i < max_ms / 100; i++) {
		turn(c);
		bool all = true;
		int nup = 0;
		for (int x = 0; x < c->n; x++) {
			if (c->nd[x].up && J(c, x)->state != st)
				all = false;
			nup += c->nd[x].up;
		}
		if (all && nup > 0)
			return true;
	}
	return false;
}

static void image_ok(struct upg_image *img)
{
	memset(img, 0, sizeof(*img));
	img->present = img->intact = img->signed_ok = img->trusted = true;
	snprintf(img->version, sizeof(img->version), "1.1.0");
	snprintf(img->min_upgrade_from, sizeof(img->min_upgrade_from), "1.0.0");
	img->proto_min = 1;
	img->proto_max = 2;
	memset(img->digest, 0xab, sizeof(img->digest));
	img->bytes = 10000000;
	img->config_ok = true;
}

static int cmd(struct cl *c, int x, enum upg_cmd_op op, const struct upg_image *img,
	       const struct upg_opts *o, int node, uint32_t token)
{
	struct upg_ev e = { .type = UPG_EV_CMD, .op = op, .token = token, .image = img,
			    .node = node };
	if (o)
		e.opts = *o;
	int rc = ev(c, x, &e);
	drain(c);
	return rc;
}

/* The reply to `token` on node x, run up to 12 s for it. */
static int wait_reply(struct cl *c, int x, uint32_t token, char *code)
{
	for (int i = 0; i < 120; i++) {
		for (int k = 0; k < c->nd[x].n_rep; k++)
			if (c->nd[x].rep[k].token == token) {
				if (code)
					strcpy(code, c->nd[x].rep[k].code);
				return c->nd[x].rep[k].rc;
			}
		turn(c);
	}
	fail_msg("no reply to token %u", token);
	return 1;
}

static const uint8_t PRIO2[1][NMAX] = { { 100, 50 } };

/* --- journal codec ------------------------------------------------------------------ */

static void sample_journal(struct upg_journal *j)
{
	memset(j, 0, sizeof(*j));
	j->id = 0x1200 | 1;
	j->seq = 42;
	j->state = UPG_ABORTING;
	j->coordinator = 1;
	j->force = true;
	j->no_failback = true;
	strcpy(j->from, "1.0.0");
	strcpy(j->to, "1.1.0");
	j->from_proto = 1;
	j->to_proto = 2;
	memset(j->digest, 0x5a, sizeof(j->digest));
	j->image_bytes = 123456789;
	j->source = 0;
	j->wall_start_ms = 1700000000123LL;
	j->elapsed_ms = 98765;
	j->cursor = 2;
	j->n_steps = 3;
	j->steps[0] = (struct upg_step){ .kind = UPG_K_FREEZE, .status = UPG_ST_DONE, .node = -1,
					 .t_start_ms = 1, .t_end_ms = 5, .wall_start_ms = 17,
					 .wall_end_ms = 18 };
	j->steps[1] = (struct upg_step){ .kind = UPG_K_MOVE, .status = UPG_ST_FAILED, .group = 3,
					 .node = 1, .t_start_ms = 6, .t_end_ms = 9 };
	j->steps[2] = (struct upg_step){ .kind = UPG_K_REVERT, .status = UPG_ST_RUNNING,
					 .node = -1, .nodes = 0x3, .rollback = true,
					 .t_start_ms = 10 };
	j->n_nodes = 2;
	j->node_state[0] = UPG_N_REVERTING;
	j->node_state[1] = UPG_N_UPGRADED;
	j->node_inc[0] = 0x1122334455667788ULL;
	j->node_inc[1] = 7;
	strcpy(j->error.code, "E_MOVE");
	strcpy(j->error.message, "group 3 is still on gw1");
	strcpy(j->error.recovery, "rolling back");
	j->error.step = 1;
}

static void test_journal_roundtrip(void **state)
{
	(void)state;
	struct upg_journal a, b;
	uint8_t buf[UPG_JOURNAL_BYTES_MAX], buf2[UPG_JOURNAL_BYTES_MAX];
	size_t len, len2;
	sample_journal(&a);
	assert_int_equal(upg_journal_encode(&a, buf, sizeof(buf), &len), 0);
	assert_int_equal(upg_journal_decode(buf, len, &b), 0);
	assert_memory_equal(&a, &b, sizeof(a));
	assert_int_equal(upg_journal_encode(&b, buf2, sizeof(buf2), &len2), 0);
	assert_int_equal(len, len2);
	assert_memory_equal(buf, buf2, len);
	/* the largest journal fits the bound */
	a.n_steps = UPG_STEPS_MAX;
	a.n_nodes = TND_NODES_MAX;
	for (int i = 0; i < UPG_STEPS_MAX; i++)
		a.steps[i] = (struct upg_step){ .kind = UPG_K_UPGRADE, .status = UPG_ST_DONE,
						.node = 31, .nodes = 0xffffffffu, .group = 255,
						.t_start_ms = 0xffffffffu, .t_end_ms = 0xffffffffu,
						.wall_start_ms = -1, .wall_end_ms = INT64_MAX };
	memset(a.error.message, 'm', sizeof(a.error.message) - 1);
	memset(a.error.recovery, 'r', sizeof(a.error.recovery) - 1);
	assert_int_equal(upg_journal_encode(&a, buf, sizeof(buf), &len), 0);
	assert_true(len <= UPG_JOURNAL_BYTES_MAX);
	assert_int_equal(upg_journal_decode(buf, len, &b), 0);
	assert_memory_equal(&a, &b, sizeof(a));
	/* a small buffer: no space */
	assert_int_equal(upg_journal_encode(&a, buf, 100, &len), TND_ENOSPC);
}

/* Top-level TLV surgery on an encoded journal. */
static long tlv_at(const uint8_t *b, size_t len, uint16_t type)
{
	size_t off = 0;
	while (off + 4 <= len) {
		uint16_t t = (uint16_t)(b[off] << 8 | b[off + 1]);
		uint16_t l = (uint16_t)(b[off + 2] << 8 | b[off + 3]);
		if (t == type)
			return (long)off;
		off += 4 + l;
	}
	return -1;
}

static size_t tlv_remove(uint8_t *b, size_t len, uint16_t type)
{
	long o = tlv_at(b, len, type);
	assert_true(o >= 0);
	size_t l = 4 + (size_t)(b[o + 2] << 8 | b[o + 3]);
	memmove(b + o, b + o + (long)l, len - (size_t)o - l);
	return len - l;
}

static size_t tlv_append(uint8_t *b, size_t len, uint16_t type, const void *v, uint16_t l)
{
	b[len] = (uint8_t)(type >> 8);
	b[len + 1] = (uint8_t)type;
	b[len + 2] = (uint8_t)(l >> 8);
	b[len + 3] = (uint8_t)l;
	memcpy(b + len + 4, v, l);
	return len + 4 + l;
}

static void test_journal_refusals(void **state)
{
	(void)state;
	struct upg_journal a, b;
	uint8_t good[UPG_JOURNAL_BYTES_MAX], buf[UPG_JOURNAL_BYTES_MAX + 64];
	size_t glen, len;
	sample_journal(&a);
	assert_int_equal(upg_journal_encode(&a, good, sizeof(good), &glen), 0);

	/* every required TLV missing */
	const uint16_t req[] = { J_ID, J_SEQ, J_STATE, J_COORD, J_FLAGS, J_FROM, J_TO,
				 J_DIGEST, J_SOURCE, J_CURSOR, J_NNODES, J_NSTATE };
	for (size_t i = 0; i < sizeof(req) / sizeof(req[0]); i++) {
		memcpy(buf, good, glen);
		len = tlv_remove(buf, glen, req[i]);
		assert_int_equal(upg_journal_decode(buf, len, &b), TND_EINVAL);
	}
	/* an unknown TLV is skipped */
	memcpy(buf, good, glen);
	len = tlv_append(buf, glen, 999, "xyz", 3);
	assert_int_equal(upg_journal_decode(buf, len, &b), 0);
	assert_memory_equal(&a, &b, sizeof(a));
	/* truncated inside a TLV */
	for (size_t cut = 1; cut < 6; cut++)
		assert_int_equal(upg_journal_decode(good, glen - cut, &b), TND_EINVAL);
	assert_int_equal(upg_journal_decode(good, 3, &b), TND_EINVAL);
	assert_int_equal(upg_journal_decode(NULL, 0, &b), TND_EINVAL);
	assert_int_equal(upg_journal_decode(good, UPG_JOURNAL_BYTES_MAX + 1, &b), TND_EINVAL);

	/* values out of range, via the encoder's input (which refuses
	 * them too) and via patched bytes */
	struct { const char *what; void (*f)(struct upg_journal *); } bad[] = {
		{ "id 0", NULL },
	};
	(void)bad;
	struct upg_journal m;
#define BAD(stmt) do { \
		m = a; stmt; \
		assert_int_equal(upg_journal_encode(&m, buf, sizeof(buf), &len), TND_EINVAL); \
	} while (0)
	BAD(m.id = 0);
	BAD(m.state = UPG_FAILED + 1);
	BAD(m.cursor = 4);
	BAD(m.cursor = -1);
	BAD(m.coordinator = 2);
	BAD(m.source = 5);
	BAD(m.n_nodes = 0);
	BAD(m.n_nodes = TND_NODES_MAX + 1);
	BAD(m.steps[1].node = 2);
	BAD(m.steps[2].nodes = 0x4);
	BAD(m.steps[0].kind = 0);
	BAD(m.steps[0].kind = UPG_K_UNFREEZE + 1);
	BAD(m.steps[0].status = UPG_ST_SKIPPED + 1);
	BAD(m.node_state[1] = UPG_N_FAILED + 1);
	BAD(m.error.step = 3);
	BAD(strcpy(m.to, "1.x"));
	BAD(strcpy(m.from, ""));
#undef BAD
	/* patched bytes: the same refusals from the decoder */
	long o;
	memcpy(buf, good, glen);
	o = tlv_at(buf, glen, J_STATE);
	buf[o + 4] = UPG_FAILED + 1;
	assert_int_equal(upg_journal_decode(buf, glen, &b), TND_EINVAL);
	memcpy(buf, good, glen);
	o = tlv_at(buf, glen, J_CURSOR);
	buf[o + 5] = 9; /* cursor 9 > 3 steps */
	assert_int_equal(upg_journal_decode(buf, glen, &b), TND_EINVAL);
	memcpy(buf, good, glen);
	o = tlv_at(buf, glen, J_NNODES);
	buf[o + 4] = 3; /* node_state holds 2 */
	assert_int_equal(upg_journal_decode(buf, glen, &b), TND_EINVAL);
	memcpy(buf, good, glen);
	o = tlv_at(buf, glen, J_FLAGS);
	buf[o + 4] |= 0x80;
	assert_int_equal(upg_journal_decode(buf, glen, &b), TND_EINVAL);
	memcpy(buf, good, glen);
	o = tlv_at(buf, glen, J_DIGEST);
	buf[o + 3] = 31; /* length 31: the TLVs after it misparse or it is short */
	assert_int_equal(upg_journal_decode(buf, glen, &b), TND_EINVAL);
	memcpy(buf, good, glen);
	o = tlv_at(buf, glen, J_COORD);
	buf[o + 4] = 7;
	assert_int_equal(upg_journal_decode(buf, glen, &b), TND_EINVAL);
	memcpy(buf, good, glen);
	o = tlv_at(buf, glen, J_NSTATE);
	buf[o + 5] = 200;
	assert_int_equal(upg_journal_decode(buf, glen, &b), TND_EINVAL);
	memcpy(buf, good, glen);
	o = tlv_at(buf, glen, J_TO);
	buf[o + 5] = 0; /* a NUL inside the string */
	assert_int_equal(upg_journal_decode(buf, glen, &b), TND_EINVAL);
	/* more steps than UPG_STEPS_MAX */
	memcpy(buf, good, glen);
	o = tlv_at(buf, glen, J_STEP);
	size_t sl = 4 + (size_t)(buf[o + 2] << 8 | buf[o + 3]);
	uint8_t step_tlv[128];
	memcpy(step_tlv, buf + o, sl);
	len = glen;
	for (int i = 0; i < UPG_STEPS_MAX; i++) {
		memcpy(buf + len, step_tlv, sl);
		len += sl;
	}
	assert_true(len <= UPG_JOURNAL_BYTES_MAX);
	assert_int_equal(upg_journal_decode(buf, len, &b), TND_EINVAL);
	/* a step without its kind */
	memcpy(buf, good, glen);
	o = tlv_at(buf, glen, J_STEP);
	buf[o + 4 + 1] = 200; /* S_KIND -> an unknown inner type: kind missing */
	assert_int_equal(upg_journal_decode(buf, glen, &b), TND_EINVAL);
}

/* --- pre-checks ------------------------------------------------------------------------ */

static const struct upg_check *find_check(const struct upg_checks *k, const char *code)
{
	for (int i = 0; i < k->n; i++)
		if (strcmp(k->c[i].code, code) == 0)
			return &k->c[i];
	return NULL;
}

static void expect_only_fail(struct cl *c, const struct upg_image *img, const struct upg_opts *o,
			     const char *code)
{
	struct upg_checks k;
	upg_precheck(c->nd[0].u, img, o, c->now, &k);
	assert_false(k.all_ok);
	for (int i = 0; i < k.n; i++) {
		bool want_fail = strcmp(k.c[i].code, code) == 0;
		if (want_fail == k.c[i].ok)
			fail_msg("check %s: ok=%d (expected only %s to fail): %s", k.c[i].code,
				 k.c[i].ok, code, k.c[i].message);
	}
	assert_non_null(find_check(&k, code));
}

static void test_precheck(void **state)
{
	(void)state;
	const uint8_t prio[2][NMAX] = { { 100, 50 }, { 50, 100 } };
	struct cl *c = cl_new(2, 2, prio);
	struct upg_image img;
	struct upg_opts o = { 0 };
	struct upg_checks k;
	image_ok(&img);
	run_ms(c, 1500);
	upg_precheck(c->nd[0].u, &img, &o, c->now, &k);
	for (int i = 0; i < k.n; i++)
		if (!k.c[i].ok)
			fail_msg("healthy: %s failed: %s", k.c[i].code, k.c[i].message);
	assert_true(k.all_ok);
	assert_false(k.disruptive);
	assert_true(k.n >= 14);
	/* also from the other node */
	upg_precheck(c->nd[1].u, &img, &o, c->now, &k);
	assert_true(k.all_ok);

#define FACT_CASE(field, bad, good, code) do { \
		c->nd[1].field = bad; run_ms(c, 1200); \
		expect_only_fail(c, &img, &o, code); \
		c->nd[1].field = good; run_ms(c, 1200); \
	} while (0)
	FACT_CASE(links, false, true, "E_PEER_LINK");
	FACT_CASE(maint, true, false, "E_GROUP_STATE");
	FACT_CASE(gstate_override, UPG_G_OTHER, -1, "E_GROUP_STATE");
	FACT_CASE(cfg_sync, false, true, "E_CONFIG_SYNC");
	FACT_CASE(cgen, 6, 5, "E_CONFIG_SYNC");
	FACT_CASE(sess_sync, false, true, "E_SESSION_SYNC");
	FACT_CASE(free_b, 19999999, 1000000000ULL, "E_DISK_SPACE");
	FACT_CASE(cpu, 81, 10, "E_CPU");
	FACT_CASE(cpu, 255, 10, "E_CPU");
#undef FACT_CASE
	/* a link down seen from the view */
	c->link_cut = true;
	run_ms(c, 200);
	expect_only_fail(c, &img, &o, "E_PEER_LINK");
	c->link_cut = false;
	run_ms(c, 200);
	/* the version: older, equal, across a gap, forced */
	strcpy(c->nd[1].version, "1.2.0");
	run_ms(c, 1200);
	expect_only_fail(c, &img, &o, "E_VERSION_OLD");
	strcpy(c->nd[1].version, "0.9.0");
	run_ms(c, 1200);
	expect_only_fail(c, &img, &o, "E_VERSION_GAP");
	o.force = true;
	upg_precheck(c->nd[0].u, &img, &o, c->now, &k);
	assert_true(k.all_ok);
	assert_true(k.disruptive);
	o.force = false;
	strcpy(c->nd[1].version, "1.0.0");
	run_ms(c, 1200);
	/* the image */
	struct upg_image bad = img;
	bad.present = false;
	expect_only_fail(c, &bad, &o, "E_IMAGE_MISSING");
	bad = img;
	bad.intact = false;
	expect_only_fail(c, &bad, &o, "E_IMAGE_CORRUPT");
	bad = img;
	bad.signed_ok = false;
	expect_only_fail(c, &bad, &o, "E_IMAGE_UNSIGNED");
	bad = img;
	bad.trusted = false;
	strcpy(bad.check_code, "E_IMAGE_UNTRUSTED");
	strcpy(bad.check_message, "key 0011 not in trusted.d");
	expect_only_fail(c, &bad, &o, "E_IMAGE_UNTRUSTED");
	bad = img;
	bad.config_ok = false;
	strcpy(bad.config_message, "line 3: unknown key 'foo'");
	expect_only_fail(c, &bad, &o, "E_CONFIG_INVALID");
	upg_precheck(c->nd[0].u, &bad, &o, c->now, &k);
	assert_non_null(strstr(find_check(&k, "E_CONFIG_INVALID")->message, "unknown key"));
	bad = img;
	bad.bytes = 600000000; /* 2x > 1 GB free */
	expect_only_fail(c, &bad, &o, "E_DISK_SPACE");
	/* a peer down: its facts go stale and the view says so */
	go_down(c, 1);
	run_ms(c, 200);
	upg_precheck(c->nd[0].u, &img, &o, c->now, &k);
	assert_false(find_check(&k, "E_PEER_DOWN")->ok);
	assert_non_null(strstr(find_check(&k, "E_PEER_DOWN")->message, "gw2"));
	boot(c, 1);
	run_ms(c, 1500);
	upg_precheck(c->nd[0].u, &img, &o, c->now, &k);
	assert_true(k.all_ok);
	/* every failure is reported, not just the first */
	c->nd[1].cpu = 99;
	c->nd[1].sess_sync = false;
	run_ms(c, 1200);
	upg_precheck(c->nd[0].u, &bad, &o, c->now, &k);
	int nfail = 0;
	for (int i = 0; i < k.n; i++)
		nfail += !k.c[i].ok;
	assert_int_equal(nfail, 3);
	/* a start is refused with the first failed check's code, and the
	 * message names them all; nothing changes */
	assert_int_equal(cmd(c, 0, UPG_CMD_START, &bad, &o, TND_NO_NODE, 5), 0);
	char code[UPG_CODE_LEN];
	assert_int_equal(wait_reply(c, 0, 5, code), TND_EREFUSED);
	assert_string_equal(code, "E_SESSION_SYNC");
	assert_non_null(strstr(c->nd[0].rep[0].msg, "E_CPU"));
	assert_non_null(strstr(c->nd[0].rep[0].msg, "E_DISK_SPACE"));
	assert_int_equal(J(c, 0)->id, 0);
	cl_free(c);

	/* a group with one member: no in-service path unless disruptive */
	const uint8_t p1[2][NMAX] = { { 100, 50 }, { 100, 0 } };
	c = cl_new(2, 2, p1);
	run_ms(c, 1500);
	expect_only_fail(c, &img, &o, "E_GROUP_SINGLE");
	o.disruptive = true;
	upg_precheck(c->nd[0].u, &img, &o, c->now, &k);
	assert_true(k.all_ok);
	assert_true(k.disruptive);
	cl_free(c);
}

/* --- plans ------------------------------------------------------------------------------ */

/* "freeze backup preempt_off move:0>0 distribute:2 upgrade:2 ..." */
static void plan_str(const struct upg_journal *j, int from, char *b, size_t n)
{
	size_t k = 0;
	b[0] = 0;
	for (int i = from; i < j->n_steps && k < n; i++) {
		const struct upg_step *s = &j->steps[i];
		k += (size_t)snprintf(b + k, n - k, "%s%s", k ? " " : "", upg_kind_name(s->kind));
		if (s->kind == UPG_K_MOVE)
			k += (size_t)snprintf(b + k, n - k, ":%u>%d", s->group, s->node);
		if (s->kind == UPG_K_FAILBACK || s->kind == UPG_K_RELEASE)
			k += (size_t)snprintf(b + k, n - k, ":%u", s->group);
		if (s->kind == UPG_K_UPGRADE || s->kind == UPG_K_REVERT || s->kind == UPG_K_DISTRIBUTE)
			k += (size_t)snprintf(b + k, n - k, ":%x", s->nodes);
	}
}

static void check_plan(struct cl *c, int x, const struct upg_opts *o, bool disruptive,
		       const char *want)
{
	struct upg_journal j;
	char got[1024];
	memset(&j, 0, sizeof(j));
	j.source = (int8_t)x;
	assert_int_equal(upg_plan_build(c->nd[x].u, o, disruptive, &j), 0);
	plan_str(&j, 0, got, sizeof(got));
	if (strcmp(got, want) != 0)
		fail_msg("plan\n got: %s\nwant: %s", got, want);
}

static void test_plans(void **state)
{
	(void)state;
	struct upg_opts o = { 0 };
	/* 2 nodes: gw2 first, group 0 handed to it, then gw1 */
	struct cl *c = cl_new(2, 1, PRIO2);
	run_ms(c, 1500);
	check_plan(c, 0, &o, false,
		   "freeze backup preempt_off move:0>0 distribute:2 upgrade:2 move:0>1 upgrade:1 "
		   "preempt_on failback:0 unfreeze");
	o.no_failback = true;
	check_plan(c, 0, &o, false,
		   "freeze backup preempt_off move:0>0 distribute:2 upgrade:2 move:0>1 upgrade:1 "
		   "preempt_on release:0 unfreeze");
	o.no_failback = false;
	/* planned on the non-coordinator: the same plan (image from gw2) */
	check_plan(c, 1, &o, false,
		   "freeze backup preempt_off move:0>0 distribute:1 upgrade:2 move:0>1 upgrade:1 "
		   "preempt_on failback:0 unfreeze");
	/* disruptive */
	check_plan(c, 0, &o, true, "freeze backup distribute:2 upgrade:3 unfreeze");
	cl_free(c);

	/* 3 nodes, 2 groups: group 1 on gw2 (gw1 not a member); gw1 and gw2
	 * share no group but 0, so they go together at the end (group 0
	 * then pauses until they are back: it carries no traffic) */
	const uint8_t p3[2][NMAX] = { { 100, 90, 80 }, { 0, 100, 50 } };
	c = cl_new(3, 2, p3);
	run_ms(c, 1500);
	check_plan(c, 0, &o, false,
		   "freeze backup preempt_off move:0>0 move:1>1 distribute:6 upgrade:4 move:1>2 "
		   "move:0>2 upgrade:3 preempt_on failback:0 failback:1 unfreeze");
	cl_free(c);

	/* 4 nodes, 2 groups: gw2 and gw4 share no group but 0, so they go
	 * in parallel (issue 5), then gw1 and gw3; no cap for group 0's
	 * majority (it pauses the coordination, test_run_group0_pause) */
	const uint8_t p4[2][NMAX] = { { 100, 50, 0, 0 }, { 0, 0, 100, 50 } };
	c = cl_new(4, 2, p4);
	run_ms(c, 1500);
	check_plan(c, 0, &o, false,
		   "freeze backup preempt_off move:0>0 move:1>2 distribute:e upgrade:a "
		   "move:1>3 move:0>1 upgrade:5 preempt_on failback:0 failback:1 unfreeze");
	cl_free(c);

	/* 5 nodes, 2 groups: gw2, gw4 and gw5 together, then gw1 and gw3 */
	const uint8_t p5n[2][NMAX] = { { 100, 50, 0, 0, 10 }, { 0, 0, 100, 50, 0 } };
	c = cl_new(5, 2, p5n);
	run_ms(c, 1500);
	check_plan(c, 0, &o, false,
		   "freeze backup preempt_off move:0>0 move:1>2 distribute:1e upgrade:1a "
		   "move:1>3 move:0>1 upgrade:5 preempt_on failback:0 failback:1 unfreeze");
	cl_free(c);

	/* 4 nodes where one group spans gw2 and gw3: they are in different
	 * batches (gw3 with gw4, gw2 with gw1) */
	const uint8_t p5[2][NMAX] = { { 100, 0, 0, 50 }, { 0, 100, 50, 0 } };
	c = cl_new(4, 2, p5);
	run_ms(c, 1500);
	check_plan(c, 0, &o, false,
		   "freeze backup preempt_off move:0>0 move:1>1 distribute:e upgrade:c "
		   "move:1>2 move:0>3 upgrade:3 preempt_on failback:0 failback:1 unfreeze");
	cl_free(c);

	/* rollback: gw2 (standby) and gw3 (holding group 1) on the new
	 * version: gw2 first, group 1 moved to gw2, then gw3 */
	const uint8_t pr[2][NMAX] = { { 100, 90, 80 }, { 0, 50, 100 } };
	c = cl_new(3, 2, pr);
	strcpy(c->nd[1].version, "1.1.0");
	strcpy(c->nd[2].version, "1.1.0");
	run_ms(c, 1500);
	struct upg_journal j;
	char got[1024];
	memset(&j, 0, sizeof(j));
	strcpy(j.from, "1.0.0");
	strcpy(j.to, "1.1.0");
	j.n_nodes = 3;
	j.state = UPG_ABORTING;
	j.n_steps = 4;
	j.cursor = 4;
	for (int i = 0; i < 4; i++)
		j.steps[i].kind = UPG_K_FREEZE;
	assert_int_equal(upg_plan_rollback(c->nd[0].u, TND_NO_NODE, &j), 0);
	plan_str(&j, 4, got, sizeof(got));
	assert_string_equal(got, "revert:2 move:1>1 revert:4 preempt_on failback:0 failback:1 unfreeze");
	for (int i = 4; i < j.n_steps; i++)
		assert_true(j.steps[i].rollback);
	/* one node only, after completion (freeze and preempt_off first) */
	j.state = UPG_COMPLETED;
	assert_int_equal(upg_plan_rollback(c->nd[0].u, 2, &j), 0);
	plan_str(&j, 4, got, sizeof(got));
	assert_string_equal(got, "freeze preempt_off move:1>1 revert:4 preempt_on failback:0 failback:1 unfreeze");
	/* the rollback replaces the steps after the cursor */
	j.cursor = 2;
	assert_int_equal(upg_plan_rollback(c->nd[0].u, TND_NO_NODE, &j), 0);
	assert_int_equal(j.steps[2].kind, UPG_K_FREEZE);
	assert_true(j.steps[2].rollback);
	assert_false(j.steps[1].rollback);
	cl_free(c);
}

/* --- whole runs ---------------------------------------------------------------------------- */

static void assert_on(struct cl *c, const char *v)
{
	for (int x = 0; x < c->n; x++)
		if (strcmp(c->nd[x].version, v) != 0)
			fail_msg("%s runs %s, not %s", c->conf.nodes[x].name, c->nd[x].version, v);
}

/* Every live node holds the same journal, and its disk holds it too. */
static void assert_replicated(struct cl *c)
{
	const struct upg_journal *a = NULL;
	for (int x = 0; x < c->n; x++) {
		if (!c->nd[x].up)
			continue;
		const struct upg_journal *j = J(c, x);
		struct upg_journal d;
		assert_int_equal(upg_journal_decode(c->nd[x].disk, c->nd[x].disk_len, &d), 0);
		assert_int_equal(d.seq, j->seq);
		if (a) {
			assert_int_equal(a->id, j->id);
			assert_int_equal(a->seq, j->seq);
			assert_int_equal(a->state, j->state);
		}
		a = j;
	}
}

static int start_kill_cursor = -1;

static struct cl *started(int n, int ngroups, const uint8_t prio[][NMAX], int at,
			  const struct upg_opts *o)
{
	struct cl *c = cl_new(n, ngroups, prio);
	c->kill_cursor = start_kill_cursor;
	struct upg_image img;
	image_ok(&img);
	c->nd[at].has_image = true;
	run_ms(c, 1500);
	assert_int_equal(cmd(c, at, UPG_CMD_START, &img, o, TND_NO_NODE, 1), 0);
	char code[UPG_CODE_LEN];
	int rc = wait_reply(c, at, 1, code);
	if (rc != 0)
		fail_msg("start refused: %s %s", code, c->nd[at].rep[0].msg);
	return c;
}

static void test_run_2nodes(void **state)
{
	(void)state;
	struct upg_opts o = { 0 };
	struct cl *c = started(2, 1, PRIO2, 1, &o); /* asked on gw2: forwarded */
	const struct upg_journal *j = J(c, 0);
	assert_int_equal(j->state, UPG_RUNNING);
	assert_int_equal(j->source, 1);
	assert_string_equal(j->from, "1.0.0");
	assert_string_equal(j->to, "1.1.0");
	/* configuration changes are refused meanwhile, on every node */
	char why[200];
	assert_true(upg_frozen(c->nd[1].u, why, sizeof(why)) || J(c, 1)->id == 0);
	run_ms(c, 300);
	assert_true(upg_frozen(c->nd[1].u, why, sizeof(why)));
	assert_non_null(strstr(why, "upgrade"));
	assert_true(upg_preempt_suspended(c->nd[0].u));
	/* a second start is refused */
	struct upg_image img;
	image_ok(&img);
	assert_int_equal(cmd(c, 0, UPG_CMD_START, &img, &o, TND_NO_NODE, 2), 0);
	char code[UPG_CODE_LEN];
	assert_int_equal(wait_reply(c, 0, 2, code), TND_EREFUSED);
	assert_string_equal(code, "E_UPGRADE_RUNNING");
	/* a second command from the same node while one is in flight */
	assert_true(run_until(c, UPG_COMPLETED, 60000));
	assert_replicated(c);
	assert_on(c, "1.1.0");
	j = J(c, 0);
	for (int i = 0; i < j->n_steps; i++) {
		assert_int_equal(j->steps[i].status, UPG_ST_DONE);
		assert_true(j->steps[i].t_start_ms > 0);
		assert_true(j->steps[i].t_end_ms >= j->steps[i].t_start_ms);
		assert_true(j->steps[i].wall_end_ms >= j->steps[i].wall_start_ms);
		assert_false(j->steps[i].rollback);
	}
	assert_int_equal(j->node_state[0], UPG_N_UPGRADED);
	assert_int_equal(j->node_state[1], UPG_N_UPGRADED);
	assert_int_equal(c->primary[0], 0); /* failed back to the preferred node */
	assert_false(upg_frozen(c->nd[0].u, NULL, 0));
	assert_false(upg_preempt_suspended(c->nd[1].u));
	/* the cluster keeps the old protocol until finalize */
	assert_int_equal(upg_cluster_proto(c->nd[0].u), 1);
	/* a new start before finalize: E_NOT_FINALIZED */
	assert_int_equal(cmd(c, 1, UPG_CMD_START, &img, &o, TND_NO_NODE, 3), 0);
	assert_int_equal(wait_reply(c, 1, 3, code), TND_EREFUSED);
	assert_true(strcmp(code, "E_NOT_FINALIZED") == 0 || strcmp(code, "E_VERSION_OLD") == 0);
	/* finalize (asked on gw2, forwarded) */
	assert_int_equal(cmd(c, 1, UPG_CMD_FINALIZE, NULL, NULL, TND_NO_NODE, 4), 0);
	assert_int_equal(wait_reply(c, 1, 4, code), 0);
	run_ms(c, 1500);
	assert_true(J(c, 1)->finalized);
	assert_int_equal(J(c, 1)->state, UPG_IDLE);
	assert_int_equal(upg_cluster_proto(c->nd[0].u), 2);
	assert_int_equal(upg_cluster_proto(c->nd[1].u), 2);
	assert_replicated(c);
	/* nothing more to finalize, abort or roll back */
	assert_int_equal(cmd(c, 0, UPG_CMD_FINALIZE, NULL, NULL, TND_NO_NODE, 5), 0);
	assert_int_equal(wait_reply(c, 0, 5, code), TND_EREFUSED);
	assert_string_equal(code, "E_NO_UPGRADE");
	assert_int_equal(cmd(c, 0, UPG_CMD_ABORT, NULL, NULL, TND_NO_NODE, 6), 0);
	assert_int_equal(wait_reply(c, 0, 6, code), TND_EREFUSED);
	assert_string_equal(code, "E_NO_UPGRADE");
	assert_int_equal(cmd(c, 0, UPG_CMD_ROLLBACK, NULL, NULL, TND_NO_NODE, 7), 0);
	assert_int_equal(wait_reply(c, 0, 7, code), TND_EREFUSED);
	assert_string_equal(code, "E_NO_UPGRADE");
	cl_free(c);
}

static void test_run_4nodes(void **state)
{
	(void)state;
	const uint8_t p4[2][NMAX] = { { 100, 50, 0, 0 }, { 0, 0, 100, 50 } };
	struct upg_opts o = { 0 };
	struct cl *c = started(4, 2, p4, 0, &o);
	assert_true(run_until(c, UPG_COMPLETED, 120000));
	assert_on(c, "1.1.0");
	assert_replicated(c);
	assert_int_equal(c->primary[0], 0);
	assert_int_equal(c->primary[1], 2);
	cl_free(c);
}

static void test_run_disruptive(void **state)
{
	(void)state;
	struct upg_opts o = { .disruptive = true };
	struct cl *c = started(2, 1, PRIO2, 0, &o);
	assert_true(J(c, 0)->disruptive);
	assert_true(run_until(c, UPG_COMPLETED, 60000));
	assert_on(c, "1.1.0");
	assert_replicated(c);
	cl_free(c);
}

static void test_run_install_fails(void **state)
{
	(void)state;
	struct upg_opts o = { 0 };
	/* the first install (gw2) fails: nothing changed version */
	struct cl *c = cl_new(2, 1, PRIO2);
	struct upg_image img;
	image_ok(&img);
	c->nd[0].has_image = true;
	c->nd[1].fail_install = true;
	run_ms(c, 1500);
	cmd(c, 0, UPG_CMD_START, &img, &o, TND_NO_NODE, 1);
	assert_int_equal(wait_reply(c, 0, 1, NULL), 0);
	assert_true(run_until(c, UPG_FAILED, 60000));
	const struct upg_journal *j = J(c, 0);
	assert_string_equal(j->error.code, "E_INSTALL");
	assert_true(j->error.step >= 0);
	assert_int_equal(j->steps[j->error.step].kind, UPG_K_UPGRADE);
	assert_int_equal(j->steps[j->error.step].status, UPG_ST_FAILED);
	assert_non_null(strstr(j->error.recovery, "on gw1"));
	assert_on(c, "1.0.0");
	assert_replicated(c);
	assert_false(upg_frozen(c->nd[1].u, NULL, 0));
	assert_int_equal(c->primary[0], 0);
	cl_free(c);

	/* the second install (gw1, after the hand-over) fails: gw2 is
	 * rolled back, group 0 handed back to gw1 first */
	c = cl_new(2, 1, PRIO2);
	c->nd[0].has_image = true;
	c->nd[0].fail_install = true;
	run_ms(c, 1500);
	cmd(c, 0, UPG_CMD_START, &img, &o, TND_NO_NODE, 1);
	assert_int_equal(wait_reply(c, 0, 1, NULL), 0);
	assert_true(run_until(c, UPG_FAILED, 120000));
	j = J(c, 0);
	assert_string_equal(j->error.code, "E_INSTALL");
	assert_on(c, "1.0.0");
	assert_int_equal(j->node_state[1], UPG_N_REVERTED);
	assert_non_null(strstr(j->error.recovery, "gw2 returned to 1.0.0"));
	assert_non_null(strstr(j->error.recovery, "groups 0 on gw1"));
	bool reverted = false;
	for (int i = 0; i < j->n_steps; i++)
		if (j->steps[i].kind == UPG_K_REVERT && j->steps[i].rollback &&
		    j->steps[i].status == UPG_ST_DONE)
			reverted = true;
	assert_true(reverted);
	assert_replicated(c);
	assert_int_equal(c->primary[0], 0);
	cl_free(c);
}

static void test_run_self_revert(void **state)
{
	(void)state;
	struct upg_opts o = { 0 };
	struct cl *c = cl_new(2, 1, PRIO2);
	struct upg_image img;
	image_ok(&img);
	c->nd[0].has_image = true;
	c->nd[1].self_revert = true;
	run_ms(c, 1500);
	cmd(c, 0, UPG_CMD_START, &img, &o, TND_NO_NODE, 1);
	assert_int_equal(wait_reply(c, 0, 1, NULL), 0);
	assert_true(run_until(c, UPG_FAILED, 60000));
	assert_string_equal(J(c, 0)->error.code, "E_NODE_REVERTED");
	assert_on(c, "1.0.0");
	cl_free(c);
}

static void test_run_abort(void **state)
{
	(void)state;
	struct upg_opts o = { 0 };
	struct cl *c = started(2, 1, PRIO2, 0, &o);
	/* run until gw2 is on the new version, then abort from gw2 */
	for (int i = 0; i < 400 && strcmp(c->nd[1].version, "1.1.0") != 0; i++)
		turn(c);
	assert_string_equal(c->nd[1].version, "1.1.0");
	assert_int_equal(cmd(c, 1, UPG_CMD_ABORT, NULL, NULL, TND_NO_NODE, 9), 0);
	char code[UPG_CODE_LEN];
	assert_int_equal(wait_reply(c, 1, 9, code), 0);
	/* a second abort: already rolling back */
	assert_int_equal(cmd(c, 0, UPG_CMD_ABORT, NULL, NULL, TND_NO_NODE, 10), 0);
	int rc = wait_reply(c, 0, 10, code);
	if (J(c, 0)->state == UPG_ABORTING) {
		assert_int_equal(rc, TND_EREFUSED);
		assert_string_equal(code, "E_NO_UPGRADE");
	}
	assert_true(run_until(c, UPG_ABORTED, 120000));
	const struct upg_journal *j = J(c, 0);
	assert_string_equal(j->error.code, "E_ABORTED");
	assert_non_null(strstr(j->error.message, "gw2"));
	assert_on(c, "1.0.0");
	assert_replicated(c);
	assert_int_equal(c->primary[0], 0);
	assert_false(upg_frozen(c->nd[0].u, NULL, 0));
	cl_free(c);
}

/* The coordinator is killed after step k (for every k); the other node,
 * made group 0 primary, finishes; the killed node comes back later on
 * the version it had. */
static void test_run_coordinator_killed(void **state)
{
	(void)state;
	struct upg_opts o = { 0 };
	int nsteps = 11;
	for (int k = 0; k < nsteps; k++) {
		start_kill_cursor = k;
		struct cl *c = started(2, 1, PRIO2, 0, &o);
		start_kill_cursor = -1;
		/* run until the coordinator recorded step k as done, and
		 * died at once */
		for (int i = 0; i < 1200 && c->killed < 0; i++)
			turn(c);
		assert_true(c->killed >= 0);
		int victim = c->killed;
		c->kill_cursor = -1;
		c->killed = -2;
		assert_false(c->nd[victim].up);
		run_ms(c, 3000);
		/* the other node took over, now the killed one returns */
		boot(c, victim);
		if (!run_until(c, UPG_COMPLETED, 120000))
			fail_msg("k=%d: state %s at step %d", k, upg_state_name(J(c, 1 - victim)->state),
				 J(c, 1 - victim)->cursor);
		assert_on(c, "1.1.0");
		assert_replicated(c);
		assert_true(c->events_takeover >= 1);
		cl_free(c);
	}
}

static void test_run_rollback_after_completion(void **state)
{
	(void)state;
	struct upg_opts o = { 0 };
	struct cl *c = started(2, 1, PRIO2, 0, &o);
	assert_true(run_until(c, UPG_COMPLETED, 60000));
	assert_on(c, "1.1.0");
	char code[UPG_CODE_LEN];
	assert_int_equal(cmd(c, 1, UPG_CMD_ROLLBACK, NULL, NULL, TND_NO_NODE, 11), 0);
	assert_int_equal(wait_reply(c, 1, 11, code), 0);
	assert_true(run_until(c, UPG_ROLLED_BACK, 120000));
	assert_on(c, "1.0.0");
	assert_replicated(c);
	assert_int_equal(c->primary[0], 0);
	const struct upg_journal *j = J(c, 0);
	assert_string_equal(j->error.code, "");
	/* nothing left to roll back; finalize refused too */
	assert_int_equal(cmd(c, 0, UPG_CMD_ROLLBACK, NULL, NULL, TND_NO_NODE, 12), 0);
	assert_int_equal(wait_reply(c, 0, 12, code), TND_EREFUSED);
	assert_string_equal(code, "E_NO_UPGRADE");
	cl_free(c);

	/* one node only */
	c = started(2, 1, PRIO2, 0, &o);
	assert_true(run_until(c, UPG_COMPLETED, 60000));
	assert_int_equal(cmd(c, 0, UPG_CMD_ROLLBACK, NULL, NULL, 1, 13), 0);
	assert_int_equal(wait_reply(c, 0, 13, code), 0);
	assert_true(run_until(c, UPG_ROLLED_BACK, 120000));
	assert_string_equal(c->nd[1].version, "1.0.0");
	assert_string_equal(c->nd[0].version, "1.1.0");
	cl_free(c);
}

static void test_no_coordinator(void **state)
{
	(void)state;
	struct cl *c = cl_new(2, 1, PRIO2);
	run_ms(c, 1500);
	/* gw1 (coordinator) dies and stays down: gw2 becomes it; but here
	 * group 0 has no live member other than... make the view have no
	 * coordinator: kill gw1, and gw2 is not a member of group 0 */
	c->conf.groups[0].priority[1] = 0;
	go_down(c, 0);
	c->primary[0] = TND_NO_NODE;
	run_ms(c, 200);
	assert_int_equal(cmd(c, 1, UPG_CMD_FINALIZE, NULL, NULL, TND_NO_NODE, 21), 0);
	/* a second command meanwhile: busy */
	assert_int_equal(cmd(c, 1, UPG_CMD_ABORT, NULL, NULL, TND_NO_NODE, 22), TND_EREFUSED);
	char code[UPG_CODE_LEN];
	assert_int_equal(wait_reply(c, 1, 22, code), TND_EREFUSED);
	assert_string_equal(code, "E_BUSY");
	assert_int_equal(wait_reply(c, 1, 21, code), TND_ETIMEDOUT);
	assert_string_equal(code, "E_NO_COORDINATOR");
	/* malformed commands */
	assert_int_equal(cmd(c, 1, UPG_CMD_START, NULL, NULL, TND_NO_NODE, 23), TND_EINVAL);
	assert_int_equal(cmd(c, 1, (enum upg_cmd_op)99, NULL, NULL, TND_NO_NODE, 24), TND_EINVAL);
	assert_int_equal(cmd(c, 1, UPG_CMD_ROLLBACK, NULL, NULL, 7, 25), TND_EINVAL);
	cl_free(c);
}

/* Malformed messages are refused and change nothing. */
static void test_bad_messages(void **state)
{
	(void)state;
	struct cl *c = cl_new(2, 1, PRIO2);
	run_ms(c, 1500);
	struct upg *u = c->nd[0].u;
	uint64_t seq0 = J(c, 0)->seq;
	uint8_t body[64];
	struct tlvw w;
	size_t len;
	struct upg_actions *a = acts_new();
	struct wire_hdr h = { .version = 1, .cluster_id = 1, .sender = 1, .incarnation = 99,
			      .seq = UPG_SEQ_SPACE | 1 };
	struct upg_ev e = { .type = UPG_EV_RECV, .hdr = &h, .body = body };
	for (uint8_t t = UPG_MSG_STATE; t <= UPG_MSG_RESP + 1; t++) {
		/* an empty body: every type but GET needs TLVs */
		h.type = t;
		e.body_len = 0;
		int rc = upg_step(u, &e, c->now, a);
		if (t == UPG_MSG_GET)
			assert_int_equal(rc, 0);
		else
			assert_int_equal(rc, TND_EINVAL);
		/* a truncated TLV */
		body[0] = 0;
		body[1] = 1;
		body[2] = 0;
		body[3] = 8;
		e.body_len = 6;
		assert_int_equal(upg_step(u, &e, c->now, a), TND_EINVAL);
		upg_actions_reset(a);
	}
	/* from itself, another cluster, a node out of range */
	tlvw_init(&w, body, sizeof(body));
	tlvw_u64(&w, 1, 5);
	tlvw_u64(&w, 2, 5);
	tlvw_finish(&w, &len);
	h.type = UPG_MSG_JACK;
	e.body_len = len;
	h.sender = 0;
	assert_int_equal(upg_step(u, &e, c->now, a), TND_EINVAL);
	h.sender = 5;
	assert_int_equal(upg_step(u, &e, c->now, a), TND_EINVAL);
	h.sender = 1;
	h.cluster_id = 2;
	assert_int_equal(upg_step(u, &e, c->now, a), TND_EINVAL);
	h.cluster_id = 1;
	assert_int_equal(upg_step(u, &e, c->now, a), 0);
	/* a JOURNAL fragment with an inconsistent count */
	tlvw_init(&w, body, sizeof(body));
	tlvw_u64(&w, 1, 0x999);
	tlvw_u64(&w, 2, 1);
	tlvw_u8(&w, 3, 0);
	tlvw_u8(&w, 4, 3);
	tlvw_u16(&w, 5, 10);
	tlvw_put(&w, 6, "0123456789", 10);
	tlvw_finish(&w, &len);
	h.type = UPG_MSG_JOURNAL;
	e.body_len = len;
	assert_int_equal(upg_step(u, &e, c->now, a), TND_EINVAL);
	/* a complete journal that does not decode */
	tlvw_init(&w, body, sizeof(body));
	tlvw_u64(&w, 1, 0x999);
	tlvw_u64(&w, 2, 1);
	tlvw_u8(&w, 3, 0);
	tlvw_u8(&w, 4, 1);
	tlvw_u16(&w, 5, 10);
	tlvw_put(&w, 6, "0123456789", 10);
	tlvw_finish(&w, &len);
	e.body_len = len;
	/* pushed by a node that is not the coordinator: ignored */
	assert_int_equal(upg_step(u, &e, c->now, a), 0);
	/* by the coordinator (gw1, to gw2): refused */
	h.sender = 0;
	assert_int_equal(upg_step(c->nd[1].u, &e, c->now, a), TND_EINVAL);
	assert_int_equal(J(c, 0)->seq, seq0);
	assert_int_equal(J(c, 0)->id, 0);
	assert_int_equal(J(c, 1)->id, 0);
	free(a);
	cl_free(c);
}


/* A new coordinator that missed records adopts the highest journal a
 * live peer holds (UPG_MSG_GET) before it continues. */
static void test_settle_adopts_highest(void **state)
{
	(void)state;
	const uint8_t p3[1][NMAX] = { { 100, 90, 80 } };
	struct upg_opts o = { 0 };
	struct cl *c = started(3, 1, p3, 0, &o);
	c->cut[0][1] = true; /* gw2 hears nothing more from gw1 */
	run_ms(c, 2000);
	uint64_t s2 = J(c, 1)->seq, s3 = J(c, 2)->seq;
	assert_true(s3 > s2);
	go_down(c, 0);
	c->cut[0][1] = false;
	assert_int_equal(c->primary[0], 1);
	run_ms(c, 3000);
	assert_true(c->adopted[1][2] >= 1);
	assert_true(J(c, 1)->seq > s3);
	assert_int_equal(J(c, 1)->coordinator, 1);
	boot(c, 0);
	assert_true(run_until(c, UPG_COMPLETED, 120000));
	assert_on(c, "1.1.0");
	assert_replicated(c);
	cl_free(c);
}

/* Timeouts of a node that does not come back, does not resync, is not
 * healthy, a move that does not happen, a node that never answers. */
static void run_fail(struct cl *c, const char *code)
{
	assert_true(run_until(c, UPG_FAILED, 400000));
	if (strcmp(J(c, 0)->error.code, code) != 0)
		fail_msg("error %s, not %s: %s", J(c, 0)->error.code, code, J(c, 0)->error.message);
	assert_replicated(c);
	assert_false(upg_frozen(c->nd[0].u, NULL, 0));
	cl_free(c);
}

static struct cl *started_short(void)
{
	struct upg_opts o = { 0 };
	struct cl *c = cl_new(2, 1, PRIO2);
	c->conf.upgrade_hold_timer_s = 20;
	c->conf.upgrade_sync_timeout_s = 10;
	struct upg_image img;
	image_ok(&img);
	c->nd[0].has_image = true;
	run_ms(c, 1500);
	cmd(c, 0, UPG_CMD_START, &img, &o, TND_NO_NODE, 1);
	assert_int_equal(wait_reply(c, 0, 1, NULL), 0);
	return c;
}

static void test_timeouts(void **state)
{
	(void)state;
	struct cl *c = started_short();
	c->nd[1].dead_forever = true;
	/* while it is away the coordinator says what it waits for */
	bool seen = false;
	for (int i = 0; i < 300 && !seen; i++) {
		turn(c);
		seen = strstr(upg_node_detail(c->nd[0].u, 1), "waiting to rejoin") != NULL;
	}
	assert_true(seen);
	assert_non_null(strstr(upg_node_detail(c->nd[0].u, 1), "/20 s"));
	run_fail(c, "E_REJOIN_TIMEOUT");

	c = started_short();
	c->nd[1].sess_sync = false;
	run_fail(c, "E_RESYNC_TIMEOUT");

	c = started_short();
	c->nd[1].confirmed = false;
	run_fail(c, "E_HEALTH");

	c = started_short();
	c->nd[1].no_answer = true;
	run_fail(c, "E_NODE_TIMEOUT");

	/* the move of group 0 to gw2 never happens (gw2 not a member as far
	 * as the election is concerned) */
	c = started_short();
	for (int i = 0; i < 600 && strcmp(c->nd[1].version, "1.1.0") != 0; i++)
		turn(c);
	c->conf.groups[0].priority[1] = 0;
	assert_true(run_until(c, UPG_FAILED, 200000));
	assert_string_equal(J(c, 0)->error.code, "E_MOVE");
	assert_int_equal(J(c, 0)->steps[J(c, 0)->error.step].kind, UPG_K_MOVE);
	cl_free(c);
}

/* Duplicates: a DO resent is done once and its DONE resent; a REQ
 * resent is executed once; a replayed STATE is dropped. */
static void test_duplicates(void **state)
{
	(void)state;
	struct upg_opts o = { 0 };
	struct cl *c = started(2, 1, PRIO2, 1, &o);
	assert_true(run_until(c, UPG_COMPLETED, 60000));
	/* BACKUP, INSTALL on gw2 (once each, despite DO resends every
	 * 500 ms while the install ran) */
	assert_int_equal(c->n_do_acts[1], 2);
	/* gw1: BACKUP, FETCH, INSTALL */
	assert_int_equal(c->n_do_acts[0], 3);
	struct upg *u = c->nd[0].u;
	struct upg_actions *a = acts_new();
	uint8_t body[128];
	struct tlvw w;
	size_t len;
	/* a DO of the finished upgrade, twice: one UPG_ACT_DO, then the
	 * cached DONE goes back */
	tlvw_init(&w, body, sizeof(body));
	tlvw_u64(&w, 1, J(c, 0)->id);
	tlvw_u16(&w, 7, 40);
	tlvw_u8(&w, 8, UPG_DO_BACKUP);
	tlvw_str(&w, 9, "1.0.0");
	tlvw_finish(&w, &len);
	struct wire_hdr h = { .version = 1, .cluster_id = 1, .sender = 1, .type = UPG_MSG_DO,
			      .incarnation = c->nd[1].inc, .seq = UPG_SEQ_SPACE | 999999 };
	struct upg_ev e = { .type = UPG_EV_RECV, .hdr = &h, .body = body, .body_len = len };
	int ndo = 0, nsend = 0;
	for (int r = 0; r < 3; r++) {
		upg_actions_reset(a);
		assert_int_equal(upg_step(u, &e, c->now, a), 0);
		for (int i = 0; i < a->n; i++) {
			ndo += a->a[i].type == UPG_ACT_DO;
			nsend += a->a[i].type == UPG_ACT_SEND && a->a[i].pkt[7] == UPG_MSG_DONE;
		}
		if (r == 0) {
			struct upg_ev d = { .type = UPG_EV_DONE, .id = J(c, 0)->id, .step = 40,
					    .done_op = UPG_DO_BACKUP };
			upg_actions_reset(a);
			assert_int_equal(upg_step(u, &d, c->now, a), 0);
			for (int i = 0; i < a->n; i++)
				nsend += a->a[i].type == UPG_ACT_SEND && a->a[i].pkt[7] == UPG_MSG_DONE;
			assert_int_equal(upg_step(u, &d, c->now, a), TND_ENOENT);
		}
	}
	assert_int_equal(ndo, 1);
	assert_int_equal(nsend, 3);
	/* a replayed STATE: refused, facts unchanged */
	run_ms(c, 1500);
	mono_t heard = upg_facts_of(u, 1)->heard;
	tlvw_init(&w, body, sizeof(body));
	tlvw_str(&w, 9, "0.1.0");
	tlvw_u8(&w, 22, 1);
	tlvw_u8(&w, 23, 1);
	tlvw_u64(&w, 34, 0);
	tlvw_u64(&w, 35, 0);
	tlvw_u8(&w, 24, 0);
	tlvw_u64(&w, 25, 0);
	tlvw_u64(&w, 26, 0);
	tlvw_u8(&w, 27, 0);
	tlvw_put(&w, 28, NULL, 0);
	tlvw_finish(&w, &len);
	h.type = UPG_MSG_STATE;
	h.seq = UPG_SEQ_SPACE | 1;
	e.body_len = len;
	c->now += MS(10);
	upg_actions_reset(a);
	assert_int_equal(upg_step(u, &e, c->now, a), TND_EREPLAY);
	assert_string_equal(upg_facts_of(u, 1)->version, "1.1.0");
	assert_true(upg_facts_of(u, 1)->heard == heard);
	/* the same STATE from a newer life of gw2 is taken */
	h.incarnation = c->nd[1].inc + 100;
	upg_actions_reset(a);
	assert_int_equal(upg_step(u, &e, c->now, a), 0);
	assert_string_equal(upg_facts_of(u, 1)->version, "0.1.0");
	/* a REQ (finalize) sent twice: finalized once, answered twice the
	 * same way */
	tlvw_init(&w, body, sizeof(body));
	tlvw_u32(&w, 16, 77);
	tlvw_u8(&w, 8, UPG_CMD_FINALIZE);
	tlvw_u8(&w, 12, 0xff);
	tlvw_u8(&w, 18, 0);
	tlvw_finish(&w, &len);
	h.type = UPG_MSG_REQ;
	e.body_len = len;
	uint64_t seq0 = J(c, 0)->seq;
	int nresp = 0;
	for (int r = 0; r < 2; r++) {
		upg_actions_reset(a);
		assert_int_equal(upg_step(u, &e, c->now, a), 0);
		for (int i = 0; i < a->n; i++)
			nresp += a->a[i].type == UPG_ACT_SEND && a->a[i].pkt[7] == UPG_MSG_RESP;
	}
	assert_int_equal(nresp, 2);
	assert_true(J(c, 0)->finalized);
	assert_int_equal(J(c, 0)->seq, seq0 + 1);
	free(a);
	cl_free(c);
}


/* Eight nodes, five groups: the in-service run upgrades the non-holders
 * (four that share no group but 0, at once) and then the holders (four
 * more); the disruptive run does every node at once. No action list
 * overflows on the way. */
static void test_run_8nodes(void **state)
{
	(void)state;
	const uint8_t p8[5][NMAX] = {
		{ 100, 90, 80, 70, 0, 0, 0, 0 },
		{ 0, 0, 0, 0, 100, 50, 0, 0 },
		{ 0, 0, 0, 0, 0, 0, 100, 50 },
		{ 100, 50, 0, 0, 0, 0, 0, 0 },
		{ 0, 0, 100, 50, 0, 0, 0, 0 },
	};
	struct upg_opts o = { 0 };
	struct cl *c = started(8, 5, p8, 0, &o);
	const struct upg_journal *j = J(c, 0);
	int nup = 0;
	for (int i = 0; i < j->n_steps; i++)
		if (j->steps[i].kind == UPG_K_UPGRADE) {
			nup++;
			/* the greedy batches of issue 5: no majority cap */
			assert_int_equal(__builtin_popcount(j->steps[i].nodes), 4);
			/* a batch never holds two members of one group but 0 */
			for (int g = 1; g < 5; g++) {
				int m = 0;
				for (int x = 0; x < 8; x++)
					m += (j->steps[i].nodes >> x & 1) && p8[g][x];
				assert_true(m <= 1);
			}
		}
	assert_int_equal(nup, 2);
	assert_true(run_until(c, UPG_COMPLETED, 200000));
	assert_on(c, "1.1.0");
	assert_replicated(c);
	for (int g = 0; g < 5; g++)
		assert_int_equal(c->primary[g], g == 0 ? 0 : g == 1 ? 4 : g == 2 ? 6 : g == 3 ? 0 : 2);
	cl_free(c);
	o.disruptive = true;
	c = started(8, 5, p8, 3, &o);
	assert_true(run_until(c, UPG_COMPLETED, 200000));
	assert_on(c, "1.1.0");
	assert_replicated(c);
	cl_free(c);
}

/* A batch that takes group 0's majority away (gw1 and gw2 of three, the
 * issue's parallel batch) pauses the coordination: group 0 is vacant
 * while they restart and, here, for 25 s more after they are back, longer
 * than the hold timer (20 s) and the resync timeout (10 s); they resync
 * 30 s after their start, 5 s after the coordination resumes. The
 * coordinator that group 0 elects then (the same gw3, or gw1 that was
 * in the batch) settles and continues the step with its own clock: no
 * step fails because of the pause. */
static void test_run_group0_pause(void **state)
{
	(void)state;
	const uint8_t p3[2][NMAX] = { { 100, 90, 80 }, { 0, 100, 50 } };
	for (int next = 0; next < 2; next++) {
		struct upg_opts o = { 0 };
		struct cl *c = cl_new(3, 2, p3);
		c->conf.upgrade_hold_timer_s = 20;
		c->conf.upgrade_sync_timeout_s = 10;
		c->quorum0 = true;
		c->g0_pause_ms = 25000;
		c->g0_next = next == 0 ? 2 : 0;
		struct upg_image img;
		image_ok(&img);
		c->nd[0].has_image = true;
		run_ms(c, 1500);
		assert_int_equal(cmd(c, 0, UPG_CMD_START, &img, &o, TND_NO_NODE, 1), 0);
		assert_int_equal(wait_reply(c, 0, 1, NULL), 0);
		const struct upg_journal *j = J(c, 0);
		int last = -1;
		for (int i = 0; i < j->n_steps; i++)
			if (j->steps[i].kind == UPG_K_UPGRADE)
				last = i;
		assert_true(last > 0);
		assert_int_equal(j->steps[last].nodes, 3); /* gw1 and gw2 at once */
		for (int i = 0; i < 3000 && !(c->nd[2].up && J(c, 2)->cursor >= last); i++)
			turn(c);
		assert_true(c->nd[2].up);
		assert_int_equal(J(c, 2)->cursor, last);
		c->sync_delay_ms = 30000; /* the restarts of that step only */
		assert_true(run_until(c, UPG_COMPLETED, 300000));
		assert_int_equal(c->g0_losses, 1);
		assert_int_equal(c->events_failed_steps, 0);
		assert_string_equal(J(c, 2)->error.code, "");
		assert_on(c, "1.1.0");
		assert_replicated(c);
		/* the coordinator after the pause: a takeover when it is
		 * another node, and the same one settles again otherwise */
		if (next == 1)
			assert_true(c->events_takeover >= 1);
		for (int x = 0; x < 3; x++)
			assert_int_equal(c->n_install_acts[x], 1);
		cl_free(c);
	}
}

/* A failed image fetch is asked again, FETCH_ATTEMPTS_MAX (3) times in
 * all: two failures and the upgrade goes on; three and it fails with
 * E_FETCH, the last answer's code. */
static void test_fetch_retry(void **state)
{
	(void)state;
	for (int fails = 2; fails <= 3; fails++) {
		struct upg_opts o = { 0 };
		struct cl *c = cl_new(2, 1, PRIO2);
		struct upg_image img;
		image_ok(&img);
		c->nd[0].has_image = true;
		c->nd[1].fetch_fails = fails;
		run_ms(c, 1500);
		assert_int_equal(cmd(c, 0, UPG_CMD_START, &img, &o, TND_NO_NODE, 1), 0);
		assert_int_equal(wait_reply(c, 0, 1, NULL), 0);
		if (fails == 2) {
			assert_true(run_until(c, UPG_COMPLETED, 120000));
			assert_on(c, "1.1.0");
		} else {
			assert_true(run_until(c, UPG_FAILED, 120000));
			assert_string_equal(J(c, 0)->error.code, "E_FETCH");
			assert_on(c, "1.0.0");
		}
		assert_int_equal(c->n_fetch_acts[1], 3);
		assert_int_equal(c->n_fetch_acts[0], 0);
		cl_free(c);
	}
}

/* gw1 is asked to install, its DONE is lost, the new version never
 * confirms (the boot record gives it up) and gw2, the coordinator,
 * dies meanwhile. gw1 comes back alone as coordinator with a journal
 * that still shows its install asked: it must not install again what it
 * just gave up (its own node, not a message, is asked this time), but
 * fail the step with E_NODE_REVERTED. */
static void test_no_install_after_give_up(void **state)
{
	(void)state;
	struct upg_opts o = { 0 };
	struct cl *c = cl_new(2, 1, PRIO2);
	c->conf.upgrade_hold_timer_s = 20;
	c->conf.upgrade_sync_timeout_s = 10;
	struct upg_image img;
	image_ok(&img);
	c->nd[0].has_image = true;
	c->nd[0].self_revert = true;
	run_ms(c, 1500);
	assert_int_equal(cmd(c, 0, UPG_CMD_START, &img, &o, TND_NO_NODE, 1), 0);
	assert_int_equal(wait_reply(c, 0, 1, NULL), 0);
	int i;
	for (i = 0; i < 1200 && c->n_install_acts[0] == 0; i++)
		turn(c);
	assert_int_equal(c->n_install_acts[0], 1);
	assert_int_equal(c->primary[0], 1); /* gw2 coordinates the install of gw1 */
	c->cut[0][1] = true;                 /* gw1's DONE never arrives */
	for (i = 0; i < 50 && c->nd[0].up; i++)
		turn(c);
	assert_false(c->nd[0].up);           /* gw1 restarts into 1.1.0 */
	c->nd[1].dead_forever = true;
	go_down(c, 1);
	c->cut[0][1] = false;
	run_ms(c, 60000);
	assert_true(c->nd[0].up);
	assert_int_equal(c->primary[0], 0);
	assert_int_equal(c->n_install_acts[0], 1);
	assert_string_equal(J(c, 0)->error.code, "E_NODE_REVERTED");
	assert_string_equal(c->nd[0].version, "1.0.0");
	cl_free(c);
}

int main(int argc, char **argv)
{
	verbose = argc > 1 && strcmp(argv[1], "-v") == 0;
	(void)C;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_journal_roundtrip),
		cmocka_unit_test(test_journal_refusals),
		cmocka_unit_test(test_precheck),
		cmocka_unit_test(test_plans),
		cmocka_unit_test(test_run_2nodes),
		cmocka_unit_test(test_run_4nodes),
		cmocka_unit_test(test_run_8nodes),
		cmocka_unit_test(test_run_disruptive),
		cmocka_unit_test(test_run_install_fails),
		cmocka_unit_test(test_run_self_revert),
		cmocka_unit_test(test_run_abort),
		cmocka_unit_test(test_run_coordinator_killed),
		cmocka_unit_test(test_run_rollback_after_completion),
		cmocka_unit_test(test_no_coordinator),
		cmocka_unit_test(test_bad_messages),
		cmocka_unit_test(test_settle_adopts_highest),
		cmocka_unit_test(test_timeouts),
		cmocka_unit_test(test_duplicates),
		cmocka_unit_test(test_run_group0_pause),
		cmocka_unit_test(test_fetch_retry),
		cmocka_unit_test(test_no_install_after_give_up),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
