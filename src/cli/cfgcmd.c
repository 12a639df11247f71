/* cfgcmd.c - `tandemctl config ...`; see cfgcmd.h. */
#include "cfgcmd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <jansson.h>

#include "../conf/confdoc.h"
#include "../core/cfgsync.h"
#include "cfgbackup.h"
#include "conn.h"
#include "linediff.h"
#include "show.h"

#define APPLY_TIMEOUT_HINT "the change may still be committed: see tandemctl config status"

static int parse_gen(const char *s, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (!*s || *end || errno || v < 0)
		return -1;
	*out = v;
	return 0;
}

int cfgcmd_parse(int argc, char **argv, struct cfgcmd_args *a)
{
	static const struct {
		const char *name;
		enum cfgcmd_op op;
		bool file, force;
	} ops[] = {
		{ "status", CFGCMD_STATUS, false, false },
		{ "show", CFGCMD_SHOW, false, false },
		{ "diff", CFGCMD_DIFF, true, false },
		{ "apply", CFGCMD_APPLY, true, true },
		{ "backup", CFGCMD_BACKUP, true, true },
		{ "restore", CFGCMD_RESTORE, true, true },
	};
	size_t k;

	a->file = NULL;
	a->generation = -1;
	a->force = false;
	if (argc < 1) {
		fprintf(stderr, "tandemctl: config needs a subcommand: status, show, diff, apply, "
				"backup or restore\n");
		return -1;
	}
	for (k = 0; k < sizeof ops / sizeof ops[0]; k++)
		if (strcmp(argv[0], ops[k].name) == 0)
			break;
	if (k == sizeof ops / sizeof ops[0]) {
		fprintf(stderr, "tandemctl: config: unknown subcommand '%s'\n", argv[0]);
		return -1;
	}
	a->op = ops[k].op;
	for (int i = 1; i < argc; i++) {
		const char *w = argv[i];

		if (ops[k].force && strcmp(w, "--force") == 0) {
			a->force = true;
		} else if (a->op == CFGCMD_SHOW && (strcmp(w, "--generation") == 0 ||
						    strncmp(w, "--generation=", 13) == 0)) {
			const char *v = w[12] == '=' ? w + 13 : i + 1 < argc ? argv[++i] : NULL;
			if (!v || parse_gen(v, &a->generation) != 0) {
				fprintf(stderr, "tandemctl: config show: --generation needs a number >= 0\n");
				return -1;
			}
		} else if (ops[k].file && !a->file && (w[0] != '-' || w[1] == '\0')) {
			a->file = w;
		} else {
			fprintf(stderr, "tandemctl: config %s: unexpected argument '%s'\n", ops[k].name, w);
			return -1;
		}
	}
	if (ops[k].file && !a->file) {
		fprintf(stderr, "tandemctl: config %s needs a FILE\n", ops[k].name);
		return -1;
	}
	return 0;
}

/* Print a local failure (and its JSON twin) and return EXIT_FAILED. */
static int local_fail(const struct cfgcmd_args *a, const char *code, const char *msg)
{
	if (a->json) {
		json_t *o = json_pack("{s:b,s:s,s:s}", "ok", 0, "code", code, "error", msg);
		conn_print_json(o);
		json_decref(o);
	}
	fprintf(stderr, "tandemctl: %s\n", msg);
	return EXIT_FAILED;
}

/* A configuration that did not validate here: every problem on stderr,
 * the JSON answer a daemon would give on stdout with --json. */
