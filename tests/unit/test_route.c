/* test_route.c - the HTTP API's request parser (src/api/route.c): every
 * endpoint maps to the control request tandemctl would send, and every
 * kind of bad request is refused with its status and a sentence. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include "api/route.h"

/* Route and build; returns the HTTP status (0 on success) and the control
 * request as compact JSON (or the error code) in out. */
static int req(const char *method, const char *path, const char *query, const char *ctype, const char *body,
	       char *out, size_t out_len)
{
	const struct route *r;
	const char *allow;
	struct route_err e = { 0 };
	struct route_out o;
	struct route_arg args[ROUTE_ARGS_MAX];
	char q[256];
	int n = 0, st;

	out[0] = 0;
	st = route_find(method, path, &r, &allow, &e);
	if (st) {
		snprintf(out, out_len, "%s", e.code);
		return st;
	}
	if (query) {
		snprintf(q, sizeof q, "%s", query);
		for (char *save = NULL, *kv = strtok_r(q, "&", &save); kv; kv = strtok_r(NULL, "&", &save)) {
			char *eq = strchr(kv, '=');
			if (eq)
				*eq++ = 0;
			args[n++] = (struct route_arg){ kv, eq };
		}
	}
	st = route_build(r, args, n, ctype, body, body ? strlen(body) : 0, &o, &e);
	if (st) {
		assert_true(e.msg[0] != 0);
		snprintf(out, out_len, "%s", e.code);
		return st;
	}
	if (o.ctl) {
		char *s = json_dumps(o.ctl, JSON_COMPACT | JSON_SORT_KEYS);
		snprintf(out, out_len, "%d %s", o.ok_status, s);
		free(s);
		json_decref(o.ctl);
	} else {
		snprintf(out, out_len, "%d -", o.ok_status);
	}
	return 0;
}

#define J "application/json"

static void test_reads(void **state)
{
	char out[512];

	assert_int_equal(req("GET", "/api/cluster", NULL, NULL, NULL, out, sizeof out), 0);
	assert_string_equal(out, "200 {\"cmd\":\"status\"}");
	assert_int_equal(req("GET", "/api/cluster/", NULL, NULL, NULL, out, sizeof out), 0);
	assert_int_equal(req("HEAD", "/api/cluster/sessions", NULL, NULL, NULL, out, sizeof out), 0);
	assert_int_equal(req("GET", "/api/cluster/config", NULL, NULL, NULL, out, sizeof out), 0);
	assert_string_equal(out, "200 {\"cmd\":\"config\",\"op\":\"status\"}");
	assert_int_equal(req("GET", "/api/cluster/config/document", "generation=7", NULL, NULL, out, sizeof out), 0);
	assert_string_equal(out, "200 {\"cmd\":\"config\",\"generation\":7,\"op\":\"show\"}");
	assert_int_equal(req("GET", "/api/images", NULL, NULL, NULL, out, sizeof out), 0);
	assert_string_equal(out, "200 {\"cmd\":\"image\",\"op\":\"list\"}");
	assert_int_equal(req("GET", "/api/cluster/upgrade/status", NULL, NULL, NULL, out, sizeof out), 0);
	assert_string_equal(out, "200 {\"cmd\":\"upgrade\",\"op\":\"status\"}");
	assert_int_equal(req("GET", "/api/events", "limit=5", NULL, NULL, out, sizeof out), 0);
	assert_string_equal(out, "200 {\"cmd\":\"events\",\"limit\":5}");
	assert_int_equal(req("GET", "/api/events/stream", "limit=0", NULL, NULL, out, sizeof out), 0);
	assert_string_equal(out, "200 -");
	assert_int_equal(req("GET", "/metrics", NULL, NULL, NULL, out, sizeof out), 0);
	assert_int_equal(req("GET", "/api/probe", NULL, NULL, NULL, out, sizeof out), 0);
	assert_int_equal(req("GET", "/", NULL, NULL, NULL, out, sizeof out), 0);
	assert_int_equal(req("GET", "/app.js", NULL, NULL, NULL, out, sizeof out), 0);
}

