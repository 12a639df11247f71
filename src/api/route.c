/* route.c - the HTTP API's request parser (see route.h, docs/api.md).
 *
 * Strict by design: a body is a JSON object (no duplicate keys) whose
 * members are exactly the endpoint's fields with their types; anything
 * else is refused with a sentence naming the problem, before the request
 * reaches the daemon. Names of nodes and groups are checked against the
 * configuration later, by the control socket's own code. */
#include "route.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct route routes[] = {
	{ "/api/cluster", false, RT_CLUSTER, 0 },
	{ "/api/cluster/sessions", false, RT_SESSIONS, 0 },
	{ "/api/cluster/config", false, RT_CONFIG_STATUS, 0 },
	{ "/api/cluster/config", true, RT_CONFIG_APPLY, ROUTE_CONFIG_BODY_MAX_BYTES },
	{ "/api/cluster/config/document", false, RT_CONFIG_DOC, 0 },
	{ "/api/cluster/failover", true, RT_FAILOVER, ROUTE_BODY_MAX_BYTES },
	{ "/api/cluster/maintenance", true, RT_MAINTENANCE, ROUTE_BODY_MAX_BYTES },
	{ "/api/node/activate", true, RT_ACTIVATE, ROUTE_BODY_MAX_BYTES },
	{ "/api/node/deactivate", true, RT_DEACTIVATE, ROUTE_BODY_MAX_BYTES },
	{ "/api/images", false, RT_IMAGES, 0 },
	{ "/api/cluster/upgrade/status", false, RT_UPG_STATUS, 0 },
	{ "/api/cluster/upgrade/plan", true, RT_UPG_PLAN, ROUTE_BODY_MAX_BYTES },
	{ "/api/cluster/upgrade", true, RT_UPG_START, ROUTE_BODY_MAX_BYTES },
	{ "/api/cluster/upgrade/abort", true, RT_UPG_ABORT, ROUTE_BODY_MAX_BYTES },
	{ "/api/cluster/upgrade/rollback", true, RT_UPG_ROLLBACK, ROUTE_BODY_MAX_BYTES },
	{ "/api/cluster/upgrade/finalize", true, RT_UPG_FINALIZE, ROUTE_BODY_MAX_BYTES },
	{ "/api/events", false, RT_EVENTS, 0 },
	{ "/api/events/stream", false, RT_EVENTS_STREAM, 0 },
	{ "/api/probe", false, RT_PROBE, 0 },
	{ "/metrics", false, RT_METRICS, 0 },
};

static int fail(struct route_err *e, int status, const char *code, const char *fmt, const char *a,
		const char *b)
{
	e->status = status;
	snprintf(e->code, sizeof e->code, "%s", code);
	snprintf(e->msg, sizeof e->msg, fmt, a ? a : "", b ? b : "");
	return status;
}

/* The dashboard's files: "/" and "/NAME" with a plain file name. */
static bool static_path(const char *path)
{
	if (strcmp(path, "/") == 0)
		return true;
	if (path[0] != '/' || path[1] == '\0' || path[1] == '.' || strlen(path) > 64)
		return false;
	for (const char *p = path + 1; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      *p == '.' || *p == '-' || *p == '_'))
			return false;
	return strncmp(path, "/api", 4) != 0 && strcmp(path, "/metrics") != 0;
}

int route_find(const char *method, const char *path, const struct route **r, const char **allow,
	       struct route_err *e)
{
	static const struct route stat = { "/", false, RT_STATIC, 0 };
	bool post, get, known = false;
	size_t n = strlen(path);

	*r = NULL;
	*allow = NULL;
	post = strcmp(method, "POST") == 0;
	get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
	/* One trailing slash is forgiven: automation often adds it. */
	if (n > 1 && path[n - 1] == '/')
		n--;
	for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
		if (strlen(routes[i].path) != n || strncmp(routes[i].path, path, n) != 0)
			continue;
		known = true;
		if ((routes[i].write && post) || (!routes[i].write && get)) {
			*r = &routes[i];
			return 0;
		}
		/* The same path may serve GET and POST (the configuration). */
		*allow = *allow ? "GET, POST" : routes[i].write ? "POST" : "GET, HEAD";
	}
	if (known)
		return fail(e, 405, "method", "%s is not allowed here; use %s", method, *allow);
	if (static_path(path)) {
		if (get) {
			*r = &stat;
			return 0;
		}
		*allow = "GET, HEAD";
		return fail(e, 405, "method", "%s is not allowed here; use %s", method, *allow);
	}
	return fail(e, 404, "not_found", "no such endpoint: %.200s%s", path, NULL);
}

/* ---- bodies */

enum ftype { F_STR, F_ABSPATH, F_BOOL, F_GROUP, F_NODE };

struct field {
	const char *name;
	enum ftype type;
	bool required;
	const char *ctl_name; /* the control request's member */
};

