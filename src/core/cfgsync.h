/* cfgsync.h - cluster configuration sync: generations, two-phase commit,
 * catch-up (SPEC section 1 "Configuration sync", issue 3).
 *
 * Owns: this node's view of the cluster configuration document (committed
 * and pending generation), the coordinator's proposal in flight, the
 * content-addressed transfer of documents and the per-node sync report.
 * Pure: no I/O, no clock; the driver hands it events with `now` and
 * performs the actions it emits (send, store durably, validate, apply).
 *
 * THE DOCUMENT. The YAML text of tandem.yaml as given (nothing is
 * node-local in today's schema: `api` listens on the same host:port on
 * every node and the key file has the same path everywhere; `firewall.
 * ruleset` is only where the proposer read the ruleset from) plus the
 * nftables ruleset text. It travels as one blob (cfgsync_doc_encode) of at
 * most CFGSYNC_DOC_MAX bytes named by its BLAKE2b-256 digest. A generation
 * is (gen, digest); gen 0 is the "seed": the file a node booted with
 * before it ever held a cluster generation.
 *
 * THE PROTOCOL. Only the coordinator (group 0 primary, told by the driver
 * with cfgsync_view(), together with group 0's epoch and the live peers)
 * changes the configuration. It works like single-decree Paxos per
 * generation with the election epoch as the ballot:
 *
 *  1 propose: any node's cfgsync_propose() reaches the coordinator
 *    (CFG_MSG_PROPOSE announces a digest; the coordinator fetches the
 *    blob), which asks its driver to validate it (CFA_VALIDATE: schema,
 *    settings that cannot change in place - cfgsync_check_change() - and
 *    the ruleset in nftables dry-run), then
 *  2 prepare: picks gen = 1 + the highest generation it has heard of
 *    anywhere (committed, pending or aborted: a generation number is never
 *    reused), stores (gen, digest, ballot=epoch) as pending durably and
 *    sends CFG_MSG_PREPARE to every live peer; each fetches the blob,
 *    checks the digest, stores it as pending durably (CFA_STORE, answered
 *    by cfgsync_stored()) and acks. A node keeps one pending generation and
 *    replaces it only by a higher gen or the same gen with a higher ballot.
 *  3 commit: once every node that is live at that moment acked, the
 *    coordinator stores it as committed, then sends CFG_MSG_COMMIT; each
 *    node makes its pending committed (durably) and then applies it
 *    (CFA_APPLY, answered by cfgsync_applied()).
 *  4 resolve: a coordinator acts only when settled: it heard CFG_MSG_STATE
 *    from every live peer since it became coordinator, and (clusters of
 *    two) it heard some peer since it started, unless the operator forces.
 *    Settled, it first rolls forward the pending proposal of the highest
 *    generation above every committed one it knows of (the highest ballot
 *    at that gen) by running phase 2 again for that same document under
 *    its own ballot; it starts fresh proposals only when nothing is
 *    unresolved. A coordinator aborts only its own proposal (a node failed
 *    to store it, or the prepare timed out) and never after committing.
 *
 * Why this holds (checked by tests/sim/cfgsim.c after every step): a
 * commit of (G, D) happens only when every live node holds (G, D)
 * durably; with three or more nodes the coordinator has a majority live,
 * so any later coordinator, settled on a majority, sees (G, D) (or a
 * higher-ballot proposal of G, which by induction carries D) and rolls it
 * forward, never proposing another document at G. With two nodes the
 * "heard a peer since start" rule covers a node restarted alone; a real
 * split brain (both nodes group 0 primary) can still produce two
 * documents at one gen: then the higher gen wins and at equal gens the
 * coordinator's document wins (the loser logs config.conflict).
 * Killing the coordinator between prepare and commit therefore leaves the
 * cluster on the old generation until the next coordinator commits the new
 * one everywhere: never a lasting mix.
 *
 * CATCH-UP. Every node sends CFG_MSG_STATE (committed, pending, applied
 * generation, highest gen seen, last apply error) to every peer at every
 * change and every state_ms. A node whose committed generation is older
 * than the newest one a live peer reports (or differs from the
 * coordinator's at the same gen) fetches that document from that peer and
 * stores and applies it. A pending generation at or below a known
 * committed one is dropped.
 *
 * MESSAGES are WIRE_MSG types 32..40 over the common header; their
 * sequence numbers carry CFGSYNC_SEQ_SPACE (bit 62), a space disjoint from
 * node.c's counter (small) and ctsync's (bit 63), so the seal nonce is
 * never reused. Every message names the document by (gen, digest), so a
 * duplicate or replay cannot change a decision; a proposal is named by
 * (proposer, its incarnation, req), so a resent CFG_MSG_PROPOSE never
 * starts it twice. CFG_MSG_STATE is a whole state at a moment: one not
 * newer (incarnation, then sequence) than the last taken from its sender
 * is stale and dropped, so a delayed report cannot bring back a pending
 * proposal that was aborted since. */
