/* status.h - the status document (SPEC section 4, `status --json`).
 *
 * Owns: the JSON rendering of node_status() plus what only the driver
 * knows (incarnation, uptime, counters of packets dropped before they
 * reach the core). The control socket, tandemctl and later the HTTP API
 * serve this one document, so its field names are the contract. */
#ifndef TND_STATUS_H
#define TND_STATUS_H

#include <jansson.h>
#include "../core/node.h"
#include "../io/nl.h"
#include "../io/sessions.h"
#include "../core/cfgsync.h"

/* Counters of the daemon's drivers (the core counts what reaches it). */
struct status_drv_counters {
	uint64_t rx_datagrams;    /* every datagram read from a link socket */
	uint64_t unauthenticated; /* seal_open: TND_EAUTH */
	uint64_t wrong_cluster;   /* seal_open: TND_ECLUSTER */
	uint64_t malformed;       /* seal_open: TND_EINVAL, oversized */
	uint64_t version;         /* seal_open: TND_EVERSION */
	uint64_t send_errors;     /* sendto failures */
};

struct status_ctx {
	const struct tnd_conf *conf;
	int self;
	const struct node *node;
	const char *version;
	uint64_t incarnation;
	mono_t started;
	const struct status_drv_counters *drv;
	const struct nl_stats *nl; /* NULL = not shown */
	const struct sessions *sess; /* NULL: sessions.sync is off */
	int sess_group;              /* group id whose primary feeds sessions */
	const struct cfgsync *cfg;   /* configuration sync */
};

/* A new JSON object (caller owns it), or NULL when out of memory. */
json_t *status_json(const struct status_ctx *c, mono_t now);
/* The configuration sync report: with `detail`, `tandemctl config status`
 * (every node's committed/pending/applied generation), else the summary
 * of `status` (generation, in_sync, this node's generations). */
json_t *status_config_json(const struct status_ctx *c, bool detail);

#endif
