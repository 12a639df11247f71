/* nl.c - netlink driver (libmnl): virtual IP addresses, link state, and the
 * announcements that move traffic to this node after a takeover.
 *
 * Owns: a NETLINK_ROUTE request socket (blocking, with a reply timeout),
 * a NETLINK_ROUTE socket subscribed to RTMGRP_LINK (non-blocking), the
 * table of known links used to report only changes, and two lazily opened
 * sockets for announcements: an AF_PACKET datagram socket for gratuitous
 * ARP (RFC 5227 section 3, ARP Announcement) and a raw ICMPv6 socket for
 * unsolicited neighbour advertisements (RFC 4861 section 7.2.6).
 *
 * Rules kept throughout:
 *  - Kernel operations are idempotent: EEXIST on add, and EADDRNOTAVAIL,
 *    ENOENT or ESRCH on delete, are success.
 *  - No length from the kernel is trusted: every message goes through
 *    mnl_nlmsg_ok(), every attribute through a table of expected types and
 *    sizes (as BIRD's netlink.c does). A message that fails is dropped,
 *    counted in nl_stats.malformed and logged with a rate limit.
 *  - Replies are matched by sequence number and port id; leftovers of an
 *    earlier request that timed out are skipped, not mistaken for answers.
 *  - nl_link_dump() reports synchronously through its callback.
 *    nl_link_events() reports changes only; when the kernel dropped events
 *    (ENOBUFS) it re-dumps and reports the differences, so a consumer never
 *    keeps a stale view of a link. */
#include "nl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netinet/icmp6.h>
#include <netinet/if_ether.h>
#include <netinet/in.h>
#include <netpacket/packet.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <libmnl/libmnl.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

/* IF_OPER_* live in <linux/if.h>, which clashes with <net/if.h>. The
 * values are kernel ABI (RFC 2863 operational states). */
#define NL_OPER_UNKNOWN 0
#define NL_OPER_UP 6

#define NL_RECV_BYTES 32768          /* a dump part never exceeds this */
#define NL_REQ_BYTES 256             /* our requests: header + 3 attributes */
#define NL_LINKS_MAX 1024            /* links tracked for change detection */
#define NL_REPLY_TIMEOUT_MS 2000     /* longest wait for a kernel reply */
#define NL_DUMP_TRIES_MAX 3          /* re-dumps when a dump was interrupted */
#define NL_EVENT_RCVBUF_BYTES (1 << 20)
#define NL_EVENT_READS_MAX 256       /* reads per nl_link_events() call */
#define NL_DRAIN_READS_MAX 4096      /* reads when discarding queued events */
#define NL_LOG_INTERVAL_S 10         /* at most one drop log line per this */
#define NL_ERRMSG_MAX 128            /* bytes kept of the kernel's ext. ack */
#define NL_MAC_MAX 32                /* MAX_ADDR_LEN */

typedef void (*nl_link_cb)(const char *ifname, bool up, void *arg);

struct nl_link_ent {
	int ifindex;
	bool up;
	uint32_t seen_gen; /* last dump generation that listed it */
	char name[IFNAMSIZ];
};

struct nl {
	struct mnl_socket *req;
	struct mnl_socket *ev;
	uint32_t req_portid;
	uint32_t seq;
	int arp_fd; /* -1 until the first IPv4 announcement */
	int nd_fd;  /* -1 until the first IPv6 announcement */

	uint32_t gen;
	int n_links;
	struct nl_link_ent links[NL_LINKS_MAX];

	struct nl_stats stats;
	char err_msg[NL_ERRMSG_MAX];
	time_t log_last_s;
	uint64_t log_suppressed;

	/* Separate buffers: an overrun met while reading events triggers a
	 * dump on the request socket. */
	uint8_t req_buf[NL_RECV_BYTES] __attribute__((aligned(8)));
	uint8_t ev_buf[NL_RECV_BYTES] __attribute__((aligned(8)));
};

/* A link as parsed from RTM_NEWLINK / RTM_DELLINK. */
struct nl_link {
	int ifindex;
	unsigned int flags;
	unsigned short type;
	char name[IFNAMSIZ];
	int oper; /* IFLA_OPERSTATE, -1 when absent */
	uint8_t mac[NL_MAC_MAX];
	int mac_len;
	bool up;
};

/* ---- logging and errors ------------------------------------------------ */

/* Count a dropped message and log it, at most one line per
 * NL_LOG_INTERVAL_S so a flood of bad input cannot flood the log. */
static void nl_drop(struct nl *nl, const char *what)
{
	struct timespec mono;
	nl->stats.malformed++;
	clock_gettime(CLOCK_MONOTONIC, &mono);
	if (nl->log_last_s != 0 && mono.tv_sec - nl->log_last_s < NL_LOG_INTERVAL_S) {
		nl->log_suppressed++;
		return;
	}
	struct timespec now;
	struct tm tm;
	char ts[32];
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
	fprintf(stderr,
		"ts=%s.%03ldZ level=warn event=netlink.malformed what=%s "
		"dropped_total=%llu suppressed=%llu\n",
		ts, now.tv_nsec / 1000000L, what,
		(unsigned long long)nl->stats.malformed,
		(unsigned long long)nl->log_suppressed);
	nl->log_last_s = mono.tv_sec ? mono.tv_sec : 1;
	nl->log_suppressed = 0;
}

/* Map errno (kept as is) to the project's codes. */
static int nl_errno_code(int e)
{
	switch (e) {
	case ENODEV:
	case ENXIO:
		return TND_ENOENT;
	case EINVAL:
	case ERANGE:
		return TND_EINVAL;
	case EAGAIN:
	case ETIMEDOUT:
		return TND_ETIMEDOUT;
	default:
		return TND_ESYS;
	}
}

/* ---- attribute validation ---------------------------------------------- */

struct nl_attr_rule {
	bool known;
	enum mnl_attr_data_type type; /* checked with mnl_attr_validate() */
	uint16_t min_len, max_len;    /* payload bytes */
};

