/* conf.h - the cluster configuration (SPEC section 3): parse, validate, print.
 *
 * Owns: struct tnd_conf, the in-memory form of tandem.yaml, and the
 * diagnostics produced while reading it. Parsing uses libfyaml; every
 * problem is reported as FILE:LINE:COL: message, all of them, not just the
 * first. A configuration that produced any error must not be used. */
#ifndef TND_CONF_H
#define TND_CONF_H

#include <stdio.h>
#include "../core/types.h"

#define CONF_DIAGS_MAX 64
#define CONF_DIAG_LEN 320

struct conf_diags {
	int n;         /* number stored (<= CONF_DIAGS_MAX) */
	int n_dropped; /* further problems not stored */
	char msg[CONF_DIAGS_MAX][CONF_DIAG_LEN]; /* "FILE:LINE:COL: message" */
};

struct tnd_vip {
	struct tnd_addr addr;
	uint8_t prefix_len;
	char ifname[TND_IFNAME_MAX];
};

struct tnd_node_conf {
	char name[TND_NAME_MAX];
	int n_links; /* 1..TND_LINKS_MAX; every node has the same count */
	struct tnd_addr links[TND_LINKS_MAX]; /* link 0 carries sync */
};

struct tnd_group_conf {
	uint8_t id; /* 0 = control plane */
	/* priority per node, indexed like tnd_conf.nodes; 0 = never primary.
	 * A node not named in the YAML map gets 0. */
	uint8_t priority[TND_NODES_MAX];
	bool preempt;
	uint32_t preempt_delay_s;
	int n_vips;
	struct tnd_vip vips[TND_VIPS_MAX];
	int n_monitors;
	char monitors[TND_MONITORS_MAX][TND_IFNAME_MAX];
	char hook_primary[TND_PATH_MAX];   /* "" = none */
	char hook_secondary[TND_PATH_MAX]; /* "" = none */
};

struct tnd_conf {
	char source[TND_PATH_MAX]; /* file name it was read from */

	char cluster_name[TND_NAME_MAX];
	uint8_t cluster_id; /* 1..255 */
	char key_file[TND_PATH_MAX];
	uint16_t port;         /* default 7400 */
	uint32_t heartbeat_ms; /* default 100, 10..10000 */
	uint32_t dead_after;   /* default 3, 2..100 */

	int n_nodes; /* 2..TND_NODES_MAX */
	struct tnd_node_conf nodes[TND_NODES_MAX];

	/* groups sorted by id; groups[0] is always group 0 (if the YAML has
	 * none, group 0 is implied with priority 100 for every node). */
	int n_groups;
	struct tnd_group_conf groups[TND_GROUPS_MAX];

	bool sessions_sync;             /* default true */
	char firewall_ruleset[TND_PATH_MAX]; /* "" = none */

	char upgrade_trusted_keys[TND_PATH_MAX]; /* default /etc/tandem/trusted.d */
	uint32_t upgrade_hold_timer_s;    /* default 900 */
	uint32_t upgrade_sync_timeout_s;  /* default 300 */
	uint32_t upgrade_cpu_max_percent; /* default 80 */
	bool upgrade_failback;            /* default true */
	bool upgrade_auto_finalize;       /* default false: `upgrade finalize` by hand */

	char api_http[TND_NAME_MAX];        /* "" = no HTTP listener; "host:port" */
	char api_token_file[TND_PATH_MAX];  /* default /etc/tandem/api.token */
	char api_tls_cert[TND_PATH_MAX];    /* "" = plain HTTP; with api_tls_key */
	char api_tls_key[TND_PATH_MAX];
	char api_images_dir[TND_PATH_MAX];  /* default /var/lib/tandem/incoming */
	char api_probe_file[TND_PATH_MAX];  /* "" = none: a tandem-probe --status-file */
};

/* Parse and validate YAML text. `name` is used in diagnostics. Returns 0
 * when the configuration is valid (diags->n == 0), TND_EINVAL otherwise;
 * `out` is fully initialised (defaults) in both cases. */
int conf_parse(const char *name, const char *text, size_t len,
	       struct tnd_conf *out, struct conf_diags *diags);
/* Read a file and conf_parse it. A file that cannot be read yields one
 * diagnostic "FILE:0:0: cannot read: reason". */
int conf_load(const char *path, struct tnd_conf *out, struct conf_diags *diags);
/* Write the configuration back as canonical YAML (every setting, defaults
 * included, in a fixed order). Parsing the output gives an equal conf. */
int conf_print(const struct tnd_conf *c, FILE *f);

/* Lookups. Return the index or -1. */
int conf_node_index(const struct tnd_conf *c, const char *name);
int conf_group_index(const struct tnd_conf *c, int group_id);
/* Format an address as text (no prefix). buf >= 46 bytes. */
const char *conf_addr_str(const struct tnd_addr *a, char *buf, size_t len);

#endif