static const char *type_name(enum ftype t)
{
	switch (t) {
	case F_STR:
		return "a string";
	case F_ABSPATH:
		return "an absolute file name";
	case F_BOOL:
		return "true or false";
	case F_GROUP:
		return "a group id (an integer 0..255)";
	case F_NODE:
		return "a node name";
	}
	return "?";
}

static bool type_ok(enum ftype t, json_t *v)
{
	switch (t) {
	case F_STR:
	case F_NODE:
		return json_is_string(v) && strlen(json_string_value(v)) == json_string_length(v) &&
		       (t == F_STR || (json_string_length(v) > 0 && json_string_length(v) < 64));
	case F_ABSPATH:
		return json_is_string(v) && json_string_value(v)[0] == '/' &&
		       strlen(json_string_value(v)) == json_string_length(v) && json_string_length(v) < 4096;
	case F_BOOL:
		return json_is_boolean(v);
	case F_GROUP:
		return json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) <= 255;
	}
	return false;
}

/* Check `body` (an object) against fields[0..n) and copy each member into
 * the control request `ctl` under its ctl_name. */
static int check_fields(json_t *body, const struct field *fields, int n, json_t *ctl, struct route_err *e)
{
	const char *key;
	json_t *v;
	char list[200] = "";
	size_t off = 0;

	for (int i = 0; i < n; i++)
		off += (size_t)snprintf(list + off, sizeof list - off, "%s%s", i ? ", " : "", fields[i].name);
	json_object_foreach(body, key, v) {
		int i;
		for (i = 0; i < n; i++)
			if (strcmp(fields[i].name, key) == 0)
				break;
		if (i == n)
			return fail(e, 400, "usage", n ? "unknown field \"%.64s\"; this endpoint takes: %s"
						   : "unknown field \"%.64s\"; this endpoint takes no fields%s",
				    key, n ? list : "");
		if (!type_ok(fields[i].type, v)) {
			char what[96];
			snprintf(what, sizeof what, "%s", type_name(fields[i].type));
			return fail(e, 400, "usage", "\"%s\" must be %s", key, what);
		}
		json_object_set(ctl, fields[i].ctl_name, v);
	}
	for (int i = 0; i < n; i++)
		if (fields[i].required && !json_object_get(body, fields[i].name))
			return fail(e, 400, "usage", "missing field \"%s\" (%s)", fields[i].name,
				    type_name(fields[i].type));
	return 0;
}

static bool is_json_type(const char *ct)
{
	size_t n = strlen("application/json");

	if (!ct)
		return false;
	while (*ct == ' ')
		ct++;
	return strncasecmp(ct, "application/json", n) == 0 && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

/* The body as a JSON object: an empty body is {} for endpoints whose
 * fields are all optional. */
static json_t *parse_body(const char *content_type, const char *body, size_t len, struct route_err *e)
{
	json_error_t jerr;
	json_t *o;

	if (len == 0)
		return json_object();
	if (!is_json_type(content_type)) {
		fail(e, 415, "media_type", "the body must be application/json (got %.80s)%s",
		     content_type ? content_type : "no Content-Type", NULL);
		return NULL;
	}
	o = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!o) {
		char where[48];
		snprintf(where, sizeof where, "line %d column %d", jerr.line, jerr.column);
		fail(e, 400, "usage", "the body is not valid JSON: %.160s (%s)", jerr.text, where);
		return NULL;
	}
	if (!json_is_object(o)) {
		json_decref(o);
		fail(e, 400, "usage", "the body must be a JSON object%s%s", NULL, NULL);
		return NULL;
	}
	return o;
}

/* ---- query arguments */

static int parse_count(const char *key, const char *v, long max, long *out, struct route_err *e)
{
	char *end;
	long n;

	if (!v || !*v || *v == '-' || *v == '+' || *v == ' ')
		return fail(e, 400, "usage", "query argument \"%s\" must be a non-negative integer%s", key, NULL);
	n = strtol(v, &end, 10);
	if (*end || n < 0 || n > max)
		return fail(e, 400, "usage", "query argument \"%s\" must be a non-negative integer%s", key, NULL);
	*out = n;
	return 0;
}

/* The query arguments r takes: "limit" for events, "generation" for the
 * document (into its control request `ctl`); anything else is refused. */
static int check_args(const struct route *r, const struct route_arg *args, int n_args, json_t *ctl,
		      struct route_out *o, struct route_err *e)
{
	for (int i = 0; i < n_args; i++) {
		const char *k = args[i].key ? args[i].key : "";
		long v;
		if ((r->id == RT_EVENTS || r->id == RT_EVENTS_STREAM) && strcmp(k, "limit") == 0) {
			if (parse_count(k, args[i].value, 1000000, &v, e) != 0)
				return e->status;
			o->limit = v;
		} else if (r->id == RT_CONFIG_DOC && strcmp(k, "generation") == 0) {
			if (parse_count(k, args[i].value, 0x7fffffffL, &v, e) != 0)
				return e->status;
			json_object_set_new(ctl, "generation", json_integer(v));
		} else {
			return fail(e, 400, "usage", "unknown query argument \"%.64s\"%s", k, NULL);
		}
	}
	return 0;
}

