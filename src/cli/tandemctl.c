/* tandemctl.c - the operator's command line (SPEC section 4).
 *
 * Owns: argument parsing and the commands' conversations with tandemd
 * over its control socket (conn.h; one JSON object per line, see
 * src/api/ctl.h), with the exit codes the SPEC fixes: 0 done, 1 failed
 * (the daemon included: not reachable), 2 usage error, 3 refused by
 * cluster state. `failover` does not stop at "request accepted": it
 * watches the local node's status until the group's primary really is the
 * target, because that is what the operator asked for. `config ...` lives
 * in cfgcmd.c, `image list|install|activate` in imagecmd.c, `upgrade ...`
 * in upgcmd.c. */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <jansson.h>

#include "../api/ctl.h"
#include "cfgcmd.h"
#include "conn.h"
#include "image.h"
#include "imagecmd.h"
#include "show.h"
#include "upgcmd.h"

#define FAILOVER_WAIT_MS 10000
#define FAILOVER_POLL_MS 20

static bool opt_json;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: tandemctl [--socket PATH] [--json] COMMAND\n"
		"commands:\n"
		"  status\n"
		"  failover --group G [--to NODE]\n"
		"  failover --group G --reset\n"
		"  activate | deactivate\n"
		"  maintenance on|off [--node NAME]\n"
		"  events [--follow] [--limit N]\n"
		"  sessions status\n"
		"  config status                 generation per node, in sync or not\n"
		"  config show [--generation N]  the configuration YAML and firewall ruleset\n"
		"  config diff FILE              line diff of the cluster's configuration to FILE\n"
		"  config apply FILE [--force]   validate FILE (and its ruleset), commit it cluster-wide\n"
		"  config backup FILE [--force]  save the current generation to FILE (--force: replace)\n"
		"  config restore FILE [--force] commit the configuration saved in backup FILE\n"
		"      --force on apply/restore: commit even if this node has heard no peer since it started\n"
		"%s%s%s"
		"--socket defaults to $TANDEM_SOCKET or %s\n"
		"exit codes: 0 done, 1 failed, 2 usage error, 3 refused by cluster state\n",
		image_cli_usage(), imagecmd_usage(), upgcmd_usage(), CTL_DEFAULT_PATH);
}

static int usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "tandemctl: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n");
	usage(stderr);
	return EXIT_USAGE;
}

