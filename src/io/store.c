/* store.c - the durable configuration store on SQLite (see store.h).
 *
 * Why SQLite: its transactions are atomic and durable across power loss
 * when the journal is WAL and synchronous=FULL (https://sqlite.org/wal.html,
 * https://sqlite.org/pragma.html#pragma_synchronous), it verifies its own
 * pages at open, and a full disk makes a transaction fail as a whole
 * (SQLITE_FULL) instead of leaving half a file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sqlite3.h>
#include "store.h"

struct store {
	sqlite3 *db;
	char err[256];
};

static const char *const schema =
	"CREATE TABLE IF NOT EXISTS gens ("
	" gen INTEGER PRIMARY KEY,"
	" ballot INTEGER NOT NULL,"
	" state TEXT NOT NULL CHECK (state IN"
	"  ('committed','pending','superseded','aborted')),"
	" digest BLOB NOT NULL,"
	" doc BLOB NOT NULL,"
	" created INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
	"INSERT OR IGNORE INTO meta VALUES ('format', 1);"
	"INSERT OR IGNORE INTO meta VALUES ('floor', 0);";

const char *store_errmsg(const struct store *st)
{
	return st->err;
}

static int fail(struct store *st, const char *what)
{
	int code = sqlite3_errcode(st->db);
	snprintf(st->err, sizeof(st->err), "%s: %s", what, sqlite3_errmsg(st->db));
	return code == SQLITE_FULL ? TND_ENOSPC : TND_EIO;
}

static int exec(struct store *st, const char *sql)
{
	char *msg = NULL;
	if (sqlite3_exec(st->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		snprintf(st->err, sizeof(st->err), "%s", msg ? msg : "error");
		int code = sqlite3_errcode(st->db);
		sqlite3_free(msg);
		return code == SQLITE_FULL ? TND_ENOSPC : TND_EIO;
	}
	return 0;
}

int store_open(const char *path, struct store **out, char *err, size_t err_len)
{
	struct store *st = calloc(1, sizeof(*st));
	if (!st) {
		snprintf(err, err_len, "out of memory");
		return TND_ENOSPC;
	}
	if (sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
			    NULL) != SQLITE_OK) {
		snprintf(err, err_len, "%s: %s", path,
			 st->db ? sqlite3_errmsg(st->db) : "cannot open");
		goto fail;
	}
	sqlite3_busy_timeout(st->db, 5000);
	if (exec(st, "PRAGMA journal_mode=WAL;") || exec(st, "PRAGMA synchronous=FULL;") ||
	    exec(st, "PRAGMA foreign_keys=ON;") || exec(st, schema) ||
	    exec(st, "PRAGMA quick_check;")) {
		snprintf(err, err_len, "%s: %s", path, st->err);
		goto fail;
	}
	*out = st;
	return 0;
fail:
	sqlite3_close(st->db);
	free(st);
	return TND_EIO;
}

void store_close(struct store *st)
{
	if (!st)
		return;
	sqlite3_close(st->db);
	free(st);
}

void store_doc_free(struct store_doc *d)
{
	free(d->blob);
	memset(d, 0, sizeof(*d));
}

void store_state_free(struct store_state *s)
{
	store_doc_free(&s->committed);
	store_doc_free(&s->pending);
}

static int row_doc(sqlite3_stmt *q, struct store_doc *d)
{
	memset(d, 0, sizeof(*d));
	d->gen = (uint64_t)sqlite3_column_int64(q, 0);
	d->ballot = (uint64_t)sqlite3_column_int64(q, 1);
	snprintf(d->state, sizeof(d->state), "%s", (const char *)sqlite3_column_text(q, 2));
	if (sqlite3_column_bytes(q, 3) != STORE_DIGEST_LEN)
		return TND_EIO;
	memcpy(d->digest, sqlite3_column_blob(q, 3), STORE_DIGEST_LEN);
	int n = sqlite3_column_bytes(q, 4);
	d->blob = malloc(n > 0 ? (size_t)n : 1);
	if (!d->blob)
		return TND_ENOSPC;
	if (n > 0)
		memcpy(d->blob, sqlite3_column_blob(q, 4), (size_t)n);
	d->len = (size_t)n;
	d->created = sqlite3_column_int64(q, 5);
	return 0;
}

#define COLS "gen, ballot, state, digest, doc, created"

/* One row by a WHERE clause with one integer or text parameter. */
static int get_one(struct store *st, const char *where, int64_t ival,
		   const char *sval, struct store_doc *out)
{
	char sql[160];
	snprintf(sql, sizeof(sql), "SELECT " COLS " FROM gens WHERE %s", where);
	sqlite3_stmt *q;
	if (sqlite3_prepare_v2(st->db, sql, -1, &q, NULL) != SQLITE_OK)
		return fail(st, "select");
	if (sval)
		sqlite3_bind_text(q, 1, sval, -1, SQLITE_STATIC);
	else
		sqlite3_bind_int64(q, 1, ival);
	int rc = sqlite3_step(q);
	int r;
	if (rc == SQLITE_ROW)
		r = row_doc(q, out);
	else if (rc == SQLITE_DONE)
		r = TND_ENOENT;
	else
		r = fail(st, "select");
	sqlite3_finalize(q);
	return r;
}

int store_load(struct store *st, struct store_state *out)
{
	memset(out, 0, sizeof(*out));
	int r = get_one(st, "state = ?", 0, "committed", &out->committed);
	if (r && r != TND_ENOENT)
		return r;
	r = get_one(st, "state = ?", 0, "pending", &out->pending);
	if (r && r != TND_ENOENT) {
		store_state_free(out);
		return r;
	}
	sqlite3_stmt *q;
	if (sqlite3_prepare_v2(st->db,
			       "SELECT max((SELECT value FROM meta WHERE key='floor'),"
			       " (SELECT coalesce(max(gen),0) FROM gens))",
			       -1, &q, NULL) != SQLITE_OK) {
		store_state_free(out);
		return fail(st, "floor");
	}
	if (sqlite3_step(q) == SQLITE_ROW)
		out->floor = (uint64_t)sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	return 0;
}

