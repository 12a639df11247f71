/* confdoc.h - a configuration document as it is read from disk: the YAML
 * text of a configuration file plus the text of the nftables ruleset its
 * `firewall.ruleset` names (SPEC section 1, "Configuration sync": both
 * travel together under one generation number; cfgsync.h encodes them).
 *
 * Shared by tandemd (the document it boots with) and tandemctl (`config
 * apply`, `diff`), so both read a file the same way: a relative ruleset
 * path is taken relative to the directory of the YAML file, so a
 * configuration directory can be moved as a whole. */
#ifndef TND_CONFDOC_H
#define TND_CONFDOC_H

#include "conf.h"

#define CONFDOC_RULESET_MAX_BYTES (512 * 1024)

struct confdoc {
	char *yaml;     /* malloc'd, NUL-terminated */
	size_t yaml_len;
	char *ruleset;  /* malloc'd, NUL-terminated; "" when none */
	size_t ruleset_len;
};

/* Read and validate `path` into `conf` (conf_load) and `doc`. Returns 0,
 * or TND_EINVAL with every problem in `diags` (FILE:LINE:COL: message; a
 * ruleset that cannot be read is reported against the YAML file). `doc`
 * is empty (NULLs) on error. */
int confdoc_read(const char *path, struct confdoc *doc, struct tnd_conf *conf,
		 struct conf_diags *diags);
/* The ruleset path as confdoc_read() opens it (into buf). */
const char *confdoc_ruleset_path(const char *yaml_path, const char *ruleset,
				 char *buf, size_t len);
void confdoc_free(struct confdoc *doc);

#endif
