/* xfer_check.c - the image transfer driver (src/io/xferio.c) with real
 * files, driven by tests/lab/test_xfer.sh.
 *
 *   xfer_check DIR [MB]
 *
 * Two xferio instances (node 0 serves, node 1 fetches) in one process,
 * each with its own state directory under DIR, exchanging packets through
 * an in-memory link that seals and opens them with the real cluster-key
 * AEAD (seal.h), with seeded loss, duplication and reordering and a
 * virtual clock (so the 30 s idle timeout costs no real time). Checks:
 *   copy      a random image (3 MB) over a lossy, duplicating, reordering
 *             link: one callback with 0, the copy byte-identical, renamed
 *             into images/, no partial file left;
 *   speed     lossless copies of 3 MB and MB (default 64) MB: the wall-clock
 *             throughput in one process, sealing included (printed);
 *   corrupt   one byte of one chunk flipped after the AEAD (what a bad disk
 *             or a bug would do): caught by the final digest (TND_EAUTH),
 *             nothing installed, nothing left behind;
 *   nack, timeout, cancel, present, several (4 at once, a 5th refused),
 *   leftovers of a crash removed at start, import refusals, gc.
 * Exits 0 when every check passed; prints one line per check. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <sodium.h>

#include "core/rng.h"
#include "core/seal.h"
#include "io/xferio.h"

#define CLUSTER 9
#define Q_MAX 16384 /* packets queued on the link (a socket buffer) */

struct qpkt {
	int to;
	size_t len;
	uint8_t b[WIRE_MTU];
};

struct result {
	int n;
	uint8_t dg[32];
	int rc;
	char why[256];
};

struct link {
	struct seal_key key;
	struct qpkt *q;
	int head, n;
	uint64_t rng;
	unsigned loss_pct, dup_pct, reorder_pct;
	bool drop_all;
	int corrupt_chunk; /* flip a byte of this chunk's first DATA (-1 none) */
	bool corrupted;
	uint64_t sent, dropped, overflow;
	mono_t now;
	struct xferio *node[2];
	struct result res[2];
};

static int failures;

