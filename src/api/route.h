/* route.h - the HTTP API's request parser (docs/api.md).
 *
 * Owns: the table of endpoints, and the translation of one HTTP request
 * (method, path, query arguments, content type, body) into the control
 * socket request it stands for, or into a located refusal (an HTTP status,
 * a code and a sentence). Pure: no I/O, no clock, so the fuzzer and the
 * unit tests drive it directly. src/api/http.c does the HTTP itself. */
#ifndef TND_ROUTE_H
#define TND_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

enum route_id {
	RT_CLUSTER,
	RT_SESSIONS,
	RT_CONFIG_STATUS,
	RT_CONFIG_DOC,
	RT_CONFIG_APPLY,
	RT_FAILOVER,
	RT_MAINTENANCE,
	RT_ACTIVATE,
	RT_DEACTIVATE,
	RT_IMAGES,
	RT_UPG_STATUS,
	RT_UPG_PLAN,
	RT_UPG_START,
	RT_UPG_ABORT,
	RT_UPG_ROLLBACK,
	RT_UPG_FINALIZE,
	RT_EVENTS,
	RT_EVENTS_STREAM,
	RT_PROBE,
	RT_METRICS,
	RT_STATIC, /* the dashboard's files */
};

#define ROUTE_BODY_MAX_BYTES (64 * 1024)
/* A configuration document is at most 1 MiB of YAML and ruleset, which
 * JSON escaping can double, plus room for the rest. */
#define ROUTE_CONFIG_BODY_MAX_BYTES (4 * 1024 * 1024)
#define ROUTE_ARGS_MAX 8
#define ROUTE_STREAM_BACKLOG_DEFAULT 50

struct route {
	const char *path;
	bool write; /* POST, needs the bearer token */
	enum route_id id;
	size_t body_max;
};

struct route_arg {
	const char *key, *value; /* value NULL: "?key" without '=' */
};

struct route_err {
	int status;    /* HTTP status */
	char code[16]; /* "usage", "not_found", "method", "media_type", ... */
	char msg[256];
};

/* Step 1, from the request line alone: the endpoint for `method` and
 * `path` (without the query). 0 with *r, else an HTTP status (404, 405)
 * with e filled, and for 405 *allow the method the path takes. */
int route_find(const char *method, const char *path, const struct route **r, const char **allow,
	       struct route_err *e);

struct route_out {
	json_t *ctl;       /* the control request (a new reference), or NULL */
	long limit;        /* RT_EVENTS / RT_EVENTS_STREAM: -1 = the default */
	int ok_status;     /* the HTTP status of a success: 200, or 202 */
};

/* Step 2, once the body is in: the control request r stands for. 0 with
 * *o filled (o->ctl NULL for the endpoints that are not control commands:
 * metrics, the stream, the probe, the dashboard), else an HTTP status
 * (400, 415) with e filled. `content_type` may be NULL (no header). */
int route_build(const struct route *r, const struct route_arg *args, int n_args,
		const char *content_type, const char *body, size_t body_len, struct route_out *o,
		struct route_err *e);

#endif