#ifndef TND_CFGSYNC_H
#define TND_CFGSYNC_H

#include "types.h"
#include "wire.h"

enum cfgsync_msg {
	CFG_MSG_STATE = 32,   /* periodic: committed/pending/applied gens */
	CFG_MSG_PREPARE = 33, /* coordinator: store (gen, digest) as pending */
	CFG_MSG_ACK = 34,     /* node: pending stored (or failed, why) */
	CFG_MSG_COMMIT = 35,  /* coordinator: (gen, digest) is committed */
	CFG_MSG_ABORT = 36,   /* coordinator: drop pending (gen, digest) */
	CFG_MSG_FETCH = 37,   /* ask for a window of a blob by digest */
	CFG_MSG_DATA = 38,    /* one chunk of a blob */
	CFG_MSG_PROPOSE = 39, /* node -> coordinator: please commit this blob */
	CFG_MSG_RESULT = 40,  /* coordinator -> node: outcome of a proposal */
};

#define CFGSYNC_SEQ_SPACE (1ULL << 62)
#define CFGSYNC_DIGEST_LEN 32
#define CFGSYNC_DOC_MAX (1024 * 1024) /* bytes of an encoded document */
#define CFGSYNC_CHUNK_BYTES 1200      /* blob bytes per CFG_MSG_DATA */
#define CFGSYNC_WINDOW_CHUNKS 16      /* chunks asked for per CFG_MSG_FETCH */
#define CFGSYNC_WHY_LEN 200           /* refusal / error sentences */

/* A document: YAML text and ruleset text, both NUL-terminated. */
struct cfgsync_text {
	const char *yaml;
	size_t yaml_len;
	const char *ruleset; /* "" when none */
	size_t ruleset_len;
};
/* Encode into a new malloc'd blob (u32 len, text, NUL, u32 len, ruleset,
 * NUL; big-endian). TND_ENOSPC when above CFGSYNC_DOC_MAX. */
int cfgsync_doc_encode(const struct cfgsync_text *t, uint8_t **blob,
		       size_t *len);
/* Points into `blob`; TND_EINVAL when it is not a well-formed document. */
int cfgsync_doc_decode(const uint8_t *blob, size_t len,
		       struct cfgsync_text *t);
void cfgsync_digest(const uint8_t *blob, size_t len,
		    uint8_t out[CFGSYNC_DIGEST_LEN]);

/* Settings that cannot change in place (pure; on parsed configurations):
 * cluster id, name, port, key file, and the node list (names, order, link
 * addresses), with a specific sentence when `self_name` would be removed.
 * Returns 0 or TND_EREFUSED with the reason in why. */
struct tnd_conf;
int cfgsync_check_change(const struct tnd_conf *old, const struct tnd_conf *nw,
			 const char *self_name, char *why, size_t why_len);

struct cfgsync_params {
	int self, n_nodes;
	uint8_t cluster_id;
	uint8_t proto;
	uint64_t incarnation;
	uint64_t seed;
	uint32_t state_ms;          /* CFG_MSG_STATE period (default 1000) */
	uint32_t retry_ms;          /* resend prepare / fetch (default 300) */
	uint32_t prepare_timeout_ms;/* coordinator aborts after (default 30000) */
	uint32_t propose_timeout_ms;/* proposer gives up waiting (default 60000) */
	/* Durable state read from the store at start. committed_gen 0 with
	 * the seed blob when the store is empty. Blobs are copied. */
	uint64_t committed_gen;
	const uint8_t *committed_blob;
	size_t committed_len;
	uint64_t pending_gen, pending_ballot; /* 0: none */
	const uint8_t *pending_blob;
	size_t pending_len;
	uint64_t gen_floor;         /* highest gen ever stored (any state) */
};
void cfgsync_params_default(struct cfgsync_params *p);

enum cfgsync_act_type {
	CFA_SEND,     /* seal and send pkt to node `to` (link 0 first) */
	CFA_STORE,    /* make durable, then call cfgsync_stored() */
	CFA_VALIDATE, /* coordinator: validate doc, call cfgsync_validated() */
	CFA_APPLY,    /* apply doc (conf + ruleset), call cfgsync_applied() */
	CFA_RESULT,   /* a local proposal ended: req, code, why */
	CFA_EVENT,    /* log and record an event line */
};
enum cfgsync_store_op {
	CFS_PENDING,  /* store gen/ballot/blob as the pending generation */
	CFS_COMMIT,   /* store gen/blob as committed (current), drop pending */
	CFS_DROP,     /* drop the pending generation `gen` (aborted) */
};
enum cfgsync_level { CFG_LVL_DEBUG, CFG_LVL_INFO, CFG_LVL_WARN, CFG_LVL_ERROR };

