/* test_cli.c - unit tests of tandemctl's pure parts: the unified line diff
 * (src/cli/linediff.c) and the configuration backup file
 * (src/cli/cfgbackup.c). Built and run by tests/cli/run.sh.
 *
 *   test_cli            run every test; exit 1 when any check failed
 *   test_cli diff A B   print linediff_unified(A, B) labelled A and B, for
 *                       run.sh to compare with diff(1) and feed to patch(1)
 *
 * The diff is checked on random inputs against two independent oracles:
 * applying it (a strict unified-diff applier below) must turn A into B,
 * and its changed lines must number |A| + |B| - 2 LCS(A, B), the LCS
 * computed by dynamic programming: a shortest edit script, not just a
 * correct one. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cfgbackup.h"
#include "cli/linediff.h"

static int checks, failures;

#define CHECK(cond, ...)                                                  \
	do {                                                              \
		checks++;                                                 \
		if (!(cond)) {                                            \
			failures++;                                       \
			fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
			fprintf(stderr, __VA_ARGS__);                     \
			fprintf(stderr, "\n");                            \
		}                                                         \
	} while (0)

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(uint32_t n)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state % n);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- a strict unified-diff applier and an LCS oracle ---------------- */

struct lines {
	size_t n;
	const char *p[4096];
	size_t len[4096]; /* with the '\n' when present */
};

static void split(const char *t, size_t len, struct lines *l)
{
	size_t s = 0;

	l->n = 0;
	for (size_t i = 0; i < len; i++) {
		if (t[i] == '\n' || i + 1 == len) {
			l->p[l->n] = t + s;
			l->len[l->n++] = i + 1 - s;
			s = i + 1;
		}
	}
}

static size_t lcs(const struct lines *a, const struct lines *b)
{
	static size_t dp[256][256];

	for (size_t i = 0; i <= a->n; i++)
		for (size_t j = 0; j <= b->n; j++) {
			if (!i || !j)
				dp[i][j] = 0;
			else if (a->len[i - 1] == b->len[j - 1] &&
				 memcmp(a->p[i - 1], b->p[j - 1], a->len[i - 1]) == 0)
				dp[i][j] = dp[i - 1][j - 1] + 1;
			else
				dp[i][j] = dp[i - 1][j] > dp[i][j - 1] ? dp[i - 1][j] : dp[i][j - 1];
		}
	return dp[a->n][b->n];
}

/* Read "-l,s" / "+l,s" (s defaults to 1). */
static const char *range(const char *p, char side, size_t *start, size_t *count)
{
	char *end;

	if (*p++ != side)
		return NULL;
	*start = strtoul(p, &end, 10);
	*count = 1;
	if (*end == ',')
		*count = strtoul(end + 1, &end, 10);
	return end;
}

/* Apply `diff` to a; the result in out. false (with why) when the diff
 * is malformed or does not fit a. Also counts changed lines and checks
 * that hunks never hold more than `ctx` context lines at either end. */
