/* test_manifest.c - unit tests of the image manifest (src/core/manifest.c).
 *
 * The canonical writer and the strict reader round trip; a manifest
 * written by hand in another key order and spacing reads to the same
 * struct and is written back canonically; every refusal the reader makes
 * (a mutation of a valid manifest each, with the words the reason must
 * contain); the path rules on their own; version_cmp's order, equalities
 * and malformed versions; the default min_upgrade_from. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <sodium.h>

#include "core/manifest.h"

static void fill(struct manifest *m)
{
	memset(m, 0, sizeof *m);
	strcpy(m->format, MANIFEST_FORMAT);
	strcpy(m->name, MANIFEST_NAME);
	strcpy(m->version, "1.2.3");
	strcpy(m->min_upgrade_from, "1.0.0");
	m->proto_min = 1;
	m->proto_max = 2;
	m->built = 1700000000;
	for (int i = 0; i < MANIFEST_KEY_ID_LEN; i++)
		m->key_id[i] = (uint8_t)(0xa0 + i);
	m->n_files = 3;
	strcpy(m->files[0].path, "bin/tandemctl");
	strcpy(m->files[1].path, "bin/tandemd");
	strcpy(m->files[2].path, "hooks/up");
	for (int f = 0; f < 3; f++) {
		m->files[f].size = 1000u * (unsigned)(f + 1);
		m->files[f].mode = f == 2 ? 0750 : 0755;
		for (int i = 0; i < MANIFEST_DIGEST_LEN; i++)
			m->files[f].digest[i] = (uint8_t)(f * 32 + i);
	}
}

/* The canonical JSON of the valid manifest, as a jansson object. */
static json_t *base_json(void)
{
	struct manifest m;
	char *s;
	size_t len;
	json_t *o;

	fill(&m);
	assert_int_equal(manifest_emit(&m, &s, &len), 0);
	o = json_loadb(s, len, 0, NULL);
	assert_non_null(o);
	free(s);
	return o;
}

/* Parse o (reference stolen); return the code, reason in why. */
static int parse_json(json_t *o, char *why, size_t len)
{
	struct manifest m;
	char *s = json_dumps(o, JSON_COMPACT | JSON_ENCODE_ANY);
	int r;

	json_decref(o);
	assert_non_null(s);
	r = manifest_parse(s, strlen(s), &m, why, len);
	free(s);
	return r;
}

static json_t *file_obj(json_t *o, int i)
{
	return json_array_get(json_object_get(o, "files"), (size_t)i);
}

/* --- round trips -------------------------------------------------------- */

static void test_round_trip(void **state)
{
	(void)state;
	struct manifest m, back;
	char *s, *s2, why[256] = "";
	size_t len, len2;

	fill(&m);
	assert_int_equal(manifest_emit(&m, &s, &len), 0);
	assert_int_equal(len, strlen(s));
	/* Compact and sorted: the first key is "built", no spaces at all. */
	assert_true(strncmp(s, "{\"built\":1700000000,\"files\":[{\"digest\":\"000102", 44) == 0);
	assert_null(strchr(s, ' '));
	assert_null(strchr(s, '\n'));
	assert_non_null(strstr(s, "\"mode\":\"0750\",\"path\":\"hooks/up\",\"size\":3000}"));
	assert_non_null(strstr(s, "\"key_id\":\"a0a1a2a3a4a5a6a7\""));
	assert_true(strstr(s, "\"proto_max\":2,\"proto_min\":1,\"version\":\"1.2.3\"}") != NULL);

	assert_int_equal(manifest_parse(s, len, &back, why, sizeof why), 0);
	assert_string_equal(why, "");
	assert_memory_equal(&m, &back, sizeof m);
	assert_int_equal(manifest_emit(&back, &s2, &len2), 0);
	assert_int_equal(len, len2);
	assert_memory_equal(s, s2, len);
	free(s);
	free(s2);
}

