/* show.c - text rendering for tandemctl (see show.h). */
#include "show.h"

#include <stdbool.h>
#include <string.h>

static const char *str(json_t *o, const char *key, const char *dflt)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : dflt;
}

static long long num(json_t *o, const char *key, long long dflt)
{
	json_t *v = json_object_get(o, key);
	return json_is_integer(v) ? (long long)json_integer_value(v) : dflt;
}

static const char *yesno(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	return !json_is_boolean(v) ? "-" : json_is_true(v) ? "yes" : "no";
}

const char *show_duration(long long s, char *buf, size_t len)
{
	if (s < 0)
		snprintf(buf, len, "-");
	else if (s < 60)
		snprintf(buf, len, "%llds", s);
	else if (s < 3600)
		snprintf(buf, len, "%lldm%02llds", s / 60, s % 60);
	else if (s < 86400)
		snprintf(buf, len, "%lldh%02lldm", s / 3600, s % 3600 / 60);
	else
		snprintf(buf, len, "%lldd%02lldh", s / 86400, s % 86400 / 3600);
	return buf;
}

static int name_width(json_t *st)
{
	size_t w = 7; /* "Primary" */
	json_t *v;
	size_t i;

	json_array_foreach(json_object_get(st, "peers"), i, v)
		if (strlen(str(v, "node", "")) > w)
			w = strlen(str(v, "node", ""));
	if (strlen(str(st, "node", "")) > w)
		w = strlen(str(st, "node", ""));
	return (int)w;
}

static void show_groups(FILE *f, json_t *st, int nw)
{
	json_t *g;
	size_t i;

	fprintf(f, "Redundancy groups:\n");
	fprintf(f, "  %-5s  %-10s  %-8s  %-7s  %-*s  %-7s  %s\n", "Group", "State", "Priority",
		"Manual", nw, "Primary", "Since", "Notes");
	json_array_foreach(json_object_get(st, "groups"), i, g) {
		char since[32], manual[96], notes[256] = "";
		json_t *mt = json_object_get(g, "manual_target");
		size_t n = 0;

		snprintf(manual, sizeof manual, "%s", yesno(g, "manual"));
		if (json_is_true(json_object_get(g, "manual")) && json_is_string(mt))
			n += (size_t)snprintf(notes + n, sizeof notes - n, "manual to %s; ",
					      json_string_value(mt));
		if (json_is_false(json_object_get(g, "eligible")))
			n += (size_t)snprintf(notes + n, sizeof notes - n, "ineligible: %s; ",
					      str(g, "why_ineligible", "?"));
		if (json_is_true(json_object_get(g, "preempt_suspended")) && n < sizeof notes)
			n += (size_t)snprintf(notes + n, sizeof notes - n, "preempt suspended; ");
		if (n >= 2 && n < sizeof notes)
			notes[n - 2] = '\0';
		char line[512];
		int len = snprintf(line, sizeof line, "  %-5lld  %-10s  %-8lld  %-7s  %-*s  %-7s  %s",
				   num(g, "id", -1), str(g, "state", "-"), num(g, "priority", -1),
				   manual, nw, str(g, "primary", "-"),
				   show_duration(num(g, "since_s", -1), since, sizeof since), notes);
		if (len > (int)sizeof line - 1)
			len = (int)sizeof line - 1;
		while (len > 0 && line[len - 1] == ' ')
			line[--len] = '\0';
		fprintf(f, "%s\n", line);
	}
}

