/* metrics.c - render the status documents as Prometheus text exposition
 * format 0.0.4 (see metrics.h for the families and conventions).
 *
 * Owns: the mapping from JSON fields to metric families. Each family is
 * written by one loop over the document, so its samples are together and
 * it appears once; its # HELP and # TYPE lines are written with its first
 * sample, so a family whose fields are all absent leaves no trace. The
 * state sets list every state the core's name tables know (so a series
 * goes to 0 rather than vanishing when the state changes), plus the
 * current state when a newer daemon reports one this build does not know.
 * Standard: https://prometheus.io/docs/instrumenting/exposition_formats/ */
#include "metrics.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/ctsync.h"
#include "../core/node.h"
#include "../core/upgrade.h"

#define MET_LABELS_MAX 6
#define MET_VALUE_LEN 48     /* bytes: the longest number text, with room */
#define MET_LABEL_LEN 96     /* bytes: a number or node list made into a label */
#define MET_STATES_MAX 16    /* names in one state set */
#define MET_BUF_START 8192   /* bytes: a two-node cluster's text fits */

struct met_family {
	const char *name, *type, *help;
};

struct met_label {
	const char *key, *value;
};

struct met_buf {
	char *p;
	size_t len, cap;
	bool oom;
	const struct met_family *open; /* the family whose samples come now */
};

#define GAUGE(var, name, help) static const struct met_family var = { name, "gauge", help }
#define COUNTER(var, name, help) static const struct met_family var = { name, "counter", help }

/* ---- text buffer ---- */

