/* ctl.c - control socket server (see ctl.h for the protocol).
 *
 * Owns: the listening socket, the client table and each client's bounded
 * input and output buffers. Requests are validated here (names resolved
 * against the configuration, types checked) and handed to the daemon
 * through struct ctl_ops; the core decides whether the cluster allows
 * them. Every administrative request is logged as an event, so
 * `tandemctl events` answers "who asked for this failover?". */
#include "ctl.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* A request waiting for its deferred answer: a socket client's or an
 * external one's. */
struct ctl_wait {
	uint32_t token;   /* a deferred answer is due (0: none) */
	bool in_dispatch; /* its request is being handled right now */
	json_t *sync_res; /* an answer given during that handling */
};

struct ctl_client {
	int fd; /* -1 = free slot */
	bool follow;  /* streaming events */
	bool closing; /* drop once the output is flushed */
	bool want_out;
	struct ctl_wait w;
	char *in; /* grows up to CTL_REQ_MAX_BYTES */
	size_t in_len, in_cap;
	char *out;
	size_t out_len, out_cap;
};

/* An external request waiting for its deferred answer. */
struct ctl_ext {
	struct ctl_wait w; /* w.token 0: free */
	uint64_t tag;
};

struct ctl {
	int lfd;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct loop *loop;
	const struct tnd_conf *conf;
	int self;
	uint32_t serial; /* for deferred-answer tokens */
	struct ctl_ops ops;
	struct ctl_client cl[CTL_CLIENTS_MAX];
	/* Token slots CTL_CLIENTS_MAX.. are the external requests'. */
	struct ctl_ext ext[CTL_EXT_MAX];
	ctl_ext_done_fn ext_done;
	void *ext_arg;
};

static void client_drop(struct ctl *c, struct ctl_client *cl)
{
	if (cl->fd < 0)
		return;
	loop_del(c->loop, cl->fd);
	close(cl->fd);
	free(cl->in);
	free(cl->out);
	*cl = (struct ctl_client){ .fd = -1 };
}

/* Set the epoll interest from the client's state. */
static void client_interest(struct ctl *c, struct ctl_client *cl)
{
	uint32_t ev = cl->closing ? 0 : EPOLLIN;

	if (cl->out_len > 0)
		ev |= EPOLLOUT;
	loop_mod(c->loop, cl->fd, ev);
	cl->want_out = cl->out_len > 0;
}

/* Write what we can. Returns false when the client was dropped. */
static bool client_flush(struct ctl *c, struct ctl_client *cl)
{
	size_t off = 0;

	while (off < cl->out_len) {
		ssize_t w = send(cl->fd, cl->out + off, cl->out_len - off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			client_drop(c, cl);
			return false;
		}
		off += (size_t)w;
	}
	memmove(cl->out, cl->out + off, cl->out_len - off);
	cl->out_len -= off;
	if (cl->out_len == 0 && cl->closing) {
		client_drop(c, cl);
		return false;
	}
	if ((cl->out_len > 0) != cl->want_out || cl->closing)
		client_interest(c, cl);
	return true;
}

/* Queue one line. A client whose backlog would exceed CTL_OUT_MAX_BYTES
 * is not reading: drop it rather than grow or block. */
static bool client_send(struct ctl *c, struct ctl_client *cl, const char *s, size_t len)
{
	if (cl->out_len + len + 1 > CTL_OUT_MAX_BYTES) {
		client_drop(c, cl);
		return false;
	}
	if (cl->out_len + len + 1 > cl->out_cap) {
		size_t cap = cl->out_cap ? cl->out_cap : 4096;
		while (cap < cl->out_len + len + 1)
			cap *= 2;
		if (cap > CTL_OUT_MAX_BYTES)
			cap = CTL_OUT_MAX_BYTES;
		char *n = realloc(cl->out, cap);
		if (!n) {
			client_drop(c, cl);
			return false;
		}
		cl->out = n;
		cl->out_cap = cap;
	}
	memcpy(cl->out + cl->out_len, s, len);
	cl->out[cl->out_len + len] = '\n';
	cl->out_len += len + 1;
	return client_flush(c, cl);
}

static bool client_send_json(struct ctl *c, struct ctl_client *cl, json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT);
	bool ok;

	json_decref(o);
	if (!s) {
		client_drop(c, cl);
		return false;
	}
	ok = client_send(c, cl, s, strlen(s));
	free(s);
	return ok;
}

