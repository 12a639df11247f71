/* test_conf.c - unit tests of the configuration module (src/conf/conf.c).
 *
 * Covers SPEC section 3: the example parses to the values it says, the
 * defaults, every validation rule with its exact FILE:LINE:COL, that all
 * problems are reported (and bounded), the print/parse round trip, and
 * YAML-level errors (syntax, several documents, aliases, tags). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conf/conf.h"

static struct tnd_conf conf, conf2;
static struct conf_diags diags, diags2;

static const char spec_example[] =
	"cluster:\n"
	"  name: edge1\n"
	"  id: 1                       # 1..255\n"
	"  key_file: /etc/tandem/cluster.key\n"
	"  port: 7400\n"
	"  heartbeat_ms: 100\n"
	"  dead_after: 3\n"
	"nodes:\n"
	"  - name: fw-a\n"
	"    links: [203.0.113.1, 198.51.100.2]\n"
	"  - name: fw-b\n"
	"    links: [203.0.113.2, 198.51.100.3]\n"
	"groups:\n"
	"  - id: 0\n"
	"    priority: {fw-a: 200, fw-b: 100}\n"
	"  - id: 1\n"
	"    priority: {fw-a: 200, fw-b: 100}\n"
	"    preempt: true\n"
	"    preempt_delay_s: 0\n"
	"    vips:\n"
	"      - {address: 192.0.2.1/24, interface: lan0}\n"
	"      - {address: 198.51.100.1/24, interface: wan0}\n"
	"    monitor_interfaces: [lan0, wan0]\n"
	"    hooks: {primary: /etc/tandem/hooks/up, secondary: /etc/tandem/hooks/down}\n"
	"sessions:\n"
	"  sync: true\n"
	"firewall:\n"
	"  ruleset: /etc/tandem/ruleset.nft\n"
	"upgrade:\n"
	"  trusted_keys: /etc/tandem/trusted.d\n"
	"  hold_timer_s: 900\n"
	"  sync_timeout_s: 300\n"
	"  cpu_max_percent: 80\n"
	"  failback: true\n"
	"api:\n"
	"  http: 127.0.0.1:8080\n"
	"  token_file: /etc/tandem/api.token\n";

/* Lines 1-7: the cluster and two nodes; cases append from line 8. */
#define BASE                                             \
	"cluster:\n"                                     \
	"  name: edge1\n"                                \
	"  id: 1\n"                                      \
	"  key_file: /k\n"                               \
	"nodes:\n"                                       \
	"  - {name: fw-a, links: [203.0.113.1, 198.51.100.1]}\n" \
	"  - {name: fw-b, links: [203.0.113.2, 198.51.100.2]}\n"

static int parse(const char *yaml)
{
	return conf_parse("t.yaml", yaml, strlen(yaml), &conf, &diags);
}

static void dump_diags(const struct conf_diags *d)
{
	for (int i = 0; i < d->n; i++)
		print_message("  diag: %s\n", d->msg[i]);
}

static bool has_diag(const char *want)
{
	for (int i = 0; i < diags.n; i++)
		if (!strcmp(diags.msg[i], want))
			return true;
	return false;
}

static void expect_diag(const char *yaml, const char *want)
{
	int rc = parse(yaml);

	if (rc != TND_EINVAL || !has_diag(want)) {
		print_message("wanted: %s\n", want);
		dump_diags(&diags);
		fail();
	}
}

static void expect_only_diag(const char *yaml, const char *want)
{
	expect_diag(yaml, want);
	if (diags.n != 1) {
		dump_diags(&diags);
		fail_msg("expected exactly one diagnostic");
	}
}

static void expect_valid(const char *yaml)
{
	if (parse(yaml) != 0) {
		dump_diags(&diags);
		fail_msg("expected a valid configuration");
	}
	assert_int_equal(diags.n, 0);
	assert_int_equal(diags.n_dropped, 0);
}

static struct tnd_addr addr(const char *s)
{
	struct tnd_addr a;

	memset(&a, 0, sizeof a);
	if (inet_pton(AF_INET, s, a.bytes) == 1)
		a.family = AF_INET;
	else if (inet_pton(AF_INET6, s, a.bytes) == 1)
		a.family = AF_INET6;
	else
		fail_msg("bad test address %s", s);
	return a;
}

static void assert_addr(const struct tnd_addr *got, const char *want)
{
	struct tnd_addr w = addr(want);

	assert_memory_equal(got, &w, sizeof w);
}

/* Print c, parse the text back and require the very same struct. */
static void assert_round_trip(const struct tnd_conf *c)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	assert_non_null(f);
	assert_int_equal(conf_print(c, f), 0);
	fclose(f);
	if (conf_parse(c->source, text, len, &conf2, &diags2) != 0) {
		print_message("%s", text);
		dump_diags(&diags2);
		fail_msg("printed configuration does not parse");
	}
	if (memcmp(c, &conf2, sizeof *c) != 0) {
		print_message("%s", text);
		fail_msg("round trip changed the configuration");
	}
	free(text);
}

/* ---------------------------------------------------------------- */

static void test_spec_example(void **state)
{
	expect_valid(spec_example);
	assert_string_equal(conf.source, "t.yaml");
	assert_string_equal(conf.cluster_name, "edge1");
	assert_int_equal(conf.cluster_id, 1);
	assert_string_equal(conf.key_file, "/etc/tandem/cluster.key");
	assert_int_equal(conf.port, 7400);
	assert_int_equal(conf.heartbeat_ms, 100);
	assert_int_equal(conf.dead_after, 3);

	assert_int_equal(conf.n_nodes, 2);
	assert_string_equal(conf.nodes[0].name, "fw-a");
	assert_string_equal(conf.nodes[1].name, "fw-b");
	assert_int_equal(conf.nodes[0].n_links, 2);
	assert_int_equal(conf.nodes[1].n_links, 2);
	assert_addr(&conf.nodes[0].links[0], "203.0.113.1");
	assert_addr(&conf.nodes[0].links[1], "198.51.100.2");
	assert_addr(&conf.nodes[1].links[0], "203.0.113.2");
	assert_addr(&conf.nodes[1].links[1], "198.51.100.3");

	assert_int_equal(conf.n_groups, 2);
	const struct tnd_group_conf *g0 = &conf.groups[0], *g1 = &conf.groups[1];

	assert_int_equal(g0->id, 0);
	assert_int_equal(g0->priority[0], 200);
	assert_int_equal(g0->priority[1], 100);
	assert_false(g0->preempt);
	assert_int_equal(g0->n_vips, 0);
	assert_int_equal(g1->id, 1);
	assert_int_equal(g1->priority[0], 200);
	assert_int_equal(g1->priority[1], 100);
	assert_true(g1->preempt);
	assert_int_equal(g1->preempt_delay_s, 0);
	assert_int_equal(g1->n_vips, 2);
	assert_addr(&g1->vips[0].addr, "192.0.2.1");
	assert_int_equal(g1->vips[0].prefix_len, 24);
	assert_string_equal(g1->vips[0].ifname, "lan0");
	assert_addr(&g1->vips[1].addr, "198.51.100.1");
	assert_string_equal(g1->vips[1].ifname, "wan0");
	assert_int_equal(g1->n_monitors, 2);
	assert_string_equal(g1->monitors[0], "lan0");
	assert_string_equal(g1->monitors[1], "wan0");
	assert_string_equal(g1->hook_primary, "/etc/tandem/hooks/up");
	assert_string_equal(g1->hook_secondary, "/etc/tandem/hooks/down");

	assert_true(conf.sessions_sync);
	assert_string_equal(conf.firewall_ruleset, "/etc/tandem/ruleset.nft");
	assert_string_equal(conf.upgrade_trusted_keys, "/etc/tandem/trusted.d");
	assert_int_equal(conf.upgrade_hold_timer_s, 900);
	assert_int_equal(conf.upgrade_sync_timeout_s, 300);
	assert_int_equal(conf.upgrade_cpu_max_percent, 80);
	assert_true(conf.upgrade_failback);
	assert_string_equal(conf.api_http, "127.0.0.1:8080");
	assert_string_equal(conf.api_token_file, "/etc/tandem/api.token");
	assert_round_trip(&conf);
}

