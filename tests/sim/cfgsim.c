/* cfgsim.c - deterministic simulator for the configuration-sync core
 * (src/core/cfgsync.c; STYLE, tests layer 3).
 *
 * 2..5 cfgsync cores in one process over a simulated network with loss,
 * duplication, reordering (random delays) and partitions; nodes crash at
 * any moment (also right after a store reached the disk and before the
 * core heard so, and the coordinator between prepare and commit) and
 * restart from their simulated durable store, losing everything else.
 * The coordinator is an oracle playing group 0's election: the lowest
 * node that is up and (three nodes or more) sees a majority; its epoch
 * grows at every change. Liveness is exact (the failure detector is not
 * simulated here). Two-node clusters get no partitions: two nodes cut
 * apart are both group 0 primary, the split brain cfgsync.h describes,
 * which no protocol without a majority can keep consistent. Random nodes propose random documents (some
 * invalid, some larger than many datagrams); stores fail now and then
 * (disk full). After every step it checks:
 *
 *   S1 no two different documents are ever committed with one generation,
 *      on any node, at any time (a global gen -> digest map);
 *   S2 a node's durable committed generation never goes back;
 *   S3 a proposal reported committed as generation G is that document;
 *   S4 the coordinator prepares a generation only on top of every
 *      generation committed anywhere so far (or re-prepares that one);
 *
 * then heals everything (all up, clean network) and checks convergence:
 * every node committed the same generation, the highest ever committed
 * anywhere (nothing committed was lost), applied it, and holds nothing
 * pending. A failure prints the seed; `cfgsimulate --seed N -v` replays
 * it with a trace. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <getopt.h>
#include <stdarg.h>
#include "core/cfgsync.h"
#include "core/rng.h"

#define NMAX 5
#define QMAX 200000
#define GENS_MAX 4096

struct msg {
	mono_t at;
	int from, to;
	size_t len;
	uint8_t pkt[WIRE_MTU];
};

struct disk { /* what survives a crash */
	uint64_t cgen;
	uint8_t *cblob;
	size_t clen;
	uint64_t pgen, pballot;
	uint8_t *pblob;
	size_t plen;
	uint64_t floor;
	uint64_t cgen_max_seen; /* S2 */
};

struct snode {
	struct cfgsync *cs;
	bool up;
	mono_t down_until;
	uint64_t incarnation;
	struct disk d;
	uint64_t applied_gen;
	int side; /* partition side */
	int view_coord;
	uint64_t view_epoch;
	uint32_t view_alive;
	uint32_t next_req;
};

struct sim {
	uint64_t rng;
	int n, verbose;
	mono_t now;
	struct snode nodes[NMAX];
	struct msg *q;
	int nq;
	double loss, dup;
	int store_fail_pct, crash_after_store_pct;
	int coord;
	uint64_t epoch;
	/* S1 */
	int ngens;
	uint64_t gens[GENS_MAX];
	uint8_t gdg[GENS_MAX][CFGSYNC_DIGEST_LEN];
	uint64_t max_committed;
	long same_time;
	long failures, steps, sent, delivered, proposals, ok_results, commits;
	struct cfgsync_actions *acts;
	/* proposals reported committed: digest + gen (S3) */
	int nres;
	struct { uint64_t gen; uint8_t dg[CFGSYNC_DIGEST_LEN]; } res[1024];
	/* digests of proposals in flight per node/req */
	uint8_t req_dg[NMAX][4096][CFGSYNC_DIGEST_LEN];
};

static uint64_t rnd(struct sim *s) { return rng_next(&s->rng); }
static int rndi(struct sim *s, int n) { return n > 0 ? (int)(rnd(s) % (uint64_t)n) : 0; }
static bool chance(struct sim *s, double p) { return (double)(rnd(s) % 1000000) < p * 1e6; }

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

static void dgset(uint8_t *out, const uint8_t *blob, size_t len)
{
	cfgsync_digest(blob, len, out);
}