static void test_writes(void **state)
{
	char out[512];

	assert_int_equal(req("POST", "/api/cluster/failover", NULL, J, "{\"group\":1,\"to\":\"gw2\"}", out, sizeof out), 0);
	assert_string_equal(out, "200 {\"cmd\":\"failover\",\"group\":1,\"to\":\"gw2\"}");
	assert_int_equal(req("POST", "/api/cluster/failover", NULL, "application/json; charset=utf-8",
			     "{\"group\":1,\"reset\":true}", out, sizeof out), 0);
	assert_string_equal(out, "200 {\"cmd\":\"failover\",\"group\":1,\"reset\":true}");
	assert_int_equal(req("POST", "/api/cluster/maintenance", NULL, J, "{\"on\":false}", out, sizeof out), 0);
	assert_string_equal(out, "200 {\"cmd\":\"maintenance\",\"on\":false}");
	assert_int_equal(req("POST", "/api/node/activate", NULL, NULL, NULL, out, sizeof out), 0);
	assert_string_equal(out, "200 {\"cmd\":\"activate\"}");
	assert_int_equal(req("POST", "/api/node/deactivate", NULL, J, "{}", out, sizeof out), 0);
	assert_string_equal(out, "200 {\"cmd\":\"deactivate\"}");
	assert_int_equal(req("POST", "/api/cluster/config", NULL, J, "{\"yaml\":\"a: 1\\n\",\"force\":true}", out,
			     sizeof out), 0);
	assert_string_equal(out, "200 {\"cmd\":\"config\",\"force\":true,\"op\":\"apply\",\"source\":\"http\",\"yaml\":\"a: 1\\n\"}");
	assert_int_equal(req("POST", "/api/cluster/upgrade/plan", NULL, J, "{\"image_path\":\"/i.img\",\"force\":true}",
			     out, sizeof out), 0);
	assert_string_equal(out, "200 {\"cmd\":\"upgrade\",\"force\":true,\"image\":\"/i.img\",\"op\":\"plan\"}");
	assert_int_equal(req("POST", "/api/cluster/upgrade", NULL, J,
			     "{\"image_path\":\"/i.img\",\"disruptive\":false,\"no_failback\":true}", out, sizeof out), 0);
	assert_string_equal(out, "202 {\"cmd\":\"upgrade\",\"disruptive\":false,\"image\":\"/i.img\",\"no_failback\":true,\"op\":\"start\"}");
	assert_int_equal(req("POST", "/api/cluster/upgrade/abort", NULL, NULL, NULL, out, sizeof out), 0);
	assert_string_equal(out, "200 {\"cmd\":\"upgrade\",\"op\":\"abort\"}");
	assert_int_equal(req("POST", "/api/cluster/upgrade/rollback", NULL, J, "{\"node\":\"gw1\"}", out, sizeof out), 0);
	assert_string_equal(out, "200 {\"cmd\":\"upgrade\",\"node\":\"gw1\",\"op\":\"rollback\"}");
	assert_int_equal(req("POST", "/api/cluster/upgrade/finalize", NULL, J, "{}", out, sizeof out), 0);
	assert_string_equal(out, "200 {\"cmd\":\"upgrade\",\"op\":\"finalize\"}");
}

static void test_refusals(void **state)
{
	char out[512];

	assert_int_equal(req("GET", "/api/nope", NULL, NULL, NULL, out, sizeof out), 404);
	assert_int_equal(req("GET", "/../etc/passwd", NULL, NULL, NULL, out, sizeof out), 404);
	assert_int_equal(req("DELETE", "/api/cluster", NULL, NULL, NULL, out, sizeof out), 405);
	assert_string_equal(out, "method");
	assert_int_equal(req("GET", "/api/cluster/failover", NULL, NULL, NULL, out, sizeof out), 405);
	assert_int_equal(req("PUT", "/", NULL, NULL, NULL, out, sizeof out), 405);
	assert_int_equal(req("POST", "/api/cluster/failover", NULL, "text/plain", "{\"group\":1}", out, sizeof out), 415);
	assert_int_equal(req("POST", "/api/cluster/failover", NULL, NULL, "{\"group\":1}", out, sizeof out), 415);
	assert_int_equal(req("POST", "/api/cluster/failover", NULL, "application/jsonx", "{\"group\":1}", out, sizeof out), 415);
	assert_int_equal(req("POST", "/api/cluster/failover", NULL, J, "{\"group\":1", out, sizeof out), 400);
	assert_int_equal(req("POST", "/api/cluster/failover", NULL, J, "[]", out, sizeof out), 400);
	assert_int_equal(req("POST", "/api/cluster/failover", NULL, J, "{}", out, sizeof out), 400);
	assert_int_equal(req("POST", "/api/cluster/failover", NULL, J, "{\"group\":256}", out, sizeof out), 400);
	assert_int_equal(req("POST", "/api/cluster/failover", NULL, J, "{\"group\":1.0}", out, sizeof out), 400);
	assert_int_equal(req("POST", "/api/cluster/failover", NULL, J, "{\"group\":1,\"group\":1}", out, sizeof out), 400);
	assert_int_equal(req("POST", "/api/cluster/failover", NULL, J, "{\"group\":1,\"x\":1}", out, sizeof out), 400);
	assert_int_equal(req("POST", "/api/cluster/failover", NULL, J, "{\"group\":1,\"to\":\"\"}", out, sizeof out), 400);
	assert_int_equal(req("POST", "/api/cluster/failover", NULL, J, "{\"group\":1,\"reset\":true,\"to\":\"a\"}", out,
			     sizeof out), 400);
	assert_int_equal(req("POST", "/api/cluster/upgrade", NULL, J, "{\"image_path\":\"rel.img\"}", out, sizeof out), 400);
	assert_int_equal(req("POST", "/api/cluster/upgrade", NULL, J, "{\"image_path\":\"/a\\u0000b\"}", out, sizeof out), 400);
	assert_int_equal(req("POST", "/api/cluster/upgrade", NULL, J, "{\"force\":true}", out, sizeof out), 400);
	assert_int_equal(req("POST", "/api/cluster/upgrade/abort", NULL, J, "{\"now\":true}", out, sizeof out), 400);
	assert_int_equal(req("POST", "/api/cluster/config", NULL, J, "{\"yaml\":1}", out, sizeof out), 400);
	assert_int_equal(req("GET", "/api/events", "limit=-1", NULL, NULL, out, sizeof out), 400);
	assert_int_equal(req("GET", "/api/events", "limit=1x", NULL, NULL, out, sizeof out), 400);
	assert_int_equal(req("GET", "/api/events", "limit", NULL, NULL, out, sizeof out), 400);
	assert_int_equal(req("GET", "/api/events", "follow=1", NULL, NULL, out, sizeof out), 400);
	assert_int_equal(req("GET", "/api/cluster", "x=1", NULL, NULL, out, sizeof out), 400);
	assert_int_equal(req("GET", "/api/cluster", NULL, J, "{}", out, sizeof out), 400);
	assert_int_equal(req("GET", "/metrics", NULL, NULL, "x", out, sizeof out), 400);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reads),
		cmocka_unit_test(test_writes),
		cmocka_unit_test(test_refusals),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
