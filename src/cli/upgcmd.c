/* upgcmd.c - `tandemctl upgrade plan|start|status|abort|rollback|finalize|
 * report`; see upgcmd.h.
 *
 * One-shot requests go through conn.h. Watching (`status --watch`, and
 * `start` without --detach) polls {"op":"status"} on a fresh connection
 * every UPGCMD_WATCH_MS, quietly: the node this runs on may itself be
 * restarted by the upgrade, so a refused connection is expected for a
 * while and is not a failure until the daemon has been silent for
 * UPGCMD_SILENCE_MS_MAX.
 *
 * The status is rendered as a list of keyed lines (struct view). On a
 * terminal the whole list is redrawn (ANSI home + clear); otherwise only
 * the lines whose key is new or whose text changed are printed, so a log
 * reads as one line per event. Lines that carry a ticking counter
 * ("waiting to rejoin 12/900 s", a progress bar) compare with their
 * digits masked: a counter going up is not an event, a state change is. */
#include "upgcmd.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <jansson.h>

#include "conn.h"

#define UPGCMD_LINES_MAX 1024
#define UPGCMD_LINE_BYTES 400
#define UPGCMD_KEY_BYTES 48
#define UPGCMD_BAR_WIDTH 20

enum upg_op { OP_PLAN, OP_START, OP_STATUS, OP_ABORT, OP_ROLLBACK, OP_FINALIZE, OP_REPORT };

struct upgargs {
	enum upg_op op;
	const char *image, *node, *probe_log;
	bool force, disruptive, no_failback, detach, watch;
};

const char *upgcmd_usage(void)
{
	return "  upgrade plan --image FILE [--force] [--disruptive] [--no-failback]\n"
	       "                                the pre-checks and the steps, changing nothing\n"
	       "  upgrade start --image FILE [--force] [--disruptive] [--no-failback] [--detach]\n"
	       "                                upgrade the whole cluster and follow it to its end\n"
	       "  upgrade status [--watch]      phase, per-node progress, steps, last error\n"
	       "  upgrade abort                 stop the running upgrade and roll back\n"
	       "  upgrade rollback [--node NAME] return nodes to the previous version\n"
	       "  upgrade finalize              commit to the new version (its protocol level)\n"
	       "  upgrade report [--probe-log FILE]\n"
	       "                                the last upgrade's timeline (and traffic, from a probe log)\n";
}

/* ---- small helpers ----------------------------------------------------- */

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *str(json_t *o, const char *key, const char *dflt)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : dflt;
}

/* A JSON number (integer or real) as a double; `dflt` when absent. */
static double num(json_t *o, const char *key, double dflt)
{
	json_t *v = json_object_get(o, key);
	return json_is_number(v) ? json_number_value(v) : dflt;
}

static bool has_num(json_t *o, const char *key)
{
	return json_is_number(json_object_get(o, key));
}

/* "0.25 s", "12.3 s", "4m05s". */
static const char *fmt_ms(double ms, char *buf, size_t len)
{
	if (ms < 0)
		ms = 0;
	if (ms < 10000)
		snprintf(buf, len, "%.2f s", ms / 1000);
	else if (ms < 120000)
		snprintf(buf, len, "%.1f s", ms / 1000);
	else
		snprintf(buf, len, "%lldm%02llds", (long long)ms / 60000, (long long)ms / 1000 % 60);
	return buf;
}

static const char *fmt_bytes(double b, char *buf, size_t len)
{
	if (b >= 1 << 30)
		snprintf(buf, len, "%.1f GiB", b / (1 << 30));
	else if (b >= 1 << 20)
		snprintf(buf, len, "%.1f MiB", b / (1 << 20));
	else if (b >= 1 << 10)
		snprintf(buf, len, "%.1f KiB", b / (1 << 10));
	else
		snprintf(buf, len, "%.0f bytes", b);
	return buf;
}

static bool state_active(const char *s)
{
	return strcmp(s, "running") == 0 || strcmp(s, "aborting") == 0;
}

/* ---- arguments --------------------------------------------------------- */

static int parse(int argc, char **argv, struct upgargs *a)
{
	static const struct {
		const char *name;
		enum upg_op op;
	} ops[] = {
		{ "plan", OP_PLAN },	     { "start", OP_START },	  { "status", OP_STATUS },
		{ "abort", OP_ABORT },	     { "rollback", OP_ROLLBACK }, { "finalize", OP_FINALIZE },
		{ "report", OP_REPORT },
	};
	size_t k;

	*a = (struct upgargs){ 0 };
	if (argc < 1) {
		fprintf(stderr, "tandemctl: upgrade needs a subcommand: plan, start, status, abort, "
				"rollback, finalize or report\n");
		return -1;
	}
	for (k = 0; k < sizeof ops / sizeof ops[0]; k++)
		if (strcmp(argv[0], ops[k].name) == 0)
			break;
	if (k == sizeof ops / sizeof ops[0]) {
		fprintf(stderr, "tandemctl: upgrade: unknown subcommand '%s'\n", argv[0]);
		return -1;
	}
	a->op = ops[k].op;
	bool image_op = a->op == OP_PLAN || a->op == OP_START;
	for (int i = 1; i < argc; i++) {
		const char *w = argv[i];
		const char **val = NULL;
		const char *name = NULL;

		if (image_op && (strcmp(w, "--image") == 0 || strncmp(w, "--image=", 8) == 0)) {
			val = &a->image;
			name = "--image";
		} else if (a->op == OP_ROLLBACK && (strcmp(w, "--node") == 0 || strncmp(w, "--node=", 7) == 0)) {
			val = &a->node;
			name = "--node";
		} else if (a->op == OP_REPORT &&
			   (strcmp(w, "--probe-log") == 0 || strncmp(w, "--probe-log=", 12) == 0)) {
			val = &a->probe_log;
			name = "--probe-log";
		} else if (image_op && strcmp(w, "--force") == 0) {
			a->force = true;
		} else if (image_op && strcmp(w, "--disruptive") == 0) {
			a->disruptive = true;
		} else if (image_op && strcmp(w, "--no-failback") == 0) {
			a->no_failback = true;
		} else if (a->op == OP_START && strcmp(w, "--detach") == 0) {
			a->detach = true;
		} else if (a->op == OP_STATUS && strcmp(w, "--watch") == 0) {
			a->watch = true;
		} else {
			fprintf(stderr, "tandemctl: upgrade %s: unexpected argument '%s'\n", argv[0], w);
			return -1;
		}
		if (val) {
			size_t nl = strlen(name);
			const char *v = w[nl] == '=' ? w + nl + 1 : i + 1 < argc ? argv[++i] : NULL;
			if (*val) {
				fprintf(stderr, "tandemctl: upgrade %s: %s given twice\n", argv[0], name);
				return -1;
			}
			if (!v || !*v || (w[nl] != '=' && v[0] == '-' && v[1] != '\0')) {
				fprintf(stderr, "tandemctl: upgrade %s: %s needs a value\n", argv[0], name);
				return -1;
			}
			*val = v;
		}
	}
	if (image_op && !a->image) {
		fprintf(stderr, "tandemctl: upgrade %s needs --image FILE (a signed image)\n", argv[0]);
		return -1;
	}
	return 0;
}

