/* ctsync.c - session-sync protocol core (see ctsync.h for the interface).
 *
 * Design, and why:
 *
 * One ordered stream per primary. The primary packs every record - kernel
 * events (ctsync_local) and bulk copies from a dump (ctsync_bulk_rec) -
 * into messages numbered by a message sequence number `mseq`, one log for
 * all secondaries. Sequencing bulk copies in the same stream as the
 * incremental updates means a secondary applies everything in the order
 * the primary saw it, so a bulk copy can never overwrite a newer update on
 * the secondary. The one remaining race is in the primary's driver: a dump
 * entry read before a kernel event may be handed over after it. So the
 * primary stamps each key updated or deleted by an event during a bulk
 * (deletes leave a tombstone until the bulk ends) and drops a later bulk
 * copy of a stamped key: the event carried state at least as new.
 *
 * Messages, not records, are the unit of order, ack and resend: a message
 * is what the network loses. Each holds as many records as fit in one
 * datagram (WIRE_MTU) and optional markers, applied in a fixed order
 * whatever the TLV order: BEGIN(bulk gen), RECS, END(gen, total),
 * DIGEST(count, sum of stable_hash). Records of one key are coalesced while
 * their message is still being filled (it is closed when full, at
 * ctsync_tick, or after batch_ms).
 *
 * Per secondary the primary keeps a base (the mseq at which that
 * secondary's stream starts: the BEGIN of the bulk that brings it in), a
 * cumulative ack, a 64-message selective-ack bitmap and a send cursor.
 * What may be in flight is a congestion window (RFC 5681, in messages,
 * at most window_msgs_max, the secondary's reorder buffer): a loss means
 * the path or the secondary's socket was full, so the window halves
 * instead of resending a full window into the same full buffer. A hole
 * with DUPTHRESH messages selectively acked beyond it is resent at once
 * (the secondary acks immediately then); otherwise, after a resend time
 * that follows the measured round trip (RFC 6298, at least resend_ms), the
 * sender goes back to the first unacked message (skipping selectively
 * acked ones) with a small window; after retries_max rounds the secondary
 * is "stalled" (not in sync, no longer holds the log back, probed
 * slowly). The log is a ring of log_msgs_max fixed slots (bounded in
 * bytes); closing a message into a full log evicts the oldest, and any
 * secondary that still needed it is rebased and bulk-synced
 * (reason=overrun): never silent loss. A driver avoids that for a slow
 * but progressing secondary by leaving kernel events in the kernel while
 * ctsync_log_room() is low; a secondary rebased while stalled waits
 * ("mute") and starts no bulk until it answers again. Bulk feeding only
 * proceeds while the log has room above a reserve kept for events, counted
 * from the slowest live secondary, so a 1M-entry dump is paced by acks
 * (ctsync_bulk_rec returns TND_ENOSPC; CTS_ACT_DUMP_RESUME follows).
 *
 * Each side keeps a map key-hash → (stable_hash, marks), 24 bytes per
 * session, giving count and digest incrementally. The primary puts a digest
 * of its map into the stream every digest_interval_ms (and at every bulk
 * end); a synced secondary compares after applying exactly that message
 * and asks for a resync on a mismatch. Marks implement the sweep: every key
 * refreshed since a bulk began carries that bulk's local generation; at
 * END the secondary drops the rest from its map and emits CTS_ACT_SWEEP,
 * for which the driver deletes each kernel entry for which ctsync_fresh()
 * is false (this also removes entries left in the kernel by a previous
 * run, which the core never saw). The map keys on a 64-bit hash of the
 * key: at 2M sessions a collision has probability ~1e-7, and would show as
 * a digest mismatch, not as silent corruption.
 *
 * Fencing: a secondary accepts DATA only from the node named by
 * ctsync_set_role, and within it only the newest stream (sender
 * incarnation, stream counter). Header sequence numbers use a space
 * disjoint from node.c's (CTS_SEQ_SPACE) so nonces never collide, and a
 * 64-entry replay window per sender (RFC 4303 section 3.4.3) drops replays.
 * Every message is decoded and checked completely before any state
 * changes, so a rejected message changes only counters. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ctsync.h"

enum { T_CTL = CTS_T_CTL, T_BEGIN = CTS_T_BEGIN, T_RECS = CTS_T_RECS,
       T_END = CTS_T_END, T_DIGEST = CTS_T_DIGEST };
enum { T_ACK = CTS_T_ACK };
#define CTL_LEN 28    /* stream u32, mseq u64, base u64, head u64 */
#define BEGIN_LEN 5   /* gen u32, flags u8 */
#define END_LEN 12    /* gen u32, total u64 */
#define DIGEST_LEN 16 /* count u64, digest u64 */
#define ACK_LEN 54
#define BEGIN_RESYNC_ALL 1
#define REC_HDR 11    /* op, key_len, val_len, stable_hash */
#define REC_BULK 0x80 /* op bit: a bulk copy */
/* Room for records after every other TLV a message may carry. */
#define RECS_CAP (WIRE_BODY_MAX - (4 + CTL_LEN) - (4 + BEGIN_LEN) - \
		  (4 + END_LEN) - (4 + DIGEST_LEN) - 4)
#define STAGE_IDX_MAX (RECS_CAP / (REC_HDR + 1) + 1)

enum { AF_NEED_BULK = 1, AF_IN_SYNC = 2, AF_SYNCED = 4 };
enum { R_NONE, R_JOIN, R_DIGEST, R_OVERRUN, R_ROLE, R_BULK_COUNT, R_RESTART,
       R_FAILED };
static const char *reason_name[] = { "none", "join", "digest_mismatch",
	"overrun", "role", "bulk_count", "restart", "dump_failed" };

#define TOMB 0x80000000U

/* Congestion control per secondary (RFC 5681 in messages, with the SACK
 * loss detection of RFC 6675 reduced to our 64-message bitmap): a loss
 * means the path or the secondary's socket buffer was full, so the
 * primary halves what it keeps in flight instead of resending a whole
 * window into the same full buffer; acks grow it back. */
#define CWND_MIN 4        /* messages */
#define CWND_INIT 32      /* messages, at admission */
#define DUPTHRESH 3       /* messages received beyond a hole that make it a loss */
#define ACK_EVERY_MSGS 8  /* secondary: cumulative ack at least this often */
/* The resend timer follows the measured round trip (RFC 6298: srtt +
 * 4 rttvar, Karn's rule), never below resend_ms: a secondary that acks
 * only once its records are in the kernel answers a full window tens of
 * milliseconds later under load, and a fixed timer would resend (and
 * collapse the window) for nothing. */
#define RTO_MAX_MS 250   /* retries_max of these make a secondary "stalled" */

struct ment {
	uint64_t kh; /* 0: empty slot */
	uint64_t sh;
	uint32_t mark;  /* local generation at the last refresh */
	uint32_t lmark; /* primary: generation of a local update during a bulk, | TOMB */
};

struct cmap {
	struct ment *e;
	uint64_t mask;
	uint64_t used, max; /* slots in use incl. tombstones; bound */
	uint64_t live, digest;
};

struct slot {
	uint64_t mseq, rec_end, count, digest;
	mono_t closed_at;
	uint16_t len;
	uint8_t body[WIRE_BODY_MAX];
};

struct rslot {
	uint64_t mseq; /* 0: empty */
	uint16_t len, nrec;
	uint8_t body[WIRE_BODY_MAX];
};

struct cpeer {
	bool alive;
	enum ctsync_pstate state;
	bool stalled;
	/* Rebased (R_OVERRUN) while stalled: waits for a bulk but does not
	 * start one until it answers again. A secondary that stopped
	 * answering without being declared dead (a frozen process, long
	 * detection timers) would otherwise cost a full table read per log
	 * wrap, forever. */
	bool mute;
	/* replay window over header seq, per sender incarnation */
	uint64_t inc, seq_max, seq_win;
	bool seq_any;
	/* primary side */
	uint32_t rx_epoch;
	uint64_t base, acked, next_send, high_sent, sync_at, sack;
	uint32_t need_gen;
	mono_t rto_at, last_tx;
	uint32_t retries;
	uint32_t cwnd, ssthresh, cwnd_acc; /* messages; acc: growth in 1/cwnd */
	bool recovery;
	uint64_t recover, rtx_high; /* recovery ends at ack >= recover */
	mono_t srtt, rttvar;        /* 0: no sample yet */
	uint64_t rtt_mseq;          /* message being timed, 0: none */
	mono_t rtt_at;
	uint64_t count, bulk_rx;
	uint8_t flags, reason;
};

struct ctsync {
	struct ctsync_params p;
	enum ctsync_role role;
	int primary;
	uint64_t hseq;
	uint32_t mgen; /* local mark generation, grows at every bulk begin */
	struct cmap map;
	struct cpeer peers[TND_NODES_MAX];
	struct ctsync_counters ctr;
	bool map_full_logged;
	/* primary */
	uint32_t stream, bulk_gen;
	struct slot *log;
	uint64_t head, tail, rec_total;
	bool bulk_active, bulk_want, bulk_want_all, bulk_paused;
	int bulk_reason;
	uint64_t bulk_recs, bulk_last_total;
	uint64_t bulk_begin; /* mseq of the current bulk's BEGIN */
	mono_t digest_next;
	bool digest_dirty;
	struct {
		uint8_t recs[RECS_CAP];
		size_t len;
		int n;
		struct { uint16_t off, len; uint64_t kh; } idx[STAGE_IDX_MAX];
		bool begin, end;
		uint8_t begin_flags;
		mono_t since;
	} st;
	/* secondary */
	uint64_t f_inc;
	uint32_t f_stream, rx_epoch;
	uint64_t base, next, head_seen;
	struct rslot *rbuf;
	bool synced, need_bulk, bulk_rx_active, last_map_full;
	int need_reason;
	uint32_t rx_gen;    /* wire gen of the last BEGIN applied */
	uint32_t sweep_gen; /* mgen at that BEGIN */
	uint64_t rx_bulk_recs, rx_bulk_total;
	enum ctsync_digest last_digest;
	mono_t last_rx, ack_due, hello_at;
	uint32_t unacked, ooo_unacked;
};

