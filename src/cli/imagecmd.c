/* imagecmd.c - `tandemctl image list|install|activate`; see imagecmd.h. */
#include "imagecmd.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <jansson.h>

#include "conn.h"

struct imgargs {
	const char *op, *arg; /* arg: FILE or VERSION */
	bool activate, restart, wait;
	long wait_s;          /* -1: hold timer + margin */
};

bool imagecmd_handles(int argc, char **argv)
{
	return argc >= 1 && (strcmp(argv[0], "list") == 0 || strcmp(argv[0], "install") == 0 ||
			     strcmp(argv[0], "activate") == 0);
}

const char *imagecmd_usage(void)
{
	return "  image list                    versions installed here, and each peer's version\n"
	       "  image install FILE [--activate|--restart] [--no-wait] [--wait-s S]\n"
	       "                                install a signed image beside the running version\n"
	       "  image activate VERSION [--restart] [--no-wait] [--wait-s S]\n"
	       "                                start VERSION (installed) from the next start on\n";
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int parse(int argc, char **argv, struct imgargs *a)
{
	*a = (struct imgargs){ .op = argv[0], .wait = true, .wait_s = -1 };
	for (int i = 1; i < argc; i++) {
		const char *w = argv[i];
		if (strcmp(a->op, "list") != 0 && strcmp(w, "--restart") == 0) {
			a->restart = true;
		} else if (strcmp(a->op, "install") == 0 && strcmp(w, "--activate") == 0) {
			a->activate = true;
		} else if (strcmp(a->op, "list") != 0 && strcmp(w, "--no-wait") == 0) {
			a->wait = false;
		} else if (strcmp(a->op, "list") != 0 && strcmp(w, "--wait-s") == 0 && i + 1 < argc) {
			char *end;
			a->wait_s = strtol(argv[++i], &end, 10);
			if (*end || a->wait_s < 1 || a->wait_s > 7 * 86400) {
				fprintf(stderr, "tandemctl: image %s: --wait-s needs 1..604800 seconds\n", a->op);
				return -1;
			}
		} else if (strcmp(a->op, "list") != 0 && !a->arg && (w[0] != '-' || w[1] == '\0')) {
			a->arg = w;
		} else {
			fprintf(stderr, "tandemctl: image %s: unexpected argument '%s'\n", a->op, w);
			return -1;
		}
	}
	if (!a->arg && strcmp(a->op, "list") != 0) {
		fprintf(stderr, "tandemctl: image %s needs %s\n", a->op,
			strcmp(a->op, "install") == 0 ? "FILE (a signed image)" : "VERSION");
		return -1;
	}
	return 0;
}

static const char *fmt_time(json_t *v, char *buf, size_t len)
{
	time_t t = (time_t)json_integer_value(v);
	struct tm tm;

	if (!json_is_integer(v) || t <= 0)
		return "-";
	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%d %H:%M:%SZ", &tm);
	return buf;
}

static const char *str(json_t *o, const char *key, const char *dflt)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : dflt;
}

static void show_list(FILE *f, json_t *r)
{
	json_t *v, *rev = json_object_get(r, "last_revert");
	char t[40], proto[16];
	size_t i;

	fprintf(f, "%s: running %s, active %s", str(r, "node", "?"), str(r, "running", "?"),
		str(r, "active", "?"));
	if (json_is_true(json_object_get(r, "confirmed")))
		fprintf(f, " (confirmed)");
	else
		fprintf(f, " (on trial: start %lld of %lld, hold timer %lld s%s%s)",
			json_integer_value(json_object_get(r, "tries")),
			json_integer_value(json_object_get(r, "tries_max")),
			json_integer_value(json_object_get(r, "hold_timer_s")),
			json_is_string(json_object_get(r, "waiting_for")) ? ", waiting for " : "",
			str(r, "waiting_for", ""));
	fprintf(f, ", previous %s\n", str(r, "previous", "none"));
	if (!json_is_true(json_object_get(r, "supervised")))
		fprintf(f, "  (tandemd runs without its supervisor: no restart, no self-revert)\n");
	fprintf(f, "  %-12s %-10s %-8s %-21s %s\n", "VERSION", "ROLE", "SOURCE", "INSTALLED", "PROTOCOL");
	json_array_foreach(json_object_get(r, "installed"), i, v) {
		if (json_is_integer(json_object_get(v, "proto_min")))
			snprintf(proto, sizeof proto, "%lld..%lld",
				 json_integer_value(json_object_get(v, "proto_min")),
				 json_integer_value(json_object_get(v, "proto_max")));
		else
			snprintf(proto, sizeof proto, "-");
		fprintf(f, "  %-12s %-10s %-8s %-21s %s%s\n", str(v, "version", "?"), str(v, "role", "?"),
			str(v, "source", "-"), fmt_time(json_object_get(v, "installed_at"), t, sizeof t),
			proto, json_is_false(json_object_get(v, "runnable")) ? "  (no bin/tandemd!)" : "");
	}
	if (json_is_object(rev))
		fprintf(f, "last revert: %s -> %s at %s: %s\n", str(rev, "from", "?"), str(rev, "to", "?"),
			fmt_time(json_object_get(rev, "at"), t, sizeof t), str(rev, "reason", "?"));
	if (json_array_size(json_object_get(r, "peers")) > 0) {
		fprintf(f, "peers:\n");
		json_array_foreach(json_object_get(r, "peers"), i, v)
			fprintf(f, "  %-16s %-6s %s\n", str(v, "node", "?"), str(v, "state", "?"),
				str(v, "version", "unknown"));
	}
}