/* ---- the daemon -------------------------------------------------------- */

/* One request on a fresh connection, quietly: NULL with the reason in
 * `why` when the daemon does not answer within timeout_ms. */
static json_t *quiet_request(const char *path, const char *req, long long timeout_ms, char *why,
			     size_t why_len)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	long long deadline = now_ms() + timeout_ms;
	size_t got = 0, cap = 65536, reqlen = strlen(req);
	char *buf = NULL;
	json_t *res = NULL;
	json_error_t jerr;
	int fd;

	if (strlen(path) >= sizeof sa.sun_path) {
		snprintf(why, why_len, "socket path too long");
		return NULL;
	}
	memcpy(sa.sun_path, path, strlen(path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(why, why_len, "socket: %s", strerror(errno));
		return NULL;
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		snprintf(why, why_len, "%s", strerror(errno));
		goto out;
	}
	if (send(fd, req, reqlen, MSG_NOSIGNAL) != (ssize_t)reqlen) {
		snprintf(why, why_len, "send: %s", strerror(errno));
		goto out;
	}
	buf = malloc(cap);
	if (!buf) {
		snprintf(why, why_len, "out of memory");
		goto out;
	}
	for (;;) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		long long left = deadline - now_ms();
		ssize_t n;
		int p;

		if (got + 1 >= cap) {
			char *nb;
			if (cap >= UPGCMD_ANSWER_BYTES_MAX) {
				snprintf(why, why_len, "answer larger than %d bytes", UPGCMD_ANSWER_BYTES_MAX);
				goto out;
			}
			nb = realloc(buf, cap * 2);
			if (!nb) {
				snprintf(why, why_len, "out of memory");
				goto out;
			}
			buf = nb;
			cap *= 2;
		}
		if (left <= 0) {
			snprintf(why, why_len, "no answer within %lld ms", timeout_ms);
			goto out;
		}
		p = poll(&pf, 1, (int)left);
		if (p < 0 && errno == EINTR) {
			snprintf(why, why_len, "interrupted");
			goto out;
		}
		if (p <= 0)
			continue;
		n = read(fd, buf + got, cap - 1 - got);
		if (n <= 0) {
			snprintf(why, why_len, "connection closed without an answer");
			goto out;
		}
		got += (size_t)n;
		if (memchr(buf + got - (size_t)n, '\n', (size_t)n))
			break;
	}
	buf[got] = '\0';
	res = json_loads(buf, JSON_DISABLE_EOF_CHECK, &jerr);
	if (!json_is_object(res)) {
		snprintf(why, why_len, "the answer is not a JSON object");
		json_decref(res);
		res = NULL;
	}
out:
	free(buf);
	close(fd);
	return res;
}

/* The exit code of an error answer; the sentence, the upgrade's error
 * code and every failed check on stderr (and the answer on stdout with
 * --json). */
static int answer_error(json_t *res, bool json)
{
	const char *code = str(res, "code", "failed");
	const char *err = str(res, "error", "no reason given");
	const char *ucode = str(res, "upgrade_code", NULL);
	json_t *c;
	size_t i;
	int rc = strcmp(code, "refused") == 0 ? EXIT_REFUSED
		 : strcmp(code, "usage") == 0 ? EXIT_USAGE
					      : EXIT_FAILED;

	if (json)
		conn_print_json(res);
	fprintf(stderr, "tandemctl: %s%s%s%s%s\n",
		rc == EXIT_REFUSED ? "refused: " : rc == EXIT_USAGE ? "" : "failed: ", err,
		ucode ? " (" : "", ucode ? ucode : "", ucode ? ")" : "");
	json_array_foreach(json_object_get(res, "checks"), i, c)
		if (!json_is_true(json_object_get(c, "ok")))
			fprintf(stderr, "  FAIL  %-20s %s\n", str(c, "code", "?"), str(c, "message", ""));
	return rc;
}

/* ---- plan -------------------------------------------------------------- */

static void show_plan(FILE *f, json_t *r, const char *image)
{
	json_t *img = json_object_get(r, "image"), *v;
	char b[32];
	size_t i, n_checks = 0, n_failed = 0;

	fprintf(f, "upgrade plan: %s -> %s, %s\n", str(r, "from", "?"), str(img, "version", "?"),
		json_is_true(json_object_get(r, "disruptive"))
			? "DISRUPTIVE (every node at once, with an outage)"
			: "in service (node by node, traffic kept)");
	fprintf(f, "image: %s, version %s, %s, digest %.16s\n", image, str(img, "version", "?"),
		fmt_bytes(num(img, "bytes", 0), b, sizeof b), str(img, "digest", "-"));
	fprintf(f, "checks:\n");
	json_array_foreach(json_object_get(r, "checks"), i, v) {
		bool ok = json_is_true(json_object_get(v, "ok"));
		n_checks++;
		n_failed += !ok;
		fprintf(f, "  %s  %-20s %s\n", ok ? "PASS" : "FAIL", str(v, "code", "?"), str(v, "message", ""));
	}
	fprintf(f, "steps:\n");
	json_array_foreach(json_object_get(r, "steps"), i, v)
		fprintf(f, "  %3lld. %s%s\n", (long long)num(v, "index", (double)i), str(v, "text", "?"),
			json_is_true(json_object_get(v, "rollback")) ? "  [rollback]" : "");
	if (json_is_true(json_object_get(r, "all_ok")))
		fprintf(f, "all %zu checks passed: `tandemctl upgrade start` with these options runs "
			   "these %zu steps\n", n_checks, json_array_size(json_object_get(r, "steps")));
	else
		fprintf(f, "%zu of %zu checks failed: the upgrade would be refused\n", n_failed, n_checks);
}

