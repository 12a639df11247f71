/* manifest.c - the image manifest: strict reader, canonical writer, path
 * and version rules (manifest.h documents the format).
 *
 * Owns nothing but the code: pure functions of their arguments. The reader
 * is deliberately unforgiving: the manifest is signed, so there is never a
 * reason to accept a second spelling of the same content, and every field
 * it does not know could be a field a newer format relies on for safety. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <sodium.h>

#include "manifest.h"

/* --- versions ---------------------------------------------------------- */

/* Split "MAJOR[.MINOR[.PATCH]]" into three numbers. */
static int version_parse(const char *v, long part[3])
{
	int n = 0;
	const char *s = v;

	part[0] = part[1] = part[2] = 0;
	if (!v || !*v)
		return TND_EINVAL;
	for (;;) {
		long x = 0;
		const char *start = s;

		if (n == 3)
			return TND_EINVAL;
		while (*s >= '0' && *s <= '9') {
			x = x * 10 + (*s - '0');
			if (x > MANIFEST_VERSION_PART_MAX)
				return TND_EINVAL;
			s++;
		}
		if (s == start)
			return TND_EINVAL; /* empty part, or not a digit */
		if (s - start > 1 && *start == '0')
			return TND_EINVAL; /* "01": one spelling per version */
		part[n++] = x;
		if (*s == '\0')
			return 0;
		if (*s != '.')
			return TND_EINVAL;
		s++;
	}
}

int version_check(const char *v)
{
	long p[3];

	return version_parse(v, p);
}

int version_cmp(const char *a, const char *b, int *out)
{
	long pa[3], pb[3];

	if (version_parse(a, pa) != 0 || version_parse(b, pb) != 0)
		return TND_EINVAL;
	*out = 0;
	for (int i = 0; i < 3 && *out == 0; i++)
		*out = pa[i] < pb[i] ? -1 : pa[i] > pb[i];
	return 0;
}

int version_default_min(const char *v, char *out, size_t out_len)
{
	long p[3];

	if (version_parse(v, p) != 0)
		return TND_EINVAL;
	if (snprintf(out, out_len, "%ld.0.0", p[0]) >= (int)out_len)
		return TND_EINVAL;
	return 0;
}

void manifest_key_id(const uint8_t pk[32], uint8_t id[MANIFEST_KEY_ID_LEN])
{
	uint8_t h[32];

	crypto_generichash(h, sizeof h, pk, 32, NULL, 0);
	memcpy(id, h, MANIFEST_KEY_ID_LEN);
}

/* --- paths ------------------------------------------------------------- */

static int path_char_ok(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '+' || c == '-';
}

int manifest_path_check(const char *path, char *why, size_t why_len)
{
	size_t len = strlen(path);
	const char *c, *slash;
	int n = 0;

	if (len == 0)
		return tnd_refuse(why, why_len, TND_EINVAL, "a path is empty");
	if (len >= MANIFEST_PATH_MAX)
		return tnd_refuse(why, why_len, TND_EINVAL, "path '%.60s...' is longer than %d bytes",
				  path, MANIFEST_PATH_MAX - 1);
	if (path[0] == '/')
		return tnd_refuse(why, why_len, TND_EINVAL, "path '%s' is absolute", path);
	/* Component by component: ".." and "." before the character check,
	 * so the reason names the escape rather than a character. */
	for (c = path;; c = slash + 1) {
		size_t clen;

		slash = strchr(c, '/');
		clen = slash ? (size_t)(slash - c) : strlen(c);
		if (clen == 0)
			return tnd_refuse(why, why_len, TND_EINVAL, "path '%s' has an empty component", path);
		if (clen == 2 && c[0] == '.' && c[1] == '.')
			return tnd_refuse(why, why_len, TND_EINVAL,
					  "path '%s' has a '..' component (it would escape the image)", path);
		if (clen == 1 && c[0] == '.')
			return tnd_refuse(why, why_len, TND_EINVAL, "path '%s' has a '.' component", path);
		for (size_t i = 0; i < clen; i++)
			if (!path_char_ok(c[i]))
				return tnd_refuse(why, why_len, TND_EINVAL,
						  "path '%s' has a character outside A-Z a-z 0-9 . _ + - "
						  "(byte 0x%02x)", path, (unsigned char)c[i]);
		if (n == 0 && !((clen == 3 && memcmp(c, "bin", 3) == 0) ||
				(clen == 5 && memcmp(c, "hooks", 5) == 0)))
			return tnd_refuse(why, why_len, TND_EINVAL,
					  "path '%s' is not under bin/ or hooks/", path);
		n++;
		if (!slash)
			break;
	}
	if (n < 2)
		return tnd_refuse(why, why_len, TND_EINVAL, "path '%s' names a directory, not a file "
				  "under it", path);
	return 0;
}