static const struct nl_attr_rule nl_link_rules[] = {
	[IFLA_IFNAME] = {true, MNL_TYPE_NUL_STRING, 2, IFNAMSIZ},
	[IFLA_ADDRESS] = {true, MNL_TYPE_BINARY, 0, NL_MAC_MAX},
	[IFLA_MTU] = {true, MNL_TYPE_U32, 4, 4},
	[IFLA_OPERSTATE] = {true, MNL_TYPE_U8, 1, 1},
};
#define NL_LINK_RULES_N (sizeof nl_link_rules / sizeof nl_link_rules[0])

static const struct nl_attr_rule nl_addr_rules[] = {
	[IFA_ADDRESS] = {true, MNL_TYPE_BINARY, 4, 16},
	[IFA_LOCAL] = {true, MNL_TYPE_BINARY, 4, 16},
	[IFA_LABEL] = {true, MNL_TYPE_NUL_STRING, 1, IFNAMSIZ},
	[IFA_FLAGS] = {true, MNL_TYPE_U32, 4, 4},
};
#define NL_ADDR_RULES_N (sizeof nl_addr_rules / sizeof nl_addr_rules[0])

static const struct nl_attr_rule nl_ack_rules[] = {
	[NLMSGERR_ATTR_MSG] = {true, MNL_TYPE_NUL_STRING, 1, 512},
};
#define NL_ACK_RULES_N (sizeof nl_ack_rules / sizeof nl_ack_rules[0])

struct nl_attr_ctx {
	const struct nl_attr_rule *rules;
	size_t n_rules;
	const struct nlattr **tb; /* n_rules entries */
};

/* Attributes this code does not use (including ones newer kernels add) are
 * skipped, not rejected; the ones it uses must match their rule exactly. */
static int nl_attr_check(const struct nlattr *a, void *data)
{
	const struct nl_attr_ctx *c = data;
	uint16_t type = mnl_attr_get_type(a);
	if (type >= c->n_rules || !c->rules[type].known)
		return MNL_CB_OK;
	const struct nl_attr_rule *r = &c->rules[type];
	if (mnl_attr_validate(a, r->type) < 0)
		return MNL_CB_ERROR;
	uint16_t len = mnl_attr_get_payload_len(a);
	if (len < r->min_len || len > r->max_len)
		return MNL_CB_ERROR;
	c->tb[type] = a;
	return MNL_CB_OK;
}

/* mnl_attr_parse() stops quietly at the first attribute whose length does
 * not fit; we want such a message rejected, not half-read. True when the
 * attributes after `offset` tile the payload (up to alignment padding). */
static bool nl_attrs_fit(const struct nlmsghdr *nlh, size_t offset)
{
	const struct nlattr *a;
	const char *end = mnl_nlmsg_get_payload_tail(nlh);
	mnl_attr_for_each(a, nlh, offset) {
	}
	long rest = end - (const char *)a;
	return rest > -MNL_ALIGNTO && rest < MNL_ALIGNTO;
}

/* ---- parsing ------------------------------------------------------------ */

static bool nl_link_is_oper_up(const struct nl_link *l)
{
	/* The kernel sets IFF_RUNNING exactly when the operational state is
	 * UP or UNKNOWN (dev_get_flags); checking both keeps us right if one
	 * is missing or the two disagree in a transition. */
	if (!(l->flags & IFF_UP) || !(l->flags & IFF_RUNNING))
		return false;
	return l->oper < 0 || l->oper == NL_OPER_UP || l->oper == NL_OPER_UNKNOWN;
}

/* Parse RTM_NEWLINK / RTM_DELLINK. 0, or TND_EINVAL when malformed. */
static int nl_parse_link(const struct nlmsghdr *nlh, struct nl_link *out)
{
	const struct nlattr *tb[NL_LINK_RULES_N] = {0};
	struct nl_attr_ctx c = {nl_link_rules, NL_LINK_RULES_N, tb};

	if (mnl_nlmsg_get_payload_len(nlh) < sizeof(struct ifinfomsg))
		return TND_EINVAL;
	const struct ifinfomsg *ifi = mnl_nlmsg_get_payload(nlh);
	if (!nl_attrs_fit(nlh, sizeof(*ifi)) ||
	    mnl_attr_parse(nlh, sizeof(*ifi), nl_attr_check, &c) != MNL_CB_OK)
		return TND_EINVAL;
	if (!tb[IFLA_IFNAME] || ifi->ifi_index <= 0)
		return TND_EINVAL;

	memset(out, 0, sizeof(*out));
	out->ifindex = ifi->ifi_index;
	out->flags = ifi->ifi_flags;
	out->type = ifi->ifi_type;
	/* Validated: NUL-terminated, at most IFNAMSIZ bytes. */
	memcpy(out->name, mnl_attr_get_str(tb[IFLA_IFNAME]),
	       mnl_attr_get_payload_len(tb[IFLA_IFNAME]));
	out->oper = tb[IFLA_OPERSTATE] ? mnl_attr_get_u8(tb[IFLA_OPERSTATE]) : -1;
	if (tb[IFLA_ADDRESS]) {
		out->mac_len = mnl_attr_get_payload_len(tb[IFLA_ADDRESS]);
		memcpy(out->mac, mnl_attr_get_payload(tb[IFLA_ADDRESS]), out->mac_len);
	}
	out->up = nl_link_is_oper_up(out);
	return 0;
}

struct nl_addr {
	int family;
	int ifindex;
	uint8_t prefix_len;
	uint32_t flags;
	uint8_t addr[16];
};

static size_t nl_family_len(int family)
{
	return family == AF_INET ? 4 : family == AF_INET6 ? 16 : 0;
}

