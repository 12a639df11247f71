/* image.c (cli) - `tandemctl image keygen|build|verify`; see image.h
 * (cli). The work is src/io/image.c; this file parses arguments, finds
 * the trusted keys and prints. */
#include "image.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <jansson.h>

#include "../conf/conf.h"
#include "../conf/confdoc.h"
#include "../io/image.h"
#include "conn.h"

#define WHY_LEN 600

const char *image_cli_usage(void)
{
	return "  image keygen --out KEY        new signing key pair KEY (secret) and KEY.pub\n"
	       "  image build --version V --from DIR --key KEY --out FILE\n"
	       "        [--min-upgrade-from V] [--proto MIN..MAX]\n"
	       "                                package DIR (bin/tandemd, bin/tandemctl, hooks/) as a\n"
	       "                                signed image; min-upgrade-from defaults to MAJOR.0.0\n"
	       "  image verify FILE [--trusted-keys DIR | --config FILE]\n"
	       "                                check an image against upgrade.trusted_keys\n";
}

bool image_cli_handles(int argc, char **argv)
{
	return argc >= 1 && (strcmp(argv[0], "keygen") == 0 || strcmp(argv[0], "build") == 0 ||
			     strcmp(argv[0], "verify") == 0);
}

static int usage(const char *fmt, const char *arg)
{
	fprintf(stderr, "tandemctl: image ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nusage:\n%s", image_cli_usage());
	return EXIT_USAGE;
}

/* A failure: the reason on stderr, and as JSON on stdout with --json. */
static int failed(bool json, const char *what, const char *why)
{
	fprintf(stderr, "tandemctl: %s: %s\n", what, why);
	if (json) {
		json_t *o = json_pack("{s:b,s:s,s:s}", "ok", 0, "code", "failed", "error", why);
		conn_print_json(o);
		json_decref(o);
	}
	return EXIT_FAILED;
}

static int cmd_keygen(int argc, char **argv, bool json)
{
	const char *out = NULL;
	char why[WHY_LEN], pub[TND_PATH_MAX + 8], id_hex[2 * MANIFEST_KEY_ID_LEN + 1];
	uint8_t pk[32], id[MANIFEST_KEY_ID_LEN];

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--out") == 0 && i + 1 < argc)
			out = argv[++i];
		else
			return usage("keygen: unexpected argument '%s'", argv[i]);
	}
	if (!out)
		return usage("keygen needs --out KEY%s", "");
	if (image_keygen(out, why, sizeof why) != 0)
		return failed(json, "image keygen", why);
	snprintf(pub, sizeof pub, "%s.pub", out);
	if (image_pubkey_load(pub, pk, why, sizeof why) != 0)
		return failed(json, "image keygen", why);
	manifest_key_id(pk, id);
	tnd_hex(id, sizeof id, id_hex);
	if (json) {
		json_t *o = json_pack("{s:b,s:s,s:s,s:s}", "ok", 1, "key", out, "public_key", pub,
				      "key_id", id_hex);
		conn_print_json(o);
		json_decref(o);
	} else {
		printf("wrote %s (secret: keep it off the cluster) and %s (key id %s)\n"
		       "trust it by copying %s into upgrade.trusted_keys on every node\n",
		       out, pub, id_hex, pub);
	}
	return EXIT_DONE;
}

static int parse_proto(const char *s, uint8_t *lo, uint8_t *hi)
{
	unsigned a, b;
	int n = 0;

	if (sscanf(s, "%u..%u%n", &a, &b, &n) != 2 || s[n] || a < 1 || b > 255 || a > b)
		return -1;
	*lo = (uint8_t)a;
	*hi = (uint8_t)b;
	return 0;
}

/* The manifest as a JSON object (the manifest's own field names). */
static json_t *manifest_json(const struct manifest *m)
{
	char kid[2 * MANIFEST_KEY_ID_LEN + 1], dig[2 * MANIFEST_DIGEST_LEN + 1], mode[8];
	json_t *files = json_array();

	for (int i = 0; i < m->n_files; i++) {
		const struct manifest_file *f = &m->files[i];
		snprintf(mode, sizeof mode, "%04o", f->mode);
		json_array_append_new(files, json_pack("{s:s,s:I,s:s,s:s}", "path", f->path,
						       "size", (json_int_t)f->size, "mode", mode,
						       "digest", tnd_hex(f->digest, sizeof f->digest, dig)));
	}
	return json_pack("{s:s,s:s,s:s,s:s,s:i,s:i,s:I,s:s,s:o}", "format", m->format,
			 "name", m->name, "version", m->version, "min_upgrade_from",
			 m->min_upgrade_from, "proto_min", (int)m->proto_min, "proto_max",
			 (int)m->proto_max, "built", (json_int_t)m->built, "key_id",
			 tnd_hex(m->key_id, sizeof m->key_id, kid), "files", files);
}

