/* cfgsync.c - cluster configuration sync core (the protocol is described
 * in cfgsync.h).
 *
 * Owns: the committed and pending documents held in memory, the store,
 * apply and validate requests in flight, the coordinator's proposal, the
 * one document transfer in flight and the peers' last reported states.
 *
 * Shape: every entry point records what it learned and then calls
 * evaluate(), which decides the next step from the state alone (level
 * triggered). So a lost message, a failed store or a crash at any point
 * is recovered by the same code that makes progress normally: the next
 * tick evaluates again. Only one store, one apply, one validation and one
 * transfer are in flight at a time, which bounds memory to a few
 * documents. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include "cfgsync.h"
#include "rng.h"
#include "../conf/conf.h"

/* TLV types, shared by every CFG_MSG_*. */
enum {
	T_GEN = 1, T_BALLOT, T_DIGEST, T_LEN, T_CODE, T_WHY, T_REQ, T_OFF,
	T_COUNT, T_DATA, T_FLAGS, T_CGEN, T_CDG, T_PGEN, T_PBALLOT, T_PDG,
	T_AGEN, T_AOK, T_FLOOR, T_MISSING,
	T_INC, /* RESULT: the incarnation of the proposer it answers */
};

#define CHUNKS_MAX ((CFGSYNC_DOC_MAX + CFGSYNC_CHUNK_BYTES - 1) / CFGSYNC_CHUNK_BYTES)
#define ABORTED_MAX 4

struct doc {
	uint64_t gen, ballot; /* gen 0 with blob = seed; gen 0, no blob = none */
	uint8_t dg[CFGSYNC_DIGEST_LEN];
	uint8_t *blob;
	size_t len;
};

struct peer {
	bool alive, known, heard; /* heard: STATE since we became coordinator */
	uint64_t cgen, pgen, pballot, agen, floor;
	uint8_t cdg[CFGSYNC_DIGEST_LEN], pdg[CFGSYNC_DIGEST_LEN];
	bool aok;
	char aerr[CFGSYNC_WHY_LEN];
	/* last outcome of a proposal it sent us (coordinator), for resends;
	 * a request is named by the proposer's incarnation and its req, as
	 * a restarted proposer numbers its requests afresh */
	uint32_t res_req;
	uint64_t res_inc;
	bool res_set;
	int res_code;
	char res_why[CFGSYNC_WHY_LEN];
	mono_t abort_sent; /* rate limit of ABORT resends */
	/* the newest STATE taken: an older or repeated one is stale */
	bool st_any;
	uint64_t st_inc, st_seq;
};

enum xpurpose { XP_NONE, XP_PREPARE, XP_CATCHUP, XP_ROLL, XP_PROPOSAL };

struct xfer {
	enum xpurpose purpose;
	int from;
	uint8_t dg[CFGSYNC_DIGEST_LEN];
	uint64_t gen, ballot;
	size_t len;        /* 0 until the first DATA */
	uint8_t *buf;
	uint32_t nchunks, nhave, since_req;
	uint8_t have[(CHUNKS_MAX + 7) / 8];
	mono_t next_req;
};

/* A node's duty from the coordinator's PREPARE. */
struct prep {
	bool set;
	int from;
	uint64_t gen, ballot;
	uint8_t dg[CFGSYNC_DIGEST_LEN];
	bool failed; /* store failed: nack sent */
};

enum pphase { PP_NONE, PP_STORING, PP_PREPARE, PP_COMMITTING, PP_ABORTING };
struct prop {
	enum pphase phase;
	struct doc d;
	int origin;     /* node that asked, TND_NO_NODE: roll-forward/bootstrap */
	bool roll;      /* a roll-forward: never aborted (it may be committed) */
	uint32_t req;
	uint64_t inc;   /* origin's incarnation */
	unsigned flags;
	mono_t asked;   /* when the user's request reached the coordinator */
	uint32_t acked; /* nodes holding it durably */
	mono_t started, next_send;
	char why[CFGSYNC_WHY_LEN]; /* abort reason */
	int code;
};

enum ustate { US_NONE, US_FETCH, US_VALIDATING, US_READY };
struct uprop { /* a user's proposal at the coordinator */
	enum ustate state;
	int origin;
	uint64_t inc; /* origin's incarnation */
	uint32_t req;
	unsigned flags;
	uint8_t dg[CFGSYNC_DIGEST_LEN];
	size_t len;
	uint8_t *blob;
	mono_t started;
	uint64_t base_gen; /* committed generation when it arrived */
};

struct mine { /* a proposal this node sent to a remote coordinator */
	bool set;
	uint32_t req;
	unsigned flags;
	struct doc d;
	uint64_t base_gen; /* committed generation when it was asked */
	mono_t next_send, deadline;
};

struct stg { /* the store in flight */
	bool busy;
	enum cfgsync_store_op op;
	struct doc d;
	bool for_prop; /* the coordinator's own pending/commit/drop */
};

struct cfgsync {
	struct cfgsync_params p;
	int self, n;
	uint64_t rng, seq;
	int coord;
	uint64_t epoch;
	uint32_t alive;
	bool heard_any; /* any peer's STATE since start */
	struct doc c, pend; /* durable, as last stored */
	uint64_t floor;
	struct peer peers[TND_NODES_MAX];
	struct stg stg;
	mono_t store_retry_at;
	/* apply */
	bool apply_busy;
	uint64_t apply_gen;      /* in flight */
	bool applied_any;
	uint64_t applied_gen;
	bool apply_ok;
	char apply_err[CFGSYNC_WHY_LEN];
	uint64_t apply_req_gen;  /* last gen an apply was asked for */
	uint8_t apply_req_dg[CFGSYNC_DIGEST_LEN];
	struct xfer x;
	struct doc got;          /* last completed transfer */
	struct prep prep;
	struct prop prop;
	struct uprop u;
	struct mine mine;
	struct { uint64_t gen; uint8_t dg[CFGSYNC_DIGEST_LEN]; } aborted[ABORTED_MAX];
	int n_aborted;
	bool dirty;
	mono_t state_next;
	uint64_t rx_ok, rx_bad, tx;
	/* decode scratch */
	struct msg {
		uint32_t has;
		uint64_t gen, ballot, cgen, pgen, pballot, agen, floor, inc;
		uint8_t dg[CFGSYNC_DIGEST_LEN], cdg[CFGSYNC_DIGEST_LEN],
			pdg[CFGSYNC_DIGEST_LEN];
		uint32_t len, code, req, off;
		uint16_t count;
		uint8_t flags, aok, missing;
		char why[CFGSYNC_WHY_LEN];
		const uint8_t *data;
		size_t data_len;
	} m;
};

#define HAS(t) (1u << (t))


/* --- documents ------------------------------------------------------------ */

void cfgsync_digest(const uint8_t *blob, size_t len,
		    uint8_t out[CFGSYNC_DIGEST_LEN])
{
	crypto_generichash(out, CFGSYNC_DIGEST_LEN, blob, len, NULL, 0);
}

int cfgsync_doc_encode(const struct cfgsync_text *t, uint8_t **blob,
		       size_t *len)
{
	size_t yl = t->yaml ? t->yaml_len : 0, rl = t->ruleset ? t->ruleset_len : 0;
	if (yl > CFGSYNC_DOC_MAX || rl > CFGSYNC_DOC_MAX ||
	    yl + rl + 10 > CFGSYNC_DOC_MAX)
		return TND_ENOSPC;
	if ((yl && memchr(t->yaml, 0, yl)) || (rl && memchr(t->ruleset, 0, rl)))
		return TND_EINVAL;
	size_t n = 4 + yl + 1 + 4 + rl + 1;
	uint8_t *b = malloc(n);
	if (!b)
		return TND_ENOSPC;
	wire_put32(b, (uint32_t)yl);
	if (yl)
		memcpy(b + 4, t->yaml, yl);
	b[4 + yl] = 0;
	wire_put32(b + 5 + yl, (uint32_t)rl);
	if (rl)
		memcpy(b + 9 + yl, t->ruleset, rl);
	b[9 + yl + rl] = 0;
	*blob = b;
	*len = n;
	return 0;
}

int cfgsync_doc_decode(const uint8_t *b, size_t len, struct cfgsync_text *t)
{
	if (!b || len < 10 || len > CFGSYNC_DOC_MAX)
		return TND_EINVAL;
	size_t yl = wire_get32(b);
	if (yl > len - 10 || b[4 + yl] != 0 || memchr(b + 4, 0, yl))
		return TND_EINVAL;
	size_t rl = wire_get32(b + 5 + yl);
	if (rl != len - 10 - yl || b[9 + yl + rl] != 0 ||
	    memchr(b + 9 + yl, 0, rl))
		return TND_EINVAL;
	t->yaml = (const char *)b + 4;
	t->yaml_len = yl;
	t->ruleset = (const char *)b + 9 + yl;
	t->ruleset_len = rl;
	return 0;
}

static void doc_free(struct doc *d)
{
	free(d->blob);
	memset(d, 0, sizeof(*d));
}

/* Copy into `d` (replacing it). */
static int doc_set(struct doc *d, uint64_t gen, uint64_t ballot,
		   const uint8_t *dg, const uint8_t *blob, size_t len)
{
	uint8_t *b = NULL;
	if (len) {
		b = malloc(len);
		if (!b)
			return TND_ENOSPC;
		memcpy(b, blob, len);
	}
	free(d->blob);
	d->gen = gen;
	d->ballot = ballot;
	memcpy(d->dg, dg, CFGSYNC_DIGEST_LEN);
	d->blob = b;
	d->len = len;
	return 0;
}

static void doc_move(struct doc *to, struct doc *from)
{
	free(to->blob);
	*to = *from;
	memset(from, 0, sizeof(*from));
}

static bool dg_eq(const uint8_t *a, const uint8_t *b)
{
	return memcmp(a, b, CFGSYNC_DIGEST_LEN) == 0;
}

static const char *dg_short(const uint8_t *dg, char buf[13])
{
	for (int i = 0; i < 6; i++)
		snprintf(buf + 2 * i, 3, "%02x", dg[i]);
	return buf;
}

