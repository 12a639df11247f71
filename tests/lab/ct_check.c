/* ct_check.c - checks the conntrack driver (src/io/ct.c) against a real
 * kernel. Run as root inside network namespaces prepared by
 * tests/lab/test_ct.sh:
 *
 *   ct_check unit
 *       conversion both ways (IPv4/IPv6, TCP/UDP/ICMP, NAT) and refusal of
 *       records that do not decode; no kernel state touched.
 *   ct_check dump FILE SERVER PORT SNAT MIN
 *       on the gateway that carries the flows: dumps the table, keeps the
 *       TCP flows to SERVER:PORT (at least MIN), checks the SNAT binding
 *       (reply destination = SNAT), state and round trip, the stable hash
 *       (same a second later, distinct across sessions), writes them to FILE.
 *   ct_check apply FILE
 *       on the injection target: applies FILE (created), again (updated,
 *       nothing created: idempotent), dumps and compares stable hashes.
 *   ct_check delete FILE
 *       deletes FILE's sessions, again (absent is success), checks gone.
 *   ct_check events SERVER PORT
 *       NEW for a new connection, DESTROY for `conntrack -D`, own
 *       deletions not reported, an overrun reported as TND_ENOSPC, sweep.
 *   ct_check bench N
 *       in an empty namespace: ct_apply N entries, ct_dump them, ct_sweep
 *       half, then the rest; prints entries/s for each.
 *
 * Every check prints what failed and exits 1 at the first failure; the
 * last line is "ct_check: N passed, 0 failed". */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack_tcp.h>

#include "core/wire.h"
#include "io/ct.h"

static int n_passed;

static void check_fail(const char *file, int line, const char *expr, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "FAIL %s:%d: %s: ", file, line, expr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nct_check: %d passed, 1 failed\n", n_passed);
	exit(1);
}

#define CHECK(cond, ...)                                                        \
	do {                                                                    \
		if (!(cond))                                                    \
			check_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);     \
		n_passed++;                                                     \
	} while (0)

