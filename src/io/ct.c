/* ct.c - conntrack driver: dump, events, injection, and the record form.
 *
 * Owns: the ctnetlink sockets (libmnl) and the conversion between
 * libnetfilter_conntrack objects and struct ctrec (layout in ct.h).
 * Messages are built and parsed by libnetfilter_conntrack
 * (nfct_nlmsg_build / nfct_nlmsg_parse); sockets, sequence numbers and
 * error handling are ours, so a dump can be stopped early, events are read
 * in bounded batches and ENOBUFS is never swallowed (which nfct_catch()
 * would do inside its own loop). The attributes carried are those that
 * conntrackd also synchronises to recreate a session (tuples, NAT, status,
 * TCP state and window scale, mark, timeout). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <libmnl/libmnl.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack_tcp.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>

#include "../core/wire.h"
#include "ct.h"

#define CT_BUF_BYTES (64 * 1024)
/* Status bits that identify what a session is and only get set once; the
 * others are kernel bookkeeping (CONFIRMED, NAT_DONE, DYING, OFFLOAD...). */
#define CT_STATUS_STABLE (IPS_SEEN_REPLY | IPS_ASSURED | IPS_SRC_NAT | IPS_DST_NAT)
/* Status bits worth injecting (ct_upsert). */
#define CT_STATUS_SYNC (IPS_EXPECTED | IPS_SEEN_REPLY | IPS_ASSURED | IPS_SRC_NAT | \
			IPS_DST_NAT)
#define CT_TCP_STATE_MAX 10 /* TCP_CONNTRACK_MAX in the kernel (states 0..9) */
#define CT_WSCALE_MAX 14   /* RFC 7323 section 2.3 */

/* One sendmsg of queued requests: bytes, and requests. */
#define CT_BATCH_BYTES (64 * 1024)
#define CT_CHUNK_MAX CT_QUEUE_MAX
/* Receive buffer of the request socket: room for an error reply to every
 * request of a chunk (each is its own small skb) with margin. */
#define CT_REQ_RCVBUF_BYTES (4 * 1024 * 1024)
#define CT_REQ_TIMEOUT_S 10

/* A queued record and where its injection stands (ct_flush). */
struct ct_pend {
	struct ctrec r;
	uint8_t step;    /* enum ct_step */
	bool skip;       /* replaced by a later UPSERT of its key */
	bool known;      /* the outcome of the step in flight is known */
	int err;         /* errno of that outcome, 0 for success */
};

struct ct {
	struct mnl_socket *req;
	uint32_t req_portid;
	uint32_t seq;
	struct mnl_socket *ev;
	uint32_t timeout_floor_s;
	struct ct_stats st;
	uint32_t n_pend;
	struct ct_pend pend[CT_QUEUE_MAX];
	uint32_t chunk[CT_CHUNK_MAX];       /* pend index per request of a chunk */
	uint16_t slot[2 * CT_QUEUE_MAX];    /* key hash -> pend index + 1 */
	uint8_t bbuf[CT_BATCH_BYTES];       /* requests of one chunk */
	uint8_t buf[CT_BUF_BYTES];          /* replies, dumps, events */
};

/* ---- the record form ---------------------------------------------------- */

/* A decoded record: what both directions of the conversion go through. */
struct ct_fields {
	uint8_t fam;   /* 4 or 6 */
	uint8_t l4;
	uint16_t zone;
	uint8_t osrc[16], odst[16];
	uint8_t ol4[4]; /* ports (network order) or ICMP type, code, id */
	bool has_repl;
	uint8_t rsrc[16], rdst[16];
	uint8_t rl4[4];
	bool has_status, has_timeout, has_mark, has_tcp_state, has_wscale, has_flags;
	uint32_t status, timeout, mark;
	uint8_t tcp_state;
	uint8_t wscale[2], flags[2];
};

static bool ct_l4_ports(uint8_t l4)
{
	return l4 == IPPROTO_TCP || l4 == IPPROTO_UDP || l4 == IPPROTO_UDPLITE;
}

static bool ct_l4_supported(uint8_t fam, uint8_t l4)
{
	if (ct_l4_ports(l4))
		return true;
	return (fam == 4 && l4 == IPPROTO_ICMP) || (fam == 6 && l4 == IPPROTO_ICMPV6);
}

static size_t ct_alen(uint8_t fam)
{
	return fam == 4 ? 4 : 16;
}

/* FNV-1a 64 then the splitmix64 finaliser, so nearby inputs spread over
 * all 64 bits (the digest XORs hashes together). */