/* --- the whole manifest ------------------------------------------------ */

static const char *required_files[] = { "bin/tandemctl", "bin/tandemd" };

int manifest_check(const struct manifest *m, char *why, size_t why_len)
{
	int c;
	uint64_t total = 0;

	if (strcmp(m->format, MANIFEST_FORMAT) != 0)
		return tnd_refuse(why, why_len, TND_EINVAL, "format '%.31s' is not %s", m->format,
				  MANIFEST_FORMAT);
	if (strcmp(m->name, MANIFEST_NAME) != 0)
		return tnd_refuse(why, why_len, TND_EINVAL, "name '%.31s' is not %s", m->name,
				  MANIFEST_NAME);
	if (version_check(m->version) != 0)
		return tnd_refuse(why, why_len, TND_EINVAL,
				  "version '%.31s' is not a version (MAJOR.MINOR.PATCH, each 0..%d, "
				  "no leading zeros)", m->version, MANIFEST_VERSION_PART_MAX);
	if (version_check(m->min_upgrade_from) != 0)
		return tnd_refuse(why, why_len, TND_EINVAL,
				  "min_upgrade_from '%.31s' is not a version (MAJOR.MINOR.PATCH, each "
				  "0..%d, no leading zeros)", m->min_upgrade_from, MANIFEST_VERSION_PART_MAX);
	version_cmp(m->min_upgrade_from, m->version, &c);
	if (c > 0)
		return tnd_refuse(why, why_len, TND_EINVAL,
				  "min_upgrade_from %s is newer than the version %s itself",
				  m->min_upgrade_from, m->version);
	if (m->proto_min < 1 || m->proto_max < m->proto_min)
		return tnd_refuse(why, why_len, TND_EINVAL,
				  "protocol range %u..%u is not 1 <= proto_min <= proto_max <= 255",
				  m->proto_min, m->proto_max);
	if (m->built < 0)
		return tnd_refuse(why, why_len, TND_EINVAL, "built %" PRId64 " is before 1970", m->built);
	if (m->n_files < 1 || m->n_files > MANIFEST_FILES_MAX)
		return tnd_refuse(why, why_len, TND_EINVAL, "%d files listed (1..%d allowed)",
				  m->n_files, MANIFEST_FILES_MAX);
	for (int i = 0; i < m->n_files; i++) {
		const struct manifest_file *f = &m->files[i];
		char pwhy[200];

		if (!memchr(f->path, '\0', sizeof f->path))
			return tnd_refuse(why, why_len, TND_EINVAL, "file %d: path not terminated", i);
		if (manifest_path_check(f->path, pwhy, sizeof pwhy) != 0)
			return tnd_refuse(why, why_len, TND_EINVAL, "%s", pwhy);
		if (i > 0) {
			int o = strcmp(m->files[i - 1].path, f->path);
			if (o == 0)
				return tnd_refuse(why, why_len, TND_EINVAL, "path '%s' is listed twice", f->path);
			if (o > 0)
				return tnd_refuse(why, why_len, TND_EINVAL,
						  "files are not sorted by path ('%s' after '%s')",
						  f->path, m->files[i - 1].path);
		}
		if (f->mode > 0777)
			return tnd_refuse(why, why_len, TND_EINVAL,
					  "'%s': mode %04o has bits beyond 0777 (set-id or sticky)",
					  f->path, f->mode);
		if (f->size > MANIFEST_FILE_BYTES_MAX)
			return tnd_refuse(why, why_len, TND_EINVAL,
					  "'%s': size %" PRIu64 " bytes is more than the %llu allowed",
					  f->path, f->size, MANIFEST_FILE_BYTES_MAX);
		total += f->size;
		if (total > MANIFEST_FILES_BYTES_MAX)
			return tnd_refuse(why, why_len, TND_EINVAL,
					  "the files add up to more than %llu bytes", MANIFEST_FILES_BYTES_MAX);
	}
	/* A file that is also another file's directory could not be
	 * extracted; say so here rather than half-way through writing. */
	for (int i = 0; i < m->n_files; i++) {
		size_t li = strlen(m->files[i].path);
		for (int j = 0; j < m->n_files; j++)
			if (j != i && strncmp(m->files[j].path, m->files[i].path, li) == 0 &&
			    m->files[j].path[li] == '/')
				return tnd_refuse(why, why_len, TND_EINVAL,
						  "'%s' is both a file and the directory of '%s'",
						  m->files[i].path, m->files[j].path);
	}
	for (size_t r = 0; r < sizeof required_files / sizeof required_files[0]; r++) {
		int i;
		for (i = 0; i < m->n_files; i++)
			if (strcmp(m->files[i].path, required_files[r]) == 0)
				break;
		if (i == m->n_files)
			return tnd_refuse(why, why_len, TND_EINVAL, "%s is not in the image",
					  required_files[r]);
		if ((m->files[i].mode & 0500) != 0500)
			return tnd_refuse(why, why_len, TND_EINVAL,
					  "%s has mode %04o: its owner cannot read and execute it",
					  required_files[r], m->files[i].mode);
	}
	return 0;
}

