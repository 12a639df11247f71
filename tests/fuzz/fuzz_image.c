/* fuzz_image.c - libFuzzer target for the image reader (src/io/image.c):
 * the tar archive, the signature line, the manifest behind it and every
 * file entry, as `tandemctl image verify` and an install read them.
 *
 * The input is written to a memfd and read through /proc/self/fd/N by
 * image_verify() and then image_extract() into a fresh directory, with a
 * keyring holding one fixed key (Ed25519 from the seed 0x5a * 32). The
 * seed corpus (tests/fuzz/corpus/image) holds small images signed by that
 * key and damaged copies of them (tests/image/craft.py), so mutations of
 * the file entries are reached behind a valid signature. Properties:
 * verify and extract agree; a refused extraction leaves no directory; an
 * accepted one holds exactly the manifest's files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sodium.h>

#include "io/image.h"

static struct image_keyring *kr;
static char dest[64], parent[48];

static void cleanup(void)
{
	rmdir(parent);
}

static void setup(void)
{
	uint8_t seed[32], pk[32], sk[64];

	if (sodium_init() < 0)
		abort();
	memset(seed, 0x5a, sizeof seed);
	crypto_sign_seed_keypair(pk, sk, seed);
	if (image_keyring_new(&kr) != 0 || image_keyring_add(kr, pk, "fuzz.pub") != 0)
		abort();
	snprintf(parent, sizeof parent, "/tmp/tnd-fuzz-image.%d", (int)getpid());
	if (mkdir(parent, 0700) != 0)
		abort();
	snprintf(dest, sizeof dest, "%s/d", parent);
	atexit(cleanup);
}

/* Remove an accepted extraction: exactly the listed files and their
 * directories, deepest first; anything else left behind fails rmdir. */
static void remove_extracted(const struct manifest *m)
{
	char p[sizeof dest + MANIFEST_PATH_MAX + 2];

	for (int i = 0; i < m->n_files; i++) {
		struct stat st;
		snprintf(p, sizeof p, "%s/%s", dest, m->files[i].path);
		if (lstat(p, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != m->files[i].size ||
		    (st.st_mode & 07777) != m->files[i].mode || unlink(p) != 0)
			abort();
	}
	for (int pass = 0; pass < MANIFEST_PATH_MAX; pass++) {
		int removed = 0;
		for (int i = 0; i < m->n_files; i++) {
			snprintf(p, sizeof p, "%s/%s", dest, m->files[i].path);
			for (char *s = strrchr(p, '/'); s && s > p + strlen(dest); s = strrchr(p, '/')) {
				*s = '\0';
				if (rmdir(p) == 0)
					removed++;
			}
		}
		if (!removed)
			break;
	}
	if (rmdir(dest) != 0)
		abort(); /* something not in the manifest was extracted */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct manifest m1, m2;
	char why[600], path[64];
	int fd, r1, r2;

	if (!kr)
		setup();
	fd = memfd_create("fuzz-image", MFD_CLOEXEC);
	if (fd < 0)
		abort();
	if (size && write(fd, data, size) != (ssize_t)size)
		abort();
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	r1 = image_verify(path, kr, &m1, why, sizeof why);
	r2 = image_extract(path, kr, dest, &m2, why, sizeof why);
	close(fd);
	if ((r1 == 0) != (r2 == 0))
		abort();
	if (r2 != 0) {
		if (access(dest, F_OK) == 0)
			abort(); /* a refused image left its directory */
		return 0;
	}
	if (memcmp(&m1, &m2, sizeof m1) != 0)
		abort();
	remove_extracted(&m2);
	return 0;
}
