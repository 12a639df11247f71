/* test_cfgsync.c - unit tests of the configuration-sync core
 * (src/core/cfgsync.c, protocol in cfgsync.h; SPEC section 1
 * "Configuration sync" and section 3).
 *
 * A deterministic harness of two or three cores in one process: a manual
 * clock, a FIFO of the CFA_SEND packets (plaintext header + TLVs, as the
 * core emits them before the driver seals them) delivered one by one with
 * per-pair cuts and per-type drops, and a "driver" per node that answers
 * CFA_STORE / CFA_VALIDATE / CFA_APPLY against a simulated durable store
 * (or holds an answer back, or fails it) and logs every action. Each test
 * builds one situation and asserts on the actions emitted, the durable
 * store, the CFA_RESULT sentences and cfgsync_report(): the document codec,
 * cfgsync_check_change() on real parsed configurations, bootstrap, commits
 * from a secondary and from the coordinator, validation refusal, store
 * failure and prepare timeout (abort), a coordinator crash between prepare
 * and commit (roll-forward under the next ballot), catch-up of a node that
 * was down, duplicates, replays and garbage, settling, and timeouts. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "core/cfgsync.h"

#define MS(x) MS_TO_MONO(x)
#define NN 3
#define Q_MAX 8192
#define LOG_MAX 4096
#define HELD_MAX 16
#define NTYPES 9 /* CFG_MSG_STATE .. CFG_MSG_RESULT */
#define WIRE_LOG 4096

/* The TLV numbers of cfgsync.c's messages. They are the wire format, so
 * they are pinned here: a change to them breaks mixed-version clusters. */
enum {
	T_GEN = 1, T_BALLOT, T_DIGEST, T_LEN, T_CODE, T_WHY, T_REQ, T_OFF,
	T_COUNT, T_DATA, T_FLAGS, T_CGEN, T_CDG, T_PGEN, T_PBALLOT, T_PDG,
	T_AGEN, T_AOK, T_FLOOR, T_MISSING, T_INC,
};

/* One action as the driver saw it. */
struct rec {
	enum cfgsync_act_type type;
	enum cfgsync_store_op op;
	uint64_t gen, ballot;
	uint8_t dg[CFGSYNC_DIGEST_LEN];
	uint32_t req;
	int code;
	char why[CFGSYNC_WHY_LEN];
	int to;      /* CFA_SEND */
	uint8_t msg; /* CFA_SEND: message type */
	char name[32];
	char kv[320];
	long at; /* order among every node's actions */
};

/* A deferred answer: the core may free the blobs that the rest of an
 * action list points to, so the driver performs the whole list first. */
struct cb {
	int kind; /* 0 stored, 1 applied, 2 validated */
	enum cfgsync_store_op op;
	uint64_t gen;
	uint8_t dg[CFGSYNC_DIGEST_LEN];
	int code;
	char why[CFGSYNC_WHY_LEN];
};

struct disk { /* what survives a crash */
	uint64_t cgen;
	uint8_t *cblob;
	size_t clen;
	uint64_t pgen, pballot;
	uint8_t *pblob;
	size_t plen;
	uint64_t floor;
};

struct tnode {
	struct cfgsync *cs;
	bool up;
	uint64_t inc;
	struct disk d;
	uint64_t applied_gen;
	/* driver policy */
	int store_code[3];   /* answer per store op (0 = success) */
	bool hold_store[3];  /* keep the answer back (held[]) */
	bool hold_validate, hold_apply;
	int validate_code;
	char validate_why[CFGSYNC_WHY_LEN];
	int apply_code;
	struct cb held[HELD_MAX];
	int nheld;
	struct rec log[LOG_MAX];
	int nlog;
};

struct pkt {
	int from, to;
	size_t len;
	uint8_t b[WIRE_MTU];
};

struct h {
	int n;
	mono_t now;
	uint8_t *seed;
	size_t seed_len;
	struct tnode t[NN];
	struct pkt q[Q_MAX];
	int qh, qt; /* FIFO [qh, qt) */
	bool cut[NN][NN];       /* packets from a to b are lost */
	uint32_t drop_to[NN];   /* message types (bit type-32) lost to a node */
	bool allow_bad;         /* a test that expects refused packets */
	struct pkt last[NN][NN][NTYPES]; /* last packet sent per pair, type */
	struct pkt *wire;       /* every STATE sent, in order (bounded) */
	int nwire;
	long nact;              /* actions seen, all nodes */
	struct cfgsync_actions *out;
};

static struct h *H;

/* --- documents ------------------------------------------------------------ */

#define YAML_HEAD                                                       \
	"cluster: {name: edge1, id: 1, key_file: /etc/tandem/cluster.key}\n" \
	"nodes:\n"                                                      \
	"  - {name: fw-a, links: [203.0.113.1, 198.51.100.1]}\n"         \
	"  - {name: fw-b, links: [203.0.113.2, 198.51.100.2]}\n"         \
	"  - {name: fw-c, links: [203.0.113.3, 198.51.100.3]}\n"

static const char yaml_a[] = YAML_HEAD
	"groups:\n"
	"  - {id: 0, priority: {fw-a: 200, fw-b: 100, fw-c: 50}}\n";
static const char yaml_b[] = YAML_HEAD
	"groups:\n"
	"  - {id: 0, priority: {fw-a: 200, fw-b: 100, fw-c: 50}}\n"
	"  - id: 1\n"
	"    priority: {fw-a: 100, fw-b: 200}\n"
	"    vips: [{address: 192.0.2.1/24, interface: lan0}]\n";
static const char yaml_c[] = YAML_HEAD
	"groups:\n"
	"  - {id: 0, priority: {fw-a: 50, fw-b: 100, fw-c: 200}}\n";
static const char ruleset_b[] = "table inet tandem {\n  chain fwd { type filter hook forward priority 0; }\n}\n";

static void doc(const char *yaml, const char *ruleset, uint8_t **blob, size_t *len)
{
	struct cfgsync_text t = { yaml, strlen(yaml), ruleset, strlen(ruleset) };
	assert_int_equal(cfgsync_doc_encode(&t, blob, len), 0);
}

static void dg_of(const uint8_t *b, size_t len, uint8_t out[CFGSYNC_DIGEST_LEN])
{
	cfgsync_digest(b, len, out);
}

/* A document of about `bytes` bytes: many CFG_MSG_DATA chunks. */
static void big_doc(size_t bytes, uint8_t **blob, size_t *len)
{
	char *y = malloc(bytes + 1);
	size_t k = (size_t)snprintf(y, bytes + 1, "%s", yaml_b);
	int line = 0;
	while (k + 40 < bytes)
		k += (size_t)snprintf(y + k, bytes + 1 - k, "# padding line %06d .........\n", line++);
	y[k] = 0;
	doc(y, ruleset_b, blob, len);
	free(y);
}

/* --- the driver ------------------------------------------------------------- */

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

static void disk_store(struct disk *d, const struct cfgsync_act *a)
{
	switch (a->op) {
	case CFS_PENDING:
		d->pgen = a->gen;
		d->pballot = a->ballot;
		set_blob(&d->pblob, &d->plen, a->blob, a->blob_len);
		break;
	case CFS_COMMIT:
		assert_true(a->gen >= d->cgen); /* never back */
		d->cgen = a->gen;
		set_blob(&d->cblob, &d->clen, a->blob, a->blob_len);
		if (d->pgen <= a->gen) {
			d->pgen = d->pballot = 0;
			set_blob(&d->pblob, &d->plen, NULL, 0);
		}
		break;
	case CFS_DROP:
		if (d->pgen == a->gen) {
			d->pgen = d->pballot = 0;
			set_blob(&d->pblob, &d->plen, NULL, 0);
		}
		break;
	}
	if (a->gen > d->floor)
		d->floor = a->gen;
}

static void logrec(struct tnode *t, const struct cfgsync_act *a)
{
	assert_true(t->nlog < LOG_MAX);
	struct rec *r = &t->log[t->nlog++];
	memset(r, 0, sizeof(*r));
	r->type = a->type;
	r->at = ++H->nact;
	switch (a->type) {
	case CFA_SEND:
		r->to = a->to;
		r->msg = a->pkt[7];
		break;
	case CFA_STORE:
	case CFA_VALIDATE:
	case CFA_APPLY:
		r->op = a->op;
		r->gen = a->gen;
		r->ballot = a->ballot;
		memcpy(r->dg, a->digest, CFGSYNC_DIGEST_LEN);
		break;
	case CFA_RESULT:
		r->req = a->req;
		r->code = a->code;
		snprintf(r->why, sizeof(r->why), "%s", a->why);
		break;
	case CFA_EVENT:
		snprintf(r->name, sizeof(r->name), "%s", a->name);
		snprintf(r->kv, sizeof(r->kv), "%s", a->kv);
		break;
	}
}

static void enqueue(int from, const struct cfgsync_act *a)
{
	assert_true(H->qt < Q_MAX);
	assert_true(a->to >= 0 && a->to < H->n && a->to != from);
	assert_true(a->len >= WIRE_HDR_LEN && a->len <= WIRE_MTU - WIRE_TAG_LEN);
	struct pkt *p = &H->q[H->qt++];
	p->from = from;
	p->to = a->to;
	p->len = a->len;
	memcpy(p->b, a->pkt, a->len);
	uint8_t ty = a->pkt[7];
	assert_true(ty >= CFG_MSG_STATE && ty <= CFG_MSG_RESULT);
	H->last[from][a->to][ty - CFG_MSG_STATE] = *p;
	if (ty == CFG_MSG_STATE && H->nwire < WIRE_LOG)
		H->wire[H->nwire++] = *p;
}

static void answer(int i, const struct cb *c)
{
	struct tnode *t = &H->t[i];
	switch (c->kind) {
	case 0:
		assert_int_equal(cfgsync_stored(t->cs, c->op, c->gen, c->dg, c->code,
						H->now, H->out), 0);
		break;
	case 1:
		assert_int_equal(cfgsync_applied(t->cs, c->gen, c->code,
						 c->code ? c->why : NULL, H->now, H->out), 0);
		break;
	case 2:
		assert_int_equal(cfgsync_validated(t->cs, c->dg, c->code, c->why,
						   H->now, H->out), 0);
		break;
	}
}

/* Perform node i's actions and the answers they lead to, until quiet. */
static void run(int i)
{
	struct tnode *t = &H->t[i];
	for (int round = 0; round < 1000; round++) {
		struct cb cbs[CFGSYNC_ACTIONS_MAX];
		int ncb = 0;
		assert_int_equal(H->out->n_dropped, 0);
		for (int k = 0; k < H->out->n; k++) {
			const struct cfgsync_act *a = &H->out->a[k];
			logrec(t, a);
			struct cb c = { 0 };
			switch (a->type) {
			case CFA_SEND:
				enqueue(i, a);
				continue;
			case CFA_STORE:
				c.kind = 0;
				c.op = a->op;
				c.gen = a->gen;
				memcpy(c.dg, a->digest, CFGSYNC_DIGEST_LEN);
				if (t->hold_store[a->op]) {
					assert_true(t->nheld < HELD_MAX);
					t->held[t->nheld++] = c;
					continue;
				}
				c.code = t->store_code[a->op];
				if (!c.code)
					disk_store(&t->d, a);
				break;
			case CFA_VALIDATE: {
				struct cfgsync_text tx;
				assert_int_equal(cfgsync_doc_decode(a->blob, a->blob_len, &tx), 0);
				uint8_t dg[CFGSYNC_DIGEST_LEN];
				dg_of(a->blob, a->blob_len, dg);
				assert_memory_equal(dg, a->digest, CFGSYNC_DIGEST_LEN);
				c.kind = 2;
				memcpy(c.dg, a->digest, CFGSYNC_DIGEST_LEN);
				c.code = t->validate_code;
				snprintf(c.why, sizeof(c.why), "%s", t->validate_why);
				if (t->hold_validate) {
					assert_true(t->nheld < HELD_MAX);
					t->held[t->nheld++] = c;
					continue;
				}
				break;
			}
			case CFA_APPLY: {
				struct cfgsync_text tx;
				assert_int_equal(cfgsync_doc_decode(a->blob, a->blob_len, &tx), 0);
				c.kind = 1;
				c.gen = a->gen;
				c.code = t->apply_code;
				snprintf(c.why, sizeof(c.why), "nft: ruleset rejected");
				if (t->hold_apply) {
					assert_true(t->nheld < HELD_MAX);
					t->held[t->nheld++] = c;
					continue;
				}
				if (!c.code)
					t->applied_gen = a->gen;
				break;
			}
			case CFA_RESULT:
			case CFA_EVENT:
				continue;
			}
			cbs[ncb++] = c;
		}
		cfgsync_actions_reset(H->out);
		if (!ncb)
			return;
		for (int k = 0; k < ncb && t->up; k++)
			answer(i, &cbs[k]);
	}
	fail_msg("node %d: the action loop did not end", i);
}

/* Answer node i's held actions of `kind` (all of them). */
static void release(int i, int kind, int code)
{
	struct tnode *t = &H->t[i];
	struct cb keep[HELD_MAX];
	int nk = 0, n = t->nheld;
	struct cb todo[HELD_MAX];
	memcpy(todo, t->held, sizeof(todo[0]) * (size_t)n);
	t->nheld = 0;
	for (int k = 0; k < n; k++) {
		if (todo[k].kind != kind) {
			keep[nk++] = todo[k];
			continue;
		}
		if (code)
			todo[k].code = code;
		answer(i, &todo[k]);
		run(i);
	}
	for (int k = 0; k < nk; k++)
		t->held[t->nheld++] = keep[k];
}

static int deliver_one(void)
{
	struct pkt p = H->q[H->qh++];
	if (H->qh == H->qt)
		H->qh = H->qt = 0;
	struct tnode *t = &H->t[p.to];
	if (!t->up || H->cut[p.from][p.to] ||
	    (H->drop_to[p.to] & (1u << (p.b[7] - CFG_MSG_STATE))))
		return 0;
	struct wire_hdr h;
	assert_int_equal(wire_hdr_decode(p.b, p.len, &h), 0);
	assert_int_equal(h.cluster_id, 1);
	assert_int_equal(h.sender, p.from);
	assert_true(h.seq & CFGSYNC_SEQ_SPACE);
	assert_int_equal(WIRE_HDR_LEN + h.body_len, p.len);
	int rc = cfgsync_recv(t->cs, &h, p.b + WIRE_HDR_LEN, h.body_len, H->now, H->out);
	if (!H->allow_bad && rc != 0)
		fail_msg("node %d refused a packet of type %u from %d: %d", p.to,
			 p.b[7], p.from, rc);
	run(p.to);
	return 1;
}

/* Deliver every queued packet (and what they cause) at the current time. */
static void pump(void)
{
	for (int k = 0; H->qh < H->qt; k++) {
		assert_true(k < 200000);
		deliver_one();
	}
}

