/* test_wire.c - unit tests of the control protocol codec (src/core/wire.c)
 * and packet sealing (src/core/seal.c).
 *
 * wire: the TLV writer and reader round trip (flat and nested, every typed
 * getter), every way a TLV list can be malformed (length past the end,
 * truncated header, wrong length for a getter, NUL or overlong strings),
 * the writer's sticky overflow, skipping of unknown types (how protocol
 * level N reads N+1), and the fixed 26-byte header.
 *
 * seal: XChaCha20-Poly1305 with the header as associated data. A single
 * flipped bit anywhere in a sealed packet must be refused, a wrong key or
 * another cluster's packet too, and the nonce must change with the
 * sequence number (a repeated nonce would leak the plaintext XOR). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "core/seal.h"
#include "core/wire.h"

/* --- TLV writer and reader -------------------------------------------- */

static void test_tlv_round_trip_flat(void **state)
{
	(void)state;
	uint8_t buf[256];
	struct tlvw w;
	size_t len = 0;
	const uint8_t raw[3] = { 0xde, 0xad, 0x00 };

	tlvw_init(&w, buf, sizeof(buf));
	tlvw_u8(&w, 1, 0xa5);
	tlvw_u16(&w, 2, 0xbeef);
	tlvw_u32(&w, 3, 0x01020304u);
	tlvw_u64(&w, 4, 0x1122334455667788ULL);
	tlvw_str(&w, 5, "fw-a");
	tlvw_put(&w, 6, raw, sizeof(raw));
	tlvw_put(&w, 7, NULL, 0); /* an empty value is legal */
	tlvw_str(&w, 8, "");
	assert_int_equal(tlvw_finish(&w, &len), 0);
	/* 8 headers of 4 bytes + 1 + 2 + 4 + 8 + 4 + 3 + 0 + 0 */
	assert_int_equal(len, 8 * 4 + 22);

	/* Byte layout: type and length big-endian, then the value. */
	assert_memory_equal(buf, ((uint8_t[]){ 0, 1, 0, 1, 0xa5 }), 5);
	assert_memory_equal(buf + 5, ((uint8_t[]){ 0, 2, 0, 2, 0xbe, 0xef }), 6);

	struct tlvr r;
	struct tlv t;
	uint8_t u8 = 0;
	uint16_t u16 = 0;
	uint32_t u32 = 0;
	uint64_t u64 = 0;
	char s[16];

	tlvr_init(&r, buf, len);
	assert_int_equal(tlvr_next(&r, &t), 1);
	assert_int_equal(t.type, 1);
	assert_int_equal(tlv_u8(&t, &u8), 0);
	assert_int_equal(u8, 0xa5);
	assert_int_equal(tlvr_next(&r, &t), 1);
	assert_int_equal(t.type, 2);
	assert_int_equal(tlv_u16(&t, &u16), 0);
	assert_int_equal(u16, 0xbeef);
	assert_int_equal(tlvr_next(&r, &t), 1);
	assert_int_equal(t.type, 3);
	assert_int_equal(tlv_u32(&t, &u32), 0);
	assert_int_equal(u32, 0x01020304u);
	assert_int_equal(tlvr_next(&r, &t), 1);
	assert_int_equal(t.type, 4);
	assert_int_equal(tlv_u64(&t, &u64), 0);
	assert_true(u64 == 0x1122334455667788ULL);
	assert_int_equal(tlvr_next(&r, &t), 1);
	assert_int_equal(t.type, 5);
	assert_int_equal(tlv_str(&t, s, sizeof(s)), 0);
	assert_string_equal(s, "fw-a");
	assert_int_equal(tlvr_next(&r, &t), 1);
	assert_int_equal(t.type, 6);
	assert_int_equal(t.len, 3);
	assert_memory_equal(t.val, raw, 3);
	assert_int_equal(tlvr_next(&r, &t), 1);
	assert_int_equal(t.type, 7);
	assert_int_equal(t.len, 0);
	assert_int_equal(tlvr_next(&r, &t), 1);
	assert_int_equal(t.type, 8);
	assert_int_equal(tlv_str(&t, s, sizeof(s)), 0);
	assert_string_equal(s, "");
	/* A clean end, and it stays a clean end. */
	assert_int_equal(tlvr_next(&r, &t), 0);
	assert_int_equal(tlvr_next(&r, &t), 0);
}