static void check(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void check(bool ok, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("%s: ", ok ? "ok" : "FAIL");
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	fflush(stdout);
	if (!ok)
		failures++;
}

static double wall(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

struct ctx {
	struct link *l;
	int self;
};
static struct ctx ctxs[2];

static void on_send(void *arg, int to, const uint8_t *pkt, size_t len)
{
	struct ctx *c = arg;
	struct link *l = c->l;
	l->sent++;
	if (to < 0 || to > 1 || to == c->self) {
		fprintf(stderr, "xfer_check: send to %d from %d\n", to, c->self);
		abort();
	}
	if (l->n >= Q_MAX) {
		l->overflow++;
		return;
	}
	struct qpkt *p = &l->q[(l->head + l->n++) % Q_MAX];
	p->to = to;
	if (seal_packet(&l->key, pkt, len, p->b, sizeof(p->b), &p->len) != 0) {
		fprintf(stderr, "xfer_check: seal failed\n");
		abort();
	}
}

static void on_done(void *arg, const uint8_t digest[32], int rc, const char *why)
{
	struct ctx *c = arg;
	struct result *r = &c->l->res[c->self];
	r->n++;
	memcpy(r->dg, digest, 32);
	r->rc = rc;
	snprintf(r->why, sizeof(r->why), "%s", why ? why : "");
}

static struct xferio *node_new(struct link *l, const char *dir, int self)
{
	ctxs[self].l = l;
	ctxs[self].self = self;
	struct xferio *x = xferio_new(dir, self, CLUSTER, 1, 1000 + (uint64_t)self, on_send,
				      on_done, &ctxs[self]);
	if (!x) {
		fprintf(stderr, "xfer_check: xferio_new %s: %s\n", dir, strerror(errno));
		exit(2);
	}
	return x;
}

static void link_init(struct link *l, const char *base, const char *tag)
{
	memset(l, 0, sizeof(*l));
	l->q = calloc(Q_MAX, sizeof(*l->q));
	uint8_t secret[32];
	randombytes_buf(secret, sizeof(secret));
	seal_key_derive(&l->key, secret, sizeof(secret));
	l->rng = 0x1234567 + strlen(tag);
	l->corrupt_chunk = -1;
	l->now = MS_TO_MONO(5000);
	char d[512];
	for (int i = 0; i < 2; i++) {
		snprintf(d, sizeof(d), "%s/%s-%d", base, tag, i);
		mkdir(d, 0700);
		l->node[i] = node_new(l, d, i);
	}
}

static void link_free(struct link *l)
{
	for (int i = 0; i < 2; i++)
		xferio_free(l->node[i]);
	free(l->q);
}

/* One packet off the link (maybe another than the oldest), opened and
 * handed to its node. */
static void deliver_one(struct link *l)
{
	int k = 0;
	if (l->reorder_pct && l->n > 1 && rng_next(&l->rng) % 100 < l->reorder_pct)
		k = 1 + (int)(rng_next(&l->rng) % (uint64_t)(l->n - 1 < 32 ? l->n - 1 : 32));
	struct qpkt p = l->q[(l->head + k) % Q_MAX];
	if (k)
		l->q[(l->head + k) % Q_MAX] = l->q[l->head];
	l->head = (l->head + 1) % Q_MAX;
	l->n--;
	l->now += 5000; /* 5 us of virtual time per packet */
	if (l->drop_all || (l->loss_pct && rng_next(&l->rng) % 100 < l->loss_pct)) {
		l->dropped++;
		return;
	}
	if (l->dup_pct && rng_next(&l->rng) % 100 < l->dup_pct && l->n < Q_MAX)
		l->q[(l->head + l->n++) % Q_MAX] = p;
	struct wire_hdr h;
	uint8_t body[WIRE_MTU];
	size_t blen;
	if (seal_open(&l->key, CLUSTER, p.b, p.len, &h, body, sizeof(body), &blen) != 0) {
		fprintf(stderr, "xfer_check: a packet did not open\n");
		abort();
	}
	if (h.type == XFER_MSG_DATA && l->corrupt_chunk >= 0 && !l->corrupted) {
		struct xfer_msgv m;
		if (xfer_msg_decode(h.type, body, blen, &m) == 0 &&
		    m.index == (uint32_t)l->corrupt_chunk) {
			/* past the AEAD: only the final digest can see this */
			((uint8_t *)m.data)[m.data_len / 2] ^= 0x01;
			l->corrupted = true;
		}
	}
	xferio_recv(l->node[p.to], &h, body, blen, l->now);
}

/* Run until node 1 reported `want` results or max_ms of virtual time. */
static void pump(struct link *l, int want, int max_ms)
{
	mono_t end = l->now + MS_TO_MONO(max_ms);
	while (l->res[1].n < want && l->now < end) {
		if (l->n) {
			deliver_one(l);
			continue;
		}
		mono_t w = xferio_next_wake(l->node[1]);
		if (w == MONO_NEVER)
			break;
		if (w > l->now)
			l->now = w;
		xferio_tick(l->node[1], l->now);
	}
}

static uint8_t *random_file(const char *path, size_t len)
{
	uint8_t *b = malloc(len);
	randombytes_buf(b, len);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, b, len) != (ssize_t)len || close(fd) != 0) {
		fprintf(stderr, "xfer_check: cannot write %s\n", path);
		exit(2);
	}
	return b;
}

static bool file_equals(const char *path, const uint8_t *b, size_t len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return false;
	uint8_t *c = malloc(len + 1);
	size_t n = fread(c, 1, len + 1, f);
	fclose(f);
	bool ok = n == len && memcmp(c, b, len) == 0;
	free(c);
	return ok;
}