/* S1 + S2, on the durable state. */
static void check_disk(struct sim *s, int i)
{
	struct disk *d = &s->nodes[i].d;
	if (d->cgen < d->cgen_max_seen)
		fail(s, "S2 node %d committed gen went back %llu -> %llu", i,
		     (unsigned long long)d->cgen_max_seen, (unsigned long long)d->cgen);
	if (d->cgen > d->cgen_max_seen)
		d->cgen_max_seen = d->cgen;
	if (d->cgen == 0)
		return;
	uint8_t dg[CFGSYNC_DIGEST_LEN];
	dgset(dg, d->cblob, d->clen);
	for (int k = 0; k < s->ngens; k++)
		if (s->gens[k] == d->cgen) {
			if (memcmp(s->gdg[k], dg, sizeof(dg)) != 0)
				fail(s, "S1 two documents committed as generation %llu (node %d)",
				     (unsigned long long)d->cgen, i);
			return;
		}
	if (s->ngens < GENS_MAX) {
		s->gens[s->ngens] = d->cgen;
		memcpy(s->gdg[s->ngens++], dg, sizeof(dg));
	}
	if (d->cgen > s->max_committed)
		s->max_committed = d->cgen;
}

/* S4: the coordinator prepares gen G only on top of everything committed
 * anywhere so far (or re-prepares that very document): nothing a node
 * committed is silently superseded by a change that did not include it. */
static void check_base(struct sim *s, int i, uint64_t gen, const uint8_t *dg)
{
	for (int k = 0; k < s->ngens; k++) {
		if (s->gens[k] <= s->nodes[i].d.cgen)
			continue;
		if (s->gens[k] == gen && memcmp(s->gdg[k], dg, CFGSYNC_DIGEST_LEN) == 0)
			continue;
		fail(s, "S4 coordinator %d prepares gen %llu on gen %llu while gen %llu is committed elsewhere",
		     i, (unsigned long long)gen, (unsigned long long)s->nodes[i].d.cgen,
		     (unsigned long long)s->gens[k]);
	}
}

static void set_blob(uint8_t **dst, size_t *dlen, const uint8_t *b, size_t len)
{
	free(*dst);
	*dst = NULL;
	*dlen = 0;
	if (len) {
		*dst = malloc(len);
		memcpy(*dst, b, len);
		*dlen = len;
	}
}

static void crash(struct sim *s, int i)
{
	struct snode *sn = &s->nodes[i];
	if (!sn->up)
		return;
	if (s->verbose)
		printf("%8lld crash node %d\n", (long long)MONO_TO_MS(s->now), i);
	cfgsync_free(sn->cs);
	sn->cs = NULL;
	sn->up = false;
	sn->applied_gen = 0;
	sn->down_until = s->now + MS_TO_MONO(100 + rndi(s, 3000));
}

/* Deferred answers to actions: a core call may free the blobs the rest of
 * an action list points to, so a driver performs the whole list first. */
struct cb {
	int kind; /* 0 stored, 1 applied, 2 validated */
	enum cfgsync_store_op op;
	uint64_t gen;
	uint8_t dg[CFGSYNC_DIGEST_LEN];
	int code;
	char why[64];
};

static void run_actions(struct sim *s, int i);