/* Lower-case hex of exactly n bytes; anything else is refused so a
 * signed manifest has one spelling. */
static int hex_decode(const char *s, uint8_t *out, size_t n)
{
	if (strlen(s) != 2 * n)
		return TND_EINVAL;
	for (size_t i = 0; i < 2 * n; i++) {
		char c = s[i];
		int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
		if (v < 0)
			return TND_EINVAL;
		if (i % 2 == 0)
			out[i / 2] = (uint8_t)(v << 4);
		else
			out[i / 2] |= (uint8_t)v;
	}
	return 0;
}

/* The fields of an object must be exactly `names` (n of them). */
static int object_fields(json_t *o, const char *what, const char *const *names, size_t n,
			 char *why, size_t why_len)
{
	const char *k;
	json_t *v;

	json_object_foreach(o, k, v) {
		size_t i;
		for (i = 0; i < n; i++)
			if (strcmp(k, names[i]) == 0)
				break;
		if (i == n)
			return tnd_refuse(why, why_len, TND_EINVAL, "%s: unknown field '%.60s'", what, k);
	}
	for (size_t i = 0; i < n; i++)
		if (!json_object_get(o, names[i]))
			return tnd_refuse(why, why_len, TND_EINVAL, "%s: missing field '%s'", what, names[i]);
	return 0;
}

/* A string field copied into buf (strlen < cap). */
static int get_str(json_t *o, const char *what, const char *k, char *buf, size_t cap,
		   char *why, size_t why_len)
{
	json_t *v = json_object_get(o, k);
	const char *s = json_string_value(v);

	if (!json_is_string(v))
		return tnd_refuse(why, why_len, TND_EINVAL, "%s: field '%s' must be a string", what, k);
	if (json_string_length(v) >= cap)
		return tnd_refuse(why, why_len, TND_EINVAL, "%s: field '%s' is longer than %zu bytes",
				  what, k, cap - 1);
	memcpy(buf, s, json_string_length(v) + 1);
	return 0;
}