static void test_defaults(void **state)
{
	expect_valid(BASE);
	assert_int_equal(conf.port, 7400);
	assert_int_equal(conf.heartbeat_ms, 100);
	assert_int_equal(conf.dead_after, 3);
	assert_true(conf.sessions_sync);
	assert_string_equal(conf.firewall_ruleset, "");
	assert_string_equal(conf.upgrade_trusted_keys, "/etc/tandem/trusted.d");
	assert_int_equal(conf.upgrade_hold_timer_s, 900);
	assert_int_equal(conf.upgrade_sync_timeout_s, 300);
	assert_int_equal(conf.upgrade_cpu_max_percent, 80);
	assert_true(conf.upgrade_failback);
	assert_string_equal(conf.api_http, "");
	assert_string_equal(conf.api_token_file, "/etc/tandem/api.token");
	/* Group 0 is implied, priority 100 for every node. */
	assert_int_equal(conf.n_groups, 1);
	assert_int_equal(conf.groups[0].id, 0);
	assert_int_equal(conf.groups[0].priority[0], 100);
	assert_int_equal(conf.groups[0].priority[1], 100);
	assert_int_equal(conf.groups[0].priority[2], 0);
	assert_false(conf.groups[0].preempt);
	assert_round_trip(&conf);

	/* Empty optional sections mean their defaults too. */
	expect_valid(BASE "groups:\nsessions:\nfirewall:\nupgrade: {}\napi:\n");
	assert_int_equal(conf.n_groups, 1);
	assert_true(conf.sessions_sync);
}

static void test_groups_sorted_and_group0_synthesized(void **state)
{
	expect_valid(BASE
		     "groups:\n"
		     "  - {id: 7, priority: {fw-b: 5}}\n"
		     "  - {id: 2, priority: {fw-a: 9, fw-b: 1}}\n");
	assert_int_equal(conf.n_groups, 3);
	assert_int_equal(conf.groups[0].id, 0);
	assert_int_equal(conf.groups[0].priority[0], 100);
	assert_int_equal(conf.groups[0].priority[1], 100);
	assert_int_equal(conf.groups[1].id, 2);
	assert_int_equal(conf.groups[1].priority[0], 9);
	assert_int_equal(conf.groups[1].priority[1], 1);
	assert_int_equal(conf.groups[2].id, 7);
	assert_int_equal(conf.groups[2].priority[0], 0); /* not named: 0 */
	assert_int_equal(conf.groups[2].priority[1], 5);
	assert_int_equal(conf_group_index(&conf, 7), 2);
	assert_int_equal(conf_group_index(&conf, 0), 0);
	assert_int_equal(conf_group_index(&conf, 3), -1);
	assert_round_trip(&conf);

	/* An explicit group 0 listed last still comes first. */
	expect_valid(BASE
		     "groups:\n"
		     "  - {id: 3, priority: {fw-a: 1}}\n"
		     "  - {id: 0, priority: {fw-a: 10}}\n");
	assert_int_equal(conf.n_groups, 2);
	assert_int_equal(conf.groups[0].id, 0);
	assert_int_equal(conf.groups[0].priority[0], 10);
	assert_int_equal(conf.groups[0].priority[1], 0);
}

static void test_lookups(void **state)
{
	char buf[64];
	struct tnd_addr a6 = addr("2001:db8::1");

	expect_valid(spec_example);
	assert_int_equal(conf_node_index(&conf, "fw-a"), 0);
	assert_int_equal(conf_node_index(&conf, "fw-b"), 1);
	assert_int_equal(conf_node_index(&conf, "fw-c"), -1);
	assert_int_equal(conf_node_index(&conf, "fw"), -1);
	assert_int_equal(conf_group_index(&conf, 1), 1);
	assert_int_equal(conf_group_index(&conf, 256), -1);
	assert_string_equal(conf_addr_str(&conf.nodes[1].links[1], buf, sizeof buf),
			    "198.51.100.3");
	assert_string_equal(conf_addr_str(&a6, buf, sizeof buf), "2001:db8::1");
}

static void test_vips_and_ipv6(void **state)
{
	expect_valid("cluster: {name: c, id: 255, key_file: /k, port: 65535,"
		     " heartbeat_ms: 10000, dead_after: 100}\n"
		     "nodes:\n"
		     "  - {name: a, links: [\"2001:db8::1\", 192.0.2.1]}\n"
		     "  - {name: b, links: [\"2001:DB8::2\", 192.0.2.2]}\n"
		     "groups:\n"
		     "  - id: 4\n"
		     "    priority: {a: 1}\n"
		     "    vips:\n"
		     "      - {address: 198.51.100.9, interface: v0}\n"
		     "      - {address: \"2001:db8:5::1\", interface: v1}\n"
		     "      - {address: \"2001:db8:6::1/48\", interface: v1.100}\n"
		     "api: {http: \"[::1]:8080\"}\n");
	assert_int_equal(conf.cluster_id, 255);
	assert_int_equal(conf.port, 65535);
	assert_addr(&conf.nodes[1].links[0], "2001:db8::2");
	const struct tnd_group_conf *g = &conf.groups[1];

	assert_int_equal(g->id, 4);
	assert_int_equal(g->n_vips, 3);
	assert_int_equal(g->vips[0].prefix_len, 32);  /* bare address: host */
	assert_int_equal(g->vips[1].prefix_len, 128);
	assert_int_equal(g->vips[2].prefix_len, 48);
	assert_addr(&g->vips[2].addr, "2001:db8:6::1");
	assert_string_equal(g->vips[2].ifname, "v1.100");
	assert_string_equal(conf.api_http, "[::1]:8080");
	assert_round_trip(&conf);
}