static void test_hand_written(void **state)
{
	(void)state;
	/* Another key order, spaces and newlines: the same manifest. */
	const char *text =
		"{ \"version\": \"2.0\", \"name\": \"tandem\", \"format\": \"tandem-image/1\",\n"
		"  \"proto_min\": 1, \"proto_max\": 1, \"min_upgrade_from\": \"1.9.12\",\n"
		"  \"key_id\": \"0011223344556677\", \"built\": 0,\n"
		"  \"files\": [\n"
		"   {\"size\": 0, \"path\": \"bin/tandemctl\", \"mode\": \"0500\", \"digest\": "
		"\"0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8\"},\n"
		"   {\"path\": \"bin/tandemd\", \"digest\": "
		"\"0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8\", \"mode\": \"0700\", \"size\": 0},\n"
		"   {\"path\": \"hooks/a/b-c_d.e+f\", \"digest\": "
		"\"0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8\", \"mode\": \"0000\", \"size\": 0}\n"
		"  ] }\n";
	struct manifest m;
	char why[256], *s;
	size_t len;
	uint8_t empty[32];

	assert_int_equal(manifest_parse(text, strlen(text), &m, why, sizeof why), 0);
	assert_string_equal(m.version, "2.0");
	assert_string_equal(m.min_upgrade_from, "1.9.12");
	assert_int_equal(m.proto_min, 1);
	assert_int_equal(m.built, 0);
	assert_int_equal(m.n_files, 3);
	assert_string_equal(m.files[2].path, "hooks/a/b-c_d.e+f");
	assert_int_equal(m.files[0].mode, 0500);
	assert_int_equal(m.files[2].mode, 0);
	assert_int_equal(m.key_id[7], 0x77);
	/* The digest of no bytes at all is BLAKE2b-256(""), as the manifest says. */
	crypto_generichash(empty, sizeof empty, NULL, 0, NULL, 0);
	assert_memory_equal(m.files[1].digest, empty, 32);
	assert_int_equal(manifest_emit(&m, &s, &len), 0);
	assert_true(strncmp(s, "{\"built\":0,\"files\":", 19) == 0);
	free(s);
}

/* --- refusals ----------------------------------------------------------- */

static void expect_refused(json_t *o, const char *words)
{
	char why[512] = "";
	int r = parse_json(o, why, sizeof why);

	if (r != TND_EINVAL || !strstr(why, words))
		fail_msg("expected TND_EINVAL with \"%s\", got %d \"%s\"", words, r, why);
}

static void expect_text_refused(const char *text, const char *words)
{
	struct manifest m;
	char why[512] = "";
	int r = manifest_parse(text, strlen(text), &m, why, sizeof why);

	if (r != TND_EINVAL || !strstr(why, words))
		fail_msg("%s: expected TND_EINVAL with \"%s\", got %d \"%s\"", text, words, r, why);
}

static void test_refuse_not_a_manifest(void **state)
{
	(void)state;
	expect_text_refused("", "not JSON");
	expect_text_refused("garbage", "not JSON");
	expect_text_refused("{\"built\":1", "not JSON");
	expect_text_refused("[1,2]", "not a JSON object");
	expect_text_refused("\"tandem-image/1\"", "not JSON");
	expect_text_refused("{}", "format is missing");
	expect_text_refused("{\"format\":1}", "format is not a string");
	expect_text_refused("{\"format\":\"tandem-image/2\"}", "'tandem-image/2', not tandem-image/1");
	/* Two readers must never see two manifests behind one signature. */
	expect_text_refused("{\"format\":\"tandem-image/1\",\"format\":\"tandem-image/1\"}", "duplicate");
	expect_text_refused("{\"format\":\"tandem-image/1\",\"name\":\"tan\\u0000dem\"}", "not JSON");
}

static void test_refuse_fields(void **state)
{
	(void)state;
	const char *top[] = { "built", "files", "format", "key_id", "min_upgrade_from", "name",
			      "proto_max", "proto_min", "version" };
	json_t *o;

	for (size_t i = 0; i < sizeof top / sizeof top[0]; i++) {
		char words[64];
		if (strcmp(top[i], "format") == 0)
			continue; /* missing format: tested above */
		o = base_json();
		json_object_del(o, top[i]);
		snprintf(words, sizeof words, "missing field '%s'", top[i]);
		expect_refused(o, words);
	}
	o = base_json();
	json_object_set_new(o, "signature", json_string("x"));
	expect_refused(o, "unknown field 'signature'");

	/* Mistyped. */
	o = base_json();
	json_object_set_new(o, "version", json_integer(2));
	expect_refused(o, "'version' must be a string");
	o = base_json();
	json_object_set_new(o, "proto_min", json_string("1"));
	expect_refused(o, "'proto_min' must be an integer");
	o = base_json();
	json_object_set_new(o, "built", json_real(1.5));
	expect_refused(o, "'built' must be an integer");
	o = base_json();
	json_object_set_new(o, "files", json_object());
	expect_refused(o, "'files' must be an array");
	o = base_json();
	json_object_set_new(o, "name", json_string("other"));
	expect_refused(o, "name 'other' is not tandem");
	o = base_json();
	json_object_set_new(o, "name", json_string("a-name-that-is-far-too-long-for-the-field"));
	expect_refused(o, "longer than 31 bytes");
}