static void say(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("ct_check: ");
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	fflush(stdout);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static bool rec_eq(const struct ctrec *a, const struct ctrec *b)
{
	return a->op == b->op && a->key_len == b->key_len && a->val_len == b->val_len &&
	       a->stable_hash == b->stable_hash && !memcmp(a->key, b->key, a->key_len) &&
	       !memcmp(a->val, b->val, a->val_len);
}

static bool key_eq(const struct ctrec *a, const struct ctrec *b)
{
	return a->key_len == b->key_len && !memcmp(a->key, b->key, a->key_len);
}

/* A value TLV of the record, or NULL. */
static const uint8_t *rec_tlv(const struct ctrec *r, uint16_t type, uint16_t *len)
{
	struct tlvr rd;
	struct tlv t;
	tlvr_init(&rd, r->val, r->val_len);
	while (tlvr_next(&rd, &t) == 1)
		if (t.type == type) {
			*len = t.len;
			return t.val;
		}
	return NULL;
}

static uint32_t rec_u32(const struct ctrec *r, uint16_t type, uint32_t dflt)
{
	uint16_t len;
	const uint8_t *v = rec_tlv(r, type, &len);
	return v && len == 4 ? wire_get32(v) : dflt;
}

/* Round trip: record -> kernel object -> record gives the same bytes. */
static void check_roundtrip(const struct ctrec *r, const char *what)
{
	struct nf_conntrack *c = nfct_new();
	struct ctrec back;
	CHECK(c, "nfct_new");
	CHECK(ct_from_rec(r, c) == 0, "%s: ct_from_rec", what);
	CHECK(ct_to_rec(c, r->op, &back) == 0, "%s: ct_to_rec", what);
	CHECK(rec_eq(r, &back), "%s: round trip differs (val %u vs %u bytes)", what, r->val_len,
	      back.val_len);
	nfct_destroy(c);
}

/* ---- record files ------------------------------------------------------- */

static void recs_write(const char *path, const struct ctrec *r, int n)
{
	FILE *f = fopen(path, "wb");
	CHECK(f, "open %s: %s", path, strerror(errno));
	for (int i = 0; i < n; i++) {
		uint8_t h[11];
		h[0] = r[i].op;
		h[1] = r[i].key_len;
		h[2] = r[i].val_len;
		wire_put64(h + 3, r[i].stable_hash);
		CHECK(fwrite(h, 11, 1, f) == 1 && fwrite(r[i].key, r[i].key_len, 1, f) == 1 &&
			      (r[i].val_len == 0 || fwrite(r[i].val, r[i].val_len, 1, f) == 1),
		      "write %s", path);
	}
	CHECK(fclose(f) == 0, "close %s", path);
}

static int recs_read(const char *path, struct ctrec *r, int max)
{
	FILE *f = fopen(path, "rb");
	uint8_t h[11];
	int n = 0;
	CHECK(f, "open %s: %s", path, strerror(errno));
	while (n < max && fread(h, 11, 1, f) == 1) {
		memset(&r[n], 0, sizeof(r[n]));
		r[n].op = h[0];
		r[n].key_len = h[1];
		r[n].val_len = h[2];
		r[n].stable_hash = wire_get64(h + 3);
		CHECK(r[n].key_len <= CTREC_KEY_MAX && r[n].val_len <= CTREC_VAL_MAX, "bad file");
		CHECK(fread(r[n].key, r[n].key_len, 1, f) == 1, "short file");
		CHECK(r[n].val_len == 0 || fread(r[n].val, r[n].val_len, 1, f) == 1, "short file");
		n++;
	}
	fclose(f);
	return n;
}

/* ---- dump collection ---------------------------------------------------- */

#define SET_MAX 4096
struct recset {
	int n;
	struct ctrec r[SET_MAX];
};

static int collect_all(const struct ctrec *r, void *arg)
{
	struct recset *s = arg;
	if (s->n < SET_MAX)
		s->r[s->n++] = *r;
	return 0;
}

static const struct ctrec *set_find(const struct recset *s, const struct ctrec *k)
{
	for (int i = 0; i < s->n; i++)
		if (key_eq(&s->r[i], k))
			return &s->r[i];
	return NULL;
}

/* ---- unit: conversion --------------------------------------------------- */

static struct nf_conntrack *mk_v4(uint8_t l4, const char *os, const char *od, uint16_t sp,
				  uint16_t dp, const char *rs, const char *rd, uint16_t rsp,
				  uint16_t rdp, uint32_t status)
{
	struct nf_conntrack *c = nfct_new();
	struct in_addr a;
	CHECK(c, "nfct_new");
	nfct_set_attr_u8(c, ATTR_ORIG_L3PROTO, AF_INET);
	nfct_set_attr_u8(c, ATTR_ORIG_L4PROTO, l4);
	nfct_set_attr_u8(c, ATTR_REPL_L3PROTO, AF_INET);
	nfct_set_attr_u8(c, ATTR_REPL_L4PROTO, l4);
	inet_pton(AF_INET, os, &a);
	nfct_set_attr_u32(c, ATTR_ORIG_IPV4_SRC, a.s_addr);
	inet_pton(AF_INET, od, &a);
	nfct_set_attr_u32(c, ATTR_ORIG_IPV4_DST, a.s_addr);
	inet_pton(AF_INET, rs, &a);
	nfct_set_attr_u32(c, ATTR_REPL_IPV4_SRC, a.s_addr);
	inet_pton(AF_INET, rd, &a);
	nfct_set_attr_u32(c, ATTR_REPL_IPV4_DST, a.s_addr);
	nfct_set_attr_u16(c, ATTR_ORIG_PORT_SRC, htons(sp));
	nfct_set_attr_u16(c, ATTR_ORIG_PORT_DST, htons(dp));
	nfct_set_attr_u16(c, ATTR_REPL_PORT_SRC, htons(rsp));
	nfct_set_attr_u16(c, ATTR_REPL_PORT_DST, htons(rdp));
	nfct_set_attr_u32(c, ATTR_STATUS, status);
	nfct_set_attr_u32(c, ATTR_TIMEOUT, 600);
	if (l4 == IPPROTO_TCP) {
		nfct_set_attr_u8(c, ATTR_TCP_STATE, TCP_CONNTRACK_ESTABLISHED);
		nfct_set_attr_u8(c, ATTR_TCP_WSCALE_ORIG, 7);
		nfct_set_attr_u8(c, ATTR_TCP_WSCALE_REPL, 7);
	}
	return c;
}

static struct nf_conntrack *mk_v6_udp(int i)
{
	struct nf_conntrack *c = nfct_new();
	struct in6_addr s, d;
	CHECK(c, "nfct_new");
	inet_pton(AF_INET6, "2001:db8:1::1", &s);
	inet_pton(AF_INET6, "2001:db8:2::2", &d);
	s.s6_addr[14] = (uint8_t)(i >> 8);
	s.s6_addr[15] = (uint8_t)i;
	nfct_set_attr_u8(c, ATTR_ORIG_L3PROTO, AF_INET6);
	nfct_set_attr_u8(c, ATTR_ORIG_L4PROTO, IPPROTO_UDP);
	nfct_set_attr_u8(c, ATTR_REPL_L3PROTO, AF_INET6);
	nfct_set_attr_u8(c, ATTR_REPL_L4PROTO, IPPROTO_UDP);
	nfct_set_attr(c, ATTR_ORIG_IPV6_SRC, &s);
	nfct_set_attr(c, ATTR_ORIG_IPV6_DST, &d);
	nfct_set_attr(c, ATTR_REPL_IPV6_SRC, &d);
	nfct_set_attr(c, ATTR_REPL_IPV6_DST, &s);
	nfct_set_attr_u16(c, ATTR_ORIG_PORT_SRC, htons(5000));
	nfct_set_attr_u16(c, ATTR_ORIG_PORT_DST, htons(53));
	nfct_set_attr_u16(c, ATTR_REPL_PORT_SRC, htons(53));
	nfct_set_attr_u16(c, ATTR_REPL_PORT_DST, htons(5000));
	nfct_set_attr_u32(c, ATTR_STATUS, IPS_SEEN_REPLY);
	nfct_set_attr_u32(c, ATTR_TIMEOUT, 600);
	nfct_set_attr_u32(c, ATTR_MARK, 0x7c7);
	return c;
}

static struct nf_conntrack *mk_icmp(void)
{
	struct nf_conntrack *c = nfct_new();
	struct in_addr a;
	CHECK(c, "nfct_new");
	nfct_set_attr_u8(c, ATTR_ORIG_L3PROTO, AF_INET);
	nfct_set_attr_u8(c, ATTR_ORIG_L4PROTO, IPPROTO_ICMP);
	inet_pton(AF_INET, "192.0.2.100", &a);
	nfct_set_attr_u32(c, ATTR_ORIG_IPV4_SRC, a.s_addr);
	inet_pton(AF_INET, "198.51.100.100", &a);
	nfct_set_attr_u32(c, ATTR_ORIG_IPV4_DST, a.s_addr);
	nfct_set_attr_u8(c, ATTR_ICMP_TYPE, 8);
	nfct_set_attr_u8(c, ATTR_ICMP_CODE, 0);
	nfct_set_attr_u16(c, ATTR_ICMP_ID, htons(77));
	nfct_setobjopt(c, NFCT_SOPT_SETUP_REPLY);
	inet_pton(AF_INET, "198.51.100.1", &a);
	nfct_set_attr_u32(c, ATTR_REPL_IPV4_DST, a.s_addr);
	nfct_set_attr_u32(c, ATTR_STATUS, IPS_SEEN_REPLY | IPS_SRC_NAT);
	nfct_set_attr_u32(c, ATTR_TIMEOUT, 30);
	return c;
}

/* A copy of r with the value rewritten by appending raw bytes. */
static struct ctrec with_val(const struct ctrec *r, const uint8_t *v, size_t n, bool append)
{
	struct ctrec o = *r;
	if (!append)
		o.val_len = 0;
	if (o.val_len + n > CTREC_VAL_MAX)
		n = CTREC_VAL_MAX - o.val_len;
	if (n)
		memcpy(o.val + o.val_len, v, n);
	o.val_len = (uint8_t)(o.val_len + n);
	return o;
}

static void mode_unit(void)
{
	struct nf_conntrack *c[4];
	struct ctrec r[4], bad;
	uint64_t h;
	c[0] = mk_v4(IPPROTO_TCP, "192.0.2.100", "198.51.100.100", 40000, 7000, "198.51.100.100",
		     "198.51.100.1", 7000, 61000, IPS_SEEN_REPLY | IPS_ASSURED | IPS_SRC_NAT |
							    IPS_CONFIRMED | IPS_SRC_NAT_DONE);
	c[1] = mk_v4(IPPROTO_UDP, "198.51.100.100", "198.51.100.1", 5353, 8080, "192.0.2.10",
		     "198.51.100.100", 80, 5353, IPS_SEEN_REPLY | IPS_DST_NAT);
	c[2] = mk_v6_udp(1);
	c[3] = mk_icmp();
	for (int i = 0; i < 4; i++) {
		CHECK(ct_to_rec(c[i], CTREC_UPSERT, &r[i]) == 0, "ct_to_rec %d", i);
		check_roundtrip(&r[i], "unit");
		CHECK(ct_rec_hash(&r[i], &h) == 0 && h == r[i].stable_hash, "ct_rec_hash %d", i);
	}
	CHECK(r[0].key_len == CT_KEY_LEN_V4 && r[2].key_len == CT_KEY_LEN_V6, "key lengths %u %u",
	      r[0].key_len, r[2].key_len);
	for (int i = 0; i < 4; i++)
		for (int j = i + 1; j < 4; j++)
			CHECK(r[i].stable_hash != r[j].stable_hash, "hash collision %d %d", i, j);
	/* The timeout and the kernel-only status bits do not move the hash;
	 * NAT does. */
	{
		struct ctrec t;
		nfct_set_attr_u32(c[0], ATTR_TIMEOUT, 5);
		nfct_set_attr_u32(c[0], ATTR_STATUS, IPS_SEEN_REPLY | IPS_ASSURED | IPS_SRC_NAT);
		CHECK(ct_to_rec(c[0], CTREC_UPSERT, &t) == 0, "ct_to_rec");
		CHECK(t.stable_hash == r[0].stable_hash, "timeout/CONFIRMED moved the hash");
		nfct_set_attr_u16(c[0], ATTR_REPL_PORT_DST, htons(61001));
		CHECK(ct_to_rec(c[0], CTREC_UPSERT, &t) == 0, "ct_to_rec");
		CHECK(t.stable_hash != r[0].stable_hash, "a NAT port change kept the hash");
	}
	/* The NAT attributes derived for injection. */
	{
		struct nf_conntrack *o = nfct_new();
		struct in_addr a;
		CHECK(ct_from_rec(&r[0], o) == 0, "from_rec");
		inet_pton(AF_INET, "198.51.100.1", &a);
		CHECK(nfct_attr_is_set(o, ATTR_SNAT_IPV4) &&
			      nfct_get_attr_u32(o, ATTR_SNAT_IPV4) == a.s_addr,
		      "SNAT address not derived");
		CHECK(nfct_get_attr_u16(o, ATTR_SNAT_PORT) == htons(61000), "SNAT port");
		CHECK(!nfct_attr_is_set(o, ATTR_DNAT_IPV4), "DNAT on an SNAT entry");
		nfct_destroy(o);
		o = nfct_new();
		CHECK(ct_from_rec(&r[1], o) == 0, "from_rec");
		inet_pton(AF_INET, "192.0.2.10", &a);
		CHECK(nfct_attr_is_set(o, ATTR_DNAT_IPV4) &&
			      nfct_get_attr_u32(o, ATTR_DNAT_IPV4) == a.s_addr,
		      "DNAT address not derived");
		CHECK(nfct_get_attr_u16(o, ATTR_DNAT_PORT) == htons(80), "DNAT port");
		nfct_destroy(o);
	}
	/* DELETE records: key only. */
	{
		struct ctrec d;
		struct nf_conntrack *o = nfct_new();
		CHECK(ct_to_rec(c[2], CTREC_DELETE, &d) == 0 && d.val_len == 0, "delete rec");
		CHECK(key_eq(&d, &r[2]), "delete key differs");
		CHECK(ct_from_rec(&d, o) == 0, "delete from_rec");
		CHECK(!nfct_attr_is_set(o, ATTR_REPL_IPV6_SRC), "delete carries a reply tuple");
		nfct_destroy(o);
		bad = d;
		bad.val_len = 1;
		o = nfct_new();
		CHECK(ct_from_rec(&bad, o) == TND_EINVAL, "delete with a value accepted");
		nfct_destroy(o);
	}
	/* Refusals. */
	{
		struct nf_conntrack *o = nfct_new();
		uint8_t unk[] = {0x12, 0x34, 0, 3, 1, 2, 3}; /* unknown type 0x1234 */
		uint8_t dup[] = {0, CT_TLV_STATUS, 0, 4, 0, 0, 0, 8};
		uint8_t badlen[] = {0, CT_TLV_MARK, 0, 2, 0, 1};
		uint8_t trunc[] = {0, CT_TLV_MARK, 0, 9, 0};
		uint8_t state[] = {0, CT_TLV_TCP_STATE, 0, 1, 10};
		struct ctrec t;

		t = with_val(&r[0], unk, sizeof(unk), true);
		CHECK(ct_from_rec(&t, o) == 0, "unknown TLV not skipped");
		CHECK(ct_rec_hash(&t, &h) == 0 && h == r[0].stable_hash, "unknown TLV moved hash");
		t = with_val(&r[0], dup, sizeof(dup), true);
		CHECK(ct_from_rec(&t, o) == TND_EINVAL, "duplicate STATUS accepted");
		t = with_val(&r[1], badlen, sizeof(badlen), true);
		CHECK(ct_from_rec(&t, o) == TND_EINVAL, "2-byte MARK accepted");
		t = with_val(&r[1], trunc, sizeof(trunc), true);
		CHECK(ct_from_rec(&t, o) == TND_EINVAL, "truncated TLV accepted");
		t = with_val(&r[1], state, sizeof(state), true);
		CHECK(ct_from_rec(&t, o) == TND_EINVAL, "TCP state on UDP accepted");
		t = with_val(&r[1], NULL, 0, false);
		CHECK(ct_from_rec(&t, o) == TND_EINVAL, "empty UPSERT value accepted");
		t = r[0];
		t.key[0] = 5;
		CHECK(ct_from_rec(&t, o) == TND_EINVAL, "family 5 accepted");
		t = r[0];
		t.key[1] = IPPROTO_SCTP;
		CHECK(ct_from_rec(&t, o) == TND_EINVAL, "SCTP accepted");
		t = r[0];
		t.key_len = CT_KEY_LEN_V6;
		CHECK(ct_from_rec(&t, o) == TND_EINVAL, "IPv4 key of IPv6 length accepted");
		t = r[0];
		t.op = 9;
		CHECK(ct_from_rec(&t, o) == TND_EINVAL, "op 9 accepted");
		t = r[0];
		t.val_len = 200;
		CHECK(ct_from_rec(&t, o) == TND_EINVAL, "val_len 200 accepted");
		nfct_destroy(o);
	}
	for (int i = 0; i < 4; i++)
		nfct_destroy(c[i]);
	say("unit: conversion IPv4/IPv6 TCP/UDP/ICMP, SNAT/DNAT, refusals ok");
}

/* ---- dump on the gateway ------------------------------------------------ */

static int flows_of(const struct recset *all, const char *server, int port, struct ctrec *out)
{
	struct in_addr a;
	int n = 0;
	inet_pton(AF_INET, server, &a);
	for (int i = 0; i < all->n; i++) {
		const struct ctrec *r = &all->r[i];
		if (r->key[0] != 4 || r->key[1] != IPPROTO_TCP)
			continue;
		if (memcmp(r->key + 8, &a, 4) || wire_get16(r->key + 14) != port)
			continue;
		out[n++] = *r;
	}
	return n;
}

static void mode_dump(const char *file, const char *server, int port, const char *snat, int min)
{
	struct ct *ct = ct_open();
	static struct recset a, b;
	static struct ctrec fl[SET_MAX], fl2[SET_MAX];
	struct in_addr sn;
	int n, n2, rc;
	uint16_t len;

	CHECK(ct, "ct_open: %s", strerror(errno));
	inet_pton(AF_INET, snat, &sn);
	rc = ct_dump(ct, collect_all, &a);
	CHECK(rc == 0, "ct_dump: %d", rc);
	n = flows_of(&a, server, port, fl);
	say("dump: %d entries, %d TCP flows to %s:%d", a.n, n, server, port);
	CHECK(n >= min, "only %d flows, wanted %d", n, min);
	for (int i = 0; i < n; i++) {
		const uint8_t *v = rec_tlv(&fl[i], CT_TLV_REPL_DST, &len);
		CHECK(v && len == 4 && !memcmp(v, &sn, 4), "flow %d: reply dst is not the SNAT %s",
		      i, snat);
		CHECK(rec_u32(&fl[i], CT_TLV_STATUS, 0) & IPS_SRC_NAT, "flow %d: no SRC_NAT", i);
		v = rec_tlv(&fl[i], CT_TLV_TCP_STATE, &len);
		CHECK(v && len == 1 && *v == TCP_CONNTRACK_ESTABLISHED, "flow %d: state %d", i,
		      v ? *v : -1);
		CHECK(rec_u32(&fl[i], CT_TLV_TIMEOUT, 0) > 0, "flow %d: timeout %u", i,
		      rec_u32(&fl[i], CT_TLV_TIMEOUT, 0));
		check_roundtrip(&fl[i], "dumped flow");
		for (int j = 0; j < i; j++)
			CHECK(fl[i].stable_hash != fl[j].stable_hash, "hash equal across sessions");
	}
	sleep(1);
	rc = ct_dump(ct, collect_all, &b);
	CHECK(rc == 0, "ct_dump 2: %d", rc);
	n2 = flows_of(&b, server, port, fl2);
	CHECK(n2 == n, "flows changed between dumps %d -> %d", n, n2);
	for (int i = 0; i < n; i++) {
		const struct ctrec *o = set_find(&b, &fl[i]);
		CHECK(o, "flow %d gone a second later", i);
		CHECK(o->stable_hash == fl[i].stable_hash, "flow %d: hash moved in 1 s", i);
	}
	recs_write(file, fl, n);
	say("dump: %d flows with SNAT %s, round trip and stable hash ok, written to %s", n, snat,
	    file);
	ct_close(ct);
}

static int stop_cb(const struct ctrec *r, void *arg)
{
	int *left = arg;
	(void)r;
	return --*left <= 0;
}

/* ---- apply / delete on the target --------------------------------------- */

static void mode_apply(const char *file)
{
	static struct ctrec r[SET_MAX];
	static struct recset d;
	struct ct *ct = ct_open();
	struct ct_stats st;
	int n = recs_read(file, r, SET_MAX), rc;

	CHECK(ct, "ct_open");
	CHECK(n > 0, "no records in %s", file);
	for (int i = 0; i < n; i++) {
		rc = ct_apply(ct, &r[i]);
		CHECK(rc == 0, "apply %d: %d (%s)", i, rc, strerror(errno));
	}
	ct_get_stats(ct, &st);
	CHECK(st.created == (uint64_t)n, "created %llu of %d", (unsigned long long)st.created, n);
	for (int i = 0; i < n; i++) {
		rc = ct_apply(ct, &r[i]);
		CHECK(rc == 0, "re-apply %d: %d (%s)", i, rc, strerror(errno));
	}
	ct_get_stats(ct, &st);
	CHECK(st.created == (uint64_t)n && st.updated + st.replaced == (uint64_t)n,
	      "second apply: created %llu updated %llu replaced %llu",
	      (unsigned long long)st.created, (unsigned long long)st.updated,
	      (unsigned long long)st.replaced);
	CHECK(st.updated == (uint64_t)n, "second apply replaced %llu instead of updating",
	      (unsigned long long)st.replaced);
	rc = ct_dump(ct, collect_all, &d);
	CHECK(rc == 0, "dump");
	for (int i = 0; i < n; i++) {
		const struct ctrec *o = set_find(&d, &r[i]);
		CHECK(o, "record %d not in the table after apply", i);
		CHECK(o->stable_hash == r[i].stable_hash, "record %d: hash differs after inject", i);
	}
	/* A dump stopped by its callback, then a full one on the same handle. */
	{
		int left = 1;
		static struct recset again;
		rc = ct_dump(ct, stop_cb, &left);
		CHECK(rc == 1, "stopped dump returned %d", rc);
		rc = ct_dump(ct, collect_all, &again);
		CHECK(rc == 0 && again.n == d.n, "dump after a stopped dump: %d entries of %d",
		      again.n, d.n);
	}
	say("apply: %d created, %d updated on re-apply, stable hashes equal to the source", n, n);
	ct_close(ct);
}

static void mode_delete(const char *file)
{
	static struct ctrec r[SET_MAX];
	static struct recset d;
	struct ct *ct = ct_open();
	struct ct_stats st;
	int n = recs_read(file, r, SET_MAX);

	CHECK(ct, "ct_open");
	for (int i = 0; i < n; i++) {
		struct ctrec del = r[i];
		del.op = CTREC_DELETE;
		del.val_len = 0;
		CHECK(ct_apply(ct, &del) == 0, "delete %d: %s", i, strerror(errno));
		CHECK(ct_apply(ct, &del) == 0, "second delete %d: %s", i, strerror(errno));
	}
	ct_get_stats(ct, &st);
	CHECK(st.deleted == (uint64_t)n && st.delete_absent == (uint64_t)n,
	      "deleted %llu absent %llu of %d", (unsigned long long)st.deleted,
	      (unsigned long long)st.delete_absent, n);
	CHECK(ct_dump(ct, collect_all, &d) == 0, "dump");
	for (int i = 0; i < n; i++)
		CHECK(!set_find(&d, &r[i]), "record %d still present", i);
	say("delete: %d deleted, %d absent on the second delete (success), none left", n, n);
	ct_close(ct);
}

/* ---- events ------------------------------------------------------------- */

struct evlog {
	int n;
	struct ctrec r[SET_MAX];
};

static void ev_cb(const struct ctrec *r, void *arg)
{
	struct evlog *l = arg;
	if (l->n < SET_MAX)
		l->r[l->n++] = *r;
}

/* Read events for up to ms; index in log of the first record with op and
 * TCP source port sport, else -1. */
static int ev_wait(struct ct *ct, struct evlog *l, uint8_t op, uint16_t sport, int ms)
{
	double end = now_s() + ms / 1000.0;
	int from = 0;
	for (;;) {
		for (int i = from; i < l->n; i++)
			if (l->r[i].op == op && l->r[i].key[1] == IPPROTO_TCP &&
			    wire_get16(l->r[i].key + 12) == sport)
				return i;
		from = l->n;
		double left = end - now_s();
		if (left <= 0)
			return -1;
		struct pollfd p = {.fd = ct_events_fd(ct), .events = POLLIN};
		poll(&p, 1, (int)(left * 1000) + 1);
		int rc = ct_events_read(ct, ev_cb, l);
		CHECK(rc >= 0, "ct_events_read: %d", rc);
	}
}

static int tcp_connect(const char *addr, int port, uint16_t *sport)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(fd >= 0, "socket");
	inet_pton(AF_INET, addr, &sa.sin_addr);
	CHECK(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "connect %s:%d: %s", addr, port,
	      strerror(errno));
	CHECK(getsockname(fd, (struct sockaddr *)&sa, &sl) == 0, "getsockname");
	*sport = ntohs(sa.sin_port);
	return fd;
}