static void perform(struct sim *s, int i, struct cfgsync_actions *a,
		    struct cb *cbs, int *ncb)
{
	struct snode *sn = &s->nodes[i];
	for (int k = 0; k < a->n; k++) {
		struct cfgsync_act *x = &a->a[k];
		switch (x->type) {
		case CFA_SEND: {
			if (s->nq >= QMAX)
				break;
			int copies = chance(s, s->dup) ? 2 : 1;
			for (int c = 0; c < copies && s->nq < QMAX; c++) {
				struct msg *m = &s->q[s->nq++];
				m->at = s->now + MS_TO_MONO(1 + rndi(s, 20));
				m->from = i;
				m->to = x->to;
				m->len = x->len;
				memcpy(m->pkt, x->pkt, x->len);
			}
			s->sent++;
			break;
		}
		case CFA_STORE: {
			int code = 0;
			if (rndi(s, 100) < s->store_fail_pct)
				code = TND_ENOSPC;
			else if (x->op == CFS_PENDING) {
				if (i == s->coord)
					check_base(s, i, x->gen, x->digest);
				sn->d.pgen = x->gen;
				sn->d.pballot = x->ballot;
				set_blob(&sn->d.pblob, &sn->d.plen, x->blob, x->blob_len);
			} else if (x->op == CFS_COMMIT) {
				if (x->gen < sn->d.cgen)
					fail(s, "node %d asked to commit gen %llu below %llu", i,
					     (unsigned long long)x->gen,
					     (unsigned long long)sn->d.cgen);
				sn->d.cgen = x->gen;
				set_blob(&sn->d.cblob, &sn->d.clen, x->blob, x->blob_len);
				if (sn->d.pgen <= x->gen) {
					sn->d.pgen = 0;
					set_blob(&sn->d.pblob, &sn->d.plen, NULL, 0);
				}
				s->commits++;
			} else if (x->op == CFS_DROP) {
				if (sn->d.pgen == x->gen) {
					sn->d.pgen = 0;
					set_blob(&sn->d.pblob, &sn->d.plen, NULL, 0);
				}
			}
			if (!code && x->gen > sn->d.floor)
				sn->d.floor = x->gen;
			check_disk(s, i);
			struct cb *c = &cbs[(*ncb)++];
			c->kind = 0;
			c->op = x->op;
			c->gen = x->gen;
			memcpy(c->dg, x->digest, CFGSYNC_DIGEST_LEN);
			c->code = code;
			break;
		}
		case CFA_APPLY: {
			struct cb *c = &cbs[(*ncb)++];
			c->kind = 1;
			c->gen = x->gen;
			c->code = 0;
			break;
		}
		case CFA_VALIDATE: {
			struct cfgsync_text t;
			struct cb *c = &cbs[(*ncb)++];
			c->kind = 2;
			memcpy(c->dg, x->digest, CFGSYNC_DIGEST_LEN);
			c->code = 0;
			c->why[0] = 0;
			if (cfgsync_doc_decode(x->blob, x->blob_len, &t) != 0 ||
			    strncmp(t.yaml, "bad", 3) == 0) {
				c->code = TND_EINVAL;
				snprintf(c->why, sizeof(c->why), "doc:1:1: bad document");
			}
			break;
		}
		case CFA_RESULT:
			if (s->verbose)
				printf("%8lld node %d result req=%u code=%d %s\n",
				       (long long)MONO_TO_MS(s->now), i, x->req, x->code, x->why);
			if (x->code == 0 && strncmp(x->why, "committed as generation ", 24) == 0 &&
			    s->nres < 1024) {
				s->res[s->nres].gen = strtoull(x->why + 24, NULL, 10);
				memcpy(s->res[s->nres++].dg, s->req_dg[i][x->req % 4096],
				       CFGSYNC_DIGEST_LEN);
				s->ok_results++;
			}
			break;
		case CFA_EVENT:
			if (s->verbose)
				printf("%8lld node %d %s %s\n", (long long)MONO_TO_MS(s->now),
				       i, x->name, x->kv);
			break;
		}
	}
	if (a->n_dropped)
		fail(s, "node %d: %d actions dropped", i, a->n_dropped);
}

/* Perform the actions in s->acts for node i, then the callbacks, until
 * nothing is left. A crash may strike after a store reached the disk. */
static void run_actions(struct sim *s, int i)
{
	struct cb cbs[CFGSYNC_ACTIONS_MAX];
	for (int round = 0; round < 1000; round++) {
		int ncb = 0;
		perform(s, i, s->acts, cbs, &ncb);
		cfgsync_actions_reset(s->acts);
		if (!ncb)
			return;
		for (int k = 0; k < ncb; k++) {
			struct snode *sn = &s->nodes[i];
			if (!sn->up)
				return;
			if (cbs[k].kind == 0 && rndi(s, 1000) < s->crash_after_store_pct) {
				crash(s, i);
				return;
			}
			switch (cbs[k].kind) {
			case 0:
				cfgsync_stored(sn->cs, cbs[k].op, cbs[k].gen, cbs[k].dg,
					       cbs[k].code, s->now, s->acts);
				break;
			case 1:
				sn->applied_gen = cbs[k].gen;
				cfgsync_applied(sn->cs, cbs[k].gen, 0, NULL, s->now, s->acts);
				break;
			case 2:
				cfgsync_validated(sn->cs, cbs[k].dg, cbs[k].code, cbs[k].why,
						  s->now, s->acts);
				break;
			}
		}
	}
	fail(s, "node %d: action loop did not end", i);
}

static bool connected(const struct sim *s, int a, int b)
{
	return s->nodes[a].up && s->nodes[b].up && s->nodes[a].side == s->nodes[b].side;
}