/* --- helpers ---------------------------------------------------------------- */

void ctsync_params_default(struct ctsync_params *p)
{
	memset(p, 0, sizeof(*p));
	p->proto = WIRE_PROTO_MAX;
	p->log_msgs_max = 8192;
	p->window_msgs_max = 256;
	p->sessions_max = 1u << 20;
	p->resend_ms = 50;
	p->retries_max = 20;
	p->digest_interval_ms = 1000;
	p->ack_delay_ms = 2;
	p->keepalive_ms = 500;
	p->batch_ms = 0;
}

void ctsync_actions_reset(struct ctsync_actions *out)
{
	out->n = 0;
	out->n_dropped = 0;
}

static struct ctsync_act *act_add(struct ctsync_actions *out,
				  enum ctsync_act_type t)
{
	if (out->n >= CTS_ACTIONS_MAX) {
		out->n_dropped++;
		return NULL;
	}
	struct ctsync_act *a = &out->a[out->n++];
	a->type = t;
	return a;
}

static bool room(const struct ctsync_actions *out, int k)
{
	return out->n + k <= CTS_ACTIONS_MAX;
}

__attribute__((format(printf, 5, 6)))
static void emit(struct ctsync *cs, struct ctsync_actions *out,
		 enum ctsync_level lvl, const char *name, const char *fmt, ...)
{
	(void)cs;
	struct ctsync_act *a = act_add(out, CTS_ACT_EVENT);
	if (!a)
		return;
	a->u.event.level = lvl;
	va_list ap;
	va_start(ap, fmt);
	tnd_event_vfmt(a->u.event.name, sizeof(a->u.event.name), name,
		       a->u.event.kv, sizeof(a->u.event.kv), fmt, ap);
	va_end(ap);
}

const char *ctsync_role_name(enum ctsync_role r)
{
	switch (r) {
	case CTS_PRIMARY: return "primary";
	case CTS_SECONDARY: return "secondary";
	default: return "idle";
	}
}

const char *ctsync_pstate_name(enum ctsync_pstate s)
{
	switch (s) {
	case CTS_P_WAIT: return "wait_bulk";
	case CTS_P_BULK: return "bulk";
	case CTS_P_SYNC: return "sync";
	default: return "idle";
	}
}

const char *ctsync_digest_name(enum ctsync_digest d)
{
	switch (d) {
	case CTS_DIGEST_OK: return "ok";
	case CTS_DIGEST_MISMATCH: return "mismatch";
	default: return "none";
	}
}

/* FNV-1a, then the splitmix64 finalizer for avalanche; never 0 (the
 * empty-slot mark). */
static uint64_t key_hash(const uint8_t *k, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < n; i++) {
		h ^= k[i];
		h *= 0x100000001b3ULL;
	}
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ULL;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebULL;
	h ^= h >> 31;
	return h ? h : 1;
}

/* --- the key→stable_hash map: linear probing, backward-shift delete ------- */

static int map_init(struct cmap *m, uint32_t max)
{
	uint64_t cap = 16;
	while (cap < (uint64_t)max + max / 3 + 1)
		cap <<= 1;
	m->e = calloc(cap, sizeof(*m->e));
	if (!m->e)
		return TND_ENOSPC;
	/* Write every page now. A lookup first maps a page to the shared
	 * zero page and the first insert then copies it, which flushes the
	 * TLBs of every CPU the process's threads ran on: measured at 40% of
	 * the loop's time during a first bulk (in a VM, where each flush is an
	 * inter-processor interrupt), once per 4 KiB of map. The map's size
	 * is fixed by sessions_max anyway; this is its memory from the start. */
	for (size_t off = 0; off < cap * sizeof(*m->e); off += 4096)
		((volatile uint8_t *)m->e)[off] = 0;
	m->mask = cap - 1;
	m->max = max;
	return 0;
}

static struct ment *map_find(const struct cmap *m, uint64_t kh)
{
	for (uint64_t i = kh & m->mask;; i = (i + 1) & m->mask) {
		if (m->e[i].kh == kh)
			return &m->e[i];
		if (!m->e[i].kh)
			return NULL;
	}
}

static bool ment_live(const struct ment *e)
{
	return e && e->kh && !(e->lmark & TOMB);
}

static struct ment *map_insert(struct cmap *m, uint64_t kh)
{
	struct ment *e = map_find(m, kh);
	if (e)
		return e;
	if (m->used >= m->max)
		return NULL;
	uint64_t i = kh & m->mask;
	while (m->e[i].kh)
		i = (i + 1) & m->mask;
	m->e[i] = (struct ment){ .kh = kh, .lmark = TOMB };
	m->used++;
	return &m->e[i];
}

static void map_remove(struct cmap *m, struct ment *e)
{
	if (ment_live(e)) {
		m->live--;
		m->digest -= e->sh;
	}
	uint64_t i = (uint64_t)(e - m->e), j = i;
	m->e[i].kh = 0;
	m->used--;
	for (;;) {
		j = (j + 1) & m->mask;
		if (!m->e[j].kh)
			return;
		uint64_t home = m->e[j].kh & m->mask;
		/* Move j back into the hole unless its home lies cyclically
		 * in (i, j]. */
		bool stay = i <= j ? (home > i && home <= j) : (home > i || home <= j);
		if (stay)
			continue;
		m->e[i] = m->e[j];
		m->e[j].kh = 0;
		i = j;
	}
}

/* Set a key's stable_hash; returns the entry or NULL when the map is full. */
static struct ment *map_set(struct cmap *m, uint64_t kh, uint64_t sh,
			    uint32_t mark)
{
	struct ment *e = map_insert(m, kh);
	if (!e)
		return NULL;
	if (ment_live(e)) {
		m->digest -= e->sh;
	} else {
		m->live++;
		e->lmark &= ~TOMB;
	}
	e->sh = sh;
	m->digest += sh;
	e->mark = mark;
	return e;
}

/* Remove every entry not refreshed at generation `gen` or later, and every
 * tombstone. */
static uint64_t map_sweep(struct cmap *m, uint32_t gen)
{
	uint64_t n = 0;
	for (uint64_t i = 0; i <= m->mask; i++) {
		while (m->e[i].kh &&
		       ((m->e[i].lmark & TOMB) || m->e[i].mark < gen)) {
			if (ment_live(&m->e[i]))
				n++;
			map_remove(m, &m->e[i]);
		}
	}
	return n;
}

static void map_clear_lmarks(struct cmap *m)
{
	for (uint64_t i = 0; i <= m->mask; i++)
		if (m->e[i].kh)
			m->e[i].lmark &= TOMB;
}

/* --- records ---------------------------------------------------------------- */

static bool rec_valid(const struct ctrec *r)
{
	if (r->key_len < 1 || r->key_len > CTREC_KEY_MAX ||
	    r->val_len > CTREC_VAL_MAX)
		return false;
	if (r->op == CTREC_UPSERT)
		return true;
	return r->op == CTREC_DELETE && r->val_len == 0;
}

static size_t rec_size(const struct ctrec *r)
{
	return REC_HDR + r->key_len + r->val_len;
}

static void rec_put(uint8_t *p, const struct ctrec *r, bool bulk)
{
	p[0] = (uint8_t)(r->op | (bulk ? REC_BULK : 0));
	p[1] = r->key_len;
	p[2] = r->val_len;
	wire_put64(p + 3, r->stable_hash);
	memcpy(p + REC_HDR, r->key, r->key_len);
	memcpy(p + REC_HDR + r->key_len, r->val, r->val_len);
}

/* Decode the record at p[0..len); returns its size or 0 when malformed. */
static size_t rec_get(const uint8_t *p, size_t len, struct ctrec *r, bool *bulk)
{
	if (len < REC_HDR)
		return 0;
	r->op = p[0] & (uint8_t)~REC_BULK;
	*bulk = p[0] & REC_BULK;
	r->key_len = p[1];
	r->val_len = p[2];
	r->stable_hash = wire_get64(p + 3);
	if (!rec_valid(r) || len < rec_size(r))
		return 0;
	memcpy(r->key, p + REC_HDR, r->key_len);
	memcpy(r->val, p + REC_HDR + r->key_len, r->val_len);
	return rec_size(r);
}

/* The size of the well-formed record at p[0..len), or 0: rec_get's checks
 * without the copy (a message is checked whole before anything applies). */
static size_t rec_check(const uint8_t *p, size_t len)
{
	if (len < REC_HDR)
		return 0;
	uint8_t op = p[0] & (uint8_t)~REC_BULK, kl = p[1], vl = p[2];
	if (kl < 1 || kl > CTREC_KEY_MAX || vl > CTREC_VAL_MAX)
		return 0;
	if (op != CTREC_UPSERT && !(op == CTREC_DELETE && vl == 0))
		return 0;
	size_t n = REC_HDR + (size_t)kl + vl;
	return len < n ? 0 : n;
}

/* --- message decoding (no state change) ----------------------------------- */

struct data_msg {
	bool has_ctl, has_begin, has_end, has_digest;
	uint32_t stream;
	uint64_t mseq, base, head;
	uint32_t begin_gen;
	uint8_t begin_flags;
	uint32_t end_gen;
	uint64_t end_total;
	uint64_t d_count, d_digest;
	const uint8_t *recs;
	size_t recs_len;
	int nrec;
};

