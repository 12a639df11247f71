/* http.c - the HTTP API on libmicrohttpd (see http.h, docs/api.md).
 *
 * libmicrohttpd runs in "external epoll" mode: its epoll descriptor sits
 * in tandemd's loop and MHD_run() is called when it is readable, from a
 * 250 ms timer of this module (timeouts, stream keep-alives), and after a
 * connection is resumed. Everything happens on the daemon's one thread,
 * so requests reach the core exactly as control-socket lines do.
 *
 * A request is checked in two steps: at its first callback, before any
 * body is read, the route (404/405), the bearer token of a write (401/503)
 * and a declared Content-Length over the limit (413); once the body is in,
 * route_build() checks it strictly. A control command answered later (a
 * configuration apply, an upgrade start) suspends its connection until
 * ctl's answer arrives through http_ext_done(). Event streams are
 * suspended while they have nothing to send and resumed by http_publish. */
#include "http.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <microhttpd.h>
#include <sodium.h>

#include "route.h"
#include "www.h"

#define HTTP_TICK_MS 250

struct sse {
	struct MHD_Connection *conn; /* NULL: free slot */
	char *buf;
	size_t len, off, cap;
	bool suspended, dead;
	mono_t last_ms; /* last write, for the keep-alive */
};

struct hreq {
	const struct route *r;
	int early;            /* an HTTP status decided from the headers, 0 = none */
	struct route_err err; /* ... and its reason */
	const char *allow;
	char *body;
	size_t len, cap;
	bool too_large;
	mono_t t0; /* the headers arrived */
	/* A control command waiting for its deferred answer. */
	bool waiting;
	uint64_t tag;
	json_t *answer;
	int ok_status;
	struct MHD_Connection *conn;
	struct http *h;
	char remote[64];
};

struct token {
	bool loaded;
	ino_t ino;
	off_t size;
	struct timespec mtime, ctime; /* ctime: a chmod changes only it */
	bool ok;
	uint8_t hash[crypto_generichash_BYTES];
	char err[TND_PATH_MAX + 128];
};

struct http {
	struct MHD_Daemon *mhd;
	struct loop *loop;
	struct ctl *ctl;
	struct http_ops ops;
	const struct tnd_conf *conf;
	int epfd, tfd;
	bool in_mhd, rerun;
	char addr[80];
	char token_path[TND_PATH_MAX], images_dir[TND_PATH_MAX], probe_file[TND_PATH_MAX];
	struct token tok;
	uint64_t next_tag;
	struct hreq *waiting[CTL_EXT_MAX];
	struct sse sse[HTTP_STREAMS_MAX];
	char *tls_cert, *tls_key;
};

static int64_t now_ms(void)
{
	return loop_now() / 1000000;
}

/* ---- running libmicrohttpd */

static void mhd_run(struct http *h)
{
	MHD_UNSIGNED_LONG_LONG t;

	if (h->in_mhd) {
		h->rerun = true; /* once the current run returns */
		return;
	}
	for (int i = 0; i < 16; i++) {
		h->in_mhd = true;
		h->rerun = false;
		MHD_run(h->mhd);
		h->in_mhd = false;
		/* MHD may have work it could not finish in one run (a resumed
		 * connection, data already read): run again while it says so. */
		if (!h->rerun && !(MHD_get_timeout(h->mhd, &t) == MHD_YES && t == 0))
			break;
	}
}

static void on_epoll(struct loop *l, int fd, uint32_t events, void *arg)
{
	mhd_run(arg);
}

static void stream_keepalive(struct http *h);

static void on_timer(struct loop *l, int fd, uint32_t events, void *arg)
{
	struct http *h = arg;
	uint64_t n;

	(void)!read(fd, &n, sizeof n);
	stream_keepalive(h);
	mhd_run(h);
}

/* ---- answers */

/* Queue an answer; `body` is malloc'd and freed here. `allow` (405) may
 * be NULL. */
static enum MHD_Result respond(struct MHD_Connection *conn, int status, const char *type, char *body,
			       size_t len, const char *allow)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	enum MHD_Result r;

	if (!resp) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(resp, "Content-Type", type);
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(resp, "X-Frame-Options", "DENY");
	if (status == 401)
		MHD_add_response_header(resp, "WWW-Authenticate", "Bearer realm=\"tandem\"");
	if (allow)
		MHD_add_response_header(resp, "Allow", allow);
	r = MHD_queue_response(conn, (unsigned)status, resp);
	MHD_destroy_response(resp);
	return r;
}