static uint64_t ct_fnv(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static uint64_t ct_fields_hash(const struct ct_fields *f, const uint8_t *key, size_t key_len)
{
	size_t a = ct_alen(f->fam);
	uint8_t tmp[4];
	uint64_t h = 0xcbf29ce484222325ULL;
	h = ct_fnv(h, key, key_len);
	if (f->has_repl) {
		h = ct_fnv(h, f->rsrc, a);
		h = ct_fnv(h, f->rdst, a);
		h = ct_fnv(h, f->rl4, 4);
	}
	wire_put32(tmp, f->has_status ? f->status & CT_STATUS_STABLE : 0);
	h = ct_fnv(h, tmp, 4);
	wire_put32(tmp, f->has_mark ? f->mark : 0);
	h = ct_fnv(h, tmp, 4);
	tmp[0] = f->has_tcp_state ? f->tcp_state : 0xff;
	tmp[1] = f->has_wscale ? f->wscale[0] : 0xff;
	tmp[2] = f->has_wscale ? f->wscale[1] : 0xff;
	h = ct_fnv(h, tmp, 3);
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ULL;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebULL;
	h ^= h >> 31;
	return h;
}

static size_t ct_key_encode(const struct ct_fields *f, uint8_t *key)
{
	size_t a = ct_alen(f->fam), n = 0;
	key[n++] = f->fam;
	key[n++] = f->l4;
	wire_put16(key + n, f->zone);
	n += 2;
	memcpy(key + n, f->osrc, a);
	n += a;
	memcpy(key + n, f->odst, a);
	n += a;
	memcpy(key + n, f->ol4, 4);
	return n + 4;
}

static int ct_key_decode(const uint8_t *key, size_t len, struct ct_fields *f)
{
	size_t a, n = 4;
	if (len < 4)
		return TND_EINVAL;
	f->fam = key[0];
	f->l4 = key[1];
	f->zone = wire_get16(key + 2);
	if (f->fam != 4 && f->fam != 6)
		return TND_EINVAL;
	if (len != (f->fam == 4 ? CT_KEY_LEN_V4 : CT_KEY_LEN_V6))
		return TND_EINVAL;
	if (!ct_l4_supported(f->fam, f->l4))
		return TND_EINVAL;
	a = ct_alen(f->fam);
	memcpy(f->osrc, key + n, a);
	n += a;
	memcpy(f->odst, key + n, a);
	n += a;
	memcpy(f->ol4, key + n, 4);
	return 0;
}

/* Value TLVs -> fields. Unknown types are skipped; a known type that is
 * repeated or has the wrong length refuses the whole record. */
static int ct_val_decode(const uint8_t *val, size_t len, struct ct_fields *f)
{
	struct tlvr r;
	struct tlv t;
	uint32_t seen = 0;
	bool src = false, dst = false, l4 = false;
	size_t a = ct_alen(f->fam);
	int rc;

	tlvr_init(&r, val, len);
	while ((rc = tlvr_next(&r, &t)) == 1) {
		if (t.type < 32) {
			if (seen & (1u << t.type))
				return TND_EINVAL;
			seen |= 1u << t.type;
		}
		switch (t.type) {
		case CT_TLV_REPL_SRC:
		case CT_TLV_REPL_DST:
			if (t.len != a)
				return TND_EINVAL;
			memcpy(t.type == CT_TLV_REPL_SRC ? f->rsrc : f->rdst, t.val, a);
			if (t.type == CT_TLV_REPL_SRC)
				src = true;
			else
				dst = true;
			break;
		case CT_TLV_REPL_L4:
			if (t.len != 4)
				return TND_EINVAL;
			memcpy(f->rl4, t.val, 4);
			l4 = true;
			break;
		case CT_TLV_STATUS:
			if (tlv_u32(&t, &f->status) < 0)
				return TND_EINVAL;
			f->has_status = true;
			break;
		case CT_TLV_TIMEOUT:
			if (tlv_u32(&t, &f->timeout) < 0)
				return TND_EINVAL;
			f->has_timeout = true;
			break;
		case CT_TLV_MARK:
			if (tlv_u32(&t, &f->mark) < 0)
				return TND_EINVAL;
			f->has_mark = true;
			break;
		case CT_TLV_TCP_STATE:
			if (tlv_u8(&t, &f->tcp_state) < 0 || f->tcp_state >= CT_TCP_STATE_MAX)
				return TND_EINVAL;
			f->has_tcp_state = true;
			break;
		case CT_TLV_TCP_WSCALE:
			if (t.len != 2 || t.val[0] > CT_WSCALE_MAX || t.val[1] > CT_WSCALE_MAX)
				return TND_EINVAL;
			memcpy(f->wscale, t.val, 2);
			f->has_wscale = true;
			break;
		case CT_TLV_TCP_FLAGS:
			if (t.len != 2)
				return TND_EINVAL;
			memcpy(f->flags, t.val, 2);
			f->has_flags = true;
			break;
		default:
			break; /* a later version's attribute */
		}
	}
	if (rc < 0)
		return TND_EINVAL;
	/* What recreating a session cannot do without. */
	if (!src || !dst || !l4 || !f->has_status)
		return TND_EINVAL;
	if (f->l4 != IPPROTO_TCP && (f->has_tcp_state || f->has_wscale || f->has_flags))
		return TND_EINVAL;
	if (f->l4 == IPPROTO_TCP && !f->has_tcp_state)
		return TND_EINVAL;
	/* ICMP's reply type and code follow from the original's; only the id
	 * travels, so one session has one encoding. */
	if (!ct_l4_ports(f->l4) && (f->rl4[0] || f->rl4[1]))
		return TND_EINVAL;
	f->has_repl = true;
	return 0;
}

static int ct_rec_decode(const struct ctrec *r, struct ct_fields *f)
{
	memset(f, 0, sizeof(*f));
	if (r->key_len > CTREC_KEY_MAX || r->val_len > CTREC_VAL_MAX)
		return TND_EINVAL;
	if (ct_key_decode(r->key, r->key_len, f) < 0)
		return TND_EINVAL;
	if (r->op == CTREC_DELETE)
		return r->val_len == 0 ? 0 : TND_EINVAL;
	if (r->op != CTREC_UPSERT)
		return TND_EINVAL;
	return ct_val_decode(r->val, r->val_len, f);
}

int ct_rec_hash(const struct ctrec *r, uint64_t *out)
{
	struct ct_fields f;
	if (ct_rec_decode(r, &f) < 0)
		return TND_EINVAL;
	*out = ct_fields_hash(&f, r->key, r->key_len);
	return 0;
}

/* ---- kernel object <-> fields ------------------------------------------- */

static void ct_get_l4(const struct nf_conntrack *c, uint8_t l4, bool repl, uint8_t out[4])
{
	uint16_t v;
	if (ct_l4_ports(l4)) {
		/* Ports are kept in network order by the library. */
		v = nfct_get_attr_u16(c, repl ? ATTR_REPL_PORT_SRC : ATTR_ORIG_PORT_SRC);
		memcpy(out, &v, 2);
		v = nfct_get_attr_u16(c, repl ? ATTR_REPL_PORT_DST : ATTR_ORIG_PORT_DST);
		memcpy(out + 2, &v, 2);
		return;
	}
	/* ICMP: the original direction's type, code, id. The reply direction
	 * is derived by the kernel from these (echo request -> echo reply);
	 * what can differ is the id, under NAT, which the library exposes
	 * through the reply "source port" (the same union). */
	if (!repl) {
		out[0] = nfct_get_attr_u8(c, ATTR_ICMP_TYPE);
		out[1] = nfct_get_attr_u8(c, ATTR_ICMP_CODE);
		v = nfct_get_attr_u16(c, ATTR_ICMP_ID);
		memcpy(out + 2, &v, 2);
	} else {
		/* The library sets the reply id only when it was given one;
		 * a parsed reply tuple's id is not exposed, and equals the
		 * original's unless NAT changed it (which the kernel messages
		 * show: the dump and event paths read them directly). */
		out[0] = 0;
		out[1] = 0;
		v = nfct_attr_is_set(c, ATTR_REPL_PORT_SRC) ? nfct_get_attr_u16(c, ATTR_REPL_PORT_SRC)
							    : nfct_get_attr_u16(c, ATTR_ICMP_ID);
		memcpy(out + 2, &v, 2);
	}
}

static int ct_fields_from_obj(const struct nf_conntrack *c, struct ct_fields *f)
{
	uint8_t l3;
	memset(f, 0, sizeof(*f));
	if (!nfct_attr_is_set(c, ATTR_ORIG_L3PROTO) || !nfct_attr_is_set(c, ATTR_ORIG_L4PROTO))
		return TND_EINVAL;
	l3 = nfct_get_attr_u8(c, ATTR_ORIG_L3PROTO);
	f->l4 = nfct_get_attr_u8(c, ATTR_ORIG_L4PROTO);
	if (l3 == AF_INET) {
		f->fam = 4;
		if (!nfct_attr_is_set(c, ATTR_ORIG_IPV4_SRC) || !nfct_attr_is_set(c, ATTR_ORIG_IPV4_DST))
			return TND_EINVAL;
		memcpy(f->osrc, nfct_get_attr(c, ATTR_ORIG_IPV4_SRC), 4);
		memcpy(f->odst, nfct_get_attr(c, ATTR_ORIG_IPV4_DST), 4);
		if (nfct_attr_is_set(c, ATTR_REPL_IPV4_SRC) && nfct_attr_is_set(c, ATTR_REPL_IPV4_DST)) {
			memcpy(f->rsrc, nfct_get_attr(c, ATTR_REPL_IPV4_SRC), 4);
			memcpy(f->rdst, nfct_get_attr(c, ATTR_REPL_IPV4_DST), 4);
			f->has_repl = true;
		}
	} else if (l3 == AF_INET6) {
		f->fam = 6;
		if (!nfct_attr_is_set(c, ATTR_ORIG_IPV6_SRC) || !nfct_attr_is_set(c, ATTR_ORIG_IPV6_DST))
			return TND_EINVAL;
		memcpy(f->osrc, nfct_get_attr(c, ATTR_ORIG_IPV6_SRC), 16);
		memcpy(f->odst, nfct_get_attr(c, ATTR_ORIG_IPV6_DST), 16);
		if (nfct_attr_is_set(c, ATTR_REPL_IPV6_SRC) && nfct_attr_is_set(c, ATTR_REPL_IPV6_DST)) {
			memcpy(f->rsrc, nfct_get_attr(c, ATTR_REPL_IPV6_SRC), 16);
			memcpy(f->rdst, nfct_get_attr(c, ATTR_REPL_IPV6_DST), 16);
			f->has_repl = true;
		}
	} else {
		return TND_EINVAL;
	}
	if (!ct_l4_supported(f->fam, f->l4))
		return TND_EINVAL;
	if (nfct_attr_is_set(c, ATTR_ZONE))
		f->zone = nfct_get_attr_u16(c, ATTR_ZONE);
	ct_get_l4(c, f->l4, false, f->ol4);
	if (f->has_repl)
		ct_get_l4(c, f->l4, true, f->rl4);
	if (nfct_attr_is_set(c, ATTR_STATUS)) {
		f->status = nfct_get_attr_u32(c, ATTR_STATUS);
		f->has_status = true;
	}
	if (nfct_attr_is_set(c, ATTR_TIMEOUT)) {
		f->timeout = nfct_get_attr_u32(c, ATTR_TIMEOUT);
		f->has_timeout = true;
	}
	if (nfct_attr_is_set(c, ATTR_MARK)) {
		f->mark = nfct_get_attr_u32(c, ATTR_MARK);
		f->has_mark = true;
	}
	if (f->l4 == IPPROTO_TCP && nfct_attr_is_set(c, ATTR_TCP_STATE)) {
		f->tcp_state = nfct_get_attr_u8(c, ATTR_TCP_STATE);
		f->has_tcp_state = f->tcp_state < CT_TCP_STATE_MAX;
		if (nfct_attr_is_set(c, ATTR_TCP_WSCALE_ORIG) && nfct_attr_is_set(c, ATTR_TCP_WSCALE_REPL)) {
			f->wscale[0] = nfct_get_attr_u8(c, ATTR_TCP_WSCALE_ORIG);
			f->wscale[1] = nfct_get_attr_u8(c, ATTR_TCP_WSCALE_REPL);
			f->has_wscale = f->wscale[0] <= CT_WSCALE_MAX && f->wscale[1] <= CT_WSCALE_MAX;
		}
		if (nfct_attr_is_set(c, ATTR_TCP_FLAGS_ORIG) && nfct_attr_is_set(c, ATTR_TCP_FLAGS_REPL)) {
			f->flags[0] = nfct_get_attr_u8(c, ATTR_TCP_FLAGS_ORIG);
			f->flags[1] = nfct_get_attr_u8(c, ATTR_TCP_FLAGS_REPL);
			f->has_flags = true;
		}
	}
	return 0;
}

/* ---- kernel messages, parsed directly ----------------------------------------
 *
 * Dumps and events are parsed here attribute by attribute (types and
 * sizes of linux/netfilter/nfnetlink_conntrack.h) straight into struct
 * ct_fields, rather than through a libnetfilter_conntrack object per
 * entry: on a bulk of a million entries the object's allocation and
 * generic parse cost as much user time as everything else the reader
 * does. The result is the one ct_fields_from_obj gives for the same entry
 * (tests/lab/test_ct.sh compares the two over real tables). Unknown
 * attributes are skipped; a known one with a wrong size makes the message
 * malformed. */

/* Nested attributes of one level into tb[0..max], each checked for its
 * exact payload size (sz[type], 0: any). false on a malformed one. */
static bool ct_nest(const struct nlattr *nest, const struct nlattr **tb, int max,
		    const uint8_t *sz)
{
	const struct nlattr *a;
	for (int i = 0; i <= max; i++)
		tb[i] = NULL;
	mnl_attr_for_each_nested(a, nest) {
		int t = mnl_attr_get_type(a);
		if (t > max)
			continue;
		if (sz[t] && mnl_attr_get_payload_len(a) != sz[t])
			return false;
		tb[t] = a;
	}
	return true;
}

/* A tuple: addresses into src/dst (fam's length), l4 as the key lays it
 * out (ports, or ICMP type, code, id). *l4num gets the protocol. */
static int ct_nl_tuple(const struct nlattr *nest, uint8_t fam, uint8_t *src, uint8_t *dst,
		       uint8_t l4[4], uint8_t *l4num)
{
	static const uint8_t tsz[CTA_TUPLE_MAX + 1] = { 0 };
	static const uint8_t ipsz[CTA_IP_MAX + 1] = {
		[CTA_IP_V4_SRC] = 4, [CTA_IP_V4_DST] = 4,
		[CTA_IP_V6_SRC] = 16, [CTA_IP_V6_DST] = 16,
	};
	static const uint8_t psz[CTA_PROTO_MAX + 1] = {
		[CTA_PROTO_NUM] = 1, [CTA_PROTO_SRC_PORT] = 2, [CTA_PROTO_DST_PORT] = 2,
		[CTA_PROTO_ICMP_ID] = 2, [CTA_PROTO_ICMP_TYPE] = 1, [CTA_PROTO_ICMP_CODE] = 1,
		[CTA_PROTO_ICMPV6_ID] = 2, [CTA_PROTO_ICMPV6_TYPE] = 1, [CTA_PROTO_ICMPV6_CODE] = 1,
	};
	const struct nlattr *t[CTA_TUPLE_MAX + 1], *ip[CTA_IP_MAX + 1], *pr[CTA_PROTO_MAX + 1];
	int s4 = fam == 4 ? CTA_IP_V4_SRC : CTA_IP_V6_SRC;
	int d4 = fam == 4 ? CTA_IP_V4_DST : CTA_IP_V6_DST;

	if (!ct_nest(nest, t, CTA_TUPLE_MAX, tsz) || !t[CTA_TUPLE_IP] || !t[CTA_TUPLE_PROTO])
		return TND_EINVAL;
	if (!ct_nest(t[CTA_TUPLE_IP], ip, CTA_IP_MAX, ipsz) ||
	    !ct_nest(t[CTA_TUPLE_PROTO], pr, CTA_PROTO_MAX, psz))
		return TND_EINVAL;
	if (!ip[s4] || !ip[d4] || !pr[CTA_PROTO_NUM])
		return TND_EINVAL;
	memcpy(src, mnl_attr_get_payload(ip[s4]), ct_alen(fam));
	memcpy(dst, mnl_attr_get_payload(ip[d4]), ct_alen(fam));
	*l4num = mnl_attr_get_u8(pr[CTA_PROTO_NUM]);
	memset(l4, 0, 4);
	if (ct_l4_ports(*l4num)) {
		if (pr[CTA_PROTO_SRC_PORT])
			memcpy(l4, mnl_attr_get_payload(pr[CTA_PROTO_SRC_PORT]), 2);
		if (pr[CTA_PROTO_DST_PORT])
			memcpy(l4 + 2, mnl_attr_get_payload(pr[CTA_PROTO_DST_PORT]), 2);
	} else {
		bool v6 = *l4num == IPPROTO_ICMPV6;
		const struct nlattr *ty = pr[v6 ? CTA_PROTO_ICMPV6_TYPE : CTA_PROTO_ICMP_TYPE];
		const struct nlattr *co = pr[v6 ? CTA_PROTO_ICMPV6_CODE : CTA_PROTO_ICMP_CODE];
		const struct nlattr *id = pr[v6 ? CTA_PROTO_ICMPV6_ID : CTA_PROTO_ICMP_ID];
		if (ty)
			l4[0] = mnl_attr_get_u8(ty);
		if (co)
			l4[1] = mnl_attr_get_u8(co);
		if (id)
			memcpy(l4 + 2, mnl_attr_get_payload(id), 2);
	}
	return 0;
}

/* A ctnetlink NEW/DELETE message into fields. TND_EINVAL for a malformed
 * message, TND_ENOENT for an entry of a family or protocol not carried. */
static int ct_nl_fields(const struct nlmsghdr *nlh, struct ct_fields *f)
{
	static const uint8_t sz[CTA_MAX + 1] = {
		[CTA_STATUS] = 4, [CTA_TIMEOUT] = 4, [CTA_MARK] = 4, [CTA_ZONE] = 2,
	};
	static const uint8_t tcpsz[CTA_PROTOINFO_TCP_MAX + 1] = {
		[CTA_PROTOINFO_TCP_STATE] = 1, [CTA_PROTOINFO_TCP_WSCALE_ORIGINAL] = 1,
		[CTA_PROTOINFO_TCP_WSCALE_REPLY] = 1, [CTA_PROTOINFO_TCP_FLAGS_ORIGINAL] = 2,
		[CTA_PROTOINFO_TCP_FLAGS_REPLY] = 2,
	};
	static const uint8_t pisz[CTA_PROTOINFO_MAX + 1] = { 0 };
	const struct nlattr *tb[CTA_MAX + 1] = { 0 }, *a;
	const struct nfgenmsg *nfh;
	uint8_t rl4num;

	memset(f, 0, sizeof(*f));
	if (nlh->nlmsg_len < NLMSG_LENGTH(sizeof(*nfh)))
		return TND_EINVAL;
	nfh = mnl_nlmsg_get_payload(nlh);
	if (nfh->nfgen_family == AF_INET)
		f->fam = 4;
	else if (nfh->nfgen_family == AF_INET6)
		f->fam = 6;
	else
		return TND_ENOENT;
	mnl_attr_for_each(a, nlh, sizeof(*nfh)) {
		int t = mnl_attr_get_type(a);
		if (t > CTA_MAX)
			continue;
		if (sz[t] && mnl_attr_get_payload_len(a) != sz[t])
			return TND_EINVAL;
		tb[t] = a;
	}
	if (!tb[CTA_TUPLE_ORIG])
		return TND_EINVAL;
	if (ct_nl_tuple(tb[CTA_TUPLE_ORIG], f->fam, f->osrc, f->odst, f->ol4, &f->l4) < 0)
		return TND_EINVAL;
	if (!ct_l4_supported(f->fam, f->l4))
		return TND_ENOENT;
	if (tb[CTA_TUPLE_REPLY]) {
		if (ct_nl_tuple(tb[CTA_TUPLE_REPLY], f->fam, f->rsrc, f->rdst, f->rl4, &rl4num) < 0)
			return TND_EINVAL;
		f->has_repl = true;
		if (!ct_l4_ports(f->l4)) { /* as the key: only the id travels */
			f->rl4[0] = 0;
			f->rl4[1] = 0;
		}
	}
	if (tb[CTA_ZONE])
		f->zone = ntohs(mnl_attr_get_u16(tb[CTA_ZONE]));
	if (tb[CTA_STATUS]) {
		f->status = ntohl(mnl_attr_get_u32(tb[CTA_STATUS]));
		f->has_status = true;
	}
	if (tb[CTA_TIMEOUT]) {
		f->timeout = ntohl(mnl_attr_get_u32(tb[CTA_TIMEOUT]));
		f->has_timeout = true;
	}
	if (tb[CTA_MARK]) {
		f->mark = ntohl(mnl_attr_get_u32(tb[CTA_MARK]));
		f->has_mark = true;
	}
	if (f->l4 == IPPROTO_TCP && tb[CTA_PROTOINFO]) {
		const struct nlattr *pi[CTA_PROTOINFO_MAX + 1], *tcp[CTA_PROTOINFO_TCP_MAX + 1];
		if (!ct_nest(tb[CTA_PROTOINFO], pi, CTA_PROTOINFO_MAX, pisz))
			return TND_EINVAL;
		if (pi[CTA_PROTOINFO_TCP]) {
			if (!ct_nest(pi[CTA_PROTOINFO_TCP], tcp, CTA_PROTOINFO_TCP_MAX, tcpsz))
				return TND_EINVAL;
			if (tcp[CTA_PROTOINFO_TCP_STATE]) {
				f->tcp_state = mnl_attr_get_u8(tcp[CTA_PROTOINFO_TCP_STATE]);
				f->has_tcp_state = f->tcp_state < CT_TCP_STATE_MAX;
			}
			if (tcp[CTA_PROTOINFO_TCP_WSCALE_ORIGINAL] && tcp[CTA_PROTOINFO_TCP_WSCALE_REPLY]) {
				f->wscale[0] = mnl_attr_get_u8(tcp[CTA_PROTOINFO_TCP_WSCALE_ORIGINAL]);
				f->wscale[1] = mnl_attr_get_u8(tcp[CTA_PROTOINFO_TCP_WSCALE_REPLY]);
				f->has_wscale = f->wscale[0] <= CT_WSCALE_MAX &&
						f->wscale[1] <= CT_WSCALE_MAX;
			}
			if (tcp[CTA_PROTOINFO_TCP_FLAGS_ORIGINAL] && tcp[CTA_PROTOINFO_TCP_FLAGS_REPLY]) {
				/* struct nf_ct_tcp_flags: flags, then mask */
				f->flags[0] = *(const uint8_t *)mnl_attr_get_payload(
					tcp[CTA_PROTOINFO_TCP_FLAGS_ORIGINAL]);
				f->flags[1] = *(const uint8_t *)mnl_attr_get_payload(
					tcp[CTA_PROTOINFO_TCP_FLAGS_REPLY]);
				f->has_flags = true;
			}
		}
	}
	return 0;
}

static int ct_fields_to_rec(struct ct_fields *f0, uint8_t op, struct ctrec *out);

/* A kernel message to a record. TND_EINVAL malformed, TND_ENOENT
 * unsupported or not recreatable. */
static int ct_nl_to_rec(const struct nlmsghdr *nlh, uint8_t op, struct ctrec *out)
{
	struct ct_fields f;
	int rc = ct_nl_fields(nlh, &f);
	if (rc < 0)
		return rc;
	return ct_fields_to_rec(&f, op, out) < 0 ? TND_ENOENT : 0;
}

int ct_msg_to_rec(const void *msg, size_t len, uint8_t op, struct ctrec *out)
{
	const struct nlmsghdr *nlh = msg;
	/* libmnl's mnl_nlmsg_ok compares the length as a signed int, and its
	 * attribute walk runs to the aligned end: both must fit. */
	if ((op != CTREC_UPSERT && op != CTREC_DELETE) || len < sizeof(*nlh) ||
	    nlh->nlmsg_len < sizeof(*nlh) || nlh->nlmsg_len > len ||
	    (((uint64_t)nlh->nlmsg_len + 3) & ~3ULL) > len) /* not NLMSG_ALIGN: it wraps */
		return TND_EINVAL;
	return ct_nl_to_rec(nlh, op, out);
}

int ct_to_rec(const struct nf_conntrack *c, uint8_t op, struct ctrec *out)
{
	struct ct_fields f;
	if (ct_fields_from_obj(c, &f) < 0)
		return TND_EINVAL;
	return ct_fields_to_rec(&f, op, out);
}

static int ct_fields_to_rec(struct ct_fields *f0, uint8_t op, struct ctrec *out)
{
	struct ct_fields f = *f0;
	struct tlvw w;
	size_t len;
	uint8_t l4[4];

	if (op != CTREC_UPSERT && op != CTREC_DELETE)
		return TND_EINVAL;
	memset(out, 0, sizeof(*out));
	out->op = op;
	out->key_len = (uint8_t)ct_key_encode(&f, out->key);
	if (op == CTREC_UPSERT) {
		/* An entry without its reply tuple or status cannot be
		 * recreated; the kernel always sends both in dumps and events
		 * other than DESTROY. */
		if (!f.has_repl || !f.has_status)
			return TND_EINVAL;
		if (f.l4 == IPPROTO_TCP && !f.has_tcp_state)
			return TND_EINVAL;
		tlvw_init(&w, out->val, CTREC_VAL_MAX);
		tlvw_put(&w, CT_TLV_REPL_SRC, f.rsrc, (uint16_t)ct_alen(f.fam));
		tlvw_put(&w, CT_TLV_REPL_DST, f.rdst, (uint16_t)ct_alen(f.fam));
		memcpy(l4, f.rl4, 4);
		tlvw_put(&w, CT_TLV_REPL_L4, l4, 4);
		tlvw_u32(&w, CT_TLV_STATUS, f.status);
		if (f.has_timeout)
			tlvw_u32(&w, CT_TLV_TIMEOUT, f.timeout);
		if (f.has_mark)
			tlvw_u32(&w, CT_TLV_MARK, f.mark);
		if (f.has_tcp_state)
			tlvw_u8(&w, CT_TLV_TCP_STATE, f.tcp_state);
		if (f.has_wscale)
			tlvw_put(&w, CT_TLV_TCP_WSCALE, f.wscale, 2);
		if (f.has_flags)
			tlvw_put(&w, CT_TLV_TCP_FLAGS, f.flags, 2);
		if (tlvw_finish(&w, &len) < 0)
			return TND_ENOSPC; /* cannot happen: the largest value is ~90 bytes */
		out->val_len = (uint8_t)len;
	}
	if (op == CTREC_DELETE) {
		/* A deletion carries the key only: its hash is the key's, as
		 * ct_rec_hash computes it from the record, whatever else the
		 * kernel message said. */
		struct ct_fields k = { .fam = f.fam, .l4 = f.l4, .zone = f.zone };
		f = k;
	}
	out->stable_hash = ct_fields_hash(&f, out->key, out->key_len);
	return 0;
}

static void ct_set_addr(struct nf_conntrack *c, uint8_t fam, enum nf_conntrack_attr a4,
			enum nf_conntrack_attr a6, const uint8_t *addr)
{
	if (fam == 4)
		nfct_set_attr(c, a4, addr);
	else
		nfct_set_attr(c, a6, addr);
}

static void ct_fields_to_obj(const struct ct_fields *f, struct nf_conntrack *c, bool upsert)
{
	uint8_t l3 = f->fam == 4 ? AF_INET : AF_INET6;
	uint16_t v;

	nfct_set_attr_u8(c, ATTR_ORIG_L3PROTO, l3);
	nfct_set_attr_u8(c, ATTR_ORIG_L4PROTO, f->l4);
	ct_set_addr(c, f->fam, ATTR_ORIG_IPV4_SRC, ATTR_ORIG_IPV6_SRC, f->osrc);
	ct_set_addr(c, f->fam, ATTR_ORIG_IPV4_DST, ATTR_ORIG_IPV6_DST, f->odst);
	if (ct_l4_ports(f->l4)) {
		memcpy(&v, f->ol4, 2);
		nfct_set_attr_u16(c, ATTR_ORIG_PORT_SRC, v);
		memcpy(&v, f->ol4 + 2, 2);
		nfct_set_attr_u16(c, ATTR_ORIG_PORT_DST, v);
	} else {
		nfct_set_attr_u8(c, ATTR_ICMP_TYPE, f->ol4[0]);
		nfct_set_attr_u8(c, ATTR_ICMP_CODE, f->ol4[1]);
		memcpy(&v, f->ol4 + 2, 2);
		nfct_set_attr_u16(c, ATTR_ICMP_ID, v);
	}
	nfct_set_attr_u16(c, ATTR_ZONE, f->zone);
	if (!upsert)
		return;

	/* The reply tuple: for ICMP the library derives type and code from the
	 * original (echo request -> echo reply), then the id is set. */
	if (!ct_l4_ports(f->l4))
		nfct_setobjopt(c, NFCT_SOPT_SETUP_REPLY);
	nfct_set_attr_u8(c, ATTR_REPL_L3PROTO, l3);
	nfct_set_attr_u8(c, ATTR_REPL_L4PROTO, f->l4);
	ct_set_addr(c, f->fam, ATTR_REPL_IPV4_SRC, ATTR_REPL_IPV6_SRC, f->rsrc);
	ct_set_addr(c, f->fam, ATTR_REPL_IPV4_DST, ATTR_REPL_IPV6_DST, f->rdst);
	if (ct_l4_ports(f->l4)) {
		memcpy(&v, f->rl4, 2);
		nfct_set_attr_u16(c, ATTR_REPL_PORT_SRC, v);
		memcpy(&v, f->rl4 + 2, 2);
		nfct_set_attr_u16(c, ATTR_REPL_PORT_DST, v);
	} else {
		memcpy(&v, f->rl4 + 2, 2);
		nfct_set_attr_u16(c, ATTR_REPL_PORT_SRC, v);
	}
	nfct_set_attr_u32(c, ATTR_STATUS, f->status);
	if (f->has_timeout)
		nfct_set_attr_u32(c, ATTR_TIMEOUT, f->timeout);
	if (f->has_mark)
		nfct_set_attr_u32(c, ATTR_MARK, f->mark);
	if (f->l4 == IPPROTO_TCP) {
		nfct_set_attr_u8(c, ATTR_TCP_STATE, f->tcp_state);
		if (f->has_wscale) {
			nfct_set_attr_u8(c, ATTR_TCP_WSCALE_ORIG, f->wscale[0]);
			nfct_set_attr_u8(c, ATTR_TCP_WSCALE_REPL, f->wscale[1]);
		}
		if (f->has_flags) {
			nfct_set_attr_u8(c, ATTR_TCP_FLAGS_ORIG, f->flags[0]);
			nfct_set_attr_u8(c, ATTR_TCP_MASK_ORIG, 0xff);
			nfct_set_attr_u8(c, ATTR_TCP_FLAGS_REPL, f->flags[1]);
			nfct_set_attr_u8(c, ATTR_TCP_MASK_REPL, 0xff);
		}
	}
	/* NAT: the kernel creates the binding from a NAT range, not from the
	 * reply tuple alone (ctnetlink_setup_nat), so name the exact address
	 * and port the reply tuple implies. */
	if (f->status & IPS_SRC_NAT) {
		ct_set_addr(c, f->fam, ATTR_SNAT_IPV4, ATTR_SNAT_IPV6, f->rdst);
		/* The translated source port is the reply's destination
		 * port; for ICMP the translated id is the reply's id. */
		memcpy(&v, f->rl4 + 2, 2);
		nfct_set_attr_u16(c, ATTR_SNAT_PORT, v);
	}
	if (f->status & IPS_DST_NAT) {
		ct_set_addr(c, f->fam, ATTR_DNAT_IPV4, ATTR_DNAT_IPV6, f->rsrc);
		if (ct_l4_ports(f->l4)) {
			memcpy(&v, f->rl4, 2);
			nfct_set_attr_u16(c, ATTR_DNAT_PORT, v);
		}
	}
}

int ct_from_rec(const struct ctrec *r, struct nf_conntrack *c)
{
	struct ct_fields f;
	if (ct_rec_decode(r, &f) < 0)
		return TND_EINVAL;
	ct_fields_to_obj(&f, c, r->op == CTREC_UPSERT);
	return 0;
}

/* ---- sockets ------------------------------------------------------------ */

/* The request socket: error replies without the request echoed
 * (NETLINK_CAP_ACK: a chunk's worth of errors stays small) and a receive
 * buffer that holds them. NULL with errno. */
static struct mnl_socket *ct_req_socket(void)
{
	struct mnl_socket *s = mnl_socket_open(NETLINK_NETFILTER);
	int one = 1, sz = CT_REQ_RCVBUF_BYTES, fd;
	if (!s)
		return NULL;
	fd = mnl_socket_get_fd(s);
	(void)setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
	/* The kernel answers every request; should an answer never come (a
	 * request it stopped parsing at), a flush fails after this instead
	 * of holding its thread forever. Dumps are produced inside recv. */
	struct timeval tv = { .tv_sec = CT_REQ_TIMEOUT_S };
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz)) < 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	if (mnl_socket_bind(s, 0, MNL_SOCKET_AUTOPID) < 0) {
		int e = errno;
		mnl_socket_close(s);
		errno = e;
		return NULL;
	}
	return s;
}

