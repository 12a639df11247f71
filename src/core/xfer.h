/* xfer.h - image distribution over the control link (SPEC section 5 step 3
 * "distributes the image", issue 5): the transfer protocol's pure core.
 *
 * Owns: the fetches in flight on this node (at most XFER_FETCHES_MAX, each
 * one image named by its BLAKE2b-256 digest and its size), which chunks each
 * has, which are outstanding, the retransmission timer, and the decoding
 * and encoding of the XFER_MSG_* messages. Pure: no I/O, no clock, no
 * globals; the driver (src/io/xferio.c) performs the actions (send a
 * packet, write a chunk at its offset, read chunks to serve a peer, verify
 * and install a finished file) and hands in `now`.
 *
 * THE PROTOCOL. The fetcher drives (like cfgsync's FETCH/DATA, but for
 * files up to XFER_BYTES_MAX that never sit in memory):
 *   XFER_MSG_GET  (56) digest, total bytes, ranges of chunk indexes wanted
 *                      (at most XFER_GET_CHUNKS_MAX chunks per GET);
 *   XFER_MSG_DATA (57) digest, total bytes, chunk index, chunk bytes
 *                      (XFER_CHUNK_BYTES, the last one shorter);
 *   XFER_MSG_NACK (58) digest, code, sentence: "I do not have that image"
 *                      (TND_ENOENT) or "not with that size" (TND_EINVAL), so
 *                      the fetcher fails at once with a clear error.
 * The server is stateless: each GET is answered by at most
 * XFER_GET_CHUNKS_MAX DATA messages read from its local file.
 * The fetcher keeps at most XFER_WINDOW_CHUNKS chunks outstanding and asks
 * for more in batches of XFER_GET_BATCH_CHUNKS as they arrive. A chunk not
 * answered within the retransmission timeout is asked again; the timeout
 * follows RFC 6298 (SRTT + 4 RTTVAR from samples of chunks asked once -
 * Karn's rule - doubled on every expiry, clamped to [rto_min_ms,
 * rto_max_ms]). A chunk skipped by XFER_FAST_RESEND_SKIPS later chunks of
 * the same GET is asked again at once (the server answers a GET in order,
 * so a gap means a loss; cf. TCP's fast retransmit, RFC 5681 3.2). A fetch
 * with no new chunk for idle_timeout_ms fails with TND_ETIMEDOUT.
 * Duplicates and DATA that does not fit the fetch (other total, index out
 * of range, wrong length, unknown digest) are dropped and counted; they
 * never end a fetch, so a confused or lying peer costs time, not the image.
 * When every chunk is in, XFA_END with code 0 tells the driver to check
 * the digest of the whole file and only then rename it into place: the
 * per-packet AEAD (seal.h) protects the transit, the final digest protects
 * against everything else (a bad disk on either side, a bug).
 *
 * MESSAGES use the common header (wire.h); sequence numbers carry
 * XFER_SEQ_SPACE (bit 60), disjoint from node.c's (small), ctsync's (63),
 * cfgsync's (62) and upgrade's (61), so the seal nonce is never reused. */
#ifndef TND_XFER_H
#define TND_XFER_H

#include "types.h"
#include "wire.h"

enum xfer_msg {
	XFER_MSG_GET = 56,
	XFER_MSG_DATA = 57,
	XFER_MSG_NACK = 58,
};

#define XFER_SEQ_SPACE (1ULL << 60)
#define XFER_DIGEST_LEN 32
#define XFER_BYTES_MAX (256ULL * 1024 * 1024) /* largest image */
#define XFER_CHUNK_BYTES 1200                 /* image bytes per DATA */
#define XFER_CHUNKS_MAX ((uint32_t)((XFER_BYTES_MAX + XFER_CHUNK_BYTES - 1) / XFER_CHUNK_BYTES))
#define XFER_FETCHES_MAX 4        /* fetches in flight at once */
#define XFER_WINDOW_CHUNKS 64     /* outstanding chunks per fetch */
#define XFER_GET_CHUNKS_MAX 64    /* chunks one GET asks for (and is served) */
#define XFER_GET_BATCH_CHUNKS 16  /* free window slots before a new GET */
#define XFER_FAST_RESEND_SKIPS 3
#define XFER_WHY_LEN 160          /* error sentences incl. NUL */

struct xfer_params {
	int self;
	uint8_t cluster_id;
	uint8_t proto;
	uint64_t incarnation;
	uint32_t rto_min_ms;      /* default 50 */
	uint32_t rto_max_ms;      /* default 1000 */
	uint32_t rto_init_ms;     /* before the first sample, default 200 */
	uint32_t idle_timeout_ms; /* no new chunk for this long: fail, 30000 */
};
void xfer_params_default(struct xfer_params *p);

/* A chunk range in a GET. */
struct xfer_range {
	uint32_t first, count;
};
#define XFER_GET_RANGES_MAX XFER_GET_CHUNKS_MAX

/* A decoded message (xfer_msg_decode). `data` points into the body. */
struct xfer_msgv {
	uint8_t type;
	uint8_t digest[XFER_DIGEST_LEN];
	uint64_t total;
	uint32_t index;
	const uint8_t *data;
	size_t data_len;
	int n_ranges;
	struct xfer_range ranges[XFER_GET_RANGES_MAX];
	int code;                 /* NACK: a negative tnd_err */
	char why[XFER_WHY_LEN];   /* NACK */
};
/* Decode and check the body of message `type` (56..58): every required
 * TLV present with its exact size, total in 1..XFER_BYTES_MAX, a DATA's
 * index inside the image and its length exactly that chunk's, a GET's
 * ranges inside the image. Unknown TLVs are skipped (STYLE, "Wire
 * protocol"). 0 or TND_EINVAL. */