static void show_peers(FILE *f, json_t *st, int nw)
{
	json_t *p, *l;
	size_t i, j;

	fprintf(f, "Peers:\n");
	if (json_array_size(json_object_get(st, "peers")) == 0) {
		fprintf(f, "  none\n");
		return;
	}
	fprintf(f, "  %-*s  %-5s  %-12s  %-7s  %s\n", nw, "Node", "State", "Version", "Since", "Links");
	json_array_foreach(json_object_get(st, "peers"), i, p) {
		char since[32], links[512] = "", state[16];
		size_t n = 0;

		json_array_foreach(json_object_get(p, "links"), j, l) {
			if (n < sizeof links)
				n += (size_t)snprintf(links + n, sizeof links - n, "%s%s %s", j ? ", " : "",
						      str(l, "address", "?"), str(l, "state", "?"));
		}
		snprintf(state, sizeof state, "%s", str(p, "state", "-"));
		fprintf(f, "  %-*s  %-5s  %-12s  %-7s  %s%s\n", nw, str(p, "node", "-"), state,
			str(p, "version", "-"), show_duration(num(p, "since_s", -1), since, sizeof since),
			links, json_is_true(json_object_get(p, "maintenance")) ? "  (maintenance)" : "");
	}
}

void show_status(FILE *f, json_t *st)
{
	json_t *proto = json_object_get(st, "protocol"), *ctr = json_object_get(st, "counters");
	json_t *a, *cfg = json_object_get(st, "config"), *ses = json_object_get(st, "sessions");
	json_t *upg = json_object_get(st, "upgrade");
	char up[32];
	int nw = name_width(st);
	size_t i;

	fprintf(f, "Cluster: %s (id %lld)   Node: %s   Version: %s\n", str(st, "cluster", "-"),
		num(st, "cluster_id", -1), str(st, "node", "-"), str(st, "version", "-"));
	fprintf(f, "Protocol: level %lld (speaks %lld..%lld)   Uptime: %s   Maintenance: %s%s\n\n",
		num(proto, "level", -1), num(proto, "min", -1), num(proto, "max", -1),
		show_duration(num(st, "uptime_s", -1), up, sizeof up),
		json_is_true(json_object_get(st, "maintenance")) ? "on" : "off",
		json_is_true(json_object_get(st, "tilt")) ? "   (observing after a stall)" : "");
	show_groups(f, st, nw);
	fprintf(f, "\n");
	show_peers(f, st, nw);
	fprintf(f, "\nAlarms:");
	if (json_array_size(json_object_get(st, "alarms")) == 0)
		fprintf(f, " none\n");
	else
		fprintf(f, "\n");
	json_array_foreach(json_object_get(st, "alarms"), i, a)
		fprintf(f, "  %s\n", json_string_value(a) ? json_string_value(a) : "?");
	fprintf(f, "Counters: rx %lld  tx %lld  malformed %lld  replayed %lld  unauthenticated %lld  "
		   "wrong_cluster %lld  unknown_type %lld  send_errors %lld\n",
		num(ctr, "rx", 0), num(ctr, "tx", 0), num(ctr, "malformed", 0), num(ctr, "replayed", 0),
		num(ctr, "unauthenticated", 0), num(ctr, "wrong_cluster", 0), num(ctr, "unknown_type", 0),
		num(ctr, "send_errors", 0));
	/* A section whose sync does not run must not read "in sync". */
	if (strcmp(str(cfg, "sync", ""), "not-implemented") == 0 || strcmp(str(cfg, "sync", ""), "off") == 0) {
		fprintf(f, "Configuration: local file only (cluster configuration sync is not running)\n");
	} else {
		fprintf(f, "Configuration: generation %lld, in sync %s", num(cfg, "generation", -1),
			yesno(cfg, "in_sync"));
		if (json_is_integer(json_object_get(cfg, "applied")) &&
		    num(cfg, "applied", -1) != num(cfg, "generation", -1))
			fprintf(f, " (this node applied %lld)", num(cfg, "applied", -1));
		if (json_is_string(json_object_get(cfg, "error")))
			fprintf(f, ", error: %s", str(cfg, "error", ""));
		fprintf(f, "\n");
	}
	if (strcmp(str(ses, "sync", ""), "on") == 0)
		fprintf(f, "Sessions: %lld, in sync %s (%s, source %s)\n", num(ses, "count", -1),
			yesno(ses, "in_sync"), str(ses, "role", "-"), str(ses, "source", "none"));
	else
		fprintf(f, "Sessions: not synchronised (sessions.sync is off)\n");
	fprintf(f, "Upgrade: %s\n", str(upg, "state", "-"));
}

