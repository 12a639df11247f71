/* image.c - software images on disk: keys, build, verify, extract
 * (image.h documents the file format and the key files).
 *
 * Owns the file I/O around the pure manifest (src/core/manifest.c): key
 * files, the tar archive (libarchive), Ed25519 signatures and BLAKE2b-256
 * digests (libsodium), and extraction into a fresh directory. Every write
 * is durable and all-or-nothing (STYLE, "Time, errors, limits"): new files
 * appear by rename or link after fsync, and a failed extraction removes
 * the directory it created. Reading is one pass: the signature is checked
 * before any file's bytes, then each file is hashed as it streams by, into
 * the destination or nowhere. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <archive.h>
#include <archive_entry.h>
#include <sodium.h>

#include "image.h"
#include "state.h"

extern char **environ;

#define IO_CHUNK_BYTES (64 * 1024)
#define TAR_BLOCK_BYTES 10240

struct image_keyring {
	int n;
	uint8_t pk[IMAGE_KEYS_MAX][32];
	uint8_t id[IMAGE_KEYS_MAX][MANIFEST_KEY_ID_LEN];
	char source[IMAGE_KEYS_MAX][TND_PATH_MAX];
	char dir[TND_PATH_MAX]; /* where they came from, for messages */
};

static int crypto_ready(char *why, size_t why_len)
{
	if (sodium_init() < 0)
		return tnd_refuse(why, why_len, TND_ESYS, "libsodium cannot be initialised");
	return 0;
}

/* --- small file helpers ------------------------------------------------ */

/* Read a whole small file (< cap bytes) into buf, NUL-terminated. */
static int read_small(const char *path, char *buf, size_t cap, size_t *len, char *why, size_t why_len)
{
	/* O_NONBLOCK: a FIFO in the way must not hang us before fstat. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	struct stat st;
	size_t got = 0;

	if (fd < 0)
		return tnd_refuse(why, why_len, errno == ENOENT ? TND_ENOENT : TND_ESYS,
				  "cannot open %s: %s", path, strerror(errno));
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return tnd_refuse(why, why_len, TND_EINVAL, "%s is not a regular file", path);
	}
	for (;;) {
		ssize_t n = read(fd, buf + got, cap - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			close(fd);
			return tnd_refuse(why, why_len, TND_EIO, "cannot read %s: %s", path, strerror(e));
		}
		if (n == 0)
			break;
		got += (size_t)n;
		if (got == cap - 1) {
			close(fd);
			return tnd_refuse(why, why_len, TND_EINVAL, "%s is larger than %zu bytes: not a key file",
					  path, cap - 2);
		}
	}
	close(fd);
	buf[got] = '\0';
	*len = got;
	return 0;
}

/* Exactly n bytes of hex (either case) followed by optional white space. */
static int hex_line(const char *s, uint8_t *out, size_t n)
{
	size_t i;

	for (i = 0; i < 2 * n; i++) {
		char c = s[i];
		int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 :
			c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
		if (v < 0)
			return TND_EINVAL;
		if (i % 2 == 0)
			out[i / 2] = (uint8_t)(v << 4);
		else
			out[i / 2] |= (uint8_t)v;
	}
	for (; s[i]; i++)
		if (s[i] != '\n' && s[i] != '\r' && s[i] != ' ' && s[i] != '\t')
			return TND_EINVAL;
	return 0;
}

/* The directory part of a path ("." when there is none). */
static void dir_of(const char *path, char *out, size_t len)
{
	const char *slash = strrchr(path, '/');

	if (!slash)
		snprintf(out, len, ".");
	else if (slash == path)
		snprintf(out, len, "/");
	else
		snprintf(out, len, "%.*s", (int)(slash - path), path);
}

/* --- keys -------------------------------------------------------------- */

int image_pubkey_load(const char *path, uint8_t pk[32], char *why, size_t why_len)
{
	char buf[IMAGE_KEY_FILE_BYTES_MAX + 1];
	size_t len;
	int r;

	if ((r = crypto_ready(why, why_len)) != 0)
		return r;
	if ((r = read_small(path, buf, sizeof buf, &len, why, why_len)) != 0)
		return r;
	if (hex_line(buf, pk, 32) != 0)
		return tnd_refuse(why, why_len, TND_EINVAL,
				  "%s is not a public key file (one line of 64 hex digits)", path);
	if (!crypto_core_ed25519_is_valid_point(pk))
		return tnd_refuse(why, why_len, TND_EINVAL, "%s does not hold a valid Ed25519 public key",
				  path);
	return 0;
}

int image_key_load(const char *key_path, uint8_t sk[64], uint8_t pk[32], char *why, size_t why_len)
{
	char buf[IMAGE_KEY_FILE_BYTES_MAX + 1];
	uint8_t sk2[64];
	size_t len;
	int r;

	if ((r = crypto_ready(why, why_len)) != 0)
		return r;
	if ((r = read_small(key_path, buf, sizeof buf, &len, why, why_len)) != 0)
		return r;
	r = hex_line(buf, sk, 64);
	sodium_memzero(buf, sizeof buf);
	if (r != 0)
		return tnd_refuse(why, why_len, TND_EINVAL,
				  "%s is not a secret key file (one line of 128 hex digits; "
				  "a .pub file is the public half)", key_path);
	/* A libsodium secret key is seed || public key: rebuild it from the
	 * seed so a damaged file is caught here, not by every verifier. */
	crypto_sign_seed_keypair(pk, sk2, sk);
	r = sodium_memcmp(sk, sk2, 64);
	sodium_memzero(sk2, sizeof sk2);
	if (r != 0) {
		sodium_memzero(sk, 64);
		return tnd_refuse(why, why_len, TND_EINVAL,
				  "%s is damaged: its public half does not match its seed", key_path);
	}
	return 0;
}

/* Write text to `path` all-or-nothing and without replacing anything: a
 * temporary file beside it, fsync, then link(2), which fails when path
 * exists. */
static int write_new_file(const char *path, const char *text, mode_t mode, char *why, size_t why_len)
{
	char tmp[TND_PATH_MAX + 32];
	int fd, e;

	if (snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path) >= (int)sizeof tmp)
		return tnd_refuse(why, why_len, TND_EINVAL, "path %s is too long", path);
	fd = mkstemp(tmp);
	if (fd < 0)
		return tnd_refuse(why, why_len, TND_ESYS, "cannot create a file beside %s: %s", path,
				  strerror(errno));
	if (fchmod(fd, mode) != 0 || state_write_all(fd, text, strlen(text)) != 0 || fsync(fd) != 0) {
		e = errno;
		close(fd);
		unlink(tmp);
		return tnd_refuse(why, why_len, e == ENOSPC ? TND_ENOSPC : TND_EIO,
				  "cannot write %s: %s", tmp, strerror(e));
	}
	close(fd);
	if (link(tmp, path) != 0) {
		e = errno;
		unlink(tmp);
		return tnd_refuse(why, why_len, e == EEXIST ? TND_EINVAL : TND_ESYS,
				  e == EEXIST ? "%s already exists; not overwriting it" : "cannot create %s: %s",
				  path, strerror(e));
	}
	unlink(tmp);
	return 0;
}