static bool keep_unmarked(const struct ctrec *r, void *arg)
{
	(void)arg;
	return rec_u32(r, CT_TLV_MARK, 0) != 0x7c7;
}

static void mode_events(const char *server, int port)
{
	static struct evlog l;
	struct ct *ct = ct_open();
	struct ct_stats st;
	uint16_t sp1, sp2;
	int fd1, fd2, i;
	char cmd[256];

	CHECK(ct, "ct_open");
	CHECK(ct_events_fd(ct) == -1, "event fd before open");
	CHECK(ct_events_open(ct) == 0, "ct_events_open: %s", strerror(errno));
	CHECK(ct_events_fd(ct) >= 0, "event fd");
	{
		int sz = 0;
		socklen_t sl = sizeof(sz);
		getsockopt(ct_events_fd(ct), SOL_SOCKET, SO_RCVBUF, &sz, &sl);
		CHECK(sz >= CT_EVENT_RCVBUF_BYTES, "event socket buffer only %d bytes", sz);
	}
	CHECK(ct_events_read(ct, ev_cb, &l) >= 0, "empty read");

	fd1 = tcp_connect(server, port, &sp1);
	i = ev_wait(ct, &l, CTREC_UPSERT, sp1, 2000);
	CHECK(i >= 0, "no NEW event for port %u", sp1);
	ct_get_stats(ct, &st);
	CHECK(st.events_new >= 1, "NEW not counted");
	snprintf(cmd, sizeof(cmd), "conntrack -D -p tcp --orig-port-src %u >/dev/null 2>&1", sp1);
	CHECK(system(cmd) == 0, "%s failed", cmd);
	i = ev_wait(ct, &l, CTREC_DELETE, sp1, 2000);
	CHECK(i >= 0, "no DESTROY event after conntrack -D");
	CHECK(l.r[i].val_len == 0, "DELETE record with a value");
	say("events: NEW and DESTROY (conntrack -D) seen for port %u", sp1);

	/* Our own deletion is not reported back. */
	fd2 = tcp_connect(server, port, &sp2);
	i = ev_wait(ct, &l, CTREC_UPSERT, sp2, 2000);
	CHECK(i >= 0, "no NEW event for port %u", sp2);
	{
		struct ctrec del = l.r[i];
		del.op = CTREC_DELETE;
		del.val_len = 0;
		CHECK(ct_apply(ct, &del) == 0, "delete own");
	}
	CHECK(ev_wait(ct, &l, CTREC_DELETE, sp2, 500) < 0, "own DESTROY reported");
	ct_get_stats(ct, &st);
	CHECK(st.events_own >= 1, "own event not counted");
	say("events: our own deletion not reported (events_own=%llu)",
	    (unsigned long long)st.events_own);
	close(fd1);
	close(fd2);

	/* Overrun: a tiny buffer and a burst from another socket. */
	{
		int small = 1, rc, burst = 3000;
		struct ct *inj = ct_open();
		uint64_t swept = 0;
		CHECK(inj, "ct_open");
		CHECK(setsockopt(ct_events_fd(ct), SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)) == 0,
		      "shrink");
		for (int k = 0; k < burst; k++) {
			struct nf_conntrack *c = mk_v6_udp(k);
			struct ctrec r;
			CHECK(ct_to_rec(c, CTREC_UPSERT, &r) == 0, "to_rec");
			CHECK(ct_apply(inj, &r) == 0, "inject %d: %s", k, strerror(errno));
			nfct_destroy(c);
		}
		rc = 0;
		for (int k = 0; k < 100 && rc >= 0; k++)
			rc = ct_events_read(ct, ev_cb, &l);
		CHECK(rc == TND_ENOSPC, "overrun not reported: %d", rc);
		ct_get_stats(ct, &st);
		CHECK(st.overruns == 1, "overruns %llu", (unsigned long long)st.overruns);
		/* Sweep the burst away (marked 0x7c7), keep the rest. */
		CHECK(ct_sweep(inj, keep_unmarked, NULL, &swept) == 0, "sweep");
		CHECK(swept == (uint64_t)burst, "swept %llu of %d", (unsigned long long)swept, burst);
		say("events: overrun -> TND_ENOSPC (overruns=1); ct_sweep removed the %d injected", burst);
		ct_close(inj);
	}
	ct_close(ct);
}