/* Let `ms` pass: timers fire, packets are delivered at once. */
static void advance(int ms)
{
	mono_t end = H->now + MS(ms);
	for (int k = 0;; k++) {
		assert_true(k < 200000);
		pump();
		mono_t next = end + 1;
		for (int i = 0; i < H->n; i++)
			if (H->t[i].up) {
				mono_t w = cfgsync_next_wake(H->t[i].cs);
				if (w < next)
					next = w;
			}
		if (next > end) {
			H->now = end;
			return;
		}
		if (next > H->now)
			H->now = next;
		for (int i = 0; i < H->n; i++)
			if (H->t[i].up && cfgsync_next_wake(H->t[i].cs) <= H->now) {
				assert_int_equal(cfgsync_tick(H->t[i].cs, H->now, H->out), 0);
				run(i);
			}
	}
}

static void boot(int i)
{
	struct tnode *t = &H->t[i];
	struct cfgsync_params p;
	cfgsync_params_default(&p);
	p.self = i;
	p.n_nodes = H->n;
	p.cluster_id = 1;
	p.incarnation = ++t->inc + 100 * (uint64_t)i;
	p.seed = 7 + (uint64_t)i;
	p.state_ms = 1000;
	p.retry_ms = 100;
	p.prepare_timeout_ms = 2000;
	p.propose_timeout_ms = 5000;
	if (!t->d.cblob)
		set_blob(&t->d.cblob, &t->d.clen, H->seed, H->seed_len);
	p.committed_gen = t->d.cgen;
	p.committed_blob = t->d.cblob;
	p.committed_len = t->d.clen;
	p.pending_gen = t->d.pgen;
	p.pending_ballot = t->d.pballot;
	p.pending_blob = t->d.pblob;
	p.pending_len = t->d.plen;
	p.gen_floor = t->d.floor;
	t->cs = cfgsync_new(&p, H->now);
	assert_non_null(t->cs);
	t->up = true;
	t->applied_gen = t->d.cgen; /* the driver applied it at boot */
	t->nheld = 0;
}

static void crash(int i)
{
	struct tnode *t = &H->t[i];
	cfgsync_free(t->cs);
	t->cs = NULL;
	t->up = false;
	t->nheld = 0; /* answers that never came */
}

/* Node i's view of group 0: coordinator, epoch, the nodes it sees. */
static void view(int i, int coord, uint64_t epoch, uint32_t alive)
{
	assert_int_equal(cfgsync_view(H->t[i].cs, coord, epoch, alive, H->now, H->out), 0);
	run(i);
}

/* Every node that is up sees every other node that is up. */
static void views_only(int coord, uint64_t epoch)
{
	uint32_t alive = 0;
	for (int i = 0; i < H->n; i++)
		if (H->t[i].up)
			alive |= 1u << i;
	for (int i = 0; i < H->n; i++)
		if (H->t[i].up)
			view(i, coord, epoch, alive);
}

static void views(int coord, uint64_t epoch)
{
	views_only(coord, epoch);
	pump();
}

static void clear_logs(void)
{
	for (int i = 0; i < H->n; i++)
		H->t[i].nlog = 0;
}

static int propose(int i, uint32_t req, const uint8_t *blob, size_t len,
		   unsigned flags, char *why)
{
	char w[CFGSYNC_WHY_LEN] = "";
	int rc = cfgsync_propose(H->t[i].cs, req, blob, len, flags, H->now, H->out,
				 why ? why : w, CFGSYNC_WHY_LEN);
	run(i);
	return rc;
}

/* --- what the driver saw ------------------------------------------------------ */

static int n_act(int i, enum cfgsync_act_type type)
{
	int n = 0;
	for (int k = 0; k < H->t[i].nlog; k++)
		n += H->t[i].log[k].type == type;
	return n;
}

/* Index of the first CFA_STORE of op/gen in node i's log, or -1. */
static int find_store(int i, enum cfgsync_store_op op, uint64_t gen)
{
	for (int k = 0; k < H->t[i].nlog; k++) {
		const struct rec *r = &H->t[i].log[k];
		if (r->type == CFA_STORE && r->op == op && r->gen == gen)
			return k;
	}
	return -1;
}

static int n_store(int i, enum cfgsync_store_op op, uint64_t gen)
{
	int n = 0;
	for (int k = 0; k < H->t[i].nlog; k++) {
		const struct rec *r = &H->t[i].log[k];
		n += r->type == CFA_STORE && r->op == op && r->gen == gen;
	}
	return n;
}

static int find_apply(int i, uint64_t gen)
{
	for (int k = 0; k < H->t[i].nlog; k++) {
		const struct rec *r = &H->t[i].log[k];
		if (r->type == CFA_APPLY && r->gen == gen)
			return k;
	}
	return -1;
}

static int n_sent(int i, uint8_t msg)
{
	int n = 0;
	for (int k = 0; k < H->t[i].nlog; k++) {
		const struct rec *r = &H->t[i].log[k];
		n += r->type == CFA_SEND && r->msg == msg;
	}
	return n;
}

static const struct rec *only_result(int i)
{
	const struct rec *res = NULL;
	for (int k = 0; k < H->t[i].nlog; k++)
		if (H->t[i].log[k].type == CFA_RESULT) {
			if (res)
				fail_msg("node %d: more than one CFA_RESULT", i);
			res = &H->t[i].log[k];
		}
	if (!res)
		fail_msg("node %d: no CFA_RESULT", i);
	return res;
}

static const struct rec *find_event(int i, const char *name, const char *kv_part)
{
	for (int k = 0; k < H->t[i].nlog; k++) {
		const struct rec *r = &H->t[i].log[k];
		if (r->type == CFA_EVENT && !strcmp(r->name, name) &&
		    (!kv_part || strstr(r->kv, kv_part)))
			return r;
	}
	return NULL;
}

static struct cfgsync_report rep;

/* Every node that is up reports every node in sync at gen/digest. */
static void assert_all_in_sync(uint64_t gen, const uint8_t *dg)
{
	for (int i = 0; i < H->n; i++) {
		struct tnode *t = &H->t[i];
		assert_true(t->up);
		assert_int_equal(t->d.cgen, gen);
		assert_int_equal(t->d.pgen, 0);
		assert_int_equal(t->applied_gen, gen);
		uint8_t d[CFGSYNC_DIGEST_LEN];
		dg_of(t->d.cblob, t->d.clen, d);
		assert_memory_equal(d, dg, CFGSYNC_DIGEST_LEN);
		uint64_t g;
		size_t len;
		const uint8_t *b = cfgsync_current(t->cs, &g, &len);
		assert_int_equal(g, gen);
		assert_int_equal(len, t->d.clen);
		assert_memory_equal(b, t->d.cblob, len);
		cfgsync_report(t->cs, &rep);
		assert_int_equal(rep.cluster_gen, gen);
		assert_int_equal(rep.n_nodes, H->n);
		assert_false(rep.busy);
		assert_int_equal(rep.rx_bad, 0);
		assert_true(rep.rx_ok > 0);
		assert_true(rep.tx > 0);
		for (int x = 0; x < H->n; x++) {
			const struct cfgsync_node_report *nr = &rep.nodes[x];
			if (!nr->in_sync)
				fail_msg("node %d reports node %d not in sync (gen %llu applied %llu)",
					 i, x, (unsigned long long)nr->committed_gen,
					 (unsigned long long)nr->applied_gen);
			assert_true(nr->known);
			assert_true(nr->alive);
			assert_true(nr->apply_ok);
			assert_int_equal(nr->committed_gen, gen);
			assert_int_equal(nr->applied_gen, gen);
			assert_int_equal(nr->pending_gen, 0);
			assert_memory_equal(nr->committed_digest, dg, CFGSYNC_DIGEST_LEN);
		}
	}
}

/* --- fixtures ------------------------------------------------------------------ */

static void h_new(int n)
{
	H = calloc(1, sizeof(*H));
	H->out = calloc(1, sizeof(*H->out));
	H->wire = calloc(WIRE_LOG, sizeof(*H->wire));
	H->n = n;
	H->now = MS(10000);
	doc(yaml_a, "", &H->seed, &H->seed_len);
}

static int teardown(void **state)
{
	(void)state;
	if (!H)
		return 0;
	for (int i = 0; i < NN; i++) {
		cfgsync_free(H->t[i].cs);
		free(H->t[i].d.cblob);
		free(H->t[i].d.pblob);
	}
	free(H->seed);
	free(H->wire);
	free(H->out);
	free(H);
	H = NULL;
	return 0;
}

/* n nodes booted from the same file; node 0 coordinator at epoch 1. The
 * coordinator makes the seed generation 1 everywhere (bootstrap). */
static void cluster(int n)
{
	h_new(n);
	for (int i = 0; i < n; i++)
		boot(i);
	views(0, 1);
	advance(10);
	uint8_t dg[CFGSYNC_DIGEST_LEN];
	dg_of(H->seed, H->seed_len, dg);
	assert_all_in_sync(1, dg);
	clear_logs();
}

static int setup2(void **state)
{
	(void)state;
	cluster(2);
	return 0;
}

static int setup3(void **state)
{
	(void)state;
	cluster(3);
	return 0;
}

/* ================================================================== tests */

/* --- the document ------------------------------------------------------------- */

static void test_doc_roundtrip(void **state)
{
	(void)state;
	uint8_t *b;
	size_t len;
	doc(yaml_b, ruleset_b, &b, &len);
	assert_int_equal(len, strlen(yaml_b) + strlen(ruleset_b) + 10);
	/* the layout cfgsync.h gives: u32 len, text, NUL, u32 len, ruleset, NUL */
	assert_int_equal(wire_get32(b), strlen(yaml_b));
	assert_memory_equal(b + 4, yaml_b, strlen(yaml_b));
	assert_int_equal(b[4 + strlen(yaml_b)], 0);
	assert_int_equal(wire_get32(b + 5 + strlen(yaml_b)), strlen(ruleset_b));
	assert_int_equal(b[len - 1], 0);
	struct cfgsync_text t;
	assert_int_equal(cfgsync_doc_decode(b, len, &t), 0);
	assert_int_equal(t.yaml_len, strlen(yaml_b));
	assert_string_equal(t.yaml, yaml_b); /* NUL-terminated in place */
	assert_int_equal(t.ruleset_len, strlen(ruleset_b));
	assert_string_equal(t.ruleset, ruleset_b);
	assert_ptr_equal(t.yaml, (const char *)b + 4);
	free(b);

	/* no ruleset: "" or NULL both encode as an empty ruleset */
	struct cfgsync_text in = { yaml_a, strlen(yaml_a), NULL, 0 };
	assert_int_equal(cfgsync_doc_encode(&in, &b, &len), 0);
	assert_int_equal(cfgsync_doc_decode(b, len, &t), 0);
	assert_string_equal(t.yaml, yaml_a);
	assert_int_equal(t.ruleset_len, 0);
	assert_string_equal(t.ruleset, "");
	uint8_t *b2;
	size_t len2;
	doc(yaml_a, "", &b2, &len2);
	assert_int_equal(len, len2);
	assert_memory_equal(b, b2, len);
	free(b2);
	free(b);

	/* empty YAML is a well-formed (if useless) document */
	struct cfgsync_text e = { "", 0, "", 0 };
	assert_int_equal(cfgsync_doc_encode(&e, &b, &len), 0);
	assert_int_equal(len, 10);
	assert_int_equal(cfgsync_doc_decode(b, len, &t), 0);
	assert_int_equal(t.yaml_len, 0);
	free(b);

	/* text with a NUL inside cannot be a document */
	static const char nul[] = "cluster:\0 x";
	struct cfgsync_text z = { nul, sizeof(nul) - 1, "", 0 };
	b = NULL;
	assert_int_equal(cfgsync_doc_encode(&z, &b, &len), TND_EINVAL);
	assert_null(b);
	struct cfgsync_text z2 = { yaml_a, strlen(yaml_a), nul, sizeof(nul) - 1 };
	assert_int_equal(cfgsync_doc_encode(&z2, &b, &len), TND_EINVAL);
	assert_null(b);
}

static void test_doc_decode_rejects(void **state)
{
	(void)state;
	uint8_t *b;
	size_t len;
	doc(yaml_b, ruleset_b, &b, &len);
	struct cfgsync_text t;
	/* every truncation, and one byte too many */
	for (size_t n = 0; n < len; n++)
		assert_int_equal(cfgsync_doc_decode(b, n, &t), TND_EINVAL);
	uint8_t *longer = malloc(len + 1);
	memcpy(longer, b, len);
	longer[len] = 0;
	assert_int_equal(cfgsync_doc_decode(longer, len + 1, &t), TND_EINVAL);
	free(longer);
	assert_int_equal(cfgsync_doc_decode(NULL, len, &t), TND_EINVAL);

	size_t yl = strlen(yaml_b);
	uint8_t *g = malloc(len);
	/* each length field off by one either way, or huge */
	static const uint32_t deltas[] = { 1, (uint32_t)-1, 0x80000000u, 0xffffffffu };
	for (size_t k = 0; k < sizeof(deltas) / sizeof(deltas[0]); k++) {
		memcpy(g, b, len);
		wire_put32(g, (uint32_t)yl + deltas[k]);
		assert_int_equal(cfgsync_doc_decode(g, len, &t), TND_EINVAL);
		memcpy(g, b, len);
		wire_put32(g + 5 + yl, (uint32_t)strlen(ruleset_b) + deltas[k]);
		assert_int_equal(cfgsync_doc_decode(g, len, &t), TND_EINVAL);
	}
	/* a terminator that is not NUL, a NUL inside either text */
	memcpy(g, b, len);
	g[4 + yl] = '\n';
	assert_int_equal(cfgsync_doc_decode(g, len, &t), TND_EINVAL);
	memcpy(g, b, len);
	g[len - 1] = 'x';
	assert_int_equal(cfgsync_doc_decode(g, len, &t), TND_EINVAL);
	memcpy(g, b, len);
	g[4 + 10] = 0;
	assert_int_equal(cfgsync_doc_decode(g, len, &t), TND_EINVAL);
	memcpy(g, b, len);
	g[9 + yl + 3] = 0;
	assert_int_equal(cfgsync_doc_decode(g, len, &t), TND_EINVAL);
	/* random garbage of every small size is refused, never read past */
	uint64_t x = 0x9E3779B97F4A7C15ULL;
	for (int round = 0; round < 2000; round++) {
		size_t n = (size_t)(round % 64);
		uint8_t *r = malloc(n ? n : 1);
		for (size_t k = 0; k < n; k++) {
			x ^= x << 13; x ^= x >> 7; x ^= x << 17;
			r[k] = (uint8_t)x;
		}
		if (n >= 10 && round % 3 == 0) { /* plausible lengths, bad bytes */
			wire_put32(r, (uint32_t)(n - 10) / 2);
			r[4 + (n - 10) / 2] = 0;
		}
		int rc = cfgsync_doc_decode(r, n, &t);
		if (rc == 0) { /* only a well-formed document may decode */
			assert_int_equal(t.yaml_len + t.ruleset_len + 10, n);
			assert_int_equal(strlen(t.yaml), t.yaml_len);
			assert_int_equal(strlen(t.ruleset), t.ruleset_len);
		} else {
			assert_int_equal(rc, TND_EINVAL);
		}
		free(r);
	}
	free(g);
	free(b);
}

