/* store_check.c - the configuration store (src/io/store.c) against a real
 * file system, driven by tests/lab/test_store.sh.
 *
 *   store_check api DB            the operations, listing, pruning, floor
 *   store_check writer DB N       commit N generations after the current
 *                                 one (pending then commit, as cfgsync
 *                                 does); the script SIGKILLs it anywhere
 *   store_check verify DB MIN     the database opens, its committed
 *                                 generation is >= MIN and its document is
 *                                 exactly the one written for that
 *                                 generation (digest and bytes); prints it
 *   store_check fill DB           commit ever larger generations until the
 *                                 disk is full: the failing commit returns
 *                                 an error and the previous one stays
 *   store_check nft STEP          the ruleset driver (src/io/nft.c), run
 *                                 in a fresh network namespace: STEP good
 *                                 applies a ruleset, bad and half are
 *                                 refused (the script checks the kernel
 *                                 kept the good one)
 *
 * Documents are derived from their generation number, so a torn or mixed
 * write is detected byte for byte. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include "io/store.h"
#include "io/nft.h"

static size_t doc_len(uint64_t gen, size_t scale)
{
	return 64 + (size_t)((gen * 7919) % (scale ? scale : 1));
}

static uint8_t *make_doc(uint64_t gen, size_t len)
{
	uint8_t *b = malloc(len);
	uint64_t x = gen * 0x9E3779B97F4A7C15ULL + 1;
	for (size_t i = 0; i < len; i++) {
		x ^= x >> 12;
		x ^= x << 25;
		x ^= x >> 27;
		b[i] = (uint8_t)((x * 0x2545F4914F6CDD1DULL) >> 56);
	}
	return b;
}

static void digest(const uint8_t *b, size_t len, uint8_t out[STORE_DIGEST_LEN])
{
	crypto_generichash(out, STORE_DIGEST_LEN, b, len, NULL, 0);
}

static int check_doc(const struct store_doc *d, size_t scale, const char *what)
{
	size_t len = doc_len(d->gen, scale);
	uint8_t *want = make_doc(d->gen, len);
	uint8_t dg[STORE_DIGEST_LEN];
	digest(d->blob, d->len, dg);
	int bad = d->len != len || memcmp(d->blob, want, len) != 0 ||
		  memcmp(dg, d->digest, STORE_DIGEST_LEN) != 0;
	if (bad)
		fprintf(stderr, "store_check: %s gen %llu is torn (len %zu, want %zu)\n",
			what, (unsigned long long)d->gen, d->len, len);
	free(want);
	return bad;
}

static int put(struct store *st, uint64_t gen, size_t scale)
{
	size_t len = doc_len(gen, scale);
	uint8_t *b = make_doc(gen, len);
	uint8_t dg[STORE_DIGEST_LEN];
	digest(b, len, dg);
	int r = store_put_pending(st, gen, gen, dg, b, len);
	if (!r)
		r = store_commit(st, gen, dg, b, len);
	free(b);
	return r;
}

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "store_check: %s:%d: %s\n", __FILE__, __LINE__, #c); return 1; } } while (0)

static int api(const char *path)
{
	char err[256];
	struct store *st;
	CHECK(store_open(path, &st, err, sizeof(err)) == 0);
	struct store_state s;
	CHECK(store_load(st, &s) == 0);
	CHECK(s.committed.gen == 0 && s.pending.gen == 0 && s.floor == 0);
	store_state_free(&s);
	for (uint64_t g = 1; g <= 30; g++)
		CHECK(put(st, g, 5000) == 0);
	/* a pending generation, then dropped: the floor remembers it */
	uint8_t dg[STORE_DIGEST_LEN] = { 1 };
	CHECK(store_put_pending(st, 31, 7, dg, (const uint8_t *)"x", 1) == 0);
	CHECK(store_load(st, &s) == 0);
	CHECK(s.committed.gen == 30 && s.pending.gen == 31 && s.pending.ballot == 7);
	CHECK(check_doc(&s.committed, 5000, "committed") == 0);
	store_state_free(&s);
	CHECK(store_drop_pending(st, 31) == 0);
	struct store_doc list[64];
	int n;
	CHECK(store_list(st, list, 64, &n) == 0);
	CHECK(n == STORE_KEEP_GENS); /* pruned: 31 (aborted) .. 12 */
	CHECK(list[0].gen == 31 && strcmp(list[0].state, "aborted") == 0);
	CHECK(list[1].gen == 30 && strcmp(list[1].state, "committed") == 0);
	CHECK(strcmp(list[2].state, "superseded") == 0);
	for (int i = 0; i < n; i++)
		store_doc_free(&list[i]);
	struct store_doc d;
	CHECK(store_get(st, 3, &d) == TND_ENOENT);
	CHECK(store_get(st, 25, &d) == 0 && check_doc(&d, 5000, "get") == 0);
	store_doc_free(&d);
	store_close(st);
	/* reopened: the same; the floor survives pruning */
	CHECK(store_open(path, &st, err, sizeof(err)) == 0);
	CHECK(store_load(st, &s) == 0);
	CHECK(s.committed.gen == 30 && s.pending.gen == 0 && s.floor == 31);
	store_state_free(&s);
	store_close(st);
	/* not a database: refused with a sentence */
	FILE *f = fopen(path, "w");
	fputs("this is not a database, it is text long enough to be read as a header..........................................", f);
	fclose(f);
	CHECK(store_open(path, &st, err, sizeof(err)) != 0 && err[0]);
	printf("store_check api: ok (%s)\n", err);
	return 0;
}