/* The group 0 oracle, and each node's view of it. */
static void update_views(struct sim *s)
{
	int coord = TND_NO_NODE;
	for (int i = 0; i < s->n && coord == TND_NO_NODE; i++) {
		if (!s->nodes[i].up)
			continue;
		int reach = 0;
		for (int j = 0; j < s->n; j++)
			reach += connected(s, i, j);
		if (s->n < 3 || reach * 2 > s->n)
			coord = i;
	}
	if (coord != s->coord) {
		s->coord = coord;
		s->epoch++;
		if (s->verbose)
			printf("%8lld coordinator %d epoch %llu\n", (long long)MONO_TO_MS(s->now),
			       coord, (unsigned long long)s->epoch);
	}
	for (int i = 0; i < s->n; i++) {
		struct snode *sn = &s->nodes[i];
		if (!sn->up)
			continue;
		uint32_t alive = 0;
		for (int j = 0; j < s->n; j++)
			if (j != i && connected(s, i, j))
				alive |= 1u << j;
		/* a node cut off from the coordinator does not know it */
		int c = coord;
		if (sn->view_coord != c || sn->view_epoch != s->epoch || sn->view_alive != alive) {
			sn->view_coord = c;
			sn->view_epoch = s->epoch;
			sn->view_alive = alive;
			cfgsync_view(sn->cs, c, s->epoch, alive, s->now, s->acts);
			run_actions(s, i);
		}
	}
}

static void boot(struct sim *s, int i)
{
	struct snode *sn = &s->nodes[i];
	struct cfgsync_params p;
	cfgsync_params_default(&p);
	p.self = i;
	p.n_nodes = s->n;
	p.cluster_id = 1;
	p.incarnation = ++sn->incarnation;
	p.seed = rnd(s);
	p.state_ms = 200;
	p.retry_ms = 100;
	p.prepare_timeout_ms = 3000;
	p.propose_timeout_ms = 8000;
	p.committed_gen = sn->d.cgen;
	p.committed_blob = sn->d.cblob;
	p.committed_len = sn->d.clen;
	p.pending_gen = sn->d.pgen;
	p.pending_ballot = sn->d.pballot;
	p.pending_blob = sn->d.pblob;
	p.pending_len = sn->d.plen;
	p.gen_floor = sn->d.floor;
	sn->cs = cfgsync_new(&p, s->now);
	if (!sn->cs) {
		fail(s, "node %d: cfgsync_new failed", i);
		return;
	}
	sn->up = true;
	sn->view_coord = -2;
	sn->view_alive = 0;
	if (s->verbose)
		printf("%8lld boot node %d gen %llu pending %llu\n",
		       (long long)MONO_TO_MS(s->now), i, (unsigned long long)sn->d.cgen,
		       (unsigned long long)sn->d.pgen);
}

static void make_doc(struct sim *s, int i, uint8_t **blob, size_t *len, bool bad)
{
	size_t yl = 40 + (size_t)rndi(s, 400);
	int r = rndi(s, 20);
	if (r == 0)
		yl = 20000 + (size_t)rndi(s, 60000); /* tens of datagrams */
	char *y = malloc(yl + 1);
	int k = snprintf(y, yl + 1, "%scluster: {name: sim}\n# from %d at %lld #%llu\n",
			 bad ? "bad " : "", i, (long long)s->now,
			 (unsigned long long)rnd(s));
	for (size_t j = (size_t)k; j < yl; j++)
		y[j] = (char)('a' + rndi(s, 26));
	y[yl] = 0;
	const char *rs = rndi(s, 2) ? "table inet tandem { }\n" : "";
	struct cfgsync_text t = { y, yl, rs, strlen(rs) };
	if (cfgsync_doc_encode(&t, blob, len) != 0)
		fail(s, "encode failed");
	free(y);
}

static void propose(struct sim *s, int i)
{
	struct snode *sn = &s->nodes[i];
	uint8_t *blob;
	size_t len;
	make_doc(s, i, &blob, &len, rndi(s, 8) == 0);
	uint32_t req = ++sn->next_req;
	cfgsync_digest(blob, len, s->req_dg[i][req % 4096]);
	char why[CFGSYNC_WHY_LEN];
	int rc = cfgsync_propose(sn->cs, req, blob, len, 0, s->now, s->acts, why,
				 sizeof(why));
	s->proposals++;
	if (s->verbose)
		printf("%8lld node %d propose req=%u len=%zu rc=%d %s\n",
		       (long long)MONO_TO_MS(s->now), i, req, len, rc, rc ? why : "");
	free(blob);
	run_actions(s, i);
}