static void test_tlv_getters_check_length(void **state)
{
	(void)state;
	uint8_t val[9] = { 1, 2, 3, 4, 5, 6, 7, 8, 9 };
	uint8_t u8 = 0x77;
	uint16_t u16 = 0x7777;
	uint32_t u32 = 0x77777777u;
	uint64_t u64 = 0x7777777777777777ULL;

	for (uint16_t len = 0; len <= 9; len++) {
		struct tlv t = { .type = 1, .len = len, .val = val };
		assert_int_equal(tlv_u8(&t, &u8), len == 1 ? 0 : TND_EINVAL);
		assert_int_equal(tlv_u16(&t, &u16), len == 2 ? 0 : TND_EINVAL);
		assert_int_equal(tlv_u32(&t, &u32), len == 4 ? 0 : TND_EINVAL);
		assert_int_equal(tlv_u64(&t, &u64), len == 8 ? 0 : TND_EINVAL);
	}
	/* Each read the value once, big-endian. */
	assert_int_equal(u8, 1);
	assert_int_equal(u16, 0x0102);
	assert_int_equal(u32, 0x01020304u);
	assert_true(u64 == 0x0102030405060708ULL);
}

static void test_tlv_nested(void **state)
{
	(void)state;
	uint8_t buf[256];
	struct tlvw w;
	size_t len = 0;

	tlvw_init(&w, buf, sizeof(buf));
	tlvw_u8(&w, 1, 9);
	tlvw_open(&w, 10);          /* outer */
	tlvw_u8(&w, 11, 42);
	tlvw_open(&w, 12);          /* inner */
	tlvw_u64(&w, 13, 1234567890123ULL);
	tlvw_str(&w, 14, "lan0");
	tlvw_close(&w);
	tlvw_open(&w, 15);          /* an empty nested TLV */
	tlvw_close(&w);
	tlvw_close(&w);
	tlvw_u16(&w, 2, 7);
	assert_int_equal(tlvw_finish(&w, &len), 0);

	struct tlvr r, r2, r3;
	struct tlv t, t2, t3;
	uint8_t u8 = 0;
	uint16_t u16 = 0;
	uint64_t u64 = 0;
	char s[8];

	tlvr_init(&r, buf, len);
	assert_int_equal(tlvr_next(&r, &t), 1);
	assert_int_equal(t.type, 1);
	assert_int_equal(tlvr_next(&r, &t), 1);
	assert_int_equal(t.type, 10);
	/* outer value: u8 (5) + inner (4 + 12 + 8) + empty (4) */
	assert_int_equal(t.len, 5 + 4 + 12 + 8 + 4);

	tlvr_init(&r2, t.val, t.len);
	assert_int_equal(tlvr_next(&r2, &t2), 1);
	assert_int_equal(t2.type, 11);
	assert_int_equal(tlv_u8(&t2, &u8), 0);
	assert_int_equal(u8, 42);
	assert_int_equal(tlvr_next(&r2, &t2), 1);
	assert_int_equal(t2.type, 12);
	assert_int_equal(t2.len, 12 + 8);
	tlvr_init(&r3, t2.val, t2.len);
	assert_int_equal(tlvr_next(&r3, &t3), 1);
	assert_int_equal(tlv_u64(&t3, &u64), 0);
	assert_true(u64 == 1234567890123ULL);
	assert_int_equal(tlvr_next(&r3, &t3), 1);
	assert_int_equal(tlv_str(&t3, s, sizeof(s)), 0);
	assert_string_equal(s, "lan0");
	assert_int_equal(tlvr_next(&r3, &t3), 0);
	assert_int_equal(tlvr_next(&r2, &t2), 1);
	assert_int_equal(t2.type, 15);
	assert_int_equal(t2.len, 0);
	assert_int_equal(tlvr_next(&r2, &t2), 0);

	assert_int_equal(tlvr_next(&r, &t), 1);
	assert_int_equal(t.type, 2);
	assert_int_equal(tlv_u16(&t, &u16), 0);
	assert_int_equal(u16, 7);
	assert_int_equal(tlvr_next(&r, &t), 0);
}