static void test_doc_max(void **state)
{
	(void)state;
	size_t yl = CFGSYNC_DOC_MAX - 10;
	char *y = malloc(yl + 2);
	memset(y, 'y', yl + 1);
	y[yl + 1] = 0;
	uint8_t *b = NULL;
	size_t len = 0;
	/* exactly CFGSYNC_DOC_MAX bytes encoded: accepted */
	struct cfgsync_text t = { y, yl, "", 0 };
	assert_int_equal(cfgsync_doc_encode(&t, &b, &len), 0);
	assert_int_equal(len, CFGSYNC_DOC_MAX);
	struct cfgsync_text d;
	assert_int_equal(cfgsync_doc_decode(b, len, &d), 0);
	assert_int_equal(d.yaml_len, yl);
	free(b);
	/* one byte more, in either text: refused with ENOSPC */
	b = NULL;
	t.yaml_len = yl + 1;
	assert_int_equal(cfgsync_doc_encode(&t, &b, &len), TND_ENOSPC);
	assert_null(b);
	struct cfgsync_text t2 = { y, yl - 5, "table inet x {}", 6 };
	assert_int_equal(cfgsync_doc_encode(&t2, &b, &len), TND_ENOSPC);
	assert_null(b);
	/* lengths that would wrap around are refused too */
	struct cfgsync_text t3 = { y, 4, y, SIZE_MAX - 2 };
	assert_int_equal(cfgsync_doc_encode(&t3, &b, &len), TND_ENOSPC);
	assert_null(b);
	/* a well-formed blob above the limit does not decode */
	size_t big = CFGSYNC_DOC_MAX + 1;
	uint8_t *o = malloc(big);
	memset(o, 'y', big);
	wire_put32(o, (uint32_t)(big - 10));
	o[4 + big - 10] = 0;
	wire_put32(o + 5 + big - 10, 0);
	o[big - 1] = 0;
	assert_int_equal(cfgsync_doc_decode(o, big, &d), TND_EINVAL);
	assert_int_equal(cfgsync_doc_decode(o, big - 1, &d), TND_EINVAL);
	free(o);
	free(y);
}

static void test_digest_stable(void **state)
{
	(void)state;
	/* BLAKE2b-256 known answers (RFC 7693 parameters, 32-byte output) */
	static const uint8_t empty[32] = {
		0x0e, 0x57, 0x51, 0xc0, 0x26, 0xe5, 0x43, 0xb2, 0xe8, 0xab, 0x2e,
		0xb0, 0x60, 0x99, 0xda, 0xa1, 0xd1, 0xe5, 0xdf, 0x47, 0x77, 0x8f,
		0x77, 0x87, 0xfa, 0xab, 0x45, 0xcd, 0xf1, 0x2f, 0xe3, 0xa8 };
	static const uint8_t abc[32] = {
		0xbd, 0xdd, 0x81, 0x3c, 0x63, 0x42, 0x39, 0x72, 0x31, 0x71, 0xef,
		0x3f, 0xee, 0x98, 0x57, 0x9b, 0x94, 0x96, 0x4e, 0x3b, 0xb1, 0xcb,
		0x3e, 0x42, 0x72, 0x62, 0xc8, 0xc0, 0x68, 0xd5, 0x23, 0x19 };
	uint8_t d[CFGSYNC_DIGEST_LEN], d2[CFGSYNC_DIGEST_LEN];
	cfgsync_digest((const uint8_t *)"", 0, d);
	assert_memory_equal(d, empty, 32);
	cfgsync_digest((const uint8_t *)"abc", 3, d);
	assert_memory_equal(d, abc, 32);

	/* the same document encodes to the same bytes and the same name */
	uint8_t *a1, *a2, *bb;
	size_t l1, l2, lb;
	doc(yaml_a, "", &a1, &l1);
	doc(yaml_a, "", &a2, &l2);
	doc(yaml_b, "", &bb, &lb);
	cfgsync_digest(a1, l1, d);
	cfgsync_digest(a2, l2, d2);
	assert_memory_equal(d, d2, sizeof(d));
	/* any change (one bit, the text, the ruleset) changes the name */
	a2[10] ^= 1;
	cfgsync_digest(a2, l2, d2);
	assert_memory_not_equal(d, d2, sizeof(d));
	cfgsync_digest(bb, lb, d2);
	assert_memory_not_equal(d, d2, sizeof(d));
	free(a2);
	doc(yaml_a, "table inet t {}", &a2, &l2);
	cfgsync_digest(a2, l2, d2);
	assert_memory_not_equal(d, d2, sizeof(d));
	free(a1);
	free(a2);
	free(bb);
}

/* --- settings that cannot change in place --------------------------------------- */

static struct tnd_conf c_old, c_new;
static struct conf_diags cdiags;

static void mk_conf(struct tnd_conf *c, const char *cluster, const char *nodes,
		    const char *groups)
{
	char y[4096];
	snprintf(y, sizeof(y), "cluster: %s\nnodes:\n%sgroups:\n%s", cluster, nodes, groups);
	if (conf_parse("t.yaml", y, strlen(y), c, &cdiags) != 0) {
		for (int k = 0; k < cdiags.n; k++)
			print_message("  diag: %s\n", cdiags.msg[k]);
		fail_msg("configuration does not parse:\n%s", y);
	}
}

#define CL_BASE "{name: edge1, id: 1, key_file: /etc/tandem/cluster.key, port: 7400}"
#define NODES3                                                   \
	"  - {name: fw-a, links: [203.0.113.1, 198.51.100.1]}\n" \
	"  - {name: fw-b, links: [203.0.113.2, 198.51.100.2]}\n" \
	"  - {name: fw-c, links: [203.0.113.3, 198.51.100.3]}\n"
#define GROUPS_A                                                  \
	"  - {id: 0, priority: {fw-a: 200, fw-b: 100, fw-c: 50}}\n" \
	"  - id: 1\n"                                             \
	"    priority: {fw-a: 200, fw-b: 100}\n"                    \
	"    vips: [{address: 192.0.2.1/24, interface: lan0}]\n"

/* The change from the base configuration to (cluster, nodes, groups). */
static int change(const char *cluster, const char *nodes, const char *groups,
		  const char *self, char *why)
{
	mk_conf(&c_old, CL_BASE, NODES3, GROUPS_A);
	mk_conf(&c_new, cluster, nodes, groups);
	strcpy(why, "untouched");
	return cfgsync_check_change(&c_old, &c_new, self, why, CFGSYNC_WHY_LEN);
}

/* Groups that name only fw-a and fw-b, for node lists without fw-c. */
#define GROUPS_AB                                           \
	"  - {id: 0, priority: {fw-a: 200, fw-b: 100}}\n" \
	"  - id: 1\n"                                     \
	"    priority: {fw-a: 200, fw-b: 100}\n"            \
	"    vips: [{address: 192.0.2.1/24, interface: lan0}]\n"

static void expect_refused_g(const char *cluster, const char *nodes,
			     const char *groups, const char *want)
{
	char why[CFGSYNC_WHY_LEN];
	assert_int_equal(change(cluster, nodes, groups, "fw-a", why), TND_EREFUSED);
	assert_string_equal(why, want);
	/* the same from any node, and without a node name */
	assert_int_equal(change(cluster, nodes, groups, "fw-b", why), TND_EREFUSED);
	assert_string_equal(why, want);
	assert_int_equal(change(cluster, nodes, groups, NULL, why), TND_EREFUSED);
	assert_string_equal(why, want);
}

static void expect_refused(const char *cluster, const char *nodes, const char *want)
{
	expect_refused_g(cluster, nodes, GROUPS_A, want);
}

static void test_check_change_refused(void **state)
{
	(void)state;
	expect_refused("{name: edge1, id: 2, key_file: /etc/tandem/cluster.key, port: 7400}", NODES3,
		       "cluster.id cannot change in place (1 -> 2): every node must restart with the new id");
	expect_refused("{name: edge2, id: 1, key_file: /etc/tandem/cluster.key, port: 7400}", NODES3,
		       "cluster.name cannot change in place (edge1 -> edge2)");
	expect_refused("{name: edge1, id: 1, key_file: /etc/tandem/cluster.key, port: 7401}", NODES3,
		       "cluster.port cannot change in place (7400 -> 7401): the control sockets are bound to it");
	/* the default port is the same port */
	char why[CFGSYNC_WHY_LEN];
	assert_int_equal(change("{name: edge1, id: 1, key_file: /etc/tandem/cluster.key}",
				NODES3, GROUPS_A, "fw-a", why), 0);
	expect_refused("{name: edge1, id: 1, key_file: /etc/tandem/other.key, port: 7400}", NODES3,
		       "cluster.key_file cannot change in place: the traffic key is derived at start");
	/* a node added */
	expect_refused(CL_BASE, NODES3 "  - {name: fw-d, links: [203.0.113.4, 198.51.100.4]}\n",
		       "the node list cannot change in place (3 -> 4 nodes): nodes are numbered by their position");
	/* renamed, reordered */
	expect_refused_g(CL_BASE,
			 "  - {name: fw-a, links: [203.0.113.1, 198.51.100.1]}\n"
			 "  - {name: fw-b, links: [203.0.113.2, 198.51.100.2]}\n"
			 "  - {name: fw-d, links: [203.0.113.3, 198.51.100.3]}\n",
			 GROUPS_AB,
			 "the node list cannot change in place (node 2: fw-c -> fw-d)");
	expect_refused(CL_BASE,
		       "  - {name: fw-a, links: [203.0.113.1, 198.51.100.1]}\n"
		       "  - {name: fw-c, links: [203.0.113.3, 198.51.100.3]}\n"
		       "  - {name: fw-b, links: [203.0.113.2, 198.51.100.2]}\n",
		       "the node list cannot change in place (node 1: fw-b -> fw-c)");
	/* a link address, the number of links */
	expect_refused(CL_BASE,
		       "  - {name: fw-a, links: [203.0.113.1, 198.51.100.1]}\n"
		       "  - {name: fw-b, links: [203.0.113.2, 198.51.100.9]}\n"
		       "  - {name: fw-c, links: [203.0.113.3, 198.51.100.3]}\n",
		       "the links of node fw-b cannot change in place: its sockets are bound to them");
	expect_refused(CL_BASE,
		       "  - {name: fw-a, links: [203.0.113.1]}\n"
		       "  - {name: fw-b, links: [203.0.113.2]}\n"
		       "  - {name: fw-c, links: [203.0.113.3]}\n",
		       "the links of node fw-a cannot change in place: its sockets are bound to them");
}

static void test_check_change_self_removed(void **state)
{
	(void)state;
	static const char without_a[] =
		"  - {name: fw-b, links: [203.0.113.2, 198.51.100.2]}\n"
		"  - {name: fw-c, links: [203.0.113.3, 198.51.100.3]}\n";
	static const char groups_bc[] = "  - {id: 0, priority: {fw-b: 100, fw-c: 50}}\n";
	char why[CFGSYNC_WHY_LEN];
	assert_int_equal(change(CL_BASE, without_a, groups_bc, "fw-a", why), TND_EREFUSED);
	assert_string_equal(why, "the change removes node fw-a, the node it was applied on; remove a node from another node");
	/* the specific sentence wins over the others (here: the id too) */
	assert_int_equal(change("{name: edge1, id: 9, key_file: /etc/tandem/cluster.key}",
				without_a, groups_bc, "fw-a", why), TND_EREFUSED);
	assert_string_equal(why, "the change removes node fw-a, the node it was applied on; remove a node from another node");
	/* from another node it is a node-list change like any other */
	assert_int_equal(change(CL_BASE, without_a, groups_bc, "fw-b", why), TND_EREFUSED);
	assert_string_equal(why, "the node list cannot change in place (3 -> 2 nodes): nodes are numbered by their position");
	/* a name this configuration does not know is not "self" */
	assert_int_equal(change(CL_BASE, without_a, groups_bc, "fw-x", why), TND_EREFUSED);
	assert_string_equal(why, "the node list cannot change in place (3 -> 2 nodes): nodes are numbered by their position");
	/* NULL why is allowed */
	mk_conf(&c_new, CL_BASE, without_a, groups_bc);
	assert_int_equal(cfgsync_check_change(&c_old, &c_new, "fw-a", NULL, 0), TND_EREFUSED);
}

static void test_check_change_accepted(void **state)
{
	(void)state;
	char why[CFGSYNC_WHY_LEN];
	/* the same configuration */
	assert_int_equal(change(CL_BASE, NODES3, GROUPS_A, "fw-a", why), 0);
	assert_string_equal(why, "untouched");
	static const char *const groups[] = {
		/* priorities, including self to 0 */
		"  - {id: 0, priority: {fw-a: 0, fw-b: 100, fw-c: 250}}\n"
		"  - id: 1\n"
		"    priority: {fw-a: 10, fw-b: 100}\n"
		"    vips: [{address: 192.0.2.1/24, interface: lan0}]\n",
		/* a VIP added, one moved to another interface and prefix */
		"  - {id: 0, priority: {fw-a: 200, fw-b: 100, fw-c: 50}}\n"
		"  - id: 1\n"
		"    priority: {fw-a: 200, fw-b: 100}\n"
		"    vips: [{address: 192.0.2.1/25, interface: lan1},\n"
		"           {address: 198.51.100.10/24, interface: wan0}]\n",
		/* a group added with preemption, monitors and hooks */
		GROUPS_A
		"  - id: 2\n"
		"    priority: {fw-c: 200, fw-b: 100}\n"
		"    preempt: true\n"
		"    preempt_delay_s: 30\n"
		"    vips: [{address: 203.0.113.100/24, interface: dmz0}]\n"
		"    monitor_interfaces: [dmz0]\n"
		"    hooks: {primary: /etc/tandem/up, secondary: /etc/tandem/down}\n",
		/* a group removed (group 0 stays implied) */
		"  - {id: 0, priority: {fw-a: 200, fw-b: 100, fw-c: 50}}\n",
	};
	for (size_t k = 0; k < sizeof(groups) / sizeof(groups[0]); k++) {
		strcpy(why, "untouched");
		if (change(CL_BASE, NODES3, groups[k], "fw-a", why) != 0)
			fail_msg("change %zu refused: %s", k, why);
		assert_string_equal(why, "untouched");
		assert_int_equal(cfgsync_check_change(&c_old, &c_new, "fw-c", why,
						      sizeof(why)), 0);
	}
	/* timers are not bound at start either */
	assert_int_equal(change("{name: edge1, id: 1, key_file: /etc/tandem/cluster.key, port: 7400, heartbeat_ms: 200, dead_after: 5}",
				NODES3, GROUPS_A, "fw-a", why), 0);
	assert_int_equal(c_new.heartbeat_ms, 200);
}

