/* xferio.h - image store and transfer driver (SPEC section 5 step 3,
 * issue 5): the files behind the transfer core (src/core/xfer.h).
 *
 * Owns: STATE_DIR/images/, where an image is the file <64 hex>.img named
 * by the BLAKE2b-256 digest of its bytes (libsodium crypto_generichash,
 * the digest slots.c's import uses too), the partial files of fetches in
 * flight (images/.partial-<hex>, removed at xferio_new: leftovers of a
 * crash), the descriptors of served images, and the digest computed as a
 * fetch's chunks are written.
 *
 * An image enters images/ only whole and verified: by xferio_import (copy,
 * fsync, rename, fsync of the directory) or by a fetch whose every chunk
 * is written at its offset and whose digest matches; a mismatch deletes
 * the partial file and ends the fetch with TND_EAUTH "digest mismatch".
 * The digest is computed while the chunks arrive (in order; chunks that
 * came early are read back from the page cache when the gap before them
 * closes) rather than over the whole file at the end, because hashing 256
 * MiB at once would hold the event loop for about a second, longer than
 * the heartbeats' dead time. Writeback is started every
 * XFERIO_WRITEBACK_BYTES so the final fsync has little left to do.
 *
 * Packets: `send` gets plaintext (header + TLVs, body_len = TLV length,
 * like cfgsync's CFA_SEND) and seals it; xferio_recv gets the opened
 * header and body of an authenticated message of type 56..58. */
#ifndef TND_XFERIO_H
#define TND_XFERIO_H

#include <stdbool.h>
#include <stdint.h>
#include "../core/types.h"
#include "../core/wire.h"
#include "../core/xfer.h"

#define XFERIO_IMAGES_DIR "images"
#define XFERIO_SERVE_FDS 4                         /* open images served */
#define XFERIO_WRITEBACK_BYTES (8u * 1024 * 1024)  /* start writeback every */
#define XFERIO_COPY_BUF_BYTES (1024 * 1024)

struct xferio;
typedef void (*xferio_send_fn)(void *arg, int to, const uint8_t *pkt, size_t len);
/* rc 0: images/<hex>.img is in place (verified, durable); else a negative
 * tnd_err and a sentence: TND_ENOENT / TND_EINVAL the source has no such
 * image (NACK), TND_ETIMEDOUT no progress for 30 s, TND_EAUTH digest
 * mismatch, TND_EIO / TND_ESYS a local file error, TND_EREFUSED cancelled
 * by xferio_cancel_all. */
typedef void (*xferio_done_fn)(void *arg, const uint8_t digest[32], int rc, const char *why);

/* Creates STATE_DIR/images if missing and removes partial files left by a
 * crash. NULL on failure (errno kept). */
struct xferio *xferio_new(const char *state_dir, int self, uint8_t cluster_id,
			  uint8_t proto, uint64_t incarnation, xferio_send_fn send,
			  xferio_done_fn done, void *arg);
/* Fetches in flight are dropped (no callback), their partial files removed. */
void xferio_free(struct xferio *x);

/* STATE_DIR/images/<64 hex>.img; TND_ENOSPC when it does not fit. */
int xferio_path(const struct xferio *x, const uint8_t digest[32], char *out, size_t len);

/* Copy a local file (a regular file of 1..XFER_BYTES_MAX bytes) into
 * STATE_DIR/images/ durably (tmp, fsync, rename, fsync dir), computing
 * its digest; afterwards it is served. Idempotent. Synchronous: about
 * 10 ms per MB. 0, TND_EINVAL (not a regular file, empty, too large),
 * TND_ESYS / TND_EIO (errno kept). */
int xferio_import(struct xferio *x, const char *file, uint8_t digest[32], uint64_t *bytes);

/* Whether images/<digest>.img is present (and its size). */
bool xferio_have(const struct xferio *x, const uint8_t digest[32], uint64_t *bytes);

/* Fetch digest (bytes long) from node `from`. Returns 1 when already
 * present (no callback), 0 when started (done callback later, exactly
 * once), negative tnd_err on refusal: TND_ENOSPC (XFER_FETCHES_MAX
 * fetches in flight, or no room on the disk for `bytes`), TND_EINVAL
 * (bytes 0 or above XFER_BYTES_MAX, from is self; or the image is present
 * with another size), TND_ESYS. A fetch already in progress for the same
 * digest is not started twice (0: its one callback is still to come). */
int xferio_fetch(struct xferio *x, const uint8_t digest[32], uint64_t bytes, int from,
		 mono_t now);

/* Abandon fetches (e.g. upgrade aborted); partial files removed; each
 * gets its done callback with TND_EREFUSED "cancelled". */
void xferio_cancel_all(struct xferio *x);

void xferio_recv(struct xferio *x, const struct wire_hdr *h, const uint8_t *body,
		 size_t len, mono_t now);
void xferio_tick(struct xferio *x, mono_t now);
mono_t xferio_next_wake(const struct xferio *x);

/* For status: progress of the fetch of digest (got/total bytes);
 * TND_ENOENT if none. */
int xferio_progress(const struct xferio *x, const uint8_t digest[32], uint64_t *got,
		    uint64_t *total);

/* Delete images/ files other than `keep` (NULL: all), and partial files
 * of no fetch in flight. The number of files deleted, or TND_ESYS. */
int xferio_gc(struct xferio *x, const uint8_t *keep);

/* Counters for metrics: the core's, plus the driver's. */
struct xferio_stats {
	struct xfer_stats core;
	uint64_t fetched, failed, nacks_sent, served_bytes, actions_dropped;
};
void xferio_get_stats(const struct xferio *x, struct xferio_stats *out);

#endif
