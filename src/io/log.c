/* log.c - structured log lines, the event ring and events.log.
 *
 * Owns: process-wide logging state (one logger per process, like syslog:
 * a file-static struct rather than a handle threaded through every
 * driver). stderr lines are written with one write(2) each so that lines
 * from a dying process or a hook never interleave mid-line. events.log is
 * append-only and not fsync'ed per line: it is an operator's history, not
 * a journal the cluster's safety depends on. */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static struct {
	char node[TND_NAME_MAX];
	bool debug;
	int fd; /* events.log, -1 = none */
	char path[TND_PATH_MAX];
	off_t size;
	struct log_entry ring[LOG_RING_LEN];
	int head;  /* index of the oldest entry */
	int count;
	uint64_t seq;
	void (*listener)(const struct log_entry *e, void *arg);
	void *listener_arg;
} g_log = { .fd = -1 };

static const char *const level_names[] = {
	[LVL_DEBUG] = "debug", [LVL_INFO] = "info",
	[LVL_WARN] = "warn", [LVL_ERROR] = "error",
};

const char *log_level_name(enum ev_level level)
{
	if ((unsigned)level < sizeof level_names / sizeof level_names[0])
		return level_names[level];
	return "unknown";
}

static int level_from_name(const char *s, enum ev_level *out)
{
	for (unsigned i = 0; i < sizeof level_names / sizeof level_names[0]; i++)
		if (strcmp(s, level_names[i]) == 0) {
			*out = (enum ev_level)i;
			return 0;
		}
	return TND_EINVAL;
}

void log_set_node(const char *node)
{
	snprintf(g_log.node, sizeof g_log.node, "%s", node ? node : "");
}

void log_set_debug(bool on)
{
	g_log.debug = on;
}

void log_set_listener(void (*cb)(const struct log_entry *e, void *arg), void *arg)
{
	g_log.listener = cb;
	g_log.listener_arg = arg;
}

const char *log_fmt_ts(int64_t ts_ms, char *buf, size_t len)
{
	time_t secs = (time_t)(ts_ms / 1000);
	struct tm tm;
	char base[24];

	gmtime_r(&secs, &tm);
	strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, len, "%s.%03dZ", base, (int)(ts_ms % 1000));
	return buf;
}

static int64_t parse_ts(const char *s)
{
	struct tm tm;
	int ms = 0;
	const char *rest;

	memset(&tm, 0, sizeof tm);
	rest = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!rest)
		return 0;
	if (*rest == '.')
		ms = atoi(rest + 1);
	return (int64_t)timegm(&tm) * 1000 + ms;
}

const char *log_kv_quote(const char *s, char *buf, size_t len)
{
	bool plain = *s != '\0';
	size_t o = 0;

	for (const char *p = s; *p && plain; p++)
		if (*p == ' ' || *p == '"' || *p == '=' || *p == '\\' ||
		    (unsigned char)*p < 0x20)
			plain = false;
	if (plain) {
		snprintf(buf, len, "%s", s);
		return buf;
	}
	if (len < 3) {
		if (len)
			buf[0] = '\0';
		return buf;
	}
	buf[o++] = '"';
	for (const char *p = s; *p && o + 3 < len; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '"' || c == '\\')
			buf[o++] = '\\';
		buf[o++] = c < 0x20 ? '?' : (char)c;
	}
	buf[o++] = '"';
	buf[o] = '\0';
	return buf;
}

/* Parse "k=v k2=\"v 2\"" into a JSON object. Tokens without '=' are kept
 * under their own name with a true value rather than silently lost. */
static json_t *kv_to_json(const char *kv)
{
	json_t *o = json_object();
	const char *p = kv;

	while (*p) {
		char key[64], val[ACT_EVENT_LEN];
		size_t k = 0, v = 0;
		bool has_val = false;

		while (*p == ' ')
			p++;
		if (!*p)
			break;
		while (*p && *p != '=' && *p != ' ') {
			if (k + 1 < sizeof key)
				key[k++] = *p;
			p++;
		}
		key[k] = '\0';
		if (*p == '=') {
			has_val = true;
			p++;
			if (*p == '"') {
				p++;
				while (*p && *p != '"') {
					if (*p == '\\' && p[1])
						p++;
					if (v + 1 < sizeof val)
						val[v++] = *p;
					p++;
				}
				if (*p == '"')
					p++;
			} else {
				while (*p && *p != ' ') {
					if (v + 1 < sizeof val)
						val[v++] = *p;
					p++;
				}
			}
		}
		val[v] = '\0';
		if (k == 0)
			continue;
		if (!has_val) {
			json_object_set_new(o, key, json_true());
			continue;
		}
		/* Plain integers (no sign games, no leading zeros, fits in
		 * int64) are numbers so `jq 'select(.fields.group == 1)'`
		 * works; everything else stays a string. */
		bool num = v > 0 && v <= 18 && !(val[0] == '0' && v > 1);
		for (size_t i = 0; i < v && num; i++)
			if (val[i] < '0' || val[i] > '9')
				num = false;
		if (num)
			json_object_set_new(o, key, json_integer(strtoll(val, NULL, 10)));
		else
			json_object_set_new(o, key, json_string(val));
	}
	return o;
}