static void test_tlv_writer_nesting_errors(void **state)
{
	(void)state;
	uint8_t buf[256];
	struct tlvw w;
	size_t len = 12345;

	/* A nested TLV left open is a caller bug, not a valid list. */
	tlvw_init(&w, buf, sizeof(buf));
	tlvw_open(&w, 1);
	assert_int_equal(tlvw_finish(&w, &len), TND_EINVAL);
	assert_int_equal(len, 12345);

	/* Closing what was never opened. */
	tlvw_init(&w, buf, sizeof(buf));
	tlvw_close(&w);
	assert_int_equal(tlvw_finish(&w, &len), TND_EINVAL);

	/* Nesting is bounded (four levels). */
	tlvw_init(&w, buf, sizeof(buf));
	for (int i = 0; i < 4; i++)
		tlvw_open(&w, 1);
	for (int i = 0; i < 4; i++)
		tlvw_close(&w);
	assert_int_equal(tlvw_finish(&w, &len), 0);
	assert_int_equal(len, 16);
	tlvw_init(&w, buf, sizeof(buf));
	for (int i = 0; i < 5; i++)
		tlvw_open(&w, 1);
	for (int i = 0; i < 5; i++)
		tlvw_close(&w);
	assert_int_equal(tlvw_finish(&w, &len), TND_ENOSPC);
}

static void test_tlv_reader_length_past_end(void **state)
{
	(void)state;
	uint8_t buf[64];
	struct tlvw w;
	size_t len = 0;

	tlvw_init(&w, buf, sizeof(buf));
	tlvw_u8(&w, 1, 1);
	tlvw_u32(&w, 2, 0xabcdef01u);
	assert_int_equal(tlvw_finish(&w, &len), 0);
	assert_int_equal(len, 5 + 8);

	struct tlvr r;
	struct tlv t;

	/* The second TLV's value ends one byte after the buffer. */
	tlvr_init(&r, buf, len - 1);
	assert_int_equal(tlvr_next(&r, &t), 1);
	assert_int_equal(tlvr_next(&r, &t), TND_EINVAL);

	/* A length field that claims more than the whole buffer. */
	uint8_t big[8] = { 0, 1, 0xff, 0xff, 1, 2, 3, 4 };
	tlvr_init(&r, big, sizeof(big));
	assert_int_equal(tlvr_next(&r, &t), TND_EINVAL);

	/* One byte too long, exactly at the end. */
	uint8_t one[6] = { 0, 1, 0, 3, 1, 2 };
	tlvr_init(&r, one, sizeof(one));
	assert_int_equal(tlvr_next(&r, &t), TND_EINVAL);
	one[3] = 2;
	tlvr_init(&r, one, sizeof(one));
	assert_int_equal(tlvr_next(&r, &t), 1);
	assert_int_equal(tlvr_next(&r, &t), 0);

	/* Inside a nested TLV: the inner list runs past its container even
	 * though the bytes exist in the outer buffer. */
	uint8_t nest[] = { 0, 9, 0, 5, /* outer, value 5 bytes */
			   0, 1, 0, 2, 0xaa, /* inner claims 2, has 1 */
			   0xbb, 0xcc };
	tlvr_init(&r, nest, sizeof(nest) - 2);
	assert_int_equal(tlvr_next(&r, &t), 1);
	struct tlvr r2;
	struct tlv t2;
	tlvr_init(&r2, t.val, t.len);
	assert_int_equal(tlvr_next(&r2, &t2), TND_EINVAL);
}

static void test_tlv_reader_truncated_header(void **state)
{
	(void)state;
	uint8_t buf[8] = { 0, 1, 0, 0, 0, 2, 0, 0 };
	struct tlvr r;
	struct tlv t;

	for (size_t cut = 1; cut < 4; cut++) {
		tlvr_init(&r, buf, cut);
		assert_int_equal(tlvr_next(&r, &t), TND_EINVAL);
	}
	/* An empty TLV, then 1..3 bytes of a second header. */
	for (size_t cut = 5; cut < 8; cut++) {
		tlvr_init(&r, buf, cut);
		assert_int_equal(tlvr_next(&r, &t), 1);
		assert_int_equal(tlvr_next(&r, &t), TND_EINVAL);
	}
	tlvr_init(&r, buf, 0);
	assert_int_equal(tlvr_next(&r, &t), 0);
}