static int count_partials(const char *base, const char *tag, int node)
{
	char cmd[700];
	snprintf(cmd, sizeof(cmd), "ls -A '%s/%s-%d/images' | grep -c '^\\.partial-' || true", base,
		 tag, node);
	FILE *p = popen(cmd, "r");
	int n = -1;
	if (p) {
		if (fscanf(p, "%d", &n) != 1)
			n = -1;
		pclose(p);
	}
	return n;
}

/* Import `len` random bytes on node 0; returns the bytes. */
static uint8_t *serve_new(struct link *l, const char *base, const char *name, size_t len,
			  uint8_t dg[32])
{
	char src[512];
	snprintf(src, sizeof(src), "%s/%s", base, name);
	uint8_t *b = random_file(src, len);
	uint64_t bytes;
	int rc = xferio_import(l->node[0], src, dg, &bytes);
	if (rc != 0 || bytes != len) {
		fprintf(stderr, "xfer_check: import %s: %s\n", src, tnd_strerror(rc));
		exit(2);
	}
	uint8_t want[32];
	crypto_generichash(want, 32, b, len, NULL, 0);
	if (memcmp(want, dg, 32) != 0) {
		fprintf(stderr, "xfer_check: import digest differs\n");
		exit(2);
	}
	return b;
}

static void t_copy(const char *base)
{
	struct link l;
	link_init(&l, base, "copy");
	l.loss_pct = 5;
	l.dup_pct = 2;
	l.reorder_pct = 5;
	uint8_t dg[32];
	size_t len = 3 * 1000 * 1000 + 17;
	uint8_t *b = serve_new(&l, base, "copy.src", len, dg);
	mono_t v0 = l.now;
	double t0 = wall();
	int rc = xferio_fetch(l.node[1], dg, len, 0, l.now);
	check(rc == 0, "copy: fetch started (%d)", rc);
	check(xferio_fetch(l.node[1], dg, len, 0, l.now) == 0, "copy: a second fetch of the same image is not started twice");
	uint64_t got = 0, total = 0;
	pump(&l, 1, 200);
	int prc = xferio_progress(l.node[1], dg, &got, &total);
	check(prc == 0 && total == len && got > 0 && got < len,
	      "copy: progress midway %llu of %llu bytes", (unsigned long long)got,
	      (unsigned long long)total);
	pump(&l, 1, 120000);
	double dt = wall() - t0;
	char path[600];
	xferio_path(l.node[1], dg, path, sizeof(path));
	check(l.res[1].n == 1 && l.res[1].rc == 0 && memcmp(l.res[1].dg, dg, 32) == 0,
	      "copy: one callback, rc %d %s", l.res[1].rc, l.res[1].why);
	check(file_equals(path, b, len), "copy: %s is byte-identical (%zu bytes)", path, len);
	uint64_t have = 0;
	check(xferio_have(l.node[1], dg, &have) && have == len, "copy: xferio_have says present");
	check(count_partials(base, "copy", 1) == 0, "copy: no partial file left");
	check(xferio_progress(l.node[1], dg, NULL, NULL) == TND_ENOENT, "copy: no progress after the end");
	struct xferio_stats st;
	xferio_get_stats(l.node[1], &st);
	printf("copy: %zu bytes over 5%% loss, 2%% duplicates, 5%% reordering: %.0f ms wall, "
	       "%lld ms virtual, %llu packets sent, %llu dropped, %llu duplicates dropped\n",
	       len, dt * 1000, (long long)MONO_TO_MS(l.now - v0), (unsigned long long)l.sent,
	       (unsigned long long)l.dropped, (unsigned long long)st.core.rx_dup);
	/* present now: no fetch, no callback */
	check(xferio_fetch(l.node[1], dg, len, 0, l.now) == 1 && l.res[1].n == 1,
	      "present: fetch of a present image returns 1 without a callback");
	check(xferio_fetch(l.node[1], dg, len + 1, 0, l.now) == TND_EINVAL,
	      "present: fetch with another size refused");
	free(b);
	link_free(&l);
}