/* Each rule of SPEC section 3, with the exact place and message. */
static void test_required_keys(void **state)
{
	expect_diag("cluster:\n  name: x\nnodes:\n"
		    "  - {name: a, links: [192.0.2.1]}\n"
		    "  - {name: b, links: [192.0.2.2]}\n",
		    "t.yaml:2:3: missing required key 'id' in cluster");
	assert_true(has_diag("t.yaml:2:3: missing required key 'key_file' in cluster"));
	assert_int_equal(diags.n, 2);
	expect_only_diag("cluster: {id: 1, key_file: /k}\nnodes:\n"
			 "  - {name: a, links: [192.0.2.1]}\n"
			 "  - {name: b, links: [192.0.2.2]}\n",
			 "t.yaml:1:10: missing required key 'name' in cluster");
	expect_only_diag("cluster: {name: x, id: 1, key_file: /k}\n",
			 "t.yaml:1:1: missing required key 'nodes' at the top level");
	expect_diag("nodes: []\n",
		    "t.yaml:1:1: missing required key 'cluster' at the top level");
	assert_true(has_diag("t.yaml:1:8: nodes: a cluster has 2..32 nodes, got 0"));
	assert_int_equal(diags.n, 2);
	expect_diag(BASE "  - {links: [203.0.113.3, 198.51.100.3]}\n",
		    "t.yaml:8:5: missing required key 'name' in nodes[2]");
	expect_diag(BASE "groups:\n  - {priority: {fw-a: 1}}\n",
		    "t.yaml:9:5: missing required key 'id' in groups[0]");
}

static void test_types_and_ranges(void **state)
{
	static const struct {
		const char *line; /* line 3 of the cluster mapping */
		const char *want;
	} c[] = {
		{"  id: abc\n", "t.yaml:3:7: cluster.id: expected an integer 1..255, got 'abc'"},
		{"  id: 0\n", "t.yaml:3:7: cluster.id: expected an integer 1..255, got '0'"},
		{"  id: 256\n", "t.yaml:3:7: cluster.id: expected an integer 1..255, got '256'"},
		{"  id: -1\n", "t.yaml:3:7: cluster.id: expected an integer 1..255, got '-1'"},
		{"  id: 010\n", "t.yaml:3:7: cluster.id: expected an integer 1..255, got '010'"},
		{"  id: 0x10\n", "t.yaml:3:7: cluster.id: expected an integer 1..255, got '0x10'"},
		{"  id: 1.0\n", "t.yaml:3:7: cluster.id: expected an integer 1..255, got '1.0'"},
		{"  id: \"1\"\n", "t.yaml:3:7: cluster.id: expected an integer 1..255, got the quoted string '1'"},
		{"  id:\n", "t.yaml:3:3: cluster.id: expected an integer 1..255, got nothing"},
		{"  id: [1]\n", "t.yaml:3:7: cluster.id: expected an integer 1..255, got a list"},
		{"  id: 99999999999999999999\n", "t.yaml:3:7: cluster.id: expected an integer 1..255, got '99999999999999999999'"},
	};

	for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
		char yaml[512];

		snprintf(yaml, sizeof yaml,
			 "cluster:\n  name: e\n%s  key_file: /k\nnodes:\n"
			 "  - {name: a, links: [192.0.2.1]}\n"
			 "  - {name: b, links: [192.0.2.2]}\n", c[i].line);
		expect_only_diag(yaml, c[i].want);
	}

	static const struct {
		const char *line; /* line 8 */
		const char *want;
	} r[] = {
		{"sessions: {sync: maybe}\n", "t.yaml:8:18: sessions.sync: expected true or false, got 'maybe'"},
		{"sessions: {sync: yes}\n", "t.yaml:8:18: sessions.sync: expected true or false, got 'yes'"},
		{"upgrade: {cpu_max_percent: 0}\n", "t.yaml:8:28: upgrade.cpu_max_percent: expected an integer 1..100, got '0'"},
		{"upgrade: {cpu_max_percent: 101}\n", "t.yaml:8:28: upgrade.cpu_max_percent: expected an integer 1..100, got '101'"},
		{"upgrade: {hold_timer_s: 0}\n", "t.yaml:8:25: upgrade.hold_timer_s: expected an integer 1..86400, got '0'"},
		{"upgrade: {sync_timeout_s: 86401}\n", "t.yaml:8:27: upgrade.sync_timeout_s: expected an integer 1..86400, got '86401'"},
		{"upgrade: {failback: 1}\n", "t.yaml:8:21: upgrade.failback: expected true or false, got '1'"},
		{"upgrade: {auto_finalize: yes}\n", "t.yaml:8:26: upgrade.auto_finalize: expected true or false, got 'yes'"},
		{"upgrade: {trusted_keys: ''}\n", "t.yaml:8:25: upgrade.trusted_keys: expected a file name, got the quoted string ''"},
		{"api: {token_file: ~}\n", "t.yaml:8:19: api.token_file: expected a file name, got null"},
		{"firewall: {ruleset: [a]}\n", "t.yaml:8:21: firewall.ruleset: expected a file name or null, got a list"},
		{"groups: {id: 1}\n", "t.yaml:8:9: groups: expected a list of groups, got a mapping"},
		{"sessions: true\n", "t.yaml:8:11: sessions: expected a mapping {sync: BOOL}, got 'true'"},
	};

	for (size_t i = 0; i < sizeof r / sizeof r[0]; i++) {
		char yaml[512];

		snprintf(yaml, sizeof yaml, BASE "%s", r[i].line);
		expect_only_diag(yaml, r[i].want);
	}

	/* The cluster ranges, both ends. */
	expect_only_diag("cluster: {name: e, id: 1, key_file: /k, port: 0}\nnodes:\n"
			 "  - {name: a, links: [192.0.2.1]}\n  - {name: b, links: [192.0.2.2]}\n",
			 "t.yaml:1:47: cluster.port: expected an integer 1..65535, got '0'");
	expect_only_diag("cluster: {name: e, id: 1, key_file: /k, heartbeat_ms: 9}\nnodes:\n"
			 "  - {name: a, links: [192.0.2.1]}\n  - {name: b, links: [192.0.2.2]}\n",
			 "t.yaml:1:55: cluster.heartbeat_ms: expected an integer 10..10000, got '9'");
	expect_only_diag("cluster: {name: e, id: 1, key_file: /k, heartbeat_ms: 10001}\nnodes:\n"
			 "  - {name: a, links: [192.0.2.1]}\n  - {name: b, links: [192.0.2.2]}\n",
			 "t.yaml:1:55: cluster.heartbeat_ms: expected an integer 10..10000, got '10001'");
	expect_only_diag("cluster: {name: e, id: 1, key_file: /k, dead_after: 1}\nnodes:\n"
			 "  - {name: a, links: [192.0.2.1]}\n  - {name: b, links: [192.0.2.2]}\n",
			 "t.yaml:1:53: cluster.dead_after: expected an integer 2..100, got '1'");
	expect_only_diag("cluster: {name: e, id: 1, key_file: /k, dead_after: 101}\nnodes:\n"
			 "  - {name: a, links: [192.0.2.1]}\n  - {name: b, links: [192.0.2.2]}\n",
			 "t.yaml:1:53: cluster.dead_after: expected an integer 2..100, got '101'");
	expect_valid("cluster: {name: e, id: 255, key_file: /k, port: 1, heartbeat_ms: 10, dead_after: 2}\n"
		     "nodes:\n  - {name: a, links: [192.0.2.1]}\n  - {name: b, links: [192.0.2.2]}\n"
		     "upgrade: {hold_timer_s: 86400, sync_timeout_s: 1, cpu_max_percent: 1, failback: False}\n"
		     "sessions: {sync: FALSE}\n");
	assert_int_equal(conf.heartbeat_ms, 10);
	assert_int_equal(conf.dead_after, 2);
	assert_int_equal(conf.upgrade_hold_timer_s, 86400);
	assert_false(conf.upgrade_failback);
	assert_false(conf.sessions_sync);
}