/* Queue `o` (taken) as one JSON line. */
static enum MHD_Result respond_json(struct MHD_Connection *conn, int status, json_t *o, const char *allow)
{
	char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
	size_t n;

	json_decref(o);
	if (!s)
		return MHD_NO;
	n = strlen(s);
	s[n] = '\n'; /* json_dumps leaves room for the NUL */
	return respond(conn, status, "application/json", s, n + 1, allow);
}

static enum MHD_Result queue_json(struct MHD_Connection *conn, int status, json_t *o)
{
	return respond_json(conn, status, o, NULL);
}

static enum MHD_Result queue_err(struct MHD_Connection *conn, int status, const char *code, const char *msg,
				 const char *allow)
{
	return respond_json(conn, status, json_pack("{s:b,s:s,s:s}", "ok", 0, "code", code, "error", msg), allow);
}

/* The control socket's codes as HTTP statuses (docs/api.md). */
static int status_of(json_t *res, int ok_status)
{
	const char *code = json_string_value(json_object_get(res, "code"));

	if (json_is_true(json_object_get(res, "ok")))
		return ok_status;
	if (!code)
		return 500;
	if (strcmp(code, "usage") == 0 || strcmp(code, "invalid") == 0)
		return 400;
	if (strcmp(code, "refused") == 0)
		return 409;
	return 500;
}

/* The answer to a control command, shaped per endpoint. */
static enum MHD_Result answer_ctl(struct http *h, struct hreq *q, json_t *res);

/* ---- the bearer token */