static bool apply_diff(const char *a, size_t alen, const char *diff, char *out, size_t *out_len,
		       size_t *changed, size_t ctx, const char **why)
{
	struct lines *la = malloc(sizeof *la);
	const char *p = diff;
	size_t ai = 0, o = 0;
	bool ok = false;

	*changed = 0;
	split(a, alen, la);
	if (strncmp(p, "--- ", 4) != 0 || !(p = strchr(p, '\n')) || strncmp(p + 1, "+++ ", 4) != 0 ||
	    !(p = strchr(p + 1, '\n'))) {
		*why = "no --- / +++ header";
		goto out;
	}
	p++;
	while (*p) {
		size_t as, ac, bs, bc, seen_a = 0, seen_b = 0, lead = 0, trail = 0;
		bool any_change = false;
		const char *q;

		if (strncmp(p, "@@ ", 3) != 0) {
			*why = "expected a hunk header";
			goto out;
		}
		q = range(p + 3, '-', &as, &ac);
		if (!q || *q != ' ' || !(q = range(q + 1, '+', &bs, &bc)) || strncmp(q, " @@\n", 4) != 0) {
			*why = "malformed hunk header";
			goto out;
		}
		p = q + 4;
		/* The first line of the hunk in a, 0-based. */
		size_t first = ac ? as - 1 : as;
		if (first < ai) {
			*why = "hunks overlap or go backwards";
			goto out;
		}
		while (ai < first) { /* copy the lines between hunks */
			memcpy(out + o, la->p[ai], la->len[ai]);
			o += la->len[ai++];
		}
		while (*p && *p != '@') {
			char kind = *p++;
			const char *eol = strchr(p, '\n');
			size_t len = eol ? (size_t)(eol - p) + 1 : strlen(p);
			bool nonl = strncmp(p + len, "\\ No newline at end of file\n", 28) == 0;
			size_t tlen = nonl ? len - 1 : len;

			if (kind == ' ' || kind == '-') {
				if (ai >= la->n || la->len[ai] != tlen || memcmp(la->p[ai], p, tlen) != 0) {
					*why = "context or deleted line does not match a";
					goto out;
				}
				ai++;
				seen_a++;
			}
			if (kind == ' ' || kind == '+') {
				memcpy(out + o, p, tlen);
				o += tlen;
				seen_b++;
			}
			if (kind == ' ') {
				if (!any_change)
					lead++;
				trail++;
			} else if (kind == '-' || kind == '+') {
				any_change = true;
				trail = 0;
				(*changed)++;
			} else {
				*why = "unknown line kind";
				goto out;
			}
			p += len + (nonl ? 28 : 0);
		}
		if (seen_a != ac || seen_b != bc) {
			*why = "hunk line counts differ from its header";
			goto out;
		}
		if (!any_change || lead > ctx || trail > ctx) {
			*why = "hunk without change or with too much context";
			goto out;
		}
	}
	while (ai < la->n) {
		memcpy(out + o, la->p[ai], la->len[ai]);
		o += la->len[ai++];
	}
	*out_len = o;
	ok = true;
out:
	free(la);
	return ok;
}

/* ---- line diff ------------------------------------------------------ */

static void expect_diff(const char *a, const char *b, const char *want, int line)
{
	char *out;
	size_t len;
	enum linediff_result r;
	int rc = linediff_unified(a, strlen(a), b, strlen(b), "A", "B", NULL, &out, &len, &r);

	CHECK(rc == 0, "line %d: rc %d", line, rc);
	if (rc)
		return;
	CHECK(strcmp(out, want) == 0, "line %d: got\n%s\nwanted\n%s", line, out, want);
	CHECK(len == strlen(out), "line %d: length %zu", line, len);
	CHECK(r == (*want ? LINEDIFF_DIFF : LINEDIFF_EQUAL), "line %d: result %d", line, r);
	free(out);
}

static void test_diff_known(void)
{
	expect_diff("", "", "", __LINE__);
	expect_diff("a\nb\n", "a\nb\n", "", __LINE__);
	expect_diff("a\nb\nc\n", "a\nB\nc\n", "--- A\n+++ B\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n", __LINE__);
	expect_diff("", "x\n", "--- A\n+++ B\n@@ -0,0 +1 @@\n+x\n", __LINE__);
	expect_diff("x\n", "", "--- A\n+++ B\n@@ -1 +0,0 @@\n-x\n", __LINE__);
	expect_diff("x", "x\n", "--- A\n+++ B\n@@ -1 +1 @@\n-x\n\\ No newline at end of file\n+x\n",
		    __LINE__);
	expect_diff("a\nb\n", "a\nb\nc", "--- A\n+++ B\n@@ -1,2 +1,3 @@\n a\n b\n+c\n"
		    "\\ No newline at end of file\n", __LINE__);
	/* Deletions before additions within one change. */
	expect_diff("1\n2\n3\n4\n5\n6\n7\n8\n", "1\n2\n3\nX\nY\n6\n7\n8\n",
		    "--- A\n+++ B\n@@ -1,8 +1,8 @@\n 1\n 2\n 3\n-4\n-5\n+X\n+Y\n 6\n 7\n 8\n", __LINE__);
	/* Two changes 7 lines apart: two hunks; 6 apart: one. */
	expect_diff("1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n", "1\nB\n3\n4\n5\n6\n7\n8\n9\n10\nK\n12\n",
		    "--- A\n+++ B\n@@ -1,5 +1,5 @@\n 1\n-2\n+B\n 3\n 4\n 5\n@@ -8,5 +8,5 @@\n 8\n 9\n 10\n-11\n+K\n 12\n",
		    __LINE__);
	expect_diff("1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n", "1\nB\n3\n4\n5\n6\n7\n8\nI\n10\n",
		    "--- A\n+++ B\n@@ -1,10 +1,10 @@\n 1\n-2\n+B\n 3\n 4\n 5\n 6\n 7\n 8\n-9\n+I\n 10\n",
		    __LINE__);
}