json_t *log_entry_json(const struct log_entry *e)
{
	char ts[40];
	json_t *o = json_object();

	json_object_set_new(o, "seq", json_integer((json_int_t)e->seq));
	json_object_set_new(o, "ts", json_string(log_fmt_ts(e->ts_ms, ts, sizeof ts)));
	json_object_set_new(o, "level", json_string(log_level_name(e->level)));
	json_object_set_new(o, "event", json_string(e->name));
	json_object_set_new(o, "node", g_log.node[0] ? json_string(g_log.node) : json_null());
	json_object_set_new(o, "kv", json_string(e->kv));
	json_object_set_new(o, "fields", kv_to_json(e->kv));
	return o;
}

static struct log_entry *ring_push(void)
{
	struct log_entry *e;

	if (g_log.count < LOG_RING_LEN) {
		e = &g_log.ring[(g_log.head + g_log.count) % LOG_RING_LEN];
		g_log.count++;
	} else {
		e = &g_log.ring[g_log.head];
		g_log.head = (g_log.head + 1) % LOG_RING_LEN;
	}
	e->seq = ++g_log.seq;
	return e;
}

int log_ring_count(void)
{
	return g_log.count;
}

const struct log_entry *log_ring_get(int i)
{
	if (i < 0 || i >= g_log.count)
		return NULL;
	return &g_log.ring[(g_log.head + i) % LOG_RING_LEN];
}

static int file_open(void)
{
	struct stat st;

	g_log.fd = open(g_log.path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (g_log.fd < 0)
		return TND_ESYS;
	g_log.size = fstat(g_log.fd, &st) == 0 ? st.st_size : 0;
	return 0;
}

/* Keep one previous generation: events.log.1. */
static void file_rotate(void)
{
	char old[TND_PATH_MAX + 8];

	close(g_log.fd);
	g_log.fd = -1;
	snprintf(old, sizeof old, "%s.1", g_log.path);
	if (rename(g_log.path, old) != 0)
		(void)unlink(g_log.path);
	(void)file_open();
}

static void file_append(const struct log_entry *e)
{
	json_t *o;
	char *s;
	size_t n;

	if (g_log.fd < 0)
		return;
	o = log_entry_json(e);
	s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!s)
		return;
	n = strlen(s);
	s[n] = '\n'; /* json_dumps leaves room for the NUL; reuse it */
	if (g_log.size + (off_t)n + 1 > LOG_FILE_MAX_BYTES)
		file_rotate();
	if (g_log.fd >= 0 && write(g_log.fd, s, n + 1) == (ssize_t)(n + 1))
		g_log.size += (off_t)n + 1;
	free(s);
}

/* Load the tail of an existing events.log into the ring. Lines that do
 * not parse are skipped: the file is history, not input we trust. */
static void file_load(void)
{
	FILE *f = fopen(g_log.path, "re");
	char *line = NULL;
	size_t cap = 0;

	if (!f)
		return;
	while (getline(&line, &cap, f) > 0) {
		json_t *o = json_loads(line, 0, NULL);
		const char *lv, *name, *kv, *ts;
		enum ev_level level;
		struct log_entry *e;

		if (!o)
			continue;
		lv = json_string_value(json_object_get(o, "level"));
		name = json_string_value(json_object_get(o, "event"));
		kv = json_string_value(json_object_get(o, "kv"));
		ts = json_string_value(json_object_get(o, "ts"));
		if (lv && name && kv && ts && level_from_name(lv, &level) == 0) {
			e = ring_push();
			e->ts_ms = parse_ts(ts);
			e->level = level;
			snprintf(e->name, sizeof e->name, "%s", name);
			snprintf(e->kv, sizeof e->kv, "%s", kv);
		}
		json_decref(o);
	}
	free(line);
	fclose(f);
}

int log_open_file(const char *path)
{
	if (snprintf(g_log.path, sizeof g_log.path, "%s", path) >= (int)sizeof g_log.path) {
		errno = ENAMETOOLONG;
		return TND_ESYS;
	}
	file_load();
	return file_open();
}

void log_close(void)
{
	if (g_log.fd >= 0)
		close(g_log.fd);
	g_log.fd = -1;
	g_log.listener = NULL;
}

void log_event_kv(enum ev_level level, const char *name, const char *kv)
{
	struct timespec ts;
	struct log_entry *e;
	char tsbuf[40], line[ACT_EVENT_LEN + 256];
	int n;

	if (level == LVL_DEBUG && !g_log.debug)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	e = ring_push();
	e->ts_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	e->level = level;
	snprintf(e->name, sizeof e->name, "%s", name);
	snprintf(e->kv, sizeof e->kv, "%s", kv ? kv : "");

	n = snprintf(line, sizeof line, "ts=%s level=%s event=%s",
		     log_fmt_ts(e->ts_ms, tsbuf, sizeof tsbuf),
		     log_level_name(level), e->name);
	if (g_log.node[0] && n < (int)sizeof line)
		n += snprintf(line + n, sizeof line - n, " node=%s", g_log.node);
	if (e->kv[0] && n < (int)sizeof line)
		n += snprintf(line + n, sizeof line - n, " %s", e->kv);
	if (n >= (int)sizeof line - 1)
		n = (int)sizeof line - 2;
	line[n++] = '\n';
	/* A failed write to stderr has nowhere to be reported. */
	if (write(STDERR_FILENO, line, (size_t)n) < 0)
		(void)0;

	file_append(e);
	if (g_log.listener)
		g_log.listener(e, g_log.listener_arg);
}

void log_event(enum ev_level level, const char *name, const char *fmt, ...)
{
	char kv[ACT_EVENT_LEN];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(kv, sizeof kv, fmt, ap);
	va_end(ap);
	log_event_kv(level, name, kv);
}
