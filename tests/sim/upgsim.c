/* upgsim.c - deterministic simulator for the in-service upgrade
 * coordinator (src/core/upgrade.h; SPEC section 5, issue 5; STYLE, tests
 * layer 3).
 *
 * 2..5 upgrade cores in one process; the simulator plays every node's
 * driver, all drawn from one seed:
 *  - the network: UPG_ACT_SEND packets (plaintext: the header is decoded
 *    with wire_hdr_decode, the body is handed over as it is) arrive after
 *    a random delay (reordering), are lost, duplicated, and cut by
 *    partitions and single-link faults;
 *  - the election: an oracle per group. A primary that dies loses its
 *    groups, and group 0 also when it is cut from the majority (node.c
 *    quorum_ok: three nodes or more); after the failover time
 *    (dead_after x heartbeat_ms) the best member that has itself been up
 *    that long takes over (an in-sync one first, SPEC section 1).
 *    UPG_ACT_FAILOVER moves a group after a short delay if its target is
 *    up (and sets the manual flag), UPG_ACT_RESET clears the flag; with
 *    preempt on and the primary's core not suspending it, a group then
 *    returns to its preferred node (node.c's eval_primary runs on the
 *    primary, so the primary's suspension is what counts). Group 0's
 *    primary is the coordinator in every node's upg_view. Views are per
 *    node: a node cut away sees its peers dead and no coordinator;
 *  - the node: its disk is an A/B boot record driven by the real
 *    src/core/boot.c (activate, count starts on trial, confirm, revert),
 *    an image flag and the upgrade journal as the bytes of the last
 *    UPG_ACT_STORE. DO BACKUP is answered at once, DO FETCH after a time
 *    proportional to the bytes (failing when the source is unreachable or
 *    by injected fault), DO INSTALL / REVERT change the boot record,
 *    answer DONE and restart the node: the core is freed and created
 *    again from the stored journal, with a new incarnation. In some seeds
 *    the new version is bad on one node: it crashes at every start until
 *    the boot record gives it up (the A/B self-revert), which drives the
 *    rollback path. Sessions are out of sync for a moment after a start;
 *    the version confirms itself a little later;
 *  - the operator: `upgrade start` on a random node at a random time (a
 *    good image, sometimes --disruptive, --no-failback, or --force across
 *    an in-service gap), sometimes a bad image (refusal expected), an
 *    abort, a rollback or finalize after completion, a second start after
 *    a failed one;
 *  - crashes of any node at any moment: at random, the coordinator, the
 *    node being upgraded, and right after a store reached the disk
 *    (before the rest of that action list).
 *
 * After every event it checks:
 *   I1 the journal moves forward where users can see it: a node's
 *      (id, seq) strictly increases over its STOREs (across restarts: it
 *      is the disk); every stored journal survives encode/decode/encode
 *      unchanged; and, within one id,
 *      (a) a step that a record stored by any node other than its writer
 *          (so acked: JACK follows the STORE) shows done is never
 *          pending or running again in a later record (higher seq) on
 *          any node (a node that lags behind stores older records: that
 *          is not going back);
 *      (b) a node may see a step go from done back to running only in its
 *          own unacknowledged tail (records it wrote as coordinator that
 *          no other node stored, e.g. it crashed right after the store),
 *          and only for a record of a higher term (seq >> 24): the
 *          coordinator that took over redoes the step, which is
 *          idempotent on the nodes (Raft overwrites unacknowledged
 *          entries the same way);
 *      (c) no redone step changes the outcome: a node never activates the
 *          new version again (DO INSTALL) in an upgrade in which it already
 *          left it (gave it up by itself, or was reverted);
 *   I2 at most one node is coordinator (upg_is_coordinator) at a time,
 *      only the node its view names; no DO message, FAILOVER or RESET is
 *      emitted by a node that is not its view's coordinator;
 *   I3 no group is without an alive primary for longer than the failover
 *      time + FAILOVER_MARGIN_MS, unless a member was taken down by the
 *      chaos (crash, partition) in that time, or the upgrade is
 *      disruptive. Group 0 carries no traffic: a batch of the upgrade may
 *      take its majority away (three nodes or more), which pauses the
 *      coordination; it must have a primary again within hold_timer_s of
 *      the majority's return (the batch's nodes back), and I2 holds all
 *      along (never two coordinators acting at once);
 *   I4 no node is restarted by a DO INSTALL / REVERT while it is primary
 *      of a group that has another alive member (the planner moves groups
 *      off first), unless the group came to it by an unplanned failover
 *      after the step began, or the upgrade is disruptive;
 *   I5 a planned move never hands a group to a node restarted by the
 *      upgrade whose sessions are not yet in sync while an in-sync member
 *      is alive (SPEC: "sessions verified in sync first");
 *   I6 every packet is a well-formed upgrade message of its sender, with
 *      sequence numbers in UPG_SEQ_SPACE that strictly increase per
 *      incarnation (the seal nonce is never reused);
 * and a START of a bad image is never accepted. Then it heals the network,
 * stops the faults, lets the cluster run and checks convergence: the
 * upgrade reached a final state (completed or finalized, aborted,
 * rolled_back, failed), every node runs the same confirmed version, every
 * node stored the same journal bytes (same id, seq), its state matches
 * the versions (completed -> all on `to`, else all on `from`), nothing is
 * frozen and preemption is restored. A failure prints the seed;
 * `upgsimulate --seed N -v` replays it with a trace (-vv: every packet). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <getopt.h>
#include <stdarg.h>
#include "core/upgrade.h"
#include "core/boot.h"
#include "core/rng.h"

#define NMAX 5
#define GMAX 4
#define QMAX 20000
#define DOS_MAX 8
#define ORDERS_MAX 16
#define STEPS_DEPTH_MAX 32
#define CBS_MAX 16            /* DONE answers due at once per action list */
#define FAILOVER_MARGIN_MS 100
#define CLUSTER_ID 7
#define FROM_V "1.0.0"
#define TO_V "1.1.0"
#define WALL0_MS 1700000000000LL
#define HEAL_MS_MAX 900000     /* simulated time allowed to converge */
#define HEAL_CHUNK_MS 3000

enum down_why { DOWN_NONE = 0, DOWN_CHAOS, DOWN_UPGRADE };

struct msg {
	mono_t at;
	int from, to;
	size_t len;
	uint8_t pkt[WIRE_MTU];
};

/* A node action under way (FETCH, INSTALL, REVERT). */
struct pdo {
	mono_t at;
	uint64_t id;
	int step;
	enum upg_do op;
	char version[TND_VERSION_MAX];
	uint8_t digest[UPG_DIGEST_LEN];
	uint64_t bytes;
	int src;
};

struct snode {
	struct upg *u;        /* NULL while down */
	bool up;
	int down_why;         /* enum down_why of the last stop */
	mono_t boot_at;       /* next start attempt while down */
	uint64_t incarnation;
	/* disk: what survives a crash */
	struct boot_state boot;
	bool has_image;
	uint8_t jbuf[UPG_JOURNAL_BYTES_MAX];
	size_t jlen;
	struct upg_journal jlast; /* jbuf decoded (I1) */
	bool bad;             /* TO_V crashes at every start here */
	/* the running process */
	char running[TND_VERSION_MAX]; /* boot.active when it started */
	bool upgrade_boot;    /* started by an upgrade's restart */
	mono_t started_at, sync_at, confirm_at, restart_at;
	bool in_sync;
	int ndo;
	struct pdo dos[DOS_MAX];
	uint64_t restart_id;  /* the DO that asked for the restart (I4) */
	uint64_t installed_id; /* I1c: the journal whose DO INSTALL activated TO_V */
	uint64_t left_id;     /* I1c: the journal in which it left TO_V again */
	int restart_step;
	uint64_t tx_seq;      /* I6 */
	bool fed;
	struct upg_view view; /* as last given (wall_ms 0) */
	struct upg_facts facts; /* as last given (heard 0) */
	/* network and election */
	int side;
	bool avail;           /* up and in the majority */
	mono_t avail_since;
};

struct order {
	mono_t at;
	bool reset;
	int node;
};

struct sgroup {
	int prim;             /* TND_NO_NODE when vacant */
	bool manual;
	mono_t vacant_since;
	int preempt_to;
	mono_t preempt_at;
	mono_t unplanned_at;  /* last take-over not ordered by the coordinator */
	mono_t since;         /* the primary's since */
	const char *how;      /* and how it came to be */
	mono_t down_since;    /* I3: without an alive primary since */
	mono_t chaos_at;      /* I3: last moment the chaos touched a member */
	int norders;
	struct order orders[ORDERS_MAX];
};

/* First moment each step of the current journal id was stored running. */
struct steprun {
	uint8_t kind, group;
	int8_t node;
	uint32_t nodes;
	bool rollback;
	mono_t at;
};