/* One status request on a fresh connection, quietly: NULL while the
 * daemon is away (restarting). */
static json_t *quiet_status(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	static const char req[] = "{\"cmd\":\"status\"}\n";
	char buf[256 * 1024];
	size_t got = 0;
	long long deadline = now_ms() + 2000;
	json_t *res = NULL;
	int fd;

	if (strlen(path) >= sizeof sa.sun_path)
		return NULL;
	memcpy(sa.sun_path, path, strlen(path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return NULL;
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
	    send(fd, req, sizeof req - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof req - 1))
		goto out;
	while (got < sizeof buf - 1) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		long long left = deadline - now_ms();
		ssize_t n;
		if (left <= 0 || poll(&pf, 1, (int)left) <= 0)
			goto out;
		n = read(fd, buf + got, sizeof buf - 1 - got);
		if (n <= 0)
			goto out;
		got += (size_t)n;
		if (memchr(buf + got - (size_t)n, '\n', (size_t)n))
			break;
	}
	buf[got] = '\0';
	res = json_loads(buf, JSON_DISABLE_EOF_CHECK, NULL);
	if (!json_is_true(json_object_get(res, "ok"))) {
		json_decref(res);
		res = NULL;
	}
out:
	close(fd);
	return res;
}

/* After a restart into `version`: wait until it runs and is confirmed,
 * or was reverted. */
static int wait_restart(const char *sock, bool json, const char *version, long wait_s,
			long long t0, time_t t0_wall)
{
	long long deadline = t0 + wait_s * 1000LL, up_ms = -1, confirm_ms = -1;
	const char *node = "node";
	char nodebuf[128] = "node", msg[1024];
	json_t *st = NULL;

	if (!json)
		printf("waiting up to %ld s for the node to come back on %s and confirm it\n", wait_s, version);
	fflush(stdout);
	for (;;) {
		json_t *img, *rev;
		json_decref(st);
		st = quiet_status(sock);
		img = json_object_get(st, "image");
		rev = json_object_get(img, "last_revert");
		if (st) {
			snprintf(nodebuf, sizeof nodebuf, "%s", str(st, "node", "node"));
			node = nodebuf;
		}
		if (st && strcmp(str(st, "version", ""), version) == 0 && up_ms < 0)
			up_ms = now_ms() - t0;
		if (st && strcmp(str(st, "version", ""), version) == 0 &&
		    json_is_true(json_object_get(img, "confirmed"))) {
			confirm_ms = now_ms() - t0;
			break;
		}
		if (st && json_is_object(rev) && strcmp(str(rev, "from", ""), version) == 0 &&
		    json_integer_value(json_object_get(rev, "at")) >= (json_int_t)t0_wall &&
		    strcmp(str(st, "version", ""), version) != 0) {
			snprintf(msg, sizeof msg, "%s reverted %s after %lld ms and runs %s again: %s", node,
				 version, now_ms() - t0, str(st, "version", "?"), str(rev, "reason", "?"));
			if (json) {
				json_t *o = json_pack("{s:b,s:s,s:s,s:s,s:I,s:O}", "ok", 0, "code", "failed",
						      "error", msg, "running", str(st, "version", "?"),
						      "revert_ms", (json_int_t)(now_ms() - t0), "last_revert", rev);
				conn_print_json(o);
				json_decref(o);
			}
			fprintf(stderr, "tandemctl: failed: %s\n", msg);
			json_decref(st);
			return EXIT_FAILED;
		}
		if (now_ms() >= deadline) {
			snprintf(msg, sizeof msg, "%s did not come back confirmed on %s within %ld s (last seen: %s)",
				 node, version, wait_s, st ? str(st, "version", "?") : "not answering");
			if (json) {
				json_t *o = json_pack("{s:b,s:s,s:s}", "ok", 0, "code", "failed", "error", msg);
				conn_print_json(o);
				json_decref(o);
			}
			fprintf(stderr, "tandemctl: failed: %s\n", msg);
			json_decref(st);
			return EXIT_FAILED;
		}
		usleep(IMAGECMD_POLL_MS * 1000);
	}
	if (json) {
		json_t *o = json_pack("{s:b,s:s,s:s,s:I,s:I}", "ok", 1, "node", node, "version", version,
				      "restart_ms", (json_int_t)up_ms, "confirm_ms", (json_int_t)confirm_ms);
		conn_print_json(o);
		json_decref(o);
	} else {
		printf("%s: running %s (answering after %lld ms), confirmed healthy after %lld ms\n", node,
		       version, up_ms, confirm_ms);
	}
	json_decref(st);
	return EXIT_DONE;
}