static void t_speed(const char *base, size_t mb)
{
	size_t sizes[2] = { 3 * 1000 * 1000, mb * 1000 * 1000 };
	for (int i = 0; i < 2; i++) {
		struct link l;
		char tag[32];
		snprintf(tag, sizeof(tag), "speed%d", i);
		link_init(&l, base, tag);
		uint8_t dg[32];
		uint8_t *b = serve_new(&l, base, "speed.src", sizes[i], dg);
		double t0 = wall();
		check(xferio_fetch(l.node[1], dg, sizes[i], 0, l.now) == 0, "speed: fetch started");
		pump(&l, 1, 600000);
		double dt = wall() - t0;
		char path[600];
		xferio_path(l.node[1], dg, path, sizeof(path));
		bool ok = l.res[1].n == 1 && l.res[1].rc == 0 && file_equals(path, b, sizes[i]);
		check(ok, "speed: %zu bytes copied in %.0f ms: %.1f MB/s in one process "
		      "(seal + open + pread + pwrite + BLAKE2b, both ends on one core), %llu packets",
		      sizes[i], dt * 1000, sizes[i] / dt / 1e6, (unsigned long long)l.sent);
		free(b);
		link_free(&l);
	}
}

static void t_corrupt(const char *base)
{
	struct link l;
	link_init(&l, base, "corrupt");
	l.corrupt_chunk = 777;
	uint8_t dg[32];
	size_t len = 3 * 1000 * 1000;
	uint8_t *b = serve_new(&l, base, "corrupt.src", len, dg);
	check(xferio_fetch(l.node[1], dg, len, 0, l.now) == 0, "corrupt: fetch started");
	pump(&l, 1, 60000);
	check(l.corrupted, "corrupt: one byte of chunk 777 flipped in transit");
	check(l.res[1].n == 1 && l.res[1].rc == TND_EAUTH && strstr(l.res[1].why, "digest mismatch"),
	      "corrupt: caught by the final digest: rc %d \"%s\"", l.res[1].rc, l.res[1].why);
	check(!xferio_have(l.node[1], dg, NULL), "corrupt: nothing installed");
	check(count_partials(base, "corrupt", 1) == 0, "corrupt: partial file deleted");
	/* the next try, on a clean link, gets it */
	l.res[1].n = 0;
	l.corrupt_chunk = -1;
	check(xferio_fetch(l.node[1], dg, len, 0, l.now) == 0, "corrupt: fetch again");
	pump(&l, 1, 60000);
	char path[600];
	xferio_path(l.node[1], dg, path, sizeof(path));
	check(l.res[1].rc == 0 && file_equals(path, b, len), "corrupt: a second fetch succeeds");
	free(b);
	link_free(&l);
}

