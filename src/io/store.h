/* store.h - the durable configuration store (SQLite).
 *
 * Owns: the database file (e.g. STATE_DIR/config.db) holding the cluster
 * configuration generations: at most one "committed" (current) row, at
 * most one "pending" row, and the previous ones ("superseded", "aborted")
 * for backup, restore and diff, pruned to the newest STORE_KEEP_GENS.
 * Every change is one SQLite transaction in WAL mode with
 * synchronous=FULL, so a crash or power cut at any moment leaves the old
 * or the new state, never a torn one (tests/lab/test_store.sh kills
 * writers with SIGKILL and fills the disk to show it). The highest
 * generation ever stored is kept in a meta row so that pruning never lets
 * a generation number be reused (cfgsync.h, "gen_floor"). */
#ifndef TND_STORE_H
#define TND_STORE_H

#include "../core/types.h"

#define STORE_KEEP_GENS 20
#define STORE_DIGEST_LEN 32

struct store;

/* Open or create. TND_EIO with a sentence in err when the file cannot be
 * opened or is not a Tandem store. */
int store_open(const char *path, struct store **out, char *err, size_t err_len);
void store_close(struct store *st);

struct store_doc {
	uint64_t gen, ballot;
	char state[12]; /* committed, pending, superseded, aborted */
	uint8_t digest[STORE_DIGEST_LEN];
	uint8_t *blob;  /* malloc'd; store_doc_free() */
	size_t len;
	int64_t created; /* unix seconds */
};
void store_doc_free(struct store_doc *d);

/* What cfgsync_new() needs: the committed and pending documents (gen 0
 * when none) and the highest generation ever stored. */
struct store_state {
	struct store_doc committed, pending;
	uint64_t floor;
};
int store_load(struct store *st, struct store_state *out);
void store_state_free(struct store_state *s);

/* The operations behind CFA_STORE (cfgsync.h), each one transaction. */
int store_put_pending(struct store *st, uint64_t gen, uint64_t ballot,
		      const uint8_t *digest, const uint8_t *blob, size_t len);
int store_commit(struct store *st, uint64_t gen, const uint8_t *digest,
		 const uint8_t *blob, size_t len);
int store_drop_pending(struct store *st, uint64_t gen);

/* One generation by number (TND_ENOENT), and the list, newest first. */
int store_get(struct store *st, uint64_t gen, struct store_doc *out);
int store_list(struct store *st, struct store_doc *out, int max, int *n);

/* The last SQLite error, for logs. */
const char *store_errmsg(const struct store *st);

#endif