int imagecmd_run(const char *socket, bool json, int argc, char **argv)
{
	struct conn c = { .fd = -1 };
	struct imgargs a;
	json_t *req, *res;
	char path[PATH_MAX];
	long long t0;
	time_t t0_wall;
	int rc;

	if (parse(argc, argv, &a) != 0) {
		fprintf(stderr, "%s", imagecmd_usage());
		return EXIT_USAGE;
	}
	if (strcmp(a.op, "list") == 0) {
		req = json_pack("{s:s,s:s}", "cmd", "image", "op", "list");
	} else if (strcmp(a.op, "install") == 0) {
		/* The daemon opens the file: it needs the absolute path. */
		if (!realpath(a.arg, path)) {
			fprintf(stderr, "tandemctl: image install: %s: %s\n", a.arg, strerror(errno));
			return EXIT_FAILED;
		}
		req = json_pack("{s:s,s:s,s:s,s:b,s:b}", "cmd", "image", "op", "install", "file", path,
				"activate", a.activate, "restart", a.restart);
	} else {
		req = json_pack("{s:s,s:s,s:s,s:b}", "cmd", "image", "op", "activate", "version", a.arg,
				"restart", a.restart);
	}
	if (conn_open(&c, socket, IMAGECMD_REPLY_TIMEOUT_S) != 0) {
		json_decref(req);
		conn_close(&c);
		return EXIT_FAILED;
	}
	conn_set_timeout(&c, IMAGECMD_REPLY_TIMEOUT_S,
			 "the install may still finish: see tandemctl image list");
	t0 = now_ms();
	t0_wall = time(NULL);
	res = conn_request(&c, req);
	conn_close(&c);
	if (!res)
		return EXIT_FAILED;
	if (!conn_answer_ok(res)) {
		rc = conn_answer_error(res, json);
		json_decref(res);
		return rc;
	}
	if (strcmp(a.op, "list") == 0) {
		if (json)
			conn_print_json(res);
		else
			show_list(stdout, res);
		json_decref(res);
		return EXIT_DONE;
	}
	const char *v = str(res, "version", a.arg);
	char version[64];
	snprintf(version, sizeof version, "%s", v);
	if (json && (!a.restart || !a.wait))
		conn_print_json(res);
	else if (!json)
		printf("%s%s%s%s\n", strcmp(a.op, "install") == 0 ? "installed " : "", version,
		       json_is_true(json_object_get(res, "activated")) ? ": active from the next start" : "",
		       json_is_true(json_object_get(res, "restarting")) ? "; the node restarts into it now" : "");
	rc = EXIT_DONE;
	if (a.restart && a.wait) {
		long w = a.wait_s > 0 ? a.wait_s
				      : (long)json_integer_value(json_object_get(res, "hold_timer_s")) +
						IMAGECMD_WAIT_MARGIN_S;
		rc = wait_restart(socket, json, version, w, t0, t0_wall);
	}
	json_decref(res);
	return rc;
}