static void test_refuse_values(void **state)
{
	(void)state;
	json_t *o;

	o = base_json();
	json_object_set_new(o, "proto_min", json_integer(0));
	expect_refused(o, "'proto_min' is 0, not 1..255");
	o = base_json();
	json_object_set_new(o, "proto_max", json_integer(256));
	expect_refused(o, "'proto_max' is 256, not 1..255");
	o = base_json();
	json_object_set_new(o, "proto_min", json_integer(3));
	expect_refused(o, "protocol range 3..2");
	o = base_json();
	json_object_set_new(o, "built", json_integer(-1));
	expect_refused(o, "'built' is -1");
	o = base_json();
	json_object_set_new(o, "key_id", json_string("A0A1A2A3A4A5A6A7"));
	expect_refused(o, "key_id is not 16 lower-case hex");
	o = base_json();
	json_object_set_new(o, "key_id", json_string("a0a1a2"));
	expect_refused(o, "key_id is not 16 lower-case hex");

	/* Versions. */
	const char *bad_versions[] = { "", "1.", ".1", "1..2", "01.0.0", "1.02", "1.0.0.0", "v1",
				       "1.a", "-1", "+1", "1.0.0-rc1", "100000", " 1", "1 " };
	for (size_t i = 0; i < sizeof bad_versions / sizeof bad_versions[0]; i++) {
		o = base_json();
		json_object_set_new(o, "version", json_string(bad_versions[i]));
		expect_refused(o, "is not a version");
		o = base_json();
		json_object_set_new(o, "min_upgrade_from", json_string(bad_versions[i]));
		expect_refused(o, "min_upgrade_from");
	}
	o = base_json();
	json_object_set_new(o, "min_upgrade_from", json_string("1.2.4"));
	expect_refused(o, "min_upgrade_from 1.2.4 is newer than the version 1.2.3");
	o = base_json();
	json_object_set_new(o, "min_upgrade_from", json_string("1.2.3"));
	char why[256];
	assert_int_equal(parse_json(o, why, sizeof why), 0); /* equal is fine */
}

static void test_refuse_files(void **state)
{
	(void)state;
	json_t *o, *f;

	o = base_json();
	json_object_set_new(o, "files", json_array());
	expect_refused(o, "lists 0 files");
	o = base_json();
	f = json_object_get(o, "files");
	for (int i = 0; i < MANIFEST_FILES_MAX; i++) {
		char p[32];
		snprintf(p, sizeof p, "hooks/f%03d", i);
		json_t *c = json_deep_copy(json_array_get(f, 2));
		json_object_set_new(c, "path", json_string(p));
		json_array_append_new(f, c);
	}
	expect_refused(o, "lists 67 files (1..64 allowed)");

	o = base_json();
	json_array_set_new(json_object_get(o, "files"), 0, json_string("bin/tandemctl"));
	expect_refused(o, "files[0] must be an object");
	o = base_json();
	json_object_del(file_obj(o, 1), "digest");
	expect_refused(o, "files[1]: missing field 'digest'");
	o = base_json();
	json_object_set_new(file_obj(o, 1), "owner", json_string("root"));
	expect_refused(o, "files[1]: unknown field 'owner'");
	o = base_json();
	json_object_set_new(file_obj(o, 1), "size", json_integer(-1));
	expect_refused(o, "files[1] 'bin/tandemd': field 'size' is -1");
	o = base_json();
	json_object_set_new(file_obj(o, 1), "size", json_integer((json_int_t)MANIFEST_FILE_BYTES_MAX + 1));
	expect_refused(o, "field 'size' is 134217729");
	o = base_json();
	json_object_set_new(file_obj(o, 0), "size", json_integer((json_int_t)MANIFEST_FILE_BYTES_MAX));
	json_object_set_new(file_obj(o, 1), "size", json_integer((json_int_t)MANIFEST_FILE_BYTES_MAX));
	json_object_set_new(file_obj(o, 2), "size", json_integer(1));
	expect_refused(o, "add up to more than 268435456 bytes");
	o = base_json();
	json_object_set_new(file_obj(o, 1), "size", json_string("10"));
	expect_refused(o, "'size' must be an integer");

	const char *bad_modes[] = { "755", "0o755", "1755", "4755", "0758", "07555", "", "rwx" };
	for (size_t i = 0; i < sizeof bad_modes / sizeof bad_modes[0]; i++) {
		o = base_json();
		json_object_set_new(file_obj(o, 2), "mode", json_string(bad_modes[i]));
		expect_refused(o, "is not four octal digits");
	}
	o = base_json();
	json_object_set_new(file_obj(o, 2), "mode", json_integer(0755));
	expect_refused(o, "'mode' must be a string");
	o = base_json();
	json_object_set_new(file_obj(o, 1), "mode", json_string("0644"));
	expect_refused(o, "bin/tandemd has mode 0644: its owner cannot read and execute it");

	o = base_json();
	json_object_set_new(file_obj(o, 2), "digest", json_string("00"));
	expect_refused(o, "digest is not 64 lower-case hex digits");
	o = base_json();
	json_object_set_new(file_obj(o, 2), "digest",
			    json_string("404142434445464748494A4B4C4D4E4F505152535455565758595a5b5c5d5e5f"));
	expect_refused(o, "digest is not 64 lower-case hex digits");
}