/* ---- status: the view -------------------------------------------------- */

struct line {
	char key[UPGCMD_KEY_BYTES];
	char text[UPGCMD_LINE_BYTES];
	bool ticks; /* a counter in it goes up by itself: compare digit-masked */
};

struct view {
	size_t n, dropped;
	struct line l[UPGCMD_LINES_MAX];
};

__attribute__((format(printf, 4, 5)))
static void view_add(struct view *v, const char *key, bool ticks, const char *fmt, ...)
{
	va_list ap;
	struct line *l;

	if (v->n == UPGCMD_LINES_MAX) {
		v->dropped++;
		return;
	}
	l = &v->l[v->n++];
	snprintf(l->key, sizeof l->key, "%s", key);
	l->ticks = ticks;
	va_start(ap, fmt);
	vsnprintf(l->text, sizeof l->text, fmt, ap);
	va_end(ap);
	/* Columns padded for a following field that is empty leave blanks. */
	for (size_t n = strlen(l->text); n > 0 && l->text[n - 1] == ' '; n--)
		l->text[n - 1] = '\0';
}

/* The same line as far as events go: equal, or equal but for digits on
 * a ticking line. */
static bool line_same(const struct line *a, const struct line *b)
{
	const char *p = a->text, *q = b->text;

	if (!a->ticks || !b->ticks)
		return strcmp(p, q) == 0;
	for (;;) {
		bool dp = *p >= '0' && *p <= '9', dq = *q >= '0' && *q <= '9';
		if (dp || dq) {
			if (!dp || !dq)
				return false;
			while (*p >= '0' && *p <= '9')
				p++;
			while (*q >= '0' && *q <= '9')
				q++;
			continue;
		}
		if (*p != *q)
			return false;
		if (!*p)
			return true;
		p++, q++;
	}
}

static const char *step_marker(const char *status)
{
	if (strcmp(status, "done") == 0)
		return "✓";
	if (strcmp(status, "running") == 0)
		return "▶";
	if (strcmp(status, "failed") == 0)
		return "✗";
	if (strcmp(status, "skipped") == 0)
		return "-";
	return "·";
}

/* How far a node is through an upgrade or revert, 0..1: its state, and
 * within restarting/resyncing the "N/M" the daemon puts in the detail. */
static double node_progress(json_t *n)
{
	static const struct {
		const char *state;
		double at;
	} stages[] = {
		{ "pending", 0 },      { "fetching", 0.1 }, { "installing", 0.2 }, { "restarting", 0.35 },
		{ "resyncing", 0.7 },  { "upgraded", 1 },   { "reverting", 0.3 },  { "reverted", 1 },
	};
	const char *s = str(n, "state", "pending"), *d = str(n, "detail", ""), *slash;
	double at = 0;

	for (size_t i = 0; i < sizeof stages / sizeof stages[0]; i++)
		if (strcmp(s, stages[i].state) == 0)
			at = stages[i].at;
	slash = strchr(d, '/');
	if (slash && slash > d && (strcmp(s, "restarting") == 0 || strcmp(s, "resyncing") == 0)) {
		const char *p = slash;
		while (p > d && p[-1] >= '0' && p[-1] <= '9')
			p--;
		double x = strtod(p, NULL), y = strtod(slash + 1, NULL);
		double span = strcmp(s, "restarting") == 0 ? 0.35 : 0.3;
		if (y > 0 && x >= 0 && p < slash)
			at += span * (x < y ? x / y : 1);
	}
	return at;
}

static bool step_has_node(json_t *step, const char *node)
{
	json_t *v;
	size_t i;

	if (strcmp(str(step, "node", ""), node) == 0)
		return true;
	json_array_foreach(json_object_get(step, "nodes"), i, v)
		if (json_is_string(v) && strcmp(json_string_value(v), node) == 0)
			return true;
	return false;
}