static int report_invalid(const struct cfgcmd_args *a, const char *what,
			  const struct conf_diags *dg)
{
	char msg[512];
	json_t *arr = json_array();

	for (int i = 0; i < dg->n; i++) {
		fprintf(stderr, "%s\n", dg->msg[i]);
		json_array_append_new(arr, json_string(dg->msg[i]));
	}
	if (dg->n_dropped)
		fprintf(stderr, "%s: %d more problems not shown\n", what, dg->n_dropped);
	snprintf(msg, sizeof msg, "%s is not a valid configuration (%d problem%s); nothing sent",
		 what, dg->n + dg->n_dropped, dg->n + dg->n_dropped == 1 ? "" : "s");
	if (a->json) {
		json_t *o = json_pack("{s:b,s:s,s:s,s:o}", "ok", 0, "code", "invalid", "error", msg,
				      "diagnostics", arr);
		conn_print_json(o);
		json_decref(o);
	} else {
		json_decref(arr);
	}
	fprintf(stderr, "tandemctl: %s\n", msg);
	return EXIT_FAILED;
}

/* The texts can travel as one document (size, no NUL, UTF-8 for JSON). */
static int check_texts(const struct cfgcmd_args *a, const char *what, const char *yaml,
		       size_t yaml_len, const char *rs, size_t rs_len)
{
	char hex[CFGBACKUP_DIGEST_HEX_LEN + 1], msg[600];
	json_t *y, *r;
	int e = cfgbackup_digest_hex(yaml, yaml_len, rs, rs_len, hex);

	if (e == TND_ENOSPC) {
		snprintf(msg, sizeof msg, "%.400s: the configuration and its ruleset together exceed "
			 "the %d bytes of one cluster document; nothing sent", what, CFGSYNC_DOC_MAX);
		return local_fail(a, "invalid", msg);
	}
	if (e != 0) {
		snprintf(msg, sizeof msg, "%.400s: the configuration or its ruleset contains a NUL "
			 "character; nothing sent", what);
		return local_fail(a, "invalid", msg);
	}
	y = json_stringn(yaml, yaml_len);
	r = json_stringn(rs, rs_len);
	e = y && r ? 0 : -1;
	json_decref(y);
	json_decref(r);
	if (e) {
		snprintf(msg, sizeof msg, "%.400s: the %s is not valid UTF-8 text; nothing sent", what,
			 y ? "ruleset" : "configuration");
		return local_fail(a, "invalid", msg);
	}
	return EXIT_DONE;
}

static int open_conn(struct conn *c, const struct cfgcmd_args *a, int timeout_s)
{
	if (conn_open(c, a->socket, timeout_s) != 0) {
		conn_close(c);
		return -1;
	}
	return 0;
}

/* A request whose failure is reported and mapped to an exit code; on
 * success *out holds the answer. */
static int request(struct conn *c, const struct cfgcmd_args *a, json_t *req, json_t **out)
{
	json_t *res = conn_request(c, req);
	int rc;

	*out = NULL;
	if (!res)
		return EXIT_FAILED;
	if (!conn_answer_ok(res)) {
		rc = conn_answer_error(res, a->json);
		json_decref(res);
		return rc;
	}
	*out = res;
	return EXIT_DONE;
}

/* {"op":"show"}: the answer, its fields checked, or an exit code. */
static int fetch_show(struct conn *c, const struct cfgcmd_args *a, long gen, json_t **out)
{
	json_t *req = json_pack("{s:s,s:s}", "cmd", "config", "op", "show"), *res;
	int rc;

	if (gen >= 0)
		json_object_set_new(req, "generation", json_integer(gen));
	rc = request(c, a, req, &res);
	if (rc != EXIT_DONE)
		return rc;
	if (!json_is_integer(json_object_get(res, "generation")) ||
	    !json_is_string(json_object_get(res, "yaml")) ||
	    !json_is_string(json_object_get(res, "ruleset")) ||
	    !json_is_string(json_object_get(res, "digest"))) {
		json_decref(res);
		return local_fail(a, "failed", "tandemd's configuration answer lacks generation, "
				  "yaml, ruleset or digest");
	}
	*out = res;
	return EXIT_DONE;
}

static long long jint(json_t *o, const char *key)
{
	return (long long)json_integer_value(json_object_get(o, key));
}

static const char *jstr(json_t *o, const char *key, size_t *len)
{
	json_t *v = json_object_get(o, key);

	if (len)
		*len = json_string_length(v);
	return json_string_value(v) ? json_string_value(v) : "";
}