static void buf_add(struct met_buf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : MET_BUF_START;
		char *p;

		while (b->len + n + 1 > cap)
			cap *= 2;
		p = realloc(b->p, cap);
		if (!p) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void buf_str(struct met_buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

/* A label value: the format escapes backslash, double quote and line
 * feed, and nothing else (exposition_formats.md, "Text format details"). */
static void buf_label_value(struct met_buf *b, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\')
			buf_add(b, "\\\\", 2);
		else if (*s == '"')
			buf_add(b, "\\\"", 2);
		else if (*s == '\n')
			buf_add(b, "\\n", 2);
		else
			buf_add(b, s, 1);
	}
}

/* One sample line; the family's header first when it is a new family.
 * Labels with a NULL value are left out. */
static void met_sample(struct met_buf *b, const struct met_family *f, const struct met_label *l, int n,
		       const char *value)
{
	bool first = true;

	if (b->open != f) {
		buf_str(b, "# HELP ");
		buf_str(b, f->name);
		buf_str(b, " ");
		buf_str(b, f->help);
		buf_str(b, "\n# TYPE ");
		buf_str(b, f->name);
		buf_str(b, " ");
		buf_str(b, f->type);
		buf_str(b, "\n");
		b->open = f;
	}
	buf_str(b, f->name);
	for (int i = 0; i < n; i++) {
		if (!l[i].value)
			continue;
		buf_str(b, first ? "{" : ",");
		buf_str(b, l[i].key);
		buf_str(b, "=\"");
		buf_label_value(b, l[i].value);
		buf_str(b, "\"");
		first = false;
	}
	if (!first)
		buf_str(b, "}");
	buf_str(b, " ");
	buf_str(b, value);
	buf_str(b, "\n");
}

/* ---- values ---- */

static void fmt_real(double v, char *out, size_t len)
{
	if (isnan(v))
		snprintf(out, len, "NaN");
	else if (isinf(v))
		snprintf(out, len, v > 0 ? "+Inf" : "-Inf");
	else
		snprintf(out, len, "%.15g", v);
}

/* A number of milliseconds as seconds, exactly (1500 -> "1.5"): no
 * rounding through a double. */
static void fmt_ms_as_s(json_int_t ms, char *out, size_t len)
{
	unsigned long long a = ms < 0 ? 0ULL - (unsigned long long)ms : (unsigned long long)ms;
	int n;

	if (a % 1000 == 0) {
		snprintf(out, len, "%s%llu", ms < 0 ? "-" : "", a / 1000);
		return;
	}
	n = snprintf(out, len, "%s%llu.%03llu", ms < 0 ? "-" : "", a / 1000, a % 1000);
	while (n > 0 && (size_t)n < len && out[n - 1] == '0')
		out[--n] = '\0';
}

/* A JSON number or boolean as a sample value; false when absent or of
 * another type (then no sample). */
static bool met_value(const json_t *v, char *out, size_t len)
{
	if (json_is_integer(v))
		snprintf(out, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
	else if (json_is_real(v))
		fmt_real(json_real_value(v), out, len);
	else if (json_is_boolean(v))
		snprintf(out, len, "%d", json_is_true(v) ? 1 : 0);
	else
		return false;
	return true;
}

/* A JSON string or integer as a label value; NULL when neither. */
static const char *met_label_of(const json_t *v, char *buf, size_t len)
{
	if (json_is_string(v))
		return json_string_value(v);
	if (json_is_integer(v)) {
		snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		return buf;
	}
	return NULL;
}

/* The sample of field `key` of `o`, when it is a number or a boolean. */
static void met_field(struct met_buf *b, const struct met_family *f, const struct met_label *l, int n,
		      const json_t *o, const char *key)
{
	char v[MET_VALUE_LEN];

	if (met_value(json_object_get(o, key), v, sizeof v))
		met_sample(b, f, l, n, v);
}

/* The sample of millisecond field `key` of `o`, in seconds. */
static void met_field_ms(struct met_buf *b, const struct met_family *f, const struct met_label *l, int n,
			 const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);
	char s[MET_VALUE_LEN];

	if (!json_is_integer(v))
		return;
	fmt_ms_as_s(json_integer_value(v), s, sizeof s);
	met_sample(b, f, l, n, s);
}

/* A state set: labels l[0..n-1] plus {key=NAME} for every name, 1 on
 * `cur`. Nothing when cur is absent. */
static void met_state_set(struct met_buf *b, const struct met_family *f, const struct met_label *l, int n,
			  const char *key, const char *const *names, int n_names, const char *cur)
{
	struct met_label ll[MET_LABELS_MAX];
	bool known = false;

	if (!cur || n + 1 > MET_LABELS_MAX)
		return;
	if (n > 0)
		if (n > 0)
		memcpy(ll, l, (size_t)n * sizeof *l);
	ll[n].key = key;
	for (int i = 0; i < n_names; i++) {
		bool on = strcmp(names[i], cur) == 0;

		known |= on;
		ll[n].value = names[i];
		met_sample(b, f, ll, n + 1, on ? "1" : "0");
	}
	if (!known) {
		ll[n].value = cur;
		met_sample(b, f, ll, n + 1, "1");
	}
}

/* ---- node ---- */

GAUGE(F_BUILD, "tandem_build_info", "The running version of tandemd on this node (always 1).");
GAUGE(F_UPTIME, "tandem_uptime_seconds", "Time since tandemd started on this node.");
GAUGE(F_MAINT, "tandem_maintenance", "1 when this node is in maintenance (ineligible for every group).");
GAUGE(F_TILT, "tandem_tilt", "1 while this node observes after a stall before acting again.");
GAUGE(F_PROTO, "tandem_protocol_level", "Protocol level the cluster speaks.");
GAUGE(F_ALARMS, "tandem_alarms", "Alarms active on this node.");

static void met_node(struct met_buf *b, const json_t *st)
{
	const char *node = json_string_value(json_object_get(st, "node"));
	const char *version = json_string_value(json_object_get(st, "version"));
	const json_t *alarms = json_object_get(st, "alarms");
	char v[MET_VALUE_LEN];

	if (node && version) {
		struct met_label l[] = { { "version", version }, { "node", node } };
		met_sample(b, &F_BUILD, l, 2, "1");
	}
	met_field(b, &F_UPTIME, NULL, 0, st, "uptime_s");
	met_field(b, &F_MAINT, NULL, 0, st, "maintenance");
	met_field(b, &F_TILT, NULL, 0, st, "tilt");
	met_field(b, &F_PROTO, NULL, 0, json_object_get(st, "protocol"), "level");
	if (json_is_array(alarms)) {
		snprintf(v, sizeof v, "%zu", json_array_size(alarms));
		met_sample(b, &F_ALARMS, NULL, 0, v);
	}
}

/* ---- redundancy groups ---- */

GAUGE(F_G_STATE, "tandem_group_state", "State of each redundancy group on this node (1 on the current state).");
GAUGE(F_G_PRIMARY, "tandem_group_primary", "The node this node believes primary of each group (always 1).");
GAUGE(F_G_PRIO, "tandem_group_priority", "This node's configured priority in each group (0 = never primary).");
GAUGE(F_G_ELIGIBLE, "tandem_group_eligible", "1 when this node could become primary of the group now.");
GAUGE(F_G_MANUAL, "tandem_group_manual", "1 when the group's manual failover flag is set.");
GAUGE(F_G_EPOCH, "tandem_group_epoch", "Highest election epoch known for the group.");
GAUGE(F_G_SINCE, "tandem_group_state_duration_seconds", "Time since the group's last state change on this node.");

static void met_groups(struct met_buf *b, const json_t *st)
{
	const json_t *groups = json_object_get(st, "groups"), *g;
	const char *names[MET_STATES_MAX];
	char id[MET_LABEL_LEN];
	int nn = 0;
	size_t i;

	if (!json_is_array(groups))
		return;
	for (int s = G_INIT; s <= G_INELIGIBLE && nn < MET_STATES_MAX; s++)
		names[nn++] = gstate_name((enum gstate)s);
	json_array_foreach(groups, i, g) {
		struct met_label l[] = { { "group", met_label_of(json_object_get(g, "id"), id, sizeof id) } };
		if (l[0].value)
			met_state_set(b, &F_G_STATE, l, 1, "state", names, nn,
				      json_string_value(json_object_get(g, "state")));
	}
	json_array_foreach(groups, i, g) {
		struct met_label l[] = { { "group", met_label_of(json_object_get(g, "id"), id, sizeof id) },
					 { "node", json_string_value(json_object_get(g, "primary")) } };
		if (l[0].value && l[1].value)
			met_sample(b, &F_G_PRIMARY, l, 2, "1");
	}
	static const struct {
		const struct met_family *f;
		const char *key;
	} plain[] = {
		{ &F_G_PRIO, "priority" }, { &F_G_ELIGIBLE, "eligible" }, { &F_G_MANUAL, "manual" },
		{ &F_G_EPOCH, "epoch" }, { &F_G_SINCE, "since_s" },
	};
	for (size_t p = 0; p < sizeof plain / sizeof plain[0]; p++) {
		json_array_foreach(groups, i, g) {
			struct met_label l[] = { { "group", met_label_of(json_object_get(g, "id"), id, sizeof id) } };
			if (l[0].value)
				met_field(b, plain[p].f, l, 1, g, plain[p].key);
		}
	}
}

/* ---- peers and links ---- */

GAUGE(F_P_UP, "tandem_peer_up", "1 when the peer is alive (heard on at least one link), 0 when lost.");
GAUGE(F_P_SINCE, "tandem_peer_state_duration_seconds", "Time since the peer was last found alive or lost.");
GAUGE(F_P_MAINT, "tandem_peer_maintenance", "1 when the peer is in maintenance.");
GAUGE(F_P_VERSION, "tandem_peer_version_info", "The version the peer announces (always 1).");
GAUGE(F_L_UP, "tandem_link_up", "1 when the peer's heartbeats arrive on the link, 0 when it is down.");
COUNTER(F_L_RX, "tandem_link_received_total", "Authenticated control messages received from the peer on the link.");
COUNTER(F_L_MISSED, "tandem_link_heartbeats_missed_total",
	"Heartbeats from the peer that did not arrive on the link (heartbeat loss), counted from the gaps between those that did.");
GAUGE(F_L_AGE, "tandem_link_last_received_age_seconds",
      "Time since the last control message from the peer on the link.");

static void met_peers(struct met_buf *b, const json_t *st)
{
	const json_t *peers = json_object_get(st, "peers"), *p, *lk;
	size_t i, k;
	char idx[MET_LABEL_LEN];

	if (!json_is_array(peers))
		return;
	json_array_foreach(peers, i, p) {
		const char *state = json_string_value(json_object_get(p, "state"));
		struct met_label l[] = { { "peer", json_string_value(json_object_get(p, "node")) } };
		if (l[0].value && state)
			met_sample(b, &F_P_UP, l, 1, strcmp(state, "alive") == 0 ? "1" : "0");
	}
	json_array_foreach(peers, i, p) {
		struct met_label l[] = { { "peer", json_string_value(json_object_get(p, "node")) } };
		if (l[0].value)
			met_field(b, &F_P_SINCE, l, 1, p, "since_s");
	}
	json_array_foreach(peers, i, p) {
		struct met_label l[] = { { "peer", json_string_value(json_object_get(p, "node")) } };
		if (l[0].value)
			met_field(b, &F_P_MAINT, l, 1, p, "maintenance");
	}
	json_array_foreach(peers, i, p) {
		struct met_label l[] = { { "peer", json_string_value(json_object_get(p, "node")) },
					 { "version", json_string_value(json_object_get(p, "version")) } };
		if (l[0].value && l[1].value)
			met_sample(b, &F_P_VERSION, l, 2, "1");
	}
	/* Links: one loop per family, each over every peer's links. */
	for (int fam = 0; fam < 4; fam++) {
		json_array_foreach(peers, i, p) {
			const char *peer = json_string_value(json_object_get(p, "node"));
			const json_t *links = json_object_get(p, "links");

			if (!peer || !json_is_array(links))
				continue;
			json_array_foreach(links, k, lk) {
				const char *state = json_string_value(json_object_get(lk, "state"));
				struct met_label l[] = {
					{ "peer", peer },
					{ "link", met_label_of(json_object_get(lk, "index"), idx, sizeof idx) },
					{ "address", json_string_value(json_object_get(lk, "address")) },
				};
				if (!l[1].value)
					continue;
				if (fam == 0 && state)
					met_sample(b, &F_L_UP, l, 3, strcmp(state, "up") == 0 ? "1" : "0");
				else if (fam == 1)
					met_field(b, &F_L_RX, l, 2, lk, "rx");
				else if (fam == 2)
					met_field_ms(b, &F_L_AGE, l, 2, lk, "last_rx_ms_ago");
				else if (fam == 3)
					met_field(b, &F_L_MISSED, l, 2, lk, "missed");
			}
		}
	}
}

/* ---- control protocol and netlink counters ---- */

COUNTER(F_C_RX, "tandem_control_messages_received_total", "Control messages accepted by the core.");
COUNTER(F_C_TX, "tandem_control_messages_sent_total", "Control messages sent.");
COUNTER(F_C_DGRAMS, "tandem_control_datagrams_received_total", "Datagrams read from the control sockets.");
COUNTER(F_C_DROPPED, "tandem_control_dropped_total", "Control packets dropped, by reason.");
COUNTER(F_C_SENDERR, "tandem_control_send_errors_total", "Control packets the kernel refused to send.");
COUNTER(F_NL_DROPPED, "tandem_netlink_dropped_total", "Netlink messages skipped, by reason.");
COUNTER(F_NL_OVERRUNS, "tandem_netlink_overruns_total", "Netlink event socket overruns (events lost).");
COUNTER(F_NL_RESYNCS, "tandem_netlink_resyncs_total", "Link table re-dumps done to recover from overruns.");

static void met_reasons(struct met_buf *b, const struct met_family *f, const json_t *o,
			const char *const (*map)[2], size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct met_label l[] = { { "reason", map[i][1] } };
		met_field(b, f, l, 1, o, map[i][0]);
	}
}