/* Replace file 2's path (hooks/up) and expect words. */
static void expect_path_refused(const char *path, const char *words)
{
	json_t *o = base_json();

	json_object_set_new(file_obj(o, 2), "path", json_string(path));
	expect_refused(o, words);
}

static void test_refuse_paths(void **state)
{
	(void)state;
	expect_path_refused("/etc/passwd", "'/etc/passwd' is absolute");
	expect_path_refused("hooks/../../etc/passwd", "has a '..' component");
	expect_path_refused("hooks/..", "has a '..' component");
	expect_path_refused("hooks/./up", "has a '.' component");
	expect_path_refused("hooks//up", "has an empty component");
	expect_path_refused("hooks/up/", "has an empty component");
	expect_path_refused("", "a path is empty");
	expect_path_refused("hooks", "names a directory");
	expect_path_refused("etc/up", "not under bin/ or hooks/");
	expect_path_refused("hooksx/up", "not under bin/ or hooks/");
	expect_path_refused("MANIFEST", "not under bin/ or hooks/");
	expect_path_refused("hooks/a b", "byte 0x20");
	expect_path_refused("hooks/a\\b", "byte 0x5c");
	expect_path_refused("hooks/\xc3\xa9t\xc3\xa9", "byte 0xc3");
	expect_path_refused("hooks/a\nb", "byte 0x0a");
	char longp[300];
	memset(longp, 'a', sizeof longp);
	memcpy(longp, "hooks/", 6);
	longp[299] = '\0';
	expect_path_refused(longp, "longer than 255 bytes");

	/* Sorted, once each, no file inside another. */
	json_t *o = base_json();
	json_object_set_new(file_obj(o, 2), "path", json_string("bin/tandemd"));
	expect_refused(o, "path 'bin/tandemd' is listed twice");
	o = base_json();
	json_object_set_new(file_obj(o, 2), "path", json_string("bin/a"));
	expect_refused(o, "not sorted by path ('bin/a' after 'bin/tandemd')");
	o = base_json();
	json_object_set_new(file_obj(o, 2), "path", json_string("bin/tandemd/x"));
	expect_refused(o, "'bin/tandemd' is both a file and the directory of 'bin/tandemd/x'");
	o = base_json();
	json_object_set_new(file_obj(o, 1), "path", json_string("bin/tandemd2"));
	expect_refused(o, "bin/tandemd is not in the image");
	o = base_json();
	json_object_set_new(file_obj(o, 0), "path", json_string("bin/other"));
	expect_refused(o, "bin/tandemctl is not in the image");

	/* manifest_path_check on its own. */
	char why[256];
	assert_int_equal(manifest_path_check("bin/tandemd", why, sizeof why), 0);
	assert_int_equal(manifest_path_check("hooks/x/y/z.sh", why, sizeof why), 0);
	assert_int_equal(manifest_path_check("bin/..x", why, sizeof why), 0); /* a name, not ".." */
	assert_int_equal(manifest_path_check("../bin/x", why, sizeof why), TND_EINVAL);
	assert_non_null(strstr(why, "'..'"));
	assert_int_equal(manifest_path_check("bin", why, sizeof why), TND_EINVAL);
}

static void test_size_bounds(void **state)
{
	(void)state;
	char *big = malloc(MANIFEST_JSON_BYTES_MAX + 2);
	struct manifest m;
	char why[256];

	memset(big, ' ', MANIFEST_JSON_BYTES_MAX + 1);
	assert_int_equal(manifest_parse(big, MANIFEST_JSON_BYTES_MAX + 1, &m, why, sizeof why), TND_EINVAL);
	assert_non_null(strstr(why, "more than 65536"));
	free(big);
	/* why may be NULL or tiny: no overflow. */
	assert_int_equal(manifest_parse("x", 1, &m, NULL, 0), TND_EINVAL);
	assert_int_equal(manifest_parse("x", 1, &m, why, 4), TND_EINVAL);
	assert_int_equal(strlen(why), 3);
}