/* Random texts over a few distinct lines, so there is much to align. */
static size_t random_text(char *buf, size_t max_lines)
{
	static const char *words[] = { "a", "b", "c", "d", "  key: value", "" };
	size_t n = rnd((uint32_t)max_lines + 1), o = 0;

	for (size_t i = 0; i < n; i++) {
		const char *w = words[rnd(6)];
		memcpy(buf + o, w, strlen(w));
		o += strlen(w);
		buf[o++] = '\n';
	}
	if (o > 0 && rnd(5) == 0)
		o--; /* no newline at the end */
	return o;
}

static void test_diff_random(int rounds)
{
	static char a[8192], b[8192], got[16384];
	struct lines *la = malloc(sizeof *la), *lb = malloc(sizeof *lb);
	int bad = 0;

	for (int i = 0; i < rounds && bad < 5; i++) {
		size_t al = random_text(a, 1 + rnd(40)), bl, gl = 0, changed, l;
		struct linediff_limits lim = { .context_lines = (int)rnd(5) };
		enum linediff_result r;
		const char *why = "";
		char *out;

		/* Half the time B is an edit of A, as configurations are. */
		if (rnd(2)) {
			bl = random_text(b, 1 + rnd(40));
		} else {
			memcpy(b, a, al);
			bl = al;
			for (int e = (int)rnd(4); e > 0 && bl > 2; e--) {
				size_t at = rnd((uint32_t)bl);
				b[at] = (char)('a' + rnd(4));
			}
		}
		if (linediff_unified(a, al, b, bl, "A", "B", &lim, &out, &l, &r) != 0) {
			CHECK(0, "round %d: linediff failed", i);
			bad++;
			continue;
		}
		split(a, al, la);
		split(b, bl, lb);
		if (al == bl && memcmp(a, b, al) == 0) {
			CHECK(r == LINEDIFF_EQUAL && *out == '\0', "round %d: equal texts", i);
		} else {
			bool ok = r == LINEDIFF_DIFF &&
				  apply_diff(a, al, out, got, &gl, &changed, (size_t)lim.context_lines, &why);
			CHECK(ok, "round %d: diff does not apply: %s\n%s", i, why, out);
			if (ok) {
				CHECK(gl == bl && memcmp(got, b, bl) == 0, "round %d: patched A is not B", i);
				CHECK(changed == la->n + lb->n - 2 * lcs(la, lb),
				      "round %d: %zu changed lines, shortest is %zu\n%s", i, changed,
				      la->n + lb->n - 2 * lcs(la, lb), out);
			} else {
				bad++;
			}
		}
		free(out);
	}
	free(la);
	free(lb);
}

static char *many_lines(size_t n, const char *fmt, unsigned salt, size_t *len)
{
	char *t = malloc(n * 32 + 1);
	size_t o = 0;

	for (size_t i = 0; i < n; i++)
		o += (size_t)sprintf(t + o, fmt, (unsigned)i, salt);
	*len = o;
	return t;
}