static void met_counters(struct met_buf *b, const json_t *st)
{
	/* status.json key -> reason label */
	static const char *const dropped[][2] = {
		{ "malformed", "malformed" },     { "replayed", "replayed" },
		{ "unauthenticated", "unauthenticated" }, { "wrong_cluster", "wrong_cluster" },
		{ "bad_version", "bad_version" }, { "unknown_type", "unknown_type" },
	};
	static const char *const nl_dropped[][2] = {
		{ "malformed", "malformed" }, { "stale", "stale" }, { "links_untracked", "untracked_link" },
	};
	const json_t *c = json_object_get(st, "counters"), *nl;

	if (!json_is_object(c))
		return;
	met_field(b, &F_C_RX, NULL, 0, c, "rx");
	met_field(b, &F_C_TX, NULL, 0, c, "tx");
	met_field(b, &F_C_DGRAMS, NULL, 0, c, "rx_datagrams");
	met_reasons(b, &F_C_DROPPED, c, dropped, sizeof dropped / sizeof dropped[0]);
	met_field(b, &F_C_SENDERR, NULL, 0, c, "send_errors");
	nl = json_object_get(c, "netlink");
	if (!json_is_object(nl))
		return;
	met_reasons(b, &F_NL_DROPPED, nl, nl_dropped, sizeof nl_dropped / sizeof nl_dropped[0]);
	met_field(b, &F_NL_OVERRUNS, NULL, 0, nl, "overruns");
	met_field(b, &F_NL_RESYNCS, NULL, 0, nl, "resyncs");
}

