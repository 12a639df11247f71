/* ctl.h - the control socket tandemctl talks to.
 *
 * Owns: a unix stream socket (mode 0660) and its clients. The protocol is
 * one JSON object per line in each direction:
 *
 *   {"cmd":"status"}
 *   {"cmd":"failover","group":G,"to":"NODE"}    "to" optional
 *   {"cmd":"failover","group":G,"reset":true}
 *   {"cmd":"activate"} / {"cmd":"deactivate"}
 *   {"cmd":"maintenance","on":BOOL,"node":"NAME"} "node" optional (self)
 *   {"cmd":"events","follow":BOOL,"limit":N}
 *   {"cmd":"config","op":"status"|"show"|"apply",...}   see the daemon's
 *       ctl_ops.config; "apply" is answered only when the cluster has
 *       decided, so that client's later requests wait behind it
 *   {"cmd":"image","op":"list"}                this node's versions (A/B)
 *   {"cmd":"image","op":"install","file":"/abs/IMAGE","activate":B,"restart":B}
 *   {"cmd":"image","op":"activate","version":"V","restart":B}
 *       install and activate are answered once done (see ctl_ops.image);
 *       with "restart" the daemon then restarts into the new version
 *
 * answered by {"ok":true,...} or {"ok":false,"code":"refused"|"usage"|
 * "failed","error":"sentence"}. With "follow", every later event follows
 * as one JSON object per line until the client goes away. Everything is
 * non-blocking and bounded (CTL_CLIENTS_MAX, CTL_REQ_MAX_BYTES,
 * CTL_OUT_MAX_BYTES): a client that does not read its answers is dropped,
 * never waited for. */
#ifndef TND_CTL_H
#define TND_CTL_H

#include <stdlib.h>
#include <jansson.h>
#include "../core/node.h"
#include "../io/log.h"
#include "../io/loop.h"

#define CTL_CLIENTS_MAX 32
/* A request carries at most a configuration document (CFGSYNC_DOC_MAX,
 * 1 MiB) in JSON strings: escaping can double it. Buffers grow on demand. */
#define CTL_REQ_MAX_BYTES (3 * 1024 * 1024)
#define CTL_OUT_MAX_BYTES (4 * 1024 * 1024) /* queued output per client */
#define CTL_EVENTS_DEFAULT LOG_RING_LEN

/* What the daemon does for the control socket. */
struct ctl_ops {
	/* The status document (status.h), a new reference. */
	json_t *(*status)(void *arg);
	/* node_admin() and perform its actions; returns its result. */
	int (*admin)(void *arg, const struct admin_req *req, char *why, size_t why_len);
	/* {"cmd":"config",...}: the answer (a new reference), or NULL with
	 * *deferred set when it comes later through ctl_reply(token). */
	json_t *(*config)(void *arg, json_t *req, uint32_t token, bool *deferred);
	/* {"cmd":"image",...}: the same contract as config. */
	json_t *(*image)(void *arg, json_t *req, uint32_t token, bool *deferred);
	/* {"cmd":"upgrade",...}: the same contract as config. */
	json_t *(*upgrade)(void *arg, json_t *req, uint32_t token, bool *deferred);
	void *arg;
};

struct ctl;

/* Create the socket at `path` (its directory is created; a stale socket
 * file with no daemon behind it is replaced; a live one is refused). On
 * error, returns NULL with a sentence in err. */
struct ctl *ctl_open(const char *path, struct loop *loop, const struct tnd_conf *conf,
		     int self, const struct ctl_ops *ops, char *err, size_t err_len);
/* Close every client, the socket, and remove the socket file. */
void ctl_close(struct ctl *c);
/* The deferred answer to the request `token` (ctl_ops.config). A client
 * that went away meanwhile is not an error: the answer is dropped. Takes
 * the reference to `res`. */
void ctl_reply(struct ctl *c, uint32_t token, json_t *res);
/* The configuration changed in place (node names stay the same). */
void ctl_set_conf(struct ctl *c, const struct tnd_conf *conf);
/* Stream one event to every following client. */
void ctl_publish(struct ctl *c, const struct log_entry *e);

/* Requests from another front end (the HTTP API), handled by the same
 * dispatcher as the socket's lines so the two never disagree. At most
 * CTL_EXT_MAX wait for a deferred answer at once. */
#define CTL_EXT_MAX 32
/* The deferred answer to the external request tagged `tag` (takes `res`). */
typedef void (*ctl_ext_done_fn)(void *arg, uint64_t tag, json_t *res);
void ctl_set_external(struct ctl *c, ctl_ext_done_fn done, void *arg);
/* Dispatch `req` (borrowed; "follow" is not honoured). Returns the answer
 * (a new reference), or NULL when it is deferred: done(arg, tag, res) then
 * comes later, never from inside this call. */
json_t *ctl_request(struct ctl *c, json_t *req, uint64_t tag);

#define CTL_DEFAULT_PATH "/run/tandem/tandemd.sock"
/* The socket path when --socket is not given: $TANDEM_SOCKET, else the
 * default (SPEC section 2). Inline: tandemctl shares it without libio. */
static inline const char *ctl_default_path(void)
{
	const char *e = getenv("TANDEM_SOCKET");
	return e && *e ? e : CTL_DEFAULT_PATH;
}

#endif