static void token_load(struct http *h)
{
	struct token *t = &h->tok;
	struct stat st;
	char buf[4097], q[sizeof t->err + 8];
	ssize_t n;
	int fd;

	if (stat(h->token_path, &st) != 0) {
		*t = (struct token){ .loaded = true };
		snprintf(t->err, sizeof t->err, "the token file %s cannot be read: %s", h->token_path, strerror(errno));
		return;
	}
	if (t->loaded && st.st_ino == t->ino && st.st_size == t->size && st.st_mtim.tv_sec == t->mtime.tv_sec &&
	    st.st_mtim.tv_nsec == t->mtime.tv_nsec && st.st_ctim.tv_sec == t->ctime.tv_sec &&
	    st.st_ctim.tv_nsec == t->ctime.tv_nsec)
		return; /* unchanged since it was read */
	*t = (struct token){ .loaded = true, .ino = st.st_ino, .size = st.st_size, .mtime = st.st_mtim,
			     .ctime = st.st_ctim };
	if (!S_ISREG(st.st_mode)) {
		snprintf(t->err, sizeof t->err, "the token file %s is not a regular file", h->token_path);
	} else if (st.st_mode & 077) {
		snprintf(t->err, sizeof t->err, "the token file %s may be read by others (mode %03o): chmod 600 it",
			 h->token_path, (unsigned)(st.st_mode & 0777));
	} else if ((fd = open(h->token_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0) {
		snprintf(t->err, sizeof t->err, "the token file %s cannot be read: %s", h->token_path, strerror(errno));
	} else {
		n = read(fd, buf, sizeof buf - 1);
		close(fd);
		size_t a = 0, b = n > 0 ? (size_t)n : 0;
		buf[b] = 0;
		while (a < b && strchr(" \t\r\n", buf[a]))
			a++;
		while (b > a && strchr(" \t\r\n", buf[b - 1]))
			b--;
		if (n < 0 || n == (ssize_t)sizeof buf - 1)
			snprintf(t->err, sizeof t->err, "the token file %s cannot be read or is over 4 KiB",
				 h->token_path);
		else if (b - a < HTTP_TOKEN_MIN_CHARS || memchr(buf + a, '\n', b - a))
			snprintf(t->err, sizeof t->err, "the token in %s must be one line of at least %d characters",
				 h->token_path, HTTP_TOKEN_MIN_CHARS);
		else {
			crypto_generichash(t->hash, sizeof t->hash, (const uint8_t *)buf + a, b - a, NULL, 0);
			t->ok = true;
		}
		sodium_memzero(buf, sizeof buf);
	}
	if (!t->ok)
		log_event(LVL_WARN, "api.token_error", "error=%s", log_kv_quote(t->err, q, sizeof q));
	else
		log_event(LVL_INFO, "api.token_loaded", "file=%s", h->token_path);
}

/* 0 when the request carries the token; else the HTTP status (401, 503)
 * with the reason. Both sides are hashed first, so the comparison takes
 * the same time whatever the presented token's length or content. */
static int token_check(struct http *h, struct MHD_Connection *conn, char *why, size_t why_len)
{
	const char *a = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	uint8_t got[crypto_generichash_BYTES];

	token_load(h);
	if (!h->tok.ok) {
		snprintf(why, why_len, "writes are disabled: %.220s", h->tok.err);
		return 503;
	}
	if (!a || strncasecmp(a, "Bearer ", 7) != 0) {
		snprintf(why, why_len, "this request needs the header Authorization: Bearer TOKEN");
		return 401;
	}
	a += 7;
	while (*a == ' ')
		a++;
	crypto_generichash(got, sizeof got, (const uint8_t *)a, strlen(a), NULL, 0);
	if (sodium_memcmp(got, h->tok.hash, sizeof got) != 0) {
		snprintf(why, why_len, "the bearer token is not valid");
		return 401;
	}
	return 0;
}

/* ---- event streams */

static bool sse_append(struct sse *s, const char *text, size_t n)
{
	if (s->dead)
		return false;
	if (s->off > 0 && s->off == s->len)
		s->off = s->len = 0;
	if (s->len - s->off + n > HTTP_STREAM_BUF_MAX_BYTES) {
		s->dead = true; /* not reading: dropped, never waited for */
		return false;
	}
	if (s->len + n > s->cap) {
		if (s->buf && s->off > 0)
			memmove(s->buf, s->buf + s->off, s->len - s->off);
		s->len -= s->off;
		s->off = 0;
		size_t cap = s->cap ? s->cap : 4096;
		while (cap < s->len + n)
			cap *= 2;
		char *nb = realloc(s->buf, cap);
		if (!nb) {
			s->dead = true;
			return false;
		}
		s->buf = nb;
		s->cap = cap;
	}
	memcpy(s->buf + s->len, text, n);
	s->len += n;
	return true;
}

/* One event as a Server-Sent Events message (malloc'd), or NULL. */
static char *sse_message(const struct log_entry *e)
{
	json_t *o = log_entry_json(e);
	char *d = o ? json_dumps(o, JSON_COMPACT) : NULL, *m = NULL;

	json_decref(o);
	if (d && asprintf(&m, "id: %" PRIu64 "\nevent: %s\ndata: %s\n\n", e->seq, e->name, d) < 0)
		m = NULL;
	free(d);
	return m;
}

static void sse_event(struct sse *s, const struct log_entry *e)
{
	char *m = sse_message(e);

	if (m)
		sse_append(s, m, strlen(m));
	free(m);
}

static void sse_wake(struct http *h, struct sse *s)
{
	if (s->conn && s->suspended) {
		s->suspended = false;
		MHD_resume_connection(s->conn);
		mhd_run(h);
	}
}

static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct sse *s = cls;
	size_t n;

	if (s->off < s->len) {
		n = s->len - s->off < max ? s->len - s->off : max;
		memcpy(buf, s->buf + s->off, n);
		s->off += n;
		s->last_ms = now_ms();
		return (ssize_t)n;
	}
	if (s->dead)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	/* Nothing to send: park the connection until an event comes. */
	s->suspended = true;
	MHD_suspend_connection(s->conn);
	return 0;
}

static void sse_free(void *cls)
{
	struct sse *s = cls;

	free(s->buf);
	*s = (struct sse){ 0 };
}

static void stream_keepalive(struct http *h)
{
	int64_t now = now_ms();

	for (int i = 0; i < HTTP_STREAMS_MAX; i++) {
		struct sse *s = &h->sse[i];
		if (!s->conn || now - s->last_ms < HTTP_KEEPALIVE_MS)
			continue;
		s->last_ms = now;
		sse_append(s, ": keepalive\n\n", 13);
		sse_wake(h, s);
	}
}

void http_publish(struct http *h, const struct log_entry *e)
{
	char *m = NULL;

	if (!h)
		return;
	for (int i = 0; i < HTTP_STREAMS_MAX; i++) {
		struct sse *s = &h->sse[i];
		if (!s->conn)
			continue;
		if (!m && !(m = sse_message(e))) /* rendered once for every stream */
			return;
		sse_append(s, m, strlen(m));
		sse_wake(h, s);
	}
	free(m);
}

static enum MHD_Result open_stream(struct http *h, struct hreq *q, long limit)
{
	const char *last = MHD_lookup_connection_value(q->conn, MHD_HEADER_KIND, "Last-Event-ID");
	struct MHD_Response *resp;
	struct sse *s = NULL;
	int n = log_ring_count(), first;
	enum MHD_Result r;

	for (int i = 0; i < HTTP_STREAMS_MAX && !s; i++)
		if (!h->sse[i].conn)
			s = &h->sse[i];
	if (!s)
		return queue_err(q->conn, 503, "unavailable", "too many event streams open; try again later", NULL);
	*s = (struct sse){ .conn = q->conn, .last_ms = now_ms() };
	if (limit < 0)
		limit = ROUTE_STREAM_BACKLOG_DEFAULT;
	first = limit < n ? n - (int)limit : 0;
	if (last && *last) {
		/* A reconnecting client: what it has not seen, as far as the
		 * ring still holds it. */
		char *end;
		unsigned long long id = strtoull(last, &end, 10);
		first = n;
		for (int i = 0; *end == 0 && i < n; i++)
			if (log_ring_get(i)->seq > id) {
				first = i;
				break;
			}
	}
	sse_append(s, "retry: 2000\n\n", 13);
	for (int i = first; i < n; i++)
		sse_event(s, log_ring_get(i));
	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, sse_read, s, sse_free);
	if (!resp) {
		sse_free(s);
		return MHD_NO;
	}
	MHD_add_response_header(resp, "Content-Type", "text/event-stream");
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	MHD_add_response_header(resp, "X-Accel-Buffering", "no");
	r = MHD_queue_response(q->conn, 200, resp);
	MHD_destroy_response(resp);
	return r;
}

