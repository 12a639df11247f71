/* ct.h - conntrack driver (libnetfilter_conntrack over libmnl sockets):
 * reads the local connection-tracking table, follows its events, and
 * injects sessions received from a peer into the local kernel.
 *
 * Owns: one NETLINK_NETFILTER socket for requests (dump, create, update,
 * destroy), one more subscribed to the conntrack event groups when events
 * are opened, and the conversion between a kernel entry and the record
 * form of src/core/ctrec.h. Follows the ctnetlink message format of
 * linux/netfilter/nfnetlink_conntrack.h.
 *
 * Record form (ctrec.h). The key is, in network byte order:
 *
 *   0  1  family: 4 (IPv4) or 6 (IPv6)
 *   1  1  layer-4 protocol (IPPROTO_*)
 *   2  2  conntrack zone
 *   4  A  original source address, A = 4 or 16
 *   .  A  original destination address
 *   .  4  TCP/UDP/UDP-Lite: source port, destination port;
 *         ICMP/ICMPv6: type, code, identifier (2 bytes)
 *
 * so 16 bytes for IPv4 and 40 for IPv6. The value holds TLVs (wire.h):
 * CT_TLV_REPL_SRC / _REPL_DST (reply-direction addresses: for SNAT the
 * reply destination is the translated source, for DNAT the reply source
 * the translated destination), CT_TLV_REPL_L4 (reply ports, or ICMP id and
 * type/code), CT_TLV_STATUS (IPS_* bits), CT_TLV_TIMEOUT (seconds left),
 * CT_TLV_MARK, and for TCP CT_TLV_TCP_STATE, CT_TLV_TCP_WSCALE (original,
 * reply) and CT_TLV_TCP_FLAGS (original, reply). A decoder skips TLV types
 * it does not know (a later version may add some) and refuses a known one
 * with a wrong length, twice, or missing when required. Supported: IPv4
 * and IPv6 with TCP, UDP, UDP-Lite, ICMP, ICMPv6; other entries (SCTP,
 * DCCP, GRE, ...) are skipped and counted as `unsupported`, and entries
 * with a conntrack helper or sequence adjustment are carried without the
 * helper state (not needed for plain NAT gateways; documented limit).
 *
 * stable_hash covers the key, the reply tuple, the status bits that make
 * a session what it is (SEEN_REPLY, ASSURED, SRC_NAT, DST_NAT), the mark,
 * and TCP state and window scales; not the timeout, counters, id or TCP
 * flags (which the injector changes, see ct_apply). An entry dumped on the
 * primary and the same entry injected and dumped on a secondary have the
 * same stable_hash, so an order-independent digest of the two tables
 * (XOR of the hashes) is equal when the tables are.
 *
 * Who listens, who injects. A secondary injects and does not open events;
 * a primary opens events and does not inject. To be safe anyway, events
 * that the kernel reports as caused by this driver's own request socket
 * (its netlink port id in nlmsg_pid) are not reported; they are counted as
 * `events_own`.
 *
 * Timeouts. A record carries the primary's remaining timeout; ct_apply
 * injects with max(that, the floor set by ct_set_timeout_floor). Traffic
 * on the primary refreshes its entry's timeout without an event, so the
 * secondary's copy must be refreshed by the sync protocol: the primary
 * re-sends an UPSERT (with the new remaining timeout) for each session at
 * least once per floor/2 seconds (e.g. from a periodic ct_dump), and the
 * secondary's ct_apply then updates the timeout in place. Entries whose
 * session ended on the primary are removed by its DESTROY event or, if
 * that was lost, by the next bulk sync's ct_sweep.
 *
 * All functions return 0 (or a count where said) or a negative tnd_err;
 * on TND_ESYS errno holds the kernel's reason. Not thread-safe. */
#ifndef TND_CT_H
#define TND_CT_H

#include "../core/ctrec.h"

struct ct;
struct nf_conntrack;

/* Value TLV types (see above). */
enum ct_tlv {
	CT_TLV_REPL_SRC = 1,   /* 4 or 16 bytes, as the key's family */
	CT_TLV_REPL_DST = 2,   /* 4 or 16 bytes */
	CT_TLV_REPL_L4 = 3,    /* 4 bytes: ports, or ICMP id(2) type code */
	CT_TLV_STATUS = 4,     /* u32 IPS_* */
	CT_TLV_TIMEOUT = 5,    /* u32 seconds left */
	CT_TLV_MARK = 6,       /* u32 */
	CT_TLV_TCP_STATE = 7,  /* u8 TCP_CONNTRACK_* */
	CT_TLV_TCP_WSCALE = 8, /* 2 bytes: original, reply */
	CT_TLV_TCP_FLAGS = 9,  /* 2 bytes: original, reply (IP_CT_TCP_FLAG_*) */
};

#define CT_KEY_LEN_V4 16
#define CT_KEY_LEN_V6 40
/* Receive buffer asked for the event socket, bytes (SO_RCVBUFFORCE). */
#define CT_EVENT_RCVBUF_BYTES (64 * 1024 * 1024)
/* Datagrams read per ct_events_read call, so one busy table cannot keep
 * the event loop from its other work. */
#define CT_EVENT_BATCH_MAX 256
/* Stale entries collected per ct_sweep pass, and passes per call. */
#define CT_SWEEP_BATCH_MAX 65536
#define CT_SWEEP_PASSES_MAX 64

/* Open the request socket. NULL on failure (errno set). */
struct ct *ct_open(void);
void ct_close(struct ct *ct);

/* Conversion. ct_to_rec fills `out` from a kernel entry: key, value (empty
 * for CTREC_DELETE) and stable_hash. TND_EINVAL for an entry lacking its
 * tuple or of an unsupported protocol. */