struct ct *ct_open(void)
{
	struct ct *ct = calloc(1, sizeof(*ct));
	if (!ct)
		return NULL;
	ct->req = ct_req_socket();
	if (!ct->req) {
		int e = errno;
		free(ct);
		errno = e;
		return NULL;
	}
	ct->req_portid = mnl_socket_get_portid(ct->req);
	ct->seq = (uint32_t)time(NULL);
	return ct;
}

void ct_close(struct ct *ct)
{
	if (!ct)
		return;
	if (ct->req)
		mnl_socket_close(ct->req);
	if (ct->ev)
		mnl_socket_close(ct->ev);
	free(ct);
}

void ct_set_timeout_floor(struct ct *ct, uint32_t seconds)
{
	ct->timeout_floor_s = seconds;
}

void ct_get_stats(const struct ct *ct, struct ct_stats *out)
{
	*out = ct->st;
}

/* A dump stopped early leaves the rest of its reply queued on the
 * socket; replace the socket rather than read megabytes to drain it. */
static int ct_req_reopen(struct ct *ct)
{
	struct mnl_socket *s = ct_req_socket();
	if (!s)
		return TND_ESYS;
	mnl_socket_close(ct->req);
	ct->req = s;
	ct->req_portid = mnl_socket_get_portid(s);
	return 0;
}