/* ---- endpoints served here rather than by the control dispatcher */

static enum MHD_Result serve_probe(struct http *h, struct hreq *q)
{
	char *buf;
	ssize_t n;
	json_t *o;
	json_error_t jerr;
	int fd;

	if (!h->probe_file[0])
		return queue_err(q->conn, 404, "not_found", "no traffic probe is configured (api.probe_file)", NULL);
	fd = open(h->probe_file, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		char msg[TND_PATH_MAX + 80];
		snprintf(msg, sizeof msg, "the probe file %s cannot be read: %s", h->probe_file, strerror(errno));
		return queue_err(q->conn, 503, "unavailable", msg, NULL);
	}
	buf = malloc(HTTP_PROBE_MAX_BYTES + 1);
	n = buf ? read(fd, buf, HTTP_PROBE_MAX_BYTES + 1) : -1;
	close(fd);
	o = n > 0 && n <= HTTP_PROBE_MAX_BYTES ? json_loadb(buf, (size_t)n, 0, &jerr) : NULL;
	free(buf);
	if (!json_is_object(o)) {
		json_decref(o);
		return queue_err(q->conn, 503, "unavailable", "the probe file does not hold one JSON object (yet)", NULL);
	}
	json_object_set_new(o, "ok", json_true());
	return queue_json(q->conn, 200, o);
}

/* The image files in api.images_dir, newest first. */
static json_t *image_files(struct http *h, char *why, size_t why_len)
{
	DIR *dir = opendir(h->images_dir);
	json_t *arr = json_array();
	struct dirent *de;
	char path[TND_PATH_MAX * 2];
	struct stat st;

	if (!dir) {
		snprintf(why, why_len, "%s: %s", h->images_dir, strerror(errno));
		return arr;
	}
	while ((de = readdir(dir)) && json_array_size(arr) < HTTP_IMAGES_MAX) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "%s/%s", h->images_dir, de->d_name);
		if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
			continue;
		json_array_append_new(arr, json_pack("{s:s,s:s,s:I,s:I}", "name", de->d_name, "path", path, "size",
						     (json_int_t)st.st_size, "mtime", (json_int_t)st.st_mtime));
	}
	closedir(dir);
	return arr;
}

static enum MHD_Result serve_static(struct hreq *q, const char *url)
{
	const struct www_file *f = www_find(url);
	struct MHD_Response *resp;
	enum MHD_Result r;