/* Parse RTM_NEWADDR. 0, or TND_EINVAL when malformed. */
static int nl_parse_addr(const struct nlmsghdr *nlh, struct nl_addr *out)
{
	const struct nlattr *tb[NL_ADDR_RULES_N] = {0};
	struct nl_attr_ctx c = {nl_addr_rules, NL_ADDR_RULES_N, tb};

	if (mnl_nlmsg_get_payload_len(nlh) < sizeof(struct ifaddrmsg))
		return TND_EINVAL;
	const struct ifaddrmsg *ifa = mnl_nlmsg_get_payload(nlh);
	if (!nl_attrs_fit(nlh, sizeof(*ifa)) ||
	    mnl_attr_parse(nlh, sizeof(*ifa), nl_attr_check, &c) != MNL_CB_OK)
		return TND_EINVAL;
	size_t alen = nl_family_len(ifa->ifa_family);
	/* IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer
	 * on point-to-point links and equal to it otherwise. */
	const struct nlattr *a = tb[IFA_LOCAL] ? tb[IFA_LOCAL] : tb[IFA_ADDRESS];
	if (alen == 0 || !a || mnl_attr_get_payload_len(a) != alen)
		return TND_EINVAL;
	if (ifa->ifa_prefixlen > alen * 8)
		return TND_EINVAL;

	memset(out, 0, sizeof(*out));
	out->family = ifa->ifa_family;
	out->ifindex = (int)ifa->ifa_index;
	out->prefix_len = ifa->ifa_prefixlen;
	out->flags = tb[IFA_FLAGS] ? mnl_attr_get_u32(tb[IFA_FLAGS]) : ifa->ifa_flags;
	memcpy(out->addr, mnl_attr_get_payload(a), alen);
	return 0;
}

/* ---- request / reply ---------------------------------------------------- */

/* recvmsg() that refuses truncated messages (ENOSPC) and messages not sent
 * by the kernel (EPERM). */
static ssize_t nl_recv(int fd, void *buf, size_t len)
{
	struct sockaddr_nl sa;
	struct iovec iov = {buf, len};
	struct msghdr m = {.msg_name = &sa, .msg_namelen = sizeof sa,
			   .msg_iov = &iov, .msg_iovlen = 1};
	ssize_t n;
	do
		n = recvmsg(fd, &m, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -1;
	if (m.msg_flags & MSG_TRUNC) {
		errno = ENOSPC;
		return -1;
	}
	if (m.msg_namelen != sizeof sa || sa.nl_family != AF_NETLINK || sa.nl_pid != 0) {
		errno = EPERM;
		return -1;
	}
	return n;
}

/* Keep the kernel's extended-ack text (why it refused) for nl_last_error. */
static void nl_parse_ext_ack(struct nl *nl, const struct nlmsghdr *h,
			     const struct nlmsgerr *e)
{
	size_t plen = mnl_nlmsg_get_payload_len(h);
	size_t off = sizeof(*e);
	if (!(h->nlmsg_flags & NLM_F_ACK_TLVS))
		return;
	if (!(h->nlmsg_flags & NLM_F_CAPPED)) {
		if (e->msg.nlmsg_len < sizeof(struct nlmsghdr))
			return;
		off += MNL_ALIGN(e->msg.nlmsg_len - sizeof(struct nlmsghdr));
	}
	if (off >= plen)
		return;
	const struct nlattr *tb[NL_ACK_RULES_N] = {0};
	struct nl_attr_ctx c = {nl_ack_rules, NL_ACK_RULES_N, tb};
	if (mnl_attr_parse_payload((const char *)e + off, plen - off, nl_attr_check, &c) !=
	    MNL_CB_OK) {
		nl_drop(nl, "ext_ack");
		return;
	}
	if (tb[NLMSGERR_ATTR_MSG])
		snprintf(nl->err_msg, sizeof nl->err_msg, "%s",
			 mnl_attr_get_str(tb[NLMSGERR_ATTR_MSG]));
}

/* NLMSG_ERROR: 0 for an ack, TND_ESYS with errno for a refusal. */
static int nl_parse_ack(struct nl *nl, const struct nlmsghdr *h)
{
	if (mnl_nlmsg_get_payload_len(h) < sizeof(struct nlmsgerr)) {
		nl_drop(nl, "short_ack");
		errno = EBADMSG;
		return TND_EIO;
	}
	const struct nlmsgerr *e = mnl_nlmsg_get_payload(h);
	if (e->error == 0)
		return 0;
	if (e->error > 0 || e->error < -4095) {
		nl_drop(nl, "bad_ack_code");
		errno = EBADMSG;
		return TND_EIO;
	}
	nl_parse_ext_ack(nl, h, e);
	errno = -e->error;
	return TND_ESYS;
}

/* Called for each data message of a reply: 0, or TND_EINVAL if malformed
 * (the message is then dropped and counted, the reply goes on). */
typedef int (*nl_msg_fn)(struct nl *nl, const struct nlmsghdr *nlh, void *data);

/* mnl_nlmsg_ok() compares nlmsg_len as an int, so a length of 0xffffffff
 * passes as -1 and mnl_nlmsg_next() then never advances (found by
 * fuzz_netlink). Compare unsigned, and require progress. */
static bool nl_msg_ok(const struct nlmsghdr *h, int left)
{
	/* libmnl finds the payload's end at MNL_ALIGN(nlmsg_len): an
	 * unaligned length on the last message of a buffer would put that
	 * end past the data (found by fuzz_netlink). The kernel pads every
	 * message, so the aligned length must fit too. */
	return left >= (int)sizeof(*h) && h->nlmsg_len >= sizeof(*h) &&
	       h->nlmsg_len <= (uint32_t)left &&
	       MNL_ALIGN(h->nlmsg_len) <= (uint32_t)left;
}

/* Read the reply to request `seq`: data messages go to fn; ends at the ack
 * (NLMSG_ERROR) or at NLMSG_DONE. *intr is set if a dump was interrupted
 * by a concurrent change (its content may be inconsistent). */
static int nl_recv_reply(struct nl *nl, uint32_t seq, nl_msg_fn fn, void *data, bool *intr)
{
	int fd = mnl_socket_get_fd(nl->req);
	for (;;) {
		ssize_t n = nl_recv(fd, nl->req_buf, sizeof nl->req_buf);
		if (n < 0) {
			if (errno == EPERM)
				continue; /* not from the kernel: ignore */
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				errno = ETIMEDOUT;
				return TND_ETIMEDOUT;
			}
			if (errno == ENOSPC) {
				nl_drop(nl, "truncated_reply");
				errno = EMSGSIZE;
				return TND_EIO;
			}
			return TND_ESYS;
		}
		const struct nlmsghdr *h = (const struct nlmsghdr *)nl->req_buf;
		int len = (int)n;
		for (; nl_msg_ok(h, len); h = mnl_nlmsg_next(h, &len)) {
			if (h->nlmsg_seq != seq || h->nlmsg_pid != nl->req_portid) {
				nl->stats.stale++;
				continue;
			}
			if (h->nlmsg_flags & NLM_F_DUMP_INTR)
				*intr = true;
			switch (h->nlmsg_type) {
			case NLMSG_NOOP:
				break;
			case NLMSG_ERROR:
				return nl_parse_ack(nl, h);
			case NLMSG_DONE:
				/* A dump may end with an error code in DONE. */
				if (mnl_nlmsg_get_payload_len(h) >= sizeof(int)) {
					int err;
					memcpy(&err, mnl_nlmsg_get_payload(h), sizeof err);
					if (err < 0 && err >= -4095) {
						errno = -err;
						return TND_ESYS;
					}
				}
				return 0;
			default:
				if (fn && fn(nl, h, data) == TND_EINVAL)
					nl_drop(nl, "reply_message");
				break;
			}
		}
		if (len > 0)
			nl_drop(nl, "reply_trailing_bytes");
	}
}

