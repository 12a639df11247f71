/* log.h - structured logging and the in-memory event history.
 *
 * Owns: the process's one log stream (stderr, one `ts=... level=...
 * event=... node=... key=value ...` line per event, SPEC section 2), the
 * ring of the last LOG_RING_LEN events that `tandemctl events` reads, and
 * the append-only DIR/events.log (one JSON object per line, rotated to
 * events.log.1 beyond LOG_FILE_MAX_BYTES). Events come from the core
 * (ACT_EVENT) and from the drivers; both go through log_event_kv so every
 * consumer sees the same history. */
#ifndef TND_LOG_H
#define TND_LOG_H

#include <stdint.h>
#include <jansson.h>
#include "../core/node.h"

#define LOG_RING_LEN 1000
#define LOG_FILE_MAX_BYTES (1024 * 1024)
#define LOG_NAME_LEN 48

struct log_entry {
	uint64_t seq;    /* 1, 2, ... in order of logging, this process */
	int64_t ts_ms;   /* wall clock, milliseconds since the epoch */
	enum ev_level level;
	char name[LOG_NAME_LEN];
	char kv[ACT_EVENT_LEN];
};

/* Node name printed in every line (may be set later, "" = none yet). */
void log_set_node(const char *node);
/* Whether LVL_DEBUG events are printed and recorded (default: not). */
void log_set_debug(bool on);
/* Start appending events to `path` (rotated beyond LOG_FILE_MAX_BYTES).
 * Events already in the file are loaded into the ring first, so the
 * history survives restarts. 0 or TND_ESYS (errno kept). */
int log_open_file(const char *path);
void log_close(void);
/* Called for every recorded event (the control socket streams them). */
void log_set_listener(void (*cb)(const struct log_entry *e, void *arg), void *arg);

/* Record one event; `kv` is "key=value key=\"quoted value\" ...". */
void log_event_kv(enum ev_level level, const char *name, const char *kv);
void log_event(enum ev_level level, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

const char *log_level_name(enum ev_level level);
/* "2026-11-21T20:40:00.123Z". buf >= 32 bytes. */
const char *log_fmt_ts(int64_t ts_ms, char *buf, size_t len);
/* Append `s` as a kv value to buf (quoted and escaped when it holds a
 * space, a quote, '=' or is empty), returning buf. */
const char *log_kv_quote(const char *s, char *buf, size_t len);

/* History: the last `limit` events (or fewer), oldest first. */
int log_ring_count(void);
const struct log_entry *log_ring_get(int i); /* 0 = oldest */

/* {"seq","ts","level","event","node","kv","fields":{key: value}}. Values
 * that are plain decimal integers become JSON integers. */
json_t *log_entry_json(const struct log_entry *e);

#endif