	if (!f)
		return queue_err(q->conn, 404, "not_found", "no such page", NULL);
	resp = MHD_create_response_from_buffer(f->len, (void *)f->data, MHD_RESPMEM_PERSISTENT);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, "Content-Type", f->mime);
	MHD_add_response_header(resp, "Cache-Control", "no-cache");
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(resp, "X-Frame-Options", "DENY");
	/* Everything the page needs comes from tandemd itself. */
	MHD_add_response_header(resp, "Content-Security-Policy",
				"default-src 'self'; img-src 'self' data:; style-src 'self'; "
				"script-src 'self'; connect-src 'self'; frame-ancestors 'none'");
	r = MHD_queue_response(q->conn, 200, resp);
	MHD_destroy_response(resp);
	return r;
}

static enum MHD_Result serve_metrics(struct http *h, struct hreq *q)
{
	size_t len = 0;
	char *text = h->ops.metrics ? h->ops.metrics(h->ops.arg, &len) : NULL;

	if (!text)
		return queue_err(q->conn, 500, "failed", "the metrics could not be rendered", NULL);
	return respond(q->conn, 200, "text/plain; version=0.0.4; charset=utf-8", text, len, NULL);
}

static enum MHD_Result answer_ctl(struct http *h, struct hreq *q, json_t *res)
{
	int status = status_of(res, q->ok_status);

	if (json_is_true(json_object_get(res, "ok"))) {
		if (q->r->id == RT_SESSIONS) {
			json_t *s = json_object_get(res, "sessions"), *o = json_pack("{s:b}", "ok", 1);
			if (json_is_object(s))
				json_object_update(o, s);
			json_decref(res);
			res = o;
		} else if (q->r->id == RT_IMAGES) {
			char why[TND_PATH_MAX + 64] = "";
			json_object_set_new(res, "images_dir", json_string(h->images_dir));
			json_object_set_new(res, "files", image_files(h, why, sizeof why));
			if (why[0])
				json_object_set_new(res, "files_error", json_string(why));
		}
	}
	if (q->r->write) {
		char msg[200];
		const char *e = json_string_value(json_object_get(res, "error"));
		log_event(status < 300 ? LVL_INFO : LVL_WARN, "api.request", "method=POST path=%s status=%d remote=%s%s%s",
			  q->r->path, status, q->remote, e ? " error=" : "", e ? log_kv_quote(e, msg, sizeof msg) : "");
	}
	return queue_json(q->conn, status, res);
}

/* ctl's deferred answer: wake the connection that waits for it. */
static void http_ext_done(void *arg, uint64_t tag, json_t *res)
{
	struct http *h = arg;

	for (int i = 0; i < CTL_EXT_MAX; i++) {
		struct hreq *q = h->waiting[i];
		if (!q || q->tag != tag)
			continue;
		h->waiting[i] = NULL;
		q->answer = res;
		MHD_resume_connection(q->conn);
		mhd_run(h);
		return;
	}
	json_decref(res);
}

static enum MHD_Result run_ctl(struct http *h, struct hreq *q, json_t *ctl_req)
{
	json_t *res;
	int slot = -1;

	for (int i = 0; i < CTL_EXT_MAX && slot < 0; i++)
		if (!h->waiting[i])
			slot = i;
	if (slot < 0) {
		json_decref(ctl_req);
		return queue_err(q->conn, 503, "unavailable", "too many requests waiting for an answer; try again", NULL);
	}
	q->tag = ++h->next_tag;
	res = ctl_request(h->ctl, ctl_req, q->tag);
	json_decref(ctl_req);
	if (res)
		return answer_ctl(h, q, res);
	/* Answered later: park the connection (a suspended connection does
	 * not time out; every deferred command has its own deadline). */
	q->waiting = true;
	h->waiting[slot] = q;
	MHD_suspend_connection(q->conn);
	return MHD_YES;
}

/* A body still arriving after HTTP_BODY_TIMEOUT_S. libmicrohttpd cannot
 * queue an answer while it receives a body, so on plain HTTP the 408 is
 * written to the socket directly, once, before the connection is closed
 * (a client that stopped reading simply misses it). Over TLS there is no
 * such shortcut: the connection is closed. */