static void t_nack_timeout_cancel(const char *base)
{
	struct link l;
	link_init(&l, base, "fail");
	uint8_t dg[32];
	memset(dg, 0xab, sizeof(dg));
	mono_t t0 = l.now;
	check(xferio_fetch(l.node[1], dg, 5000, 0, l.now) == 0, "nack: fetch of an image node 0 lacks started");
	pump(&l, 1, 60000);
	check(l.res[1].n == 1 && l.res[1].rc == TND_ENOENT && strstr(l.res[1].why, "no image"),
	      "nack: fails with ENOENT in %lld ms: \"%s\"", (long long)MONO_TO_MS(l.now - t0),
	      l.res[1].why);
	check(l.now - t0 < MS_TO_MONO(10), "nack: at once, not after a timeout");
	check(count_partials(base, "fail", 1) == 0, "nack: partial file deleted");

	/* a size the server does not have */
	uint8_t *b = serve_new(&l, base, "fail.src", 10000, dg);
	l.res[1].n = 0;
	check(xferio_fetch(l.node[1], dg, 12000, 0, l.now) == 0, "nack: fetch with a wrong size started");
	pump(&l, 1, 60000);
	check(l.res[1].n == 1 && l.res[1].rc == TND_EINVAL && strstr(l.res[1].why, "10000 bytes"),
	      "nack: wrong size: rc %d \"%s\"", l.res[1].rc, l.res[1].why);

	/* a dead link */
	l.res[1].n = 0;
	l.drop_all = true;
	t0 = l.now;
	check(xferio_fetch(l.node[1], dg, 10000, 0, l.now) == 0, "timeout: fetch started over a dead link");
	pump(&l, 1, 60000);
	check(l.res[1].n == 1 && l.res[1].rc == TND_ETIMEDOUT,
	      "timeout: after %lld ms: \"%s\"", (long long)MONO_TO_MS(l.now - t0), l.res[1].why);
	check(l.now - t0 >= MS_TO_MONO(30000) && l.now - t0 < MS_TO_MONO(31100),
	      "timeout: 30 s without progress");
	check(count_partials(base, "fail", 1) == 0, "timeout: partial file deleted");

	/* cancel midway */
	l.res[1].n = 0;
	l.drop_all = false;
	free(b);
	b = serve_new(&l, base, "fail2.src", 2000000, dg);
	check(xferio_fetch(l.node[1], dg, 2000000, 0, l.now) == 0, "cancel: fetch started");
	for (int i = 0; i < 300 && l.n; i++)
		deliver_one(&l);
	check(count_partials(base, "fail", 1) == 1, "cancel: a partial file while fetching");
	xferio_cancel_all(l.node[1]);
	check(l.res[1].n == 1 && l.res[1].rc == TND_EREFUSED, "cancel: one callback, rc %d \"%s\"",
	      l.res[1].rc, l.res[1].why);
	check(count_partials(base, "fail", 1) == 0, "cancel: partial file removed");
	pump(&l, 2, 5000); /* the late DATA is stray; nothing else happens */
	check(l.res[1].n == 1 && !xferio_have(l.node[1], dg, NULL), "cancel: no callback and no image later");
	free(b);
	link_free(&l);
}

static void t_several(const char *base)
{
	struct link l;
	link_init(&l, base, "several");
	l.loss_pct = 2;
	uint8_t dg[5][32];
	uint8_t *b[5];
	size_t len[5];
	for (int i = 0; i < 5; i++) {
		char name[32];
		snprintf(name, sizeof(name), "several%d.src", i);
		len[i] = 300000 + (size_t)i * 77777;
		b[i] = serve_new(&l, base, name, len[i], dg[i]);
	}
	for (int i = 0; i < 4; i++)
		check(xferio_fetch(l.node[1], dg[i], len[i], 0, l.now) == 0, "several: fetch %d started", i);
	check(xferio_fetch(l.node[1], dg[4], len[4], 0, l.now) == TND_ENOSPC, "several: a 5th is refused (table full)");
	pump(&l, 4, 60000);
	bool all = l.res[1].n == 4;
	for (int i = 0; i < 4; i++) {
		char path[600];
		xferio_path(l.node[1], dg[i], path, sizeof(path));
		all = all && file_equals(path, b[i], len[i]);
	}
	check(all, "several: 4 images fetched at once, each byte-identical (%d callbacks)", l.res[1].n);
	check(xferio_fetch(l.node[1], dg[4], len[4], 0, l.now) == 0, "several: the 5th starts once a slot is free");
	pump(&l, 5, 60000);
	check(l.res[1].n == 5 && l.res[1].rc == 0, "several: the 5th fetched");
	/* gc keeps one */
	int n = xferio_gc(l.node[1], dg[2]);
	check(n == 4 && xferio_have(l.node[1], dg[2], NULL) && !xferio_have(l.node[1], dg[0], NULL),
	      "gc: deleted %d images, kept the one asked", n);
	n = xferio_gc(l.node[1], NULL);
	check(n == 1 && !xferio_have(l.node[1], dg[2], NULL), "gc: NULL deletes the rest (%d)", n);
	/* node 0 still serves after gc elsewhere; after its own gc, NACK */
	check(xferio_gc(l.node[0], NULL) == 5, "gc: node 0's images deleted");
	l.res[1].n = 0;
	check(xferio_fetch(l.node[1], dg[0], len[0], 0, l.now) == 0, "gc: fetch after the server's gc");
	pump(&l, 1, 60000);
	check(l.res[1].rc == TND_ENOENT, "gc: a gc'd image is no longer served (rc %d)", l.res[1].rc);
	for (int i = 0; i < 5; i++)
		free(b[i]);
	link_free(&l);
}