static int cmd_status(const struct cfgcmd_args *a)
{
	struct conn c = { .fd = -1 };
	json_t *res;
	int rc;

	if (open_conn(&c, a, CONN_REPLY_TIMEOUT_S) != 0)
		return EXIT_FAILED;
	rc = request(&c, a, json_pack("{s:s,s:s}", "cmd", "config", "op", "status"), &res);
	conn_close(&c);
	if (rc != EXIT_DONE)
		return rc;
	json_object_del(res, "ok");
	if (a->json)
		conn_print_json(res);
	else
		show_config_status(stdout, res);
	json_decref(res);
	return EXIT_DONE;
}

static int cmd_show(const struct cfgcmd_args *a)
{
	struct conn c = { .fd = -1 };
	json_t *res;
	size_t yl, rl;
	const char *y, *r;
	int rc;

	if (open_conn(&c, a, CONN_REPLY_TIMEOUT_S) != 0)
		return EXIT_FAILED;
	rc = fetch_show(&c, a, a->generation, &res);
	conn_close(&c);
	if (rc != EXIT_DONE)
		return rc;
	json_object_del(res, "ok");
	if (a->json) {
		conn_print_json(res);
		json_decref(res);
		return EXIT_DONE;
	}
	/* The YAML exactly as committed, so `config show > f` gives a file
	 * that applies to the same generation. */
	y = jstr(res, "yaml", &yl);
	r = jstr(res, "ruleset", &rl);
	fwrite(y, 1, yl, stdout);
	if (rl > 0) {
		if (yl > 0 && y[yl - 1] != '\n')
			putchar('\n');
		printf("# --- firewall ruleset (generation %lld) ---\n", jint(res, "generation"));
		fwrite(r, 1, rl, stdout);
	}
	json_decref(res);
	return fflush(stdout) == 0 ? EXIT_DONE : EXIT_FAILED;
}

/* Read and validate a configuration file as tandemd would. */
static int read_file(const struct cfgcmd_args *a, struct confdoc *doc, struct tnd_conf **conf)
{
	struct conf_diags *dg = calloc(1, sizeof *dg);
	int rc = EXIT_DONE;

	*conf = calloc(1, sizeof **conf);
	if (!dg || !*conf) {
		free(dg);
		free(*conf);
		*conf = NULL;
		return local_fail(a, "failed", "out of memory");
	}
	if (confdoc_read(a->file, doc, *conf, dg) != 0) {
		if (dg->n == 0)
			snprintf(dg->msg[dg->n++], CONF_DIAG_LEN, "%s:0:0: cannot be read", a->file);
		rc = report_invalid(a, a->file, dg);
	} else {
		rc = check_texts(a, a->file, doc->yaml, doc->yaml_len, doc->ruleset, doc->ruleset_len);
	}
	free(dg);
	if (rc != EXIT_DONE) {
		confdoc_free(doc);
		free(*conf);
		*conf = NULL;
	}
	return rc;
}

