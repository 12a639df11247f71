/* upgrade.c - the in-service upgrade coordinator core (the design is the
 * header comment of upgrade.h; SPEC section 5).
 *
 * Owns: this node's copy of the upgrade journal and its encoding, every
 * node's last reported facts, the reassembly of a journal arriving in
 * fragments, the node-local actions asked by a coordinator (each done
 * once per (id, step, op), its result kept for resends), this node's
 * command in flight to the coordinator, and, on the coordinator, the
 * in-memory progress of the running step (timers, answers).
 *
 * Shape (as cfgsync.c): every entry point records what it learned and
 * then calls evaluate(), which decides from the state alone what to do
 * next (level triggered): a lost message or a change of coordinator is
 * recovered by the code that makes progress normally. Everything that a
 * coordinator must not forget is in the journal (the step cursor, each
 * node's progress and the incarnation it ran when asked to install), so
 * a new coordinator continues from the journal alone; what is only in
 * memory (timers, DONE answers) is rebuilt by asking again, which every
 * node action tolerates (it is idempotent).
 *
 * Wire: messages 48..55 over struct wire_hdr, sequence numbers
 * UPG_SEQ_SPACE | counter, TLVs below; unknown TLVs are skipped. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "upgrade.h"
#include "manifest.h"
#include "rng.h"

/* Journal TLVs (the file and UPG_MSG_JOURNAL's payload). */
enum {
	J_ID = 1, J_SEQ, J_STATE, J_COORD, J_FLAGS, J_FROM, J_TO, J_FROM_PROTO,
	J_TO_PROTO, J_DIGEST, J_BYTES, J_SOURCE, J_WALL, J_ELAPSED, J_CURSOR,
	J_NNODES, J_NSTATE, J_NINC, J_STEP, J_ECODE, J_EMSG, J_ERECOV, J_ESTEP,
};
/* Inside a J_STEP. */
enum {
	S_KIND = 1, S_STATUS, S_GROUP, S_NODE, S_NODES, S_ROLLBACK, S_TSTART,
	S_TEND, S_WSTART, S_WEND,
};
#define JF_FORCE 1u
#define JF_DISRUPTIVE 2u
#define JF_NO_FAILBACK 4u
#define JF_FINALIZED 8u

/* Message TLVs, shared by every UPG_MSG_*. */
enum {
	M_ID = 1, M_SEQ, M_FRAG, M_TOTAL, M_LEN, M_DATA, M_STEP, M_OP,
	M_VERSION, M_DIGEST, M_BYTES, M_NODE, M_RC, M_CODE, M_MSG, M_REQ,
	M_INC, M_OPTS, M_PREV, M_RREASON, M_RFROM, M_PMIN, M_PMAX, M_FLAGS,
	M_CGEN, M_FREE, M_CPU, M_GROUPS, M_IFLAGS, M_ICODE, M_IMSG, M_IMIN,
	M_ICFGMSG, M_JID, M_JSEQ, M_VCOORD, M_ATTEMPT, M_RAT,
};
/* STATE M_FLAGS */
#define FF_CONFIRMED 1u
#define FF_LINKS 2u
#define FF_MAINT 4u
#define FF_CFGSYNC 8u
#define FF_SESSIONS 16u
#define FF_IMAGE 32u
/* REQ M_IFLAGS / M_OPTS */
#define IF_PRESENT 1u
#define IF_INTACT 2u
#define IF_SIGNED 4u
#define IF_TRUSTED 8u
#define IF_CONFIG 16u
#define IF_HAS_IMAGE 32u
#define OF_FORCE 1u
#define OF_DISRUPTIVE 2u
#define OF_NO_FAILBACK 4u

#define FRAGS_MAX ((UPG_JOURNAL_BYTES_MAX + UPG_FRAG_BYTES - 1) / UPG_FRAG_BYTES)
#define DO_CACHE_MAX 8          /* node actions remembered (results resent) */
#define MOVE_RETRY_MS 2000      /* a FAILOVER asked again while not done */
#define FETCH_ATTEMPTS_MAX 3    /* a DO FETCH that failed is asked again */
#define FETCH_RETRY_MS 1000     /* after this pause */
#define REASM_IDLE_MS (4 * UPG_RESEND_MS) /* a stalled reassembly is dropped */
#define ID_NODE_BITS 8          /* low bits of a journal id: its creator */
#define LOOP_MAX (2 * UPG_STEPS_MAX + 8)
/* A journal's seq: term (bits 24..63, + 1 at every takeover), the node
 * that took over (16..23), and the records of that term (0..15). */
#define SEQ_TERM_SHIFT 24
#define SEQ_NODE_SHIFT 16

struct peer {
	struct upg_facts f;
	bool heard;                 /* STATE since this node became coordinator */
	bool st_any;                /* the newest STATE taken, (inc, seq) */
	uint64_t st_inc, st_seq;
	uint64_t ack_id, ack_seq;   /* journal it holds (JACK or STATE) */
	mono_t jnext;               /* next journal send to it */
	/* the last request answered (coordinator), for resends */
	bool res_set;
	uint64_t res_inc;
	uint32_t res_req;
	int res_rc;
	uint64_t res_id;            /* the journal a start created */
	char res_code[UPG_CODE_LEN];
	char res_msg[UPG_MSG_LEN];
};

/* A node action asked by a coordinator. */
struct doent {
	bool used, done;
	uint64_t id;
	int step;
	enum upg_do op;
	int from;                   /* who asked last (the answer goes there) */
	int rc;
	char code[UPG_CODE_LEN];
	char msg[UPG_MSG_LEN];
	uint64_t age;               /* for eviction */
	uint8_t attempt;            /* FETCH: the attempt asked last */
};

struct reasm {
	bool on;
	uint64_t id, seq;
	uint8_t total;
	uint16_t len, have;
	mono_t last;
	uint8_t buf[UPG_JOURNAL_BYTES_MAX];
};

/* Node phases inside an UPGRADE / REVERT step (memory only). */
enum { PH_BEGIN = 0, PH_DO, PH_REJOIN, PH_SYNC, PH_DONE };

/* The coordinator's progress in the running step; rebuilt (run_reset)
 * whenever the step or the coordinator changes. */
struct run {
	int step;                   /* -1: nothing */
	uint64_t rec_seq;           /* record every live peer must hold first */
	bool inited;
	mono_t t0;                  /* this coordinator began driving it */
	bool fired;                 /* FAILOVER / RESET asked */
	mono_t next;                /* ask again */
	uint8_t ph[TND_NODES_MAX];
	mono_t do_at[TND_NODES_MAX], do_next[TND_NODES_MAX];
	mono_t phase_at[TND_NODES_MAX], synced_at[TND_NODES_MAX];
	mono_t evac_at[TND_NODES_MAX]; /* its groups began to move off */
	bool synced[TND_NODES_MAX];
	bool got[TND_NODES_MAX];    /* DONE answered */
	uint8_t attempt[TND_NODES_MAX]; /* FETCH: 0 .. FETCH_ATTEMPTS_MAX - 1 */
	int rc[TND_NODES_MAX];
	char code[TND_NODES_MAX][UPG_CODE_LEN];
	char msg[TND_NODES_MAX][UPG_MSG_LEN];
	uint32_t done_mask;         /* BACKUP / DISTRIBUTE nodes finished */
	char fcode[UPG_CODE_LEN];   /* why the step failed */
	char fmsg[UPG_MSG_LEN];
};

/* This node's command in flight (to the coordinator, or waiting for
 * this node to settle as coordinator). */
struct mine {
	bool set;
	uint32_t token, req;
	enum upg_cmd_op op;
	bool has_img;
	struct upg_image img;
	struct upg_opts opts;
	int node;
	mono_t deadline, next_send;
};

struct upg {
	struct upg_params p;
	const struct tnd_conf *conf;
	int self, n;
	uint64_t rng, seq, req_ctr, do_age;
	struct upg_view view;
	int coord;                  /* view.coordinator as last seen */
	bool took_over;             /* coordinator: settled and journal taken */
	/* This coordinator's records carry its own term (j_commit starts
	 * one at its first record); false again at every change of
	 * coordinator, and when a peer reports a higher seq of our journal
	 * (a dead coordinator's unacknowledged tail): our next record goes
	 * above it, so that peer takes ours instead of keeping its own. */
	bool term_own;
	bool rebase;                /* record again now, in a new term */
	uint64_t want_id, want_seq; /* settling: the journal asked for (GET) */
	bool unstored;              /* adopted below our own: stored by the next record */
	/* The STORE already in this call's action list (one per call: it
	 * points at the live journal, so it writes the final state). */
	const struct upg_actions *st_out;
	int st_idx;
	mono_t get_next;            /* settling: next UPG_MSG_GET */
	struct upg_journal j;
	uint8_t enc[UPG_JOURNAL_BYTES_MAX];
	size_t enc_len;             /* encoding of j (0: none) */
	mono_t t0;                  /* the journal's start on this clock */
	struct peer peers[TND_NODES_MAX];
	struct doent dc[DO_CACHE_MAX];
	struct reasm ra;
	struct run run;
	struct mine mine;
	bool dirty;
	bool heard_any;             /* a peer's STATE since this start */
	mono_t started;
	mono_t state_next, now;
	char detail[TND_NODES_MAX][64];
	/* scratch, kept here so that no call needs a large stack */
	struct upg_journal scratch;
	struct upg_checks checks;
};

/* --- names ------------------------------------------------------------ */

const char *upg_state_name(enum upg_state s)
{
	switch (s) {
	case UPG_IDLE: return "idle";
	case UPG_RUNNING: return "running";
	case UPG_ABORTING: return "aborting";
	case UPG_COMPLETED: return "completed";
	case UPG_ABORTED: return "aborted";
	case UPG_ROLLED_BACK: return "rolled_back";
	case UPG_FAILED: return "failed";
	}
	return "?";
}

const char *upg_kind_name(enum upg_step_kind k)
{
	switch (k) {
	case UPG_K_FREEZE: return "freeze";
	case UPG_K_BACKUP: return "backup";
	case UPG_K_PREEMPT_OFF: return "preempt_off";
	case UPG_K_MOVE: return "move";
	case UPG_K_DISTRIBUTE: return "distribute";
	case UPG_K_UPGRADE: return "upgrade";
	case UPG_K_REVERT: return "revert";
	case UPG_K_PREEMPT_ON: return "preempt_on";
	case UPG_K_FAILBACK: return "failback";
	case UPG_K_RELEASE: return "release";
	case UPG_K_UNFREEZE: return "unfreeze";
	}
	return "?";
}

const char *upg_step_status_name(enum upg_step_status s)
{
	switch (s) {
	case UPG_ST_PENDING: return "pending";
	case UPG_ST_RUNNING: return "running";
	case UPG_ST_DONE: return "done";
	case UPG_ST_FAILED: return "failed";
	case UPG_ST_SKIPPED: return "skipped";
	}
	return "?";
}

const char *upg_node_state_name(enum upg_node_state s)
{
	switch (s) {
	case UPG_N_PENDING: return "pending";
	case UPG_N_FETCHING: return "fetching";
	case UPG_N_INSTALLING: return "installing";
	case UPG_N_RESTARTING: return "restarting";
	case UPG_N_RESYNCING: return "resyncing";
	case UPG_N_UPGRADED: return "upgraded";
	case UPG_N_REVERTING: return "reverting";
	case UPG_N_REVERTED: return "reverted";
	case UPG_N_FAILED: return "failed";
	}
	return "?";
}

/* --- journal codec ------------------------------------------------------ */

static bool str_ok(const char *s, size_t cap)
{
	return memchr(s, 0, cap) != NULL;
}

/* Everything decode refuses, so that encode never writes what could not
 * be read back. */
static int journal_check(const struct upg_journal *j)
{
	if (j->id == 0 || j->state > UPG_FAILED || j->n_nodes < 1 ||
	    j->n_nodes > TND_NODES_MAX || j->n_steps < 0 ||
	    j->n_steps > UPG_STEPS_MAX || j->cursor < 0 || j->cursor > j->n_steps ||
	    j->coordinator < -1 || j->coordinator >= j->n_nodes ||
	    j->source < -1 || j->source >= j->n_nodes ||
	    j->error.step < -1 || j->error.step >= j->n_steps)
		return TND_EINVAL;
	if (!str_ok(j->from, sizeof(j->from)) || !str_ok(j->to, sizeof(j->to)) ||
	    version_check(j->from) != 0 || version_check(j->to) != 0 ||
	    !str_ok(j->error.code, sizeof(j->error.code)) ||
	    !str_ok(j->error.message, sizeof(j->error.message)) ||
	    !str_ok(j->error.recovery, sizeof(j->error.recovery)))
		return TND_EINVAL;
	uint32_t all = j->n_nodes >= 32 ? 0xffffffffu : (1u << j->n_nodes) - 1;
	for (int i = 0; i < j->n_steps; i++) {
		const struct upg_step *s = &j->steps[i];
		if (s->kind < UPG_K_FREEZE || s->kind > UPG_K_UNFREEZE ||
		    s->status > UPG_ST_SKIPPED || s->node < -1 || s->node >= j->n_nodes ||
		    (s->nodes & ~all))
			return TND_EINVAL;
	}
	for (int x = 0; x < j->n_nodes; x++)
		if (j->node_state[x] > UPG_N_FAILED)
			return TND_EINVAL;
	return 0;
}

static void put_s8(struct tlvw *w, uint16_t t, int v)
{
	tlvw_u8(w, t, v < 0 ? 0xff : (uint8_t)v);
}

static int get_s8(const struct tlv *t, int *v)
{
	uint8_t b;
	if (tlv_u8(t, &b) != 0)
		return TND_EINVAL;
	*v = b == 0xff ? -1 : b;
	return 0;
}

int upg_journal_encode(const struct upg_journal *j, uint8_t *buf, size_t cap, size_t *len)
{
	if (journal_check(j) != 0)
		return TND_EINVAL;
	struct tlvw w;
	tlvw_init(&w, buf, cap > UPG_JOURNAL_BYTES_MAX ? UPG_JOURNAL_BYTES_MAX : cap);
	tlvw_u64(&w, J_ID, j->id);
	tlvw_u64(&w, J_SEQ, j->seq);
	tlvw_u8(&w, J_STATE, j->state);
	put_s8(&w, J_COORD, j->coordinator);
	tlvw_u8(&w, J_FLAGS, (uint8_t)((j->force ? JF_FORCE : 0) |
				       (j->disruptive ? JF_DISRUPTIVE : 0) |
				       (j->no_failback ? JF_NO_FAILBACK : 0) |
				       (j->finalized ? JF_FINALIZED : 0)));
	tlvw_str(&w, J_FROM, j->from);
	tlvw_str(&w, J_TO, j->to);
	tlvw_u8(&w, J_FROM_PROTO, j->from_proto);
	tlvw_u8(&w, J_TO_PROTO, j->to_proto);
	tlvw_put(&w, J_DIGEST, j->digest, UPG_DIGEST_LEN);
	tlvw_u64(&w, J_BYTES, j->image_bytes);
	put_s8(&w, J_SOURCE, j->source);
	tlvw_u64(&w, J_WALL, (uint64_t)j->wall_start_ms);
	tlvw_u32(&w, J_ELAPSED, j->elapsed_ms);
	tlvw_u16(&w, J_CURSOR, (uint16_t)j->cursor);
	tlvw_u8(&w, J_NNODES, (uint8_t)j->n_nodes);
	tlvw_put(&w, J_NSTATE, j->node_state, (uint16_t)j->n_nodes);
	uint8_t inc[8 * TND_NODES_MAX];
	for (int x = 0; x < j->n_nodes; x++)
		wire_put64(inc + 8 * x, j->node_inc[x]);
	tlvw_put(&w, J_NINC, inc, (uint16_t)(8 * j->n_nodes));
	for (int i = 0; i < j->n_steps; i++) {
		const struct upg_step *s = &j->steps[i];
		tlvw_open(&w, J_STEP);
		tlvw_u8(&w, S_KIND, s->kind);
		tlvw_u8(&w, S_STATUS, s->status);
		tlvw_u8(&w, S_GROUP, s->group);
		put_s8(&w, S_NODE, s->node);
		tlvw_u32(&w, S_NODES, s->nodes);
		tlvw_u8(&w, S_ROLLBACK, s->rollback);
		tlvw_u32(&w, S_TSTART, s->t_start_ms);
		tlvw_u32(&w, S_TEND, s->t_end_ms);
		tlvw_u64(&w, S_WSTART, (uint64_t)s->wall_start_ms);
		tlvw_u64(&w, S_WEND, (uint64_t)s->wall_end_ms);
		tlvw_close(&w);
	}
	if (j->error.code[0])
		tlvw_str(&w, J_ECODE, j->error.code);
	if (j->error.message[0])
		tlvw_str(&w, J_EMSG, j->error.message);
	if (j->error.recovery[0])
		tlvw_str(&w, J_ERECOV, j->error.recovery);
	tlvw_u16(&w, J_ESTEP, (uint16_t)(int16_t)j->error.step);
	return tlvw_finish(&w, len);
}