static int decode_data(const uint8_t *b, size_t len, struct data_msg *m)
{
	memset(m, 0, sizeof(*m));
	struct tlvr r;
	struct tlv t;
	int rc;
	bool has_recs = false;
	tlvr_init(&r, b, len);
	while ((rc = tlvr_next(&r, &t)) == 1) {
		switch (t.type) {
		case T_CTL:
			if (m->has_ctl || t.len != CTL_LEN)
				return TND_EINVAL;
			m->has_ctl = true;
			m->stream = wire_get32(t.val);
			m->mseq = wire_get64(t.val + 4);
			m->base = wire_get64(t.val + 12);
			m->head = wire_get64(t.val + 20);
			break;
		case T_BEGIN:
			if (m->has_begin || t.len != BEGIN_LEN)
				return TND_EINVAL;
			m->has_begin = true;
			m->begin_gen = wire_get32(t.val);
			m->begin_flags = t.val[4];
			break;
		case T_END:
			if (m->has_end || t.len != END_LEN)
				return TND_EINVAL;
			m->has_end = true;
			m->end_gen = wire_get32(t.val);
			m->end_total = wire_get64(t.val + 4);
			break;
		case T_DIGEST:
			if (m->has_digest || t.len != DIGEST_LEN)
				return TND_EINVAL;
			m->has_digest = true;
			m->d_count = wire_get64(t.val);
			m->d_digest = wire_get64(t.val + 8);
			break;
		case T_RECS: {
			if (has_recs)
				return TND_EINVAL;
			has_recs = true;
			m->recs = t.val;
			m->recs_len = t.len;
			size_t off = 0;
			while (off < t.len) {
				size_t n = rec_check(t.val + off, t.len - off);
				if (!n)
					return TND_EINVAL;
				off += n;
				m->nrec++;
			}
			break;
		}
		default:
			break; /* unknown: skipped (wire.h) */
		}
	}
	if (rc < 0 || !m->has_ctl)
		return TND_EINVAL;
	if (m->mseq == 0 && (has_recs || m->has_begin || m->has_end || m->has_digest))
		return TND_EINVAL; /* a probe carries nothing */
	if (m->mseq && (m->base == 0 || m->mseq > m->head))
		return TND_EINVAL;
	if (m->begin_gen == 0 && m->has_begin)
		return TND_EINVAL;
	return 0;
}

struct ack_msg {
	uint64_t inc;
	uint32_t stream, rx_epoch;
	uint64_t ack, sack;
	uint32_t gen;
	uint8_t flags, reason;
	uint64_t count, bulk_rx;
};

static int decode_ack(const uint8_t *b, size_t len, struct ack_msg *m)
{
	memset(m, 0, sizeof(*m));
	struct tlvr r;
	struct tlv t;
	int rc;
	bool have = false;
	tlvr_init(&r, b, len);
	while ((rc = tlvr_next(&r, &t)) == 1) {
		if (t.type != T_ACK)
			continue;
		if (have || t.len != ACK_LEN)
			return TND_EINVAL;
		have = true;
		const uint8_t *p = t.val;
		m->inc = wire_get64(p);
		m->stream = wire_get32(p + 8);
		m->rx_epoch = wire_get32(p + 12);
		m->ack = wire_get64(p + 16);
		m->sack = wire_get64(p + 24);
		m->gen = wire_get32(p + 32);
		m->flags = p[36];
		m->reason = p[37];
		m->count = wire_get64(p + 38);
		m->bulk_rx = wire_get64(p + 46);
	}
	if (rc < 0 || !have)
		return TND_EINVAL;
	return 0;
}

/* RFC 4303 section 3.4.3 window. check only; replay_commit records. */
static int replay_check(const struct cpeer *p, const struct wire_hdr *h)
{
	if (!(h->seq & CTS_SEQ_SPACE))
		return TND_EINVAL;
	if (!p->seq_any || h->incarnation > p->inc)
		return 0;
	if (h->incarnation < p->inc)
		return TND_EREPLAY;
	if (h->seq > p->seq_max)
		return 0;
	uint64_t back = p->seq_max - h->seq;
	if (back >= 64 || (p->seq_win >> back) & 1)
		return TND_EREPLAY;
	return 0;
}

static void replay_commit(struct cpeer *p, const struct wire_hdr *h)
{
	if (!p->seq_any || h->incarnation > p->inc) {
		p->seq_any = true;
		p->inc = h->incarnation;
		p->seq_max = h->seq;
		p->seq_win = 1;
		return;
	}
	if (h->seq > p->seq_max) {
		uint64_t shift = h->seq - p->seq_max;
		p->seq_win = shift >= 64 ? 1 : (p->seq_win << shift) | 1;
		p->seq_max = h->seq;
	} else {
		p->seq_win |= 1ULL << (p->seq_max - h->seq);
	}
}

/* --- lifetime --------------------------------------------------------------- */

struct ctsync *ctsync_new(const struct ctsync_params *p, mono_t now)
{
	if (!p || p->n_nodes < 1 || p->n_nodes > TND_NODES_MAX || p->self < 0 ||
	    p->self >= p->n_nodes || p->log_msgs_max < 8 ||
	    p->window_msgs_max < 1 || p->window_msgs_max > p->log_msgs_max / 2 ||
	    p->sessions_max < 1 || p->resend_ms < 1 || p->keepalive_ms < 1 ||
	    p->digest_interval_ms < 1)
		return NULL;
	struct ctsync *cs = calloc(1, sizeof(*cs));
	if (!cs)
		return NULL;
	cs->p = *p;
	cs->log = calloc(p->log_msgs_max, sizeof(*cs->log));
	cs->rbuf = calloc(p->window_msgs_max, sizeof(*cs->rbuf));
	if (!cs->log || !cs->rbuf || map_init(&cs->map, p->sessions_max) < 0) {
		ctsync_free(cs);
		return NULL;
	}
	cs->role = CTS_IDLE;
	cs->primary = TND_NO_NODE;
	cs->tail = 1;
	cs->ack_due = MONO_NEVER;
	cs->hello_at = MONO_NEVER;
	cs->digest_next = now;
	return cs;
}

void ctsync_free(struct ctsync *cs)
{
	if (!cs)
		return;
	free(cs->log);
	free(cs->rbuf);
	free(cs->map.e);
	free(cs);
}

static void hdr_fill(struct ctsync *cs, struct wire_hdr *h, uint8_t type)
{
	memset(h, 0, sizeof(*h));
	h->version = cs->p.proto;
	h->cluster_id = cs->p.cluster_id;
	h->sender = (uint8_t)cs->p.self;
	h->type = type;
	h->incarnation = cs->p.incarnation;
	h->seq = CTS_SEQ_SPACE | ++cs->hseq;
}

static void note_map_full(struct ctsync *cs, struct ctsync_actions *out)
{
	cs->ctr.map_full++;
	if (!cs->map_full_logged) {
		cs->map_full_logged = true;
		emit(cs, out, CTS_LVL_ERROR, "ctsync.map_full",
		     "sessions_max=%u digest=unverifiable", cs->p.sessions_max);
	}
}

/* --- primary: log, staging, sending ---------------------------------------- */

static struct slot *slot_of(const struct ctsync *cs, uint64_t mseq)
{
	return &cs->log[mseq % cs->p.log_msgs_max];
}

static bool in_stream(const struct cpeer *p)
{
	return p->state == CTS_P_BULK || p->state == CTS_P_SYNC;
}

static void peer_wait(struct ctsync *cs, struct ctsync_actions *out, int x,
		      int reason)
{
	struct cpeer *p = &cs->peers[x];
	if (p->state != CTS_P_WAIT)
		emit(cs, out, CTS_LVL_INFO, "ctsync.resync",
		     "peer=%d reason=%s from=%s", x, reason_name[reason],
		     ctsync_pstate_name(p->state));
	p->state = CTS_P_WAIT;
	p->stalled = false;
	p->rto_at = MONO_NEVER;
	p->sync_at = 0;
	p->need_gen = 0;
	cs->ctr.resyncs++;
	if (!cs->bulk_active && !cs->bulk_want)
		cs->bulk_reason = reason;
}

static mono_t peer_rto(const struct ctsync *cs, const struct cpeer *p)
{
	mono_t lo = MS_TO_MONO(cs->p.resend_ms), hi = MS_TO_MONO(RTO_MAX_MS);
	if (!p->srtt)
		return lo;
	mono_t rto = p->srtt + 4 * p->rttvar;
	return rto < lo ? lo : rto > hi ? (hi > lo ? hi : lo) : rto;
}

static void rtt_sample(struct cpeer *p, mono_t now)
{
	mono_t r = now - p->rtt_at;
	p->rtt_mseq = 0;
	if (r < 0)
		return;
	if (!p->srtt) {
		p->srtt = r ? r : 1;
		p->rttvar = r / 2;
		return;
	}
	mono_t d = p->srtt > r ? p->srtt - r : r - p->srtt;
	p->rttvar = (3 * p->rttvar + d) / 4;
	p->srtt = (7 * p->srtt + r) / 8;
	if (!p->srtt)
		p->srtt = 1;
}

static void send_data(struct ctsync *cs, struct ctsync_actions *out, int x,
		      uint64_t mseq, mono_t now)
{
	struct ctsync_act *a = act_add(out, CTS_ACT_SEND);
	if (!a)
		return;
	struct cpeer *p = &cs->peers[x];
	struct wire_hdr h;
	hdr_fill(cs, &h, CTS_MSG_DATA);
	uint8_t *b = a->u.send.pkt + WIRE_HDR_LEN;
	wire_put16(b, T_CTL);
	wire_put16(b + 2, CTL_LEN);
	wire_put32(b + 4, cs->stream);
	wire_put64(b + 8, mseq);
	wire_put64(b + 16, p->base);
	wire_put64(b + 24, cs->head);
	size_t len = 4 + CTL_LEN;
	if (mseq) {
		const struct slot *s = slot_of(cs, mseq);
		memcpy(b + len, s->body, s->len);
		len += s->len;
		if (mseq <= p->high_sent) {
			cs->ctr.resent++;
			if (p->rtt_mseq && mseq <= p->rtt_mseq)
				p->rtt_mseq = 0; /* Karn: its ack could be either copy's */
		} else {
			p->high_sent = mseq;
			if (!p->rtt_mseq) {
				p->rtt_mseq = mseq;
				p->rtt_at = now;
			}
		}
		if (p->rto_at == MONO_NEVER)
			p->rto_at = now + peer_rto(cs, p);
	} else {
		cs->ctr.probes++;
	}
	h.body_len = (uint16_t)len;
	wire_hdr_encode(&h, a->u.send.pkt);
	a->u.send.len = WIRE_HDR_LEN + len;
	a->u.send.to = x;
	a->u.send.link = 0;
	p->last_tx = now;
	cs->ctr.tx_msgs++;
	cs->ctr.tx_bytes += a->u.send.len;
}