/* Send an apply and report the cluster's decision. */
static int send_apply(const struct cfgcmd_args *a, const char *yaml, size_t yaml_len,
		      const char *rs, size_t rs_len, const char *source)
{
	struct conn c = { .fd = -1 };
	json_t *req, *res, *d;
	const char *code;
	size_t i;
	int rc;

	req = json_pack("{s:s,s:s,s:s%,s:s%,s:s,s:b}", "cmd", "config", "op", "apply", "yaml", yaml,
			yaml_len, "ruleset", rs, rs_len, "source", source, "force", a->force);
	if (!req)
		return local_fail(a, "failed", "cannot encode the request");
	if (open_conn(&c, a, CFGCMD_APPLY_TIMEOUT_S) != 0) {
		json_decref(req);
		return EXIT_FAILED;
	}
	conn_set_timeout(&c, CFGCMD_APPLY_TIMEOUT_S, APPLY_TIMEOUT_HINT);
	res = conn_request(&c, req);
	conn_close(&c);
	if (!res)
		return EXIT_FAILED;
	code = json_string_value(json_object_get(res, "code"));
	if (!conn_answer_ok(res) && code && strcmp(code, "invalid") == 0) {
		/* The cluster's validation, located like ours. */
		json_array_foreach(json_object_get(res, "diagnostics"), i, d)
			if (json_is_string(d))
				fprintf(stderr, "%s\n", json_string_value(d));
		if (a->json)
			conn_print_json(res);
		fprintf(stderr, "tandemctl: invalid: %s\n", jstr(res, "error", NULL)[0] ?
			jstr(res, "error", NULL) : "the cluster rejected the configuration");
		json_decref(res);
		return EXIT_FAILED;
	}
	if (!conn_answer_ok(res)) {
		rc = conn_answer_error(res, a->json);
		json_decref(res);
		return rc;
	}
	if (!json_is_integer(json_object_get(res, "generation"))) {
		json_decref(res);
		return local_fail(a, "failed", "tandemd's answer to apply has no generation");
	}
	if (a->json)
		conn_print_json(res);
	else if (json_is_false(json_object_get(res, "changed")))
		printf("unchanged: %s is identical to generation %lld\n", source, jint(res, "generation"));
	else
		printf("configuration generation %lld committed on every live node\n",
		       jint(res, "generation"));
	json_decref(res);
	return EXIT_DONE;
}

static int cmd_apply(const struct cfgcmd_args *a)
{
	struct confdoc doc;
	struct tnd_conf *conf;
	int rc = read_file(a, &doc, &conf);

	if (rc != EXIT_DONE)
		return rc;
	rc = send_apply(a, doc.yaml, doc.yaml_len, doc.ruleset, doc.ruleset_len, a->file);
	confdoc_free(&doc);
	free(conf);
	return rc;
}

/* One labelled diff into *text; false when out of memory. */
static bool diff_one(const char *x, size_t xl, const char *y, size_t yl, const char *lx,
		     const char *ly, char **text, enum linediff_result *res)
{
	size_t len;

	return linediff_unified(x, xl, y, yl, lx, ly, NULL, text, &len, res) == 0;
}

static int cmd_diff(const struct cfgcmd_args *a)
{
	struct conn c = { .fd = -1 };
	struct confdoc doc;
	struct tnd_conf *conf;
	json_t *cur = NULL;
	char la[160], lb[TND_PATH_MAX * 2 + 64], rpath[TND_PATH_MAX * 2];
	char *yd = NULL, *rd = NULL;
	enum linediff_result yr = LINEDIFF_EQUAL, rr = LINEDIFF_EQUAL;
	const char *cy, *cr;
	size_t cyl, crl;
	long long gen;
	int rc = read_file(a, &doc, &conf);

	if (rc != EXIT_DONE)
		return rc;
	if (open_conn(&c, a, CONN_REPLY_TIMEOUT_S) != 0) {
		rc = EXIT_FAILED;
		goto out;
	}
	rc = fetch_show(&c, a, -1, &cur);
	conn_close(&c);
	if (rc != EXIT_DONE)
		goto out;
	gen = jint(cur, "generation");
	cy = jstr(cur, "yaml", &cyl);
	cr = jstr(cur, "ruleset", &crl);
	snprintf(la, sizeof la, "cluster generation %lld", gen);
	if (!diff_one(cy, cyl, doc.yaml, doc.yaml_len, la, a->file, &yd, &yr)) {
		rc = local_fail(a, "failed", "out of memory computing the diff");
		goto out;
	}
	if (crl > 0 || doc.ruleset_len > 0) {
		snprintf(la, sizeof la, "cluster ruleset (generation %lld)", gen);
		if (conf->firewall_ruleset[0])
			snprintf(lb, sizeof lb, "%s", confdoc_ruleset_path(a->file, conf->firewall_ruleset,
									  rpath, sizeof rpath));
		else
			snprintf(lb, sizeof lb, "(no firewall.ruleset in %s)", a->file);
		if (!diff_one(cr, crl, doc.ruleset, doc.ruleset_len, la, lb, &rd, &rr)) {
			rc = local_fail(a, "failed", "out of memory computing the diff");
			goto out;
		}
	}
	if (a->json) {
		json_t *o = json_pack("{s:I,s:b,s:s,s:s,s:b}", "generation", (json_int_t)gen,
				      "differs", yr != LINEDIFF_EQUAL || rr != LINEDIFF_EQUAL,
				      "yaml_diff", yd ? yd : "", "ruleset_diff", rd ? rd : "",
				      "complete", yr != LINEDIFF_SUMMARY && rr != LINEDIFF_SUMMARY);
		conn_print_json(o);
		json_decref(o);
	} else if (yr == LINEDIFF_EQUAL && rr == LINEDIFF_EQUAL) {
		printf("no differences from generation %lld\n", gen);
	} else {
		fputs(yd ? yd : "", stdout);
		fputs(rd ? rd : "", stdout);
	}
	rc = fflush(stdout) == 0 ? EXIT_DONE : EXIT_FAILED;
out:
	json_decref(cur);
	free(yd);
	free(rd);
	confdoc_free(&doc);
	free(conf);
	return rc;
}