/* --- commits ------------------------------------------------------------------- */

static void test_bootstrap(void **state)
{
	(void)state;
	/* cluster() checked the end state; check the steps */
	teardown(NULL);
	h_new(3);
	/* node 2 booted with another file */
	struct disk *d2 = &H->t[2].d;
	doc(yaml_c, "", &d2->cblob, &d2->clen);
	uint8_t dc[CFGSYNC_DIGEST_LEN];
	dg_of(d2->cblob, d2->clen, dc);
	for (int i = 0; i < 3; i++)
		boot(i);
	uint8_t dg[CFGSYNC_DIGEST_LEN];
	dg_of(H->seed, H->seed_len, dg);
	/* nothing happens without a coordinator */
	views(TND_NO_NODE, 0);
	advance(3000);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(n_act(i, CFA_STORE), 0);
		assert_int_equal(n_act(i, CFA_APPLY), 0);
		cfgsync_report(H->t[i].cs, &rep);
		assert_int_equal(rep.cluster_gen, 0);
		assert_int_equal(rep.coordinator, TND_NO_NODE);
		assert_false(rep.settled);
		assert_true(rep.nodes[i].in_sync); /* the seed, applied at boot */
		assert_int_equal(rep.nodes[i].committed_gen, 0);
		/* every node knows the others' seeds are not its own */
		for (int x = 0; x < 3; x++)
			assert_memory_equal(rep.nodes[x].committed_digest,
					    x == 2 ? dc : dg, sizeof(dg));
	}
	clear_logs();
	views(0, 1);
	/* the coordinator stores the seed as pending gen 1 under ballot 1,
	 * then committed after every peer acked, and applies it */
	int p0 = find_store(0, CFS_PENDING, 1), c0 = find_store(0, CFS_COMMIT, 1);
	assert_true(p0 >= 0 && c0 > p0);
	assert_int_equal(H->t[0].log[p0].ballot, 1);
	assert_memory_equal(H->t[0].log[p0].dg, dg, sizeof(dg));
	assert_non_null(find_event(0, "config.prepare", "kind=bootstrap"));
	for (int i = 0; i < 3; i++) {
		int p = find_store(i, CFS_PENDING, 1), c = find_store(i, CFS_COMMIT, 1);
		int a = find_apply(i, 1);
		assert_true(p >= 0 && c > p && a > c);
		assert_int_equal(n_store(i, CFS_COMMIT, 1), 1);
		assert_int_equal(n_act(i, CFA_APPLY), 1);
		assert_int_equal(n_act(i, CFA_RESULT), 0);
		assert_int_equal(n_act(i, CFA_VALIDATE), 0);
		assert_non_null(find_event(i, "config.committed", "gen=1 "));
	}
	/* node 1 held the same file, node 2 fetched the coordinator's */
	assert_int_equal(n_sent(1, CFG_MSG_FETCH), 0);
	assert_int_equal(n_sent(2, CFG_MSG_FETCH), 1);
	assert_int_equal(n_sent(0, CFG_MSG_DATA), 1);
	assert_int_equal(n_sent(0, CFG_MSG_PREPARE), 2);
	assert_int_equal(n_sent(0, CFG_MSG_COMMIT), 2);
	assert_all_in_sync(1, dg);
	cfgsync_report(H->t[0].cs, &rep);
	assert_int_equal(rep.coordinator, 0);
	assert_true(rep.settled);
}

/* A proposal from secondary `from` with `n` nodes, all of them live. */
static void commit_from(int from, int n)
{
	uint8_t *b;
	size_t len;
	uint8_t dg[CFGSYNC_DIGEST_LEN];
	doc(yaml_b, ruleset_b, &b, &len);
	dg_of(b, len, dg);
	char why[CFGSYNC_WHY_LEN] = "";
	assert_int_equal(propose(from, 7, b, len, 0, why), 0);
	free(b); /* the core keeps its own copy */
	if (from != 0)
		assert_int_equal(n_sent(from, CFG_MSG_PROPOSE), 1);
	pump();
	/* the coordinator validated it once */
	assert_int_equal(n_act(0, CFA_VALIDATE), 1);
	for (int i = 1; i < n; i++)
		assert_int_equal(n_act(i, CFA_VALIDATE), 0);
	/* gen 2 (1 + the highest heard of), ballot = epoch 1 */
	for (int i = 0; i < n; i++) {
		int p = find_store(i, CFS_PENDING, 2), c = find_store(i, CFS_COMMIT, 2);
		int a = find_apply(i, 2);
		if (p < 0 || c < p || a < c)
			fail_msg("node %d: pending %d commit %d apply %d", i, p, c, a);
		assert_int_equal(H->t[i].log[p].ballot, 1);
		assert_memory_equal(H->t[i].log[p].dg, dg, sizeof(dg));
		assert_memory_equal(H->t[i].log[c].dg, dg, sizeof(dg));
		assert_memory_equal(H->t[i].log[a].dg, dg, sizeof(dg));
		assert_int_equal(n_act(i, CFA_STORE), 2);
		assert_int_equal(n_act(i, CFA_APPLY), 1);
	}
	/* two phases: every node stores it pending before the coordinator
	 * stores it committed, and every other node commits only after */
	int c0 = find_store(0, CFS_COMMIT, 2);
	for (int i = 1; i < n; i++) {
		assert_true(H->t[i].log[find_store(i, CFS_PENDING, 2)].at < H->t[0].log[c0].at);
		assert_true(H->t[i].log[find_store(i, CFS_COMMIT, 2)].at > H->t[0].log[c0].at);
	}
	assert_int_equal(n_sent(0, CFG_MSG_PREPARE), n - 1);
	assert_int_equal(n_sent(0, CFG_MSG_COMMIT), n - 1);
	for (int i = 1; i < n; i++)
		assert_int_equal(n_sent(i, CFG_MSG_ACK), 1);
	/* the proposer, and only it, hears the outcome */
	for (int i = 0; i < n; i++) {
		if (i != from) {
			assert_int_equal(n_act(i, CFA_RESULT), 0);
			continue;
		}
		const struct rec *r = only_result(i);
		assert_int_equal(r->req, 7);
		assert_int_equal(r->code, 0);
		assert_string_equal(r->why, "committed as generation 2");
	}
	for (int i = 0; i < n; i++)
		assert_non_null(find_event(i, "config.committed", "gen=2 "));
	assert_all_in_sync(2, dg);
	/* and it stays so: periodic states change nothing */
	clear_logs();
	advance(5000);
	for (int i = 0; i < n; i++) {
		assert_int_equal(n_act(i, CFA_STORE), 0);
		assert_int_equal(n_act(i, CFA_APPLY), 0);
		assert_true(n_sent(i, CFG_MSG_STATE) >= 4 * (n - 1));
	}
	assert_all_in_sync(2, dg);
}

static void test_commit_3_from_secondary(void **state)
{
	(void)state;
	commit_from(2, 3);
}

static void test_commit_2_from_secondary(void **state)
{
	(void)state;
	commit_from(1, 2);
}

static void test_commit_from_coordinator(void **state)
{
	(void)state;
	commit_from(0, 3);
	/* proposing the current document again commits nothing */
	clear_logs();
	uint8_t *b;
	size_t len;
	doc(yaml_b, ruleset_b, &b, &len);
	assert_int_equal(propose(0, 8, b, len, 0, NULL), 0);
	pump();
	const struct rec *r = only_result(0);
	assert_int_equal(r->req, 8);
	assert_int_equal(r->code, 0);
	assert_string_equal(r->why, "no change: this is the current configuration (generation 2)");
	for (int i = 0; i < 3; i++)
		assert_int_equal(n_act(i, CFA_STORE), 0);
	free(b);
}

/* Proposals while another is in flight: refused with a sentence while
 * the coordinator is still validating one; queued behind one that is
 * being prepared, and then given the next generation. */
static void test_commit_sequence(void **state)
{
	(void)state;
	uint8_t *b, *c;
	size_t lb, lc;
	uint8_t dc[CFGSYNC_DIGEST_LEN];
	doc(yaml_b, ruleset_b, &b, &lb);
	doc(yaml_c, "", &c, &lc);
	dg_of(c, lc, dc);
	H->t[2].hold_store[CFS_PENDING] = true;
	assert_int_equal(propose(1, 1, b, lb, 0, NULL), 0);
	char why[CFGSYNC_WHY_LEN];
	assert_int_equal(propose(1, 2, c, lc, 0, why), TND_EREFUSED);
	assert_string_equal(why, "another change from this node is in progress");
	/* node 0 hears node 1's first, then node 2's */
	assert_int_equal(propose(2, 1, c, lc, 0, NULL), 0);
	pump();
	const struct rec *r = only_result(2);
	assert_int_equal(r->req, 1);
	assert_int_equal(r->code, TND_EREFUSED);
	assert_string_equal(r->why, "another change is in progress");
	/* gen 2 is being prepared (node 2 is still writing) */
	cfgsync_report(H->t[0].cs, &rep);
	assert_true(rep.busy);
	assert_int_equal(rep.busy_gen, 2);
	clear_logs();
	assert_int_equal(propose(2, 2, c, lc, 0, NULL), 0);
	pump();
	assert_int_equal(n_act(0, CFA_VALIDATE), 1); /* validated meanwhile */
	assert_int_equal(n_act(2, CFA_RESULT), 0);
	H->t[2].hold_store[CFS_PENDING] = false;
	release(2, 0, 0);
	pump();
	r = only_result(1);
	assert_int_equal(r->req, 1);
	assert_string_equal(r->why, "committed as generation 2");
	r = only_result(2);
	assert_int_equal(r->req, 2);
	assert_string_equal(r->why, "committed as generation 3");
	assert_all_in_sync(3, dc);
	free(b);
	free(c);
}

static void test_validation_refused(void **state)
{
	(void)state;
	uint8_t dg1[CFGSYNC_DIGEST_LEN];
	dg_of(H->seed, H->seed_len, dg1);
	H->t[0].validate_code = TND_EINVAL;
	snprintf(H->t[0].validate_why, CFGSYNC_WHY_LEN,
		 "tandem.yaml:7:5: priority must be 0..255");
	uint8_t *b;
	size_t len;
	uint8_t dg[CFGSYNC_DIGEST_LEN];
	doc(yaml_b, "", &b, &len);
	dg_of(b, len, dg);
	assert_int_equal(propose(1, 41, b, len, 0, NULL), 0);
	pump();
	/* validated once at the coordinator, with that document */
	assert_int_equal(n_act(0, CFA_VALIDATE), 1);
	for (int k = 0; k < H->t[0].nlog; k++)
		if (H->t[0].log[k].type == CFA_VALIDATE)
			assert_memory_equal(H->t[0].log[k].dg, dg, sizeof(dg));
	const struct rec *r = only_result(1);
	assert_int_equal(r->req, 41);
	assert_int_equal(r->code, TND_EINVAL);
	assert_string_equal(r->why, "tandem.yaml:7:5: priority must be 0..255");
	assert_non_null(find_event(0, "config.rejected", "from=1"));
	/* nothing stored, prepared or applied anywhere */
	for (int i = 0; i < 3; i++) {
		assert_int_equal(n_act(i, CFA_STORE), 0);
		assert_int_equal(n_act(i, CFA_APPLY), 0);
		assert_int_equal(n_sent(i, CFG_MSG_PREPARE), 0);
		assert_int_equal(H->t[i].d.pgen, 0);
		assert_int_equal(H->t[i].d.floor, 1);
	}
	assert_int_equal(n_act(2, CFA_RESULT), 0);
	assert_all_in_sync(1, dg1);
	/* the coordinator's own proposal: refused at once the same way */
	clear_logs();
	assert_int_equal(propose(0, 42, b, len, 0, NULL), 0);
	pump();
	r = only_result(0);
	assert_int_equal(r->req, 42);
	assert_int_equal(r->code, TND_EINVAL);
	assert_string_equal(r->why, "tandem.yaml:7:5: priority must be 0..255");
	/* a validator that gives no sentence still yields one */
	clear_logs();
	H->t[0].validate_why[0] = 0;
	H->t[0].validate_code = TND_EREFUSED;
	assert_int_equal(propose(2, 43, b, len, 0, NULL), 0);
	pump();
	r = only_result(2);
	assert_int_equal(r->code, TND_EREFUSED);
	assert_string_equal(r->why, "invalid configuration");
	for (int i = 0; i < 3; i++)
		assert_int_equal(n_act(i, CFA_STORE), 0);
	/* and a valid proposal afterwards still gets the next generation */
	clear_logs();
	H->t[0].validate_code = 0;
	assert_int_equal(propose(2, 44, b, len, 0, NULL), 0);
	pump();
	assert_string_equal(only_result(2)->why, "committed as generation 2");
	assert_all_in_sync(2, dg);
	free(b);
}

static void test_store_failure_aborts(void **state)
{
	(void)state;
	uint8_t dg1[CFGSYNC_DIGEST_LEN];
	dg_of(H->seed, H->seed_len, dg1);
	H->t[2].store_code[CFS_PENDING] = TND_ENOSPC;
	uint8_t *b;
	size_t len;
	uint8_t dg[CFGSYNC_DIGEST_LEN];
	doc(yaml_b, ruleset_b, &b, &len);
	dg_of(b, len, dg);
	assert_int_equal(propose(1, 5, b, len, 0, NULL), 0);
	pump();
	/* node 2 tried and failed; it said so */
	assert_int_equal(n_store(2, CFS_PENDING, 2), 1);
	assert_non_null(find_event(2, "config.store_failed", "op=pending gen=2"));
	assert_int_equal(n_sent(2, CFG_MSG_ACK), 1);
	/* the coordinator aborted: dropped its pending and told the others */
	assert_non_null(find_event(0, "config.abort", "gen=2"));
	int p0 = find_store(0, CFS_PENDING, 2), d0 = find_store(0, CFS_DROP, 2);
	assert_true(p0 >= 0 && d0 > p0);
	assert_true(n_sent(0, CFG_MSG_ABORT) >= 2);
	assert_int_equal(n_store(0, CFS_COMMIT, 2), 0);
	assert_int_equal(n_sent(0, CFG_MSG_COMMIT), 0);
	/* node 1 had stored it pending and dropped it */
	int p1 = find_store(1, CFS_PENDING, 2), d1 = find_store(1, CFS_DROP, 2);
	assert_true(p1 >= 0 && d1 > p1);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(n_act(i, CFA_APPLY), 0);
		assert_int_equal(n_store(i, CFS_COMMIT, 2), 0);
		assert_int_equal(H->t[i].d.pgen, 0);
		assert_int_equal(H->t[i].d.cgen, 1);
	}
	const struct rec *r = only_result(1);
	assert_int_equal(r->req, 5);
	assert_int_equal(r->code, TND_ENOSPC);
	assert_non_null(strstr(r->why, "node 2"));
	assert_non_null(strstr(r->why, tnd_strerror(TND_ENOSPC)));
	assert_all_in_sync(1, dg1);
	/* nothing is retried behind the proposer's back */
	clear_logs();
	advance(6000);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(n_act(i, CFA_STORE), 0);
		assert_int_equal(n_act(i, CFA_RESULT), 0);
	}
	/* the disk is fine again: the next proposal gets generation 3, as
	 * generation 2 was used (aborted) */
	clear_logs();
	H->t[2].store_code[CFS_PENDING] = 0;
	assert_int_equal(propose(1, 6, b, len, 0, NULL), 0);
	pump();
	assert_string_equal(only_result(1)->why, "committed as generation 3");
	assert_all_in_sync(3, dg);
	free(b);
}