static void slow_reply(struct http *h, struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	char body[160], out[400];
	int nb, n;

	if (h->tls_cert || !ci)
		return;
	nb = snprintf(body, sizeof body,
		      "{\"ok\":false,\"code\":\"timeout\",\"error\":\"the request's body did not arrive within %d s\"}\n",
		      HTTP_BODY_TIMEOUT_S);
	n = snprintf(out, sizeof out,
		     "HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\nConnection: close\r\n"
		     "Content-Length: %d\r\n\r\n%s",
		     nb, body);
	if (n > 0 && (size_t)n < sizeof out)
		(void)!send(ci->connect_fd, out, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
}

/* ---- the request handler */


struct args_ctx {
	struct route_arg a[ROUTE_ARGS_MAX];
	int n;
	bool overflow;
};

static enum MHD_Result collect_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	struct args_ctx *c = cls;

	if (c->n == ROUTE_ARGS_MAX) {
		c->overflow = true;
		return MHD_NO;
	}
	c->a[c->n++] = (struct route_arg){ key, value };
	return MHD_YES;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
			      const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
	struct http *h = cls;
	struct hreq *q = *con_cls;
	struct route_out out;
	struct args_ctx args = { .n = 0 };

	if (!q) {
		/* The first call: the request line and headers only. */
		const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
		const char *cl;
		q = calloc(1, sizeof *q);
		if (!q)
			return MHD_NO;
		q->conn = conn;
		q->h = h;
		q->t0 = loop_now();
		snprintf(q->remote, sizeof q->remote, "-");
		if (ci && ci->client_addr) {
			const struct sockaddr *sa = ci->client_addr;
			if (sa->sa_family == AF_INET)
				inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, q->remote, sizeof q->remote);
			else if (sa->sa_family == AF_INET6)
				inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, q->remote,
					  sizeof q->remote);
		}
		*con_cls = q;
		if (route_find(method, url, &q->r, &q->allow, &q->err) != 0) {
			q->early = q->err.status;
		} else if (q->r->write) {
			int st = token_check(h, conn, q->err.msg, sizeof q->err.msg);
			if (st) {
				q->early = st;
				snprintf(q->err.code, sizeof q->err.code, "%s", st == 401 ? "unauthorized" : "unavailable");
				log_event(LVL_WARN, "api.refused", "method=%s path=%s status=%d remote=%s reason=\"%s\"",
					  method, q->r->path, st, q->remote,
					  st == 401 ? (MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
									   MHD_HTTP_HEADER_AUTHORIZATION)
							       ? "wrong token"
							       : "no token")
						    : "no valid token file");
			}
		}
		cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (!q->early && cl && q->r && strtoull(cl, NULL, 10) > (q->r->write ? q->r->body_max : 0)) {
			q->early = q->r->write ? 413 : 400;
			snprintf(q->err.code, sizeof q->err.code, "%s", q->r->write ? "too_large" : "usage");
			if (q->r->write)
				snprintf(q->err.msg, sizeof q->err.msg, "the body is over the limit of %zu bytes",
					 q->r->body_max);
			else
				snprintf(q->err.msg, sizeof q->err.msg, "a GET request takes no body");
		}
		return MHD_YES;
	}
	if (q->waiting) {
		/* Resumed: the deferred answer is in. */
		json_t *res = q->answer;
		q->answer = NULL;
		q->waiting = false;
		return answer_ctl(h, q, res ? res : json_pack("{s:b,s:s,s:s}", "ok", 0, "code", "failed", "error",
							      "no answer"));
	}
	if (*upload_size > 0 && loop_now() - q->t0 > (mono_t)HTTP_BODY_TIMEOUT_S * 1000000000LL) {
		/* A body trickling in: refused now, not waited for (one that
		 * stops altogether is cut off at HTTP_TIMEOUT_S). */
		char qp[160];
		log_event(LVL_WARN, "api.refused", "method=%s path=%s status=408 remote=%s reason=slow_body", method,
			  log_kv_quote(url, qp, sizeof qp), q->remote);
		slow_reply(h, conn);
		return MHD_NO; /* close the connection */
	}
	if (*upload_size > 0) {
		/* Body data: kept up to the route's limit, the rest read and
		 * dropped so the refusal can still be sent. */
		size_t max = q->r && q->r->write ? q->r->body_max : 0;
		if (!q->early && !q->too_large) {
			if (q->len + *upload_size > max) {
				q->too_large = true;
				free(q->body);
				q->body = NULL;
				q->len = q->cap = 0;
			} else {
				if (q->len + *upload_size > q->cap) {
					size_t cap = q->cap ? q->cap : 4096;
					while (cap < q->len + *upload_size)
						cap *= 2;
					char *nb = realloc(q->body, cap);
					if (!nb)
						return MHD_NO;
					q->body = nb;
					q->cap = cap;
				}
				memcpy(q->body + q->len, upload, *upload_size);
				q->len += *upload_size;
			}
		}
		*upload_size = 0;
		return MHD_YES;
	}
	/* The whole request is in. */
	if (q->early)
		return queue_err(conn, q->early, q->err.code, q->err.msg, q->early == 405 ? q->allow : NULL);
	if (q->too_large) {
		char msg[96];
		if (!q->r->write)
			return queue_err(conn, 400, "usage", "a GET request takes no body", NULL);
		snprintf(msg, sizeof msg, "the body is over the limit of %zu bytes", q->r->body_max);
		return queue_err(conn, 413, "too_large", msg, NULL);
	}
	MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, collect_arg, &args);
	if (args.overflow)
		return queue_err(conn, 400, "usage", "too many query arguments", NULL);
	if (route_build(q->r, args.a, args.n,
			MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE), q->body,
			q->len, &out, &q->err) != 0) {
		if (q->r->write)
			log_event(LVL_WARN, "api.request", "method=POST path=%s status=%d remote=%s error=\"%s\"",
				  q->r->path, q->err.status, q->remote, q->err.code);
		return queue_err(conn, q->err.status, q->err.code, q->err.msg, NULL);
	}
	q->ok_status = out.ok_status;
	switch (q->r->id) {
	case RT_STATIC:
		return serve_static(q, url);
	case RT_METRICS:
		return serve_metrics(h, q);
	case RT_PROBE:
		return serve_probe(h, q);
	case RT_EVENTS_STREAM:
		return open_stream(h, q, out.limit);
	default:
		return run_ctl(h, q, out.ctl);
	}
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
	struct http *h = cls;
	struct hreq *q = *con_cls;

	if (!q)
		return;
	for (int i = 0; i < CTL_EXT_MAX; i++)
		if (h->waiting[i] == q)
			h->waiting[i] = NULL;
	json_decref(q->answer);
	free(q->body);
	free(q);
	*con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[300], q[320];
	size_t n;

	vsnprintf(msg, sizeof msg, fmt, ap);
	n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
		msg[--n] = 0;
	log_event(LVL_WARN, "api.http_error", "error=%s", log_kv_quote(msg, q, sizeof q));
}