static void test_tlv_writer_overflow_sticky(void **state)
{
	(void)state;
	uint8_t buf[32];
	struct tlvw w;
	size_t len = 999;

	memset(buf, 0x5a, sizeof(buf));
	tlvw_init(&w, buf, 16);
	tlvw_u64(&w, 1, 1);   /* 12 bytes: fits */
	assert_int_equal(w.len, 12);
	tlvw_u32(&w, 2, 2);   /* 8 more: does not */
	assert_int_equal(w.err, TND_ENOSPC);
	size_t at = w.len;
	tlvw_put(&w, 3, NULL, 0); /* 4 bytes would fit, but the error is sticky */
	tlvw_u8(&w, 4, 4);
	tlvw_open(&w, 5);
	tlvw_close(&w);
	assert_int_equal(w.len, at);
	assert_int_equal(tlvw_finish(&w, &len), TND_ENOSPC);
	assert_int_equal(len, 999);
	/* Nothing was written past the capacity. */
	for (size_t i = 16; i < sizeof(buf); i++)
		assert_int_equal(buf[i], 0x5a);

	/* An exact fit is not an overflow. */
	tlvw_init(&w, buf, 12);
	tlvw_u64(&w, 1, 1);
	assert_int_equal(tlvw_finish(&w, &len), 0);
	assert_int_equal(len, 12);

	/* Overflow inside a nested TLV. */
	tlvw_init(&w, buf, 10);
	tlvw_open(&w, 1);
	tlvw_u32(&w, 2, 2);
	tlvw_close(&w);
	assert_int_equal(tlvw_finish(&w, &len), TND_ENOSPC);
}

static void test_tlv_str_refusals(void **state)
{
	(void)state;
	char out[8];
	const uint8_t with_nul[5] = { 'a', 'b', 0, 'c', 'd' };
	struct tlv t = { .type = 1, .len = 5, .val = with_nul };

	memset(out, 'x', sizeof(out));
	assert_int_equal(tlv_str(&t, out, sizeof(out)), TND_EINVAL);
	assert_int_equal(out[0], 'x'); /* nothing copied */

	/* cap - 1 bytes fit with the NUL; cap bytes do not. */
	const uint8_t seven[8] = "abcdefg";
	t.val = seven;
	t.len = 7;
	assert_int_equal(tlv_str(&t, out, sizeof(out)), 0);
	assert_string_equal(out, "abcdefg");
	const uint8_t eight[9] = "abcdefgh";
	t.val = eight;
	t.len = 8;
	memset(out, 'x', sizeof(out));
	assert_int_equal(tlv_str(&t, out, sizeof(out)), TND_EINVAL);
	assert_int_equal(out[0], 'x');
	assert_int_equal(tlv_str(&t, out, 0), TND_EINVAL);

	/* The writer refuses a string longer than a TLV can hold. */
	size_t n = (size_t)UINT16_MAX + 1;
	char *huge = malloc(n + 1);
	uint8_t *buf = malloc(n + 64);
	assert_non_null(huge);
	assert_non_null(buf);
	memset(huge, 'q', n);
	huge[n] = 0;
	struct tlvw w;
	size_t len = 0;
	tlvw_init(&w, buf, n + 64);
	tlvw_str(&w, 1, huge);
	assert_int_not_equal(tlvw_finish(&w, &len), 0);
	huge[n - 1] = 0; /* exactly UINT16_MAX bytes: fits */
	tlvw_init(&w, buf, n + 64);
	tlvw_str(&w, 1, huge);
	assert_int_equal(tlvw_finish(&w, &len), 0);
	assert_int_equal(len, 4 + UINT16_MAX);
	free(huge);
	free(buf);
}

static void test_tlv_unknown_types_skipped(void **state)
{
	(void)state;
	uint8_t buf[128], junk[37];
	struct tlvw w;
	size_t len = 0;

	memset(junk, 0xee, sizeof(junk));
	tlvw_init(&w, buf, sizeof(buf));
	tlvw_u32(&w, 1, 111);
	tlvw_put(&w, 0xfff0, junk, sizeof(junk)); /* a type from the future */
	tlvw_open(&w, 0xfff1);                   /* nested, also unknown */
	tlvw_u64(&w, 7, 7);
	tlvw_close(&w);
	tlvw_u32(&w, 2, 222);
	assert_int_equal(tlvw_finish(&w, &len), 0);

	/* A reader that knows types 1 and 2 finds both values. */
	struct tlvr r;
	struct tlv t;
	uint32_t v1 = 0, v2 = 0;
	int rc, seen = 0, skipped = 0;
	tlvr_init(&r, buf, len);
	while ((rc = tlvr_next(&r, &t)) == 1) {
		seen++;
		if (t.type == 1)
			assert_int_equal(tlv_u32(&t, &v1), 0);
		else if (t.type == 2)
			assert_int_equal(tlv_u32(&t, &v2), 0);
		else
			skipped++;
	}
	assert_int_equal(rc, 0);
	assert_int_equal(seen, 4);
	assert_int_equal(skipped, 2);
	assert_int_equal(v1, 111);
	assert_int_equal(v2, 222);
}