/* The coordinator itself cannot store its pending copy. */
static void test_coordinator_store_failure(void **state)
{
	(void)state;
	H->t[0].store_code[CFS_PENDING] = TND_EIO;
	uint8_t *b;
	size_t len;
	doc(yaml_b, "", &b, &len);
	assert_int_equal(propose(2, 9, b, len, 0, NULL), 0);
	pump();
	const struct rec *r = only_result(2);
	assert_int_equal(r->code, TND_EIO);
	char want[CFGSYNC_WHY_LEN];
	snprintf(want, sizeof(want), "the coordinator could not store it: %s",
		 tnd_strerror(TND_EIO));
	assert_string_equal(r->why, want);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(n_sent(i, CFG_MSG_PREPARE), 0);
		assert_int_equal(H->t[i].d.cgen, 1);
		assert_int_equal(H->t[i].d.pgen, 0);
	}
	free(b);
}

static void test_prepare_timeout(void **state)
{
	(void)state;
	/* node 2 is live in every view but its packets are lost */
	H->cut[2][0] = true;
	uint8_t *b;
	size_t len;
	doc(yaml_b, "", &b, &len);
	assert_int_equal(propose(1, 3, b, len, 0, NULL), 0);
	advance(1500);
	assert_int_equal(n_act(1, CFA_RESULT), 0);
	/* PREPARE is resent to node 2 every retry_ms */
	assert_true(n_sent(0, CFG_MSG_PREPARE) >= 10);
	cfgsync_report(H->t[0].cs, &rep);
	assert_true(rep.busy);
	assert_int_equal(rep.busy_gen, 2);
	advance(600);
	const struct rec *r = only_result(1);
	assert_int_equal(r->code, TND_ETIMEDOUT);
	assert_string_equal(r->why, "prepare timed out waiting for node 2");
	assert_true(find_store(0, CFS_DROP, 2) >= 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(n_store(i, CFS_COMMIT, 2), 0);
		assert_int_equal(H->t[i].d.cgen, 1);
	}
	cfgsync_report(H->t[0].cs, &rep);
	assert_false(rep.busy);
	/* node 2 comes back: it drops what it held pending */
	H->cut[2][0] = false;
	advance(3000);
	for (int i = 0; i < 3; i++)
		assert_int_equal(H->t[i].d.pgen, 0);
	uint8_t dg1[CFGSYNC_DIGEST_LEN];
	dg_of(H->seed, H->seed_len, dg1);
	assert_all_in_sync(1, dg1);
	free(b);
}

/* --- failures of the coordinator -------------------------------------------------- */

/* The coordinator dies after every node stored the proposal pending and
 * before its own commit reached the disk. */
static void crash_between_prepare_and_commit(int proposer, uint8_t dg[CFGSYNC_DIGEST_LEN])
{
	H->t[0].hold_store[CFS_COMMIT] = true;
	uint8_t *b;
	size_t len;
	doc(yaml_c, ruleset_b, &b, &len);
	dg_of(b, len, dg);
	assert_int_equal(propose(proposer, 11, b, len, 0, NULL), 0);
	free(b);
	pump();
	for (int i = 0; i < 3; i++) {
		assert_int_equal(H->t[i].d.pgen, 2);
		assert_int_equal(H->t[i].d.pballot, 1);
		assert_int_equal(H->t[i].d.cgen, 1);
	}
	assert_int_equal(n_store(0, CFS_COMMIT, 2), 1); /* asked, never done */
	assert_int_equal(n_sent(0, CFG_MSG_COMMIT), 0);
	crash(0);
	H->t[0].hold_store[CFS_COMMIT] = false;
	clear_logs();
	/* group 0 elects node 1 with a higher epoch */
	views(1, 2);
	advance(10);
}

static void test_coordinator_crash_roll_forward(void **state)
{
	(void)state;
	uint8_t dg[CFGSYNC_DIGEST_LEN];
	crash_between_prepare_and_commit(2, dg);
	/* node 1 rolls the pending proposal forward under its ballot */
	assert_non_null(find_event(1, "config.prepare", "gen=2"));
	assert_non_null(find_event(1, "config.prepare", "ballot=2 kind=roll_forward"));
	for (int i = 1; i < 3; i++) {
		int p = find_store(i, CFS_PENDING, 2), c = find_store(i, CFS_COMMIT, 2);
		assert_true(p >= 0 && c > p);
		assert_int_equal(H->t[i].log[p].ballot, 2);
		assert_memory_equal(H->t[i].log[c].dg, dg, CFGSYNC_DIGEST_LEN);
		assert_int_equal(H->t[i].d.cgen, 2);
		assert_int_equal(H->t[i].applied_gen, 2);
	}
	/* no blob travelled: both held it */
	assert_int_equal(n_sent(1, CFG_MSG_FETCH) + n_sent(2, CFG_MSG_FETCH), 0);
	/* the proposer learns its change is in */
	const struct rec *r = only_result(2);
	assert_int_equal(r->req, 11);
	assert_int_equal(r->code, 0);
	assert_string_equal(r->why, "committed as generation 2");
	/* the old coordinator restarts holding gen 2 pending (ballot 1): it
	 * commits its own copy once it hears gen 2 is committed */
	assert_int_equal(H->t[0].d.pgen, 2);
	boot(0);
	clear_logs();
	views(1, 3);
	advance(10);
	int c0 = find_store(0, CFS_COMMIT, 2);
	assert_true(c0 >= 0);
	assert_true(find_apply(0, 2) > c0);
	assert_int_equal(n_sent(0, CFG_MSG_FETCH), 0);
	assert_int_equal(n_store(1, CFS_PENDING, 3) + n_store(2, CFS_PENDING, 3), 0);
	assert_all_in_sync(2, dg);
}

/* The proposer is the node that becomes coordinator. */
static void test_proposer_becomes_coordinator(void **state)
{
	(void)state;
	uint8_t dg[CFGSYNC_DIGEST_LEN];
	crash_between_prepare_and_commit(1, dg);
	assert_int_equal(H->t[1].d.cgen, 2);
	assert_int_equal(H->t[2].d.cgen, 2);
	advance(300);
	const struct rec *r = only_result(1);
	assert_int_equal(r->req, 11);
	assert_int_equal(r->code, 0);
	assert_string_equal(r->why, "committed as generation 2");
	boot(0);
	views(1, 3);
	advance(10);
	assert_all_in_sync(2, dg);
}

/* The coordinator loses group 0 (not crashed) while its own user's
 * proposal is in flight: the local caller still gets an outcome. */
static void test_deposed_coordinator_own_proposal(void **state)
{
	(void)state;
	H->t[0].hold_validate = true;
	uint8_t *b;
	size_t len;
	uint8_t dg[CFGSYNC_DIGEST_LEN];
	doc(yaml_b, ruleset_b, &b, &len);
	dg_of(b, len, dg);
	assert_int_equal(propose(0, 21, b, len, 0, NULL), 0);
	free(b);
	pump();
	assert_int_equal(n_act(0, CFA_VALIDATE), 1);
	/* node 0 steps down; node 1 takes group 0 */
	views(1, 2);
	/* the late validation answer finds nothing to answer */
	assert_int_equal(cfgsync_validated(H->t[0].cs, dg, 0, NULL, H->now, H->out), TND_ENOENT);
	assert_int_equal(H->out->n, 0);
	H->t[0].nheld = 0;
	H->t[0].hold_validate = false;
	advance(1000);
	const struct rec *r = only_result(0);
	assert_int_equal(r->req, 21);
	assert_int_equal(r->code, 0);
	assert_string_equal(r->why, "committed as generation 2");
	assert_true(n_act(1, CFA_VALIDATE) == 1);
	assert_all_in_sync(2, dg);
}

/* Two nodes: a node restarted alone may hold an old file; as coordinator
 * it must change nothing until it heard its peer, and then it catches up
 * instead of reusing the generation the peer committed. */
static void test_two_nodes_restart_alone(void **state)
{
	(void)state;
	crash(1);
	views(0, 1);
	uint8_t *b, *c;
	size_t lb, lc;
	uint8_t db[CFGSYNC_DIGEST_LEN], dc[CFGSYNC_DIGEST_LEN];
	doc(yaml_b, "", &b, &lb);
	doc(yaml_c, "", &c, &lc);
	dg_of(b, lb, db);
	dg_of(c, lc, dc);
	assert_int_equal(propose(0, 1, b, lb, 0, NULL), 0);
	pump();
	assert_string_equal(only_result(0)->why, "committed as generation 2");
	assert_int_equal(H->t[0].d.cgen, 2);
	/* node 0 dies; node 1 comes back alone with gen 1 */
	crash(0);
	boot(1);
	clear_logs();
	views(1, 2);
	advance(3000);
	cfgsync_report(H->t[1].cs, &rep);
	assert_int_equal(rep.coordinator, 1);
	assert_false(rep.settled);
	char why[CFGSYNC_WHY_LEN];
	assert_int_equal(propose(1, 1, c, lc, 0, why), TND_EREFUSED);
	assert_string_equal(why, "this node has not heard any peer since it started, so its configuration may be stale; retry when a peer is up, or force");
	assert_int_equal(n_act(1, CFA_STORE), 0);
	/* node 0 returns: node 1 adopts gen 2 from it */
	boot(0);
	views(1, 3);
	advance(10);
	assert_int_equal(n_store(1, CFS_COMMIT, 2), 1);
	assert_int_equal(n_sent(1, CFG_MSG_FETCH), 1);
	assert_int_equal(n_sent(1, CFG_MSG_PREPARE), 0);
	assert_all_in_sync(2, db);
	/* and the next change is gen 3 */
	clear_logs();
	assert_int_equal(propose(1, 2, c, lc, 0, NULL), 0);
	advance(10);
	assert_string_equal(only_result(1)->why, "committed as generation 3");
	assert_all_in_sync(3, dc);
	free(b);
	free(c);
}

/* --- catch-up --------------------------------------------------------------------- */

static void test_catch_up(void **state)
{
	(void)state;
	crash(2);
	views(0, 1);
	uint8_t *b;
	size_t len;
	uint8_t dg[CFGSYNC_DIGEST_LEN];
	big_doc(60000, &b, &len); /* 50 chunks: several fetch windows */
	assert_true(len > 3 * CFGSYNC_WINDOW_CHUNKS * CFGSYNC_CHUNK_BYTES);
	dg_of(b, len, dg);
	assert_int_equal(propose(1, 4, b, len, 0, NULL), 0);
	free(b);
	advance(10);
	assert_string_equal(only_result(1)->why, "committed as generation 2");
	/* committed by the live nodes only; node 2 reported behind */
	cfgsync_report(H->t[0].cs, &rep);
	assert_int_equal(rep.cluster_gen, 2);
	assert_false(rep.nodes[2].alive);
	assert_false(rep.nodes[2].in_sync);
	assert_int_equal(rep.nodes[2].committed_gen, 1);
	assert_true(rep.nodes[1].in_sync);
	assert_int_equal(H->t[2].d.cgen, 1);
	/* node 2 returns */
	clear_logs();
	boot(2);
	views(0, 1);
	advance(50);
	/* it fetched the blob by digest, stored it committed, applied it */
	assert_true(n_sent(2, CFG_MSG_FETCH) >= 4);
	int c = find_store(2, CFS_COMMIT, 2);
	assert_true(c >= 0);
	assert_memory_equal(H->t[2].log[c].dg, dg, CFGSYNC_DIGEST_LEN);
	assert_true(find_apply(2, 2) > c);
	assert_int_equal(n_store(2, CFS_PENDING, 2), 0);
	assert_int_equal(n_act(2, CFA_STORE), 1);
	/* the others did nothing but serve it */
	for (int i = 0; i < 2; i++) {
		assert_int_equal(n_act(i, CFA_STORE), 0);
		assert_int_equal(n_act(i, CFA_APPLY), 0);
	}
	assert_all_in_sync(2, dg);
}

/* A node that was down through several commits catches up to the last. */
static void test_catch_up_several(void **state)
{
	(void)state;
	crash(1);
	views(0, 1);
	uint8_t *b, *c;
	size_t lb, lc;
	uint8_t dc[CFGSYNC_DIGEST_LEN];
	doc(yaml_b, "", &b, &lb);
	doc(yaml_c, "", &c, &lc);
	dg_of(c, lc, dc);
	assert_int_equal(propose(2, 1, b, lb, 0, NULL), 0);
	pump();
	assert_int_equal(propose(2, 2, c, lc, 0, NULL), 0);
	pump();
	assert_int_equal(H->t[2].d.cgen, 3);
	clear_logs();
	boot(1);
	views(0, 1);
	advance(10);
	assert_int_equal(n_store(1, CFS_COMMIT, 2), 0); /* straight to the last */
	assert_int_equal(n_store(1, CFS_COMMIT, 3), 1);
	assert_all_in_sync(3, dc);
	free(b);
	free(c);
}

/* A corrupted chunk (right length, wrong bytes): the assembled blob does
 * not match its digest, it is counted as bad and fetched again. */
