/* boot.c - the boot record and the decisions on it (boot.h documents the
 * scheme and the JSON). Pure functions of their arguments. */
#include "boot.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

bool boot_version_ok(const char *v)
{
	size_t n;

	if (!v)
		return false;
	n = strlen(v);
	if (n == 0 || n >= TND_VERSION_MAX || v[0] == '.' || v[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = v[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      c == '.' || c == '+' || c == '-' || c == '_'))
			return false;
	}
	return true;
}

static void copy_str(char *dst, size_t len, const char *src)
{
	snprintf(dst, len, "%s", src ? src : "");
}

void boot_init(struct boot_state *b, const char *version, int64_t now_s)
{
	memset(b, 0, sizeof *b);
	copy_str(b->active, sizeof b->active, version);
	b->confirmed = true;
	b->activated_at_s = now_s;
	b->confirmed_at_s = now_s;
}

/* --- JSON ---------------------------------------------------------------- */

static int get_str(json_t *o, const char *key, bool nullable, char *out, size_t len,
		   char *why, size_t why_len)
{
	json_t *v = json_object_get(o, key);

	if (!v)
		return tnd_refuse(why, why_len, TND_EINVAL, "boot record: \"%s\" is missing", key);
	if (nullable && json_is_null(v)) {
		out[0] = '\0';
		return 0;
	}
	if (!json_is_string(v))
		return tnd_refuse(why, why_len, TND_EINVAL, "boot record: \"%s\" must be a string", key);
	if (json_string_length(v) >= len || strlen(json_string_value(v)) != json_string_length(v))
		return tnd_refuse(why, why_len, TND_EINVAL, "boot record: \"%s\" is too long or holds NUL",
				  key);
	copy_str(out, len, json_string_value(v));
	return 0;
}

static int get_int(json_t *o, const char *key, int64_t lo, int64_t hi, int64_t *out,
		   char *why, size_t why_len)
{
	json_t *v = json_object_get(o, key);

	if (!json_is_integer(v))
		return tnd_refuse(why, why_len, TND_EINVAL, "boot record: \"%s\" must be an integer", key);
	if (json_integer_value(v) < lo || json_integer_value(v) > hi)
		return tnd_refuse(why, why_len, TND_EINVAL,
				  "boot record: \"%s\" is %" JSON_INTEGER_FORMAT ", outside %" PRId64
				  "..%" PRId64, key, json_integer_value(v), lo, hi);
	*out = json_integer_value(v);
	return 0;
}

static int check_keys(json_t *o, const char *const *keys, size_t n, const char *what,
		      char *why, size_t why_len)
{
	const char *k;
	json_t *v;

	json_object_foreach(o, k, v) {
		size_t i;
		for (i = 0; i < n; i++)
			if (strcmp(k, keys[i]) == 0)
				break;
		if (i == n)
			return tnd_refuse(why, why_len, TND_EINVAL, "%s: unknown key \"%.40s\"", what, k);
	}
	return 0;
}

static int parse_revert(json_t *v, struct boot_state *b, char *why, size_t why_len)
{
	static const char *const keys[] = { "from", "to", "at", "reason" };
	struct boot_revert *r = &b->last_revert;
	int64_t at;
	int e;

	if (json_is_null(v))
		return 0;
	if (!json_is_object(v))
		return tnd_refuse(why, why_len, TND_EINVAL, "boot record: \"last_revert\" must be an object or null");
	if ((e = check_keys(v, keys, 4, "boot record: last_revert", why, why_len)) != 0 ||
	    (e = get_str(v, "from", false, r->from, sizeof r->from, why, why_len)) != 0 ||
	    (e = get_str(v, "to", false, r->to, sizeof r->to, why, why_len)) != 0 ||
	    (e = get_str(v, "reason", false, r->reason, sizeof r->reason, why, why_len)) != 0 ||
	    (e = get_int(v, "at", 0, INT64_MAX, &at, why, why_len)) != 0)
		return e;
	r->at_s = at;
	b->reverted = true;
	return 0;
}