static json_t *err_json(const char *code, const char *msg)
{
	return json_pack("{s:b,s:s,s:s}", "ok", 0, "code", code, "error", msg);
}

/* Map a node_admin result onto the protocol's codes (and tandemctl's
 * exit codes: refused 3, usage 2, failed 1). */
static json_t *admin_result(int r, const char *why)
{
	const char *msg = why && why[0] ? why : tnd_strerror(r);

	switch (r) {
	case 0:
		return json_pack("{s:b}", "ok", 1);
	case TND_EREFUSED:
		return err_json("refused", msg);
	case TND_ENOENT:
	case TND_EINVAL:
		return err_json("usage", msg);
	default:
		return err_json("failed", msg);
	}
}

static const char *node_name(const struct ctl *c, int idx)
{
	return idx >= 0 && idx < c->conf->n_nodes ? c->conf->nodes[idx].name : "-";
}

/* Resolve an optional "node"/"to" member. Returns 0 (with *idx possibly
 * TND_NO_NODE when absent) or fills *err. */
static int get_node(const struct ctl *c, json_t *req, const char *key, int *idx,
		    json_t **err)
{
	json_t *v = json_object_get(req, key);
	char msg[160];

	*idx = TND_NO_NODE;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v)) {
		snprintf(msg, sizeof msg, "\"%s\" must be a node name", key);
		*err = err_json("usage", msg);
		return TND_EINVAL;
	}
	*idx = conf_node_index(c->conf, json_string_value(v));
	if (*idx < 0) {
		snprintf(msg, sizeof msg, "no node named \"%.64s\" in the configuration",
			 json_string_value(v));
		*err = err_json("usage", msg);
		return TND_ENOENT;
	}
	return 0;
}

static int get_bool(json_t *req, const char *key, bool dflt, bool *out, json_t **err)
{
	json_t *v = json_object_get(req, key);
	char msg[96];

	*out = dflt;
	if (!v)
		return 0;
	if (!json_is_boolean(v)) {
		snprintf(msg, sizeof msg, "\"%s\" must be true or false", key);
		*err = err_json("usage", msg);
		return TND_EINVAL;
	}
	*out = json_is_true(v);
	return 0;
}

static json_t *do_admin(struct ctl *c, const struct admin_req *req, const char *what)
{
	char why[256] = "";
	int r = c->ops.admin(c->ops.arg, req, why, sizeof why);
	char q[300];

	log_event(r == 0 ? LVL_INFO : LVL_WARN, "admin.request", "%s result=%s%s%s", what,
		  r == 0 ? "ok" : r == TND_EREFUSED ? "refused" : "error",
		  r == 0 ? "" : " reason=", r == 0 ? "" : log_kv_quote(why[0] ? why : tnd_strerror(r), q, sizeof q));
	return admin_result(r, why);
}

static json_t *cmd_failover(struct ctl *c, json_t *req)
{
	json_t *g = json_object_get(req, "group"), *err = NULL, *res;
	struct admin_req ar = { .op = ADM_FAILOVER, .target = TND_NO_NODE };
	bool reset;
	char what[128];

	if (!g)
		return err_json("usage", "failover needs \"group\"");
	if (!json_is_integer(g) || json_integer_value(g) < 0 || json_integer_value(g) > 255)
		return err_json("usage", "\"group\" must be an integer 0..255");
	ar.group_id = (int)json_integer_value(g);
	if (conf_group_index(c->conf, ar.group_id) < 0) {
		char msg[96];
		snprintf(msg, sizeof msg, "no redundancy group %d in the configuration", ar.group_id);
		return err_json("usage", msg);
	}
	if (get_bool(req, "reset", false, &reset, &err) != 0)
		return err;
	if (reset) {
		if (json_object_get(req, "to"))
			return err_json("usage", "\"reset\" and \"to\" do not go together");
		ar.op = ADM_FAILOVER_RESET;
		snprintf(what, sizeof what, "cmd=failover group=%d reset=true", ar.group_id);
		res = do_admin(c, &ar, what);
	} else {
		if (get_node(c, req, "to", &ar.target, &err) != 0)
			return err;
		snprintf(what, sizeof what, "cmd=failover group=%d to=%s", ar.group_id,
			 node_name(c, ar.target));
		res = do_admin(c, &ar, what);
		if (json_is_true(json_object_get(res, "ok")))
			json_object_set_new(res, "to", ar.target == TND_NO_NODE ? json_null()
						   : json_string(node_name(c, ar.target)));
	}
	json_object_set_new(res, "group", json_integer(ar.group_id));
	return res;
}