static void deliver(struct sim *s, int k)
{
	struct msg m = s->q[k];
	s->q[k] = s->q[--s->nq];
	if (!connected(s, m.from, m.to) || chance(s, s->loss))
		return;
	struct wire_hdr h;
	if (wire_hdr_decode(m.pkt, m.len, &h) != 0) {
		fail(s, "undecodable packet from %d", m.from);
		return;
	}
	s->delivered++;
	cfgsync_recv(s->nodes[m.to].cs, &h, m.pkt + WIRE_HDR_LEN, h.body_len, s->now,
		     s->acts);
	run_actions(s, m.to);
}

/* Advance to `until`, with chaos when `chaos`. */
static void run(struct sim *s, mono_t until, bool chaos)
{
	while (s->now < until && !s->failures) {
		mono_t next = until;
		int qk = -1;
		for (int k = 0; k < s->nq; k++)
			if (s->q[k].at < next) {
				next = s->q[k].at;
				qk = k;
			}
		for (int i = 0; i < s->n; i++) {
			struct snode *sn = &s->nodes[i];
			mono_t w = sn->up ? cfgsync_next_wake(sn->cs) : sn->down_until;
			if (w < next) {
				next = w;
				qk = -1;
			}
		}
		mono_t chaos_at = chaos ? s->now + MS_TO_MONO(1 + rndi(s, 40)) : MONO_NEVER;
		if (chaos_at < next) {
			next = chaos_at;
			qk = -2;
		}
		if (next < s->now)
			next = s->now;
		if (next == s->now) {
			if (++s->same_time > 100000) {
				fail(s, "livelock: time does not advance");
				return;
			}
		} else {
			s->same_time = 0;
		}
		s->now = next;
		s->steps++;
		if (qk >= 0) {
			deliver(s, qk);
		} else if (qk == -2) {
			int r = rndi(s, 100);
			int i = rndi(s, s->n);
			if (r < 8 && s->nodes[i].up) {
				propose(s, i);
			} else if (r < 11) {
				crash(s, i);
				update_views(s);
			} else if (r < 12 && s->coord >= 0) {
				crash(s, s->coord); /* mid-commit, often */
				update_views(s);
			} else if (r < 14 && s->n >= 3) {
				/* Two nodes cut apart are both group 0
				 * primary (no majority to ask): the split
				 * brain cfgsync.h documents, not simulated. */
				for (int j = 0; j < s->n; j++)
					s->nodes[j].side = rndi(s, 4) == 0;
				update_views(s);
			} else if (r < 17) {
				for (int j = 0; j < s->n; j++)
					s->nodes[j].side = 0;
				update_views(s);
			}
		} else {
			for (int i = 0; i < s->n; i++) {
				struct snode *sn = &s->nodes[i];
				if (!sn->up && sn->down_until <= s->now) {
					boot(s, i);
					update_views(s);
				} else if (sn->up && cfgsync_next_wake(sn->cs) <= s->now) {
					cfgsync_tick(sn->cs, s->now, s->acts);
					run_actions(s, i);
				}
			}
		}
		for (int i = 0; i < s->n; i++)
			if (s->nodes[i].up)
				check_disk(s, i);
	}
}