static uint32_t nl_next_seq(struct nl *nl)
{
	if (++nl->seq == 0)
		nl->seq = 1;
	return nl->seq;
}

/* Send a request and read its whole reply. A dump that the kernel marks as
 * interrupted (the table changed under it) is repeated. Returns 0 or <0
 * with errno set (TND_ESYS carries the kernel's refusal in errno). */
static int nl_request(struct nl *nl, struct nlmsghdr *nlh, nl_msg_fn fn, void *data)
{
	bool dump = (nlh->nlmsg_flags & NLM_F_DUMP) == NLM_F_DUMP;
	for (int attempt = 0; attempt < NL_DUMP_TRIES_MAX; attempt++) {
		bool intr = false;
		nl->err_msg[0] = '\0';
		nlh->nlmsg_seq = nl_next_seq(nl);
		if (mnl_socket_sendto(nl->req, nlh, nlh->nlmsg_len) < 0)
			return TND_ESYS;
		int rc = nl_recv_reply(nl, nlh->nlmsg_seq, fn, data, &intr);
		if (rc != 0 || !(dump && intr))
			return rc;
	}
	errno = EINTR;
	return TND_EIO;
}

/* ---- links --------------------------------------------------------------- */

/* The kernel's rule for interface names (dev_valid_name). */
static bool nl_ifname_ok(const char *name)
{
	if (!name)
		return false;
	size_t n = strnlen(name, IFNAMSIZ);
	if (n == 0 || n >= IFNAMSIZ || !strcmp(name, ".") || !strcmp(name, ".."))
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)name[i];
		if (ch == '/' || ch == ':' || ch <= ' ' || ch == 0x7f)
			return false;
	}
	return true;
}

struct nl_link_get {
	bool found;
	struct nl_link link;
};

static int nl_link_get_cb(struct nl *nl, const struct nlmsghdr *nlh, void *data)
{
	struct nl_link_get *g = data;
	if (nlh->nlmsg_type != RTM_NEWLINK)
		return 0;
	if (nl_parse_link(nlh, &g->link) < 0)
		return TND_EINVAL;
	g->found = true;
	return 0;
}

/* One link by name: TND_EINVAL for an impossible name, TND_ENOENT when no
 * such interface exists. */
static int nl_link_get(struct nl *nl, const char *name, struct nl_link *out)
{
	char buf[NL_REQ_BYTES] __attribute__((aligned(8)));
	if (!nl || !nl_ifname_ok(name)) {
		errno = EINVAL;
		return TND_EINVAL;
	}
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = RTM_GETLINK;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
	mnl_attr_put_u32(nlh, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);

	struct nl_link_get g = {0};
	int rc = nl_request(nl, nlh, nl_link_get_cb, &g);
	if (rc < 0)
		return rc == TND_ESYS ? nl_errno_code(errno) : rc;
	if (!g.found) {
		errno = EBADMSG;
		return TND_EIO;
	}
	*out = g.link;
	return 0;
}

static struct nl_link_ent *nl_ent_find(struct nl *nl, int ifindex)
{
	for (int i = 0; i < nl->n_links; i++)
		if (nl->links[i].ifindex == ifindex)
			return &nl->links[i];
	return NULL;
}

static void nl_ent_remove(struct nl *nl, struct nl_link_ent *e)
{
	*e = nl->links[--nl->n_links];
}

/* Fold one link message into the table and report what changed (every
 * link when report_all). A deleted link is down. */
static void nl_link_note(struct nl *nl, const struct nl_link *l, bool deleted,
			 bool report_all, nl_link_cb cb, void *arg)
{
	struct nl_link_ent *e = nl_ent_find(nl, l->ifindex);
	if (deleted) {
		if (!e) {
			cb(l->name, false, arg);
			return;
		}
		char name[IFNAMSIZ];
		bool was_up = e->up;
		memcpy(name, e->name, sizeof name);
		nl_ent_remove(nl, e);
		if (was_up || report_all)
			cb(name, false, arg);
		return;
	}
	if (!e) {
		if (nl->n_links >= NL_LINKS_MAX) {
			/* Cannot remember it: report every message, so
			 * nothing is missed, only repeated. */
			nl->stats.links_untracked++;
			cb(l->name, l->up, arg);
			return;
		}
		e = &nl->links[nl->n_links++];
		e->ifindex = l->ifindex;
		e->up = l->up;
		e->seen_gen = nl->gen;
		memcpy(e->name, l->name, sizeof e->name);
		cb(e->name, e->up, arg);
		return;
	}
	e->seen_gen = nl->gen;
	if (strcmp(e->name, l->name) != 0) {
		/* Renamed: the old name is gone, the new one appears. */
		char old[IFNAMSIZ];
		bool was_up = e->up;
		memcpy(old, e->name, sizeof old);
		memcpy(e->name, l->name, sizeof e->name);
		e->up = l->up;
		if (was_up)
			cb(old, false, arg);
		cb(e->name, e->up, arg);
		return;
	}
	if (report_all || e->up != l->up) {
		e->up = l->up;
		cb(e->name, e->up, arg);
	}
}

