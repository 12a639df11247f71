/* fuzz_manifest.c - libFuzzer target for the image manifest reader
 * (src/core/manifest.c), which reads the MANIFEST of every image a node
 * is handed.
 *
 * Beyond not crashing or leaking: whatever the reader accepts must pass
 * manifest_check(), be written back canonically, and read back to the
 * same struct and the same bytes (a signed manifest has one meaning).
 * The input is also split at its first newline into two versions for
 * version_cmp, whose answer must be antisymmetric, and each path-sized
 * piece is put through manifest_path_check against a simple oracle: a
 * path it accepts never starts with '/' and has no ".." component. */
#include <stdlib.h>
#include <string.h>
#include "core/manifest.h"

static void check_versions(const uint8_t *data, size_t size)
{
	char a[40], b[40];
	const uint8_t *nl = memchr(data, '\n', size);
	size_t la, lb;
	int ab = 0, ba = 0;

	if (!nl)
		return;
	la = (size_t)(nl - data);
	lb = size - la - 1;
	if (la >= sizeof a || lb >= sizeof b)
		return;
	memcpy(a, data, la);
	a[la] = '\0';
	memcpy(b, nl + 1, lb);
	b[lb] = '\0';
	if (memchr(a, '\0', la) || memchr(b, '\0', lb))
		return;
	if (version_cmp(a, b, &ab) == 0) {
		if (version_cmp(b, a, &ba) != 0 || (ab > 0) != (ba < 0) || (ab == 0) != (ba == 0))
			abort();
		if (version_cmp(a, a, &ab) != 0 || ab != 0)
			abort();
	}
}

static void check_path(const uint8_t *data, size_t size)
{
	char p[MANIFEST_PATH_MAX + 8];

	if (size >= sizeof p)
		return;
	memcpy(p, data, size);
	p[size] = '\0';
	if (manifest_path_check(p, NULL, 0) == 0) {
		if (p[0] == '/' || strstr(p, "//") || strcmp(p, "..") == 0 || strncmp(p, "../", 3) == 0 ||
		    strstr(p, "/../") || (strlen(p) >= 3 && strcmp(p + strlen(p) - 3, "/..") == 0) ||
		    (strncmp(p, "bin/", 4) != 0 && strncmp(p, "hooks/", 6) != 0))
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct manifest m, back;
	char why[256];
	char *json, *json2;
	size_t len, len2;

	check_versions(data, size);
	check_path(data, size);
	if (manifest_parse((const char *)data, size, &m, why, sizeof why) != 0)
		return 0;
	if (manifest_check(&m, why, sizeof why) != 0)
		abort();
	if (manifest_emit(&m, &json, &len) != 0)
		abort();
	if (manifest_parse(json, len, &back, why, sizeof why) != 0 || memcmp(&m, &back, sizeof m) != 0)
		abort();
	if (manifest_emit(&back, &json2, &len2) != 0 || len2 != len || memcmp(json, json2, len) != 0)
		abort();
	free(json);
	free(json2);
	return 0;
}