static void test_unknown_and_duplicate_keys(void **state)
{
	expect_only_diag("cluster:\n  name: e\n  id: 1\n  key_file: /k\n  x: 1\nnodes:\n"
			 "  - {name: a, links: [192.0.2.1]}\n  - {name: b, links: [192.0.2.2]}\n",
			 "t.yaml:5:3: unknown key 'x' in cluster");
	expect_only_diag(BASE "colour: blue\n", "t.yaml:8:1: unknown key 'colour' at the top level");
	expect_only_diag(BASE "groups: [{id: 1, priority: {fw-a: 1}, hooks: {up: /x}}]\n",
			 "t.yaml:8:47: unknown key 'up' in groups[0].hooks");
	expect_only_diag("cluster:\n  name: e\n  id: 1\n  key_file: /k\n  id: 2\nnodes:\n"
			 "  - {name: a, links: [192.0.2.1]}\n  - {name: b, links: [192.0.2.2]}\n",
			 "t.yaml:5:3: duplicate key 'id' in cluster (first at line 3)");
	assert_int_equal(conf.cluster_id, 1); /* the first one was read */
	expect_only_diag(BASE "groups: [{id: 1, priority: {fw-a: 1, fw-a: 2}}]\n",
			 "t.yaml:8:38: duplicate key 'fw-a' in groups[0].priority (first at line 8)");
}

static void test_nodes(void **state)
{
	expect_only_diag("cluster: {name: e, id: 1, key_file: /k}\nnodes:\n"
			 "  - {name: a, links: [192.0.2.1]}\n",
			 "t.yaml:3:3: nodes: a cluster has 2..32 nodes, got 1");
	expect_only_diag("cluster: {name: e, id: 1, key_file: /k}\nnodes:\n",
			 "t.yaml:2:1: nodes: expected a list of 2..32 nodes, got nothing");

	/* 32 nodes are fine, 33 are not. */
	char yaml[8192];
	int o = snprintf(yaml, sizeof yaml, "cluster: {name: e, id: 1, key_file: /k}\nnodes:\n");

	for (int i = 0; i < 33; i++)
		o += snprintf(yaml + o, sizeof yaml - (size_t)o,
			      "  - {name: n%d, links: [192.0.2.%d]}\n", i, i + 1);
	expect_only_diag(yaml, "t.yaml:3:3: nodes: a cluster has 2..32 nodes, got 33");
	yaml[strlen(yaml) - strlen("  - {name: n32, links: [192.0.2.33]}\n")] = '\0';
	expect_valid(yaml);
	assert_int_equal(conf.n_nodes, 32);
	assert_int_equal(conf.groups[0].priority[31], 100);
	assert_round_trip(&conf);

	expect_only_diag(BASE "  - {name: fw-a, links: [203.0.113.3, 198.51.100.3]}\n",
			 "t.yaml:8:12: nodes[2].name: duplicate node name 'fw-a' (also nodes[0])");
	expect_only_diag(BASE "  - {name: fw c, links: [203.0.113.3, 198.51.100.3]}\n",
			 "t.yaml:8:12: nodes[2].name: expected a name of 1..63 characters from A-Z a-z 0-9 . _ -, got 'fw c'");
	expect_only_diag(BASE "  - {name: \"\", links: [203.0.113.3, 198.51.100.3]}\n",
			 "t.yaml:8:12: nodes[2].name: expected a name of 1..63 characters from A-Z a-z 0-9 . _ -, got the quoted string ''");
	/* 63 characters is the longest name. */
	expect_valid(BASE "  - {name: a23456789012345678901234567890123456789012345678901234567890123,"
		     " links: [203.0.113.3, 198.51.100.3]}\n");
	expect_only_diag(BASE "  - {name: a234567890123456789012345678901234567890123456789012345678901234,"
			 " links: [203.0.113.3, 198.51.100.3]}\n",
			 "t.yaml:8:12: nodes[2].name: expected a name of 1..63 characters from A-Z a-z 0-9 . _ -, got 'a234567890123456789012345678901234567890...'");
	expect_only_diag(BASE "  - fw-c\n",
			 "t.yaml:8:5: nodes[2]: expected a mapping with name and links, got 'fw-c'");
}