/* Messages that may be in flight to p: its congestion window, within the
 * secondary's reorder buffer. */
static uint32_t peer_window(const struct ctsync *cs, const struct cpeer *p)
{
	uint32_t w = p->cwnd < CWND_MIN ? CWND_MIN : p->cwnd;
	return w < cs->p.window_msgs_max ? w : cs->p.window_msgs_max;
}

static bool sacked(const struct cpeer *p, uint64_t m)
{
	if (m < p->acked + 2)
		return false;
	uint64_t d = m - p->acked - 2;
	return d < 64 && ((p->sack >> d) & 1);
}

/* Send what the window allows; true when everything allowed was sent. */
static bool pump_peer(struct ctsync *cs, struct ctsync_actions *out, int x,
		      mono_t now)
{
	struct cpeer *p = &cs->peers[x];
	if (!p->alive || !in_stream(p) || p->stalled)
		return true;
	uint64_t lim = p->acked + peer_window(cs, p);
	if (lim > cs->head)
		lim = cs->head;
	while (p->next_send <= lim) {
		if (sacked(p, p->next_send)) {
			p->next_send++;
			continue;
		}
		if (!room(out, 8))
			return false;
		send_data(cs, out, x, p->next_send, now);
		p->next_send++;
	}
	return true;
}

static void pump(struct ctsync *cs, struct ctsync_actions *out, mono_t now)
{
	for (int x = 0; x < cs->p.n_nodes; x++)
		if (x != cs->p.self)
			pump_peer(cs, out, x, now);
}

static bool stage_empty(const struct ctsync *cs)
{
	return !cs->st.n && !cs->st.begin && !cs->st.end;
}

static uint64_t min_acked(const struct ctsync *cs)
{
	uint64_t m = cs->head;
	for (int x = 0; x < cs->p.n_nodes; x++) {
		const struct cpeer *p = &cs->peers[x];
		if (x != cs->p.self && p->alive && in_stream(p) && !p->stalled &&
		    p->acked < m)
			m = p->acked;
	}
	return m;
}

uint32_t ctsync_bulk_room(const struct ctsync *cs)
{
	if (cs->role != CTS_PRIMARY || !cs->bulk_active)
		return 0;
	uint64_t used = cs->head - min_acked(cs) + 1; /* +1: the staging message */
	uint64_t cap = cs->p.log_msgs_max - cs->p.log_msgs_max / 4;
	return used >= cap ? 0 : (uint32_t)(cap - used);
}

uint32_t ctsync_log_room(const struct ctsync *cs)
{
	if (cs->role != CTS_PRIMARY)
		return 0;
	/* stage_close evicts once head + 1 - tail reaches log_msgs_max. */
	uint64_t used = cs->head - min_acked(cs) + 2;
	uint64_t cap = cs->p.log_msgs_max;
	return used >= cap ? 0 : (uint32_t)(cap - used);
}

/* A paused dump continues as soon as the log has room again (acks, a
 * secondary stalled, rebased or lost). */
static void maybe_resume(struct ctsync *cs, struct ctsync_actions *out)
{
	if (cs->bulk_paused && ctsync_bulk_room(cs) > 0 && room(out, 1)) {
		cs->bulk_paused = false;
		act_add(out, CTS_ACT_DUMP_RESUME);
	}
}

static void stage_close(struct ctsync *cs, struct ctsync_actions *out,
			mono_t now, bool digest_only)
{
	if (stage_empty(cs) && !digest_only)
		return;
	/* Evict the oldest message when the log is full. */
	if (cs->head + 1 - cs->tail >= cs->p.log_msgs_max) {
		for (int x = 0; x < cs->p.n_nodes; x++) {
			struct cpeer *p = &cs->peers[x];
			if (x != cs->p.self && in_stream(p) && p->acked < cs->tail) {
				bool was_stalled = p->stalled;
				cs->ctr.overruns++;
				peer_wait(cs, out, x, R_OVERRUN);
				p->mute = was_stalled;
			}
		}
		cs->tail++;
	}
	uint64_t mseq = ++cs->head;
	struct slot *s = slot_of(cs, mseq);
	struct tlvw w;
	tlvw_init(&w, s->body, sizeof(s->body) - (4 + CTL_LEN));
	if (cs->st.begin) {
		uint8_t v[BEGIN_LEN];
		wire_put32(v, cs->bulk_gen);
		v[4] = cs->st.begin_flags;
		tlvw_put(&w, T_BEGIN, v, BEGIN_LEN);
	}
	if (cs->st.n)
		tlvw_put(&w, T_RECS, cs->st.recs, (uint16_t)cs->st.len);
	if (cs->st.end) {
		uint8_t v[END_LEN];
		wire_put32(v, cs->bulk_gen);
		wire_put64(v + 4, cs->bulk_last_total);
		tlvw_put(&w, T_END, v, END_LEN);
	}
	if (cs->st.end || digest_only ||
	    (cs->digest_dirty && now >= cs->digest_next)) {
		uint8_t v[DIGEST_LEN];
		wire_put64(v, cs->map.live);
		wire_put64(v + 8, cs->map.digest);
		tlvw_put(&w, T_DIGEST, v, DIGEST_LEN);
		cs->digest_dirty = false;
		cs->digest_next = now + MS_TO_MONO(cs->p.digest_interval_ms);
	}
	size_t len = 0;
	if (tlvw_finish(&w, &len) != 0) /* RECS_CAP makes this unreachable */
		emit(cs, out, CTS_LVL_ERROR, "core.invariant", "ctsync_msg_too_large=1");
	s->len = (uint16_t)len;
	s->mseq = mseq;
	cs->rec_total += (uint64_t)cs->st.n;
	s->rec_end = cs->rec_total;
	s->count = cs->map.live;
	s->digest = cs->map.digest;
	s->closed_at = now;
	cs->st.n = 0;
	cs->st.len = 0;
	cs->st.begin = cs->st.end = false;
	pump(cs, out, now);
}

/* Append a record to the message being filled, coalescing with an unsent
 * record of the same key. Closes the message first when it is full. The
 * map is updated by the caller between prepare and append, so a message's
 * digest never includes the record that did not fit in it. */
static int stage_find(const struct ctsync *cs, uint64_t kh)
{
	for (int i = 0; i < cs->st.n; i++)
		if (cs->st.idx[i].kh == kh)
			return i;
	return -1;
}

static int stage_prepare(struct ctsync *cs, struct ctsync_actions *out,
			 uint64_t kh, size_t need, mono_t now)
{
	int i = stage_find(cs, kh);
	size_t free_after = RECS_CAP - cs->st.len + (i >= 0 ? cs->st.idx[i].len : 0);
	if (need > free_after || (i < 0 && cs->st.n >= STAGE_IDX_MAX)) {
		stage_close(cs, out, now, false);
		return -1;
	}
	return i;
}

static void stage_append(struct ctsync *cs, int i, uint64_t kh,
			 const struct ctrec *r, bool bulk, mono_t now)
{
	if (i >= 0) {
		/* drop the older record of this key */
		uint16_t off = cs->st.idx[i].off, len = cs->st.idx[i].len;
		if (cs->st.recs[off] & REC_BULK)
			cs->bulk_recs--; /* the END total counts what is sent */
		memmove(cs->st.recs + off, cs->st.recs + off + len,
			cs->st.len - off - len);
		cs->st.len -= len;
		for (int k = i; k + 1 < cs->st.n; k++) {
			cs->st.idx[k] = cs->st.idx[k + 1];
			cs->st.idx[k].off = (uint16_t)(cs->st.idx[k].off - len);
		}
		cs->st.n--;
		cs->ctr.coalesced++;
	}
	if (stage_empty(cs))
		cs->st.since = now;
	rec_put(cs->st.recs + cs->st.len, r, bulk);
	cs->st.idx[cs->st.n].off = (uint16_t)cs->st.len;
	cs->st.idx[cs->st.n].len = (uint16_t)rec_size(r);
	cs->st.idx[cs->st.n].kh = kh;
	cs->st.n++;
	cs->st.len += rec_size(r);
	cs->digest_dirty = true;
}

static void admit(struct ctsync *cs, struct ctsync_actions *out, int x)
{
	struct cpeer *p = &cs->peers[x];
	p->state = CTS_P_BULK;
	p->base = cs->bulk_begin;
	p->acked = cs->bulk_begin - 1;
	p->next_send = cs->bulk_begin;
	p->high_sent = cs->head;
	p->sack = 0;
	p->need_gen = cs->bulk_gen;
	p->sync_at = 0;
	p->retries = 0;
	p->stalled = false;
	p->rto_at = MONO_NEVER;
	p->cwnd = CWND_INIT < cs->p.window_msgs_max ? CWND_INIT : cs->p.window_msgs_max;
	p->ssthresh = cs->p.window_msgs_max;
	p->cwnd_acc = 0;
	p->recovery = false;
	p->rtt_mseq = 0;
	emit(cs, out, CTS_LVL_INFO, "ctsync.peer", "peer=%d state=bulk gen=%u base=%llu",
	     x, cs->bulk_gen, (unsigned long long)p->base);
}

static bool bulk_needed(const struct ctsync *cs)
{
	if (cs->bulk_want)
		return true;
	for (int x = 0; x < cs->p.n_nodes; x++) {
		const struct cpeer *p = &cs->peers[x];
		if (x != cs->p.self && p->alive && !p->mute &&
		    (p->state == CTS_P_WAIT || (p->state == CTS_P_BULK && !p->need_gen)))
			return true;
	}
	return false;
}

