/* sessions.h - session-sync driver: joins the conntrack driver (ct.h) and
 * the session-sync protocol core (core/ctsync.h) for the daemon.
 *
 * Owns: the conntrack handles and event socket, the ctsync core, the
 * table reader and kernel injector threads with their bounded buffers, and
 * the sync barriers asked for by the election core (ACT_BARRIER). The
 * daemon gives it the session role (who is primary of the session group),
 * peer liveness, received CTS_MSG_* packets and time; it sends packets and
 * logs through the daemon's callbacks. */
#ifndef TND_SESSIONS_H
#define TND_SESSIONS_H

#include "../core/ctsync.h"
#include "../core/node.h"
#include "ct.h"

struct sessions_hooks {
	/* Seal and send a plaintext packet to node `to` on link `link`. */
	void (*send)(void *arg, int to, int link, const uint8_t *pkt, size_t len);
	void (*log)(void *arg, enum ev_level level, const char *name, const char *kv);
	void *arg;
};

struct sessions_params {
	int self, n_nodes;
	uint8_t cluster_id, proto;
	uint64_t incarnation;
	uint32_t timeout_floor_s; /* injected entries live at least this long */
	struct sessions_hooks hooks;
};

/* NULL with a sentence in err when conntrack cannot be opened. */
struct sessions *sessions_open(const struct sessions_params *p, mono_t now,
			       char *err, size_t err_len);
void sessions_close(struct sessions *s);

/* Readable when kernel conntrack events are to be read (an epoll
 * descriptor of the driver's own holding the event socket while this node
 * is the session primary and its log has room; constant for the driver's
 * life): call sessions_on_events. */
int sessions_events_fd(const struct sessions *s);
void sessions_on_events(struct sessions *s, mono_t now);

/* The eventfd of the driver's threads (the table reader, the kernel
 * injector): call sessions_on_worker when readable. */
int sessions_worker_fd(const struct sessions *s);
void sessions_on_worker(struct sessions *s, mono_t now);

/* The node primary of the session group (TND_NO_NODE when none). */
void sessions_set_primary(struct sessions *s, int node, mono_t now);
void sessions_peer(struct sessions *s, int node, bool alive, mono_t now);
int sessions_recv(struct sessions *s, const struct wire_hdr *h,
		  const uint8_t *body, size_t len, mono_t now);
void sessions_tick(struct sessions *s, mono_t now);
mono_t sessions_next_wake(const struct sessions *s);
bool sessions_in_sync(const struct sessions *s, mono_t now);

/* Sync barrier for a planned grant of `group_id` to `target`: completes
 * when the target has acknowledged every session update made so far. */
void sessions_barrier(struct sessions *s, uint8_t group_id, int target,
		      mono_t now);
/* 1 and the group when a barrier completed (ok = false: target lost), 0
 * when none did. Call until it returns 0. */
int sessions_barrier_poll(struct sessions *s, mono_t now, uint8_t *group_id,
			  bool *ok);

void sessions_status(const struct sessions *s, mono_t now,
		     struct ctsync_status *cs, struct ct_stats *ct);

#endif