static void test_corrupt_transfer_refetched(void **state)
{
	(void)state;
	crash(2);
	views(0, 1);
	uint8_t *b;
	size_t len;
	uint8_t dg[CFGSYNC_DIGEST_LEN];
	big_doc(5000, &b, &len);
	dg_of(b, len, dg);
	assert_int_equal(propose(0, 4, b, len, 0, NULL), 0);
	free(b);
	pump();
	clear_logs();
	boot(2);
	views_only(0, 1);
	/* deliver until node 0 queued DATA for node 2, then flip a byte of
	 * the blob in the second chunk */
	H->allow_bad = true;
	bool flipped = false;
	for (int k = 0; k < 1000 && H->qh < H->qt; k++) {
		for (int j = H->qh; j < H->qt && !flipped; j++) {
			struct pkt *p = &H->q[j];
			if (p->to == 2 && p->b[7] == CFG_MSG_DATA) {
				/* the DATA TLV is last; its bytes end the packet */
				struct wire_hdr hh;
				assert_int_equal(wire_hdr_decode(p->b, p->len, &hh), 0);
				struct tlvr r;
				struct tlv t;
				uint32_t off = 0;
				tlvr_init(&r, p->b + WIRE_HDR_LEN, hh.body_len);
				while (tlvr_next(&r, &t) == 1)
					if (t.type == T_OFF)
						assert_int_equal(tlv_u32(&t, &off), 0);
				if (off == CFGSYNC_CHUNK_BYTES) {
					p->b[p->len - 5] ^= 0x20;
					flipped = true;
				}
			}
		}
		deliver_one();
	}
	assert_true(flipped);
	H->allow_bad = false;
	advance(500);
	assert_non_null(find_event(2, "config.transfer_bad", "from=0"));
	cfgsync_report(H->t[2].cs, &rep);
	assert_int_equal(rep.rx_bad, 1);
	assert_true(n_sent(2, CFG_MSG_FETCH) >= 2);
	assert_int_equal(n_store(2, CFS_COMMIT, 2), 1);
	uint8_t d2[CFGSYNC_DIGEST_LEN];
	dg_of(H->t[2].d.cblob, H->t[2].d.clen, d2);
	assert_memory_equal(d2, dg, sizeof(dg));
	for (int i = 0; i < 2; i++) {
		cfgsync_report(H->t[i].cs, &rep);
		assert_int_equal(rep.rx_bad, 0);
	}
	/* reset the counter check for assert_all_in_sync: node 2 had one */
	cfgsync_report(H->t[0].cs, &rep);
	assert_int_equal(rep.cluster_gen, 2);
	for (int x = 0; x < 3; x++)
		assert_true(rep.nodes[x].in_sync);
}

/* --- duplicates, replays, garbage ------------------------------------------------------ */

static void snapshot(struct cfgsync_report *r, int i)
{
	cfgsync_report(H->t[i].cs, r);
}

/* The parts of a report that say what a node believes. */
static void same_beliefs(const struct cfgsync_report *a, const struct cfgsync_report *b)
{
	assert_int_equal(a->cluster_gen, b->cluster_gen);
	assert_int_equal(a->coordinator, b->coordinator);
	assert_int_equal(a->busy, b->busy);
	for (int x = 0; x < a->n_nodes; x++) {
		assert_int_equal(a->nodes[x].committed_gen, b->nodes[x].committed_gen);
		assert_int_equal(a->nodes[x].pending_gen, b->nodes[x].pending_gen);
		assert_int_equal(a->nodes[x].applied_gen, b->nodes[x].applied_gen);
		assert_int_equal(a->nodes[x].in_sync, b->nodes[x].in_sync);
		assert_memory_equal(a->nodes[x].committed_digest, b->nodes[x].committed_digest,
				    CFGSYNC_DIGEST_LEN);
	}
}

/* Hand node `to` a packet as if it came off the wire. */
static int inject(int to, const struct pkt *p)
{
	struct wire_hdr h;
	assert_int_equal(wire_hdr_decode(p->b, p->len, &h), 0);
	int rc = cfgsync_recv(H->t[to].cs, &h, p->b + WIRE_HDR_LEN, h.body_len, H->now, H->out);
	return rc;
}

static void test_duplicates_and_replays(void **state)
{
	(void)state;
	/* before: the STATE node 1 sent at gen 1 */
	struct pkt old_state1 = H->last[1][0][CFG_MSG_STATE - 32];
	struct pkt old_state0 = H->last[0][2][CFG_MSG_STATE - 32];
	assert_int_equal(old_state1.b[7], CFG_MSG_STATE);
	uint8_t *b;
	size_t len;
	uint8_t dg[CFGSYNC_DIGEST_LEN];
	doc(yaml_b, ruleset_b, &b, &len);
	dg_of(b, len, dg);
	assert_int_equal(propose(1, 7, b, len, 0, NULL), 0);
	free(b);
	pump();
	assert_all_in_sync(2, dg);
	/* every message of the commit, replayed to its receiver, twice */
	static const struct { int from, to; uint8_t type; } re[] = {
		{ 1, 0, CFG_MSG_PROPOSE }, { 0, 1, CFG_MSG_FETCH }, { 1, 0, CFG_MSG_DATA },
		{ 0, 1, CFG_MSG_PREPARE }, { 0, 2, CFG_MSG_PREPARE },
		{ 2, 0, CFG_MSG_FETCH }, { 0, 2, CFG_MSG_DATA },
		{ 1, 0, CFG_MSG_ACK }, { 2, 0, CFG_MSG_ACK },
		{ 0, 1, CFG_MSG_COMMIT }, { 0, 2, CFG_MSG_COMMIT },
		{ 0, 1, CFG_MSG_RESULT },
	};
	struct cfgsync_report before[3], after;
	for (int i = 0; i < 3; i++)
		snapshot(&before[i], i);
	clear_logs();
	for (int round = 0; round < 2; round++)
		for (size_t k = 0; k < sizeof(re) / sizeof(re[0]); k++) {
			const struct pkt *p = &H->last[re[k].from][re[k].to][re[k].type - 32];
			assert_int_equal(p->b[7], re[k].type);
			int rc = inject(re[k].to, p);
			if (rc != 0)
				fail_msg("replayed type %u from %d to %d refused: %d",
					 re[k].type, re[k].from, re[k].to, rc);
			run(re[k].to);
			pump();
		}
	for (int i = 0; i < 3; i++) {
		/* no decision was taken again */
		assert_int_equal(n_act(i, CFA_STORE), 0);
		assert_int_equal(n_act(i, CFA_APPLY), 0);
		assert_int_equal(n_act(i, CFA_VALIDATE), 0);
		assert_int_equal(n_act(i, CFA_RESULT), 0);
		assert_int_equal(n_sent(i, CFG_MSG_PREPARE), 0);
		assert_int_equal(n_sent(i, CFG_MSG_COMMIT), 0);
		snapshot(&after, i);
		same_beliefs(&before[i], &after);
	}
	/* a stale PREPARE at the committed generation is re-acked, not stored */
	assert_true(n_sent(1, CFG_MSG_ACK) >= 2);
	assert_all_in_sync(2, dg);

	/* STATE is a whole state at a moment: an old one (node 1 at gen 1),
	 * delayed in the network, must not make node 0 believe node 1 went
	 * back; a duplicate of the newest is no news either. Both are
	 * refused as stale and counted. */
	clear_logs();
	for (int i = 0; i < 3; i++)
		snapshot(&before[i], i);
	struct pkt newest1 = H->last[1][0][CFG_MSG_STATE - 32];
	assert_int_equal(inject(0, &old_state1), TND_EREPLAY);
	assert_int_equal(H->out->n, 0);
	assert_int_equal(inject(0, &newest1), TND_EREPLAY);
	assert_int_equal(H->out->n, 0);
	snapshot(&after, 0);
	same_beliefs(&before[0], &after);
	assert_int_equal(after.rx_bad, before[0].rx_bad + 2);
	assert_int_equal(after.rx_ok, before[0].rx_ok);
	assert_int_equal(inject(2, &old_state0), TND_EREPLAY);
	assert_int_equal(H->out->n, 0);
	snapshot(&after, 2);
	same_beliefs(&before[2], &after);
	assert_int_equal(after.rx_bad, before[2].rx_bad + 1);
	/* the next real STATE is taken as usual */
	advance(1500);
	snapshot(&after, 0);
	assert_true(after.rx_ok > before[0].rx_ok);
	assert_int_equal(after.rx_bad, before[0].rx_bad + 2);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(n_act(i, CFA_STORE), 0);
		assert_int_equal(n_act(i, CFA_APPLY), 0);
	}
}

/* Build a packet from `from` of `type` with the TLVs the writer holds. */
static void craft(struct pkt *p, int from, int to, uint8_t type, uint8_t cluster,
		  const uint8_t *body, size_t blen)
{
	static uint64_t seq = 1000000;
	struct wire_hdr h = { .version = WIRE_PROTO_MAX, .cluster_id = cluster,
			      .sender = (uint8_t)from, .type = type,
			      .incarnation = 1 + 100 * (uint64_t)from,
			      .seq = CFGSYNC_SEQ_SPACE | ++seq,
			      .body_len = (uint16_t)blen };
	p->from = from;
	p->to = to;
	wire_hdr_encode(&h, p->b);
	memcpy(p->b + WIRE_HDR_LEN, body, blen);
	p->len = WIRE_HDR_LEN + blen;
}

static void test_garbage_counted(void **state)
{
	(void)state;
	uint8_t dg1[CFGSYNC_DIGEST_LEN];
	dg_of(H->seed, H->seed_len, dg1);
	uint8_t zero[CFGSYNC_DIGEST_LEN] = { 0 };
	uint8_t body[WIRE_BODY_MAX];
	struct tlvw w;
	size_t blen;
	struct pkt p;
	int n_bad = 0;
	struct cfgsync_report before, after;
	snapshot(&before, 1);

#define BEGIN() tlvw_init(&w, body, sizeof(body))
#define SEND_BAD(from, type, cluster)                                          \
	do {                                                                   \
		assert_int_equal(tlvw_finish(&w, &blen), 0);                   \
		craft(&p, (from), 1, (type), (cluster), body, blen);           \
		assert_int_equal(inject(1, &p), TND_EINVAL);                   \
		if (H->out->n)                                                 \
			fail_msg("garbage case %d emitted %d actions", n_bad,  \
				 H->out->n);                                   \
		n_bad++;                                                       \
	} while (0)

	/* a STATE without its floor, one with a 31-byte digest, one with a
	 * pending gen but no digest for it */
	BEGIN();
	tlvw_u64(&w, T_CGEN, 9);
	tlvw_put(&w, T_CDG, zero, 32);
	SEND_BAD(0, CFG_MSG_STATE, 1);
	BEGIN();
	tlvw_u64(&w, T_CGEN, 9);
	tlvw_put(&w, T_CDG, zero, 31);
	tlvw_u64(&w, T_FLOOR, 9);
	SEND_BAD(0, CFG_MSG_STATE, 1);
	BEGIN();
	tlvw_u64(&w, T_CGEN, 1);
	tlvw_put(&w, T_CDG, dg1, 32);
	tlvw_u64(&w, T_FLOOR, 9);
	tlvw_u64(&w, T_PGEN, 9);
	SEND_BAD(0, CFG_MSG_STATE, 1);
	/* a gen of 4 bytes */
	BEGIN();
	tlvw_u32(&w, T_CGEN, 9);
	tlvw_put(&w, T_CDG, zero, 32);
	tlvw_u64(&w, T_FLOOR, 9);
	SEND_BAD(0, CFG_MSG_STATE, 1);
	/* a PREPARE of gen 0, one without a length, one above the maximum */
	BEGIN();
	tlvw_u64(&w, T_GEN, 0);
	tlvw_u64(&w, T_BALLOT, 1);
	tlvw_put(&w, T_DIGEST, zero, 32);
	tlvw_u32(&w, T_LEN, 100);
	SEND_BAD(0, CFG_MSG_PREPARE, 1);
	BEGIN();
	tlvw_u64(&w, T_GEN, 5);
	tlvw_u64(&w, T_BALLOT, 1);
	tlvw_put(&w, T_DIGEST, zero, 32);
	SEND_BAD(0, CFG_MSG_PREPARE, 1);
	BEGIN();
	tlvw_u64(&w, T_GEN, 5);
	tlvw_u64(&w, T_BALLOT, 1);
	tlvw_put(&w, T_DIGEST, zero, 32);
	tlvw_u32(&w, T_LEN, CFGSYNC_DOC_MAX + 1);
	SEND_BAD(0, CFG_MSG_PREPARE, 1);
	/* ACK, COMMIT, ABORT without their digest */
	BEGIN();
	tlvw_u64(&w, T_GEN, 2);
	tlvw_u64(&w, T_BALLOT, 1);
	tlvw_u32(&w, T_CODE, 0);
	SEND_BAD(0, CFG_MSG_ACK, 1);
	BEGIN();
	tlvw_u64(&w, T_GEN, 7);
	SEND_BAD(0, CFG_MSG_COMMIT, 1);
	BEGIN();
	tlvw_u64(&w, T_GEN, 0);
	tlvw_put(&w, T_DIGEST, zero, 32);
	SEND_BAD(0, CFG_MSG_COMMIT, 1);
	BEGIN();
	tlvw_u64(&w, T_GEN, 1);
	SEND_BAD(0, CFG_MSG_ABORT, 1);
	/* FETCH without a count; PROPOSE with a length below a document's
	 * or above the maximum; RESULT without a code */
	BEGIN();
	tlvw_put(&w, T_DIGEST, dg1, 32);
	tlvw_u32(&w, T_OFF, 0);
	SEND_BAD(0, CFG_MSG_FETCH, 1);
	BEGIN();
	tlvw_u32(&w, T_REQ, 1);
	tlvw_put(&w, T_DIGEST, zero, 32);
	tlvw_u32(&w, T_LEN, 9);
	SEND_BAD(2, CFG_MSG_PROPOSE, 1);
	BEGIN();
	tlvw_u32(&w, T_REQ, 1);
	tlvw_put(&w, T_DIGEST, zero, 32);
	tlvw_u32(&w, T_LEN, CFGSYNC_DOC_MAX + 1);
	SEND_BAD(2, CFG_MSG_PROPOSE, 1);
	BEGIN();
	tlvw_u32(&w, T_REQ, 1);
	SEND_BAD(0, CFG_MSG_RESULT, 1);
	/* a sentence with a NUL inside */
	BEGIN();
	tlvw_u32(&w, T_REQ, 1);
	tlvw_u32(&w, T_CODE, 0);
	tlvw_put(&w, T_WHY, "ab\0cd", 5);
	SEND_BAD(0, CFG_MSG_RESULT, 1);
	/* DATA without an offset */
	BEGIN();
	tlvw_put(&w, T_DIGEST, dg1, 32);
	SEND_BAD(0, CFG_MSG_DATA, 1);
	/* a good STATE, but: for another cluster, from ourselves, from a node
	 * beyond the cluster, of a type outside 32..40 */
	static const struct { int from; uint8_t type, cluster; } hdrs[] = {
		{ 0, CFG_MSG_STATE, 2 }, { 1, CFG_MSG_STATE, 1 }, { 3, CFG_MSG_STATE, 1 },
		{ 31, CFG_MSG_STATE, 1 }, { 0, 31, 1 }, { 0, 41, 1 }, { 0, 16, 1 },
	};
	for (size_t k = 0; k < sizeof(hdrs) / sizeof(hdrs[0]); k++) {
		BEGIN();
		tlvw_u64(&w, T_CGEN, 1);
		tlvw_put(&w, T_CDG, dg1, 32);
		tlvw_u64(&w, T_FLOOR, 1);
		tlvw_u64(&w, T_AGEN, 1);
		tlvw_u8(&w, T_AOK, 1);
		SEND_BAD(hdrs[k].from, hdrs[k].type, hdrs[k].cluster);
	}
	/* a real STATE cut anywhere inside a TLV */
	struct pkt real = H->last[0][1][CFG_MSG_STATE - 32];
	struct wire_hdr rh;
	assert_int_equal(wire_hdr_decode(real.b, real.len, &rh), 0);
	for (size_t cut = 1; cut < rh.body_len; cut++) {
		struct tlvr r;
		struct tlv t;
		int rc;
		tlvr_init(&r, real.b + WIRE_HDR_LEN, cut);
		while ((rc = tlvr_next(&r, &t)) == 1)
			;
		if (rc == 0)
			continue; /* a cut between TLVs: well formed, checked below */
		craft(&p, 0, 1, CFG_MSG_STATE, 1, real.b + WIRE_HDR_LEN, cut);
		assert_int_equal(inject(1, &p), TND_EINVAL);
		assert_int_equal(H->out->n, 0);
		n_bad++;
	}
	snapshot(&after, 1);
	assert_int_equal(after.rx_bad, before.rx_bad + (uint64_t)n_bad);
	assert_int_equal(after.rx_ok, before.rx_ok);
	same_beliefs(&before, &after);
	assert_true(n_bad > 30);

	/* unknown TLVs are skipped: a STATE with extra TLVs is fine */
	BEGIN();
	tlvw_u64(&w, T_CGEN, 1);
	tlvw_put(&w, T_CDG, dg1, 32);
	tlvw_u64(&w, 200, 77);
	tlvw_str(&w, 4000, "from a later version");
	tlvw_u64(&w, T_FLOOR, 1);
	tlvw_u64(&w, T_AGEN, 1);
	tlvw_u8(&w, T_AOK, 1);
	assert_int_equal(tlvw_finish(&w, &blen), 0);
	craft(&p, 0, 1, CFG_MSG_STATE, 1, body, blen);
	assert_int_equal(inject(1, &p), 0);
	run(1);
	snapshot(&after, 1);
	assert_int_equal(after.rx_bad, before.rx_bad + (uint64_t)n_bad);
	assert_int_equal(after.rx_ok, before.rx_ok + 1);
	same_beliefs(&before, &after);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(n_act(i, CFA_STORE), 0);
		assert_int_equal(n_act(i, CFA_APPLY), 0);
	}