int boot_parse(const char *json, size_t len, struct boot_state *b, char *why, size_t why_len)
{
	static const char *const keys[] = {
		"format", "active", "previous", "confirmed", "tries", "hold_timer_s", "expect_peers",
		"activated_at", "confirmed_at", "waiting_for", "last_failure", "last_revert",
	};
	json_error_t jerr;
	json_t *o, *v;
	char fmt[32];
	int64_t x;
	size_t i;
	int e;

	memset(b, 0, sizeof *b);
	if (len > BOOT_JSON_BYTES_MAX)
		return tnd_refuse(why, why_len, TND_EINVAL, "boot record: larger than %d bytes",
				  BOOT_JSON_BYTES_MAX);
	o = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!o)
		return tnd_refuse(why, why_len, TND_EINVAL, "boot record: not JSON (line %d: %s)",
				  jerr.line, jerr.text);
	e = TND_EINVAL;
	if (!json_is_object(o)) {
		tnd_refuse(why, why_len, e, "boot record: not a JSON object");
		goto out;
	}
	if ((e = check_keys(o, keys, sizeof keys / sizeof keys[0], "boot record", why, why_len)) != 0 ||
	    (e = get_str(o, "format", false, fmt, sizeof fmt, why, why_len)) != 0)
		goto out;
	if (strcmp(fmt, BOOT_FORMAT) != 0) {
		e = tnd_refuse(why, why_len, TND_EINVAL, "boot record: format \"%s\", this tandemd reads "
			       "\"%s\"", fmt, BOOT_FORMAT);
		goto out;
	}
	if ((e = get_str(o, "active", false, b->active, sizeof b->active, why, why_len)) != 0 ||
	    (e = get_str(o, "previous", true, b->previous, sizeof b->previous, why, why_len)) != 0 ||
	    (e = get_str(o, "waiting_for", false, b->waiting_for, sizeof b->waiting_for, why, why_len)) != 0 ||
	    (e = get_str(o, "last_failure", false, b->last_failure, sizeof b->last_failure, why, why_len)) != 0)
		goto out;
	e = TND_EINVAL;
	if (!boot_version_ok(b->active)) {
		tnd_refuse(why, why_len, e, "boot record: \"active\" is not a version: \"%s\"", b->active);
		goto out;
	}
	if (b->previous[0] && !boot_version_ok(b->previous)) {
		tnd_refuse(why, why_len, e, "boot record: \"previous\" is not a version: \"%s\"", b->previous);
		goto out;
	}
	if (strcmp(b->active, b->previous) == 0) {
		tnd_refuse(why, why_len, e, "boot record: \"active\" and \"previous\" are both %s", b->active);
		goto out;
	}
	v = json_object_get(o, "confirmed");
	if (!json_is_boolean(v)) {
		tnd_refuse(why, why_len, e, "boot record: \"confirmed\" must be true or false");
		goto out;
	}
	b->confirmed = json_is_true(v);
	if ((e = get_int(o, "tries", 0, 1000, &x, why, why_len)) != 0)
		goto out;
	b->tries = (uint32_t)x;
	if ((e = get_int(o, "hold_timer_s", 0, 7 * 86400, &x, why, why_len)) != 0)
		goto out;
	b->hold_timer_s = (uint32_t)x;
	if ((e = get_int(o, "activated_at", 0, INT64_MAX, &b->activated_at_s, why, why_len)) != 0 ||
	    (e = get_int(o, "confirmed_at", 0, INT64_MAX, &b->confirmed_at_s, why, why_len)) != 0)
		goto out;
	e = TND_EINVAL;
	v = json_object_get(o, "expect_peers");
	if (!json_is_array(v) || json_array_size(v) > BOOT_PEERS_MAX) {
		tnd_refuse(why, why_len, e, "boot record: \"expect_peers\" must be a list of at most %d names",
			   BOOT_PEERS_MAX);
		goto out;
	}
	for (i = 0; i < json_array_size(v); i++) {
		json_t *p = json_array_get(v, i);
		if (!json_is_string(p) || json_string_length(p) == 0 ||
		    json_string_length(p) >= TND_NAME_MAX ||
		    strlen(json_string_value(p)) != json_string_length(p)) {
			tnd_refuse(why, why_len, e, "boot record: expect_peers[%zu] is not a node name", i);
			goto out;
		}
		copy_str(b->peers[b->n_peers++], TND_NAME_MAX, json_string_value(p));
	}
	v = json_object_get(o, "last_revert");
	if (!v) {
		tnd_refuse(why, why_len, e, "boot record: \"last_revert\" is missing");
		goto out;
	}
	e = parse_revert(v, b, why, why_len);
out:
	json_decref(o);
	return e;
}