/* ---- life cycle */

static char *slurp(const char *path, char *err, size_t err_len)
{
	FILE *f = fopen(path, "re");
	char *buf = NULL;
	size_t cap = 0, len = 0, n;

	if (!f) {
		snprintf(err, err_len, "%s: %s", path, strerror(errno));
		return NULL;
	}
	do {
		if (len + 4096 + 1 > cap) {
			char *nb = cap < 1024 * 1024 ? realloc(buf, cap = cap ? cap * 2 : 8192) : NULL;
			if (!nb) {
				snprintf(err, err_len, "%s: too large or out of memory", path);
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = nb;
		}
		n = fread(buf + len, 1, 4096, f);
		len += n;
	} while (n > 0);
	fclose(f);
	buf[len] = 0;
	return buf;
}

/* Split "host:port" / "[v6]:port" and resolve it. */
static int resolve(const char *hp, struct sockaddr_storage *ss, socklen_t *sl, char *err, size_t err_len)
{
	char host[TND_NAME_MAX], *port;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV }, *ai;
	int r;

	snprintf(host, sizeof host, "%s", hp);
	port = strrchr(host, ':');
	if (!port) {
		snprintf(err, err_len, "api.http %s has no port", hp);
		return -1;
	}
	*port++ = 0;
	if (host[0] == '[') {
		memmove(host, host + 1, strlen(host));
		char *rb = strchr(host, ']');
		if (rb)
			*rb = 0;
	}
	r = getaddrinfo(host, port, &hints, &ai);
	if (r != 0) {
		snprintf(err, err_len, "api.http %s: %s", hp, gai_strerror(r));
		return -1;
	}
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	*sl = ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
}