int ct_to_rec(const struct nf_conntrack *c, uint8_t op, struct ctrec *out);
/* The same from a ctnetlink NEW or DELETE message as the kernel sends in
 * dumps and events (msg[0..len), one message): parsed attribute by
 * attribute, which is how ct_dump and ct_events_read read them. TND_EINVAL
 * for a malformed message, TND_ENOENT for an entry of an unsupported
 * family or protocol or one that cannot be recreated. */
int ct_msg_to_rec(const void *msg, size_t len, uint8_t op, struct ctrec *out);
/* ct_from_rec fills a caller's object (nfct_new(), empty) from a record:
 * for UPSERT the original and reply tuples, zone, status, timeout, mark,
 * TCP state, window scales and flags, and the NAT attributes derived from
 * the reply tuple and status (ATTR_SNAT_* / ATTR_DNAT_*); for DELETE only
 * the original tuple and zone. TND_EINVAL, with `c` possibly half filled,
 * for a record that does not decode. */
int ct_from_rec(const struct ctrec *r, struct nf_conntrack *c);
/* The stable hash of a decoded record's content (what ct_to_rec puts in
 * out->stable_hash), recomputed from key and value. TND_EINVAL if the
 * record does not decode. */
int ct_rec_hash(const struct ctrec *r, uint64_t *out);

/* Walk the whole table (both families, every zone), calling cb for each
 * supported entry as a CTREC_UPSERT record. cb returns 0 to go on, anything
 * else to stop. Returns 0 when the walk completed, 1 when cb stopped it,
 * or <0. */
typedef int (*ct_rec_cb)(const struct ctrec *r, void *arg);
int ct_dump(struct ct *ct, ct_rec_cb cb, void *arg);

/* Events. ct_events_open subscribes to NEW, UPDATE and DESTROY with a
 * large receive buffer; ct_events_fd is the non-blocking socket to poll
 * (-1 before ct_events_open). ct_events_read reads what is queued (at most
 * CT_EVENT_BATCH_MAX datagrams, never blocking) and calls cb with NEW and
 * UPDATE as CTREC_UPSERT and DESTROY as CTREC_DELETE. Returns the number
 * of records reported, or TND_ENOSPC when the kernel dropped events
 * because the buffer overran (counted in `overruns`; the caller must
 * resync with a bulk dump), or another <0. */
typedef void (*ct_event_cb)(const struct ctrec *r, void *arg);
int ct_events_open(struct ct *ct);
/* Unsubscribe (close the event socket); ct_events_open may follow. */
void ct_events_close(struct ct *ct);
int ct_events_fd(const struct ct *ct);
int ct_events_read(struct ct *ct, ct_event_cb cb, void *arg);

/* Inject one record into the local kernel. UPSERT creates the entry (NAT
 * bindings included) or, if it exists, updates its status, timeout, mark
 * and TCP state in place (an entry whose update the kernel refuses, e.g.
 * a status bit that cannot be cleared, is replaced: destroyed and
 * created). TCP entries are injected with IP_CT_TCP_FLAG_BE_LIBERAL and
 * the window scales, because sequence-window history does not travel:
 * the kernel then accepts the flow's packets after a takeover whatever
 * nf_conntrack_tcp_loose says. DELETE destroys it; an absent entry is
 * success. TND_EINVAL for a record that does not decode (nothing sent). */
int ct_apply(struct ct *ct, const struct ctrec *r);
/* Batched injection, same steps and counters as ct_apply: ct_queue checks
 * that the record decodes (TND_EINVAL, nothing queued) and queues it; a
 * queued UPSERT is dropped when a later UPSERT of its key is queued
 * (counted as `coalesced`). ct_flush sends the queue to the kernel, many
 * requests per sendmsg (see ct.c), and returns when the kernel has
 * handled them all: 0, or TND_ESYS with errno = the reason of the last
 * record that failed (each failure counted in apply_errors). ct_queue
 * flushes by itself when CT_QUEUE_MAX records are queued (returning that
 * flush's result). ct_apply flushes what is queued first, so order holds. */
#define CT_QUEUE_MAX 512
int ct_queue(struct ct *ct, const struct ctrec *r);
int ct_flush(struct ct *ct);
size_t ct_queued(const struct ct *ct);
/* Lowest timeout given to injected entries, seconds (default 0: none). */
void ct_set_timeout_floor(struct ct *ct, uint32_t seconds);

/* End of a bulk sync: delete every local entry for which keep() returns
 * false (entries the peer did not send). Entries are collected during a
 * dump and deleted after it, CT_SWEEP_BATCH_MAX per pass. *deleted (may
 * be NULL) gets the count. 0 or <0. */
int ct_sweep(struct ct *ct, bool (*keep)(const struct ctrec *r, void *arg), void *arg,
	     uint64_t *deleted);

struct ct_stats {
	uint64_t dumped;        /* records produced by ct_dump */
	uint64_t unsupported;   /* entries skipped: protocol or family */
	uint64_t malformed;     /* kernel messages that did not parse */
	uint64_t events_new, events_update, events_destroy;
	uint64_t events_own;    /* caused by our own requests, not reported */
	uint64_t overruns;      /* ENOBUFS on the event socket */
	uint64_t created, updated, replaced; /* ct_apply upserts */
	uint64_t deleted, delete_absent;     /* ct_apply deletes */
	uint64_t apply_errors;  /* refused by the kernel */
	uint64_t rec_invalid;   /* records refused by ct_from_rec in ct_apply */
	uint64_t swept;         /* deleted by ct_sweep */
	uint64_t coalesced;     /* queued UPSERTs replaced by a later one */
	uint64_t batches;       /* sendmsg calls of injection requests */
};
void ct_get_stats(const struct ct *ct, struct ct_stats *out);

#endif