static void test_emit_refuses_invalid(void **state)
{
	(void)state;
	struct manifest m;
	char *s = (char *)"unchanged";
	size_t len = 9;

	fill(&m);
	strcpy(m.files[2].path, "hooks/../x");
	assert_int_equal(manifest_emit(&m, &s, &len), TND_EINVAL);
	assert_null(s);
	assert_int_equal(len, 0);
	fill(&m);
	m.files[1].mode = 04755;
	assert_int_equal(manifest_check(&m, NULL, 0), TND_EINVAL);
	fill(&m);
	m.n_files = 0;
	assert_int_equal(manifest_emit(&m, &s, &len), TND_EINVAL);
	fill(&m);
	m.n_files = MANIFEST_FILES_MAX + 1;
	assert_int_equal(manifest_check(&m, NULL, 0), TND_EINVAL);
}

/* --- versions ----------------------------------------------------------- */

static int cmp(const char *a, const char *b)
{
	int c = 99;

	assert_int_equal(version_cmp(a, b, &c), 0);
	return c;
}

static void test_version_cmp(void **state)
{
	(void)state;
	assert_int_equal(cmp("1.0.0", "1.0.0"), 0);
	assert_int_equal(cmp("1.1", "1.1.0"), 0);
	assert_int_equal(cmp("2", "2.0.0"), 0);
	assert_true(cmp("1.0.0", "1.0.1") < 0);
	assert_true(cmp("1.0.1", "1.0.0") > 0);
	assert_true(cmp("1.9.0", "1.10.0") < 0);  /* numbers, not text */
	assert_true(cmp("1.10", "1.9.99999") > 0);
	assert_true(cmp("0.99999.99999", "1") < 0);
	assert_true(cmp("99999.0.0", "9999.99999.99999") > 0);
	assert_true(cmp("1.1.0", "1.1") == 0);
	assert_true(cmp("0", "0.0.1") < 0);

	const char *bad[] = { NULL, "", "1.", ".", "1..0", "a", "1.0.0.0", "01", "1.00", "100000",
			      "1.0.100000", "-1", "1,0", "1.0 ", "1.0-rc1" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int c = 42;
		if (version_cmp(bad[i], "1.0.0", &c) != TND_EINVAL || c != 42)
			fail_msg("version_cmp accepted '%s'", bad[i] ? bad[i] : "(null)");
		if (version_cmp("1.0.0", bad[i], &c) != TND_EINVAL)
			fail_msg("version_cmp accepted '%s' second", bad[i] ? bad[i] : "(null)");
	}
	assert_int_equal(version_check("99999.99999.99999"), 0);
	assert_int_equal(version_check("0"), 0);
}

static void test_version_default_min(void **state)
{
	(void)state;
	char out[32];

	assert_int_equal(version_default_min("1.4.2", out, sizeof out), 0);
	assert_string_equal(out, "1.0.0");
	assert_int_equal(version_default_min("0.3", out, sizeof out), 0);
	assert_string_equal(out, "0.0.0");
	assert_int_equal(version_default_min("12", out, sizeof out), 0);
	assert_string_equal(out, "12.0.0");
	assert_int_equal(version_default_min("1.x", out, sizeof out), TND_EINVAL);
	assert_int_equal(version_default_min("99999.1.1", out, 6), TND_EINVAL); /* no room */
}

static void test_key_id(void **state)
{
	(void)state;
	uint8_t pk[32] = { 0 }, id1[8], id2[8], h[32];

	manifest_key_id(pk, id1);
	crypto_generichash(h, sizeof h, pk, sizeof pk, NULL, 0);
	assert_memory_equal(id1, h, 8);
	pk[31] = 1;
	manifest_key_id(pk, id2);
	assert_memory_not_equal(id1, id2, 8);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_hand_written),
		cmocka_unit_test(test_refuse_not_a_manifest),
		cmocka_unit_test(test_refuse_fields),
		cmocka_unit_test(test_refuse_values),
		cmocka_unit_test(test_refuse_files),
		cmocka_unit_test(test_refuse_paths),
		cmocka_unit_test(test_size_bounds),
		cmocka_unit_test(test_emit_refuses_invalid),
		cmocka_unit_test(test_version_cmp),
		cmocka_unit_test(test_version_default_min),
		cmocka_unit_test(test_key_id),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