static const char good_rs[] =
	"table inet tandem\n"
	"delete table inet tandem\n"
	"table inet tandem {\n"
	"\tchain input {\n"
	"\t\ttype filter hook input priority 0; policy accept;\n"
	"\t\ttcp dport 7401 counter accept comment \"good\"\n"
	"\t}\n"
	"}\n";
/* a syntax error on line 3 */
static const char bad_rs[] =
	"table inet tandem\n"
	"delete table inet tandem\n"
	"table inet tandem { chain input { type filter hook input priority 0; tcp dport sevenfourhundred accept; } }\n";
/* valid syntax, but the last command fails in the kernel's transaction:
 * the delete before it must not happen either */
static const char half_rs[] =
	"table inet tandem\n"
	"delete table inet tandem\n"
	"table inet tandem {\n"
	"\tchain input {\n"
	"\t\ttype filter hook input priority 0; policy accept;\n"
	"\t\tcounter comment \"half\"\n"
	"\t}\n"
	"}\n"
	"add rule inet tandem nosuchchain accept\n";

static int nft_mode(const char *step)
{
	char err[1024];
	int r;
	if (strcmp(step, "good") == 0) {
		CHECK(nft_validate(good_rs, err, sizeof(err)) == 0);
		CHECK(nft_apply(good_rs, err, sizeof(err)) == 0);
		CHECK(nft_apply(good_rs, err, sizeof(err)) == 0); /* again: idempotent */
		CHECK(nft_validate("", err, sizeof(err)) == 0);
		printf("store_check nft good: applied twice\n");
		return 0;
	}
	const char *rs = strcmp(step, "bad") == 0 ? bad_rs : half_rs;
	r = nft_validate(rs, err, sizeof(err));
	printf("store_check nft %s: validate -> %d: %s\n", step, r, err);
	CHECK(r == TND_EINVAL && err[0]);
	if (rs == bad_rs)
		CHECK(strstr(err, "syntax error") != NULL && strchr(err, '^') != NULL); /* nft points at it */
	r = nft_apply(rs, err, sizeof(err));
	printf("store_check nft %s: apply -> %d: %s\n", step, r, err);
	CHECK(r == TND_EINVAL && err[0]);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: store_check api|writer|verify|fill DB [ARG]\n");
		return 2;
	}
	const char *mode = argv[1], *path = argv[2];
	if (strcmp(mode, "api") == 0)
		return api(path);
	if (strcmp(mode, "nft") == 0)
		return nft_mode(path);
	char err[256];
	struct store *st;
	if (store_open(path, &st, err, sizeof(err)) != 0) {
		fprintf(stderr, "store_check: %s\n", err);
		return 1;
	}
	struct store_state s;
	if (store_load(st, &s) != 0) {
		fprintf(stderr, "store_check: load: %s\n", store_errmsg(st));
		return 1;
	}
	int rc = 0;
	if (strcmp(mode, "writer") == 0) {
		long n = argc > 3 ? atol(argv[3]) : 100;
		for (uint64_t g = s.committed.gen + 1; n-- > 0; g++)
			if (put(st, g, 200000) != 0) {
				fprintf(stderr, "store_check: writer: %s\n", store_errmsg(st));
				rc = 1;
				break;
			}
	} else if (strcmp(mode, "verify") == 0) {
		uint64_t min = argc > 3 ? strtoull(argv[3], NULL, 10) : 0;
		if (s.committed.gen < min) {
			fprintf(stderr, "store_check: committed gen went back: %llu < %llu\n",
				(unsigned long long)s.committed.gen, (unsigned long long)min);
			rc = 1;
		}
		if (s.committed.gen && check_doc(&s.committed, 200000, "committed"))
			rc = 1;
		if (s.pending.gen && check_doc(&s.pending, 200000, "pending"))
			rc = 1;
		printf("%llu\n", (unsigned long long)s.committed.gen);
	} else if (strcmp(mode, "fill") == 0) {
		uint64_t g = s.committed.gen + 1, last_ok = s.committed.gen;
		int r = 0;
		for (; g < 100000; g++) {
			if ((r = put(st, g, 200000)) != 0)
				break;
			last_ok = g;
		}
		printf("store_check fill: commit of gen %llu failed: %s (%s); last committed %llu\n",
		       (unsigned long long)g, tnd_strerror(r), store_errmsg(st),
		       (unsigned long long)last_ok);
		store_state_free(&s);
		store_close(st);
		if (r == 0)
			return 1;
		if (store_open(path, &st, err, sizeof(err)) != 0 || store_load(st, &s) != 0) {
			fprintf(stderr, "store_check: after full disk: %s\n", err);
			return 1;
		}
		if (s.committed.gen != last_ok || check_doc(&s.committed, 200000, "committed")) {
			fprintf(stderr, "store_check: after full disk: gen %llu, want %llu\n",
				(unsigned long long)s.committed.gen, (unsigned long long)last_ok);
			rc = 1;
		}
	} else {
		fprintf(stderr, "store_check: unknown mode %s\n", mode);
		rc = 2;
	}
	store_state_free(&s);
	store_close(st);
	return rc;
}