/* ---- configuration sync ---- */

GAUGE(F_CFG_GEN, "tandem_config_generation", "The cluster's configuration generation as known here.");
GAUGE(F_CFG_SYNC, "tandem_config_in_sync", "1 when every reachable node applied the cluster's configuration.");
GAUGE(F_CFG_COMMITTED, "tandem_config_committed_generation", "Configuration generation committed, per node.");
GAUGE(F_CFG_APPLIED, "tandem_config_applied_generation", "Configuration generation applied, per node.");
GAUGE(F_CFG_PENDING, "tandem_config_pending_generation", "Configuration generation pending, per node (0 = none).");
GAUGE(F_CFG_NODE_SYNC, "tandem_config_node_in_sync", "1 when the node's configuration is the cluster's.");
COUNTER(F_CFG_RX, "tandem_config_sync_received_total", "Configuration sync messages accepted.");
COUNTER(F_CFG_RXBAD, "tandem_config_sync_rejected_total", "Configuration sync messages rejected.");
COUNTER(F_CFG_TX, "tandem_config_sync_sent_total", "Configuration sync messages sent.");

static void met_config(struct met_buf *b, const json_t *st)
{
	const json_t *cfg = json_object_get(st, "config"), *nodes, *n, *ctr;
	static const struct {
		const struct met_family *f;
		const char *key;
	} per_node[] = {
		{ &F_CFG_COMMITTED, "committed" }, { &F_CFG_APPLIED, "applied" },
		{ &F_CFG_PENDING, "pending" }, { &F_CFG_NODE_SYNC, "in_sync" },
	};
	size_t i;

	if (!json_is_object(cfg))
		return;
	met_field(b, &F_CFG_GEN, NULL, 0, cfg, "generation");
	met_field(b, &F_CFG_SYNC, NULL, 0, cfg, "in_sync");
	nodes = json_object_get(cfg, "nodes");
	if (json_is_array(nodes)) {
		/* `config status` detail: every node's own report. */
		for (size_t p = 0; p < sizeof per_node / sizeof per_node[0]; p++) {
			json_array_foreach(nodes, i, n) {
				struct met_label l[] = { { "node", json_string_value(json_object_get(n, "node")) } };
				if (l[0].value)
					met_field(b, per_node[p].f, l, 1, n, per_node[p].key);
			}
		}
	} else {
		/* The status summary: this node's generations only ("in_sync"
		 * there is the cluster's, so no per-node sample of it). */
		struct met_label l[] = { { "node", json_string_value(json_object_get(st, "node")) } };
		for (size_t p = 0; l[0].value && p < 3; p++)
			met_field(b, per_node[p].f, l, 1, cfg, per_node[p].key);
	}
	ctr = json_object_get(cfg, "counters");
	met_field(b, &F_CFG_RX, NULL, 0, ctr, "rx");
	met_field(b, &F_CFG_RXBAD, NULL, 0, ctr, "rx_bad");
	met_field(b, &F_CFG_TX, NULL, 0, ctr, "tx");
}