struct sim {
	uint64_t rng, seed;
	int verbose;
	int n;
	struct tnd_conf conf;
	mono_t now, failover;
	struct snode nodes[NMAX];
	struct sgroup g[GMAX];
	bool main_ok;
	bool split;           /* running nodes on both sides of a partition */
	mono_t elect_wake;
	struct msg *q;
	int nq;
	/* faults */
	bool chaos;
	int level;            /* 0 calm .. 3 stormy */
	int loss_pm, dup_pm, fetch_fail_pm, crash_after_store_pm;
	bool linkcut[NMAX][NMAX];
	mono_t chaos_next;
	/* the images and commands */
	struct upg_image img, bad_img;
	struct upg_opts opts;
	bool gap;
	int bad_node;
	mono_t start_at, abort_at, post_at, bad_start_at, restart2_at;
	int post_op;          /* 0, UPG_CMD_ROLLBACK or UPG_CMD_FINALIZE */
	bool want_abort, want_restart2, did_restart2;
	uint32_t token, bad_token;
	/* journals stored anywhere */
	uint64_t run_id;
	struct steprun run[UPG_STEPS_MAX];
	/* I1a: steps of run_id shown done by a record some node other than
	 * its writer stored (the step as it was then, and that record) */
	struct { bool on; struct upg_step st; uint64_t seq; int by; } repl[UPG_STEPS_MAX];
	mono_t g0_back_at;    /* I3: group 0's majority back after the upgrade took it */
	bool g0_lost;
	bool disruptive_seen;
	uint64_t first_id;
	/* statistics */
	long failures, steps, sent, delivered, stores, crashes, restarts,
	     moves, same_time, replies_ok, refusals, dup_stores;
	int depth;
	struct upg_actions *acts;
};

static uint64_t rnd(struct sim *s) { return rng_next(&s->rng); }
static int rndi(struct sim *s, int n) { return n > 0 ? (int)(rnd(s) % (uint64_t)n) : 0; }
static bool chance_pm(struct sim *s, int pm) { return rndi(s, 1000) < pm; }
static mono_t ms(int64_t v) { return MS_TO_MONO(v); }
static int64_t wall_s(const struct sim *s) { return (WALL0_MS + MONO_TO_MS(s->now)) / 1000; }

static void fail(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct sim *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (s->failures < 5) {
		printf("  FAIL t=%lldms: ", (long long)MONO_TO_MS(s->now));
		vprintf(fmt, ap);
		printf("\n");
	}
	va_end(ap);
	s->failures++;
}