/* --- header --------------------------------------------------------------- */

static void test_hdr_round_trip(void **state)
{
	(void)state;
	struct wire_hdr h = {
		.version = 1, .cluster_id = 200, .sender = 31, .type = 2,
		.incarnation = 0x0102030405060708ULL,
		.seq = 0xfffffffffffffffeULL, .body_len = 3,
	}, d;
	uint8_t buf[WIRE_HDR_LEN + 3] = { 0 };

	wire_hdr_encode(&h, buf);
	/* Magic "TNDM" first, integers big-endian at the documented offsets. */
	assert_memory_equal(buf, "TNDM", 4);
	assert_int_equal(buf[4], 1);
	assert_int_equal(buf[5], 200);
	assert_int_equal(buf[6], 31);
	assert_int_equal(buf[7], 2);
	assert_int_equal(buf[8], 0x01);
	assert_int_equal(buf[15], 0x08);
	assert_int_equal(buf[16], 0xff);
	assert_int_equal(buf[23], 0xfe);
	assert_int_equal(buf[24], 0);
	assert_int_equal(buf[25], 3);

	memset(&d, 0, sizeof(d));
	assert_int_equal(wire_hdr_decode(buf, sizeof(buf), &d), 0);
	assert_int_equal(d.version, h.version);
	assert_int_equal(d.cluster_id, h.cluster_id);
	assert_int_equal(d.sender, h.sender);
	assert_int_equal(d.type, h.type);
	assert_true(d.incarnation == h.incarnation);
	assert_true(d.seq == h.seq);
	assert_int_equal(d.body_len, h.body_len);

	/* Trailing bytes beyond body_len are tolerated by the header codec
	 * (seal_open is the one that insists on an exact length). */
	uint8_t longer[WIRE_HDR_LEN + 10] = { 0 };
	wire_hdr_encode(&h, longer);
	assert_int_equal(wire_hdr_decode(longer, sizeof(longer), &d), 0);
}

static void test_hdr_refusals(void **state)
{
	(void)state;
	struct wire_hdr h = { .version = 1, .cluster_id = 1, .sender = 0,
			      .type = 1, .incarnation = 1, .seq = 1,
			      .body_len = 10 }, d;
	uint8_t buf[WIRE_HDR_LEN + 10] = { 0 };

	wire_hdr_encode(&h, buf);
	assert_int_equal(wire_hdr_decode(buf, sizeof(buf), &d), 0);
	/* body_len one longer than what follows the header */
	assert_int_equal(wire_hdr_decode(buf, sizeof(buf) - 1, &d), TND_EINVAL);
	h.body_len = 0xffff;
	wire_hdr_encode(&h, buf);
	assert_int_equal(wire_hdr_decode(buf, sizeof(buf), &d), TND_EINVAL);
	h.body_len = 0;
	wire_hdr_encode(&h, buf);
	/* truncated header */
	for (size_t len = 0; len < WIRE_HDR_LEN; len++)
		assert_int_equal(wire_hdr_decode(buf, len, &d), TND_EINVAL);
	assert_int_equal(wire_hdr_decode(buf, WIRE_HDR_LEN, &d), 0);
	/* bad magic, each byte */
	for (int i = 0; i < 4; i++) {
		wire_hdr_encode(&h, buf);
		buf[i] ^= 0x20;
		assert_int_equal(wire_hdr_decode(buf, sizeof(buf), &d), TND_EINVAL);
	}
}

static void test_byte_order_helpers(void **state)
{
	(void)state;
	uint8_t b[8];
	wire_put16(b, 0x8001);
	assert_int_equal(b[0], 0x80);
	assert_int_equal(b[1], 0x01);
	assert_int_equal(wire_get16(b), 0x8001);
	wire_put32(b, 0x80000001u);
	assert_int_equal(wire_get32(b), 0x80000001u);
	wire_put64(b, 0x8000000000000001ULL);
	assert_int_equal(b[0], 0x80);
	assert_int_equal(b[7], 0x01);
	assert_true(wire_get64(b) == 0x8000000000000001ULL);
}