static int get_int(json_t *o, const char *what, const char *k, json_int_t lo, json_int_t hi,
		   json_int_t *out, char *why, size_t why_len)
{
	json_t *v = json_object_get(o, k);

	if (!json_is_integer(v))
		return tnd_refuse(why, why_len, TND_EINVAL, "%s: field '%s' must be an integer", what, k);
	*out = json_integer_value(v);
	if (*out < lo || *out > hi)
		return tnd_refuse(why, why_len, TND_EINVAL, "%s: field '%s' is %lld, not %lld..%lld",
				  what, k, (long long)*out, (long long)lo, (long long)hi);
	return 0;
}

static const char *const top_fields[] = {
	"built", "files", "format", "key_id", "min_upgrade_from", "name",
	"proto_max", "proto_min", "version",
};
static const char *const file_fields[] = { "digest", "mode", "path", "size" };

static int parse_file(json_t *o, int i, struct manifest_file *f, char *why, size_t why_len)
{
	char what[48], buf[80];
	json_int_t n;
	int r;

	snprintf(what, sizeof what, "files[%d]", i);
	if (!json_is_object(o))
		return tnd_refuse(why, why_len, TND_EINVAL, "%s must be an object", what);
	if ((r = object_fields(o, what, file_fields, 4, why, why_len)) != 0)
		return r;
	if ((r = get_str(o, what, "path", f->path, sizeof f->path, why, why_len)) != 0)
		return r;
	/* From here on the path names the entry in every reason. */
	snprintf(what, sizeof what, "files[%d] '%.30s'", i, f->path);
	if ((r = get_int(o, what, "size", 0, (json_int_t)MANIFEST_FILE_BYTES_MAX, &n, why, why_len)) != 0)
		return r;
	f->size = (uint64_t)n;
	if ((r = get_str(o, what, "mode", buf, sizeof buf, why, why_len)) != 0)
		return r;
	if (strlen(buf) != 4 || buf[0] != '0' || buf[1] < '0' || buf[1] > '7' || buf[2] < '0' ||
	    buf[2] > '7' || buf[3] < '0' || buf[3] > '7')
		return tnd_refuse(why, why_len, TND_EINVAL,
				  "%s: mode '%s' is not four octal digits 0000..0777", what, buf);
	f->mode = (uint32_t)strtoul(buf, NULL, 8);
	if ((r = get_str(o, what, "digest", buf, sizeof buf, why, why_len)) != 0)
		return r;
	if (hex_decode(buf, f->digest, sizeof f->digest) != 0)
		return tnd_refuse(why, why_len, TND_EINVAL,
				  "%s: digest is not %d lower-case hex digits", what, 2 * MANIFEST_DIGEST_LEN);
	return 0;
}

