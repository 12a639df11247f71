/* conn.c - tandemctl's control-socket client; see conn.h. */
#include "conn.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

void conn_set_timeout(struct conn *c, int timeout_s, const char *hint)
{
	struct timeval tv = { .tv_sec = timeout_s };

	c->timeout_s = timeout_s;
	c->timeout_hint = hint;
	if (c->fd >= 0)
		(void)setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

int conn_open(struct conn *c, const char *path, int timeout_s)
{
	struct sockaddr_un sa;

	c->path = path;
	c->fd = -1;
	c->in = NULL;
	c->timeout_hint = NULL;
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sa.sun_path) {
		fprintf(stderr, "cannot reach tandemd at %s: socket path too long\n", path);
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path));
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		fprintf(stderr, "cannot reach tandemd at %s: %s\n", path, strerror(errno));
		return -1;
	}
	conn_set_timeout(c, timeout_s, NULL);
	c->in = fdopen(dup(c->fd), "r");
	if (!c->in) {
		fprintf(stderr, "cannot reach tandemd at %s: %s\n", path, strerror(errno));
		return -1;
	}
	return 0;
}

json_t *conn_read(struct conn *c)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	json_t *o;
	json_error_t jerr;

	errno = 0;
	n = getline(&line, &cap, c->in);
	if (n <= 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			fprintf(stderr, "tandemd at %s did not answer within %d s%s%s\n", c->path,
				c->timeout_s, c->timeout_hint ? "; " : "",
				c->timeout_hint ? c->timeout_hint : "");
		else
			fprintf(stderr, "tandemd at %s closed the connection%s%s\n", c->path,
				errno ? ": " : "", errno ? strerror(errno) : "");
		free(line);
		return NULL;
	}
	o = json_loadb(line, (size_t)n, 0, &jerr);
	free(line);
	if (!json_is_object(o)) {
		fprintf(stderr, "tandemd at %s sent an answer that is not a JSON object\n", c->path);
		json_decref(o);
		return NULL;
	}
	return o;
}

json_t *conn_request(struct conn *c, json_t *req)
{
	char *s = json_dumps(req, JSON_COMPACT);
	size_t len, off = 0;

	json_decref(req);
	if (!s) {
		fprintf(stderr, "tandemctl: cannot encode the request (out of memory)\n");
		return NULL;
	}
	len = strlen(s);
	s[len] = '\n';
	while (off < len + 1) {
		ssize_t w = send(c->fd, s + off, len + 1 - off, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			fprintf(stderr, "cannot reach tandemd at %s: %s\n", c->path, strerror(errno));
			free(s);
			return NULL;
		}
		off += (size_t)w;
	}
	free(s);
	return conn_read(c);
}

void conn_close(struct conn *c)
{
	if (c->in)
		fclose(c->in);
	if (c->fd >= 0)
		close(c->fd);
	c->in = NULL;
	c->fd = -1;
}

void conn_print_json(json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT);

	if (s) {
		printf("%s\n", s);
		free(s);
	}
	fflush(stdout);
}

int conn_answer_error(json_t *res, bool json)
{
	const char *code = json_string_value(json_object_get(res, "code"));
	const char *err = json_string_value(json_object_get(res, "error"));

	if (!err)
		err = "no reason given";
	if (json)
		conn_print_json(res);
	if (code && strcmp(code, "refused") == 0) {
		fprintf(stderr, "tandemctl: refused: %s\n", err);
		return EXIT_REFUSED;
	}
	if (code && strcmp(code, "usage") == 0) {
		fprintf(stderr, "tandemctl: %s\n", err);
		return EXIT_USAGE;
	}
	fprintf(stderr, "tandemctl: failed: %s\n", err);
	return EXIT_FAILED;
}

bool conn_answer_ok(json_t *res)
{
	return json_is_true(json_object_get(res, "ok"));
}