int store_get(struct store *st, uint64_t gen, struct store_doc *out)
{
	return get_one(st, "gen = ?", (int64_t)gen, NULL, out);
}

int store_list(struct store *st, struct store_doc *out, int max, int *n)
{
	sqlite3_stmt *q;
	*n = 0;
	if (sqlite3_prepare_v2(st->db, "SELECT " COLS " FROM gens ORDER BY gen DESC",
			       -1, &q, NULL) != SQLITE_OK)
		return fail(st, "list");
	int rc, r = 0;
	while (*n < max && (rc = sqlite3_step(q)) == SQLITE_ROW) {
		if ((r = row_doc(q, &out[*n])) != 0)
			break;
		(*n)++;
	}
	sqlite3_finalize(q);
	return r;
}

/* Run `body` statements in one IMMEDIATE transaction. */
static int txn(struct store *st, const char *what,
	       int (*body)(struct store *, const void *), const void *arg)
{
	int r = exec(st, "BEGIN IMMEDIATE");
	if (r)
		return r;
	r = body(st, arg);
	if (r == 0)
		r = exec(st, "COMMIT");
	if (r) {
		char keep[256];
		snprintf(keep, sizeof(keep), "%s: %.200s", what, st->err);
		exec(st, "ROLLBACK");
		snprintf(st->err, sizeof(st->err), "%s", keep);
	}
	return r;
}

struct put {
	uint64_t gen, ballot;
	const char *state;
	const uint8_t *digest, *blob;
	size_t len;
};

static int step_stmt(struct store *st, sqlite3_stmt *q, const char *what)
{
	int rc = sqlite3_step(q);
	sqlite3_finalize(q);
	if (rc != SQLITE_DONE)
		return fail(st, what);
	return 0;
}

static int insert_row(struct store *st, const struct put *p)
{
	sqlite3_stmt *q;
	if (sqlite3_prepare_v2(st->db,
			       "INSERT OR REPLACE INTO gens (" COLS ") VALUES (?,?,?,?,?,?)",
			       -1, &q, NULL) != SQLITE_OK)
		return fail(st, "insert");
	sqlite3_bind_int64(q, 1, (int64_t)p->gen);
	sqlite3_bind_int64(q, 2, (int64_t)p->ballot);
	sqlite3_bind_text(q, 3, p->state, -1, SQLITE_STATIC);
	sqlite3_bind_blob(q, 4, p->digest, STORE_DIGEST_LEN, SQLITE_STATIC);
	sqlite3_bind_blob(q, 5, p->blob, (int)p->len, SQLITE_STATIC);
	sqlite3_bind_int64(q, 6, (int64_t)time(NULL));
	return step_stmt(st, q, "insert");
}

static int exec_gen(struct store *st, const char *sql, uint64_t gen)
{
	sqlite3_stmt *q;
	if (sqlite3_prepare_v2(st->db, sql, -1, &q, NULL) != SQLITE_OK)
		return fail(st, sql);
	sqlite3_bind_int64(q, 1, (int64_t)gen);
	return step_stmt(st, q, sql);
}

static int bump_floor(struct store *st, uint64_t gen)
{
	return exec_gen(st, "UPDATE meta SET value = max(value, ?1) WHERE key = 'floor'", gen);
}

static int prune(struct store *st)
{
	char sql[200];
	snprintf(sql, sizeof(sql),
		 "DELETE FROM gens WHERE state IN ('superseded','aborted') AND gen NOT IN"
		 " (SELECT gen FROM gens ORDER BY gen DESC LIMIT %d)", STORE_KEEP_GENS);
	return exec(st, sql);
}

static int do_pending(struct store *st, const void *arg)
{
	const struct put *p = arg;
	int r;
	/* one pending at a time: an older one is replaced (cfgsync.h) */
	if ((r = exec(st, "UPDATE gens SET state = 'aborted' WHERE state = 'pending'")) ||
	    (r = insert_row(st, p)) || (r = bump_floor(st, p->gen)))
		return r;
	return prune(st);
}

int store_put_pending(struct store *st, uint64_t gen, uint64_t ballot,
		      const uint8_t *digest, const uint8_t *blob, size_t len)
{
	struct put p = { gen, ballot, "pending", digest, blob, len };
	return txn(st, "store pending", do_pending, &p);
}

static int do_commit(struct store *st, const void *arg)
{
	const struct put *p = arg;
	int r;
	if ((r = exec(st, "UPDATE gens SET state = 'superseded' WHERE state = 'committed'")) ||
	    (r = exec_gen(st, "UPDATE gens SET state = 'aborted' WHERE state = 'pending' AND gen <= ?1",
			  p->gen)) ||
	    (r = insert_row(st, p)) || (r = bump_floor(st, p->gen)))
		return r;
	return prune(st);
}

int store_commit(struct store *st, uint64_t gen, const uint8_t *digest,
		 const uint8_t *blob, size_t len)
{
	struct put p = { gen, 0, "committed", digest, blob, len };
	return txn(st, "store commit", do_commit, &p);
}

static int do_drop(struct store *st, const void *arg)
{
	return exec_gen(st, "UPDATE gens SET state = 'aborted' WHERE state = 'pending' AND gen = ?1",
			*(const uint64_t *)arg);
}

int store_drop_pending(struct store *st, uint64_t gen)
{
	return txn(st, "store drop", do_drop, &gen);
}