int image_keygen(const char *key_path, char *why, size_t why_len)
{
	uint8_t pk[32], sk[64];
	char pub_path[TND_PATH_MAX + 8], dir[TND_PATH_MAX];
	char line[2 * 64 + 2];
	struct stat st;
	int r;

	if ((r = crypto_ready(why, why_len)) != 0)
		return r;
	if (strlen(key_path) >= TND_PATH_MAX)
		return tnd_refuse(why, why_len, TND_EINVAL, "key path is longer than %d bytes",
				  TND_PATH_MAX - 1);
	snprintf(pub_path, sizeof pub_path, "%s.pub", key_path);
	/* Check both before writing either, so a refusal changes nothing. */
	if (lstat(key_path, &st) == 0)
		return tnd_refuse(why, why_len, TND_EINVAL, "%s already exists; not overwriting it",
				  key_path);
	if (lstat(pub_path, &st) == 0)
		return tnd_refuse(why, why_len, TND_EINVAL, "%s already exists; not overwriting it",
				  pub_path);
	crypto_sign_keypair(pk, sk);
	tnd_hex(sk, 64, line);
	strcat(line, "\n");
	r = write_new_file(key_path, line, 0600, why, why_len);
	sodium_memzero(line, sizeof line);
	sodium_memzero(sk, sizeof sk);
	if (r != 0)
		return r;
	tnd_hex(pk, 32, line);
	strcat(line, "\n");
	if ((r = write_new_file(pub_path, line, 0644, why, why_len)) != 0) {
		unlink(key_path);
		return r;
	}
	dir_of(key_path, dir, sizeof dir);
	if (state_fsync_dir(dir) != 0) {
		int e = errno;
		unlink(pub_path);
		unlink(key_path);
		return tnd_refuse(why, why_len, TND_EIO, "cannot sync %s: %s", dir, strerror(e));
	}
	return 0;
}

int image_keyring_new(struct image_keyring **out)
{
	*out = calloc(1, sizeof **out);
	return *out ? 0 : TND_ESYS;
}

int image_keyring_add(struct image_keyring *kr, const uint8_t pk[32], const char *source)
{
	if (sodium_init() < 0 || !crypto_core_ed25519_is_valid_point(pk))
		return TND_EINVAL;
	for (int i = 0; i < kr->n; i++)
		if (memcmp(kr->pk[i], pk, 32) == 0)
			return 0; /* the same key under two names */
	if (kr->n == IMAGE_KEYS_MAX)
		return TND_ENOSPC;
	memcpy(kr->pk[kr->n], pk, 32);
	manifest_key_id(pk, kr->id[kr->n]);
	snprintf(kr->source[kr->n], sizeof kr->source[0], "%s", source ? source : "(added)");
	kr->n++;
	return 0;
}

int image_keyring_count(const struct image_keyring *kr)
{
	return kr ? kr->n : 0;
}

const char *image_keyring_source(const struct image_keyring *kr, const uint8_t id[MANIFEST_KEY_ID_LEN])
{
	for (int i = 0; kr && i < kr->n; i++)
		if (memcmp(kr->id[i], id, MANIFEST_KEY_ID_LEN) == 0)
			return kr->source[i];
	return NULL;
}

void image_keyring_free(struct image_keyring *kr)
{
	free(kr);
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int image_keyring_load(const char *dir, struct image_keyring **out, char *why, size_t why_len)
{
	struct image_keyring *kr;
	char *names[IMAGE_KEYS_MAX + 1];
	int n = 0, r = 0;
	struct dirent *e;
	DIR *d;

	*out = NULL;
	if ((r = crypto_ready(why, why_len)) != 0)
		return r;
	d = opendir(dir);
	if (!d)
		return tnd_refuse(why, why_len, TND_ENOENT, "cannot read the trusted keys directory %s: %s",
				  dir, strerror(errno));
	while ((e = readdir(d))) {
		size_t l = strlen(e->d_name);
		if (e->d_name[0] == '.' || l < 5 || strcmp(e->d_name + l - 4, ".pub") != 0)
			continue;
		if (n == IMAGE_KEYS_MAX) {
			r = tnd_refuse(why, why_len, TND_EINVAL, "%s holds more than %d *.pub keys", dir,
				       IMAGE_KEYS_MAX);
			break;
		}
		names[n++] = strdup(e->d_name);
	}
	closedir(d);
	if (r == 0 && n == 0)
		r = tnd_refuse(why, why_len, TND_ENOENT, "%s holds no trusted key (*.pub file)", dir);
	if (r == 0 && image_keyring_new(&kr) != 0)
		r = tnd_refuse(why, why_len, TND_ESYS, "out of memory");
	if (r == 0) {
		/* Sorted, so messages and duplicate handling do not depend on
		 * the directory's order. */
		qsort(names, (size_t)n, sizeof names[0], name_cmp);
		snprintf(kr->dir, sizeof kr->dir, "%s", dir);
		for (int i = 0; i < n && r == 0; i++) {
			char path[2 * TND_PATH_MAX];
			uint8_t pk[32];
			snprintf(path, sizeof path, "%s/%s", dir, names[i]);
			if ((r = image_pubkey_load(path, pk, why, why_len)) == 0)
				r = image_keyring_add(kr, pk, path);
		}
		if (r == 0)
			*out = kr;
		else
			free(kr);
	}
	for (int i = 0; i < n; i++)
		free(names[i]);
	return r;
}

/* --- reading an image -------------------------------------------------- */

struct reader {
	struct archive *a;
	int fd;
	const char *file;
	/* extraction */
	const char *dest;
	int dest_fd;
	bool dest_made;
	char *why;
	size_t why_len;
};

/* Remove name (a file or a whole tree) below dirfd, not following links. */
static void rm_tree_at(int dirfd, const char *name)
{
	struct dirent *e;
	DIR *d;
	int fd;

	if (unlinkat(dirfd, name, 0) == 0 || (errno != EISDIR && errno != EPERM))
		return;
	fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return;
	}
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			rm_tree_at(fd, e->d_name);
	closedir(d);
	unlinkat(dirfd, name, AT_REMOVEDIR);
}

/* A refusal while reading: the archive's own reason when it has one. */
static int arch_refuse(struct reader *rd, const char *what)
{
	const char *err = archive_error_string(rd->a);

	if (!err)
		err = "unreadable";
	/* libarchive says "Truncated tar archive" itself; otherwise hint. */
	return tnd_refuse(rd->why, rd->why_len, TND_EINVAL, "%s: %s: %s%s", rd->file, what, err,
			  strstr(err, "runcated") ? "" : " (damaged or truncated?)");
}

/* Next header; ARCHIVE_EOF is 1, an error a refusal. */
static int next_entry(struct reader *rd, struct archive_entry **e, const char *after)
{
	char what[MANIFEST_PATH_MAX + 64];
	int r = archive_read_next_header(rd->a, e);

	if (r == ARCHIVE_EOF)
		return 1;
	if (r != ARCHIVE_OK) {
		snprintf(what, sizeof what, "cannot read the entry after %s", after);
		return arch_refuse(rd, what);
	}
	return 0;
}