static void test_links(void **state)
{
	const char *head = "cluster: {name: e, id: 1, key_file: /k}\nnodes:\n";
	char yaml[1024];

	snprintf(yaml, sizeof yaml, "%s  - {name: a, links: [192.0.2.1, 198.51.100.1]}\n"
		 "  - {name: b, links: [192.0.2.2]}\n", head);
	expect_only_diag(yaml, "t.yaml:4:22: nodes[1].links: 1 link but nodes[0] has 2; every node needs one address per link");

	snprintf(yaml, sizeof yaml, "%s  - {name: a, links: [192.0.2.1, 198.51.100.1]}\n"
		 "  - {name: b, links: [192.0.2.2, \"2001:db8::2\"]}\n", head);
	expect_only_diag(yaml, "t.yaml:4:34: nodes[1].links[1]: 2001:db8::2 is IPv6 but link 1 of nodes[0] is IPv4; a link's addresses are in one family");

	snprintf(yaml, sizeof yaml, "%s  - {name: a, links: [192.0.2.1, 198.51.100.1]}\n"
		 "  - {name: b, links: [192.0.2.2, 198.51.100.1]}\n", head);
	expect_only_diag(yaml, "t.yaml:4:34: nodes[1].links[1]: address 198.51.100.1 is already used by nodes[0].links[1]");

	/* Unique across links too, not just within one link. */
	snprintf(yaml, sizeof yaml, "%s  - {name: a, links: [192.0.2.1, 198.51.100.1]}\n"
		 "  - {name: b, links: [198.51.100.1, 192.0.2.2]}\n", head);
	expect_only_diag(yaml, "t.yaml:4:23: nodes[1].links[0]: address 198.51.100.1 is already used by nodes[0].links[1]");

	snprintf(yaml, sizeof yaml, "%s  - {name: a, links: [192.0.2.1, 192.0.2.1]}\n"
		 "  - {name: b, links: [192.0.2.2, 192.0.2.3]}\n", head);
	expect_only_diag(yaml, "t.yaml:3:34: nodes[0].links[1]: address 192.0.2.1 is already used by nodes[0].links[0]");

	snprintf(yaml, sizeof yaml, "%s  - {name: a, links: [192.0.2.256]}\n"
		 "  - {name: b, links: [192.0.2.2]}\n", head);
	expect_only_diag(yaml, "t.yaml:3:23: nodes[0].links[0]: expected an IPv4 or IPv6 address, got '192.0.2.256'");

	snprintf(yaml, sizeof yaml, "%s  - {name: a, links: [224.0.0.18]}\n"
		 "  - {name: b, links: [\"::\"]}\n", head);
	expect_diag(yaml, "t.yaml:3:23: nodes[0].links[0]: 224.0.0.18 is a multicast address");
	assert_true(has_diag("t.yaml:4:23: nodes[1].links[0]: :: is the unspecified address"));

	snprintf(yaml, sizeof yaml, "%s  - {name: a, links: [1.1.1.1, 2.2.2.2, 3.3.3.3, 4.4.4.4, 5.5.5.5]}\n"
		 "  - {name: b, links: [192.0.2.2]}\n", head);
	expect_diag(yaml, "t.yaml:3:22: nodes[0].links: a node has 1..4 links, got 5");

	snprintf(yaml, sizeof yaml, "%s  - {name: a, links: []}\n"
		 "  - {name: b, links: [192.0.2.2]}\n", head);
	expect_only_diag(yaml, "t.yaml:3:22: nodes[0].links: a node has 1..4 links, got 0");

	snprintf(yaml, sizeof yaml, "%s  - {name: a, links: [10.0.0.1, 10.0.1.1, 10.0.2.1, \"fd00::1\"]}\n"
		 "  - {name: b, links: [10.0.0.2, 10.0.1.2, 10.0.2.2, \"fd00::2\"]}\n", head);
	expect_valid(yaml);
	assert_int_equal(conf.nodes[1].n_links, 4);
	assert_addr(&conf.nodes[1].links[3], "fd00::2");
}

static void test_groups(void **state)
{
	expect_only_diag(BASE "groups:\n  - {id: 1, priority: {fw-a: 1}}\n  - {id: 1, priority: {fw-a: 1}}\n",
			 "t.yaml:10:10: groups[1].id: duplicate group id 1 (also groups[0])");
	expect_only_diag(BASE "groups:\n  - {id: 256, priority: {fw-a: 1}}\n",
			 "t.yaml:9:10: groups[0].id: expected an integer 0..255, got '256'");
	expect_only_diag(BASE "groups:\n  - {id: 1, priority: {fw-a: 1, fw-z: 2}}\n",
			 "t.yaml:9:33: groups[0].priority: unknown node 'fw-z'");
	expect_only_diag(BASE "groups:\n  - {id: 1, priority: {fw-a: 256}}\n",
			 "t.yaml:9:30: groups[0].priority.fw-a: expected an integer 0..255, got '256'");
	expect_only_diag(BASE "groups:\n  - {id: 1, priority: {fw-a: 1}, preempt_delay_s: 86401}\n",
			 "t.yaml:9:51: groups[0].preempt_delay_s: expected an integer 0..86400, got '86401'");
	expect_only_diag(BASE "groups:\n  - {id: 1, priority: {fw-a: 1}, preempt: 1}\n",
			 "t.yaml:9:43: groups[0].preempt: expected true or false, got '1'");
	/* Without any node above 0 nobody can own the VIPs. */
	expect_only_diag(BASE "groups:\n  - id: 1\n    priority: {fw-a: 0, fw-b: 0}\n"
			 "    vips: [{address: 192.0.2.1/24, interface: lan0}]\n",
			 "t.yaml:10:15: groups[0]: a group with vips needs at least one node with priority above 0");
	expect_only_diag(BASE "groups:\n  - id: 1\n    vips: [{address: 192.0.2.1/24, interface: lan0}]\n",
			 "t.yaml:9:5: groups[0]: a group with vips needs at least one node with priority above 0");
	expect_only_diag(BASE "groups:\n  - {id: 0, priority: {fw-a: 0}}\n",
			 "t.yaml:9:23: groups[0]: group 0 needs at least one node with priority above 0 (it elects the configuration authority)");
	expect_only_diag(BASE "groups:\n  - {id: 0, priority: {fw-a: 1}, vips: [{address: 192.0.2.1/24, interface: l}]}\n",
			 "t.yaml:9:40: groups[0].vips: group 0 is the control plane and carries no vips; put them in a group 1..255");

	/* 31 groups plus the implied group 0 fit; 32 plus group 0 do not. */
	char yaml[4096];
	int o = snprintf(yaml, sizeof yaml, BASE "groups:\n");

	for (int g = 1; g <= 32; g++)
		o += snprintf(yaml + o, sizeof yaml - (size_t)o,
			      "  - {id: %d, priority: {fw-a: 1}}\n", g);
	expect_only_diag(yaml, "t.yaml:9:3: groups: at most 32 groups including group 0, which is added when not listed");
	yaml[strlen(yaml) - strlen("  - {id: 32, priority: {fw-a: 1}}\n")] = '\0';
	expect_valid(yaml);
	assert_int_equal(conf.n_groups, 32);
	assert_int_equal(conf.groups[31].id, 31);
	assert_round_trip(&conf);
}