static void t_store(const char *base)
{
	char d[512], p[600];
	snprintf(d, sizeof(d), "%s/store", base);
	mkdir(d, 0700);
	snprintf(p, sizeof(p), "%s/images", d);
	mkdir(p, 0700);
	/* leftovers of a crash */
	snprintf(p, sizeof(p), "%s/images/.partial-0011", d);
	close(open(p, O_WRONLY | O_CREAT, 0600));
	snprintf(p, sizeof(p), "%s/images/.partial-import-77", d);
	close(open(p, O_WRONLY | O_CREAT, 0600));
	struct link l;
	memset(&l, 0, sizeof(l));
	struct xferio *x = node_new(&l, d, 0);
	check(access(p, F_OK) != 0, "leftovers: .partial-import-77 removed at start");
	snprintf(p, sizeof(p), "%s/images/.partial-0011", d);
	check(access(p, F_OK) != 0, "leftovers: .partial-0011 removed");
	/* import refusals */
	uint8_t dg[32], dg2[32];
	uint64_t bytes;
	check(xferio_import(x, base, dg, &bytes) == TND_EINVAL, "import: a directory is refused");
	snprintf(p, sizeof(p), "%s/empty", base);
	close(open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600));
	check(xferio_import(x, p, dg, &bytes) == TND_EINVAL, "import: an empty file is refused");
	snprintf(p, sizeof(p), "%s/nonexistent", base);
	check(xferio_import(x, p, dg, &bytes) == TND_ESYS && errno == ENOENT, "import: a missing file is refused");
	snprintf(p, sizeof(p), "%s/imp.src", base);
	uint8_t *b = random_file(p, 123457);
	check(xferio_import(x, p, dg, &bytes) == 0 && bytes == 123457, "import: 123457 bytes");
	check(xferio_import(x, p, dg2, &bytes) == 0 && memcmp(dg, dg2, 32) == 0, "import: idempotent");
	char path[600];
	xferio_path(x, dg, path, sizeof(path));
	check(file_equals(path, b, 123457), "import: %s holds the bytes", path);
	check(xferio_fetch(x, dg, 123457, 1, 0) == 1, "import: then a fetch of it is 'present'");
	check(xferio_fetch(x, dg, 123457, 0, 0) == TND_EINVAL, "fetch from self refused");
	check(xferio_fetch(x, dg2, 0, 1, 0) == TND_EINVAL, "fetch of 0 bytes refused");
	dg2[0] ^= 1;
	check(xferio_fetch(x, dg2, XFER_BYTES_MAX + 1, 1, 0) == TND_EINVAL, "fetch above 256 MiB refused");
	free(b);
	xferio_free(x);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: xfer_check DIR [MB]\n");
		return 2;
	}
	if (sodium_init() < 0)
		return 2;
	size_t mb = argc > 2 ? (size_t)atoi(argv[2]) : 64;
	if (mb < 1 || mb > 256)
		mb = 64;
	t_store(argv[1]);
	t_copy(argv[1]);
	t_corrupt(argv[1]);
	t_nack_timeout_cancel(argv[1]);
	t_several(argv[1]);
	t_speed(argv[1], mb);
	printf("xfer_check: %s\n", failures ? "FAILED" : "all checks passed");
	return failures ? 1 : 0;
}
