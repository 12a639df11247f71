/* conn.h - tandemctl's side of the control socket (src/api/ctl.h): one
 * JSON object per line each way, a read timeout per connection, and the
 * exit codes the SPEC fixes for an answer (section 4): 0 done, 1 failed
 * (the daemon included: not reachable, no answer), 2 usage error, 3
 * refused by cluster state. Every failure is said on stderr. */
#ifndef TND_CLI_CONN_H
#define TND_CLI_CONN_H

#include <stdbool.h>
#include <stdio.h>
#include <jansson.h>

#define EXIT_DONE 0
#define EXIT_FAILED 1
#define EXIT_USAGE 2
#define EXIT_REFUSED 3

#define CONN_REPLY_TIMEOUT_S 10

struct conn {
	const char *path;
	int fd;
	FILE *in;
	int timeout_s; /* 0: wait for ever */
	/* Said after "did not answer within N s" (NULL: nothing). */
	const char *timeout_hint;
};

/* Connect to `path` with a read timeout (0 = none). -1 with a message;
 * conn_close() in both cases. */
int conn_open(struct conn *c, const char *path, int timeout_s);
/* Change the read timeout of an open connection. */
void conn_set_timeout(struct conn *c, int timeout_s, const char *hint);
/* Read one JSON object line. NULL (with a message) on EOF, timeout or
 * garbage. */
json_t *conn_read(struct conn *c);
/* Send a request (reference stolen) and read its answer. */
json_t *conn_request(struct conn *c, json_t *req);
void conn_close(struct conn *c);

/* One compact JSON line on stdout. */
void conn_print_json(json_t *o);
/* Exit code of a failed answer, with its reason on stderr (and the
 * answer on stdout with `json`). */
int conn_answer_error(json_t *res, bool json);
bool conn_answer_ok(json_t *res);

#endif