static void print_manifest(const struct manifest *m, const char *signer)
{
	char kid[2 * MANIFEST_KEY_ID_LEN + 1], dig[2 * MANIFEST_DIGEST_LEN + 1], when[32];
	time_t t = (time_t)m->built;
	struct tm tm;
	uint64_t total = 0;

	if (gmtime_r(&t, &tm))
		strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
	else
		snprintf(when, sizeof when, "?");
	printf("name:             %s\n", m->name);
	printf("version:          %s\n", m->version);
	printf("min upgrade from: %s (in service)\n", m->min_upgrade_from);
	printf("protocol:         %u..%u\n", m->proto_min, m->proto_max);
	printf("built:            %s (%" PRId64 ")\n", when, m->built);
	printf("key id:           %s%s%s\n", tnd_hex(m->key_id, sizeof m->key_id, kid),
	       signer ? " " : "", signer ? signer : "");
	printf("files:            %d\n", m->n_files);
	for (int i = 0; i < m->n_files; i++) {
		const struct manifest_file *f = &m->files[i];
		printf("  %04o %10" PRIu64 "  %s  blake2b-256:%.16s...\n", f->mode, f->size, f->path,
		       tnd_hex(f->digest, sizeof f->digest, dig));
		total += f->size;
	}
	printf("total:            %" PRIu64 " bytes\n", total);
}

static int cmd_build(int argc, char **argv, bool json)
{
	struct image_build_opts o = { 0 };
	struct image_keyring *kr = NULL;
	struct manifest *m;
	char why[WHY_LEN], pub[TND_PATH_MAX + 8];
	uint8_t sk[64], pk[32];
	const char *sde = getenv("SOURCE_DATE_EPOCH");
	int rc;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (i + 1 >= argc)
			return usage("build: '%s' needs a value or is unexpected", a);
		if (strcmp(a, "--version") == 0) {
			o.version = argv[++i];
		} else if (strcmp(a, "--from") == 0) {
			o.from_dir = argv[++i];
		} else if (strcmp(a, "--key") == 0) {
			o.key_path = argv[++i];
		} else if (strcmp(a, "--out") == 0) {
			o.out_file = argv[++i];
		} else if (strcmp(a, "--min-upgrade-from") == 0) {
			o.min_upgrade_from = argv[++i];
		} else if (strcmp(a, "--proto") == 0) {
			if (parse_proto(argv[++i], &o.proto_min, &o.proto_max) != 0)
				return usage("build: --proto needs MIN..MAX (1 <= MIN <= MAX <= 255), not '%s'",
					     argv[i]);
		} else {
			return usage("build: unexpected argument '%s'", a);
		}
	}
	if (!o.version || !o.from_dir || !o.key_path || !o.out_file)
		return usage("build needs --version V --from DIR --key KEY --out FILE%s", "");
	if (sde && *sde) {
		char *end;
		long long v;
		errno = 0;
		v = strtoll(sde, &end, 10);
		if (*end || errno || v <= 0)
			return usage("build: SOURCE_DATE_EPOCH='%s' is not a positive number of seconds", sde);
		o.built = v;
	}
	if (image_build_ex(&o, why, sizeof why) != 0)
		return failed(json, "image build", why);
	/* Show what was built as a node will see it: read it back. */
	m = calloc(1, sizeof *m);
	if (!m || image_key_load(o.key_path, sk, pk, why, sizeof why) != 0 ||
	    image_keyring_new(&kr) != 0 || image_keyring_add(kr, pk, o.key_path) != 0 ||
	    image_verify(o.out_file, kr, m, why, sizeof why) != 0) {
		rc = failed(json, "image build: reading the image back", m ? why : "out of memory");
		goto out;
	}
	snprintf(pub, sizeof pub, "%s.pub", o.key_path);
	if (json) {
		json_t *res = manifest_json(m);
		json_object_set_new(res, "ok", json_true());
		json_object_set_new(res, "file", json_string(o.out_file));
		conn_print_json(res);
		json_decref(res);
	} else {
		struct stat st;
		printf("built %s (%lld bytes), signed with %s\n", o.out_file,
		       stat(o.out_file, &st) == 0 ? (long long)st.st_size : -1LL, o.key_path);
		print_manifest(m, NULL);
	}
	rc = EXIT_DONE;