static json_t *cmd_maintenance(struct ctl *c, json_t *req)
{
	struct admin_req ar = { .op = ADM_MAINT };
	json_t *err = NULL, *res;
	char what[128];

	if (!json_is_boolean(json_object_get(req, "on")))
		return err_json("usage", "maintenance needs \"on\": true or false");
	ar.on = json_is_true(json_object_get(req, "on"));
	if (get_node(c, req, "node", &ar.target, &err) != 0)
		return err;
	if (ar.target == TND_NO_NODE)
		ar.target = c->self;
	snprintf(what, sizeof what, "cmd=maintenance node=%s on=%s", node_name(c, ar.target),
		 ar.on ? "true" : "false");
	res = do_admin(c, &ar, what);
	if (json_is_true(json_object_get(res, "ok"))) {
		json_object_set_new(res, "node", json_string(node_name(c, ar.target)));
		json_object_set_new(res, "on", json_boolean(ar.on));
	}
	return res;
}

static json_t *cmd_events(struct ctl *c, json_t *req, bool *follow)
{
	json_t *lim = json_object_get(req, "limit"), *err = NULL, *arr, *res;
	json_int_t limit = CTL_EVENTS_DEFAULT;
	int n, first;

	if (get_bool(req, "follow", false, follow, &err) != 0)
		return err;
	if (lim) {
		if (!json_is_integer(lim) || json_integer_value(lim) < 0)
			return err_json("usage", "\"limit\" must be a non-negative integer");
		limit = json_integer_value(lim);
	}
	n = log_ring_count();
	first = limit < n ? n - (int)limit : 0;
	arr = json_array();
	for (int i = first; i < n; i++)
		json_array_append_new(arr, log_entry_json(log_ring_get(i)));
	res = json_pack("{s:b}", "ok", 1);
	json_object_set_new(res, "events", arr);
	json_object_set_new(res, "follow", json_boolean(*follow));
	return res;
}

static json_t *dispatch(struct ctl *c, json_t *req, bool *follow, uint32_t token,
		       bool *deferred)
{
	const char *cmd = json_string_value(json_object_get(req, "cmd"));
	struct admin_req ar = { .target = TND_NO_NODE };
	char msg[128];

	*follow = false;
	if (!cmd)
		return err_json("usage", "request needs \"cmd\" (a string)");
	if (strcmp(cmd, "status") == 0) {
		json_t *st = c->ops.status(c->ops.arg), *res;
		if (!st)
			return err_json("failed", "out of memory");
		res = json_pack("{s:b}", "ok", 1);
		json_object_update(res, st);
		json_decref(st);
		return res;
	}
	if (strcmp(cmd, "failover") == 0)
		return cmd_failover(c, req);
	if (strcmp(cmd, "activate") == 0) {
		ar.op = ADM_ACTIVATE;
		return do_admin(c, &ar, "cmd=activate");
	}
	if (strcmp(cmd, "deactivate") == 0) {
		ar.op = ADM_DEACTIVATE;
		return do_admin(c, &ar, "cmd=deactivate");
	}
	if (strcmp(cmd, "maintenance") == 0)
		return cmd_maintenance(c, req);
	if (strcmp(cmd, "events") == 0)
		return cmd_events(c, req, follow);
	if (strcmp(cmd, "config") == 0) {
		if (!c->ops.config)
			return err_json("failed", "configuration sync is not available");
		json_t *res = c->ops.config(c->ops.arg, req, token, deferred);
		return res || *deferred ? res : err_json("failed", "out of memory");
	}
	if (strcmp(cmd, "image") == 0) {
		if (!c->ops.image)
			return err_json("failed", "software images are not available");
		json_t *res = c->ops.image(c->ops.arg, req, token, deferred);
		return res || *deferred ? res : err_json("failed", "out of memory");
	}
	if (strcmp(cmd, "upgrade") == 0) {
		if (!c->ops.upgrade)
			return err_json("failed", "the in-service upgrade is not available");
		json_t *res = c->ops.upgrade(c->ops.arg, req, token, deferred);
		return res || *deferred ? res : err_json("failed", "out of memory");
	}
	snprintf(msg, sizeof msg, "unknown command \"%.64s\"", cmd);
	return err_json("usage", msg);
}

/* Token: the slot in the low byte, a serial above it, so an answer for a
 * client that left never reaches the slot's next user. */