static void bulk_start(struct ctsync *cs, struct ctsync_actions *out,
		       mono_t now)
{
	stage_close(cs, out, now, false);
	bool all = cs->bulk_want_all;
	int reason = cs->bulk_reason;
	cs->bulk_want = cs->bulk_want_all = false;
	cs->bulk_reason = R_NONE;
	cs->bulk_gen++;
	cs->mgen++;
	/* No pass over the map: an lmark of an earlier bulk never equals the
	 * new mgen, and tombstones were resolved when that bulk ended or was
	 * abandoned. (A pass over 2M slots is tens of ms on a busy machine.) */
	cs->bulk_active = true;
	cs->bulk_paused = false;
	cs->bulk_recs = 0;
	cs->bulk_begin = cs->head + 1;
	cs->ctr.bulks++;
	cs->st.begin = true;
	cs->st.begin_flags = all ? BEGIN_RESYNC_ALL : 0;
	cs->st.since = now;
	for (int x = 0; x < cs->p.n_nodes; x++) {
		struct cpeer *p = &cs->peers[x];
		if (x == cs->p.self || !p->alive)
			continue;
		if (p->state == CTS_P_WAIT && !p->mute) {
			admit(cs, out, x);
		} else if (p->state == CTS_P_BULK && !p->need_gen) {
			p->need_gen = cs->bulk_gen;
		} else if (p->state == CTS_P_SYNC && all) {
			p->state = CTS_P_BULK;
			p->need_gen = cs->bulk_gen;
			p->sync_at = 0;
		}
	}
	struct ctsync_act *a = act_add(out, CTS_ACT_DUMP_BEGIN);
	if (a)
		a->u.gen = cs->bulk_gen;
	emit(cs, out, CTS_LVL_INFO, "ctsync.bulk",
	     "phase=begin gen=%u reason=%s all=%d", cs->bulk_gen,
	     reason_name[reason], all);
}

/* Start a bulk when one is needed; while one runs, let a joining
 * secondary in at its BEGIN as long as that message is still in the log
 * (the stream from BEGIN on is the same for everyone), so a node that
 * appears just after a dump began does not wait for a second dump. */
static void bulk_service(struct ctsync *cs, struct ctsync_actions *out,
			 mono_t now)
{
	if (cs->role != CTS_PRIMARY)
		return;
	if (!cs->bulk_active) {
		if (bulk_needed(cs))
			bulk_start(cs, out, now);
		return;
	}
	if (cs->bulk_begin < cs->tail)
		return;
	for (int x = 0; x < cs->p.n_nodes; x++)
		if (x != cs->p.self && cs->peers[x].alive &&
		    cs->peers[x].state == CTS_P_WAIT && !cs->peers[x].mute) {
			admit(cs, out, x);
			pump_peer(cs, out, x, now);
		}
}

static void bulk_abandon(struct ctsync *cs);

/* --- primary entry points ---------------------------------------------------- */

void ctsync_prefetch(const struct ctsync *cs, const uint8_t *key, size_t key_len)
{
	if (key_len < 1 || key_len > CTREC_KEY_MAX)
		return;
	__builtin_prefetch(&cs->map.e[key_hash(key, key_len) & cs->map.mask]);
}

int ctsync_local(struct ctsync *cs, const struct ctrec *r, mono_t now,
		 struct ctsync_actions *out)
{
	if (!rec_valid(r))
		return TND_EINVAL;
	if (cs->role != CTS_PRIMARY)
		return TND_EREFUSED;
	uint64_t kh = key_hash(r->key, r->key_len);
	int i = stage_prepare(cs, out, kh, rec_size(r), now);
	struct ment *e;
	if (r->op == CTREC_UPSERT) {
		e = map_set(&cs->map, kh, r->stable_hash, cs->mgen);
		if (!e)
			note_map_full(cs, out);
		else if (cs->bulk_active)
			e->lmark = cs->mgen;
	} else {
		e = map_find(&cs->map, kh);
		if (e && cs->bulk_active) {
			if (ment_live(e)) {
				cs->map.live--;
				cs->map.digest -= e->sh;
			}
			e->lmark = cs->mgen | TOMB;
		} else if (e) {
			map_remove(&cs->map, e);
		} else if (cs->bulk_active) {
			e = map_insert(&cs->map, kh);
			if (e)
				e->lmark = cs->mgen | TOMB;
			else
				note_map_full(cs, out);
		}
	}
	stage_append(cs, i, kh, r, false, now);
	cs->ctr.local_recs++;
	return 0;
}

int ctsync_overrun(struct ctsync *cs, mono_t now, struct ctsync_actions *out)
{
	if (cs->role != CTS_PRIMARY)
		return TND_EREFUSED;
	cs->ctr.overruns++;
	emit(cs, out, CTS_LVL_WARN, "ctsync.resync",
	     "reason=overrun scope=all kernel_events_lost=1");
	/* The stream no longer equals the kernel from here on: a running
	 * bulk is restarted (its dump may have missed the lost changes too),
	 * so the RESYNC_ALL begin marker sits right at the loss. */
	if (cs->bulk_active) {
		bulk_abandon(cs);
		emit(cs, out, CTS_LVL_WARN, "ctsync.bulk",
		     "phase=restarted gen=%u reason=overrun", cs->bulk_gen);
	}
	cs->bulk_reason = R_OVERRUN;
	cs->bulk_want = cs->bulk_want_all = true;
	cs->ctr.resyncs++;
	bulk_service(cs, out, now);
	return 0;
}

int ctsync_bulk_rec(struct ctsync *cs, const struct ctrec *r, mono_t now,
		    struct ctsync_actions *out)
{
	if (cs->role != CTS_PRIMARY || !cs->bulk_active)
		return TND_EREFUSED;
	if (!rec_valid(r) || r->op != CTREC_UPSERT)
		return TND_EINVAL;
	if (ctsync_bulk_room(cs) == 0) {
		cs->bulk_paused = true;
		return TND_ENOSPC;
	}
	uint64_t kh = key_hash(r->key, r->key_len);
	struct ment *e = map_find(&cs->map, kh);
	if (e && (e->lmark & ~TOMB) == cs->mgen) {
		/* An event for this key since the bulk began carried newer
		 * (or equal) state. */
		cs->ctr.bulk_skipped++;
		return 0;
	}
	int i = stage_prepare(cs, out, kh, rec_size(r), now);
	if (!map_set(&cs->map, kh, r->stable_hash, cs->mgen))
		note_map_full(cs, out);
	stage_append(cs, i, kh, r, true, now);
	cs->bulk_recs++;
	cs->ctr.bulk_recs++;
	return 0;
}

static void bulk_finish(struct ctsync *cs, struct ctsync_actions *out,
			mono_t now)
{
	bulk_service(cs, out, now);
}

int ctsync_bulk_end(struct ctsync *cs, mono_t now, struct ctsync_actions *out)
{
	if (cs->role != CTS_PRIMARY || !cs->bulk_active)
		return TND_EREFUSED;
	uint64_t swept = map_sweep(&cs->map, cs->mgen);
	cs->bulk_last_total = cs->bulk_recs;
	cs->st.end = true;
	cs->bulk_active = false;
	stage_close(cs, out, now, false);
	for (int x = 0; x < cs->p.n_nodes; x++) {
		struct cpeer *p = &cs->peers[x];
		if (x != cs->p.self && p->state == CTS_P_BULK &&
		    p->need_gen == cs->bulk_gen)
			p->sync_at = cs->head;
	}
	emit(cs, out, CTS_LVL_INFO, "ctsync.bulk",
	     "phase=end gen=%u total=%llu skipped_stale=%llu count=%llu",
	     cs->bulk_gen, (unsigned long long)cs->bulk_recs,
	     (unsigned long long)swept, (unsigned long long)cs->map.live);
	bulk_finish(cs, out, now);
	return 0;
}

/* Give up the running bulk: no END, so no sweep anywhere; tombstones are
 * resolved now and the peers that waited for it wait for the next one. */
static void bulk_abandon(struct ctsync *cs)
{
	cs->bulk_active = false;
	map_clear_lmarks(&cs->map);
	for (uint64_t i = 0; i <= cs->map.mask; i++)
		while (cs->map.e[i].kh && (cs->map.e[i].lmark & TOMB))
			map_remove(&cs->map, &cs->map.e[i]);
	for (int x = 0; x < cs->p.n_nodes; x++) {
		struct cpeer *p = &cs->peers[x];
		if (x != cs->p.self && p->state == CTS_P_BULK &&
		    p->need_gen == cs->bulk_gen)
			p->need_gen = 0;
	}
}

int ctsync_bulk_fail(struct ctsync *cs, mono_t now, struct ctsync_actions *out)
{
	if (cs->role != CTS_PRIMARY || !cs->bulk_active)
		return TND_EREFUSED;
	bulk_abandon(cs);
	emit(cs, out, CTS_LVL_WARN, "ctsync.bulk", "phase=failed gen=%u",
	     cs->bulk_gen);
	if (!cs->bulk_want)
		cs->bulk_reason = R_FAILED;
	cs->bulk_want = true;
	bulk_service(cs, out, now);
	return 0;
}

/* --- secondary ----------------------------------------------------------------- */

static void rx_reset(struct ctsync *cs)
{
	cs->f_inc = 0;
	cs->f_stream = 0;
	cs->base = cs->next = cs->head_seen = 0;
	for (uint32_t i = 0; i < cs->p.window_msgs_max; i++)
		cs->rbuf[i].mseq = 0;
	cs->synced = false;
	cs->need_bulk = true;
	cs->need_reason = R_JOIN;
	cs->bulk_rx_active = false;
	cs->rx_bulk_recs = 0;
	cs->unacked = 0;
}

