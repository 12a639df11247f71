/* imgtool.c - test helper for tests/image/run.sh, linked with libio.a and
 * libcore.a: what the image tests need that tandemctl does not offer.
 *
 *   imgtool extract FILE KEYDIR DEST   image_extract(); prints the manifest
 *                                      version or the reason; exit 0, 1
 *                                      (refused), 3 (TND_ENOSPC)
 *   imgtool sign KEY < BYTES           prints the MANIFEST.sig line for
 *                                      BYTES, so crafted manifests can be
 *                                      signed by a trusted key
 *   imgtool seedkey SEEDHEX KEY        a key pair from a fixed 32-byte seed
 *                                      (the fuzz target's key)
 *   imgtool keyid KEY.pub              the key id of a public key file */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "core/manifest.h"
#include "io/image.h"

static int extract(const char *file, const char *keydir, const char *dest)
{
	struct image_keyring *kr;
	struct manifest *m = calloc(1, sizeof *m);
	char why[600];
	int r;

	if (image_keyring_load(keydir, &kr, why, sizeof why) != 0) {
		fprintf(stderr, "imgtool: %s\n", why);
		free(m);
		return 1;
	}
	r = image_extract(file, kr, dest, m, why, sizeof why);
	image_keyring_free(kr);
	if (r != 0) {
		printf("refused (%s): %s\n", tnd_strerror(r), why);
		free(m);
		return r == TND_ENOSPC ? 3 : 1;
	}
	printf("extracted %s %s: %d files\n", m->name, m->version, m->n_files);
	free(m);
	return 0;
}

static int sign(const char *key)
{
	static char buf[MANIFEST_JSON_BYTES_MAX + 1];
	uint8_t sk[64], pk[32], sig[64], id[MANIFEST_KEY_ID_LEN];
	char why[400], hs[129], hid[17];
	size_t n = fread(buf, 1, sizeof buf, stdin);

	if (image_key_load(key, sk, pk, why, sizeof why) != 0) {
		fprintf(stderr, "imgtool: %s\n", why);
		return 1;
	}
	manifest_key_id(pk, id);
	crypto_sign_detached(sig, NULL, (const uint8_t *)buf, n, sk);
	printf("ed25519 %s %s\n", tnd_hex(id, sizeof id, hid), tnd_hex(sig, sizeof sig, hs));
	return 0;
}

static int seedkey(const char *seedhex, const char *key)
{
	uint8_t seed[32], pk[32], sk[64];
	char hx[129], path[600];
	FILE *f;

	if (strlen(seedhex) != 64 || sodium_hex2bin(seed, 32, seedhex, 64, NULL, NULL, NULL) != 0)
		return 2;
	crypto_sign_seed_keypair(pk, sk, seed);
	f = fopen(key, "wx");
	if (!f)
		return 1;
	fprintf(f, "%s\n", tnd_hex(sk, 64, hx));
	fclose(f);
	snprintf(path, sizeof path, "%s.pub", key);
	f = fopen(path, "wx");
	if (!f)
		return 1;
	fprintf(f, "%s\n", tnd_hex(pk, 32, hx));
	fclose(f);
	return 0;
}

static int pubhex(const char *pub)
{
	uint8_t pk[32], id[MANIFEST_KEY_ID_LEN];
	char why[400], hid[17];

	if (image_pubkey_load(pub, pk, why, sizeof why) != 0) {
		fprintf(stderr, "imgtool: %s\n", why);
		return 1;
	}
	manifest_key_id(pk, id);
	printf("%s\n", tnd_hex(id, sizeof id, hid));
	return 0;
}

int main(int argc, char **argv)
{
	if (sodium_init() < 0)
		return 1;
	if (argc == 5 && strcmp(argv[1], "extract") == 0)
		return extract(argv[2], argv[3], argv[4]);
	if (argc == 3 && strcmp(argv[1], "sign") == 0)
		return sign(argv[2]);
	if (argc == 4 && strcmp(argv[1], "seedkey") == 0)
		return seedkey(argv[2], argv[3]);
	if (argc == 3 && strcmp(argv[1], "keyid") == 0)
		return pubhex(argv[2]);
	fprintf(stderr, "usage: imgtool extract FILE KEYDIR DEST | sign KEY | seedkey SEEDHEX KEY | keyid PUB\n");
	return 2;
}