out:
	memset(sk, 0, sizeof sk);
	image_keyring_free(kr);
	free(m);
	return rc;
}

/* The trusted keys directory for verify (see image.h (cli)). */
static int trusted_dir(const char *keys, const char *config, char *out, size_t len, bool json)
{
	struct tnd_conf *conf;
	struct conf_diags *dg;
	const char *path = config ? config : IMAGE_CLI_DEFAULT_CONFIG;
	int rc = 0;

	if (keys) {
		snprintf(out, len, "%s", keys);
		return 0;
	}
	if (!config && access(path, F_OK) != 0) {
		snprintf(out, len, "/etc/tandem/trusted.d");
		return 0;
	}
	conf = calloc(1, sizeof *conf);
	dg = calloc(1, sizeof *dg);
	if (!conf || !dg) {
		rc = failed(json, "image verify", "out of memory");
	} else if (conf_load(path, conf, dg) != 0) {
		for (int i = 0; i < dg->n; i++)
			fprintf(stderr, "%s\n", dg->msg[i]);
		char why[TND_PATH_MAX + 80];
		snprintf(why, sizeof why, "%s is not a valid configuration; give --trusted-keys DIR", path);
		rc = failed(json, "image verify", why);
	} else {
		confdoc_ruleset_path(path, conf->upgrade_trusted_keys, out, len);
	}
	free(conf);
	free(dg);
	return rc;
}

static int cmd_verify(int argc, char **argv, bool json)
{
	const char *file = NULL, *keys = NULL, *config = NULL;
	struct image_keyring *kr = NULL;
	struct manifest *m = NULL;
	char why[WHY_LEN], dir[TND_PATH_MAX];
	int rc;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--trusted-keys") == 0 && i + 1 < argc)
			keys = argv[++i];
		else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
			config = argv[++i];
		else if (argv[i][0] != '-' && !file)
			file = argv[i];
		else
			return usage("verify: unexpected argument '%s'", argv[i]);
	}
	if (!file)
		return usage("verify needs FILE%s", "");
	if (keys && config)
		return usage("verify: --trusted-keys and --config do not go together%s", "");
	if ((rc = trusted_dir(keys, config, dir, sizeof dir, json)) != 0)
		return rc;
	if (image_keyring_load(dir, &kr, why, sizeof why) != 0)
		return failed(json, "image verify", why);
	m = calloc(1, sizeof *m);
	if (!m) {
		rc = failed(json, "image verify", "out of memory");
	} else if (image_verify(file, kr, m, why, sizeof why) != 0) {
		char what[TND_PATH_MAX + 32];
		snprintf(what, sizeof what, "image refused");
		rc = failed(json, what, why);
	} else {
		const char *signer = image_keyring_source(kr, m->key_id);
		if (json) {
			json_t *res = manifest_json(m);
			json_object_set_new(res, "ok", json_true());
			json_object_set_new(res, "file", json_string(file));
			json_object_set_new(res, "trusted_key", json_string(signer ? signer : ""));
			conn_print_json(res);
			json_decref(res);
		} else {
			printf("%s: good image, signed by trusted key %s\n", file, signer ? signer : "?");
			print_manifest(m, NULL);
		}
		rc = EXIT_DONE;
	}
	free(m);
	image_keyring_free(kr);
	return rc;
}

int image_cli_run(int argc, char **argv, bool json)
{
	if (argc >= 1 && strcmp(argv[0], "keygen") == 0)
		return cmd_keygen(argc, argv, json);
	if (argc >= 1 && strcmp(argv[0], "build") == 0)
		return cmd_build(argc, argv, json);
	if (argc >= 1 && strcmp(argv[0], "verify") == 0)
		return cmd_verify(argc, argv, json);
	return usage("needs a subcommand: keygen, build or verify%s", "");
}