static struct nlmsghdr *ct_msg_start(struct ct *ct, uint8_t msg, uint16_t flags, uint8_t family)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(ct->buf);
	struct nfgenmsg *nfh;
	nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | msg;
	nlh->nlmsg_flags = NLM_F_REQUEST | flags;
	nlh->nlmsg_seq = ++ct->seq;
	nfh = mnl_nlmsg_put_extra_header(nlh, sizeof(*nfh));
	nfh->nfgen_family = family;
	nfh->version = NFNETLINK_V0;
	nfh->res_id = 0;
	return nlh;
}

/* ---- dump --------------------------------------------------------------- */

struct ct_dump_ctx {
	struct ct *ct;
	ct_rec_cb cb;
	void *arg;
	bool stopped;
};

/* One dumped entry. */
static int ct_dump_msg(const struct nlmsghdr *nlh, void *data)
{
	struct ct_dump_ctx *d = data;
	struct ctrec r;
	int rc = ct_nl_to_rec(nlh, CTREC_UPSERT, &r);
	if (rc == TND_EINVAL) {
		d->ct->st.malformed++;
		return MNL_CB_OK;
	}
	if (rc < 0) {
		d->ct->st.unsupported++;
		return MNL_CB_OK;
	}
	d->ct->st.dumped++;
	if (d->cb(&r, d->arg) != 0) {
		d->stopped = true;
		return MNL_CB_STOP;
	}
	return MNL_CB_OK;
}

