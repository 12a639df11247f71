/* ctsync.h - session-sync protocol core: replicates the primary's
 * connection-tracking table (struct ctrec, ctrec.h) to every secondary.
 *
 * Owns: the primary's update log and per-secondary send/ack state, the
 * secondary's in-order receive window, each side's compact key→stable_hash
 * map (for count and digest), bulk-sync generations, and the counters
 * `tandemctl sessions status` shows. It performs no I/O and reads no clock:
 * the driver hands it kernel events, received messages and `now`, and
 * performs the actions it emits (send a packet, apply a record to the local
 * kernel, start a dump of the local kernel, sweep stale kernel entries, log
 * an event). The design and its reasons are in ctsync.c's header comment.
 *
 * Wire: message types CTS_MSG_DATA and CTS_MSG_ACK (the 16..31 range that
 * wire.h reserves for session sync); header and TLVs as in wire.h. The
 * header's sequence numbers have the top bit set, a space disjoint from
 * node.c's counter, so the seal nonce (sender, incarnation, seq) of a
 * session-sync packet never equals a heartbeat's. */
#ifndef TND_CTSYNC_H
#define TND_CTSYNC_H

#include "types.h"
#include "wire.h"
#include "ctrec.h"

enum ctsync_msg {
	CTS_MSG_DATA = 16, /* primary → secondary: sequenced records and markers */
	CTS_MSG_ACK = 17,  /* secondary → primary: cumulative+selective ack, state */
};

/* TLVs of CTS_MSG_DATA (layouts in ctsync.c): CTL {stream u32, mseq u64,
 * base u64, head u64} in every message; BEGIN {gen u32, flags u8};
 * RECS {records: op|0x80 if bulk u8, key_len u8, val_len u8,
 * stable_hash u64, key, val}; END {gen u32, total u64};
 * DIGEST {count u64, digest u64}. CTS_MSG_ACK has one ACK TLV. */
enum ctsync_tlv {
	CTS_T_CTL = 1, CTS_T_BEGIN = 2, CTS_T_RECS = 3, CTS_T_END = 4,
	CTS_T_DIGEST = 5,
	CTS_T_ACK = 1,
};

#define CTS_SEQ_SPACE (1ULL << 63) /* header seq = CTS_SEQ_SPACE | counter */

struct ctsync_params {
	int self, n_nodes;
	uint8_t cluster_id;
	uint8_t proto;                /* wire protocol level to send */
	uint64_t incarnation;         /* as node.c's: grows at every start */
	/* Bounds. Memory is fixed at ctsync_new: about
	 * log_msgs_max * 1.45 KiB + window_msgs_max * 1.4 KiB
	 * + pow2(sessions_max * 4/3) * 24 bytes. */
	uint32_t log_msgs_max;        /* sent messages kept for resend */
	uint32_t window_msgs_max;     /* in flight per secondary; its reorder buffer */
	uint32_t sessions_max;        /* entries in the key→stable_hash map */
	uint32_t resend_ms;           /* resend unacked messages after this */
	uint32_t retries_max;         /* resends without progress before "stalled" */
	uint32_t digest_interval_ms;  /* digest marker at most this often */
	uint32_t ack_delay_ms;        /* secondary: delay of a cumulative ack */
	uint32_t keepalive_ms;        /* primary probes an idle secondary */
	uint32_t batch_ms;            /* primary: hold a partly filled message */
};
/* Sensible defaults for a gateway (1M sessions). */
void ctsync_params_default(struct ctsync_params *p);

enum ctsync_act_type {
	CTS_ACT_SEND,        /* seal and send `pkt` to node `to` on link 0 */
	CTS_ACT_APPLY,       /* secondary: upsert/delete `rec` in the kernel */
	CTS_ACT_DUMP_BEGIN,  /* primary: start dumping the kernel table into
	                      * ctsync_bulk_rec()/ctsync_bulk_end() */
	CTS_ACT_DUMP_RESUME, /* primary: room again after ctsync_bulk_rec
	                      * returned TND_ENOSPC; continue the dump */
	CTS_ACT_SWEEP,       /* secondary: bulk `gen` ended: for every kernel
	                      * entry, delete it unless ctsync_fresh() */
	CTS_ACT_EVENT,       /* log and record an event line */
};

enum ctsync_level { CTS_LVL_DEBUG, CTS_LVL_INFO, CTS_LVL_WARN, CTS_LVL_ERROR };

struct ctsync_act {
	enum ctsync_act_type type;
	union {
		struct {
			int to, link;
			size_t len;
			uint8_t pkt[WIRE_MTU];
		} send;
		struct ctrec apply;
		uint32_t gen; /* DUMP_BEGIN, SWEEP */
		struct {
			enum ctsync_level level;
			char name[32];
			char kv[192];
		} event;
	} u;
};

/* Enough for one full message's records plus sends; a step that would need
 * more leaves the rest for the next step and asks to be woken at once. */
#define CTS_ACTIONS_MAX 512
struct ctsync_actions {
	int n;
	int n_dropped;
	struct ctsync_act a[CTS_ACTIONS_MAX];
};
void ctsync_actions_reset(struct ctsync_actions *out);

struct ctsync;

/* NULL on bad parameters or when memory cannot be had (the only
 * allocations; nothing is allocated afterwards). */
struct ctsync *ctsync_new(const struct ctsync_params *p, mono_t now);
void ctsync_free(struct ctsync *cs);

/* Who feeds: `primary_node` == self makes this node the primary (a new
 * stream, every live secondary bulk-synced); another node makes this node
 * its secondary (it accepts that node's stream only); TND_NO_NODE: idle.
 * Taking the node and not a bool lets a secondary refuse a deposed
 * primary's late messages. */