static void view_build(struct view *v, json_t *st, bool watching, bool stream)
{
	const char *state = str(st, "state", "?");
	json_t *nodes = json_object_get(st, "nodes"), *steps = json_object_get(st, "steps");
	json_t *err = json_object_get(st, "error"), *proto = json_object_get(st, "protocol");
	json_t *n, *s, *running = NULL;
	size_t j;
	double elapsed_ms = num(st, "elapsed_s", -1) * 1000;
	char b1[32], b2[32], opts[160] = "";
	size_t i;

	v->n = v->dropped = 0;
	if (!json_is_number(json_object_get(st, "id")) && strcmp(state, "idle") == 0) {
		view_add(v, "head", false, "no upgrade in progress: none has run, or the last one was "
					   "finalized");
		return;
	}
	if (stream || elapsed_ms < 0)
		view_add(v, "head", false, "upgrade %lld: %s, %s -> %s, coordinator %s, %s",
			 (long long)num(st, "id", 0), state, str(st, "from", "?"), str(st, "to", "?"),
			 str(st, "coordinator", "none"),
			 json_is_true(json_object_get(st, "finalized")) ? "finalized" : "not finalized");
	else
		view_add(v, "head", false, "upgrade %lld: %s, %s -> %s, coordinator %s, elapsed %s, %s",
			 (long long)num(st, "id", 0), state, str(st, "from", "?"), str(st, "to", "?"),
			 str(st, "coordinator", "none"), fmt_ms(elapsed_ms, b1, sizeof b1),
			 json_is_true(json_object_get(st, "finalized")) ? "finalized" : "not finalized");
	if (json_is_string(json_object_get(st, "phase")))
		view_add(v, "phase", false, "phase: %s", str(st, "phase", ""));
	if (json_is_true(json_object_get(st, "force")))
		strcat(opts, ", --force");
	if (json_is_true(json_object_get(st, "disruptive")))
		strcat(opts, ", --disruptive");
	if (json_is_true(json_object_get(st, "no_failback")))
		strcat(opts, ", --no-failback");
	if (json_is_object(proto))
		view_add(v, "flags", false, "configuration %s; protocol level %lld (old %lld, new %lld)%s%s",
			 json_is_true(json_object_get(st, "frozen")) ? "frozen" : "not frozen",
			 (long long)num(proto, "level", 0), (long long)num(proto, "from", 0),
			 (long long)num(proto, "to", 0), *opts ? "; options: " : "", *opts ? opts + 2 : "");
	json_array_foreach(steps, i, s)
		if (strcmp(str(s, "status", ""), "running") == 0)
			running = s;

	if (json_array_size(nodes) > 0)
		view_add(v, "nodes", false, "  %-16s %-11s %-10s %-6s %s", "NODE", "STATE", "VERSION",
			 "ALIVE", "DETAIL");
	json_array_foreach(nodes, i, n) {
		char key[UPGCMD_KEY_BYTES];
		const char *name = str(n, "node", "?");
		snprintf(key, sizeof key, "node %s", name);
		view_add(v, key, true, "  %-16s %-11s %-10s %-6s %s", name, str(n, "state", "?"),
			 str(n, "version", "?"),
			 json_is_true(json_object_get(n, "alive")) ? "yes"
			 : json_is_false(json_object_get(n, "alive")) ? "no" : "?",
			 str(n, "detail", ""));
	}

	if (json_array_size(steps) > 0)
		view_add(v, "steps", false, "steps:");
	json_array_foreach(steps, i, s) {
		char key[UPGCMD_KEY_BYTES], tail[64] = "";
		const char *status = str(s, "status", "pending");
		long long idx = (long long)num(s, "index", (double)i);
		bool ended = has_num(s, "end_ms") && has_num(s, "start_ms");

		if ((strcmp(status, "done") == 0 || strcmp(status, "failed") == 0) && ended)
			snprintf(tail, sizeof tail, "%s%s", strcmp(status, "failed") == 0 ? "failed after " : "",
				 fmt_ms(num(s, "end_ms", 0) - num(s, "start_ms", 0), b1, sizeof b1));
		else if (strcmp(status, "failed") == 0)
			snprintf(tail, sizeof tail, "failed");
		else if (strcmp(status, "skipped") == 0)
			snprintf(tail, sizeof tail, "skipped");
		else if (strcmp(status, "running") == 0 && !stream && elapsed_ms >= 0 && has_num(s, "start_ms"))
			snprintf(tail, sizeof tail, "running for %s",
				 fmt_ms(elapsed_ms - num(s, "start_ms", 0), b1, sizeof b1));
		else if (strcmp(status, "running") == 0)
			snprintf(tail, sizeof tail, "running");
		snprintf(key, sizeof key, "step %lld", idx);
		view_add(v, key, false, "  %s %3lld %-44s %s%s", step_marker(status), idx, str(s, "text", "?"),
			 tail, json_is_true(json_object_get(s, "rollback")) ? "  [rollback]" : "");
		if (s != running || !watching)
			continue;
		/* The running step's nodes, with a progress bar each. */
		const char *kind = str(s, "kind", "");
		if (strcmp(kind, "upgrade") != 0 && strcmp(kind, "revert") != 0 &&
		    strcmp(kind, "distribute") != 0)
			continue;
		json_array_foreach(nodes, j, n) {
			char bar[UPGCMD_BAR_WIDTH + 1];
			const char *name = str(n, "node", "?");
			int fill;
			if (!step_has_node(s, name))
				continue;
			fill = (int)(node_progress(n) * UPGCMD_BAR_WIDTH + 0.5);
			for (int k = 0; k < UPGCMD_BAR_WIDTH; k++)
				bar[k] = k < fill ? '#' : '.';
			bar[UPGCMD_BAR_WIDTH] = '\0';
			snprintf(key, sizeof key, "bar %s", name);
			view_add(v, key, true, "        %-16s [%s] %s%s%s", name, bar, str(n, "state", "?"),
				 *str(n, "detail", "") ? ": " : "", str(n, "detail", ""));
		}
	}
	if (json_is_object(err)) {
		if (has_num(err, "step"))
			snprintf(b2, sizeof b2, " at step %lld", (long long)num(err, "step", 0));
		else
			b2[0] = '\0';
		view_add(v, "error", false, "error %s%s: %s", str(err, "code", "?"), b2,
			 str(err, "message", "no message"));
		view_add(v, "recovery", false, "  recovery: %s", str(err, "recovery", "none given"));
	}
}

static void view_print_all(FILE *f, const struct view *v)
{
	for (size_t i = 0; i < v->n; i++)
		fprintf(f, "%s\n", v->l[i].text);
	if (v->dropped)
		fprintf(f, "(%zu more lines not shown)\n", v->dropped);
}

/* The lines of `cur` that are new or changed against `prev`, each with
 * the upgrade's elapsed time in front. */
static void view_print_changes(FILE *f, const struct view *prev, const struct view *cur, json_t *st)
{
	char b[32];

	for (size_t i = 0; i < cur->n; i++) {
		const struct line *l = &cur->l[i], *p = NULL;
		const char *t = l->text;
		for (size_t k = 0; k < prev->n; k++)
			if (strcmp(prev->l[k].key, l->key) == 0) {
				p = &prev->l[k];
				break;
			}
		if (p && line_same(p, l))
			continue;
		while (*t == ' ')
			t++;
		if (has_num(st, "elapsed_s"))
			fprintf(f, "[%9s] %s\n", fmt_ms(num(st, "elapsed_s", 0) * 1000, b, sizeof b), t);
		else
			fprintf(f, "%s\n", t);
	}
}

/* ---- watch ------------------------------------------------------------- */

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
	(void)sig;
	interrupted = 1;
}