static uint32_t new_token(struct ctl *c, uint32_t slot)
{
	uint32_t token = slot | (++c->serial << 8);

	if (token >> 8 == 0)
		token = slot | (++c->serial << 8);
	return token;
}

/* Dispatch `req` for waiter w (slot `slot`) under a new token. A deferred
 * answer may come while the request is being handled (the daemon decided
 * at once): ctl_reply() keeps it in sync_res and it is returned here,
 * rather than re-entering the caller. *later: the answer comes later
 * through ctl_reply() (w->token stays set). */
static json_t *wait_dispatch(struct ctl *c, struct ctl_wait *w, uint32_t slot, json_t *req, bool *follow,
			     bool *later)
{
	bool deferred = false;
	json_t *res;

	w->token = new_token(c, slot);
	w->in_dispatch = true;
	res = json_is_object(req) ? dispatch(c, req, follow, w->token, &deferred)
				  : err_json("usage", "request must be a JSON object");
	w->in_dispatch = false;
	if (w->sync_res) {
		json_decref(res);
		res = w->sync_res;
		w->sync_res = NULL;
		deferred = false;
	}
	*later = deferred && !res;
	if (!*later)
		w->token = 0;
	return res;
}

/* A deferred answer `res` (taken) for waiter w: true when the caller must
 * deliver it now; false when it was not awaited (dropped) or came during
 * the dispatch (kept for wait_dispatch). */
static bool wait_answer(struct ctl_wait *w, uint32_t token, json_t *res)
{
	if (w->token != token) {
		json_decref(res);
		return false;
	}
	if (w->in_dispatch) {
		json_decref(w->sync_res);
		w->sync_res = res;
		return false;
	}
	w->token = 0;
	return true;
}

/* Handle one request line. Returns false when the client was dropped. */
static bool handle_line(struct ctl *c, struct ctl_client *cl, const char *line, size_t len)
{
	json_error_t jerr;
	json_t *req, *res;
	bool follow = false, later;

	while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' '))
		len--;
	if (len == 0)
		return true; /* blank lines are harmless */
	req = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!req) {
		char msg[200];
		snprintf(msg, sizeof msg, "request is not valid JSON: %s", jerr.text);
		return client_send_json(c, cl, err_json("usage", msg));
	}
	res = wait_dispatch(c, &cl->w, (uint32_t)(cl - c->cl), req, &follow, &later);
	json_decref(req);
	if (later)
		return true; /* ctl_reply() answers */
	if (!client_send_json(c, cl, res))
		return false;
	if (follow)
		cl->follow = true;
	return true;
}

static bool process_input(struct ctl *c, struct ctl_client *cl)
{
	size_t start = 0;

	for (size_t i = 0; i < cl->in_len; i++) {
		if (cl->in[i] != '\n')
			continue;
		if (cl->w.token)
			break; /* the next request waits for this answer */
		if (!cl->follow && !handle_line(c, cl, cl->in + start, i - start))
			return false;
		start = i + 1;
		if (cl->closing || cl->w.token)
			break;
	}
	memmove(cl->in, cl->in + start, cl->in_len - start);
	cl->in_len -= start;
	if (cl->in_len >= CTL_REQ_MAX_BYTES && !cl->closing) {
		cl->closing = true;
		cl->in_len = 0;
		if (!client_send_json(c, cl, err_json("usage", "request longer than 3 MiB")))
			return false;
		client_interest(c, cl);
	}
	return true;
}