int manifest_parse(const char *json, size_t len, struct manifest *m, char *why, size_t why_len)
{
	json_error_t jerr;
	json_t *root, *files, *o;
	json_int_t n;
	char buf[40];
	size_t i;
	int r;

	memset(m, 0, sizeof *m);
	if (len > MANIFEST_JSON_BYTES_MAX)
		return tnd_refuse(why, why_len, TND_EINVAL, "manifest is %zu bytes, more than %d",
				  len, MANIFEST_JSON_BYTES_MAX);
	/* Duplicate keys would let two readers see two different manifests
	 * behind one signature. */
	root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return tnd_refuse(why, why_len, TND_EINVAL, "manifest is not JSON: %s (byte %d)",
				  jerr.text, jerr.position);
	if (!json_is_object(root)) {
		r = tnd_refuse(why, why_len, TND_EINVAL, "manifest is not a JSON object");
		goto out;
	}
	/* The format first: a manifest of another format is refused as such,
	 * not for the fields it does not share with this one. */
	o = json_object_get(root, "format");
	if (!json_is_string(o) || strcmp(json_string_value(o), MANIFEST_FORMAT) != 0) {
		r = tnd_refuse(why, why_len, TND_EINVAL, "manifest format is %s%.40s%s, not %s",
			       json_is_string(o) ? "'" : "", json_is_string(o) ? json_string_value(o) :
			       o ? "not a string" : "missing", json_is_string(o) ? "'" : "",
			       MANIFEST_FORMAT);
		goto out;
	}
	if ((r = object_fields(root, "manifest", top_fields, sizeof top_fields / sizeof top_fields[0],
			       why, why_len)) != 0)
		goto out;
	if ((r = get_str(root, "manifest", "format", m->format, sizeof m->format, why, why_len)) ||
	    (r = get_str(root, "manifest", "name", m->name, sizeof m->name, why, why_len)) ||
	    (r = get_str(root, "manifest", "version", m->version, sizeof m->version, why, why_len)) ||
	    (r = get_str(root, "manifest", "min_upgrade_from", m->min_upgrade_from,
			 sizeof m->min_upgrade_from, why, why_len)))
		goto out;
	if ((r = get_int(root, "manifest", "proto_min", 1, 255, &n, why, why_len)) != 0)
		goto out;
	m->proto_min = (uint8_t)n;
	if ((r = get_int(root, "manifest", "proto_max", 1, 255, &n, why, why_len)) != 0)
		goto out;
	m->proto_max = (uint8_t)n;
	if ((r = get_int(root, "manifest", "built", 0, INT64_MAX, &n, why, why_len)) != 0)
		goto out;
	m->built = n;
	if ((r = get_str(root, "manifest", "key_id", buf, sizeof buf, why, why_len)) != 0)
		goto out;
	if (hex_decode(buf, m->key_id, sizeof m->key_id) != 0) {
		r = tnd_refuse(why, why_len, TND_EINVAL, "manifest: key_id is not %d lower-case hex digits",
			       2 * MANIFEST_KEY_ID_LEN);
		goto out;
	}
	files = json_object_get(root, "files");
	if (!json_is_array(files)) {
		r = tnd_refuse(why, why_len, TND_EINVAL, "manifest: field 'files' must be an array");
		goto out;
	}
	if (json_array_size(files) < 1 || json_array_size(files) > MANIFEST_FILES_MAX) {
		r = tnd_refuse(why, why_len, TND_EINVAL, "manifest lists %zu files (1..%d allowed)",
			       json_array_size(files), MANIFEST_FILES_MAX);
		goto out;
	}
	json_array_foreach(files, i, o) {
		if ((r = parse_file(o, (int)i, &m->files[i], why, why_len)) != 0)
			goto out;
		m->n_files = (int)i + 1;
	}
	r = manifest_check(m, why, why_len);
out:
	json_decref(root);
	return r;
}

int manifest_emit(const struct manifest *m, char **json, size_t *len)
{
	json_t *root, *files;
	char kid[2 * MANIFEST_KEY_ID_LEN + 1], dig[2 * MANIFEST_DIGEST_LEN + 1], mode[8];
	char *s;

	*json = NULL;
	*len = 0;
	if (manifest_check(m, NULL, 0) != 0)
		return TND_EINVAL;
	files = json_array();
	for (int i = 0; i < m->n_files; i++) {
		const struct manifest_file *f = &m->files[i];
		snprintf(mode, sizeof mode, "%04o", f->mode);
		json_array_append_new(files, json_pack("{s:s,s:s,s:s,s:I}",
						       "digest", tnd_hex(f->digest, sizeof f->digest, dig),
						       "mode", mode, "path", f->path,
						       "size", (json_int_t)f->size));
	}
	root = json_pack("{s:I,s:o,s:s,s:s,s:s,s:s,s:i,s:i,s:s}",
			 "built", (json_int_t)m->built, "files", files,
			 "format", m->format, "key_id", tnd_hex(m->key_id, sizeof m->key_id, kid),
			 "min_upgrade_from", m->min_upgrade_from, "name", m->name,
			 "proto_max", (int)m->proto_max, "proto_min", (int)m->proto_min,
			 "version", m->version);
	if (!root)
		return TND_EINVAL;
	s = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(root);
	if (!s)
		return TND_EINVAL;
	*json = s;
	*len = strlen(s);
	return 0;
}