int ct_dump(struct ct *ct, ct_rec_cb cb, void *arg)
{
	struct ct_dump_ctx d = {.ct = ct, .cb = cb, .arg = arg};
	struct nlmsghdr *nlh;
	uint32_t seq;
	int r;

	nlh = ct_msg_start(ct, IPCTNL_MSG_CT_GET, NLM_F_DUMP, AF_UNSPEC);
	seq = nlh->nlmsg_seq;
	if (mnl_socket_sendto(ct->req, nlh, nlh->nlmsg_len) < 0)
		return TND_ESYS;
	do {
		ssize_t n = mnl_socket_recvfrom(ct->req, ct->buf, sizeof(ct->buf));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = MNL_CB_ERROR;
			break;
		}
		/* Checks sequence and port id, handles DONE and ERROR. */
		r = mnl_cb_run(ct->buf, (size_t)n, seq, ct->req_portid, ct_dump_msg, &d);
	} while (r == MNL_CB_OK);

	if (d.stopped) {
		int e = ct_req_reopen(ct);
		return e < 0 ? e : 1;
	}
	if (r == MNL_CB_ERROR) {
		int e = errno;
		/* The rest of a failed dump may still be queued. */
		(void)ct_req_reopen(ct);
		errno = e;
		return TND_ESYS;
	}
	return 0;
}