struct cfgsync_act {
	enum cfgsync_act_type type;
	/* CFA_STORE / CFA_VALIDATE / CFA_APPLY: the document. `blob` belongs
	 * to the core and stays valid until the next call into it. */
	enum cfgsync_store_op op;
	uint64_t gen, ballot;
	uint8_t digest[CFGSYNC_DIGEST_LEN];
	const uint8_t *blob;
	size_t blob_len;
	/* CFA_RESULT */
	uint32_t req;
	int code;
	char why[CFGSYNC_WHY_LEN];
	/* CFA_SEND */
	int to;
	size_t len;
	uint8_t pkt[WIRE_MTU];
	/* CFA_EVENT */
	enum cfgsync_level level;
	char name[32];
	char kv[320];
};

#define CFGSYNC_ACTIONS_MAX 128
struct cfgsync_actions {
	int n, n_dropped;
	struct cfgsync_act a[CFGSYNC_ACTIONS_MAX];
};
void cfgsync_actions_reset(struct cfgsync_actions *out);

struct cfgsync;
struct cfgsync *cfgsync_new(const struct cfgsync_params *p, mono_t now);
void cfgsync_free(struct cfgsync *cs);

/* From the election: who is group 0 primary (TND_NO_NODE: nobody), its
 * epoch, and which nodes are alive (bit i = node i; self's bit ignored).
 * Call at start and whenever any of them changes. */
int cfgsync_view(struct cfgsync *cs, int coordinator, uint64_t epoch,
		 uint32_t alive_mask, mono_t now, struct cfgsync_actions *out);

/* Ask for a change. `req` is the caller's id echoed in CFA_RESULT. Returns
 * 0 when the request is under way (its outcome comes as exactly one
 * CFA_RESULT, also when group 0 moves meanwhile: the request follows the
 * coordinator), or a negative code with `why` when refused at once.
 * force: act although this node has not heard any peer since it started. */
#define CFGSYNC_FORCE 1u
int cfgsync_propose(struct cfgsync *cs, uint32_t req, const uint8_t *blob,
		    size_t len, unsigned flags, mono_t now,
		    struct cfgsync_actions *out, char *why, size_t why_len);

/* Answers to actions. */
int cfgsync_validated(struct cfgsync *cs, const uint8_t digest[CFGSYNC_DIGEST_LEN],
		      int code, const char *why, mono_t now,
		      struct cfgsync_actions *out);
int cfgsync_stored(struct cfgsync *cs, enum cfgsync_store_op op, uint64_t gen,
		   const uint8_t digest[CFGSYNC_DIGEST_LEN], int code, mono_t now,
		   struct cfgsync_actions *out);
int cfgsync_applied(struct cfgsync *cs, uint64_t gen, int code,
		    const char *err, mono_t now, struct cfgsync_actions *out);

/* An authenticated CFG_MSG_* message. 0, or a negative tnd_err when it was
 * dropped (counted in rx_bad; nothing changed): TND_EINVAL malformed,
 * TND_EREPLAY a stale CFG_MSG_STATE. A well-formed message about a
 * generation or transfer that is over is taken (0) and changes nothing. */
int cfgsync_recv(struct cfgsync *cs, const struct wire_hdr *h,
		 const uint8_t *body, size_t len, mono_t now,
		 struct cfgsync_actions *out);
int cfgsync_tick(struct cfgsync *cs, mono_t now, struct cfgsync_actions *out);
mono_t cfgsync_next_wake(const struct cfgsync *cs);

/* `tandemctl config status`: per node as last reported (self: live). */
struct cfgsync_node_report {
	bool known;          /* a CFG_MSG_STATE was heard (always for self) */
	bool alive;
	uint64_t committed_gen, pending_gen, applied_gen;
	uint8_t committed_digest[CFGSYNC_DIGEST_LEN];
	bool apply_ok;
	char apply_err[CFGSYNC_WHY_LEN];
	bool in_sync;        /* applied == cluster generation, no error */
};
struct cfgsync_report {
	uint64_t cluster_gen; /* highest committed generation known */
	int coordinator;
	bool settled;         /* coordinator only: may act */
	bool busy;            /* a proposal is in flight */
	uint64_t busy_gen;
	int n_nodes;
	struct cfgsync_node_report nodes[TND_NODES_MAX];
	uint64_t rx_ok, rx_bad, tx;
};
void cfgsync_report(const struct cfgsync *cs, struct cfgsync_report *out);
/* The committed document (seed when gen 0). */
const uint8_t *cfgsync_current(const struct cfgsync *cs, uint64_t *gen,
			       size_t *len);

#endif