/* ---- session sync ---- */

GAUGE(F_S_ENABLED, "tandem_session_sync_enabled", "1 when session sync is on (sessions.sync).");
GAUGE(F_S_COUNT, "tandem_sessions", "Sessions in this node's table as the session sync knows it.");
GAUGE(F_S_SYNC, "tandem_session_sync_in_sync", "1 when this node's session table is in sync.");
GAUGE(F_S_ROLE, "tandem_session_sync_role", "This node's session sync role (1 on the current role).");
GAUGE(F_S_BULK_ACTIVE, "tandem_session_sync_bulk_active", "1 while a bulk sync to this node runs.");
GAUGE(F_S_BULK_RECS, "tandem_session_sync_bulk_records", "Records received in the current or last bulk sync.");
GAUGE(F_S_BULK_EXPECTED, "tandem_session_sync_bulk_expected_records",
      "Records announced for the current or last bulk sync.");
GAUGE(F_SP_STATE, "tandem_session_sync_peer_state", "Sync state of each peer as seen by the primary (1 on the current state).");
GAUGE(F_SP_SYNC, "tandem_session_sync_peer_in_sync", "1 when the peer's session table is in sync.");
GAUGE(F_SP_STALLED, "tandem_session_sync_peer_stalled", "1 when the sync to the peer makes no progress.");
GAUGE(F_SP_COUNT, "tandem_session_sync_peer_sessions", "Sessions the peer acknowledged.");
GAUGE(F_SP_BACKLOG, "tandem_session_sync_backlog_records", "Session updates not yet acknowledged by the peer.");
GAUGE(F_SP_LAG, "tandem_session_sync_lag_seconds", "Age of the oldest session update the peer has not acknowledged.");
COUNTER(F_SC_TX, "tandem_session_sync_messages_sent_total", "Session sync messages sent.");
COUNTER(F_SC_RESENT, "tandem_session_sync_messages_resent_total", "Session sync messages sent again.");
COUNTER(F_SC_RX, "tandem_session_sync_messages_received_total", "Session sync messages received.");
COUNTER(F_SC_APPLIED, "tandem_session_sync_applied_total", "Session records applied from the primary.");
COUNTER(F_SC_LOCAL, "tandem_session_sync_local_events_total", "Local conntrack events taken into the sync log.");
COUNTER(F_SC_BULKS, "tandem_session_sync_bulks_total", "Bulk syncs done.");
COUNTER(F_SC_RESYNCS, "tandem_session_sync_resyncs_total", "Resyncs started after a gap or a digest mismatch.");
COUNTER(F_SC_DIGEST, "tandem_session_sync_digest_mismatches_total", "Table digests that did not match the primary's.");
COUNTER(F_CT_OVERRUNS, "tandem_conntrack_overruns_total", "Conntrack event socket overruns (events lost).");
COUNTER(F_CT_APPLY_ERR, "tandem_conntrack_apply_errors_total", "Session records the kernel refused.");
COUNTER(F_CT_INJECTED, "tandem_conntrack_injected_total", "Session records written into the kernel.");

