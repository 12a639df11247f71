/* fuzz_route.c - libFuzzer target for the HTTP API's request parser
 * (src/api/route.c): any method, path, query, content type and body.
 *
 * Input: byte 0 picks the method; then the path, the query string and the
 * Content-Type, each ending at '\n'; the rest is the body. Properties: no
 * crash, leak or undefined behaviour; a refusal always has a 4xx/5xx status,
 * a code and a sentence; a success yields a control request exactly for the
 * endpoints that are control commands, and a write's request carries only
 * members the control protocol knows. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "api/route.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *methods[] = { "GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "get", "" };

/* The next '\n'-terminated field as a NUL-terminated copy. */
static char *field(const uint8_t **p, const uint8_t *end)
{
	const uint8_t *nl = memchr(*p, '\n', (size_t)(end - *p));
	size_t n = nl ? (size_t)(nl - *p) : (size_t)(end - *p);
	char *s = malloc(n + 1);

	memcpy(s, *p, n);
	s[n] = 0;
	*p += n + (nl ? 1 : 0);
	return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *p = data, *end = data + size;
	const struct route *r;
	const char *allow;
	struct route_err e;
	struct route_out o;
	struct route_arg args[ROUTE_ARGS_MAX];
	int n_args = 0;
	char *path, *query, *ctype;

	if (size < 1)
		return 0;
	const char *method = methods[data[0] % (sizeof methods / sizeof methods[0])];
	p++;
	path = field(&p, end);
	query = field(&p, end);
	ctype = field(&p, end);
	/* "a=1&b&c=" as MHD hands it over: keys with optional values. */
	for (char *save = NULL, *kv = strtok_r(query, "&", &save); kv && n_args < ROUTE_ARGS_MAX;
	     kv = strtok_r(NULL, "&", &save)) {
		char *eq = strchr(kv, '=');
		if (eq)
			*eq++ = 0;
		args[n_args++] = (struct route_arg){ kv, eq };
	}
	memset(&e, 0, sizeof e);
	if (route_find(method, path, &r, &allow, &e) != 0) {
		assert(e.status == 404 || e.status == 405);
		assert(e.code[0] && e.msg[0]);
		assert(e.status != 405 || allow);
	} else {
		assert(r);
		int st = route_build(r, args, n_args, ctype[0] ? ctype : NULL, (const char *)p, (size_t)(end - p), &o, &e);
		if (st != 0) {
			assert(st == e.status && st >= 400 && st < 600);
			assert(e.code[0] && e.msg[0]);
		} else {
			bool is_ctl = r->id != RT_EVENTS_STREAM && r->id != RT_PROBE && r->id != RT_METRICS &&
				      r->id != RT_STATIC;
			assert(is_ctl == (o.ctl != NULL));
			if (o.ctl) {
				const char *k;
				json_t *v;
				assert(json_is_string(json_object_get(o.ctl, "cmd")));
				json_object_foreach(o.ctl, k, v) {
					static const char *known[] = { "cmd", "op", "source", "yaml", "ruleset", "force",
								       "group", "to", "reset", "on", "node", "image",
								       "disruptive", "no_failback", "generation", "limit" };
					bool ok = false;
					for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
						ok |= strcmp(k, known[i]) == 0;
					assert(ok);
				}
				json_decref(o.ctl);
			}
			assert(o.ok_status == 200 || o.ok_status == 202);
		}
	}
	free(path);
	free(query);
	free(ctype);
	return 0;
}