#undef BEGIN
#undef SEND_BAD
}

/* Well-formed messages naming nothing that exists: old generations, wrong
 * digests, from a node that is not the coordinator. Nothing changes. */
static void test_stale_messages_change_nothing(void **state)
{
	(void)state;
	uint8_t dg1[CFGSYNC_DIGEST_LEN], other[CFGSYNC_DIGEST_LEN];
	dg_of(H->seed, H->seed_len, dg1);
	memset(other, 0x5a, sizeof(other));
	static uint8_t filler[CFGSYNC_CHUNK_BYTES];
	memset(filler, 'f', sizeof(filler));
	uint8_t body[WIRE_BODY_MAX];
	struct tlvw w;
	size_t blen;
	struct pkt p;
	struct cfgsync_report before[3], after;
	for (int i = 0; i < 3; i++)
		snapshot(&before[i], i);
	clear_logs();
	struct { int from, to; uint8_t type; uint64_t gen; const uint8_t *dg; } cases[] = {
		/* PREPARE from a node that is not the coordinator */
		{ 2, 1, CFG_MSG_PREPARE, 5, other },
		/* PREPARE of the committed gen with another digest */
		{ 0, 1, CFG_MSG_PREPARE, 1, other },
		/* COMMIT of an old gen with another digest */
		{ 0, 2, CFG_MSG_COMMIT, 1, other },
		/* ABORT of what nobody holds; ABORT from a non-coordinator */
		{ 0, 1, CFG_MSG_ABORT, 4, other },
		{ 2, 1, CFG_MSG_ABORT, 1, dg1 },
		/* ACK of nothing in flight */
		{ 1, 0, CFG_MSG_ACK, 2, other },
		{ 1, 0, CFG_MSG_ACK, 1, dg1 },
		/* DATA for a transfer nobody runs */
		{ 0, 1, CFG_MSG_DATA, 0, other },
		/* RESULT for nothing asked */
		{ 0, 1, CFG_MSG_RESULT, 0, NULL },
	};
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		tlvw_init(&w, body, sizeof(body));
		switch (cases[k].type) {
		case CFG_MSG_PREPARE:
		case CFG_MSG_COMMIT:
		case CFG_MSG_ABORT:
		case CFG_MSG_ACK:
			tlvw_u64(&w, T_GEN, cases[k].gen);
			tlvw_u64(&w, T_BALLOT, 1);
			tlvw_put(&w, T_DIGEST, cases[k].dg, 32);
			tlvw_u32(&w, T_LEN, (uint32_t)H->seed_len);
			tlvw_u32(&w, T_CODE, 0);
			break;
		case CFG_MSG_DATA:
			tlvw_put(&w, T_DIGEST, cases[k].dg, 32);
			tlvw_u32(&w, T_LEN, 2000);
			tlvw_u32(&w, T_OFF, 0);
			tlvw_put(&w, T_DATA, filler, CFGSYNC_CHUNK_BYTES);
			break;
		case CFG_MSG_RESULT:
			tlvw_u32(&w, T_REQ, 99);
			tlvw_u32(&w, T_CODE, 0);
			tlvw_str(&w, T_WHY, "committed as generation 9");
			break;
		}
		assert_int_equal(tlvw_finish(&w, &blen), 0);
		craft(&p, cases[k].from, cases[k].to, cases[k].type, 1, body, blen);
		assert_int_equal(inject(cases[k].to, &p), 0);
		run(cases[k].to);
		pump();
	}
	advance(3000);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(n_act(i, CFA_STORE), 0);
		assert_int_equal(n_act(i, CFA_APPLY), 0);
		assert_int_equal(n_act(i, CFA_RESULT), 0);
		assert_int_equal(n_sent(i, CFG_MSG_FETCH), 0);
		snapshot(&after, i);
		same_beliefs(&before[i], &after);
		assert_int_equal(after.rx_bad, 0);
	}
	assert_all_in_sync(1, dg1);
}

/* The newest STATE from `from` to `to` that reported pending gen `pgen`. */
static const struct pkt *state_with_pending(int from, int to, uint64_t pgen)
{
	for (int k = H->nwire - 1; k >= 0; k--) {
		const struct pkt *p = &H->wire[k];
		if (p->from != from || p->to != to)
			continue;
		struct tlvr r;
		struct tlv t;
		tlvr_init(&r, p->b + WIRE_HDR_LEN, p->len - WIRE_HDR_LEN);
		while (tlvr_next(&r, &t) == 1) {
			uint64_t v;
			if (t.type == T_PGEN && tlv_u64(&t, &v) == 0 && v == pgen)
				return p;
		}
	}
	return NULL;
}

/* A STATE delayed in the network across an abort and a change of
 * coordinator must not bring the aborted proposal back: the new
 * coordinator would roll it forward and commit a change its proposer
 * was told had failed. */
static void test_delayed_state_no_resurrection(void **state)
{
	(void)state;
	uint8_t dg1[CFGSYNC_DIGEST_LEN];
	dg_of(H->seed, H->seed_len, dg1);
	H->t[2].store_code[CFS_PENDING] = TND_ENOSPC;
	uint8_t *b;
	size_t len;
	doc(yaml_b, ruleset_b, &b, &len);
	assert_int_equal(propose(1, 5, b, len, 0, NULL), 0);
	free(b);
	pump();
	assert_int_equal(only_result(1)->code, TND_ENOSPC);
	/* node 0's STATE from while it held gen 2 pending */
	const struct pkt *st = state_with_pending(0, 1, 2);
	assert_non_null(st);
	struct pkt stale = *st;
	H->t[2].store_code[CFS_PENDING] = 0;
	/* group 0 moves to node 1, which settles on fresh states */
	views(1, 2);
	advance(10);
	cfgsync_report(H->t[1].cs, &rep);
	assert_true(rep.settled);
	clear_logs();
	/* now the stale one arrives */
	assert_int_equal(inject(1, &stale), TND_EREPLAY);
	run(1);
	advance(3000);
	assert_null(find_event(1, "config.prepare", NULL));
	for (int i = 0; i < 3; i++) {
		assert_int_equal(n_act(i, CFA_STORE), 0);
		assert_int_equal(H->t[i].d.cgen, 1);
		assert_int_equal(H->t[i].d.pgen, 0);
	}
	cfgsync_report(H->t[1].cs, &rep);
	assert_int_equal(rep.rx_bad, 1);
	assert_int_equal(rep.nodes[0].pending_gen, 0);
}

/* A proposer resends PROPOSE every retry_ms until it hears the outcome;
 * a resend that arrives while its proposal is being prepared must not
 * start it a second time (here: after it was aborted). */
static void test_resent_propose_during_prepare(void **state)
{
	(void)state;
	H->t[2].hold_store[CFS_PENDING] = true;
	uint8_t *b;
	size_t len;
	doc(yaml_b, "", &b, &len);
	assert_int_equal(propose(1, 31, b, len, 0, NULL), 0);
	free(b);
	advance(450); /* node 1 resends; node 2 is still writing */
	assert_true(n_sent(1, CFG_MSG_PROPOSE) >= 3);
	assert_int_equal(n_act(0, CFA_VALIDATE), 1);
	/* node 2's disk is full after all */
	H->t[2].hold_store[CFS_PENDING] = false;
	H->t[2].store_code[CFS_PENDING] = TND_ENOSPC;
	release(2, 0, TND_ENOSPC);
	advance(3000);
	const struct rec *r = only_result(1);
	assert_int_equal(r->code, TND_ENOSPC);
	/* the change the user was told failed was not committed later */
	for (int i = 0; i < 3; i++) {
		assert_int_equal(H->t[i].d.cgen, 1);
		assert_int_equal(H->t[i].d.pgen, 0);
		assert_int_equal(n_store(i, CFS_COMMIT, 3), 0);
	}
	assert_int_equal(n_act(0, CFA_VALIDATE), 1);
}

/* A proposer that restarts numbers its requests from 1 again: the
 * coordinator must not answer the new request with the old outcome. */
static void test_restarted_proposer_same_req(void **state)
{
	(void)state;
	uint8_t *b, *c;
	size_t lb, lc;
	uint8_t dc[CFGSYNC_DIGEST_LEN];
	doc(yaml_b, "", &b, &lb);
	doc(yaml_c, "", &c, &lc);
	dg_of(c, lc, dc);
	assert_int_equal(propose(2, 1, b, lb, 0, NULL), 0);
	pump();
	assert_string_equal(only_result(2)->why, "committed as generation 2");
	crash(2);
	views(0, 1);
	boot(2);
	views(0, 1);
	advance(10);
	clear_logs();
	/* hold node 0's answers back: first a RESULT for req 1 of node 2's
	 * previous life arrives late; it is not the outcome of this req 1 */
	H->cut[0][2] = true;
	assert_int_equal(propose(2, 1, c, lc, 0, NULL), 0);
	uint8_t body[WIRE_BODY_MAX];
	struct tlvw w;
	size_t blen;
	tlvw_init(&w, body, sizeof(body));
	tlvw_u32(&w, T_REQ, 1);
	tlvw_u32(&w, T_CODE, 0);
	tlvw_str(&w, T_WHY, "committed as generation 2");
	tlvw_u64(&w, T_INC, 1 + 200 /* node 2's first incarnation */);
	assert_int_equal(tlvw_finish(&w, &blen), 0);
	struct pkt p;
	craft(&p, 0, 2, CFG_MSG_RESULT, 1, body, blen);
	assert_int_equal(inject(2, &p), 0);
	run(2);
	assert_int_equal(n_act(2, CFA_RESULT), 0);
	H->cut[0][2] = false;
	advance(300);
	const struct rec *r = only_result(2);
	assert_int_equal(r->code, 0);
	assert_string_equal(r->why, "committed as generation 3");
	assert_all_in_sync(3, dc);
	free(b);
	free(c);
}

/* --- settling, no coordinator, timeouts ------------------------------------------------ */

static void test_no_coordinator_refused(void **state)
{
	(void)state;
	views(TND_NO_NODE, 2);
	uint8_t *b;
	size_t len;
	doc(yaml_b, "", &b, &len);
	char why[CFGSYNC_WHY_LEN] = "";
	for (int i = 0; i < 3; i++) {
		clear_logs();
		assert_int_equal(propose(i, 1, b, len, 0, why), TND_EREFUSED);
		assert_string_equal(why, "no coordinator: group 0 has no primary now");
		assert_int_equal(n_act(i, CFA_RESULT), 0);
		assert_int_equal(n_sent(i, CFG_MSG_PROPOSE), 0);
	}
	cfgsync_report(H->t[0].cs, &rep);
	assert_int_equal(rep.coordinator, TND_NO_NODE);
	assert_false(rep.settled);
	/* not a document at all */
	assert_int_equal(propose(0, 1, b, len - 1, 0, why), TND_EINVAL);
	assert_string_equal(why, "not a configuration document");
	free(b);
}

/* A node that has not heard any peer since it started may hold a stale
 * file: it refuses unless forced. */
static void test_not_heard_refused_unless_forced(void **state)
{
	(void)state;
	teardown(NULL);
	h_new(2);
	boot(0);
	boot(1);
	H->cut[1][0] = H->cut[0][1] = true;
	views(0, 1);
	advance(10);
	uint8_t *b;
	size_t len;
	uint8_t dg[CFGSYNC_DIGEST_LEN];
	doc(yaml_b, "", &b, &len);
	dg_of(b, len, dg);
	char why[CFGSYNC_WHY_LEN] = "";
	for (int i = 0; i < 2; i++) {
		assert_int_equal(propose(i, 1, b, len, 0, why), TND_EREFUSED);
		assert_string_equal(why, "this node has not heard any peer since it started, so its configuration may be stale; retry when a peer is up, or force");
	}
	/* nothing was bootstrapped either */
	assert_int_equal(n_act(0, CFA_STORE), 0);
	cfgsync_report(H->t[0].cs, &rep);
	assert_false(rep.settled);
	/* forced at a coordinator that sees no live peer: it goes ahead on
	 * its own, its file first (gen 1), then the change (gen 2) */
	view(0, 0, 1, 0);
	clear_logs();
	assert_int_equal(propose(0, 2, b, len, CFGSYNC_FORCE, why), 0);
	advance(10);
	const struct rec *r = only_result(0);
	assert_int_equal(r->code, 0);
	assert_string_equal(r->why, "committed as generation 2");
	assert_int_equal(H->t[0].d.cgen, 2);
	uint8_t d0[CFGSYNC_DIGEST_LEN];
	dg_of(H->t[0].d.cblob, H->t[0].d.clen, d0);
	assert_memory_equal(d0, dg, sizeof(dg));
	/* node 1, cut off all along, learns it when the network heals */
	H->cut[1][0] = H->cut[0][1] = false;
	views(0, 1);
	advance(10);
	assert_all_in_sync(2, dg);
	free(b);
}