int boot_emit(const struct boot_state *b, char **json, size_t *len)
{
	json_t *o, *peers = json_array(), *rev;
	char *s;

	if (!peers)
		return TND_ENOSPC;
	for (int i = 0; i < b->n_peers; i++)
		json_array_append_new(peers, json_string(b->peers[i]));
	rev = b->reverted ? json_pack("{s:s,s:s,s:I,s:s}", "from", b->last_revert.from,
				      "to", b->last_revert.to, "at", (json_int_t)b->last_revert.at_s,
				      "reason", b->last_revert.reason)
			  : json_null();
	o = json_pack("{s:s,s:s,s:s,s:b,s:I,s:I,s:o,s:I,s:I,s:s,s:s,s:o}",
		      "format", BOOT_FORMAT, "active", b->active, "previous", b->previous,
		      "confirmed", b->confirmed, "tries", (json_int_t)b->tries,
		      "hold_timer_s", (json_int_t)b->hold_timer_s, "expect_peers", peers,
		      "activated_at", (json_int_t)b->activated_at_s,
		      "confirmed_at", (json_int_t)b->confirmed_at_s, "waiting_for", b->waiting_for,
		      "last_failure", b->last_failure, "last_revert", rev);
	if (!o)
		return TND_EINVAL;
	s = json_dumps(o, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
	json_decref(o);
	if (!s)
		return TND_ENOSPC;
	*len = strlen(s);
	/* One more byte for the newline: json_dumps leaves none. */
	char *t = realloc(s, *len + 2);
	if (!t) {
		free(s);
		return TND_ENOSPC;
	}
	t[(*len)++] = '\n';
	t[*len] = '\0';
	*json = t;
	return 0;
}

/* --- decisions ------------------------------------------------------------ */

int boot_activate(struct boot_state *b, const char *version, uint32_t hold_timer_s,
		  const char *const *peers, int n_peers, int64_t now_s, char *why, size_t why_len)
{
	if (!boot_version_ok(version))
		return tnd_refuse(why, why_len, TND_EINVAL, "\"%.40s\" is not a version", version ? version : "");
	if (strcmp(version, b->active) == 0)
		return tnd_refuse(why, why_len, TND_EREFUSED, "%s is already the active version", version);
	if (!b->confirmed && b->tries > 0)
		return tnd_refuse(why, why_len, TND_EREFUSED,
				  "the active version %s is still on trial (not yet confirmed healthy); "
				  "a new version can be activated once it is confirmed or reverted", b->active);
	if (n_peers < 0 || n_peers > BOOT_PEERS_MAX)
		return tnd_refuse(why, why_len, TND_EINVAL, "too many peers");
	if (!b->confirmed) {
		/* Activated but never started: only a plan, which this one
		 * replaces; previous stays the confirmed version. Activating
		 * that one cancels the plan. */
		if (strcmp(version, b->previous) == 0) {
			copy_str(b->previous, sizeof b->previous, b->active);
			copy_str(b->active, sizeof b->active, version);
			b->confirmed = true;
			b->confirmed_at_s = now_s;
			b->hold_timer_s = 0;
			b->n_peers = 0;
			return 0;
		}
	} else {
		copy_str(b->previous, sizeof b->previous, b->active);
	}
	copy_str(b->active, sizeof b->active, version);
	b->confirmed = false;
	b->tries = 0;
	b->hold_timer_s = hold_timer_s;
	b->activated_at_s = now_s;
	b->confirmed_at_s = 0;
	b->waiting_for[0] = '\0';
	b->last_failure[0] = '\0';
	b->n_peers = 0;
	for (int i = 0; i < n_peers; i++)
		copy_str(b->peers[b->n_peers++], TND_NAME_MAX, peers[i]);
	return 0;
}

int boot_confirm(struct boot_state *b, const char *version, int64_t now_s)
{
	if (strcmp(version, b->active) != 0)
		return TND_EREFUSED;
	if (b->confirmed)
		return TND_ENOENT;
	b->confirmed = true;
	b->confirmed_at_s = now_s;
	b->tries = 0;
	b->waiting_for[0] = '\0';
	return 0;
}

bool boot_set_waiting(struct boot_state *b, const char *what)
{
	char w[BOOT_REASON_LEN] = { 0 };

	copy_str(w, sizeof w, what);
	if (strcmp(w, b->waiting_for) == 0)
		return false;
	memcpy(b->waiting_for, w, sizeof w);
	return true;
}

enum boot_next boot_before_start(struct boot_state *b, char *why, size_t why_len)
{
	if (b->confirmed)
		return BOOT_START;
	if (b->tries >= BOOT_TRIES_MAX) {
		tnd_refuse(why, why_len, 0, "%s was started %u times and never confirmed healthy%s%s",
			   b->active, b->tries, b->last_failure[0] ? "; last start: " : "",
			   b->last_failure);
		return BOOT_REVERT;
	}
	b->tries++;
	return BOOT_START;
}

/* Signal names without the libc's tables (pure): the ones a crash or a
 * kill gives. */
static const char *sig_name(int s)
{
	switch (s) {
	case SIGABRT: return "ABRT";
	case SIGBUS: return "BUS";
	case SIGFPE: return "FPE";
	case SIGHUP: return "HUP";
	case SIGILL: return "ILL";
	case SIGINT: return "INT";
	case SIGKILL: return "KILL";
	case SIGPIPE: return "PIPE";
	case SIGQUIT: return "QUIT";
	case SIGSEGV: return "SEGV";
	case SIGSYS: return "SYS";
	case SIGTERM: return "TERM";
	case SIGTRAP: return "TRAP";
	default: return NULL;
	}
}

enum boot_next boot_after_exit(struct boot_state *b, const struct boot_exit *e, bool stopping,
			       uint32_t *delay_ms)
{
	uint32_t d = BOOT_BACKOFF_MS_FIRST;

	*delay_ms = 0;
	if (stopping)
		return BOOT_EXIT;
	if (!e->signaled && e->code == BOOT_EXIT_RESTART)
		return BOOT_START;
	if (b->confirmed || (!e->signaled && e->code == 0))
		return BOOT_EXIT;
	if (e->signaled && sig_name(e->code))
		snprintf(b->last_failure, sizeof b->last_failure, "killed by signal %s", sig_name(e->code));
	else if (e->signaled)
		snprintf(b->last_failure, sizeof b->last_failure, "killed by signal %d", e->code);
	else
		snprintf(b->last_failure, sizeof b->last_failure, "exited with status %d", e->code);
	/* The last try's failure is answered at once: boot_before_start
	 * reverts and there is nothing to wait for. */
	if (b->tries >= BOOT_TRIES_MAX)
		return BOOT_START;
	for (uint32_t i = 1; i < b->tries && d < BOOT_BACKOFF_MS_MAX; i++)
		d *= 2;
	*delay_ms = d < BOOT_BACKOFF_MS_MAX ? d : BOOT_BACKOFF_MS_MAX;
	return BOOT_START;
}

int boot_exit_status(const struct boot_exit *e)
{
	if (e->signaled)
		return 128 + (e->code & 0x7f);
	return e->code & 0xff;
}

bool boot_hold_expired(const struct boot_state *b, int64_t run_ms, char *why, size_t why_len)
{
	if (b->confirmed || b->hold_timer_s == 0 || run_ms < (int64_t)b->hold_timer_s * 1000)
		return false;
	tnd_refuse(why, why_len, 0, "%s was not confirmed healthy within hold_timer_s (%u s)%s%s",
		   b->active, b->hold_timer_s, b->waiting_for[0] ? "; it was waiting for " : "",
		   b->waiting_for);
	return true;
}

int boot_revert(struct boot_state *b, const char *reason, int64_t now_s, char *why, size_t why_len)
{
	char failed[TND_VERSION_MAX];

	if (!b->previous[0])
		return tnd_refuse(why, why_len, TND_ENOENT,
				  "%s is to be given up but there is no previous version to return to",
				  b->active);
	copy_str(failed, sizeof failed, b->active);
	copy_str(b->last_revert.from, sizeof b->last_revert.from, failed);
	copy_str(b->last_revert.to, sizeof b->last_revert.to, b->previous);
	copy_str(b->last_revert.reason, sizeof b->last_revert.reason, reason);
	b->last_revert.at_s = now_s;
	b->reverted = true;
	copy_str(b->active, sizeof b->active, b->previous);
	copy_str(b->previous, sizeof b->previous, failed);
	b->confirmed = true;
	b->confirmed_at_s = now_s;
	b->tries = 0;
	b->hold_timer_s = 0;
	b->n_peers = 0;
	b->waiting_for[0] = '\0';
	b->last_failure[0] = '\0'; /* the failed version's: now in the reason */
	return 0;
}

const char *boot_role(const struct boot_state *b, const char *version)
{
	if (strcmp(version, b->active) == 0)
		return "active";
	if (b->previous[0] && strcmp(version, b->previous) == 0)
		return "previous";
	return "installed";
}