static void test_vips(void **state)
{
	static const struct {
		const char *vip;
		const char *needle; /* where on line 10 the problem is */
		const char *want;   /* after "t.yaml:10:COL: " */
	} c[] = {
		{"{address: 192.0.2.1/33, interface: l}", "192", "groups[0].vips[0].address: prefix length 33 is out of range 1..32 for IPv4"},
		{"{address: 192.0.2.1/0, interface: l}", "192", "groups[0].vips[0].address: prefix length 0 is out of range 1..32 for IPv4"},
		{"{address: \"2001:db8::9/129\", interface: l}", "\"", "groups[0].vips[0].address: prefix length 129 is out of range 1..128 for IPv6"},
		{"{address: 192.0.2.1/24x, interface: l}", "192", "groups[0].vips[0].address: expected address/prefix such as 192.0.2.1/24 or 2001:db8::1/64, got '192.0.2.1/24x'"},
		{"{address: 192.0.2.1/, interface: l}", "192", "groups[0].vips[0].address: expected address/prefix such as 192.0.2.1/24 or 2001:db8::1/64, got '192.0.2.1/'"},
		{"{address: 192.0.2.1/24, interface: l/x}", "l/x", "groups[0].vips[0].interface: expected an interface name of 1..15 characters without spaces, '/' or ':', got 'l/x'"},
		{"{address: 192.0.2.1/24, interface: a234567890123456}", "a23", "groups[0].vips[0].interface: expected an interface name of 1..15 characters without spaces, '/' or ':', got 'a234567890123456'"},
		{"{address: 192.0.2.1/24}", "{", "missing required key 'interface' in groups[0].vips[0]"},
		{"{address: 203.0.113.2/24, interface: l}", "203", "groups[0].vips[0].address: 203.0.113.2 is the address of nodes[1].links[0]; a vip must not be a link address"},
		{"{address: 192.0.2.1/24, interface: l}, {address: 192.0.2.1/25, interface: m}", "192.0.2.1/25",
		 "groups[0].vips[1].address: 192.0.2.1 is already a vip of groups[0] (vips[0])"},
		{"192.0.2.1/24", "192", "groups[0].vips[0]: expected a mapping {address: A/P, interface: IF}, got '192.0.2.1/24'"},
	};

	for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
		char line[256], yaml[1024], want[512];
		const char *at;

		snprintf(line, sizeof line, "    vips: [%s]", c[i].vip);
		at = strstr(line + 11, c[i].needle);
		assert_non_null(at);
		snprintf(yaml, sizeof yaml, BASE "groups:\n  - id: 1\n%s\n"
			 "    priority: {fw-a: 1}\n", line);
		snprintf(want, sizeof want, "t.yaml:10:%d: %s", (int)(at - line) + 1, c[i].want);
		expect_only_diag(yaml, want);
	}

	/* The same VIP in two groups. */
	expect_only_diag(BASE "groups:\n"
			 "  - {id: 1, priority: {fw-a: 1}, vips: [{address: 192.0.2.1/24, interface: a}]}\n"
			 "  - {id: 2, priority: {fw-a: 1}, vips: [{address: 192.0.2.1/24, interface: b}]}\n",
			 "t.yaml:10:51: groups[1].vips[0].address: 192.0.2.1 is already a vip of groups[0] (vips[0])");

	/* 16 VIPs per group at most. */
	char yaml[4096];
	int o = snprintf(yaml, sizeof yaml, BASE "groups:\n  - id: 1\n    priority: {fw-a: 1}\n    vips:\n");

	for (int v = 0; v < 17; v++)
		o += snprintf(yaml + o, sizeof yaml - (size_t)o,
			      "      - {address: 192.0.2.%d/24, interface: lan0}\n", v + 1);
	expect_only_diag(yaml, "t.yaml:12:7: groups[0].vips: at most 16 vips per group, got 17");
}

static void test_monitors_hooks_api(void **state)
{
	expect_only_diag(BASE "groups: [{id: 1, priority: {fw-a: 1}, monitor_interfaces: [a, b, a]}]\n",
			 "t.yaml:8:66: groups[0].monitor_interfaces[2]: 'a' is already listed as groups[0].monitor_interfaces[0]");
	expect_only_diag(BASE "groups: [{id: 1, priority: {fw-a: 1}, monitor_interfaces: [\"a b\"]}]\n",
			 "t.yaml:8:60: groups[0].monitor_interfaces[0]: expected an interface name of 1..15 characters without spaces, '/' or ':', got the quoted string 'a b'");
	expect_only_diag(BASE "groups: [{id: 1, priority: {fw-a: 1}, monitor_interfaces: [..]}]\n",
			 "t.yaml:8:60: groups[0].monitor_interfaces[0]: expected an interface name of 1..15 characters without spaces, '/' or ':', got '..'");
	expect_only_diag(BASE "groups: [{id: 1, priority: {fw-a: 1}, hooks: {primary: up.sh}}]\n",
			 "t.yaml:8:56: groups[0].hooks.primary: expected an absolute file name (starting with /), got 'up.sh'");
	expect_only_diag(BASE "groups: [{id: 1, priority: {fw-a: 1}, hooks: {secondary: \"\"}}]\n",
			 "t.yaml:8:58: groups[0].hooks.secondary: expected an absolute file name or null, got the quoted string ''");
	expect_valid(BASE "groups: [{id: 1, priority: {fw-a: 1}, hooks: {primary: /a b/up, secondary: null}}]\n");
	assert_string_equal(conf.groups[1].hook_primary, "/a b/up");
	assert_string_equal(conf.groups[1].hook_secondary, "");

	static const char *const bad_http[] = {
		"localhost", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536", ":8080",
		"::1:8080", "[127.0.0.1]:80", "host_name:80", "-a.example:80",
		"a..b:80", "127.0.0.1:08080", "[::1]:", "[::1]",
	};
	static const char *const good_http[] = {
		"127.0.0.1:8080", "[::1]:1", "[2001:db8::1]:65535", "gw.example.net:443",
		"localhost:80", "0.0.0.0:8080",
	};

	for (size_t i = 0; i < sizeof bad_http / sizeof bad_http[0]; i++) {
		char yaml[512], want[256];

		snprintf(yaml, sizeof yaml, BASE "api:\n  http: \"%s\"\n", bad_http[i]);
		snprintf(want, sizeof want,
			 "t.yaml:9:9: api.http: expected host:port such as 127.0.0.1:8080 or [::1]:8080, got the quoted string '%s'",
			 bad_http[i]);
		expect_only_diag(yaml, want);
	}
	for (size_t i = 0; i < sizeof good_http / sizeof good_http[0]; i++) {
		char yaml[512];

		snprintf(yaml, sizeof yaml, BASE "api:\n  http: \"%s\"\n", good_http[i]);
		expect_valid(yaml);
		assert_string_equal(conf.api_http, good_http[i]);
		assert_round_trip(&conf);
	}
}

static void test_many_errors_all_reported_in_order(void **state)
{
	int rc = parse("cluster:\n"
		       "  name: bad name\n"              /* 2 */
		       "  id: 300\n"                     /* 3 */
		       "  key_file: /k\n"
		       "  bogus: 1\n"                    /* 5 */
		       "nodes:\n"
		       "  - {name: a, links: [192.0.2.1]}\n"
		       "  - {name: a, links: [192.0.2.1]}\n" /* 8: name, address */
		       "sessions: {sync: 2}\n"           /* 9 */
		       "api: {http: nope}\n");           /* 10 */
	static const char *const want[] = {
		"t.yaml:2:9: cluster.name: expected a name of 1..63 characters from A-Z a-z 0-9 . _ -, got 'bad name'",
		"t.yaml:3:7: cluster.id: expected an integer 1..255, got '300'",
		"t.yaml:5:3: unknown key 'bogus' in cluster",
		"t.yaml:8:12: nodes[1].name: duplicate node name 'a' (also nodes[0])",
		"t.yaml:8:23: nodes[1].links[0]: address 192.0.2.1 is already used by nodes[0].links[0]",
		"t.yaml:9:18: sessions.sync: expected true or false, got '2'",
		"t.yaml:10:13: api.http: expected host:port such as 127.0.0.1:8080 or [::1]:8080, got 'nope'",
	};

	assert_int_equal(rc, TND_EINVAL);
	if (diags.n != (int)(sizeof want / sizeof want[0]))
		dump_diags(&diags);
	assert_int_equal(diags.n, sizeof want / sizeof want[0]);
	for (int i = 0; i < diags.n; i++)
		assert_string_equal(diags.msg[i], want[i]);
	assert_int_equal(diags.n_dropped, 0);
}