struct nl_sync {
	bool report_all;
	nl_link_cb cb;
	void *arg;
};

static int nl_link_sync_cb(struct nl *nl, const struct nlmsghdr *nlh, void *data)
{
	struct nl_sync *s = data;
	struct nl_link l;
	if (nlh->nlmsg_type != RTM_NEWLINK)
		return 0;
	if (mnl_nlmsg_get_payload_len(nlh) >= sizeof(struct ifinfomsg)) {
		const struct ifinfomsg *ifi = mnl_nlmsg_get_payload(nlh);
		if (ifi->ifi_family != AF_UNSPEC)
			return 0;
	}
	if (nl_parse_link(nlh, &l) < 0)
		return TND_EINVAL;
	nl_link_note(nl, &l, false, s->report_all, s->cb, s->arg);
	return 0;
}

/* Dump every link, fold the answers into the table, then report links the
 * dump no longer lists as down (deleted while we were not listening). */
static int nl_link_sync(struct nl *nl, bool report_all, nl_link_cb cb, void *arg)
{
	char buf[NL_REQ_BYTES] __attribute__((aligned(8)));
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = RTM_GETLINK;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	mnl_attr_put_u32(nlh, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);

	struct nl_sync s = {report_all, cb, arg};
	nl->gen++;
	int rc = nl_request(nl, nlh, nl_link_sync_cb, &s);
	if (rc < 0)
		return rc == TND_ESYS ? nl_errno_code(errno) : rc;
	for (int i = 0; i < nl->n_links;) {
		struct nl_link_ent *e = &nl->links[i];
		if (e->seen_gen == nl->gen) {
			i++;
			continue;
		}
		char name[IFNAMSIZ];
		bool was_up = e->up;
		memcpy(name, e->name, sizeof name);
		nl_ent_remove(nl, e); /* moves the last entry to i */
		if (was_up)
			cb(name, false, arg);
	}
	return 0;
}

/* Throw away whatever the event socket holds: called right before a full
 * dump, which supersedes it. Queued events are older than the dump and
 * would otherwise be reported after it, undoing newer state. */
static void nl_event_drain(struct nl *nl)
{
	int fd = mnl_socket_get_fd(nl->ev);
	for (int i = 0; i < NL_DRAIN_READS_MAX; i++) {
		ssize_t n = recv(fd, nl->ev_buf, sizeof nl->ev_buf, MSG_DONTWAIT | MSG_TRUNC);
		if (n < 0 && errno != ENOBUFS && errno != EINTR)
			break; /* EAGAIN: empty */
	}
}

int nl_link_feed(struct nl *nl, const void *buf, size_t len,
		 void (*cb)(const char *ifname, bool up, void *arg), void *arg)
{
	if (!nl || !cb || (!buf && len))
		return TND_EINVAL;
	if (len > INT32_MAX)
		return TND_EINVAL;
	const struct nlmsghdr *h = buf;
	int left = (int)len;
	for (; nl_msg_ok(h, left); h = mnl_nlmsg_next(h, &left)) {
		if (h->nlmsg_type != RTM_NEWLINK && h->nlmsg_type != RTM_DELLINK)
			continue;
		if (mnl_nlmsg_get_payload_len(h) < sizeof(struct ifinfomsg)) {
			nl_drop(nl, "link_event_short");
			continue;
		}
		/* Only AF_UNSPEC describes the link itself: AF_BRIDGE
		 * messages come and go with bridge membership, and an
		 * AF_BRIDGE RTM_DELLINK does not mean the link is gone. */
		const struct ifinfomsg *ifi = mnl_nlmsg_get_payload(h);
		if (ifi->ifi_family != AF_UNSPEC)
			continue;
		struct nl_link l;
		if (nl_parse_link(h, &l) < 0) {
			nl_drop(nl, "link_event");
			continue;
		}
		nl_link_note(nl, &l, h->nlmsg_type == RTM_DELLINK, false, cb, arg);
	}
	if (left > 0)
		nl_drop(nl, "link_event_trailing_bytes");
	return 0;
}

int nl_link_fd(const struct nl *nl)
{
	return nl ? mnl_socket_get_fd(nl->ev) : -1;
}

int nl_link_events(struct nl *nl, void (*cb)(const char *ifname, bool up, void *arg), void *arg)
{
	if (!nl || !cb)
		return TND_EINVAL;
	int fd = mnl_socket_get_fd(nl->ev);
	for (int reads = 0; reads < NL_EVENT_READS_MAX; reads++) {
		ssize_t n = nl_recv(fd, nl->ev_buf, sizeof nl->ev_buf);
		if (n >= 0) {
			nl_link_feed(nl, nl->ev_buf, (size_t)n, cb, arg);
			continue;
		}
		switch (errno) {
		case EAGAIN:
#if EWOULDBLOCK != EAGAIN
		case EWOULDBLOCK:
#endif
			return 0;
		case ENOBUFS: {
			/* The kernel dropped events: our view may be stale.
			 * Rebuild it from a dump and report differences. */
			nl->stats.overruns++;
			nl_event_drain(nl);
			nl->stats.resyncs++;
			int rc = nl_link_sync(nl, false, cb, arg);
			if (rc < 0)
				return rc;
			break;
		}
		case ENOSPC:
			nl_drop(nl, "link_event_truncated");
			break;
		case EPERM:
			nl_drop(nl, "link_event_not_from_kernel");
			break;
		default:
			return TND_ESYS;
		}
	}
	return 0; /* more may be queued; the fd stays readable */
}