static void met_sessions(struct met_buf *b, const json_t *st)
{
	const json_t *s = json_object_get(st, "sessions"), *peers, *p, *bulk;
	const char *sync = json_string_value(json_object_get(s, "sync"));
	const char *names[MET_STATES_MAX];
	int nn = 0;
	size_t i;
	static const struct {
		const struct met_family *f;
		const char *key;
		bool ms;
	} per_peer[] = {
		{ &F_SP_SYNC, "in_sync", false }, { &F_SP_STALLED, "stalled", false },
		{ &F_SP_COUNT, "count", false },  { &F_SP_BACKLOG, "backlog", false },
		{ &F_SP_LAG, "lag_ms", true },
	};
	static const struct {
		const struct met_family *f;
		const char *key;
	} ctr[] = {
		{ &F_SC_TX, "tx_msgs" },        { &F_SC_RESENT, "resent" },
		{ &F_SC_RX, "rx_msgs" },        { &F_SC_APPLIED, "applied" },
		{ &F_SC_LOCAL, "local_events" }, { &F_SC_BULKS, "bulks" },
		{ &F_SC_RESYNCS, "resyncs" },   { &F_SC_DIGEST, "digest_bad" },
		{ &F_CT_OVERRUNS, "overruns" }, { &F_CT_APPLY_ERR, "apply_errors" },
		{ &F_CT_INJECTED, "injected" },
	};

	if (!json_is_object(s) || !sync)
		return;
	met_sample(b, &F_S_ENABLED, NULL, 0, strcmp(sync, "disabled") == 0 ? "0" : "1");
	/* With sync off the document's count and in_sync are placeholders,
	 * not measurements: no sample of them. */
	if (strcmp(sync, "disabled") == 0)
		return;
	met_field(b, &F_S_COUNT, NULL, 0, s, "count");
	met_field(b, &F_S_SYNC, NULL, 0, s, "in_sync");
	for (int r = CTS_IDLE; r <= CTS_SECONDARY && nn < MET_STATES_MAX; r++)
		names[nn++] = ctsync_role_name((enum ctsync_role)r);
	met_state_set(b, &F_S_ROLE, NULL, 0, "role", names, nn, json_string_value(json_object_get(s, "role")));
	bulk = json_object_get(s, "bulk");
	met_field(b, &F_S_BULK_ACTIVE, NULL, 0, bulk, "active");
	met_field(b, &F_S_BULK_RECS, NULL, 0, bulk, "records");
	met_field(b, &F_S_BULK_EXPECTED, NULL, 0, bulk, "total");

	peers = json_object_get(s, "peers");
	if (json_is_array(peers)) {
		nn = 0;
		for (int ps = CTS_P_IDLE; ps <= CTS_P_SYNC && nn < MET_STATES_MAX; ps++)
			names[nn++] = ctsync_pstate_name((enum ctsync_pstate)ps);
		json_array_foreach(peers, i, p) {
			struct met_label l[] = { { "peer", json_string_value(json_object_get(p, "node")) } };
			if (l[0].value)
				met_state_set(b, &F_SP_STATE, l, 1, "state", names, nn,
					      json_string_value(json_object_get(p, "state")));
		}
		for (size_t k = 0; k < sizeof per_peer / sizeof per_peer[0]; k++) {
			json_array_foreach(peers, i, p) {
				struct met_label l[] = { { "peer", json_string_value(json_object_get(p, "node")) } };
				if (!l[0].value)
					continue;
				if (per_peer[k].ms)
					met_field_ms(b, per_peer[k].f, l, 1, p, per_peer[k].key);
				else
					met_field(b, per_peer[k].f, l, 1, p, per_peer[k].key);
			}
		}
	}
	for (size_t k = 0; k < sizeof ctr / sizeof ctr[0]; k++)
		met_field(b, ctr[k].f, NULL, 0, json_object_get(s, "counters"), ctr[k].key);
}

