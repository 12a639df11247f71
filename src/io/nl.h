/* nl.h - netlink driver (libmnl): virtual IP addresses, link state, and
 * the announcements that move traffic after a takeover.
 *
 * Owns: one NETLINK_ROUTE socket for requests, one subscribed to
 * RTMGRP_LINK for interface up/down, and the packet sockets used to send
 * gratuitous ARP (RFC 5227 section 3, ARP Announcement) and unsolicited
 * neighbour advertisements (RFC 4861 section 7.2.6). Kernel operations are
 * idempotent: adding an address that exists, or removing one that does not,
 * is success. Replies are checked attribute by attribute. */
#ifndef TND_NL_H
#define TND_NL_H

#include "../conf/conf.h"

struct nl;

/* Open the sockets. NULL on failure (errno set). */
struct nl *nl_open(void);
void nl_close(struct nl *nl);

/* File descriptor to poll for link events; call nl_link_events() when it
 * is readable. */
int nl_link_fd(const struct nl *nl);
/* Read pending link messages and call cb(ifname, up, arg) for each change
 * (and for each link on the first call after nl_link_dump). 0 or <0. */
int nl_link_events(struct nl *nl, void (*cb)(const char *ifname, bool up, void *arg), void *arg);
/* Ask the kernel for every link's state; results arrive via nl_link_events
 * (or synchronously here: implementation's choice, documented). */
int nl_link_dump(struct nl *nl, void (*cb)(const char *ifname, bool up, void *arg), void *arg);
/* Whether an interface exists and is operationally up (IFF_UP and
 * IFF_RUNNING / IF_OPER_UP or UNKNOWN). 1 up, 0 down, <0 no such iface. */
int nl_link_is_up(struct nl *nl, const char *ifname);

/* Add / remove one VIP. Adding sets IFA_F_NODAD for IPv6 so the address is
 * usable at once. Returns 0 or a negative tnd_err (errno kept). */
int nl_vip_add(struct nl *nl, const struct tnd_vip *v);
int nl_vip_del(struct nl *nl, const struct tnd_vip *v);
/* 1 if the address is on the interface, 0 if not, <0 on error. */
int nl_vip_present(struct nl *nl, const struct tnd_vip *v);

/* Announce the VIP: gratuitous ARP for IPv4, unsolicited NA (override
 * flag, target link-layer address option, to ff02::1) for IPv6. */
int nl_vip_announce(struct nl *nl, const struct tnd_vip *v);

/* What the driver dropped or recovered from, for metrics and tests. */
struct nl_stats {
	uint64_t malformed;       /* kernel messages dropped: bad lengths/types */
	uint64_t overruns;        /* ENOBUFS on the event socket (events lost) */
	uint64_t resyncs;         /* link re-dumps done to recover from overruns */
	uint64_t stale;           /* replies to an earlier request, skipped */
	uint64_t links_untracked; /* link messages beyond the link table */
};
void nl_get_stats(const struct nl *nl, struct nl_stats *out);
/* The kernel's explanation (extended ack) of the last refused request, or
 * "" when it gave none. */
const char *nl_last_error(const struct nl *nl);
/* Process a buffer of RTM_NEWLINK / RTM_DELLINK messages exactly as if read
 * from the event socket: what nl_link_events() does after recv(). For
 * tests and fuzzing of the message parser. 0 or <0. */
int nl_link_feed(struct nl *nl, const void *buf, size_t len,
		 void (*cb)(const char *ifname, bool up, void *arg), void *arg);

#endif