/* ---- bench -------------------------------------------------------------- */

static void synth(int i, struct ctrec *r)
{
	struct nf_conntrack *c;
	char os[32], rd[32];
	if (i % 8 == 7) {
		c = mk_v6_udp(i);
		nfct_set_attr_u16(c, ATTR_ORIG_PORT_SRC, htons((uint16_t)(1024 + i / 8 % 60000)));
		nfct_set_attr_u16(c, ATTR_REPL_PORT_DST, htons((uint16_t)(1024 + i / 8 % 60000)));
	} else {
		snprintf(os, sizeof(os), "10.%d.%d.%d", (i >> 16) & 255, (i >> 8) & 255, i & 255);
		snprintf(rd, sizeof(rd), "198.51.100.%d", 1 + i / 60000 % 250); /* unique NAT tuple */
		c = mk_v4(i % 2 ? IPPROTO_TCP : IPPROTO_UDP, os, "198.51.100.100", 40000, 80,
			  "198.51.100.100", rd, 80, (uint16_t)(1024 + i % 60000),
			  IPS_SEEN_REPLY | IPS_ASSURED | IPS_SRC_NAT);
	}
	CHECK(ct_to_rec(c, CTREC_UPSERT, r) == 0, "synth %d", i);
	nfct_destroy(c);
}

