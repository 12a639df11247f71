/* xferio.c - image store and transfer driver (what it owns and why it
 * hashes as it goes: xferio.h; the protocol: src/core/xfer.h).
 *
 * Files are written with pwrite at each chunk's offset into a partial file
 * preallocated to the image size (posix_fallocate, so a full disk refuses
 * the fetch at once instead of failing at 90%), and installed with the
 * usual durable rename (STYLE, "Durable files"; state.h): fsync the file,
 * rename it to <hex>.img in the same directory, fsync the directory.
 *
 * Callbacks: a done callback may call back into xferio (start another
 * fetch, cancel): each entry point works on an action list of its own and
 * never holds a pointer into the fetch table across a callback. */
#include "xferio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sodium.h>

#include "log.h"
#include "state.h"

#define PARTIAL_PREFIX ".partial-"

struct ifetch {
	bool used;
	uint8_t dg[XFER_DIGEST_LEN];
	int fd;
	uint64_t total;
	uint32_t n, hashed; /* chunks [0, hashed) are in the hash */
	uint64_t unsynced;  /* bytes written since writeback was started */
	crypto_generichash_state h;
	mono_t started;
};

struct served {
	bool used;
	uint8_t dg[XFER_DIGEST_LEN];
	int fd;
	uint64_t size, last_use;
};

struct xferio {
	char dir[TND_PATH_MAX]; /* STATE_DIR/images */
	int self;
	struct xfer *core;
	xferio_send_fn send;
	xferio_done_fn done;
	void *arg;
	struct ifetch f[XFER_FETCHES_MAX];
	struct served srv[XFERIO_SERVE_FDS];
	uint64_t use_clock;
	struct xferio_stats st;
};

/* --- names ------------------------------------------------------------------- */

static int name_of(const struct xferio *x, const uint8_t *dg, const char *prefix,
		   const char *suffix, char *out, size_t len)
{
	char hex[2 * XFER_DIGEST_LEN + 1];
	tnd_hex(dg, XFER_DIGEST_LEN, hex);
	int n = snprintf(out, len, "%s/%s%s%s", x->dir, prefix, hex, suffix);
	return n < 0 || (size_t)n >= len ? TND_ENOSPC : 0;
}

int xferio_path(const struct xferio *x, const uint8_t digest[32], char *out, size_t len)
{
	return name_of(x, digest, "", ".img", out, len);
}

static const char *short_hex(const uint8_t *dg, char buf[17])
{
	tnd_hex(dg, 8, buf);
	return buf;
}

/* --- lifecycle --------------------------------------------------------------- */

/* Remove DIR/.partial-* except the files of fetches in flight. */
static int remove_partials(struct xferio *x, bool log)
{
	DIR *d = opendir(x->dir);
	if (!d)
		return TND_ESYS;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (strncmp(e->d_name, PARTIAL_PREFIX, strlen(PARTIAL_PREFIX)) != 0)
			continue;
		bool active = false;
		for (int i = 0; i < XFER_FETCHES_MAX && !active; i++) {
			char hex[2 * XFER_DIGEST_LEN + 1];
			if (x->f[i].used &&
			    strcmp(e->d_name + strlen(PARTIAL_PREFIX), tnd_hex(x->f[i].dg, XFER_DIGEST_LEN, hex)) == 0)
				active = true;
		}
		if (active || unlinkat(dirfd(d), e->d_name, 0) != 0)
			continue;
		n++;
		if (log)
			log_event(LVL_INFO, "image.partial_removed", "file=%s", e->d_name);
	}
	closedir(d);
	return n;
}

struct xferio *xferio_new(const char *state_dir, int self, uint8_t cluster_id,
			  uint8_t proto, uint64_t incarnation, xferio_send_fn send,
			  xferio_done_fn done, void *arg)
{
	struct xferio *x = calloc(1, sizeof(*x));
	if (!x)
		return NULL;
	int n = snprintf(x->dir, sizeof(x->dir), "%s/%s", state_dir, XFERIO_IMAGES_DIR);
	if (n < 0 || (size_t)n >= sizeof(x->dir) - 80) { /* room for names */
		free(x);
		errno = ENAMETOOLONG;
		return NULL;
	}
	if (mkdir(x->dir, 0700) != 0 && errno != EEXIST) {
		free(x);
		return NULL;
	}
	struct xfer_params p;
	xfer_params_default(&p);
	p.self = self;
	p.cluster_id = cluster_id;
	p.proto = proto;
	p.incarnation = incarnation;
	x->core = xfer_new(&p);
	if (!x->core) {
		free(x);
		errno = ENOMEM;
		return NULL;
	}
	x->self = self;
	x->send = send;
	x->done = done;
	x->arg = arg;
	for (int i = 0; i < XFERIO_SERVE_FDS; i++)
		x->srv[i].fd = -1;
	if (remove_partials(x, true) < 0) {
		int e = errno;
		xferio_free(x);
		errno = e;
		return NULL;
	}
	return x;
}