/* --- settings that cannot change in place ------------------------------- */


int cfgsync_check_change(const struct tnd_conf *o, const struct tnd_conf *nw,
			 const char *self_name, char *why, size_t why_len)
{
	if (self_name && conf_node_index(o, self_name) >= 0 &&
	    conf_node_index(nw, self_name) < 0)
		return tnd_refuse(why, why_len, TND_EREFUSED,
			      "the change removes node %s, the node it was applied on; remove a node from another node",
			      self_name);
	if (o->cluster_id != nw->cluster_id)
		return tnd_refuse(why, why_len, TND_EREFUSED,
			      "cluster.id cannot change in place (%u -> %u): every node must restart with the new id",
			      o->cluster_id, nw->cluster_id);
	if (strcmp(o->cluster_name, nw->cluster_name) != 0)
		return tnd_refuse(why, why_len, TND_EREFUSED,
			      "cluster.name cannot change in place (%s -> %s)",
			      o->cluster_name, nw->cluster_name);
	if (o->port != nw->port)
		return tnd_refuse(why, why_len, TND_EREFUSED,
			      "cluster.port cannot change in place (%u -> %u): the control sockets are bound to it",
			      o->port, nw->port);
	if (strcmp(o->key_file, nw->key_file) != 0)
		return tnd_refuse(why, why_len, TND_EREFUSED,
			      "cluster.key_file cannot change in place: the traffic key is derived at start");
	if (o->n_nodes != nw->n_nodes)
		return tnd_refuse(why, why_len, TND_EREFUSED,
			      "the node list cannot change in place (%d -> %d nodes): nodes are numbered by their position",
			      o->n_nodes, nw->n_nodes);
	for (int i = 0; i < o->n_nodes; i++) {
		const struct tnd_node_conf *a = &o->nodes[i], *b = &nw->nodes[i];
		if (strcmp(a->name, b->name) != 0)
			return tnd_refuse(why, why_len, TND_EREFUSED,
				      "the node list cannot change in place (node %d: %s -> %s)",
				      i, a->name, b->name);
		if (a->n_links != b->n_links ||
		    memcmp(a->links, b->links, sizeof(a->links[0]) * (size_t)a->n_links) != 0)
			return tnd_refuse(why, why_len, TND_EREFUSED,
				      "the links of node %s cannot change in place: its sockets are bound to them",
				      a->name);
	}
	return 0;
}

/* --- actions ----------------------------------------------------------------- */

void cfgsync_actions_reset(struct cfgsync_actions *out)
{
	out->n = 0;
	out->n_dropped = 0;
}

static struct cfgsync_act *act_add(struct cfgsync_actions *out,
				   enum cfgsync_act_type t)
{
	if (out->n >= CFGSYNC_ACTIONS_MAX) {
		out->n_dropped++;
		return NULL;
	}
	struct cfgsync_act *a = &out->a[out->n++];
	a->type = t;
	a->blob = NULL;
	a->blob_len = 0;
	a->why[0] = 0;
	return a;
}