static void trace(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void trace(struct sim *s, const char *fmt, ...)
{
	if (!s->verbose)
		return;
	va_list ap;
	va_start(ap, fmt);
	printf("%8lld ", (long long)MONO_TO_MS(s->now));
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
}

static void copy_str(char *dst, size_t cap, const char *src)
{
	size_t l = strnlen(src, cap - 1);
	memcpy(dst, src, l);
	dst[l] = 0;
}

static bool is_final(const struct upg_journal *j)
{
	switch (j->state) {
	case UPG_COMPLETED: case UPG_ABORTED: case UPG_ROLLED_BACK: case UPG_FAILED:
		return true;
	case UPG_IDLE:
		return j->finalized;
	}
	return false;
}

/* ---- network and election oracle ---------------------------------------- */

static bool connected(const struct sim *s, int a, int b)
{
	return s->nodes[a].up && s->nodes[b].up && s->nodes[a].side == s->nodes[b].side;
}

static bool member(const struct sim *s, int gi, int i)
{
	return s->conf.groups[gi].priority[i] > 0;
}

/* The majority side (three nodes or more): only it elects (SPEC section
 * 1). Two-node clusters are never partitioned (see run_seed). */
static void compute_main(struct sim *s)
{
	int count[2] = { 0, 0 };
	for (int i = 0; i < s->n; i++)
		if (s->nodes[i].up)
			count[s->nodes[i].side]++;
	int side = -1;
	for (int k = 0; k < 2; k++)
		if (s->n < 3 ? count[k] > 0 : count[k] * 2 > s->n)
			side = k;
	s->main_ok = side >= 0;
	s->split = count[0] && count[1];
	for (int i = 0; i < s->n; i++) {
		struct snode *sn = &s->nodes[i];
		bool a = sn->up && sn->side == side;
		if (a && !sn->avail)
			sn->avail_since = s->now;
		sn->avail = a;
	}
}

/* Chaos touched the cluster: every group's I3 clock starts again. */
static void chaos_mark_all(struct sim *s)
{
	for (int gi = 0; gi < s->conf.n_groups; gi++)
		s->g[gi].chaos_at = s->now;
}

/* Who may hold a group: group 0 needs the majority side (node.c
 * quorum_ok); the other groups only a running node. */
static bool can_serve(const struct sim *s, int gi, int i)
{
	return gi == 0 ? s->nodes[i].avail : s->nodes[i].up;
}

static mono_t serve_since(const struct sim *s, int gi, int i)
{
	return gi == 0 ? s->nodes[i].avail_since : s->nodes[i].started_at;
}

static int prio(const struct sim *s, int gi, int i)
{
	return s->conf.groups[gi].priority[i];
}

/* Better candidate for a group: in sync first, then priority, then index. */
static bool better(const struct sim *s, int gi, int a, int b)
{
	if (b < 0)
		return true;
	if (s->nodes[a].in_sync != s->nodes[b].in_sync)
		return s->nodes[a].in_sync;
	if (prio(s, gi, a) != prio(s, gi, b))
		return prio(s, gi, a) > prio(s, gi, b);
	return a < b;
}

static void set_prim(struct sim *s, int gi, int node, const char *why)
{
	struct sgroup *g = &s->g[gi];
	if (g->prim == node)
		return;
	trace(s, "group %d primary %d -> %d (%s)", s->conf.groups[gi].id, g->prim, node, why);
	g->prim = node;
	g->since = s->now;
	g->how = why;
	if (node == TND_NO_NODE)
		g->vacant_since = s->now;
	g->preempt_to = TND_NO_NODE;
	s->moves++;
}

static void elect(struct sim *s)
{
	s->elect_wake = MONO_NEVER;
	for (int gi = 0; gi < s->conf.n_groups; gi++) {
		struct sgroup *g = &s->g[gi];
		if (g->prim != TND_NO_NODE && !can_serve(s, gi, g->prim))
			set_prim(s, gi, TND_NO_NODE, gi == 0 && s->nodes[g->prim].up ? "no majority" : "lost");
		if (g->prim == TND_NO_NODE) {
			int best = -1;
			mono_t wake = MONO_NEVER;
			for (int i = 0; i < s->n; i++) {
				if (!member(s, gi, i) || !can_serve(s, gi, i))
					continue;
				mono_t ready = serve_since(s, gi, i) + s->failover;
				if (g->vacant_since + s->failover > ready)
					ready = g->vacant_since + s->failover;
				if (ready > s->now) {
					if (ready < wake)
						wake = ready;
					continue;
				}
				if (better(s, gi, i, best))
					best = i;
			}
			if (best >= 0) {
				set_prim(s, gi, best, "failover");
				g->unplanned_at = s->now;
			} else if (wake < s->elect_wake) {
				s->elect_wake = wake;
			}
		}
		/* Preemption, decided by the primary (node.c eval_primary). */
		const struct tnd_group_conf *gc = &s->conf.groups[gi];
		int p = g->prim;
		if (p == TND_NO_NODE || g->manual || !gc->preempt || !s->nodes[p].u ||
		    upg_preempt_suspended(s->nodes[p].u)) {
			g->preempt_to = TND_NO_NODE;
			continue;
		}
		int pref = -1;
		for (int i = 0; i < s->n; i++)
			if (member(s, gi, i) && can_serve(s, gi, i) && s->nodes[i].in_sync &&
			    prio(s, gi, i) > prio(s, gi, p) && (pref < 0 || prio(s, gi, i) > prio(s, gi, pref)))
				pref = i;
		if (pref < 0) {
			g->preempt_to = TND_NO_NODE;
			continue;
		}
		if (g->preempt_to != pref) {
			g->preempt_to = pref;
			g->preempt_at = s->now + ms(gc->preempt_delay_s * 1000 + 20);
		}
		if (s->now >= g->preempt_at) {
			set_prim(s, gi, pref, "preempt");
		} else if (g->preempt_at < s->elect_wake) {
			s->elect_wake = g->preempt_at;
		}
	}
}

/* ---- what each core is told --------------------------------------------- */

static void make_view(const struct sim *s, int i, struct upg_view *v)
{
	memset(v, 0, sizeof(*v));
	int c = s->g[0].prim;
	v->coordinator = c != TND_NO_NODE && connected(s, i, c) ? c : TND_NO_NODE;
	for (int j = 0; j < s->n; j++) {
		v->alive[j] = j == i || connected(s, i, j);
		v->links_up[j] = v->alive[j] && (j == i || !s->linkcut[i][j]);
	}
	for (int gi = 0; gi < TND_GROUPS_MAX; gi++)
		v->primary[gi] = TND_NO_NODE;
	for (int gi = 0; gi < s->conf.n_groups; gi++) {
		int p = s->g[gi].prim;
		v->primary[gi] = p != TND_NO_NODE && (p == i || connected(s, i, p)) ? p : TND_NO_NODE;
	}
}

static void make_facts(const struct sim *s, int i, struct upg_facts *f)
{
	const struct snode *sn = &s->nodes[i];
	memset(f, 0, sizeof(*f));
	f->known = true;
	f->incarnation = sn->incarnation;
	/* Between an activation and its restart the old version still
	 * runs, confirmed. */
	bool current = strcmp(sn->running, sn->boot.active) == 0;
	copy_str(f->version, sizeof(f->version), sn->running);
	copy_str(f->previous, sizeof(f->previous), sn->boot.previous);
	f->confirmed = current ? sn->boot.confirmed : true;
	if (sn->boot.reverted) {
		copy_str(f->revert_reason, sizeof(f->revert_reason), sn->boot.last_revert.reason);
		copy_str(f->revert_from, sizeof(f->revert_from), sn->boot.last_revert.from);
		f->revert_at_s = sn->boot.last_revert.at_s;
	}
	f->proto_min = 1;
	f->proto_max = strcmp(sn->running, TO_V) == 0 ? 2 : 1;
	const struct upg_journal *j = upg_journal_get(sn->u);
	if (j) {
		f->journal_id = j->id;
		f->journal_seq = j->seq;
	}
	f->links_all_up = true;
	for (int k = 0; k < s->n; k++)
		if (k != i && (!connected(s, i, k) || s->linkcut[i][k]))
			f->links_all_up = false;
	f->config_in_sync = true;
	f->config_gen = 1;
	f->sessions_in_sync = sn->in_sync;
	f->free_bytes = 8ULL << 30;
	f->cpu_percent = 10;
	f->has_image = sn->has_image;
	for (int gi = 0; gi < s->conf.n_groups; gi++) {
		if (!member(s, gi, i))
			continue;
		f->groups[f->n_groups].id = s->conf.groups[gi].id;
		f->groups[f->n_groups].state = s->g[gi].prim == i ? UPG_G_PRIMARY :
			sn->in_sync ? UPG_G_SECONDARY : UPG_G_OTHER;
		f->n_groups++;
	}
}

/* Give node i its facts and view; true when they changed. */
static bool feed(struct sim *s, int i)
{
	struct snode *sn = &s->nodes[i];
	struct upg_view v;
	struct upg_facts f;
	make_view(s, i, &v);
	make_facts(s, i, &f);
	bool changed = !sn->fed || memcmp(&v, &sn->view, sizeof(v)) || memcmp(&f, &sn->facts, sizeof(f));
	sn->view = v;
	sn->facts = f;
	sn->fed = true;
	v.wall_ms = WALL0_MS + MONO_TO_MS(s->now);
	f.heard = s->now;
	upg_set_local(sn->u, &f, s->now);
	upg_set_view(sn->u, &v, s->now);
	return changed;
}

/* ---- journals (I1) ------------------------------------------------------ */

static bool same_step(const struct upg_step *a, const struct upg_step *b)
{
	return a->kind == b->kind && a->group == b->group && a->node == b->node &&
	       a->nodes == b->nodes && a->rollback == b->rollback;
}

static void track_journal(struct sim *s, const struct upg_journal *j)
{
	if (j->id == 0)
		return;
	if (!s->first_id)
		s->first_id = j->id;
	if (j->disruptive)
		s->disruptive_seen = true;
	if (j->id > s->run_id) {
		s->run_id = j->id;
		memset(s->run, 0, sizeof(s->run));
		memset(s->repl, 0, sizeof(s->repl));
		if (s->want_abort && j->state == UPG_RUNNING && s->abort_at == MONO_NEVER)
			s->abort_at = s->now + ms(100 + rndi(s, 15000));
	}
	if (j->id != s->run_id)
		return;
	for (int k = 0; k < j->n_steps && k < UPG_STEPS_MAX; k++) {
		const struct upg_step *st = &j->steps[k];
		if (st->status == UPG_ST_PENDING)
			continue;
		struct steprun *r = &s->run[k];
		if (r->at && r->kind == st->kind && r->group == st->group && r->node == st->node &&
		    r->nodes == st->nodes && r->rollback == st->rollback)
			continue;
		r->kind = st->kind;
		r->group = st->group;
		r->node = st->node;
		r->nodes = st->nodes;
		r->rollback = st->rollback;
		r->at = s->now;
	}
	if (j->state == UPG_COMPLETED && s->post_op && s->post_at == MONO_NEVER)
		s->post_at = s->now + ms(300 + rndi(s, 5000));
	if ((j->state == UPG_ABORTED || j->state == UPG_FAILED || j->state == UPG_ROLLED_BACK) &&
	    s->want_restart2 && !s->did_restart2 && s->restart2_at == MONO_NEVER)
		s->restart2_at = s->now + ms(1000 + rndi(s, 4000));
}

static void crash(struct sim *s, int i, const char *why);

static void on_store(struct sim *s, int i, const struct upg_journal *j)
{
	struct snode *sn = &s->nodes[i];
	static uint8_t buf[UPG_JOURNAL_BYTES_MAX], buf2[UPG_JOURNAL_BYTES_MAX];
	size_t len = 0, len2 = 0;
	struct upg_journal d;
	if (!j) {
		fail(s, "I1 node %d: STORE without a journal", i);
		return;
	}
	if (upg_journal_encode(j, buf, sizeof(buf), &len) != 0) {
		fail(s, "I1 node %d: stored journal %llu/%llu does not encode", i,
		     (unsigned long long)j->id, (unsigned long long)j->seq);
		return;
	}
	if (upg_journal_decode(buf, len, &d) != 0 ||
	    upg_journal_encode(&d, buf2, sizeof(buf2), &len2) != 0 ||
	    len2 != len || memcmp(buf, buf2, len) != 0) {
		fail(s, "I1 node %d: journal %llu/%llu does not survive encode/decode", i,
		     (unsigned long long)j->id, (unsigned long long)j->seq);
		return;
	}
	if (sn->jlen) {
		const struct upg_journal *p = &sn->jlast;
		if (d.id < p->id || (d.id == p->id && d.seq <= p->seq))
			fail(s, "I1 node %d stores journal %llu/%llu after %llu/%llu", i,
			     (unsigned long long)d.id, (unsigned long long)d.seq,
			     (unsigned long long)p->id, (unsigned long long)p->seq);
		/* I1b: its own tail, unseen by anyone else, superseded by
		 * the next term's coordinator (I1a below says "unseen") */
		if (d.id == p->id)
			for (int k = 0; k < d.n_steps && k < p->n_steps; k++)
				if (same_step(&d.steps[k], &p->steps[k]) &&
				    p->steps[k].status == UPG_ST_DONE &&
				    (d.steps[k].status == UPG_ST_PENDING ||
				     d.steps[k].status == UPG_ST_RUNNING) &&
				    (p->coordinator != i || (d.seq >> 24) <= (p->seq >> 24)))
					fail(s, "I1b node %d: journal %llu step %d %s went from done to %s (seq %#llx by %d -> %#llx by %d): not its own tail superseded by a new term",
					     i, (unsigned long long)d.id, k,
					     upg_kind_name((enum upg_step_kind)d.steps[k].kind),
					     upg_step_status_name((enum upg_step_status)d.steps[k].status),
					     (unsigned long long)p->seq, p->coordinator,
					     (unsigned long long)d.seq, d.coordinator);
	}
	/* I1a: what another node stored never goes back, anywhere */
	if (d.id == s->run_id)
		for (int k = 0; k < d.n_steps; k++)
			if (s->repl[k].on && d.seq > s->repl[k].seq &&
			    same_step(&s->repl[k].st, &d.steps[k]) &&
			    (d.steps[k].status == UPG_ST_PENDING || d.steps[k].status == UPG_ST_RUNNING))
				fail(s, "I1a node %d: journal %llu step %d %s is %s in seq %#llx, but node %d stored it done (seq %#llx)",
				     i, (unsigned long long)d.id, k,
				     upg_kind_name((enum upg_step_kind)d.steps[k].kind),
				     upg_step_status_name((enum upg_step_status)d.steps[k].status),
				     (unsigned long long)d.seq, s->repl[k].by,
				     (unsigned long long)s->repl[k].seq);
	if (d.id && (strcmp(d.to, TO_V) != 0 || strcmp(d.from, FROM_V) != 0))
		fail(s, "node %d stores journal %llu from %s to %s: not the upgrade started",
		     i, (unsigned long long)d.id, d.from, d.to);
	memcpy(sn->jbuf, buf, len);
	sn->jlen = len;
	sn->jlast = d;
	s->stores++;
	track_journal(s, &d);
	if (d.id == s->run_id && d.coordinator != i)
		for (int k = 0; k < d.n_steps; k++)
			if (d.steps[k].status == UPG_ST_DONE && !s->repl[k].on) {
				s->repl[k].on = true;
				s->repl[k].st = d.steps[k];
				s->repl[k].seq = d.seq;
				s->repl[k].by = i;
			}
	trace(s, "node %d store %llu/%llu %s cursor %d/%d%s%s", i, (unsigned long long)d.id,
	      (unsigned long long)d.seq, upg_state_name((enum upg_state)d.state), d.cursor,
	      d.n_steps, d.error.code[0] ? " error " : "", d.error.code);
	if (s->chaos && chance_pm(s, s->crash_after_store_pm))
		crash(s, i, "right after a store");
}

/* ---- actions ------------------------------------------------------------ */

static void node_step(struct sim *s, int i, const struct upg_ev *ev);

static void on_send(struct sim *s, int i, const struct upg_act *x)
{
	struct snode *sn = &s->nodes[i];
	struct wire_hdr h;
	if (x->len < WIRE_HDR_LEN || x->len > WIRE_MTU || wire_hdr_decode(x->pkt, x->len, &h) != 0 ||
	    (size_t)h.body_len != x->len - WIRE_HDR_LEN) {
		fail(s, "I6 node %d sends a malformed packet (%zu bytes)", i, x->len);
		return;
	}
	if (h.sender != i || h.cluster_id != CLUSTER_ID || h.type < UPG_MSG_STATE ||
	    h.type > UPG_MSG_RESP || h.incarnation != sn->incarnation) {
		fail(s, "I6 node %d sends type %d as sender %d cluster %d incarnation %llu (is %llu)",
		     i, h.type, h.sender, h.cluster_id, (unsigned long long)h.incarnation,
		     (unsigned long long)sn->incarnation);
		return;
	}
	if (!(h.seq & UPG_SEQ_SPACE) || h.seq <= sn->tx_seq) {
		fail(s, "I6 node %d sends seq %#llx after %#llx (outside UPG_SEQ_SPACE or not increasing)",
		     i, (unsigned long long)h.seq, (unsigned long long)sn->tx_seq);
		return;
	}
	sn->tx_seq = h.seq;
	if (x->to < 0 || x->to >= s->n || x->to == i) {
		fail(s, "I6 node %d sends to node %d", i, x->to);
		return;
	}
	if (h.type == UPG_MSG_DO && sn->view.coordinator != i)
		fail(s, "I2 node %d sends a DO to %d while its view's coordinator is %d", i, x->to,
		     sn->view.coordinator);
	if (s->verbose > 1)
		trace(s, "node %d -> %d type %d seq %llu len %zu", i, x->to, h.type,
		      (unsigned long long)(h.seq & ~UPG_SEQ_SPACE), x->len);
	s->sent++;
	int copies = chance_pm(s, s->dup_pm) ? 2 : 1;
	for (int c = 0; c < copies && s->nq < QMAX; c++) {
		struct msg *m = &s->q[s->nq++];
		m->at = s->now + ms(1 + rndi(s, 20));
		if (chance_pm(s, 20))
			m->at += ms(rndi(s, 200));
		m->from = i;
		m->to = x->to;
		m->len = x->len;
		memcpy(m->pkt, x->pkt, x->len);
	}
}

static void on_order(struct sim *s, int i, const struct upg_act *x, bool reset)
{
	struct snode *sn = &s->nodes[i];
	int gi = conf_group_index(&s->conf, x->group);
	if (sn->view.coordinator != i)
		fail(s, "I2 node %d orders %s of group %d while its view's coordinator is %d", i,
		     reset ? "RESET" : "FAILOVER", x->group, sn->view.coordinator);
	if (gi < 0) {
		fail(s, "node %d orders group %d, which does not exist", i, x->group);
		return;
	}
	if (!reset && (x->node < 0 || x->node >= s->n || !member(s, gi, x->node))) {
		fail(s, "node %d orders group %d to node %d, not a member", i, x->group, x->node);
		return;
	}
	struct sgroup *g = &s->g[gi];
	if (g->norders >= ORDERS_MAX) {
		fail(s, "node %d: more than %d orders for group %d in flight", i, ORDERS_MAX, x->group);
		return;
	}
	mono_t at = s->now + ms(5 + rndi(s, 45));
	if (g->norders && g->orders[g->norders - 1].at > at)
		at = g->orders[g->norders - 1].at; /* in the order given */
	g->orders[g->norders++] = (struct order){ .at = at, .reset = reset, .node = x->node };
	trace(s, "node %d orders %s group %d%s%d", i, reset ? "reset" : "failover", x->group,
	      reset ? "" : " -> ", reset ? -1 : x->node);
}

static void on_do(struct sim *s, int i, const struct upg_act *x, struct upg_ev *cbs, int *ncb)
{
	struct snode *sn = &s->nodes[i];
	trace(s, "node %d DO %d id %llu step %d version %s node %d", i, x->op,
	      (unsigned long long)x->id, x->step, x->version, x->node);
	if (x->op == UPG_DO_BACKUP) {
		if (*ncb >= CBS_MAX) {
			fail(s, "node %d: more than %d backups in one action list", i, CBS_MAX);
			return;
		}
		struct upg_ev *e = &cbs[(*ncb)++];
		memset(e, 0, sizeof(*e));
		e->type = UPG_EV_DONE;
		e->id = x->id;
		e->step = x->step;
		e->done_op = x->op;
		return;
	}
	if (x->op != UPG_DO_FETCH && x->op != UPG_DO_INSTALL && x->op != UPG_DO_REVERT) {
		fail(s, "node %d: DO with unknown op %d", i, x->op);
		return;
	}
	if (x->op == UPG_DO_FETCH && (x->node < 0 || x->node >= s->n)) {
		fail(s, "node %d: DO FETCH from node %d", i, x->node);
		return;
	}
	if (x->op == UPG_DO_INSTALL &&
	    (strcmp(x->version, TO_V) != 0 || memcmp(x->digest, s->img.digest, UPG_DIGEST_LEN) != 0)) {
		fail(s, "node %d: DO INSTALL of %s with another digest than the image's", i, x->version);
		return;
	}
	if (x->op == UPG_DO_REVERT && strcmp(x->version, FROM_V) != 0) {
		fail(s, "node %d: DO REVERT to %s, the previous version is %s", i, x->version, FROM_V);
		return;
	}
	if (sn->ndo >= DOS_MAX) {
		fail(s, "node %d: more than %d node actions at once", i, DOS_MAX);
		return;
	}
	struct pdo *p = &sn->dos[sn->ndo++];
	memset(p, 0, sizeof(*p));
	p->id = x->id;
	p->step = x->step;
	p->op = x->op;
	copy_str(p->version, sizeof(p->version), x->version);
	memcpy(p->digest, x->digest, UPG_DIGEST_LEN);
	p->bytes = x->bytes;
	p->src = x->node;
	if (x->op == UPG_DO_FETCH)
		p->at = s->now + ms(20 + (int64_t)(x->bytes / 50000)); /* 50 MB/s */
	else
		p->at = s->now + ms(50 + rndi(s, 250));
}

static void on_reply(struct sim *s, int i, const struct upg_act *x)
{
	trace(s, "node %d reply token %u rc %d %s %s", i, x->token, x->rc, x->code, x->message);
	if (x->token == s->bad_token && x->rc == 0)
		fail(s, "a START of a bad image was accepted (node %d, token %u)", i, x->token);
	if (x->rc == 0)
		s->replies_ok++;
	else
		s->refusals++;
}

/* Perform node i's action list; false when the node crashed half-way. */
static bool perform(struct sim *s, int i, struct upg_actions *a, struct upg_ev *cbs, int *ncb)
{
	const struct upg_journal *stored = NULL;
	if (a->n_dropped)
		fail(s, "node %d: %d actions dropped", i, a->n_dropped);
	for (int k = 0; k < a->n && !s->failures; k++) {
		const struct upg_act *x = &a->a[k];
		switch (x->type) {
		case UPG_ACT_SEND:
			on_send(s, i, x);
			break;
		case UPG_ACT_STORE:
			/* A STORE points at the core's live journal: one per
			 * action list writes the final state (before every
			 * action after it); a second would only repeat the
			 * write and the fsync. */
			if (stored) {
				s->dup_stores++;
				fail(s, "node %d: a second STORE in one action list (action %d of %d)",
				     i, k, a->n);
				break;
			}
			stored = x->journal;
			on_store(s, i, x->journal);
			if (!s->nodes[i].up)
				return false;
			break;
		case UPG_ACT_DO:
			on_do(s, i, x, cbs, ncb);
			break;
		case UPG_ACT_FAILOVER:
			on_order(s, i, x, false);
			break;
		case UPG_ACT_RESET:
			on_order(s, i, x, true);
			break;
		case UPG_ACT_REPLY:
			on_reply(s, i, x);
			break;
		case UPG_ACT_EVENT:
			trace(s, "node %d event %s %s", i, x->name, x->kv);
			break;
		default:
			fail(s, "node %d: action of unknown type %d", i, x->type);
		}
	}
	return true;
}

static void run_actions(struct sim *s, int i)
{
	struct upg_ev cbs[CBS_MAX];
	int ncb = 0;
	bool alive = perform(s, i, s->acts, cbs, &ncb);
	upg_actions_reset(s->acts);
	for (int k = 0; alive && k < ncb && s->nodes[i].up; k++)
		node_step(s, i, &cbs[k]);
}

static void node_step(struct sim *s, int i, const struct upg_ev *ev)
{
	struct snode *sn = &s->nodes[i];
	if (!sn->up || s->failures)
		return;
	if (++s->depth > STEPS_DEPTH_MAX) {
		fail(s, "node %d: DONE answers nest deeper than %d", i, STEPS_DEPTH_MAX);
		s->depth--;
		return;
	}
	feed(s, i);
	upg_actions_reset(s->acts);
	int rc = upg_step(sn->u, ev, s->now, s->acts);
	if (rc && ev->type != UPG_EV_RECV)
		trace(s, "node %d step type %d: %s", i, ev->type, tnd_strerror(rc));
	run_actions(s, i);
	s->depth--;
}

static void tick(struct sim *s, int i)
{
	struct upg_ev ev;
	memset(&ev, 0, sizeof(ev));
	ev.type = UPG_EV_TICK;
	node_step(s, i, &ev);
}

/* ---- node life ---------------------------------------------------------- */

static void go_down(struct sim *s, int i, int why)
{
	struct snode *sn = &s->nodes[i];
	upg_free(sn->u);
	sn->u = NULL;
	sn->up = false;
	sn->down_why = why;
	sn->ndo = 0;
	sn->restart_at = sn->sync_at = sn->confirm_at = MONO_NEVER;
	sn->in_sync = false;
	sn->fed = false;
	s->restarts++;
}

static void crash(struct sim *s, int i, const char *why)
{
	struct snode *sn = &s->nodes[i];
	if (!sn->up)
		return;
	trace(s, "crash node %d (%s)", i, why);
	go_down(s, i, DOWN_CHAOS);
	struct boot_exit e = { .signaled = true, .code = 9 };
	uint32_t delay_ms = 0;
	boot_after_exit(&sn->boot, &e, false, &delay_ms);
	sn->boot_at = s->now + ms(100 + rndi(s, 3000) + delay_ms);
	s->crashes++;
	chaos_mark_all(s);
}

/* I4: the restart a DO INSTALL / REVERT asked for. */
static void check_restart(struct sim *s, int i)
{
	struct snode *sn = &s->nodes[i];
	if (s->disruptive_seen)
		return;
	mono_t began = MONO_NEVER;
	if (sn->restart_id == s->run_id && sn->restart_step >= 0 && sn->restart_step < UPG_STEPS_MAX &&
	    s->run[sn->restart_step].at)
		began = s->run[sn->restart_step].at;
	for (int gi = 0; gi < s->conf.n_groups; gi++) {
		struct sgroup *g = &s->g[gi];
		if (g->prim != i)
			continue;
		int other = -1;
		for (int k = 0; k < s->n && other < 0; k++)
			if (k != i && member(s, gi, k) && can_serve(s, gi, k))
				other = k;
		if (other < 0)
			continue;
		if (began != MONO_NEVER && g->unplanned_at >= began)
			continue; /* came to it by a failover after the step began */
		fail(s, "I4 node %d restarts for journal %llu step %d (running since %lld ms) while primary of group %d (by %s at %lld ms), whose member %d is alive",
		     i, (unsigned long long)sn->restart_id, sn->restart_step,
		     began == MONO_NEVER ? -1LL : (long long)MONO_TO_MS(began),
		     s->conf.groups[gi].id, g->how ? g->how : "?", (long long)MONO_TO_MS(g->since), other);
	}
}

static void upgrade_restart(struct sim *s, int i)
{
	struct snode *sn = &s->nodes[i];
	check_restart(s, i);
	trace(s, "node %d restarts into %s", i, sn->boot.active);
	go_down(s, i, DOWN_UPGRADE);
	struct boot_exit e = { .signaled = false, .code = BOOT_EXIT_RESTART };
	uint32_t delay_ms = 0;
	boot_after_exit(&sn->boot, &e, false, &delay_ms);
	sn->boot_at = s->now + ms(300 + rndi(s, 900) + delay_ms);
}

static void start_node(struct sim *s, int i)
{
	struct snode *sn = &s->nodes[i];
	char why[BOOT_REASON_LEN], why2[BOOT_REASON_LEN];
	enum boot_next nx = boot_before_start(&sn->boot, why, sizeof(why));
	if (nx == BOOT_REVERT) {
		if (boot_revert(&sn->boot, why, wall_s(s), why2, sizeof(why2)) != 0) {
			fail(s, "node %d: boot revert impossible: %s", i, why2);
			return;
		}
		trace(s, "node %d gives %s up: %s", i, sn->boot.previous, why);
		sn->left_id = sn->installed_id;
	}
	if (sn->bad && strcmp(sn->boot.active, TO_V) == 0 && !sn->boot.confirmed) {
		struct boot_exit e = { .signaled = true, .code = 11 };
		uint32_t delay_ms = 0;
		boot_after_exit(&sn->boot, &e, false, &delay_ms);
		sn->boot_at = s->now + ms(100 + rndi(s, 200) + delay_ms);
		trace(s, "node %d: %s crashes at start (try %u)", i, sn->boot.active, sn->boot.tries);
		return;
	}
	struct upg_journal jd;
	const struct upg_journal *jp = NULL;
	if (sn->jlen) {
		if (upg_journal_decode(sn->jbuf, sn->jlen, &jd) != 0) {
			fail(s, "node %d: its stored journal does not decode", i);
			return;
		}
		jp = &jd;
	}
	struct upg_params p = {
		.conf = &s->conf, .self = i, .incarnation = ++sn->incarnation,
		.seed = rnd(s), .cluster_id = CLUSTER_ID, .proto = 1, .journal = jp,
	};
	sn->u = upg_new(&p, s->now);
	if (!sn->u) {
		fail(s, "node %d: upg_new failed", i);
		return;
	}
	sn->up = true;
	copy_str(sn->running, sizeof(sn->running), sn->boot.active);
	sn->upgrade_boot = sn->down_why == DOWN_UPGRADE;
	if (sn->down_why != DOWN_UPGRADE)
		chaos_mark_all(s);
	sn->down_why = DOWN_NONE;
	sn->boot_at = MONO_NEVER;
	sn->started_at = s->now;
	sn->in_sync = false;
	sn->sync_at = s->now + ms(100 + rndi(s, 700));
	sn->confirm_at = sn->boot.confirmed ? MONO_NEVER : s->now + ms(300 + rndi(s, 1200));
	sn->tx_seq = 0;
	sn->fed = false;
	trace(s, "boot node %d incarnation %llu version %s%s journal %llu/%llu", i,
	      (unsigned long long)sn->incarnation, sn->boot.active,
	      sn->boot.confirmed ? "" : " (on trial)", (unsigned long long)(jp ? jp->id : 0),
	      (unsigned long long)(jp ? jp->seq : 0));
	tick(s, i);
}

static void done_ev(struct upg_ev *e, const struct pdo *p, int rc, const char *code,
		    const char *message)
{
	memset(e, 0, sizeof(*e));
	e->type = UPG_EV_DONE;
	e->id = p->id;
	e->step = p->step;
	e->done_op = p->op;
	e->rc = rc;
	copy_str(e->code, sizeof(e->code), code);
	copy_str(e->message, sizeof(e->message), message);
}

/* A node action finishes: the disk changes, DONE, and a restart if the
 * version to run changed. */
static void finish_do(struct sim *s, int i, int k)
{
	struct snode *sn = &s->nodes[i];
	struct pdo p = sn->dos[k];
	sn->dos[k] = sn->dos[--sn->ndo];
	struct upg_ev e;
	char why[BOOT_REASON_LEN] = "";
	bool restart = false;
	int rc = 0;
	if (p.op == UPG_DO_FETCH) {
		bool ok = connected(s, i, p.src) && s->nodes[p.src].has_image &&
			  !chance_pm(s, s->fetch_fail_pm);
		if (ok)
			sn->has_image = true;
		done_ev(&e, &p, ok ? 0 : TND_EIO, ok ? "" : "E_FETCH",
			ok ? "" : "the image transfer failed");
	} else if (strcmp(sn->boot.active, p.version) == 0) {
		done_ev(&e, &p, 0, "", ""); /* runs it already */
	} else if (p.op == UPG_DO_INSTALL) {
		const char *peers[NMAX];
		int np = 0;
		for (int j = 0; j < s->n; j++)
			if (j != i && connected(s, i, j))
				peers[np++] = s->conf.nodes[j].name;
		if (!sn->has_image) {
			rc = TND_ENOENT;
			snprintf(why, sizeof(why), "the image is not here");
		} else {
			rc = boot_activate(&sn->boot, p.version, s->conf.upgrade_hold_timer_s, peers, np,
					   wall_s(s), why, sizeof(why));
		}
		restart = rc == 0;
		if (restart && p.id == sn->left_id)
			fail(s, "I1c node %d installs %s again in upgrade %llu (step %d), which it already left",
			     i, p.version, (unsigned long long)p.id, p.step);
		if (restart)
			sn->installed_id = p.id;
		done_ev(&e, &p, rc, rc ? "E_INSTALL" : "", why);
	} else {
		if (strcmp(sn->boot.previous, p.version) != 0) {
			rc = TND_ENOENT;
			snprintf(why, sizeof(why), "%s is not the previous version", p.version);
		} else if (!sn->boot.confirmed && sn->boot.tries > 0)
			rc = boot_revert(&sn->boot, "reverted by the upgrade", wall_s(s), why, sizeof(why));
		else
			rc = boot_activate(&sn->boot, p.version, s->conf.upgrade_hold_timer_s, NULL, 0,
					   wall_s(s), why, sizeof(why));
		restart = rc == 0;
		if (restart)
			sn->left_id = sn->installed_id;
		done_ev(&e, &p, rc, rc ? "E_REVERT" : "", why);
	}
	trace(s, "node %d done op %d step %d rc %d %s", i, p.op, p.step, rc, why);
	if (restart) {
		sn->restart_at = s->now + ms(10 + rndi(s, 90));
		sn->restart_id = p.id;
		sn->restart_step = p.step;
	}
	node_step(s, i, &e);
}

/* ---- operator ----------------------------------------------------------- */

static int random_up(struct sim *s)
{
	int cand[NMAX], nc = 0;
	for (int i = 0; i < s->n; i++)
		if (s->nodes[i].up)
			cand[nc++] = i;
	return nc ? cand[rndi(s, nc)] : -1;
}

static void command(struct sim *s, enum upg_cmd_op op, bool bad)
{
	int i = random_up(s);
	if (i < 0)
		return;
	struct upg_ev ev;
	memset(&ev, 0, sizeof(ev));
	ev.type = UPG_EV_CMD;
	ev.op = op;
	ev.token = ++s->token;
	ev.node = TND_NO_NODE;
	if (op == UPG_CMD_START) {
		ev.image = bad ? &s->bad_img : &s->img;
		ev.opts = s->opts;
		if (bad) {
			ev.opts.force = false;
			s->bad_token = ev.token;
		} else {
			s->nodes[i].has_image = true; /* the operator copied it there */
		}
	}
	trace(s, "command %d%s on node %d token %u", op, bad ? " (bad image)" : "", i, ev.token);
	node_step(s, i, &ev);
}

/* ---- chaos -------------------------------------------------------------- */

static void chaos_step(struct sim *s)
{
	int r = rndi(s, 1000), l = s->level;
	int i = rndi(s, s->n);
	if (r < 8 * l) {
		crash(s, i, "chaos");
	} else if ((r -= 8 * l) < 3 * l) {
		if (s->g[0].prim >= 0)
			crash(s, s->g[0].prim, "the coordinator");
	} else if ((r -= 3 * l) < 3 * l) {
		for (int k = 0; k < s->n; k++)
			if (s->nodes[k].ndo || s->nodes[k].restart_at != MONO_NEVER) {
				crash(s, k, "a node being upgraded");
				break;
			}
	} else if ((r -= 3 * l) < 4 * l) {
		if (s->n >= 3) {
			for (int k = 0; k < s->n; k++)
				s->nodes[k].side = rndi(s, 4) == 0;
			trace(s, "partition");
			chaos_mark_all(s);
		}
	} else if ((r -= 4 * l) < 15) {
		bool any = false;
		for (int k = 0; k < s->n; k++) {
			any |= s->nodes[k].side != 0;
			s->nodes[k].side = 0;
		}
		if (any) {
			trace(s, "partition healed");
			chaos_mark_all(s);
		}
	} else if ((r -= 15) < 5 * l) {
		int j = rndi(s, s->n);
		if (j != i) {
			s->linkcut[i][j] = s->linkcut[j][i] = true;
			trace(s, "a link between %d and %d is down", i, j);
		}
	} else if ((r -= 5 * l) < 20) {
		memset(s->linkcut, 0, sizeof(s->linkcut));
	}
}

/* ---- checks ------------------------------------------------------------- */

static void check_all(struct sim *s)
{
	int coords = 0;
	for (int i = 0; i < s->n; i++) {
		struct snode *sn = &s->nodes[i];
		if (!sn->up || !upg_is_coordinator(sn->u))
			continue;
		coords++;
		if (sn->view.coordinator != i)
			fail(s, "I2 node %d acts as coordinator while its view names %d", i,
			     sn->view.coordinator);
	}
	if (coords > 1)
		fail(s, "I2 %d nodes act as coordinator at once", coords);
	/* Group 0 carries no traffic: a batch may take its majority away
	 * (the planner does not cap batches), which pauses coordination. */
	int nup = 0;
	for (int i = 0; i < s->n; i++)
		nup += s->nodes[i].up;
	if (s->n >= 3 && nup * 2 <= s->n) {
		s->g0_lost = true;
	} else if (s->g0_lost) {
		s->g0_lost = false;
		s->g0_back_at = s->now;
	}
	for (int gi = 0; gi < s->conf.n_groups; gi++) {
		struct sgroup *g = &s->g[gi];
		/* Other groups: a majority lost to the upgrade's own
		 * restarts is no excuse, only the chaos is. */
		bool excused = (gi == 0 && (s->split || s->g0_lost));
		for (int i = 0; i < s->n; i++)
			if (member(s, gi, i) && !s->nodes[i].up && s->nodes[i].down_why == DOWN_CHAOS)
				excused = true;
		if (excused)
			g->chaos_at = s->now;
		if (g->prim != TND_NO_NODE) {
			g->down_since = MONO_NEVER;
			continue;
		}
		if (g->down_since == MONO_NEVER)
			g->down_since = s->now;
		mono_t from = g->down_since > g->chaos_at ? g->down_since : g->chaos_at;
		mono_t limit = s->failover + ms(FAILOVER_MARGIN_MS);
		/* group 0 after its majority came back: within the hold time */
		if (gi == 0 && s->g0_back_at != MONO_NEVER && from <= s->g0_back_at)
			limit = ms((int64_t)s->conf.upgrade_hold_timer_s * 1000);
		if (!s->disruptive_seen && s->now - from > limit) {
			char who[160] = "";
			for (int i = 0, o = 0; i < s->n && o < 100; i++)
				if (member(s, gi, i))
					o += snprintf(who + o, sizeof(who) - (size_t)o, " %d:%s", i,
						      s->nodes[i].up ? "up" : "restarting");
			fail(s, "I3 group %d without a primary for %lld ms (members%s)",
			     s->conf.groups[gi].id, (long long)MONO_TO_MS(s->now - from), who);
			g->down_since = s->now; /* once per outage */
		}
	}
}

/* ---- the loop ----------------------------------------------------------- */

static void deliver(struct sim *s, int k)
{
	struct msg m = s->q[k];
	s->q[k] = s->q[--s->nq];
	if (!connected(s, m.from, m.to) || chance_pm(s, s->loss_pm))
		return;
	struct wire_hdr h;
	if (wire_hdr_decode(m.pkt, m.len, &h) != 0)
		return;
	s->delivered++;
	struct upg_ev ev;
	memset(&ev, 0, sizeof(ev));
	ev.type = UPG_EV_RECV;
	ev.hdr = &h;
	ev.body = m.pkt + WIRE_HDR_LEN;
	ev.body_len = h.body_len;
	node_step(s, m.to, &ev);
}

static void do_order(struct sim *s, int gi)
{
	struct sgroup *g = &s->g[gi];
	struct order o = g->orders[0];
	memmove(g->orders, g->orders + 1, sizeof(o) * (size_t)--g->norders);
	if (o.reset) {
		g->manual = false;
		trace(s, "group %d manual flag cleared", s->conf.groups[gi].id);
		return;
	}
	if (!can_serve(s, gi, o.node)) {
		trace(s, "group %d failover to %d ignored: not up", s->conf.groups[gi].id, o.node);
		return;
	}
	struct snode *t = &s->nodes[o.node];
	if (t->upgrade_boot && !t->in_sync && g->prim != o.node) {
		for (int k = 0; k < s->n; k++)
			if (k != o.node && member(s, gi, k) && can_serve(s, gi, k) && s->nodes[k].in_sync) {
				fail(s, "I5 group %d moved to node %d, restarted by the upgrade and not in sync, while %d is",
				     s->conf.groups[gi].id, o.node, k);
				break;
			}
	}
	g->manual = true;
	set_prim(s, gi, o.node, "ordered");
}

/* After any event: the election reacts, every core sees the change. */
static void settle(struct sim *s)
{
	for (int round = 0; round < 4 && !s->failures; round++) {
		compute_main(s);
		elect(s);
		bool any = false;
		for (int i = 0; i < s->n; i++)
			if (s->nodes[i].up && feed(s, i)) {
				tick(s, i);
				any = true;
			}
		if (!any)
			break;
	}
	compute_main(s);
	elect(s);
}

enum what { W_END, W_MSG, W_WAKE, W_BOOT, W_DO, W_RESTART, W_SYNC, W_CONFIRM, W_HOLD,
	    W_ORDER, W_ELECT, W_START, W_ABORT, W_POST, W_BAD, W_RESTART2, W_CHAOS };

static void run(struct sim *s, mono_t until)
{
	while (s->now < until && !s->failures) {
		mono_t next = until;
		int what = W_END, who = 0, idx = 0;
#define CAND(t, w, a, b) do { if ((t) < next) { next = (t); what = (w); who = (a); idx = (b); } } while (0)
		for (int k = 0; k < s->nq; k++)
			CAND(s->q[k].at, W_MSG, k, 0);
		for (int i = 0; i < s->n; i++) {
			struct snode *sn = &s->nodes[i];
			if (!sn->up) {
				CAND(sn->boot_at, W_BOOT, i, 0);
				continue;
			}
			CAND(upg_next_wake(sn->u), W_WAKE, i, 0);
			CAND(sn->restart_at, W_RESTART, i, 0);
			CAND(sn->sync_at, W_SYNC, i, 0);
			CAND(sn->confirm_at, W_CONFIRM, i, 0);
			/* the hold timer runs on the version on trial, once started */
			if (!sn->boot.confirmed && strcmp(sn->running, sn->boot.active) == 0)
				CAND(sn->started_at + ms((int64_t)s->conf.upgrade_hold_timer_s * 1000), W_HOLD, i, 0);
			for (int d = 0; d < sn->ndo; d++)
				CAND(sn->dos[d].at, W_DO, i, d);
		}
		for (int gi = 0; gi < s->conf.n_groups; gi++)
			if (s->g[gi].norders)
				CAND(s->g[gi].orders[0].at, W_ORDER, gi, 0);
		CAND(s->elect_wake, W_ELECT, 0, 0);
		CAND(s->start_at, W_START, 0, 0);
		CAND(s->abort_at, W_ABORT, 0, 0);
		CAND(s->post_at, W_POST, 0, 0);
		CAND(s->bad_start_at, W_BAD, 0, 0);
		CAND(s->restart2_at, W_RESTART2, 0, 0);
		if (s->chaos)
			CAND(s->chaos_next, W_CHAOS, 0, 0);
#undef CAND
		if (next < s->now)
			next = s->now;
		if (next == s->now) {
			if (++s->same_time > 100000) {
				fail(s, "livelock: time does not advance (event kind %d, node %d)", what, who);
				return;
			}
		} else {
			s->same_time = 0;
		}
		s->now = next;
		s->steps++;
		/* `who` is a node for node events only */
		struct snode *sn = what >= W_WAKE && what <= W_HOLD ? &s->nodes[who] : NULL;
		switch (what) {
		case W_END:
			break;
		case W_MSG:
			deliver(s, who);
			break;
		case W_WAKE:
			tick(s, who);
			break;
		case W_BOOT:
			start_node(s, who);
			break;
		case W_DO:
			finish_do(s, who, idx);
			break;
		case W_RESTART:
			upgrade_restart(s, who);
			break;
		case W_SYNC:
			sn->in_sync = true;
			sn->sync_at = MONO_NEVER;
			break;
		case W_CONFIRM:
			if (sn->avail) {
				boot_confirm(&sn->boot, sn->boot.active, wall_s(s));
				sn->confirm_at = MONO_NEVER;
				trace(s, "node %d confirms %s", who, sn->boot.active);
			} else {
				sn->confirm_at = s->now + ms(200);
			}
			break;
		case W_HOLD: {
			char why[BOOT_REASON_LEN], why2[BOOT_REASON_LEN];
			int64_t run_ms = MONO_TO_MS(s->now - sn->started_at);
			if (!boot_hold_expired(&sn->boot, run_ms, why, sizeof(why)))
				snprintf(why, sizeof(why), "not confirmed within its hold timer");
			trace(s, "node %d: %s", who, why);
			go_down(s, who, DOWN_CHAOS);
			if (boot_revert(&sn->boot, why, wall_s(s), why2, sizeof(why2)) != 0)
				fail(s, "node %d: hold timer revert impossible: %s", who, why2);
			sn->left_id = sn->installed_id;
			sn->boot_at = s->now + ms(300 + rndi(s, 700));
			chaos_mark_all(s);
			break;
		}
		case W_ORDER:
			do_order(s, who);
			break;
		case W_ELECT:
			break; /* settle() below */
		case W_START:
			s->start_at = s->run_id ? MONO_NEVER : s->now + ms(2000 + rndi(s, 4000));
			if (!s->run_id)
				command(s, UPG_CMD_START, false);
			break;
		case W_ABORT:
			s->abort_at = MONO_NEVER;
			command(s, UPG_CMD_ABORT, false);
			break;
		case W_POST:
			s->post_at = MONO_NEVER;
			command(s, (enum upg_cmd_op)s->post_op, false);
			s->post_op = 0;
			break;
		case W_BAD:
			s->bad_start_at = MONO_NEVER;
			command(s, UPG_CMD_START, true);
			break;
		case W_RESTART2:
			s->restart2_at = MONO_NEVER;
			s->did_restart2 = true;
			command(s, UPG_CMD_START, false);
			break;
		case W_CHAOS:
			s->chaos_next = s->now + ms(20 + rndi(s, 100));
			chaos_step(s);
			break;
		}
		settle(s);
		if (!s->failures)
			check_all(s);
	}
}

/* ---- the seed ----------------------------------------------------------- */

static void build_conf(struct sim *s)
{
	struct tnd_conf *c = &s->conf;
	memset(c, 0, sizeof(*c));
	snprintf(c->cluster_name, sizeof(c->cluster_name), "upgsim");
	c->cluster_id = CLUSTER_ID;
	c->port = 7400;
	c->heartbeat_ms = 100;
	c->dead_after = 3;
	c->n_nodes = s->n;
	for (int i = 0; i < s->n; i++) {
		snprintf(c->nodes[i].name, sizeof(c->nodes[i].name), "n%d", i);
		c->nodes[i].n_links = 2;
		for (int l = 0; l < 2; l++) {
			c->nodes[i].links[l].family = 2;
			c->nodes[i].links[l].bytes[0] = l ? 198 : 203;
			c->nodes[i].links[l].bytes[1] = l ? 51 : 0;
			c->nodes[i].links[l].bytes[2] = l ? 100 : 113;
			c->nodes[i].links[l].bytes[3] = (uint8_t)(i + 1);
		}
	}
	c->n_groups = 2 + rndi(s, GMAX - 1);
	/* Sparse: every group but 0 on two nodes only, so that nodes share
	 * no group and go in parallel; a batch may then take group 0's
	 * majority away (the coordination pauses, I3's group 0 rule). */
	bool sparse = s->n >= 3 && rndi(s, 3) == 0;
	for (int gi = 0; gi < c->n_groups; gi++) {
		struct tnd_group_conf *g = &c->groups[gi];
		g->id = (uint8_t)gi;
		g->preempt = gi > 0 && rndi(s, 2);
		g->preempt_delay_s = (uint32_t)rndi(s, 2);
		int members = 0;
		int a = rndi(s, s->n), b = (a + 1 + rndi(s, s->n - 1)) % s->n;
		for (int i = 0; i < s->n; i++) {
			bool in = gi == 0 || s->n == 2 ||
				  (sparse ? i == a || i == b : rndi(s, 4) != 0);
			g->priority[i] = (uint8_t)(in ? 10 + rndi(s, 240) : 0);
			members += in;
		}
		/* Every group has two members at least: a group on one node
		 * cannot stay in service while that node restarts. */
		for (int i = 0; members < 2 && i < s->n; i++)
			if (!g->priority[i]) {
				g->priority[i] = (uint8_t)(10 + rndi(s, 240));
				members++;
			}
	}
	c->sessions_sync = true;
	snprintf(c->upgrade_trusted_keys, sizeof(c->upgrade_trusted_keys), "/etc/tandem/trusted.d");
	c->upgrade_hold_timer_s = 20;
	c->upgrade_sync_timeout_s = 10;
	c->upgrade_cpu_max_percent = 80;
	c->upgrade_failback = true;
}

static void build_images(struct sim *s)
{
	struct upg_image *m = &s->img;
	memset(m, 0, sizeof(*m));
	m->present = m->intact = m->signed_ok = m->trusted = true;
	copy_str(m->version, sizeof(m->version), TO_V);
	copy_str(m->min_upgrade_from, sizeof(m->min_upgrade_from), s->gap ? TO_V : FROM_V);
	m->proto_min = 1;
	m->proto_max = 2;
	for (int k = 0; k < UPG_DIGEST_LEN; k++)
		m->digest[k] = (uint8_t)rnd(s);
	m->bytes = 10000000 + (uint64_t)rndi(s, 50000000);
	m->config_ok = true;
	s->bad_img = *m;
	struct upg_image *b = &s->bad_img;
	switch (rndi(s, 4)) {
	case 0:
		b->signed_ok = b->trusted = false;
		copy_str(b->check_code, sizeof(b->check_code), "E_IMAGE_SIGNATURE");
		copy_str(b->check_message, sizeof(b->check_message), "the image is not signed by a trusted key");
		break;
	case 1:
		b->intact = false;
		copy_str(b->check_code, sizeof(b->check_code), "E_IMAGE_DIGEST");
		copy_str(b->check_message, sizeof(b->check_message), "bin/tandemd does not match its digest");
		break;
	case 2:
		copy_str(b->version, sizeof(b->version), "0.9.0");
		copy_str(b->min_upgrade_from, sizeof(b->min_upgrade_from), "0.9.0");
		break;
	default:
		b->config_ok = false;
		copy_str(b->config_message, sizeof(b->config_message),
			 "tandem.yaml:3:1: unknown key 'cluster.name' in the new version");
	}
	b->digest[0] ^= 0xff;
}

static bool settled(struct sim *s)
{
	if (s->start_at != MONO_NEVER || s->abort_at != MONO_NEVER || s->post_at != MONO_NEVER ||
	    s->restart2_at != MONO_NEVER || s->bad_start_at != MONO_NEVER)
		return false;
	for (int i = 0; i < s->n; i++) {
		const struct snode *sn = &s->nodes[i];
		if (!sn->up || sn->ndo || sn->restart_at != MONO_NEVER || !sn->boot.confirmed ||
		    !sn->jlen || !is_final(&sn->jlast) || sn->jlen != s->nodes[0].jlen ||
		    memcmp(sn->jbuf, s->nodes[0].jbuf, sn->jlen) != 0)
			return false;
	}
	return true;
}

static void converge_check(struct sim *s)
{
	/* Compare with the most advanced journal stored anywhere. */
	int top = 0;
	for (int i = 1; i < s->n; i++) {
		const struct upg_journal *a = &s->nodes[i].jlast, *b = &s->nodes[top].jlast;
		if (s->nodes[i].jlen && (!s->nodes[top].jlen || a->id > b->id ||
					 (a->id == b->id && a->seq > b->seq)))
			top = i;
	}
	const struct snode *n0 = &s->nodes[top];
	if (!n0->jlen || n0->jlast.id == 0) {
		fail(s, "no upgrade was ever started");
		return;
	}
	const struct upg_journal *j = &n0->jlast;
	for (int i = 0; i < s->n; i++) {
		const struct snode *sn = &s->nodes[i];
		if (!sn->up) {
			fail(s, "node %d is not up at the end", i);
			continue;
		}
		if (sn->jlen != n0->jlen || memcmp(sn->jbuf, n0->jbuf, n0->jlen) != 0)
			fail(s, "node %d stored journal %llu/%llu %s, node %d %llu/%llu %s", i,
			     (unsigned long long)sn->jlast.id, (unsigned long long)sn->jlast.seq,
			     upg_state_name((enum upg_state)sn->jlast.state), top,
			     (unsigned long long)j->id, (unsigned long long)j->seq,
			     upg_state_name((enum upg_state)j->state));
		const struct upg_journal *mem = upg_journal_get(sn->u);
		uint8_t buf[UPG_JOURNAL_BYTES_MAX];
		size_t len = 0;
		if (!sn->jlen ? mem && mem->id != 0 :
		    !mem || upg_journal_encode(mem, buf, sizeof(buf), &len) != 0 || len != sn->jlen ||
		    memcmp(buf, sn->jbuf, len) != 0)
			fail(s, "node %d holds another journal in memory than on its disk", i);
		if (strcmp(sn->running, sn->boot.active) != 0)
			fail(s, "node %d runs %s, its active version is %s", i, sn->running, sn->boot.active);
		if (strcmp(sn->boot.active, n0->boot.active) != 0)
			fail(s, "node %d runs %s, node %d runs %s", i, sn->boot.active, top, n0->boot.active);
		if (!sn->boot.confirmed)
			fail(s, "node %d runs %s unconfirmed", i, sn->boot.active);
		char why[UPG_MSG_LEN];
		if (upg_frozen(sn->u, why, sizeof(why)))
			fail(s, "node %d still frozen at the end: %s", i, why);
		if (upg_preempt_suspended(sn->u))
			fail(s, "node %d still suspends preemption at the end", i);
	}
	if (!is_final(j)) {
		fail(s, "upgrade %llu ends in state %s (cursor %d/%d, error %s %s)",
		     (unsigned long long)j->id, upg_state_name((enum upg_state)j->state), j->cursor,
		     j->n_steps, j->error.code, j->error.message);
		return;
	}
	bool on_to = j->state == UPG_COMPLETED || j->finalized;
	const char *want = on_to ? TO_V : FROM_V;
	for (int i = 0; i < s->n; i++)
		if (strcmp(s->nodes[i].boot.active, want) != 0)
			fail(s, "upgrade %llu is %s%s but node %d runs %s", (unsigned long long)j->id,
			     upg_state_name((enum upg_state)j->state), j->finalized ? " (finalized)" : "",
			     i, s->nodes[i].boot.active);
}

static int run_seed(uint64_t seed, int verbose, double chaos_s)
{
	struct sim *s = calloc(1, sizeof(*s));
	s->q = malloc(sizeof(struct msg) * QMAX);
	s->acts = malloc(sizeof(*s->acts));
	upg_actions_reset(s->acts);
	s->seed = seed;
	s->rng = seed * 0x9E3779B97F4A7C15ULL + 1;
	s->verbose = verbose;
	s->n = 2 + rndi(s, NMAX - 1);
	build_conf(s);
	s->failover = ms((int64_t)s->conf.dead_after * s->conf.heartbeat_ms);
	s->level = rndi(s, 4);
	s->loss_pm = (int[]){ 0, 20, 50, 100 }[rndi(s, 4)];
	s->dup_pm = rndi(s, 2) * 30;
	s->fetch_fail_pm = rndi(s, 3) == 0 ? 100 : 0;
	s->crash_after_store_pm = s->level ? 20 : 0;
	s->chaos = true;
	s->gap = rndi(s, 10) == 0;
	s->opts.disruptive = rndi(s, 10) == 0;
	s->opts.no_failback = rndi(s, 5) == 0;
	s->opts.force = s->gap;
	build_images(s);
	s->bad_node = rndi(s, 5) == 0 ? rndi(s, s->n) : -1;
	s->want_abort = rndi(s, 4) == 0;
	s->post_op = (int[]){ 0, 0, UPG_CMD_ROLLBACK, UPG_CMD_FINALIZE }[rndi(s, 4)];
	s->want_restart2 = rndi(s, 3) == 0;
	s->start_at = ms(500 + rndi(s, 8000));
	s->bad_start_at = rndi(s, 3) == 0 ? ms(200 + rndi(s, 10000)) : MONO_NEVER;
	s->abort_at = s->post_at = s->restart2_at = MONO_NEVER;
	s->token = 100;
	s->bad_token = UINT32_MAX;
	s->chaos_next = ms(rndi(s, 100));
	s->g0_back_at = MONO_NEVER;
	for (int gi = 0; gi < GMAX; gi++) {
		s->g[gi].prim = TND_NO_NODE;
		s->g[gi].preempt_to = TND_NO_NODE;
		s->g[gi].down_since = MONO_NEVER;
	}
	for (int i = 0; i < s->n; i++) {
		struct snode *sn = &s->nodes[i];
		boot_init(&sn->boot, FROM_V, wall_s(s));
		sn->bad = i == s->bad_node;
		sn->down_why = DOWN_CHAOS;
		sn->boot_at = ms(rndi(s, 300));
		sn->restart_at = sn->sync_at = sn->confirm_at = MONO_NEVER;
		sn->restart_step = -1;
	}
	if (verbose) {
		printf("seed %llu: %d nodes, chaos level %d, loss %d/1000, dup %d/1000, fetch faults %d/1000, bad node %d, opts%s%s%s, abort %d, after completion %d, second start %d\n",
		       (unsigned long long)seed, s->n, s->level, s->loss_pm, s->dup_pm,
		       s->fetch_fail_pm, s->bad_node, s->opts.disruptive ? " disruptive" : "",
		       s->opts.no_failback ? " no_failback" : "", s->opts.force ? " force (gap)" : "",
		       s->want_abort, s->post_op, s->want_restart2);
		for (int gi = 0; gi < s->conf.n_groups; gi++) {
			const struct tnd_group_conf *gc = &s->conf.groups[gi];
			printf("  group %d preempt %d delay %us priority", gc->id, gc->preempt,
			       gc->preempt_delay_s);
			for (int i = 0; i < s->n; i++)
				printf(" n%d:%d", i, gc->priority[i]);
			printf("\n");
		}
	}
	/* The chaos. */
	run(s, (mono_t)(chaos_s * 1e9));
	/* Heal: a clean network, no more faults; let it finish. */
	if (!s->failures) {
		trace(s, "heal");
		s->chaos = false;
		s->loss_pm = s->dup_pm = s->fetch_fail_pm = s->crash_after_store_pm = 0;
		for (int i = 0; i < s->n; i++)
			s->nodes[i].side = 0;
		memset(s->linkcut, 0, sizeof(s->linkcut));
		chaos_mark_all(s);
		settle(s);
		mono_t end = s->now + ms(HEAL_MS_MAX);
		int calm = 0;
		while (!s->failures && s->now < end && calm < 2) {
			run(s, s->now + ms(HEAL_CHUNK_MS));
			calm = settled(s) ? calm + 1 : 0;
		}
	}
	if (!s->failures)
		converge_check(s);
	const struct upg_journal *j = &s->nodes[0].jlast;
	if (s->failures)
		printf("upgsim: seed %llu FAILED (%d nodes, %d groups, chaos level %d, loss %d/1000, bad node %d, disruptive %d, gap %d); replay: upgsimulate --seed %llu -v\n",
		       (unsigned long long)seed, s->n, s->conf.n_groups, s->level, s->loss_pm,
		       s->bad_node, s->opts.disruptive, s->gap, (unsigned long long)seed);
	else if (verbose)
		printf("upgsim: seed %llu ok: %d nodes, %d groups, level %d, %ld steps, %ld sent, %ld delivered, %ld stores (+%ld repeated in one list), %ld crashes, %ld moves; upgrade %llu %s%s%s%s on %s at %.1f s\n",
		       (unsigned long long)seed, s->n, s->conf.n_groups, s->level, s->steps, s->sent,
		       s->delivered, s->stores, s->dup_stores, s->crashes, s->moves, (unsigned long long)j->id,
		       upg_state_name((enum upg_state)j->state), j->finalized ? " (finalized)" : "",
		       j->error.code[0] ? " " : "", j->error.code, s->nodes[0].boot.active,
		       (double)s->now / 1e9);
	int bad = s->failures ? 1 : 0;
	for (int i = 0; i < s->n; i++)
		upg_free(s->nodes[i].u);
	free(s->q);
	free(s->acts);
	free(s);
	return bad;
}

int main(int argc, char **argv)
{
	long seeds = 50;
	long long one = -1;
	unsigned long long first = 1;
	int verbose = 0;
	double chaos_s = 40;
	static const struct option opts[] = {
		{ "seeds", required_argument, 0, 'n' },
		{ "seed", required_argument, 0, 's' },
		{ "first", required_argument, 0, 'f' },
		{ "chaos-s", required_argument, 0, 'c' },
		{ "verbose", no_argument, 0, 'v' },
		{ 0, 0, 0, 0 },
	};
	int c;
	while ((c = getopt_long(argc, argv, "n:s:f:c:v", opts, NULL)) != -1) {
		switch (c) {
		case 'n': seeds = atol(optarg); break;
		case 's': one = atoll(optarg); break;
		case 'f': first = strtoull(optarg, NULL, 10); break;
		case 'c': chaos_s = atof(optarg); break;
		case 'v': verbose++; break;
		default:
			fprintf(stderr, "usage: upgsimulate [--seeds N] [--first S] [--seed S] [--chaos-s SEC] [-v]\n");
			return 2;
		}
	}
	if (seeds < 0 || chaos_s < 0) {
		fprintf(stderr, "upgsimulate: --seeds and --chaos-s must not be negative\n");
		return 2;
	}
	if (one >= 0)
		return run_seed((uint64_t)one, verbose, chaos_s);
	int failed = 0;
	for (long i = 0; i < seeds; i++)
		failed += run_seed(first + (uint64_t)i, verbose, chaos_s);
	printf("upgsim: %ld seeds, %d failed\n", seeds, failed);
	return failed ? 1 : 0;
}