int nl_link_dump(struct nl *nl, void (*cb)(const char *ifname, bool up, void *arg), void *arg)
{
	if (!nl || !cb)
		return TND_EINVAL;
	nl_event_drain(nl);
	return nl_link_sync(nl, true, cb, arg);
}

int nl_link_is_up(struct nl *nl, const char *ifname)
{
	struct nl_link l;
	int rc = nl_link_get(nl, ifname, &l);
	if (rc < 0)
		return rc;
	return l.up ? 1 : 0;
}

/* ---- addresses ------------------------------------------------------------ */

static int nl_vip_check(const struct tnd_vip *v)
{
	if (!v || !nl_ifname_ok(v->ifname))
		goto bad;
	const uint8_t *b = v->addr.bytes;
	if (v->addr.family == AF_INET) {
		if (v->prefix_len > 32)
			goto bad;
		/* 0.0.0.0, multicast, class E and broadcast cannot be VIPs. */
		if ((b[0] == 0 && b[1] == 0 && b[2] == 0 && b[3] == 0) || b[0] >= 224)
			goto bad;
		return 0;
	}
	if (v->addr.family == AF_INET6) {
		static const uint8_t zero[16];
		if (v->prefix_len > 128 || b[0] == 0xff || !memcmp(b, zero, 16))
			goto bad;
		return 0;
	}
bad:
	errno = EINVAL;
	return TND_EINVAL;
}

struct nl_addr_find {
	int family;
	int ifindex;
	const uint8_t *addr;
	bool found;
	struct nl_addr match;
};

static int nl_addr_find_cb(struct nl *nl, const struct nlmsghdr *nlh, void *data)
{
	struct nl_addr_find *f = data;
	struct nl_addr a;
	if (nlh->nlmsg_type != RTM_NEWADDR)
		return 0;
	if (nl_parse_addr(nlh, &a) < 0)
		return TND_EINVAL;
	if (a.family == f->family && a.ifindex == f->ifindex &&
	    !memcmp(a.addr, f->addr, nl_family_len(a.family))) {
		f->found = true;
		f->match = a;
	}
	return 0;
}

/* Look the address up on one interface (RTM_GETADDR dump). */
static int nl_addr_find(struct nl *nl, int family, int ifindex, const uint8_t *addr,
			bool *found, struct nl_addr *match)
{
	char buf[NL_REQ_BYTES] __attribute__((aligned(8)));
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = RTM_GETADDR;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
	ifa->ifa_family = (uint8_t)family;

	struct nl_addr_find f = {family, ifindex, addr, false, {0}};
	int rc = nl_request(nl, nlh, nl_addr_find_cb, &f);
	if (rc < 0)
		return rc == TND_ESYS ? nl_errno_code(errno) : rc;
	*found = f.found;
	if (match)
		*match = f.match;
	return 0;
}

static int nl_addr_change(struct nl *nl, uint16_t type, const struct tnd_vip *v,
			  uint8_t prefix_len, int ifindex)
{
	char buf[NL_REQ_BYTES] __attribute__((aligned(8)));
	size_t alen = nl_family_len(v->addr.family);
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	if (type == RTM_NEWADDR)
		nlh->nlmsg_flags |= NLM_F_CREATE | NLM_F_EXCL;
	struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
	ifa->ifa_family = (uint8_t)v->addr.family;
	ifa->ifa_prefixlen = prefix_len;
	ifa->ifa_scope = RT_SCOPE_UNIVERSE;
	ifa->ifa_index = (uint32_t)ifindex;
	/* Deleting by IFA_LOCAL alone matches the address whatever its
	 * peer; adding sets both, as `ip address add` does. */
	mnl_attr_put(nlh, IFA_LOCAL, alen, v->addr.bytes);
	if (type == RTM_NEWADDR) {
		mnl_attr_put(nlh, IFA_ADDRESS, alen, v->addr.bytes);
		if (v->addr.family == AF_INET6) {
			/* A VIP moves between nodes on purpose: duplicate
			 * address detection would keep it tentative (not
			 * usable) for a second or more after takeover. */
			ifa->ifa_flags = IFA_F_NODAD;
			mnl_attr_put_u32(nlh, IFA_FLAGS, IFA_F_NODAD);
		}
	}
	return nl_request(nl, nlh, NULL, NULL);
}

static bool nl_errno_absent(int e)
{
	return e == EADDRNOTAVAIL || e == ENOENT || e == ESRCH;
}

int nl_vip_add(struct nl *nl, const struct tnd_vip *v)
{
	struct nl_link l;
	int rc = nl_vip_check(v);
	if (rc < 0)
		return rc;
	if ((rc = nl_link_get(nl, v->ifname, &l)) < 0)
		return rc;
	rc = nl_addr_change(nl, RTM_NEWADDR, v, v->prefix_len, l.ifindex);
	if (rc == 0)
		return 0;
	if (rc != TND_ESYS || errno != EEXIST)
		return rc == TND_ESYS ? nl_errno_code(errno) : rc;

	/* Already there. For IPv6 it must also be usable: an address added
	 * earlier without NODAD may still be tentative, or may have failed
	 * DAD while the peer held it; replace it with a NODAD one. */
	if (v->addr.family != AF_INET6)
		return 0;
	bool found;
	struct nl_addr a;
	if ((rc = nl_addr_find(nl, AF_INET6, l.ifindex, v->addr.bytes, &found, &a)) < 0)
		return rc;
	if (!found || !(a.flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED)))
		return 0;
	rc = nl_addr_change(nl, RTM_DELADDR, v, a.prefix_len, l.ifindex);
	if (rc < 0 && !(rc == TND_ESYS && nl_errno_absent(errno)))
		return rc == TND_ESYS ? nl_errno_code(errno) : rc;
	rc = nl_addr_change(nl, RTM_NEWADDR, v, v->prefix_len, l.ifindex);
	if (rc < 0 && !(rc == TND_ESYS && errno == EEXIST))
		return rc == TND_ESYS ? nl_errno_code(errno) : rc;
	return 0;
}

