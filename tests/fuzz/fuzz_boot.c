/* fuzz_boot.c - libFuzzer target for the boot record reader
 * (src/core/boot.c), which reads STATE_DIR/boot.json at every start and
 * whose answer decides which binary a node runs.
 *
 * Beyond not crashing or leaking: a record the reader accepts names
 * versions that are safe directory names (no '/', no leading '.'), is
 * written back by boot_emit and read back to the same struct and the same
 * bytes, and the decisions on it keep their invariants: a start of an
 * unconfirmed version counts it, a revert (when allowed) leaves a
 * confirmed record whose active version is the former previous one. */
#include <stdlib.h>
#include <string.h>
#include "core/boot.h"

static void check_name(const char *v, bool may_be_empty)
{
	if (!v[0] && may_be_empty)
		return;
	if (!boot_version_ok(v) || strchr(v, '/') || v[0] == '.')
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct boot_state *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b);
	char why[256], *s = NULL, *s2 = NULL;
	size_t len = 0, len2 = 0;

	if (!a || !b)
		abort();
	if (boot_parse((const char *)data, size, a, why, sizeof why) != 0)
		goto out;
	check_name(a->active, false);
	check_name(a->previous, true);
	if (boot_emit(a, &s, &len) != 0 || boot_parse(s, len, b, why, sizeof why) != 0)
		abort();
	if (memcmp(a, b, sizeof *a) != 0 || boot_emit(b, &s2, &len2) != 0 || len != len2 ||
	    memcmp(s, s2, len) != 0)
		abort();
	{
		uint32_t tries = a->tries;
		bool confirmed = a->confirmed;
		enum boot_next n = boot_before_start(a, why, sizeof why);
		if (confirmed && (n != BOOT_START || a->tries != tries))
			abort();
		if (!confirmed && n == BOOT_START && a->tries != tries + 1)
			abort();
		if (n == BOOT_REVERT && tries < BOOT_TRIES_MAX)
			abort();
	}
	if (b->previous[0]) {
		char prev[TND_VERSION_MAX];
		memcpy(prev, b->previous, sizeof prev);
		if (boot_revert(b, "fuzz", 1, why, sizeof why) != 0 || !b->confirmed ||
		    strcmp(b->active, prev) != 0)
			abort();
	}
out:
	free(s);
	free(s2);
	free(a);
	free(b);
	return 0;
}