static void send_ack(struct ctsync *cs, struct ctsync_actions *out, mono_t now)
{
	if (cs->primary < 0 || cs->primary == cs->p.self)
		return;
	struct ctsync_act *a = act_add(out, CTS_ACT_SEND);
	if (!a)
		return;
	struct wire_hdr h;
	hdr_fill(cs, &h, CTS_MSG_ACK);
	uint8_t *b = a->u.send.pkt + WIRE_HDR_LEN, *p = b + 4;
	wire_put16(b, T_ACK);
	wire_put16(b + 2, ACK_LEN);
	uint64_t sack = 0;
	if (cs->f_stream)
		for (uint64_t d = 0; d < 64 && d + 1 < cs->p.window_msgs_max; d++) {
			uint64_t m = cs->next + 1 + d;
			if (cs->rbuf[m % cs->p.window_msgs_max].mseq == m)
				sack |= 1ULL << d;
		}
	uint8_t flags = 0;
	if (cs->need_bulk)
		flags |= AF_NEED_BULK;
	if (cs->synced)
		flags |= AF_SYNCED;
	if (ctsync_in_sync(cs, now))
		flags |= AF_IN_SYNC;
	wire_put64(p, cs->f_inc);
	wire_put32(p + 8, cs->f_stream);
	wire_put32(p + 12, cs->rx_epoch);
	wire_put64(p + 16, cs->next ? cs->next - 1 : 0);
	wire_put64(p + 24, sack);
	wire_put32(p + 32, cs->rx_gen);
	p[36] = flags;
	p[37] = (uint8_t)cs->need_reason;
	wire_put64(p + 38, cs->map.live);
	wire_put64(p + 46, cs->rx_bulk_recs);
	h.body_len = 4 + ACK_LEN;
	wire_hdr_encode(&h, a->u.send.pkt);
	a->u.send.len = WIRE_HDR_LEN + h.body_len;
	a->u.send.to = cs->primary;
	a->u.send.link = 0;
	cs->ctr.acks_tx++;
	cs->ctr.tx_bytes += a->u.send.len;
	cs->unacked = 0;
	cs->ooo_unacked = 0;
	cs->ack_due = MONO_NEVER;
	cs->hello_at = now + MS_TO_MONO(cs->need_bulk || !cs->f_stream ?
					cs->p.resend_ms * 4 : cs->p.keepalive_ms);
}

static void want_resync(struct ctsync *cs, struct ctsync_actions *out,
			int reason)
{
	cs->synced = false;
	cs->need_bulk = true;
	cs->need_reason = reason;
	emit(cs, out, CTS_LVL_WARN, "ctsync.resync", "reason=%s primary=%d",
	     reason_name[reason], cs->primary);
}

/* Apply one decoded, validated message (markers in their fixed order). */
static void apply_msg(struct ctsync *cs, struct ctsync_actions *out,
		      const struct data_msg *m)
{
	if (m->has_begin) {
		cs->mgen++;
		cs->rx_gen = m->begin_gen;
		cs->sweep_gen = cs->mgen;
		cs->bulk_rx_active = true;
		cs->rx_bulk_recs = 0;
		cs->rx_bulk_total = 0;
		cs->need_bulk = false;
		cs->need_reason = R_NONE;
		if (m->begin_flags & BEGIN_RESYNC_ALL)
			cs->synced = false;
		emit(cs, out, CTS_LVL_INFO, "ctsync.bulk", "phase=begin gen=%u primary=%d",
		     m->begin_gen, cs->primary);
	}
	/* Hash every key first and prefetch its map slot: the map is far
	 * larger than the caches, and the loads then overlap instead of
	 * stalling one after the other. Records were validated on arrival. */
	uint64_t khs[STAGE_IDX_MAX];
	int nk = 0;
	for (size_t o = 0; o + REC_HDR <= m->recs_len && nk < STAGE_IDX_MAX; nk++) {
		const uint8_t *p = m->recs + o;
		khs[nk] = key_hash(p + REC_HDR, p[1]);
		__builtin_prefetch(&cs->map.e[khs[nk] & cs->map.mask]);
		o += REC_HDR + (size_t)p[1] + p[2];
	}
	size_t off = 0;
	struct ctrec rec;
	bool bulk = false;
	for (int i = 0; off < m->recs_len; i++) {
		off += rec_get(m->recs + off, m->recs_len - off, &rec, &bulk);
		uint64_t kh = i < nk ? khs[i] : key_hash(rec.key, rec.key_len);
		if (rec.op == CTREC_UPSERT) {
			if (!map_set(&cs->map, kh, rec.stable_hash, cs->mgen))
				note_map_full(cs, out);
		} else {
			struct ment *e = map_find(&cs->map, kh);
			if (e)
				map_remove(&cs->map, e);
		}
		if (bulk && cs->bulk_rx_active)
			cs->rx_bulk_recs++;
		struct ctsync_act *a = act_add(out, CTS_ACT_APPLY);
		if (a)
			a->u.apply = rec;
		cs->ctr.applied++;
	}
	if (m->has_end && cs->bulk_rx_active && m->end_gen == cs->rx_gen) {
		cs->bulk_rx_active = false;
		cs->rx_bulk_total = m->end_total;
		if (m->end_total != cs->rx_bulk_recs) {
			want_resync(cs, out, R_BULK_COUNT);
		} else {
			uint64_t swept = map_sweep(&cs->map, cs->sweep_gen);
			struct ctsync_act *a = act_add(out, CTS_ACT_SWEEP);
			if (a)
				a->u.gen = m->end_gen;
			cs->synced = true;
			cs->need_bulk = false;
			cs->need_reason = R_NONE;
			emit(cs, out, CTS_LVL_INFO, "ctsync.bulk",
			     "phase=end gen=%u received=%llu swept=%llu count=%llu",
			     m->end_gen, (unsigned long long)m->end_total,
			     (unsigned long long)swept,
			     (unsigned long long)cs->map.live);
		}
	}
	if (m->has_digest && cs->synced && cs->map.used < cs->map.max) {
		if (m->d_count == cs->map.live && m->d_digest == cs->map.digest) {
			cs->last_digest = CTS_DIGEST_OK;
			cs->ctr.digest_ok++;
		} else {
			cs->last_digest = CTS_DIGEST_MISMATCH;
			cs->ctr.digest_bad++;
			emit(cs, out, CTS_LVL_WARN, "ctsync.digest",
			     "result=mismatch primary_count=%llu count=%llu",
			     (unsigned long long)m->d_count,
			     (unsigned long long)cs->map.live);
			want_resync(cs, out, R_DIGEST);
		}
	}
}

/* Apply buffered messages in order while the action list has room. */
static void apply_ready(struct ctsync *cs, struct ctsync_actions *out,
			mono_t now)
{
	uint32_t w = cs->p.window_msgs_max;
	struct data_msg m;
	for (;;) {
		struct rslot *r = &cs->rbuf[cs->next % w];
		if (r->mseq != cs->next || !room(out, r->nrec + 8))
			return;
		decode_data(r->body, r->len, &m); /* validated on arrival */
		apply_msg(cs, out, &m);
		r->mseq = 0;
		cs->next++;
		cs->unacked++;
		uint32_t every = (w + 3) / 4 < ACK_EVERY_MSGS ? (w + 3) / 4 : ACK_EVERY_MSGS;
		if (cs->unacked >= every)
			send_ack(cs, out, now);
	}
}

static int recv_data(struct ctsync *cs, const struct wire_hdr *h,
		     const uint8_t *body, size_t len, mono_t now,
		     struct ctsync_actions *out)
{
	struct data_msg m;
	if (decode_data(body, len, &m) < 0) {
		cs->ctr.rx_malformed++;
		return TND_EINVAL;
	}
	if (cs->role != CTS_SECONDARY || h->sender != cs->primary) {
		cs->ctr.rx_not_primary++;
		return TND_EREFUSED;
	}
	struct cpeer *pp = &cs->peers[h->sender];
	int rc = replay_check(pp, h);
	bool older = cs->f_stream && (h->incarnation < cs->f_inc ||
		(h->incarnation == cs->f_inc && m.stream < cs->f_stream));
	if (rc < 0 || older) {
		cs->ctr.rx_stale++;
		return rc < 0 ? rc : TND_EREPLAY;
	}
	if (m.mseq && m.mseq - m.base >= (1ULL << 62)) {
		cs->ctr.rx_malformed++;
		return TND_EINVAL;
	}
	replay_commit(pp, h);
	cs->ctr.rx_msgs++;
	if (!cs->f_stream || h->incarnation != cs->f_inc || m.stream != cs->f_stream) {
		if (m.mseq == 0 && !m.base)
			return 0;
		rx_reset(cs);
		cs->f_inc = h->incarnation;
		cs->f_stream = m.stream;
		cs->base = cs->next = m.base;
		emit(cs, out, CTS_LVL_INFO, "ctsync.stream",
		     "primary=%d stream=%u base=%llu", h->sender, m.stream,
		     (unsigned long long)m.base);
	} else if (m.base > cs->base) {
		/* The primary restarted our stream (overrun or our reset). */
		uint64_t f_inc = cs->f_inc;
		uint32_t f_stream = cs->f_stream;
		rx_reset(cs);
		cs->f_inc = f_inc;
		cs->f_stream = f_stream;
		cs->base = cs->next = m.base;
		emit(cs, out, CTS_LVL_INFO, "ctsync.stream",
		     "primary=%d stream=%u rebase=%llu", h->sender, m.stream,
		     (unsigned long long)m.base);
	}
	cs->last_rx = now;
	if (m.head > cs->head_seen)
		cs->head_seen = m.head;
	uint32_t w = cs->p.window_msgs_max;
	if (m.mseq == 0) {
		send_ack(cs, out, now);
		return 0;
	}
	if (m.mseq < cs->next) {
		cs->ctr.rx_dup++;
		send_ack(cs, out, now);
		return 0;
	}
	if (m.mseq >= cs->next + w) {
		cs->ctr.rx_window++;
		send_ack(cs, out, now);
		return 0;
	}
	struct rslot *r = &cs->rbuf[m.mseq % w];
	if (r->mseq == m.mseq) {
		cs->ctr.rx_dup++;
	} else {
		r->mseq = m.mseq;
		r->len = (uint16_t)len;
		r->nrec = (uint16_t)m.nrec;
		memcpy(r->body, body, len);
	}
	apply_ready(cs, out, now);
	/* A gap left by a loss: once DUPTHRESH messages wait beyond it, the
	 * selective ack tells the primary at once (it resends the hole
	 * without waiting for its timer). */
	if (m.mseq > cs->next && ++cs->ooo_unacked >= DUPTHRESH)
		send_ack(cs, out, now);
	if (cs->unacked && cs->ack_due == MONO_NEVER)
		cs->ack_due = now + MS_TO_MONO(cs->p.ack_delay_ms);
	return 0;
}