void show_event(FILE *f, json_t *ev)
{
	const char *kv = str(ev, "kv", "");

	fprintf(f, "%s %-5s %s%s%s\n", str(ev, "ts", "-"), str(ev, "level", "-"), str(ev, "event", "-"),
		*kv ? " " : "", kv);
}

/* `tandemctl sessions status`: the sessions section of the status. */
void show_sessions(FILE *f, json_t *ses)
{
	json_t *bulk = json_object_get(ses, "bulk"), *ctr = json_object_get(ses, "counters");
	json_t *p;
	size_t i;

	if (strcmp(str(ses, "sync", ""), "on") != 0) {
		fprintf(f, "Session sync: off (sessions.sync is false in the configuration)\n");
		return;
	}
	fprintf(f, "Session sync: on (group %lld)   Role: %s   Source: %s\n", num(ses, "group", -1),
		str(ses, "role", "-"), str(ses, "source", "none"));
	fprintf(f, "Sessions: %lld   In sync: %s   Last digest: %s\n", num(ses, "count", 0),
		yesno(ses, "in_sync"), str(ses, "last_digest", "-"));
	if (json_is_true(json_object_get(bulk, "active")))
		fprintf(f, "Bulk sync: running, %lld records so far\n", num(bulk, "records", 0));
	else
		fprintf(f, "Bulk sync: %s (%lld records%s)\n",
			json_is_true(json_object_get(bulk, "done")) ? "done" : "idle",
			num(bulk, "records", 0),
			num(bulk, "total", 0) ? "" : ", no total yet");
	if (json_array_size(json_object_get(ses, "peers"))) {
		fprintf(f, "\nPeers (as this primary sees them):\n");
		fprintf(f, "  %-10s %-6s %-7s %-8s %10s %10s %8s\n", "Node", "Alive", "State", "In sync",
			"Sessions", "Backlog", "Lag");
		json_array_foreach(json_object_get(ses, "peers"), i, p) {
			char lag[32];
			snprintf(lag, sizeof lag, "%lld ms", num(p, "lag_ms", 0));
			fprintf(f, "  %-10s %-6s %-7s %-8s %10lld %10lld %8s%s\n", str(p, "node", "?"),
				yesno(p, "alive"), str(p, "state", "-"), yesno(p, "in_sync"),
				num(p, "count", 0), num(p, "backlog", 0), lag,
				json_is_true(json_object_get(p, "stalled")) ? "  STALLED" : "");
		}
	}
	fprintf(f, "\nCounters: sent %lld msgs (resent %lld), received %lld, applied %lld, local events %lld,\n"
		   "          bulks %lld, resyncs %lld, digest mismatches %lld, event overruns %lld,\n"
		   "          injected %lld, apply errors %lld\n",
		num(ctr, "tx_msgs", 0), num(ctr, "resent", 0), num(ctr, "rx_msgs", 0),
		num(ctr, "applied", 0), num(ctr, "local_events", 0), num(ctr, "bulks", 0),
		num(ctr, "resyncs", 0), num(ctr, "digest_bad", 0), num(ctr, "overruns", 0),
		num(ctr, "injected", 0), num(ctr, "apply_errors", 0));
}

/* Why an alive node is not in sync, for the verdict line. */
static void config_lag(char *buf, size_t len, json_t *n, long long gen)
{
	size_t k;

	if (!json_is_true(json_object_get(n, "known"))) {
		snprintf(buf, len, "no report yet");
		return;
	}
	k = (size_t)snprintf(buf, len, "applied %lld", num(n, "applied", -1));
	if (k < len && num(n, "committed", -1) != gen)
		k += (size_t)snprintf(buf + k, len - k, ", committed %lld", num(n, "committed", -1));
	if (k < len && json_is_string(json_object_get(n, "error")))
		snprintf(buf + k, len - k, ", error: %s", str(n, "error", ""));
}