/* ---- requests: batched injection ----------------------------------------
 *
 * Records are queued (ct_queue) and sent to the kernel many requests per
 * sendmsg (ct_flush): the kernel handles a datagram's requests one after
 * the other in the sender's context (netlink_rcv_skb), answers an error
 * for each that fails and, for the last one only, which asks for it
 * (NLM_F_ACK), an acknowledgement. So once the acknowledgement of the last
 * request is read, every request without an error reply succeeded. This
 * costs one system call pair per chunk instead of per record (the
 * kernel's own work per record is the same), which makes a bulk several
 * times faster than a request-and-wait per record.
 *
 * Each record goes through the steps ct_apply always took: an UPSERT is
 * created (EXCL); if it exists, updated in place without NAT attributes
 * (the kernel refuses to change a binding); if the update is refused,
 * replaced (deleted, created). A DELETE is one step. A step that needs a
 * next one waits for the next round, so a flush takes at most four rounds
 * of chunks. Order is kept because a queued UPSERT is dropped when a later
 * UPSERT of the same key is queued (the later one carries the whole
 * state), so a record with a retry never has a later record of its key in
 * the same flush; a DELETE followed by an UPSERT of one key both go, in
 * order (a recreated session may carry a new NAT binding). */

enum ct_step { CS_CREATE, CS_UPDATE, CS_REPL_DEL, CS_REPL_NEW, CS_DELETE, CS_DONE };

/* Room left in the chunk buffer below which a chunk is sent: more than the
 * largest request (an IPv6 entry with NAT is about 300 bytes). */
#define CT_MSG_ROOM 1024
#define CT_ROUNDS_MAX 8

static int ct_req_reopen(struct ct *ct);
int ct_flush(struct ct *ct);

static uint64_t ct_key_hash(const struct ctrec *r)
{
	return ct_fnv(0xcbf29ce484222325ULL, r->key, r->key_len);
}

int ct_queue(struct ct *ct, const struct ctrec *r)
{
	struct ct_fields f;
	uint32_t mask = 2 * CT_QUEUE_MAX - 1, h;
	struct ct_pend *p;
	int rc = 0;

	if (ct_rec_decode(r, &f) < 0) {
		ct->st.rec_invalid++;
		return TND_EINVAL;
	}
	if (ct->n_pend >= CT_QUEUE_MAX)
		rc = ct_flush(ct);
	/* Find an earlier record of this key in the queue. */
	for (h = (uint32_t)ct_key_hash(r) & mask; ct->slot[h]; h = (h + 1) & mask) {
		struct ct_pend *q = &ct->pend[ct->slot[h] - 1];
		if (q->r.key_len == r->key_len && !memcmp(q->r.key, r->key, r->key_len)) {
			if (q->r.op == CTREC_UPSERT && !q->skip && r->op == CTREC_UPSERT) {
				q->skip = true;
				ct->st.coalesced++;
			}
			break;
		}
	}
	p = &ct->pend[ct->n_pend];
	p->r = *r;
	p->step = r->op == CTREC_UPSERT ? CS_CREATE : CS_DELETE;
	p->skip = false;
	p->known = false;
	p->err = 0;
	ct->slot[h] = (uint16_t)(++ct->n_pend);
	return rc;
}

size_t ct_queued(const struct ct *ct)
{
	return ct->n_pend;
}

/* The attributes an injected UPSERT carries beyond the record's. */
static void ct_prepare_upsert(const struct ct *ct, struct nf_conntrack *c)
{
	/* Only the bits that describe the session; CONFIRMED, NAT_DONE, DYING
	 * and the like belong to the kernel that owns the entry. */
	nfct_set_attr_u32(c, ATTR_STATUS, nfct_get_attr_u32(c, ATTR_STATUS) & CT_STATUS_SYNC);
	if (nfct_get_attr_u8(c, ATTR_ORIG_L4PROTO) == IPPROTO_TCP) {
		/* The window history (td_end, td_maxwin...) does not travel;
		 * being liberal keeps the kernel from dropping the flow's
		 * first packets after a takeover as out of window. SACK_PERM
		 * and WINDOW_SCALE keep the options the endpoints agreed on. */
		uint8_t fl = IP_CT_TCP_FLAG_BE_LIBERAL | IP_CT_TCP_FLAG_SACK_PERM;
		if (nfct_attr_is_set(c, ATTR_TCP_WSCALE_ORIG))
			fl |= IP_CT_TCP_FLAG_WINDOW_SCALE;
		nfct_set_attr_u8(c, ATTR_TCP_FLAGS_ORIG, fl);
		nfct_set_attr_u8(c, ATTR_TCP_MASK_ORIG, fl);
		nfct_set_attr_u8(c, ATTR_TCP_FLAGS_REPL, fl);
		nfct_set_attr_u8(c, ATTR_TCP_MASK_REPL, fl);
	}
	if (ct->timeout_floor_s && (!nfct_attr_is_set(c, ATTR_TIMEOUT) ||
				    nfct_get_attr_u32(c, ATTR_TIMEOUT) < ct->timeout_floor_s))
		nfct_set_attr_u32(c, ATTR_TIMEOUT, ct->timeout_floor_s);
	/* With NAT, create from the untranslated reply tuple plus the NAT
	 * range: the kernel marks the entry SRC_NAT/DST_NAT (the bits that
	 * make it translate packets, which a request cannot set) only when
	 * nf_nat_setup_info changes the reply tuple itself. */
	if (nfct_get_attr_u32(c, ATTR_STATUS) & (IPS_SRC_NAT | IPS_DST_NAT))
		nfct_setobjopt(c, NFCT_SOPT_SETUP_REPLY);
}

static void ct_unset_nat(struct nf_conntrack *c)
{
	static const enum nf_conntrack_attr nat[] = {
		ATTR_SNAT_IPV4, ATTR_DNAT_IPV4, ATTR_SNAT_IPV6,
		ATTR_DNAT_IPV6, ATTR_SNAT_PORT, ATTR_DNAT_PORT,
	};
	for (size_t i = 0; i < sizeof(nat) / sizeof(nat[0]); i++)
		nfct_attr_unset(c, nat[i]);
}