/* ---- in-service upgrade ---- */

GAUGE(F_U_STATE, "tandem_upgrade_state", "State of the in-service upgrade (1 on the current state).");
GAUGE(F_U_PHASE, "tandem_upgrade_phase_info", "What the upgrade is doing now (always 1).");
GAUGE(F_U_FROZEN, "tandem_upgrade_frozen", "1 while configuration changes are frozen by an upgrade.");
GAUGE(F_U_FINALIZED, "tandem_upgrade_finalized", "1 when the last upgrade was finalized (no rollback left).");
GAUGE(F_U_ID, "tandem_upgrade_id", "Identifier of the last upgrade.");
GAUGE(F_U_INFO, "tandem_upgrade_info", "Versions of the last upgrade (always 1).");
GAUGE(F_U_ELAPSED, "tandem_upgrade_elapsed_seconds", "Duration of the last upgrade at its last recorded step.");
GAUGE(F_U_NODE, "tandem_upgrade_node_state", "Upgrade progress of each node (1 on the current state).");
GAUGE(F_U_STEP, "tandem_upgrade_step_status", "Status of each upgrade step (1 on the current status).");
GAUGE(F_U_STEP_DUR, "tandem_upgrade_step_duration_seconds", "Duration of each ended upgrade step.");
GAUGE(F_U_STEP_START, "tandem_upgrade_step_start_timestamp_seconds",
      "Wall-clock time each started upgrade step began (Unix time).");
GAUGE(F_U_ERROR, "tandem_upgrade_error_info", "The upgrade's error and the step that failed (always 1).");

/* A step's labels: index, kind, node (its node, else its nodes joined by
 * ","), group. The texts live in the caller's buffers. */
static bool met_step_labels(const json_t *s, struct met_label l[4], char *idx, char *nodes, char *grp)
{
	const json_t *arr = json_object_get(s, "nodes"), *n;
	const char *node = json_string_value(json_object_get(s, "node"));
	size_t i, o = 0;

	l[0] = (struct met_label){ "index", met_label_of(json_object_get(s, "index"), idx, MET_LABEL_LEN) };
	l[1] = (struct met_label){ "kind", json_string_value(json_object_get(s, "kind")) };
	nodes[0] = '\0';
	if (!node && json_is_array(arr)) {
		json_array_foreach(arr, i, n) {
			const char *name = json_string_value(n);
			int w;

			if (!name)
				continue;
			w = snprintf(nodes + o, MET_LABEL_LEN * 4 - o, "%s%s", o ? "," : "", name);
			if (w < 0 || (size_t)w >= MET_LABEL_LEN * 4 - o)
				break;
			o += (size_t)w;
		}
	}
	l[2] = (struct met_label){ "node", node ? node : nodes };
	l[3] = (struct met_label){ "group", met_label_of(json_object_get(s, "group"), grp, MET_LABEL_LEN) };
	if (!l[3].value)
		l[3].value = "";
	return l[0].value && l[1].value;
}