static int decode_step(const struct tlv *outer, struct upg_step *s)
{
	struct tlvr r;
	struct tlv t;
	int rc, v = 0;
	unsigned has = 0;
	uint8_t b;
	uint64_t w;
	memset(s, 0, sizeof(*s));
	s->node = -1;
	tlvr_init(&r, outer->val, outer->len);
	while ((rc = tlvr_next(&r, &t)) == 1) {
		int e = 0;
		switch (t.type) {
		case S_KIND: e = tlv_u8(&t, &s->kind); break;
		case S_STATUS: e = tlv_u8(&t, &s->status); break;
		case S_GROUP: e = tlv_u8(&t, &s->group); break;
		case S_NODE: e = get_s8(&t, &v); s->node = (int8_t)v; break;
		case S_NODES: e = tlv_u32(&t, &s->nodes); break;
		case S_ROLLBACK:
			e = tlv_u8(&t, &b);
			if (!e && b > 1)
				e = TND_EINVAL;
			s->rollback = b == 1;
			break;
		case S_TSTART: e = tlv_u32(&t, &s->t_start_ms); break;
		case S_TEND: e = tlv_u32(&t, &s->t_end_ms); break;
		case S_WSTART: e = tlv_u64(&t, &w); s->wall_start_ms = (int64_t)w; break;
		case S_WEND: e = tlv_u64(&t, &w); s->wall_end_ms = (int64_t)w; break;
		default: continue;
		}
		if (e)
			return TND_EINVAL;
		has |= 1u << t.type;
	}
	if (rc < 0)
		return TND_EINVAL;
	unsigned need = (1u << S_KIND) | (1u << S_STATUS) | (1u << S_GROUP) |
			(1u << S_NODE) | (1u << S_NODES);
	return (has & need) == need ? 0 : TND_EINVAL;
}

int upg_journal_decode(const uint8_t *buf, size_t len, struct upg_journal *j)
{
	struct tlvr r;
	struct tlv t;
	int rc, v = 0;
	uint64_t has = 0, w;
	uint8_t b;
	uint16_t h;
	const struct tlv *nstate = NULL, *ninc = NULL;
	struct tlv ns_t = { 0 }, ni_t = { 0 };
	if (!buf || len > UPG_JOURNAL_BYTES_MAX)
		return TND_EINVAL;
	memset(j, 0, sizeof(*j));
	j->error.step = -1;
	tlvr_init(&r, buf, len);
	while ((rc = tlvr_next(&r, &t)) == 1) {
		int e = 0;
		switch (t.type) {
		case J_ID: e = tlv_u64(&t, &j->id); break;
		case J_SEQ: e = tlv_u64(&t, &j->seq); break;
		case J_STATE: e = tlv_u8(&t, &j->state); break;
		case J_COORD: e = get_s8(&t, &v); j->coordinator = (int8_t)v; break;
		case J_FLAGS:
			e = tlv_u8(&t, &b);
			if (!e && (b & ~(JF_FORCE | JF_DISRUPTIVE | JF_NO_FAILBACK | JF_FINALIZED)))
				e = TND_EINVAL;
			j->force = b & JF_FORCE;
			j->disruptive = b & JF_DISRUPTIVE;
			j->no_failback = b & JF_NO_FAILBACK;
			j->finalized = b & JF_FINALIZED;
			break;
		case J_FROM: e = tlv_str(&t, j->from, sizeof(j->from)); break;
		case J_TO: e = tlv_str(&t, j->to, sizeof(j->to)); break;
		case J_FROM_PROTO: e = tlv_u8(&t, &j->from_proto); break;
		case J_TO_PROTO: e = tlv_u8(&t, &j->to_proto); break;
		case J_DIGEST:
			if (t.len != UPG_DIGEST_LEN)
				e = TND_EINVAL;
			else
				memcpy(j->digest, t.val, UPG_DIGEST_LEN);
			break;
		case J_BYTES: e = tlv_u64(&t, &j->image_bytes); break;
		case J_SOURCE: e = get_s8(&t, &v); j->source = (int8_t)v; break;
		case J_WALL: e = tlv_u64(&t, &w); j->wall_start_ms = (int64_t)w; break;
		case J_ELAPSED: e = tlv_u32(&t, &j->elapsed_ms); break;
		case J_CURSOR: e = tlv_u16(&t, &h); j->cursor = (int16_t)h; break;
		case J_NNODES: e = tlv_u8(&t, &b); j->n_nodes = b; break;
		case J_NSTATE: ns_t = t; nstate = &ns_t; break;
		case J_NINC: ni_t = t; ninc = &ni_t; break;
		case J_STEP:
			if (j->n_steps >= UPG_STEPS_MAX)
				return TND_EINVAL;
			e = decode_step(&t, &j->steps[j->n_steps]);
			j->n_steps++;
			break;
		case J_ECODE: e = tlv_str(&t, j->error.code, sizeof(j->error.code)); break;
		case J_EMSG: e = tlv_str(&t, j->error.message, sizeof(j->error.message)); break;
		case J_ERECOV: e = tlv_str(&t, j->error.recovery, sizeof(j->error.recovery)); break;
		case J_ESTEP: e = tlv_u16(&t, &h); j->error.step = (int16_t)h; break;
		default: continue; /* unknown TLVs are skipped (STYLE) */
		}
		if (e)
			return TND_EINVAL;
		has |= 1ull << t.type;
	}
	if (rc < 0)
		return TND_EINVAL;
	uint64_t need = (1ull << J_ID) | (1ull << J_SEQ) | (1ull << J_STATE) |
			(1ull << J_COORD) | (1ull << J_FLAGS) | (1ull << J_FROM) |
			(1ull << J_TO) | (1ull << J_DIGEST) | (1ull << J_SOURCE) |
			(1ull << J_CURSOR) | (1ull << J_NNODES);
	if ((has & need) != need || !nstate || j->n_nodes < 1 || j->n_nodes > TND_NODES_MAX ||
	    nstate->len != j->n_nodes || (ninc && ninc->len != 8 * j->n_nodes))
		return TND_EINVAL;
	memcpy(j->node_state, nstate->val, (size_t)j->n_nodes);
	if (ninc)
		for (int x = 0; x < j->n_nodes; x++)
			j->node_inc[x] = wire_get64(ninc->val + 8 * x);
	return journal_check(j);
}

/* --- actions ------------------------------------------------------------ */

void upg_actions_reset(struct upg_actions *out)
{
	out->n = 0;
	out->n_dropped = 0;
}

static struct upg_act *act_add(struct upg_actions *out, enum upg_act_type t)
{
	if (out->n >= UPG_ACTIONS_MAX) {
		out->n_dropped++;
		return NULL;
	}
	struct upg_act *a = &out->a[out->n++];
	a->type = t;
	a->len = 0;
	a->journal = NULL;
	a->code[0] = a->message[0] = a->version[0] = 0;
	a->rc = 0;
	return a;
}

static int room(const struct upg_actions *out)
{
	return UPG_ACTIONS_MAX - out->n;
}