int nl_vip_del(struct nl *nl, const struct tnd_vip *v)
{
	struct nl_link l;
	int rc = nl_vip_check(v);
	if (rc < 0)
		return rc;
	if ((rc = nl_link_get(nl, v->ifname, &l)) < 0)
		return rc;
	rc = nl_addr_change(nl, RTM_DELADDR, v, v->prefix_len, l.ifindex);
	if (rc == 0)
		return 0;
	if (rc != TND_ESYS || !nl_errno_absent(errno))
		return rc == TND_ESYS ? nl_errno_code(errno) : rc;

	/* Not found with this prefix. IPv6 deletion matches the prefix
	 * length too, so a VIP whose prefix changed in the configuration
	 * would linger: remove it with the length the kernel has. */
	bool found;
	struct nl_addr a;
	if ((rc = nl_addr_find(nl, v->addr.family, l.ifindex, v->addr.bytes, &found, &a)) < 0)
		return rc;
	if (!found || a.prefix_len == v->prefix_len)
		return 0;
	rc = nl_addr_change(nl, RTM_DELADDR, v, a.prefix_len, l.ifindex);
	if (rc < 0 && !(rc == TND_ESYS && nl_errno_absent(errno)))
		return rc == TND_ESYS ? nl_errno_code(errno) : rc;
	return 0;
}

int nl_vip_present(struct nl *nl, const struct tnd_vip *v)
{
	struct nl_link l;
	bool found;
	int rc = nl_vip_check(v);
	if (rc < 0)
		return rc;
	if ((rc = nl_link_get(nl, v->ifname, &l)) < 0)
		return rc;
	if ((rc = nl_addr_find(nl, v->addr.family, l.ifindex, v->addr.bytes, &found, NULL)) < 0)
		return rc;
	return found ? 1 : 0;
}

/* ---- announcements ------------------------------------------------------ */

/* RFC 5227 section 3: an ARP Announcement is an ARP request with the
 * sender and target protocol addresses both set to the announced address
 * and a zero target hardware address, broadcast. Receivers that hold an
 * entry for the address update it to our MAC (Linux does so with default
 * settings; arp_accept only governs creating new entries). */
static int nl_announce_v4(struct nl *nl, const struct nl_link *l, const struct tnd_vip *v)
{
	if (nl->arp_fd < 0) {
		/* Protocol 0: this socket sends only and receives nothing. */
		nl->arp_fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (nl->arp_fd < 0)
			return TND_ESYS;
	}
	struct ether_arp a;
	memset(&a, 0, sizeof a);
	a.arp_hrd = htons(ARPHRD_ETHER);
	a.arp_pro = htons(ETH_P_IP);
	a.arp_hln = ETH_ALEN;
	a.arp_pln = 4;
	a.arp_op = htons(ARPOP_REQUEST);
	memcpy(a.arp_sha, l->mac, ETH_ALEN);
	memcpy(a.arp_spa, v->addr.bytes, 4);
	memcpy(a.arp_tpa, v->addr.bytes, 4); /* arp_tha stays zero */

	struct sockaddr_ll to;
	memset(&to, 0, sizeof to);
	to.sll_family = AF_PACKET;
	to.sll_protocol = htons(ETH_P_ARP);
	to.sll_ifindex = l->ifindex;
	to.sll_halen = ETH_ALEN;
	memset(to.sll_addr, 0xff, ETH_ALEN);
	ssize_t n = sendto(nl->arp_fd, &a, sizeof a, 0, (struct sockaddr *)&to, sizeof to);
	if (n != (ssize_t)sizeof a) {
		if (n >= 0)
			errno = EMSGSIZE;
		return TND_ESYS;
	}
	return 0;
}

/* Whether the interface forwards IPv6: then we are a router on it, and the
 * NA must say so. An NA with the router flag clear makes hosts drop us from
 * their default router list (RFC 4861 section 7.2.5). */
static bool nl_ipv6_forwarding(const char *ifname)
{
	char path[96], ch = '0';
	snprintf(path, sizeof path, "/proc/sys/net/ipv6/conf/%s/forwarding", ifname);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, &ch, 1);
	close(fd);
	return n == 1 && ch == '1';
}

/* RFC 4861 section 7.2.6: an unsolicited NA to all-nodes (ff02::1), hop
 * limit 255, Solicited flag clear, Override flag set, target = the VIP,
 * with a Target Link-Layer Address option. The kernel fills in the ICMPv6
 * checksum on raw IPPROTO_ICMPV6 sockets. */