static const struct field f_config[] = {
	{ "yaml", F_STR, true, "yaml" },
	{ "ruleset", F_STR, false, "ruleset" },
	{ "force", F_BOOL, false, "force" },
};
static const struct field f_failover[] = {
	{ "group", F_GROUP, true, "group" },
	{ "to", F_NODE, false, "to" },
	{ "reset", F_BOOL, false, "reset" },
};
static const struct field f_maint[] = {
	{ "on", F_BOOL, true, "on" },
	{ "node", F_NODE, false, "node" },
};
static const struct field f_upgrade[] = {
	{ "image_path", F_ABSPATH, true, "image" },
	{ "force", F_BOOL, false, "force" },
	{ "disruptive", F_BOOL, false, "disruptive" },
	{ "no_failback", F_BOOL, false, "no_failback" },
};
static const struct field f_rollback[] = { { "node", F_NODE, false, "node" } };

#define FIELDS(f) f, (int)(sizeof f / sizeof f[0])

/* The control request each endpoint stands for ({"cmd", "op"} and the body
 * fields it takes); cmd NULL: not a control command. */
static const struct {
	const char *cmd, *op;
	const struct field *fields;
	int n_fields;
} specs[] = {
	[RT_CLUSTER] = { "status", NULL, NULL, 0 },
	[RT_SESSIONS] = { "status", NULL, NULL, 0 },
	[RT_CONFIG_STATUS] = { "config", "status", NULL, 0 },
	[RT_CONFIG_DOC] = { "config", "show", NULL, 0 },
	[RT_CONFIG_APPLY] = { "config", "apply", FIELDS(f_config) },
	[RT_FAILOVER] = { "failover", NULL, FIELDS(f_failover) },
	[RT_MAINTENANCE] = { "maintenance", NULL, FIELDS(f_maint) },
	[RT_ACTIVATE] = { "activate", NULL, NULL, 0 },
	[RT_DEACTIVATE] = { "deactivate", NULL, NULL, 0 },
	[RT_IMAGES] = { "image", "list", NULL, 0 },
	[RT_UPG_STATUS] = { "upgrade", "status", NULL, 0 },
	[RT_UPG_PLAN] = { "upgrade", "plan", FIELDS(f_upgrade) },
	[RT_UPG_START] = { "upgrade", "start", FIELDS(f_upgrade) },
	[RT_UPG_ABORT] = { "upgrade", "abort", NULL, 0 },
	[RT_UPG_ROLLBACK] = { "upgrade", "rollback", FIELDS(f_rollback) },
	[RT_UPG_FINALIZE] = { "upgrade", "finalize", NULL, 0 },
	[RT_EVENTS] = { "events", NULL, NULL, 0 },
	[RT_EVENTS_STREAM] = { NULL, NULL, NULL, 0 },
	[RT_PROBE] = { NULL, NULL, NULL, 0 },
	[RT_METRICS] = { NULL, NULL, NULL, 0 },
	[RT_STATIC] = { NULL, NULL, NULL, 0 },
};

int route_build(const struct route *r, const struct route_arg *args, int n_args,
		const char *content_type, const char *body, size_t body_len, struct route_out *o,
		struct route_err *e)
{
	const struct field *fields = specs[r->id].fields;
	int n_fields = specs[r->id].n_fields, rc;
	json_t *ctl = NULL, *b = NULL;

	memset(o, 0, sizeof *o);
	o->limit = -1;
	o->ok_status = r->id == RT_UPG_START ? 202 : 200;
	if (specs[r->id].cmd) {
		ctl = json_pack("{s:s}", "cmd", specs[r->id].cmd);
		if (ctl && specs[r->id].op)
			json_object_set_new(ctl, "op", json_string(specs[r->id].op));
		if (ctl && r->id == RT_CONFIG_APPLY)
			json_object_set_new(ctl, "source", json_string("http"));
		if (!ctl)
			return fail(e, 500, "failed", "out of memory%s%s", NULL, NULL);
	}
	rc = check_args(r, args, n_args, ctl, o, e);
	if (rc == 0 && !r->write && body_len > 0)
		rc = fail(e, 400, "usage", "a GET request takes no body%s%s", NULL, NULL);
	if (rc == 0 && r->write) {
		b = parse_body(content_type, body, body_len, e);
		rc = b ? check_fields(b, fields, n_fields, ctl, e) : e->status;
	}
	if (rc == 0 && r->id == RT_FAILOVER && json_is_true(json_object_get(b, "reset")) &&
	    json_object_get(b, "to"))
		rc = fail(e, 400, "usage", "\"reset\" and \"to\" do not go together%s%s", NULL, NULL);
	json_decref(b);
	if (rc != 0) {
		json_decref(ctl);
		return rc;
	}
	if (r->id == RT_EVENTS && o->limit >= 0)
		json_object_set_new(ctl, "limit", json_integer(o->limit));
	o->ctl = ctl;
	return 0;
}