static void test_diags_bounded(void **state)
{
	/* 32 nodes on lines 3..34 with three problems each: the first
	 * CONF_DIAGS_MAX in file order are kept, the rest counted. */
	char *yaml = malloc(8192);
	int o = snprintf(yaml, 8192, "cluster: {name: e, id: 1, key_file: /k}\nnodes:\n");

	for (int i = 0; i < 32; i++)
		o += snprintf(yaml + o, 8192 - (size_t)o, "  - {name: b c, links: [x, y]}\n");
	assert_int_equal(parse(yaml), TND_EINVAL);
	assert_int_equal(diags.n, CONF_DIAGS_MAX);
	assert_int_equal(diags.n_dropped, 3 * 32 - CONF_DIAGS_MAX);
	assert_string_equal(diags.msg[0],
			    "t.yaml:3:12: nodes[0].name: expected a name of 1..63 characters from A-Z a-z 0-9 . _ -, got 'b c'");
	assert_string_equal(diags.msg[1],
			    "t.yaml:3:25: nodes[0].links[0]: expected an IPv4 or IPv6 address, got 'x'");
	assert_string_equal(diags.msg[2],
			    "t.yaml:3:28: nodes[0].links[1]: expected an IPv4 or IPv6 address, got 'y'");
	/* 21 whole lines are 63 diagnostics; the 64th opens line 24. */
	assert_string_equal(diags.msg[CONF_DIAGS_MAX - 1],
			    "t.yaml:24:12: nodes[21].name: expected a name of 1..63 characters from A-Z a-z 0-9 . _ -, got 'b c'");

	/* Groups are checked after nodes but come first in this file: their
	 * problems must push out the later node ones, not be dropped. */
	o = snprintf(yaml, 8192, "cluster: {name: e, id: 1, key_file: /k}\ngroups:\n");
	for (int i = 0; i < 30; i++)
		o += snprintf(yaml + o, 8192 - (size_t)o, "  - {id: x}\n");
	o += snprintf(yaml + o, 8192 - (size_t)o, "nodes:\n");
	for (int i = 0; i < 32; i++)
		o += snprintf(yaml + o, 8192 - (size_t)o, "  - {name: b c, links: [x, y]}\n");
	assert_int_equal(parse(yaml), TND_EINVAL);
	assert_int_equal(diags.n, CONF_DIAGS_MAX);
	assert_int_equal(diags.n_dropped, 30 + 3 * 32 - CONF_DIAGS_MAX);
	assert_string_equal(diags.msg[0], "t.yaml:3:10: groups[0].id: expected an integer 0..255, got 'x'");
	assert_string_equal(diags.msg[29], "t.yaml:32:10: groups[29].id: expected an integer 0..255, got 'x'");
	assert_string_equal(diags.msg[30],
			    "t.yaml:34:12: nodes[0].name: expected a name of 1..63 characters from A-Z a-z 0-9 . _ -, got 'b c'");
	assert_string_equal(diags.msg[CONF_DIAGS_MAX - 1],
			    "t.yaml:45:12: nodes[11].name: expected a name of 1..63 characters from A-Z a-z 0-9 . _ -, got 'b c'");
	free(yaml);
}

static void test_huge_mapping_bounded(void **state)
{
	/* 20000 priority keys: the duplicate check must not go quadratic
	 * over all of them; keys past the bound are refused, not read. */
	size_t cap = 400000;
	char *yaml = malloc(cap);
	int o = snprintf(yaml, cap, BASE "groups: [{id: 1, priority: {fw-a: 1");

	for (int i = 0; i < 20000; i++)
		o += snprintf(yaml + o, cap - (size_t)o, ", x%d: 1", i);
	snprintf(yaml + o, cap - (size_t)o, "}}]\n");
	assert_int_equal(parse(yaml), TND_EINVAL);
	assert_int_equal(diags.n, 64);
	/* Keys 2..64 are unknown nodes, key 65 is where reading stops. */
	assert_string_equal(diags.msg[63],
			    "t.yaml:8:532: more than 64 keys in groups[0].priority; the rest are not read");
	assert_int_equal(diags.n_dropped, 0);
	free(yaml);
}

static void test_syntax_errors(void **state)
{
	expect_only_diag(BASE "groups: [{id: 1\n", "t.yaml:9:1: syntax error: missing comma in flow mapping");
	/* Tabs are refused before libfyaml (conf.c tabs_refused): one per line. */
	expect_only_diag("cluster:\n  name: a\n\tid: 1\n", "t.yaml:3:1: tab character: YAML indents and separates with spaces");
	expect_only_diag("? c:\t:", "t.yaml:1:5: tab character: YAML indents and separates with spaces");
	expect_only_diag("a: b: c\n", "t.yaml:1:5: syntax error: invalid nested block mapping on the same line");
	expect_only_diag("cluster: \"open\n", "t.yaml:1:11: syntax error: double-quoted scalar without closing quote");
	expect_only_diag(BASE "---\nmore: 1\n", "t.yaml:8:1: only one YAML document is allowed");
	expect_only_diag("", "t.yaml:1:1: empty configuration: expected a mapping with cluster and nodes");
	expect_only_diag("# just a comment\n", "t.yaml:1:1: empty configuration: expected a mapping with cluster and nodes");
	expect_only_diag("- a\n- b\n", "t.yaml:1:1: expected a mapping with cluster and nodes at the top level, got a list");
	expect_only_diag(BASE "x: \xc3\x28\n", "t.yaml:8:4: invalid UTF-8 (byte 0xc3)");
	expect_only_diag("cluster: {name: a\x01}\n", "t.yaml:1:18: character U+0001 is not allowed in YAML");

	static const char with_nul[] = BASE "x: a\0b\n";

	assert_int_equal(conf_parse("t.yaml", with_nul, sizeof with_nul - 1, &conf, &diags), TND_EINVAL);
	assert_int_equal(diags.n, 1);
	assert_string_equal(diags.msg[0], "t.yaml:8:5: character U+0000 is not allowed in YAML");
}

static void test_yaml_features_refused(void **state)
{
	expect_diag("cluster: &c {name: e, id: 1, key_file: /k}\nnodes:\n"
		    "  - {name: a, links: [192.0.2.1]}\n  - {name: b, links: [192.0.2.2]}\n"
		    "groups: [{id: 1, priority: *c}]\n",
		    "t.yaml:5:29: YAML aliases are not supported; write the value out");
	assert_int_equal(diags.n, 1);
	expect_only_diag(BASE "sessions: {sync: !!bool true}\n", "t.yaml:8:18: YAML tags are not supported");
	/* Control characters inside a value (escaped in YAML) are refused. */
	expect_only_diag("cluster: {name: e, id: 1, key_file: \"/k\\tx\"}\nnodes:\n"
			 "  - {name: a, links: [192.0.2.1]}\n  - {name: b, links: [192.0.2.2]}\n",
			 "t.yaml:1:37: cluster.key_file: file name contains a control character or invalid UTF-8");
}