/* Append entry p's next request at ct->bbuf + *off with sequence seq.
 * false (entry finished and counted) when it cannot be built. */
static bool ct_build(struct ct *ct, struct ct_pend *p, uint32_t seq, size_t *off)
{
	struct nf_conntrack *c = nfct_new();
	struct nlmsghdr *nlh;
	struct nfgenmsg *nfh;
	uint8_t msg = IPCTNL_MSG_CT_NEW;
	uint16_t flags = 0;

	if (!c || ct_from_rec(&p->r, c) < 0) { /* checked by ct_queue: no memory */
		if (c)
			nfct_destroy(c);
		p->step = CS_DONE;
		p->err = c ? EINVAL : ENOMEM;
		ct->st.apply_errors++;
		return false;
	}
	switch (p->step) {
	case CS_CREATE:
	case CS_REPL_NEW:
		ct_prepare_upsert(ct, c);
		flags = NLM_F_CREATE | NLM_F_EXCL;
		break;
	case CS_UPDATE:
		ct_prepare_upsert(ct, c);
		ct_unset_nat(c);
		break;
	default: /* CS_REPL_DEL, CS_DELETE */
		msg = IPCTNL_MSG_CT_DELETE;
		break;
	}
	nlh = mnl_nlmsg_put_header(ct->bbuf + *off);
	nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | msg;
	nlh->nlmsg_flags = NLM_F_REQUEST | flags;
	nlh->nlmsg_seq = seq;
	nfh = mnl_nlmsg_put_extra_header(nlh, sizeof(*nfh));
	nfh->nfgen_family = nfct_get_attr_u8(c, ATTR_ORIG_L3PROTO);
	nfh->version = NFNETLINK_V0;
	nfh->res_id = 0;
	if (nfct_nlmsg_build(nlh, c) < 0) {
		nfct_destroy(c);
		ct->st.apply_errors++;
		p->step = CS_DONE;
		p->err = EINVAL;
		return false;
	}
	nfct_destroy(c);
	*off += NLMSG_ALIGN(nlh->nlmsg_len);
	return true;
}

/* Send the chunk in ct->bbuf[0..len): requests for entries ct->chunk[0..n)
 * with sequence numbers base..base+n-1, the last one asking for an
 * acknowledgement. Each entry with an error reply gets known and err;
 * when the acknowledgement has come, every other entry succeeded (known,
 * err 0). 0; TND_ENOSPC when the socket overran and replies were lost
 * (entries without a reply stay !known); TND_ESYS. */
static int ct_exchange(struct ct *ct, size_t len, uint32_t base, const uint32_t *idx,
		       uint32_t n)
{
	uint32_t last = base + n - 1;
	bool done = false;

	ct->st.batches++;
	if (mnl_socket_sendto(ct->req, ct->bbuf, len) < 0)
		return TND_ESYS;
	while (!done) {
		ssize_t got = recv(mnl_socket_get_fd(ct->req), ct->buf, sizeof(ct->buf), 0);
		const struct nlmsghdr *m = (const struct nlmsghdr *)ct->buf;
		int left = (int)got;
		if (got < 0) {
			if (errno == EINTR)
				continue;
			return errno == ENOBUFS ? TND_ENOSPC : TND_ESYS;
		}
		for (; mnl_nlmsg_ok(m, left); m = mnl_nlmsg_next(m, &left)) {
			const struct nlmsgerr *e;
			uint32_t seq = m->nlmsg_seq;
			/* Replies to an earlier, abandoned exchange are stale. */
			if (m->nlmsg_type != NLMSG_ERROR || m->nlmsg_pid != ct->req_portid ||
			    seq - base > last - base)
				continue;
			if (m->nlmsg_len < NLMSG_LENGTH(sizeof(*e)))
				continue;
			e = mnl_nlmsg_get_payload(m);
			ct->pend[idx[seq - base]].known = true;
			ct->pend[idx[seq - base]].err = -e->error;
			if (seq == last)
				done = true;
		}
	}
	for (uint32_t i = 0; i < n; i++)
		if (!ct->pend[idx[i]].known) {
			ct->pend[idx[i]].known = true;
			ct->pend[idx[i]].err = 0;
		}
	return 0;
}

/* The outcome of entry p's step: its next step, counted. */
static void ct_advance(struct ct *ct, struct ct_pend *p)
{
	int e = p->err;
	enum ct_step next = CS_DONE;

	p->known = false;
	switch (p->step) {
	case CS_CREATE:
		if (!e)
			ct->st.created++;
		else if (e == EEXIST)
			next = CS_UPDATE;
		break;
	case CS_UPDATE:
		if (!e)
			ct->st.updated++;
		else /* refused (a status bit that cannot be cleared, a
		      * different NAT binding): replace; gone meanwhile:
		      * create again */
			next = e == ENOENT ? CS_REPL_NEW : CS_REPL_DEL;
		break;
	case CS_REPL_DEL:
		if (!e || e == ENOENT)
			next = CS_REPL_NEW;
		break;
	case CS_REPL_NEW:
		if (!e)
			ct->st.replaced++;
		break;
	case CS_DELETE:
		if (!e) {
			ct->st.deleted++;
		} else if (e == ENOENT) {
			ct->st.delete_absent++;
			e = 0;
		}
		break;
	default:
		break;
	}
	p->step = (uint8_t)next;
	if (next != CS_DONE)
		e = 0;
	else if (e)
		ct->st.apply_errors++;
	p->err = e;
}

/* Send one chunk of entries from index *from on (those whose step is not
 * done), at most CT_CHUNK_MAX requests. Returns 0 when nothing is left
 * from *from on, 1 after a chunk, <0 on a socket error. */
static int ct_send_chunk(struct ct *ct, uint32_t *from)
{
	size_t off = 0;
	uint32_t n = 0, base = ct->seq + 1, i;
	struct nlmsghdr *last = NULL;
	int rc;

	for (i = *from; i < ct->n_pend && n < CT_CHUNK_MAX; i++) {
		struct ct_pend *p = &ct->pend[i];
		if (p->skip || p->step == CS_DONE)
			continue;
		if (CT_BATCH_BYTES - off < CT_MSG_ROOM)
			break;
		size_t at = off;
		if (!ct_build(ct, p, base + n, &off))
			continue;
		last = (struct nlmsghdr *)(ct->bbuf + at);
		ct->chunk[n++] = i;
	}
	*from = i;
	if (!n)
		return 0;
	last->nlmsg_flags |= NLM_F_ACK;
	ct->seq = base + n - 1;
	rc = ct_exchange(ct, off, base, ct->chunk, n);
	if (rc == TND_ESYS) {
		int e = errno;
		for (uint32_t k = 0; k < n; k++) {
			ct->pend[ct->chunk[k]].step = CS_DONE;
			ct->pend[ct->chunk[k]].err = e;
			ct->st.apply_errors++;
		}
		(void)ct_req_reopen(ct); /* replies may still come */
		errno = e;
		return rc;
	}
	if (rc == TND_ENOSPC) {
		/* Replies were lost: which requests without one failed is
		 * unknown. Redo those in order, one request at a time, from
		 * their current step: every step is idempotent (a create that
		 * went through meets EEXIST and updates, a delete ENOENT),
		 * and order keeps a later record of a key after an earlier. */
		(void)ct_req_reopen(ct);
		for (uint32_t k = 0; k < n; k++) {
			struct ct_pend *p = &ct->pend[ct->chunk[k]];
			if (p->known) {
				ct_advance(ct, p);
				continue;
			}
			for (int step = 0; step < CT_ROUNDS_MAX && p->step != CS_DONE; step++) {
				size_t o = 0;
				uint32_t seq = ++ct->seq;
				if (!ct_build(ct, p, seq, &o))
					break;
				((struct nlmsghdr *)ct->bbuf)->nlmsg_flags |= NLM_F_ACK;
				if (ct_exchange(ct, o, seq, &ct->chunk[k], 1) < 0) {
					p->step = CS_DONE;
					p->err = errno ? errno : EIO;
					ct->st.apply_errors++;
					(void)ct_req_reopen(ct);
					break;
				}
				ct_advance(ct, p);
			}
		}
		return 1;
	}
	for (uint32_t k = 0; k < n; k++)
		ct_advance(ct, &ct->pend[ct->chunk[k]]);
	return 1;
}