static void srv_close_all(struct xferio *x)
{
	for (int i = 0; i < XFERIO_SERVE_FDS; i++) {
		if (x->srv[i].used)
			close(x->srv[i].fd);
		x->srv[i].used = false;
		x->srv[i].fd = -1;
	}
}

/* Close and delete a fetch's partial file and forget it in both layers. */
static void drop_fetch(struct xferio *x, struct ifetch *f)
{
	char path[TND_PATH_MAX + 100];
	(void)xfer_cancel(x->core, f->dg);
	if (f->fd >= 0)
		close(f->fd);
	if (name_of(x, f->dg, PARTIAL_PREFIX, "", path, sizeof(path)) == 0)
		(void)unlink(path);
	memset(f, 0, sizeof(*f));
	f->fd = -1;
}

void xferio_free(struct xferio *x)
{
	if (!x)
		return;
	for (int i = 0; i < XFER_FETCHES_MAX; i++)
		if (x->f[i].used)
			drop_fetch(x, &x->f[i]);
	srv_close_all(x);
	xfer_free(x->core);
	free(x);
}

/* --- store ------------------------------------------------------------------- */

bool xferio_have(const struct xferio *x, const uint8_t digest[32], uint64_t *bytes)
{
	char path[TND_PATH_MAX + 100];
	struct stat st;
	if (xferio_path(x, digest, path, sizeof(path)) != 0 || stat(path, &st) != 0 ||
	    !S_ISREG(st.st_mode))
		return false;
	if (bytes)
		*bytes = (uint64_t)st.st_size;
	return true;
}