static int count_cb(const struct ctrec *r, void *arg)
{
	(void)r;
	(*(int *)arg)++;
	return 0;
}

static int key_cmp(const void *a, const void *b)
{
	const struct ctrec *x = a, *y = b;
	if (x->key_len != y->key_len)
		return x->key_len - y->key_len;
	return memcmp(x->key, y->key, x->key_len);
}

struct hashcmp {
	const struct ctrec *sorted;
	int n, found, differ;
};

static void dump_tlvs(const char *what, const struct ctrec *r)
{
	printf("  %s:", what);
	for (int i = 0; i < r->val_len; i++)
		printf(" %02x", r->val[i]);
	printf("\n");
}

/* Each dumped entry must be one we injected, with the same stable hash. */
static int hashcmp_cb(const struct ctrec *r, void *arg)
{
	struct hashcmp *h = arg;
	const struct ctrec *o = bsearch(r, h->sorted, (size_t)h->n, sizeof(*r), key_cmp);
	if (!o)
		return 0;
	h->found++;
	if (o->stable_hash != r->stable_hash) {
		if (h->differ++ == 0) {
			dump_tlvs("injected", o);
			dump_tlvs("dumped  ", r);
		}
	}
	return 0;
}

static bool keep_even(const struct ctrec *r, void *arg)
{
	(void)arg;
	return (r->stable_hash & 1) == 0;
}