static const char *type_name(mode_t t)
{
	switch (t) {
	case AE_IFLNK: return "a symbolic link";
	case AE_IFDIR: return "a directory";
	case AE_IFCHR: return "a character device";
	case AE_IFBLK: return "a block device";
	case AE_IFIFO: return "a FIFO";
	case AE_IFSOCK: return "a socket";
	case AE_IFREG: return "a regular file";
	}
	return "of an unknown type";
}

/* Read a whole small entry (MANIFEST, MANIFEST.sig) into buf, which must
 * hold max + 1 bytes: one byte past the limit tells "too long". */
static int read_small_entry(struct reader *rd, struct archive_entry *e, const char *name,
			    size_t min, size_t max, char *buf, size_t *len)
{
	la_int64_t size;
	size_t got = 0;

	if (archive_entry_hardlink(e) || archive_entry_filetype(e) != AE_IFREG)
		return tnd_refuse(rd->why, rd->why_len, TND_EINVAL, "%s: %s is %s, not a regular file",
				  rd->file, name, archive_entry_hardlink(e) ? "a hard link" :
				  type_name(archive_entry_filetype(e)));
	size = archive_entry_size_is_set(e) ? archive_entry_size(e) : -1;
	if (size < (la_int64_t)min || size > (la_int64_t)max)
		return tnd_refuse(rd->why, rd->why_len, TND_EINVAL,
				  "%s: %s is %lld bytes; it must be %zu..%zu", rd->file, name,
				  (long long)size, min, max);
	for (;;) {
		la_ssize_t n = archive_read_data(rd->a, buf + got, max + 1 - got);
		if (n < 0) {
			char what[64];
			snprintf(what, sizeof what, "cannot read %s", name);
			return arch_refuse(rd, what);
		}
		if (n == 0)
			break;
		got += (size_t)n;
		if (got > max)
			break;
	}
	if (got != (size_t)size)
		return tnd_refuse(rd->why, rd->why_len, TND_EINVAL,
				  "%s: %s holds %zu bytes, its header says %lld (truncated?)",
				  rd->file, name, got, (long long)size);
	*len = got;
	return 0;
}

/* The signature line: "ed25519 <16 hex> <128 hex>\n". */
static int parse_sig(const char *s, size_t len, uint8_t id[MANIFEST_KEY_ID_LEN], uint8_t sig[64])
{
	char buf[IMAGE_SIG_LEN + 1];

	if (len != IMAGE_SIG_LEN || memcmp(s, "ed25519 ", 8) != 0 || s[8 + 16] != ' ' ||
	    s[len - 1] != '\n')
		return TND_EINVAL;
	memcpy(buf, s + 8, 16);
	buf[16] = '\0';
	if (hex_line(buf, id, MANIFEST_KEY_ID_LEN) != 0)
		return TND_EINVAL;
	memcpy(buf, s + 25, 128);
	buf[128] = '\0';
	return hex_line(buf, sig, 64);
}

/* An error number while writing into dest, as a sentence. */
static int write_refuse(struct reader *rd, int e, const char *doing, const char *path,
			uint64_t done, uint64_t size)
{
	if (e == ENOSPC || e == EDQUOT)
		return tnd_refuse(rd->why, rd->why_len, TND_ENOSPC,
				  "no space left on the file system of %s while %s %s (%" PRIu64
				  " of %" PRIu64 " bytes)%s", rd->dest, doing, path, done, size,
				  e == EDQUOT ? " (disk quota exceeded)" : "");
	return tnd_refuse(rd->why, rd->why_len, e == EIO ? TND_EIO : TND_ESYS,
			  "cannot write %s/%s (%s): %s", rd->dest, path, doing, strerror(e));
}

/* Create the parent directories of path below rd->dest_fd; returns an
 * fd of the parent (or dest_fd itself) or -errno. */