static void emit(struct upg_actions *out, enum upg_level lvl, const char *name,
		 const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void emit(struct upg_actions *out, enum upg_level lvl, const char *name,
		 const char *fmt, ...)
{
	struct upg_act *a = act_add(out, UPG_ACT_EVENT);
	if (!a)
		return;
	a->level = lvl;
	va_list ap;
	va_start(ap, fmt);
	tnd_event_vfmt(a->name, sizeof(a->name), name, a->kv, sizeof(a->kv), fmt, ap);
	va_end(ap);
}

/* id: the upgrade the answer is about (a start's new journal), 0 none. */
static void reply(struct upg_actions *out, uint32_t token, int rc, const char *code,
		  const char *msg, uint64_t id)
{
	struct upg_act *a = act_add(out, UPG_ACT_REPLY);
	if (!a)
		return;
	a->token = token;
	a->id = id;
	a->rc = rc;
	snprintf(a->code, sizeof(a->code), "%s", code);
	snprintf(a->message, sizeof(a->message), "%s", msg);
}

struct sendctx {
	struct upg_act *a;
	struct tlvw w;
	struct wire_hdr h;
};

static bool send_begin(struct upg *u, struct upg_actions *out, struct sendctx *s,
		       int to, uint8_t type)
{
	s->a = act_add(out, UPG_ACT_SEND);
	if (!s->a)
		return false;
	memset(&s->h, 0, sizeof(s->h));
	s->h.version = u->p.proto;
	s->h.cluster_id = u->p.cluster_id;
	s->h.sender = (uint8_t)u->self;
	s->h.type = type;
	s->h.incarnation = u->p.incarnation;
	s->h.seq = UPG_SEQ_SPACE | ++u->seq;
	s->a->to = to;
	tlvw_init(&s->w, s->a->pkt + WIRE_HDR_LEN, WIRE_BODY_MAX);
	return true;
}

static void send_finish(struct upg_actions *out, struct sendctx *s)
{
	size_t body = 0;
	if (tlvw_finish(&s->w, &body) != 0) {
		out->n--; /* the bounds of every message make this unreachable */
		emit(out, UPG_LVL_ERROR, "core.invariant", "upgrade_msg_too_large=1 type=%u",
		     s->h.type);
		return;
	}
	s->h.body_len = (uint16_t)body;
	wire_hdr_encode(&s->h, s->a->pkt);
	s->a->len = WIRE_HDR_LEN + body;
}

/* --- helpers on the cluster --------------------------------------------- */

static bool is_coord(const struct upg *u)
{
	return u->view.coordinator == u->self;
}

static bool live(const struct upg *u, int x)
{
	return x == u->self || (x >= 0 && x < u->n && u->view.alive[x]);
}

static bool active(const struct upg_journal *j)
{
	return j->id && (j->state == UPG_RUNNING || j->state == UPG_ABORTING);
}

/* (id, seq) order of journals. */
static int jcmp(uint64_t ai, uint64_t as, uint64_t bi, uint64_t bs)
{
	if (ai != bi)
		return ai < bi ? -1 : 1;
	return as < bs ? -1 : as > bs ? 1 : 0;
}

static const char *nname(const struct upg *u, int x)
{
	if (x < 0 || x >= u->n)
		return "-";
	return u->conf->nodes[x].name;
}

static const struct upg_facts *fresh(const struct upg *u, int x, mono_t now)
{
	if (x < 0 || x >= u->n)
		return NULL;
	const struct upg_facts *f = &u->peers[x].f;
	if (!f->known)
		return NULL;
	if (x != u->self && now - f->heard > MS_TO_MONO(UPG_FACTS_STALE_MS))
		return NULL;
	return f;
}

static bool member(const struct upg *u, int gi, int x)
{
	return u->conf->groups[gi].priority[x] > 0;
}

static int gindex(const struct upg *u, int group_id)
{
	for (int gi = 0; gi < u->conf->n_groups; gi++)
		if (u->conf->groups[gi].id == group_id)
			return gi;
	return -1;
}

static int preferred(const struct upg *u, int gi)
{
	int best = TND_NO_NODE, bp = 0;
	for (int x = 0; x < u->n; x++)
		if (u->conf->groups[gi].priority[x] > bp) {
			bp = u->conf->groups[gi].priority[x];
			best = x;
		}
	return best;
}

/* The member of group gi outside `not` with the highest priority. */
static int best_member(const struct upg *u, int gi, uint32_t not)
{
	int best = TND_NO_NODE, bp = 0;
	for (int x = 0; x < u->n; x++)
		if (!(not & (1u << x)) && u->conf->groups[gi].priority[x] > bp) {
			bp = u->conf->groups[gi].priority[x];
			best = x;
		}
	return best;
}

static int fact_gstate(const struct upg_facts *f, int group_id)
{
	for (int i = 0; i < f->n_groups && i < TND_GROUPS_MAX; i++)
		if (f->groups[i].id == group_id)
			return f->groups[i].state;
	return -1;
}

static bool vers_eq(const char *a, const char *b)
{
	int c;
	return version_cmp(a, b, &c) == 0 && c == 0;
}

static uint32_t elapsed(const struct upg *u, mono_t now)
{
	mono_t d = now - u->t0;
	if (d < 0)
		d = 0;
	int64_t ms = MONO_TO_MS(d);
	return ms > 0xfffffff0LL ? 0xfffffff0u : (uint32_t)ms;
}

/* "upgrade gw2,gw4", "move group 1 to gw2": what a step does. */
static const char *step_desc(const struct upg *u, const struct upg_step *s, char *b, size_t n)
{
	int k = snprintf(b, n, "%s", upg_kind_name(s->kind));
	switch (s->kind) {
	case UPG_K_MOVE:
		snprintf(b + k, n - (size_t)k, " group %u to %s", s->group, nname(u, s->node));
		break;
	case UPG_K_FAILBACK:
	case UPG_K_RELEASE:
		snprintf(b + k, n - (size_t)k, " group %u", s->group);
		break;
	case UPG_K_DISTRIBUTE:
	case UPG_K_UPGRADE:
	case UPG_K_REVERT: {
		const char *sep = " ";
		for (int x = 0; x < u->n && k < (int)n - 1; x++)
			if (s->nodes & (1u << x)) {
				k += snprintf(b + k, n - (size_t)k, "%s%s", sep, nname(u, x));
				sep = ",";
			}
		if (s->kind == UPG_K_DISTRIBUTE && k < (int)n - 1)
			snprintf(b + k, n - (size_t)k, " from %s", nname(u, s->node));
		break;
	}
	default:
		break;
	}
	return b;
}

/* --- journal changes ------------------------------------------------------ */

/* The one place the journal's state changes (STYLE, "State machines"). */
static void j_set_state(struct upg *u, struct upg_actions *out, enum upg_state to,
			const char *reason)
{
	emit(out, to == UPG_FAILED ? UPG_LVL_ERROR : UPG_LVL_INFO, "upgrade.state",
	     "id=%llu from=%s to=%s reason=\"%s\"", (unsigned long long)u->j.id,
	     upg_state_name(u->j.state), upg_state_name(to), reason);
	u->j.state = (uint8_t)to;
}

/* One UPG_ACT_STORE per call: it points at the live journal, so the
 * first one in the list writes the final state of every record made in
 * this call, and still comes before every action that follows the first
 * record. A second one would only repeat the write. */
static void store(struct upg *u, struct upg_actions *out)
{
	if (u->st_out == out && u->st_idx >= 0 && u->st_idx < out->n &&
	    out->a[u->st_idx].type == UPG_ACT_STORE && out->a[u->st_idx].journal == &u->j)
		return;
	struct upg_act *a = act_add(out, UPG_ACT_STORE);
	if (!a)
		return;
	a->journal = &u->j;
	u->st_out = out;
	u->st_idx = out->n - 1;
}

/* A new term (as Raft's): seq jumps above every term heard of for this
 * journal (also from nodes that are not live now) and carries this
 * node, so records a previous coordinator stored unseen before it died
 * never share an (id, seq) with ours, and ours order above them. */
static void new_term(struct upg *u)
{
	uint64_t term = u->j.seq >> SEQ_TERM_SHIFT;
	for (int x = 0; x < u->n; x++) {
		const struct upg_facts *f = &u->peers[x].f;
		if (x != u->self && f->known && f->journal_id == u->j.id &&
		    (f->journal_seq >> SEQ_TERM_SHIFT) > term)
			term = f->journal_seq >> SEQ_TERM_SHIFT;
	}
	u->j.seq = ((term + 1) << SEQ_TERM_SHIFT) | ((uint64_t)u->self << SEQ_NODE_SHIFT);
	u->term_own = true;
}

/* Record a change: seq + 1 (in this coordinator's term), stored here
 * first (the STORE precedes every action that follows in the batch),
 * then sent to every peer. */
static void j_commit(struct upg *u, struct upg_actions *out, mono_t now)
{
	if (!u->term_own)
		new_term(u);
	u->j.seq++;
	u->j.coordinator = (int8_t)u->self;
	u->j.elapsed_ms = elapsed(u, now);
	if (upg_journal_encode(&u->j, u->enc, sizeof(u->enc), &u->enc_len) != 0) {
		u->enc_len = 0;
		emit(out, UPG_LVL_ERROR, "core.invariant", "upgrade_journal_unencodable=1 id=%llu",
		     (unsigned long long)u->j.id);
	}
	store(u, out);
	for (int x = 0; x < u->n; x++)
		u->peers[x].jnext = now;
	u->dirty = true;
}

static uint32_t t_rel(const struct upg *u, mono_t now)
{
	uint32_t e = elapsed(u, now);
	return e ? e : 1; /* 0 means "not yet" */
}

/* --- messages out ----------------------------------------------------------- */

static void send_state(struct upg *u, struct upg_actions *out, int to)
{
	const struct upg_facts *f = &u->peers[u->self].f;
	struct sendctx s;
	if (!send_begin(u, out, &s, to, UPG_MSG_STATE))
		return;
	tlvw_str(&s.w, M_VERSION, f->version);
	if (f->previous[0])
		tlvw_str(&s.w, M_PREV, f->previous);
	if (f->revert_reason[0])
		tlvw_str(&s.w, M_RREASON, f->revert_reason);
	if (f->revert_from[0])
		tlvw_str(&s.w, M_RFROM, f->revert_from);
	if (f->revert_at_s > 0)
		tlvw_u64(&s.w, M_RAT, (uint64_t)f->revert_at_s);
	tlvw_u8(&s.w, M_PMIN, f->proto_min);
	tlvw_u8(&s.w, M_PMAX, f->proto_max);
	tlvw_u64(&s.w, M_JID, u->j.id);
	tlvw_u64(&s.w, M_JSEQ, u->j.seq);
	tlvw_u8(&s.w, M_FLAGS, (uint8_t)((f->confirmed ? FF_CONFIRMED : 0) |
					 (f->links_all_up ? FF_LINKS : 0) |
					 (f->maint ? FF_MAINT : 0) |
					 (f->config_in_sync ? FF_CFGSYNC : 0) |
					 (f->sessions_in_sync ? FF_SESSIONS : 0) |
					 (f->has_image ? FF_IMAGE : 0)));
	tlvw_u64(&s.w, M_CGEN, f->config_gen);
	tlvw_u64(&s.w, M_FREE, f->free_bytes);
	tlvw_u8(&s.w, M_CPU, f->cpu_percent);
	uint8_t g[2 * TND_GROUPS_MAX];
	int ng = f->n_groups < 0 ? 0 : f->n_groups > TND_GROUPS_MAX ? TND_GROUPS_MAX : f->n_groups;
	for (int i = 0; i < ng; i++) {
		g[2 * i] = f->groups[i].id;
		g[2 * i + 1] = f->groups[i].state;
	}
	tlvw_put(&s.w, M_GROUPS, g, (uint16_t)(2 * ng));
	/* who this node takes for coordinator: a new coordinator settles
	 * only on STATEs that name it (see settle) */
	put_s8(&s.w, M_VCOORD, u->view.coordinator);
	send_finish(out, &s);
}

static void send_states(struct upg *u, struct upg_actions *out, mono_t now)
{
	if (room(out) < u->n + 2)
		return; /* still dirty: at the next call (next_wake says now) */
	for (int x = 0; x < u->n; x++)
		if (x != u->self && live(u, x))
			send_state(u, out, x);
	u->dirty = false;
	u->state_next = now + MS_TO_MONO(UPG_STATE_MS) +
			(mono_t)(rng_next(&u->rng) % (uint64_t)MS_TO_MONO(UPG_STATE_MS / 8));
}

static void send_journal(struct upg *u, struct upg_actions *out, int to)
{
	if (!u->j.id || !u->enc_len)
		return;
	uint8_t total = (uint8_t)((u->enc_len + UPG_FRAG_BYTES - 1) / UPG_FRAG_BYTES);
	for (uint8_t i = 0; i < total; i++) {
		struct sendctx s;
		if (!send_begin(u, out, &s, to, UPG_MSG_JOURNAL))
			return;
		size_t off = (size_t)i * UPG_FRAG_BYTES;
		size_t n = u->enc_len - off < UPG_FRAG_BYTES ? u->enc_len - off : UPG_FRAG_BYTES;
		tlvw_u64(&s.w, M_ID, u->j.id);
		tlvw_u64(&s.w, M_SEQ, u->j.seq);
		tlvw_u8(&s.w, M_FRAG, i);
		tlvw_u8(&s.w, M_TOTAL, total);
		tlvw_u16(&s.w, M_LEN, (uint16_t)u->enc_len);
		tlvw_put(&s.w, M_DATA, u->enc + off, (uint16_t)n);
		send_finish(out, &s);
	}
}

static void send_idseq(struct upg *u, struct upg_actions *out, int to, uint8_t type)
{
	struct sendctx s;
	if (!send_begin(u, out, &s, to, type))
		return;
	tlvw_u64(&s.w, M_ID, u->j.id);
	tlvw_u64(&s.w, M_SEQ, u->j.seq);
	send_finish(out, &s);
}

static void send_done(struct upg *u, struct upg_actions *out, const struct doent *e)
{
	struct sendctx s;
	if (!send_begin(u, out, &s, e->from, UPG_MSG_DONE))
		return;
	tlvw_u64(&s.w, M_ID, e->id);
	tlvw_u16(&s.w, M_STEP, (uint16_t)e->step);
	tlvw_u8(&s.w, M_OP, (uint8_t)e->op);
	tlvw_u8(&s.w, M_ATTEMPT, e->attempt);
	tlvw_u32(&s.w, M_RC, (uint32_t)-e->rc);
	if (e->code[0])
		tlvw_str(&s.w, M_CODE, e->code);
	if (e->msg[0])
		tlvw_str(&s.w, M_MSG, e->msg);
	send_finish(out, &s);
}

static void send_resp(struct upg *u, struct upg_actions *out, int to, uint64_t inc,
		      uint32_t req, int rc, const char *code, const char *msg, uint64_t id)
{
	struct sendctx s;
	if (!send_begin(u, out, &s, to, UPG_MSG_RESP))
		return;
	tlvw_u32(&s.w, M_REQ, req);
	if (id)
		tlvw_u64(&s.w, M_ID, id); /* the upgrade a start created */
	tlvw_u64(&s.w, M_INC, inc);
	tlvw_u32(&s.w, M_RC, (uint32_t)-rc);
	if (code[0])
		tlvw_str(&s.w, M_CODE, code);
	tlvw_str(&s.w, M_MSG, msg);
	send_finish(out, &s);
}

static void send_req(struct upg *u, struct upg_actions *out, int to)
{
	const struct mine *m = &u->mine;
	struct sendctx s;
	if (!send_begin(u, out, &s, to, UPG_MSG_REQ))
		return;
	tlvw_u32(&s.w, M_REQ, m->req);
	tlvw_u8(&s.w, M_OP, (uint8_t)m->op);
	put_s8(&s.w, M_NODE, m->node);
	tlvw_u8(&s.w, M_OPTS, (uint8_t)((m->opts.force ? OF_FORCE : 0) |
					(m->opts.disruptive ? OF_DISRUPTIVE : 0) |
					(m->opts.no_failback ? OF_NO_FAILBACK : 0)));
	if (m->has_img) {
		const struct upg_image *i = &m->img;
		tlvw_u8(&s.w, M_IFLAGS, (uint8_t)(IF_HAS_IMAGE | (i->present ? IF_PRESENT : 0) |
						  (i->intact ? IF_INTACT : 0) |
						  (i->signed_ok ? IF_SIGNED : 0) |
						  (i->trusted ? IF_TRUSTED : 0) |
						  (i->config_ok ? IF_CONFIG : 0)));
		if (i->check_code[0])
			tlvw_str(&s.w, M_ICODE, i->check_code);
		if (i->check_message[0])
			tlvw_str(&s.w, M_IMSG, i->check_message);
		tlvw_str(&s.w, M_VERSION, i->version);
		tlvw_str(&s.w, M_IMIN, i->min_upgrade_from);
		tlvw_u8(&s.w, M_PMIN, i->proto_min);
		tlvw_u8(&s.w, M_PMAX, i->proto_max);
		tlvw_put(&s.w, M_DIGEST, i->digest, UPG_DIGEST_LEN);
		tlvw_u64(&s.w, M_BYTES, i->bytes);
		if (i->config_message[0])
			tlvw_str(&s.w, M_ICFGMSG, i->config_message);
	}
	send_finish(out, &s);
}

/* --- node side: actions asked by a coordinator ------------------------------ */

static struct doent *do_find(struct upg *u, uint64_t id, int step, enum upg_do op)
{
	for (int i = 0; i < DO_CACHE_MAX; i++) {
		struct doent *e = &u->dc[i];
		if (e->used && e->id == id && e->step == step && e->op == op)
			return e;
	}
	return NULL;
}

static void coord_on_done(struct upg *u, int x, uint64_t id, int step, enum upg_do op,
			  int attempt, int rc, const char *code, const char *msg);

static void do_answer(struct upg *u, struct upg_actions *out, const struct doent *e)
{
	if (e->from == u->self)
		coord_on_done(u, u->self, e->id, e->step, e->op, e->attempt, e->rc, e->code, e->msg);
	else
		send_done(u, out, e);
}

/* A DO from `from` (self: the coordinator's own node): act once per
 * (id, step, op), answer every time. `asked_inc`: for INSTALL / REVERT,
 * the incarnation of this node the coordinator recorded when it asked
 * (journal node_inc; 0 unknown). Asked of a previous life of this node,
 * it is done if that life did it: this node runs the version, or gave
 * it up by itself (the coordinator then sees that in the facts and
 * fails the step; installing it again would undo the node's own
 * verdict); else (that life died first) it is done now. `attempt`: a
 * FETCH that failed is done again when asked under another attempt. */
static void node_do(struct upg *u, struct upg_actions *out, int from, uint64_t id, int step,
		    enum upg_do op, const char *version, const uint8_t *digest,
		    uint64_t bytes, int node, uint64_t asked_inc, uint8_t attempt)
{
	struct doent *e = do_find(u, id, step, op);
	if ((op == UPG_DO_INSTALL || op == UPG_DO_REVERT) && asked_inc &&
	    asked_inc != u->p.incarnation) {
		const struct upg_facts *me = &u->peers[u->self].f;
		if (vers_eq(me->version, version) ||
		    (op == UPG_DO_INSTALL && me->revert_reason[0] &&
		     vers_eq(me->revert_from, version))) {
			struct doent d = { .id = id, .step = step, .op = op, .from = from };
			snprintf(d.msg, sizeof(d.msg), "done before this start");
			do_answer(u, out, &d);
			return;
		}
	}
	if (e) {
		e->from = from;
		bool again = op == UPG_DO_FETCH && e->done && e->rc != 0 && attempt != e->attempt;
		e->attempt = attempt;
		if (!again) {
			if (e->done)
				do_answer(u, out, e);
			return;
		}
	} else {
		/* a free slot, else the oldest finished, else the oldest */
		for (int pass = 0; pass < 3 && !e; pass++)
			for (int i = 0; i < DO_CACHE_MAX; i++) {
				struct doent *c = &u->dc[i];
				bool ok = pass == 0 ? !c->used : pass == 1 ? c->done : true;
				if (ok && (!e || c->age < e->age))
					e = c;
			}
	}
	memset(e, 0, sizeof(*e));
	e->used = true;
	e->id = id;
	e->step = step;
	e->op = op;
	e->from = from;
	e->attempt = attempt;
	e->age = ++u->do_age;
	struct upg_act *a = act_add(out, UPG_ACT_DO);
	if (!a) {
		e->used = false; /* asked again at the next resend */
		return;
	}
	a->op = op;
	a->id = id;
	a->step = step;
	snprintf(a->version, sizeof(a->version), "%s", version ? version : "");
	if (digest)
		memcpy(a->digest, digest, UPG_DIGEST_LEN);
	else
		memset(a->digest, 0, UPG_DIGEST_LEN);
	a->bytes = bytes;
	a->node = node;
	emit(out, UPG_LVL_INFO, "upgrade.do", "id=%llu step=%d op=%d from=%s version=%s attempt=%u",
	     (unsigned long long)id, step, op, nname(u, from), version ? version : "",
	     attempt + 1u);
}

static void replicate(struct upg *u, struct upg_actions *out, mono_t now);

/* The node that wrote record seq of journal id: the one that took the
 * term (seq bits 16..23), or in term 0 the creator of the id. */
static int seq_writer(uint64_t id, uint64_t seq)
{
	return (int)((seq >> SEQ_TERM_SHIFT) ? (seq >> SEQ_NODE_SHIFT) & 0xff
		     : id & ((1u << ID_NODE_BITS) - 1));
}

/* --- the coordinator: runtime of the running step ---------------------------- */

static void run_reset(struct upg *u, mono_t now)
{
	memset(&u->run, 0, sizeof(u->run));
	u->run.step = u->j.cursor;
	u->run.rec_seq = u->j.seq;
	u->run.t0 = now;
}

static void coord_on_done(struct upg *u, int x, uint64_t id, int step, enum upg_do op,
			  int attempt, int rc, const char *code, const char *msg)
{
	const struct upg_journal *j = &u->j;
	if (!is_coord(u) || !u->took_over || id != j->id || step != j->cursor ||
	    step != u->run.step || step >= j->n_steps || x < 0 || x >= u->n)
		return;
	enum upg_do want;
	switch (j->steps[step].kind) {
	case UPG_K_BACKUP: want = UPG_DO_BACKUP; break;
	case UPG_K_DISTRIBUTE: want = UPG_DO_FETCH; break;
	case UPG_K_UPGRADE: want = UPG_DO_INSTALL; break;
	case UPG_K_REVERT: want = UPG_DO_REVERT; break;
	default: return;
	}
	/* attempt -1: a DONE that does not say (an older build) */
	if (op != want || u->run.got[x] || (attempt >= 0 && attempt != u->run.attempt[x]))
		return;
	u->run.got[x] = true;
	u->run.rc[x] = rc;
	snprintf(u->run.code[x], UPG_CODE_LEN, "%s", code ? code : "");
	snprintf(u->run.msg[x], UPG_MSG_LEN, "%s", msg ? msg : "");
}

static int fail(struct upg *u, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(struct upg *u, const char *code, const char *fmt, ...)
{
	snprintf(u->run.fcode, sizeof(u->run.fcode), "%s", code);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(u->run.fmsg, sizeof(u->run.fmsg), fmt, ap);
	va_end(ap);
	return -1;
}

/* Ask node x (self: locally) for an action of the running step, every
 * UPG_RESEND_MS until it answers; E_NODE_TIMEOUT after UPG_DO_TIMEOUT_MS. */
static int ask(struct upg *u, struct upg_actions *out, mono_t now, int x, enum upg_do op,
	       const char *version, int node)
{
	struct run *r = &u->run;
	if (!r->do_at[x])
		r->do_at[x] = now;
	if (now - r->do_at[x] >= MS_TO_MONO(UPG_DO_TIMEOUT_MS))
		return fail(u, "E_NODE_TIMEOUT", "%s did not answer %s in %d s", nname(u, x),
			    upg_kind_name(u->j.steps[u->j.cursor].kind), UPG_DO_TIMEOUT_MS / 1000);
	if (now < r->do_next[x])
		return 0;
	r->do_next[x] = now + MS_TO_MONO(UPG_RESEND_MS);
	/* a restart is tied to the incarnation recorded when it was asked */
	uint64_t inc = op == UPG_DO_INSTALL || op == UPG_DO_REVERT ? u->j.node_inc[x] : 0;
	if (x == u->self) {
		node_do(u, out, x, u->j.id, u->j.cursor, op, version, u->j.digest,
			u->j.image_bytes, node, inc, r->attempt[x]);
		return 0;
	}
	if (!live(u, x))
		return 0;
	struct sendctx s;
	if (!send_begin(u, out, &s, x, UPG_MSG_DO))
		return 0;
	tlvw_u64(&s.w, M_ID, u->j.id);
	tlvw_u16(&s.w, M_STEP, (uint16_t)u->j.cursor);
	tlvw_u8(&s.w, M_OP, (uint8_t)op);
	tlvw_str(&s.w, M_VERSION, version);
	tlvw_put(&s.w, M_DIGEST, u->j.digest, UPG_DIGEST_LEN);
	tlvw_u64(&s.w, M_BYTES, u->j.image_bytes);
	put_s8(&s.w, M_NODE, node);
	if (inc)
		tlvw_u64(&s.w, M_INC, inc);
	tlvw_u8(&s.w, M_ATTEMPT, r->attempt[x]);
	send_finish(out, &s);
	return 0;
}

static int done_failed(struct upg *u, int x, const char *what)
{
	struct run *r = &u->run;
	return fail(u, r->code[x][0] ? r->code[x] : "E_NODE_FAILED", "%s on %s failed: %s", what,
		    nname(u, x), r->msg[x][0] ? r->msg[x] : tnd_strerror(r->rc[x]));
}

static bool healthy(const struct upg *u, int x, const struct upg_facts *f)
{
	if (!f || !f->links_all_up || f->maint || !f->confirmed || !live(u, x) ||
	    (x != u->self && !u->view.links_up[x]))
		return false;
	for (int gi = 0; gi < u->conf->n_groups; gi++) {
		if (!member(u, gi, x))
			continue;
		int st = fact_gstate(f, u->conf->groups[gi].id);
		if (st != UPG_G_PRIMARY && st != UPG_G_SECONDARY)
			return false;
	}
	return true;
}

/* Before node x restarts, the groups it is primary of go to another live
 * member outside the batch, or in it and done (one on `target` first):
 * the plan put none on it, but a failover since may have. Asked when it
 * begins and again before every DO is sent (a group may have come to it
 * meanwhile). A group whose other members are all out of reach (down,
 * or cut off) waits for one of them: restarting its only reachable
 * member would leave it without a primary. 1 when it holds none that can
 * or should move, 0 while a move is asked or awaited, -1 (E_MOVE) when
 * that took UPG_MOVE_TIMEOUT_MS. */
static int evacuate(struct upg *u, struct upg_actions *out, mono_t now, int x,
		    uint32_t batch, const char *target)
{
	struct run *r = &u->run;
	bool moving = false;
	for (int gi = 0; gi < u->conf->n_groups; gi++) {
		if (u->view.primary[gi] != x)
			continue;
		int best = TND_NO_NODE, bp = 0;
		bool best_on = false;
		/* a member that could hold it later: out of reach now, or
		 * its sessions not in sync yet (SPEC: verified in sync
		 * before a planned move) */
		bool later = false;
		for (int y = 0; y < u->n; y++) {
			int pr = u->conf->groups[gi].priority[y];
			const struct upg_facts *f = fresh(u, y, now);
			bool on = f && vers_eq(f->version, target);
			if (y == x || pr == 0 || ((batch & (1u << y)) && r->ph[y] != PH_DONE))
				continue;
			/* facts of its current life: a STATE since it came
			 * back (the last one before it restarted said "in
			 * sync") */
			if (!live(u, y) || (y != u->self && !u->peers[y].heard) || !f ||
			    !f->sessions_in_sync) {
				later = true;
				continue;
			}
			if (best == TND_NO_NODE || (on && !best_on) || (on == best_on && pr > bp)) {
				best = y;
				bp = pr;
				best_on = on;
			}
		}
		if (best == TND_NO_NODE && !later)
			continue; /* its only member: it restarts with it */
		if (!r->evac_at[x])
			r->evac_at[x] = now;
		if (now - r->evac_at[x] >= MS_TO_MONO(UPG_MOVE_TIMEOUT_MS))
			return fail(u, "E_MOVE", best == TND_NO_NODE ?
				    "group %u is still on %s, which is to restart, after %d s: no other member is reachable and in sync" :
				    "group %u is still on %s, which is to restart, after %d s",
				    u->conf->groups[gi].id, nname(u, x), UPG_MOVE_TIMEOUT_MS / 1000);
		moving = true;
		if (best != TND_NO_NODE && now >= r->do_next[x]) {
			struct upg_act *a = act_add(out, UPG_ACT_FAILOVER);
			if (a) {
				a->group = u->conf->groups[gi].id;
				a->node = best;
			}
			emit(out, UPG_LVL_INFO, "upgrade.evacuate", "id=%llu step=%d group=%u from=%s to=%s",
			     (unsigned long long)u->j.id, u->j.cursor, u->conf->groups[gi].id,
			     nname(u, x), nname(u, best));
		}
	}
	if (moving && now >= r->do_next[x])
		r->do_next[x] = now + MS_TO_MONO(MOVE_RETRY_MS);
	if (!moving)
		r->evac_at[x] = 0;
	return moving ? 0 : 1;
}

/* A node of an UPGRADE (up) or REVERT step begins: recorded (INSTALLING
 * or REVERTING, with the incarnation it runs now) before it is asked;
 * one already on the target only has to prove its health. */
static void node_begin(struct upg *u, mono_t now, int x, bool up)
{
	struct run *r = &u->run;
	struct upg_journal *j = &u->j;
	const struct upg_facts *f = fresh(u, x, now);
	const char *target = up ? j->to : j->from;
	r->phase_at[x] = now;
	if (f && vers_eq(f->version, target)) {
		j->node_inc[x] = 0;
		j->node_state[x] = up ? UPG_N_RESYNCING : UPG_N_REVERTING;
		r->ph[x] = PH_SYNC;
		return;
	}
	j->node_inc[x] = u->peers[x].f.incarnation ? u->peers[x].f.incarnation : 1;
	j->node_state[x] = up ? UPG_N_INSTALLING : UPG_N_REVERTING;
	r->ph[x] = PH_DO;
}

/* One node of an UPGRADE (up) or REVERT step after node_begin: 1 done,
 * 0 waiting, -1 failed; *dirty when the journal changed (recorded by the
 * caller, once per turn). */
static int drive_node(struct upg *u, struct upg_actions *out, mono_t now, int x, bool up,
		      bool *dirty)
{
	struct run *r = &u->run;
	struct upg_journal *j = &u->j;
	const struct upg_facts *f = fresh(u, x, now);
	const char *target = up ? j->to : j->from, *other = up ? j->from : j->to;
	const char *what = up ? "install" : "revert";
	bool restarted = f && j->node_inc[x] && f->incarnation != j->node_inc[x];
	bool gave_up = restarted && f->revert_reason[0] && vers_eq(f->version, other) &&
		       (!f->revert_from[0] || vers_eq(f->revert_from, target));
	switch (r->ph[x]) {
	case PH_DO:
		/* A node that gave the version up since it was asked (its
		 * DONE, or the record of it, was lost) is never asked again:
		 * it would install what it just refused. */
		if (up && gave_up)
			return fail(u, "E_NODE_REVERTED", "%s went back to %s by itself: %s",
				    nname(u, x), f->version, f->revert_reason);
		if (restarted && vers_eq(f->version, target)) {
			r->ph[x] = PH_SYNC; /* the DONE was lost; it is back */
			r->phase_at[x] = now;
			if (up) {
				j->node_state[x] = UPG_N_RESYNCING;
				*dirty = true;
			}
			return 0;
		}
		if (r->got[x]) {
			if (r->rc[x] != 0) {
				if (up) {
					j->node_state[x] = UPG_N_FAILED;
					*dirty = true;
				}
				return done_failed(u, x, what);
			}
			r->ph[x] = PH_REJOIN;
			r->phase_at[x] = now;
			if (up) {
				j->node_state[x] = UPG_N_RESTARTING;
				*dirty = true;
			}
			return 0;
		}
		/* not asked while a group sits on it that can go elsewhere */
		int ev = evacuate(u, out, now, x, j->steps[j->cursor].nodes, target);
		if (ev <= 0)
			return ev;
		return ask(u, out, now, x, up ? UPG_DO_INSTALL : UPG_DO_REVERT, target, TND_NO_NODE);
	case PH_REJOIN:
		if (gave_up)
			return fail(u, "E_NODE_REVERTED", "%s went back to %s by itself: %s",
				    nname(u, x), f->version, f->revert_reason);
		if (restarted && vers_eq(f->version, target)) {
			r->ph[x] = PH_SYNC;
			r->phase_at[x] = now;
			if (up) {
				j->node_state[x] = UPG_N_RESYNCING;
				*dirty = true;
			}
			return 0;
		}
		if (now - r->phase_at[x] >= MS_TO_MONO((int64_t)u->conf->upgrade_hold_timer_s * 1000))
			return fail(u, "E_REJOIN_TIMEOUT", "%s did not rejoin on %s within %u s",
				    nname(u, x), target, u->conf->upgrade_hold_timer_s);
		return 0;
	case PH_SYNC:
		if (up && gave_up)
			return fail(u, "E_NODE_REVERTED", "%s went back to %s by itself: %s",
				    nname(u, x), f->version, f->revert_reason);
		if (!r->synced[x]) {
			if (f && f->sessions_in_sync && vers_eq(f->version, target)) {
				r->synced[x] = true;
				r->synced_at[x] = now;
			} else if (now - r->phase_at[x] >=
				   MS_TO_MONO((int64_t)u->conf->upgrade_sync_timeout_s * 1000)) {
				return fail(u, "E_RESYNC_TIMEOUT",
					    "%s did not resync its sessions within %u s",
					    nname(u, x), u->conf->upgrade_sync_timeout_s);
			} else {
				return 0;
			}
		}
		if (healthy(u, x, f) && vers_eq(f->version, target)) {
			r->ph[x] = PH_DONE;
			j->node_state[x] = up ? UPG_N_UPGRADED : UPG_N_REVERTED;
			*dirty = true;
			return 1;
		}
		if (now - r->synced_at[x] >= MS_TO_MONO(UPG_HEALTH_MS))
			return fail(u, "E_HEALTH",
				    "%s is not healthy on %s after %d s (links, groups or boot confirmation)",
				    nname(u, x), target, UPG_HEALTH_MS / 1000);
		return 0;
	default:
		return 1;
	}
}

/* A MOVE (or the move of a FAILBACK): 1 when group gi's primary is
 * `target`. */
static int drive_move(struct upg *u, struct upg_actions *out, mono_t now, int gi, int target)
{
	struct run *r = &u->run;
	uint8_t gid = u->conf->groups[gi].id;
	if (u->view.primary[gi] == target)
		return 1;
	if (now - r->t0 >= MS_TO_MONO(UPG_MOVE_TIMEOUT_MS))
		return fail(u, "E_MOVE", "group %u is still on %s, not %s, after %d s", gid,
			    nname(u, u->view.primary[gi]), nname(u, target),
			    UPG_MOVE_TIMEOUT_MS / 1000);
	/* a planned move hands the group over only once the target's
	 * sessions are in sync (SPEC section 5 step 4), as its current
	 * life reports them */
	const struct upg_facts *f = fresh(u, target, now);
	if (!f || !live(u, target) || (target != u->self && !u->peers[target].heard) ||
	    !f->sessions_in_sync)
		return 0;
	if (!r->fired || now >= r->next) {
		struct upg_act *a = act_add(out, UPG_ACT_FAILOVER);
		if (a) {
			a->group = gid;
			a->node = target;
			r->fired = true;
			r->next = now + MS_TO_MONO(MOVE_RETRY_MS);
		}
	}
	return 0;
}

static void reset_group(struct upg_actions *out, uint8_t gid)
{
	struct upg_act *a = act_add(out, UPG_ACT_RESET);
	if (a)
		a->group = gid;
}

/* The running step: 1 done, 0 waiting, -1 failed (run.fcode/fmsg). */
static int drive_step(struct upg *u, struct upg_actions *out, mono_t now)
{
	struct upg_journal *j = &u->j;
	struct upg_step *s = &j->steps[j->cursor];
	struct run *r = &u->run;
	uint32_t all = u->n >= 32 ? 0xffffffffu : (1u << u->n) - 1;
	if (!r->inited) {
		r->inited = true;
		if (s->kind == UPG_K_UPGRADE || s->kind == UPG_K_REVERT) {
			bool up = s->kind == UPG_K_UPGRADE;
			for (int x = 0; x < u->n; x++) {
				uint8_t ns = j->node_state[x];
				r->ph[x] = PH_BEGIN;
				if (up && ns == UPG_N_INSTALLING) r->ph[x] = PH_DO;
				if (up && ns == UPG_N_RESTARTING) r->ph[x] = PH_REJOIN;
				if (up && ns == UPG_N_RESYNCING) r->ph[x] = PH_SYNC;
				if (up && ns == UPG_N_UPGRADED) r->ph[x] = PH_DONE;
				/* REVERTING with no incarnation recorded: it was
				 * on the previous version already, only its
				 * health is awaited (node_begin) */
				if (!up && ns == UPG_N_REVERTING)
					r->ph[x] = j->node_inc[x] ? PH_DO : PH_SYNC;
				if (!up && ns == UPG_N_REVERTED) r->ph[x] = PH_DONE;
				r->phase_at[x] = now;
			}
		}
		if (s->kind == UPG_K_DISTRIBUTE) {
			bool ch = false;
			for (int x = 0; x < u->n; x++)
				if ((s->nodes & (1u << x)) && j->node_state[x] == UPG_N_PENDING) {
					j->node_state[x] = UPG_N_FETCHING;
					ch = true;
				}
			if (ch)
				j_commit(u, out, now);
		}
	}
	switch (s->kind) {
	case UPG_K_FREEZE:
	case UPG_K_PREEMPT_OFF:
	case UPG_K_PREEMPT_ON:
	case UPG_K_UNFREEZE:
		/* their effect is the record itself, held by every live node */
		return 1;
	case UPG_K_BACKUP:
		for (int x = 0; x < u->n; x++) {
			if (r->done_mask & (1u << x))
				continue;
			if (r->got[x]) {
				if (r->rc[x] != 0)
					return done_failed(u, x, "configuration backup");
				r->done_mask |= 1u << x;
				continue;
			}
			if (ask(u, out, now, x, UPG_DO_BACKUP, j->from, TND_NO_NODE) < 0)
				return -1;
		}
		return (r->done_mask & all) == all ? 1 : 0;
	case UPG_K_DISTRIBUTE: {
		for (int x = 0; x < u->n; x++) {
			if (!(s->nodes & (1u << x)) || (r->done_mask & (1u << x)))
				continue;
			const struct upg_facts *f = fresh(u, x, now);
			if ((f && f->has_image && f->journal_id == j->id) || (r->got[x] && r->rc[x] == 0)) {
				r->done_mask |= 1u << x;
				continue;
			}
			if (r->got[x] && r->attempt[x] + 1 < FETCH_ATTEMPTS_MAX) {
				/* a transfer can fail for a passing reason (a
				 * link, the source restarting): ask again, a
				 * bounded number of times, after a pause */
				emit(out, UPG_LVL_WARN, "upgrade.retry",
				     "id=%llu step=%d node=%s attempt=%u code=%s message=\"%.120s\"",
				     (unsigned long long)j->id, j->cursor, nname(u, x),
				     r->attempt[x] + 2u, r->code[x][0] ? r->code[x] : "-", r->msg[x]);
				r->attempt[x]++;
				r->got[x] = false;
				r->do_at[x] = 0;
				r->do_next[x] = now + MS_TO_MONO(FETCH_RETRY_MS);
				continue;
			}
			if (r->got[x])
				return done_failed(u, x, "image fetch");
			if (ask(u, out, now, x, UPG_DO_FETCH, j->to, s->node) < 0)
				return -1;
		}
		if ((r->done_mask & s->nodes) != s->nodes)
			return 0;
		for (int x = 0; x < u->n; x++)
			if (j->node_state[x] == UPG_N_FETCHING)
				j->node_state[x] = UPG_N_PENDING;
		return 1;
	}
	case UPG_K_UPGRADE:
	case UPG_K_REVERT: {
		bool up = s->kind == UPG_K_UPGRADE, dirty = false, all_done = true;
		int rc = 0;
		for (int x = 0; x < u->n; x++) {
			if (!(s->nodes & (1u << x)) || r->ph[x] != PH_BEGIN)
				continue;
			/* The coordinator in its own batch (a takeover made a
			 * batch member group 0's primary) goes last: when the
			 * others are done, group 0 moves to one of them
			 * (evacuate) and the next coordinator begins it.
			 * (--disruptive restarts every node at once.) */
			bool others = false;
			for (int y = 0; y < u->n; y++)
				if (y != x && (s->nodes & (1u << y)) && r->ph[y] != PH_DONE)
					others = true;
			if (x == u->self && others && !j->disruptive) {
				all_done = false;
				continue;
			}
			/* begun only when up and reporting: its record names
			 * the incarnation that is asked */
			if (!live(u, x) || !fresh(u, x, now)) {
				if (now - r->t0 >= MS_TO_MONO(UPG_DO_TIMEOUT_MS))
					return fail(u, "E_NODE_TIMEOUT", "%s was not up for %s in %d s",
						    nname(u, x), upg_kind_name(s->kind),
						    UPG_DO_TIMEOUT_MS / 1000);
				all_done = false;
				continue;
			}
			/* one already on the target does not restart */
			const struct upg_facts *fx = fresh(u, x, now);
			/* One that gave the target up by itself since this
			 * upgrade began (a record of its install was lost
			 * with a coordinator) is not asked again. */
			if (up && fx && fx->revert_at_s > 0 && fx->revert_reason[0] &&
			    vers_eq(fx->revert_from, j->to) && !vers_eq(fx->version, j->to) &&
			    fx->revert_at_s >= j->wall_start_ms / 1000) {
				j->node_state[x] = UPG_N_FAILED;
				j_commit(u, out, now);
				return fail(u, "E_NODE_REVERTED", "%s went back to %s by itself: %s",
					    nname(u, x), fx->version, fx->revert_reason);
			}
			int ev = fx && vers_eq(fx->version, up ? j->to : j->from) ? 1
				 : evacuate(u, out, now, x, s->nodes, up ? j->to : j->from);
			if (ev < 0)
				return -1;
			if (ev == 0) {
				all_done = false; /* a group is moving off it first */
				continue;
			}
			node_begin(u, now, x, up);
			dirty = true;
		}
		if (dirty) {
			j_commit(u, out, now); /* before any of them is asked */
			replicate(u, out, now); /* and sent ahead of the DOs */
		}
		dirty = false;
		for (int x = 0; x < u->n && rc >= 0; x++) {
			if (!(s->nodes & (1u << x)))
				continue;
			rc = drive_node(u, out, now, x, up, &dirty);
			if (rc == 0)
				all_done = false;
		}
		if (dirty)
			j_commit(u, out, now);
		return rc < 0 ? -1 : all_done ? 1 : 0;
	}
	case UPG_K_MOVE: {
		int gi = gindex(u, s->group);
		if (gi < 0 || s->node < 0)
			return fail(u, "E_MOVE", "group %u is not in the configuration", s->group);
		return drive_move(u, out, now, gi, s->node);
	}
	case UPG_K_FAILBACK: {
		int gi = gindex(u, s->group);
		if (gi < 0)
			return fail(u, "E_MOVE", "group %u is not in the configuration", s->group);
		int p = preferred(u, gi);
		if (p >= 0 && live(u, p)) {
			int rc = drive_move(u, out, now, gi, p);
			if (rc <= 0)
				return rc;
		}
		reset_group(out, s->group);
		return 1;
	}
	case UPG_K_RELEASE:
		/* --no-failback: the group stays where the upgrade put it,
		 * held there by its manual flag (released by `tandemctl
		 * failover --group G --reset`); clearing the flag here would
		 * let preemption fail it back at once. */
		return 1;
	}
	return fail(u, "E_PLAN", "unknown step kind %u", s->kind);
}

/* --- the coordinator: the plan's execution ---------------------------------- */

static bool has_rollback(const struct upg_journal *j)
{
	for (int i = 0; i < j->n_steps; i++)
		if (j->steps[i].rollback)
			return true;
	return false;
}

static bool all_acked(const struct upg *u, uint64_t seq)
{
	for (int x = 0; x < u->n; x++)
		if (x != u->self && live(u, x) &&
		    jcmp(u->peers[x].ack_id, u->peers[x].ack_seq, u->j.id, seq) < 0)
			return false;
	return true;
}

/* "gw2 returned to 1.0.0; groups 0,1 on gw1": where things are now. */
static void recovery_text(struct upg *u, char *b, size_t n)
{
	const struct upg_journal *j = &u->j;
	size_t k = 0;
	b[0] = 0;
	for (int x = 0; x < u->n && k < n - 1; x++) {
		const char *what = NULL;
		if (j->node_state[x] == UPG_N_REVERTED)
			what = "returned to";
		else if (j->node_state[x] != UPG_N_PENDING && j->node_state[x] != UPG_N_FAILED &&
			 j->node_state[x] != UPG_N_FETCHING)
			what = "stays on";
		if (!what)
			continue;
		k += (size_t)snprintf(b + k, n - k, "%s%s %s %s", k ? "; " : "", nname(u, x),
				      what, j->node_state[x] == UPG_N_REVERTED ? j->from : j->to);
	}
	if (!k && k < n - 1)
		k += (size_t)snprintf(b + k, n - k, "every node on %s", j->from);
	for (int x = 0; x < u->n && k < n - 1; x++) {
		const char *sep = "; groups ";
		bool any = false;
		for (int gi = 0; gi < u->conf->n_groups && k < n - 1; gi++)
			if (u->view.primary[gi] == x) {
				k += (size_t)snprintf(b + k, n - k, "%s%u", sep,
						      u->conf->groups[gi].id);
				sep = ",";
				any = true;
			}
		if (any && k < n - 1)
			k += (size_t)snprintf(b + k, n - k, " on %s", nname(u, x));
	}
}

static void finish(struct upg *u, struct upg_actions *out, mono_t now)
{
	struct upg_journal *j = &u->j;
	if (j->state == UPG_RUNNING) {
		j_set_state(u, out, UPG_COMPLETED, "every step done");
	} else {
		bool rb_failed = false;
		for (int i = 0; i < j->n_steps; i++)
			if (j->steps[i].rollback && j->steps[i].status == UPG_ST_FAILED)
				rb_failed = true;
		recovery_text(u, j->error.recovery, sizeof(j->error.recovery));
		if (rb_failed)
			j_set_state(u, out, UPG_FAILED, "a rollback step failed");
		else if (strcmp(j->error.code, "E_ABORTED") == 0)
			j_set_state(u, out, UPG_ABORTED, "rolled back after abort");
		else if (!j->error.code[0])
			j_set_state(u, out, UPG_ROLLED_BACK, "rollback done");
		else
			j_set_state(u, out, UPG_FAILED, j->error.code);
	}
	j_commit(u, out, now);
}

static void step_event(struct upg *u, struct upg_actions *out, int i, const char *extra)
{
	char d[160];
	const struct upg_step *s = &u->j.steps[i];
	emit(out, s->status == UPG_ST_FAILED ? UPG_LVL_ERROR : UPG_LVL_INFO, "upgrade.step",
	     "id=%llu step=%d kind=%s status=%s rollback=%s what=\"%s\" t_ms=%u%s",
	     (unsigned long long)u->j.id, i, upg_kind_name(s->kind),
	     upg_step_status_name(s->status), s->rollback ? "yes" : "no",
	     step_desc(u, s, d, sizeof(d)),
	     s->status == UPG_ST_RUNNING ? s->t_start_ms : s->t_end_ms, extra);
}

static void step_fail(struct upg *u, struct upg_actions *out, mono_t now)
{
	struct upg_journal *j = &u->j;
	struct upg_step *s = &j->steps[j->cursor];
	struct run *r = &u->run;
	char extra[UPG_MSG_LEN + 64];
	s->status = UPG_ST_FAILED;
	s->t_end_ms = t_rel(u, now);
	s->wall_end_ms = u->view.wall_ms;
	snprintf(extra, sizeof(extra), " code=%s message=\"%.200s\"", r->fcode, r->fmsg);
	step_event(u, out, j->cursor, extra);
	if (j->state == UPG_RUNNING) {
		snprintf(j->error.code, sizeof(j->error.code), "%s", r->fcode);
		snprintf(j->error.message, sizeof(j->error.message), "%s", r->fmsg);
		snprintf(j->error.recovery, sizeof(j->error.recovery),
			 "rolling back the nodes on %s to %s", j->to, j->from);
		j->error.step = (int16_t)j->cursor;
		j_set_state(u, out, UPG_ABORTING, r->fcode);
	} else if (!j->error.code[0]) {
		/* a rollback after completion failed */
		snprintf(j->error.code, sizeof(j->error.code), "%s", r->fcode);
		snprintf(j->error.message, sizeof(j->error.message), "%s", r->fmsg);
		j->error.step = (int16_t)j->cursor;
	} else {
		size_t k = strlen(j->error.message);
		snprintf(j->error.message + k, sizeof(j->error.message) - k,
			 "; step %d failed: %s %s", j->cursor, r->fcode, r->fmsg);
	}
	j->cursor++;
}

static void coord_drive(struct upg *u, struct upg_actions *out, mono_t now)
{
	struct upg_journal *j = &u->j;
	for (int iter = 0; iter < LOOP_MAX && active(j); iter++) {
		bool dirty = false;
		if (room(out) < 2 * TND_NODES_MAX + 8)
			return; /* the rest at the next call (next_wake says now) */
		bool settling = j->cursor < j->n_steps &&
				j->steps[j->cursor].status == UPG_ST_RUNNING;
		if (j->state == UPG_ABORTING && !has_rollback(j) && !settling) {
			int rc = upg_plan_rollback(u, TND_NO_NODE, j);
			if (rc != 0) {
				/* nothing sensible left to do by plan */
				snprintf(j->error.recovery, sizeof(j->error.recovery),
					 "the rollback plan does not fit in %d steps: roll back by hand",
					 UPG_STEPS_MAX);
				j->n_steps = j->cursor;
				j_set_state(u, out, UPG_FAILED, "rollback plan too large");
				j_commit(u, out, now);
				return;
			}
			dirty = true;
		}
		while (j->cursor < j->n_steps && j->steps[j->cursor].status == UPG_ST_SKIPPED)
			j->cursor++;
		if (j->cursor >= j->n_steps) {
			finish(u, out, now);
			return;
		}
		struct upg_step *s = &j->steps[j->cursor];
		if (s->status == UPG_ST_PENDING) {
			s->status = UPG_ST_RUNNING;
			s->t_start_ms = t_rel(u, now);
			s->wall_start_ms = u->view.wall_ms;
			step_event(u, out, j->cursor, "");
			dirty = true;
		}
		if (dirty) {
			j_commit(u, out, now);
			run_reset(u, now);
		}
		if (u->run.step != j->cursor)
			run_reset(u, now);
		/* "every step is recorded before it is taken" */
		if (!all_acked(u, u->run.rec_seq))
			return;
		int rc = drive_step(u, out, now);
		if (rc == 0)
			return;
		if (rc > 0) {
			s->status = UPG_ST_DONE;
			s->t_end_ms = t_rel(u, now);
			s->wall_end_ms = u->view.wall_ms;
			step_event(u, out, j->cursor, "");
			j->cursor++;
		} else {
			step_fail(u, out, now);
		}
		/* the next turn records this together with the next step */
	}
}

/* Settling: heard every live peer since becoming coordinator, and no peer
 * holds a higher journal (fetched with GET); then take the journal. */
static void settle(struct upg *u, struct upg_actions *out, mono_t now)
{
	if (u->took_over)
		return;
	/* A node that started alone may hold an old journal: the last
	 * coordinator may have recorded more while this one was down. It
	 * continues an active journal once it heard a peer (whose journal
	 * it then adopts if higher), or alone after hold_timer_s (the other
	 * nodes are gone for good: better finish than stay frozen). */
	if (active(&u->j) && u->n > 1 && !u->heard_any &&
	    now - u->started < MS_TO_MONO((int64_t)u->conf->upgrade_hold_timer_s * 1000))
		return;
	/* The journal to continue: the highest (id, seq) held here or by
	 * a live peer, except for one case. Two coordinators may have
	 * taken the same term: one stored its first records and died
	 * before anyone heard of the term, the next one took it again and
	 * went on. Their records order by node, not by progress; so when
	 * the highest is held by its writer alone and a record of the same
	 * term by another writer is held beyond its writer (acked), that
	 * one is taken: the other is an unacknowledged tail. (Our new term
	 * then goes above every one of them.) */
	uint64_t hid[TND_NODES_MAX], hseq[TND_NODES_MAX];
	bool cand[TND_NODES_MAX];
	uint64_t mid = 0;
	for (int x = 0; x < u->n; x++) {
		cand[x] = x == u->self || live(u, x);
		if (!cand[x])
			continue;
		if (x != u->self && !u->peers[x].heard)
			return;
		hid[x] = x == u->self ? u->j.id : u->peers[x].f.journal_id;
		hseq[x] = x == u->self ? u->j.seq : u->peers[x].f.journal_seq;
		if (hid[x] > mid)
			mid = hid[x];
	}
	int best = TND_NO_NODE, best_acked = TND_NO_NODE;
	bool top_acked = false;
	for (int x = 0; x < u->n; x++) {
		if (!cand[x] || hid[x] != mid || !mid)
			continue;
		bool acked = false;
		for (int y = 0; y < u->n; y++)
			if (cand[y] && y != seq_writer(mid, hseq[x]) && hid[y] == mid &&
			    hseq[y] == hseq[x])
				acked = true;
		if (best == TND_NO_NODE || hseq[x] > hseq[best] ||
		    (hseq[x] == hseq[best] && x == u->self)) {
			best = x;
			top_acked = acked;
		}
		if (acked && (best_acked == TND_NO_NODE || hseq[x] > hseq[best_acked] ||
			      (hseq[x] == hseq[best_acked] && x == u->self)))
			best_acked = x;
	}
	if (best != TND_NO_NODE && !top_acked && best_acked != TND_NO_NODE &&
	    hseq[best] >> SEQ_TERM_SHIFT && (hseq[best_acked] >> SEQ_TERM_SHIFT) ==
	    (hseq[best] >> SEQ_TERM_SHIFT) &&
	    seq_writer(mid, hseq[best_acked]) != seq_writer(mid, hseq[best]))
		best = best_acked;
	if (best != TND_NO_NODE && best != u->self &&
	    (hid[best] != u->j.id || hseq[best] != u->j.seq)) {
		u->want_id = hid[best];
		u->want_seq = hseq[best];
		if (now >= u->get_next) {
			send_idseq(u, out, best, UPG_MSG_GET);
			u->get_next = now + MS_TO_MONO(UPG_RESEND_MS);
		}
		return;
	}
	u->want_id = u->want_seq = 0;
	u->took_over = true;
	if (active(&u->j)) {
		u->t0 = now - MS_TO_MONO(u->j.elapsed_ms);
		new_term(u);
		emit(out, UPG_LVL_WARN, "upgrade.takeover",
		     "id=%llu seq=%llu previous=%s coordinator=%s step=%d",
		     (unsigned long long)u->j.id, (unsigned long long)u->j.seq,
		     nname(u, u->j.coordinator), nname(u, u->self), u->j.cursor);
		j_commit(u, out, now);
	}
	/* else the term starts with the first record (finalize, rollback)
	 * or with a new journal (start); one adopted below our own is
	 * recorded now, in our term */
	else if (u->unstored)
		j_commit(u, out, now);
	u->unstored = false;
	run_reset(u, now);
}

static void replicate(struct upg *u, struct upg_actions *out, mono_t now)
{
	if (!u->j.id || !u->enc_len)
		return;
	int frags = (int)((u->enc_len + UPG_FRAG_BYTES - 1) / UPG_FRAG_BYTES);
	for (int x = 0; x < u->n; x++) {
		struct peer *p = &u->peers[x];
		if (x == u->self || !live(u, x) || now < p->jnext ||
		    jcmp(p->ack_id, p->ack_seq, u->j.id, u->j.seq) >= 0)
			continue;
		if (room(out) < frags + 8)
			return; /* the others at the next call */
		send_journal(u, out, x);
		p->jnext = now + MS_TO_MONO(UPG_RESEND_MS);
	}
}

/* --- commands ------------------------------------------------------------- */

static uint64_t new_id(const struct upg *u)
{
	/* Above every id this node has heard of, so every node takes it as
	 * the newest; the low bits name the creator, so two coordinators of
	 * a split cluster never make the same id. */
	uint64_t m = u->j.id;
	for (int x = 0; x < u->n; x++)
		if (u->peers[x].f.journal_id > m)
			m = u->peers[x].f.journal_id;
	return (((m >> ID_NODE_BITS) + 1) << ID_NODE_BITS) | (uint64_t)u->self;
}

struct result {
	int rc;
	char code[UPG_CODE_LEN];
	char msg[UPG_MSG_LEN];
};

static void res_set(struct result *r, int rc, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void res_set(struct result *r, int rc, const char *code, const char *fmt, ...)
{
	r->rc = rc;
	snprintf(r->code, sizeof(r->code), "%s", code);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->msg, sizeof(r->msg), fmt, ap);
	va_end(ap);
}

static void cmd_start(struct upg *u, struct upg_actions *out, mono_t now, int origin,
		      const struct upg_image *img, const struct upg_opts *o, struct result *res)
{
	struct upg_checks *ck = &u->checks;
	upg_precheck(u, img, o, now, ck);
	if (!ck->all_ok) {
		const char *first = NULL;
		char msg[UPG_MSG_LEN];
		size_t k = 0;
		msg[0] = 0;
		for (int i = 0; i < ck->n; i++) {
			if (ck->c[i].ok)
				continue;
			if (!first)
				first = ck->c[i].code;
			if (k < sizeof(msg) - 1)
				k += (size_t)snprintf(msg + k, sizeof(msg) - k, "%s%s: %s",
						      k ? "; " : "", ck->c[i].code, ck->c[i].message);
		}
		res_set(res, TND_EREFUSED, first, "%s", msg);
		return;
	}
	struct upg_journal *nj = &u->scratch;
	memset(nj, 0, sizeof(*nj));
	nj->id = new_id(u);
	nj->state = UPG_RUNNING;
	nj->coordinator = (int8_t)u->self;
	nj->force = o->force;
	nj->disruptive = ck->disruptive;
	nj->no_failback = o->no_failback || !u->conf->upgrade_failback;
	snprintf(nj->from, sizeof(nj->from), "%s", u->peers[u->self].f.version);
	snprintf(nj->to, sizeof(nj->to), "%s", img->version);
	nj->from_proto = upg_cluster_proto(u);
	nj->to_proto = img->proto_max;
	memcpy(nj->digest, img->digest, UPG_DIGEST_LEN);
	nj->image_bytes = img->bytes;
	nj->source = (int8_t)origin;
	nj->wall_start_ms = u->view.wall_ms;
	nj->n_nodes = u->n;
	nj->error.step = -1;
	struct upg_opts po = *o;
	po.no_failback = nj->no_failback;
	if (upg_plan_build(u, &po, ck->disruptive, nj) != 0) {
		res_set(res, TND_EREFUSED, "E_PLAN", "the plan does not fit in %d steps",
			UPG_STEPS_MAX);
		return;
	}
	u->j = *nj;
	u->term_own = true; /* a new id: nobody holds any record of it */
	u->t0 = now;
	emit(out, UPG_LVL_INFO, "upgrade.state",
	     "id=%llu from=idle to=running reason=\"started by %s\" version_from=%s version_to=%s steps=%d disruptive=%s",
	     (unsigned long long)u->j.id, nname(u, origin), u->j.from, u->j.to, u->j.n_steps,
	     u->j.disruptive ? "yes" : "no");
	/* the first step's record is the journal's first record */
	coord_drive(u, out, now);
	res_set(res, 0, "", "upgrade %llu started: %s -> %s, %d steps%s",
		(unsigned long long)u->j.id, u->j.from, u->j.to, u->j.n_steps,
		u->j.disruptive ? " (disruptive)" : "");
}

static void exec_cmd(struct upg *u, struct upg_actions *out, mono_t now, int origin,
		     enum upg_cmd_op op, const struct upg_image *img,
		     const struct upg_opts *o, int node, struct result *res)
{
	struct upg_journal *j = &u->j;
	char d[160];
	res->rc = 0;
	res->code[0] = res->msg[0] = 0;
	switch (op) {
	case UPG_CMD_START:
		if (!img) {
			res_set(res, TND_EINVAL, "E_INVALID", "start needs an image");
			break;
		}
		cmd_start(u, out, now, origin, img, o, res);
		break;
	case UPG_CMD_ABORT:
		if (j->id && j->state == UPG_RUNNING) {
			snprintf(j->error.code, sizeof(j->error.code), "E_ABORTED");
			snprintf(j->error.message, sizeof(j->error.message),
				 "aborted by %s at step %d (%s)", nname(u, origin), j->cursor,
				 j->cursor < j->n_steps ?
				 step_desc(u, &j->steps[j->cursor], d, sizeof(d)) : "end");
			snprintf(j->error.recovery, sizeof(j->error.recovery),
				 "rolling back the nodes on %s to %s", j->to, j->from);
			j->error.step = (int16_t)(j->cursor < j->n_steps ? j->cursor : -1);
			j_set_state(u, out, UPG_ABORTING, j->error.message);
			j_commit(u, out, now);
			res_set(res, 0, "", "upgrade %llu aborting: the running step settles, then every node on %s returns to %s",
				(unsigned long long)j->id, j->to, j->from);
		} else if (active(j)) {
			res_set(res, TND_EREFUSED, "E_NO_UPGRADE", "upgrade %llu is already rolling back",
				(unsigned long long)j->id);
		} else {
			res_set(res, TND_EREFUSED, "E_NO_UPGRADE", "no upgrade is running");
		}
		break;
	case UPG_CMD_ROLLBACK:
		if (active(j)) {
			res_set(res, TND_EREFUSED, "E_UPGRADE_RUNNING",
				"upgrade %llu is %s: use abort", (unsigned long long)j->id,
				upg_state_name(j->state));
			break;
		}
		if (!j->id || j->state != UPG_COMPLETED || j->finalized) {
			res_set(res, TND_EREFUSED, "E_NO_UPGRADE",
				"no completed upgrade to roll back (finalized upgrades cannot be)");
			break;
		}
		if (node != TND_NO_NODE && (node < 0 || node >= u->n)) {
			res_set(res, TND_EINVAL, "E_INVALID", "no node %d", node);
			break;
		}
		{
			struct upg_journal *nj = &u->scratch;
			*nj = *j;
			if (upg_plan_rollback(u, node, nj) != 0) {
				res_set(res, TND_EREFUSED, "E_PLAN", "the rollback plan does not fit in %d steps",
					UPG_STEPS_MAX);
				break;
			}
			bool any = false;
			for (int i = nj->cursor; i < nj->n_steps; i++)
				if (nj->steps[i].kind == UPG_K_REVERT)
					any = true;
			if (!any) {
				res_set(res, TND_EREFUSED, "E_NO_UPGRADE", "%s%s runs %s: nothing to roll back",
					node == TND_NO_NODE ? "no node" : nname(u, node),
					node == TND_NO_NODE ? "" : " no longer", j->to);
				break;
			}
			*j = *nj;
			j->error.code[0] = j->error.message[0] = j->error.recovery[0] = 0;
			j->error.step = -1;
			j_set_state(u, out, UPG_ABORTING, "rollback asked");
			/* the run continues from where the completed one ended */
			u->t0 = now - MS_TO_MONO(j->elapsed_ms);
			coord_drive(u, out, now);
			res_set(res, 0, "", "upgrade %llu rolling back %s to %s", (unsigned long long)j->id,
				node == TND_NO_NODE ? "every node" : nname(u, node), j->from);
		}
		break;
	case UPG_CMD_FINALIZE:
		if (active(j)) {
			res_set(res, TND_EREFUSED, "E_UPGRADE_RUNNING", "upgrade %llu is %s",
				(unsigned long long)j->id, upg_state_name(j->state));
		} else if (!j->id || j->state != UPG_COMPLETED || j->finalized) {
			res_set(res, TND_EREFUSED, "E_NO_UPGRADE", "no completed upgrade to finalize");
		} else {
			j->finalized = true;
			j_set_state(u, out, UPG_IDLE, "finalized");
			j_commit(u, out, now);
			res_set(res, 0, "", "upgrade %llu finalized: the cluster speaks protocol %u",
				(unsigned long long)j->id, upg_cluster_proto(u));
		}
		break;
	default:
		res_set(res, TND_EINVAL, "E_INVALID", "unknown command %d", op);
	}
	emit(out, res->rc ? UPG_LVL_WARN : UPG_LVL_INFO, "upgrade.command",
	     "op=%d from=%s rc=%d code=%s message=\"%s\"", op, nname(u, origin), res->rc,
	     res->code[0] ? res->code : "-", res->msg);
}

static void mine_drive(struct upg *u, struct upg_actions *out, mono_t now)
{
	struct mine *m = &u->mine;
	if (!m->set)
		return;
	if (is_coord(u) && u->took_over) {
		struct result res;
		m->set = false;
		exec_cmd(u, out, now, u->self, m->op, m->has_img ? &m->img : NULL, &m->opts,
			 m->node, &res);
		reply(out, m->token, res.rc, res.code, res.msg, res.rc == 0 ? u->j.id : 0);
		return;
	}
	if (now >= m->deadline) {
		m->set = false;
		reply(out, m->token, TND_ETIMEDOUT, "E_NO_COORDINATOR",
		      "no answer from the coordinator (group 0 primary)", 0);
		return;
	}
	int c = u->view.coordinator;
	if (c != u->self && c >= 0 && c < u->n && live(u, c) && now >= m->next_send) {
		send_req(u, out, c);
		m->next_send = now + MS_TO_MONO(UPG_RESEND_MS);
	}
}

/* --- evaluate --------------------------------------------------------------- */

static void update_details(struct upg *u, mono_t now)
{
	const struct upg_journal *j = &u->j;
	const struct run *r = &u->run;
	for (int x = 0; x < u->n; x++) {
		char *d = u->detail[x];
		d[0] = 0;
		if (!active(j))
			continue;
		bool mine_run = is_coord(u) && u->took_over && r->step == j->cursor &&
				j->cursor < j->n_steps;
		const struct upg_step *s = mine_run ? &j->steps[j->cursor] : NULL;
		bool in = s && (s->nodes & (1u << x)) &&
			  (s->kind == UPG_K_UPGRADE || s->kind == UPG_K_REVERT);
		long el = in ? (long)MONO_TO_MS(now - r->phase_at[x]) / 1000 : 0;
		if (in && r->ph[x] == PH_REJOIN)
			snprintf(d, 64, "waiting to rejoin %ld/%u s", el, u->conf->upgrade_hold_timer_s);
		else if (in && r->ph[x] == PH_SYNC && !r->synced[x])
			snprintf(d, 64, "resyncing sessions %ld/%u s", el, u->conf->upgrade_sync_timeout_s);
		else if (in && r->ph[x] == PH_SYNC)
			snprintf(d, 64, "health check %ld/%d s",
				 (long)MONO_TO_MS(now - r->synced_at[x]) / 1000, UPG_HEALTH_MS / 1000);
		else if (in && r->ph[x] == PH_DO)
			snprintf(d, 64, "%s", s->kind == UPG_K_UPGRADE ? "installing" : "reverting");
		else if (j->node_state[x] != UPG_N_PENDING)
			snprintf(d, 64, "%s", upg_node_state_name(j->node_state[x]));
	}
}

static void evaluate(struct upg *u, struct upg_actions *out, mono_t now)
{
	u->now = now;
	if (u->ra.on && now - u->ra.last >= MS_TO_MONO(REASM_IDLE_MS))
		u->ra.on = false;
	if (is_coord(u)) {
		settle(u, out, now);
		if (u->took_over && u->rebase) {
			u->rebase = false;
			j_commit(u, out, now);
			emit(out, UPG_LVL_WARN, "upgrade.rebase",
			     "id=%llu seq=%llu reason=\"a peer holds a higher record of a previous coordinator\"",
			     (unsigned long long)u->j.id, (unsigned long long)u->j.seq);
		}
		if (u->took_over)
			coord_drive(u, out, now);
	}
	mine_drive(u, out, now);
	if (is_coord(u) && u->took_over)
		replicate(u, out, now);
	if (u->dirty || now >= u->state_next)
		send_states(u, out, now);
	update_details(u, now);
}

/* --- receive -------------------------------------------------------------- */

struct msg {
	uint64_t has;
	uint64_t id, seq, bytes, inc, cgen, free_b, jid, jseq, rat;
	uint8_t frag, total, op, opts, pmin, pmax, flags, cpu, iflags, attempt;
	uint16_t len, step;
	uint32_t rc, req;
	int node, vcoord;
	uint8_t digest[UPG_DIGEST_LEN];
	char version[TND_VERSION_MAX], prev[TND_VERSION_MAX], rfrom[TND_VERSION_MAX],
		imin[TND_VERSION_MAX];
	char code[UPG_CODE_LEN], icode[UPG_CODE_LEN];
	char msg[UPG_MSG_LEN], rreason[UPG_MSG_LEN], imsg[UPG_MSG_LEN], icfgmsg[UPG_MSG_LEN];
	const uint8_t *data, *groups;
	size_t data_len, groups_len;
};

#define HAS(t) (1ull << (t))

static int decode_msg(const uint8_t *body, size_t len, struct msg *m)
{
	struct tlvr r;
	struct tlv t;
	int rc;
	memset(m, 0, sizeof(*m));
	m->node = m->vcoord = TND_NO_NODE;
	tlvr_init(&r, body, len);
	while ((rc = tlvr_next(&r, &t)) == 1) {
		int e = 0;
		switch (t.type) {
		case M_ID: e = tlv_u64(&t, &m->id); break;
		case M_SEQ: e = tlv_u64(&t, &m->seq); break;
		case M_FRAG: e = tlv_u8(&t, &m->frag); break;
		case M_TOTAL: e = tlv_u8(&t, &m->total); break;
		case M_LEN: e = tlv_u16(&t, &m->len); break;
		case M_DATA: m->data = t.val; m->data_len = t.len; break;
		case M_STEP: e = tlv_u16(&t, &m->step); break;
		case M_OP: e = tlv_u8(&t, &m->op); break;
		case M_VERSION: e = tlv_str(&t, m->version, sizeof(m->version)); break;
		case M_DIGEST:
			if (t.len != UPG_DIGEST_LEN)
				e = TND_EINVAL;
			else
				memcpy(m->digest, t.val, UPG_DIGEST_LEN);
			break;
		case M_BYTES: e = tlv_u64(&t, &m->bytes); break;
		case M_NODE: e = get_s8(&t, &m->node); break;
		case M_RC: e = tlv_u32(&t, &m->rc); break;
		case M_CODE: e = tlv_str(&t, m->code, sizeof(m->code)); break;
		case M_MSG: e = tlv_str(&t, m->msg, sizeof(m->msg)); break;
		case M_REQ: e = tlv_u32(&t, &m->req); break;
		case M_INC: e = tlv_u64(&t, &m->inc); break;
		case M_OPTS: e = tlv_u8(&t, &m->opts); break;
		case M_PREV: e = tlv_str(&t, m->prev, sizeof(m->prev)); break;
		case M_RREASON: e = tlv_str(&t, m->rreason, sizeof(m->rreason)); break;
		case M_RFROM: e = tlv_str(&t, m->rfrom, sizeof(m->rfrom)); break;
		case M_PMIN: e = tlv_u8(&t, &m->pmin); break;
		case M_PMAX: e = tlv_u8(&t, &m->pmax); break;
		case M_FLAGS: e = tlv_u8(&t, &m->flags); break;
		case M_CGEN: e = tlv_u64(&t, &m->cgen); break;
		case M_FREE: e = tlv_u64(&t, &m->free_b); break;
		case M_CPU: e = tlv_u8(&t, &m->cpu); break;
		case M_GROUPS:
			if (t.len % 2 || t.len > 2 * TND_GROUPS_MAX)
				e = TND_EINVAL;
			m->groups = t.val;
			m->groups_len = t.len;
			break;
		case M_IFLAGS: e = tlv_u8(&t, &m->iflags); break;
		case M_ICODE: e = tlv_str(&t, m->icode, sizeof(m->icode)); break;
		case M_IMSG: e = tlv_str(&t, m->imsg, sizeof(m->imsg)); break;
		case M_IMIN: e = tlv_str(&t, m->imin, sizeof(m->imin)); break;
		case M_ICFGMSG: e = tlv_str(&t, m->icfgmsg, sizeof(m->icfgmsg)); break;
		case M_JID: e = tlv_u64(&t, &m->jid); break;
		case M_JSEQ: e = tlv_u64(&t, &m->jseq); break;
		case M_VCOORD: e = get_s8(&t, &m->vcoord); break;
		case M_RAT: e = tlv_u64(&t, &m->rat); break;
		case M_ATTEMPT:
			e = tlv_u8(&t, &m->attempt);
			break;
		default: continue; /* unknown TLVs are skipped (STYLE) */
		}
		if (e)
			return TND_EINVAL;
		m->has |= HAS(t.type);
	}
	return rc < 0 ? TND_EINVAL : 0;
}

static bool need(const struct msg *m, uint64_t mask)
{
	return (m->has & mask) == mask;
}

static int rc_from_wire(uint32_t v)
{
	return v == 0 ? 0 : v <= 11 ? -(int)v : TND_EIO;
}

static int on_state(struct upg *u, int x, const struct wire_hdr *h, const struct msg *m,
		    mono_t now)
{
	if (!need(m, HAS(M_VERSION) | HAS(M_PMIN) | HAS(M_PMAX) | HAS(M_JID) | HAS(M_JSEQ) |
		  HAS(M_FLAGS) | HAS(M_CGEN) | HAS(M_FREE) | HAS(M_CPU) | HAS(M_GROUPS)) ||
	    (m->flags & ~(FF_CONFIRMED | FF_LINKS | FF_MAINT | FF_CFGSYNC | FF_SESSIONS | FF_IMAGE)))
		return TND_EINVAL;
	for (size_t i = 0; i < m->groups_len; i += 2)
		if (m->groups[i + 1] > UPG_G_PRIMARY)
			return TND_EINVAL;
	struct peer *p = &u->peers[x];
	/* A STATE is the sender's whole state at a moment: an older one
	 * (delayed, duplicated, from its previous life) is dropped. */
	if (p->st_any && (h->incarnation < p->st_inc ||
			  (h->incarnation == p->st_inc && h->seq <= p->st_seq)))
		return TND_EREPLAY;
	p->st_any = true;
	p->st_inc = h->incarnation;
	p->st_seq = h->seq;
	struct upg_facts *f = &p->f;
	memset(f, 0, sizeof(*f));
	f->known = true;
	f->heard = now;
	f->incarnation = h->incarnation;
	snprintf(f->version, sizeof(f->version), "%s", m->version);
	snprintf(f->previous, sizeof(f->previous), "%s", m->prev);
	snprintf(f->revert_reason, sizeof(f->revert_reason), "%s", m->rreason);
	snprintf(f->revert_from, sizeof(f->revert_from), "%s", m->rfrom);
	f->revert_at_s = m->rat > INT64_MAX / 1000 ? 0 : (int64_t)m->rat;
	f->confirmed = m->flags & FF_CONFIRMED;
	f->links_all_up = m->flags & FF_LINKS;
	f->maint = m->flags & FF_MAINT;
	f->config_in_sync = m->flags & FF_CFGSYNC;
	f->sessions_in_sync = m->flags & FF_SESSIONS;
	f->has_image = m->flags & FF_IMAGE;
	f->proto_min = m->pmin;
	f->proto_max = m->pmax;
	f->journal_id = m->jid;
	f->journal_seq = m->jseq;
	f->config_gen = m->cgen;
	f->free_bytes = m->free_b;
	f->cpu_percent = m->cpu;
	f->n_groups = (int)(m->groups_len / 2);
	for (int i = 0; i < f->n_groups; i++) {
		f->groups[i].id = m->groups[2 * i];
		f->groups[i].state = m->groups[2 * i + 1];
	}
	if (jcmp(m->jid, m->jseq, p->ack_id, p->ack_seq) > 0) {
		p->ack_id = m->jid;
		p->ack_seq = m->jseq;
	}
	/* A peer counts for settling once it names this node coordinator:
	 * from then on it takes journals only from this node (on_journal),
	 * so the journal it reports is the last it will hold from anyone
	 * else. (A STATE without the field is from an older build.) */
	p->heard = !(m->has & HAS(M_VCOORD)) || m->vcoord == u->self;
	u->heard_any = true;
	/* A peer back with a higher seq of our journal holds records a
	 * previous coordinator stored only there (it settled without
	 * them: that peer was not live). Nobody else acked them, so our
	 * next record goes above them, in a new term, and that peer takes
	 * it (on_journal); two journals never keep one (id, seq). A peer
	 * back with a journal of a higher id that we never saw (it went on
	 * alone, settle) while ours is not active: settle again, which
	 * takes it (GET) and continues it; else that peer would stay
	 * frozen on it, as it takes journals from the coordinator only. */
	if (is_coord(u) && u->took_over &&
	    jcmp(m->jid, m->jseq, u->j.id, u->j.seq) > 0) {
		if (u->j.id && m->jid == u->j.id) {
			u->term_own = false;
			u->rebase = true;
		} else if (!active(&u->j)) {
			u->took_over = false;
			u->term_own = false;
			u->get_next = now;
		}
	}
	return 0;
}

static int on_journal(struct upg *u, struct upg_actions *out, int x, const struct msg *m,
		      mono_t now)
{
	if (!need(m, HAS(M_ID) | HAS(M_SEQ) | HAS(M_FRAG) | HAS(M_TOTAL) | HAS(M_LEN)) ||
	    !m->data || m->id == 0 || m->total == 0 || m->total > FRAGS_MAX ||
	    m->frag >= m->total || m->len == 0 || m->len > UPG_JOURNAL_BYTES_MAX ||
	    (size_t)m->total != ((size_t)m->len + UPG_FRAG_BYTES - 1) / UPG_FRAG_BYTES)
		return TND_EINVAL;
	size_t off = (size_t)m->frag * UPG_FRAG_BYTES;
	size_t n = m->len - off < UPG_FRAG_BYTES ? m->len - off : UPG_FRAG_BYTES;
	if (m->data_len != n)
		return TND_EINVAL;
	int c = jcmp(m->id, m->seq, u->j.id, u->j.seq);
	/* Journals are pushed by the coordinator (this node's view) only;
	 * a settling coordinator takes the answer to its GET from anyone.
	 * A deposed coordinator's late records are refused here, or a new
	 * coordinator that settled without them would overwrite them. A
	 * settling coordinator also takes the very record it asked for
	 * when it is below its own (its own is an unacked tail: settle). */
	bool from_ok = x == u->view.coordinator || (is_coord(u) && !u->took_over);
	bool wanted = is_coord(u) && !u->took_over && u->want_id && m->id == u->want_id &&
		      m->seq == u->want_seq;
	if (c > 0 && !from_ok)
		return 0;
	if (c < 0 && wanted)
		c = 1;
	if (c <= 0) {
		if (c == 0 && m->frag == 0)
			send_idseq(u, out, x, UPG_MSG_JACK); /* our ack was lost */
		else if (c < 0)
			u->dirty = true; /* our STATE tells it */
		return 0;
	}
	struct reasm *ra = &u->ra;
	if (!ra->on || ra->id != m->id || ra->seq != m->seq || ra->total != m->total ||
	    ra->len != m->len) {
		/* a lower journal never interrupts a higher one in progress */
		if (ra->on && jcmp(m->id, m->seq, ra->id, ra->seq) < 0)
			return 0;
		memset(ra, 0, offsetof(struct reasm, buf));
		ra->on = true;
		ra->id = m->id;
		ra->seq = m->seq;
		ra->total = m->total;
		ra->len = m->len;
	}
	ra->last = now;
	memcpy(ra->buf + off, m->data, n);
	ra->have |= (uint16_t)(1u << m->frag);
	if (ra->have != (uint16_t)((1u << ra->total) - 1))
		return 0;
	ra->on = false;
	struct upg_journal *nj = &u->scratch;
	if (upg_journal_decode(ra->buf, ra->len, nj) != 0 || nj->id != m->id ||
	    nj->seq != m->seq || nj->n_nodes != u->n) {
		emit(out, UPG_LVL_WARN, "upgrade.journal_bad", "from=%s id=%llu seq=%llu",
		     nname(u, x), (unsigned long long)m->id, (unsigned long long)m->seq);
		return TND_EINVAL;
	}
	uint64_t old_id = u->j.id, old_seq = u->j.seq;
	int16_t old_cursor = u->j.cursor;
	bool below = jcmp(nj->id, nj->seq, old_id, old_seq) < 0;
	u->j = *nj;
	memcpy(u->enc, ra->buf, ra->len);
	u->enc_len = ra->len;
	/* one below ours is not stored as it is (a disk only moves
	 * forward): settle records it at once in a new term */
	if (below)
		u->unstored = true;
	else
		store(u, out);
	emit(out, UPG_LVL_INFO, "upgrade.journal",
	     "id=%llu seq=%llu from=%s previous_id=%llu previous_seq=%llu state=%s step=%d",
	     (unsigned long long)u->j.id, (unsigned long long)u->j.seq, nname(u, x),
	     (unsigned long long)old_id, (unsigned long long)old_seq,
	     upg_state_name(u->j.state), u->j.cursor);
	if (!below)
		send_idseq(u, out, x, UPG_MSG_JACK);
	u->dirty = true;
	if (is_coord(u) && u->took_over) {
		/* a coordinator that was handed a newer journal continues it */
		u->t0 = now - MS_TO_MONO(u->j.elapsed_ms);
		if (old_id != u->j.id || old_cursor != u->j.cursor)
			run_reset(u, now);
	}
	return 0;
}

static int on_req(struct upg *u, struct upg_actions *out, int x, const struct wire_hdr *h,
		  const struct msg *m, mono_t now)
{
	if (!need(m, HAS(M_REQ) | HAS(M_OP) | HAS(M_OPTS)) || m->op < UPG_CMD_START ||
	    m->op > UPG_CMD_FINALIZE || (m->opts & ~(OF_FORCE | OF_DISRUPTIVE | OF_NO_FAILBACK)) ||
	    (m->node != TND_NO_NODE && m->node >= u->n))
		return TND_EINVAL;
	bool has_img = m->has & HAS(M_IFLAGS);
	if (m->op == UPG_CMD_START &&
	    (!has_img || !need(m, HAS(M_VERSION) | HAS(M_IMIN) | HAS(M_PMIN) | HAS(M_PMAX) |
			       HAS(M_DIGEST) | HAS(M_BYTES))))
		return TND_EINVAL;
	if (!is_coord(u) || !u->took_over)
		return 0; /* the requester asks again, maybe someone else */
	struct peer *p = &u->peers[x];
	/* a request is (sender, its incarnation, req): done once */
	if (p->res_set && p->res_inc == h->incarnation && p->res_req == m->req) {
		send_resp(u, out, x, h->incarnation, m->req, p->res_rc, p->res_code, p->res_msg,
			  p->res_id);
		return 0;
	}
	struct upg_image img;
	memset(&img, 0, sizeof(img));
	if (has_img) {
		img.present = m->iflags & IF_PRESENT;
		img.intact = m->iflags & IF_INTACT;
		img.signed_ok = m->iflags & IF_SIGNED;
		img.trusted = m->iflags & IF_TRUSTED;
		img.config_ok = m->iflags & IF_CONFIG;
		snprintf(img.check_code, sizeof(img.check_code), "%s", m->icode);
		snprintf(img.check_message, sizeof(img.check_message), "%s", m->imsg);
		snprintf(img.version, sizeof(img.version), "%s", m->version);
		snprintf(img.min_upgrade_from, sizeof(img.min_upgrade_from), "%s", m->imin);
		img.proto_min = m->pmin;
		img.proto_max = m->pmax;
		memcpy(img.digest, m->digest, UPG_DIGEST_LEN);
		img.bytes = m->bytes;
		snprintf(img.config_message, sizeof(img.config_message), "%s", m->icfgmsg);
	}
	struct upg_opts o = {
		.force = m->opts & OF_FORCE,
		.disruptive = m->opts & OF_DISRUPTIVE,
		.no_failback = m->opts & OF_NO_FAILBACK,
	};
	struct result res;
	exec_cmd(u, out, now, x, (enum upg_cmd_op)m->op, has_img ? &img : NULL, &o, m->node, &res);
	p->res_set = true;
	p->res_inc = h->incarnation;
	p->res_req = m->req;
	p->res_rc = res.rc;
	snprintf(p->res_code, sizeof(p->res_code), "%s", res.code);
	snprintf(p->res_msg, sizeof(p->res_msg), "%s", res.msg);
	p->res_id = res.rc == 0 ? u->j.id : 0;
	send_resp(u, out, x, h->incarnation, m->req, res.rc, res.code, res.msg, p->res_id);
	return 0;
}

static int recv_msg(struct upg *u, struct upg_actions *out, const struct upg_ev *ev, mono_t now)
{
	const struct wire_hdr *h = ev->hdr;
	struct msg mm, *m = &mm;
	if (!h || (!ev->body && ev->body_len) || h->sender >= u->n || h->sender == u->self ||
	    h->cluster_id != u->p.cluster_id || h->type < UPG_MSG_STATE ||
	    h->type > UPG_MSG_RESP || decode_msg(ev->body, ev->body_len, m) != 0)
		return TND_EINVAL;
	int x = h->sender;
	switch (h->type) {
	case UPG_MSG_STATE:
		return on_state(u, x, h, m, now);
	case UPG_MSG_JOURNAL:
		return on_journal(u, out, x, m, now);
	case UPG_MSG_JACK: {
		if (!need(m, HAS(M_ID) | HAS(M_SEQ)))
			return TND_EINVAL;
		struct peer *p = &u->peers[x];
		if (jcmp(m->id, m->seq, p->ack_id, p->ack_seq) > 0) {
			p->ack_id = m->id;
			p->ack_seq = m->seq;
		}
		return 0;
	}
	case UPG_MSG_GET:
		if (u->j.id)
			send_journal(u, out, x);
		return 0;
	case UPG_MSG_DO:
		if (!need(m, HAS(M_ID) | HAS(M_STEP) | HAS(M_OP) | HAS(M_VERSION)) ||
		    m->op < UPG_DO_BACKUP || m->op > UPG_DO_REVERT || m->step >= UPG_STEPS_MAX ||
		    (m->op == UPG_DO_FETCH && (m->node < 0 || m->node >= u->n)))
			return TND_EINVAL;
		/* only for the journal this node holds: a DO of an older
		 * upgrade is stale; one of a newer is asked again once the
		 * journal (sent before any DO) has arrived */
		if (m->id != u->j.id)
			return 0;
		if (m->op == UPG_DO_INSTALL || m->op == UPG_DO_REVERT) {
			/* A restart is asked once per record: only while the
			 * journal here shows that step running with this node
			 * asked. A DO that arrives late (the step is over) is
			 * dropped; one whose record has not arrived yet is
			 * asked again. One asked of a previous life of this
			 * node is done if that life did it: this node runs the
			 * version, or gave it up by itself (the coordinator
			 * sees that in the facts); else (it died first) it is
			 * done now. */
			uint64_t asked = u->j.node_inc[u->self];
			if (u->j.cursor != m->step || asked == 0)
				return 0;
			/* the coordinator's record of the incarnation asked
			 * is the newest (ours may lag a record behind) */
			if (m->has & HAS(M_INC))
				asked = m->inc;
			node_do(u, out, x, m->id, m->step, (enum upg_do)m->op, m->version,
				(m->has & HAS(M_DIGEST)) ? m->digest : NULL, m->bytes, m->node,
				asked, m->attempt);
			return 0;
		}
		node_do(u, out, x, m->id, m->step, (enum upg_do)m->op, m->version,
			(m->has & HAS(M_DIGEST)) ? m->digest : NULL, m->bytes, m->node, 0,
			m->attempt);
		return 0;
	case UPG_MSG_DONE:
		if (!need(m, HAS(M_ID) | HAS(M_STEP) | HAS(M_OP) | HAS(M_RC)) ||
		    m->op < UPG_DO_BACKUP || m->op > UPG_DO_REVERT)
			return TND_EINVAL;
		coord_on_done(u, x, m->id, m->step, (enum upg_do)m->op,
			      (m->has & HAS(M_ATTEMPT)) ? m->attempt : -1, rc_from_wire(m->rc),
			      m->code, m->msg);
		return 0;
	case UPG_MSG_REQ:
		return on_req(u, out, x, h, m, now);
	case UPG_MSG_RESP:
		if (!need(m, HAS(M_REQ) | HAS(M_INC) | HAS(M_RC) | HAS(M_MSG)))
			return TND_EINVAL;
		if (u->mine.set && u->mine.req == m->req && m->inc == u->p.incarnation) {
			u->mine.set = false;
			reply(out, u->mine.token, rc_from_wire(m->rc), m->code, m->msg,
			      (m->has & HAS(M_ID)) ? m->id : 0);
		}
		return 0;
	}
	return TND_EINVAL;
}

/* --- public entry points ------------------------------------------------------ */

struct upg *upg_new(const struct upg_params *p, mono_t now)
{
	if (!p || !p->conf || p->conf->n_nodes < 1 || p->conf->n_nodes > TND_NODES_MAX ||
	    p->self < 0 || p->self >= p->conf->n_nodes)
		return NULL;
	struct upg *u = calloc(1, sizeof(*u));
	if (!u)
		return NULL;
	u->p = *p;
	u->p.journal = NULL;
	u->conf = p->conf;
	u->self = p->self;
	u->n = p->conf->n_nodes;
	u->rng = p->seed | 1;
	u->coord = TND_NO_NODE;
	u->view.coordinator = TND_NO_NODE;
	for (int g = 0; g < TND_GROUPS_MAX; g++)
		u->view.primary[g] = TND_NO_NODE;
	u->view.alive[u->self] = true;
	if (p->journal && p->journal->id) {
		if (journal_check(p->journal) != 0 || p->journal->n_nodes != u->n) {
			free(u);
			return NULL;
		}
		u->j = *p->journal;
		if (upg_journal_encode(&u->j, u->enc, sizeof(u->enc), &u->enc_len) != 0)
			u->enc_len = 0;
	}
	u->j.error.step = u->j.id ? u->j.error.step : -1;
	u->run.step = -1;
	u->peers[u->self].f.incarnation = p->incarnation;
	u->state_next = now;
	u->started = now;
	u->dirty = true;
	u->now = now;
	return u;
}

void upg_free(struct upg *u)
{
	free(u);
}

void upg_reconfigure(struct upg *u, const struct tnd_conf *conf)
{
	if (conf && conf->n_nodes == u->n)
		u->conf = conf;
}

void upg_set_local(struct upg *u, const struct upg_facts *f, mono_t now)
{
	struct upg_facts *me = &u->peers[u->self].f, nf = *f;
	nf.known = true;
	nf.heard = now;
	nf.incarnation = u->p.incarnation;
	nf.journal_id = u->j.id;
	nf.journal_seq = u->j.seq;
	if (nf.n_groups < 0)
		nf.n_groups = 0;
	if (nf.n_groups > TND_GROUPS_MAX)
		nf.n_groups = TND_GROUPS_MAX;
	/* a change is told to the peers at once */
	struct upg_facts a = *me, b = nf;
	a.heard = b.heard = 0;
	if (memcmp(&a, &b, sizeof(a)) != 0)
		u->dirty = true;
	*me = nf;
}

void upg_set_view(struct upg *u, const struct upg_view *v, mono_t now)
{
	int c = v->coordinator;
	if (c < TND_NO_NODE || c >= u->n)
		c = TND_NO_NODE;
	if (c != u->coord) {
		if (c == u->self) {
			for (int x = 0; x < u->n; x++)
				u->peers[x].heard = false;
			u->get_next = now;
		}
		u->took_over = false;
		u->term_own = false;
		u->rebase = false;
		u->run.step = -1;
		u->coord = c;
		u->dirty = true;
		if (u->mine.set)
			u->mine.next_send = now;
	}
	for (int x = 0; x < u->n; x++) {
		bool a = x == u->self || v->alive[x];
		if (a && !u->view.alive[x] && x != u->self) {
			u->peers[x].heard = false;
			u->dirty = true; /* tell it our state */
		}
	}
	u->view = *v;
	u->view.coordinator = c;
	u->view.alive[u->self] = true;
	for (int gi = 0; gi < TND_GROUPS_MAX; gi++)
		if (u->view.primary[gi] < TND_NO_NODE || u->view.primary[gi] >= u->n)
			u->view.primary[gi] = TND_NO_NODE;
}

int upg_step(struct upg *u, const struct upg_ev *ev, mono_t now, struct upg_actions *out)
{
	int rc = 0;
	u->now = now;
	u->st_out = NULL; /* a new action list: its first record stores */
	switch (ev->type) {
	case UPG_EV_TICK:
		break;
	case UPG_EV_RECV:
		rc = recv_msg(u, out, ev, now);
		if (rc == TND_EINVAL || rc == TND_EREPLAY)
			return rc;
		break;
	case UPG_EV_CMD: {
		bool bad = ev->op < UPG_CMD_START || ev->op > UPG_CMD_FINALIZE ||
			   (ev->op == UPG_CMD_START && !ev->image) ||
			   (ev->op == UPG_CMD_ROLLBACK && ev->node != TND_NO_NODE &&
			    (ev->node < 0 || ev->node >= u->n));
		if (bad) {
			reply(out, ev->token, TND_EINVAL, "E_INVALID",
			      ev->op == UPG_CMD_START && !ev->image ? "start needs an image"
			      : "malformed upgrade command", 0);
			return TND_EINVAL;
		}
		if (u->mine.set) {
			reply(out, ev->token, TND_EREFUSED, "E_BUSY",
			      "another upgrade command from this node is in progress", 0);
			return TND_EREFUSED;
		}
		struct mine *m = &u->mine;
		memset(m, 0, sizeof(*m));
		m->set = true;
		m->token = ev->token;
		m->req = (uint32_t)++u->req_ctr;
		m->op = ev->op;
		m->has_img = ev->op == UPG_CMD_START;
		if (m->has_img)
			m->img = *ev->image;
		m->opts = ev->opts;
		m->node = ev->op == UPG_CMD_ROLLBACK ? ev->node : TND_NO_NODE;
		m->deadline = now + MS_TO_MONO(UPG_REQ_TIMEOUT_MS);
		m->next_send = now;
		break;
	}
	case UPG_EV_DONE: {
		struct doent *e = do_find(u, ev->id, ev->step, ev->done_op);
		if (!e || e->done)
			return TND_ENOENT;
		e->done = true;
		e->rc = ev->rc;
		snprintf(e->code, sizeof(e->code), "%s", ev->code);
		snprintf(e->msg, sizeof(e->msg), "%s", ev->message);
		emit(out, ev->rc ? UPG_LVL_WARN : UPG_LVL_INFO, "upgrade.done",
		     "id=%llu step=%d op=%d rc=%d code=%s", (unsigned long long)e->id, e->step,
		     e->op, e->rc, e->code[0] ? e->code : "-");
		do_answer(u, out, e);
		break;
	}
	default:
		return TND_EINVAL;
	}
	evaluate(u, out, now);
	return 0;
}

mono_t upg_next_wake(const struct upg *u)
{
	mono_t t = u->state_next;
	mono_t poll = u->now + MS_TO_MONO(UPG_RESEND_MS);
	bool busy = u->mine.set || u->ra.on || (is_coord(u) && (!u->took_over || active(&u->j)));
	if (u->dirty)
		return u->now;
	if (is_coord(u) && u->took_over && u->j.id)
		for (int x = 0; x < u->n; x++)
			if (x != u->self && live(u, x) &&
			    jcmp(u->peers[x].ack_id, u->peers[x].ack_seq, u->j.id, u->j.seq) < 0)
				busy = true;
	if (busy && poll < t)
		t = poll;
	if (u->mine.set && u->mine.deadline < t)
		t = u->mine.deadline;
	return t;
}

const struct upg_journal *upg_journal_get(const struct upg *u)
{
	return &u->j;
}

const struct upg_facts *upg_facts_of(const struct upg *u, int node)
{
	if (node < 0 || node >= u->n)
		return NULL;
	return &u->peers[node].f;
}

bool upg_is_coordinator(const struct upg *u)
{
	return is_coord(u);
}

bool upg_frozen(const struct upg *u, char *why, size_t why_len)
{
	const struct upg_journal *j = &u->j;
	if (!active(j))
		return false;
	if (why && why_len) {
		char d[160];
		if (j->cursor < j->n_steps)
			snprintf(why, why_len, "upgrade %llu %s (step %d %s)",
				 (unsigned long long)j->id, upg_state_name(j->state), j->cursor,
				 step_desc(u, &j->steps[j->cursor], d, sizeof(d)));
		else
			snprintf(why, why_len, "upgrade %llu %s", (unsigned long long)j->id,
				 upg_state_name(j->state));
	}
	return true;
}

bool upg_preempt_suspended(const struct upg *u)
{
	return active(&u->j);
}

uint8_t upg_cluster_proto(const struct upg *u)
{
	int lo = 256;
	for (int x = 0; x < u->n; x++)
		if (u->peers[x].f.known && u->peers[x].f.proto_max && u->peers[x].f.proto_max < lo)
			lo = u->peers[x].f.proto_max;
	if (lo == 256)
		lo = u->p.proto ? u->p.proto : WIRE_PROTO_MIN;
	if (u->j.id && !u->j.finalized && u->j.from_proto && u->j.from_proto < lo)
		lo = u->j.from_proto;
	return (uint8_t)lo;
}

const char *upg_node_detail(const struct upg *u, int node)
{
	if (node < 0 || node >= u->n)
		return "";
	return u->detail[node];
}

/* --- pre-checks ------------------------------------------------------------- */

static struct upg_check *check_add(struct upg_checks *out, const char *code)
{
	if (out->n >= UPG_CHECKS_MAX)
		return NULL;
	struct upg_check *c = &out->c[out->n++];
	snprintf(c->code, sizeof(c->code), "%s", code);
	c->ok = true;
	c->message[0] = 0;
	return c;
}

/* Append "what" to a failing check's sentence. */
static void check_fail(struct upg_check *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void check_fail(struct upg_check *c, const char *fmt, ...)
{
	if (!c)
		return;
	if (c->ok)
		c->message[0] = 0;
	size_t k = strlen(c->message);
	if (!c->ok && k < sizeof(c->message) - 3) {
		snprintf(c->message + k, sizeof(c->message) - k, "; ");
		k += 2;
	}
	c->ok = false;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->message + k, sizeof(c->message) - k, fmt, ap);
	va_end(ap);
}

static void check_ok(struct upg_check *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void check_ok(struct upg_check *c, const char *fmt, ...)
{
	if (!c || !c->ok)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->message, sizeof(c->message), fmt, ap);
	va_end(ap);
}

void upg_precheck(const struct upg *u, const struct upg_image *img, const struct upg_opts *o,
		  mono_t now, struct upg_checks *out)
{
	const struct upg_journal *j = &u->j;
	const struct tnd_conf *cf = u->conf;
	struct upg_check *c;
	memset(out, 0, sizeof(*out));
	/* the version gap first: --force across it makes the plan disruptive,
	 * which the single-member group check depends on */
	bool gap = false;
	for (int x = 0; x < u->n; x++) {
		const struct upg_facts *f = fresh(u, x, now);
		int cmp;
		if (f && img->min_upgrade_from[0] &&
		    version_cmp(f->version, img->min_upgrade_from, &cmp) == 0 && cmp < 0)
			gap = true;
	}
	out->disruptive = o->disruptive || (gap && o->force);

	c = check_add(out, "E_UPGRADE_RUNNING");
	if (active(j))
		check_fail(c, "upgrade %llu is %s", (unsigned long long)j->id, upg_state_name(j->state));
	else
		check_ok(c, "no upgrade running");

	c = check_add(out, "E_NOT_FINALIZED");
	if (j->id && j->state == UPG_COMPLETED && !j->finalized)
		check_fail(c, "upgrade %llu to %s is completed but not finalized: finalize or roll back first",
			   (unsigned long long)j->id, j->to);
	else
		check_ok(c, "no unfinalized upgrade");

	c = check_add(out, "E_PEER_DOWN");
	for (int x = 0; x < u->n; x++) {
		if (!live(u, x))
			check_fail(c, "%s is down", nname(u, x));
		else if (!fresh(u, x, now))
			check_fail(c, "%s has not reported its state", nname(u, x));
	}
	check_ok(c, "every node up and reporting");

	c = check_add(out, "E_PEER_LINK");
	for (int x = 0; x < u->n; x++) {
		const struct upg_facts *f = fresh(u, x, now);
		if (x != u->self && live(u, x) && !u->view.links_up[x])
			check_fail(c, "a link to %s is down", nname(u, x));
		else if (f && !f->links_all_up)
			check_fail(c, "%s reports a link down", nname(u, x));
	}
	check_ok(c, "every link to every node up");

	c = check_add(out, "E_GROUP_STATE");
	for (int x = 0; x < u->n; x++) {
		const struct upg_facts *f = fresh(u, x, now);
		if (!f)
			continue;
		if (f->maint)
			check_fail(c, "%s is in maintenance", nname(u, x));
		for (int gi = 0; gi < cf->n_groups; gi++) {
			if (!member(u, gi, x))
				continue;
			int st = fact_gstate(f, cf->groups[gi].id);
			if (st != UPG_G_PRIMARY && st != UPG_G_SECONDARY)
				check_fail(c, "group %u on %s is not primary or secondary",
					   cf->groups[gi].id, nname(u, x));
		}
	}
	check_ok(c, "every group primary or secondary on each member");

	c = check_add(out, "E_GROUP_SINGLE");
	for (int gi = 0; gi < cf->n_groups; gi++) {
		int m = 0;
		for (int x = 0; x < u->n; x++)
			m += member(u, gi, x);
		if (m < 2 && !out->disruptive)
			check_fail(c, "group %u has %d member%s with priority above 0: no in-service path (use --disruptive)",
				   cf->groups[gi].id, m, m == 1 ? "" : "s");
	}
	check_ok(c, out->disruptive ? "disruptive: single-member groups allowed"
		 : "every group has two members or more");

	c = check_add(out, "E_CONFIG_SYNC");
	{
		bool have = false;
		uint64_t gen = 0;
		for (int x = 0; x < u->n; x++) {
			const struct upg_facts *f = fresh(u, x, now);
			if (!f)
				continue;
			if (!f->config_in_sync)
				check_fail(c, "%s: configuration not in sync", nname(u, x));
			else if (have && f->config_gen != gen)
				check_fail(c, "%s: configuration generation %llu differs from %llu",
					   nname(u, x), (unsigned long long)f->config_gen,
					   (unsigned long long)gen);
			if (!have) {
				have = true;
				gen = f->config_gen;
			}
		}
		check_ok(c, "configuration generation %llu everywhere", (unsigned long long)gen);
	}

	c = check_add(out, "E_SESSION_SYNC");
	for (int x = 0; x < u->n; x++) {
		const struct upg_facts *f = fresh(u, x, now);
		if (f && !f->sessions_in_sync)
			check_fail(c, "%s: sessions not in sync", nname(u, x));
	}
	check_ok(c, "sessions in sync");

	c = check_add(out, "E_DISK_SPACE");
	for (int x = 0; x < u->n; x++) {
		const struct upg_facts *f = fresh(u, x, now);
		if (f && (img->bytes > UINT64_MAX / 2 || f->free_bytes < 2 * img->bytes))
			check_fail(c, "%s: %llu bytes free, %llu needed", nname(u, x),
				   (unsigned long long)f->free_bytes,
				   (unsigned long long)(img->bytes > UINT64_MAX / 2 ? UINT64_MAX
							: 2 * img->bytes));
	}
	check_ok(c, "at least %llu bytes free everywhere", (unsigned long long)(2 * img->bytes));

	c = check_add(out, "E_CPU");
	for (int x = 0; x < u->n; x++) {
		const struct upg_facts *f = fresh(u, x, now);
		if (!f)
			continue;
		if (f->cpu_percent == 255)
			check_fail(c, "%s: CPU load unknown", nname(u, x));
		else if (f->cpu_percent > cf->upgrade_cpu_max_percent)
			check_fail(c, "%s: CPU %u%% above %u%%", nname(u, x), f->cpu_percent,
				   cf->upgrade_cpu_max_percent);
	}
	check_ok(c, "CPU below %u%% everywhere", cf->upgrade_cpu_max_percent);

	{
		const char *code = img->check_code[0] ? img->check_code
				   : !img->present ? "E_IMAGE_MISSING"
				   : !img->intact ? "E_IMAGE_CORRUPT"
				   : !img->signed_ok ? "E_IMAGE_UNSIGNED"
				   : !img->trusted ? "E_IMAGE_UNTRUSTED" : NULL;
		c = check_add(out, code ? code : "E_IMAGE");
		if (code)
			check_fail(c, "image %s: %s", img->version[0] ? img->version : "?",
				   img->check_message[0] ? img->check_message :
				   !img->present ? "not present" : !img->intact ? "corrupt" :
				   !img->signed_ok ? "not signed" : !img->trusted ? "signer not trusted"
				   : "refused");
		else
			check_ok(c, "image %s present, intact, signed by a trusted key", img->version);
	}

	c = check_add(out, "E_VERSION_OLD");
	if (version_check(img->version) != 0)
		check_fail(c, "image version '%s' is not a version", img->version);
	for (int x = 0; x < u->n; x++) {
		const struct upg_facts *f = fresh(u, x, now);
		int cmp;
		if (!f)
			continue;
		if (version_cmp(img->version, f->version, &cmp) != 0)
			check_fail(c, "%s runs '%s', not comparable", nname(u, x), f->version);
		else if (cmp <= 0)
			check_fail(c, "%s already runs %s, not older than %s", nname(u, x), f->version,
				   img->version);
	}
	check_ok(c, "%s is newer than every running version", img->version);

	c = check_add(out, "E_VERSION_GAP");
	for (int x = 0; x < u->n; x++) {
		const struct upg_facts *f = fresh(u, x, now);
		int cmp;
		if (f && img->min_upgrade_from[0] &&
		    version_cmp(f->version, img->min_upgrade_from, &cmp) == 0 && cmp < 0 && !o->force)
			check_fail(c, "%s runs %s, older than %s (the oldest %s upgrades from in service; --force makes it disruptive)",
				   nname(u, x), f->version, img->min_upgrade_from, img->version);
	}
	check_ok(c, gap ? "forced across the version gap: disruptive"
		 : "every node upgradable in service");

	c = check_add(out, "E_CONFIG_INVALID");
	if (!img->config_ok)
		check_fail(c, "%s", img->config_message[0] ? img->config_message
			   : "the new version refuses the running configuration");
	else
		check_ok(c, "the running configuration is valid for %s", img->version);

	out->all_ok = true;
	for (int i = 0; i < out->n; i++)
		if (!out->c[i].ok)
			out->all_ok = false;
}

/* --- planner ---------------------------------------------------------------- */

static int add_step(struct upg_journal *j, enum upg_step_kind k, int group, int node,
		    uint32_t nodes, bool rollback)
{
	if (j->n_steps >= UPG_STEPS_MAX)
		return TND_ENOSPC;
	struct upg_step *s = &j->steps[j->n_steps++];
	memset(s, 0, sizeof(*s));
	s->kind = (uint8_t)k;
	s->group = (uint8_t)group;
	s->node = (int8_t)node;
	s->nodes = nodes;
	s->rollback = rollback;
	return 0;
}

/* Does x share a group other than group 0 with a node of `batch`? */
static bool shares(const struct upg *u, uint32_t batch, int x)
{
	for (int gi = 0; gi < u->conf->n_groups; gi++) {
		if (u->conf->groups[gi].id == 0 || !member(u, gi, x))
			continue;
		for (int y = 0; y < u->n; y++)
			if ((batch & (1u << y)) && member(u, gi, y))
				return true;
	}
	return false;
}

/* Greedy batches: each node joins the first batch it shares no group
 * (other than 0) with; one step per batch (issue 5: "nodes that share no
 * group go in parallel"). No cap for group 0's majority: group 0 carries
 * no traffic, so a batch that takes its majority away (node.c quorum_ok,
 * three nodes or more) only pauses the coordination; when the batch's
 * nodes are back group 0 is elected again and its primary settles and
 * continues the running step with its own timers (settle, run_reset). */
static int batches(const struct upg *u, struct upg_journal *j, uint32_t set,
		   enum upg_step_kind k, bool rollback)
{
	while (set) {
		uint32_t b = 0;
		for (int x = 0; x < u->n; x++)
			if ((set & (1u << x)) && !shares(u, b, x))
				b |= 1u << x;
		set &= ~b;
		if (add_step(j, k, 0, TND_NO_NODE, b, rollback) != 0)
			return TND_ENOSPC;
	}
	return 0;
}

/* The k-th group index with group 0 (always index 0, conf.h) last: the
 * move of group 0 hands the coordinator role over, so it comes after
 * every other move the current coordinator makes. */
static int group0_last(const struct upg *u, int k)
{
	return (k + 1) % u->conf->n_groups;
}

static int tail_steps(const struct upg *u, struct upg_journal *j, bool no_failback, bool rb)
{
	int e = add_step(j, UPG_K_PREEMPT_ON, 0, TND_NO_NODE, 0, rb);
	for (int gi = 0; gi < u->conf->n_groups && !e; gi++)
		e = add_step(j, no_failback ? UPG_K_RELEASE : UPG_K_FAILBACK,
			     u->conf->groups[gi].id, TND_NO_NODE, 0, rb);
	if (!e)
		e = add_step(j, UPG_K_UNFREEZE, 0, TND_NO_NODE, 0, rb);
	return e;
}

int upg_plan_build(const struct upg *u, const struct upg_opts *o, bool disruptive,
		   struct upg_journal *j)
{
	const struct tnd_conf *cf = u->conf;
	uint32_t all = u->n >= 32 ? 0xffffffffu : (1u << u->n) - 1;
	int src = j->source >= 0 && j->source < u->n ? j->source : u->self;
	uint32_t dist = all & ~(1u << src);
	struct upg_journal *t = j;
	int e;
	t->n_steps = 0;
	t->cursor = 0;
	if (disruptive) {
		e = add_step(t, UPG_K_FREEZE, 0, TND_NO_NODE, 0, false);
		if (!e) e = add_step(t, UPG_K_BACKUP, 0, TND_NO_NODE, 0, false);
		if (!e && dist) e = add_step(t, UPG_K_DISTRIBUTE, 0, src, dist, false);
		if (!e) e = add_step(t, UPG_K_UPGRADE, 0, TND_NO_NODE, all, false);
		if (!e) e = add_step(t, UPG_K_UNFREEZE, 0, TND_NO_NODE, 0, false);
		if (e)
			t->n_steps = 0;
		return e;
	}
	int c = u->view.coordinator >= 0 && u->view.coordinator < u->n ? u->view.coordinator
		: u->self;
	int holder[TND_GROUPS_MAX];
	uint32_t holders = 0;
	for (int gi = 0; gi < cf->n_groups; gi++) {
		int p = u->view.primary[gi];
		if (member(u, gi, c))
			holder[gi] = c;
		else if (p >= 0 && p < u->n && member(u, gi, p))
			holder[gi] = p;
		else
			holder[gi] = preferred(u, gi);
		if (holder[gi] >= 0)
			holders |= 1u << holder[gi];
	}
	e = add_step(t, UPG_K_FREEZE, 0, TND_NO_NODE, 0, false);
	if (!e) e = add_step(t, UPG_K_BACKUP, 0, TND_NO_NODE, 0, false);
	if (!e) e = add_step(t, UPG_K_PREEMPT_OFF, 0, TND_NO_NODE, 0, false);
	for (int gi = 0; gi < cf->n_groups && !e; gi++)
		if (holder[gi] >= 0)
			e = add_step(t, UPG_K_MOVE, cf->groups[gi].id, holder[gi], 0, false);
	if (!e && dist) e = add_step(t, UPG_K_DISTRIBUTE, 0, src, dist, false);
	if (!e) e = batches(u, t, all & ~holders, UPG_K_UPGRADE, false);
	/* every group to an upgraded member; group 0 last: the coordinator
	 * hands itself over */
	for (int k = 0; k < cf->n_groups && !e; k++) {
		int gi = group0_last(u, k);
		int to = best_member(u, gi, holders);
		if (to >= 0)
			e = add_step(t, UPG_K_MOVE, cf->groups[gi].id, to, 0, false);
	}
	if (!e) e = batches(u, t, holders, UPG_K_UPGRADE, false);
	if (!e) e = tail_steps(u, t, o->no_failback, false);
	if (e)
		t->n_steps = 0;
	return e;
}

int upg_plan_rollback(const struct upg *u, int node, struct upg_journal *j)
{
	const struct tnd_conf *cf = u->conf;
	int keep = j->n_steps, cur = j->cursor;
	struct upg_step saved[UPG_STEPS_MAX];
	memcpy(saved, j->steps, sizeof(saved));
	uint32_t r = 0;
	for (int x = 0; x < u->n; x++) {
		const struct upg_facts *f = fresh(u, x, u->now);
		uint8_t ns = j->node_state[x];
		if ((f && vers_eq(f->version, j->to)) || ns == UPG_N_INSTALLING ||
		    ns == UPG_N_RESTARTING || ns == UPG_N_RESYNCING || ns == UPG_N_UPGRADED)
			r |= 1u << x;
	}
	if (node != TND_NO_NODE)
		r &= node >= 0 && node < u->n ? 1u << node : 0;
	uint32_t standby = 0;
	for (int x = 0; x < u->n; x++) {
		bool prim = false;
		for (int gi = 0; gi < cf->n_groups; gi++)
			if (u->view.primary[gi] == x)
				prim = true;
		if (!prim)
			standby |= 1u << x;
	}
	uint32_t first = r & standby, rest = r & ~standby;
	int e = 0;
	j->n_steps = cur;
	if (j->state == UPG_COMPLETED) {
		e = add_step(j, UPG_K_FREEZE, 0, TND_NO_NODE, 0, true);
		if (!e) e = add_step(j, UPG_K_PREEMPT_OFF, 0, TND_NO_NODE, 0, true);
	}
	if (!e) e = batches(u, j, first, UPG_K_REVERT, true);
	for (int k = 0; k < cf->n_groups && !e; k++) {
		int gi = group0_last(u, k);
		int p = u->view.primary[gi];
		if (p < 0 || !(rest & (1u << p)))
			continue;
		int to = best_member(u, gi, rest);
		if (to >= 0)
			e = add_step(j, UPG_K_MOVE, cf->groups[gi].id, to, 0, true);
	}
	if (!e) e = batches(u, j, rest, UPG_K_REVERT, true);
	if (!e) e = tail_steps(u, j, j->no_failback, true);
	if (e) {
		memcpy(j->steps, saved, sizeof(saved));
		j->n_steps = keep;
	}
	return e;
}