/* Sleep ms, cut short by Ctrl-C. */
static void nap(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	while (!interrupted && nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* The end of a watched upgrade: its verdict and exit code. */
static int watch_end(json_t *st, bool json)
{
	const char *state = str(st, "state", "?");
	json_t *err = json_object_get(st, "error");
	char b[32];

	if (strcmp(state, "completed") == 0 || strcmp(state, "idle") == 0) {
		if (!json && strcmp(state, "idle") == 0 && json_is_number(json_object_get(st, "id")) &&
		    json_is_true(json_object_get(st, "finalized")))
			printf("upgrade %lld completed in %s and is finalized: every node runs %s\n",
			       (long long)num(st, "id", 0), fmt_ms(num(st, "elapsed_s", 0) * 1000, b, sizeof b),
			       str(st, "to", "?"));
		if (!json && strcmp(state, "completed") == 0)
			printf("upgrade %lld completed in %s: every node runs %s%s\n",
			       (long long)num(st, "id", 0), fmt_ms(num(st, "elapsed_s", 0) * 1000, b, sizeof b),
			       str(st, "to", "?"),
			       json_is_true(json_object_get(st, "finalized"))
				       ? ""
				       : " (not finalized: `tandemctl upgrade finalize` commits to it, "
					 "`tandemctl upgrade rollback` returns to the previous version)");
		fflush(stdout);
		return EXIT_DONE;
	}
	fprintf(stderr, "tandemctl: upgrade %lld %s", (long long)num(st, "id", 0), state);
	if (json_is_object(err)) {
		fprintf(stderr, ": %s", str(err, "code", "?"));
		if (has_num(err, "step"))
			fprintf(stderr, " at step %lld", (long long)num(err, "step", 0));
		fprintf(stderr, ": %s\n  recovery: %s\n", str(err, "message", "no message"),
			str(err, "recovery", "none given"));
	} else {
		fprintf(stderr, "\n");
	}
	return EXIT_FAILED;
}

/* Follow the upgrade until it is no longer running or aborting. With
 * want_id >= 0 (after start), answers about another upgrade (or none yet)
 * do not count for UPGCMD_APPEAR_MS_MAX. */
static int watch(const char *sock, bool json, long long want_id)
{
	static const char req[] = "{\"cmd\":\"upgrade\",\"op\":\"status\"}\n";
	struct sigaction sa = { .sa_handler = on_sigint }, old_sa;
	bool tty = !json && isatty(STDOUT_FILENO);
	struct view *prev = calloc(1, sizeof *prev), *cur = calloc(1, sizeof *cur);
	long long t0 = now_ms(), last_answer = now_ms();
	char *last_json = NULL;
	bool silent = false, first = true;
	int rc = EXIT_FAILED;

	if (!prev || !cur) {
		fprintf(stderr, "tandemctl: out of memory\n");
		goto out;
	}
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old_sa);
	for (;;) {
		char why[160];
		json_t *st;

		if (interrupted) {
			if (!json)
				printf("%sstopped watching; the upgrade goes on (tandemctl upgrade status)\n",
				       tty ? "\n" : "");
			rc = EXIT_DONE;
			break;
		}
		st = quiet_request(sock, req, UPGCMD_POLL_TIMEOUT_MS, why, sizeof why);
		if (st && !conn_answer_ok(st)) {
			snprintf(why, sizeof why, "%s", str(st, "error", "an error without a reason"));
			json_decref(st);
			st = NULL;
		}
		if (interrupted) {
			json_decref(st);
			continue;
		}
		if (!st) {
			long long quiet = now_ms() - last_answer;
			if (quiet >= UPGCMD_SILENCE_MS_MAX) {
				fprintf(stderr, "tandemctl: failed: tandemd at %s has not answered for %lld s "
						"(%s); the upgrade may still be going on\n", sock, quiet / 1000, why);
				break;
			}
			if (!silent && !json)
				printf("tandemd not answering (%s): waiting up to %d s\n", why,
				       UPGCMD_SILENCE_MS_MAX / 1000);
			fflush(stdout);
			silent = true;
			nap(UPGCMD_WATCH_MS);
			continue;
		}
		last_answer = now_ms();
		if (silent && !json)
			printf("tandemd answering again\n");
		silent = false;
		const char *state = str(st, "state", "idle");
		/* "idle" with our id and finalized is our upgrade, completed and
		 * finalized already (upgrade.auto_finalize). */
		bool finalized_ours = strcmp(state, "idle") == 0 && json_is_true(json_object_get(st, "finalized"));
		if (want_id >= 0 && ((long long)num(st, "id", -1) != want_id ||
				     (strcmp(state, "idle") == 0 && !finalized_ours))) {
			if (now_ms() - t0 >= UPGCMD_APPEAR_MS_MAX) {
				fprintf(stderr, "tandemctl: failed: upgrade %lld was started but the status "
						"shows %s %lld after %d s\n", want_id, state,
					(long long)num(st, "id", 0), UPGCMD_APPEAR_MS_MAX / 1000);
				json_decref(st);
				break;
			}
			json_decref(st);
			nap(UPGCMD_WATCH_MS);
			continue;
		}
		json_object_del(st, "ok");
		if (json) {
			/* One line per change; the clock alone is not a change. */
			json_t *cmp = json_deep_copy(st);
			char *s;
			json_object_del(cmp, "elapsed_s");
			s = json_dumps(cmp, JSON_COMPACT | JSON_SORT_KEYS);
			json_decref(cmp);
			if (!last_json || !s || strcmp(s, last_json) != 0)
				conn_print_json(st);
			free(last_json);
			last_json = s;
		} else {
			view_build(cur, st, true, !tty);
			if (tty) {
				printf("\033[H\033[2J");
				view_print_all(stdout, cur);
			} else {
				if (first)
					prev->n = 0;
				view_print_changes(stdout, prev, cur, st);
			}
			fflush(stdout);
			struct view *t = prev;
			prev = cur;
			cur = t;
		}
		first = false;
		if (!state_active(state)) {
			rc = watch_end(st, json);
			json_decref(st);
			break;
		}
		json_decref(st);
		nap(UPGCMD_WATCH_MS);
	}
	sigaction(SIGINT, &old_sa, NULL);
out:
	free(last_json);
	free(prev);
	free(cur);
	return rc;
}

/* ---- report ------------------------------------------------------------ */

struct probe_counts {
	long long max_gap_ms, resets, conn_lost, new_fail, events;
};

static void counts_add(struct probe_counts *c, const char *kind, json_t *ev)
{
	c->events++;
	if (strcmp(kind, "gap") == 0) {
		long long g = (long long)num(ev, "ms", 0);
		if (g > c->max_gap_ms)
			c->max_gap_ms = g;
	} else if (strcmp(kind, "reset") == 0) {
		c->resets++;
	} else if (strcmp(kind, "conn_lost") == 0) {
		c->conn_lost++;
	} else if (strcmp(kind, "new_fail") == 0) {
		c->new_fail++;
	}
}

static json_t *counts_json(const struct probe_counts *c)
{
	return json_pack("{s:I,s:I,s:I,s:I,s:I}", "max_gap_ms", (json_int_t)c->max_gap_ms, "resets",
			 (json_int_t)c->resets, "conn_lost", (json_int_t)c->conn_lost, "new_fail",
			 (json_int_t)c->new_fail, "events", (json_int_t)c->events);
}

/* Read the probe log and attribute its events to the steps (by wall
 * clock) and to the whole upgrade. Fills `probe` (the report's "probe"
 * object) and per_step[i]. -1 with a message on a bad log. */
static int probe_read(const char *file, json_t *steps, struct probe_counts *per_step, json_t *probe,
		      bool upgrade_ended)
{
	FILE *f = fopen(file, "r");
	char *line = NULL;
	size_t cap = 0, nsteps = json_array_size(steps), i;
	ssize_t len;
	long lineno = 0;
	double first_t = 0, last_t = 0, up_start = -1, up_end = -1, last_summary = -1;
	bool any = false, open_step = false;
	struct probe_counts total = { 0 }, outside = { 0 };
	json_t *s, *missing;
	int rc = -1;

	if (!f) {
		fprintf(stderr, "tandemctl: upgrade report: %s: %s\n", file, strerror(errno));
		return -1;
	}
	/* The upgrade's wall-clock window: the first step's start to the
	 * last step's end. */
	json_array_foreach(steps, i, s) {
		if (has_num(s, "wall_start_ms") && (up_start < 0 || num(s, "wall_start_ms", 0) < up_start))
			up_start = num(s, "wall_start_ms", 0);
		if (has_num(s, "wall_end_ms") && num(s, "wall_end_ms", 0) > up_end)
			up_end = num(s, "wall_end_ms", 0);
		if (has_num(s, "wall_start_ms") && !has_num(s, "wall_end_ms"))
			open_step = true;
	}
	while ((len = getline(&line, &cap, f)) > 0) {
		json_error_t jerr;
		json_t *ev;
		const char *kind;
		double t;

		lineno++;
		if (len > UPGCMD_PROBE_LINE_BYTES_MAX) {
			fprintf(stderr, "tandemctl: upgrade report: %s:%ld: line longer than %d bytes\n", file,
				lineno, UPGCMD_PROBE_LINE_BYTES_MAX);
			goto out;
		}
		if (strspn(line, " \t\r\n") == (size_t)len)
			continue;
		ev = json_loadb(line, (size_t)len, JSON_DISABLE_EOF_CHECK, &jerr);
		if (!json_is_object(ev) || !has_num(ev, "t_ms") || !json_is_string(json_object_get(ev, "kind"))) {
			fprintf(stderr, "tandemctl: upgrade report: %s:%ld: not a probe event "
					"(a JSON object with a number t_ms and a string kind)\n", file, lineno);
			json_decref(ev);
			goto out;
		}
		t = num(ev, "t_ms", 0);
		kind = str(ev, "kind", "");
		if (!any || t < first_t)
			first_t = t;
		if (!any || t > last_t)
			last_t = t;
		any = true;
		if (strcmp(kind, "summary") == 0) {
			if (t > last_summary)
				last_summary = t;
			json_decref(ev);
			continue;
		}
		if (up_start >= 0 && t >= up_start && (t <= up_end || open_step || up_end < 0))
			counts_add(&total, kind, ev);
		else
			counts_add(&outside, kind, ev);
		json_array_foreach(steps, i, s) {
			if (i >= nsteps || !has_num(s, "wall_start_ms") || t < num(s, "wall_start_ms", 0))
				continue;
			if (has_num(s, "wall_end_ms") && t > num(s, "wall_end_ms", 0))
				continue;
			counts_add(&per_step[i], kind, ev);
		}
		json_decref(ev);
	}
	if (ferror(f)) {
		fprintf(stderr, "tandemctl: upgrade report: %s: %s\n", file, strerror(errno));
		goto out;
	}

	/* "zero drops" needs zero counts AND a log that saw the whole upgrade. */
	missing = json_array();
	if (!any)
		json_array_append_new(missing, json_string("the probe log holds no event"));
	if (up_start < 0)
		json_array_append_new(missing, json_string("no step of the upgrade has started"));
	if (!upgrade_ended || open_step || up_end < 0)
		json_array_append_new(missing, json_string("the upgrade has not ended"));
	if (any && up_start >= 0 && first_t > up_start)
		json_array_append_new(missing, json_sprintf("the probe log starts %.0f ms after the upgrade "
							    "began", first_t - up_start));
	if (any && upgrade_ended && up_end >= 0 && !open_step && last_summary < up_end)
		json_array_append_new(missing, json_string("the probe log has no summary line after the "
							   "upgrade's last step ended (the probe stopped "
							   "early or is still running)"));
	bool covers = json_array_size(missing) == 0;
	bool zero = covers && total.resets == 0 && total.conn_lost == 0 && total.new_fail == 0;
	json_object_set_new(probe, "file", json_string(file));
	json_object_set_new(probe, "lines", json_integer(lineno));
	if (any) {
		json_object_set_new(probe, "first_t_ms", json_integer((json_int_t)first_t));
		json_object_set_new(probe, "last_t_ms", json_integer((json_int_t)last_t));
	}
	json_object_set_new(probe, "covers_upgrade", json_boolean(covers));
	json_object_set_new(probe, "missing", missing);
	json_object_set_new(probe, "totals", counts_json(&total));
	json_object_set_new(probe, "outside_upgrade", counts_json(&outside));
	json_object_set_new(probe, "zero_drops", json_boolean(zero));
	rc = 0;
out:
	free(line);
	fclose(f);
	return rc;
}

/* The report as JSON (what --json prints; the human form is drawn from
 * it too, so the two cannot disagree). NULL with a message on a bad log. */
static json_t *report_build(json_t *st, const char *probe_log)
{
	json_t *steps = json_object_get(st, "steps"), *s, *out_steps = json_array(), *rep;
	const char *state = str(st, "state", "?");
	bool ended = !state_active(state);
	size_t n = json_array_size(steps), i;
	struct probe_counts *per = calloc(n ? n : 1, sizeof *per);
	double total = 0, restart = 0, sum = 0, first = -1;

	if (!per) {
		fprintf(stderr, "tandemctl: out of memory\n");
		json_decref(out_steps);
		return NULL;
	}
	json_array_foreach(steps, i, s)
		if (has_num(s, "start_ms") && (first < 0 || num(s, "start_ms", 0) < first))
			first = num(s, "start_ms", 0);
	if (first < 0)
		first = 0;
	rep = json_pack("{s:b,s:O?,s:s,s:s,s:s,s:s}", "ok", 1, "id", json_object_get(st, "id"), "state",
			state, "from", str(st, "from", "?"), "to", str(st, "to", "?"), "coordinator",
			str(st, "coordinator", "none"));
	if (probe_log) {
		json_t *probe = json_object();
		if (probe_read(probe_log, steps, per, probe, ended) != 0) {
			json_decref(probe);
			json_decref(rep);
			json_decref(out_steps);
			free(per);
			return NULL;
		}
		json_object_set_new(rep, "probe", probe);
	}
	json_array_foreach(steps, i, s) {
		const char *kind = str(s, "kind", "?");
		json_t *o = json_pack("{s:I,s:s,s:s,s:s,s:b}", "index", (json_int_t)num(s, "index", (double)i),
				      "kind", kind, "text", str(s, "text", "?"), "status",
				      str(s, "status", "?"), "rollback", json_is_true(json_object_get(s, "rollback")));
		if (has_num(s, "start_ms"))
			json_object_set_new(o, "offset_ms", json_integer((json_int_t)(num(s, "start_ms", 0) - first)));
		if (has_num(s, "start_ms") && has_num(s, "end_ms")) {
			double d = num(s, "end_ms", 0) - num(s, "start_ms", 0);
			json_object_set_new(o, "duration_ms", json_integer((json_int_t)d));
			sum += d;
			if (strcmp(kind, "upgrade") == 0 || strcmp(kind, "revert") == 0)
				restart += d;
			if (num(s, "end_ms", 0) - first > total)
				total = num(s, "end_ms", 0) - first;
		}
		if (probe_log)
			json_object_set_new(o, "probe", counts_json(&per[i]));
		json_array_append_new(out_steps, o);
	}
	/* A running upgrade's total is its time so far. */
	if (!ended && has_num(st, "elapsed_s") && num(st, "elapsed_s", 0) * 1000 - first > total)
		total = num(st, "elapsed_s", 0) * 1000 - first;
	json_object_set_new(rep, "steps", out_steps);
	json_object_set_new(rep, "ended", json_boolean(ended));
	json_object_set_new(rep, "total_ms", json_integer((json_int_t)total));
	json_object_set_new(rep, "restart_resync_ms", json_integer((json_int_t)restart));
	json_object_set_new(rep, "overhead_ms", json_integer((json_int_t)(total - restart)));
	json_object_set_new(rep, "between_steps_ms", json_integer((json_int_t)(total > sum ? total - sum : 0)));
	if (json_is_object(json_object_get(st, "error")))
		json_object_set(rep, "error", json_object_get(st, "error"));
	free(per);
	return rep;
}

static double pct(double part, double whole)
{
	return whole > 0 ? 100.0 * part / whole : 0;
}

static void show_report(FILE *f, json_t *rep)
{
	json_t *probe = json_object_get(rep, "probe"), *s, *err = json_object_get(rep, "error");
	double total = num(rep, "total_ms", 0), restart = num(rep, "restart_resync_ms", 0);
	char b1[32], b2[32], b3[32], b4[32];
	size_t i;

	fprintf(f, "upgrade %lld: %s, %s -> %s%s\n", (long long)num(rep, "id", 0), str(rep, "state", "?"),
		str(rep, "from", "?"), str(rep, "to", "?"),
		json_is_true(json_object_get(rep, "ended")) ? "" : " (still going on: times so far)");
	fprintf(f, "  %3s %-44s %10s %10s", "#", "STEP", "START", "DURATION");
	if (probe)
		fprintf(f, " %8s %6s %5s %8s", "MAX GAP", "RESETS", "LOST", "NEW FAIL");
	fprintf(f, "\n");
	json_array_foreach(json_object_get(rep, "steps"), i, s) {
		json_t *p = json_object_get(s, "probe");
		char start[40], dur[40];
		if (has_num(s, "offset_ms"))
			snprintf(start, sizeof start, "+%s", fmt_ms(num(s, "offset_ms", 0), b1, sizeof b1));
		else
			snprintf(start, sizeof start, "-");
		if (has_num(s, "duration_ms"))
			snprintf(dur, sizeof dur, "%s", fmt_ms(num(s, "duration_ms", 0), b1, sizeof b1));
		else
			snprintf(dur, sizeof dur, "%s", str(s, "status", "-"));
		fprintf(f, "  %3lld %-44s %10s %10s", (long long)num(s, "index", 0), str(s, "text", "?"), start,
			dur);
		if (p && has_num(s, "offset_ms"))
			fprintf(f, " %5lld ms %6lld %5lld %8lld", (long long)num(p, "max_gap_ms", 0),
				(long long)num(p, "resets", 0), (long long)num(p, "conn_lost", 0),
				(long long)num(p, "new_fail", 0));
		fprintf(f, "%s\n", json_is_true(json_object_get(s, "rollback")) ? "  [rollback]" : "");
	}
	fprintf(f, "total %s: node restarts and resync (upgrade/revert steps) %s (%.0f%%), coordinator "
		   "overhead %s (%.0f%%, of which %s between steps)\n",
		fmt_ms(total, b1, sizeof b1), fmt_ms(restart, b2, sizeof b2), pct(restart, total),
		fmt_ms(total - restart, b3, sizeof b3), pct(total - restart, total),
		fmt_ms(num(rep, "between_steps_ms", 0), b4, sizeof b4));
	if (json_is_object(err))
		fprintf(f, "error %s at step %lld: %s\n  recovery: %s\n", str(err, "code", "?"),
			(long long)num(err, "step", -1), str(err, "message", ""), str(err, "recovery", ""));
	if (!probe)
		return;
	json_t *t = json_object_get(probe, "totals"), *o = json_object_get(probe, "outside_upgrade");
	fprintf(f, "traffic (probe log %s, %lld lines):\n", str(probe, "file", "?"),
		(long long)num(probe, "lines", 0));
	fprintf(f, "  during the upgrade: longest gap %lld ms; resets %lld, connections lost %lld, "
		   "failed new connections %lld\n",
		(long long)num(t, "max_gap_ms", 0), (long long)num(t, "resets", 0),
		(long long)num(t, "conn_lost", 0), (long long)num(t, "new_fail", 0));
	if (num(o, "events", 0) > 0)
		fprintf(f, "  outside the upgrade (not counted): longest gap %lld ms; resets %lld, "
			   "connections lost %lld, failed new connections %lld\n",
			(long long)num(o, "max_gap_ms", 0), (long long)num(o, "resets", 0),
			(long long)num(o, "conn_lost", 0), (long long)num(o, "new_fail", 0));
	if (json_is_true(json_object_get(probe, "zero_drops"))) {
		fprintf(f, "  zero drops: no reset, no connection lost and no failed new connection, "
			   "over a log that covers the whole upgrade\n");
		return;
	}
	if (num(t, "resets", 0) + num(t, "conn_lost", 0) + num(t, "new_fail", 0) > 0)
		fprintf(f, "  DROPS during the upgrade: resets %lld, connections lost %lld, failed new "
			   "connections %lld\n",
			(long long)num(t, "resets", 0), (long long)num(t, "conn_lost", 0),
			(long long)num(t, "new_fail", 0));
	json_array_foreach(json_object_get(probe, "missing"), i, s)
		fprintf(f, "  not proven: %s\n", json_string_value(s));
}

/* ---- commands ---------------------------------------------------------- */

/* One request on a connection of its own: the answer, or NULL (said). */
static json_t *request(const char *sock, json_t *req, int timeout_s, const char *hint)
{
	struct conn c = { .fd = -1 };
	json_t *res;

	if (conn_open(&c, sock, timeout_s) != 0) {
		json_decref(req);
		conn_close(&c);
		return NULL;
	}
	conn_set_timeout(&c, timeout_s, hint);
	res = conn_request(&c, req);
	conn_close(&c);
	return res;
}

int upgcmd_run(const char *socket, bool json, int argc, char **argv)
{
	static const char *const op_names[] = { "plan", "start", "status", "abort", "rollback",
						"finalize", "status" };
	struct upgargs a;
	char path[PATH_MAX];
	json_t *req, *res;
	int rc;

	if (parse(argc, argv, &a) != 0) {
		fprintf(stderr, "%s", upgcmd_usage());
		return EXIT_USAGE;
	}
	if (a.probe_log && access(a.probe_log, R_OK) != 0) {
		fprintf(stderr, "tandemctl: upgrade report: %s: %s\n", a.probe_log, strerror(errno));
		return EXIT_FAILED;
	}
	if (a.op == OP_STATUS && a.watch)
		return watch(socket, json, -1);

	req = json_pack("{s:s,s:s}", "cmd", "upgrade", "op", op_names[a.op]);
	if (a.image) {
		/* The daemon opens the file: it needs the absolute path. */
		if (!realpath(a.image, path)) {
			/* A missing image is the cluster's pre-check to report
			 * (E_IMAGE_MISSING, with every other check): send the
			 * absolute path anyway. */
			char cwd[PATH_MAX];
			int n = errno == ENOENT ? a.image[0] == '/'
				? snprintf(path, sizeof path, "%s", a.image)
				: getcwd(cwd, sizeof cwd) ? snprintf(path, sizeof path, "%s/%s", cwd, a.image) : -1
				: -1;
			if (n < 0 || n >= (int)sizeof path) {
				fprintf(stderr, "tandemctl: upgrade %s: %s: %s\n", op_names[a.op], a.image,
					strerror(errno ? errno : ENAMETOOLONG));
				json_decref(req);
				return EXIT_FAILED;
			}
		}
		json_object_set_new(req, "image", json_string(path));
		json_object_set_new(req, "force", json_boolean(a.force));
		json_object_set_new(req, "disruptive", json_boolean(a.disruptive));
		json_object_set_new(req, "no_failback", json_boolean(a.no_failback));
	}
	if (a.node)
		json_object_set_new(req, "node", json_string(a.node));
	switch (a.op) {
	case OP_PLAN:
		res = request(socket, req, UPGCMD_REPLY_TIMEOUT_S, NULL);
		break;
	case OP_START:
		res = request(socket, req, UPGCMD_REPLY_TIMEOUT_S,
			      "the upgrade may have started: see tandemctl upgrade status");
		break;
	case OP_ABORT:
	case OP_ROLLBACK:
	case OP_FINALIZE:
		res = request(socket, req, UPGCMD_CMD_TIMEOUT_S,
			      "it may still be done: see tandemctl upgrade status");
		break;
	default:
		res = request(socket, req, CONN_REPLY_TIMEOUT_S, NULL);
		break;
	}
	if (!res)
		return EXIT_FAILED;
	if (!conn_answer_ok(res)) {
		rc = answer_error(res, json);
		json_decref(res);
		return rc;
	}
	rc = EXIT_DONE;
	switch (a.op) {
	case OP_PLAN:
		if (json)
			conn_print_json(res);
		else
			show_plan(stdout, res, path);
		if (!json_is_true(json_object_get(res, "all_ok")))
			rc = EXIT_REFUSED;
		break;
	case OP_START: {
		long long id = (long long)num(res, "id", -1);
		if (json)
			conn_print_json(res);
		else
			printf("upgrade %lld started\n", id);
		fflush(stdout);
		if (!a.detach)
			rc = watch(socket, json, id);
		break;
	}
	case OP_STATUS:
		json_object_del(res, "ok");
		if (json) {
			conn_print_json(res);
		} else {
			struct view *v = calloc(1, sizeof *v);
			if (!v) {
				fprintf(stderr, "tandemctl: out of memory\n");
				rc = EXIT_FAILED;
				break;
			}
			view_build(v, res, true, false);
			view_print_all(stdout, v);
			free(v);
		}
		break;
	case OP_REPORT: {
		json_t *rep;
		if (!json_is_number(json_object_get(res, "id")) || json_array_size(json_object_get(res, "steps")) == 0) {
			fprintf(stderr, "tandemctl: upgrade report: no upgrade to report on (state %s)\n",
				str(res, "state", "?"));
			rc = EXIT_FAILED;
			break;
		}
		rep = report_build(res, a.probe_log);
		if (!rep) {
			rc = EXIT_FAILED;
			break;
		}
		if (json)
			conn_print_json(rep);
		else
			show_report(stdout, rep);
		json_decref(rep);
		break;
	}
	default:
		if (json)
			conn_print_json(res);
		else
			printf("%s\n", str(res, "message", "done"));
		break;
	}
	json_decref(res);
	return rc;
}