/* The coordinator waits until it heard every live peer's state since it
 * took over: a proposal is validated at once but prepared only then. */
static void test_not_settled_waits(void **state)
{
	(void)state;
	/* node 2's packets are lost; node 1 becomes coordinator */
	H->cut[2][1] = true;
	views(1, 2);
	advance(10);
	cfgsync_report(H->t[1].cs, &rep);
	assert_int_equal(rep.coordinator, 1);
	assert_false(rep.settled);
	clear_logs();
	uint8_t *b;
	size_t len;
	uint8_t dg[CFGSYNC_DIGEST_LEN];
	doc(yaml_b, "", &b, &len);
	dg_of(b, len, dg);
	assert_int_equal(propose(0, 3, b, len, 0, NULL), 0);
	free(b);
	advance(1000);
	assert_int_equal(n_act(1, CFA_VALIDATE), 1);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(n_act(i, CFA_STORE), 0);
		assert_int_equal(n_act(i, CFA_RESULT), 0);
	}
	cfgsync_report(H->t[1].cs, &rep);
	assert_false(rep.settled);
	assert_false(rep.busy);
	/* node 2 is heard: the change goes through */
	H->cut[2][1] = false;
	advance(1200);
	cfgsync_report(H->t[1].cs, &rep);
	assert_true(rep.settled);
	const struct rec *r = only_result(0);
	assert_int_equal(r->code, 0);
	assert_string_equal(r->why, "committed as generation 2");
	assert_all_in_sync(2, dg);
}

/* The proposer hears nothing from the coordinator. */
static void test_propose_timeout_remote(void **state)
{
	(void)state;
	H->cut[1][0] = true;
	uint8_t *b;
	size_t len;
	doc(yaml_b, "", &b, &len);
	assert_int_equal(propose(1, 17, b, len, 0, NULL), 0);
	free(b);
	advance(4900);
	assert_int_equal(n_act(1, CFA_RESULT), 0);
	assert_true(n_sent(1, CFG_MSG_PROPOSE) >= 40); /* resent every retry_ms */
	advance(200);
	const struct rec *r = only_result(1);
	assert_int_equal(r->req, 17);
	assert_int_equal(r->code, TND_ETIMEDOUT);
	assert_string_equal(r->why, "no answer from the coordinator (group 0 primary)");
	/* it stops asking */
	clear_logs();
	H->cut[1][0] = false;
	advance(2000);
	assert_int_equal(n_sent(1, CFG_MSG_PROPOSE), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(n_act(i, CFA_STORE), 0);
	/* a new proposal from the same node is accepted again */
	doc(yaml_b, "", &b, &len);
	assert_int_equal(propose(1, 18, b, len, 0, NULL), 0);
	free(b);
	pump();
	assert_string_equal(only_result(1)->why, "committed as generation 2");
}

/* The coordinator cannot finish (its validator never answers). */
static void test_propose_timeout_coordinator(void **state)
{
	(void)state;
	H->t[0].hold_validate = true;
	uint8_t *b;
	size_t len;
	uint8_t dg[CFGSYNC_DIGEST_LEN];
	doc(yaml_b, "", &b, &len);
	dg_of(b, len, dg);
	assert_int_equal(propose(0, 19, b, len, 0, NULL), 0);
	char why[CFGSYNC_WHY_LEN];
	/* one change at a time */
	assert_int_equal(propose(0, 20, b, len, 0, why), TND_EREFUSED);
	assert_string_equal(why, "another change is in progress");
	advance(4900);
	assert_int_equal(n_act(0, CFA_RESULT), 0);
	advance(200);
	const struct rec *r = only_result(0);
	assert_int_equal(r->req, 19);
	assert_int_equal(r->code, TND_ETIMEDOUT);
	assert_string_equal(r->why, "the coordinator could not complete the change in time");
	/* the late answer finds nothing, changes nothing */
	assert_int_equal(cfgsync_validated(H->t[0].cs, dg, 0, NULL, H->now, H->out), TND_ENOENT);
	assert_int_equal(H->out->n, 0);
	H->t[0].nheld = 0;
	advance(1000);
	for (int i = 0; i < 3; i++)
		assert_int_equal(n_act(i, CFA_STORE), 0);
	/* and the coordinator takes the next change */
	H->t[0].hold_validate = false;
	clear_logs();
	assert_int_equal(propose(0, 21, b, len, 0, NULL), 0);
	pump();
	assert_string_equal(only_result(0)->why, "committed as generation 2");
	free(b);
}

/* A remote proposer whose coordinator accepted but cannot finish. */
static void test_propose_timeout_remote_coordinator_busy(void **state)
{
	(void)state;
	H->t[0].hold_validate = true;
	uint8_t *b;
	size_t len;
	doc(yaml_b, "", &b, &len);
	assert_int_equal(propose(2, 23, b, len, 0, NULL), 0);
	/* another node's proposal meanwhile is refused with a sentence */
	assert_int_equal(propose(1, 24, b, len, 0, NULL), 0);
	free(b);
	pump();
	const struct rec *r = only_result(1);
	assert_int_equal(r->req, 24);
	assert_int_equal(r->code, TND_EREFUSED);
	assert_string_equal(r->why, "another change is in progress");
	advance(5200);
	r = only_result(2);
	assert_int_equal(r->req, 23);
	assert_int_equal(r->code, TND_ETIMEDOUT);
	for (int i = 0; i < 3; i++)
		assert_int_equal(n_act(i, CFA_STORE), 0);
}

/* --- apply ---------------------------------------------------------------------------- */

static void test_apply_failure_reported(void **state)
{
	(void)state;
	H->t[2].apply_code = TND_EIO;
	uint8_t *b;
	size_t len;
	doc(yaml_b, ruleset_b, &b, &len);
	assert_int_equal(propose(1, 2, b, len, 0, NULL), 0);
	free(b);
	advance(10);
	/* committed (the change is valid), applied on 0 and 1, failed on 2 */
	assert_string_equal(only_result(1)->why, "committed as generation 2");
	assert_non_null(find_event(2, "config.applied", "gen=2 ok=no error=\"nft: ruleset rejected\""));
	for (int i = 0; i < 3; i++) {
		cfgsync_report(H->t[i].cs, &rep);
		assert_int_equal(rep.cluster_gen, 2);
		assert_true(rep.nodes[0].in_sync);
		assert_true(rep.nodes[1].in_sync);
		assert_false(rep.nodes[2].in_sync);
		assert_false(rep.nodes[2].apply_ok);
		assert_int_equal(rep.nodes[2].committed_gen, 2);
		assert_int_equal(rep.nodes[2].applied_gen, 2);
		assert_string_equal(rep.nodes[2].apply_err, "nft: ruleset rejected");
	}
	/* the next generation applies cleanly and clears the error */
	H->t[2].apply_code = 0;
	doc(yaml_c, "", &b, &len);
	uint8_t dg[CFGSYNC_DIGEST_LEN];
	dg_of(b, len, dg);
	assert_int_equal(propose(1, 3, b, len, 0, NULL), 0);
	free(b);
	advance(10);
	assert_all_in_sync(3, dg);
	for (int i = 0; i < 3; i++) {
		cfgsync_report(H->t[i].cs, &rep);
		assert_string_equal(rep.nodes[2].apply_err, "");
	}
}

/* A commit store that fails is retried after retry_ms, not at once. */
static void test_commit_store_retry(void **state)
{
	(void)state;
	H->t[0].store_code[CFS_COMMIT] = TND_EIO;
	uint8_t *b;
	size_t len;
	uint8_t dg[CFGSYNC_DIGEST_LEN];
	doc(yaml_b, "", &b, &len);
	dg_of(b, len, dg);
	assert_int_equal(propose(1, 2, b, len, 0, NULL), 0);
	free(b);
	pump();
	assert_int_equal(n_store(0, CFS_COMMIT, 2), 1);
	assert_non_null(find_event(0, "config.store_failed", "op=commit gen=2"));
	advance(350);
	int tries = n_store(0, CFS_COMMIT, 2);
	assert_true(tries >= 3 && tries <= 5);
	assert_int_equal(n_act(1, CFA_RESULT), 0);
	/* a commit is never abandoned: the disk recovers, it goes on */
	H->t[0].store_code[CFS_COMMIT] = 0;
	advance(3000);
	assert_string_equal(only_result(1)->why, "committed as generation 2");
	assert_all_in_sync(2, dg);
}

/* Parameters the core cannot work with are refused. */
static void test_params_refused(void **state)
{
	(void)state;
	struct cfgsync_params p;
	cfgsync_params_default(&p);
	assert_int_equal(p.state_ms, 1000);
	assert_int_equal(p.retry_ms, 300);
	assert_int_equal(p.prepare_timeout_ms, 30000);
	assert_int_equal(p.propose_timeout_ms, 60000);
	assert_int_equal(p.proto, WIRE_PROTO_MAX);
	p.n_nodes = 2;
	p.committed_blob = H->seed;
	p.committed_len = H->seed_len;
	struct cfgsync *cs = cfgsync_new(&p, 0);
	assert_non_null(cs);
	cfgsync_free(cs);
	struct cfgsync_params q = p;
	q.self = 2;
	assert_null(cfgsync_new(&q, 0));
	q = p;
	q.n_nodes = TND_NODES_MAX + 1;
	assert_null(cfgsync_new(&q, 0));
	q = p;
	q.committed_blob = NULL;
	assert_null(cfgsync_new(&q, 0));
	q = p;
	q.committed_len = CFGSYNC_DOC_MAX + 1;
	assert_null(cfgsync_new(&q, 0));
	q = p;
	q.retry_ms = 0;
	assert_null(cfgsync_new(&q, 0));
	q = p;
	q.pending_gen = 3;
	assert_null(cfgsync_new(&q, 0)); /* a pending gen without its blob */
	/* a view naming a node beyond the cluster */
	cs = cfgsync_new(&p, 0);
	assert_int_equal(cfgsync_view(cs, 2, 1, 3, 0, H->out), TND_EINVAL);
	assert_int_equal(cfgsync_view(cs, -2, 1, 3, 0, H->out), TND_EINVAL);
	assert_int_equal(H->out->n, 0);
	/* answers to nothing asked */
	uint8_t dg[CFGSYNC_DIGEST_LEN] = { 0 };
	assert_int_equal(cfgsync_stored(cs, CFS_PENDING, 1, dg, 0, 0, H->out), TND_ENOENT);
	assert_int_equal(cfgsync_applied(cs, 1, 0, NULL, 0, H->out), TND_ENOENT);
	assert_int_equal(cfgsync_validated(cs, dg, 0, NULL, 0, H->out), TND_ENOENT);
	assert_int_equal(H->out->n, 0);
	cfgsync_free(cs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_doc_roundtrip),
		cmocka_unit_test(test_doc_decode_rejects),
		cmocka_unit_test(test_doc_max),
		cmocka_unit_test(test_digest_stable),
		cmocka_unit_test(test_check_change_refused),
		cmocka_unit_test(test_check_change_self_removed),
		cmocka_unit_test(test_check_change_accepted),
		cmocka_unit_test_setup_teardown(test_params_refused, setup2, teardown),
		cmocka_unit_test_setup_teardown(test_bootstrap, setup3, teardown),
		cmocka_unit_test_setup_teardown(test_commit_3_from_secondary, setup3, teardown),
		cmocka_unit_test_setup_teardown(test_commit_2_from_secondary, setup2, teardown),
		cmocka_unit_test_setup_teardown(test_commit_from_coordinator, setup3, teardown),
		cmocka_unit_test_setup_teardown(test_commit_sequence, setup3, teardown),
		cmocka_unit_test_setup_teardown(test_validation_refused, setup3, teardown),
		cmocka_unit_test_setup_teardown(test_store_failure_aborts, setup3, teardown),
		cmocka_unit_test_setup_teardown(test_coordinator_store_failure, setup3, teardown),
		cmocka_unit_test_setup_teardown(test_prepare_timeout, setup3, teardown),
		cmocka_unit_test_setup_teardown(test_commit_store_retry, setup3, teardown),
		cmocka_unit_test_setup_teardown(test_apply_failure_reported, setup3, teardown),
		cmocka_unit_test_setup_teardown(test_coordinator_crash_roll_forward, setup3, teardown),
		cmocka_unit_test_setup_teardown(test_proposer_becomes_coordinator, setup3, teardown),
		cmocka_unit_test_setup_teardown(test_deposed_coordinator_own_proposal, setup3, teardown),
		cmocka_unit_test_setup_teardown(test_two_nodes_restart_alone, setup2, teardown),
		cmocka_unit_test_setup_teardown(test_catch_up, setup3, teardown),
		cmocka_unit_test_setup_teardown(test_catch_up_several, setup3, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_transfer_refetched, setup3, teardown),
		cmocka_unit_test_setup_teardown(test_duplicates_and_replays, setup3, teardown),
		cmocka_unit_test_setup_teardown(test_garbage_counted, setup3, teardown),
		cmocka_unit_test_setup_teardown(test_stale_messages_change_nothing, setup3, teardown),
		cmocka_unit_test_setup_teardown(test_resent_propose_during_prepare, setup3, teardown),
		cmocka_unit_test_setup_teardown(test_delayed_state_no_resurrection, setup3, teardown),
		cmocka_unit_test_setup_teardown(test_restarted_proposer_same_req, setup3, teardown),
		cmocka_unit_test_setup_teardown(test_no_coordinator_refused, setup3, teardown),
		cmocka_unit_test_setup_teardown(test_not_heard_refused_unless_forced, setup2, teardown),
		cmocka_unit_test_setup_teardown(test_not_settled_waits, setup3, teardown),
		cmocka_unit_test_setup_teardown(test_propose_timeout_remote, setup3, teardown),
		cmocka_unit_test_setup_teardown(test_propose_timeout_coordinator, setup3, teardown),
		cmocka_unit_test_setup_teardown(test_propose_timeout_remote_coordinator_busy, setup3, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
