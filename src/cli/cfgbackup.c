/* cfgbackup.c - configuration backup files; see cfgbackup.h. */
#include "cfgbackup.h"
#include "../io/state.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sodium.h>

#include "../core/cfgsync.h"

static int why_set(char *why, size_t len, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int why_set(char *why, size_t len, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
	return code;
}

int cfgbackup_digest_hex(const char *yaml, size_t yaml_len, const char *ruleset,
			 size_t ruleset_len, char *hex)
{
	struct cfgsync_text t = { yaml, yaml_len, ruleset, ruleset_len };
	uint8_t *blob = NULL, d[CFGSYNC_DIGEST_LEN];
	size_t len;
	int r;

	/* libsodium picks its implementations here; idempotent. */
	if (sodium_init() < 0)
		return TND_EIO;
	r = cfgsync_doc_encode(&t, &blob, &len);
	if (r != 0)
		return r;
	cfgsync_digest(blob, len, d);
	free(blob);
	tnd_hex(d, CFGSYNC_DIGEST_LEN, hex);
	return 0;
}

json_t *cfgbackup_to_json(const struct cfgbackup *b)
{
	json_t *o = json_object(), *y, *r;

	y = json_stringn(b->yaml, b->yaml_len);
	r = json_stringn(b->ruleset, b->ruleset_len);
	if (!o || !y || !r) {
		json_decref(o);
		json_decref(y);
		json_decref(r);
		return NULL;
	}
	json_object_set_new(o, "format", json_string(CFGBACKUP_FORMAT));
	json_object_set_new(o, "cluster", json_string(b->cluster));
	json_object_set_new(o, "generation", json_integer((json_int_t)b->generation));
	json_object_set_new(o, "digest", json_string(b->digest));
	json_object_set_new(o, "created", json_integer((json_int_t)b->created));
	json_object_set_new(o, "generation_created", b->generation_created >= 0 ?
			    json_integer((json_int_t)b->generation_created) : json_null());
	json_object_set_new(o, "yaml", y);
	json_object_set_new(o, "ruleset", r);
	return o;
}

static bool is_hex64(const char *s)
{
	if (strlen(s) != CFGBACKUP_DIGEST_HEX_LEN)
		return false;
	for (; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
			return false;
	return true;
}

/* A text member: a JSON string without NUL characters, copied. */
static int take_text(json_t *o, const char *key, char **out, size_t *len, char *why,
		     size_t why_len)
{
	json_t *v = json_object_get(o, key);

	if (!json_is_string(v))
		return why_set(why, why_len, TND_EINVAL, "\"%s\" is %s, not a string", key,
			       v ? "of another type" : "missing");
	*len = json_string_length(v);
	if (memchr(json_string_value(v), '\0', *len))
		return why_set(why, why_len, TND_EINVAL, "\"%s\" contains a NUL character", key);
	*out = malloc(*len + 1);
	if (!*out)
		return why_set(why, why_len, TND_ENOSPC, "out of memory");
	memcpy(*out, json_string_value(v), *len + 1);
	return 0;
}

/* An integer member within [lo, hi]; null allowed when *out may be -1. */
static int take_int(json_t *o, const char *key, json_int_t lo, json_int_t hi, bool null_ok,
		    int64_t *out, char *why, size_t why_len)
{
	json_t *v = json_object_get(o, key);

	if (null_ok && (!v || json_is_null(v))) {
		*out = -1;
		return 0;
	}
	if (!json_is_integer(v))
		return why_set(why, why_len, TND_EINVAL, "\"%s\" is %s, not an integer", key,
			       v ? "of another type" : "missing");
	if (json_integer_value(v) < lo || json_integer_value(v) > hi)
		return why_set(why, why_len, TND_EINVAL, "\"%s\" is %" JSON_INTEGER_FORMAT
			       ", out of range", key, json_integer_value(v));
	*out = (int64_t)json_integer_value(v);
	return 0;
}

int cfgbackup_parse(const char *text, size_t len, struct cfgbackup *b, char *why,
		    size_t why_len)
{
	json_error_t jerr;
	json_t *o, *v;
	const char *fmt;
	char hex[CFGBACKUP_DIGEST_HEX_LEN + 1];
	int64_t gen;
	int r;

	memset(b, 0, sizeof *b);
	b->generation_created = -1;
	o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!o)
		return why_set(why, why_len, TND_EINVAL, "not a Tandem configuration backup: not JSON "
			       "(line %d, column %d: %s)", jerr.line, jerr.column, jerr.text);
	if (!json_is_object(o)) {
		json_decref(o);
		return why_set(why, why_len, TND_EINVAL,
			       "not a Tandem configuration backup: not a JSON object");
	}
	fmt = json_string_value(json_object_get(o, "format"));
	if (!fmt) {
		r = why_set(why, why_len, TND_EINVAL,
			    "not a Tandem configuration backup: no \"format\" string");
		goto fail;
	}
	if (strcmp(fmt, CFGBACKUP_FORMAT) != 0) {
		if (strncmp(fmt, CFGBACKUP_FORMAT_PREFIX, strlen(CFGBACKUP_FORMAT_PREFIX)) == 0)
			r = why_set(why, why_len, TND_EINVAL, "backup format \"%.40s\" is not one this "
				    "tandemctl reads (it reads \"%s\")", fmt, CFGBACKUP_FORMAT);
		else
			r = why_set(why, why_len, TND_EINVAL, "not a Tandem configuration backup: "
				    "format is \"%.40s\", not \"%s\"", fmt, CFGBACKUP_FORMAT);
		goto fail;
	}
	v = json_object_get(o, "cluster");
	if (!json_is_string(v) || json_string_length(v) == 0 ||
	    json_string_length(v) >= sizeof b->cluster ||
	    strlen(json_string_value(v)) != json_string_length(v)) {
		r = why_set(why, why_len, TND_EINVAL, "\"cluster\" is not a cluster name");
		goto fail;
	}
	memcpy(b->cluster, json_string_value(v), json_string_length(v) + 1);
	if ((r = take_int(o, "generation", 0, LLONG_MAX, false, &gen, why, why_len)) ||
	    (r = take_int(o, "created", 0, LLONG_MAX, false, &b->created, why, why_len)) ||
	    (r = take_int(o, "generation_created", 0, LLONG_MAX, true, &b->generation_created,
			  why, why_len)))
		goto fail;
	b->generation = (uint64_t)gen;
	v = json_object_get(o, "digest");
	if (!json_is_string(v) || !is_hex64(json_string_value(v))) {
		r = why_set(why, why_len, TND_EINVAL, "\"digest\" is not 64 lowercase hex digits");
		goto fail;
	}
	memcpy(b->digest, json_string_value(v), sizeof b->digest);
	if ((r = take_text(o, "yaml", &b->yaml, &b->yaml_len, why, why_len)) ||
	    (r = take_text(o, "ruleset", &b->ruleset, &b->ruleset_len, why, why_len)))
		goto fail;
	r = cfgbackup_digest_hex(b->yaml, b->yaml_len, b->ruleset, b->ruleset_len, hex);
	if (r != 0) {
		why_set(why, why_len, TND_EINVAL, "the configuration and ruleset are larger than "
			"one document may be (%d bytes)", CFGSYNC_DOC_MAX);
		r = TND_EINVAL;
		goto fail;
	}
	if (strcmp(hex, b->digest) != 0) {
		r = why_set(why, why_len, TND_EINVAL, "corrupt: the configuration text does not match "
			    "its digest (%.12s... recorded, %.12s... computed)", b->digest, hex);
		goto fail;
	}
	json_decref(o);
	return 0;
fail:
	json_decref(o);
	cfgbackup_free(b);
	return r;
}

int cfgbackup_read(const char *path, struct cfgbackup *b, char *why, size_t why_len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	size_t n;
	int r;

	memset(b, 0, sizeof *b);
	b->generation_created = -1;
	if (!f)
		return why_set(why, why_len, TND_EIO, "cannot read: %s", strerror(errno));
	buf = malloc(CFGBACKUP_FILE_MAX_BYTES + 1);
	if (!buf) {
		fclose(f);
		return why_set(why, why_len, TND_EIO, "out of memory");
	}
	n = fread(buf, 1, CFGBACKUP_FILE_MAX_BYTES + 1, f);
	if (ferror(f)) {
		r = why_set(why, why_len, TND_EIO, "cannot read: %s", strerror(errno ? errno : EIO));
	} else if (n > CFGBACKUP_FILE_MAX_BYTES) {
		r = why_set(why, why_len, TND_EINVAL, "not a Tandem configuration backup: larger "
			    "than %u MiB", CFGBACKUP_FILE_MAX_BYTES >> 20);
	} else {
		r = cfgbackup_parse(buf, n, b, why, why_len);
	}
	fclose(f);
	free(buf);
	return r;
}

int cfgbackup_write(const char *path, const char *text, size_t len, bool replace,
		    char *why, size_t why_len)
{
	const char *slash = strrchr(path, '/');
	char dir[4096], tmp[4096 + 64];
	size_t off = 0;
	int fd, r = TND_EIO;

	if (slash == path)
		snprintf(dir, sizeof dir, "/");
	else if (slash)
		snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
	else
		snprintf(dir, sizeof dir, ".");
	if (strlen(path) >= sizeof dir)
		return why_set(why, why_len, TND_EIO, "path too long");
	if (!replace && access(path, F_OK) == 0)
		return why_set(why, why_len, TND_EREFUSED, "exists (--force replaces it)");
	snprintf(tmp, sizeof tmp, "%s/.%s.tmp-XXXXXX", dir, slash ? slash + 1 : path);
	fd = mkstemp(tmp);
	if (fd < 0)
		return why_set(why, why_len, TND_EIO, "cannot create a file in %s: %s", dir,
			       strerror(errno));
	if (fchmod(fd, 0600) != 0) {
		why_set(why, why_len, TND_EIO, "chmod: %s", strerror(errno));
		goto fail;
	}
	while (off < len) {
		ssize_t w = write(fd, text + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			why_set(why, why_len, TND_EIO, "write: %s", strerror(errno));
			goto fail;
		}
		off += (size_t)w;
	}
	if (fsync(fd) != 0) {
		why_set(why, why_len, TND_EIO, "fsync: %s", strerror(errno));
		goto fail;
	}
	if (close(fd) != 0) {
		fd = -1;
		why_set(why, why_len, TND_EIO, "close: %s", strerror(errno));
		goto fail;
	}
	fd = -1;
	if (!replace) {
		/* link() fails with EEXIST when the name appeared meanwhile:
		 * never replace what the operator did not ask to replace. */
		if (link(tmp, path) == 0) {
			unlink(tmp);
		} else if (errno == EEXIST) {
			r = why_set(why, why_len, TND_EREFUSED, "exists (--force replaces it)");
			goto fail;
		} else if (access(path, F_OK) == 0) {
			/* A file system without hard links: the check above
			 * is all we can do. */
			r = why_set(why, why_len, TND_EREFUSED, "exists (--force replaces it)");
			goto fail;
		} else if (rename(tmp, path) != 0) {
			why_set(why, why_len, TND_EIO, "rename: %s", strerror(errno));
			goto fail;
		}
	} else if (rename(tmp, path) != 0) {
		why_set(why, why_len, TND_EIO, "rename: %s", strerror(errno));
		goto fail;
	}
	if (state_fsync_dir(dir) != 0)
		return why_set(why, why_len, TND_EIO, "written, but fsync of %s failed: %s", dir,
			       strerror(errno));
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return r;
}

void cfgbackup_free(struct cfgbackup *b)
{
	if (!b)
		return;
	free(b->yaml);
	free(b->ruleset);
	b->yaml = b->ruleset = NULL;
	b->yaml_len = b->ruleset_len = 0;
}