static void test_diff_bounds(void)
{
	size_t al, bl, l;
	char *a = many_lines(40000, "line %u of %u\n", 1, &al);
	char *b = many_lines(40000, "line %u of %u\n", 2, &bl);
	char *out;
	enum linediff_result r;
	double t0;

	/* 80,000 changes: far beyond the trace bound -> summary, fast. */
	t0 = now_s();
	CHECK(linediff_unified(a, al, b, bl, "A", "B", NULL, &out, &l, &r) == 0, "rc");
	CHECK(r == LINEDIFF_SUMMARY, "result %d", r);
	CHECK(strstr(out, "--- A\n+++ B\nthe texts differ (40000 and 40000 lines") == out, "%s", out);
	CHECK(now_s() - t0 < 20, "took %.1f s", now_s() - t0);
	printf("  summary of 40000 x 40000 changed lines: %.2f s\n", now_s() - t0);
	free(out);

	/* A few changes in a large text: a real diff, quickly. */
	memcpy(b, a, al);
	bl = al;
	b[100] = 'X';
	b[al / 2] = 'Y';
	b[al - 3] = 'Z';
	t0 = now_s();
	CHECK(linediff_unified(a, al, b, bl, "A", "B", NULL, &out, &l, &r) == 0, "rc");
	CHECK(r == LINEDIFF_DIFF, "result %d", r);
	CHECK(strstr(out, "@@ -6,7 +6,7 @@\n line 5 of 1\n") != NULL, "%.300s", out);
	printf("  3 changes in 40000 lines: %.3f s, %zu bytes of diff\n", now_s() - t0, l);
	free(out);

	/* The same small diff under a tiny memory bound: a summary, not a
	 * crash or an allocation beyond it. */
	struct linediff_limits tiny = { .mem_max_bytes = 4096, .context_lines = -1 };
	CHECK(linediff_unified(a, al, b, bl, "A", "B", &tiny, &out, &l, &r) == 0, "rc");
	CHECK(r == LINEDIFF_SUMMARY, "tiny memory: result %d", r);
	free(out);
	/* And a work bound of 10 comparisons. */
	struct linediff_limits lazy = { .work_max = 10, .context_lines = -1 };
	const char *x = "a\nb\nc\nd\ne\n", *y = "a\nc\nb\ne\nd\nf\n";
	CHECK(linediff_unified(x, strlen(x), y, strlen(y), "A", "B", &lazy, &out, &l, &r) == 0, "rc");
	CHECK(r == LINEDIFF_SUMMARY, "work bound: result %d", r);
	free(out);
	CHECK(linediff_unified(x, strlen(x), y, strlen(y), "A", "B", NULL, &out, &l, &r) == 0, "rc");
	CHECK(r == LINEDIFF_DIFF, "default bound: result %d", r);
	free(out);

	/* Adversarial: 1 MiB of one repeated line against the same with
	 * every other line changed: long snakes on many diagonals. */
	free(a);
	free(b);
	al = bl = 1024 * 1024;
	a = malloc(al);
	b = malloc(bl);
	for (size_t i = 0; i < al; i += 2) {
		a[i] = 'x';
		a[i + 1] = '\n';
		b[i] = (i / 2) % 2 ? 'y' : 'x';
		b[i + 1] = '\n';
	}
	t0 = now_s();
	CHECK(linediff_unified(a, al, b, bl, "A", "B", NULL, &out, &l, &r) == 0, "rc");
	CHECK(r == LINEDIFF_SUMMARY, "adversarial: result %d", r);
	CHECK(now_s() - t0 < 30, "adversarial took %.1f s", now_s() - t0);
	printf("  1 MiB adversarial (262144 changes): %.2f s -> summary\n", now_s() - t0);
	free(out);
	free(a);
	free(b);
}

/* ---- backup file ---------------------------------------------------- */

static const char *YAML =
	"cluster: {name: edge1, id: 1, key_file: /etc/tandem/cluster.key}\n"
	"nodes:\n"
	"  - {name: gw1, links: [203.0.113.1]}\n"
	"  - {name: gw2, links: [203.0.113.2]}\n";
static const char *RULESET = "table inet filter {\n\tchain input { type filter hook input priority 0; }\n}\n";

static char *good_backup(void)
{
	struct cfgbackup b = { .cluster = "edge1", .generation = 7, .created = 1700000000,
			       .generation_created = 1690000000 };
	json_t *o;
	char *s;

	b.yaml = (char *)YAML;
	b.yaml_len = strlen(YAML);
	b.ruleset = (char *)RULESET;
	b.ruleset_len = strlen(RULESET);
	CHECK(cfgbackup_digest_hex(YAML, strlen(YAML), RULESET, strlen(RULESET), b.digest) == 0, "digest");
	o = cfgbackup_to_json(&b);
	s = json_dumps(o, JSON_INDENT(2));
	json_decref(o);
	return s;
}

/* Parse `text`, which must fail with a reason containing `want`. */
static void expect_bad(const char *text, const char *want, int line)
{
	struct cfgbackup b;
	char why[512] = "";
	int r = cfgbackup_parse(text, strlen(text), &b, why, sizeof why);

	CHECK(r == TND_EINVAL, "line %d: rc %d (%s)", line, r, why);
	CHECK(strstr(why, want) != NULL, "line %d: reason '%s' lacks '%s'", line, why, want);
	CHECK(b.yaml == NULL && b.ruleset == NULL, "line %d: texts left on failure", line);
	cfgbackup_free(&b);
}