/* --- primary: acks ------------------------------------------------------------ */

/* An ack advanced by adv messages while `inflight` were outstanding. The
 * window grows only while it is what limits the sender (RFC 7661), so a
 * quiet period does not leave a large window that one burst would then
 * overflow. */
static void cwnd_grow(const struct ctsync *cs, struct cpeer *p, uint64_t adv,
		      uint64_t inflight)
{
	uint32_t max = cs->p.window_msgs_max;
	if (p->recovery || inflight * 2 < p->cwnd)
		return;
	if (p->cwnd < p->ssthresh) {
		uint64_t c = p->cwnd + adv;
		p->cwnd = c > max ? max : (uint32_t)c;
		return;
	}
	p->cwnd_acc += (uint32_t)(adv > max ? max : adv);
	while (p->cwnd_acc >= p->cwnd && p->cwnd < max) {
		p->cwnd_acc -= p->cwnd;
		p->cwnd++;
	}
	if (p->cwnd >= max)
		p->cwnd_acc = 0;
}

/* Loss detection from the selective ack: DUPTHRESH messages received
 * beyond a hole make the hole lost (a LAN does not reorder that much).
 * The holes below the highest selectively acked message are resent at
 * once, each once per recovery, and the window halves once per recovery;
 * the resend timer stays for losses this cannot see. */
static void loss_detect(struct ctsync *cs, struct ctsync_actions *out, int x,
			mono_t now)
{
	struct cpeer *p = &cs->peers[x];
	if (p->recovery && p->acked >= p->recover)
		p->recovery = false;
	if (!p->sack)
		return;
	uint64_t high = p->acked + 2 + (uint64_t)(63 - __builtin_clzll(p->sack));
	if (!p->recovery) {
		if (__builtin_popcountll(p->sack) < DUPTHRESH)
			return;
		p->recovery = true;
		p->recover = p->high_sent;
		p->rtx_high = p->acked;
		uint32_t w = peer_window(cs, p) / 2; /* what was in use, halved */
		p->ssthresh = w < CWND_MIN ? CWND_MIN : w;
		p->cwnd = p->ssthresh;
		p->cwnd_acc = 0;
		cs->ctr.losses++;
	}
	uint64_t m = p->rtx_high > p->acked ? p->rtx_high + 1 : p->acked + 1;
	for (; m < high && m < p->next_send; m++) {
		if (sacked(p, m))
			continue;
		if (!room(out, 8))
			break;
		send_data(cs, out, x, m, now);
		p->rtx_high = m;
	}
	if (m > p->rtx_high + 1 && m <= high)
		p->rtx_high = m - 1;
}

static int recv_ack(struct ctsync *cs, const struct wire_hdr *h,
		    const uint8_t *body, size_t len, mono_t now,
		    struct ctsync_actions *out)
{
	struct ack_msg a;
	if (decode_ack(body, len, &a) < 0) {
		cs->ctr.rx_malformed++;
		return TND_EINVAL;
	}
	if (cs->role != CTS_PRIMARY) {
		cs->ctr.rx_stale++;
		return TND_EREFUSED;
	}
	struct cpeer *p = &cs->peers[h->sender];
	int x = h->sender;
	bool ours = a.inc == cs->p.incarnation && a.stream == cs->stream;
	if (ours && a.ack > cs->head) {
		cs->ctr.rx_malformed++;
		return TND_EINVAL;
	}
	int rc = replay_check(p, h);
	if (rc < 0) {
		cs->ctr.rx_stale++;
		return rc;
	}
	bool restarted = p->seq_any && h->incarnation > p->inc;
	replay_commit(p, h);
	cs->ctr.acks_rx++;
	if (p->mute) { /* it answers again: its bulk may start */
		p->mute = false;
		emit(cs, out, CTS_LVL_INFO, "ctsync.peer", "peer=%d answering=1", x);
		bulk_service(cs, out, now);
	}
	if (restarted) {
		p->rx_epoch = 0;
		if (p->state != CTS_P_IDLE)
			peer_wait(cs, out, x, R_RESTART);
	}
	if (!p->alive) {
		p->alive = true;
		p->state = CTS_P_IDLE;
	}
	if (p->state == CTS_P_IDLE) {
		p->rx_epoch = a.rx_epoch;
		peer_wait(cs, out, x, R_JOIN);
		bulk_service(cs, out, now);
		return 0;
	}
	if (a.rx_epoch < p->rx_epoch)
		return 0; /* from before the peer's last reset */
	if (a.rx_epoch > p->rx_epoch) {
		p->rx_epoch = a.rx_epoch;
		if (p->state != CTS_P_WAIT)
			peer_wait(cs, out, x, R_JOIN);
		bulk_service(cs, out, now);
		return 0;
	}
	if (!ours || !in_stream(p))
		return 0; /* its stream starts with the next bulk */
	p->count = a.count;
	p->bulk_rx = a.bulk_rx;
	p->flags = a.flags;
	p->reason = a.reason;
	if (a.ack > p->acked) {
		cwnd_grow(cs, p, a.ack - p->acked,
			  p->next_send > p->acked + 1 ? p->next_send - 1 - p->acked : 0);
		p->acked = a.ack;
		p->sack = a.sack;
		if (p->rtt_mseq && a.ack >= p->rtt_mseq)
			rtt_sample(p, now);
		p->retries = 0;
		if (p->stalled)
			emit(cs, out, CTS_LVL_INFO, "ctsync.peer", "peer=%d stalled=0", x);
		p->stalled = false;
		if (p->next_send <= p->acked)
			p->next_send = p->acked + 1;
		p->rto_at = p->acked + 1 < p->next_send ? now + peer_rto(cs, p) : MONO_NEVER;
	} else if (a.ack == p->acked) {
		p->sack |= a.sack;
	}
	if (in_stream(p) && !p->stalled)
		loss_detect(cs, out, x, now);
	if (p->state == CTS_P_BULK && p->sync_at && p->acked >= p->sync_at) {
		p->state = CTS_P_SYNC;
		emit(cs, out, CTS_LVL_INFO, "ctsync.peer",
		     "peer=%d state=sync count=%llu", x, (unsigned long long)a.count);
	}
	if ((a.flags & AF_NEED_BULK) && p->state == CTS_P_SYNC &&
	    a.gen >= cs->bulk_gen) {
		int reason = a.reason < sizeof(reason_name) / sizeof(reason_name[0]) ?
			a.reason : R_DIGEST;
		emit(cs, out, CTS_LVL_WARN, "ctsync.resync", "peer=%d reason=%s",
		     x, reason_name[reason]);
		p->state = CTS_P_BULK;
		/* A bulk it saw begin ends with its sweep: that one will do. */
		p->need_gen = cs->bulk_active ? cs->bulk_gen : 0;
		p->sync_at = 0;
		cs->ctr.resyncs++;
		if (!cs->bulk_active && !cs->bulk_want)
			cs->bulk_reason = reason;
		bulk_service(cs, out, now);
	}
	pump_peer(cs, out, x, now);
	maybe_resume(cs, out);
	return 0;
}

int ctsync_recv(struct ctsync *cs, const struct wire_hdr *h,
		const uint8_t *body, size_t len, mono_t now,
		struct ctsync_actions *out)
{
	if (!h || !body || h->sender >= cs->p.n_nodes || h->sender == cs->p.self ||
	    h->cluster_id != cs->p.cluster_id || len > WIRE_BODY_MAX ||
	    !(h->seq & CTS_SEQ_SPACE)) {
		cs->ctr.rx_malformed++;
		return TND_EINVAL;
	}
	switch (h->type) {
	case CTS_MSG_DATA:
		return recv_data(cs, h, body, len, now, out);
	case CTS_MSG_ACK:
		return recv_ack(cs, h, body, len, now, out);
	default:
		cs->ctr.rx_malformed++;
		return TND_EINVAL;
	}
}

/* --- roles, peers, time -------------------------------------------------------- */