static void on_client(struct loop *l, int fd, uint32_t events, void *arg)
{
	struct ctl *c = arg;
	struct ctl_client *cl = NULL;

	for (int i = 0; i < CTL_CLIENTS_MAX; i++)
		if (c->cl[i].fd == fd)
			cl = &c->cl[i];
	if (!cl)
		return;
	if ((events & (EPOLLHUP | EPOLLERR)) && cl->closing) {
		client_drop(c, cl); /* cannot deliver the rest anyway */
		return;
	}
	if ((events & EPOLLOUT) && !client_flush(c, cl))
		return;
	if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)) || cl->closing)
		return;
	for (;;) {
		if (cl->in_len == cl->in_cap && cl->in_cap < CTL_REQ_MAX_BYTES) {
			size_t cap = cl->in_cap * 2 > CTL_REQ_MAX_BYTES ? CTL_REQ_MAX_BYTES : cl->in_cap * 2;
			char *n = realloc(cl->in, cap);
			if (!n) {
				client_drop(c, cl);
				return;
			}
			cl->in = n;
			cl->in_cap = cap;
		}
		if (cl->w.token && cl->in_len == cl->in_cap)
			return; /* full and waiting: read more once answered */
		ssize_t r = recv(fd, cl->in + cl->in_len, cl->in_cap - cl->in_len, MSG_DONTWAIT);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			client_drop(c, cl);
			return;
		}
		if (r == 0) {
			/* Peer finished sending: answer a last request that had
			 * no newline, then close once the answers are out. */
			if (cl->in_len > 0 && !cl->follow && !cl->w.token &&
			    cl->in_len < CTL_REQ_MAX_BYTES && !handle_line(c, cl, cl->in, cl->in_len))
				return;
			if (cl->follow) {
				client_drop(c, cl);
				return;
			}
			cl->closing = true;
			cl->in_len = 0;
			if (cl->out_len == 0 && !cl->w.token)
				client_drop(c, cl);
			else
				client_interest(c, cl);
			return;
		}
		if (cl->follow) {
			cl->in_len = 0; /* a follower's input is ignored */
			continue;
		}
		cl->in_len += (size_t)r;
		if (!process_input(c, cl) || cl->closing)
			return;
	}
}

static void on_listen(struct loop *l, int fd, uint32_t events, void *arg)
{
	struct ctl *c = arg;

	for (;;) {
		int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct ctl_client *cl = NULL;

		if (cfd < 0)
			return; /* EAGAIN, or a transient error: wait for the next event */
		for (int i = 0; i < CTL_CLIENTS_MAX && !cl; i++)
			if (c->cl[i].fd < 0)
				cl = &c->cl[i];
		if (cl) {
			cl->in_cap = 4096;
			cl->in = malloc(cl->in_cap);
			if (cl->in && loop_add(c->loop, cfd, EPOLLIN, on_client, c) == 0) {
				cl->fd = cfd;
				continue;
			}
			free(cl->in);
			cl->in = NULL;
			cl->in_cap = 0;
		}
		/* Best effort: tell the client why, then close. */
		static const char busy[] =
			"{\"ok\":false,\"code\":\"failed\",\"error\":\"too many control clients\"}\n";
		(void)!send(cfd, busy, sizeof busy - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
		close(cfd);
		log_event(LVL_WARN, "ctl.reject", "reason=too_many_clients max=%d", CTL_CLIENTS_MAX);
	}
}

void ctl_set_external(struct ctl *c, ctl_ext_done_fn done, void *arg)
{
	c->ext_done = done;
	c->ext_arg = arg;
}

json_t *ctl_request(struct ctl *c, json_t *req, uint64_t tag)
{
	struct ctl_ext *x = NULL;
	bool follow = false, later;
	json_t *res;

	for (int i = 0; i < CTL_EXT_MAX && !x; i++)
		if (c->ext[i].w.token == 0)
			x = &c->ext[i];
	if (!x)
		return err_json("failed", "too many requests waiting for an answer; try again");
	x->tag = tag;
	res = wait_dispatch(c, &x->w, (uint32_t)(CTL_CLIENTS_MAX + (x - c->ext)), req, &follow, &later);
	if (later)
		return NULL; /* ctl_reply() answers through ext_done */
	return res ? res : err_json("failed", "out of memory");
}

static void ext_reply(struct ctl *c, uint32_t token, json_t *res)
{
	struct ctl_ext *x = &c->ext[(token & 0xff) - CTL_CLIENTS_MAX];

	if (!wait_answer(&x->w, token, res))
		return;
	if (c->ext_done)
		c->ext_done(c->ext_arg, x->tag, res);
	else
		json_decref(res);
}

void ctl_reply(struct ctl *c, uint32_t token, json_t *res)
{
	struct ctl_client *cl;

	if (c && token != 0 && (token & 0xff) >= CTL_CLIENTS_MAX &&
	    (token & 0xff) < CTL_CLIENTS_MAX + CTL_EXT_MAX) {
		ext_reply(c, token, res);
		return;
	}
	if (!c || token == 0 || (token & 0xff) >= CTL_CLIENTS_MAX) {
		json_decref(res);
		return;
	}
	cl = &c->cl[token & 0xff];
	if (cl->fd < 0) {
		json_decref(res);
		return;
	}
	if (!wait_answer(&cl->w, token, res))
		return;
	if (!client_send_json(c, cl, res))
		return;
	if (cl->closing) {
		if (cl->out_len == 0)
			client_drop(c, cl);
		else
			client_interest(c, cl);
		return;
	}
	(void)process_input(c, cl); /* requests that queued behind it */
}

void ctl_set_conf(struct ctl *c, const struct tnd_conf *conf)
{
	if (c)
		c->conf = conf;
}

void ctl_publish(struct ctl *c, const struct log_entry *e)
{
	json_t *o;
	char *s;
	bool any = false;

	if (!c)
		return;
	for (int i = 0; i < CTL_CLIENTS_MAX; i++)
		any |= c->cl[i].fd >= 0 && c->cl[i].follow;
	if (!any)
		return;
	o = log_entry_json(e);
	s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!s)
		return;
	for (int i = 0; i < CTL_CLIENTS_MAX; i++)
		if (c->cl[i].fd >= 0 && c->cl[i].follow && !c->cl[i].closing)
			(void)client_send(c, &c->cl[i], s, strlen(s));
	free(s);
}