/* The good backup with one member replaced (raw JSON value) or removed. */
static char *with_member(const char *key, const char *raw)
{
	char *g = good_backup();
	json_t *o = json_loads(g, 0, NULL);
	char *s;

	free(g);
	if (raw) {
		json_t *v = json_loads(raw, JSON_DECODE_ANY, NULL);
		json_object_set_new(o, key, v);
	} else {
		json_object_del(o, key);
	}
	s = json_dumps(o, 0);
	json_decref(o);
	return s;
}

static void expect_bad_member(const char *key, const char *raw, const char *want, int line)
{
	char *s = with_member(key, raw);
	expect_bad(s, want, line);
	free(s);
}

static void test_backup_parse(void)
{
	struct cfgbackup b;
	char why[512] = "", *g = good_backup(), *s;
	char hex[CFGBACKUP_DIGEST_HEX_LEN + 1];

	CHECK(cfgbackup_parse(g, strlen(g), &b, why, sizeof why) == 0, "good backup: %s", why);
	CHECK(strcmp(b.cluster, "edge1") == 0 && b.generation == 7 && b.created == 1700000000 &&
	      b.generation_created == 1690000000, "fields");
	CHECK(b.yaml && strcmp(b.yaml, YAML) == 0 && b.yaml_len == strlen(YAML), "yaml");
	CHECK(b.ruleset && strcmp(b.ruleset, RULESET) == 0, "ruleset");
	cfgbackup_free(&b);
	/* The digest is the cluster's: BLAKE2b-256 of the encoded document;
	 * a known value pins the encoding (cfgsync_doc_encode). */
	CHECK(cfgbackup_digest_hex("", 0, "", 0, hex) == 0, "digest of empty");
	CHECK(strlen(hex) == 64, "hex length");
	/* generation_created may be null. */
	s = with_member("generation_created", "null");
	CHECK(cfgbackup_parse(s, strlen(s), &b, why, sizeof why) == 0 && b.generation_created == -1,
	      "null generation_created: %s", why);
	cfgbackup_free(&b);
	free(s);

	expect_bad("", "not JSON", __LINE__);
	expect_bad("{\"format\": \"tandem-config-backup/1\", \"yaml\": ", "not JSON", __LINE__);
	g[strlen(g) / 2] = '\0'; /* truncated */
	expect_bad(g, "not JSON", __LINE__);
	free(g);
	expect_bad("[1, 2]", "not a JSON object", __LINE__);
	expect_bad("{\"a\": 1, \"a\": 2}", "not JSON", __LINE__); /* duplicate keys */
	expect_bad("{\"name\": \"something else\"}", "no \"format\"", __LINE__);
	expect_bad_member("format", NULL, "no \"format\"", __LINE__);
	expect_bad_member("format", "\"tandem-config-backup/2\"", "not one this tandemctl reads", __LINE__);
	expect_bad_member("format", "\"keepalived-backup\"", "not a Tandem configuration backup", __LINE__);
	expect_bad_member("format", "1", "no \"format\"", __LINE__);
	expect_bad_member("cluster", NULL, "\"cluster\"", __LINE__);
	expect_bad_member("cluster", "\"\"", "\"cluster\"", __LINE__);
	expect_bad_member("cluster", "7", "\"cluster\"", __LINE__);
	expect_bad_member("generation", "\"7\"", "\"generation\"", __LINE__);
	expect_bad_member("generation", "-1", "out of range", __LINE__);
	expect_bad_member("generation", "7.5", "\"generation\"", __LINE__);
	expect_bad_member("generation", NULL, "\"generation\" is missing", __LINE__);
	expect_bad_member("created", "true", "\"created\"", __LINE__);
	expect_bad_member("generation_created", "\"x\"", "\"generation_created\"", __LINE__);
	expect_bad_member("digest", "\"abc\"", "\"digest\"", __LINE__);
	expect_bad_member("digest", NULL, "\"digest\"", __LINE__);
	expect_bad_member("digest",
		"\"ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789\"", "\"digest\"",
		__LINE__);
	expect_bad_member("digest",
		"\"00000000000000000000000000000000000000000000000000000000000000ff\"", "corrupt", __LINE__);
	expect_bad_member("yaml", NULL, "\"yaml\" is missing", __LINE__);
	expect_bad_member("yaml", "[]", "\"yaml\"", __LINE__);
	/* A NUL character inside a text: JSON allows it, a document not. */
	g = good_backup();
	s = malloc(strlen(g) + 8);
	char *at = strstr(g, "\"yaml\": \"") + 9;
	sprintf(s, "%.*s\\u0000%s", (int)(at - g), g, at);
	expect_bad(s, "\\u0000", __LINE__);
	free(s);
	free(g);
	expect_bad_member("ruleset", "42", "\"ruleset\"", __LINE__);
	/* One character of the YAML changed: the digest catches it. */
	s = with_member("yaml", "\"cluster: {name: edge2, id: 1, key_file: /etc/tandem/cluster.key}\\n\"");
	expect_bad(s, "corrupt", __LINE__);
	free(s);
}