/* --- seal ------------------------------------------------------------------ */

#define CLUSTER 7

struct sealed {
	uint8_t plain[WIRE_HDR_LEN + 64];
	size_t plain_len;
	uint8_t pkt[WIRE_HDR_LEN + 64 + WIRE_TAG_LEN];
	size_t len;
};

static void make_key(struct seal_key *k, uint8_t fill)
{
	uint8_t secret[SEAL_SECRET_MIN];
	memset(secret, fill, sizeof(secret));
	assert_int_equal(seal_key_derive(k, secret, sizeof(secret)), 0);
}

static void seal_one(const struct seal_key *k, uint8_t cluster, uint64_t seq,
		     const char *body, struct sealed *s)
{
	struct wire_hdr h = { .version = 1, .cluster_id = cluster, .sender = 1,
			      .type = WIRE_MSG_HEARTBEAT, .incarnation = 5,
			      .seq = seq, .body_len = 0xdead /* ignored */ };
	size_t n = strlen(body);
	assert_true(n <= 64);
	wire_hdr_encode(&h, s->plain);
	memcpy(s->plain + WIRE_HDR_LEN, body, n);
	s->plain_len = WIRE_HDR_LEN + n;
	assert_int_equal(seal_packet(k, s->plain, s->plain_len, s->pkt,
				     sizeof(s->pkt), &s->len), 0);
	assert_int_equal(s->len, s->plain_len + WIRE_TAG_LEN);
}

static int seal_setup(void **state)
{
	(void)state;
	return sodium_init() < 0 ? -1 : 0;
}

static void test_seal_round_trip(void **state)
{
	(void)state;
	struct seal_key k;
	struct sealed s;
	struct wire_hdr h;
	uint8_t body[128];
	size_t blen = 0;
	const char *msg = "\x00\x01\x00\x04TLVs";

	make_key(&k, 0x42);
	/* strlen stops at the first NUL, so build the body by hand. */
	struct wire_hdr ph = { .version = 1, .cluster_id = CLUSTER, .sender = 1,
			       .type = 1, .incarnation = 5, .seq = 9 };
	wire_hdr_encode(&ph, s.plain);
	memcpy(s.plain + WIRE_HDR_LEN, msg, 8);
	s.plain_len = WIRE_HDR_LEN + 8;
	assert_int_equal(seal_packet(&k, s.plain, s.plain_len, s.pkt,
				     sizeof(s.pkt), &s.len), 0);
	assert_int_equal(s.len, WIRE_HDR_LEN + 8 + WIRE_TAG_LEN);
	/* The header travels in the clear with the sealed length; the body
	 * does not travel in the clear. */
	assert_memory_equal(s.pkt, s.plain, 24);
	assert_int_equal(wire_get16(s.pkt + 24), 8 + WIRE_TAG_LEN);
	assert_memory_not_equal(s.pkt + WIRE_HDR_LEN, msg, 8);

	assert_int_equal(seal_open(&k, CLUSTER, s.pkt, s.len, &h, body,
				   sizeof(body), &blen), 0);
	assert_int_equal(blen, 8);
	assert_memory_equal(body, msg, 8);
	assert_int_equal(h.sender, 1);
	assert_true(h.incarnation == 5);
	assert_true(h.seq == 9);
	assert_int_equal(h.cluster_id, CLUSTER);

	/* An empty body seals to a bare tag and opens again. */
	seal_one(&k, CLUSTER, 10, "", &s);
	assert_int_equal(s.len, WIRE_HDR_LEN + WIRE_TAG_LEN);
	assert_int_equal(seal_open(&k, CLUSTER, s.pkt, s.len, &h, body,
				   sizeof(body), &blen), 0);
	assert_int_equal(blen, 0);
}