static int converge_check(struct sim *s)
{
	struct disk *d0 = &s->nodes[0].d;
	for (int i = 0; i < s->n; i++) {
		struct snode *sn = &s->nodes[i];
		if (sn->d.cgen != s->max_committed)
			fail(s, "node %d ends at gen %llu, highest committed is %llu", i,
			     (unsigned long long)sn->d.cgen,
			     (unsigned long long)s->max_committed);
		else if (sn->d.clen != d0->clen || memcmp(sn->d.cblob, d0->cblob, d0->clen))
			fail(s, "node %d holds another document at gen %llu", i,
			     (unsigned long long)sn->d.cgen);
		if (sn->applied_gen != sn->d.cgen)
			fail(s, "node %d applied gen %llu, committed %llu", i,
			     (unsigned long long)sn->applied_gen,
			     (unsigned long long)sn->d.cgen);
		if (sn->d.pgen)
			fail(s, "node %d still holds pending gen %llu", i,
			     (unsigned long long)sn->d.pgen);
		struct cfgsync_report r;
		cfgsync_report(sn->cs, &r);
		for (int x = 0; x < s->n; x++)
			if (!r.nodes[x].in_sync)
				fail(s, "node %d reports node %d not in sync", i, x);
	}
	if (s->max_committed == 0)
		fail(s, "nothing was ever committed (bootstrap did not happen)");
	/* S3 */
	for (int k = 0; k < s->nres; k++)
		for (int g = 0; g < s->ngens; g++)
			if (s->gens[g] == s->res[k].gen &&
			    memcmp(s->gdg[g], s->res[k].dg, CFGSYNC_DIGEST_LEN))
				fail(s, "S3 reported committed gen %llu is another document",
				     (unsigned long long)s->res[k].gen);
	return (int)s->failures;
}

static int run_seed(uint64_t seed, int verbose, double chaos_s)
{
	struct sim *s = calloc(1, sizeof(*s));
	s->q = malloc(sizeof(struct msg) * QMAX);
	s->acts = malloc(sizeof(*s->acts));
	cfgsync_actions_reset(s->acts);
	s->rng = seed * 0x9E3779B97F4A7C15ULL + 1;
	s->verbose = verbose;
	s->n = 2 + rndi(s, NMAX - 1);
	s->loss = rndi(s, 3) * 0.05;
	s->dup = rndi(s, 2) * 0.05;
	s->store_fail_pct = rndi(s, 2) * 3;
	s->crash_after_store_pct = rndi(s, 2) * 20; /* per mille */
	s->coord = -3;
	/* Each node boots with its own file (some identical). */
	for (int i = 0; i < s->n; i++) {
		uint8_t *b;
		size_t l;
		make_doc(s, rndi(s, 2) ? 0 : i, &b, &l, false);
		s->nodes[i].d.cblob = b;
		s->nodes[i].d.clen = l;
		s->nodes[i].down_until = MS_TO_MONO(rndi(s, 300));
	}
	run(s, (mono_t)(chaos_s * 1e9), true);
	if (!s->failures) {
		s->loss = s->dup = 0;
		s->store_fail_pct = s->crash_after_store_pct = 0;
		for (int i = 0; i < s->n; i++) {
			s->nodes[i].side = 0;
			if (!s->nodes[i].up)
				boot(s, i);
		}
		update_views(s);
		run(s, s->now + MS_TO_MONO(15000), false);
	}
	int bad = s->failures ? (int)s->failures : converge_check(s);
	if (bad)
		printf("cfgsim: seed %llu FAILED (%d nodes, loss %.2f, store fail %d%%); replay: cfgsimulate --seed %llu -v\n",
		       (unsigned long long)seed, s->n, s->loss, s->store_fail_pct,
		       (unsigned long long)seed);
	else if (verbose)
		printf("cfgsim: seed %llu ok: %d nodes, %ld steps, %ld sent, %ld delivered, %ld proposals, %ld committed results, final gen %llu\n",
		       (unsigned long long)seed, s->n, s->steps, s->sent, s->delivered,
		       s->proposals, s->ok_results, (unsigned long long)s->max_committed);
	for (int i = 0; i < s->n; i++) {
		cfgsync_free(s->nodes[i].cs);
		free(s->nodes[i].d.cblob);
		free(s->nodes[i].d.pblob);
	}
	free(s->q);
	free(s->acts);
	free(s);
	return bad ? 1 : 0;
}

int main(int argc, char **argv)
{
	long seeds = 50;
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
			fprintf(stderr, "usage: cfgsimulate [--seeds N] [--first S] [--seed S] [--chaos-s SEC] [-v]\n");
			return 2;
		}
	}
	if (one >= 0)
		return run_seed((uint64_t)one, verbose, chaos_s);
	int failed = 0;
	for (long i = 0; i < seeds; i++)
		failed += run_seed(first + (uint64_t)i, verbose, chaos_s);
	printf("cfgsim: %ld seeds, %d failed\n", seeds, failed);
	return failed ? 1 : 0;
}