static int pread_all(int fd, uint8_t *p, size_t n, uint64_t off)
{
	while (n) {
		ssize_t r = pread(fd, p, n, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0)
				errno = EIO; /* shorter than it should be */
			return TND_EIO;
		}
		p += r;
		n -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

static int pwrite_all(int fd, const uint8_t *p, size_t n, uint64_t off)
{
	while (n) {
		ssize_t r = pwrite(fd, p, n, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return TND_EIO;
		p += r;
		n -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

int xferio_import(struct xferio *x, const char *file, uint8_t digest[32], uint64_t *bytes)
{
	char tmp[TND_PATH_MAX + 100], dst[TND_PATH_MAX + 100];
	struct stat st;
	int rc = TND_ESYS, in, out = -1;
	bool tmp_made = false;
	uint8_t *buf = NULL;
	uint64_t done = 0;
	crypto_generichash_state h;

	in = open(file, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return TND_ESYS;
	if (fstat(in, &st) != 0)
		goto out;
	if (!S_ISREG(st.st_mode) || st.st_size <= 0 || (uint64_t)st.st_size > XFER_BYTES_MAX) {
		errno = S_ISREG(st.st_mode) ? EFBIG : EINVAL;
		rc = TND_EINVAL;
		goto out;
	}
	buf = malloc(XFERIO_COPY_BUF_BYTES);
	if (!buf) {
		errno = ENOMEM;
		goto out;
	}
	snprintf(tmp, sizeof(tmp), "%s/" PARTIAL_PREFIX "import-%d", x->dir, (int)getpid());
	out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (out < 0)
		goto out;
	tmp_made = true;
	crypto_generichash_init(&h, NULL, 0, XFER_DIGEST_LEN);
	for (;;) {
		ssize_t r = read(in, buf, XFERIO_COPY_BUF_BYTES);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = TND_EIO;
			goto out;
		}
		if (r == 0)
			break;
		done += (uint64_t)r;
		if (done > XFER_BYTES_MAX) {
			errno = EFBIG;
			rc = TND_EINVAL;
			goto out;
		}
		crypto_generichash_update(&h, buf, (unsigned long long)r);
		if (state_write_all(out, buf, (size_t)r) != 0) {
			rc = TND_EIO;
			goto out;
		}
	}
	if (done != (uint64_t)st.st_size) {
		errno = EAGAIN; /* the file changed while we copied it */
		rc = TND_EIO;
		goto out;
	}
	if (fsync(out) != 0) {
		rc = TND_EIO;
		goto out;
	}
	int c = close(out);
	out = -1;
	if (c != 0) {
		rc = TND_EIO;
		goto out;
	}
	crypto_generichash_final(&h, digest, XFER_DIGEST_LEN);
	/* Renaming over an existing copy is idempotent (same name, same
	 * bytes) and repairs one damaged since. */
	if (xferio_path(x, digest, dst, sizeof(dst)) != 0 || rename(tmp, dst) != 0 ||
	    state_fsync_dir(x->dir) != 0)
		goto out;
	/* a served descriptor of the replaced file would still read the
	 * old inode */
	srv_close_all(x);
	if (bytes)
		*bytes = done;
	rc = 0;
out:
	if (rc != 0) {
		int e = errno;
		if (out >= 0)
			close(out);
		if (tmp_made)
			(void)unlink(tmp);
		errno = e;
	}
	free(buf);
	close(in);
	return rc;
}

int xferio_gc(struct xferio *x, const uint8_t *keep)
{
	char keep_name[2 * XFER_DIGEST_LEN + 8] = "";
	if (keep) {
		tnd_hex(keep, XFER_DIGEST_LEN, keep_name);
		strcat(keep_name, ".img");
	}
	srv_close_all(x);
	DIR *d = opendir(x->dir);
	if (!d)
		return TND_ESYS;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		size_t l = strlen(e->d_name);
		if (l < 4 || strcmp(e->d_name + l - 4, ".img") != 0 || e->d_name[0] == '.')
			continue;
		if (keep && strcmp(e->d_name, keep_name) == 0)
			continue;
		if (unlinkat(dirfd(d), e->d_name, 0) == 0)
			n++;
	}
	closedir(d);
	int p = remove_partials(x, false);
	if (p > 0)
		n += p;
	if (n > 0)
		(void)state_fsync_dir(x->dir);
	return n;
}

/* --- serving ----------------------------------------------------------------- */

/* The open descriptor of images/<dg>.img (cached, LRU), or -1 with errno. */
static struct served *srv_open(struct xferio *x, const uint8_t *dg)
{
	struct served *lru = &x->srv[0];
	for (int i = 0; i < XFERIO_SERVE_FDS; i++) {
		struct served *s = &x->srv[i];
		if (s->used && memcmp(s->dg, dg, XFER_DIGEST_LEN) == 0) {
			s->last_use = ++x->use_clock;
			return s;
		}
		if (!s->used || (lru->used && s->last_use < lru->last_use))
			lru = s;
	}
	char path[TND_PATH_MAX + 100];
	struct stat st;
	if (xferio_path(x, dg, path, sizeof(path)) != 0)
		return NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		errno = ENOENT;
		return NULL;
	}
	if (lru->used)
		close(lru->fd);
	lru->used = true;
	memcpy(lru->dg, dg, XFER_DIGEST_LEN);
	lru->fd = fd;
	lru->size = (uint64_t)st.st_size;
	lru->last_use = ++x->use_clock;
	return lru;
}

static void send_nack(struct xferio *x, int to, const uint8_t *dg, int code, const char *why)
{
	uint8_t pkt[WIRE_MTU];
	size_t len;
	if (xfer_nack_pkt(x->core, dg, code, why, pkt, sizeof(pkt), &len) == 0) {
		x->st.nacks_sent++;
		x->send(x->arg, to, pkt, len);
	}
}

static void serve(struct xferio *x, const struct xfer_act *a)
{
	char why[XFER_WHY_LEN], hx[17];
	struct served *s = srv_open(x, a->digest);
	if (!s) {
		snprintf(why, sizeof(why), "no image %s here", short_hex(a->digest, hx));
		send_nack(x, a->to, a->digest, TND_ENOENT, why);
		return;
	}
	if (s->size != a->total) {
		snprintf(why, sizeof(why), "image %s is %llu bytes here, not %llu",
			 short_hex(a->digest, hx), (unsigned long long)s->size,
			 (unsigned long long)a->total);
		send_nack(x, a->to, a->digest, TND_EINVAL, why);
		return;
	}
	uint8_t chunk[XFER_CHUNK_BYTES], pkt[WIRE_MTU];
	for (int i = 0; i < a->n; i++) {
		size_t n = xfer_chunk_len(a->total, a->index[i]), len;
		if (pread_all(s->fd, chunk, n, (uint64_t)a->index[i] * XFER_CHUNK_BYTES) != 0) {
			snprintf(why, sizeof(why), "cannot read image %s: %s",
				 short_hex(a->digest, hx), strerror(errno));
			send_nack(x, a->to, a->digest, TND_EIO, why);
			return;
		}
		if (xfer_data_pkt(x->core, a->digest, a->total, a->index[i], chunk, n, pkt,
				  sizeof(pkt), &len) != 0)
			return;
		x->st.served_bytes += n;
		x->send(x->arg, a->to, pkt, len);
	}
}

/* --- fetching ---------------------------------------------------------------- */

static struct ifetch *ifind(struct xferio *x, const uint8_t *dg)
{
	for (int i = 0; i < XFER_FETCHES_MAX; i++)
		if (x->f[i].used && memcmp(x->f[i].dg, dg, XFER_DIGEST_LEN) == 0)
			return &x->f[i];
	return NULL;
}

/* A finished fetch's outcome, handed to the callback after the table is
 * consistent again. */
struct outcome {
	uint8_t dg[XFER_DIGEST_LEN];
	int rc;
	char why[XFER_WHY_LEN + 80];
};
struct outcomes {
	int n;
	struct outcome o[2 * XFER_FETCHES_MAX];
};

static void outcome(struct outcomes *oc, const uint8_t *dg, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void outcome(struct outcomes *oc, const uint8_t *dg, int rc, const char *fmt, ...)
{
	/* at most one per fetch, and a fetch slot is reused only by a call
	 * made from a callback, which has outcomes of its own */
	if (oc->n >= (int)(sizeof(oc->o) / sizeof(oc->o[0])))
		return;
	struct outcome *o = &oc->o[oc->n++];
	memcpy(o->dg, dg, XFER_DIGEST_LEN);
	o->rc = rc;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(o->why, sizeof(o->why), fmt, ap);
	va_end(ap);
}

static void fail(struct xferio *x, struct ifetch *f, struct outcomes *oc, int rc,
		 const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void fail(struct xferio *x, struct ifetch *f, struct outcomes *oc, int rc,
		 const char *fmt, ...)
{
	char why[XFER_WHY_LEN + 80];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	char hx[17];
	x->st.failed++;
	log_event(LVL_WARN, "image.fetch_failed", "digest=%s bytes=%llu rc=\"%s\" why=\"%s\"",
		  short_hex(f->dg, hx), (unsigned long long)f->total, tnd_strerror(rc), why);
	outcome(oc, f->dg, rc, "%s", why);
	drop_fetch(x, f);
}

/* Hash chunks [hashed, upto) from the file (they were written earlier). */
static int hash_from_file(struct ifetch *f, uint32_t upto)
{
	uint8_t chunk[XFER_CHUNK_BYTES];
	while (f->hashed < upto) {
		size_t n = xfer_chunk_len(f->total, f->hashed);
		if (pread_all(f->fd, chunk, n, (uint64_t)f->hashed * XFER_CHUNK_BYTES) != 0)
			return TND_EIO;
		crypto_generichash_update(&f->h, chunk, n);
		f->hashed++;
	}
	return 0;
}

static void on_write(struct xferio *x, const struct xfer_act *a, struct outcomes *oc)
{
	struct ifetch *f = ifind(x, a->digest);
	if (!f)
		return;
	char hx[17];
	if (pwrite_all(f->fd, a->data, a->len, a->off) != 0) {
		fail(x, f, oc, TND_EIO, "cannot write image %s: %s", short_hex(f->dg, hx),
		     strerror(errno));
		return;
	}
	f->unsynced += a->len;
	if (f->unsynced >= XFERIO_WRITEBACK_BYTES) {
		/* start writeback now (asynchronously) so the final fsync
		 * does not find hundreds of MB dirty */
		(void)sync_file_range(f->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
		f->unsynced = 0;
	}
	if (a->chunk != f->hashed)
		return;
	crypto_generichash_update(&f->h, a->data, a->len);
	f->hashed++;
	uint32_t upto = f->hashed;
	while (upto < f->n && xfer_has_chunk(x->core, f->dg, upto))
		upto++;
	if (hash_from_file(f, upto) != 0)
		fail(x, f, oc, TND_EIO, "cannot read back image %s: %s", short_hex(f->dg, hx),
		     strerror(errno));
}

/* One line per finished fetch with the counters an operator needs to
 * judge the link (failures are logged by fail()). */
static void log_end(const struct ifetch *f, const struct xfer_act *a, mono_t now)
{
	char hx[17];
	mono_t ms = MONO_TO_MS(now - f->started);
	log_event(LVL_INFO, "image.fetched",
		  "digest=%s from=%d bytes=%llu ms=%lld resent=%llu fast_resent=%llu dup=%llu bad=%llu",
		  short_hex(f->dg, hx), a->prog.from, (unsigned long long)f->total, (long long)ms,
		  (unsigned long long)a->prog.resent, (unsigned long long)a->prog.fast_resent,
		  (unsigned long long)a->prog.dup, (unsigned long long)a->prog.bad);
}

/* Every chunk is written: check the digest, then install durably. */
static void on_complete(struct xferio *x, struct ifetch *f, const struct xfer_act *a,
			mono_t now, struct outcomes *oc)
{
	char hx[17], part[TND_PATH_MAX + 100], dst[TND_PATH_MAX + 100];
	char got_hex[2 * XFER_DIGEST_LEN + 1], want_hex[2 * XFER_DIGEST_LEN + 1];
	uint8_t got[XFER_DIGEST_LEN];
	if (hash_from_file(f, f->n) != 0) {
		fail(x, f, oc, TND_EIO, "cannot read back image %s: %s", short_hex(f->dg, hx),
		     strerror(errno));
		return;
	}
	crypto_generichash_final(&f->h, got, sizeof(got));
	if (memcmp(got, f->dg, XFER_DIGEST_LEN) != 0) {
		fail(x, f, oc, TND_EAUTH,
		     "digest mismatch: the %llu bytes from node %d hash to %s, not %s; deleted",
		     (unsigned long long)f->total, a->prog.from,
		     tnd_hex(got, 16, got_hex), tnd_hex(f->dg, 16, want_hex));
		return;
	}
	if (fsync(f->fd) != 0) {
		fail(x, f, oc, TND_EIO, "cannot fsync image %s: %s", short_hex(f->dg, hx),
		     strerror(errno));
		return;
	}
	name_of(x, f->dg, PARTIAL_PREFIX, "", part, sizeof(part));
	xferio_path(x, f->dg, dst, sizeof(dst));
	if (rename(part, dst) != 0 || state_fsync_dir(x->dir) != 0) {
		fail(x, f, oc, TND_ESYS, "cannot install image %s: %s", short_hex(f->dg, hx),
		     strerror(errno));
		return;
	}
	log_end(f, a, now);
	close(f->fd);
	f->fd = -1;
	x->st.fetched++;
	outcome(oc, f->dg, 0, "fetched");
	memset(f, 0, sizeof(*f));
	f->fd = -1;
}

static void run(struct xferio *x, struct xfer_actions *acts, mono_t now)
{
	struct outcomes oc = { .n = 0 };
	x->st.actions_dropped += (uint64_t)acts->n_dropped;
	for (int i = 0; i < acts->n; i++) {
		const struct xfer_act *a = &acts->a[i];
		struct ifetch *f;
		switch (a->type) {
		case XFA_SEND:
			x->send(x->arg, a->to, a->pkt, a->len);
			break;
		case XFA_WRITE:
			on_write(x, a, &oc);
			break;
		case XFA_SERVE:
			serve(x, a);
			break;
		case XFA_END:
			f = ifind(x, a->digest);
			if (!f)
				break; /* a write failed first: already reported */
			if (a->code == 0) {
				on_complete(x, f, a, now, &oc);
			} else {
				fail(x, f, &oc, a->code, "%s", a->why);
			}
			break;
		}
	}
	/* copied first: a callback may not free x, but be safe if it does
	 * after the last one */
	xferio_done_fn done = x->done;
	void *arg = x->arg;
	for (int i = 0; i < oc.n; i++)
		done(arg, oc.o[i].dg, oc.o[i].rc, oc.o[i].rc ? oc.o[i].why : NULL);
}

int xferio_fetch(struct xferio *x, const uint8_t digest[32], uint64_t bytes, int from,
		 mono_t now)
{
	uint64_t have;
	if (bytes == 0 || bytes > XFER_BYTES_MAX || from == x->self || from < 0 ||
	    from >= TND_NODES_MAX)
		return TND_EINVAL;
	if (xferio_have(x, digest, &have))
		return have == bytes ? 1 : TND_EINVAL;
	if (ifind(x, digest))
		return 0;
	struct ifetch *f = NULL;
	for (int i = 0; i < XFER_FETCHES_MAX && !f; i++)
		if (!x->f[i].used)
			f = &x->f[i];
	if (!f)
		return TND_ENOSPC;
	char part[TND_PATH_MAX + 100];
	if (name_of(x, digest, PARTIAL_PREFIX, "", part, sizeof(part)) != 0)
		return TND_ENOSPC;
	int fd = open(part, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return TND_ESYS;
	int e = posix_fallocate(fd, 0, (off_t)bytes);
	if (e != 0) {
		close(fd);
		(void)unlink(part);
		errno = e;
		return e == ENOSPC ? TND_ENOSPC : TND_ESYS;
	}
	struct xfer_actions *acts = malloc(sizeof(*acts));
	if (!acts) {
		close(fd);
		(void)unlink(part);
		return TND_ENOSPC;
	}
	xfer_actions_reset(acts);
	int rc = xfer_start(x->core, digest, bytes, from, now, acts);
	if (rc != 0) {
		free(acts);
		close(fd);
		(void)unlink(part);
		return rc;
	}
	memset(f, 0, sizeof(*f));
	f->used = true;
	memcpy(f->dg, digest, XFER_DIGEST_LEN);
	f->fd = fd;
	f->total = bytes;
	f->n = xfer_chunks(bytes);
	f->started = now;
	crypto_generichash_init(&f->h, NULL, 0, XFER_DIGEST_LEN);
	run(x, acts, now);
	free(acts);
	return 0;
}

void xferio_cancel_all(struct xferio *x)
{
	struct outcomes oc = { .n = 0 };
	char hx[17];
	for (int i = 0; i < XFER_FETCHES_MAX; i++) {
		struct ifetch *f = &x->f[i];
		if (!f->used)
			continue;
		log_event(LVL_INFO, "image.fetch_cancelled", "digest=%s", short_hex(f->dg, hx));
		outcome(&oc, f->dg, TND_EREFUSED, "fetch cancelled");
		drop_fetch(x, f);
	}
	xferio_done_fn done = x->done;
	void *arg = x->arg;
	for (int i = 0; i < oc.n; i++)
		done(arg, oc.o[i].dg, oc.o[i].rc, oc.o[i].why);
}

void xferio_recv(struct xferio *x, const struct wire_hdr *h, const uint8_t *body,
		 size_t len, mono_t now)
{
	struct xfer_actions *acts = malloc(sizeof(*acts));
	if (!acts)
		return; /* as if lost: the fetcher asks again */
	xfer_actions_reset(acts);
	xfer_recv(x->core, h, body, len, now, acts);
	run(x, acts, now);
	free(acts);
}

void xferio_tick(struct xferio *x, mono_t now)
{
	struct xfer_actions *acts = malloc(sizeof(*acts));
	if (!acts)
		return;
	xfer_actions_reset(acts);
	xfer_tick(x->core, now, acts);
	run(x, acts, now);
	free(acts);
}

mono_t xferio_next_wake(const struct xferio *x)
{
	return xfer_next_wake(x->core);
}

int xferio_progress(const struct xferio *x, const uint8_t digest[32], uint64_t *got,
		    uint64_t *total)
{
	struct xfer_progress p;
	int rc = xfer_progress(x->core, digest, &p);
	if (rc != 0)
		return rc;
	if (got)
		*got = p.got_bytes;
	if (total)
		*total = p.total;
	return 0;
}

void xferio_get_stats(const struct xferio *x, struct xferio_stats *out)
{
	*out = x->st;
	xfer_stats(x->core, &out->core);
}