static void test_seal_every_bit_flip_refused(void **state)
{
	(void)state;
	struct seal_key k;
	struct sealed s;
	struct wire_hdr h;
	uint8_t body[128], pkt[sizeof(s.pkt)];
	size_t blen;

	make_key(&k, 0x42);
	seal_one(&k, CLUSTER, 77, "heartbeat body bytes", &s);
	for (size_t byte = 0; byte < s.len; byte++) {
		for (int bit = 0; bit < 8; bit++) {
			memcpy(pkt, s.pkt, s.len);
			pkt[byte] ^= (uint8_t)(1u << bit);
			memset(body, 0x5a, sizeof(body));
			blen = 4242;
			int rc = seal_open(&k, CLUSTER, pkt, s.len, &h, body,
					   sizeof(body), &blen);
			int want;
			if (byte < 4 || byte == 24 || byte == 25)
				want = TND_EINVAL;  /* magic, length */
			else if (byte == 5)
				want = TND_ECLUSTER; /* names another cluster */
			else if (byte == 4 && (1 ^ (1u << bit)) < WIRE_PROTO_MIN)
				want = TND_EVERSION; /* version 0 */
			else
				want = TND_EAUTH;
			if (rc != want)
				fail_msg("flip byte %zu bit %d: got %d (%s), want %d",
					 byte, bit, rc, tnd_strerror(rc), want);
			/* A refused packet yields no plaintext length. */
			assert_int_equal(blen, 4242);
		}
	}
	/* Truncated or extended by one byte. */
	assert_int_equal(seal_open(&k, CLUSTER, s.pkt, s.len - 1, &h, body,
				   sizeof(body), &blen), TND_EINVAL);
	memcpy(pkt, s.pkt, s.len);
	pkt[s.len] = 0;
	assert_int_equal(seal_open(&k, CLUSTER, pkt, s.len + 1, &h, body,
				   sizeof(body), &blen), TND_EINVAL);
	/* Shorter than a tag. */
	memcpy(pkt, s.pkt, WIRE_HDR_LEN);
	wire_put16(pkt + 24, WIRE_TAG_LEN - 1);
	assert_int_equal(seal_open(&k, CLUSTER, pkt, WIRE_HDR_LEN + WIRE_TAG_LEN - 1,
				   &h, body, sizeof(body), &blen), TND_EINVAL);
	/* Intact, it still opens. */
	assert_int_equal(seal_open(&k, CLUSTER, s.pkt, s.len, &h, body,
				   sizeof(body), &blen), 0);
}

static void test_seal_wrong_key_and_cluster(void **state)
{
	(void)state;
	struct seal_key k, other;
	struct sealed s;
	struct wire_hdr h;
	uint8_t body[128];
	size_t blen = 0;

	make_key(&k, 0x42);
	make_key(&other, 0x43);
	assert_memory_not_equal(k.k, other.k, SEAL_KEY_LEN);
	seal_one(&k, CLUSTER, 3, "abc", &s);
	assert_int_equal(seal_open(&other, CLUSTER, s.pkt, s.len, &h, body,
				   sizeof(body), &blen), TND_EAUTH);
	/* Sealed for cluster 7, received by cluster 8. */
	assert_int_equal(seal_open(&k, CLUSTER + 1, s.pkt, s.len, &h, body,
				   sizeof(body), &blen), TND_ECLUSTER);
	/* Another cluster with the same key: still refused by id. */
	seal_one(&k, CLUSTER + 1, 3, "abc", &s);
	assert_int_equal(seal_open(&k, CLUSTER, s.pkt, s.len, &h, body,
				   sizeof(body), &blen), TND_ECLUSTER);
	assert_int_equal(seal_open(&k, CLUSTER + 1, s.pkt, s.len, &h, body,
				   sizeof(body), &blen), 0);
}

static void test_seal_key_derive(void **state)
{
	(void)state;
	struct seal_key k1, k2;
	uint8_t secret[64];

	for (size_t i = 0; i < sizeof(secret); i++)
		secret[i] = (uint8_t)(i * 7 + 1);
	for (size_t len = 0; len < SEAL_SECRET_MIN; len++)
		assert_int_equal(seal_key_derive(&k1, secret, len), TND_EINVAL);
	assert_int_equal(seal_key_derive(&k1, secret, SEAL_SECRET_MIN), 0);
	assert_int_equal(seal_key_derive(&k2, secret, SEAL_SECRET_MIN), 0);
	assert_memory_equal(k1.k, k2.k, SEAL_KEY_LEN);
	/* The key is derived, not the secret's first bytes. */
	assert_memory_not_equal(k1.k, secret, SEAL_KEY_LEN);
	/* Every byte of a longer secret counts. */
	assert_int_equal(seal_key_derive(&k2, secret, sizeof(secret)), 0);
	assert_memory_not_equal(k1.k, k2.k, SEAL_KEY_LEN);
	secret[63] ^= 1;
	struct seal_key k3;
	assert_int_equal(seal_key_derive(&k3, secret, sizeof(secret)), 0);
	assert_memory_not_equal(k2.k, k3.k, SEAL_KEY_LEN);
}