/* The cluster's name: from the YAML, else from the node's status. */
static void cluster_name(struct conn *c, const char *yaml, size_t len, char *out, size_t out_len)
{
	struct tnd_conf *conf = calloc(1, sizeof *conf);
	struct conf_diags *dg = calloc(1, sizeof *dg);
	json_t *st;

	out[0] = '\0';
	if (conf && dg && conf_parse("cluster", yaml, len, conf, dg) == 0 && conf->cluster_name[0])
		snprintf(out, out_len, "%s", conf->cluster_name);
	free(conf);
	free(dg);
	if (out[0])
		return;
	st = conn_request(c, json_pack("{s:s}", "cmd", "status"));
	if (st && json_is_string(json_object_get(st, "cluster")))
		snprintf(out, out_len, "%s", json_string_value(json_object_get(st, "cluster")));
	json_decref(st);
}

static int cmd_backup(const struct cfgcmd_args *a)
{
	struct conn c = { .fd = -1 };
	struct cfgbackup b = { .generation_created = -1 };
	json_t *cur = NULL, *o;
	char hex[CFGBACKUP_DIGEST_HEX_LEN + 1], why[600], msg[800], *text = NULL;
	int rc, w;

	/* Say it before asking anything: the file is the operator's. */
	if (!a->force && access(a->file, F_OK) == 0) {
		snprintf(msg, sizeof msg, "%s exists (--force replaces it)", a->file);
		return local_fail(a, "failed", msg);
	}
	if (open_conn(&c, a, CONN_REPLY_TIMEOUT_S) != 0)
		return EXIT_FAILED;
	rc = fetch_show(&c, a, -1, &cur);
	if (rc != EXIT_DONE)
		goto out;
	b.generation = (uint64_t)jint(cur, "generation");
	b.yaml = (char *)jstr(cur, "yaml", &b.yaml_len);
	b.ruleset = (char *)jstr(cur, "ruleset", &b.ruleset_len);
	b.created = (int64_t)time(NULL);
	if (json_is_integer(json_object_get(cur, "created")))
		b.generation_created = jint(cur, "created");
	/* A backup whose digest does not match its text could never be
	 * restored: check the answer before writing it down. */
	if (cfgbackup_digest_hex(b.yaml, b.yaml_len, b.ruleset, b.ruleset_len, hex) != 0 ||
	    strcmp(hex, jstr(cur, "digest", NULL)) != 0) {
		rc = local_fail(a, "failed", "tandemd's configuration does not match its digest; "
				"no backup written");
		goto out;
	}
	memcpy(b.digest, hex, sizeof b.digest);
	cluster_name(&c, b.yaml, b.yaml_len, b.cluster, sizeof b.cluster);
	if (!b.cluster[0]) {
		rc = local_fail(a, "failed", "cannot tell the cluster's name; no backup written");
		goto out;
	}
	o = cfgbackup_to_json(&b);
	text = o ? json_dumps(o, JSON_INDENT(2)) : NULL;
	json_decref(o);
	if (!text) {
		rc = local_fail(a, "failed", "cannot encode the backup");
		goto out;
	}
	size_t len = strlen(text);
	char *t2 = realloc(text, len + 2);
	if (!t2) {
		rc = local_fail(a, "failed", "out of memory");
		goto out;
	}
	text = t2;
	memcpy(text + len, "\n", 2);
	w = cfgbackup_write(a->file, text, len + 1, a->force, why, sizeof why);
	if (w != 0) {
		snprintf(msg, sizeof msg, "%.200s: %.500s", a->file, why);
		rc = local_fail(a, "failed", msg);
		goto out;
	}
	if (a->json) {
		o = json_pack("{s:b,s:s,s:s,s:I,s:s}", "ok", 1, "file", a->file, "cluster", b.cluster,
			      "generation", (json_int_t)b.generation, "digest", b.digest);
		conn_print_json(o);
		json_decref(o);
	} else {
		printf("backup of generation %llu (cluster %s, digest %.12s) written to %s\n",
		       (unsigned long long)b.generation, b.cluster, b.digest, a->file);
	}
	rc = EXIT_DONE;
out:
	conn_close(&c);
	json_decref(cur);
	free(text);
	return rc;
}