static void test_quoting_round_trip(void **state)
{
	/* Values that must be quoted to read back the same, and the
	 * single-quoted escapes libfyaml 0.7.12 gets wrong on its own. */
	expect_valid("cluster: {name: \"true\", id: 1, key_file: 'a''''''''b'}\n"
		     "nodes:\n"
		     "  - {name: \"1.5\", links: [192.0.2.1]}\n"
		     "  - {name: \"-x\", links: [192.0.2.2]}\n"
		     "  - {name: \"null\", links: [192.0.2.3]}\n"
		     "  - {name: \"0x1F\", links: [192.0.2.4]}\n"
		     "  - {name: \"2024-01-01\", links: [192.0.2.5]}\n"
		     "groups:\n"
		     "  - id: 3\n"
		     "    priority: {\"0x1F\": 1, \"1.5\": 2, \"-x\": 3, \"null\": 4}\n"
		     "    hooks: {primary: \"/h/a: b #c, [d] {e}\", secondary: '/q\"\\\\'}\n"
		     "    monitor_interfaces: [\"#x\", \"y,z\", \"a'b\"]\n"
		     "firewall: {ruleset: 'multi\n  line'}\n"
		     "upgrade: {trusted_keys: \"/etc/t\\u00e9st \\U0001F600\"}\n"
		     "api: {token_file: \"~\"}\n");
	assert_string_equal(conf.cluster_name, "true");
	assert_string_equal(conf.key_file, "a''''b");
	assert_string_equal(conf.nodes[2].name, "null");
	assert_int_equal(conf.groups[1].priority[0], 2);
	assert_int_equal(conf.groups[1].priority[2], 4);
	assert_int_equal(conf.groups[1].priority[3], 1);
	assert_int_equal(conf.groups[1].priority[4], 0);
	assert_string_equal(conf.groups[1].hook_primary, "/h/a: b #c, [d] {e}");
	assert_string_equal(conf.groups[1].hook_secondary, "/q\"\\\\");
	assert_string_equal(conf.groups[1].monitors[2], "a'b");
	assert_string_equal(conf.firewall_ruleset, "multi line");
	assert_string_equal(conf.upgrade_trusted_keys, "/etc/t\xc3\xa9st \xf0\x9f\x98\x80");
	assert_string_equal(conf.api_token_file, "~");
	assert_round_trip(&conf);
}

static void test_parse_initialises_out(void **state)
{
	/* Garbage in `out` must not leak into the result. */
	static struct tnd_conf dirty;

	memset(&dirty, 0xa5, sizeof dirty);
	assert_int_equal(conf_parse("t.yaml", spec_example, strlen(spec_example), &dirty, &diags), 0);
	expect_valid(spec_example);
	assert_memory_equal(&dirty, &conf, sizeof conf);

	/* A bad file leaves defaults, and says so. */
	memset(&dirty, 0xa5, sizeof dirty);
	assert_int_equal(conf_parse("t.yaml", "nodes: 3\n", 9, &dirty, &diags), TND_EINVAL);
	assert_int_equal(dirty.port, 7400);
	assert_int_equal(dirty.n_nodes, 0);
	assert_string_equal(dirty.api_token_file, "/etc/tandem/api.token");
	assert_true(diags.n > 0);

	/* NULL diagnostics are allowed. */
	assert_int_equal(conf_parse("t.yaml", "x", 1, &dirty, NULL), TND_EINVAL);
}

static void test_load(void **state)
{
	char path[] = "/tmp/test_conf_XXXXXX";
	int fd = mkstemp(path);
	char want[256];

	assert_true(fd >= 0);
	assert_int_equal(write(fd, spec_example, strlen(spec_example)), (ssize_t)strlen(spec_example));
	close(fd);
	assert_int_equal(conf_load(path, &conf, &diags), 0);
	assert_string_equal(conf.source, path);
	assert_string_equal(conf.cluster_name, "edge1");
	unlink(path);

	assert_int_equal(conf_load(path, &conf, &diags), TND_EINVAL);
	assert_int_equal(diags.n, 1);
	snprintf(want, sizeof want, "%s:0:0: cannot read: No such file or directory", path);
	assert_string_equal(diags.msg[0], want);
	assert_int_equal(conf.port, 7400);
}

static void test_print_canonical(void **state)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f;

	expect_valid(BASE);
	f = open_memstream(&text, &len);
	assert_int_equal(conf_print(&conf, f), 0);
	fclose(f);
	assert_string_equal(text,
			    "cluster:\n"
			    "  name: edge1\n"
			    "  id: 1\n"
			    "  key_file: /k\n"
			    "  port: 7400\n"
			    "  heartbeat_ms: 100\n"
			    "  dead_after: 3\n"
			    "nodes:\n"
			    "  - name: fw-a\n"
			    "    links: [203.0.113.1, 198.51.100.1]\n"
			    "  - name: fw-b\n"
			    "    links: [203.0.113.2, 198.51.100.2]\n"
			    "groups:\n"
			    "  - id: 0\n"
			    "    priority: {fw-a: 100, fw-b: 100}\n"
			    "    preempt: false\n"
			    "    preempt_delay_s: 0\n"
			    "    vips: []\n"
			    "    monitor_interfaces: []\n"
			    "    hooks: {primary: null, secondary: null}\n"
			    "sessions:\n"
			    "  sync: true\n"
			    "firewall:\n"
			    "  ruleset: null\n"
			    "upgrade:\n"
			    "  trusted_keys: /etc/tandem/trusted.d\n"
			    "  hold_timer_s: 900\n"
			    "  sync_timeout_s: 300\n"
			    "  cpu_max_percent: 80\n"
			    "  failback: true\n"
			    "  auto_finalize: false\n"
			    "api:\n"
			    "  http: null\n"
			    "  token_file: /etc/tandem/api.token\n"
			    "  tls_cert: null\n"
			    "  tls_key: null\n"
			    "  images_dir: /var/lib/tandem/incoming\n"
			    "  probe_file: null\n");
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spec_example),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_groups_sorted_and_group0_synthesized),
		cmocka_unit_test(test_lookups),
		cmocka_unit_test(test_vips_and_ipv6),
		cmocka_unit_test(test_required_keys),
		cmocka_unit_test(test_types_and_ranges),
		cmocka_unit_test(test_unknown_and_duplicate_keys),
		cmocka_unit_test(test_nodes),
		cmocka_unit_test(test_links),
		cmocka_unit_test(test_groups),
		cmocka_unit_test(test_vips),
		cmocka_unit_test(test_monitors_hooks_api),
		cmocka_unit_test(test_many_errors_all_reported_in_order),
		cmocka_unit_test(test_diags_bounded),
		cmocka_unit_test(test_huge_mapping_bounded),
		cmocka_unit_test(test_syntax_errors),
		cmocka_unit_test(test_yaml_features_refused),
		cmocka_unit_test(test_quoting_round_trip),
		cmocka_unit_test(test_parse_initialises_out),
		cmocka_unit_test(test_load),
		cmocka_unit_test(test_print_canonical),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
