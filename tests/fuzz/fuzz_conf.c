/* fuzz_conf.c - libFuzzer target for the configuration parser (conf.c).
 *
 * Any input must come back as a result and diagnostics, never a crash,
 * leak or undefined behaviour; a diagnostic must be "NAME:LINE:COL: ...";
 * and a configuration that parses must survive conf_print and a second
 * conf_parse unchanged (byte-equal struct), because the printed form is
 * what configuration sync and --print-config hand to other nodes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"

#define FUZZ_NAME "fuzz.yaml"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_diags(const struct conf_diags *d)
{
	size_t pl = strlen(FUZZ_NAME);

	if (d->n < 0 || d->n > CONF_DIAGS_MAX || d->n_dropped < 0)
		abort();
	for (int i = 0; i < d->n; i++) {
		const char *m = d->msg[i];
		int line, col, off = 0;

		if (!memchr(m, '\0', CONF_DIAG_LEN) || strncmp(m, FUZZ_NAME ":", pl + 1))
			abort();
		if (sscanf(m + pl, ":%d:%d: %n", &line, &col, &off) != 2 || off == 0 ||
		    line < 1 || col < 1 || m[pl + (size_t)off] == '\0')
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct tnd_conf c1, c2;
	static struct conf_diags d1, d2;
	char *text = NULL;
	size_t text_len = 0;
	FILE *f;
	int rc;

	rc = conf_parse(FUZZ_NAME, (const char *)data, size, &c1, &d1);
	check_diags(&d1);
	if ((rc == 0) != (d1.n == 0 && d1.n_dropped == 0))
		abort();
	if (rc != 0)
		return 0;

	f = open_memstream(&text, &text_len);
	if (!f)
		abort();
	if (conf_print(&c1, f) != 0)
		abort();
	fclose(f);
	rc = conf_parse(FUZZ_NAME, text, text_len, &c2, &d2);
	if (rc != 0) {
		fprintf(stderr, "printed configuration does not parse:\n%s\n", text);
		for (int i = 0; i < d2.n; i++)
			fprintf(stderr, "%s\n", d2.msg[i]);
		abort();
	}
	if (memcmp(&c1, &c2, sizeof c1) != 0) {
		fprintf(stderr, "round trip changed the configuration:\n%s\n", text);
		abort();
	}
	free(text);
	return 0;
}
