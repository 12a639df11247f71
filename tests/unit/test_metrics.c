/* test_metrics.c - unit tests of the Prometheus renderer (src/api/metrics.c;
 * text exposition format 0.0.4).
 *
 * The documents fed here mirror the real ones field for field: the status
 * of src/api/status.c (with main.c's upgrade summary) and the upgrade
 * status of main.c's upg_status_json(). Every rendering is checked for
 * exact sample lines and, by check_exposition(), for the format's rules:
 * each sample belongs to the family declared just before it by # HELP and
 * # TYPE, each family appears once with its samples together, no series
 * twice, counters (and only counters) end in _total.
 *
 * With METRICS_OUT=FILE set, the full rendering is also written to FILE,
 * and the one of the escaping test to FILE.escaping, for promtool
 * (tests/api/promcheck.sh FILE). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/metrics.h"

static const char *STATUS_FULL =
	"{\"node\":\"gw1\",\"cluster\":\"edge1\",\"cluster_id\":1,\"version\":\"1.0.0\","
	" \"incarnation\":7,\"uptime_s\":42,\"maintenance\":false,\"tilt\":false,"
	" \"protocol\":{\"level\":2,\"min\":1,\"max\":2},"
	" \"groups\":["
	"  {\"id\":0,\"state\":\"secondary\",\"priority\":100,\"eligible\":true,\"manual\":false,"
	"   \"manual_target\":null,\"since_s\":30,\"epoch\":3,\"primary\":\"gw2\",\"preempt_suspended\":false,"
	"   \"preempt\":false,\"vips\":[]},"
	"  {\"id\":1,\"state\":\"primary\",\"priority\":200,\"eligible\":true,\"manual\":true,"
	"   \"manual_target\":\"gw1\",\"since_s\":12,\"epoch\":9,\"primary\":\"gw1\",\"preempt_suspended\":true,"
	"   \"preempt\":true,\"vips\":[{\"address\":\"192.0.2.1/24\",\"interface\":\"lan0\"}]},"
	"  {\"id\":2,\"state\":\"ineligible\",\"priority\":0,\"eligible\":false,\"why_ineligible\":\"priority 0\","
	"   \"manual\":false,\"manual_target\":null,\"since_s\":40,\"epoch\":1,\"primary\":null,"
	"   \"preempt_suspended\":false,\"vips\":[]}],"
	" \"peers\":["
	"  {\"node\":\"gw2\",\"state\":\"alive\",\"ever_seen\":true,\"version\":\"1.0.0\","
	"   \"protocol\":{\"min\":1,\"max\":2},\"since_s\":41,\"maintenance\":false,\"links\":["
	"    {\"index\":0,\"address\":\"203.0.113.2\",\"state\":\"up\",\"last_rx_ms_ago\":50,\"rx\":1234},"
	"    {\"index\":1,\"address\":\"198.51.100.3\",\"state\":\"down\",\"last_rx_ms_ago\":2500,\"rx\":99,\"missed\":25}]},"
	"  {\"node\":\"gw3\",\"state\":\"lost\",\"ever_seen\":false,\"version\":null,\"protocol\":null,"
	"   \"since_s\":0,\"maintenance\":true,\"links\":["
	"    {\"index\":0,\"address\":\"203.0.113.3\",\"state\":\"down\",\"last_rx_ms_ago\":null,\"rx\":0}]}],"
	" \"alarms\":[\"link 1 to gw2 down\"],"
	" \"counters\":{\"rx\":5000,\"tx\":5100,\"rx_datagrams\":5020,\"malformed\":3,\"replayed\":2,"
	"  \"unauthenticated\":7,\"wrong_cluster\":1,\"bad_version\":0,\"unknown_type\":4,\"send_errors\":6,"
	"  \"netlink\":{\"malformed\":0,\"overruns\":1,\"resyncs\":1,\"stale\":2,\"links_untracked\":0}},"
	" \"config\":{\"generation\":5,\"in_sync\":true,\"committed\":5,\"applied\":4,\"pending\":0,"
	"  \"coordinator\":\"gw2\",\"settled\":true,\"busy\":false,\"busy_generation\":0},"
	" \"sessions\":{\"sync\":\"on\",\"group\":1,\"role\":\"primary\",\"source\":\"gw1\",\"count\":1500,"
	"  \"in_sync\":true,\"last_digest\":\"ok\",\"bulk\":{\"active\":false,\"records\":0,\"total\":0,\"done\":true},"
	"  \"peers\":[{\"node\":\"gw2\",\"alive\":true,\"state\":\"sync\",\"in_sync\":true,\"stalled\":false,"
	"   \"count\":1498,\"backlog\":12,\"lag_ms\":1500,\"bulk_received\":1400},"
	"   {\"node\":\"gw3\",\"alive\":false,\"state\":\"idle\",\"in_sync\":false,\"stalled\":false,"
	"   \"count\":0,\"backlog\":0,\"lag_ms\":0,\"bulk_received\":0}],"
	"  \"counters\":{\"tx_msgs\":300,\"resent\":2,\"rx_msgs\":10,\"applied\":0,\"local_events\":1600,"
	"   \"bulks\":1,\"resyncs\":0,\"digest_bad\":0,\"overruns\":0,\"apply_errors\":0,\"injected\":0}},"
	" \"upgrade\":{\"state\":\"running\",\"frozen\":true,\"protocol\":2,\"id\":11,\"from\":\"1.0.0\","
	"  \"to\":\"1.1.0\",\"finalized\":false},"
	" \"image\":{\"active\":\"1.0.0\"}}";

static const char *UPGRADE_FULL =
	"{\"ok\":true,\"state\":\"running\",\"frozen\":true,\"protocol\":{\"level\":2,\"from\":2,\"to\":2},"
	" \"phase\":\"upgrade gw2, gw3 to 1.1.0\",\"id\":11,\"from\":\"1.0.0\",\"to\":\"1.1.0\","
	" \"coordinator\":\"gw1\",\"elapsed_s\":12.5,\"wall_start_ms\":1700000000000,\"finalized\":false,"
	" \"force\":false,\"disruptive\":false,\"no_failback\":false,\"cursor\":2,\"journal_seq\":40,"
	" \"image\":{\"digest\":\"ab\",\"bytes\":1000,\"source\":\"gw1\"},"
	" \"nodes\":[{\"node\":\"gw1\",\"state\":\"pending\",\"version\":\"1.0.0\",\"alive\":true,\"detail\":\"\"},"
	"  {\"node\":\"gw2\",\"state\":\"installing\",\"version\":\"1.0.0\",\"alive\":true,\"detail\":\"\"}],"
	" \"steps\":["
	"  {\"index\":0,\"kind\":\"freeze\",\"status\":\"done\",\"text\":\"freeze configuration changes\","
	"   \"rollback\":false,\"start_ms\":100,\"wall_start_ms\":1700000000100,\"end_ms\":112,"
	"   \"wall_end_ms\":1700000000112},"
	"  {\"index\":1,\"kind\":\"move\",\"status\":\"done\",\"text\":\"move group 1 to gw1\",\"rollback\":false,"
	"   \"group\":1,\"node\":\"gw1\",\"start_ms\":112,\"wall_start_ms\":1700000000112,\"end_ms\":2112,"
	"   \"wall_end_ms\":1700000002112},"
	"  {\"index\":2,\"kind\":\"upgrade\",\"status\":\"running\",\"text\":\"upgrade gw2, gw3 to 1.1.0\","
	"   \"rollback\":false,\"nodes\":[\"gw2\",\"gw3\"],\"start_ms\":2112,\"wall_start_ms\":1700000002112},"
	"  {\"index\":3,\"kind\":\"unfreeze\",\"status\":\"pending\",\"text\":\"lift the configuration freeze\","
	"   \"rollback\":false}]}";

static json_t *load(const char *text)
{
	json_error_t e;
	json_t *j = json_loads(text, 0, &e);

	if (!j)
		fail_msg("bad test JSON at %d:%d: %s", e.line, e.column, e.text);
	return j;
}

static char *render(const char *status, const char *upgrade, size_t *len)
{
	json_t *s = status ? load(status) : NULL, *u = upgrade ? load(upgrade) : NULL;
	char *t = metrics_render(s, u, len);

	json_decref(s);
	json_decref(u);
	assert_non_null(t);
	return t;
}

/* Is `line` a whole line of `text`? */
static bool has_line(const char *text, const char *line)
{
	size_t n = strlen(line);

	for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
		if ((p == text || p[-1] == '\n') && p[n] == '\n')
			return true;
	return false;
}