static int nl_announce_v6(struct nl *nl, const struct nl_link *l, const struct tnd_vip *v)
{
	if (nl->nd_fd < 0) {
		int fd = socket(AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMPV6);
		if (fd < 0)
			return TND_ESYS;
		/* Sending only: block every ICMPv6 type from being queued. */
		struct icmp6_filter filt;
		ICMP6_FILTER_SETBLOCKALL(&filt);
		int hops = 255, loop = 0;
		if (setsockopt(fd, IPPROTO_ICMPV6, ICMP6_FILTER, &filt, sizeof filt) < 0 ||
		    setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &hops, sizeof hops) < 0 ||
		    setsockopt(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, &hops, sizeof hops) < 0 ||
		    setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, &loop, sizeof loop) < 0) {
			int e = errno;
			close(fd);
			errno = e;
			return TND_ESYS;
		}
		nl->nd_fd = fd;
	}

	/* 24 bytes of NA, then the 8-byte option (type, length in units of
	 * 8 bytes, the MAC). Built as bytes: no struct padding questions. */
	uint8_t pkt[sizeof(struct nd_neighbor_advert) + 8];
	struct nd_neighbor_advert na;
	memset(&na, 0, sizeof na);
	na.nd_na_type = ND_NEIGHBOR_ADVERT;
	na.nd_na_code = 0;
	na.nd_na_flags_reserved = ND_NA_FLAG_OVERRIDE; /* network order already */
	if (nl_ipv6_forwarding(l->name))
		na.nd_na_flags_reserved |= ND_NA_FLAG_ROUTER;
	memcpy(&na.nd_na_target, v->addr.bytes, 16);
	memcpy(pkt, &na, sizeof na);
	pkt[sizeof na] = ND_OPT_TARGET_LINKADDR;
	pkt[sizeof na + 1] = 1;
	memcpy(pkt + sizeof na + 2, l->mac, ETH_ALEN);

	struct sockaddr_in6 to;
	memset(&to, 0, sizeof to);
	to.sin6_family = AF_INET6;
	to.sin6_addr.s6_addr[0] = 0xff;
	to.sin6_addr.s6_addr[1] = 0x02;
	to.sin6_addr.s6_addr[15] = 0x01;
	to.sin6_scope_id = (uint32_t)l->ifindex;

	/* Out of this interface, from the VIP itself (an address assigned
	 * to the interface, as section 7.2.6 asks; the kernel refuses it
	 * if the VIP is not there, which is the right answer). */
	union {
		char buf[CMSG_SPACE(sizeof(struct in6_pktinfo))];
		struct cmsghdr align;
	} ctl;
	memset(&ctl, 0, sizeof ctl);
	struct iovec iov = {pkt, sizeof pkt};
	struct msghdr m = {.msg_name = &to, .msg_namelen = sizeof to, .msg_iov = &iov,
			   .msg_iovlen = 1, .msg_control = ctl.buf,
			   .msg_controllen = sizeof ctl.buf};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
	cm->cmsg_level = IPPROTO_IPV6;
	cm->cmsg_type = IPV6_PKTINFO;
	cm->cmsg_len = CMSG_LEN(sizeof(struct in6_pktinfo));
	struct in6_pktinfo pi;
	memset(&pi, 0, sizeof pi);
	memcpy(&pi.ipi6_addr, v->addr.bytes, 16);
	pi.ipi6_ifindex = (unsigned int)l->ifindex;
	memcpy(CMSG_DATA(cm), &pi, sizeof pi);

	ssize_t n = sendmsg(nl->nd_fd, &m, 0);
	if (n != (ssize_t)sizeof pkt) {
		if (n >= 0)
			errno = EMSGSIZE;
		return TND_ESYS;
	}
	return 0;
}

/* One announcement per call: the caller repeats it on its own timer
 * (RFC 5227 sends two, ANNOUNCE_INTERVAL apart). An interface without
 * Ethernet neighbour resolution (IFF_NOARP, loopback, tunnels) has no cache
 * to update: nothing is sent and 0 is returned. */
int nl_vip_announce(struct nl *nl, const struct tnd_vip *v)
{
	struct nl_link l;
	int rc = nl_vip_check(v);
	if (rc < 0)
		return rc;
	if ((rc = nl_link_get(nl, v->ifname, &l)) < 0)
		return rc;
	if ((l.flags & IFF_NOARP) || l.type != ARPHRD_ETHER || l.mac_len != ETH_ALEN)
		return 0;
	if (v->addr.family == AF_INET)
		return nl_announce_v4(nl, &l, v);
	return nl_announce_v6(nl, &l, v);
}

/* ---- life cycle ----------------------------------------------------------- */

struct nl *nl_open(void)
{
	struct nl *nl = calloc(1, sizeof(*nl));
	if (!nl)
		return NULL;
	nl->arp_fd = -1;
	nl->nd_fd = -1;
	int one = 1, e;

	nl->req = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
	if (!nl->req || mnl_socket_bind(nl->req, 0, MNL_SOCKET_AUTOPID) < 0)
		goto fail;
	nl->req_portid = mnl_socket_get_portid(nl->req);
	struct timeval tv = {NL_REPLY_TIMEOUT_MS / 1000, (NL_REPLY_TIMEOUT_MS % 1000) * 1000};
	if (setsockopt(mnl_socket_get_fd(nl->req), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0)
		goto fail;
	/* Short acks (no copy of our request) carrying the kernel's reason
	 * text. Both are optional: older kernels just ignore the request. */
	mnl_socket_setsockopt(nl->req, NETLINK_CAP_ACK, &one, sizeof one);
	mnl_socket_setsockopt(nl->req, NETLINK_EXT_ACK, &one, sizeof one);

	nl->ev = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (!nl->ev || mnl_socket_bind(nl->ev, RTMGRP_LINK, MNL_SOCKET_AUTOPID) < 0)
		goto fail;
	/* A large buffer makes overruns rare; they are still handled. The
	 * FORCE variant passes rmem_max when we are privileged. */
	int rcvbuf = NL_EVENT_RCVBUF_BYTES;
	int evfd = mnl_socket_get_fd(nl->ev);
	if (setsockopt(evfd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) < 0)
		setsockopt(evfd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
	return nl;
fail:
	e = errno;
	nl_close(nl);
	errno = e;
	return NULL;
}

void nl_close(struct nl *nl)
{
	if (!nl)
		return;
	if (nl->req)
		mnl_socket_close(nl->req);
	if (nl->ev)
		mnl_socket_close(nl->ev);
	if (nl->arp_fd >= 0)
		close(nl->arp_fd);
	if (nl->nd_fd >= 0)
		close(nl->nd_fd);
	free(nl);
}

void nl_get_stats(const struct nl *nl, struct nl_stats *out)
{
	if (!out)
		return;
	if (!nl) {
		memset(out, 0, sizeof(*out));
		return;
	}
	*out = nl->stats;
}

const char *nl_last_error(const struct nl *nl)
{
	return nl ? nl->err_msg : "";
}