/* `tandemctl config status`. */
void show_config_status(FILE *f, json_t *st)
{
	json_t *nodes = json_object_get(st, "nodes"), *n;
	long long gen = num(st, "generation", -1);
	bool any_error = false;
	int nw = 4;
	size_t i, lagging = 0;

	json_array_foreach(nodes, i, n) {
		if ((int)strlen(str(n, "node", "-")) > nw)
			nw = (int)strlen(str(n, "node", "-"));
		any_error |= json_is_string(json_object_get(n, "error"));
	}
	fprintf(f, "configuration generation %lld, ", gen);
	if (json_is_true(json_object_get(st, "in_sync"))) {
		fprintf(f, "in sync on every node");
	} else {
		fprintf(f, "NOT in sync");
		/* Lost nodes do not count: they catch up when they return. */
		json_array_foreach(nodes, i, n) {
			char why[400];
			if (!json_is_true(json_object_get(n, "alive")) ||
			    (json_is_true(json_object_get(n, "known")) &&
			     json_is_true(json_object_get(n, "in_sync"))))
				continue;
			config_lag(why, sizeof why, n, gen);
			fprintf(f, "%s %s (%s)", lagging++ ? "," : ":", str(n, "node", "?"), why);
		}
	}
	fprintf(f, "\n");
	if (json_is_string(json_object_get(st, "coordinator")))
		fprintf(f, "coordinator: %s", str(st, "coordinator", "-"));
	else
		fprintf(f, "coordinator: none (no group 0 primary: changes wait)");
	if (json_is_false(json_object_get(st, "settled")) && json_is_string(json_object_get(st, "coordinator")))
		fprintf(f, ", not settled yet (waiting for a report from every live node)");
	if (json_is_true(json_object_get(st, "busy")))
		fprintf(f, ", change in progress: generation %lld", num(st, "busy_generation", -1));
	fprintf(f, "\n\n");

	fprintf(f, "%-*s  %-5s  %9s  %7s  %7s  %-12s  %s\n", nw, "NODE", "STATE", "COMMITTED",
		"APPLIED", "PENDING", "DIGEST", any_error ? "SYNC     ERROR" : "SYNC");
	json_array_foreach(nodes, i, n) {
		bool known = json_is_true(json_object_get(n, "known"));
		const char *state = json_is_true(json_object_get(n, "self")) ? "self" :
				    json_is_true(json_object_get(n, "alive")) ? "alive" : "lost";
		const char *sync = !known ? "unknown" : json_is_true(json_object_get(n, "in_sync")) ? "yes" : "no";
		char com[24] = "-", app[24] = "-", pen[24] = "-", dg[13] = "-", line[1024];
		int len;

		if (known) {
			snprintf(com, sizeof com, "%lld", num(n, "committed", -1));
			snprintf(app, sizeof app, "%lld", num(n, "applied", -1));
			if (num(n, "pending", 0) > 0)
				snprintf(pen, sizeof pen, "%lld", num(n, "pending", 0));
			if (*str(n, "digest", ""))
				snprintf(dg, sizeof dg, "%.12s", str(n, "digest", ""));
		}
		len = snprintf(line, sizeof line, "%-*s  %-5s  %9s  %7s  %7s  %-12s  %-7s%s%s", nw,
			       str(n, "node", "-"), state, com, app, pen, dg, sync, any_error ? "  " : "",
			       any_error ? str(n, "error", "-") : "");
		if (len > (int)sizeof line - 1)
			len = (int)sizeof line - 1;
		while (len > 0 && line[len - 1] == ' ')
			line[--len] = '\0';
		fprintf(f, "%s\n", line);
	}
}