static int parse_int(const char *s, long lo, long hi, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (!*s || *end || errno || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

static int cmd_status(struct conn *c, bool sessions_only)
{
	json_t *res = conn_request(c, json_pack("{s:s}", "cmd", "status"));

	if (!res)
		return EXIT_FAILED;
	if (!conn_answer_ok(res)) {
		int r = conn_answer_error(res, opt_json);
		json_decref(res);
		return r;
	}
	json_object_del(res, "ok");
	if (sessions_only) {
		json_t *ses = json_object_get(res, "sessions");
		if (opt_json)
			conn_print_json(ses);
		else
			show_sessions(stdout, ses);
	} else if (opt_json) {
		conn_print_json(res);
	} else {
		show_status(stdout, res);
	}
	json_decref(res);
	return EXIT_DONE;
}

/* The group's entry in a status answer, or NULL. */
static json_t *status_group(json_t *st, long g)
{
	json_t *v;
	size_t i;

	json_array_foreach(json_object_get(st, "groups"), i, v)
		if (json_integer_value(json_object_get(v, "id")) == g)
			return v;
	return NULL;
}

/* Primary of group g in this node's status: a new string or NULL. */
static char *group_primary(struct conn *c, long g, json_t **group_out)
{
	json_t *res = conn_request(c, json_pack("{s:s}", "cmd", "status"));
	json_t *grp;
	const char *p;
	char *out = NULL;

	if (!res)
		return NULL;
	grp = status_group(res, g);
	p = grp ? json_string_value(json_object_get(grp, "primary")) : NULL;
	if (p)
		out = strdup(p);
	if (group_out)
		*group_out = grp ? json_incref(grp) : NULL;
	json_decref(res);
	return out;
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int cmd_failover(struct conn *c, long group, const char *to, bool reset)
{
	json_t *req = json_pack("{s:s,s:i}", "cmd", "failover", "group", (json_int_t)group);
	json_t *res, *grp = NULL;
	char *before, *now = NULL, *target = NULL;
	long long deadline;

	if (reset)
		json_object_set_new(req, "reset", json_true());
	else if (to)
		json_object_set_new(req, "to", json_string(to));
	before = reset ? NULL : group_primary(c, group, NULL);
	res = conn_request(c, req);
	if (!res) {
		free(before);
		return EXIT_FAILED;
	}
	if (!conn_answer_ok(res)) {
		int r = conn_answer_error(res, opt_json);
		json_decref(res);
		free(before);
		return r;
	}
	if (reset) {
		if (opt_json)
			conn_print_json(res);
		else
			printf("group %ld: manual failover flag cleared\n", group);
		json_decref(res);
		return EXIT_DONE;
	}
	if (json_is_string(json_object_get(res, "to")))
		target = strdup(json_string_value(json_object_get(res, "to")));
	json_decref(res);

	/* Accepted: now watch for the primary to actually move. Without a
	 * named target, any primary other than the one before will do. */
	deadline = now_ms() + FAILOVER_WAIT_MS;
	for (;;) {
		free(now);
		json_decref(grp);
		grp = NULL;
		now = group_primary(c, group, &grp);
		if (now && (target ? strcmp(now, target) == 0 : !before || strcmp(now, before) != 0))
			break;
		if (now_ms() >= deadline)
			break;
		usleep(FAILOVER_POLL_MS * 1000);
	}
	int rc;
	if (now && (target ? strcmp(now, target) == 0 : !before || strcmp(now, before) != 0)) {
		if (opt_json) {
			json_t *o = json_pack("{s:b,s:i,s:s}", "ok", 1, "group", (json_int_t)group,
					      "primary", now);
			conn_print_json(o);
			json_decref(o);
		} else {
			printf("group %ld: primary is now %s\n", group, now);
		}
		rc = EXIT_DONE;
	} else {
		char *seen = grp ? json_dumps(grp, JSON_COMPACT) : NULL;
		fprintf(stderr, "tandemctl: group %ld: failover accepted but after %d s the primary is %s "
				"(wanted %s); last status: %s\n", group, FAILOVER_WAIT_MS / 1000,
			now ? now : "unknown", target ? target : "another node", seen ? seen : "none");
		if (opt_json) {
			json_t *o = json_pack("{s:b,s:s,s:s,s:O?}", "ok", 0, "code", "failed", "error",
					      "failover accepted but the primary did not move in time",
					      "group_status", grp);
			conn_print_json(o);
			json_decref(o);
		}
		free(seen);
		rc = EXIT_FAILED;
	}
	json_decref(grp);
	free(now);
	free(before);
	free(target);
	return rc;
}

static int cmd_simple(struct conn *c, json_t *req, const char *done)
{
	json_t *res = conn_request(c, req);
	int r = EXIT_DONE;

	if (!res)
		return EXIT_FAILED;
	if (!conn_answer_ok(res))
		r = conn_answer_error(res, opt_json);
	else if (opt_json)
		conn_print_json(res);
	else
		printf("%s\n", done);
	json_decref(res);
	return r;
}

static int cmd_events(struct conn *c, bool follow, long limit)
{
	json_t *req = json_pack("{s:s,s:b}", "cmd", "events", "follow", follow);
	json_t *res, *ev;
	size_t i;

	if (limit >= 0)
		json_object_set_new(req, "limit", json_integer(limit));
	res = conn_request(c, req);
	if (!res)
		return EXIT_FAILED;
	if (!conn_answer_ok(res)) {
		int r = conn_answer_error(res, opt_json);
		json_decref(res);
		return r;
	}
	json_array_foreach(json_object_get(res, "events"), i, ev) {
		if (opt_json)
			conn_print_json(ev);
		else
			show_event(stdout, ev);
	}
	json_decref(res);
	fflush(stdout);
	if (!follow)
		return EXIT_DONE;
	/* Stream until interrupted (SIGINT ends the process) or until the
	 * daemon goes away, which is a failure worth an exit code. */
	for (;;) {
		ev = conn_read(c);
		if (!ev)
			return EXIT_FAILED;
		if (opt_json)
			conn_print_json(ev);
		else
			show_event(stdout, ev);
		fflush(stdout);
		json_decref(ev);
	}
}

int main(int argc, char **argv)
{
	const char *sock = ctl_default_path();
	char *args[64];
	int n = 0, rc;
	struct conn c = { .fd = -1 };

	/* Global options may come anywhere; the rest is the command. */
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			opt_json = true;
		} else if (strcmp(argv[i], "--socket") == 0) {
			if (++i >= argc)
				return usage_error("--socket needs a PATH%s", "");
			sock = argv[i];
		} else if (strncmp(argv[i], "--socket=", 9) == 0) {
			sock = argv[i] + 9;
		} else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return EXIT_DONE;
		} else if (strcmp(argv[i], "--version") == 0 && n == 0) {
			/* (after a command word it is the command's: image build --version V) */
			printf("tandemctl %s\n", TND_VERSION);
			return EXIT_DONE;
		} else if (n < (int)(sizeof args / sizeof args[0])) {
			args[n++] = argv[i];
		} else {
			return usage_error("too many arguments%s", "");
		}
	}
	if (n == 0)
		return usage_error("no command given%s", "");

	const char *cmd = args[0];
	bool timeout = true;
	long group = -1, limit = -1;
	const char *to = NULL, *node = NULL;
	bool reset = false, follow = false, on = false;

	if (strcmp(cmd, "config") == 0) {
		struct cfgcmd_args ca = { .socket = sock, .json = opt_json };
		if (cfgcmd_parse(n - 1, args + 1, &ca) != 0) {
			usage(stderr);
			return EXIT_USAGE;
		}
		return cfgcmd_run(&ca);
	}
	if (strcmp(cmd, "image") == 0 && image_cli_handles(n - 1, args + 1))
		return image_cli_run(n - 1, args + 1, opt_json);
	if (strcmp(cmd, "image") == 0 && imagecmd_handles(n - 1, args + 1))
		return imagecmd_run(sock, opt_json, n - 1, args + 1);
	if (strcmp(cmd, "image") == 0) {
		fprintf(stderr, "tandemctl: image needs one of: keygen, build, verify, list, install, "
			"activate (see tandemctl --help)\n");
		return EXIT_USAGE;
	}
	if (strcmp(cmd, "upgrade") == 0)
		return upgcmd_run(sock, opt_json, n - 1, args + 1);
	if (strcmp(cmd, "status") == 0 || strcmp(cmd, "activate") == 0 ||
	    strcmp(cmd, "deactivate") == 0) {
		if (n > 1)
			return usage_error("unexpected argument '%s'", args[1]);
	} else if (strcmp(cmd, "sessions") == 0) {
		if (n != 2 || strcmp(args[1], "status") != 0)
			return usage_error("sessions takes one subcommand: status%s", "");
	} else if (strcmp(cmd, "failover") == 0) {
		for (int i = 1; i < n; i++) {
			if (strcmp(args[i], "--group") == 0 && i + 1 < n) {
				if (parse_int(args[++i], 0, 255, &group) != 0)
					return usage_error("--group needs a number 0..255, not '%s'", args[i]);
			} else if (strcmp(args[i], "--to") == 0 && i + 1 < n) {
				to = args[++i];
			} else if (strcmp(args[i], "--reset") == 0) {
				reset = true;
			} else {
				return usage_error("failover: unexpected argument '%s'", args[i]);
			}
		}
		if (group < 0)
			return usage_error("failover needs --group G%s", "");
		if (reset && to)
			return usage_error("failover: --reset and --to do not go together%s", "");
	} else if (strcmp(cmd, "maintenance") == 0) {
		if (n < 2 || (strcmp(args[1], "on") != 0 && strcmp(args[1], "off") != 0))
			return usage_error("maintenance needs 'on' or 'off'%s", "");
		on = strcmp(args[1], "on") == 0;
		for (int i = 2; i < n; i++) {
			if (strcmp(args[i], "--node") == 0 && i + 1 < n)
				node = args[++i];
			else
				return usage_error("maintenance: unexpected argument '%s'", args[i]);
		}
	} else if (strcmp(cmd, "events") == 0) {
		for (int i = 1; i < n; i++) {
			if (strcmp(args[i], "--follow") == 0 || strcmp(args[i], "-f") == 0) {
				follow = true;
			} else if (strcmp(args[i], "--limit") == 0 && i + 1 < n) {
				if (parse_int(args[++i], 0, INT_MAX, &limit) != 0)
					return usage_error("--limit needs a non-negative number, not '%s'", args[i]);
			} else {
				return usage_error("events: unexpected argument '%s'", args[i]);
			}
		}
		timeout = !follow;
	} else {
		return usage_error("unknown command '%s'", cmd);
	}

	if (conn_open(&c, sock, timeout ? CONN_REPLY_TIMEOUT_S : 0) != 0) {
		conn_close(&c);
		return EXIT_FAILED;
	}
	if (strcmp(cmd, "status") == 0 || strcmp(cmd, "sessions") == 0) {
		rc = cmd_status(&c, strcmp(cmd, "sessions") == 0);
	} else if (strcmp(cmd, "failover") == 0) {
		rc = cmd_failover(&c, group, to, reset);
	} else if (strcmp(cmd, "activate") == 0 || strcmp(cmd, "deactivate") == 0) {
		char done[64];
		snprintf(done, sizeof done, "%s: accepted", cmd);
		rc = cmd_simple(&c, json_pack("{s:s}", "cmd", cmd), done);
	} else if (strcmp(cmd, "maintenance") == 0) {
		json_t *req = json_pack("{s:s,s:b}", "cmd", "maintenance", "on", on);
		char done[160];
		if (node)
			json_object_set_new(req, "node", json_string(node));
		snprintf(done, sizeof done, "maintenance %s for %s", on ? "on" : "off",
			 node ? node : "this node");
		rc = cmd_simple(&c, req, done);
	} else {
		rc = cmd_events(&c, follow, limit);
	}
	conn_close(&c);
	return rc;
}