static int mkdir_parent(const char *path)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char *slash;

	snprintf(dir, sizeof dir, "%s", path);
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = '\0';
	for (char *p = dir + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(dir, 0755) != 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(dir, 0755) != 0 && errno != EEXIST)
		return -1;
	return 0;
}

/* A socket file left by a dead daemon is replaced; one with a daemon
 * behind it, or any other kind of file, is not ours to remove. */
static int clear_stale(const char *path, const struct sockaddr_un *sa, char *err, size_t err_len)
{
	struct stat st;
	int fd, r, e;

	if (lstat(path, &st) != 0)
		return errno == ENOENT ? 0 : (snprintf(err, err_len, "%s: %s", path, strerror(errno)), -1);
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, err_len, "%s exists and is not a socket; not replacing it", path);
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, err_len, "socket: %s", strerror(errno));
		return -1;
	}
	r = connect(fd, (const struct sockaddr *)sa, sizeof *sa);
	e = errno;
	close(fd);
	if (r == 0) {
		snprintf(err, err_len, "another tandemd is already listening on %s", path);
		return -1;
	}
	if (e != ECONNREFUSED && e != ENOENT) {
		snprintf(err, err_len, "%s: cannot tell whether a daemon is behind it: %s", path,
			 strerror(e));
		return -1;
	}
	if (unlink(path) != 0 && errno != ENOENT) {
		snprintf(err, err_len, "cannot remove stale socket %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

struct ctl *ctl_open(const char *path, struct loop *loop, const struct tnd_conf *conf,
		     int self, const struct ctl_ops *ops, char *err, size_t err_len)
{
	struct sockaddr_un sa;
	struct ctl *c;

	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sa.sun_path) {
		snprintf(err, err_len, "socket path too long (max %zu bytes): %s",
			 sizeof sa.sun_path - 1, path);
		return NULL;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (mkdir_parent(path) != 0) {
		snprintf(err, err_len, "cannot create the directory of %s: %s", path, strerror(errno));
		return NULL;
	}
	if (clear_stale(path, &sa, err, err_len) != 0)
		return NULL;
	c = calloc(1, sizeof *c);
	if (!c) {
		snprintf(err, err_len, "out of memory");
		return NULL;
	}
	for (int i = 0; i < CTL_CLIENTS_MAX; i++)
		c->cl[i].fd = -1;
	memcpy(c->path, path, strlen(path) + 1);
	c->loop = loop;
	c->conf = conf;
	c->self = self;
	c->ops = *ops;
	c->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->lfd < 0 || bind(c->lfd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		snprintf(err, err_len, "cannot bind %s: %s", path, strerror(errno));
		goto fail;
	}
	if (chmod(path, 0660) != 0 || listen(c->lfd, CTL_CLIENTS_MAX) != 0) {
		snprintf(err, err_len, "cannot listen on %s: %s", path, strerror(errno));
		unlink(path);
		goto fail;
	}
	if (loop_add(loop, c->lfd, EPOLLIN, on_listen, c) != 0) {
		snprintf(err, err_len, "event loop full");
		unlink(path);
		goto fail;
	}
	return c;
fail:
	if (c->lfd >= 0)
		close(c->lfd);
	free(c);
	return NULL;
}

void ctl_close(struct ctl *c)
{
	if (!c)
		return;
	for (int i = 0; i < CTL_CLIENTS_MAX; i++)
		client_drop(c, &c->cl[i]);
	loop_del(c->loop, c->lfd);
	close(c->lfd);
	unlink(c->path);
	free(c);
}