int ctsync_set_role(struct ctsync *cs, int primary_node, mono_t now,
		    struct ctsync_actions *out);
/* A peer came up or went away (from the failure detector). */
int ctsync_peer(struct ctsync *cs, int node, bool alive, mono_t now,
		struct ctsync_actions *out);

/* Primary: a kernel event. Records of one key are coalesced while unsent. */
int ctsync_local(struct ctsync *cs, const struct ctrec *r, mono_t now,
		 struct ctsync_actions *out);
/* A hint: the driver will hand over a record of this key soon (a bulk
 * feed reads ahead): start loading its map slot into the cache. */
void ctsync_prefetch(const struct ctsync *cs, const uint8_t *key, size_t key_len);
/* Primary: the kernel's event buffer overran (events lost): resync all. */
int ctsync_overrun(struct ctsync *cs, mono_t now, struct ctsync_actions *out);
/* Primary: one entry of the dump asked for by CTS_ACT_DUMP_BEGIN. Returns
 * TND_ENOSPC (record not taken) when the log has no room: pause the dump
 * until CTS_ACT_DUMP_RESUME. TND_EREFUSED when no dump is expected. */
int ctsync_bulk_rec(struct ctsync *cs, const struct ctrec *r, mono_t now,
		    struct ctsync_actions *out);
int ctsync_bulk_end(struct ctsync *cs, mono_t now, struct ctsync_actions *out);
/* Primary: the dump failed; the bulk is abandoned (no sweep) and retried. */
int ctsync_bulk_fail(struct ctsync *cs, mono_t now, struct ctsync_actions *out);
/* Records the driver may feed now (0: wait for CTS_ACT_DUMP_RESUME). */
uint32_t ctsync_bulk_room(const struct ctsync *cs);
/* Primary: messages the log can still take before closing one would evict
 * a message that a live, progressing (not stalled) secondary has not
 * acknowledged, which would cost that secondary a bulk. A driver keeps
 * kernel events waiting in the kernel while this is low (backpressure);
 * 0 when not primary. */
uint32_t ctsync_log_room(const struct ctsync *cs);

/* An authenticated CTS_MSG_* message. Returns 0, or a negative tnd_err
 * when it was dropped (counted; nothing else changed). */
int ctsync_recv(struct ctsync *cs, const struct wire_hdr *h,
		const uint8_t *body, size_t len, mono_t now,
		struct ctsync_actions *out);
int ctsync_tick(struct ctsync *cs, mono_t now, struct ctsync_actions *out);
mono_t ctsync_next_wake(const struct ctsync *cs);

/* Secondary, while performing CTS_ACT_SWEEP: keep this kernel entry? */
bool ctsync_fresh(const struct ctsync *cs, const uint8_t *key, size_t key_len);
/* Election eligibility: a secondary that completed a bulk in the current
 * stream, is not behind by more than a window, heard the primary lately
 * and whose last digest matched. The primary is always in sync. */
bool ctsync_in_sync(const struct ctsync *cs, mono_t now);

enum ctsync_role { CTS_IDLE, CTS_PRIMARY, CTS_SECONDARY };
enum ctsync_digest { CTS_DIGEST_NONE, CTS_DIGEST_OK, CTS_DIGEST_MISMATCH };
enum ctsync_pstate { CTS_P_IDLE, CTS_P_WAIT, CTS_P_BULK, CTS_P_SYNC };
const char *ctsync_role_name(enum ctsync_role r);
const char *ctsync_pstate_name(enum ctsync_pstate s);
const char *ctsync_digest_name(enum ctsync_digest d);

struct ctsync_counters {
	uint64_t tx_msgs, tx_bytes, resent, probes, acks_tx, acks_rx;
	uint64_t rx_msgs, rx_dup, rx_window, rx_malformed, rx_stale, rx_not_primary;
	uint64_t local_recs, bulk_recs, bulk_skipped, coalesced;
	uint64_t applied, digest_ok, digest_bad, bulks, overruns, resyncs;
	uint64_t map_full;
	uint64_t losses;    /* primary: loss episodes (resend timer or SACK) */
};
struct ctsync_peer_status {
	bool alive;
	enum ctsync_pstate state;
	bool in_sync, stalled;
	uint64_t acked, base;          /* message sequence numbers */
	uint32_t cwnd;                 /* messages allowed in flight now */
	uint64_t backlog_recs, backlog_msgs;
	int64_t lag_ms;                /* age of the oldest unacked message */
	uint64_t count;                /* sessions the secondary reports */
	uint64_t bulk_rx;              /* bulk records it reports received */
	bool reported_in_sync, digest_bad;
};
struct ctsync_status {
	enum ctsync_role role;
	int primary;                   /* node followed (self when primary) */
	bool in_sync;
	uint32_t stream;
	uint64_t incarnation;          /* this node's */
	uint64_t stream_incarnation;   /* the stream's primary's */
	uint64_t head, tail;           /* primary: log; secondary: head seen */
	uint64_t applied_mseq;         /* secondary: applied through */
	uint64_t count, digest;        /* this node's map */
	bool map_full;
	struct {
		bool active;
		uint32_t gen;
		uint64_t recs;         /* primary: sequenced; secondary: received */
		uint64_t total;        /* at the end marker (0 while running) */
		bool done;             /* secondary: completed in this stream */
	} bulk;
	enum ctsync_digest last_digest;
	struct ctsync_counters ctr;
	struct ctsync_peer_status peers[TND_NODES_MAX];
};
void ctsync_status(const struct ctsync *cs, mono_t now, struct ctsync_status *out);

/* The digest of a table, for drivers and tests that compare tables:
 * the sum (mod 2^64) of stable_hash over the entries. */
static inline uint64_t ctsync_digest_add(uint64_t d, uint64_t stable_hash)
{
	return d + stable_hash;
}

#endif