static bool keep_none(const struct ctrec *r, void *arg)
{
	(void)r;
	(void)arg;
	return false;
}

static void mode_bench(int n)
{
	struct ct *ct = ct_open();
	struct ctrec *r = malloc(sizeof(*r) * (size_t)n);
	int seen = 0, before = 0, odd = 0;
	double t0, t1;
	uint64_t swept;

	CHECK(ct && r, "ct_open/malloc");
	CHECK(ct_dump(ct, count_cb, &before) == 0, "dump");
	CHECK(before == 0, "namespace not empty: %d entries", before);
	for (int i = 0; i < n; i++) {
		synth(i, &r[i]);
		odd += (int)(r[i].stable_hash & 1);
	}
	t0 = now_s();
	for (int i = 0; i < n; i++)
		CHECK(ct_apply(ct, &r[i]) == 0, "apply %d: %s", i, strerror(errno));
	t1 = now_s();
	say("bench: ct_apply %d new entries in %.2f s: %.0f entries/s", n, t1 - t0, n / (t1 - t0));
	t0 = now_s();
	CHECK(ct_dump(ct, count_cb, &seen) == 0, "dump");
	t1 = now_s();
	CHECK(seen == n, "dumped %d of %d", seen, n);
	{
		struct ctrec *sorted = malloc(sizeof(*sorted) * (size_t)n);
		struct hashcmp h = {.sorted = sorted, .n = n};
		CHECK(sorted, "malloc");
		memcpy(sorted, r, sizeof(*sorted) * (size_t)n);
		qsort(sorted, (size_t)n, sizeof(*sorted), key_cmp);
		CHECK(ct_dump(ct, hashcmp_cb, &h) == 0, "dump");
		CHECK(h.found == n && h.differ == 0, "%d found, %d with another stable hash", h.found,
		      h.differ);
		free(sorted);
	}
	say("bench: ct_dump %d entries in %.3f s: %.0f entries/s", seen, t1 - t0, seen / (t1 - t0));
	t0 = now_s();
	for (int i = 0; i < n; i++)
		CHECK(ct_apply(ct, &r[i]) == 0, "re-apply %d", i);
	t1 = now_s();
	say("bench: ct_apply %d existing entries (update) in %.2f s: %.0f entries/s", n, t1 - t0,
	    n / (t1 - t0));
	t0 = now_s();
	CHECK(ct_sweep(ct, keep_even, NULL, &swept) == 0, "sweep");
	t1 = now_s();
	CHECK(swept == (uint64_t)odd, "swept %llu, expected %d", (unsigned long long)swept, odd);
	seen = 0;
	CHECK(ct_dump(ct, count_cb, &seen) == 0 && seen == n - odd, "after sweep %d", seen);
	say("bench: ct_sweep removed %llu of %d in %.2f s: %.0f entries/s", (unsigned long long)swept,
	    n, t1 - t0, swept / (t1 - t0));
	CHECK(ct_sweep(ct, keep_none, NULL, &swept) == 0 && swept == (uint64_t)(n - odd), "sweep all");
	seen = 0;
	CHECK(ct_dump(ct, count_cb, &seen) == 0 && seen == 0, "left %d", seen);
	free(r);
	ct_close(ct);
}

int main(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "unit"))
		mode_unit();
	else if (argc == 7 && !strcmp(argv[1], "dump"))
		mode_dump(argv[2], argv[3], atoi(argv[4]), argv[5], atoi(argv[6]));
	else if (argc == 3 && !strcmp(argv[1], "apply"))
		mode_apply(argv[2]);
	else if (argc == 3 && !strcmp(argv[1], "delete"))
		mode_delete(argv[2]);
	else if (argc == 4 && !strcmp(argv[1], "events"))
		mode_events(argv[2], atoi(argv[3]));
	else if (argc == 3 && !strcmp(argv[1], "bench"))
		mode_bench(atoi(argv[2]));
	else {
		fprintf(stderr, "usage: ct_check unit | dump FILE SERVER PORT SNAT MIN | apply FILE |"
				" delete FILE | events SERVER PORT | bench N\n");
		return 2;
	}
	printf("ct_check: %d passed, 0 failed\n", n_passed);
	return 0;
}