static int open_parent(struct reader *rd, const char *path)
{
	char part[MANIFEST_PATH_MAX];
	const char *slash;
	int fd = dup(rd->dest_fd);

	if (fd < 0)
		return -errno;
	for (const char *c = path; (slash = strchr(c, '/')); c = slash + 1) {
		int next;
		snprintf(part, sizeof part, "%.*s", (int)(slash - c), c);
		if (mkdirat(fd, part, 0755) == 0) {
			/* 0755 whatever the umask: tandemd runs the files. */
			if (fchmodat(fd, part, 0755, 0) != 0) {
				int e = errno;
				close(fd);
				return -e;
			}
		} else if (errno != EEXIST) {
			int e = errno;
			close(fd);
			return -e;
		}
		next = openat(fd, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		close(fd);
		if (next < 0)
			return -errno;
		fd = next;
	}
	return fd;
}

/* One file entry's bytes: hashed, and written below dest when extracting. */
static int read_file_entry(struct reader *rd, const struct manifest_file *f)
{
	crypto_generichash_state h;
	uint8_t dig[MANIFEST_DIGEST_LEN];
	uint64_t got = 0;
	int out = -1, r = 0;
	const char *base = strrchr(f->path, '/') + 1; /* paths have >= 2 components */
	char buf[IO_CHUNK_BYTES];

	if (rd->dest) {
		int pfd = open_parent(rd, f->path);
		if (pfd < 0)
			return write_refuse(rd, -pfd, "creating the directory of", f->path, 0, f->size);
		/* 0600 until the digest is known to match. */
		out = openat(pfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		close(pfd);
		if (out < 0)
			return write_refuse(rd, errno, "creating", f->path, 0, f->size);
	}
	crypto_generichash_init(&h, NULL, 0, sizeof dig);
	for (;;) {
		la_ssize_t n = archive_read_data(rd->a, buf, sizeof buf);
		if (n < 0) {
			char what[MANIFEST_PATH_MAX + 32];
			snprintf(what, sizeof what, "cannot read %s", f->path);
			r = arch_refuse(rd, what);
			goto out;
		}
		if (n == 0)
			break;
		if ((uint64_t)n > f->size - got) {
			r = tnd_refuse(rd->why, rd->why_len, TND_EINVAL, "%s: %s holds more than the %" PRIu64
				       " bytes the manifest lists", rd->file, f->path, f->size);
			goto out;
		}
		crypto_generichash_update(&h, (const uint8_t *)buf, (size_t)n);
		if (out >= 0 && state_write_all(out, buf, (size_t)n) != 0) {
			r = write_refuse(rd, errno, "writing", f->path, got, f->size);
			goto out;
		}
		got += (uint64_t)n;
	}
	if (got != f->size) {
		r = tnd_refuse(rd->why, rd->why_len, TND_EINVAL,
			       "%s: %s holds %" PRIu64 " of its %" PRIu64 " bytes (truncated)",
			       rd->file, f->path, got, f->size);
		goto out;
	}
	crypto_generichash_final(&h, dig, sizeof dig);
	if (sodium_memcmp(dig, f->digest, sizeof dig) != 0) {
		char hx[2 * MANIFEST_DIGEST_LEN + 1], hm[2 * MANIFEST_DIGEST_LEN + 1];
		r = tnd_refuse(rd->why, rd->why_len, TND_EINVAL,
			       "%s: %s has digest %.16s..., the signed manifest says %.16s...: "
			       "its content was changed", rd->file, f->path,
			       tnd_hex(dig, sizeof dig, hx), tnd_hex(f->digest, sizeof dig, hm));
		goto out;
	}
	if (out >= 0) {
		if (fchmod(out, (mode_t)f->mode) != 0) {
			r = write_refuse(rd, errno, "setting the mode of", f->path, got, f->size);
			goto out;
		}
		/* Some file systems report a full disk only here. */
		if (fsync(out) != 0) {
			r = write_refuse(rd, errno, "syncing", f->path, got, f->size);
			goto out;
		}
	}
out:
	if (out >= 0 && close(out) != 0 && r == 0)
		r = write_refuse(rd, errno, "closing", f->path, got, f->size);
	return r;
}

/* Is `dir` (no trailing slash) a directory of one of the listed files? */
static bool implied_dir(const struct manifest *m, const char *dir)
{
	size_t l = strlen(dir);

	for (int i = 0; i < m->n_files; i++)
		if (l && strncmp(m->files[i].path, dir, l) == 0 && m->files[i].path[l] == '/')
			return true;
	return false;
}

static int manifest_index(const struct manifest *m, const char *path)
{
	for (int i = 0; i < m->n_files; i++)
		if (strcmp(m->files[i].path, path) == 0)
			return i;
	return -1;
}

/* Check one entry's header against the manifest: 1 when it is an implied
 * directory to skip, 0 when it is files[*idx], else a refusal. */
static int check_entry(struct reader *rd, struct archive_entry *e, const struct manifest *m, int idx)
{
	const char *path = archive_entry_pathname(e);
	mode_t type = archive_entry_filetype(e);
	char pwhy[300], dir[MANIFEST_PATH_MAX];
	la_int64_t size;
	int j;

	if (!path || !*path)
		return tnd_refuse(rd->why, rd->why_len, TND_EINVAL, "%s: an entry has no readable name",
				  rd->file);
	if (type == AE_IFDIR && !archive_entry_hardlink(e)) {
		/* tar(1) writes directories as "bin/": judge the name. */
		size_t l = strlen(path);
		while (l > 1 && path[l - 1] == '/')
			l--;
		if (l >= sizeof dir)
			l = sizeof dir - 1;
		snprintf(dir, sizeof dir, "%.*s", (int)l, path);
		if (implied_dir(m, dir))
			return 1;
		if (strcmp(dir, "bin") == 0 || strcmp(dir, "hooks") == 0 ||
		    manifest_path_check(dir, pwhy, sizeof pwhy) == 0)
			return tnd_refuse(rd->why, rd->why_len, TND_EINVAL,
					  "%s: entry %s is a directory that no listed file is in; an image "
					  "holds only regular files", rd->file, path);
		path = dir; /* the escape, said below */
	}
	/* The path before the type, so an escape is named as such. */
	if (manifest_path_check(path, pwhy, sizeof pwhy) != 0)
		return tnd_refuse(rd->why, rd->why_len, TND_EINVAL, "%s: refusing an entry: %s", rd->file,
				  pwhy);
	if (archive_entry_hardlink(e))
		return tnd_refuse(rd->why, rd->why_len, TND_EINVAL,
				  "%s: entry %s is a hard link (to %.100s); an image holds only regular files",
				  rd->file, path, archive_entry_hardlink(e));
	if (type == AE_IFLNK)
		return tnd_refuse(rd->why, rd->why_len, TND_EINVAL,
				  "%s: entry %s is a symbolic link (to %.100s); an image holds only regular "
				  "files", rd->file, path, archive_entry_symlink(e) ? archive_entry_symlink(e) : "?");
	if (type != AE_IFREG)
		return tnd_refuse(rd->why, rd->why_len, TND_EINVAL,
				  "%s: entry %s is %s; an image holds only regular files", rd->file, path,
				  type_name(type));
	j = manifest_index(m, path);
	if (j < 0)
		return tnd_refuse(rd->why, rd->why_len, TND_EINVAL,
				  "%s: entry %s is not in the signed manifest (an extra file)", rd->file, path);
	if (j < idx)
		return tnd_refuse(rd->why, rd->why_len, TND_EINVAL, "%s: entry %s appears twice", rd->file,
				  path);
	if (j > idx)
		return tnd_refuse(rd->why, rd->why_len, TND_EINVAL,
				  "%s: %s is missing (found %s where it belongs)", rd->file,
				  m->files[idx].path, path);
	size = archive_entry_size_is_set(e) ? archive_entry_size(e) : -1;
	if (size < 0 || (uint64_t)size > MANIFEST_FILE_BYTES_MAX)
		return tnd_refuse(rd->why, rd->why_len, TND_EINVAL,
				  "%s: entry %s claims %lld bytes; a file may have 0..%llu (oversized)",
				  rd->file, path, (long long)size, MANIFEST_FILE_BYTES_MAX);
	if ((uint64_t)size != m->files[idx].size)
		return tnd_refuse(rd->why, rd->why_len, TND_EINVAL,
				  "%s: entry %s is %lld bytes, the signed manifest says %" PRIu64, rd->file,
				  path, (long long)size, m->files[idx].size);
	return 0;
}

/* fsync every directory below dest (each file's and their parents'), so
 * every name is durable; dest itself is the caller's. */
static int sync_dirs(struct reader *rd, const struct manifest *m)
{
	for (int i = 0; i < m->n_files; i++) {
		char dir[MANIFEST_PATH_MAX];
		snprintf(dir, sizeof dir, "%s", m->files[i].path);
		for (char *slash = strrchr(dir, '/'); slash; slash = strrchr(dir, '/')) {
			int fd;
			*slash = '\0';
			fd = openat(rd->dest_fd, dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (fd < 0 || fsync(fd) != 0) {
				int e = errno;
				if (fd >= 0)
					close(fd);
				return write_refuse(rd, e, "syncing the directory of", m->files[i].path, 0, 0);
			}
			close(fd);
		}
	}
	return 0;
}

static int image_read(const char *file, const struct image_keyring *kr, const char *dest,
		      struct manifest *m, char *why, size_t why_len)
{
	struct reader rd = { .fd = -1, .file = file, .dest = dest, .dest_fd = -1,
			     .why = why, .why_len = why_len };
	struct archive_entry *e;
	char *json = NULL;
	char sigtxt[IMAGE_SIG_LEN + 64 + 1]; /* read_small_entry writes up to max + 1 */
	uint8_t sig[64], sig_id[MANIFEST_KEY_ID_LEN];
	char hx[2 * MANIFEST_KEY_ID_LEN + 1], hy[2 * MANIFEST_KEY_ID_LEN + 1];
	char mwhy[400];
	size_t json_len = 0, sig_len = 0;
	struct stat st;
	int r, k, idx;

	memset(m, 0, sizeof *m);
	if ((r = crypto_ready(why, why_len)) != 0)
		return r;
	if (!kr)
		return tnd_refuse(why, why_len, TND_EINVAL, "no trusted keys given");
	rd.fd = open(file, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a FIFO must not hang us */
	if (rd.fd < 0)
		return tnd_refuse(why, why_len, errno == ENOENT ? TND_ENOENT : TND_ESYS,
				  "cannot open %s: %s", file, strerror(errno));
	if (fstat(rd.fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		r = tnd_refuse(why, why_len, TND_EINVAL, "%s is not a regular file", file);
		goto out;
	}
	if (st.st_size == 0) {
		r = tnd_refuse(why, why_len, TND_EINVAL, "%s is empty (0 bytes): not an image", file);
		goto out;
	}
	if ((uint64_t)st.st_size > IMAGE_BYTES_MAX) {
		r = tnd_refuse(why, why_len, TND_EINVAL,
			       "%s is %lld bytes, more than the %llu an image may have (oversized)",
			       file, (long long)st.st_size, IMAGE_BYTES_MAX);
		goto out;
	}
	rd.a = archive_read_new();
	json = malloc(MANIFEST_JSON_BYTES_MAX + 1);
	if (!rd.a || !json) {
		r = tnd_refuse(why, why_len, TND_ESYS, "out of memory");
		goto out;
	}
	/* Plain tar only: no compression filters, so the bounds above are
	 * the bounds of what is read. */
	archive_read_support_format_tar(rd.a);
	if (archive_read_open_fd(rd.a, rd.fd, TAR_BLOCK_BYTES) != ARCHIVE_OK) {
		r = arch_refuse(&rd, "not an image (a tar archive)");
		goto out;
	}

	/* 1. MANIFEST */
	r = archive_read_next_header(rd.a, &e);
	if (r == ARCHIVE_EOF) {
		r = tnd_refuse(why, why_len, TND_EINVAL, "%s is an empty archive: no MANIFEST", file);
		goto out;
	}
	if (r != ARCHIVE_OK) {
		r = arch_refuse(&rd, "not an image (a tar archive starting with MANIFEST)");
		goto out;
	}
	if (!archive_entry_pathname(e) || strcmp(archive_entry_pathname(e), "MANIFEST") != 0) {
		r = tnd_refuse(why, why_len, TND_EINVAL, "%s: the first entry is '%.100s', not MANIFEST",
			       file, archive_entry_pathname(e) ? archive_entry_pathname(e) : "?");
		goto out;
	}
	if ((r = read_small_entry(&rd, e, "MANIFEST", 2, MANIFEST_JSON_BYTES_MAX, json, &json_len)) != 0)
		goto out;

	/* 2. MANIFEST.sig, checked before anything the manifest says is used. */
	if ((r = next_entry(&rd, &e, "MANIFEST")) < 0)
		goto out;
	if (r == 1 || !archive_entry_pathname(e) || strcmp(archive_entry_pathname(e), "MANIFEST.sig") != 0) {
		r = tnd_refuse(why, why_len, TND_EAUTH,
			       "%s is not signed: %s%.100s%s where MANIFEST.sig belongs", file,
			       r == 1 ? "the archive ends" : "entry ",
			       r == 1 ? "" : archive_entry_pathname(e) ? archive_entry_pathname(e) : "?",
			       r == 1 ? "" : " comes");
		goto out;
	}
	if ((r = read_small_entry(&rd, e, "MANIFEST.sig", 1, IMAGE_SIG_LEN + 64, sigtxt, &sig_len)) != 0)
		goto out;
	if (parse_sig(sigtxt, sig_len, sig_id, sig) != 0) {
		r = tnd_refuse(why, why_len, TND_EAUTH,
			       "%s: MANIFEST.sig is malformed (expected one line \"ed25519 KEYID SIGNATURE\" "
			       "of %d bytes)", file, IMAGE_SIG_LEN);
		goto out;
	}
	for (k = 0; k < kr->n; k++)
		if (memcmp(kr->id[k], sig_id, sizeof sig_id) == 0 &&
		    crypto_sign_verify_detached(sig, (const uint8_t *)json, json_len, kr->pk[k]) == 0)
			break;
	if (k == kr->n) {
		bool known = false;
		for (int i = 0; i < kr->n; i++)
			known |= memcmp(kr->id[i], sig_id, sizeof sig_id) == 0;
		if (known)
			r = tnd_refuse(why, why_len, TND_EAUTH,
				       "%s: bad signature: MANIFEST.sig does not verify with trusted key %s "
				       "(the manifest or the signature was changed)", file,
				       tnd_hex(sig_id, sizeof sig_id, hx));
		else
			r = tnd_refuse(why, why_len, TND_EAUTH,
				       "%s is signed by key %s, which is not trusted (%d trusted key%s%s%s)",
				       file, tnd_hex(sig_id, sizeof sig_id, hx), kr->n, kr->n == 1 ? "" : "s",
				       kr->dir[0] ? " in " : "", kr->dir);
		goto out;
	}
	if (manifest_parse(json, json_len, m, mwhy, sizeof mwhy) != 0) {
		r = tnd_refuse(why, why_len, TND_EINVAL, "%s: the signed MANIFEST does not parse: %s",
			       file, mwhy);
		goto out;
	}
	if (memcmp(m->key_id, sig_id, sizeof sig_id) != 0) {
		r = tnd_refuse(why, why_len, TND_EAUTH, "%s: the MANIFEST names key %s but is signed by %s",
			       file, tnd_hex(m->key_id, sizeof m->key_id, hx), tnd_hex(sig_id, sizeof sig_id, hy));
		goto out;
	}

	/* 3. The files. Only now is anything created. */
	if (dest) {
		if (mkdir(dest, 0700) != 0) {
			int er = errno;
			r = er == EEXIST ? tnd_refuse(why, why_len, TND_EINVAL, "%s already exists", dest) :
				er == ENOSPC ? write_refuse(&rd, er, "creating", dest, 0, 0) :
				tnd_refuse(why, why_len, TND_ESYS, "cannot create %s: %s", dest, strerror(er));
			goto out;
		}
		rd.dest_made = true;
		rd.dest_fd = open(dest, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (rd.dest_fd < 0) {
			r = tnd_refuse(why, why_len, TND_ESYS, "cannot open %s: %s", dest, strerror(errno));
			goto out;
		}
	}
	for (idx = 0;;) {
		const char *after = idx ? m->files[idx - 1].path : "MANIFEST.sig";
		if ((r = next_entry(&rd, &e, after)) < 0)
			goto out;
		if (r == 1) {
			if (idx < m->n_files) {
				r = tnd_refuse(why, why_len, TND_EINVAL,
					       "%s: %s is missing: the archive ends after %d of its %d files "
					       "(truncated?)", file, m->files[idx].path, idx, m->n_files);
				goto out;
			}
			r = 0;
			break;
		}
		if (idx == m->n_files) {
			/* Everything listed is there: anything more is extra
			 * (check_entry says which kind). */
			if ((r = check_entry(&rd, e, m, idx)) == 1)
				continue;
			if (r == 0)
				r = tnd_refuse(why, why_len, TND_EINVAL, "%s: an extra entry", file);
			goto out;
		}
		if ((r = check_entry(&rd, e, m, idx)) == 1)
			continue;
		if (r != 0)
			goto out;
		if ((r = read_file_entry(&rd, &m->files[idx])) != 0)
			goto out;
		idx++;
	}
	if (dest) {
		if ((r = sync_dirs(&rd, m)) != 0)
			goto out;
		if (fchmod(rd.dest_fd, 0755) != 0 || fsync(rd.dest_fd) != 0) {
			r = write_refuse(&rd, errno, "syncing", ".", 0, 0);
			goto out;
		}
		char parent[TND_PATH_MAX * 2];
		dir_of(dest, parent, sizeof parent);
		if (state_fsync_dir(parent) != 0) {
			r = write_refuse(&rd, errno, "syncing the directory of", dest, 0, 0);
			goto out;
		}
	}
out:
	if (rd.a) {
		archive_read_close(rd.a);
		archive_read_free(rd.a);
	}
	if (rd.dest_fd >= 0)
		close(rd.dest_fd);
	if (r != 0 && rd.dest_made)
		rm_tree_at(AT_FDCWD, dest);
	if (rd.fd >= 0)
		close(rd.fd);
	free(json);
	if (r != 0)
		memset(m, 0, sizeof *m);
	return r;
}

int image_verify(const char *file, const struct image_keyring *kr, struct manifest *m,
		 char *why, size_t why_len)
{
	return image_read(file, kr, NULL, m, why, why_len);
}

int image_extract(const char *file, const struct image_keyring *kr, const char *dest_dir,
		  struct manifest *m, char *why, size_t why_len)
{
	if (!dest_dir || !*dest_dir)
		return tnd_refuse(why, why_len, TND_EINVAL, "no destination directory given");
	return image_read(file, kr, dest_dir, m, why, why_len);
}

/* --- building an image ------------------------------------------------- */

int image_probe_tandemd(const char *bin, char *version, size_t version_len, uint8_t *proto_min,
			uint8_t *proto_max, char *why, size_t why_len)
{
	char *argv[] = { (char *)bin, (char *)"--version", NULL };
	posix_spawn_file_actions_t fa;
	char out[512], vbuf[64];
	size_t got = 0;
	int pfd[2], status = 0, r = 0, lo, hi;
	pid_t pid;
	struct timespec t0, t;

	if (access(bin, X_OK) != 0)
		return tnd_refuse(why, why_len, TND_EINVAL, "%s is not an executable file: %s", bin,
				  strerror(errno));
	if (pipe2(pfd, O_CLOEXEC) != 0)
		return tnd_refuse(why, why_len, TND_ESYS, "pipe: %s", strerror(errno));
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	r = posix_spawn(&pid, bin, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(pfd[1]);
	if (r != 0) {
		close(pfd[0]);
		return tnd_refuse(why, why_len, TND_ESYS, "cannot run %s: %s", bin, strerror(r));
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct pollfd p = { .fd = pfd[0], .events = POLLIN };
		long left;
		ssize_t n;
		clock_gettime(CLOCK_MONOTONIC, &t);
		left = IMAGE_PROBE_TIMEOUT_MS - ((t.tv_sec - t0.tv_sec) * 1000 +
						 (t.tv_nsec - t0.tv_nsec) / 1000000);
		if (left <= 0) {
			r = tnd_refuse(why, why_len, TND_ETIMEDOUT, "%s --version did not finish within %d ms",
				       bin, IMAGE_PROBE_TIMEOUT_MS);
			kill(pid, SIGKILL);
			break;
		}
		if (poll(&p, 1, (int)left) < 0 && errno != EINTR) {
			r = tnd_refuse(why, why_len, TND_ESYS, "poll: %s", strerror(errno));
			kill(pid, SIGKILL);
			break;
		}
		n = read(pfd[0], out + got, sizeof out - 1 - got);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
		if (got == sizeof out - 1)
			break; /* more than a version line: parsing will say so */
	}
	close(pfd[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (r != 0)
		return r;
	out[got] = '\0';
	out[strcspn(out, "\n")] = '\0';
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return tnd_refuse(why, why_len, TND_EINVAL, "%s --version failed (%s %d)", bin,
				  WIFEXITED(status) ? "exit status" : "signal",
				  WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
	if (sscanf(out, "tandemd %63s (protocol %d..%d)", vbuf, &lo, &hi) != 3 || lo < 1 || hi > 255 ||
	    lo > hi || version_check(vbuf) != 0)
		return tnd_refuse(why, why_len, TND_EINVAL,
				  "%s --version did not say \"tandemd VERSION (protocol MIN..MAX)\" "
				  "(it said \"%.80s\")", bin, out);
	snprintf(version, version_len, "%s", vbuf);
	*proto_min = (uint8_t)lo;
	*proto_max = (uint8_t)hi;
	return 0;
}

struct scan {
	const char *root;
	int n;
	char paths[MANIFEST_FILES_MAX][MANIFEST_PATH_MAX];
	char *why;
	size_t why_len;
};

/* Collect the regular files below root/rel (a directory), refusing
 * anything else. */
static int scan_dir(struct scan *s, const char *rel, int depth)
{
	char abs[2 * TND_PATH_MAX + MANIFEST_PATH_MAX], child[MANIFEST_PATH_MAX + 2];
	struct dirent *e;
	DIR *d;
	int r = 0;

	snprintf(abs, sizeof abs, "%s/%s", s->root, rel);
	if (depth > MANIFEST_PATH_MAX / 2)
		return tnd_refuse(s->why, s->why_len, TND_EINVAL, "%s is nested too deep", abs);
	d = opendir(abs);
	if (!d)
		return tnd_refuse(s->why, s->why_len, TND_ESYS, "cannot read %s: %s", abs, strerror(errno));
	while (r == 0 && (e = readdir(d))) {
		struct stat st;
		char pwhy[300];
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (snprintf(child, sizeof child, "%s/%s", rel, e->d_name) >= MANIFEST_PATH_MAX) {
			r = tnd_refuse(s->why, s->why_len, TND_EINVAL, "%s/%s: path longer than %d bytes",
				       s->root, child, MANIFEST_PATH_MAX - 1);
			break;
		}
		snprintf(abs, sizeof abs, "%s/%s", s->root, child);
		if (lstat(abs, &st) != 0) {
			r = tnd_refuse(s->why, s->why_len, TND_ESYS, "cannot stat %s: %s", abs, strerror(errno));
		} else if (S_ISDIR(st.st_mode)) {
			r = scan_dir(s, child, depth + 1);
		} else if (!S_ISREG(st.st_mode)) {
			r = tnd_refuse(s->why, s->why_len, TND_EINVAL, "%s is %s; an image holds only regular "
				       "files", abs, type_name(st.st_mode & S_IFMT));
		} else if (manifest_path_check(child, pwhy, sizeof pwhy) != 0) {
			r = tnd_refuse(s->why, s->why_len, TND_EINVAL, "%s: %s", s->root, pwhy);
		} else if (s->n == MANIFEST_FILES_MAX) {
			r = tnd_refuse(s->why, s->why_len, TND_EINVAL, "%s holds more than %d files",
				       s->root, MANIFEST_FILES_MAX);
		} else {
			memcpy(s->paths[s->n++], child, strlen(child) + 1); /* < MANIFEST_PATH_MAX */
		}
	}
	closedir(d);
	return r;
}

static int path_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* Open a packaged file for reading, refusing anything but the regular
 * file it was when scanned. */
static int open_source(const char *root, const char *rel, struct stat *st, char *why, size_t why_len)
{
	char abs[2 * TND_PATH_MAX + MANIFEST_PATH_MAX];
	int fd;

	snprintf(abs, sizeof abs, "%s/%s", root, rel);
	fd = open(abs, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return tnd_refuse(why, why_len, TND_ESYS, "cannot open %s: %s", abs, strerror(errno));
	if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
		close(fd);
		return tnd_refuse(why, why_len, TND_EINVAL, "%s is not a regular file", abs);
	}
	if ((uint64_t)st->st_size > MANIFEST_FILE_BYTES_MAX) {
		close(fd);
		return tnd_refuse(why, why_len, TND_EINVAL, "%s is %lld bytes, more than the %llu a file "
				  "may have", abs, (long long)st->st_size, MANIFEST_FILE_BYTES_MAX);
	}
	return fd;
}

/* Hash a file, and copy it into the archive when `a` is given. The byte
 * count must stay what the manifest says. */
static int hash_file(const char *root, struct manifest_file *f, struct archive *a,
		     int64_t mtime, char *why, size_t why_len)
{
	crypto_generichash_state h;
	uint8_t dig[MANIFEST_DIGEST_LEN];
	char buf[IO_CHUNK_BYTES];
	struct stat st;
	uint64_t got = 0;
	int fd = open_source(root, f->path, &st, why, why_len), r = 0;

	if (fd < 0)
		return fd;
	if (!a) {
		f->size = (uint64_t)st.st_size;
		f->mode = st.st_mode & 0777;
	} else if ((uint64_t)st.st_size != f->size) {
		close(fd);
		return tnd_refuse(why, why_len, TND_EINVAL, "%s/%s changed while it was packaged", root,
				  f->path);
	} else {
		struct archive_entry *e = archive_entry_new();
		archive_entry_set_pathname(e, f->path);
		archive_entry_set_filetype(e, AE_IFREG);
		archive_entry_set_perm(e, (mode_t)f->mode);
		archive_entry_set_size(e, (la_int64_t)f->size);
		archive_entry_set_mtime(e, (time_t)mtime, 0);
		archive_entry_set_uname(e, "root");
		archive_entry_set_gname(e, "root");
		r = archive_write_header(a, e);
		archive_entry_free(e);
		if (r != ARCHIVE_OK) {
			close(fd);
			return tnd_refuse(why, why_len, TND_EIO, "cannot add %s: %s", f->path,
					  archive_error_string(a));
		}
	}
	crypto_generichash_init(&h, NULL, 0, sizeof dig);
	for (;;) {
		ssize_t n = read(fd, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = tnd_refuse(why, why_len, TND_EIO, "cannot read %s/%s: %s", root, f->path,
				       strerror(errno));
			break;
		}
		if (n == 0)
			break;
		if ((uint64_t)n > f->size - got) {
			r = tnd_refuse(why, why_len, TND_EINVAL, "%s/%s changed while it was packaged",
				       root, f->path);
			break;
		}
		crypto_generichash_update(&h, (const uint8_t *)buf, (size_t)n);
		if (a && archive_write_data(a, buf, (size_t)n) != n) {
			r = tnd_refuse(why, why_len, TND_EIO, "cannot write %s into the image: %s",
				       f->path, archive_error_string(a));
			break;
		}
		got += (uint64_t)n;
	}
	close(fd);
	if (r != 0)
		return r;
	crypto_generichash_final(&h, dig, sizeof dig);
	if (got != f->size || (a && sodium_memcmp(dig, f->digest, sizeof dig) != 0))
		return tnd_refuse(why, why_len, TND_EINVAL, "%s/%s changed while it was packaged", root,
				  f->path);
	memcpy(f->digest, dig, sizeof dig);
	return 0;
}

static int add_blob(struct archive *a, const char *name, const void *p, size_t len, int64_t mtime,
		    char *why, size_t why_len)
{
	struct archive_entry *e = archive_entry_new();
	int r;

	archive_entry_set_pathname(e, name);
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, 0644);
	archive_entry_set_size(e, (la_int64_t)len);
	archive_entry_set_mtime(e, (time_t)mtime, 0);
	archive_entry_set_uname(e, "root");
	archive_entry_set_gname(e, "root");
	r = archive_write_header(a, e);
	archive_entry_free(e);
	if (r != ARCHIVE_OK || archive_write_data(a, p, len) != (la_ssize_t)len)
		return tnd_refuse(why, why_len, TND_EIO, "cannot write %s into the image: %s", name,
				  archive_error_string(a));
	return 0;
}

int image_build_ex(const struct image_build_opts *o, char *why, size_t why_len)
{
	struct manifest *m = NULL;
	struct scan *s = NULL;
	struct image_keyring *kr = NULL;
	struct archive *a = NULL;
	uint8_t sk[64], pk[32], sig[64];
	char *json = NULL, tmp[TND_PATH_MAX + 32] = "", dir[TND_PATH_MAX], bin[2 * TND_PATH_MAX];
	char sigtxt[IMAGE_SIG_LEN + 1], hx[129], hid[17], mwhy[400], probed[64];
	size_t json_len;
	struct stat st;
	int r, fd = -1, c;
	bool have_key = false;

	if ((r = crypto_ready(why, why_len)) != 0)
		return r;
	if (!o->from_dir || !o->version || !o->key_path || !o->out_file)
		return tnd_refuse(why, why_len, TND_EINVAL, "from_dir, version, key and out are needed");
	if (strlen(o->from_dir) >= TND_PATH_MAX || strlen(o->out_file) >= TND_PATH_MAX)
		return tnd_refuse(why, why_len, TND_EINVAL, "path longer than %d bytes", TND_PATH_MAX - 1);
	m = calloc(1, sizeof *m);
	s = calloc(1, sizeof *s);
	if (!m || !s) {
		r = tnd_refuse(why, why_len, TND_ESYS, "out of memory");
		goto out;
	}
	snprintf(m->format, sizeof m->format, "%s", MANIFEST_FORMAT);
	snprintf(m->name, sizeof m->name, "%s", MANIFEST_NAME);
	if (version_check(o->version) != 0 || strlen(o->version) >= sizeof m->version) {
		r = tnd_refuse(why, why_len, TND_EINVAL,
			       "version '%s' is not MAJOR.MINOR.PATCH (each 0..%d, no leading zeros)",
			       o->version, MANIFEST_VERSION_PART_MAX);
		goto out;
	}
	snprintf(m->version, sizeof m->version, "%s", o->version);
	if (o->min_upgrade_from) {
		if (version_check(o->min_upgrade_from) != 0 ||
		    strlen(o->min_upgrade_from) >= sizeof m->min_upgrade_from) {
			r = tnd_refuse(why, why_len, TND_EINVAL,
				       "min-upgrade-from '%s' is not MAJOR.MINOR.PATCH (each 0..%d, "
				       "no leading zeros)", o->min_upgrade_from, MANIFEST_VERSION_PART_MAX);
			goto out;
		}
		snprintf(m->min_upgrade_from, sizeof m->min_upgrade_from, "%s", o->min_upgrade_from);
	} else {
		version_default_min(o->version, m->min_upgrade_from, sizeof m->min_upgrade_from);
	}
	version_cmp(m->min_upgrade_from, m->version, &c);
	if (c > 0) {
		r = tnd_refuse(why, why_len, TND_EINVAL, "min-upgrade-from %s is newer than the version %s",
			       m->min_upgrade_from, m->version);
		goto out;
	}
	if ((r = image_key_load(o->key_path, sk, pk, why, why_len)) != 0)
		goto out;
	have_key = true;
	manifest_key_id(pk, m->key_id);
	m->built = o->built ? o->built : (int64_t)time(NULL);

	/* What is in from_dir: bin/ (required) and hooks/, nothing else. */
	if (stat(o->from_dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		r = tnd_refuse(why, why_len, TND_EINVAL, "%s is not a directory", o->from_dir);
		goto out;
	}
	{
		DIR *d = opendir(o->from_dir);
		struct dirent *e;
		if (!d) {
			r = tnd_refuse(why, why_len, TND_ESYS, "cannot read %s: %s", o->from_dir,
				       strerror(errno));
			goto out;
		}
		while ((e = readdir(d)))
			if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, "bin") &&
			    strcmp(e->d_name, "hooks")) {
				r = tnd_refuse(why, why_len, TND_EINVAL,
					       "%s/%s: an image holds only bin/ and hooks/", o->from_dir,
					       e->d_name);
				break;
			}
		closedir(d);
		if (r != 0)
			goto out;
	}
	s->root = o->from_dir;
	s->why = why;
	s->why_len = why_len;
	snprintf(bin, sizeof bin, "%s/hooks", o->from_dir);
	if ((r = scan_dir(s, "bin", 0)) != 0 || (lstat(bin, &st) == 0 && (r = scan_dir(s, "hooks", 0)) != 0))
		goto out;
	qsort(s->paths, (size_t)s->n, sizeof s->paths[0], path_cmp);
	m->n_files = s->n;
	for (int i = 0; i < s->n; i++)
		snprintf(m->files[i].path, sizeof m->files[i].path, "%s", s->paths[i]);

	/* The protocol range, and the version the binary says it is. */
	if (o->proto_min || o->proto_max) {
		m->proto_min = o->proto_min;
		m->proto_max = o->proto_max;
	} else {
		snprintf(bin, sizeof bin, "%s/bin/tandemd", o->from_dir);
		if ((r = image_probe_tandemd(bin, probed, sizeof probed, &m->proto_min, &m->proto_max,
					     mwhy, sizeof mwhy)) != 0) {
			tnd_refuse(why, why_len, r, "%s (for a binary that cannot run here, give the "
				   "protocol range: --proto MIN..MAX)", mwhy);
			goto out;
		}
		version_cmp(probed, m->version, &c);
		if (c != 0) {
			r = tnd_refuse(why, why_len, TND_EINVAL,
				       "%s says it is version %s, not %s (build it with make VERSION=%s)",
				       bin, probed, m->version, m->version);
			goto out;
		}
	}

	for (int i = 0; i < m->n_files; i++)
		if ((r = hash_file(o->from_dir, &m->files[i], NULL, 0, why, why_len)) != 0)
			goto out;
	if (manifest_check(m, mwhy, sizeof mwhy) != 0) {
		r = tnd_refuse(why, why_len, TND_EINVAL, "%s: %s", o->from_dir, mwhy);
		goto out;
	}
	if (manifest_emit(m, &json, &json_len) != 0) {
		r = tnd_refuse(why, why_len, TND_EINVAL, "cannot write the manifest");
		goto out;
	}
	crypto_sign_detached(sig, NULL, (const uint8_t *)json, json_len, sk);
	snprintf(sigtxt, sizeof sigtxt, "ed25519 %s %s\n", tnd_hex(m->key_id, sizeof m->key_id, hid),
		 tnd_hex(sig, sizeof sig, hx));

	/* The archive, into a temporary file beside out_file. */
	snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", o->out_file);
	fd = mkstemp(tmp);
	if (fd < 0) {
		r = tnd_refuse(why, why_len, TND_ESYS, "cannot create a file beside %s: %s", o->out_file,
			       strerror(errno));
		goto out;
	}
	fchmod(fd, 0644);
	a = archive_write_new();
	if (!a || archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
	    archive_write_set_bytes_per_block(a, TAR_BLOCK_BYTES) != ARCHIVE_OK ||
	    archive_write_set_bytes_in_last_block(a, 1) != ARCHIVE_OK ||
	    archive_write_open_fd(a, fd) != ARCHIVE_OK) {
		r = tnd_refuse(why, why_len, TND_EIO, "cannot start the archive: %s",
			       a ? archive_error_string(a) : "out of memory");
		goto out;
	}
	if ((r = add_blob(a, "MANIFEST", json, json_len, m->built, why, why_len)) != 0 ||
	    (r = add_blob(a, "MANIFEST.sig", sigtxt, IMAGE_SIG_LEN, m->built, why, why_len)) != 0)
		goto out;
	for (int i = 0; i < m->n_files; i++)
		if ((r = hash_file(o->from_dir, &m->files[i], a, m->built, why, why_len)) != 0)
			goto out;
	if (archive_write_close(a) != ARCHIVE_OK) {
		r = tnd_refuse(why, why_len, TND_EIO, "cannot finish %s: %s", tmp, archive_error_string(a));
		goto out;
	}
	if (fsync(fd) != 0 || fstat(fd, &st) != 0) {
		r = tnd_refuse(why, why_len, errno == ENOSPC ? TND_ENOSPC : TND_EIO, "cannot write %s: %s",
			       tmp, strerror(errno));
		goto out;
	}
	if ((uint64_t)st.st_size > IMAGE_BYTES_MAX) {
		r = tnd_refuse(why, why_len, TND_EINVAL, "the image would be %lld bytes, more than %llu",
			       (long long)st.st_size, IMAGE_BYTES_MAX);
		goto out;
	}
	close(fd);
	fd = -1;
	/* Read it back as a node would before anyone else can see it. */
	{
		struct manifest *back = calloc(1, sizeof *back);
		if (!back || image_keyring_new(&kr) != 0 || image_keyring_add(kr, pk, o->key_path) != 0) {
			free(back);
			r = tnd_refuse(why, why_len, TND_ESYS, "out of memory");
			goto out;
		}
		r = image_verify(tmp, kr, back, mwhy, sizeof mwhy);
		free(back);
		if (r != 0) {
			r = tnd_refuse(why, why_len, TND_EIO, "the image written does not verify: %s", mwhy);
			goto out;
		}
	}
	if (rename(tmp, o->out_file) != 0) {
		r = tnd_refuse(why, why_len, TND_ESYS, "cannot rename %s to %s: %s", tmp, o->out_file,
			       strerror(errno));
		goto out;
	}
	tmp[0] = '\0';
	dir_of(o->out_file, dir, sizeof dir);
	if (state_fsync_dir(dir) != 0) {
		r = tnd_refuse(why, why_len, TND_EIO, "cannot sync %s: %s", dir, strerror(errno));
		goto out;
	}
	r = 0;
out:
	if (a)
		archive_write_free(a);
	if (fd >= 0)
		close(fd);
	if (r != 0 && tmp[0])
		unlink(tmp);
	if (have_key)
		sodium_memzero(sk, sizeof sk);
	image_keyring_free(kr);
	free(json);
	free(m);
	free(s);
	return r;
}

int image_build(const char *from_dir, const char *version, const char *min_upgrade_from,
		const char *key_path, const char *out_file, char *why, size_t why_len)
{
	struct image_build_opts o = {
		.from_dir = from_dir, .version = version, .min_upgrade_from = min_upgrade_from,
		.key_path = key_path, .out_file = out_file,
	};

	return image_build_ex(&o, why, why_len);
}