int ct_flush(struct ct *ct)
{
	int last_err = 0, rc = 0;

	for (int round = 0; round < CT_ROUNDS_MAX && rc >= 0; round++) {
		uint32_t from = 0;
		bool any = false;
		while ((rc = ct_send_chunk(ct, &from)) == 1)
			any = true;
		if (!any)
			break;
	}
	for (uint32_t i = 0; i < ct->n_pend; i++) {
		struct ct_pend *p = &ct->pend[i];
		if (!p->skip && p->step != CS_DONE) { /* rounds exhausted: cannot happen */
			ct->st.apply_errors++;
			p->err = EIO;
		}
		if (!p->skip && p->err)
			last_err = p->err;
	}
	ct->n_pend = 0;
	memset(ct->slot, 0, sizeof(ct->slot[0]) * 2 * CT_QUEUE_MAX);
	if (last_err) {
		errno = last_err;
		return TND_ESYS;
	}
	return rc < 0 ? rc : 0;
}

int ct_apply(struct ct *ct, const struct ctrec *r)
{
	int rc;
	if (ct->n_pend) { /* keep order with what is queued */
		rc = ct_flush(ct);
		(void)rc; /* counted; this call reports its own record */
	}
	rc = ct_queue(ct, r);
	if (rc < 0)
		return rc;
	return ct_flush(ct);
}

/* ---- sweep -------------------------------------------------------------- */

struct ct_sweep_ctx {
	bool (*keep)(const struct ctrec *r, void *arg);
	void *arg;
	struct ctrec *del;
	size_t n;
};

static int ct_sweep_cb(const struct ctrec *r, void *arg)
{
	struct ct_sweep_ctx *s = arg;
	if (s->keep(r, s->arg))
		return 0;
	s->del[s->n] = *r;
	s->del[s->n].op = CTREC_DELETE;
	s->del[s->n].val_len = 0;
	s->n++;
	return s->n >= CT_SWEEP_BATCH_MAX; /* full: delete these, then go on */
}

int ct_sweep(struct ct *ct, bool (*keep)(const struct ctrec *r, void *arg), void *arg,
	     uint64_t *deleted)
{
	struct ct_sweep_ctx s = {.keep = keep, .arg = arg};
	uint64_t total = 0;
	int rc = 0;

	s.del = malloc(sizeof(*s.del) * CT_SWEEP_BATCH_MAX);
	if (!s.del)
		return TND_ESYS;
	for (int pass = 0; pass < CT_SWEEP_PASSES_MAX; pass++) {
		s.n = 0;
		rc = ct_dump(ct, ct_sweep_cb, &s);
		if (rc < 0)
			break;
		for (size_t i = 0; i < s.n && rc >= 0; i++) {
			int e = ct_queue(ct, &s.del[i]);
			if (e < 0)
				rc = e;
		}
		if (rc >= 0) {
			int e = ct_flush(ct);
			if (e < 0)
				rc = e;
		}
		total += s.n;
		ct->st.swept += s.n;
		if (rc < 0 || rc == 0) /* error, or the dump saw every entry */
			break;
		rc = 0;
	}
	if (rc == 1)
		rc = TND_ENOSPC; /* more stale entries than passes allowed */
	free(s.del);
	if (deleted)
		*deleted = total;
	return rc;
}

/* ---- events ------------------------------------------------------------- */

int ct_events_open(struct ct *ct)
{
	int fd, sz = CT_EVENT_RCVBUF_BYTES;
	unsigned groups = NF_NETLINK_CONNTRACK_NEW | NF_NETLINK_CONNTRACK_UPDATE |
			  NF_NETLINK_CONNTRACK_DESTROY;
	if (ct->ev)
		return 0;
	ct->ev = mnl_socket_open2(NETLINK_NETFILTER, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (!ct->ev)
		return TND_ESYS;
	fd = mnl_socket_get_fd(ct->ev);
	/* FORCE goes beyond net.core.rmem_max (we are root); fall back to
	 * what the limit allows. */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz)) < 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	if (mnl_socket_bind(ct->ev, groups, MNL_SOCKET_AUTOPID) < 0) {
		int e = errno;
		mnl_socket_close(ct->ev);
		ct->ev = NULL;
		errno = e;
		return TND_ESYS;
	}
	return 0;
}

void ct_events_close(struct ct *ct)
{
	if (ct->ev)
		mnl_socket_close(ct->ev);
	ct->ev = NULL;
}

int ct_events_fd(const struct ct *ct)
{
	return ct->ev ? mnl_socket_get_fd(ct->ev) : -1;
}

/* Events arrive one per datagram: up to CT_EVENT_VLEN of them are read
 * per system call (recvmmsg), each into its own slice of ct->buf. */
#define CT_EVENT_VLEN 16
#define CT_EVENT_SLICE (CT_BUF_BYTES / CT_EVENT_VLEN)

static int ct_event_one(struct ct *ct, const uint8_t *b, int len, ct_event_cb cb, void *arg)
{
	const struct nlmsghdr *m = (const struct nlmsghdr *)b;
	int reported = 0;
	for (; mnl_nlmsg_ok(m, len); m = mnl_nlmsg_next(m, &len)) {
		/* (see ct_msg_to_rec) */
		if (m->nlmsg_len > (uint32_t)len)
			break;
		uint8_t type = m->nlmsg_type & 0xff;
		uint8_t op;
		struct ctrec r;
		if ((m->nlmsg_type >> 8) != NFNL_SUBSYS_CTNETLINK)
			continue;
		if (type == IPCTNL_MSG_CT_NEW) {
			op = CTREC_UPSERT;
		} else if (type == IPCTNL_MSG_CT_DELETE) {
			op = CTREC_DELETE;
		} else {
			continue;
		}
		if (m->nlmsg_pid && m->nlmsg_pid == ct->req_portid) {
			ct->st.events_own++;
			continue;
		}
		int rc = ct_nl_to_rec(m, op, &r);
		if (rc == TND_EINVAL) {
			ct->st.malformed++;
		} else if (rc < 0) {
			ct->st.unsupported++;
		} else {
			if (op == CTREC_DELETE)
				ct->st.events_destroy++;
			else if (m->nlmsg_flags & (NLM_F_CREATE | NLM_F_EXCL))
				ct->st.events_new++;
			else
				ct->st.events_update++;
			cb(&r, arg);
			reported++;
		}
	}
	return reported;
}

int ct_events_read(struct ct *ct, ct_event_cb cb, void *arg)
{
	struct mmsghdr mm[CT_EVENT_VLEN];
	struct iovec iov[CT_EVENT_VLEN];
	int reported = 0;
	if (!ct->ev)
		return TND_EINVAL;
	for (int got = 0; got < CT_EVENT_BATCH_MAX;) {
		memset(mm, 0, sizeof(mm));
		for (int k = 0; k < CT_EVENT_VLEN; k++) {
			iov[k].iov_base = ct->buf + k * CT_EVENT_SLICE;
			iov[k].iov_len = CT_EVENT_SLICE;
			mm[k].msg_hdr.msg_iov = &iov[k];
			mm[k].msg_hdr.msg_iovlen = 1;
		}
		int n = recvmmsg(mnl_socket_get_fd(ct->ev), mm, CT_EVENT_VLEN, MSG_DONTWAIT, NULL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			if (errno == ENOBUFS) {
				ct->st.overruns++;
				return TND_ENOSPC;
			}
			return TND_ESYS;
		}
		for (int k = 0; k < n; k++) {
			if (mm[k].msg_hdr.msg_flags & MSG_TRUNC) { /* larger than a slice */
				ct->st.malformed++;
				continue;
			}
			reported += ct_event_one(ct, iov[k].iov_base, (int)mm[k].msg_len, cb, arg);
		}
		got += n;
		if (n < CT_EVENT_VLEN)
			break; /* drained */
	}
	return reported;
}