static int cmd_restore(const struct cfgcmd_args *a)
{
	struct cfgbackup b;
	struct tnd_conf *conf = calloc(1, sizeof *conf);
	struct conf_diags *dg = calloc(1, sizeof *dg);
	char why[600], msg[800], source[TND_PATH_MAX + 64];
	int rc;

	if (!conf || !dg) {
		free(conf);
		free(dg);
		return local_fail(a, "failed", "out of memory");
	}
	if (cfgbackup_read(a->file, &b, why, sizeof why) != 0) {
		snprintf(msg, sizeof msg, "%.200s: %.500s; nothing sent", a->file, why);
		free(conf);
		free(dg);
		return local_fail(a, "failed", msg);
	}
	snprintf(source, sizeof source, "%.200s (backup of generation %llu)", a->file,
		 (unsigned long long)b.generation);
	/* Validated as tandemd will, so a backup taken by an older version
	 * that this one no longer accepts is said here, nothing sent. */
	if (conf_parse(source, b.yaml, b.yaml_len, conf, dg) != 0 || dg->n > 0) {
		rc = report_invalid(a, source, dg);
	} else if (strcmp(conf->cluster_name, b.cluster) != 0) {
		snprintf(msg, sizeof msg, "%.200s: inconsistent backup: it says cluster \"%s\" but its "
			 "configuration names cluster \"%s\"; nothing sent", a->file, b.cluster,
			 conf->cluster_name);
		rc = local_fail(a, "failed", msg);
	} else {
		rc = check_texts(a, source, b.yaml, b.yaml_len, b.ruleset, b.ruleset_len);
		if (rc == EXIT_DONE)
			rc = send_apply(a, b.yaml, b.yaml_len, b.ruleset, b.ruleset_len, source);
	}
	cfgbackup_free(&b);
	free(conf);
	free(dg);
	return rc;
}

int cfgcmd_run(const struct cfgcmd_args *a)
{
	switch (a->op) {
	case CFGCMD_STATUS:
		return cmd_status(a);
	case CFGCMD_SHOW:
		return cmd_show(a);
	case CFGCMD_DIFF:
		return cmd_diff(a);
	case CFGCMD_APPLY:
		return cmd_apply(a);
	case CFGCMD_BACKUP:
		return cmd_backup(a);
	case CFGCMD_RESTORE:
		return cmd_restore(a);
	}
	return EXIT_USAGE;
}