static void test_seal_nonce_follows_seq(void **state)
{
	(void)state;
	struct seal_key k;
	struct sealed s1, s2;

	make_key(&k, 0x42);
	seal_one(&k, CLUSTER, 1000, "same plaintext, twice", &s1);
	seal_one(&k, CLUSTER, 1001, "same plaintext, twice", &s2);
	assert_int_equal(s1.len, s2.len);
	/* Neither the ciphertext nor the tag repeats. */
	assert_memory_not_equal(s1.pkt + WIRE_HDR_LEN, s2.pkt + WIRE_HDR_LEN,
				s1.len - WIRE_HDR_LEN - WIRE_TAG_LEN);
	assert_memory_not_equal(s1.pkt + s1.len - WIRE_TAG_LEN,
				s2.pkt + s2.len - WIRE_TAG_LEN, WIRE_TAG_LEN);
	/* Sealing is deterministic for the same header, so the difference
	 * above comes from the sequence number alone. */
	struct sealed s3;
	seal_one(&k, CLUSTER, 1000, "same plaintext, twice", &s3);
	assert_memory_equal(s1.pkt, s3.pkt, s1.len);

	/* A packet whose seq was rewritten in transit does not open. */
	struct wire_hdr h;
	uint8_t body[128];
	size_t blen;
	wire_put64(s2.pkt + 16, 1000);
	assert_int_equal(seal_open(&k, CLUSTER, s2.pkt, s2.len, &h, body,
				   sizeof(body), &blen), TND_EAUTH);
}

static void test_seal_bounds(void **state)
{
	(void)state;
	struct seal_key k;
	struct sealed s;
	struct wire_hdr h;
	uint8_t body[128], out[256];
	size_t blen = 0, olen = 0;

	make_key(&k, 0x42);
	seal_one(&k, CLUSTER, 1, "0123456789", &s);
	/* Output buffer one byte short. */
	assert_int_equal(seal_packet(&k, s.plain, s.plain_len, out,
				     s.plain_len + WIRE_TAG_LEN - 1, &olen),
			 TND_ENOSPC);
	/* Plaintext shorter than a header, or without the magic. */
	assert_int_equal(seal_packet(&k, s.plain, WIRE_HDR_LEN - 1, out,
				     sizeof(out), &olen), TND_EINVAL);
	uint8_t bad[WIRE_HDR_LEN + 4];
	memcpy(bad, s.plain, WIRE_HDR_LEN + 4);
	bad[0] = 'X';
	assert_int_equal(seal_packet(&k, bad, sizeof(bad), out, sizeof(out),
				     &olen), TND_EINVAL);
	/* Plaintext buffer one byte short. */
	assert_int_equal(seal_open(&k, CLUSTER, s.pkt, s.len, &h, body, 9,
				   &blen), TND_ENOSPC);
	assert_int_equal(seal_open(&k, CLUSTER, s.pkt, s.len, &h, body, 10,
				   &blen), 0);
	assert_int_equal(blen, 10);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tlv_round_trip_flat),
		cmocka_unit_test(test_tlv_getters_check_length),
		cmocka_unit_test(test_tlv_nested),
		cmocka_unit_test(test_tlv_writer_nesting_errors),
		cmocka_unit_test(test_tlv_reader_length_past_end),
		cmocka_unit_test(test_tlv_reader_truncated_header),
		cmocka_unit_test(test_tlv_writer_overflow_sticky),
		cmocka_unit_test(test_tlv_str_refusals),
		cmocka_unit_test(test_tlv_unknown_types_skipped),
		cmocka_unit_test(test_hdr_round_trip),
		cmocka_unit_test(test_hdr_refusals),
		cmocka_unit_test(test_byte_order_helpers),
		cmocka_unit_test(test_seal_round_trip),
		cmocka_unit_test(test_seal_every_bit_flip_refused),
		cmocka_unit_test(test_seal_wrong_key_and_cluster),
		cmocka_unit_test(test_seal_key_derive),
		cmocka_unit_test(test_seal_nonce_follows_seq),
		cmocka_unit_test(test_seal_bounds),
	};
	return cmocka_run_group_tests(tests, seal_setup, NULL);
}