int ctsync_set_role(struct ctsync *cs, int primary_node, mono_t now,
		    struct ctsync_actions *out)
{
	if (primary_node != TND_NO_NODE &&
	    (primary_node < 0 || primary_node >= cs->p.n_nodes))
		return TND_EINVAL;
	if (primary_node == cs->primary)
		return 0;
	enum ctsync_role was = cs->role;
	int from = cs->primary;
	cs->primary = primary_node;
	if (was == CTS_PRIMARY) {
		cs->bulk_active = cs->bulk_want = cs->bulk_want_all = false;
		cs->st.n = 0;
		cs->st.len = 0;
		cs->st.begin = cs->st.end = false;
		map_clear_lmarks(&cs->map);
		for (uint64_t i = 0; i <= cs->map.mask; i++)
			while (cs->map.e[i].kh && (cs->map.e[i].lmark & TOMB))
				map_remove(&cs->map, &cs->map.e[i]);
	}
	for (int x = 0; x < cs->p.n_nodes; x++) {
		struct cpeer *p = &cs->peers[x];
		p->state = CTS_P_IDLE;
		p->stalled = false;
		p->mute = false;
		p->rto_at = MONO_NEVER;
	}
	if (primary_node == cs->p.self) {
		cs->role = CTS_PRIMARY;
		cs->stream++;
		cs->head = 0;
		cs->tail = 1;
		cs->rec_total = 0;
		rx_reset(cs);
		cs->need_bulk = false;
		cs->ack_due = cs->hello_at = MONO_NEVER;
		cs->digest_next = now;
		/* Our own map may not be our kernel (a restart starts empty):
		 * every stream begins with a bulk, even with no secondary. */
		for (int x = 0; x < cs->p.n_nodes; x++)
			if (x != cs->p.self && cs->peers[x].alive)
				cs->peers[x].state = CTS_P_WAIT;
		cs->bulk_want = true;
		cs->bulk_reason = R_ROLE;
		emit(cs, out, CTS_LVL_INFO, "ctsync.role", "to=primary stream=%u from_primary=%d",
		     cs->stream, from);
		bulk_service(cs, out, now);
	} else if (primary_node == TND_NO_NODE) {
		cs->role = CTS_IDLE;
		rx_reset(cs);
		cs->ack_due = cs->hello_at = MONO_NEVER;
		emit(cs, out, CTS_LVL_INFO, "ctsync.role", "to=idle");
	} else {
		cs->role = CTS_SECONDARY;
		rx_reset(cs);
		cs->rx_epoch++;
		cs->last_digest = CTS_DIGEST_NONE;
		emit(cs, out, CTS_LVL_INFO, "ctsync.role", "to=secondary primary=%d",
		     primary_node);
		send_ack(cs, out, now); /* hello: asks for a bulk */
	}
	return 0;
}

int ctsync_peer(struct ctsync *cs, int node, bool alive, mono_t now,
		struct ctsync_actions *out)
{
	if (node < 0 || node >= cs->p.n_nodes || node == cs->p.self)
		return TND_EINVAL;
	struct cpeer *p = &cs->peers[node];
	if (p->alive == alive)
		return 0;
	p->alive = alive;
	p->mute = false;
	if (cs->role == CTS_PRIMARY) {
		if (alive) {
			peer_wait(cs, out, node, R_JOIN);
			bulk_service(cs, out, now);
		} else {
			if (p->state != CTS_P_IDLE)
				emit(cs, out, CTS_LVL_INFO, "ctsync.peer",
				     "peer=%d state=idle reason=lost", node);
			p->state = CTS_P_IDLE;
			p->rto_at = MONO_NEVER;
		}
	} else if (cs->role == CTS_SECONDARY && node == cs->primary && alive) {
		send_ack(cs, out, now);
	}
	return 0;
}

int ctsync_tick(struct ctsync *cs, mono_t now, struct ctsync_actions *out)
{
	if (cs->role == CTS_PRIMARY) {
		if (!stage_empty(cs) && now >= cs->st.since + MS_TO_MONO(cs->p.batch_ms))
			stage_close(cs, out, now, false);
		else if (stage_empty(cs) && cs->digest_dirty && now >= cs->digest_next &&
			 !cs->bulk_active)
			stage_close(cs, out, now, true);
		bulk_service(cs, out, now);
		for (int x = 0; x < cs->p.n_nodes; x++) {
			struct cpeer *p = &cs->peers[x];
			if (x == cs->p.self || !p->alive || !in_stream(p))
				continue;
			if (now >= p->rto_at && p->acked + 1 < p->next_send) {
				p->retries++;
				if (p->retries > cs->p.retries_max && !p->stalled) {
					p->stalled = true;
					emit(cs, out, CTS_LVL_WARN, "ctsync.peer",
					     "peer=%d stalled=1 acked=%llu", x,
					     (unsigned long long)p->acked);
				}
				p->rto_at = now + peer_rto(cs, p) * (p->stalled ? 8 : 1);
				/* A timeout: what was in flight is lost or stuck;
				 * start again from a small window (RFC 5681 3.1). */
				uint64_t inflight = p->next_send - 1 - p->acked;
				p->ssthresh = inflight / 2 < CWND_MIN ? CWND_MIN : (uint32_t)(inflight / 2);
				p->cwnd = CWND_MIN;
				p->cwnd_acc = 0;
				p->recovery = false;
				cs->ctr.losses++;
				if (p->stalled) {
					/* one probe of the oldest message */
					if (room(out, 8))
						send_data(cs, out, x, p->acked + 1, now);
				} else {
					p->next_send = p->acked + 1;
				}
			} else if (now - p->last_tx >= MS_TO_MONO(cs->p.keepalive_ms) &&
				   room(out, 8)) {
				send_data(cs, out, x, 0, now);
			}
			pump_peer(cs, out, x, now);
		}
		maybe_resume(cs, out);
	} else if (cs->role == CTS_SECONDARY) {
		apply_ready(cs, out, now);
		if (now >= cs->ack_due || now >= cs->hello_at)
			send_ack(cs, out, now);
	}
	return 0;
}

mono_t ctsync_next_wake(const struct ctsync *cs)
{
	mono_t t = MONO_NEVER;
#define AT(x) do { if ((x) < t) t = (x); } while (0)
	if (cs->role == CTS_PRIMARY) {
		if (!stage_empty(cs))
			AT(cs->st.since + MS_TO_MONO(cs->p.batch_ms));
		if (cs->digest_dirty && !cs->bulk_active)
			AT(cs->digest_next);
		if (cs->bulk_paused && ctsync_bulk_room(cs) > 0)
			AT(0);
		for (int x = 0; x < cs->p.n_nodes; x++) {
			const struct cpeer *p = &cs->peers[x];
			if (x == cs->p.self || !p->alive || !in_stream(p))
				continue;
			if (p->acked + 1 < p->next_send)
				AT(p->rto_at);
			AT(p->last_tx + MS_TO_MONO(cs->p.keepalive_ms));
			uint64_t lim = p->acked + cs->p.window_msgs_max;
			if (!p->stalled && p->next_send <= cs->head && p->next_send <= lim)
				AT(0); /* sends left over from a full action list */
		}
	} else if (cs->role == CTS_SECONDARY) {
		AT(cs->ack_due);
		AT(cs->hello_at);
		if (cs->f_stream && cs->rbuf[cs->next % cs->p.window_msgs_max].mseq == cs->next)
			AT(0);
	}
#undef AT
	return t;
}

/* --- views ---------------------------------------------------------------- */

bool ctsync_fresh(const struct ctsync *cs, const uint8_t *key, size_t key_len)
{
	if (key_len < 1 || key_len > CTREC_KEY_MAX)
		return false;
	return ment_live(map_find(&cs->map, key_hash(key, key_len)));
}

bool ctsync_in_sync(const struct ctsync *cs, mono_t now)
{
	if (cs->role == CTS_PRIMARY)
		return true;
	if (cs->role != CTS_SECONDARY || !cs->f_stream || !cs->synced ||
	    cs->need_bulk || cs->last_digest == CTS_DIGEST_MISMATCH ||
	    cs->map.used >= cs->map.max)
		return false;
	if (now - cs->last_rx > 3 * MS_TO_MONO(cs->p.keepalive_ms))
		return false;
	return cs->head_seen < cs->next + cs->p.window_msgs_max;
}

void ctsync_status(const struct ctsync *cs, mono_t now, struct ctsync_status *o)
{
	memset(o, 0, sizeof(*o));
	o->role = cs->role;
	o->primary = cs->primary;
	o->in_sync = ctsync_in_sync(cs, now);
	o->incarnation = cs->p.incarnation;
	o->count = cs->map.live;
	o->digest = cs->map.digest;
	o->map_full = cs->map.used >= cs->map.max;
	o->ctr = cs->ctr;
	if (cs->role == CTS_PRIMARY) {
		o->stream = cs->stream;
		o->stream_incarnation = cs->p.incarnation;
		o->head = cs->head;
		o->tail = cs->tail;
		o->bulk.active = cs->bulk_active;
		o->bulk.gen = cs->bulk_gen;
		o->bulk.recs = cs->bulk_recs;
		o->bulk.total = cs->bulk_active ? 0 : cs->bulk_last_total;
		for (int x = 0; x < cs->p.n_nodes; x++) {
			const struct cpeer *p = &cs->peers[x];
			struct ctsync_peer_status *q = &o->peers[x];
			if (x == cs->p.self)
				continue;
			q->alive = p->alive;
			q->state = p->state;
			q->stalled = p->stalled || p->mute;
			q->cwnd = peer_window(cs, p);
			q->acked = p->acked;
			q->base = p->base;
			q->count = p->count;
			q->bulk_rx = p->bulk_rx;
			q->reported_in_sync = p->flags & AF_IN_SYNC;
			q->digest_bad = (p->flags & AF_NEED_BULK) && p->reason == R_DIGEST;
			if (!in_stream(p))
				continue;
			q->backlog_msgs = cs->head - p->acked;
			uint64_t done = p->acked >= cs->tail ?
				slot_of(cs, p->acked)->rec_end : 0;
			q->backlog_recs = cs->head ? slot_of(cs, cs->head)->rec_end - done : 0;
			q->lag_ms = p->acked < cs->head && p->acked + 1 >= cs->tail ?
				MONO_TO_MS(now - slot_of(cs, p->acked + 1)->closed_at) : 0;
			q->in_sync = p->alive && p->state == CTS_P_SYNC && !p->stalled &&
				q->reported_in_sync &&
				q->backlog_msgs <= cs->p.window_msgs_max;
		}
	} else {
		o->stream = cs->f_stream;
		o->stream_incarnation = cs->f_inc;
		o->head = cs->head_seen;
		o->applied_mseq = cs->next ? cs->next - 1 : 0;
		o->bulk.active = cs->bulk_rx_active;
		o->bulk.gen = cs->rx_gen;
		o->bulk.recs = cs->rx_bulk_recs;
		o->bulk.total = cs->rx_bulk_total;
		o->bulk.done = cs->synced;
	}
	o->last_digest = cs->last_digest;
}