#define assert_line(text, line)                                                           \
	do {                                                                              \
		if (!has_line(text, line))                                                \
			fail_msg("missing line: %s\n---- rendered:\n%s", line, text);    \
	} while (0)
#define assert_no_line(text, line)                                                        \
	do {                                                                              \
		if (has_line(text, line))                                                 \
			fail_msg("unexpected line: %s", line);                            \
	} while (0)

/* How many lines start with `prefix`. */
static int count_prefix(const char *text, const char *prefix)
{
	int n = 0;
	size_t pl = strlen(prefix);

	for (const char *p = text; *p;) {
		if (strncmp(p, prefix, pl) == 0)
			n++;
		p = strchr(p, '\n');
		if (!p)
			break;
		p++;
	}
	return n;
}

#define FAMILIES_MAX 256
#define SERIES_MAX 4096

static bool ends_with(const char *s, size_t n, const char *suffix)
{
	size_t k = strlen(suffix);

	return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

/* The exposition format's structure (see the file comment); returns the
 * number of samples. Fails the test on the first violation. */
static int check_exposition(const char *text)
{
	static char fam[FAMILIES_MAX][96];
	static char series[SERIES_MAX][512];
	char cur[96] = "", type[16] = "";
	bool help_seen = false;
	int n_fam = 0, n_series = 0;

	assert_true(text[0] == '\0' || text[strlen(text) - 1] == '\n');
	for (const char *p = text; *p;) {
		const char *nl = strchr(p, '\n');
		size_t len = (size_t)(nl - p);
		char line[1024];

		assert_non_null(nl);
		assert_true(len > 0 && len < sizeof line);
		memcpy(line, p, len);
		line[len] = '\0';
		p = nl + 1;
		if (strncmp(line, "# HELP ", 7) == 0) {
			char name[96];
			assert_int_equal(sscanf(line + 7, "%95s", name), 1);
			for (int i = 0; i < n_fam; i++)
				if (strcmp(fam[i], name) == 0)
					fail_msg("family %s declared twice", name);
			assert_true(n_fam < FAMILIES_MAX);
			snprintf(fam[n_fam++], sizeof fam[0], "%s", name);
			snprintf(cur, sizeof cur, "%s", name);
			assert_true(strlen(line) > 8 + strlen(name)); /* a help text follows */
			help_seen = true;
			type[0] = '\0';
			continue;
		}
		if (strncmp(line, "# TYPE ", 7) == 0) {
			char name[96];
			assert_true(help_seen);
			assert_int_equal(sscanf(line + 7, "%95s %15s", name, type), 2);
			assert_string_equal(name, cur);
			assert_true(strcmp(type, "gauge") == 0 || strcmp(type, "counter") == 0);
			if (strcmp(type, "counter") == 0 ? !ends_with(name, strlen(name), "_total")
							 : ends_with(name, strlen(name), "_total"))
				fail_msg("%s %s: only counters end in _total", type, name);
			help_seen = false;
			continue;
		}
		assert_true(line[0] != '#');
		/* A sample: NAME[{labels}] VALUE, of the family open now. */
		size_t nlen = strcspn(line, "{ ");
		if (type[0] == '\0' || nlen != strlen(cur) || strncmp(line, cur, nlen) != 0)
			fail_msg("sample outside its family (open: %s): %s", cur, line);
		const char *sp = strrchr(line, ' ');
		assert_non_null(sp);
		char *end;
		const char *val = sp + 1;
		if (strcmp(val, "NaN") != 0 && strcmp(val, "+Inf") != 0 && strcmp(val, "-Inf") != 0) {
			(void)strtod(val, &end);
			if (end == val || *end != '\0')
				fail_msg("bad value in: %s", line);
		}
		size_t slen = (size_t)(sp - line);
		for (int i = 0; i < n_series; i++)
			if (strlen(series[i]) == slen && memcmp(series[i], line, slen) == 0)
				fail_msg("series twice: %s", line);
		assert_true(n_series < SERIES_MAX && slen < sizeof series[0]);
		memcpy(series[n_series], line, slen);
		series[n_series++][slen] = '\0';
	}
	return n_series;
}

/* With METRICS_OUT set, the text goes to $METRICS_OUT`suffix` too. */
static void write_out(const char *suffix, const char *t)
{
	const char *out = getenv("METRICS_OUT");
	char path[4096];
	FILE *f;

	if (!out || !out[0])
		return;
	assert_true((size_t)snprintf(path, sizeof path, "%s%s", out, suffix) < sizeof path);
	f = fopen(path, "w");
	if (!f)
		fail_msg("METRICS_OUT: cannot write %s", path);
	assert_int_equal(fwrite(t, 1, strlen(t), f), strlen(t));
	assert_int_equal(fclose(f), 0);
}

static void test_full(void **state)
{
	size_t len = 0;
	char *t = render(STATUS_FULL, UPGRADE_FULL, &len);

	assert_int_equal(len, strlen(t));
	write_out("", t);
	assert_true(check_exposition(t) > 100);

	/* node */
	assert_line(t, "# HELP tandem_build_info The running version of tandemd on this node (always 1).");
	assert_line(t, "# TYPE tandem_build_info gauge");
	assert_line(t, "tandem_build_info{version=\"1.0.0\",node=\"gw1\"} 1");
	assert_line(t, "tandem_uptime_seconds 42");
	assert_line(t, "tandem_maintenance 0");
	assert_line(t, "tandem_protocol_level 2");
	assert_line(t, "tandem_alarms 1");

	/* groups: a one-hot state set each, the primary as known here */
	assert_line(t, "tandem_group_state{group=\"1\",state=\"init\"} 0");
	assert_line(t, "tandem_group_state{group=\"1\",state=\"secondary\"} 0");
	assert_line(t, "tandem_group_state{group=\"1\",state=\"primary\"} 1");
	assert_line(t, "tandem_group_state{group=\"1\",state=\"ineligible\"} 0");
	assert_line(t, "tandem_group_state{group=\"0\",state=\"secondary\"} 1");
	assert_line(t, "tandem_group_state{group=\"2\",state=\"ineligible\"} 1");
	assert_int_equal(count_prefix(t, "tandem_group_state{"), 12);
	assert_line(t, "tandem_group_primary{group=\"0\",node=\"gw2\"} 1");
	assert_line(t, "tandem_group_primary{group=\"1\",node=\"gw1\"} 1");
	assert_int_equal(count_prefix(t, "tandem_group_primary{"), 2); /* group 2 has none */
	assert_line(t, "tandem_group_priority{group=\"1\"} 200");
	assert_line(t, "tandem_group_eligible{group=\"2\"} 0");
	assert_line(t, "tandem_group_manual{group=\"1\"} 1");
	assert_line(t, "tandem_group_epoch{group=\"1\"} 9");
	assert_line(t, "tandem_group_state_duration_seconds{group=\"1\"} 12");

	/* peers and links */
	assert_line(t, "tandem_peer_up{peer=\"gw2\"} 1");
	assert_line(t, "tandem_peer_up{peer=\"gw3\"} 0");
	assert_line(t, "tandem_peer_maintenance{peer=\"gw3\"} 1");
	assert_line(t, "tandem_peer_version_info{peer=\"gw2\",version=\"1.0.0\"} 1");
	assert_int_equal(count_prefix(t, "tandem_peer_version_info{"), 1); /* gw3 never seen */
	assert_line(t, "tandem_link_up{peer=\"gw2\",link=\"0\",address=\"203.0.113.2\"} 1");
	assert_line(t, "tandem_link_up{peer=\"gw2\",link=\"1\",address=\"198.51.100.3\"} 0");
	assert_line(t, "tandem_link_up{peer=\"gw3\",link=\"0\",address=\"203.0.113.3\"} 0");
	assert_line(t, "# TYPE tandem_link_received_total counter");
	assert_line(t, "tandem_link_received_total{peer=\"gw2\",link=\"0\"} 1234");
	assert_line(t, "tandem_link_received_total{peer=\"gw2\",link=\"1\"} 99");
	assert_line(t, "# TYPE tandem_link_heartbeats_missed_total counter");
	assert_line(t, "tandem_link_heartbeats_missed_total{peer=\"gw2\",link=\"1\"} 25");
	assert_line(t, "tandem_link_last_received_age_seconds{peer=\"gw2\",link=\"0\"} 0.05");
	assert_line(t, "tandem_link_last_received_age_seconds{peer=\"gw2\",link=\"1\"} 2.5");
	/* never heard: null in the document, so no sample */
	assert_int_equal(count_prefix(t, "tandem_link_last_received_age_seconds{peer=\"gw3\""), 0);

	/* protocol counters */
	assert_line(t, "tandem_control_messages_received_total 5000");
	assert_line(t, "tandem_control_messages_sent_total 5100");
	assert_line(t, "tandem_control_datagrams_received_total 5020");
	assert_line(t, "tandem_control_dropped_total{reason=\"malformed\"} 3");
	assert_line(t, "tandem_control_dropped_total{reason=\"replayed\"} 2");
	assert_line(t, "tandem_control_dropped_total{reason=\"unauthenticated\"} 7");
	assert_line(t, "tandem_control_dropped_total{reason=\"wrong_cluster\"} 1");
	assert_line(t, "tandem_control_dropped_total{reason=\"bad_version\"} 0");
	assert_line(t, "tandem_control_dropped_total{reason=\"unknown_type\"} 4");
	assert_line(t, "tandem_control_send_errors_total 6");
	assert_line(t, "tandem_netlink_dropped_total{reason=\"stale\"} 2");
	assert_line(t, "tandem_netlink_dropped_total{reason=\"untracked_link\"} 0");
	assert_line(t, "tandem_netlink_overruns_total 1");

	/* configuration: the status summary gives this node's generations */
	assert_line(t, "tandem_config_generation 5");
	assert_line(t, "tandem_config_in_sync 1");
	assert_line(t, "tandem_config_committed_generation{node=\"gw1\"} 5");
	assert_line(t, "tandem_config_applied_generation{node=\"gw1\"} 4");
	assert_line(t, "tandem_config_pending_generation{node=\"gw1\"} 0");
	assert_int_equal(count_prefix(t, "tandem_config_node_in_sync"), 0);
	assert_int_equal(count_prefix(t, "tandem_config_sync_"), 0);

	/* sessions */
	assert_line(t, "tandem_session_sync_enabled 1");
	assert_line(t, "tandem_sessions 1500");
	assert_line(t, "tandem_session_sync_in_sync 1");
	assert_line(t, "tandem_session_sync_role{role=\"primary\"} 1");
	assert_line(t, "tandem_session_sync_role{role=\"idle\"} 0");
	assert_line(t, "tandem_session_sync_peer_state{peer=\"gw2\",state=\"sync\"} 1");
	assert_line(t, "tandem_session_sync_peer_state{peer=\"gw2\",state=\"wait_bulk\"} 0");
	assert_line(t, "tandem_session_sync_peer_state{peer=\"gw3\",state=\"idle\"} 1");
	assert_line(t, "tandem_session_sync_peer_sessions{peer=\"gw2\"} 1498");
	assert_line(t, "tandem_session_sync_backlog_records{peer=\"gw2\"} 12");
	assert_line(t, "tandem_session_sync_lag_seconds{peer=\"gw2\"} 1.5");
	assert_line(t, "tandem_session_sync_lag_seconds{peer=\"gw3\"} 0");
	assert_line(t, "tandem_session_sync_messages_sent_total 300");
	assert_line(t, "tandem_session_sync_local_events_total 1600");
	assert_line(t, "tandem_conntrack_injected_total 0");

	/* upgrade: from the upgrade document, which wins over the summary */
	assert_line(t, "tandem_upgrade_state{state=\"running\"} 1");
	assert_line(t, "tandem_upgrade_state{state=\"idle\"} 0");
	assert_line(t, "tandem_upgrade_state{state=\"rolled_back\"} 0");
	assert_int_equal(count_prefix(t, "tandem_upgrade_state{"), 7);
	assert_line(t, "tandem_upgrade_phase_info{phase=\"upgrade gw2, gw3 to 1.1.0\"} 1");
	assert_line(t, "tandem_upgrade_frozen 1");
	assert_line(t, "tandem_upgrade_id 11");
	assert_line(t, "tandem_upgrade_info{from=\"1.0.0\",to=\"1.1.0\"} 1");
	assert_line(t, "tandem_upgrade_elapsed_seconds 12.5");
	assert_line(t, "tandem_upgrade_node_state{node=\"gw2\",state=\"installing\"} 1");
	assert_line(t, "tandem_upgrade_node_state{node=\"gw2\",state=\"pending\"} 0");
	assert_int_equal(count_prefix(t, "tandem_upgrade_node_state{"), 18);
	assert_line(t, "tandem_upgrade_step_status{index=\"2\",kind=\"upgrade\",node=\"gw2,gw3\",group=\"\",status=\"running\"} 1");
	assert_line(t, "tandem_upgrade_step_status{index=\"3\",kind=\"unfreeze\",node=\"\",group=\"\",status=\"pending\"} 1");
	assert_int_equal(count_prefix(t, "tandem_upgrade_step_status{"), 20);
	assert_line(t, "tandem_upgrade_step_duration_seconds{index=\"0\",kind=\"freeze\",node=\"\",group=\"\"} 0.012");
	assert_line(t, "tandem_upgrade_step_duration_seconds{index=\"1\",kind=\"move\",node=\"gw1\",group=\"1\"} 2");
	/* the running and the pending step have no end: no duration */
	assert_int_equal(count_prefix(t, "tandem_upgrade_step_duration_seconds{"), 2);
	assert_line(t, "tandem_upgrade_step_start_timestamp_seconds{index=\"2\",kind=\"upgrade\",node=\"gw2,gw3\",group=\"\"} 1700000002.112");
	assert_int_equal(count_prefix(t, "tandem_upgrade_step_start_timestamp_seconds{"), 3);
	assert_int_equal(count_prefix(t, "tandem_upgrade_error_info"), 0);
	free(t);
}

/* Label values escape backslash, double quote and line feed; help texts
 * and names are the renderer's own. */
static void test_escaping(void **state)
{
	char *t = render("{\"node\":\"gw\\\"1\",\"version\":\"1.0.0\\\\x\","
			 " \"peers\":[{\"node\":\"p\\nq\",\"state\":\"alive\",\"version\":\"a\\\"b\\\\c\\nd\"}],"
			 " \"upgrade\":{\"state\":\"idle\"}}",
			 "{\"state\":\"failed\",\"phase\":\"say \\\"no\\\"\\\\\\nnow\","
			 " \"error\":{\"code\":\"E_HEALTH\",\"message\":\"m\",\"recovery\":\"r\",\"step\":4}}", NULL);

	write_out(".escaping", t);
	check_exposition(t);
	assert_line(t, "tandem_build_info{version=\"1.0.0\\\\x\",node=\"gw\\\"1\"} 1");
	assert_line(t, "tandem_peer_up{peer=\"p\\nq\"} 1");
	assert_line(t, "tandem_peer_version_info{peer=\"p\\nq\",version=\"a\\\"b\\\\c\\nd\"} 1");
	assert_line(t, "tandem_upgrade_phase_info{phase=\"say \\\"no\\\"\\\\\\nnow\"} 1");
	assert_line(t, "tandem_upgrade_state{state=\"failed\"} 1");
	assert_line(t, "tandem_upgrade_error_info{code=\"E_HEALTH\",step=\"4\"} 1");
	free(t);
}

/* Absent, null or mistyped fields give no sample; nothing is made up. */
static void test_absent(void **state)
{
	size_t len = 99;
	char *t;
	json_t *arr = json_array();

	/* Nothing to say: empty text, not NULL. */
	t = metrics_render(NULL, NULL, &len);
	assert_non_null(t);
	assert_int_equal(len, 0);
	assert_string_equal(t, "");
	free(t);
	t = metrics_render(arr, arr, NULL);
	assert_non_null(t);
	assert_string_equal(t, "");
	free(t);
	json_decref(arr);

	/* No version: no build_info; the rest stands alone. */
	t = render("{\"node\":\"gw1\",\"uptime_s\":\"soon\",\"groups\":[{\"id\":1,\"priority\":5},"
		   "{\"state\":\"primary\",\"priority\":7}],"
		   " \"peers\":[{\"node\":\"gw2\",\"links\":[{\"index\":0,\"rx\":5,\"last_rx_ms_ago\":null}]}],"
		   " \"sessions\":{\"count\":0,\"in_sync\":false,\"sync\":\"disabled\"},"
		   " \"config\":{\"sync\":\"off\"}}",
		   NULL, NULL);
	check_exposition(t);
	assert_int_equal(count_prefix(t, "tandem_build_info"), 0);
	assert_int_equal(count_prefix(t, "# HELP tandem_build_info"), 0);
	assert_int_equal(count_prefix(t, "tandem_uptime_seconds"), 0);
	/* a group without state: no state set, its priority still */
	assert_int_equal(count_prefix(t, "tandem_group_state"), 0);
	assert_line(t, "tandem_group_priority{group=\"1\"} 5");
	/* a group without id cannot be labelled: nothing of it */
	assert_int_equal(count_prefix(t, "tandem_group_priority{"), 1);
	/* a peer without state: no up sample, and a link without state neither */
	assert_int_equal(count_prefix(t, "tandem_peer_up"), 0);
	assert_int_equal(count_prefix(t, "tandem_link_up"), 0);
	assert_line(t, "tandem_link_received_total{peer=\"gw2\",link=\"0\"} 5");
	assert_int_equal(count_prefix(t, "tandem_link_last_received_age_seconds"), 0);
	/* session sync off: its count and in_sync are placeholders */
	assert_line(t, "tandem_session_sync_enabled 0");
	assert_int_equal(count_prefix(t, "tandem_sessions"), 0);
	assert_int_equal(count_prefix(t, "tandem_session_sync_in_sync"), 0);
	/* configuration sync off and no upgrade: nothing of either */
	assert_int_equal(count_prefix(t, "tandem_config_"), 0);
	assert_int_equal(count_prefix(t, "# HELP tandem_config_"), 0);
	assert_int_equal(count_prefix(t, "tandem_upgrade_"), 0);
	assert_int_equal(count_prefix(t, "tandem_control_"), 0);
	free(t);

	/* No upgrade document: the status's summary; an idle journal has no
	 * steps, nodes, phase or versions. */
	t = render("{\"node\":\"gw1\",\"upgrade\":{\"state\":\"idle\",\"frozen\":false,\"protocol\":2}}", NULL, NULL);
	check_exposition(t);
	assert_line(t, "tandem_upgrade_state{state=\"idle\"} 1");
	assert_line(t, "tandem_upgrade_state{state=\"running\"} 0");
	assert_line(t, "tandem_upgrade_frozen 0");
	assert_int_equal(count_prefix(t, "tandem_upgrade_phase_info"), 0);
	assert_int_equal(count_prefix(t, "tandem_upgrade_info"), 0);
	assert_int_equal(count_prefix(t, "tandem_upgrade_step"), 0);
	assert_int_equal(count_prefix(t, "tandem_upgrade_node_state"), 0);
	free(t);
}

/* A state this build does not know (a newer peer's daemon, a newer core)
 * still shows as the current one; the known ones are 0. */
static void test_unknown_state(void **state)
{
	char *t = render("{\"node\":\"gw1\",\"groups\":[{\"id\":3,\"state\":\"draining\"}],"
			 " \"upgrade\":{\"state\":\"pausing\"}}",
			 NULL, NULL);

	check_exposition(t);
	assert_line(t, "tandem_group_state{group=\"3\",state=\"draining\"} 1");
	assert_line(t, "tandem_group_state{group=\"3\",state=\"primary\"} 0");
	assert_int_equal(count_prefix(t, "tandem_group_state{"), 5);
	assert_line(t, "tandem_upgrade_state{state=\"pausing\"} 1");
	assert_int_equal(count_prefix(t, "tandem_upgrade_state{"), 8);
	free(t);
}

/* With the `config status` detail in the document, every node's
 * generations, and the sync counters. */
static void test_config_detail(void **state)
{
	char *t = render(
		"{\"node\":\"gw1\",\"config\":{\"generation\":6,\"in_sync\":false,\"committed\":6,\"applied\":6,"
		" \"pending\":0,\"coordinator\":\"gw1\",\"settled\":false,\"busy\":false,\"busy_generation\":0,"
		" \"nodes\":[{\"node\":\"gw1\",\"self\":true,\"alive\":true,\"known\":true,\"committed\":6,"
		"  \"pending\":0,\"applied\":6,\"digest\":\"aa\",\"in_sync\":true,\"error\":null},"
		"  {\"node\":\"gw2\",\"self\":false,\"alive\":true,\"known\":true,\"committed\":6,\"pending\":7,"
		"  \"applied\":5,\"digest\":\"bb\",\"in_sync\":false,\"error\":\"nft: syntax error\"}],"
		" \"counters\":{\"rx\":10,\"rx_bad\":1,\"tx\":12}}}",
		NULL, NULL);

	check_exposition(t);
	assert_line(t, "tandem_config_generation 6");
	assert_line(t, "tandem_config_in_sync 0");
	assert_line(t, "tandem_config_committed_generation{node=\"gw1\"} 6");
	assert_line(t, "tandem_config_committed_generation{node=\"gw2\"} 6");
	assert_line(t, "tandem_config_applied_generation{node=\"gw2\"} 5");
	assert_line(t, "tandem_config_pending_generation{node=\"gw2\"} 7");
	assert_line(t, "tandem_config_node_in_sync{node=\"gw1\"} 1");
	assert_line(t, "tandem_config_node_in_sync{node=\"gw2\"} 0");
	assert_line(t, "tandem_config_sync_received_total 10");
	assert_line(t, "tandem_config_sync_rejected_total 1");
	assert_line(t, "tandem_config_sync_sent_total 12");
	free(t);
}

/* The largest cluster (32 nodes, 32 groups, 4 links each): the text grows
 * past its first buffer and stays well formed, every series once. */
static void test_large(void **state)
{
	json_t *st = json_pack("{s:s,s:s,s:i}", "node", "n0", "version", "1.0.0", "uptime_s", 5);
	json_t *groups = json_array(), *peers = json_array();
	char name[16], addr[32];
	char *t;
	size_t len = 0;
	int n;

	for (int g = 0; g < 32; g++)
		json_array_append_new(groups, json_pack("{s:i,s:s,s:i,s:b,s:b,s:i,s:i,s:s}", "id", g, "state",
							g % 2 ? "primary" : "secondary", "priority", 100 + g,
							"eligible", 1, "manual", 0, "since_s", g, "epoch", g,
							"primary", "n1"));
	for (int p = 1; p < 32; p++) {
		json_t *links = json_array();
		for (int l = 0; l < 4; l++) {
			snprintf(addr, sizeof addr, "198.51.100.%d", p * 4 + l);
			json_array_append_new(links, json_pack("{s:i,s:s,s:s,s:i,s:i}", "index", l, "address", addr,
							       "state", "up", "last_rx_ms_ago", 10 + l, "rx", p * l));
		}
		snprintf(name, sizeof name, "n%d", p);
		json_array_append_new(peers, json_pack("{s:s,s:s,s:s,s:i,s:b,s:o}", "node", name, "state", "alive",
						       "version", "1.0.0", "since_s", 1, "maintenance", 0,
						       "links", links));
	}
	json_object_set_new(st, "groups", groups);
	json_object_set_new(st, "peers", peers);
	t = metrics_render(st, NULL, &len);
	json_decref(st);
	assert_non_null(t);
	assert_true(len > 8192);
	n = check_exposition(t);
	/* build, uptime; per group 4 states + primary + 5 fields; per peer
	 * up, since, maintenance, version; per link up, rx, age */
	assert_int_equal(n, 2 + 32 * 10 + 31 * 4 + 31 * 4 * 3);
	assert_line(t, "tandem_link_up{peer=\"n31\",link=\"3\",address=\"198.51.100.127\"} 1");
	assert_line(t, "tandem_link_last_received_age_seconds{peer=\"n31\",link=\"3\"} 0.013");
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full),
		cmocka_unit_test(test_escaping),
		cmocka_unit_test(test_absent),
		cmocka_unit_test(test_unknown_state),
		cmocka_unit_test(test_config_detail),
		cmocka_unit_test(test_large),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