static void emit(struct cfgsync_actions *out, enum cfgsync_level lvl,
		 const char *name, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void emit(struct cfgsync_actions *out, enum cfgsync_level lvl,
		 const char *name, const char *fmt, ...)
{
	struct cfgsync_act *a = act_add(out, CFA_EVENT);
	if (!a)
		return;
	a->level = lvl;
	va_list ap;
	va_start(ap, fmt);
	tnd_event_vfmt(a->name, sizeof(a->name), name, a->kv, sizeof(a->kv), fmt, ap);
	va_end(ap);
}

static void act_doc(struct cfgsync_act *a, const struct doc *d)
{
	a->gen = d->gen;
	a->ballot = d->ballot;
	memcpy(a->digest, d->dg, CFGSYNC_DIGEST_LEN);
	a->blob = d->blob;
	a->blob_len = d->len;
}

/* Sends: begin, put TLVs, finish. */
struct sendctx {
	struct cfgsync_act *a;
	struct tlvw w;
	struct wire_hdr h;
};

static bool send_begin(struct cfgsync *cs, struct cfgsync_actions *out,
		       struct sendctx *s, int to, uint8_t type)
{
	s->a = act_add(out, CFA_SEND);
	if (!s->a)
		return false;
	memset(&s->h, 0, sizeof(s->h));
	s->h.version = cs->p.proto;
	s->h.cluster_id = cs->p.cluster_id;
	s->h.sender = (uint8_t)cs->self;
	s->h.type = type;
	s->h.incarnation = cs->p.incarnation;
	s->h.seq = CFGSYNC_SEQ_SPACE | ++cs->seq;
	s->a->to = to;
	tlvw_init(&s->w, s->a->pkt + WIRE_HDR_LEN,
		  WIRE_MTU - WIRE_HDR_LEN - WIRE_TAG_LEN);
	return true;
}

static void send_finish(struct cfgsync *cs, struct cfgsync_actions *out,
			struct sendctx *s)
{
	size_t body = 0;
	if (tlvw_finish(&s->w, &body) != 0) {
		out->n--; /* the bounds above make this unreachable */
		emit(out, CFG_LVL_ERROR, "core.invariant", "cfgsync_msg_too_large=1");
		return;
	}
	s->h.body_len = (uint16_t)body;
	wire_hdr_encode(&s->h, s->a->pkt);
	s->a->len = WIRE_HDR_LEN + body;
	cs->tx++;
}

/* --- helpers on the cluster's state ---------------------------------------- */

static bool is_coord(const struct cfgsync *cs)
{
	return cs->coord == cs->self;
}

static bool peer_live(const struct cfgsync *cs, int x)
{
	return x != cs->self && x >= 0 && x < cs->n && cs->peers[x].alive;
}

static uint32_t live_mask(const struct cfgsync *cs)
{
	uint32_t m = 1u << cs->self;
	for (int x = 0; x < cs->n; x++)
		if (peer_live(cs, x))
			m |= 1u << x;
	return m;
}

static bool settled(const struct cfgsync *cs, unsigned flags)
{
	if (!is_coord(cs))
		return false;
	for (int x = 0; x < cs->n; x++)
		if (peer_live(cs, x) && !cs->peers[x].heard)
			return false;
	if (cs->n > 1 && !cs->heard_any && !(flags & CFGSYNC_FORCE))
		return false;
	return true;
}

/* Highest committed generation known (self and live peers' reports). */
static uint64_t max_committed(const struct cfgsync *cs, int *who)
{
	uint64_t g = cs->c.gen;
	int w = cs->self;
	for (int x = 0; x < cs->n; x++) {
		const struct peer *p = &cs->peers[x];
		if (!peer_live(cs, x) || !p->known)
			continue;
		if (p->cgen > g || (p->cgen == g && g > 0 && x == cs->coord &&
				     w != cs->coord)) {
			g = p->cgen;
			w = x;
		}
	}
	if (who)
		*who = w;
	return g;
}

static uint64_t max_gen_seen(const struct cfgsync *cs)
{
	uint64_t g = cs->floor;
	if (cs->c.gen > g)
		g = cs->c.gen;
	if (cs->pend.gen > g)
		g = cs->pend.gen;
	for (int x = 0; x < cs->n; x++) {
		const struct peer *p = &cs->peers[x];
		if (!p->known)
			continue;
		if (p->cgen > g)
			g = p->cgen;
		if (p->pgen > g)
			g = p->pgen;
		if (p->floor > g)
			g = p->floor;
	}
	for (int i = 0; i < cs->n_aborted; i++)
		if (cs->aborted[i].gen > g)
			g = cs->aborted[i].gen;
	return g;
}

/* A peer (live or not) that reported a committed generation above ours. */
static int newer_elsewhere(const struct cfgsync *cs)
{
	for (int x = 0; x < cs->n; x++)
		if (x != cs->self && cs->peers[x].known &&
		    cs->peers[x].cgen > cs->c.gen)
			return x;
	return TND_NO_NODE;
}

static bool was_aborted(const struct cfgsync *cs, uint64_t gen,
			const uint8_t *dg)
{
	for (int i = 0; i < cs->n_aborted; i++)
		if (cs->aborted[i].gen == gen && dg_eq(cs->aborted[i].dg, dg))
			return true;
	return false;
}

/* A blob we hold with this digest, or NULL. */
static const struct doc *find_blob(const struct cfgsync *cs, const uint8_t *dg,
				   size_t *len, const uint8_t **blob)
{
	static const struct doc none;
	const struct doc *cands[] = { &cs->c, &cs->pend, &cs->got, &cs->prop.d,
				      &cs->stg.d, &cs->mine.d };
	for (size_t i = 0; i < sizeof(cands) / sizeof(cands[0]); i++)
		if (cands[i]->blob && dg_eq(cands[i]->dg, dg)) {
			*len = cands[i]->len;
			*blob = cands[i]->blob;
			return cands[i];
		}
	if (cs->u.blob && dg_eq(cs->u.dg, dg)) {
		*len = cs->u.len;
		*blob = cs->u.blob;
		return &none;
	}
	return NULL;
}

/* Copy a blob we hold into d. */
static bool take_blob(const struct cfgsync *cs, const uint8_t *dg,
		      uint64_t gen, uint64_t ballot, struct doc *d)
{
	size_t len;
	const uint8_t *b;
	if (!find_blob(cs, dg, &len, &b))
		return false;
	return doc_set(d, gen, ballot, dg, b, len) == 0;
}

/* --- messages out ---------------------------------------------------------- */

static void send_state(struct cfgsync *cs, struct cfgsync_actions *out, int to)
{
	struct sendctx s;
	if (!send_begin(cs, out, &s, to, CFG_MSG_STATE))
		return;
	tlvw_u64(&s.w, T_CGEN, cs->c.gen);
	tlvw_put(&s.w, T_CDG, cs->c.dg, CFGSYNC_DIGEST_LEN);
	if (cs->pend.blob) {
		tlvw_u64(&s.w, T_PGEN, cs->pend.gen);
		tlvw_u64(&s.w, T_PBALLOT, cs->pend.ballot);
		tlvw_put(&s.w, T_PDG, cs->pend.dg, CFGSYNC_DIGEST_LEN);
	}
	tlvw_u64(&s.w, T_AGEN, cs->applied_gen);
	tlvw_u8(&s.w, T_AOK, cs->applied_any && cs->apply_ok);
	if (!cs->apply_ok && cs->apply_err[0])
		tlvw_str(&s.w, T_WHY, cs->apply_err);
	tlvw_u64(&s.w, T_FLOOR, cs->floor);
	send_finish(cs, out, &s);
}

static void send_states(struct cfgsync *cs, struct cfgsync_actions *out,
			mono_t now)
{
	for (int x = 0; x < cs->n; x++)
		if (peer_live(cs, x))
			send_state(cs, out, x);
	cs->dirty = false;
	cs->state_next = now + MS_TO_MONO(cs->p.state_ms) +
			 (mono_t)(rng_next(&cs->rng) % (uint64_t)MS_TO_MONO(cs->p.state_ms / 8 + 1));
}

static void send_gdg(struct cfgsync *cs, struct cfgsync_actions *out, int to,
		     uint8_t type, const struct doc *d, bool with_len)
{
	struct sendctx s;
	if (!send_begin(cs, out, &s, to, type))
		return;
	tlvw_u64(&s.w, T_GEN, d->gen);
	tlvw_u64(&s.w, T_BALLOT, d->ballot);
	tlvw_put(&s.w, T_DIGEST, d->dg, CFGSYNC_DIGEST_LEN);
	if (with_len)
		tlvw_u32(&s.w, T_LEN, (uint32_t)d->len);
	send_finish(cs, out, &s);
}

static void send_ack(struct cfgsync *cs, struct cfgsync_actions *out, int to,
		     uint64_t gen, uint64_t ballot, const uint8_t *dg, int code,
		     const char *why)
{
	struct sendctx s;
	if (!send_begin(cs, out, &s, to, CFG_MSG_ACK))
		return;
	tlvw_u64(&s.w, T_GEN, gen);
	tlvw_u64(&s.w, T_BALLOT, ballot);
	tlvw_put(&s.w, T_DIGEST, dg, CFGSYNC_DIGEST_LEN);
	tlvw_u32(&s.w, T_CODE, (uint32_t)-code);
	if (why && why[0])
		tlvw_str(&s.w, T_WHY, why);
	send_finish(cs, out, &s);
}

/* `inc`: the proposer's incarnation, so that a proposer that restarted
 * (and numbers its requests from 1 again) never takes an outcome meant
 * for its previous life. */
static void send_result(struct cfgsync *cs, struct cfgsync_actions *out,
			int to, uint64_t inc, uint32_t req, int code,
			const char *why)
{
	struct sendctx s;
	if (!send_begin(cs, out, &s, to, CFG_MSG_RESULT))
		return;
	tlvw_u32(&s.w, T_REQ, req);
	tlvw_u32(&s.w, T_CODE, (uint32_t)-code);
	tlvw_str(&s.w, T_WHY, why);
	tlvw_u64(&s.w, T_INC, inc);
	send_finish(cs, out, &s);
}

static void send_fetch(struct cfgsync *cs, struct cfgsync_actions *out,
		       mono_t now)
{
	struct xfer *x = &cs->x;
	uint32_t first = 0;
	if (x->len) {
		while (first < x->nchunks && (x->have[first / 8] & (1u << (first % 8))))
			first++;
		if (first >= x->nchunks)
			return;
	}
	struct sendctx s;
	if (!send_begin(cs, out, &s, x->from, CFG_MSG_FETCH))
		return;
	tlvw_put(&s.w, T_DIGEST, x->dg, CFGSYNC_DIGEST_LEN);
	tlvw_u32(&s.w, T_OFF, first * CFGSYNC_CHUNK_BYTES);
	tlvw_u16(&s.w, T_COUNT, CFGSYNC_WINDOW_CHUNKS);
	send_finish(cs, out, &s);
	x->since_req = 0;
	x->next_req = now + MS_TO_MONO(cs->p.retry_ms);
}

/* --- local results ---------------------------------------------------------- */

/* The outcome of a user's proposal, to whoever asked. */
static void finish_user(struct cfgsync *cs, struct cfgsync_actions *out,
			int origin, uint64_t inc, uint32_t req, int code,
			const char *why)
{
	if (origin == cs->self) {
		struct cfgsync_act *a = act_add(out, CFA_RESULT);
		if (a) {
			a->req = req;
			a->code = code;
			snprintf(a->why, sizeof(a->why), "%s", why);
		}
		if (cs->mine.set && cs->mine.req == req) {
			doc_free(&cs->mine.d);
			cs->mine.set = false;
		}
	} else if (origin >= 0 && origin < cs->n) {
		struct peer *p = &cs->peers[origin];
		p->res_set = true;
		p->res_req = req;
		p->res_inc = inc;
		p->res_code = code;
		snprintf(p->res_why, sizeof(p->res_why), "%s", why);
		send_result(cs, out, origin, inc, req, code, why);
	}
}

static void u_clear(struct cfgsync *cs)
{
	free(cs->u.blob);
	memset(&cs->u, 0, sizeof(cs->u));
}

/* --- stores ---------------------------------------------------------------- */

static void store(struct cfgsync *cs, struct cfgsync_actions *out,
		  enum cfgsync_store_op op, struct doc *d, bool for_prop)
{
	/* d is moved into the store slot so its blob outlives the action. */
	cs->stg.busy = true;
	cs->stg.op = op;
	cs->stg.for_prop = for_prop;
	doc_move(&cs->stg.d, d);
	struct cfgsync_act *a = act_add(out, CFA_STORE);
	if (!a) { /* cannot ask: retry later */
		cs->stg.busy = false;
		doc_free(&cs->stg.d);
		return;
	}
	a->op = op;
	act_doc(a, &cs->stg.d);
}

/* --- the coordinator's proposal ----------------------------------------------- */

static void prop_clear(struct cfgsync *cs)
{
	doc_free(&cs->prop.d);
	memset(&cs->prop, 0, sizeof(cs->prop));
}

/* Start phase 2 for `d` (moved in). */
static void prop_start(struct cfgsync *cs, struct cfgsync_actions *out,
		       struct doc *d, int origin, uint32_t req, mono_t now,
		       const char *kind)
{
	char b[13];
	prop_clear(cs);
	cs->prop.origin = origin;
	cs->prop.req = req;
	cs->prop.started = now;
	cs->prop.phase = PP_STORING;
	cs->prop.roll = strcmp(kind, "roll_forward") == 0;
	struct doc tmp = { 0 };
	doc_set(&tmp, d->gen, d->ballot, d->dg, d->blob, d->len);
	doc_move(&cs->prop.d, d);
	emit(out, CFG_LVL_INFO, "config.prepare", "gen=%llu digest=%s ballot=%llu kind=%s",
	     (unsigned long long)tmp.gen, dg_short(tmp.dg, b),
	     (unsigned long long)tmp.ballot, kind);
	store(cs, out, CFS_PENDING, &tmp, true);
	doc_free(&tmp);
}

static void prop_abort(struct cfgsync *cs, struct cfgsync_actions *out,
		       int code, const char *why)
{
	char b[13];
	emit(out, CFG_LVL_WARN, "config.abort", "gen=%llu digest=%s reason=\"%s\"",
	     (unsigned long long)cs->prop.d.gen, dg_short(cs->prop.d.dg, b), why);
	cs->prop.phase = PP_ABORTING;
	cs->prop.code = code;
	snprintf(cs->prop.why, sizeof(cs->prop.why), "%s", why);
	int k;
	if (cs->n_aborted < ABORTED_MAX) {
		k = cs->n_aborted++;
	} else {
		memmove(cs->aborted, cs->aborted + 1,
			sizeof(cs->aborted[0]) * (ABORTED_MAX - 1));
		k = ABORTED_MAX - 1;
	}
	cs->aborted[k].gen = cs->prop.d.gen;
	memcpy(cs->aborted[k].dg, cs->prop.d.dg, CFGSYNC_DIGEST_LEN);
	/* prop_drive() drops our pending copy, then tells the others */
}

static void prop_drive(struct cfgsync *cs, struct cfgsync_actions *out,
		       mono_t now)
{
	struct prop *pp = &cs->prop;
	/* After a failed store the disk gets retry_ms of rest (like every
	 * other store here), rather than being asked again at once, which a
	 * driver that answers synchronously would turn into a busy loop. */
	bool may_store = !cs->stg.busy && now >= cs->store_retry_at;
	if (pp->phase == PP_ABORTING && !cs->stg.busy) {
		if (cs->pend.blob && cs->pend.gen == pp->d.gen &&
		    dg_eq(cs->pend.dg, pp->d.dg)) {
			if (!may_store)
				return;
			struct doc tmp = { 0 };
			doc_set(&tmp, cs->pend.gen, cs->pend.ballot, cs->pend.dg, NULL, 0);
			store(cs, out, CFS_DROP, &tmp, true);
			return;
		}
		for (int x = 0; x < cs->n; x++)
			if (peer_live(cs, x))
				send_gdg(cs, out, x, CFG_MSG_ABORT, &pp->d, false);
		if (pp->origin != TND_NO_NODE)
			finish_user(cs, out, pp->origin, pp->inc, pp->req, pp->code,
				    pp->why);
		prop_clear(cs);
		cs->dirty = true;
		return;
	}
	if (pp->phase != PP_PREPARE)
		return;
	uint32_t need = live_mask(cs);
	if ((pp->acked & need) == need) {
		if (!may_store)
			return;
		pp->phase = PP_COMMITTING;
		struct doc tmp = { 0 };
		doc_set(&tmp, pp->d.gen, pp->d.ballot, pp->d.dg, pp->d.blob, pp->d.len);
		store(cs, out, CFS_COMMIT, &tmp, true);
		doc_free(&tmp);
		if (!cs->stg.busy)
			pp->phase = PP_PREPARE;
		return;
	}
	if (now - pp->started >= MS_TO_MONO(cs->p.prepare_timeout_ms)) {
		char why[CFGSYNC_WHY_LEN];
		int k = 0;
		k += snprintf(why, sizeof(why), "prepare timed out waiting for node");
		for (int x = 0; x < cs->n && k < (int)sizeof(why) - 8; x++)
			if ((need & ~pp->acked) & (1u << x))
				k += snprintf(why + k, sizeof(why) - (size_t)k, " %d", x);
		if (!pp->roll) {
			prop_abort(cs, out, TND_ETIMEDOUT, why);
			return;
		}
		/* A roll-forward may already be committed somewhere: it
		 * is finished, never abandoned; say why it is stuck. */
		emit(out, CFG_LVL_ERROR, "config.stuck", "gen=%llu reason=\"%s\"",
		     (unsigned long long)pp->d.gen, why);
		pp->started = now;
	}
	if (now >= pp->next_send) {
		for (int x = 0; x < cs->n; x++)
			if (peer_live(cs, x) && !(pp->acked & (1u << x)))
				send_gdg(cs, out, x, CFG_MSG_PREPARE, &pp->d, true);
		pp->next_send = now + MS_TO_MONO(cs->p.retry_ms);
	}
}

/* --- transfers ------------------------------------------------------------- */

static void xfer_stop(struct cfgsync *cs)
{
	free(cs->x.buf);
	memset(&cs->x, 0, sizeof(cs->x));
	cs->x.purpose = XP_NONE;
}

static void xfer_want(struct cfgsync *cs, struct cfgsync_actions *out,
		      enum xpurpose why, int from, const uint8_t *dg,
		      uint64_t gen, uint64_t ballot, mono_t now)
{
	struct xfer *x = &cs->x;
	if (x->purpose != XP_NONE && dg_eq(x->dg, dg)) {
		x->purpose = why;
		x->gen = gen;
		x->ballot = ballot;
		if (x->from != from && now >= x->next_req)
			x->from = from;
		if (now >= x->next_req)
			send_fetch(cs, out, now);
		return;
	}
	xfer_stop(cs);
	x->purpose = why;
	x->from = from;
	memcpy(x->dg, dg, CFGSYNC_DIGEST_LEN);
	x->gen = gen;
	x->ballot = ballot;
	send_fetch(cs, out, now);
}

/* --- evaluate: the next step from the state ------------------------------- */

static void node_duties(struct cfgsync *cs, struct cfgsync_actions *out,
			mono_t now);
static void coord_duties(struct cfgsync *cs, struct cfgsync_actions *out,
			 mono_t now);

static void evaluate(struct cfgsync *cs, struct cfgsync_actions *out, mono_t now)
{
	if (cs->store_retry_at && now >= cs->store_retry_at)
		cs->store_retry_at = 0;
	if (is_coord(cs))
		prop_drive(cs, out, now);
	if (!cs->stg.busy && now >= cs->store_retry_at)
		node_duties(cs, out, now);
	if (!cs->stg.busy && now >= cs->store_retry_at && is_coord(cs))
		coord_duties(cs, out, now);
	/* apply the committed document once per change */
	if (!cs->apply_busy && cs->c.blob &&
	    (cs->apply_req_gen != cs->c.gen || !dg_eq(cs->apply_req_dg, cs->c.dg)) &&
	    cs->c.gen > 0) {
		struct cfgsync_act *a = act_add(out, CFA_APPLY);
		if (a) {
			act_doc(a, &cs->c);
			cs->apply_busy = true;
			cs->apply_gen = cs->c.gen;
			cs->apply_req_gen = cs->c.gen;
			memcpy(cs->apply_req_dg, cs->c.dg, CFGSYNC_DIGEST_LEN);
		}
	}
	/* a remote proposal of ours: (re)send to the coordinator */
	if (cs->mine.set && cs->c.gen > cs->mine.base_gen &&
	    dg_eq(cs->c.dg, cs->mine.d.dg)) {
		/* It is committed here, durably, whoever finished it (a
		 * coordinator that rolled it forward sends no RESULT). */
		char why[CFGSYNC_WHY_LEN];
		snprintf(why, sizeof(why), "committed as generation %llu",
			 (unsigned long long)cs->c.gen);
		finish_user(cs, out, cs->self, cs->p.incarnation, cs->mine.req, 0, why);
	}
	if (cs->mine.set) {
		if (now >= cs->mine.deadline) {
			finish_user(cs, out, cs->self, cs->p.incarnation, cs->mine.req,
				    TND_ETIMEDOUT,
				    "no answer from the coordinator (group 0 primary)");
		} else if (now >= cs->mine.next_send &&
			   !(cs->coord >= 0 && cs->coord != cs->self &&
			     peer_live(cs, cs->coord))) {
			/* nobody to send to now: look again later */
			cs->mine.next_send = now + MS_TO_MONO(cs->p.retry_ms);
		} else if (now >= cs->mine.next_send) {
			struct sendctx s;
			if (send_begin(cs, out, &s, cs->coord, CFG_MSG_PROPOSE)) {
				tlvw_u32(&s.w, T_REQ, cs->mine.req);
				tlvw_put(&s.w, T_DIGEST, cs->mine.d.dg, CFGSYNC_DIGEST_LEN);
				tlvw_u32(&s.w, T_LEN, (uint32_t)cs->mine.d.len);
				tlvw_u8(&s.w, T_FLAGS, (uint8_t)cs->mine.flags);
				send_finish(cs, out, &s);
			}
			cs->mine.next_send = now + MS_TO_MONO(cs->p.retry_ms);
		}
	}
	if (cs->dirty)
		send_states(cs, out, now);
}

static void node_duties(struct cfgsync *cs, struct cfgsync_actions *out,
			mono_t now)
{
	char b[13];
	int who;
	uint64_t mc = max_committed(cs, &who);
	bool xfer_used = false;

	/* 1. A pending generation at or below a known committed one is
	 * resolved: committed from our copy when it is that document,
	 * dropped otherwise. */
	if (cs->pend.blob && cs->pend.gen <= mc) {
		const uint8_t *cdg = who == cs->self ? cs->c.dg : cs->peers[who].cdg;
		if (cs->pend.gen == mc && dg_eq(cs->pend.dg, cdg) &&
		    cs->c.gen < mc) {
			struct doc tmp = { 0 };
			doc_set(&tmp, cs->pend.gen, cs->pend.ballot, cs->pend.dg,
				cs->pend.blob, cs->pend.len);
			store(cs, out, CFS_COMMIT, &tmp, false);
			doc_free(&tmp);
			return;
		}
		if (!(is_coord(cs) && cs->prop.phase != PP_NONE &&
		      cs->prop.d.gen == cs->pend.gen)) {
			struct doc tmp = { 0 };
			doc_set(&tmp, cs->pend.gen, cs->pend.ballot, cs->pend.dg, NULL, 0);
			emit(out, CFG_LVL_INFO, "config.pending_dropped",
			     "gen=%llu digest=%s reason=superseded committed=%llu",
			     (unsigned long long)tmp.gen, dg_short(tmp.dg, b),
			     (unsigned long long)mc);
			store(cs, out, CFS_DROP, &tmp, false);
			return;
		}
	}
	/* 2. Catch up: a newer committed generation elsewhere, or the
	 * coordinator's differs at the same generation (split brain). */
	if (who != cs->self && mc > 0) {
		const struct peer *p = &cs->peers[who];
		if (mc > cs->c.gen || !dg_eq(p->cdg, cs->c.dg)) {
			struct doc tmp = { 0 };
			if (take_blob(cs, p->cdg, mc, 0, &tmp)) {
				if (mc == cs->c.gen)
					emit(out, CFG_LVL_WARN, "config.conflict",
					     "gen=%llu ours=%s adopting_from=%d",
					     (unsigned long long)mc,
					     dg_short(cs->c.dg, b), who);
				else if (cs->c.gen == 0)
					emit(out, CFG_LVL_INFO, "config.adopted",
					     "gen=%llu from=%d differs_from_local_file=%s",
					     (unsigned long long)mc, who,
					     dg_eq(tmp.dg, cs->c.dg) ? "no" : "yes");
				store(cs, out, CFS_COMMIT, &tmp, false);
				doc_free(&tmp);
				return;
			}
			xfer_want(cs, out, XP_CATCHUP, who, p->cdg, mc, 0, now);
			xfer_used = true;
		}
	}
	/* 3. The coordinator's PREPARE: hold it durably, then ack. */
	struct prep *pr = &cs->prep;
	if (pr->set && !pr->failed) {
		if (pr->gen <= cs->c.gen) {
			pr->set = false;
		} else if (cs->pend.blob && cs->pend.gen == pr->gen &&
			   dg_eq(cs->pend.dg, pr->dg) && cs->pend.ballot >= pr->ballot) {
			send_ack(cs, out, pr->from, pr->gen, pr->ballot, pr->dg, 0, NULL);
			pr->set = false;
		} else {
			struct doc tmp = { 0 };
			if (take_blob(cs, pr->dg, pr->gen, pr->ballot, &tmp)) {
				store(cs, out, CFS_PENDING, &tmp, false);
				doc_free(&tmp);
				return;
			}
			if (!xfer_used) {
				xfer_want(cs, out, XP_PREPARE, pr->from, pr->dg,
					  pr->gen, pr->ballot, now);
				xfer_used = true;
			}
		}
	}
	if (!xfer_used && cs->x.purpose != XP_NONE && cs->x.purpose != XP_ROLL &&
	    cs->x.purpose != XP_PROPOSAL)
		xfer_stop(cs); /* nothing needs it any more */
}

static void coord_duties(struct cfgsync *cs, struct cfgsync_actions *out,
			 mono_t now)
{
	struct uprop *u = &cs->u;
	/* A user's proposal: fetch, then validate (needs no settling). */
	if (u->state == US_FETCH) {
		size_t len;
		const uint8_t *b;
		if (find_blob(cs, u->dg, &len, &b) && !u->blob) {
			u->blob = malloc(len);
			if (u->blob) {
				memcpy(u->blob, b, len);
				u->len = len;
			}
		}
		if (u->blob) {
			u->state = US_VALIDATING;
			struct cfgsync_act *a = act_add(out, CFA_VALIDATE);
			if (a) {
				a->gen = 0;
				memcpy(a->digest, u->dg, CFGSYNC_DIGEST_LEN);
				a->blob = u->blob;
				a->blob_len = u->len;
			}
		} else if (cs->x.purpose == XP_NONE || cs->x.purpose == XP_PROPOSAL) {
			xfer_want(cs, out, XP_PROPOSAL, u->origin, u->dg, 0, 0, now);
		}
	}
	if (u->state != US_NONE && now - u->started >= MS_TO_MONO(cs->p.propose_timeout_ms)) {
		finish_user(cs, out, u->origin, u->inc, u->req, TND_ETIMEDOUT,
			    "the coordinator could not complete the change in time");
		u_clear(cs);
	}
	if (cs->prop.phase != PP_NONE)
		return;
	unsigned flags = u->state != US_NONE ? u->flags : 0;
	if (!settled(cs, flags))
		return;
	int who;
	uint64_t mc = max_committed(cs, &who);
	if (who != cs->self || mc > cs->c.gen)
		return; /* catching up first */
	/* A node that is not live now told us of a newer generation: we are
	 * stale, and changing anything now would supersede it unseen. */
	if (!(flags & CFGSYNC_FORCE) && newer_elsewhere(cs) != TND_NO_NODE)
		return;
	/* Peers still holding a proposal we aborted: tell them again. */
	for (int x = 0; x < cs->n; x++) {
		struct peer *p = &cs->peers[x];
		if (peer_live(cs, x) && p->known && p->pgen > mc &&
		    was_aborted(cs, p->pgen, p->pdg) && now >= p->abort_sent) {
			struct doc d = { .gen = p->pgen, .ballot = p->pballot };
			memcpy(d.dg, p->pdg, CFGSYNC_DIGEST_LEN);
			send_gdg(cs, out, x, CFG_MSG_ABORT, &d, false);
			p->abort_sent = now + MS_TO_MONO(cs->p.retry_ms);
		}
	}
	/* Roll forward the highest unresolved pending proposal. */
	int rw = TND_NO_NODE;
	uint64_t rg = 0, rb = 0;
	const uint8_t *rdg = NULL;
	if (cs->pend.blob && cs->pend.gen > mc &&
	    !was_aborted(cs, cs->pend.gen, cs->pend.dg)) {
		rw = cs->self;
		rg = cs->pend.gen;
		rb = cs->pend.ballot;
		rdg = cs->pend.dg;
	}
	for (int x = 0; x < cs->n; x++) {
		struct peer *p = &cs->peers[x];
		if (!peer_live(cs, x) || !p->known || !p->pgen || p->pgen <= mc ||
		    was_aborted(cs, p->pgen, p->pdg))
			continue;
		if (p->pgen > rg || (p->pgen == rg && p->pballot > rb)) {
			rw = x;
			rg = p->pgen;
			rb = p->pballot;
			rdg = p->pdg;
		}
	}
	if (rw != TND_NO_NODE) {
		struct doc d = { 0 };
		if (take_blob(cs, rdg, rg, cs->epoch, &d)) {
			if (cs->x.purpose == XP_ROLL)
				xfer_stop(cs);
			prop_start(cs, out, &d, TND_NO_NODE, 0, now, "roll_forward");
			doc_free(&d);
		} else {
			xfer_want(cs, out, XP_ROLL, rw, rdg, rg, rb, now);
		}
		return;
	}
	/* Bootstrap: nobody holds a cluster generation yet: ours (the file
	 * this coordinator booted with) becomes generation 1. */
	if (mc == 0 && cs->c.gen == 0 && cs->c.blob) {
		struct doc d = { 0 };
		doc_set(&d, max_gen_seen(cs) + 1, cs->epoch, cs->c.dg, cs->c.blob,
			cs->c.len);
		prop_start(cs, out, &d, TND_NO_NODE, 0, now, "bootstrap");
		doc_free(&d);
		return;
	}
	/* A validated user proposal. */
	if (u->state == US_READY) {
		if (dg_eq(u->dg, cs->c.dg)) {
			/* Committed meanwhile (a roll-forward of this very
			 * request after a change of coordinator), or asked
			 * for what was already current. */
			char why[CFGSYNC_WHY_LEN];
			snprintf(why, sizeof(why),
				 cs->c.gen > u->base_gen ? "committed as generation %llu"
				 : "no change: this is the current configuration (generation %llu)",
				 (unsigned long long)cs->c.gen);
			finish_user(cs, out, u->origin, u->inc, u->req, 0, why);
			u_clear(cs);
			return;
		}
		struct doc d = { 0 };
		doc_set(&d, max_gen_seen(cs) + 1, cs->epoch, u->dg, u->blob, u->len);
		int origin = u->origin;
		uint32_t req = u->req;
		uint64_t inc = u->inc;
		unsigned fl = u->flags;
		mono_t asked = u->started;
		u_clear(cs);
		prop_start(cs, out, &d, origin, req, now, "change");
		cs->prop.inc = inc;
		cs->prop.flags = fl;
		cs->prop.asked = asked;
		doc_free(&d);
	}
}

/* --- public entry points ------------------------------------------------------ */

void cfgsync_params_default(struct cfgsync_params *p)
{
	memset(p, 0, sizeof(*p));
	p->proto = WIRE_PROTO_MAX;
	p->state_ms = 1000;
	p->retry_ms = 300;
	p->prepare_timeout_ms = 30000;
	p->propose_timeout_ms = 60000;
}

struct cfgsync *cfgsync_new(const struct cfgsync_params *p, mono_t now)
{
	if (p->n_nodes < 1 || p->n_nodes > TND_NODES_MAX || p->self < 0 ||
	    p->self >= p->n_nodes || !p->committed_blob || !p->committed_len ||
	    p->committed_len > CFGSYNC_DOC_MAX || p->state_ms == 0 ||
	    p->retry_ms == 0 ||
	    (p->pending_gen && (!p->pending_blob || !p->pending_len ||
				p->pending_len > CFGSYNC_DOC_MAX)))
		return NULL;
	struct cfgsync *cs = calloc(1, sizeof(*cs));
	if (!cs)
		return NULL;
	cs->p = *p;
	cs->p.committed_blob = cs->p.pending_blob = NULL;
	cs->self = p->self;
	cs->n = p->n_nodes;
	cs->rng = p->seed | 1;
	cs->coord = TND_NO_NODE;
	uint8_t dg[CFGSYNC_DIGEST_LEN];
	cfgsync_digest(p->committed_blob, p->committed_len, dg);
	if (doc_set(&cs->c, p->committed_gen, 0, dg, p->committed_blob,
		    p->committed_len) != 0)
		goto fail;
	if (p->pending_gen && p->pending_gen > p->committed_gen) {
		cfgsync_digest(p->pending_blob, p->pending_len, dg);
		if (doc_set(&cs->pend, p->pending_gen, p->pending_ballot, dg,
			    p->pending_blob, p->pending_len) != 0)
			goto fail;
	}
	cs->floor = p->gen_floor;
	if (cs->c.gen > cs->floor)
		cs->floor = cs->c.gen;
	if (cs->pend.gen > cs->floor)
		cs->floor = cs->pend.gen;
	/* The seed was applied by the driver at boot. */
	if (cs->c.gen == 0) {
		cs->applied_any = true;
		cs->apply_ok = true;
	}
	cs->state_next = now;
	cs->dirty = true;
	return cs;
fail:
	cfgsync_free(cs);
	return NULL;
}

void cfgsync_free(struct cfgsync *cs)
{
	if (!cs)
		return;
	doc_free(&cs->c);
	doc_free(&cs->pend);
	doc_free(&cs->got);
	doc_free(&cs->stg.d);
	doc_free(&cs->mine.d);
	prop_clear(cs);
	u_clear(cs);
	xfer_stop(cs);
	free(cs);
}

/* A request of this node's user becomes one for a remote coordinator
 * (this node lost group 0 while it was in flight). The deadline stays the
 * one the user was promised. */
static void mine_take(struct cfgsync *cs, struct cfgsync_actions *out,
		      uint32_t req, unsigned flags, const uint8_t *dg,
		      const uint8_t *blob, size_t len, mono_t asked, mono_t now)
{
	if (cs->mine.set || !blob) {
		finish_user(cs, out, cs->self, cs->p.incarnation, req, TND_EREFUSED,
			    "group 0 moved to another node before this change was made; retry");
		return;
	}
	if (doc_set(&cs->mine.d, 0, 0, dg, blob, len) != 0) {
		finish_user(cs, out, cs->self, cs->p.incarnation, req, TND_ENOSPC,
			    "out of memory");
		return;
	}
	cs->mine.set = true;
	cs->mine.req = req;
	cs->mine.flags = flags;
	cs->mine.base_gen = cs->c.gen;
	cs->mine.next_send = now;
	cs->mine.deadline = asked + MS_TO_MONO(cs->p.propose_timeout_ms);
}

/* This node became coordinator while its own request waited for the
 * previous one: it is now a local request here. */
static void u_from_mine(struct cfgsync *cs, mono_t now)
{
	struct mine *m = &cs->mine;
	struct uprop *u = &cs->u;
	u->state = US_FETCH;
	u->origin = cs->self;
	u->inc = cs->p.incarnation;
	u->req = m->req;
	u->flags = m->flags;
	u->started = m->deadline - MS_TO_MONO(cs->p.propose_timeout_ms);
	u->base_gen = m->base_gen;
	memcpy(u->dg, m->d.dg, CFGSYNC_DIGEST_LEN);
	u->blob = m->d.blob; /* moved */
	u->len = m->d.len;
	m->d.blob = NULL;
	doc_free(&m->d);
	m->set = false;
}

int cfgsync_view(struct cfgsync *cs, int coordinator, uint64_t epoch,
		 uint32_t alive_mask, mono_t now, struct cfgsync_actions *out)
{
	if (coordinator < TND_NO_NODE || coordinator >= cs->n)
		return TND_EINVAL;
	if (coordinator != cs->coord) {
		if (cs->coord == cs->self) {
			/* Deposed: our proposal is left to the next
			 * coordinator, which rolls it forward if prepared.
			 * Our own user's requests are sent on to it, so they
			 * still get an outcome; remote proposers resend
			 * theirs by themselves. */
			struct prop *pp = &cs->prop;
			struct uprop *u = &cs->u;
			if (pp->phase != PP_NONE && pp->phase != PP_ABORTING)
				emit(out, CFG_LVL_INFO, "config.handover",
				     "gen=%llu to=%d", (unsigned long long)pp->d.gen,
				     coordinator);
			if (pp->phase != PP_NONE && pp->origin == cs->self)
				mine_take(cs, out, pp->req, pp->flags, pp->d.dg,
					  pp->d.blob, pp->d.len, pp->asked, now);
			if (u->state != US_NONE && u->origin == cs->self)
				mine_take(cs, out, u->req, u->flags, u->dg, u->blob,
					  u->len, u->started, now);
			prop_clear(cs);
			if (u->state != US_NONE)
				u_clear(cs);
		}
		for (int x = 0; x < cs->n; x++)
			cs->peers[x].heard = false;
		cs->prep.set = false; /* the new coordinator prepares again */
		cs->coord = coordinator;
		cs->dirty = true;
		if (cs->mine.set && coordinator == cs->self && cs->u.state == US_NONE)
			u_from_mine(cs, now);
		if (cs->mine.set)
			cs->mine.next_send = now;
	}
	cs->epoch = epoch;
	for (int x = 0; x < cs->n; x++) {
		bool a = x != cs->self && (alive_mask & (1u << x));
		if (a && !cs->peers[x].alive) {
			cs->peers[x].heard = false;
			cs->dirty = true;
		}
		cs->peers[x].alive = a;
	}
	evaluate(cs, out, now);
	return 0;
}

int cfgsync_propose(struct cfgsync *cs, uint32_t req, const uint8_t *blob,
		    size_t len, unsigned flags, mono_t now,
		    struct cfgsync_actions *out, char *why, size_t why_len)
{
	struct cfgsync_text t;
	if (cfgsync_doc_decode(blob, len, &t) != 0) {
		snprintf(why, why_len, "not a configuration document");
		return TND_EINVAL;
	}
	if (cs->coord == TND_NO_NODE)
		return tnd_refuse(why, why_len, TND_EREFUSED,
			      "no coordinator: group 0 has no primary now");
	if (cs->n > 1 && !cs->heard_any && !(flags & CFGSYNC_FORCE))
		return tnd_refuse(why, why_len, TND_EREFUSED,
			      "this node has not heard any peer since it started, so its configuration may be stale; retry when a peer is up, or force");
	if (is_coord(cs)) {
		if (cs->u.state != US_NONE)
			return tnd_refuse(why, why_len, TND_EREFUSED, "another change is in progress");
		cs->u.state = US_FETCH;
		cs->u.origin = cs->self;
		cs->u.inc = cs->p.incarnation;
		cs->u.base_gen = cs->c.gen;
		cs->u.req = req;
		cs->u.flags = flags;
		cs->u.started = now;
		cfgsync_digest(blob, len, cs->u.dg);
		cs->u.blob = malloc(len);
		if (!cs->u.blob) {
			u_clear(cs);
			return TND_ENOSPC;
		}
		memcpy(cs->u.blob, blob, len);
		cs->u.len = len;
	} else {
		if (cs->mine.set)
			return tnd_refuse(why, why_len, TND_EREFUSED, "another change from this node is in progress");
		uint8_t dg[CFGSYNC_DIGEST_LEN];
		cfgsync_digest(blob, len, dg);
		if (doc_set(&cs->mine.d, 0, 0, dg, blob, len) != 0)
			return TND_ENOSPC;
		cs->mine.set = true;
		cs->mine.req = req;
		cs->mine.flags = flags;
		cs->mine.base_gen = cs->c.gen;
		cs->mine.next_send = now;
		cs->mine.deadline = now + MS_TO_MONO(cs->p.propose_timeout_ms);
	}
	evaluate(cs, out, now);
	return 0;
}

int cfgsync_validated(struct cfgsync *cs, const uint8_t digest[CFGSYNC_DIGEST_LEN],
		      int code, const char *why, mono_t now,
		      struct cfgsync_actions *out)
{
	struct uprop *u = &cs->u;
	if (u->state != US_VALIDATING || !dg_eq(u->dg, digest))
		return TND_ENOENT;
	if (code != 0) {
		char b[13];
		emit(out, CFG_LVL_WARN, "config.rejected", "digest=%s from=%d reason=\"%s\"",
		     dg_short(u->dg, b), u->origin, why ? why : "");
		finish_user(cs, out, u->origin, u->inc, u->req,
			    code < 0 ? code : TND_EINVAL,
			    why && why[0] ? why : "invalid configuration");
		u_clear(cs);
	} else {
		u->state = US_READY;
	}
	evaluate(cs, out, now);
	return 0;
}

int cfgsync_stored(struct cfgsync *cs, enum cfgsync_store_op op, uint64_t gen,
		   const uint8_t digest[CFGSYNC_DIGEST_LEN], int code, mono_t now,
		   struct cfgsync_actions *out)
{
	struct stg *s = &cs->stg;
	char b[13];
	if (!s->busy || s->op != op || s->d.gen != gen || !dg_eq(s->d.dg, digest))
		return TND_ENOENT;
	s->busy = false;
	if (code != 0) {
		emit(out, CFG_LVL_ERROR, "config.store_failed", "op=%s gen=%llu error=%s",
		     op == CFS_PENDING ? "pending" : op == CFS_COMMIT ? "commit" : "drop",
		     (unsigned long long)gen, tnd_strerror(code));
		if (op == CFS_PENDING && s->for_prop && cs->prop.phase == PP_STORING &&
		    cs->prop.roll) {
			prop_clear(cs); /* found and tried again after the pause */
		} else if (op == CFS_PENDING && s->for_prop && cs->prop.phase == PP_STORING) {
			char why[CFGSYNC_WHY_LEN];
			snprintf(why, sizeof(why), "the coordinator could not store it: %s",
				 tnd_strerror(code));
			prop_abort(cs, out, code, why);
		} else if (op == CFS_PENDING && cs->prep.set &&
			   cs->prep.gen == gen && dg_eq(cs->prep.dg, digest)) {
			char why[CFGSYNC_WHY_LEN];
			snprintf(why, sizeof(why), "node %d could not store it: %s",
				 cs->self, tnd_strerror(code));
			send_ack(cs, out, cs->prep.from, gen, cs->prep.ballot, digest,
				 code, why);
			cs->prep.failed = true;
		} else if (op == CFS_COMMIT && s->for_prop) {
			cs->prop.phase = PP_PREPARE; /* retried */
		}
		doc_free(&s->d);
		cs->store_retry_at = now + MS_TO_MONO(cs->p.retry_ms);
		evaluate(cs, out, now);
		return 0;
	}
	if (gen > cs->floor)
		cs->floor = gen;
	switch (op) {
	case CFS_PENDING:
		doc_move(&cs->pend, &s->d);
		if (s->for_prop && cs->prop.phase == PP_STORING) {
			cs->prop.phase = PP_PREPARE;
			cs->prop.acked = 1u << cs->self;
			cs->prop.next_send = now;
		}
		if (cs->prep.set && cs->prep.gen == gen && dg_eq(cs->prep.dg, digest)) {
			send_ack(cs, out, cs->prep.from, gen, cs->prep.ballot, digest, 0, NULL);
			cs->prep.set = false;
		}
		break;
	case CFS_COMMIT: {
		uint64_t from = cs->c.gen;
		doc_move(&cs->c, &s->d);
		if (cs->pend.blob && cs->pend.gen <= cs->c.gen)
			doc_free(&cs->pend);
		emit(out, CFG_LVL_INFO, "config.committed", "gen=%llu digest=%s from_gen=%llu",
		     (unsigned long long)cs->c.gen, dg_short(cs->c.dg, b),
		     (unsigned long long)from);
		if (s->for_prop && cs->prop.phase == PP_COMMITTING) {
			for (int x = 0; x < cs->n; x++)
				if (peer_live(cs, x))
					send_gdg(cs, out, x, CFG_MSG_COMMIT, &cs->c, false);
			if (cs->prop.origin != TND_NO_NODE) {
				char why[CFGSYNC_WHY_LEN];
				snprintf(why, sizeof(why), "committed as generation %llu",
					 (unsigned long long)cs->c.gen);
				finish_user(cs, out, cs->prop.origin, cs->prop.inc,
					    cs->prop.req, 0, why);
			}
			prop_clear(cs);
		}
		break;
	}
	case CFS_DROP:
		if (cs->pend.gen == gen && dg_eq(cs->pend.dg, digest))
			doc_free(&cs->pend);
		doc_free(&s->d);
		break;
	}
	cs->dirty = true;
	evaluate(cs, out, now);
	return 0;
}

int cfgsync_applied(struct cfgsync *cs, uint64_t gen, int code,
		    const char *err, mono_t now, struct cfgsync_actions *out)
{
	if (!cs->apply_busy || gen != cs->apply_gen)
		return TND_ENOENT;
	cs->apply_busy = false;
	cs->applied_any = true;
	cs->applied_gen = gen;
	cs->apply_ok = code == 0;
	snprintf(cs->apply_err, sizeof(cs->apply_err), "%s",
		 code == 0 ? "" : (err && err[0] ? err : tnd_strerror(code)));
	emit(out, code == 0 ? CFG_LVL_INFO : CFG_LVL_ERROR, "config.applied",
	     "gen=%llu ok=%s%s%s%s", (unsigned long long)gen, code == 0 ? "yes" : "no",
	     code ? " error=\"" : "", code ? cs->apply_err : "", code ? "\"" : "");
	cs->dirty = true;
	evaluate(cs, out, now);
	return 0;
}

/* --- receive ---------------------------------------------------------------- */

static int get_dg(const struct tlv *t, uint8_t *out)
{
	if (t->len != CFGSYNC_DIGEST_LEN)
		return TND_EINVAL;
	memcpy(out, t->val, CFGSYNC_DIGEST_LEN);
	return 0;
}

static int decode(struct cfgsync *cs, const uint8_t *body, size_t len)
{
	struct msg *m = &cs->m;
	memset(m, 0, sizeof(*m));
	struct tlvr r;
	struct tlv t;
	int rc;
	tlvr_init(&r, body, len);
	while ((rc = tlvr_next(&r, &t)) == 1) {
		int e = 0;
		switch (t.type) {
		case T_GEN: e = tlv_u64(&t, &m->gen); break;
		case T_BALLOT: e = tlv_u64(&t, &m->ballot); break;
		case T_CGEN: e = tlv_u64(&t, &m->cgen); break;
		case T_PGEN: e = tlv_u64(&t, &m->pgen); break;
		case T_PBALLOT: e = tlv_u64(&t, &m->pballot); break;
		case T_AGEN: e = tlv_u64(&t, &m->agen); break;
		case T_FLOOR: e = tlv_u64(&t, &m->floor); break;
		case T_INC: e = tlv_u64(&t, &m->inc); break;
		case T_DIGEST: e = get_dg(&t, m->dg); break;
		case T_CDG: e = get_dg(&t, m->cdg); break;
		case T_PDG: e = get_dg(&t, m->pdg); break;
		case T_LEN: e = tlv_u32(&t, &m->len); break;
		case T_CODE: e = tlv_u32(&t, &m->code); break;
		case T_REQ: e = tlv_u32(&t, &m->req); break;
		case T_OFF: e = tlv_u32(&t, &m->off); break;
		case T_COUNT: e = tlv_u16(&t, &m->count); break;
		case T_FLAGS: e = tlv_u8(&t, &m->flags); break;
		case T_AOK: e = tlv_u8(&t, &m->aok); break;
		case T_MISSING: e = tlv_u8(&t, &m->missing); break;
		case T_WHY:
			/* a too long sentence is cut, not refused */
			{
				size_t n = t.len < sizeof(m->why) - 1 ? t.len : sizeof(m->why) - 1;
				if (memchr(t.val, 0, n))
					e = TND_EINVAL;
				else {
					memcpy(m->why, t.val, n);
					m->why[n] = 0;
				}
			}
			break;
		case T_DATA:
			m->data = t.val;
			m->data_len = t.len;
			break;
		default:
			continue; /* unknown TLVs are skipped (STYLE) */
		}
		if (e)
			return TND_EINVAL;
		if (t.type < 32)
			m->has |= HAS(t.type);
	}
	return rc < 0 ? rc : 0;
}

static bool need(const struct msg *m, uint32_t mask)
{
	return (m->has & mask) == mask;
}

static void on_state(struct cfgsync *cs, int x, const struct msg *m)
{
	struct peer *p = &cs->peers[x];
	p->known = true;
	p->heard = true;
	cs->heard_any = true;
	p->cgen = m->cgen;
	memcpy(p->cdg, m->cdg, CFGSYNC_DIGEST_LEN);
	if (m->has & HAS(T_PGEN)) {
		p->pgen = m->pgen;
		p->pballot = m->pballot;
		memcpy(p->pdg, m->pdg, CFGSYNC_DIGEST_LEN);
	} else {
		p->pgen = p->pballot = 0;
		memset(p->pdg, 0, sizeof(p->pdg));
	}
	p->agen = m->agen;
	p->aok = m->aok;
	snprintf(p->aerr, sizeof(p->aerr), "%s", m->why);
	p->floor = m->floor;
}

static void serve_fetch(struct cfgsync *cs, struct cfgsync_actions *out, int to,
			const struct msg *m)
{
	size_t len;
	const uint8_t *b;
	struct sendctx s;
	if (!find_blob(cs, m->dg, &len, &b)) {
		if (send_begin(cs, out, &s, to, CFG_MSG_DATA)) {
			tlvw_put(&s.w, T_DIGEST, m->dg, CFGSYNC_DIGEST_LEN);
			tlvw_u8(&s.w, T_MISSING, 1);
			send_finish(cs, out, &s);
		}
		return;
	}
	uint32_t count = m->count > CFGSYNC_WINDOW_CHUNKS ? CFGSYNC_WINDOW_CHUNKS : m->count;
	size_t off = m->off;
	if (off % CFGSYNC_CHUNK_BYTES)
		return;
	for (uint32_t i = 0; i < count && off < len; i++) {
		size_t n = len - off < CFGSYNC_CHUNK_BYTES ? len - off : CFGSYNC_CHUNK_BYTES;
		if (!send_begin(cs, out, &s, to, CFG_MSG_DATA))
			return;
		tlvw_put(&s.w, T_DIGEST, m->dg, CFGSYNC_DIGEST_LEN);
		tlvw_u32(&s.w, T_LEN, (uint32_t)len);
		tlvw_u32(&s.w, T_OFF, (uint32_t)off);
		tlvw_put(&s.w, T_DATA, b + off, (uint16_t)n);
		send_finish(cs, out, &s);
		off += n;
	}
}

static int on_data(struct cfgsync *cs, struct cfgsync_actions *out, int from,
		   const struct msg *m, mono_t now)
{
	struct xfer *x = &cs->x;
	if (x->purpose == XP_NONE || !dg_eq(x->dg, m->dg))
		return 0; /* late or duplicate */
	if (m->missing) {
		x->next_req = now + MS_TO_MONO(cs->p.retry_ms);
		return 0;
	}
	if (!need(m, HAS(T_LEN) | HAS(T_OFF)) || !m->data || m->len < 10 ||
	    m->len > CFGSYNC_DOC_MAX || m->off % CFGSYNC_CHUNK_BYTES ||
	    m->off >= m->len)
		return TND_EINVAL;
	size_t n = m->len - m->off < CFGSYNC_CHUNK_BYTES ? m->len - m->off : CFGSYNC_CHUNK_BYTES;
	if (m->data_len != n)
		return TND_EINVAL;
	if (!x->len) {
		x->buf = malloc(m->len);
		if (!x->buf)
			return TND_ENOSPC;
		x->len = m->len;
		x->nchunks = (uint32_t)((m->len + CFGSYNC_CHUNK_BYTES - 1) / CFGSYNC_CHUNK_BYTES);
	} else if (x->len != m->len) {
		return TND_EINVAL;
	}
	uint32_t i = m->off / CFGSYNC_CHUNK_BYTES;
	if (!(x->have[i / 8] & (1u << (i % 8)))) {
		memcpy(x->buf + m->off, m->data, n);
		x->have[i / 8] |= (uint8_t)(1u << (i % 8));
		x->nhave++;
	}
	x->since_req++;
	if (x->nhave < x->nchunks) {
		if (x->since_req >= CFGSYNC_WINDOW_CHUNKS) {
			x->from = from;
			send_fetch(cs, out, now);
		}
		return 0;
	}
	uint8_t dg[CFGSYNC_DIGEST_LEN];
	cfgsync_digest(x->buf, x->len, dg);
	struct cfgsync_text t;
	if (!dg_eq(dg, x->dg) || cfgsync_doc_decode(x->buf, x->len, &t) != 0) {
		char b[13];
		emit(out, CFG_LVL_WARN, "config.transfer_bad", "digest=%s from=%d",
		     dg_short(x->dg, b), from);
		enum xpurpose pu = x->purpose;
		int fr = x->from;
		uint8_t want[CFGSYNC_DIGEST_LEN];
		memcpy(want, x->dg, sizeof(want));
		uint64_t g = x->gen, bl = x->ballot;
		xfer_stop(cs);
		xfer_want(cs, out, pu, fr, want, g, bl, now);
		return TND_EINVAL;
	}
	free(cs->got.blob);
	cs->got.blob = x->buf;
	cs->got.len = x->len;
	cs->got.gen = x->gen;
	cs->got.ballot = x->ballot;
	memcpy(cs->got.dg, x->dg, CFGSYNC_DIGEST_LEN);
	x->buf = NULL;
	xfer_stop(cs);
	return 0;
}

int cfgsync_recv(struct cfgsync *cs, const struct wire_hdr *h,
		 const uint8_t *body, size_t len, mono_t now,
		 struct cfgsync_actions *out)
{
	int x = h->sender;
	if (x >= cs->n || x == cs->self || h->cluster_id != cs->p.cluster_id ||
	    h->type < CFG_MSG_STATE || h->type > CFG_MSG_RESULT ||
	    decode(cs, body, len) != 0) {
		cs->rx_bad++;
		return TND_EINVAL;
	}
	struct msg *m = &cs->m;
	const uint32_t gdg = HAS(T_GEN) | HAS(T_DIGEST);
	int rc = 0;
	switch (h->type) {
	case CFG_MSG_STATE: {
		if (!need(m, HAS(T_CGEN) | HAS(T_CDG) | HAS(T_FLOOR)) ||
		    ((m->has & HAS(T_PGEN)) && !need(m, HAS(T_PBALLOT) | HAS(T_PDG))))
			goto bad;
		/* A STATE is the sender's whole durable state at a moment:
		 * one older than the newest taken (delayed, duplicated, or
		 * from a previous life of the sender) would make this node
		 * believe in a pending or aborted proposal that is gone, and
		 * a coordinator could roll it forward. The sequence number
		 * grows with every message of one incarnation (wire.h). */
		struct peer *p = &cs->peers[x];
		if (p->st_any && (h->incarnation < p->st_inc ||
				  (h->incarnation == p->st_inc && h->seq <= p->st_seq))) {
			cs->rx_bad++;
			return TND_EREPLAY;
		}
		p->st_any = true;
		p->st_inc = h->incarnation;
		p->st_seq = h->seq;
		on_state(cs, x, m);
		break;
	}
	case CFG_MSG_PREPARE:
		if (!need(m, gdg | HAS(T_BALLOT) | HAS(T_LEN)) || m->gen == 0 ||
		    m->len > CFGSYNC_DOC_MAX)
			goto bad;
		if (x != cs->coord)
			break; /* only the coordinator prepares */
		if (m->gen <= cs->c.gen) {
			if (m->gen == cs->c.gen && dg_eq(m->dg, cs->c.dg))
				send_ack(cs, out, x, m->gen, m->ballot, m->dg, 0, NULL);
			else
				cs->dirty = true; /* our state tells it */
			break;
		}
		if (cs->pend.blob && (cs->pend.gen > m->gen ||
				      (cs->pend.gen == m->gen && cs->pend.ballot > m->ballot &&
				       !dg_eq(cs->pend.dg, m->dg)))) {
			send_ack(cs, out, x, m->gen, m->ballot, m->dg, TND_EREFUSED,
				 "a newer proposal is pending here");
			cs->dirty = true;
			break;
		}
		if (cs->prep.set && cs->prep.gen == m->gen && cs->prep.ballot == m->ballot &&
		    dg_eq(cs->prep.dg, m->dg)) {
			if (cs->prep.failed) /* a resend: try storing again */
				cs->prep.failed = false;
			break;
		}
		cs->prep.set = true;
		cs->prep.failed = false;
		cs->prep.from = x;
		cs->prep.gen = m->gen;
		cs->prep.ballot = m->ballot;
		memcpy(cs->prep.dg, m->dg, CFGSYNC_DIGEST_LEN);
		break;
	case CFG_MSG_ACK:
		if (!need(m, gdg | HAS(T_BALLOT) | HAS(T_CODE)))
			goto bad;
		if (!is_coord(cs) || cs->prop.phase != PP_PREPARE ||
		    cs->prop.d.gen != m->gen || !dg_eq(cs->prop.d.dg, m->dg))
			break;
		if (m->code == 0) {
			cs->prop.acked |= 1u << x;
		} else {
			char why[CFGSYNC_WHY_LEN];
			snprintf(why, sizeof(why), "node %d refused: %.150s", x,
				 m->why[0] ? m->why : "error");
			if (cs->prop.roll)
				emit(out, CFG_LVL_ERROR, "config.stuck",
				     "gen=%llu reason=\"%s\"",
				     (unsigned long long)cs->prop.d.gen, why);
			else
				prop_abort(cs, out, m->code <= 11 ? -(int)m->code : TND_EIO, why);
		}
		break;
	case CFG_MSG_COMMIT:
		if (!need(m, gdg) || m->gen == 0)
			goto bad;
		/* Like a state report: x holds (gen, digest) committed. */
		if (m->gen > cs->peers[x].cgen || !cs->peers[x].known) {
			struct peer *p = &cs->peers[x];
			p->cgen = m->gen;
			memcpy(p->cdg, m->dg, CFGSYNC_DIGEST_LEN);
			if (!p->known) {
				p->known = true;
				p->pgen = 0;
			}
		}
		break;
	case CFG_MSG_ABORT:
		if (!need(m, gdg))
			goto bad;
		if (x != cs->coord)
			break;
		if (cs->prep.set && cs->prep.gen == m->gen && dg_eq(cs->prep.dg, m->dg))
			cs->prep.set = false;
		if (cs->pend.blob && cs->pend.gen == m->gen && dg_eq(cs->pend.dg, m->dg) &&
		    !cs->stg.busy) {
			struct doc tmp = { 0 };
			doc_set(&tmp, m->gen, 0, m->dg, NULL, 0);
			store(cs, out, CFS_DROP, &tmp, false);
		}
		break;
	case CFG_MSG_FETCH:
		if (!need(m, HAS(T_DIGEST) | HAS(T_OFF) | HAS(T_COUNT)))
			goto bad;
		serve_fetch(cs, out, x, m);
		break;
	case CFG_MSG_DATA:
		/* well formed whether or not it is still wanted */
		if (!need(m, HAS(T_DIGEST)) ||
		    (!m->missing && (!need(m, HAS(T_LEN) | HAS(T_OFF)) || !m->data)))
			goto bad;
		rc = on_data(cs, out, x, m, now);
		if (rc == TND_EINVAL)
			goto bad;
		break;
	case CFG_MSG_PROPOSE:
		if (!need(m, HAS(T_REQ) | HAS(T_DIGEST) | HAS(T_LEN)) ||
		    m->len > CFGSYNC_DOC_MAX || m->len < 10)
			goto bad;
		if (!is_coord(cs))
			break; /* the proposer resends to the coordinator */
		{
			/* A request is (proposer, its incarnation, req). The
			 * proposer resends it every retry_ms until it hears
			 * the outcome: a resend is answered with the outcome
			 * if there is one, and ignored while it is validated
			 * or prepared, never started a second time. */
			struct peer *p = &cs->peers[x];
			uint64_t inc = h->incarnation;
			if (p->res_set && p->res_req == m->req && p->res_inc == inc) {
				send_result(cs, out, x, inc, m->req, p->res_code, p->res_why);
				break;
			}
			if (cs->prop.phase != PP_NONE && cs->prop.origin == x &&
			    cs->prop.req == m->req && cs->prop.inc == inc)
				break;
			if (cs->u.state != US_NONE) {
				if (!(cs->u.origin == x && cs->u.req == m->req &&
				      cs->u.inc == inc))
					send_result(cs, out, x, inc, m->req, TND_EREFUSED,
						    "another change is in progress");
				break;
			}
			if (cs->n > 1 && !cs->heard_any && !(m->flags & CFGSYNC_FORCE)) {
				send_result(cs, out, x, inc, m->req, TND_EREFUSED,
					    "the coordinator has not heard any peer since it started");
				break;
			}
			cs->u.state = US_FETCH;
			cs->u.origin = x;
			cs->u.inc = inc;
			cs->u.base_gen = cs->c.gen;
			cs->u.req = m->req;
			cs->u.flags = m->flags;
			cs->u.started = now;
			memcpy(cs->u.dg, m->dg, CFGSYNC_DIGEST_LEN);
		}
		break;
	case CFG_MSG_RESULT:
		if (!need(m, HAS(T_REQ) | HAS(T_CODE)))
			goto bad;
		/* T_INC is absent from a coordinator of an older build */
		if (cs->mine.set && cs->mine.req == m->req && x == cs->coord &&
		    (!(m->has & HAS(T_INC)) || m->inc == cs->p.incarnation))
			finish_user(cs, out, cs->self, cs->p.incarnation, m->req,
				    m->code == 0 ? 0 : m->code <= 11 ? -(int)m->code : TND_EIO,
				    m->why);
		break;
	}
	cs->rx_ok++;
	evaluate(cs, out, now);
	return 0;
bad:
	cs->rx_bad++;
	return TND_EINVAL;
}

int cfgsync_tick(struct cfgsync *cs, mono_t now, struct cfgsync_actions *out)
{
	if (now >= cs->state_next)
		cs->dirty = true;
	if (cs->x.purpose != XP_NONE && now >= cs->x.next_req)
		send_fetch(cs, out, now);
	evaluate(cs, out, now);
	return 0;
}

mono_t cfgsync_next_wake(const struct cfgsync *cs)
{
	mono_t t = cs->state_next;
	mono_t r = MS_TO_MONO(cs->p.retry_ms);
	if (cs->x.purpose != XP_NONE && cs->x.next_req < t)
		t = cs->x.next_req;
	if (cs->store_retry_at > 0 && cs->store_retry_at < t)
		t = cs->store_retry_at;
	/* Once every live node acked, the coordinator waits for its commit
	 * store (or for store_retry_at, above), not for a resend. */
	if (cs->prop.phase == PP_PREPARE &&
	    (cs->prop.acked & live_mask(cs)) != live_mask(cs)) {
		if (cs->prop.next_send < t)
			t = cs->prop.next_send;
		mono_t to = cs->prop.started + MS_TO_MONO(cs->p.prepare_timeout_ms);
		if (to < t)
			t = to;
	}
	if (cs->mine.set) {
		if (cs->mine.next_send < t)
			t = cs->mine.next_send;
		if (cs->mine.deadline < t)
			t = cs->mine.deadline;
	}
	if (cs->u.state != US_NONE) {
		mono_t to = cs->u.started + MS_TO_MONO(cs->p.propose_timeout_ms);
		if (to < t)
			t = to;
	}
	(void)r;
	return t;
}

void cfgsync_report(const struct cfgsync *cs, struct cfgsync_report *out)
{
	memset(out, 0, sizeof(*out));
	out->cluster_gen = max_committed(cs, NULL);
	out->coordinator = cs->coord;
	out->settled = settled(cs, 0);
	out->busy = cs->prop.phase != PP_NONE;
	out->busy_gen = cs->prop.d.gen;
	out->n_nodes = cs->n;
	for (int x = 0; x < cs->n; x++) {
		struct cfgsync_node_report *r = &out->nodes[x];
		if (x == cs->self) {
			r->known = r->alive = true;
			r->committed_gen = cs->c.gen;
			memcpy(r->committed_digest, cs->c.dg, CFGSYNC_DIGEST_LEN);
			r->pending_gen = cs->pend.blob ? cs->pend.gen : 0;
			r->applied_gen = cs->applied_gen;
			r->apply_ok = cs->applied_any && cs->apply_ok;
			snprintf(r->apply_err, sizeof(r->apply_err), "%s", cs->apply_err);
		} else {
			const struct peer *p = &cs->peers[x];
			r->known = p->known;
			r->alive = p->alive;
			r->committed_gen = p->cgen;
			memcpy(r->committed_digest, p->cdg, CFGSYNC_DIGEST_LEN);
			r->pending_gen = p->pgen;
			r->applied_gen = p->agen;
			r->apply_ok = p->aok;
			snprintf(r->apply_err, sizeof(r->apply_err), "%s", p->aerr);
		}
		r->in_sync = r->known && r->apply_ok &&
			     r->applied_gen == out->cluster_gen &&
			     r->committed_gen == out->cluster_gen;
	}
	out->rx_ok = cs->rx_ok;
	out->rx_bad = cs->rx_bad;
	out->tx = cs->tx;
}

const uint8_t *cfgsync_current(const struct cfgsync *cs, uint64_t *gen,
			       size_t *len)
{
	*gen = cs->c.gen;
	*len = cs->c.len;
	return cs->c.blob;
}