int xfer_msg_decode(uint8_t type, const uint8_t *body, size_t len,
		    struct xfer_msgv *m);

/* Chunks of an image of `total` bytes, and the length of chunk i. */
uint32_t xfer_chunks(uint64_t total);
size_t xfer_chunk_len(uint64_t total, uint32_t index);

/* A fetch's counters (xfer_progress, and XFA_END). */
struct xfer_progress {
	int from;
	uint64_t total, got_bytes;
	uint32_t chunks, have, outstanding;
	uint32_t rto_ms;
	uint64_t resent, fast_resent, dup, bad;
	mono_t started;
};

enum xfer_act_type {
	XFA_SEND,  /* send pkt (plaintext header + TLVs) to node `to` */
	XFA_WRITE, /* write data[0..len) at offset `off` of the file of digest */
	XFA_SERVE, /* read chunks `index[0..n)` of image digest (`total` bytes)
		    * and answer `to` with xfer_data_pkt() for each, or
		    * xfer_nack_pkt() when the image is not here */
	XFA_END,   /* a fetch ended: code 0 = every chunk written (verify the
		    * digest, then install); negative = failed, `why` says why */
};

struct xfer_act {
	enum xfer_act_type type;
	uint8_t digest[XFER_DIGEST_LEN];
	int to;              /* SEND, SERVE */
	/* WRITE: data points into the body given to xfer_recv() and is valid
	 * until it returns to its caller's caller (process actions at once) */
	uint64_t off;
	const uint8_t *data;
	size_t len;          /* WRITE: data bytes; SEND: pkt bytes */
	uint32_t chunk;      /* WRITE: chunk index */
	uint64_t total;      /* SERVE, END */
	int n;               /* SERVE */
	uint32_t index[XFER_GET_CHUNKS_MAX];
	int code;            /* END */
	char why[XFER_WHY_LEN];
	struct xfer_progress prog; /* END: the fetch's counters at its end */
	uint8_t pkt[WIRE_MTU]; /* SEND */
};

#define XFER_ACTIONS_MAX 16
struct xfer_actions {
	int n, n_dropped;
	struct xfer_act a[XFER_ACTIONS_MAX];
};
void xfer_actions_reset(struct xfer_actions *out);

struct xfer;
struct xfer *xfer_new(const struct xfer_params *p);
void xfer_free(struct xfer *x);

/* Start fetching image `digest` of `bytes` bytes from node `from`; sends
 * the first GET. 0, or TND_EINVAL (bytes 0 or above XFER_BYTES_MAX, from
 * is self or not below TND_NODES_MAX), TND_ENOSPC (XFER_FETCHES_MAX in flight; or no
 * memory), TND_EREFUSED (this digest is already being fetched). */
int xfer_start(struct xfer *x, const uint8_t digest[XFER_DIGEST_LEN],
	       uint64_t bytes, int from, mono_t now, struct xfer_actions *out);
/* Forget the fetch of digest without an XFA_END (the driver gave up on
 * it, e.g. a write failed or the upgrade was aborted). 0 or TND_ENOENT. */
int xfer_cancel(struct xfer *x, const uint8_t digest[XFER_DIGEST_LEN]);

/* An authenticated XFER_MSG_* message (h->type 56..58). 0, or TND_EINVAL
 * when it was dropped as malformed (counted). A well-formed DATA for no
 * fetch, a duplicate or one that does not fit its fetch is dropped and
 * counted too (0: nothing to log per packet). */
int xfer_recv(struct xfer *x, const struct wire_hdr *h, const uint8_t *body,
	      size_t len, mono_t now, struct xfer_actions *out);
int xfer_tick(struct xfer *x, mono_t now, struct xfer_actions *out);
mono_t xfer_next_wake(const struct xfer *x);

/* Server side, answering XFA_SERVE: the DATA packet for chunk `index`
 * (plaintext, as XFA_SEND's pkt) into pkt (cap >= WIRE_MTU). TND_EINVAL
 * when len is not that chunk's length. */
int xfer_data_pkt(struct xfer *x, const uint8_t digest[XFER_DIGEST_LEN],
		  uint64_t total, uint32_t index, const uint8_t *data,
		  size_t len, uint8_t *pkt, size_t cap, size_t *pkt_len);
/* A NACK (code TND_ENOENT: no such image here; TND_EINVAL: not with
 * that size; TND_EIO: cannot read it) with a sentence. */
int xfer_nack_pkt(struct xfer *x, const uint8_t digest[XFER_DIGEST_LEN],
		  int code, const char *why, uint8_t *pkt, size_t cap,
		  size_t *pkt_len);

/* Fetch state of digest: whether chunk i is in; progress. TND_ENOENT
 * when no fetch of digest is in flight. */
bool xfer_has_chunk(const struct xfer *x, const uint8_t digest[XFER_DIGEST_LEN],
		    uint32_t index);
int xfer_progress(const struct xfer *x, const uint8_t digest[XFER_DIGEST_LEN],
		  struct xfer_progress *out);

struct xfer_stats {
	uint64_t rx_ok, rx_bad, rx_dup, rx_stray, tx, served_chunks;
};
void xfer_stats(const struct xfer *x, struct xfer_stats *out);

#endif
