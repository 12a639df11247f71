/* confdoc.c - read a configuration file and the ruleset it names; see
 * confdoc.h. */
#include "confdoc.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Read a whole file of at most `max` bytes; errno-style code or 0. */
static int read_all(const char *path, size_t max, char **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	size_t n;
	int err = 0;

	*out = NULL;
	*len = 0;
	if (!f)
		return errno ? errno : EIO;
	buf = malloc(max + 2);
	if (!buf) {
		fclose(f);
		return ENOMEM;
	}
	/* One byte past the limit tells "too large" from "exactly". */
	n = fread(buf, 1, max + 1, f);
	if (ferror(f))
		err = errno ? errno : EIO;
	else if (n > max)
		err = EFBIG;
	fclose(f);
	if (err) {
		free(buf);
		return err;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
}

const char *confdoc_ruleset_path(const char *yaml_path, const char *ruleset,
				 char *buf, size_t len)
{
	const char *slash = strrchr(yaml_path, '/');

	if (ruleset[0] == '/' || !slash)
		snprintf(buf, len, "%s", ruleset);
	else
		snprintf(buf, len, "%.*s/%s", (int)(slash - yaml_path), yaml_path, ruleset);
	return buf;
}

static void add_diag(struct conf_diags *dg, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void add_diag(struct conf_diags *dg, const char *fmt, ...)
{
	va_list ap;

	if (dg->n >= CONF_DIAGS_MAX) {
		dg->n_dropped++;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(dg->msg[dg->n++], CONF_DIAG_LEN, fmt, ap);
	va_end(ap);
}

int confdoc_read(const char *path, struct confdoc *doc, struct tnd_conf *conf,
		 struct conf_diags *diags)
{
	char rpath[TND_PATH_MAX * 2];
	int err;

	memset(doc, 0, sizeof *doc);
	if (conf_load(path, conf, diags) != 0 || diags->n > 0)
		return TND_EINVAL;
	/* conf_load validated the text; read it again for the document, as
	 * the bytes the operator wrote (comments included), not a reprint. */
	err = read_all(path, 1024 * 1024, &doc->yaml, &doc->yaml_len);
	if (err) {
		add_diag(diags, "%s:0:0: cannot read: %s", path, strerror(err));
		confdoc_free(doc);
		return TND_EINVAL;
	}
	if (conf->firewall_ruleset[0]) {
		confdoc_ruleset_path(path, conf->firewall_ruleset, rpath, sizeof rpath);
		err = read_all(rpath, CONFDOC_RULESET_MAX_BYTES, &doc->ruleset, &doc->ruleset_len);
		if (err) {
			add_diag(diags, "%s:0:0: firewall.ruleset: cannot read %s: %s", path, rpath,
				 err == EFBIG ? "larger than 512 KiB" : strerror(err));
			confdoc_free(doc);
			return TND_EINVAL;
		}
	} else {
		doc->ruleset = calloc(1, 1);
		if (!doc->ruleset) {
			confdoc_free(doc);
			return TND_ENOSPC;
		}
	}
	return 0;
}

void confdoc_free(struct confdoc *doc)
{
	if (!doc)
		return;
	free(doc->yaml);
	free(doc->ruleset);
	memset(doc, 0, sizeof *doc);
}
