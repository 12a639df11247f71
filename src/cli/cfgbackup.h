/* cfgbackup.h - the configuration backup file of `tandemctl config backup`
 * and `config restore` (SPEC section 4).
 *
 * Owns: the file format and its checks, and the durable write. A backup is
 * one JSON object (RFC 8259):
 *
 *   {"format":"tandem-config-backup/1","cluster":"NAME","generation":G,
 *    "digest":"64 hex","created":UNIX_S,"generation_created":UNIX_S|null,
 *    "yaml":"TEXT","ruleset":"TEXT"}
 *
 * "digest" is the cluster's own name for the document (cfgsync.h: BLAKE2b-
 * 256 of the encoded YAML and ruleset), so reading a backup recomputes it
 * and a file whose texts were damaged or edited is refused as corrupt,
 * not restored. "created" is when the backup was taken,
 * "generation_created" when the cluster committed that generation.
 *
 * The file is written atomically and durably (temporary file in the same
 * directory, fsync, rename, fsync of the directory), mode 0600, and an
 * existing file is replaced only when asked to. */
#ifndef TND_CFGBACKUP_H
#define TND_CFGBACKUP_H

#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>

#include "../core/types.h"

#define CFGBACKUP_FORMAT "tandem-config-backup/1"
#define CFGBACKUP_FORMAT_PREFIX "tandem-config-backup/"
/* A 1 MiB document escaped as JSON (\u00XX: 6 bytes a byte) and then some. */
#define CFGBACKUP_FILE_MAX_BYTES (8u * 1024 * 1024)
#define CFGBACKUP_DIGEST_HEX_LEN 64

struct cfgbackup {
	char cluster[TND_NAME_MAX];
	uint64_t generation;
	char digest[CFGBACKUP_DIGEST_HEX_LEN + 1];
	int64_t created;             /* backup time, UNIX seconds */
	int64_t generation_created;  /* -1: unknown */
	char *yaml;                  /* malloc'd, NUL-terminated */
	size_t yaml_len;
	char *ruleset;               /* malloc'd, NUL-terminated, "" when none */
	size_t ruleset_len;
};

/* The document digest as lowercase hex (hex >= 65 bytes). TND_ENOSPC when
 * the texts are larger than one document may be (CFGSYNC_DOC_MAX). */
int cfgbackup_digest_hex(const char *yaml, size_t yaml_len, const char *ruleset,
			 size_t ruleset_len, char *hex);
/* The backup as a JSON object (a new reference; NULL when out of memory
 * or a text is not valid UTF-8). */
json_t *cfgbackup_to_json(const struct cfgbackup *b);
/* Check and load a backup from its text. 0, or TND_EINVAL with a sentence
 * in why (what is wrong, not where it came from); b is empty on error. */
int cfgbackup_parse(const char *text, size_t len, struct cfgbackup *b, char *why,
		    size_t why_len);
/* Read `path` (at most CFGBACKUP_FILE_MAX_BYTES) and cfgbackup_parse it.
 * 0, TND_EINVAL (bad content) or TND_EIO (cannot read), why set. */
int cfgbackup_read(const char *path, struct cfgbackup *b, char *why, size_t why_len);
/* Write `len` bytes to `path` atomically and durably, mode 0600. Without
 * `replace`, an existing path is left alone and TND_EREFUSED returned;
 * other failures TND_EIO. why says what failed. */
int cfgbackup_write(const char *path, const char *text, size_t len, bool replace,
		    char *why, size_t why_len);
void cfgbackup_free(struct cfgbackup *b);

#endif
