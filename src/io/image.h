/* image.h - Tandem software images on disk (SPEC sections 4 and 5,
 * "Images"): signing keys, building, verifying and extracting an image.
 *
 * Owns: the image file format, the key files, and the trusted keyring
 * (every *.pub file of `upgrade.trusted_keys`). The manifest inside an
 * image is src/core/manifest.h.
 *
 * Image file ("tandem-image/1"): one uncompressed POSIX tar archive
 * (ustar; pax extended headers only where ustar cannot hold a value),
 * read and written with libarchive, holding in this order and nothing else:
 *
 *   MANIFEST      the manifest, canonical JSON (manifest_emit()), at most
 *                 MANIFEST_JSON_BYTES_MAX bytes
 *   MANIFEST.sig  one line of IMAGE_SIG_LEN bytes:
 *                   "ed25519 <key id, 16 hex> <signature, 128 hex>\n"
 *                 the signature is Ed25519 (libsodium crypto_sign_detached)
 *                 over the MANIFEST entry's bytes exactly as stored; the
 *                 key id is manifest_key_id() of the signer's public key
 *   the files     exactly those of the manifest, in its (sorted) order,
 *                 each a regular file of the listed size whose BLAKE2b-256
 *                 is the listed digest
 *
 * Directory entries are tolerated only for directories that a listed file
 * implies (bin/, hooks/x/); their metadata is ignored. Modes, owners and
 * times in the tar headers are ignored too: a file is extracted with the
 * manifest's mode, owned by the extracting user. Bounds: the image file at
 * most IMAGE_BYTES_MAX, one file at most MANIFEST_FILE_BYTES_MAX.
 *
 * Verification (image_verify, image_extract) refuses with a sentence in
 * why, and changes nothing: a file that is not a tar archive or is
 * truncated or damaged, an oversized image or entry, a first entry other
 * than MANIFEST, a missing or malformed MANIFEST.sig, a key id not in the
 * keyring ("untrusted"), a signature that does not verify, a MANIFEST that
 * does not parse or names another key id than its signature, then, per
 * entry: a path that escapes (absolute, "..") or breaks the path rules, a
 * symbolic link, hard link, device, FIFO or stray directory, an entry not
 * in the manifest or out of order or repeated, a size or digest that
 * differs, a listed file missing. The signature is checked before any
 * file's bytes are read.
 *
 * Key files: KEY holds the 64-byte libsodium Ed25519 secret key as one
 * line of 128 lower-case hex digits (mode 0600); KEY.pub the 32-byte
 * public key as one line of 64 hex digits. A trusted-keys directory holds
 * any number (<= IMAGE_KEYS_MAX) of such .pub files; other files are
 * ignored. */
#ifndef TND_IMAGE_H
#define TND_IMAGE_H

#include <stdint.h>
#include "../core/manifest.h"

#define IMAGE_BYTES_MAX (256ULL << 20) /* the whole image file */
#define IMAGE_SIG_LEN 154              /* bytes of MANIFEST.sig */
#define IMAGE_KEYS_MAX 32              /* *.pub files in a trusted-keys dir */
#define IMAGE_KEY_FILE_BYTES_MAX 1024  /* a key file larger than this is not one */
#define IMAGE_PROBE_TIMEOUT_MS 10000   /* `tandemd --version` during a build */

struct image_keyring;

/* Every *.pub file in dir (names starting with '.' skipped). Refuses
 * (TND_EINVAL, naming the file) a .pub file that is not one hex line of a
 * valid Ed25519 public key, and (TND_ENOENT) a dir that cannot be read or
 * holds no key at all. */
int image_keyring_load(const char *dir, struct image_keyring **out, char *why, size_t why_len);
/* An empty keyring to fill with image_keyring_add() (tests, fuzzing). */
int image_keyring_new(struct image_keyring **out);
/* Trust one public key; `source` names it in messages. TND_ENOSPC when
 * the keyring is full, TND_EINVAL when pk is not a valid key. */
int image_keyring_add(struct image_keyring *kr, const uint8_t pk[32], const char *source);
int image_keyring_count(const struct image_keyring *kr);
/* The file (or source) of the trusted key with this id, or NULL. */
const char *image_keyring_source(const struct image_keyring *kr, const uint8_t id[MANIFEST_KEY_ID_LEN]);
void image_keyring_free(struct image_keyring *kr);

/* A new key pair: key_path (secret, mode 0600) and key_path.pub. Refuses
 * (TND_EINVAL) to overwrite either; both appear complete or neither. */
int image_keygen(const char *key_path, char *why, size_t why_len);
/* Read a secret key file (see above) and its public half. */
int image_key_load(const char *key_path, uint8_t sk[64], uint8_t pk[32], char *why, size_t why_len);
/* Read a public key file. */
int image_pubkey_load(const char *path, uint8_t pk[32], char *why, size_t why_len);

struct image_build_opts {
	const char *from_dir;         /* bin/tandemd, bin/tandemctl, optional hooks/ */
	const char *version;
	const char *min_upgrade_from; /* NULL: version_default_min(version) */
	const char *key_path;         /* secret key file */
	const char *out_file;
	/* Protocol range of the image's tandemd. 0/0: ask it
	 * (`from_dir/bin/tandemd --version`, which must also say `version`,
	 * so an image cannot carry a binary of another version under its
	 * name). Set both for binaries that cannot run on the build host. */
	uint8_t proto_min, proto_max;
	int64_t built;                /* unix seconds; 0: now */
};

/* Package from_dir as a signed image. Refuses anything in from_dir but
 * regular files under bin/ and hooks/ (symbolic links included), a file
 * that changes while it is packaged, more than MANIFEST_FILES_MAX files
 * or more than the size bounds. out_file is written atomically
 * (temporary file, fsync, rename, fsync of the directory) and replaced
 * if it exists; the result is verified against the signer's key before
 * the rename. */
int image_build_ex(const struct image_build_opts *o, char *why, size_t why_len);
/* image_build_ex() with the protocol range asked from the binary and
 * built = now. */
int image_build(const char *from_dir, const char *version, const char *min_upgrade_from,
		const char *key_path, const char *out_file, char *why, size_t why_len);

/* Check an image completely (signature, manifest, every file) without
 * writing anything. On success m holds the manifest. */
int image_verify(const char *file, const struct image_keyring *kr, struct manifest *m,
		 char *why, size_t why_len);

/* Verify and extract in one pass into dest_dir, which must not exist and
 * is created (0700 while being filled, 0755 once complete). Files get the
 * manifest's modes and are fsync'd, as are the directories. On any error
 * dest_dir is removed and nothing else touched; a full file system is
 * TND_ENOSPC with "no space left on the file system of DEST while
 * writing PATH (N of M bytes)". Other errors: TND_EINVAL (a bad image),
 * TND_EAUTH (signature or untrusted key), TND_EIO / TND_ESYS. */
int image_extract(const char *file, const struct image_keyring *kr, const char *dest_dir,
		  struct manifest *m, char *why, size_t why_len);

/* Probe a tandemd binary: run `bin --version` (bounded by
 * IMAGE_PROBE_TIMEOUT_MS) and read "tandemd VERSION (protocol A..B)". */
int image_probe_tandemd(const char *bin, char *version, size_t version_len, uint8_t *proto_min,
			uint8_t *proto_max, char *why, size_t why_len);

#endif