static void test_backup_write(void)
{
	char dir[] = "/tmp/tnd-cli-test-XXXXXX", path[128], why[512], buf[64];
	struct stat st;
	struct cfgbackup b;
	int fd;
	ssize_t n;

	CHECK(mkdtemp(dir) != NULL, "mkdtemp: %s", strerror(errno));
	snprintf(path, sizeof path, "%s/backup.json", dir);
	umask(022);
	CHECK(cfgbackup_write(path, "one\n", 4, false, why, sizeof why) == 0, "write: %s", why);
	CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600, "mode %o", st.st_mode & 0777);
	CHECK(cfgbackup_write(path, "two\n", 4, false, why, sizeof why) == TND_EREFUSED,
	      "an existing file must not be replaced without asking");
	fd = open(path, O_RDONLY);
	n = read(fd, buf, sizeof buf);
	close(fd);
	CHECK(n == 4 && memcmp(buf, "one\n", 4) == 0, "content changed by a refused write");
	CHECK(cfgbackup_write(path, "two\n", 4, true, why, sizeof why) == 0, "replace: %s", why);
	fd = open(path, O_RDONLY);
	n = read(fd, buf, sizeof buf);
	close(fd);
	CHECK(n == 4 && memcmp(buf, "two\n", 4) == 0, "content not replaced");
	/* No temporary file left behind. */
	char cmd[256];
	snprintf(cmd, sizeof cmd, "test $(ls -A %s | wc -l) -eq 1", dir);
	CHECK(system(cmd) == 0, "temporary files left in %s", dir);
	snprintf(path, sizeof path, "%s/missing-dir/backup.json", dir);
	CHECK(cfgbackup_write(path, "x", 1, false, why, sizeof why) == TND_EIO, "missing dir");
	/* Reading: a missing file and a file over the size bound. */
	CHECK(cfgbackup_read(path, &b, why, sizeof why) == TND_EIO && strstr(why, "cannot read"),
	      "missing file: %s", why);
	snprintf(path, sizeof path, "%s/huge.json", dir);
	fd = open(path, O_WRONLY | O_CREAT, 0600);
	CHECK(ftruncate(fd, CFGBACKUP_FILE_MAX_BYTES + 1) == 0, "truncate");
	close(fd);
	CHECK(cfgbackup_read(path, &b, why, sizeof why) == TND_EINVAL && strstr(why, "larger than"),
	      "huge file: %s", why);
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	CHECK(system(cmd) == 0, "cleanup");
}

/* A whole small file (NULL when unreadable). */
static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *t = malloc(4 * 1024 * 1024);

	*len = 0;
	if (!f || !t) {
		if (f)
			fclose(f);
		free(t);
		return NULL;
	}
	*len = fread(t, 1, 4 * 1024 * 1024, f);
	fclose(f);
	return t;
}

static int diff_files(const char *pa, const char *pb)
{
	size_t al, bl, l;
	char *a = slurp(pa, &al), *b = slurp(pb, &bl), *out;
	enum linediff_result r;

	if (!a || !b || linediff_unified(a, al, b, bl, pa, pb, NULL, &out, &l, &r) != 0) {
		free(a);
		free(b);
		return 2;
	}
	fwrite(out, 1, l, stdout);
	free(out);
	free(a);
	free(b);
	return r == LINEDIFF_EQUAL ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "diff") == 0)
		return diff_files(argv[2], argv[3]);
	test_diff_known();
	test_diff_random(3000);
	test_diff_bounds();
	test_backup_parse();
	test_backup_write();
	printf("test_cli: %d checks, %d failed\n", checks, failures);
	return failures ? 1 : 0;
}
