/* manifest.h - the manifest of a Tandem software image (SPEC section 5,
 * "Images"): what an image claims to be, in a form that is signed.
 *
 * Owns: struct manifest, its strict JSON reader and its canonical writer,
 * the rules for the paths an image may hold, and version numbers
 * (version_cmp). Pure: jansson only, no I/O, no clock. The archive around
 * the manifest, its signature and the files are src/io/image.h.
 *
 * The JSON ("tandem-image/1"), one object, keys sorted, no spaces when
 * written by manifest_emit():
 *
 *   {"built":1700000000,
 *    "files":[{"digest":"<64 hex>","mode":"0755","path":"bin/tandemctl","size":123},
 *             {"digest":"<64 hex>","mode":"0755","path":"bin/tandemd","size":456}],
 *    "format":"tandem-image/1","key_id":"<16 hex>",
 *    "min_upgrade_from":"1.0.0","name":"tandem",
 *    "proto_max":1,"proto_min":1,"version":"1.1.0"}
 *
 *   built            unix seconds, >= 0
 *   files            1..MANIFEST_FILES_MAX, sorted by path (bytewise),
 *                    each path once; bin/tandemd and bin/tandemctl are
 *                    required and must be readable and executable by
 *                    their owner
 *   digest           BLAKE2b-256 (libsodium crypto_generichash, 32-byte
 *                    output, no key) of the file's bytes, lower-case hex
 *   mode             permission bits as 4 octal digits "0644".."0777"
 *                    (no set-id or sticky bits)
 *   size             bytes, 0..MANIFEST_FILE_BYTES_MAX; all files
 *                    together at most MANIFEST_FILES_BYTES_MAX
 *   key_id           first 8 bytes of BLAKE2b-256 of the signer's 32-byte
 *                    Ed25519 public key, lower-case hex
 *   version,         "MAJOR[.MINOR[.PATCH]]", each part 0..99999 in
 *   min_upgrade_from decimal without leading zeros; min_upgrade_from is
 *                    the oldest running version this image upgrades in
 *                    service, and is not newer than version
 *   proto_min/max    protocol levels the image's tandemd speaks, 1..255,
 *                    min <= max
 *
 * A path is relative, its first component "bin" or "hooks", at least two
 * components, each made of A-Z a-z 0-9 . _ + - and neither "." nor "..",
 * no empty component (so no leading, trailing or double slash), shorter
 * than 256 bytes; no path is a directory of another (bin/x and bin/x/y).
 * Anything else is refused with a sentence naming the field. */
#ifndef TND_MANIFEST_H
#define TND_MANIFEST_H

#include <stddef.h>
#include <stdint.h>
#include "types.h"

#define MANIFEST_FORMAT "tandem-image/1"
#define MANIFEST_NAME "tandem"
#define MANIFEST_FILES_MAX 64
#define MANIFEST_PATH_MAX 256                        /* bytes incl. NUL */
#define MANIFEST_JSON_BYTES_MAX (64 * 1024)          /* the MANIFEST entry */
#define MANIFEST_FILE_BYTES_MAX (128ULL << 20)       /* one file */
#define MANIFEST_FILES_BYTES_MAX (256ULL << 20)      /* all files together */
#define MANIFEST_DIGEST_LEN 32                       /* BLAKE2b-256 */
#define MANIFEST_KEY_ID_LEN 8
#define MANIFEST_VERSION_PART_MAX 99999

struct manifest_file {
	char path[MANIFEST_PATH_MAX];
	uint64_t size;  /* bytes */
	uint32_t mode;  /* permission bits, <= 0777 */
	uint8_t digest[MANIFEST_DIGEST_LEN];
};

struct manifest {
	char format[32];           /* "tandem-image/1" */
	char name[32];             /* "tandem" */
	char version[32];          /* e.g. "1.1.0" */
	char min_upgrade_from[32]; /* oldest version it upgrades from in service */
	uint8_t proto_min, proto_max;
	int64_t built;             /* unix seconds */
	uint8_t key_id[MANIFEST_KEY_ID_LEN];
	int n_files;
	struct manifest_file files[MANIFEST_FILES_MAX];
};

/* Parse manifest JSON (not NUL-terminated; len <= MANIFEST_JSON_BYTES_MAX)
 * into m. Strict: an unknown format, a missing, extra or mistyped field,
 * a bad path or version, unsorted or duplicate files: TND_EINVAL with a
 * sentence in why. m is zeroed first and undefined on error. */
int manifest_parse(const char *json, size_t len, struct manifest *m, char *why, size_t why_len);

/* The canonical JSON of m (sorted keys, compact, no newline), malloc'd
 * (free()). Refuses (TND_EINVAL, no output) a manifest that
 * manifest_check() refuses, so nothing invalid is ever signed. */
int manifest_emit(const struct manifest *m, char **json, size_t *len);

/* Every rule above, on a manifest in memory: 0 or TND_EINVAL with why. */
int manifest_check(const struct manifest *m, char *why, size_t why_len);

/* One path against the path rules: 0 or TND_EINVAL with why (which says
 * what is wrong, e.g. "'/etc/x' is absolute"). */
int manifest_path_check(const char *path, char *why, size_t why_len);

/* Compare two versions ("MAJOR[.MINOR[.PATCH]]", missing parts are 0, so
 * "1.1" equals "1.1.0"): *out < 0, 0 or > 0. TND_EINVAL when either is
 * malformed (empty, a part not 0..99999, a leading zero, a sign, more
 * than three parts, anything but digits and dots). */
int version_cmp(const char *a, const char *b, int *out);

/* 0 when v is a well-formed version (see version_cmp), else TND_EINVAL. */
int version_check(const char *v);

/* The default min_upgrade_from of a version: "MAJOR.0.0" (Tandem keeps the
 * protocol and state compatible within a major version, so any release of
 * the same major upgrades in service). TND_EINVAL when v is malformed. */
int version_default_min(const char *v, char *out, size_t out_len);

/* The key id of an Ed25519 public key (see key_id above). */
void manifest_key_id(const uint8_t pk[32], uint8_t id[MANIFEST_KEY_ID_LEN]);

#endif