static void met_upgrade(struct met_buf *b, const json_t *st, const json_t *up)
{
	const json_t *u = up ? up : json_object_get(st, "upgrade"), *arr, *x, *err;
	const char *names[MET_STATES_MAX];
	char idx[MET_LABEL_LEN], grp[MET_LABEL_LEN], nodes[MET_LABEL_LEN * 4], v[MET_VALUE_LEN];
	struct met_label l[4];
	int nn = 0;
	size_t i;

	if (!json_is_object(u))
		return;
	for (int s = UPG_IDLE; s <= UPG_FAILED && nn < MET_STATES_MAX; s++)
		names[nn++] = upg_state_name((enum upg_state)s);
	met_state_set(b, &F_U_STATE, NULL, 0, "state", names, nn, json_string_value(json_object_get(u, "state")));
	l[0] = (struct met_label){ "phase", json_string_value(json_object_get(u, "phase")) };
	if (l[0].value)
		met_sample(b, &F_U_PHASE, l, 1, "1");
	met_field(b, &F_U_FROZEN, NULL, 0, u, "frozen");
	met_field(b, &F_U_FINALIZED, NULL, 0, u, "finalized");
	met_field(b, &F_U_ID, NULL, 0, u, "id");
	l[0] = (struct met_label){ "from", json_string_value(json_object_get(u, "from")) };
	l[1] = (struct met_label){ "to", json_string_value(json_object_get(u, "to")) };
	if (l[0].value && l[1].value)
		met_sample(b, &F_U_INFO, l, 2, "1");
	met_field(b, &F_U_ELAPSED, NULL, 0, u, "elapsed_s");

	arr = json_object_get(u, "nodes");
	if (json_is_array(arr)) {
		nn = 0;
		for (int s = UPG_N_PENDING; s <= UPG_N_FAILED && nn < MET_STATES_MAX; s++)
			names[nn++] = upg_node_state_name((enum upg_node_state)s);
		json_array_foreach(arr, i, x) {
			l[0] = (struct met_label){ "node", json_string_value(json_object_get(x, "node")) };
			if (l[0].value)
				met_state_set(b, &F_U_NODE, l, 1, "state", names, nn,
					      json_string_value(json_object_get(x, "state")));
		}
	}
	arr = json_object_get(u, "steps");
	if (json_is_array(arr)) {
		nn = 0;
		for (int s = UPG_ST_PENDING; s <= UPG_ST_SKIPPED && nn < MET_STATES_MAX; s++)
			names[nn++] = upg_step_status_name((enum upg_step_status)s);
		json_array_foreach(arr, i, x) {
			if (met_step_labels(x, l, idx, nodes, grp))
				met_state_set(b, &F_U_STEP, l, 4, "status", names, nn,
					      json_string_value(json_object_get(x, "status")));
		}
		json_array_foreach(arr, i, x) {
			const json_t *t0 = json_object_get(x, "start_ms"), *t1 = json_object_get(x, "end_ms");

			if (!json_is_integer(t0) || !json_is_integer(t1) || !met_step_labels(x, l, idx, nodes, grp))
				continue;
			fmt_ms_as_s(json_integer_value(t1) - json_integer_value(t0), v, sizeof v);
			met_sample(b, &F_U_STEP_DUR, l, 4, v);
		}
		json_array_foreach(arr, i, x) {
			const json_t *w = json_object_get(x, "wall_start_ms");

			/* 0 is the journal's "not yet" (upgrade.h). */
			if (!json_is_integer(w) || json_integer_value(w) <= 0 ||
			    !met_step_labels(x, l, idx, nodes, grp))
				continue;
			fmt_ms_as_s(json_integer_value(w), v, sizeof v);
			met_sample(b, &F_U_STEP_START, l, 4, v);
		}
	}
	err = json_object_get(u, "error");
	l[0] = (struct met_label){ "code", json_string_value(json_object_get(err, "code")) };
	l[1] = (struct met_label){ "step", met_label_of(json_object_get(err, "step"), idx, sizeof idx) };
	/* -1: an error of no step (a refused start); "" like a step's group. */
	if (!l[1].value || l[1].value[0] == '-')
		l[1].value = "";
	if (l[0].value && l[0].value[0])
		met_sample(b, &F_U_ERROR, l, 2, "1");
}

char *metrics_render(const json_t *status, const json_t *upgrade, size_t *len)
{
	struct met_buf b = { 0 };

	buf_add(&b, "", 0); /* an empty document is "" rather than NULL */
	if (json_is_object(status)) {
		met_node(&b, status);
		met_groups(&b, status);
		met_peers(&b, status);
		met_counters(&b, status);
		met_config(&b, status);
		met_sessions(&b, status);
		met_upgrade(&b, status, json_is_object(upgrade) ? upgrade : NULL);
	}
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	if (len)
		*len = b.len;
	return b.p;
}