struct http *http_open(const struct tnd_conf *conf, struct loop *loop, struct ctl *ctl,
		       const struct http_ops *ops, char *err, size_t err_len)
{
	struct http *h = calloc(1, sizeof *h);
	struct sockaddr_storage ss;
	socklen_t sl;
	unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	const union MHD_DaemonInfo *info;
	struct itimerspec its = { .it_interval = { 0, HTTP_TICK_MS * 1000000L },
				  .it_value = { 0, HTTP_TICK_MS * 1000000L } };

	if (!h) {
		snprintf(err, err_len, "out of memory");
		return NULL;
	}
	h->loop = loop;
	h->ctl = ctl;
	h->ops = *ops;
	h->conf = conf;
	h->epfd = h->tfd = -1;
	snprintf(h->token_path, sizeof h->token_path, "%s", conf->api_token_file);
	snprintf(h->images_dir, sizeof h->images_dir, "%s", conf->api_images_dir);
	snprintf(h->probe_file, sizeof h->probe_file, "%s", conf->api_probe_file);
	snprintf(h->addr, sizeof h->addr, "%s", conf->api_http);
	if (resolve(conf->api_http, &ss, &sl, err, err_len) != 0)
		goto fail;
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	if (conf->api_tls_cert[0]) {
		if (!MHD_is_feature_supported(MHD_FEATURE_TLS)) {
			snprintf(err, err_len, "this libmicrohttpd has no TLS support");
			goto fail;
		}
		if (!(h->tls_cert = slurp(conf->api_tls_cert, err, err_len)) ||
		    !(h->tls_key = slurp(conf->api_tls_key, err, err_len)))
			goto fail;
		flags |= MHD_USE_TLS;
	}
	h->mhd = MHD_start_daemon(flags, 0, NULL, NULL, handle, h, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h,
				  MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
				  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_TIMEOUT_S, MHD_OPTION_CONNECTION_LIMIT,
				  (unsigned)HTTP_CONNECTIONS_MAX, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
				  (unsigned)(HTTP_CONNECTIONS_MAX / 2), MHD_OPTION_NOTIFY_COMPLETED, completed, h,
				  h->tls_cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, h->tls_cert,
				  MHD_OPTION_HTTPS_MEM_KEY, h->tls_key, MHD_OPTION_END);
	if (!h->mhd) {
		snprintf(err, err_len, "cannot listen on %s%s (address in use or not local, or a bad certificate)",
			 conf->api_http, h->tls_cert ? " with TLS" : "");
		goto fail;
	}
	info = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	h->epfd = info ? info->epoll_fd : -1;
	h->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (h->epfd < 0 || h->tfd < 0 || timerfd_settime(h->tfd, 0, &its, NULL) != 0 ||
	    loop_add(loop, h->epfd, EPOLLIN, on_epoll, h) != 0) {
		snprintf(err, err_len, "cannot attach the HTTP server to the event loop");
		goto fail;
	}
	if (loop_add(loop, h->tfd, EPOLLIN, on_timer, h) != 0) {
		loop_del(loop, h->epfd);
		snprintf(err, err_len, "cannot attach the HTTP server to the event loop");
		goto fail;
	}
	ctl_set_external(ctl, http_ext_done, h);
	token_load(h);
	return h;
fail:
	if (h->mhd)
		MHD_stop_daemon(h->mhd);
	if (h->tfd >= 0)
		close(h->tfd);
	free(h->tls_cert);
	if (h->tls_key)
		sodium_memzero(h->tls_key, strlen(h->tls_key));
	free(h->tls_key);
	free(h);
	return NULL;
}

void http_close(struct http *h)
{
	if (!h)
		return;
	ctl_set_external(h->ctl, NULL, NULL);
	/* What still waits gets an answer; streams end. */
	for (int i = 0; i < CTL_EXT_MAX; i++) {
		struct hreq *q = h->waiting[i];
		if (!q)
			continue;
		h->waiting[i] = NULL;
		q->answer = json_pack("{s:b,s:s,s:s}", "ok", 0, "code", "failed", "error",
				      "the HTTP API stopped before the answer came; check the state");
		MHD_resume_connection(q->conn);
	}
	for (int i = 0; i < HTTP_STREAMS_MAX; i++)
		if (h->sse[i].conn) {
			h->sse[i].dead = true;
			sse_wake(h, &h->sse[i]);
		}
	mhd_run(h);
	loop_del(h->loop, h->epfd);
	loop_del(h->loop, h->tfd);
	close(h->tfd);
	MHD_stop_daemon(h->mhd);
	free(h->tls_cert);
	if (h->tls_key)
		sodium_memzero(h->tls_key, strlen(h->tls_key));
	free(h->tls_key);
	free(h);
}

const char *http_address(const struct http *h)
{
	return h ? h->addr : NULL;
}
